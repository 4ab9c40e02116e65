#!/usr/bin/env bash
# Cluster fan-out benchmark, side by side: ONE room spread over $NODES (4) server
# processes sharing ONE Redis — Lockstep in cluster mode vs Socket.IO 4 with its sharded
# Redis adapter (@socket.io/redis-adapter `createShardedAdapter`, bench/socketio/server.js
# with REDIS_URL). For each target, viewer count N, publish rate R and run, it starts a
# fresh redis-server (--appendonly yes --appendfsync always: Lockstep refuses a Redis
# that could lose orders, and Socket.IO gets the same Redis for fairness) and $NODES
# fresh servers on 127.0.0.1:$CLUSTER_PORT.. +NODES-1, then runs
#   lockstep-load viewers --target T --servers P0,P1,P2,P3 --procs K --viewers N
#     --rate R --size $SIZE --duration $DURATION --warmup $WARMUP --ramp $RAMP
#     --room bench-cluster --json report.json [--anchor-token TOKEN]
# (viewer i connects to servers[i % NODES], the publisher to servers[0];
# K = ceil(N / $PER_WORKER) generator processes, each from its own loopback source
# address, so no process holds more than $PER_WORKER sockets). A sampler records, every
# 0.5 s, the CPU ticks (/proc/PID/stat utime+stime) and RSS (open fds every 2 s) of every node and of
# redis-server, plus Redis's INFO commandstats (publish/spublish calls) and output bytes.
# Per run it records, over the generator's measured window (the `duration` seconds after
# `warmup`; its start is the generator's start + its join lead time, N/ramp + 2 + K/4 s,
# see lead_time() in loadtest/src/main.rs): the generator's report (delivery ratio, p99),
# each node's CPU seconds and CPU µs per delivery to its viewers, the nodes' total CPU µs
# per delivery, redis-server's CPU seconds, and Redis publish commands per published
# message (raw, and net of the background rate measured in the 3 s after the window while
# every viewer is still connected: liveness, online counts), plus Redis output bytes per
# published message and the busiest channels' subscriber counts.
# Results: one JSON line per run in bench/results/cluster-fanout-<date>.jsonl, then a
# table, means per (target, N, rate) and Lockstep/Socket.IO ratios.
#
# NOT PINNED: this machine has 2 cores and a run has 6+ busy processes (4 nodes, Redis,
# K generator workers, the sampler), so nothing is pinned with taskset — servers, Redis
# and generator share both cores, as the OS schedules them. Numbers are therefore
# comparable between the two targets on the same machine and settings, not with
# bench/fanout.sh's one-core-per-side figures. Each row records `nproc` and the load
# average at the start and end of the run; run it on an otherwise idle machine.
#
# Run from anywhere (it cd's to the repo root; builds the release binaries if missing):
#   bench/cluster_fanout.sh
#   TARGETS=socketio COUNTS=20000 RATES=10 RUNS=1 bench/cluster_fanout.sh
#   bench/cluster_fanout.sh summary bench/results/cluster-fanout-*.jsonl   # table again
# Env (defaults): TARGETS (lockstep socketio), COUNTS (20000 60000), RATES (1 10),
#   RUNS (2), NODES (4), SIZE (200), DURATION (20), WARMUP (3), RAMP (1000 joins/s),
#   PER_WORKER (15000 viewers per generator process), CLUSTER_PORT (18100: nodes on
#   18100..18103), REDIS_PORT (16400), FD_MARGIN (500), P99_MS (100: marks runs over it),
#   LOCKSTEP / LOAD (target/release/...), BENCH_TMP (/var/tmp), NODE_INSTALL (1).
# Any exported LOCKSTEP_<SECTION>__<KEY> reaches every Lockstep node (and is recorded);
# the script sets the log level, store path, workers, arbiters, room.max_viewers and the
# cluster's redis_url and node_id itself.
# Requires an `lockstep-load` whose `viewers --help` lists --servers.
# Every address is 127.0.0.1; each run is bounded by a timeout; every process the script
# starts is killed when it exits (trap). Takes roughly
# RUNS x targets x rates x sum(N/RAMP + WARMUP + DURATION + 15 s) — about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

