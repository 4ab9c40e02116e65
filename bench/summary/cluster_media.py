#!/usr/bin/env python3
"""bench/cluster_media.sh's rows and table: video across nodes.

  record --case C --run R --subscribers N --report F --before F --after F --clk-tck T
         --load-rc RC --duration D      one JSON line (stdout) for the results file
  FILES...                              the table and the ratios cluster / single

A row holds the generator's report (loss, forwarding latency, time to first frame) and,
per process, the CPU seconds between the two snapshots and the media packets each node
forwarded in that window (to its own subscribers; the owner's uplinks to edges too), so
CPU µs per forwarded packet is per node and for the whole set-up."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from summary.common import fmt, get, load_json, mean, now_iso, num, rows_of, table  # noqa: E402

CASES = ["single", "cluster", "edges", "edges-nocache"]


def parse_snapshot(path):
    ticks, metrics, t = {}, {}, None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts[0] == "ticks":
                ticks[parts[1]] = int(parts[2])
            elif parts[0] == "metric":
                metrics.setdefault(parts[1], {})[parts[2]] = float(parts[3])
            elif parts[0] == "time":
                t = float(parts[2])
    return ticks, metrics, t


def record(argv):
    args = dict(zip(argv[::2], argv[1::2]))
    report = load_json(args["--report"]) or {}
    t0, m0, s0 = parse_snapshot(args["--before"])
    _, mstart, _ = parse_snapshot(args["--start"]) if "--start" in args else ({}, {}, None)
    t1, m1, s1 = parse_snapshot(args["--after"])
    clk = int(args["--clk-tck"])
    nodes = {}
    for name in t1:
        cpu = (t1[name] - t0.get(name, t1[name])) / clk
        node = {"cpu_s": round(cpu, 3)}
        if name in m1:
            def delta(metric):
                return m1[name].get(metric, 0) - m0.get(name, {}).get(metric, 0)

            node["packets_out"] = int(delta("lockstep_media_packets_out_total"))
            node["uplink_packets"] = int(delta("lockstep_media_uplink_packets_total"))
            node["subscribers"] = int(m1[name].get("lockstep_media_subscribers", 0))
            node["pulls"] = int(m1[name].get("lockstep_media_pulls", 0))
            node["uplinks"] = int(m1[name].get("lockstep_media_uplinks", 0))

            def joins(metric):
                return int(m0.get(name, {}).get(metric, 0) - mstart.get(name, {}).get(metric, 0))

            node["join_keyframe_requests"] = joins("lockstep_media_keyframe_requests_total")
            node["join_cache_hits"] = joins("lockstep_media_keyframe_cache_hits_total")
            forwarded = node["packets_out"] + node["uplink_packets"]
            node["us_per_packet"] = round(cpu * 1e6 / forwarded, 2) if forwarded else None
        nodes[name] = node
    cpu_total = sum(n["cpu_s"] for n in nodes.values())
    delivered = sum(n.get("packets_out", 0) for n in nodes.values())
    row = {
        "bench": "cluster_media",
        "time": now_iso(),
        "case": args["--case"],
        "run": int(args["--run"]),
        "subscribers": int(args["--subscribers"]),
        "load_rc": int(args["--load-rc"]),
        "window_s": round(s1 - s0, 2) if s0 and s1 else None,
        "report": report,
        "nodes": nodes,
        "derived": {
            "cpu_s": round(cpu_total, 3),
            "us_per_delivered_packet": round(cpu_total * 1e6 / delivered, 2) if delivered else None,
            "loss_pct": (get(report, "loss_per_million") or 0) / 1e4,
        },
    }
    import json

    print(json.dumps(row))
    return 0


def summary(paths):
    rows = rows_of(paths, "cluster_media")
    if not rows:
        print("no cluster_media rows")
        return 1
    order = {c: i for i, c in enumerate(CASES)}
    rows.sort(key=lambda r: (order.get(r["case"], 9), r["run"]))
    out = []
    for r in rows:
        rep, d = r.get("report") or {}, r["derived"]
        per_node = "; ".join(
            f"{name}: {fmt(n.get('us_per_packet'), '.1f')} µs/pkt ({n.get('subscribers', '-')} subs"
            + (f", {n['uplinks']} uplinks" if n.get("uplinks") else "")
            + f"; joins: {n.get('join_keyframe_requests', '-')} keyframe requests up, "
            + f"{n.get('join_cache_hits', '-')} cache starts)"
            for name, n in r["nodes"].items()
            if "packets_out" in n
        )
        out.append([
            r["case"], r["run"], get(rep, "subscribers_connected"), fmt(d["loss_pct"], ".3f"),
            fmt(get(rep, "forwarding_latency_ms", "p50"), ".1f"), fmt(get(rep, "forwarding_latency_ms", "p99"), ".1f"),
            fmt(get(rep, "first_frame_ms", "p50"), ".0f"), fmt(get(rep, "first_frame_ms", "p99"), ".0f"),
            fmt(d["us_per_delivered_packet"], ".2f"), per_node,
        ])
    print(table(["case", "run", "subs", "loss %", "p50 ms", "p99 ms", "first frame p50 ms", "p99 ms",
                 "CPU µs/delivered pkt (all processes)", "per node"],
                out, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "l"]))
    means = {}
    for r in rows:
        means.setdefault(r["case"], []).append(r)
    print()
    for case in sorted(means, key=lambda c: order.get(c, 9)):
        rs = means[case]
        print(f"{case}: CPU {fmt(mean([r['derived']['us_per_delivered_packet'] for r in rs]), '.2f')} µs per delivered "
              f"packet, p50 {fmt(mean([get(r, 'report', 'forwarding_latency_ms', 'p50') for r in rs]), '.1f')} ms, "
              f"p99 {fmt(mean([get(r, 'report', 'forwarding_latency_ms', 'p99') for r in rs]), '.1f')} ms, first frame p50 "
              f"{fmt(mean([get(r, 'report', 'first_frame_ms', 'p50') for r in rs]), '.0f')} ms over {len(rs)} run(s)")
    if "single" in means:
        base = mean([r["derived"]["us_per_delivered_packet"] for r in means["single"]])
        for case in ("cluster", "edges"):
            if case in means and num(base):
                v = mean([r["derived"]["us_per_delivered_packet"] for r in means[case]])
                if num(v):
                    print(f"  {case} / single CPU per delivered packet: {v / base:.2f}x")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "record":
        sys.exit(record(sys.argv[2:]))
    sys.exit(summary(sys.argv[1:]))
