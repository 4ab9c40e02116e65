"""What every benchmark summary shares: reading results (a generator's JSON report, the
JSONL rows of bench/results/), number formatting, text tables, means and ratios, a run's
status, the order targets are listed in, the one "largest passing N" rule of the
fan-out and SFU summaries (the largest count at which every run met the bar), and the
comparison of Lockstep's runs with the previous results file of the same benchmark."""

import datetime
import json
import math
import os
import re
import statistics
import sys

# ---------------------------------------------------------------------------- reading


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


def rows_of(paths, bench):
    """The result rows of one benchmark (`bench` field) in the given JSONL files."""
    return [r for r in read_jsonl(paths) if r.get("bench") == bench]


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


# ---------------------------------------------------------------------------- recording


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_status(report, load_rc, server_alive):
    """One word for how a run went: no_report, load_failed, server_died or ok."""
    if report is None:
        return "no_report"
    if load_rc != 0:
        return "load_failed"
    if not server_alive:
        return "server_died"
    return "ok"


def lockstep_env():
    """Lockstep settings the caller exported (e.g. LOCKSTEP_ROOM__TICK_MS); never secrets."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith("LOCKSTEP_") and "SECRET" not in k}


# ---------------------------------------------------------------------------- printing


def fmt(x, spec=".1f", none="-"):
    x = num(x)
    return none if x is None else format(x, spec)


def mean(xs):
    xs = [x for x in xs if num(x) is not None]
    return statistics.fmean(xs) if xs else None


def ratio(a, b):
    """a / b as "1.23x", or "n/a" when either is missing or zero."""
    return f"{a / b:.2f}x" if a and b else "n/a"


def table(headers, rows, aligns):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(str(c).rjust(w) if a == "r" else str(c).ljust(w)
                         for c, w, a in zip(cells, widths, aligns)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def target_key(targets):
    """Sort key for target names: the listed ones first, in that order, then the rest by name."""
    order = {t: i for i, t in enumerate(targets)}
    return lambda t: (order.get(t, 99), t)


def sort_rows(rows, targets, *keys):
    """Sorts result rows in place by target (the listed ones first), then by the given keys."""
    order = {t: i for i, t in enumerate(targets)}
    rows.sort(key=lambda r: (order.get(r.get("target"), 99), r.get("target", ""),
                             *(r.get(k, 0) for k in keys)))


def bar_cell(row, passes):
    """The table's bar column: ok or FAIL for a run that completed, else its status."""
    return ("ok" if passes(row) else "FAIL") if row.get("status") == "ok" else row.get("status")


# ---------------------------------------------------------------------------- largest passing N


def group_runs(rows, count_key):
    """{target: {N: [runs]}}, N being the row's `count_key` (viewers, subscribers)."""
    by = {}
    for r in rows:
        by.setdefault(r.get("target"), {}).setdefault(r.get(count_key), []).append(r)
    return by


def largest_passing(runs_by_n, passes):
    """The largest N whose every run passes: {"max_n" (None if none did), "counts" (every N
    tested, ascending), "tested_max", "first_fail" (the smallest N with a failing run)}."""
    counts = sorted(runs_by_n)
    ok = [n for n in counts if all(passes(r) for r in runs_by_n[n])]
    return {"max_n": max(ok) if ok else None, "counts": counts,
            "tested_max": counts[-1] if counts else None,
            "first_fail": next((n for n in counts if n not in ok), None)}


def limit_notes(limit):
    """What follows "max N = ...": that it was the largest count tested, and a failure at a
    smaller count (e.g. one noisy run), if any."""
    more = " (the largest count tested: the limit may be higher)" \
        if limit["max_n"] == limit["tested_max"] else ""
    gap = ""
    if limit["first_fail"] is not None and limit["first_fail"] < limit["max_n"]:
        gap = f"; note: failed at the smaller N={limit['first_fail']}"
    return more, gap


