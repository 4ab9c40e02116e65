#!/usr/bin/env python3
"""Records and summarizes the side-by-side benchmarks (bench/fanout.sh, bench/flash_sale.sh,
bench/sfu.sh).

Subcommands (stdlib only):
  record-fanout      merge one run's lockstep-load JSON report with the server samples
                     from procsample.py into one JSON line (printed on stdout)
  record-flash-sale  wrap one flash-sale run's report into one JSON line
  fanout FILE...     table of fan-out runs, then per target the largest receiver count
                     that met the bar in every run, and Lockstep's ratios to each peer
  fanout-ab FILE...  two Lockstep builds on the fan-out benchmark (rows labelled `build`,
                     from bench/fanout_ab.sh): means per build and N, and B's ratios to A
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

# The CLI only: the subcommands and their arguments. What each one does lives in the
# summary package next to this file (summary/__init__.py lists its modules).

import argparse
import os
import sys

# The package sits next to this script; found even when Python leaves the script's
# directory off sys.path (python3 -P, PYTHONSAFEPATH).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from summary import fanout, fanout_ab, flash_sale, recording, sfu  # noqa: E402


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
    rf.set_defaults(func=fanout.record)

    rs = sub.add_parser("record-flash-sale", help="one flash-sale run -> one JSON line on stdout")
    rs.add_argument("--target", required=True)
    rs.add_argument("--run", type=int, required=True)
    rs.add_argument("--report", required=True)
    rs.add_argument("--load-rc", type=int, default=0)
    rs.add_argument("--server-alive", type=int, default=1)
    rs.add_argument("--server-version", default="")
    rs.add_argument("--settings")
    rs.set_defaults(func=flash_sale.record)

    rsf = sub.add_parser("record-sfu", help="one SFU run -> one JSON line on stdout")
    rsf.add_argument("--subscribers", type=int, required=True)
    add_sampled_run_args(rsf, "lockstep-load subscribers --json output")
    rsf.set_defaults(func=sfu.record)

    f = sub.add_parser("fanout", help="summarize fan-out JSON lines")
    f.add_argument("--p99-ms", type=float, default=100.0)
    f.add_argument("files", nargs="+")
    f.set_defaults(func=fanout.summarize)

    fab = sub.add_parser("fanout-ab", help="compare two builds' fan-out JSON lines")
    fab.add_argument("files", nargs="+")
    fab.set_defaults(func=fanout_ab.summarize)

    sf = sub.add_parser("sfu", help="summarize SFU JSON lines")
    sf.add_argument("--loss-pct", type=float, default=1.0)
    sf.add_argument("--p99-ms", type=float, default=50.0)
    sf.add_argument("files", nargs="+")
    sf.set_defaults(func=sfu.summarize)

    rec = sub.add_parser("recording", help="compare SFU runs with recording off and on")
    rec.add_argument("--recordings", required=True, help="folder the 'on' runs recorded into")
    rec.add_argument("runs", nargs="+", help="off:<jsonl> / on:<jsonl>")
    rec.set_defaults(func=recording.summarize)

    s = sub.add_parser("flash-sale", help="summarize flash-sale JSON lines")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=flash_sale.summarize)

    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
