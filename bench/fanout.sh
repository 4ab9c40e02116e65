#!/usr/bin/env bash
# Fan-out benchmark, side by side: Lockstep vs nats-server (WebSocket listener) vs a
# Socket.IO 4 server, each on ONE core. For each target, receiver count N and run, it
# starts a fresh server pinned to core $SERVER_CPU (taskset), runs
# `lockstep-load viewers` pinned to core $LOAD_CPU (one publisher, N receivers,
# $RATE msg/s of $SIZE bytes for $DURATION s after $WARMUP s), and records the
# generator's JSON report plus the server's CPU seconds (utime+stime from /proc/PID/stat)
# and memory per connection ((VmRSS with all viewers connected - VmRSS before) / N).
# Results: one JSON line per run in bench/results/fanout-<date>.jsonl, then a table and,
# per target, the largest N with p99 < 100 ms and every message delivered in every run,
# and Lockstep's ratios to each peer (bench/summarize.py).
#
# Run from anywhere (it cd's to the repo root; builds the release binaries if missing):
#   bench/fanout.sh
#   TARGETS="lockstep nats" COUNTS="1000 5000" RUNS=1 DURATION=10 bench/fanout.sh
# Env (defaults): TARGETS (lockstep nats socketio), COUNTS (1000 3000 5000 10000 15000
#   19000), RUNS (2), RATE (10), SIZE (200), DURATION (20), WARMUP (3), SERVER_CPU (0),
#   LOAD_CPU (1), BENCH_LOCKSTEP_PORT (18080), NATS_PORT (14222), NATS_WS_PORT (18443),
#   SOCKETIO_PORT (13000), LOCKSTEP / LOAD (target/release/...), NATS_SERVER (path),
#   NATS_INSTALL (1: may apt-get/pip install nats-server), NODE_INSTALL (1: may apt-get
#   install nodejs npm when node is missing), FD_MARGIN (500),
#   BENCH_TMP (/var/tmp), P99_MS (100).
# Any exported LOCKSTEP_<SECTION>__<KEY> (e.g. LOCKSTEP_ROOM__TICK_MS=20) reaches the
# Lockstep server (and is recorded with the results); the script sets the log level, store
# path, workers and arbiters itself.
# Every address is 127.0.0.1; each run is bounded by a timeout; every process the script
# starts is killed when it exits (trap). Takes roughly RUNS x targets x counts x 40 s.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
TARGETS=${TARGETS:-lockstep nats socketio}
COUNTS=${COUNTS:-1000 3000 5000 10000 15000 19000}
RUNS=${RUNS:-2}
RATE=${RATE:-10}
SIZE=${SIZE:-200}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BENCH_LOCKSTEP_PORT=${BENCH_LOCKSTEP_PORT:-18080}
NATS_PORT=${NATS_PORT:-14222}
NATS_WS_PORT=${NATS_WS_PORT:-18443}
SOCKETIO_PORT=${SOCKETIO_PORT:-13000}
FD_MARGIN=${FD_MARGIN:-500}
P99_MS=${P99_MS:-100}
ROOM=bench-fanout
CLK_TCK=$(getconf CLK_TCK)

bench_init
mkdir -p bench/results
RESULTS="bench/results/fanout-$(date +%Y%m%d-%H%M%S).jsonl"

# ---------------------------------------------------------------- preflight
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server and generator pinned apart); nproc=$(nproc)"
for c in taskset python3 curl; do command -v "$c" >/dev/null || die "$c is required"; done
ensure_binaries
warn_if_busy

# File descriptors: each receiver is one fd in the server (and one in the generator).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
CAP=$((NOFILE - FD_MARGIN))
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
log "ulimit -n = $NOFILE -> receiver counts capped at $CAP; ephemeral ports $PORT_LO-$PORT_HI ($((PORT_HI - PORT_LO + 1)))"
counts=()
for n in $COUNTS; do
    if [ "$n" -gt "$CAP" ]; then
        log "N=$n exceeds the fd limit minus margin; using N=$CAP instead"
        n=$CAP
    fi
    if [ "$n" -gt $((PORT_HI - PORT_LO - 100)) ]; then
        log "warning: N=$n is close to the ephemeral port range; connects may fail"
    fi
    case " ${counts[*]:-} " in *" $n "*) ;; *) counts+=("$n") ;; esac
done

# ---------------------------------------------------------------- peers
NATS_BIN=""
NATS_CONF="$BENCH_TMP_DIR/nats.conf"
targets=()
for t in $TARGETS; do
    case $t in
    lockstep) targets+=(lockstep) ;;
    nats)
        NATS_BIN=$(find_nats_server)
        if [ -z "$NATS_BIN" ]; then
            log "SKIP nats: no nats-server (not in /usr/sbin, not on PATH; apt-get and pip installs failed or NATS_INSTALL=0)"
            continue
        fi
        # Render the committed config with this run's ports (never the system's 4222).
        sed -e "s/127\.0\.0\.1:14222/127.0.0.1:$NATS_PORT/" \
            -e "s/127\.0\.0\.1:18443/127.0.0.1:$NATS_WS_PORT/" bench/nats/nats.conf >"$NATS_CONF"
        log "nats: $NATS_BIN ($("$NATS_BIN" --version 2>&1 | head -1)), client 127.0.0.1:$NATS_PORT, websocket 127.0.0.1:$NATS_WS_PORT"
        targets+=(nats)
        ;;
    socketio)
        if { ! command -v node >/dev/null || ! command -v npm >/dev/null; } &&
            [ "${NODE_INSTALL:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            log "node/npm not found: trying apt-get install -y nodejs npm"
            { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; } >&2 || true
        fi
        if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
            log "SKIP socketio: node/npm not found and could not be installed"
            continue
        fi
        if [ ! -d bench/socketio/node_modules/socket.io ]; then
            log "socketio: npm ci in bench/socketio"
            if ! (cd bench/socketio && npm ci --no-audit --no-fund >&2); then
                log "SKIP socketio: npm ci failed"
                continue
            fi
        fi
        log "socketio: node $(node --version), socket.io $(node -p 'require("./bench/socketio/node_modules/socket.io/package.json").version'), 127.0.0.1:$SOCKETIO_PORT"
        targets+=(socketio)
        ;;
    *) die "unknown target $t (lockstep, nats, socketio)" ;;
    esac
