#!/usr/bin/env bash
# Measures server memory per idle viewer: starts a release server, joins N idle viewers
# with lockstep-load, and reports (RSS with viewers − RSS before) / N.
# Usage: scripts/measure-idle-memory.sh [VIEWERS]   (default 5000)
# LOCKSTEP=path/to/lockstep measures that server binary instead of building this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
N="${1:-5000}"
PORT="${PORT:-18181}"
if [ -n "${LOCKSTEP:-}" ]; then
    cargo build --release --locked -p lockstep-load >/dev/null
else
    cargo build --release --locked -p lockstep -p lockstep-load >/dev/null
    LOCKSTEP=./target/release/lockstep
fi
LOCKSTEP_SERVER__LOG=warn "$LOCKSTEP" serve --bind "127.0.0.1:$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.1; done
# Warm up with a small run first so the baseline includes the server's own start-up
# allocations (a room, its actors, the first connections' buffers).
./target/release/lockstep-load join-storm --server "127.0.0.1:$PORT" --room mem \
    --viewers 100 --hold-secs 1 >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
BEFORE=$(rss)
./target/release/lockstep-load join-storm --server "127.0.0.1:$PORT" --room mem \
    --viewers "$N" --rate 1000 --hold-secs 8 >/dev/null &
LOAD=$!
# Sample once every viewer has joined and settled (the generator holds them 8 s).
until [ "$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^lockstep_connections / {print $2}')" -ge "$((N + 1))" ]; do sleep 0.2; done
sleep 3
AFTER=$(rss)
wait $LOAD
echo "viewers=$N rss_before_kib=$BEFORE rss_after_kib=$AFTER per_viewer_kib=$(( (AFTER - BEFORE) / N ))"