# ------------------------------------------------------------------ python helpers
# The sampler, the per-run record and the summary (stdlib only), run with python3 -c.
PY=$(
    cat <<'PYEOF'
import json, math, os, signal, socket, statistics, sys, time

def die(msg):
    print(f"cluster_fanout.py: {msg}", file=sys.stderr)
    sys.exit(2)

def opts(argv):
    """--key value pairs (repeatable keys collect into lists)."""
    out, i = {}, 0
    while i < len(argv):
        k = argv[i]
        if not k.startswith("--") or i + 1 >= len(argv):
            die(f"bad argument {k}")
        out.setdefault(k[2:].replace("-", "_"), []).append(argv[i + 1])
        i += 2
    return {k: v if len(v) > 1 or k in ("pid",) else v[0] for k, v in out.items()}

# ---------------------------------------------------------------- a tiny Redis client
class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        self.f = self.s.makefile("rb")
    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()
    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+": return rest.decode()
        if t == b"-": raise RuntimeError(rest.decode())
        if t == b":": return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0: return None
            data = self.f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

def info_fields(text):
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out

def redis_counters(r):
    cs = info_fields(r.cmd("INFO", "commandstats"))
    st = info_fields(r.cmd("INFO", "stats"))
    def calls(name):
        v = cs.get(f"cmdstat_{name}")
        if not v: return 0
        return int(dict(p.split("=", 1) for p in v.split(","))["calls"])
    return {"publish": calls("publish"), "spublish": calls("spublish"),
            "net_out": int(st.get("total_net_output_bytes", 0)),
            "net_in": int(st.get("total_net_input_bytes", 0))}

def pubsub_top(r, n=6):
    """Channels (classic and sharded) with their subscriber counts, busiest first."""
    out = {}
    for kind, numsub in (("CHANNELS", "NUMSUB"), ("SHARDCHANNELS", "SHARDNUMSUB")):
        try:
            chans = r.cmd("PUBSUB", kind) or []
            if chans:
                reply = r.cmd("PUBSUB", numsub, *chans[:200])
                for i in range(0, len(reply), 2):
                    out[("s:" if kind.startswith("SHARD") else "") + reply[i]] = reply[i + 1]
        except RuntimeError:
            pass
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:n])

# ---------------------------------------------------------------- sampler
def proc_sample(pid, fds):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        ticks = int(rest[11]) + int(rest[12])
        rss = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        out = {"ticks": ticks, "rss_kib": rss}
        if fds:
            # Listing 15,000 fds costs a few ms: every 4th sample (2 s) is enough to see
            # that every viewer is connected.
            out["nfd"] = len(os.listdir(f"/proc/{pid}/fd"))
        return out
    except (OSError, IndexError, ValueError):
        return None

def sample(a):
    pids = dict(p.split("=", 1) for p in a["pid"])
    interval = float(a.get("interval", 0.5))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    r = Redis(a["redis_port"])
    n = 0
    with open(a["out"], "a") as out:
        while not stop:
            t0 = time.time()
            row = {"t": t0, "procs": {k: proc_sample(v, n % 4 == 0) for k, v in pids.items()}}
            try:
                row["redis"] = redis_counters(r)
                if n % 4 == 0:
                    row["pubsub"] = pubsub_top(r)
            except (OSError, RuntimeError, ConnectionError) as e:
                row["redis_error"] = str(e)
                try: r = Redis(a["redis_port"])
                except OSError: pass
            with open("/proc/loadavg") as f:
                row["loadavg"] = [float(x) for x in f.read().split()[:3]]
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
            out.flush()
            n += 1
            while not stop and time.time() < t0 + interval:
                time.sleep(0.05)

# ---------------------------------------------------------------- record one run
def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None

def load_json(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text) if text else None
    except (OSError, json.JSONDecodeError):
        return None

