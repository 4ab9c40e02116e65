#!/usr/bin/env python3
"""Samples one server process for bench/fanout.sh: CPU ticks, RSS, open fds, per-core busy.

Every INTERVAL seconds it appends one JSON line to OUT:
  {"t": wall seconds, "ticks": utime+stime of PID (all threads, clock ticks),
   "rss_kib": VmRSS, "hwm_kib": VmHWM, "nfd": open file descriptors of PID,
   "cores": {"0": [busy_ticks, total_ticks], ...}}   (from /proc/stat)
until PID exits or this sampler gets SIGTERM/SIGINT. The open-fd count tells when all
viewers are connected (each WebSocket is one fd on every server benchmarked), which is
how summarize.py finds the steady phase of a run. Stdlib only.

Run: python3 bench/procsample.py --pid PID --out FILE [--interval 0.5]
"""

import argparse
import json
import os
import signal
import sys
import time


def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the command name (which may contain spaces and parentheses).
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime is field 14, stime field 15.
    return int(rest[11]) + int(rest[12])


def proc_mem(pid):
    rss = hwm = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def cores():
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(v) for v in parts[1:]]
                idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
                total = sum(vals[:8])  # guest time is already in user/nice
                out[parts[0][3:]] = [total - idle, total]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args()

    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    with open(args.out, "a", buffering=1) as out:
        next_at = time.monotonic()
        while not stop:
            try:
                sample = {
                    "t": round(time.time(), 3),
                    "ticks": proc_ticks(args.pid),
                }
                sample["rss_kib"], sample["hwm_kib"] = proc_mem(args.pid)
                sample["nfd"] = len(os.listdir(f"/proc/{args.pid}/fd"))
                sample["cores"] = cores()
            except (FileNotFoundError, ProcessLookupError):
                break  # the process is gone
            out.write(json.dumps(sample, separators=(",", ":")) + "\n")
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
