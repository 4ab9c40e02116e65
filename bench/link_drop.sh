#!/usr/bin/env bash
# Link drop at any size, run after run: for each run, a fresh Lockstep server pinned to
# core $SERVER_CPU, and `lockstep-load link-drop` pinned to core $LOAD_CPU (N viewers
# join at RAMP/s, keep a clock offset, the anchor drops a link with a COUNTDOWN_MS
# countdown, each client shows it when its corrected clock reaches reveal_at). Each
# variant of RESYNCS (clock-sync exchanges again during the countdown; 0 = only those
# made while joining) runs RUNS times, alternating, so they share the machine's state.
#
# Results: one JSON line per run in bench/results/link-drop-<date>.jsonl, then a table:
# viewers with the card before reveal_at, arrival spread, displayed-at spread
# (max − min over all viewers), worst |displayed − reveal_at|, worst sync round trip.
#
# Env: VIEWERS (19000), RAMP (2000), COUNTDOWN_MS (3000), RUNS (10), RESYNCS ("3 0"),
#   SERVER_CPU (0), LOAD_CPU (1), BENCH_LOCKSTEP_PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
VIEWERS=${VIEWERS:-19000}
RAMP=${RAMP:-2000}
COUNTDOWN_MS=${COUNTDOWN_MS:-3000}
RUNS=${RUNS:-10}
RESYNCS=${RESYNCS:-3 0}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18080}

bench_init
mkdir -p bench/results
RESULTS="bench/results/link-drop-$(date +%Y%m%d-%H%M%S).jsonl"
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server and generator pinned apart); nproc=$(nproc)"
ensure_binaries
warn_if_busy
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt "$((VIEWERS + 200))" ] || die "open-files limit $(ulimit -n) is below $VIEWERS viewers"

for run in $(seq "$RUNS"); do
    for resync in $RESYNCS; do
        dir="$BENCH_TMP_DIR/run-$run-$resync"
        mkdir -p "$dir"
        start_lockstep "$BENCH_LOCKSTEP_PORT" "$dir/lockstep.db" "$dir/server.log"
        log "run $run, resync $resync: $VIEWERS viewers"
        taskset -c "$LOAD_CPU" "$LOAD" --json "$dir/report.json" link-drop \
            --server "127.0.0.1:$BENCH_LOCKSTEP_PORT" --room "drop-$run" \
            --viewers "$VIEWERS" --ramp "$RAMP" --countdown-ms "$COUNTDOWN_MS" \
            --resync-samples "$resync" >"$dir/load.log" 2>&1 \
            || { tail -5 "$dir/load.log" >&2; die "link-drop failed"; }
        stop_pid "$SERVER_PID"
        python3 - "$dir/report.json" "$run" "$resync" "$VIEWERS" >>"$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
offsets = r.pop("displayed_offsets_ms", [])
out = {"run": int(sys.argv[2]), "resync_samples": int(sys.argv[3]), "viewers_asked": int(sys.argv[4]),
       "worst_offset_ms": max((abs(o) for o in offsets), default=None), **r}
print(json.dumps(out))
PY
    done
done
log "results: $RESULTS"
python3 bench/summary/link_drop.py "$RESULTS"
