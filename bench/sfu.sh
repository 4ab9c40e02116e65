#!/usr/bin/env bash
# SFU capacity benchmark, side by side: Lockstep's SFU vs Debian's Janus 1.1.2 (Streaming
# plugin), each on ONE core. One publisher sends a synthetic ~1.5 Mbit/s VP8 + Opus
# stream (~190 video + 30 audio packets/s); N webrtc-rs subscribers receive it. For each
# subscriber count N, target and run, the script starts a fresh server pinned to core
# $SERVER_CPU, runs `lockstep-load subscribers` pinned to core $LOAD_CPU, samples the
# server's CPU time (utime+stime, /proc/PID/stat) and RSS, and records
#   CPU µs per forwarded packet = server CPU seconds in the measured window
#                                 / packets received by all subscribers in that window.
# Results: one JSON line per run in bench/results/sfu-<date>.jsonl, then a table, per
# target the largest N with loss < $LOSS_PCT % and p99 < $P99_MS ms (every subscriber
# connected, in every run), and the ratios Janus ÷ Lockstep of CPU per forwarded packet
# (bench/summarize.py sfu).
#
# Targets:
#   lockstep       `lockstep serve --config <scratch>/lockstep.toml` on 127.0.0.1:$BENCH_LOCKSTEP_PORT;
#                  WHIP in, WHEP out (the generator opens the room and goes live first).
#   janus          `janus -F <scratch copy of bench/janus>` with event_loops=$JANUS_EVENT_LOOPS
#                  (default 1: one shared event loop for all handles);
#   janus-threads  the same with Janus's default: one event loop thread per handle.
#   Janus runs in a network namespace ($JANUS_NS) whose veth carries $JANUS_ADDR/32:
#   Janus gathers no ICE candidates on a loopback interface. The generator sends plain
#   RTP to $JANUS_ADDR:5004 (VP8, pt 96) and :5006 (Opus, pt 111) and watches mountpoint 1
#   through http://$JANUS_ADDR:8088/janus.
#
# Run from anywhere, as root (it cd's to the repo root):
#   bench/sfu.sh
#   COUNTS="20" RUNS=1 DURATION=10 bench/sfu.sh                      # smoke run
#   TARGETS="lockstep janus janus-threads" COUNTS="100 200" bench/sfu.sh
#   bench/sfu.sh netns-up     # only build the namespace (and leave it) for manual checks
#   bench/sfu.sh netns-down   # remove it
# Env (defaults): TARGETS (lockstep janus), COUNTS (50 100 200 300 400), RUNS (2),
#   DURATION (20), WARMUP (3), BITRATE_BPS (1500000), CONCURRENCY (generator default),
#   SERVER_CPU (0), LOAD_CPU (1), BENCH_LOCKSTEP_PORT (18180), JANUS_ADDR (127.0.0.2),
#   JANUS_NS (lockstep-janus), JANUS_EVENT_LOOPS (1), JANUS_INSTALL (1: may apt-get
#   install janus), BUILD (1: cargo build --release first), LOCKSTEP / LOAD
#   (target/release/...), LOSS_PCT (1), P99_MS (50), SAMPLE_INTERVAL (0.5), FD_MARGIN
#   (500), BENCH_TMP (/var/tmp), BENCH_KEEP_LOGS (unset; set: copy each run's logs,
#   report and samples to bench/results/sfu-logs/<results name>/).
# Any exported LOCKSTEP_<SECTION>__<KEY> reaches the Lockstep server (it overrides the
# scratch config file) and is recorded with the results.
# While the namespace exists, $JANUS_ADDR in the root namespace is routed to it: nothing
# else on the machine may use that address then (`lockstep-load viewers --procs 2+` takes
# 127.0.0.2 and up as source addresses; do not run it alongside, or set JANUS_ADDR).
# Every process the script starts is killed, and the namespace and veth deleted, when it
# exits (trap). Takes roughly RUNS x targets x counts x (DURATION + 15 s).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
TARGETS=${TARGETS:-lockstep janus}
COUNTS=${COUNTS:-50 100 200 300 400}
RUNS=${RUNS:-2}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
BITRATE_BPS=${BITRATE_BPS:-1500000}
CONCURRENCY=${CONCURRENCY:-}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18180}
JANUS_ADDR=${JANUS_ADDR:-127.0.0.2}
JANUS_NS=${JANUS_NS:-lockstep-janus}
JANUS_EVENT_LOOPS=${JANUS_EVENT_LOOPS:-1}
JANUS_HTTP_PORT=8088 # inside the namespace; must match bench/janus/janus.transport.http.jcfg
JANUS_MOUNTPOINT=1   # must match bench/janus/janus.plugin.streaming.jcfg
LOSS_PCT=${LOSS_PCT:-1}
P99_MS=${P99_MS:-50}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-0.5}
FD_MARGIN=${FD_MARGIN:-500}
ROOM=bench-sfu
# veth names (at most 15 characters): root side, namespace side.
VETH_HOST=${VETH_HOST:-lsjanus0}
VETH_NS=${VETH_NS:-lsjanus1}
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- network namespace
#
# Janus (libnice) skips loopback interfaces when gathering ICE candidates, so with only
# `lo` it offers no candidate at all. It runs in its own namespace instead, where the
# only IPv4 address is $JANUS_ADDR/32 on one end of a veth pair; the other end stays in
# the root namespace, where the subscribers' ICE (bound to 127.0.0.1) and the RTP sender
# live. What that takes:
#   - root namespace: a /32 route for $JANUS_ADDR in the `local` table (the table the
#     kernel consults first), so it wins over `local 127.0.0.0/8 dev lo`, with
#     `src 127.0.0.1` (else unbound sockets, curl and the HTTP client included, pick the
#     machine's other address as source and the replies have no way back);
#   - namespace: `lo` left down and empty (bringing it up would add 127.0.0.0/8 as local
#     there and swallow the replies to 127.0.0.1), and a route 127.0.0.1/32 via the veth;
#   - on both veth ends: route_localnet=1 (127/8 may be routed and ARPed on a non-loopback
#     device; without it such packets are dropped as martians), accept_local=1,
#     rp_filter=0.

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$JANUS_NS"; }

