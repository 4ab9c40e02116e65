#!/usr/bin/env bash
# Flash-sale benchmark, side by side: accepted orders per second and latency for the same
# `lockstep-load flash-sale` workload against
#   lockstep              Lockstep, one worker + one arbiter, durable orders
#                         (LOCKSTEP_STORE__SYNCHRONOUS_FULL=true: fsync per commit group)
#   redis-aof-always      a fresh redis-server on $REDIS_AOF_PORT with --appendonly yes
#                         --appendfsync always (every write fsync'd before the reply)
#   redis-no-persistence  Redis on $REDIS_PORT without persistence (the running instance is
#                         reused if one answers there; else the script starts one)
# Servers are pinned to core $SERVER_CPU and the generator to core $LOAD_CPU (taskset).
# Stock is at least buyers x orders, so every order is accepted and the measure is
# accepted orders/s. Each target runs $RUNS times, Lockstep and the AOF Redis on fresh
# data files in a scratch dir on disk ($BENCH_TMP). Results: one JSON line per run in
# bench/results/flash-sale-<date>.jsonl, then a table, means and ratios (bench/summarize.py).
#
# Run from anywhere (it cd's to the repo root; builds the release binaries if missing):
#   bench/flash_sale.sh
#   BUYERS=1000 ORDERS=20 RUNS=1 TARGETS="lockstep redis-aof-always" bench/flash_sale.sh
# Env (defaults): TARGETS (lockstep redis-aof-always redis-no-persistence), BUYERS (2000),
#   ORDERS (50 per buyer), LIMIT (= ORDERS), STOCK (max(100000, BUYERS x LIMIT)), RUNS (2),
#   SERVER_CPU (0), LOAD_CPU (1), BENCH_LOCKSTEP_PORT (18090), REDIS_PORT (6379),
#   REDIS_AOF_PORT (16379), RUN_TIMEOUT (300 s per run), BENCH_TMP (/var/tmp),
#   LOCKSTEP / LOAD (target/release/...).
# Any exported LOCKSTEP_<SECTION>__<KEY> (e.g. LOCKSTEP_ROOM__TICK_MS=20) reaches the
# Lockstep server (and is recorded with the results); the script sets the log level, store
# path, workers and arbiters itself.
# Every address is 127.0.0.1; each run is bounded by a timeout; every process the script
# starts is killed when it exits (trap). A reused Redis is never flushed or reconfigured.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
TARGETS=${TARGETS:-lockstep redis-aof-always redis-no-persistence}
BUYERS=${BUYERS:-2000}
ORDERS=${ORDERS:-50}
LIMIT=${LIMIT:-$ORDERS}
RUNS=${RUNS:-2}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18090}
REDIS_PORT=${REDIS_PORT:-6379}
REDIS_AOF_PORT=${REDIS_AOF_PORT:-16379}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
ROOM=bench-sale

bench_init
mkdir -p bench/results
RESULTS="bench/results/flash-sale-$(date +%Y%m%d-%H%M%S).jsonl"

[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server and generator pinned apart); nproc=$(nproc)"
for c in taskset python3 curl; do command -v "$c" >/dev/null || die "$c is required"; done
ensure_binaries
warn_if_busy

# Workload: every order must be accepted (stock and the per-buyer limit never bind).
[ "$LIMIT" -ge "$ORDERS" ] || { log "LIMIT=$LIMIT < ORDERS=$ORDERS: raising LIMIT to $ORDERS"; LIMIT=$ORDERS; }
need=$((BUYERS * LIMIT))
STOCK=${STOCK:-$((need > 100000 ? need : 100000))}
[ "$STOCK" -ge "$need" ] || { log "STOCK=$STOCK < BUYERS x LIMIT = $need: raising STOCK to $need"; STOCK=$need; }

load_args=(--buyers "$BUYERS" --stock "$STOCK" --limit "$LIMIT")
if load_has_flag flash-sale orders-per-buyer; then
    load_args+=(--orders-per-buyer "$ORDERS")
    orders=$((BUYERS * ORDERS))
else
    log "note: this lockstep-load has no --orders-per-buyer; each buyer places one order"
    orders=$BUYERS
fi
log "workload: $BUYERS buyers, $orders orders, stock $STOCK, limit $LIMIT per buyer"
if [ -n "${LOCKSTEP_AUTH__SECRET:-}" ] && load_has_flag flash-sale secret; then
    load_args+=(--secret "$LOCKSTEP_AUTH__SECRET")
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "redis-server/redis-cli not found: Redis targets will be skipped"
fi

