#!/usr/bin/env bash
# Cross-node flash sale: accepted orders per second and order latency for the same
# `lockstep-load flash-sale` workload (bench/flash_sale.sh's) in three set-ups:
#   lockstep-cluster  Lockstep cluster mode: $CLUSTER_NODES (3) `lockstep serve` nodes on
#                     127.0.0.1:$CLUSTER_PORT.. sharing one fresh redis-server
#                     (--appendonly yes --appendfsync always); the sale lives in Redis and
#                     runs on the room's owner; buyers are spread over the nodes with
#                     `--servers a,b,c` (buyer i on node i % 3: 3 x 1,000 by default), so
#                     two thirds of the orders cross from an edge node to the owner
#   lockstep-single   one `lockstep serve` on 127.0.0.1:$BENCH_LOCKSTEP_PORT, no Redis
#                     (SQLite, LOCKSTEP_STORE__SYNCHRONOUS_FULL=true: fsync per commit
#                     group), every buyer on it
#   redis-lua         `--target redis`: one Lua script call per order straight against a
#                     fresh redis-server configured as above, from $REDIS_PROCS (3)
#                     generator processes (`--procs 3`)
# Each case runs $RUNS (2) times, the cases interleaved (a b c a b c), each on fresh
# servers and data files in a scratch dir on disk ($BENCH_TMP). As in flash_sale.sh every
# node gets one worker and one arbiter, stock is at least buyers x orders and the
# per-buyer limit equals the orders per buyer, so every order is accepted and the measure
# is accepted orders/s. Lockstep nodes also get LOCKSTEP_STORE__SYNCHRONOUS_FULL=true.
#
# NOT PINNED: this machine has 2 cores and the cluster case alone runs 5 busy processes
# (3 nodes, Redis, the generator), so no case is pinned with taskset (unlike
# flash_sale.sh, whose numbers these are therefore not directly comparable with). Each row
# records `nproc` and the load average; run it on an otherwise idle machine.
#
# Results: one JSON line per run (the summarize.py flash-sale format, targets named as
# above, plus Redis commands per order in `settings`) in
# bench/results/cluster-sale-<date>.jsonl, then a table, means per case and the ratios.
#
# Run from anywhere (it cd's to the repo root; builds the release binaries if missing):
#   bench/cluster_sale.sh
#   CASES="lockstep-cluster redis-lua" RUNS=1 BUYERS=1500 bench/cluster_sale.sh
#   bench/cluster_sale.sh summary bench/results/cluster-sale-*.jsonl     # tables again
# Env (defaults): CASES (lockstep-cluster lockstep-single redis-lua), BUYERS (3000),
#   ORDERS (50 per buyer), LIMIT (= ORDERS), STOCK (max(100000, BUYERS x LIMIT)), RUNS (2),
#   CLUSTER_NODES (3), REDIS_PROCS (3), CLUSTER_PORT (18120: nodes on 18120..18122),
#   BENCH_LOCKSTEP_PORT (18130), REDIS_PORT (16420), RUN_TIMEOUT (300 s per run),
#   BENCH_TMP (/var/tmp), LOCKSTEP / LOAD (target/release/...).
# Any exported LOCKSTEP_<SECTION>__<KEY> reaches every Lockstep process; the script sets the log level, store path, workers, arbiters, synchronous_full and the
# cluster's redis_url and node_id itself.
# lockstep-cluster needs a lockstep-load whose `flash-sale --help` lists --servers (else
# that case is skipped). If this lockstep-load refuses `--procs` for flash-sale, redis-lua
# falls back to $REDIS_PROCS concurrent generator processes of BUYERS/$REDIS_PROCS buyers
# each (their own keys on the same Redis), summed; its p99 is then the worst process's
# p99, an upper bound (recorded in settings.procs_mode).
# Every address is 127.0.0.1; each run is bounded by a timeout; every process the script
# starts is killed when it exits (trap). A few minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