netns_down() {
    if ns_exists; then
        local pids
        pids=$(ip netns pids "$JANUS_NS" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            log "namespace $JANUS_NS still has processes ($pids); killing them"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.2
        fi
        ip netns del "$JANUS_NS" 2>/dev/null || log "warning: could not delete namespace $JANUS_NS"
    fi
    # Deleting the namespace destroys the veth pair; remove the root end if it survived.
    ip link del "$VETH_HOST" 2>/dev/null || true
    ip route del "$JANUS_ADDR/32" table local dev "$VETH_HOST" 2>/dev/null || true
}

netns_up() {
    [ "$(id -u)" = 0 ] || die "the Janus namespace needs root (ip netns, veth, sysctl)"
    case $JANUS_ADDR in 127.*) ;; *) die "JANUS_ADDR must be in 127.0.0.0/8 (loopback only), got $JANUS_ADDR" ;; esac
    [ "$JANUS_ADDR" != 127.0.0.1 ] || die "JANUS_ADDR cannot be 127.0.0.1 (the subscribers' address)"
    if ns_exists; then
        [ -z "$(ip netns pids "$JANUS_NS" 2>/dev/null || true)" ] ||
            die "namespace $JANUS_NS exists and has processes (another benchmark?); remove it with: bench/sfu.sh netns-down"
        log "removing a stale namespace $JANUS_NS"
        netns_down
    fi
    ip link del "$VETH_HOST" 2>/dev/null || true
    if [ -n "$(ip route show table local exact "$JANUS_ADDR/32" 2>/dev/null)" ]; then
        die "$JANUS_ADDR/32 already has a route in the local table: $(ip route show table local exact "$JANUS_ADDR/32")"
    fi
    if [ -n "$(ss -Hantu src "$JANUS_ADDR" 2>/dev/null)" ]; then
        log "warning: sockets in the root namespace use $JANUS_ADDR; they lose it while the benchmark runs"
    fi
    log "network namespace $JANUS_NS: veth $VETH_HOST <-> $VETH_NS ($JANUS_ADDR/32 in the namespace)"
    ip netns add "$JANUS_NS"
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS" netns "$JANUS_NS"
    local k
    for k in route_localnet=1 accept_local=1 rp_filter=0; do
        sysctl -qw "net.ipv4.conf.$VETH_HOST.$k"
        ip netns exec "$JANUS_NS" sysctl -qw "net.ipv4.conf.all.$k"
        ip netns exec "$JANUS_NS" sysctl -qw "net.ipv4.conf.$VETH_NS.$k"
    done
    ip -n "$JANUS_NS" addr add "$JANUS_ADDR/32" dev "$VETH_NS"
    ip -n "$JANUS_NS" link set "$VETH_NS" up
    ip link set "$VETH_HOST" up
    ip route add "$JANUS_ADDR/32" dev "$VETH_HOST" table local src 127.0.0.1
    ip -n "$JANUS_NS" route add 127.0.0.1/32 dev "$VETH_NS" src "$JANUS_ADDR"
    # Check both directions before any server starts: UDP from 127.0.0.1 to $JANUS_ADDR
    # and back (the media path; TCP is checked by Janus's HTTP API answering).
    ip route get "$JANUS_ADDR" | grep -q "dev $VETH_HOST" || die "route to $JANUS_ADDR does not use $VETH_HOST: $(ip route get "$JANUS_ADDR")"
    local port=$((20000 + RANDOM % 20000))
    ip netns exec "$JANUS_NS" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
