#!/usr/bin/env bash
# Soak and churn (not part of CI): one Lockstep server, release build, on core 0; the
# load generator's soak scenario on core 1 for MINUTES (default 30): a steady population
# with joins and leaves, comments, likes, orders with cancels and expiries, sales that
# end every few minutes, WHEP players subscribing and unsubscribing, slow viewers and
# half-open connections. The server is sampled every 10 s (RSS, fds, threads, queues,
# database size); bench/soak_report.py judges the run (memory and fds flat after the
# warm-up, nothing errored) and draws bench/results/soak-DATE.svg.
#
#   bench/soak.sh [MINUTES]        extra load-generator flags in SOAK_ARGS
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
minutes="${1:-30}"
LOCKSTEP=target/release/lockstep
LOAD=target/release/lockstep-load
SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
port="${BENCH_LOCKSTEP_PORT:-18081}"
bench_init
cargo build --release --locked -p lockstep -p lockstep-load >&2
stamp=$(date +%Y%m%d-%H%M%S)
out=bench/results/soak-$stamp
mkdir -p bench/results
db="$BENCH_TMP_DIR/soak.db"
# A short heartbeat so half-open connections are noticed within the run's minute scale;
# everything else is the built-in default.
start_lockstep "$port" "$db" "$BENCH_TMP_DIR/server.log" \
    LOCKSTEP_SERVER__WORKERS=0 LOCKSTEP_ROOMS__ARBITERS=0 \
    LOCKSTEP_SESSION__HEARTBEAT_INTERVAL_MS=5000 LOCKSTEP_SESSION__HEARTBEAT_TIMEOUT_MS=15000 \
    LOCKSTEP_SALES__RETIRE_AFTER_SECS=60
log "server pid $SERVER_PID on 127.0.0.1:$port; sampling every 10 s into $out.jsonl"
python3 bench/soak_sample.py --pid "$SERVER_PID" --metrics "http://127.0.0.1:$port/metrics" \
    --db "$db" --out "$out.jsonl" --interval 10 &
track $!
log "soak for $minutes min"
# shellcheck disable=SC2086
taskset -c "$LOAD_CPU" "$LOAD" soak --server "127.0.0.1:$port" --duration-secs $((minutes * 60)) \
    --json "$out.load.json" ${SOAK_ARGS:-} | tee "$out.load.txt"
sleep 12  # one more sample after the load stopped
python3 bench/soak_report.py "$out.jsonl" "$out.load.json" --svg "$out.svg" | tee "$out.txt"
