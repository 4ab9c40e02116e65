"""A/B of two Lockstep builds on the fan-out benchmark (bench/fanout_ab.sh): the rows
carry a `build` label; per build and receiver count, the mean p50 and p99 latency, the
server's CPU seconds per million deliveries and the delivery ratio, then B's ratio to A
for each (under 1.0: B is faster or cheaper)."""

from .common import fmt, lat, mean, num, rows_of, table
from .fanout import cpu_per_m


def summarize(args):
    rows = [r for r in rows_of(args.files, "fanout") if r.get("build")]
    builds = sorted({r["build"] for r in rows})
    if len(builds) != 2:
        print(f"expected rows of two builds, found {builds}")
        return 1
    a, b = builds
    stats = {}
    for r in rows:
        rep = r.get("report") or {}
        s = stats.setdefault((r["build"], r["viewers"]), {"p50": [], "p99": [], "cpu": [], "ratio": []})
        s["p50"].append(num(lat(rep, "p50")))
        s["p99"].append(num(lat(rep, "p99")))
        s["cpu"].append(num(cpu_per_m(r)))
        s["ratio"].append(num(rep.get("delivery_ratio")))
    counts = sorted({n for _, n in stats})
    out = []
    for n in counts:
        for build in (a, b):
            s = stats.get((build, n))
            if not s:
                continue
            out.append([build, str(n), str(len(s["p50"])), fmt(mean(s["p50"])), fmt(mean(s["p99"])),
                        fmt(mean(s["cpu"]), ".2f"), fmt(mean(s["ratio"]), ".4f")])
    print(table(["build", "N", "runs", "p50 ms", "p99 ms", "CPU s / M deliveries", "delivery"], out,
                "lrrrrrr"))
    print(f"\n{b} / {a} (means over runs; under 1.0: {b} is faster or cheaper):")
    for n in counts:
        if (a, n) not in stats or (b, n) not in stats:
            continue
        def ratio(k):
            x, y = mean(stats[(a, n)][k]), mean(stats[(b, n)][k])
            return fmt(y / x, ".3f") if x and y is not None else "-"
        print(f"  N={n}: p50 x{ratio('p50')}, p99 x{ratio('p99')}, CPU per delivery x{ratio('cpu')}")
    return 0
