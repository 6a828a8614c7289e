"""Measures of scoring (issue 16): run ``python scripts/score_cost.py``.

1. The largest difference between wsgen's NAB scores and NAB's own
   (tests/data/nab_reference.json, made by scripts/nab_reference.py).
2. The time one live ``score`` takes at the limits of a scored subscription
   (wsgen.scoring.live.MAX_EVENTS events, MAX_ALARMS alarms): it runs on the
   event loop, so it must stay well under 20 ms.
3. What keeping the truth costs per data message of 8192 samples.
4. ``POST /score``'s work (regenerating and scoring) for 10 million samples.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

import wsgen
from wsgen.scoring import live as detection
from wsgen.scoring.offline import parse, score_definition
from wsgen.protocol.session import Session

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, n: int = 7) -> tuple[float, float]:
    """Best and median wall time of ``fn()`` in ms."""
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3, statistics.median(ts) * 1e3


def nab_agreement() -> None:
    ref = json.loads((ROOT / "tests" / "data" / "nab_reference.json").read_text())
    worst, n = 0.0, 0
    for c in ref["cases"]:
        f = wsgen.score([(a, a) for a in c["anomalies"]], c["alarms"], length=c["length"],
                        probation=c["probation"])
        for name, r in c["profiles"].items():
            worst = max(worst, abs(f["nab"][name]["raw"] - r["raw"]))
            if r["score"] is not None:
                worst = max(worst, abs(f["nab"][name]["score"] - r["score"]))
            n += 1
    print(f"NAB: {n} case-profiles, largest |wsgen - NAB| (raw and normalised) {worst:.1e}")


def live_at_limits() -> None:
    s = Session()
    s.handle(json.dumps({"type": "subscribe", "id": "r", "generator": "random", "seed": 1, "speed": "max",
                         "params": {"anomaly_probability": 0.05}, "score": True}))
    sub = s.subscriptions["r"]
    while sub.score.limit is None:
        sub.take(time.monotonic(), 8192)
    live = sub.score
    rng = np.random.default_rng(1)
    seqs = sorted(set(rng.integers(0, live.last, 2 * detection.MAX_ALARMS).tolist()))[:detection.MAX_ALARMS]
    for i in range(0, len(seqs), 5000):
        live.detect(seqs[i:i + 5000], None, time.monotonic())
    best, med = timed(lambda: live.figures(1.0))
    print(f"live score at the limits ({len(live._firsts)} events, {live.alarms} alarms, {live.last + 1} samples): "
          f"best {best:.1f} ms, median {med:.1f} ms")


def record_cost() -> None:
    out = []
    for scored in (False, True):
        s = Session()
        s.handle(json.dumps({"type": "subscribe", "id": "r", "generator": "random", "seed": 1, "speed": "max",
                             "params": {"anomaly_probability": 0.001}, "score": scored}))
        sub = s.subscriptions["r"]
        best, _ = timed(lambda: [sub.take(time.monotonic(), 8192) for _ in range(50)], 5)
        out.append(best / 50 * 1e3)
    print(f"data message of 8192 samples (random): {out[0]:.1f} us unscored, {out[1]:.1f} us scored")


def offline() -> None:
    d = parse({"generator": "random", "params": {"anomaly_probability": 0.001}, "seed": 1, "last": 9_999_999})
    best, med = timed(lambda: score_definition(d, list(range(0, 10_000_000, 997))), 3)
    print(f"POST /score work, 10 M samples of random, 10031 alarms: best {best:.0f} ms, median {med:.0f} ms")


if __name__ == "__main__":
    nab_agreement()
    live_at_limits()
    record_cost()
    offline()
