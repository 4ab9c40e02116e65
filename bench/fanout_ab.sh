#!/usr/bin/env bash
# A/B of two Lockstep builds on the fan-out benchmark, in one sitting: runs
# bench/fanout.sh (Lockstep only) with build A, then build B, then A, then B, … for
# ROUNDS rounds, so both builds see the same machine load; labels each result row with
# its build and prints the means per build and receiver count and B's ratio to A
# (bench/summarize.py fanout-ab). For a change that must cost nothing, A is the build
# before it and B the build after.
#
#   bench/fanout_ab.sh /tmp/lockstep-before target/release/lockstep
# Env (defaults): COUNTS (5000 15000), ROUNDS (2), DURATION (15), and any of
#   bench/fanout.sh's. Results: bench/results/fanout-ab-<date>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 BUILD_A BUILD_B" >&2; exit 2; }
A=$1
B=$2
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
export COUNTS=${COUNTS:-5000 15000} DURATION=${DURATION:-15} RUNS=1 TARGETS=lockstep
ROUNDS=${ROUNDS:-2}
mkdir -p bench/results
OUT="bench/results/fanout-ab-$(date +%Y%m%d-%H%M%S).jsonl"
for round in $(seq 1 "$ROUNDS"); do
    for label in A B; do
        bin=$A
        [ "$label" = B ] && bin=$B
        echo "== round $round, build $label ($bin)" >&2
        log=$(mktemp)
        LOCKSTEP=$bin bench/fanout.sh | tee "$log" >&2
        results=$(sed -n 's/^raw results: //p' "$log")
        rm -f "$log"
        [ -n "$results" ] || { echo "fanout.sh printed no results file" >&2; exit 1; }
        python3 - "$results" "$label" "$round" >>"$OUT" <<'PY'
import json, sys
path, label, round_ = sys.argv[1:]
for line in open(path):
    if line.strip():
        row = json.loads(line)
        row["build"], row["run"] = label, int(round_)
        print(json.dumps(row))
PY
        rm -f "$results"
    done
done
echo
python3 bench/summarize.py fanout-ab "$OUT"
echo
echo "A = $A"
echo "B = $B"
echo "raw results: $OUT"