# ------------------------------------------------------------------ python helpers
# Merging fallback reports and the summary (stdlib, plus bench/summary's helpers).
PY=$(
    cat <<'PYEOF'
import json, os, sys
sys.path.insert(0, "bench")
from summary.common import fmt, get, lat, load_json, mean, num, rows_of, table  # noqa: E402
from summary.flash_sale import sale_checks  # noqa: E402

CASES = ["lockstep-cluster", "lockstep-single", "redis-lua"]

def merge(out, paths):
    """Reports of concurrent generator processes -> one report (sums, worst p99)."""
    reps = [load_json(p) for p in paths]
    if any(r is None for r in reps):
        return 1
    m = {"scenario": "flash-sale", "target": "redis", "merged_from": len(reps),
         "note": "concurrent separate generator processes, each with its own keys; "
                 "rates are sums over the longest window, latencies the worst process's"}
    for k in ("operations", "accepted", "sold_out", "limit_exceeded", "timed_out",
              "duplicate_order_ids", "buyers_over_limit", "retry_mismatches"):
        m[k] = sum(r.get(k) or 0 for r in reps)
    window = max(r.get("duration_secs") or 0 for r in reps)
    m["duration_secs"] = window
    decided = sum((r.get("orders_per_sec") or 0) * (r.get("duration_secs") or 0) for r in reps)
    m["orders_per_sec"] = round(decided / window) if window else None
    m["accepted_per_sec"] = round(m["accepted"] / window) if window else None
    m["oversold"] = any(r.get("oversold") for r in reps)
    m["undersold"] = any(r.get("undersold") for r in reps)
    lin = [r.get("linearizable") for r in reps]
    m["linearizable"] = False if False in lin else ("skipped" if "skipped" in lin else all(x is True for x in lin))
    m["order_ms"] = {q: max((get(r, "order_ms", q) or 0) for r in reps) for q in ("p50", "p90", "p99", "p999", "max")}
    m["order_ms"]["count"] = sum(get(r, "order_ms", "count") or 0 for r in reps)
    m["close_codes"] = {}
    m["workers"] = reps
    with open(out, "w") as f:
        json.dump(m, f, indent=1)
    return 0

def summary(paths):
    rows = rows_of(paths, "flash_sale")
    if not rows:
        print("no flash-sale rows")
        return 1
    order = {c: i for i, c in enumerate(CASES)}
    rows.sort(key=lambda r: (order.get(r.get("target"), 9), r.get("target", ""), r.get("run", 0)))
    out = []
    for r in rows:
        rep, s = r.get("report") or {}, r.get("settings") or {}
        out.append([r.get("target"), r.get("run"), get(rep, "accepted") if get(rep, "accepted") is not None else "-",
                    fmt(get(rep, "accepted_per_sec"), ",.0f"), fmt(get(rep, "orders_per_sec"), ",.0f"),
                    fmt(lat(rep, "p50")), fmt(lat(rep, "p99")), fmt(s.get("redis_cmds_per_order"), ".2f"),
                    sale_checks(rep, s.get("orders")), r.get("status")])
    print(table(["case", "run", "accepted", "accepted/s", "orders/s", "p50 ms", "p99 ms", "Redis cmds/order",
                 "checks", "status"], out, ["l", "r", "r", "r", "r", "r", "r", "r", "l", "l"]))
    print("\naccepted/s = accepted orders / seconds from the first order sent to the last answer;"
          " Redis cmds/order = commands Redis processed during the run per order placed.")
    means = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        m = means.setdefault(r["target"], {"aps": [], "p99": [], "p50": []})
        m["aps"].append(get(r, "report", "accepted_per_sec"))
        m["p99"].append(lat(r.get("report"), "p99"))
        m["p50"].append(lat(r.get("report"), "p50"))
    print()
    for t in sorted(means, key=lambda t: (order.get(t, 9), t)):
        v = means[t]
        print(f"{t}: mean {fmt(mean(v['aps']), ',.0f')} accepted orders/s, mean p50 {fmt(mean(v['p50']))} ms, "
              f"mean p99 {fmt(mean(v['p99']))} ms over {len(v['aps'])} run(s)")
    pairs = [("lockstep-cluster", "lockstep-single"), ("lockstep-cluster", "redis-lua"), ("lockstep-single", "redis-lua")]
    shown = False
    for a, b in pairs:
        if a in means and b in means:
            if not shown:
                print("\nratios (means):")
                shown = True
            ao, bo = mean(means[a]["aps"]), mean(means[b]["aps"])
            ap, bp = mean(means[a]["p99"]), mean(means[b]["p99"])
            r1 = f"{ao / bo:.2f}x" if num(ao) and num(bo) else "n/a"
            r2 = f"{ap / bp:.2f}x" if num(ap) and num(bp) else "n/a"
            print(f"  {a} / {b}: accepted orders/s {r1} ({fmt(ao, ',.0f')} vs {fmt(bo, ',.0f')}); "
                  f"p99 {r2} ({fmt(ap)} vs {fmt(bp)} ms)")
    return 0

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "merge":
        sys.exit(merge(sys.argv[2], sys.argv[3:]))
    if cmd == "summary":
        sys.exit(summary(sys.argv[2:]))
    sys.exit(f"unknown command {cmd}")
PYEOF
)
py() { python3 -c "$PY" "$@"; }

