"""Testing an anomaly detector: the server scores it live.

A rolling robust z-score detector reads a composition (noise, spikes and
level shifts) block by block as it arrives, reports its alarms on the same
connection (``sub.detect``), and asks the server for the figures
(``await sub.score()``): event-wise precision/recall/F1, point-wise ones,
detection delay and the NAB score. No home-made scoring: the server knows
the truth of every sample it sent (docs/protocol.md, "Scoring a detector").

    python clients/examples/detector_testing.py [ws://127.0.0.1:8765]
"""
import asyncio
import sys
from collections import deque

import numpy as np

from wsgen.client import Client

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765"
N = 20_000
WINDOW = 200
THRESHOLD = 5.0
SPEC = {
    "interval": 1.0,
    "base": {"kind": "constant", "params": {"value": 10.0}},
    "noise": {"kind": "normal", "std_dev": 1.0},
    "anomalies": [
        {"kind": "spike", "placement": {"mode": "random", "probability": 0.0005}, "height": 8.0},
        {"kind": "level-shift", "placement": {"mode": "periodic", "every": 2500}, "min_length": 30,
         "max_length": 60, "height": 7.0},
    ],
}


class RollingZScore:
    """Flags a value more than ``threshold`` robust deviations from the median
    of the ``window`` values before it (after a warm-up of ``window``)."""

    def __init__(self, window: int, threshold: float) -> None:
        self.past: deque = deque(maxlen=window)
        self.threshold = threshold

    def step(self, value: float) -> bool:
        flag = False
        if len(self.past) == self.past.maxlen:
            past = np.fromiter(self.past, float)
            med = np.median(past)
            mad = np.median(np.abs(past - med)) * 1.4826 + 1e-9
            flag = abs(value - med) / mad > self.threshold
        self.past.append(value)
        return flag


async def main() -> None:
    detector = RollingZScore(WINDOW, THRESHOLD)
    async with Client(URL) as client:
        sub = await client.subscribe(SPEC, seed=7, speed="max", score={"window": 200})
        seen = 0
        while seen < N:
            block = await sub.take(min(1000, N - seen))
            alarms = [int(s) for s, v in zip(block.seqs, block.values) if detector.step(v)]
            if alarms:
                sub.detect(seqs=alarms)        # sent at once; the stream goes on
            seen += len(block)
        # speed "max": the server has sent more than the detector read; score what it saw
        f = await sub.score(last=int(block.seqs[-1]))
        await sub.unsubscribe()
    e, p, d = f["events"], f["points"], f["delay"]["samples"]
    print(f"{f['samples']} samples, {e['anomalies']} anomalies, {f['alarms']} alarms")
    # events are scored over anomaly windows (overlapping windows merge: there can be fewer than anomalies)
    print(f"events over {e['windows']} windows: detected {e['detected']}, missed {e['missed']}, "
          f"false positives {e['false_positives']}; "
          f"precision {e['precision']:.3f} recall {e['recall']:.3f} F1 {e['f1']:.3f}")
    print(f"points: precision {p['precision']:.3f} recall {p['recall']:.3f} F1 {p['f1']:.3f}")
    print(f"delay: median {d['median']} samples, max {d['max']}")
    print("NAB: " + ", ".join(f"{name} {f['nab'][name]['score']:.1f}"
                               for name in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")))


if __name__ == "__main__":
    asyncio.run(main())