data, peer = s.recvfrom(64)
s.sendto(data, peer)' "$JANUS_ADDR" "$port" &
    local echo_pid=$!
    sleep 0.3
    if ! python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(3)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
assert s.recvfrom(64)[0] == b"ping"' "$JANUS_ADDR" "$port"; then
        kill "$echo_pid" 2>/dev/null || true
        wait "$echo_pid" 2>/dev/null || true
        die "no UDP round trip 127.0.0.1 <-> $JANUS_ADDR through the veth"
    fi
    wait "$echo_pid" 2>/dev/null || true
}

case ${1:-} in
netns-up)
    netns_up
    log "namespace up; run Janus with: ip netns exec $JANUS_NS janus -F bench/janus"
    exit 0
    ;;
netns-down)
    netns_down
    exit 0
    ;;
"") ;;
*) die "unknown argument $1 (netns-up, netns-down, or none to run the benchmark)" ;;
esac

bench_init
mkdir -p bench/results
RESULTS="bench/results/sfu-$(date +%Y%m%d-%H%M%S).jsonl"

# ---------------------------------------------------------------- preflight
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server and generator pinned apart); nproc=$(nproc)"
for c in taskset python3 curl ip ss; do command -v "$c" >/dev/null || die "$c is required"; done

want_janus=0
for t in $TARGETS; do
    case $t in
    lockstep) ;;
    janus | janus-threads) want_janus=1 ;;
    *) die "unknown target $t (lockstep, janus, janus-threads)" ;;
    esac
done

JANUS_LIBDIR=""
if [ "$want_janus" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "the Janus targets need root (network namespace)"
    if ! command -v janus >/dev/null; then
        [ "${JANUS_INSTALL:-1}" = 1 ] || die "janus is not installed (JANUS_INSTALL=0 forbids apt-get)"
        log "janus not found: apt-get update && apt-get install -y janus"
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y janus; } >&2 ||
            die "apt-get install janus failed"
    fi
    # Where the Debian package put the plugins (multiarch dir): the committed config
    # names amd64's, the scratch copy gets the real one.
    so=$(dpkg -L janus 2>/dev/null | grep '/plugins/libjanus_streaming\.so$' | head -1 || true)
    [ -n "$so" ] || so=$(find /usr/lib /usr/local/lib /opt -name libjanus_streaming.so -path '*/plugins/*' 2>/dev/null | head -1 || true)
    [ -n "$so" ] || die "cannot find Janus's Streaming plugin (libjanus_streaming.so)"
    JANUS_LIBDIR=$(dirname "$(dirname "$so")")
    # (`janus --version` exits 1 after printing the version.)
    JANUS_VERSION="janus $({ janus --version 2>/dev/null || true; } | awk '/^Janus version/ {print $NF}' | tr -d '()')"
    log "$JANUS_VERSION, plugins from $JANUS_LIBDIR"
fi

if [ "${BUILD:-1}" = 1 ]; then
    # Both packages named: the workspace's default members do not include the generator.
    log "cargo build --release -p lockstep -p lockstep-load --bin lockstep --bin lockstep-load"
    cargo build --release -p lockstep -p lockstep-load --bin lockstep --bin lockstep-load >&2
fi
[ -x "$LOCKSTEP" ] || die "no Lockstep binary at $LOCKSTEP"
[ -x "$LOAD" ] || die "no load generator at $LOAD"
"$LOAD" subscribers --help >/dev/null 2>&1 || die "$LOAD has no \`subscribers\` scenario"
warn_if_busy

# File descriptors: each subscriber holds a UDP socket in the server and one in the
# generator (plus, for Janus, an HTTP connection on both sides).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
CAP=$(((NOFILE - FD_MARGIN) / 3))
log "ulimit -Hn = $(ulimit -Hn), ulimit -n = $NOFILE -> subscriber counts capped at $CAP"
counts=()
for n in $COUNTS; do
    if [ "$n" -gt "$CAP" ]; then
        log "N=$n exceeds the fd limit; using N=$CAP instead"
        n=$CAP
    fi
    case " ${counts[*]:-} " in *" $n "*) ;; *) counts+=("$n") ;; esac