def read_samples(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                try: rows.append(json.loads(line))
                except json.JSONDecodeError: pass
    except OSError:
        pass
    return sorted(rows, key=lambda s: s["t"])

def at(samples, t, get):
    """A cumulative counter at wall time t, linearly interpolated between samples."""
    pts = [(s["t"], get(s)) for s in samples]
    pts = [(st, v) for st, v in pts if num(v) is not None]
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return None

def delta(samples, t0, t1, get):
    a, b = at(samples, t0, get), at(samples, t1, get)
    return None if a is None or b is None else b - a

def first_after(samples, t):
    return next((s for s in samples if s["t"] >= t), None)

def record(a):
    report = load_json(a["report"])
    samples = read_samples(a["samples"])
    n_nodes, viewers = int(a["nodes"]), int(a["viewers"])
    rate, duration, warmup = float(a["rate"]), float(a["duration"]), float(a["warmup"])
    clk = int(a["clk_tck"])
    t_start, t_end, lead = float(a["t_start"]), float(a["t_end"]), float(a["lead"])
    w0 = t_start + lead + warmup
    w1 = w0 + duration
    # Background (Redis publishes that are not messages: liveness, online counts), with
    # every viewer connected and nothing published: the last 1.2 s before the first
    # message (joins are done by then; the lead leaves 2 s) and the ~3 s after the last
    # measured one (viewers stay until the generator's stop_at). The lower of the two is
    # used: a join running late inflates the first, a publisher running late the second.
    bgs = [(t_start + lead - 1.7, t_start + lead - 0.5), (w1 + 0.8, w1 + 2.8)]
    names = [f"node-{k}" for k in range(n_nodes)]
    share = {f"node-{k}": (viewers // n_nodes + (1 if k < viewers % n_nodes else 0)) / max(viewers, 1)
             for k in range(n_nodes)}
    delivered = num((report or {}).get("delivered"))
    out = {"window": {"start": round(w0, 3), "end": round(w1, 3), "lead_s": lead}}
    nodes = {}
    connected_ok = True
    for name in names + ["redis"]:
        g = lambda s, name=name: (s["procs"].get(name) or {}).get("ticks")
        d = delta(samples, w0, w1, g)
        cpu = d / clk if d is not None else None
        e = {"cpu_s": cpu}
        with_fds = [x for x in samples if "nfd" in (x["procs"].get(name) or {})]
        s_in = first_after(with_fds, w0)
        nb = ((with_fds[0] if with_fds else {}).get("procs", {}).get(name) or {})
        ni = ((s_in or {}).get("procs", {}).get(name) or {}) if s_in else {}
        e["nfd_before"], e["nfd_window"] = nb.get("nfd"), ni.get("nfd")
        e["rss_before_kib"], e["rss_window_kib"] = nb.get("rss_kib"), ni.get("rss_kib")
        if name != "redis":
            want = math.floor(0.99 * share[name] * viewers)
            if num(e["nfd_before"]) is None or num(e["nfd_window"]) is None or e["nfd_window"] - e["nfd_before"] < want:
                connected_ok = False
            if cpu is not None and delivered:
                e["cpu_us_per_delivery"] = cpu * 1e6 / (delivered * share[name])
            if num(e["rss_window_kib"]) is not None and num(e["rss_before_kib"]) is not None and share[name] * viewers:
                e["kib_per_conn"] = (e["rss_window_kib"] - e["rss_before_kib"]) / (share[name] * viewers)
        nodes[name] = e
    redis_e = nodes.pop("redis")
    cpu_nodes = sum(nodes[n]["cpu_s"] for n in names) if all(num(nodes[n]["cpu_s"]) is not None for n in names) else None
    out["nodes"] = nodes
    out["cpu_s_nodes"] = cpu_nodes
    out["redis"] = redis_e
    out["all_connected_at_window_start"] = connected_ok
    if cpu_nodes is not None and delivered:
        out["cpu_us_per_delivery"] = cpu_nodes * 1e6 / delivered
        if num(redis_e.get("cpu_s")) is not None:
            out["cpu_us_per_delivery_incl_redis"] = (cpu_nodes + redis_e["cpu_s"]) * 1e6 / delivered
    # Redis traffic is counted over every published message (warmup included: more
    # messages, less boundary error). Message k leaves at start + k/rate and nothing is
    # published before the first or after the last, so a window reaching 0.5 s past both
    # holds all (warmup + duration) x rate even when the publisher runs a little late;
    # the background (subtracted for the net figures) is scaled to the window's length.
    p0, p1 = t_start + lead - 0.5, w1 + 0.5
    published = rate * (warmup + duration)
    pubs = lambda s: ((s["redis"].get("publish", 0) + s["redis"].get("spublish", 0)) if s.get("redis") else None)
    outb = lambda s: (s.get("redis") or {}).get("net_out")
    calls, out_bytes = delta(samples, p0, p1, pubs), delta(samples, p0, p1, outb)
    def bg_rate(get):
        rates = [d / (b - a) for a, b in bgs for d in [delta(samples, a, b, get)] if d is not None]
        return min(rates) if rates else None
    bg_calls, bg_bytes = bg_rate(pubs), bg_rate(outb)
    out["redis_window"] = {"start": round(p0, 3), "end": round(p1, 3), "published": published,
                           "background": [[round(a, 3), round(b, 3)] for a, b in bgs]}
    out["redis_publish_calls"] = calls
    if calls is not None:
        out["redis_msgs_per_publish"] = calls / published
        if bg_calls is not None:
            out["redis_background_publish_per_s"] = bg_calls
            out["redis_msgs_per_publish_net"] = (calls - bg_calls * (p1 - p0)) / published
    if out_bytes is not None:
        out["redis_out_bytes_per_publish"] = out_bytes / published
        # Net of the background, which includes this sampler's own INFO replies.
        if bg_bytes is not None:
            out["redis_background_out_bytes_per_s"] = bg_bytes
            out["redis_out_bytes_per_publish_net"] = (out_bytes - bg_bytes * (p1 - p0)) / published
    # Counted by the clock: if the publisher or the delivery fell behind, messages left
    # outside the window and the per-message Redis figures mean little.
    rep0 = report or {}
    late = None
    after = delta(samples, p1, w1 + 2.8, pubs)
    if after is not None and bg_calls is not None:
        # Publishes beyond the background after the window: the publisher ran late.
        late = after - bg_calls * (w1 + 2.8 - p1)
        out["redis_publishes_after_window"] = late
    if num(rep0.get("delivery_ratio")) is None or rep0.get("delivery_ratio") < 0.999 or \
            (num(rep0.get("published")) is not None and rep0["published"] != round(published)) or \
            (late is not None and late > max(3.0, 0.03 * published)):
        out["redis_counts_unreliable"] = True
    mid = first_after([s for s in samples if "pubsub" in s], (w0 + w1) / 2)
    if mid:
        out["pubsub_top"] = mid["pubsub"]
    la = [s.get("loadavg") for s in samples if s.get("loadavg")]
    settings = json.loads(a.get("settings") or "{}")
    settings["loadavg_start"] = la[0] if la else None
    settings["loadavg_end"] = la[-1] if la else None
    if a["target"] == "lockstep":
        settings["lockstep_env"] = {k: v for k, v in sorted(os.environ.items())
                                    if k.startswith("LOCKSTEP_") and "SECRET" not in k}
    load_rc, alive = int(a["load_rc"]), int(a["alive"])
    status = "no_report" if report is None else "load_failed" if load_rc else "server_died" if not alive else "ok"
    row = {"bench": "cluster_fanout", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "target": a["target"], "viewers": viewers, "rate": rate, "run": int(a["run"]),
           "nodes": n_nodes, "status": status, "load_rc": load_rc, "servers_alive": bool(alive),
           "server_version": a.get("server_version", ""), "settings": settings,
           "report": report, "cluster": out}
    print(json.dumps(row, separators=(",", ":")))
    rep = report or {}
    p99 = (rep.get("latency_ms") or {}).get("p99")
    print(f"  {a['target']} N={viewers} rate={rate:g} run {a['run']}: {status}, "
          f"ratio {fmt(rep.get('delivery_ratio'), '.4f')}, p99 {fmt(p99)} ms, "
          f"{fmt(out.get('cpu_us_per_delivery'), '.2f')} CPU µs/delivery (nodes), "
          f"Redis CPU {fmt(redis_e.get('cpu_s'), '.2f')} s, "
          f"{fmt(out.get('redis_msgs_per_publish'), '.2f')} Redis publishes/msg "
          f"(net {fmt(out.get('redis_msgs_per_publish_net'), '.2f')})"
          + ("" if connected_ok else "; NOT all viewers connected at window start"), file=sys.stderr)

# ---------------------------------------------------------------- summary
def fmt(x, spec=".1f"):
    x = num(x)
    return "-" if x is None else format(x, spec)

def mean(xs):
    xs = [x for x in xs if num(x) is not None]
    return statistics.fmean(xs) if xs else None

def table(headers, rows, right):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).rjust(w[i]) if right[i] else str(c).ljust(w[i]) for i, c in enumerate(cells)).rstrip()
    return "\n".join([line(headers), line(["-" * x for x in w])] + [line(r) for r in rows])

