#!/usr/bin/env bash
# Measures server memory per idle viewer: starts a release server, joins N idle viewers
# with lockstep-load, and reports (RSS with viewers − RSS before) / N.
# Usage: scripts/measure-idle-memory.sh [VIEWERS]   (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
PORT="${PORT:-18181}"
cargo build --release --locked -p lockstep -p lockstep-load >/dev/null
LOCKSTEP_SERVER__LOG=warn ./target/release/lockstep serve --bind "127.0.0.1:$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.1; done
TOKEN=$(./target/release/lockstep token --role anchor --room mem)
# Open the room with one viewer first so the baseline includes the room itself.
./target/release/lockstep-load hold --server "127.0.0.1:$PORT" --room mem --anchor-token "$TOKEN" --viewers 1 --hold-secs 1 >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
BEFORE=$(rss)
./target/release/lockstep-load hold --server "127.0.0.1:$PORT" --room mem --anchor-token "$TOKEN" \
    --viewers "$N" --rate 1000 --hold-secs 6 &
LOAD=$!
# Sample once every viewer has joined and settled (the generator holds them 6 s).
until [ "$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^lockstep_connections / {print $2}')" -ge "$((N + 1))" ]; do sleep 0.2; done
sleep 3
AFTER=$(rss)
wait $LOAD
echo "viewers=$N rss_before_kib=$BEFORE rss_after_kib=$AFTER per_viewer_kib=$(( (AFTER - BEFORE) / N ))"
