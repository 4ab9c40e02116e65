#!/usr/bin/env bash
# Runs the property-based fuzzers (tests/fuzz.rs: client frames, anchor commands,
# tokens, merchant bodies, SDP parsing; tests/fuzz_server.rs: HTTP bodies, paths and
# queries, WHIP/WHEP offers against a live room) over and over with fresh seeds until
# MINUTES have passed, CASES cases per property and round. A failure stops the loop; its
# minimal input is printed and saved by proptest under tests/*.proptest-regressions.
#
#   scripts/fuzz.sh [MINUTES]      (default 10; CASES=5000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
cases="${CASES:-5000}"
cargo build --release --locked --tests -p lockstep >/dev/null
deadline=$(( $(date +%s) + minutes * 60 ))
round=0
total=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    round=$((round + 1))
    if ! out=$(FUZZ_CASES="$cases" cargo test --release --locked -q \
        --test fuzz --test fuzz_server 2>&1); then
        echo "$out" | tail -80
        echo "round $round FAILED (see above)"
        exit 1
    fi
    # 6 properties in tests/fuzz.rs + 3 in tests/fuzz_server.rs (the SDP one posts two
    # offers per case).
    total=$((total + cases * 10))
    echo "round $round: ~$total inputs so far"
done
echo "fuzzed ~$total inputs in $minutes minutes without a failure"