if [ "${1:-}" = summary ]; then
    shift
    [ "$#" -gt 0 ] || die "usage: bench/cluster_sale.sh summary FILE..."
    py summary "$@"
    exit
fi

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
CASES=${CASES:-lockstep-cluster lockstep-single redis-lua}
BUYERS=${BUYERS:-3000}
ORDERS=${ORDERS:-50}
LIMIT=${LIMIT:-$ORDERS}
RUNS=${RUNS:-2}
CLUSTER_NODES=${CLUSTER_NODES:-3}
REDIS_PROCS=${REDIS_PROCS:-3}
CLUSTER_PORT=${CLUSTER_PORT:-18120}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18130}
REDIS_PORT=${REDIS_PORT:-16420}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
ROOM=bench-cluster-sale
NPROC=$(nproc)

bench_init
mkdir -p bench/results
RESULTS="bench/results/cluster-sale-$(date +%Y%m%d-%H%M%S).jsonl"

# ---------------------------------------------------------------- preflight
for c in python3 curl; do command -v "$c" >/dev/null || die "$c is required"; done
case " $CASES " in
*" lockstep-cluster "* | *" redis-lua "*)
    for c in redis-server redis-cli; do
        command -v "$c" >/dev/null || die "$c is required for lockstep-cluster and redis-lua"
    done
    ;;
esac
for c in $CASES; do
    case $c in lockstep-cluster | lockstep-single | redis-lua) ;; *) die "unknown case $c (lockstep-cluster, lockstep-single, redis-lua)" ;; esac
done
[ "$CLUSTER_NODES" -ge 2 ] || die "CLUSTER_NODES must be at least 2"
[ "$REDIS_PROCS" -ge 1 ] || die "REDIS_PROCS must be at least 1"
ensure_binaries
log "nproc = $NPROC, load average $(cut -d' ' -f1-3 /proc/loadavg); nothing is pinned"
warn_if_busy
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((BUYERS + 500)) ] ||
    die "BUYERS=$BUYERS sockets in one generator process exceed ulimit -n $(ulimit -n)"

# Workload, as flash_sale.sh: every order must be accepted (stock and limit never bind).
[ "$LIMIT" -ge "$ORDERS" ] || { log "LIMIT=$LIMIT < ORDERS=$ORDERS: raising LIMIT to $ORDERS"; LIMIT=$ORDERS; }
need=$((BUYERS * LIMIT))
STOCK=${STOCK:-$((need > 100000 ? need : 100000))}
[ "$STOCK" -ge "$need" ] || { log "STOCK=$STOCK < BUYERS x LIMIT = $need: raising STOCK to $need"; STOCK=$need; }
load_args=(--stock "$STOCK" --limit "$LIMIT")
if load_has_flag flash-sale orders-per-buyer; then
    load_args+=(--orders-per-buyer "$ORDERS")
    orders_each=$ORDERS
else
    log "note: this lockstep-load has no --orders-per-buyer; each buyer places one order"
    orders_each=1
fi
orders=$((BUYERS * orders_each))
log "workload: $BUYERS buyers, $orders orders, stock $STOCK, limit $LIMIT per buyer"
if [ -n "${LOCKSTEP_AUTH__SECRET:-}" ] && load_has_flag flash-sale secret; then
    load_args+=(--secret "$LOCKSTEP_AUTH__SECRET")
fi
lockstep_extra=(--room "$ROOM")
if load_has_flag flash-sale anchor-token; then
    lockstep_extra+=(--anchor-token "$("$LOCKSTEP" token --role anchor --room "$ROOM")")
fi
if load_has_flag flash-sale merchant-token; then
    lockstep_extra+=(--merchant-token "$("$LOCKSTEP" token --role merchant --merchant bench-merchant)")
fi

cases=()
for c in $CASES; do
    if [ "$c" = lockstep-cluster ] && ! load_has_flag flash-sale servers; then
        log "SKIP lockstep-cluster: $LOAD has no 'flash-sale --servers' (buyers over several nodes); rebuild lockstep-load"
        continue
    fi
    cases+=("$c")
