"""The fan-out benchmark (bench/fanout.sh): `record-fanout` merges one run's
`lockstep-load viewers` report with the server samples into one JSON line; `fanout` prints
the table of runs, per target the largest receiver count that met the bar in every run,
and Lockstep's ratios to each peer (CPU per delivery)."""

import json
import math
import sys

from .common import (bar_cell, compare_to_peers, compare_to_previous, fmt, get, group_runs,
                     largest_passing, lat, limit_notes, load_json, lockstep_env, mean, now_iso, num,
                     rows_of, run_status, sort_rows, table, target_key)
from .samples import core_busy, read_samples

TARGETS = ["lockstep", "nats", "socketio"]

# ---------------------------------------------------------------------------- record


def analyse_samples(samples, t_start, t_end, viewers, join_failed, clk_tck, server_cpu, load_cpu):
    """Server CPU and memory for one run from procsample.py lines."""
    out = {}
    if not samples:
        return out
    before = [s for s in samples if s["t"] <= t_start] or samples[:1]
    after = [s for s in samples if s["t"] >= t_end] or samples[-1:]
    during = [s for s in samples if t_start <= s["t"] <= t_end]
    b, a = before[-1], after[0]
    out["cpu_s_run"] = (a["ticks"] - b["ticks"]) / clk_tck
    out["rss_before_kib"] = b.get("rss_kib")
    out["fds_before"] = b.get("nfd")
    out["fds_peak"] = max((s.get("nfd") or 0) for s in during) if during else None
    out["rss_hwm_kib"] = a.get("hwm_kib")
    # Steady phase: every viewer connected (server fds up by ~N). Joins and teardown are
    # outside it, so CPU here is the cost of delivering, not of accepting connections.
    connected = max(0, viewers - (join_failed or 0))
    need = (b.get("nfd") or 0) + math.floor(0.99 * connected)
    steady = [s for s in during if (s.get("nfd") or 0) >= need] if connected else []
    if steady:
        out["rss_end_kib"] = steady[-1].get("rss_kib")
    elif during:
        out["rss_end_kib"] = max((s.get("rss_kib") or 0) for s in during)
        out["rss_end_note"] = "viewers never all connected; peak RSS during the run used"
    if num(out.get("rss_end_kib")) is not None and num(out.get("rss_before_kib")) is not None and viewers:
        out["kib_per_conn"] = (out["rss_end_kib"] - out["rss_before_kib"]) / viewers
    if len(steady) >= 2:
        s0, s1 = steady[0], steady[-1]
        span = s1["t"] - s0["t"]
        out["steady_secs"] = round(span, 3)
        out["cpu_s_steady"] = (s1["ticks"] - s0["ticks"]) / clk_tck
        window = (s0, s1)
    else:
        window = (b, a)
    w0, w1 = window
    for name, core in (("server_core_busy", server_cpu), ("load_core_busy", load_cpu)):
        v = core_busy(w0, w1, core)
        if v is not None:
            out[name] = v
    return out


