#!/usr/bin/env python3
"""Judges and plots a soak (bench/soak.sh): reads the sampler's JSON lines and the load
generator's report, prints the verdict and the numbers, and draws an SVG.

Pass when, between the warm-up (the first WARMUP seconds) and the end of the load (the
last sample with a connection open), memory and open file descriptors do not grow — the
least-squares drift over that window is under FLAT_PCT of their mean (or under
FLAT_FLOOR_KIB of memory, 20 descriptors) — when, once every client has gone, the
descriptors are back to what the idle server held at the start, and when nothing
errored: the load generator saw no unexpected answer, no store write failed, no actor
panicked.
The database grows with the orders it keeps (that is its job): its growth is reported
per order, not judged.

Run: python3 bench/soak_report.py SAMPLES.jsonl LOAD_REPORT.json --svg OUT.svg
     [--warmup 300]
"""

import argparse
import json
import sys

FLAT_PCT = 5.0
FLAT_FLOOR_KIB = 8 * 1024


def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def drift(points):
    """Least-squares change over the window, and the mean."""
    if len(points) < 2:
        return 0.0, points[0][1] if points else 0.0
    span = points[-1][0] - points[0][0]
    mean = sum(y for _, y in points) / len(points)
    return slope(points) * span, mean


def polyline(points, x0, x1, y_max, box, color):
    left, top, width, height = box
    if not points or x1 <= x0:
        return ""
    y_max = y_max or 1.0
    coords = " ".join(
        f"{left + (x - x0) / (x1 - x0) * width:.1f},{top + height - y / y_max * height:.1f}"
        for x, y in points
    )
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>'