# Runs the generator for TARGET against ADDR (extra flags follow); records one JSON line.
run_load() {
    local target=$1 addr=$2 run=$3 run_dir=$4 version=$5 sale_target=$6
    shift 6
    local rc alive=1
    set +e
    timeout -k 10 "$RUN_TIMEOUT" taskset -c "$LOAD_CPU" "$LOAD" flash-sale \
        --target "$sale_target" --server "$addr" "${load_args[@]}" "$@" \
        --json "$run_dir/report.json" >"$run_dir/load.log" 2>&1 &
    local pid=$!
    track "$pid"
    wait "$pid"
    rc=$?
    set -e
    stop_pid "$pid"
    if [ -n "${SERVER_PID:-}" ] && ! is_running "$SERVER_PID"; then alive=0; fi
    if [ "$rc" -ne 0 ]; then
        log "load generator exited $rc; last lines of its log:"
        tail -n 5 "$run_dir/load.log" >&2 || true
    fi
    # Orders refused as not open, closed or invalid are not counted as sale decisions.
    grep -m 3 "was refused" "$run_dir/load.log" >&2 || true
    local settings
    settings=$(printf '{"buyers":%s,"orders":%s,"stock":%s,"limit":%s,"server_cpu":%s,"load_cpu":%s,"pinned":%s}' \
        "$BUYERS" "$orders" "$STOCK" "$LIMIT" "$SERVER_CPU" "$LOAD_CPU" "$PINNED")
    python3 bench/summarize.py record-flash-sale --target "$target" --run "$run" \
        --report "$run_dir/report.json" --load-rc "$rc" --server-alive "$alive" \
        --server-version "$version" --settings "$settings" >>"$RESULTS"
}

log "results -> $RESULTS"
for target in $TARGETS; do
    for run in $(seq 1 "$RUNS"); do
        run_dir="$BENCH_TMP_DIR/$target-$run"
        mkdir -p "$run_dir"
        log "$target run $run"
        SERVER_PID=""
        PINNED=true
        case $target in
        lockstep)
            start_lockstep "$BENCH_LOCKSTEP_PORT" "$run_dir/lockstep.db" "$run_dir/server.log" \
                LOCKSTEP_STORE__SYNCHRONOUS_FULL=true
            extra=(--room "$ROOM")
            if load_has_flag flash-sale anchor-token; then
                extra+=(--anchor-token "$("$LOCKSTEP" token --role anchor --room "$ROOM")")
            fi
            if load_has_flag flash-sale merchant-token; then
                extra+=(--merchant-token "$("$LOCKSTEP" token --role merchant --merchant bench-merchant)")
            fi
            run_load lockstep "127.0.0.1:$BENCH_LOCKSTEP_PORT" "$run" "$run_dir" \
                "$("$LOCKSTEP" --version 2>/dev/null || echo lockstep)" lockstep "${extra[@]}"
            stop_pid "$SERVER_PID"
            ;;
        redis-aof-always)
            command -v redis-server >/dev/null || { log "SKIP $target: no redis-server"; break; }
            start_redis "$REDIS_AOF_PORT" "$run_dir" --save "" --appendonly yes --appendfsync always
            run_load "$target" "127.0.0.1:$REDIS_AOF_PORT" "$run" "$run_dir" \
                "$(redis-server --version | awk '{print $1, $2, $3}') appendfsync always" redis
            stop_pid "$SERVER_PID"
            ;;
        redis-no-persistence)
            command -v redis-cli >/dev/null || { log "SKIP $target: no redis-cli"; break; }
            if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
                PINNED=false
                persist="save=\"$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config get save | sed -n 2p)\" appendonly=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config get appendonly | sed -n 2p)"
                log "reusing the Redis already on 127.0.0.1:$REDIS_PORT ($persist); not started here, so not pinned (set REDIS_PORT to a free port to get a pinned one)"
                case $persist in *'save=""'*appendonly=no*) ;; *) log "warning: that Redis persists data; the no-persistence numbers include its saves" ;; esac
                version="$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | tr -d '\r' | awk -F: '/^redis_version/ {print "redis " $2}') reused, $persist"
            else
                command -v redis-server >/dev/null || { log "SKIP $target: nothing on $REDIS_PORT and no redis-server"; break; }
                start_redis "$REDIS_PORT" "$run_dir" --save "" --appendonly no
                version="$(redis-server --version | awk '{print $1, $2, $3}') no persistence"
            fi
            run_load "$target" "127.0.0.1:$REDIS_PORT" "$run" "$run_dir" "$version" redis
            [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID"
            ;;
        *) die "unknown target $target (lockstep, redis-aof-always, redis-no-persistence)" ;;
        esac
        sleep 1
    done
done

echo
python3 bench/summarize.py flash-sale "$RESULTS"
echo
echo "raw results: $RESULTS"