ORDER = {"lockstep": 0, "socketio": 1}

def summary(a):
    p99_bar = float(os.environ.get("P99_MS", "100"))
    files = a if isinstance(a, list) else []
    rows = []
    for path in files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if r.get("bench") == "cluster_fanout":
                        rows.append(r)
    if not rows:
        print("no cluster fan-out rows")
        return 1
    rows.sort(key=lambda r: (r["viewers"], r["rate"], ORDER.get(r["target"], 9), r["target"], r["run"]))
    def m(r):
        rep, c = r.get("report") or {}, r.get("cluster") or {}
        per_node = [v.get("cpu_us_per_delivery") for v in (c.get("nodes") or {}).values()]
        per_node = [x for x in per_node if num(x) is not None]
        return {
            "ratio": rep.get("delivery_ratio"), "p99": (rep.get("latency_ms") or {}).get("p99"),
            "cpu": c.get("cpu_us_per_delivery"), "cpu_r": c.get("cpu_us_per_delivery_incl_redis"),
            "node_min": min(per_node) if per_node else None, "node_max": max(per_node) if per_node else None,
            "nodes_s": c.get("cpu_s_nodes"), "redis_s": (c.get("redis") or {}).get("cpu_s"),
            "pubs": c.get("redis_msgs_per_publish"), "pubs_net": c.get("redis_msgs_per_publish_net"),
            "bytes": c.get("redis_out_bytes_per_publish_net"), "join_failed": rep.get("join_failed"),
            "expected": rep.get("expected"), "delivered": rep.get("delivered"),
        }
    out = []
    for r in rows:
        x = m(r)
        notes = []
        if r.get("status") != "ok": notes.append(r.get("status"))
        if num(x["join_failed"]): notes.append(f"join_failed={x['join_failed']}")
        if num(x["p99"]) is not None and x["p99"] >= p99_bar: notes.append(f"p99>={p99_bar:g}ms")
        if num(x["delivered"]) is not None and num(x["expected"]) is not None and x["delivered"] != x["expected"]:
            notes.append("lost")
        if not (r.get("cluster") or {}).get("all_connected_at_window_start", True): notes.append("not-all-connected")
        if (r.get("cluster") or {}).get("redis_counts_unreliable"): notes.append("redis-counts?")
        out.append([r["target"], r["viewers"], fmt(r["rate"], "g"), r["run"], fmt(x["ratio"], ".4f"), fmt(x["p99"]),
                    fmt(x["cpu"], ".2f"), f"{fmt(x['node_min'], '.2f')}-{fmt(x['node_max'], '.2f')}",
                    fmt(x["cpu_r"], ".2f"), fmt(x["nodes_s"], ".2f"), fmt(x["redis_s"], ".2f"),
                    fmt(x["pubs"], ".2f"), fmt(x["pubs_net"], ".2f"), fmt(x["bytes"], ",.0f"),
                    ",".join(notes) or "ok"])
    print(table(["target", "viewers", "rate", "run", "delivery", "p99 ms", "CPU us/deliv", "per node",
                 "+Redis", "nodes CPU s", "Redis CPU s", "Redis pub/msg", "net", "Redis B out/msg", "notes"],
                out, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]))
    print("\nCPU us/deliv = CPU µs of all nodes together per delivery in the measured window; per node ="
          " min-max over nodes of (node CPU / deliveries to its viewers); +Redis includes redis-server."
          " Redis pub/msg = PUBLISH+SPUBLISH commands per published message (net: minus the background"
          " rate seen with viewers connected and no traffic). Redis B out/msg = bytes Redis wrote per"
          " published message (every subscriber's copy), net of the background (which holds this"
          " script's own INFO polling). Redis counts span warmup + measured seconds; redis-counts? ="
          " delivery incomplete or publisher late, so those per-message figures are unreliable.")
    groups = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault((r["viewers"], r["rate"]), {}).setdefault(r["target"], []).append(m(r))
    keys = ["ratio", "p99", "cpu", "cpu_r", "redis_s", "pubs", "pubs_net", "bytes"]
    mrows, rrows = [], []
    for (n, rate), by in sorted(groups.items()):
        means = {t: {k: mean([x[k] for x in xs]) for k in keys} for t, xs in by.items()}
        for t in sorted(means, key=lambda t: (ORDER.get(t, 9), t)):
            v = means[t]
            mrows.append([t, n, fmt(rate, "g"), len(by[t]), fmt(v["ratio"], ".4f"), fmt(v["p99"]), fmt(v["cpu"], ".2f"),
                          fmt(v["cpu_r"], ".2f"), fmt(v["redis_s"], ".2f"), fmt(v["pubs"], ".2f"), fmt(v["pubs_net"], ".2f"),
                          fmt(v["bytes"], ",.0f")])
        if "lockstep" in means and "socketio" in means:
            L, S = means["lockstep"], means["socketio"]
            q = lambda k: (f"{L[k] / S[k]:.2f}x" if num(L[k]) is not None and num(S[k]) and num(S[k]) != 0 else "n/a")
            rrows.append([n, fmt(rate, "g"), q("ratio"), q("p99"), q("cpu"), q("cpu_r"), q("redis_s"), q("pubs"), q("pubs_net")])
    if mrows:
        print("\nmeans over ok runs:")
        print(table(["target", "viewers", "rate", "runs", "delivery", "p99 ms", "CPU us/deliv", "+Redis",
                     "Redis CPU s", "Redis pub/msg", "net", "Redis B out/msg"], mrows,
                    [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]))
    if rrows:
        print("\nLockstep / Socket.IO (each mean divided by Socket.IO's; below 1x = Lockstep lower):")
        print(table(["viewers", "rate", "delivery", "p99", "CPU us/deliv", "+Redis", "Redis CPU s",
                     "Redis pub/msg", "net"], rrows, [1] * 9))
    return 0

