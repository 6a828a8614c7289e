"""Write wsgen/static/datasets/example.csv: the built-in series of ``replay``
(its ``file`` left empty). One day (2026-01-05, a Monday, UTC) of per-minute
CPU load in percent: a daily profile, noise, and three labelled incidents
(a spike at 05:00, a level shift 11:40-12:09, a dip to 0 at 18:20-18:25).

Run from the repository top: ``python scripts/make_example_dataset.py``.
"""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "wsgen" / "static" / "datasets" / "example.csv"


def main() -> None:
    rng = np.random.default_rng(20260105)
    minutes = np.arange(1440)
    load = 35 + 20 * np.sin(2 * np.pi * minutes / 1440 - np.pi / 2) + rng.normal(0, 2.0, 1440)
    labels = np.zeros(1440, bool)
    load[300] += 45                      # a spike
    labels[300] = True
    load[700:730] += 25                  # a level shift
    labels[700:730] = True
    load[1100:1106] = 0.0                # a dip (a stalled collector)
    labels[1100:1106] = True
    load = np.clip(load, 0, 100).round(2)
    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "label"])
        for i in minutes:
            w.writerow([(start + timedelta(minutes=int(i))).strftime("%Y-%m-%dT%H:%M:%SZ"), f"{load[i]:.2f}",
                        int(labels[i])])


if __name__ == "__main__":
    main()
