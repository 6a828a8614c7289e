"""Sync client: capture samples into numpy arrays without writing async code.

    python clients/examples/sync_numpy.py [ws://127.0.0.1:8765]
"""
import sys

import numpy as np

from wsgen.client import stream, to_numpy

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765"

# 10 000 samples of a noisy level, as fast as the server sends them (speed "max").
values, labels, seqs, timestamps = to_numpy(URL, "normal", 10_000, {"mean": 5.0, "std_dev": 2.0}, seed=42)
print(f"{len(values)} samples, seqs {seqs[0]}..{seqs[-1]}, mean {values.mean():.3f}, std {values.std():.3f}")
print(f"stream time spans {timestamps[-1] - timestamps[0]:.0f} s (interval {np.diff(timestamps).mean():.3f} s)")

# Blocks as they arrive, live (here 20 samples per second of stream time, 5x real time).
total = 0
for block in stream(URL, "square", {"interval": 0.05, "frequency": 1, "sample_rate": 10}, seed=1, speed=5):
    total += len(block)
    print(f"block seq {block.seq}: {block.values.tolist()}")
    if total >= 20:
        break   # leaving the loop closes the connection