done

# Generator flags that are optional (passed only when --help lists them).
LOAD_OPT=()
load_has_flag subscribers warmup && LOAD_OPT+=(--warmup "$WARMUP")
if [ -n "$CONCURRENCY" ]; then
    load_has_flag subscribers concurrency || die "the generator has no --concurrency"
    LOAD_OPT+=(--concurrency "$CONCURRENCY")
fi
if [ -n "${LOCKSTEP_AUTH__SECRET:-}" ]; then
    LOAD_OPT_LOCKSTEP=(--secret "$LOCKSTEP_AUTH__SECRET")
else
    LOAD_OPT_LOCKSTEP=()
fi

if [ "$want_janus" = 1 ]; then
    on_cleanup netns_down
    netns_up
fi

# ---------------------------------------------------------------- servers

# Wait until Janus's HTTP API answers `info` from the root namespace (max 30 s).
wait_janus() {
    local i
    for i in $(seq 300); do
        is_running "$SERVER_PID" || die "janus exited during startup (see $1)"
        if curl -s -m 1 "http://$JANUS_ADDR:$JANUS_HTTP_PORT/janus/info" 2>/dev/null | grep -q '"server_info"'; then
            return 0
        fi
        sleep 0.1
    done
    die "janus did not answer on http://$JANUS_ADDR:$JANUS_HTTP_PORT/janus/info within 30 s (see $1)"
}

# Starts a fresh server for TARGET pinned to SERVER_CPU; sets SERVER_PID, SERVER_VERSION
# and LOAD_TARGET_ARGS (target-specific generator flags).
start_server() {
    local target=$1 run_dir=$2
    case $target in
    lockstep)
        require_free_port "$BENCH_LOCKSTEP_PORT" BENCH_LOCKSTEP_PORT
        cat >"$run_dir/lockstep.toml" <<EOF
# Written by bench/sfu.sh for one run; exported LOCKSTEP_* variables override it.
[server]
bind = "127.0.0.1:$BENCH_LOCKSTEP_PORT"
workers = 1
log = "warn"

[rooms]
arbiters = 1

[store]
path = "$run_dir/lockstep.db"