def svg(panels, x0, x1, warmup_at):
    w, h, pad, gap = 900, 190, 60, 30
    total = len(panels) * (h + gap) + pad
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{total}" fill="white"/>']
    for i, (title, series) in enumerate(panels):
        top = pad / 2 + i * (h + gap)
        box = (pad, top + 20, w - 2 * pad, h - 30)
        y_max = max((y for _, pts, _ in series for _, y in pts), default=1.0) * 1.1 or 1.0
        parts.append(f'<text x="{pad}" y="{top + 12}" font-weight="bold">{title}</text>')
        parts.append(f'<rect x="{box[0]}" y="{box[1]}" width="{box[2]}" height="{box[3]}" fill="none" stroke="#999"/>')
        parts.append(f'<text x="{pad - 5}" y="{box[1] + 10}" text-anchor="end">{y_max:.0f}</text>')
        parts.append(f'<text x="{pad - 5}" y="{box[1] + box[3]}" text-anchor="end">0</text>')
        wx = box[0] + (warmup_at - x0) / max(x1 - x0, 1) * box[2]
        parts.append(f'<line x1="{wx:.1f}" y1="{box[1]}" x2="{wx:.1f}" y2="{box[1] + box[3]}" stroke="#bbb" stroke-dasharray="4"/>')
        for j, (name, pts, color) in enumerate(series):
            parts.append(polyline(pts, x0, x1, y_max, box, color))
            parts.append(f'<text x="{box[0] + box[2] - 5}" y="{box[1] + 14 + j * 14}" text-anchor="end" fill="{color}">{name}</text>')
        parts.append(f'<text x="{box[0] + box[2]}" y="{box[1] + box[3] + 14}" text-anchor="end">minutes: {(x1 - x0) / 60:.0f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples")
    ap.add_argument("load_report")
    ap.add_argument("--svg", required=True)
    ap.add_argument("--warmup", type=float, default=300.0)
    args = ap.parse_args()
    samples = [json.loads(l) for l in open(args.samples) if l.strip()]
    samples = [s for s in samples if "rss_kib" in s]
    if len(samples) < 3:
        print("too few samples to judge", file=sys.stderr)
        return 1
    load = json.load(open(args.load_report))
    t0 = samples[0]["t"]
    x1 = samples[-1]["t"] - t0
    warmup = min(args.warmup, x1 * 0.3)
    m = lambda s, k: s.get("m", {}).get(k, 0.0)
    loaded = [s for s in samples if m(s, "lockstep_connections") > 0]
    load_end = loaded[-1]["t"] if loaded else samples[-1]["t"]
    steady = [s for s in samples if s["t"] - t0 >= warmup and s["t"] <= load_end]
    rss = [(s["t"] - t0, s["rss_kib"]) for s in steady]
    fds = [(s["t"] - t0, s["nfd"]) for s in steady]
    rss_drift, rss_mean = drift(rss)
    fd_drift, fd_mean = drift(fds)
    last = samples[-1]
    failures = m(last, "lockstep_store_failures_total")
    panics = m(last, "lockstep_actor_panics_total")
    # `lockstep-load --json` writes the counters at the top level and under raw.counters.
    counters = load.get("raw", {}).get("counters") or load.get("counters")
    if counters is None or "unexpected" not in counters:
        print("the load report has no counters: cannot judge the run", file=sys.stderr)
        return 1
    unexpected = counters.get("unexpected", 0)
    orders = counters.get("orders_answered", 0)
    db_growth = samples[-1]["db_bytes"] - samples[0]["db_bytes"]
    rss_ok = rss_drift <= max(rss_mean * FLAT_PCT / 100, FLAT_FLOOR_KIB)
    fd_ok = fd_drift <= max(fd_mean * FLAT_PCT / 100, 20)
    after = [s for s in samples if s["t"] > load_end]
    fds_released = not after or after[-1]["nfd"] <= samples[0]["nfd"] + 5
    clean = unexpected == 0 and failures == 0 and panics == 0
    print(f"duration: {x1 / 60:.1f} min, {len(samples)} samples, warm-up {warmup / 60:.1f} min, "
          f"load until {(load_end - t0) / 60:.1f} min")
    print(f"RSS after warm-up: mean {rss_mean / 1024:.1f} MiB, drift {rss_drift / 1024:+.1f} MiB "
          f"(min {min(y for _, y in rss) / 1024:.1f}, max {max(y for _, y in rss) / 1024:.1f}) -> {'flat' if rss_ok else 'GROWING'}")
    print(f"open fds after warm-up: mean {fd_mean:.0f}, drift {fd_drift:+.1f} "
          f"(min {min(y for _, y in fds)}, max {max(y for _, y in fds)}) -> {'flat' if fd_ok else 'GROWING'}")
    if after:
        print(f"open fds once the clients left: {after[-1]['nfd']} (idle server at the start: "
              f"{samples[0]['nfd']}) -> {'released' if fds_released else 'HELD'}")
    print(f"threads: {samples[0]['threads']} -> {last['threads']}")
    for k in ["lockstep_connections", "lockstep_rooms", "lockstep_sales_loaded", "lockstep_media_subscribers",
              "lockstep_store_queue_depth", "lockstep_sale_pending_requests"]:
        vals = [m(s, k) for s in steady]
        print(f"{k}: min {min(vals):.0f} max {max(vals):.0f} last {m(last, k):.0f}")
    for k in ["lockstep_heartbeat_timeouts_total", "lockstep_slow_viewer_cuts_total",
              "lockstep_connections_refused_total", "lockstep_client_errors_total"]:
        print(f"{k}: {m(last, k):.0f}")
    print(f"database: {samples[0]['db_bytes'] / 1e6:.1f} -> {last['db_bytes'] / 1e6:.1f} MB"
          + (f" ({db_growth / orders:.0f} bytes per order answered)" if orders else ""))
    print(f"load generator: {json.dumps(counters)}")
    print(f"store write failures {failures:.0f}, actor panics {panics:.0f}, unexpected answers {unexpected}")
    points = lambda key: [(s["t"] - t0, key(s)) for s in samples]
    panels = [
        ("server RSS (MiB)", [("rss", points(lambda s: s["rss_kib"] / 1024), "#1f77b4")]),
        ("open file descriptors and connections", [
            ("fds", points(lambda s: s["nfd"]), "#d62728"),
            ("connections", points(lambda s: m(s, "lockstep_connections")), "#2ca02c")]),
        ("tasks and queues", [
            ("threads", points(lambda s: s["threads"]), "#7f7f7f"),
            ("sales loaded", points(lambda s: m(s, "lockstep_sales_loaded")), "#9467bd"),
            ("video subscribers", points(lambda s: m(s, "lockstep_media_subscribers")), "#ff7f0e"),
            ("store queue", points(lambda s: m(s, "lockstep_store_queue_depth")), "#8c564b"),
            ("sale requests waiting", points(lambda s: m(s, "lockstep_sale_pending_requests")), "#e377c2")]),
        ("database + WAL (MB)", [("db", points(lambda s: s["db_bytes"] / 1e6), "#17becf")]),
    ]
    with open(args.svg, "w") as f:
        f.write(svg(panels, 0, x1, warmup))
    verdict = rss_ok and fd_ok and fds_released and clean
    print("PASS" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