done
[ "${#targets[@]}" -gt 0 ] || die "no target left to run"

# Starts a fresh server for TARGET pinned to SERVER_CPU; sets SERVER_PID, SERVER_ADDR,
# SERVER_VERSION and LOAD_EXTRA (target-specific generator flags).
start_server() {
    local target=$1 run_dir=$2
    LOAD_EXTRA=()
    case $target in
    lockstep)
        start_lockstep "$BENCH_LOCKSTEP_PORT" "$run_dir/lockstep.db" "$run_dir/server.log" \
            LOCKSTEP_ROOM__MAX_VIEWERS=25000
        SERVER_ADDR="127.0.0.1:$BENCH_LOCKSTEP_PORT"
        SERVER_VERSION="lockstep $("$LOCKSTEP" --version 2>/dev/null | awk '{print $NF}' || true)"
        local token
        token=$("$LOCKSTEP" token --role anchor --room "$ROOM")
        LOAD_EXTRA=(--room "$ROOM" --anchor-token "$token")
        ;;
    nats)
        require_free_port "$NATS_PORT" NATS_PORT
        require_free_port "$NATS_WS_PORT" NATS_WS_PORT
        taskset -c "$SERVER_CPU" "$NATS_BIN" -c "$NATS_CONF" >"$run_dir/server.log" 2>&1 &
        SERVER_PID=$!
        track "$SERVER_PID"
        wait_listening "$SERVER_PID" "$NATS_WS_PORT" "nats-server"
        SERVER_ADDR="127.0.0.1:$NATS_WS_PORT"
        SERVER_VERSION=$("$NATS_BIN" --version 2>&1 | head -1)
        ;;
    socketio)
        require_free_port "$SOCKETIO_PORT" SOCKETIO_PORT
        PORT=$SOCKETIO_PORT taskset -c "$SERVER_CPU" node bench/socketio/server.js >"$run_dir/server.log" 2>&1 &
        SERVER_PID=$!
        track "$SERVER_PID"
        wait_listening "$SERVER_PID" "$SOCKETIO_PORT" "socket.io server"
        SERVER_ADDR="127.0.0.1:$SOCKETIO_PORT"
        SERVER_VERSION="socket.io $(node -p 'require("./bench/socketio/node_modules/socket.io/package.json").version') node $(node --version)"
        ;;
    esac
}

# ---------------------------------------------------------------- runs
log "results -> $RESULTS"
total=$(( ${#targets[@]} * ${#counts[@]} * RUNS ))
i=0
for target in "${targets[@]}"; do
    for n in "${counts[@]}"; do
        procs=$(((n + 9000) / 9000))
        for run in $(seq 1 "$RUNS"); do
            i=$((i + 1))
            run_dir="$BENCH_TMP_DIR/$target-$n-$run"
            mkdir -p "$run_dir"
            log "[$i/$total] $target N=$n run $run (--procs $procs)"
            start_server "$target" "$run_dir"
            start_sampler "$run_dir" 0.5
            # Bounded: joins at any sane rate, warmup, measurement, teardown.
            run_measured $((WARMUP + DURATION + 90 + n / 100)) "$run_dir" -- "$LOAD" viewers \
                --target "$target" --server "$SERVER_ADDR" --viewers "$n" \
                --rate "$RATE" --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" \
                --procs "$procs" --json "$run_dir/report.json" "${LOAD_EXTRA[@]}"
            settings=$(printf '{"rate":%s,"size":%s,"duration":%s,"warmup":%s,"procs":%s,"server_cpu":%s,"load_cpu":%s,"nofile":%s}' \
                "$RATE" "$SIZE" "$DURATION" "$WARMUP" "$procs" "$SERVER_CPU" "$LOAD_CPU" "$NOFILE")
            python3 bench/summarize.py record-fanout --target "$target" --viewers "$n" --run "$run" \
                --report "$run_dir/report.json" --samples "$run_dir/samples.jsonl" \
                --t-start "$t_start" --t-end "$t_end" --clk-tck "$CLK_TCK" \
                --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU" --load-rc "$load_rc" \
                --server-alive "$alive" --server-version "$SERVER_VERSION" \
                --settings "$settings" >>"$RESULTS"
            stop_pid "$SERVER_PID"
            sleep 1 # let the kernel retire the closed sockets
        done
    done
done

echo
python3 bench/summarize.py fanout --p99-ms "$P99_MS" "$RESULTS"
echo
echo "raw results: $RESULTS"
