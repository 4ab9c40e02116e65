#!/usr/bin/env bash
# Recording's cost to forwarding, measured as a stranger would: the SFU benchmark
# (bench/sfu.sh, one publisher, N webrtc-rs WHEP subscribers, server and generator
# pinned to separate cores, a fresh server per run) with recording off and on,
# alternating off/on in each round so both see the same machine. Reports server CPU
# per forwarded packet, loss and p99 for both, the ratio on ÷ off, and the disk rate of
# the recordings the "on" runs wrote (bytes ÷ recorded duration, from each recording's
# description).
#
#   bench/recording.sh                       # N=200, 2 rounds of 20 s
#   N=400 ROUNDS=3 DURATION=30 bench/recording.sh
#
# Env: N (200), ROUNDS (2), DURATION (20), BUILD (1: build release binaries first), and
# anything bench/sfu.sh takes (SERVER_CPU, LOAD_CPU, BITRATE_BPS, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
BUILD=${BUILD:-1}
RECORDINGS=$(mktemp -d "${BENCH_TMP:-/var/tmp}/lockstep-recordings.XXXXXX")
trap 'rm -rf "$RECORDINGS"' EXIT

runs=()
for round in $(seq "$ROUNDS"); do
    for record in false true; do
        log=$(mktemp)
        LOCKSTEP_MEDIA__RECORD=$record \
            LOCKSTEP_MEDIA__RECORDING_DIR="$RECORDINGS/round$round" \
            LOCKSTEP_MEDIA__RECORDING_MIN_FREE_MB=64 \
            TARGETS=lockstep COUNTS="$N" RUNS=1 DURATION="$DURATION" BUILD="$BUILD" \
            bench/sfu.sh 2>&1 | tee "$log" >&2
        results=$(awk '/^raw results:/ {print $NF}' "$log")
        rm -f "$log"
        [ -n "$results" ] || { echo "bench/sfu.sh printed no results file" >&2; exit 1; }
        if [ "$record" = true ]; then runs+=("on:$results"); else runs+=("off:$results"); fi
        BUILD=0
    done
done
echo
python3 bench/summarize.py recording --recordings "$RECORDINGS" "${runs[@]}"