done
[ "${#cases[@]}" -gt 0 ] || die "no case left to run"
REDIS_VERSION=$(redis-server --version 2>/dev/null | awk '{print $1, $2, $3}' || true)
LOCKSTEP_VERSION=$("$LOCKSTEP" --version 2>/dev/null | awk '{print $NF}' || true)

# ---------------------------------------------------------------- processes
NODE_PIDS=()
REDIS_PID=""

# A fresh redis-server on REDIS_PORT, files in DIR: every write fsync'd before the reply.
start_sale_redis() {
    local dir=$1 i
    require_free_port "$REDIS_PORT" REDIS_PORT
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --daemonize no \
        --logfile "$dir/redis.log" --save "" --appendonly yes --appendfsync always &
    REDIS_PID=$!
    track "$REDIS_PID"
    for i in $(seq 100); do
        is_running "$REDIS_PID" || die "redis-server exited during startup ($dir/redis.log)"
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    die "redis-server on port $REDIS_PORT did not answer PING"
}

# One Lockstep process on PORT (as start_lockstep in bench/lib.sh, not pinned); extra
# KEY=VALUE env may follow. Appends its PID to NODE_PIDS.
start_node() {
    local port=$1 db=$2 logf=$3 i
    shift 3
    require_free_port "$port" "lockstep port"
    env LOCKSTEP_SERVER__LOG=warn \
        LOCKSTEP_STORE__PATH="$db" \
        LOCKSTEP_SERVER__WORKERS=1 \
        LOCKSTEP_ROOMS__ARBITERS=1 \
        LOCKSTEP_STORE__SYNCHRONOUS_FULL=true \
        "$@" \
        "$LOCKSTEP" serve --bind "127.0.0.1:$port" >"$logf" 2>&1 &
    local pid=$!
    track "$pid"
    NODE_PIDS+=("$pid")
    wait_listening "$pid" "$port" "lockstep on $port (log: $logf)"
    for i in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "lockstep on 127.0.0.1:$port did not answer /healthz"
}

