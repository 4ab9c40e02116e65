"""The server samples bench/procsample.py writes while a generator runs (one JSON line
each: wall time `t`, CPU `ticks`, `rss_kib`, `hwm_kib`, open fds `nfd`, per-core
`cores`): reading them, and CPU figures between two of them."""

import json
import os

from .common import get


def read_samples(path):
    """The samples in `path` (unreadable lines skipped); [] without a path or file."""
    samples = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    samples.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return samples


def core_busy(w0, w1, core):
    """Busy share of CPU `core` between samples w0 and w1 (None when not known)."""
    c0, c1 = get(w0, "cores", str(core)), get(w1, "cores", str(core))
    if c0 and c1 and c1[1] > c0[1]:
        return (c1[0] - c0[0]) / (c1[1] - c0[1])
    return None


def ticks_at(samples, t):
    """Server CPU ticks at wall time t, interpolated linearly between the two samples
    around it (None outside the sampled span)."""
    for a, b in zip(samples, samples[1:]):
        if a["t"] <= t <= b["t"]:
            if b["t"] == a["t"]:
                return a["ticks"]
            return a["ticks"] + (b["ticks"] - a["ticks"]) * (t - a["t"]) / (b["t"] - a["t"])
    return None
