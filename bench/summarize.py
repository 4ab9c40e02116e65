#!/usr/bin/env python3
"""Records and summarizes the side-by-side benchmarks (bench/fanout.sh, bench/flash_sale.sh,
bench/sfu.sh).

Subcommands (stdlib only):
  record-fanout      merge one run's lockstep-load JSON report with the server samples
                     from procsample.py into one JSON line (printed on stdout)
  record-flash-sale  wrap one flash-sale run's report into one JSON line
  fanout FILE...     table of fan-out runs, then per target the largest receiver count
                     that met the bar in every run, and Lockstep's ratios to each peer
  flash-sale FILE... table of flash-sale runs, then means per target and Lockstep's ratios
  record-sfu         merge one SFU run's `lockstep-load subscribers` report with the server
                     samples into one JSON line (printed on stdout)
  sfu FILE...        table of SFU runs, then per target the largest subscriber count that
                     met the bar in every run, and each peer's CPU per forwarded packet
                     relative to Lockstep's

Examples:
  python3 bench/summarize.py fanout bench/results/fanout-20250101-120000.jsonl
  python3 bench/summarize.py fanout --p99-ms 100 bench/results/fanout-*.jsonl
"""

import argparse
import datetime
import json
import math
import os
import statistics
import sys

# ---------------------------------------------------------------------------- helpers