if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "sample": sample(opts(rest))
    elif cmd == "record": record(opts(rest))
    elif cmd == "summary": sys.exit(summary(rest))
    else: die(f"unknown command {cmd}")
PYEOF
)
py() { python3 -c "$PY" "$@"; }

if [ "${1:-}" = summary ]; then
    shift
    [ "$#" -gt 0 ] || die "usage: bench/cluster_fanout.sh summary FILE..."
    py summary "$@"
    exit
fi

LOCKSTEP=${LOCKSTEP:-target/release/lockstep}
LOAD=${LOAD:-target/release/lockstep-load}
TARGETS=${TARGETS:-lockstep socketio}
COUNTS=${COUNTS:-20000 60000}
RATES=${RATES:-1 10}
RUNS=${RUNS:-2}
NODES=${NODES:-4}
SIZE=${SIZE:-200}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
RAMP=${RAMP:-1000}
PER_WORKER=${PER_WORKER:-15000}
CLUSTER_PORT=${CLUSTER_PORT:-18100}
REDIS_PORT=${REDIS_PORT:-16400}
FD_MARGIN=${FD_MARGIN:-500}
export P99_MS=${P99_MS:-100}
ROOM=bench-cluster
CLK_TCK=$(getconf CLK_TCK)
NPROC=$(nproc)

