"""Recording's cost to forwarding: SFU runs with recording off and on (bench/recording.sh),
side by side, plus the disk rate of the recordings the "on" runs wrote."""

import json
import pathlib

from statistics import median


def summarize(args):
    rows = {"off": [], "on": []}
    for spec in args.runs:
        mode, path = spec.split(":", 1)
        for line in pathlib.Path(path).read_text().splitlines():
            run = json.loads(line)
            if run.get("status") != "ok":
                print(f"{mode}: run not ok ({run.get('status')}) in {path}")
                continue
            rows[mode].append(run)
    print(f"{'recording':<10} {'run':>3} {'subs':>5} {'loss %':>7} {'p99 ms':>7} {'CPU µs/pkt':>11} {'RSS MiB':>8}")
    for mode in ("off", "on"):
        for i, run in enumerate(rows[mode], 1):
            r, s = run["report"], run["server"]
            print(f"{mode:<10} {i:>3} {run['subscribers']:>5} {run['derived']['loss_pct']:>7.3f} "
                  f"{r['forwarding_latency_ms']['p99']:>7.1f} {s['cpu_us_per_packet']:>11.2f} "
                  f"{s['rss_hwm_kib'] / 1024:>8.1f}")
    off = [r["server"]["cpu_us_per_packet"] for r in rows["off"]]
    on = [r["server"]["cpu_us_per_packet"] for r in rows["on"]]
    if off and on:
        print(f"CPU per forwarded packet, median: off {median(off):.2f} µs, on {median(on):.2f} µs "
              f"(on ÷ off {median(on) / median(off):.3f}x)")
    metas = sorted(pathlib.Path(args.recordings).rglob("*.json"))
    rates = []
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        if meta.get("duration_ms"):
            rate = meta["bytes"] * 8 / (meta["duration_ms"] / 1000)
            rates.append(rate)
            print(f"recording {meta_path.parent.parent.name}/{meta['file']}: {meta['bytes'] / 1e6:.1f} MB over "
                  f"{meta['duration_ms'] / 1000:.1f} s = {rate / 1e6:.2f} Mbit/s, {len(meta['keyframes_ms'])} keyframes, "
                  f"complete={meta['complete']}, stopped={meta['stopped']}")
    if rates:
        print(f"disk rate, median: {median(rates) / 8 / 1e6:.3f} MB/s ({median(rates) / 1e6:.2f} Mbit/s)")
