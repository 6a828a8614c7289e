"""Cost of the five original anomaly kinds: standalone vs composition preset.

Prints microseconds per ``take(1)`` and per ``take(4096)`` for
``wsgen.create(name)`` and ``Composite(preset(name))`` (default params,
seed 7), best of ``--repeat`` timeit runs, timed in CPU seconds of the thread
(``time.thread_time``), so that other processes on a loaded machine count less.

    PYTHONPATH=$PWD python scripts/bench_presets.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import time
import timeit

from wsgen.engine.composite import Composite, preset
from wsgen.engine.registry import ANOMALY_KINDS, create


def per_call_us(gen, m: int, calls: int, repeat: int) -> float:
    gen.take(m)  # warm
    return min(timeit.repeat(lambda: gen.take(m), number=calls, repeat=repeat, timer=time.thread_time)) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'kind':20} {'take(1) std':>12} {'preset':>9} {'ratio':>6} {'take(4096) std':>15} {'preset':>9} {'ratio':>6}")
    for name in ANOMALY_KINDS:
        row = []
        for m, calls in ((1, 2000), (4096, 100)):
            a = per_call_us(create(name, {}, seed=7), m, calls, args.repeat)
            b = per_call_us(Composite(preset(name, {}), seed=7), m, calls, args.repeat)
            row += [a, b, b / a]
        print(f"{name:20} {row[0]:12.2f} {row[1]:9.2f} {row[2]:6.1f} {row[3]:15.1f} {row[4]:9.1f} {row[5]:6.1f}")


if __name__ == "__main__":
    main()