bench_init
mkdir -p bench/results
RESULTS="bench/results/cluster-fanout-$(date +%Y%m%d-%H%M%S).jsonl"

# ---------------------------------------------------------------- preflight
for c in python3 curl redis-server redis-cli; do command -v "$c" >/dev/null || die "$c is required"; done
[ "$(redis-server --version | sed -E 's/.*v=([0-9]+).*/\1/')" -ge 7 ] ||
    die "redis-server 7+ is required (Socket.IO's sharded adapter uses SPUBLISH): $(redis-server --version)"
[ "$NODES" -ge 2 ] || die "NODES must be at least 2"
case " $TARGETS " in
*" lockstep "*) ensure_binaries ;;
*) [ -x "$LOAD" ] || ensure_binaries ;;
esac
load_has_flag viewers servers ||
    die "$LOAD has no 'viewers --servers' (one room over several servers); rebuild lockstep-load"
load_has_flag viewers ramp || die "$LOAD has no 'viewers --ramp'"
log "nproc = $NPROC, load average $(cut -d' ' -f1-3 /proc/loadavg); servers, Redis and generator are NOT pinned"
warn_if_busy

# File descriptors: a node holds one per viewer on it, a generator worker one per viewer
# it drives; both must fit under the open-files limit (raised to the hard limit here,
# inherited by every process the script starts).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
PORTS=$((PORT_HI - PORT_LO + 1))
log "ulimit -n = $NOFILE; ephemeral ports $PORT_LO-$PORT_HI ($PORTS) per source address"
[ "$PER_WORKER" -le $((NOFILE - FD_MARGIN)) ] ||
    die "PER_WORKER=$PER_WORKER does not fit a generator process under ulimit -n $NOFILE minus FD_MARGIN $FD_MARGIN"
counts=()
for n in $COUNTS; do
    [ "$n" -ge "$NODES" ] || die "N=$n: fewer viewers than nodes"
    per_node=$(((n + NODES - 1) / NODES))
    k=$(((n + PER_WORKER - 1) / PER_WORKER))
    per_gen=$(((n + k - 1) / k))
    [ "$per_node" -le $((NOFILE - FD_MARGIN)) ] ||
        die "N=$n puts $per_node viewers on each of $NODES nodes: over ulimit -n $NOFILE minus FD_MARGIN $FD_MARGIN (use more NODES or fewer viewers)"
    [ "$k" -le 64 ] || die "N=$n needs $k generator processes; lockstep-load allows at most 64"
    [ "$per_gen" -le $((PORTS - 100)) ] ||
        die "N=$n: $per_gen connections per generator process exceed the ephemeral port range ($PORTS)"
    [ "$per_gen" -le $((NOFILE - FD_MARGIN)) ] || die "N=$n: $per_gen sockets per generator process exceed ulimit -n $NOFILE"
    case " ${counts[*]:-} " in *" $n "*) ;; *) counts+=("$n") ;; esac
done
for ((k = 0; k < NODES; k++)); do require_free_port $((CLUSTER_PORT + k)) CLUSTER_PORT; done
require_free_port "$REDIS_PORT" REDIS_PORT