[media]
enabled = true
udp_bind = "127.0.0.1"
max_subscribers_per_room = 100000
EOF
        taskset -c "$SERVER_CPU" "$LOCKSTEP" serve --config "$run_dir/lockstep.toml" \
            --bind "127.0.0.1:$BENCH_LOCKSTEP_PORT" >"$run_dir/server.log" 2>&1 &
        SERVER_PID=$!
        track "$SERVER_PID"
        wait_listening "$SERVER_PID" "$BENCH_LOCKSTEP_PORT" lockstep
        local i ok=0
        for i in $(seq 100); do
            if curl -sf "http://127.0.0.1:$BENCH_LOCKSTEP_PORT/healthz" >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.1
        done
        [ "$ok" = 1 ] || die "lockstep on 127.0.0.1:$BENCH_LOCKSTEP_PORT did not answer /healthz"
        SERVER_VERSION="lockstep $("$LOCKSTEP" --version 2>/dev/null | awk '{print $NF}' || true)"
        LOAD_TARGET_ARGS=(--target lockstep --server "127.0.0.1:$BENCH_LOCKSTEP_PORT" --room "$ROOM"
            "${LOAD_OPT_LOCKSTEP[@]}")
        ;;
    janus | janus-threads)
        local loops=$JANUS_EVENT_LOOPS conf="$run_dir/janus"
        [ "$target" = janus-threads ] && loops=0
        mkdir -p "$conf"
        cp bench/janus/janus.jcfg bench/janus/janus.transport.http.jcfg \
            bench/janus/janus.plugin.streaming.jcfg "$conf/"
        sed -i -e "s#/usr/lib/x86_64-linux-gnu/janus#$JANUS_LIBDIR#g" "$conf/janus.jcfg"
        if [ "$loops" -gt 0 ]; then
            sed -i -e "s/^\([[:space:]]*\)event_loops = .*/\1event_loops = $loops/" "$conf/janus.jcfg"
        else
            sed -i -e '/^[[:space:]]*event_loops = /d' "$conf/janus.jcfg"
        fi
        sed -i -e "s/127\.0\.0\.2/$JANUS_ADDR/g" "$conf"/*.jcfg
        # `ip netns exec` and `taskset` both exec: $! is Janus's own PID.
        ip netns exec "$JANUS_NS" taskset -c "$SERVER_CPU" janus -F "$conf" >"$run_dir/server.log" 2>&1 &
        SERVER_PID=$!
        track "$SERVER_PID"
        wait_janus "$run_dir/server.log"
        [ "$(cat "/proc/$SERVER_PID/comm" 2>/dev/null)" = janus ] ||
            die "PID $SERVER_PID is $(cat "/proc/$SERVER_PID/comm" 2>/dev/null), not janus"
        # Janus reports the loops it made (0: a thread per handle); check it took the setting.
        local seen
        seen=$(curl -s -m 2 "http://$JANUS_ADDR:$JANUS_HTTP_PORT/janus/info" |
            python3 -c 'import json, sys; print(json.load(sys.stdin).get("static-event-loops", "?"))' 2>/dev/null || echo "?")
        [ "$seen" = "$loops" ] || die "janus reports static-event-loops=$seen, expected $loops"
        if [ "$loops" -gt 0 ]; then
            SERVER_VERSION="$JANUS_VERSION event_loops=$loops"
        else
            SERVER_VERSION="$JANUS_VERSION thread-per-handle"
        fi
        LOAD_TARGET_ARGS=(--target janus --janus-url "http://$JANUS_ADDR:$JANUS_HTTP_PORT/janus"
            --janus-mountpoint "$JANUS_MOUNTPOINT"
            --janus-rtp-video "$JANUS_ADDR:5004" --janus-rtp-audio "$JANUS_ADDR:5006")
        ;;
    esac
}

# ---------------------------------------------------------------- runs
targets=($TARGETS)
log "results -> $RESULTS"
total=$((${#targets[@]} * ${#counts[@]} * RUNS))
i=0
for n in "${counts[@]}"; do
    for target in "${targets[@]}"; do
        for run in $(seq 1 "$RUNS"); do
            i=$((i + 1))
            run_dir="$BENCH_TMP_DIR/$target-$n-$run"
            mkdir -p "$run_dir"
            log "[$i/$total] $target N=$n run $run"
            start_server "$target" "$run_dir"
            start_sampler "$run_dir" "$SAMPLE_INTERVAL"
            # Bounded: subscriber setup at any sane rate, warm-up, measurement, teardown.
            run_measured $((WARMUP + DURATION + 120 + n / 2)) "$run_dir" -- "$LOAD" subscribers \
                "${LOAD_TARGET_ARGS[@]}" --subscribers "$n" --duration "$DURATION" \
                --bitrate-bps "$BITRATE_BPS" --bind 127.0.0.1 "${LOAD_OPT[@]}" \
                --json "$run_dir/report.json"
            if [ "$load_rc" -eq 0 ] && grep -q 'failed' "$run_dir/load.log"; then
                log "generator log mentions failures (first 3):"
                grep -m 3 'failed' "$run_dir/load.log" >&2 || true
            fi
            case $target in
            janus) loops_used=$JANUS_EVENT_LOOPS ;;
            janus-threads) loops_used=0 ;;
            *) loops_used=null ;;
            esac
            settings=$(printf '{"duration":%s,"warmup":%s,"bitrate_bps":%s,"concurrency":%s,"server_cpu":%s,"load_cpu":%s,"nofile":%s,"janus_addr":"%s","janus_event_loops":%s}' \
                "$DURATION" "$WARMUP" "$BITRATE_BPS" "${CONCURRENCY:-null}" "$SERVER_CPU" "$LOAD_CPU" \
                "$NOFILE" "$JANUS_ADDR" "$loops_used")
            python3 bench/summarize.py record-sfu --target "$target" --subscribers "$n" --run "$run" \
                --report "$run_dir/report.json" --samples "$run_dir/samples.jsonl" \
                --t-start "$t_start" --t-end "$t_end" --clk-tck "$CLK_TCK" \
                --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU" --load-rc "$load_rc" \
                --server-alive "$alive" --server-version "$SERVER_VERSION" \
                --settings "$settings" >>"$RESULTS"
            if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
                mkdir -p "bench/results/sfu-logs/$(basename "$RESULTS" .jsonl)"
                cp -r "$run_dir" "bench/results/sfu-logs/$(basename "$RESULTS" .jsonl)/"
            fi
            stop_pid "$SERVER_PID"
            sleep 1 # let the kernel retire the closed sockets
        done
    done
done

echo
python3 bench/summarize.py sfu --loss-pct "$LOSS_PCT" --p99-ms "$P99_MS" "$RESULTS"
echo
echo "raw results: $RESULTS"