def record(args):
    """record-fanout: one run -> one JSON line on stdout, a one-line digest on stderr."""
    report = load_json(args.report)
    samples = read_samples(args.samples)
    join_failed = num(get(report, "join_failed")) or 0
    server = analyse_samples(samples, args.t_start, args.t_end, args.viewers, join_failed,
                             args.clk_tck, args.server_cpu, args.load_cpu)
    settings = json.loads(args.settings) if args.settings else {}
    delivered = num(get(report, "delivered"))
    dps = num(get(report, "deliveries_per_sec"))
    if delivered and num(server.get("cpu_s_run")) is not None:
        server["cpu_s_per_m_deliveries_run"] = server["cpu_s_run"] / delivered * 1e6
    # The steady phase holds the warmup and the measured seconds (joins end before the
    # first message, teardown starts after the last), so the deliveries in it are
    # deliveries_per_sec x (measured + warmup) seconds.
    traffic_secs = (num(get(report, "duration_secs")) or num(settings.get("duration")) or 0) + \
        (num(settings.get("warmup")) or 0)
    if dps and traffic_secs and num(server.get("cpu_s_steady")) is not None:
        server["cpu_s_per_m_deliveries_steady"] = server["cpu_s_steady"] / (dps * traffic_secs) * 1e6
    if args.target == "lockstep":
        settings["lockstep_env"] = lockstep_env()
    status = run_status(report, args.load_rc, args.server_alive)
    row = {
        "bench": "fanout",
        "time": now_iso(),
        "target": args.target,
        "viewers": args.viewers,
        "run": args.run,
        "status": status,
        "load_rc": args.load_rc,
        "server_alive": bool(args.server_alive),
        "server_version": args.server_version,
        "settings": settings,
        "report": report,
        "server": server,
    }
    print(json.dumps(row, separators=(",", ":")))
    p99 = lat(report, "p99")
    print(f"  {args.target} N={args.viewers} run {args.run}: {status}, p99 {fmt(p99)} ms, "
          f"ratio {fmt(get(report, 'delivery_ratio'), '.4f')}, {fmt(dps, ',.0f')} deliveries/s, "
          f"server CPU {fmt(server.get('cpu_s_run'), '.2f')} s, "
          f"{fmt(server.get('kib_per_conn'), '.1f')} KiB/conn", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- summary


def passes(row, p99_ms):
    """A run meets the bar: report present, p99 under the bar, every message delivered."""
    r = row.get("report")
    if row.get("status") != "ok" or not isinstance(r, dict):
        return False
    p99 = num(lat(r, "p99"))
    delivered, expected = num(r.get("delivered")), num(r.get("expected"))
    if p99 is None or p99 >= p99_ms:
        return False
    if delivered is None or expected is None or expected <= 0:
        return False
    if delivered != expected:
        return False
    if (num(r.get("join_failed")) or 0) != 0:
        return False
    return True


def cpu_per_m(row):
    """Server CPU seconds per million deliveries: steady phase if known, else whole run."""
    s = row.get("server") or {}
    v = num(s.get("cpu_s_per_m_deliveries_steady"))
    return v if v is not None else num(s.get("cpu_s_per_m_deliveries_run"))


def summarize(args):
    """fanout: the table of runs, the largest passing N per target, Lockstep vs each peer."""
    rows = rows_of(args.files, "fanout")
    if not rows:
        print("no fan-out rows")
        return 1
    ok = lambda r: passes(r, args.p99_ms)
    sort_rows(rows, TARGETS, "viewers", "run")
    out = []
    for r in rows:
        rep, s = r.get("report") or {}, r.get("server") or {}
        out.append([
            r.get("target"), r.get("viewers"), r.get("run"),
            fmt(lat(rep, "p50")), fmt(lat(rep, "p99")),
            fmt(get(rep, "delivery_ratio"), ".4f"),
            fmt(get(rep, "deliveries_per_sec"), ",.0f"),
            fmt(s.get("cpu_s_per_m_deliveries_steady"), ".2f"),
            fmt(s.get("cpu_s_per_m_deliveries_run"), ".2f"),
            fmt(s.get("kib_per_conn"), ".1f"),
            fmt(100 * s["load_core_busy"] if num(s.get("load_core_busy")) is not None else None, ".0f"),
            get(rep, "join_failed") if get(rep, "join_failed") is not None else "-",
            bar_cell(r, ok),
        ])
    print(table(
        ["target", "N", "run", "p50 ms", "p99 ms", "delivery", "deliveries/s",
         "CPU s/M steady", "CPU s/M run", "KiB/conn", "load core %", "join fail", "bar"],
        out, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"]))
    print(f"\nbar: p99 < {args.p99_ms:g} ms, delivered == expected, no failed joins, in every run.")
    print("CPU s/M = server CPU seconds per million deliveries (steady: all viewers connected;"
          " run: whole run incl. joins). load core % = busy share of the generator's core;"
          " near 100 means the generator, not the server, may be the limit.")

    by = group_runs(rows, "viewers")
    summary = {}
    print()
    for target in sorted(by, key=target_key(TARGETS)):
        s = largest_passing(by[target], ok)
        best = s["max_n"]
        if best is not None:
            runs = by[target][best]
            s["dps"] = mean([get(r, "report", "deliveries_per_sec") for r in runs])
            s["p99"] = max(num(lat(r.get("report"), "p99")) or 0 for r in runs)
            s["cpu"] = mean([cpu_per_m(r) for r in runs])
            s["kib"] = mean([get(r, "server", "kib_per_conn") for r in runs])
        summary[target] = s
        if best is None:
            print(f"{target}: met the bar at no receiver count tested ({', '.join(map(str, s['counts']))})")
            continue
        more, gap = limit_notes(s)
        print(f"{target}: max N = {best:,}{more}: {fmt(s['dps'], ',.0f')} deliveries/s, "
              f"worst p99 {fmt(s['p99'])} ms, {fmt(s['cpu'], '.2f')} CPU s per million deliveries, "
              f"{fmt(s['kib'], '.1f')} KiB/conn{gap}")

    max_n = {t: summary[t]["max_n"] for t in summary}
    compare_to_peers(by, list(summary), max_n, ok, cpu_per_m, "delivery", "CPU s/M")
    compare_to_previous(args.files, "fanout", lambda r: f"N={r.get('viewers')}", ("rate", "size"),
                        [("p99 ms", lambda r: lat(r.get("report"), "p99"), ".1f"),
                         ("CPU s/M", cpu_per_m, ".2f")])
    return 0
