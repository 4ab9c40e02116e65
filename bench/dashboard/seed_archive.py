#!/usr/bin/env python3
"""Writes a synthetic three-hour room run into an archive database (the schema of
actors/src/archive/sqlite.rs), for measuring the dashboard with a long room's data:
one point a second (online around a few thousand, dipping after some links), comments
and likes per second, 12 product links with their sale events.

    bench/dashboard/seed_archive.py <archive.db> <room> [hours]
"""

import json
import math
import random
import sqlite3
import sys
import time

SCHEMA_FROM = "the server creates the tables when it starts on this file"


def main():
    path, room = sys.argv[1], sys.argv[2]
    hours = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    secs = int(hours * 3600)
    rng = random.Random(7)
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "replays" not in tables:
        sys.exit(f"{path} has no archive tables: start lockstep once with archive.path = {path} ({SCHEMA_FROM})")
    ended = int(time.time() * 1000) - 60_000
    started = ended - secs * 1000
    cur = db.execute(
        "INSERT INTO replays (room, title, members_only, started_at, ended_at, points, events) VALUES (?, ?, 0, ?, ?, ?, 0)",
        (room, f"{hours:g}-hour benchmark room", started, ended, secs),
    )
    rid = cur.lastrowid
    links = sorted(rng.sample(range(300, secs - 300), 12))
    online, points, events, seq = 0.0, [], [], 0
    for s in range(secs):
        target = 4000 + 1500 * math.sin(s / 1800)
        if any(0 <= s - l < 120 for l in links[::3]):
            target *= 0.7
        online += (target - online) * 0.01 + rng.gauss(0, 8)
        online = max(0.0, online)
        comments = max(0, int(rng.gauss(3, 2)))
        likes = max(0, int(rng.gauss(40, 15)))
        points.append((rid, started // 1000 + s, int(online), rng.randint(0, 6), rng.randint(0, 6), comments, likes))
    db.executemany("INSERT INTO replay_series VALUES (?, ?, ?, ?, ?, ?, ?)", points)
    for i, l in enumerate(links):
        at = started + l * 1000
        sale = f"bench-sale-{i + 1}"
        for body in (
            {"at": at - 3000, "kind": "link", "sale_id": sale, "reveal_at": at, "title": f"Product {i + 1}",
             "image_url": "", "price_cents": 1900 + 100 * i, "online": points[l][2]},
            {"at": at + rng.randint(2000, 60000), "kind": "sale", "sale_id": sale, "state": "sold_out", "remaining": 0},
        ):
            seq += 1
            events.append((rid, seq, body["at"], body["kind"], json.dumps(body)))
        db.execute("INSERT INTO replay_funnel VALUES (?, ?, ?, ?)", (rid, sale, rng.randint(1000, 3000), rng.randint(200, 900)))
    db.executemany("INSERT INTO replay_events (replay_id, seq, at, kind, body) VALUES (?, ?, ?, ?, ?)", events)
    db.execute("UPDATE replays SET events = ? WHERE id = ?", (seq, rid))
    db.commit()
    print(rid)


if __name__ == "__main__":
    main()
