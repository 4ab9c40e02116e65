#!/usr/bin/env python3
"""Samples a Lockstep server for bench/soak.sh every INTERVAL seconds, one JSON line each:
  {"t": wall s, "rss_kib", "nfd": open fds, "threads", "db_bytes": database + WAL + shm,
   "m": {metric: value} for the gauges and counters in METRICS (from /metrics)}
until PID exits or this sampler gets SIGTERM. Stdlib only.

Run: python3 bench/soak_sample.py --pid PID --metrics URL --db PATH --out FILE [--interval 10]
"""

import argparse
import json
import os
import signal
import sys
import time
import urllib.request

METRICS = [
    "lockstep_connections",
    "lockstep_rooms",
    "lockstep_sales_loaded",
    "lockstep_sale_pending_requests",
    "lockstep_store_queue_depth",
    "lockstep_store_failures_total",
    "lockstep_media_subscribers",
    "lockstep_media_publishers",
    "lockstep_heartbeat_timeouts_total",
    "lockstep_slow_viewer_cuts_total",
    "lockstep_client_errors_total",
    "lockstep_connections_refused_total",
    "lockstep_tcp_connections",
    "lockstep_frames_out_total",
    "lockstep_actor_panics_total",
]


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def metrics(url):
    """Sums each wanted metric over its labels."""
    found = {}
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if base in METRICS:
                found[base] = found.get(base, 0.0) + float(value)
    return found


def db_bytes(db):
    return sum(os.path.getsize(p) for p in (db, db + "-wal", db + "-shm") if os.path.exists(p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=10.0)
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
                st = status(args.pid)
                sample = {
                    "t": round(time.time(), 3),
                    "rss_kib": st["VmRSS"],
                    "threads": st["Threads"],
                    "nfd": len(os.listdir(f"/proc/{args.pid}/fd")),
                    "db_bytes": db_bytes(args.db),
                    "m": metrics(args.metrics),
                }
            except (FileNotFoundError, ProcessLookupError):
                break
            except OSError as e:  # /metrics briefly unreachable: keep the process numbers
                sample = {"t": round(time.time(), 3), "error": str(e)}
            out.write(json.dumps(sample, separators=(",", ":")) + "\n")
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
