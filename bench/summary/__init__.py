"""The side-by-side benchmark summaries behind bench/summarize.py (the CLI entry point,
which owns the subcommands and their arguments). Stdlib only.

  common.py      reading results (JSON reports, JSONL rows), number formatting, tables,
                 means and ratios, a run's status, and the one "largest passing N" rule
                 the fan-out and SFU summaries share
  samples.py     the server samples procsample.py writes (CPU ticks, per-core busy time)
  fanout.py      bench/fanout.sh: record-fanout and the fanout summary
  fanout_ab.py   bench/fanout_ab.sh: two Lockstep builds compared on the fan-out run
  flash_sale.py  bench/flash_sale.sh: record-flash-sale and the flash-sale summary
  sfu.py         bench/sfu.sh: record-sfu and the sfu summary
"""
