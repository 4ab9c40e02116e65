"""The flash-sale benchmark (bench/flash_sale.sh): `record-flash-sale` wraps one run's
`lockstep-load flash-sale` report into one JSON line; `flash-sale` prints the table of
runs with the report's own correctness checks, the means per target, Lockstep's ratios
to each peer (accepted orders/s, p99) and to the previous results file."""

import json
import sys

from .common import (compare_to_previous, fmt, get, lat, load_json, mean, now_iso, num,
                     ratio, rows_of, run_status, sort_rows, table, target_key)

TARGETS = ["lockstep", "redis-aof-always", "redis-no-persistence"]


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


def record(args):
    """record-flash-sale: one run -> one JSON line on stdout, a one-line digest on stderr."""
    report = load_json(args.report)
    status = run_status(report, args.load_rc, args.server_alive)
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


def summarize(args):
    """flash-sale: the table of runs, the means per target, Lockstep vs each peer."""
    rows = rows_of(args.files, "flash_sale")
    if not rows:
        print("no flash-sale rows")
        return 1
    sort_rows(rows, TARGETS, "run")
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
    for t in sorted(means, key=target_key(TARGETS)):
        print(f"{t}: mean {fmt(mean(means[t]['ops']), ',.0f')} accepted orders/s, "
              f"mean p99 {fmt(mean(means[t]['p99']))} ms over {len(means[t]['ops'])} run(s)")
    if "lockstep" in means:
        lo, lp = mean(means["lockstep"]["ops"]), mean(means["lockstep"]["p99"])
        for t in [t for t in means if t != "lockstep"]:
            po, pp = mean(means[t]["ops"]), mean(means[t]["p99"])
            print(f"Lockstep vs {t}: orders/s ratio (lockstep / {t}) {ratio(lo, po)}; "
                  f"p99 ratio ({t} / lockstep) {ratio(pp, lp)} ({fmt(pp)} vs {fmt(lp)} ms)")
    compare_to_previous(args.files, "flash_sale", lambda r: f"{get(r, 'settings', 'buyers')} buyers",
                        ("orders", "stock", "limit"),
                        [("orders/s", lambda r: get(r, "report", "orders_per_sec"), ",.0f"),
                         ("p99 ms", lambda r: lat(r.get("report"), "p99"), ".1f")])
    return 0
