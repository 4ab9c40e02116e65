"""The SFU capacity benchmark (bench/sfu.sh): `record-sfu` merges one run's
`lockstep-load subscribers` report with the server samples into one JSON line (finding
the measured window: the generator's own bounds, the fd plateau, or the whole run);
`sfu` prints the table of runs, per target the largest subscriber count that met the bar
in every run, and each peer's CPU per forwarded packet relative to Lockstep's."""

import json
import sys

from .common import (bar_cell, compare_to_peers, compare_to_previous, fmt, get, group_runs, largest_passing,
                     limit_notes, load_json, lockstep_env, mean, now_iso, num,
                     rows_of, run_status, sort_rows, table, target_key)
from .samples import core_busy, read_samples, ticks_at

TARGETS = ["lockstep", "janus", "janus-threads"]

# Names the subscribers report may give the measured window's bounds (Unix ms).
WINDOW_KEYS = [("window_start_unix_ms", "window_end_unix_ms"),
               ("measure_start_unix_ms", "measure_end_unix_ms")]

# ---------------------------------------------------------------------------- record


def sfu_window(report, samples, t_start, t_end):
    """The measured window as (start, end, method) in wall seconds.

    `report`: the generator's own window bounds, when it reports them (exact);
    `plateau`: while the server's open fds stay within 2% of their peak (every subscriber
    connected: warm-up plus measured seconds, a little teardown), when the fd count rose;
    `run`: from the generator's start to its exit (includes setup and teardown)."""
    for k0, k1 in WINDOW_KEYS:
        w0, w1 = num(get(report, k0)), num(get(report, k1))
        if w0 is not None and w1 is not None and w1 > w0:
            return w0 / 1000.0, w1 / 1000.0, "report"
    before = [s for s in samples if s["t"] <= t_start] or samples[:1]
    during = [s for s in samples if t_start <= s["t"] <= t_end]
    if before and during:
        base = before[-1].get("nfd") or 0
        peak = max((s.get("nfd") or 0) for s in during)
        if peak - base >= 10:
            need = base + 0.98 * (peak - base)
            plateau = [s for s in during if (s.get("nfd") or 0) >= need]
            if len(plateau) >= 2:
                return plateau[0]["t"], plateau[-1]["t"], "plateau"
    return t_start, t_end, "run"