def compare_to_peers(by, targets, max_n, passes, cost, what, unit):
    """Lockstep against each peer in `targets`: the ratio of their largest passing counts
    (`max_n`: target -> count or None), the cost ratio (peer / Lockstep) at every count
    both ran, and the headline at the largest count where both met the bar. `cost(row)`
    is a run's server CPU per `what`, in `unit`."""
    if "lockstep" not in by:
        return
    for peer in [t for t in targets if t != "lockstep"]:
        print(f"\nLockstep vs {peer}:")
        lm, pm = max_n.get("lockstep"), max_n.get(peer)
        if lm and pm:
            print(f"  max N ratio (lockstep / {peer}): {lm / pm:.2f}x ({lm:,} vs {pm:,})")
        else:
            print(f"  max N ratio: n/a (lockstep {lm}, {peer} {pm})")
        common, both_ok = common_counts(by["lockstep"], by[peer], passes)
        for n in common:
            lc = mean([cost(r) for r in by["lockstep"][n]])
            pc = mean([cost(r) for r in by[peer][n]])
            mark = "" if n in both_ok else "  (not both met the bar)"
            print(f"  N={n:>6,}: CPU per {what} ({peer} / lockstep) {ratio(pc, lc)}"
                  f"  [{fmt(pc, '.2f')} vs {fmt(lc, '.2f')} {unit}]{mark}")
        if both_ok:
            n = both_ok[-1]
            lc = mean([cost(r) for r in by["lockstep"][n]])
            pc = mean([cost(r) for r in by[peer][n]])
            if lc and pc:
                print(f"  headline: at N={n:,} (largest both met the bar) {peer} uses "
                      f"{pc / lc:.2f}x Lockstep's server CPU per {what}")


def common_counts(a, b, passes):
    """The counts both targets ran (ascending), and those of them where every run of both
    passed; a and b are {N: [runs]}."""
    common = sorted(set(a) & set(b))
    both_ok = [n for n in common if all(passes(r) for r in a[n] + b[n])]
    return common, both_ok


# ---------------------------------------------------------------------------- previous result

RESULTS_NAME = re.compile(r"^(?P<kind>.+)-\d{8}-\d{6}\.jsonl$")


def earlier_results(paths, bench):
    """The rows of `bench` (every row: None) in each results file that sits beside `paths`, is named like them
    (`<kind>-<date>-<time>.jsonl`) and is older than all of them, newest first, with the
    file's name."""
    names = [os.path.basename(p) for p in paths]
    kinds = {m.group("kind") for m in map(RESULTS_NAME.match, names) if m}
    if len(kinds) != 1:
        return
    kind, folder, oldest = kinds.pop(), os.path.dirname(os.path.abspath(paths[0])), min(names)
    try:
        listed = os.listdir(folder)
    except OSError:
        return
    for name in sorted((f for f in listed if f < oldest and (m := RESULTS_NAME.match(f))
                        and m.group("kind") == kind), reverse=True):
        path = os.path.join(folder, name)
        yield (rows_of([path], bench) if bench else read_jsonl([path])), name


def compare_to_previous(paths, bench, key, settings, metrics):
    """Prints Lockstep's means now against the newest earlier results file of the same
    benchmark (`earlier_results`) that ran Lockstep at one of the same points: a value of
    `key` (a row's receiver count, say) with the same `settings` keys. For each
    (label, value of a row, format) in `metrics`: then -> now, and the ratio now / then."""
    def lockstep_ok(rows):
        return [r for r in rows if r.get("target") == "lockstep" and r.get("status") == "ok"]
    def setup(r):
        return (key(r),) + tuple(json.dumps(get(r, "settings", k)) for k in settings)
    now = lockstep_ok(rows_of(paths, bench))
    points = sorted({setup(r) for r in now})
    for prev, name in earlier_results(paths, bench):
        then = lockstep_ok(prev)
        lines = []
        for point in points:
            a = [r for r in now if setup(r) == point]
            b = [r for r in then if setup(r) == point]
            if not b:
                continue
            parts = []
            for label, value, spec in metrics:
                x, y = mean([value(r) for r in a]), mean([value(r) for r in b])
                parts.append(f"{label} {fmt(y, spec)} -> {fmt(x, spec)} ({ratio(x, y)})")
            lines.append(f"  {point[0]}: " + ", ".join(parts))
        if lines:
            print(f"Lockstep vs the previous result ({name}), then -> now (now / then):")
            print("\n".join(lines))
            return
    print("Lockstep vs the previous result: no earlier results file ran Lockstep at these points")