def load_json(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # Tolerate a report file holding several JSON lines (e.g. one per --procs child
        # followed by the merged one): the last complete object wins.
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def read_jsonl(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    print(f"warning: {path}:{n}: not JSON ({e}); skipped", file=sys.stderr)
    return rows


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def lat(report, q):
    """Latency quantile q (p50, p99, ...) in ms: `latency_ms`, or `order_ms` (flash sale)."""
    v = get(report, "latency_ms", q)
    return v if v is not None else get(report, "order_ms", q)


def sale_checks(report, orders=None):
    """The flash-sale report's own correctness checks (and every order accepted), in a word."""
    if not isinstance(report, dict):
        return "-"
    bad = []
    if num(orders) is not None and num(report.get("accepted")) is not None and report["accepted"] != orders:
        bad.append(f"accepted {report['accepted']} of {orders}")
    if report.get("oversold"):
        bad.append("oversold")
    for k in ("duplicate_order_ids", "limit_exceeded", "buyers_over_limit", "timed_out"):
        if num(report.get(k)):
            bad.append(f"{k}={report[k]}")
    if report.get("linearizable") is False:
        bad.append("not-linearizable")
    return ",".join(bad) if bad else "ok"


def fmt(x, spec=".1f", none="-"):
    x = num(x)
    return none if x is None else format(x, spec)


def mean(xs):
    xs = [x for x in xs if num(x) is not None]
    return statistics.fmean(xs) if xs else None


def table(headers, rows, aligns):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(str(c).rjust(w) if a == "r" else str(c).ljust(w)
                         for c, w, a in zip(cells, widths, aligns)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
        c0, c1 = get(w0, "cores", str(core)), get(w1, "cores", str(core))
        if c0 and c1 and c1[1] > c0[1]:
            out[name] = (c1[0] - c0[0]) / (c1[1] - c0[1])
    return out


def cmd_record_fanout(args):
    report = load_json(args.report)
    samples = []
    if args.samples and os.path.exists(args.samples):
        with open(args.samples) as f:
            for line in f:
                try:
                    samples.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
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
        # Lockstep settings the caller exported (e.g. LOCKSTEP_ROOM__TICK_MS); never secrets.
        settings["lockstep_env"] = {k: v for k, v in sorted(os.environ.items())
                                    if k.startswith("LOCKSTEP_") and "SECRET" not in k}
    if report is None:
        status = "no_report"
    elif args.load_rc != 0:
        status = "load_failed"
    elif not args.server_alive:
        status = "server_died"
    else:
        status = "ok"
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


def cmd_record_flash_sale(args):
    report = load_json(args.report)
    if report is None:
        status = "no_report"
    elif args.load_rc != 0:
        status = "load_failed"
    elif not args.server_alive:
        status = "server_died"
    else:
        status = "ok"
    row = {
        "bench": "flash_sale",
        "time": now_iso(),
        "target": args.target,
        "run": args.run,
        "status": status,
        "load_rc": args.load_rc,
        "server_alive": bool(args.server_alive),
        "server_version": args.server_version,
        "settings": json.loads(args.settings) if args.settings else {},
        "report": report,
    }
    print(json.dumps(row, separators=(",", ":")))
    print(f"  {args.target} run {args.run}: {status}, accepted {get(report, 'accepted')}, "
          f"{fmt(get(report, 'orders_per_sec'), ',.0f')} orders/s, "
          f"p99 {fmt(lat(report, 'p99'))} ms, checks {sale_checks(report, row['settings'].get('orders'))}",
          file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- fanout


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


def cmd_fanout(args):
    rows = [r for r in read_jsonl(args.files) if r.get("bench") == "fanout"]
    if not rows:
        print("no fan-out rows")
        return 1
    order = {t: i for i, t in enumerate(["lockstep", "nats", "socketio"])}
    rows.sort(key=lambda r: (order.get(r.get("target"), 99), r.get("target", ""),
                             r.get("viewers", 0), r.get("run", 0)))
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
            ("ok" if passes(r, args.p99_ms) else "FAIL") if r.get("status") == "ok" else r.get("status"),
        ])
    print(table(
        ["target", "N", "run", "p50 ms", "p99 ms", "delivery", "deliveries/s",
         "CPU s/M steady", "CPU s/M run", "KiB/conn", "load core %", "join fail", "bar"],
        out, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"]))
    print(f"\nbar: p99 < {args.p99_ms:g} ms, delivered == expected, no failed joins, in every run.")
    print("CPU s/M = server CPU seconds per million deliveries (steady: all viewers connected;"
          " run: whole run incl. joins). load core % = busy share of the generator's core;"
          " near 100 means the generator, not the server, may be the limit.")

    by = {}
    for r in rows:
        by.setdefault(r.get("target"), {}).setdefault(r.get("viewers"), []).append(r)
    summary = {}
    print()
    for target in sorted(by, key=lambda t: (order.get(t, 99), t)):
        counts = sorted(by[target])
        ok = [n for n in counts if all(passes(r, args.p99_ms) for r in by[target][n])]
        best = max(ok) if ok else None
        s = {"max_n": best, "tested_max": counts[-1] if counts else None,
             "first_fail": next((n for n in counts if n not in ok), None)}
        if best is not None:
            runs = by[target][best]
            s["dps"] = mean([get(r, "report", "deliveries_per_sec") for r in runs])
            s["p99"] = max(num(lat(r.get("report"), "p99")) or 0 for r in runs)
            s["cpu"] = mean([cpu_per_m(r) for r in runs])
            s["kib"] = mean([get(r, "server", "kib_per_conn") for r in runs])
        summary[target] = s
        if best is None:
            print(f"{target}: met the bar at no receiver count tested ({', '.join(map(str, counts))})")
            continue
        more = " (the largest count tested: the limit may be higher)" if best == s["tested_max"] else ""
        gap = ""
        if s["first_fail"] is not None and s["first_fail"] < best:
            gap = f"; note: failed at the smaller N={s['first_fail']}"
        print(f"{target}: max N = {best:,}{more}: {fmt(s['dps'], ',.0f')} deliveries/s, "
              f"worst p99 {fmt(s['p99'])} ms, {fmt(s['cpu'], '.2f')} CPU s per million deliveries, "
              f"{fmt(s['kib'], '.1f')} KiB/conn{gap}")

    if "lockstep" in summary:
        ls = summary["lockstep"]
        for peer in [t for t in summary if t != "lockstep"]:
            ps = summary[peer]
            print(f"\nLockstep vs {peer}:")
            if ls["max_n"] and ps["max_n"]:
                print(f"  max N ratio (lockstep / {peer}): {ls['max_n'] / ps['max_n']:.2f}x "
                      f"({ls['max_n']:,} vs {ps['max_n']:,})")
            else:
                print(f"  max N ratio: n/a (lockstep {ls['max_n']}, {peer} {ps['max_n']})")
            # CPU per delivery at every count both ran, and at the largest both passed.
            common = sorted(set(by["lockstep"]) & set(by[peer]))
            both_ok = [n for n in common
                       if all(passes(r, args.p99_ms) for r in by["lockstep"][n] + by[peer][n])]
            for n in common:
                lc = mean([cpu_per_m(r) for r in by["lockstep"][n]])
                pc = mean([cpu_per_m(r) for r in by[peer][n]])
                ratio = f"{pc / lc:.2f}x" if lc and pc else "n/a"
                mark = "" if n in both_ok else "  (not both met the bar)"
                print(f"  N={n:>6,}: CPU per delivery ratio ({peer} / lockstep) {ratio}"
                      f"  [{fmt(pc, '.2f')} vs {fmt(lc, '.2f')} CPU s/M]{mark}")
            if both_ok:
                n = both_ok[-1]
                lc = mean([cpu_per_m(r) for r in by["lockstep"][n]])
                pc = mean([cpu_per_m(r) for r in by[peer][n]])
                if lc and pc:
                    print(f"  headline: at N={n:,} (largest both met the bar) {peer} uses "
                          f"{pc / lc:.2f}x Lockstep's server CPU per delivery")
    return 0


# ---------------------------------------------------------------------------- flash sale


def cmd_flash_sale(args):
    rows = [r for r in read_jsonl(args.files) if r.get("bench") == "flash_sale"]
    if not rows:
        print("no flash-sale rows")
        return 1
    order = {t: i for i, t in enumerate(["lockstep", "redis-aof-always", "redis-no-persistence"])}
    rows.sort(key=lambda r: (order.get(r.get("target"), 99), r.get("target", ""), r.get("run", 0)))
    out = []
    for r in rows:
        rep = r.get("report") or {}
        out.append([r.get("target"), r.get("run"), get(rep, "accepted") if get(rep, "accepted") is not None else "-",
                    fmt(get(rep, "orders_per_sec"), ",.0f"), fmt(lat(rep, "p50")),
                    fmt(lat(rep, "p99")), sale_checks(r.get("report"), get(r, "settings", "orders")),
                    r.get("status")])
    print(table(["target", "run", "accepted", "orders/s", "p50 ms", "p99 ms", "checks", "status"], out,
                ["l", "r", "r", "r", "r", "r", "l", "l"]))
    means = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        m = means.setdefault(r["target"], {"ops": [], "p99": []})
        m["ops"].append(get(r, "report", "orders_per_sec"))
        m["p99"].append(lat(r.get("report"), "p99"))
    print()
    for t in sorted(means, key=lambda t: (order.get(t, 99), t)):
        print(f"{t}: mean {fmt(mean(means[t]['ops']), ',.0f')} accepted orders/s, "
              f"mean p99 {fmt(mean(means[t]['p99']))} ms over {len(means[t]['ops'])} run(s)")
    if "lockstep" in means:
        lo, lp = mean(means["lockstep"]["ops"]), mean(means["lockstep"]["p99"])
        for t in [t for t in means if t != "lockstep"]:
            po, pp = mean(means[t]["ops"]), mean(means[t]["p99"])
            tp = f"{lo / po:.2f}x" if lo and po else "n/a"
            p99r = f"{pp / lp:.2f}x" if lp and pp else "n/a"
            print(f"Lockstep vs {t}: orders/s ratio (lockstep / {t}) {tp}; "
                  f"p99 ratio ({t} / lockstep) {p99r} ({fmt(pp)} vs {fmt(lp)} ms)")
    return 0


# ---------------------------------------------------------------------------- sfu

# Names the subscribers report may give the measured window's bounds (Unix ms).
WINDOW_KEYS = [("window_start_unix_ms", "window_end_unix_ms"),
               ("measure_start_unix_ms", "measure_end_unix_ms")]


def ticks_at(samples, t):
    """Server CPU ticks at wall time t, interpolated linearly between the two samples
    around it (None outside the sampled span)."""
    for a, b in zip(samples, samples[1:]):
        if a["t"] <= t <= b["t"]:
            if b["t"] == a["t"]:
                return a["ticks"]
            return a["ticks"] + (b["ticks"] - a["ticks"]) * (t - a["t"]) / (b["t"] - a["t"])
    return None


def core_busy(w0, w1, core):
    c0, c1 = get(w0, "cores", str(core)), get(w1, "cores", str(core))
    if c0 and c1 and c1[1] > c0[1]:
        return (c1[0] - c0[0]) / (c1[1] - c0[1])
    return None


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


def cmd_record_sfu(args):
    report = load_json(args.report)
    samples = []
    if args.samples and os.path.exists(args.samples):
        with open(args.samples) as f:
            for line in f:
                try:
                    samples.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
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
    if report is None:
        status = "no_report"
    elif args.load_rc != 0:
        status = "load_failed"
    elif not args.server_alive:
        status = "server_died"
    else:
        status = "ok"
    if args.target == "lockstep":
        settings["lockstep_env"] = {k: v for k, v in sorted(os.environ.items())
                                    if k.startswith("LOCKSTEP_") and "SECRET" not in k}
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


def cmd_sfu(args):
    rows = [r for r in read_jsonl(args.files) if r.get("bench") == "sfu"]
    if not rows:
        print("no SFU rows")
        return 1
    order = {t: i for i, t in enumerate(["lockstep", "janus", "janus-threads"])}
    rows.sort(key=lambda r: (order.get(r.get("target"), 99), r.get("target", ""),
                             r.get("subscribers", 0), r.get("run", 0)))
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
            ("ok" if sfu_passes(r, args.loss_pct, args.p99_ms) else "FAIL") if r.get("status") == "ok"
            else r.get("status"),
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

    by = {}
    for r in rows:
        by.setdefault(r.get("target"), {}).setdefault(r.get("subscribers"), []).append(r)
    summary = {}
    print()
    for target in sorted(by, key=lambda t: (order.get(t, 99), t)):
        counts = sorted(by[target])
        ok = [n for n in counts if all(sfu_passes(r, args.loss_pct, args.p99_ms) for r in by[target][n])]
        best = max(ok) if ok else None
        summary[target] = best
        if best is None:
            print(f"{target}: met the bar at no subscriber count tested ({', '.join(map(str, counts))})")
            continue
        runs = by[target][best]
        more = " (the largest count tested: the limit may be higher)" if best == counts[-1] else ""
        gap = ""
        first_fail = next((n for n in counts if n not in ok), None)
        if first_fail is not None and first_fail < best:
            gap = f"; note: failed at the smaller N={first_fail}"
        print(f"{target}: max N = {best}{more}: worst loss "
              f"{fmt(max(num(get(r, 'derived', 'loss_pct')) or 0 for r in runs), '.2f')} %, worst p99 "
              f"{fmt(max(sfu_p99(r) or 0 for r in runs))} ms, {fmt(mean([sfu_cpu(r) for r in runs]), '.2f')} "
              f"CPU µs per forwarded packet, {fmt(mean([get(r, 'server', 'kib_per_subscriber') for r in runs]), '.0f')}"
              f" KiB/subscriber{gap}")

    if "lockstep" in by:
        for peer in [t for t in sorted(by, key=lambda t: (order.get(t, 99), t)) if t != "lockstep"]:
            print(f"\n{peer} vs Lockstep:")
            lm, pm = summary.get("lockstep"), summary.get(peer)
            if lm and pm:
                print(f"  max N ratio (lockstep / {peer}): {lm / pm:.2f}x ({lm} vs {pm})")
            else:
                print(f"  max N ratio: n/a (lockstep {lm}, {peer} {pm})")
            common = sorted(set(by["lockstep"]) & set(by[peer]))
            both_ok = [n for n in common
                       if all(sfu_passes(r, args.loss_pct, args.p99_ms) for r in by["lockstep"][n] + by[peer][n])]
            for n in common:
                lc = mean([sfu_cpu(r) for r in by["lockstep"][n]])
                pc = mean([sfu_cpu(r) for r in by[peer][n]])
                ratio = f"{pc / lc:.2f}x" if lc and pc else "n/a"
                mark = "" if n in both_ok else "  (not both met the bar)"
                print(f"  N={n:>5}: CPU per forwarded packet ({peer} / lockstep) {ratio}"
                      f"  [{fmt(pc, '.2f')} vs {fmt(lc, '.2f')} µs]{mark}")
            if both_ok:
                n = both_ok[-1]
                lc = mean([sfu_cpu(r) for r in by["lockstep"][n]])
                pc = mean([sfu_cpu(r) for r in by[peer][n]])
                if lc and pc:
                    print(f"  headline: at N={n} (largest both met the bar) {peer} uses "
                          f"{pc / lc:.2f}x Lockstep's server CPU per forwarded packet")
    return 0


# ---------------------------------------------------------------------------- main


def add_sampled_run_args(parser, report_help):
    """The arguments of a run whose server was sampled (procsample.py) while the
    generator ran: what ran, where, and the generator's time bounds."""
    parser.add_argument("--target", required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--report", required=True, help=report_help)
    parser.add_argument("--samples", help="procsample.py output")
    parser.add_argument("--t-start", type=float, required=True, help="wall time the generator started")
    parser.add_argument("--t-end", type=float, required=True, help="wall time the generator exited")
    parser.add_argument("--clk-tck", type=int, default=os.sysconf("SC_CLK_TCK"))
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--load-rc", type=int, default=0)
    parser.add_argument("--server-alive", type=int, default=1)
    parser.add_argument("--server-version", default="")
    parser.add_argument("--settings", help="JSON object of the run's settings")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    rf = sub.add_parser("record-fanout", help="one fan-out run -> one JSON line on stdout")
    rf.add_argument("--viewers", type=int, required=True)
    add_sampled_run_args(rf, "lockstep-load --json output")
    rf.set_defaults(func=cmd_record_fanout)

    rs = sub.add_parser("record-flash-sale", help="one flash-sale run -> one JSON line on stdout")
    rs.add_argument("--target", required=True)
    rs.add_argument("--run", type=int, required=True)
    rs.add_argument("--report", required=True)
    rs.add_argument("--load-rc", type=int, default=0)
    rs.add_argument("--server-alive", type=int, default=1)
    rs.add_argument("--server-version", default="")
    rs.add_argument("--settings")
    rs.set_defaults(func=cmd_record_flash_sale)

    rsf = sub.add_parser("record-sfu", help="one SFU run -> one JSON line on stdout")
    rsf.add_argument("--subscribers", type=int, required=True)
    add_sampled_run_args(rsf, "lockstep-load subscribers --json output")
    rsf.set_defaults(func=cmd_record_sfu)

    f = sub.add_parser("fanout", help="summarize fan-out JSON lines")
    f.add_argument("--p99-ms", type=float, default=100.0)
    f.add_argument("files", nargs="+")
    f.set_defaults(func=cmd_fanout)

    sf = sub.add_parser("sfu", help="summarize SFU JSON lines")
    sf.add_argument("--loss-pct", type=float, default=1.0)
    sf.add_argument("--p99-ms", type=float, default=50.0)
    sf.add_argument("files", nargs="+")
    sf.set_defaults(func=cmd_sfu)

    s = sub.add_parser("flash-sale", help="summarize flash-sale JSON lines")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_flash_sale)

    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
