#!/usr/bin/env bash
# Fan-out on one server core against two, in one sitting: N receivers, one publisher at
# 10 messages/s of 200 bytes (`lockstep-load viewers`, split over two generator
# processes), alternating
#   1 core   the server pinned to core 0 with one worker and one arbiter, the generator
#            pinned to core 1 (as bench/fanout.sh runs it);
#   2 cores  the server on cores 0 and 1 with two workers and two arbiters, the
#            generator on the same two cores (a two-core machine has no third core for
#            it, so the server gets whatever the generator leaves).
# Prints each run's delivery ratio, latency and the server's CPU seconds over the whole
# run (joins included); one JSON line per run in bench/results/fanout-cores-<date>.jsonl.
#
#   bench/fanout_cores.sh
# Env (defaults): VIEWERS (19000), RUNS (2 per setup), DURATION (10), WARMUP (3),
#   BENCH_LOCKSTEP_PORT (18080), LOCKSTEP / LOAD (target/release/...).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
VIEWERS=${VIEWERS:-19000}
RUNS=${RUNS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18080}
ROOM=bench-cores
CLK_TCK=$(getconf CLK_TCK)

bench_init
[ "$(nproc)" -ge 2 ] || die "needs 2 cores; nproc=$(nproc)"
ensure_binaries
warn_if_busy
mkdir -p bench/results
RESULTS="bench/results/fanout-cores-$(date +%Y%m%d-%H%M%S).jsonl"

# CPU seconds (user + system) the process has used so far.
cpu_secs() { awk -v tck="$CLK_TCK" '{printf "%.2f", ($14 + $15) / tck}' "/proc/$1/stat"; }

for run in $(seq "$RUNS"); do
    for setup in 1 2; do
        if [ "$setup" = 1 ]; then SERVER_CPU=0 LOAD_CPU=1; else SERVER_CPU=0,1 LOAD_CPU=0,1; fi
        dir="$BENCH_TMP_DIR/run-$run-$setup"
        mkdir -p "$dir"
        start_lockstep "$BENCH_LOCKSTEP_PORT" "$dir/lockstep.db" "$dir/server.log" \
            LOCKSTEP_SERVER__WORKERS="$setup" LOCKSTEP_ROOMS__ARBITERS="$setup" \
            LOCKSTEP_ROOM__MAX_VIEWERS=25000
        log "run $run, $setup server core(s): $VIEWERS receivers"
        before=$(cpu_secs "$SERVER_PID")
        timeout -k 10 $((WARMUP + DURATION + 90 + VIEWERS / 100)) taskset -c "$LOAD_CPU" \
            "$LOAD" --procs 2 --json "$dir/report.json" viewers --target lockstep \
            --server "127.0.0.1:$BENCH_LOCKSTEP_PORT" --viewers "$VIEWERS" --rate 10 --size 200 \
            --duration "$DURATION" --warmup "$WARMUP" --room "$ROOM" \
            --anchor-token "$("$LOCKSTEP" token --role anchor --room "$ROOM")" \
            >"$dir/load.log" 2>&1 || { tail -5 "$dir/load.log" >&2; die "the generator failed"; }
        after=$(cpu_secs "$SERVER_PID")
        stop_pid "$SERVER_PID"
        python3 - "$dir/report.json" "$run" "$setup" "$before" "$after" >>"$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"run": int(sys.argv[2]), "server_cores": int(sys.argv[3]),
                  "server_cpu_secs": round(float(sys.argv[5]) - float(sys.argv[4]), 2), **r}))
PY
        sleep 1 # let the kernel retire the closed sockets
    done
done
log "results: $RESULTS"
python3 - "$RESULTS" <<'PY'
import json, sys
print(f"{'run':>3} {'server cores':>12} {'delivered':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'server CPU s':>12}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    l = r["latency_ms"]
    print(f"{r['run']:>3} {r['server_cores']:>12} {r['delivery_ratio']:>9.4f} {l['p50']:>8.1f} "
          f"{l['p99']:>8.1f} {l['max']:>8.1f} {r['server_cpu_secs']:>12.2f}")
PY
