#!/usr/bin/env bash
# The dashboard with a long room's data: seeds a synthetic three-hour room run (one point
# a second, 12 product links) into a fresh archive, starts a release server on it, and
# opens /rooms/<room>/dashboard in headless Chromium RUNS times (bench/dashboard/measure.mjs):
# time to first chart, page weight, and the analytics response's size and time.
#
#   bench/dashboard.sh                  # HOURS=3 RUNS=5
# Env: HOURS (3), RUNS (5), PORT (18190), BUILD (1), SERVER_CPU (0), LOAD_CPU (1).
# Needs Chromium and tests/browser's npm packages (./scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${HOURS:-3}
RUNS=${RUNS:-5}
PORT=${PORT:-18190}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROOM=bench-dashboard
[ "${BUILD:-1}" = 1 ] && cargo build --release --locked -q --bin lockstep
scratch=$(mktemp -d "${BENCH_TMP:-/var/tmp}/lockstep-dashboard.XXXXXX")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$scratch"; }
trap cleanup EXIT
start() {
    LOCKSTEP_STORE__PATH="$scratch/lockstep.db" LOCKSTEP_ARCHIVE__PATH="$scratch/archive.db" \
        LOCKSTEP_MEDIA__RECORDING_DIR="$scratch/recordings" LOCKSTEP_SERVER__LOG=warn \
        taskset -c "$SERVER_CPU" target/release/lockstep serve --bind "127.0.0.1:$PORT" >"$scratch/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
    echo "the server did not start" >&2; cat "$scratch/server.log" >&2; exit 1
}
# The server creates the archive's tables; the run is seeded while it is stopped.
start; kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
replay=$(python3 bench/dashboard/seed_archive.py "$scratch/archive.db" "$ROOM" "$HOURS")
start
token=$(target/release/lockstep token --role anchor --room "$ROOM")
echo "replay $replay: ${HOURS} h of one-second points; $RUNS page loads"
taskset -c "$LOAD_CPU" node bench/dashboard/measure.mjs \
    "http://127.0.0.1:$PORT/rooms/$ROOM/dashboard#token=$token&replay=$replay" "$RUNS"