targets=()
for t in $TARGETS; do
    case $t in
    lockstep) targets+=(lockstep) ;;
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
        if [ ! -d bench/socketio/node_modules/socket.io ] || [ ! -d bench/socketio/node_modules/@socket.io/redis-adapter ] ||
            [ ! -d bench/socketio/node_modules/redis ]; then
            log "socketio: npm ci in bench/socketio"
            if ! (cd bench/socketio && npm ci --no-audit --no-fund >&2); then
                log "SKIP socketio: npm ci failed"
                continue
            fi
        fi
        targets+=(socketio)
        ;;
    *) die "unknown target $t (lockstep, socketio)" ;;
    esac
done
[ "${#targets[@]}" -gt 0 ] || die "no target left to run"

SIO_VERSION=""
if command -v node >/dev/null && [ -d bench/socketio/node_modules/socket.io ]; then
    SIO_VERSION="socket.io $(node -p 'require("./bench/socketio/node_modules/socket.io/package.json").version') + @socket.io/redis-adapter $(node -p 'require("./bench/socketio/node_modules/@socket.io/redis-adapter/package.json").version') (sharded) node $(node --version)"
fi

# ---------------------------------------------------------------- one run's processes
NODE_PIDS=()
REDIS_PID=""
SERVERS=""

# redis-server on REDIS_PORT, files in DIR, durable as Lockstep demands (same for both).
start_cluster_redis() {
    local dir=$1 i
    require_free_port "$REDIS_PORT" REDIS_PORT
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --daemonize no \
        --logfile "$dir/redis.log" --save "" --appendonly yes --appendfsync always &
    REDIS_PID=$!
    track "$REDIS_PID"
    for i in $(seq 100); do
        is_running "$REDIS_PID" || die "redis-server exited during startup ($dir/redis.log)"
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    die "redis-server on port $REDIS_PORT did not answer PING"
}

# NODES servers of TARGET on CLUSTER_PORT.., each told where Redis is. Sets NODE_PIDS,
# SERVERS (the --servers list), SERVER_VERSION and LOAD_EXTRA.
start_nodes() {
    local target=$1 run_dir=$2 n=$3 k port pid i
    NODE_PIDS=()
    SERVERS=""
    LOAD_EXTRA=()
    for ((k = 0; k < NODES; k++)); do
        port=$((CLUSTER_PORT + k))
        require_free_port "$port" CLUSTER_PORT
        case $target in
        lockstep)
            # As start_lockstep in bench/lib.sh (one worker, one arbiter, warn logs, own
            # SQLite file) plus the cluster settings; the owner counts the whole room's
            # viewers, so room.max_viewers must exceed N. Not pinned.
            env LOCKSTEP_SERVER__LOG=warn \
                LOCKSTEP_STORE__PATH="$run_dir/node-$k.db" \
                LOCKSTEP_SERVER__WORKERS=1 \
                LOCKSTEP_ROOMS__ARBITERS=1 \
                LOCKSTEP_ROOM__MAX_VIEWERS=$((n + 1000)) \
                LOCKSTEP_CLUSTER__REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
                LOCKSTEP_CLUSTER__NODE_ID="node-$k" \
                "$LOCKSTEP" serve --bind "127.0.0.1:$port" >"$run_dir/node-$k.log" 2>&1 &
            ;;
        socketio)
            REDIS_URL="redis://127.0.0.1:$REDIS_PORT" PORT=$port \
                node bench/socketio/server.js >"$run_dir/node-$k.log" 2>&1 &
            ;;
        esac
        pid=$!
        track "$pid"
        NODE_PIDS+=("$pid")
        SERVERS+="${SERVERS:+,}127.0.0.1:$port"
    done
    for ((k = 0; k < NODES; k++)); do
        port=$((CLUSTER_PORT + k))
        wait_listening "${NODE_PIDS[k]}" "$port" "$target node-$k (log: $run_dir/node-$k.log)"
        if [ "$target" = lockstep ]; then
            for i in $(seq 101); do
                curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
                [ "$i" -le 100 ] || die "lockstep node-$k did not answer /healthz"
                sleep 0.1
            done
        fi
    done
    case $target in
    lockstep)
        SERVER_VERSION="lockstep $("$LOCKSTEP" --version 2>/dev/null | awk '{print $NF}' || true) cluster x$NODES"
        LOAD_EXTRA=(--anchor-token "$("$LOCKSTEP" token --role anchor --room "$ROOM")")
        ;;
    socketio) SERVER_VERSION="$SIO_VERSION x$NODES" ;;
    esac
    SERVER_VERSION+=", $(redis-server --version | awk '{print $1, $2, $3}') appendfsync always"
}