stop_all() {
    local i
    for ((i = ${#NODE_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${NODE_PIDS[i]}"; done
    NODE_PIDS=()
    [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID"
    REDIS_PID=""
}

redis_commands() {
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info stats 2>/dev/null | tr -d '\r' |
        awk -F: '/^total_commands_processed:/ {print $2}'
}

# Runs one generator command (after RUN_DIR LOGNAME) under the timeout; sets rc.
run_gen() {
    local run_dir=$1 name=$2
    shift 2
    set +e
    timeout -k 10 "$RUN_TIMEOUT" "$@" >"$run_dir/$name.log" 2>&1 &
    local pid=$!
    track "$pid"
    wait "$pid"
    rc=$?
    set -e
    stop_pid "$pid"
}

# 1 once this lockstep-load is known to refuse --procs for flash-sale.
REDIS_SPLIT=0

# ---------------------------------------------------------------- runs
log "results -> $RESULTS"
for run in $(seq 1 "$RUNS"); do
    for c in "${cases[@]}"; do
        run_dir="$BENCH_TMP_DIR/$c-$run"
        mkdir -p "$run_dir"
        log "$c run $run"
        NODE_PIDS=()
        REDIS_PID=""
        procs_mode=""
        cmds_before=""
        la_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
        case $c in
        lockstep-cluster)
            start_sale_redis "$run_dir"
            servers=""
            for ((k = 0; k < CLUSTER_NODES; k++)); do
                start_node $((CLUSTER_PORT + k)) "$run_dir/node-$k.db" "$run_dir/node-$k.log" \
                    LOCKSTEP_CLUSTER__REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
                    LOCKSTEP_CLUSTER__NODE_ID="node-$k"
                servers+="${servers:+,}127.0.0.1:$((CLUSTER_PORT + k))"
            done
            version="lockstep $LOCKSTEP_VERSION cluster x$CLUSTER_NODES, $REDIS_VERSION appendfsync always"
            cmds_before=$(redis_commands)
            run_gen "$run_dir" load "$LOAD" flash-sale --target lockstep --servers "$servers" \
                --buyers "$BUYERS" "${load_args[@]}" "${lockstep_extra[@]}" --json "$run_dir/report.json"
            ;;
        lockstep-single)
            start_node "$BENCH_LOCKSTEP_PORT" "$run_dir/lockstep.db" "$run_dir/server.log"
            version="lockstep $LOCKSTEP_VERSION single process, SQLite synchronous_full"
            run_gen "$run_dir" load "$LOAD" flash-sale --target lockstep \
                --server "127.0.0.1:$BENCH_LOCKSTEP_PORT" --buyers "$BUYERS" "${load_args[@]}" \
                "${lockstep_extra[@]}" --json "$run_dir/report.json"
            ;;
        redis-lua)
            start_sale_redis "$run_dir"
            version="$REDIS_VERSION appendfsync always, Lua per order"
            cmds_before=$(redis_commands)
            if [ "$REDIS_SPLIT" = 0 ]; then
                procs_mode="--procs $REDIS_PROCS"
                run_gen "$run_dir" load "$LOAD" flash-sale --target redis \
                    --server "127.0.0.1:$REDIS_PORT" --buyers "$BUYERS" "${load_args[@]}" \
                    --procs "$REDIS_PROCS" --json "$run_dir/report.json"
                if [ "$rc" -ne 0 ] && grep -q "runs in one process" "$run_dir/load.log"; then
                    log "this lockstep-load refuses --procs for flash-sale: running $REDIS_PROCS generator processes side by side instead"
                    REDIS_SPLIT=1
                    cmds_before=$(redis_commands)
                fi
            fi
            if [ "$REDIS_SPLIT" = 1 ]; then
                procs_mode="$REDIS_PROCS separate processes of $((BUYERS / REDIS_PROCS))+ buyers, own keys each (no --procs for flash-sale)"
                pids=()
                parts=()
                set +e
                for ((p = 0; p < REDIS_PROCS; p++)); do
                    share=$((BUYERS / REDIS_PROCS + (p < BUYERS % REDIS_PROCS ? 1 : 0)))
                    timeout -k 10 "$RUN_TIMEOUT" "$LOAD" flash-sale --target redis \
                        --server "127.0.0.1:$REDIS_PORT" --buyers "$share" "${load_args[@]}" \
                        --json "$run_dir/report-$p.json" >"$run_dir/load-$p.log" 2>&1 &
                    pids+=($!)
                    track "${pids[p]}"
                    parts+=("$run_dir/report-$p.json")
                done
                rc=0
                for ((p = 0; p < REDIS_PROCS; p++)); do
                    wait "${pids[p]}" || rc=$?
                    stop_pid "${pids[p]}"
                done
                set -e
                cp "$run_dir/load-0.log" "$run_dir/load.log"
                py merge "$run_dir/report.json" "${parts[@]}" || log "could not merge the per-process reports"
            fi
            ;;
        esac
        alive=1
        for p in "${NODE_PIDS[@]}"; do is_running "$p" || alive=0; done
        if [ -n "$REDIS_PID" ] && ! is_running "$REDIS_PID"; then alive=0; fi
        cmds_per_order=null
        if [ -n "$cmds_before" ] && [ -n "$REDIS_PID" ] && is_running "$REDIS_PID"; then
            cmds_after=$(redis_commands)
            cmds_per_order=$(python3 -c "print(round(($cmds_after - $cmds_before) / max($orders, 1), 3))")
        fi
        if [ "$rc" -ne 0 ]; then
            log "load generator exited $rc; last lines of its log:"
            tail -n 5 "$run_dir/load.log" >&2 || true
        fi
        [ "$alive" = 1 ] || log "a server died during the run (logs in $run_dir)"
        la_end=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
        settings=$(printf '{"case":"%s","buyers":%s,"orders":%s,"stock":%s,"limit":%s,"nodes":%s,"procs_mode":"%s","redis_cmds_per_order":%s,"pinned":false,"nproc":%s,"loadavg_start":[%s],"loadavg_end":[%s]}' \
            "$c" "$BUYERS" "$orders" "$STOCK" "$LIMIT" \
            "$([ "$c" = lockstep-cluster ] && echo "$CLUSTER_NODES" || echo 1)" "$procs_mode" \
            "$cmds_per_order" "$NPROC" "$la_start" "$la_end")
        python3 bench/summarize.py record-flash-sale --target "$c" --run "$run" \
            --report "$run_dir/report.json" --load-rc "$rc" --server-alive "$alive" \
            --server-version "$version" --settings "$settings" >>"$RESULTS"
        stop_all
        sleep 1
    done
done

echo
py summary "$RESULTS"
echo
echo "raw results: $RESULTS"
