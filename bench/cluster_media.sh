#!/usr/bin/env bash
# Video across nodes: the SFU benchmark's workload (one WHIP publisher sending a
# synthetic ~1.5 Mbit/s VP8 + Opus stream, N webrtc-rs WHEP subscribers from
# `lockstep-load subscribers`, each packet carrying its send time) in three set-ups:
#   single   one `lockstep serve`, every subscriber on it
#   cluster  $NODES (3) `lockstep serve` nodes sharing one fresh redis-server; the room
#            and the publisher on the first node, subscriber i on node i mod 3, so each
#            edge pulls the stream once and serves its own third
#   edges    the same cluster, every subscriber on an edge (`--edges-only`): every
#            packet a subscriber gets crossed the hop
#   edges-nocache  the same without the relays' keyframe cache
#            (media.keyframe_cache_packets = 0): a new viewer waits for a keyframe asked
#            of the publisher, for the time to first frame with and without it
# Every Lockstep process and Redis run on core $SERVER_CPU, the generator on $LOAD_CPU
# (this machine has 2 cores: the cluster's nodes share one, so this measures what the
# hop costs, not how far three machines go). Cases interleave (single cluster edges,
# ...), $RUNS (2) times, fresh servers each run. For each run: loss, forwarding latency
# (send to receive) p50/p99, time to first frame (WHEP request to the first video
# frame) p50/p99, per node the CPU seconds in the measured window (/proc/PID/stat)
# over the packets it forwarded in it (to its subscribers, plus to edges' uplinks on the
# owner), from its /metrics, and over the join storm (from the servers' start to the
# window) the keyframe requests each node sent upstream (an edge to the owner, the owner
# to the publisher) and the viewers started from a cached keyframe group.
#
# Results: one JSON line per run in bench/results/cluster-media-<date>.jsonl, then a
# table and the ratios cluster / single (bench/summary/cluster_media.py).
#
#   bench/cluster_media.sh
#   N=300 RUNS=3 DURATION=30 bench/cluster_media.sh
#   bench/cluster_media.sh summary bench/results/cluster-media-*.jsonl
# Env (defaults): CASES (single cluster edges), N (200), RUNS (2), DURATION (20), WARMUP
#   (3), NODES (3), BASE_PORT (18140: nodes on 18140..), REDIS_PORT (16440), SERVER_CPU
#   (0), LOAD_CPU (1), BENCH_TMP (/var/tmp), LOCKSTEP / LOAD (target/release/...),
#   BENCH_KEEP_LOGS (unset; set: copy each run's logs and report to
#   bench/results/cluster-media-logs/<results name>/).
# Every process the script starts is killed when it exits (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

if [ "${1:-}" = summary ]; then
    shift
    exec python3 bench/summary/cluster_media.py "$@"
fi

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
CASES=${CASES:-single cluster edges edges-nocache}
N=${N:-200}
RUNS=${RUNS:-2}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
NODES=${NODES:-3}
BASE_PORT=${BASE_PORT:-18140}
REDIS_PORT=${REDIS_PORT:-16440}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROOM=bench-media

bench_init
ensure_binaries
load_has_flag subscribers edges-only || die "$LOAD has no \`subscribers --edges-only\`"
warn_if_busy
RESULTS="bench/results/cluster-media-$(date +%Y%m%d-%H%M%S).jsonl"
CLK_TCK=$(getconf CLK_TCK)