def record(args):
    """record-sfu: one run -> one JSON line on stdout, a one-line digest on stderr."""
    report = load_json(args.report)
    samples = read_samples(args.samples)
    samples.sort(key=lambda s: s["t"])
    settings = json.loads(args.settings) if args.settings else {}
    rep = report or {}
    received = num(rep.get("packets_received"))
    expected = num(rep.get("packets_expected"))
    published = num(rep.get("packets_published"))
    connected = num(rep.get("subscribers_connected"))
    measured = num(rep.get("duration_secs")) or num(settings.get("duration"))
    server = {}
    if samples:
        before = [s for s in samples if s["t"] <= args.t_start] or samples[:1]
        b = before[-1]
        server["rss_before_kib"] = b.get("rss_kib")
        server["fds_before"] = b.get("nfd")
        server["rss_hwm_kib"] = samples[-1].get("hwm_kib")
        a = ([s for s in samples if s["t"] >= args.t_end] or samples[-1:])[0]
        server["cpu_s_run"] = (a["ticks"] - b["ticks"]) / args.clk_tck
        w0, w1, method = sfu_window(report, samples, args.t_start, args.t_end)
        server["window"] = method
        server["window_secs"] = round(w1 - w0, 3)
        k0, k1 = ticks_at(samples, w0), ticks_at(samples, w1)
        if k0 is not None and k1 is not None and w1 > w0:
            cpu = (k1 - k0) / args.clk_tck
            server["cpu_s_window"] = round(cpu, 4)
            server["core_share"] = cpu / (w1 - w0)
            # Packets forwarded in the window: the generator's count when the window is
            # its own; over the plateau, its measured rate times the plateau's length;
            # over the whole run, its count (an upper bound on the cost per packet).
            if method == "plateau":
                fwd = received / measured * (w1 - w0) if received and measured else None
            else:
                fwd = received
            if fwd:
                server["packets_in_window"] = round(fwd)
                server["cpu_us_per_packet"] = cpu / fwd * 1e6
        inside = [s for s in samples if w0 <= s["t"] <= w1]
        if inside:
            server["rss_window_kib"] = inside[-1].get("rss_kib")
            if len(inside) >= 2:
                for name, core in (("server_core_busy", args.server_cpu), ("load_core_busy", args.load_cpu)):
                    v = core_busy(inside[0], inside[-1], core)
                    if v is not None:
                        server[name] = v
        if num(server.get("rss_window_kib")) is not None and num(server.get("rss_before_kib")) is not None \
                and connected:
            server["kib_per_subscriber"] = (server["rss_window_kib"] - server["rss_before_kib"]) / connected
    derived = {}
    if expected:
        derived["loss_pct"] = 100.0 * max(0.0, expected - (received or 0)) / expected
    elif num(rep.get("loss_per_million")) is not None:
        derived["loss_pct"] = rep["loss_per_million"] / 1e4
    if received is not None and measured:
        derived["received_per_sec"] = received / measured
    if published is not None and measured:
        derived["published_per_sec"] = published / measured
    status = run_status(report, args.load_rc, args.server_alive)
    if args.target == "lockstep":
        settings["lockstep_env"] = lockstep_env()
    if isinstance(report, dict):
        report = {k: v for k, v in report.items() if k != "raw"} | (
            {"raw_counters": get(report, "raw", "counters")} if get(report, "raw", "counters") else {})
    row = {
        "bench": "sfu",
        "time": now_iso(),
        "target": args.target,
        "subscribers": args.subscribers,
        "run": args.run,
        "status": status,
        "load_rc": args.load_rc,
        "server_alive": bool(args.server_alive),
        "server_version": args.server_version,
        "settings": settings,
        "report": report,
        "derived": derived,
        "server": server,
    }
    print(json.dumps(row, separators=(",", ":")))
    print(f"  {args.target} N={args.subscribers} run {args.run}: {status}, "
          f"connected {fmt(connected, '.0f')}, loss {fmt(derived.get('loss_pct'), '.2f')} %, "
          f"p99 {fmt(sfu_p99(row))} ms, server CPU {fmt(server.get('cpu_s_window'), '.2f')} s in "
          f"{fmt(server.get('window_secs'), '.1f')} s ({server.get('window', '-')}), "
          f"{fmt(server.get('cpu_us_per_packet'), '.2f')} µs/packet", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- summary


def sfu_lat(row, q):
    return num(get(row, "report", "forwarding_latency_ms", q))


def sfu_p99(row):
    return sfu_lat(row, "p99")


def sfu_passes(row, loss_pct, p99_ms):
    """Every subscriber connected, loss under the bar, p99 under the bar, status ok."""
    if row.get("status") != "ok":
        return False
    rep = row.get("report") or {}
    connected = num(rep.get("subscribers_connected"))
    if connected is None or connected < row.get("subscribers", 0):
        return False
    loss, p99 = num(get(row, "derived", "loss_pct")), sfu_p99(row)
    if loss is None or loss >= loss_pct or p99 is None or p99 >= p99_ms:
        return False
    return (num(rep.get("packets_received")) or 0) > 0


def sfu_cpu(row):
    return num(get(row, "server", "cpu_us_per_packet"))


def summarize(args):
    """sfu: the table of runs, the largest passing N per target, each peer vs Lockstep."""
    rows = rows_of(args.files, "sfu")
    if not rows:
        print("no SFU rows")
        return 1
    ok = lambda r: sfu_passes(r, args.loss_pct, args.p99_ms)
    sort_rows(rows, TARGETS, "subscribers", "run")
    out = []
    for r in rows:
        rep, s, d = r.get("report") or {}, r.get("server") or {}, r.get("derived") or {}
        pct = lambda x: fmt(100 * x if num(x) is not None else None, ".0f")
        out.append([
            r.get("target"), r.get("subscribers"), r.get("run"),
            fmt(num(rep.get("subscribers_connected")), ".0f"),
            fmt(d.get("published_per_sec"), ",.0f"),
            fmt(d.get("received_per_sec"), ",.0f"),
            fmt(d.get("loss_pct"), ".2f"),
            fmt(sfu_lat(r, "p50")), fmt(sfu_lat(r, "p99")),
            pct(s.get("core_share")),
            pct(s.get("server_core_busy")),
            fmt(s.get("cpu_us_per_packet"), ".2f"),
            fmt(s.get("rss_window_kib") / 1024 if num(s.get("rss_window_kib")) is not None else None, ".0f"),
            fmt(s.get("kib_per_subscriber"), ".0f"),
            pct(s.get("load_core_busy")),
            s.get("window", "-"),
            bar_cell(r, ok),
        ])
    print(table(
        ["target", "N", "run", "conn", "sent pkt/s", "recv pkt/s", "loss %", "p50 ms", "p99 ms",
         "server %", "core0 %", "CPU µs/pkt", "RSS MiB", "KiB/sub", "load core %", "window", "bar"],
        out, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l", "l"]))
    print(f"\nbar: every subscriber connected, loss < {args.loss_pct:g} %, forwarding p99 < "
          f"{args.p99_ms:g} ms, in every run at that N.")
    print("CPU µs/pkt = server CPU (utime+stime) in the measured window / packets received by"
          " all subscribers in it. server % = share of its one core used by the server; core0 % ="
          " how busy that core was in all (well above server %: something else ran there and"
          " the run is suspect). load core % near 100 means"
          " the generator, not the server, may be the limit. window: report = the generator's"
          " own bounds; plateau = while every subscriber was connected (server fds); run = whole"
          " run incl. setup (upper bound).")

    by = group_runs(rows, "subscribers")
    targets = sorted(by, key=target_key(TARGETS))
    summary = {}
    print()
    for target in targets:
        limit = largest_passing(by[target], ok)
        best = limit["max_n"]
        summary[target] = best
        if best is None:
            print(f"{target}: met the bar at no subscriber count tested ({', '.join(map(str, limit['counts']))})")
            continue
        runs = by[target][best]
        more, gap = limit_notes(limit)
        print(f"{target}: max N = {best}{more}: worst loss "
              f"{fmt(max(num(get(r, 'derived', 'loss_pct')) or 0 for r in runs), '.2f')} %, worst p99 "
              f"{fmt(max(sfu_p99(r) or 0 for r in runs))} ms, {fmt(mean([sfu_cpu(r) for r in runs]), '.2f')} "
              f"CPU µs per forwarded packet, {fmt(mean([get(r, 'server', 'kib_per_subscriber') for r in runs]), '.0f')}"
              f" KiB/subscriber{gap}")

    compare_to_peers(by, targets, summary, ok, sfu_cpu, "forwarded packet", "µs")
    compare_to_previous(args.files, "sfu", lambda r: f"N={r.get('subscribers')}", ("bitrate_bps",),
                        [("µs/pkt", sfu_cpu, ".2f"),
                         ("p99 ms", lambda r: sfu_lat(r, "p99"), ".1f")])
    return 0