stop_run() {
    local i
    [ -z "${SAMPLER:-}" ] || stop_pid "$SAMPLER"
    SAMPLER=""
    for ((i = ${#NODE_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${NODE_PIDS[i]}"; done
    NODE_PIDS=()
    [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID"
    REDIS_PID=""
}

# ---------------------------------------------------------------- runs
log "results -> $RESULTS"
rates=()
for r in $RATES; do rates+=("$r"); done
total=$((${#targets[@]} * ${#counts[@]} * ${#rates[@]} * RUNS))
i=0
for n in "${counts[@]}"; do
    procs=$(((n + PER_WORKER - 1) / PER_WORKER))
    # The generator's lead before the first message: lead_time() in loadtest/src/main.rs.
    lead=$(python3 -c "print($n / max($RAMP, 1) + 2 + $procs // 4)")
    for rate in "${rates[@]}"; do
        for run in $(seq 1 "$RUNS"); do
            for target in "${targets[@]}"; do
                i=$((i + 1))
                run_dir="$BENCH_TMP_DIR/$target-$n-$rate-$run"
                mkdir -p "$run_dir"
                log "[$i/$total] $target N=$n rate=$rate run $run ($NODES nodes, --procs $procs)"
                start_cluster_redis "$run_dir"
                start_nodes "$target" "$run_dir" "$n"
                pid_args=()
                for ((k = 0; k < NODES; k++)); do pid_args+=(--pid "node-$k=${NODE_PIDS[k]}"); done
                pid_args+=(--pid "redis=$REDIS_PID")
                # python3 itself in the background (not the py function, whose subshell
                # would be what stop_pid signals, orphaning the sampler).
                python3 -c "$PY" sample --out "$run_dir/samples.jsonl" --interval 0.5 \
                    --redis-port "$REDIS_PORT" "${pid_args[@]}" &
                SAMPLER=$!
                track "$SAMPLER"
                sleep 2 # baseline samples with the servers idle
                t_start=$(date +%s.%N)
                set +e
                timeout -k 10 $((${lead%.*} + WARMUP + DURATION + 90 + n / 100)) "$LOAD" viewers \
                    --target "$target" --servers "$SERVERS" --procs "$procs" --viewers "$n" \
                    --rate "$rate" --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" \
                    --ramp "$RAMP" --room "$ROOM" --json "$run_dir/report.json" "${LOAD_EXTRA[@]}" \
                    >"$run_dir/load.log" 2>&1 &
                LOADPID=$!
                track "$LOADPID"
                wait "$LOADPID"
                load_rc=$?
                set -e
                stop_pid "$LOADPID"
                t_end=$(date +%s.%N)
                sleep 1 # one sample after the generator left
                alive=1
                for ((k = 0; k < NODES; k++)); do
                    if ! is_running "${NODE_PIDS[k]}"; then
                        alive=0
                        log "node-$k died; last lines of its log:"
                        tail -n 8 "$run_dir/node-$k.log" >&2 || true
                    fi
                done
                is_running "$REDIS_PID" || { alive=0; log "redis-server died ($run_dir/redis.log)"; }
                stop_pid "$SAMPLER"
                SAMPLER=""
                if [ "$load_rc" -ne 0 ]; then
                    log "load generator exited $load_rc; last lines of its log:"
                    tail -n 8 "$run_dir/load.log" >&2 || true
                fi
                settings=$(printf '{"rate":%s,"size":%s,"duration":%s,"warmup":%s,"ramp":%s,"procs":%s,"nodes":%s,"servers":"%s","redis_port":%s,"pinned":false,"nproc":%s,"nofile":%s}' \
                    "$rate" "$SIZE" "$DURATION" "$WARMUP" "$RAMP" "$procs" "$NODES" "$SERVERS" "$REDIS_PORT" "$NPROC" "$NOFILE")
                py record --target "$target" --viewers "$n" --rate "$rate" --run "$run" --nodes "$NODES" \
                    --report "$run_dir/report.json" --samples "$run_dir/samples.jsonl" \
                    --t-start "$t_start" --t-end "$t_end" --lead "$lead" --warmup "$WARMUP" \
                    --duration "$DURATION" --clk-tck "$CLK_TCK" --load-rc "$load_rc" --alive "$alive" \
                    --server-version "$SERVER_VERSION" --settings "$settings" >>"$RESULTS"
                stop_run
                sleep 2 # let the kernel retire the closed sockets
            done
        done
    done
done

echo
py summary "$RESULTS"
echo
echo "raw results: $RESULTS"
