#!/usr/bin/env bash
# A sell-out: BUYERS buyers (one order each, limit 1) for STOCK units, everyone ordering at
# the reveal. Compares Lockstep server binaries side by side (e.g. before and after a
# change), alternating them RUNS times, each on a fresh server pinned to core $SERVER_CPU,
# the generator pinned to core $LOAD_CPU. Reports per run: accepted, sold_out, timeouts,
# the order round trip (p50/p99/max) and when each buyer had its answer, counted from the
# reveal (p50/p99/max) — in a sell-out, how soon every buyer knew.
#
#   bench/sell_out.sh [BINARY...]        (default: target/release/lockstep)
# Env: BUYERS (19000: one process holds at most 20,000 open files), STOCK (100), RUNS (3),
#   COUNTDOWN_MS (3000), SERVER_CPU (0), LOAD_CPU (1), BENCH_LOCKSTEP_PORT (18080).
# Results: bench/results/sell-out-<date>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOAD=${LOAD:-target/release/lockstep-load}
LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
BUYERS=${BUYERS:-19000}
STOCK=${STOCK:-100}
RUNS=${RUNS:-3}
COUNTDOWN_MS=${COUNTDOWN_MS:-3000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18080}
BINARIES=("$@")
[ "${#BINARIES[@]}" -gt 0 ] || BINARIES=("$LOCKSTEP")

bench_init
mkdir -p bench/results
RESULTS="bench/results/sell-out-$(date +%Y%m%d-%H%M%S).jsonl"
ensure_binaries
warn_if_busy
ulimit -n "$(ulimit -Hn)"

for run in $(seq "$RUNS"); do
    for binary in "${BINARIES[@]}"; do
        dir="$BENCH_TMP_DIR/run-$run-$(basename "$binary")-$RANDOM"
        mkdir -p "$dir"
        LOCKSTEP=$binary start_lockstep "$BENCH_LOCKSTEP_PORT" "$dir/lockstep.db" "$dir/server.log"
        log "run $run, $binary: $BUYERS buyers for $STOCK units"
        taskset -c "$LOAD_CPU" "$LOAD" --json "$dir/report.json" flash-sale \
            --server "127.0.0.1:$BENCH_LOCKSTEP_PORT" --room "sell-out-$run" \
            --buyers "$BUYERS" --stock "$STOCK" --limit 1 --countdown-ms "$COUNTDOWN_MS" \
            >"$dir/load.log" 2>&1 || { tail -5 "$dir/load.log" >&2; die "flash-sale failed"; }
        # Orders refused as not open, closed or invalid are neither sold nor sold out.
        grep -m 3 "was refused" "$dir/load.log" >&2 || true
        stop_pid "$SERVER_PID"
        python3 - "$dir/report.json" "$run" "$binary" >>"$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"run": int(sys.argv[2]), "binary": sys.argv[3], **r}))
PY
    done
done
log "results: $RESULTS"
python3 - "$RESULTS" <<'PY'
import json, sys
print(f"{'run':>3} {'binary':<28} {'accepted':>8} {'sold out':>8} {'timeouts':>8} {'other':>6} "
      f"{'order p50/p99/max ms':>22} {'answered after reveal p50/p99/max ms':>38}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    o, a = r["order_ms"], r["buyer_answered_after_reveal_ms"]
    other = r["operations"] - r["accepted"] - r["sold_out"] - r["timed_out"] - r["limit_exceeded"]
    print(f"{r['run']:>3} {r['binary'][-28:]:<28} {r['accepted']:>8} {r['sold_out']:>8} {r['timed_out']:>8} {other:>6} "
          f"{o['p50']:>7.1f}/{o['p99']:.1f}/{o['max']:.1f} {a['p50']:>15.1f}/{a['p99']:.1f}/{a['max']:.1f}")
PY
