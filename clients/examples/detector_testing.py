"""Testing an anomaly detector against labelled data.

The anomaly generators send a label with every sample (True = injected
anomaly). This runs a rolling z-score detector over a ``clustered`` stream
and scores it against the labels: precision, recall, F1.

    python clients/examples/detector_testing.py [ws://127.0.0.1:8765]
"""
import asyncio
import sys

import numpy as np

from wsgen.client import Client

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765"
N = 20_000
WINDOW = 200
THRESHOLD = 4.0


def zscore_detector(values: np.ndarray, window: int, threshold: float) -> np.ndarray:
    """Flag samples more than `threshold` robust deviations from the median of
    the preceding `window` samples. Returns bool (n,)."""
    flags = np.zeros(len(values), dtype=bool)
    for i in range(window, len(values)):
        past = values[i - window:i]
        med = np.median(past)
        mad = np.median(np.abs(past - med)) * 1.4826 + 1e-9
        flags[i] = abs(values[i] - med) / mad > threshold
    return flags


async def main() -> None:
    async with Client(URL) as client:
        # Noise is added by hand below; the generator gives a flat level with labelled clusters.
        sub = await client.subscribe("clustered", {"anomaly_magnitude": 8.0, "interval": 1.0},
                                     seed=7, speed="max")
        block = await sub.take(N)
        await sub.unsubscribe()
    rng = np.random.default_rng(0)
    values = block.values + rng.normal(0, 1.0, N)
    truth = block.labels
    flags = zscore_detector(values, WINDOW, THRESHOLD)
    scored = slice(WINDOW, None)       # the detector needs a warm-up window
    tp = int(np.sum(flags[scored] & truth[scored]))
    fp = int(np.sum(flags[scored] & ~truth[scored]))
    fn = int(np.sum(~flags[scored] & truth[scored]))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"{N} samples, {int(truth.sum())} labelled anomalous; detector flagged {int(flags.sum())}")
    print(f"precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