# Starts the run's servers; sets NODE_PIDS and NODE_PORTS.
start_servers() {
    local case=$1 dir=$2 count=1 redis_env=() cache=600
    NODE_PIDS=()
    NODE_PORTS=()
    if [ "$case" != single ]; then
        count=$NODES
        mkdir -p "$dir/redis"
        start_redis "$REDIS_PORT" "$dir/redis" --appendonly yes --appendfsync always --save ""
        NODE_PIDS+=("$SERVER_PID")
        NODE_PORTS+=("redis")
        redis_env=(LOCKSTEP_CLUSTER__REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
    fi
    [ "$case" = edges-nocache ] && cache=0
    local i port
    for i in $(seq 0 $((count - 1))); do
        port=$((BASE_PORT + i))
        start_lockstep "$port" "$dir/node$i.db" "$dir/node$i.log" \
            "${redis_env[@]}" LOCKSTEP_CLUSTER__NODE_ID="node$i" \
            LOCKSTEP_MEDIA__MAX_SUBSCRIBERS_PER_ROOM=100000 \
            LOCKSTEP_MEDIA__MAX_SUBSCRIBERS_PER_IP=100000 \
            LOCKSTEP_MEDIA__MAX_SUBSCRIBERS_TOTAL=100000 \
            LOCKSTEP_MEDIA__RECORD=false \
            LOCKSTEP_MEDIA__KEYFRAME_CACHE_PACKETS="$cache"
        NODE_PIDS+=("$SERVER_PID")
        NODE_PORTS+=("$port")
    done
}

# `name ticks` of every process, then `port metric value` of every node's media counters.
snapshot() {
    local out=$1 i
    : >"$out"
    for i in "${!NODE_PIDS[@]}"; do
        awk -v n="${NODE_PORTS[$i]}" '{ sub(/.*\) /, ""); split($0, f, " "); print "ticks", n, f[12] + f[13] }' \
            "/proc/${NODE_PIDS[$i]}/stat" >>"$out"
        [ "${NODE_PORTS[$i]}" = redis ] && continue
        curl -s "http://127.0.0.1:${NODE_PORTS[$i]}/metrics" |
            awk -v n="${NODE_PORTS[$i]}" '/^lockstep_media_(packets_out_total|uplink_packets_total|subscribers|pulls|uplinks|keyframe_requests_total|keyframe_cache_hits_total) / { print "metric", n, $1, $2 }' >>"$out"
    done
    date +%s.%N | awk '{ print "time", "-", $1 }' >>"$out"
}

log "results -> $RESULTS"
for run in $(seq 1 "$RUNS"); do
    for case in $CASES; do
        dir="$BENCH_TMP_DIR/$case-$run"
        mkdir -p "$dir"
        log "$case run $run: N=$N"
        start_servers "$case" "$dir"
        servers=""
        for port in "${NODE_PORTS[@]}"; do
            [ "$port" = redis ] || servers="${servers:+$servers,}127.0.0.1:$port"
        done
        extra=()
        case $case in edges*) extra=(--edges-only) ;; esac
        # The window opens after every subscriber connected and the warm-up: snapshot
        # the processes when the generator says so (it logs the window's start), and at
        # its end.
        snapshot "$dir/start.txt"
        set +e
        timeout -k 10 $((WARMUP + DURATION + 180 + N / 2)) taskset -c "$LOAD_CPU" "$LOAD" subscribers \
            --target lockstep --servers "$servers" --room "$ROOM" --subscribers "$N" \
            --duration "$DURATION" --warmup "$WARMUP" --bind 127.0.0.1 "${extra[@]}" \
            --json "$dir/report.json" >"$dir/load.log" 2>&1 &
        load_pid=$!
        track "$load_pid"
        # Subscribers connect, then the warm-up: wait until every one is admitted.
        want=$N
        for _ in $(seq $((N + 120))); do
            have=0
            for port in "${NODE_PORTS[@]}"; do
                [ "$port" = redis ] && continue
                have=$((have + $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^lockstep_media_subscribers / { print int($2) }')))
            done
            [ "$have" -ge "$want" ] && break
            is_running "$load_pid" || break
            sleep 1
        done
        sleep "$WARMUP"
        snapshot "$dir/before.txt"
        sleep "$DURATION"
        snapshot "$dir/after.txt"
        wait "$load_pid"
        load_rc=$?
        set -e
        python3 bench/summary/cluster_media.py record --case "$case" --run "$run" --subscribers "$N" \
            --report "$dir/report.json" --start "$dir/start.txt" --before "$dir/before.txt" --after "$dir/after.txt" \
            --clk-tck "$CLK_TCK" --load-rc "$load_rc" --duration "$DURATION" >>"$RESULTS"
        if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
            mkdir -p "bench/results/cluster-media-logs/$(basename "$RESULTS" .jsonl)"
            cp -r "$dir" "bench/results/cluster-media-logs/$(basename "$RESULTS" .jsonl)/"
        fi
        for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
        sleep 1
    done
done
echo
python3 bench/summary/cluster_media.py "$RESULTS"
echo
echo "raw results: $RESULTS"
