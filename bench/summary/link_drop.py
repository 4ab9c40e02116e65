"""Link drop at any size (bench/link_drop.sh): one row per run, then per variant the
worst displayed-at spread over all runs and how many runs stayed under 20 ms, and the
same against the previous results file."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from summary.common import earlier_results  # noqa: E402


def sorted_spreads(runs, resync):
    return sorted(r["displayed_spread_ms"] for r in runs if r.get("resync_samples") == resync)


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    print(f"{'run':>3} {'resync':>6} {'viewers':>7} {'before reveal':>13} {'arrival spread ms':>17} "
          f"{'displayed spread ms':>19} {'worst |off| ms':>14} {'sync rtt max ms':>15}")
    for r in runs:
        print(f"{r['run']:>3} {r['resync_samples']:>6} {r['viewers']:>7} {r['before_reveal']:>13} "
              f"{r['arrival_spread_ms']:>17.1f} {r['displayed_spread_ms']:>19.2f} "
              f"{r['worst_offset_ms']:>14.2f} {r['sync_rtt_ms']['max']:>15.1f}")
    for resync in sorted({r["resync_samples"] for r in runs}, reverse=True):
        mine = [r for r in runs if r["resync_samples"] == resync]
        spreads = [r["displayed_spread_ms"] for r in mine]
        full = sum(r["viewers"] == r["viewers_asked"] and r["before_reveal"] == r["viewers"] for r in mine)
        print(f"resync {resync}: {len(mine)} runs, displayed spread worst {max(spreads):.2f} ms, "
              f"median {sorted(spreads)[len(spreads) // 2]:.2f} ms, under 20 ms in "
              f"{sum(s < 20 for s in spreads)}/{len(mine)}, everyone had the card before reveal_at in {full}/{len(mine)}")
    for then, name in earlier_results([path], None):
        lines = []
        for resync in sorted({r["resync_samples"] for r in runs}, reverse=True):
            now_s, then_s = sorted_spreads(runs, resync), sorted_spreads(then, resync)
            if now_s and then_s:
                lines.append(f"  resync {resync}: worst spread {then_s[-1]:.2f} -> {now_s[-1]:.2f} ms "
                             f"({now_s[-1] / then_s[-1]:.2f}x), median {then_s[len(then_s) // 2]:.2f} -> "
                             f"{now_s[len(now_s) // 2]:.2f} ms")
        if lines:
            print(f"against the previous result ({name}), then -> now:")
            print("\n".join(lines))
            break
    else:
        print("against the previous result: no earlier results file with the same variants")


if __name__ == "__main__":
    main(sys.argv[1])
