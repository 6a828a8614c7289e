"""Benchmarks that print numbers: ``wsgen bench <scenario>``.

Each scenario is a function ``scenario(args) -> int`` registered in
:data:`SCENARIOS` with a function that adds its options to its argparse
sub-parser. Every scenario prints a table and writes its numbers as JSON
(``--json PATH``, default ``bench-results/<scenario>.json``).

Scenarios:

* ``generators``: samples per second of every generator kind at block sizes
  1, 64 and 4096 (single thread, ``time.perf_counter``), and the cost of one
  ``take(1)`` call in microseconds. Targets: >= 10 M samples/s at block 4096
  for every kind, < 5 us per call at block 1. Calls are timed in batches of
  about 1/50 of the budget; throughput is total samples / total time, and
  the verdict uses the median batch, so a burst of other load on the
  machine does not fail a kind (both are in the JSON).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable

#: Targets of the ``generators`` scenario.
TARGET_SAMPLES_PER_S_4096 = 10e6
TARGET_US_PER_CALL_1 = 5.0

DEFAULT_BLOCKS = (1, 64, 4096)


# -- helpers shared by scenarios ------------------------------------------------

def _environment() -> dict:
    import numpy as np
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
    }


def _write_json(path: str, payload: dict) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")


def _si(x: float) -> str:
    """1234567 -> '1.23 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


def _csv_list(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


# -- scenario: generators ---------------------------------------------------------

@dataclass
class Cell:
    """One measurement: ``kind`` taken in blocks of ``block`` samples."""

    kind: str
    block: int
    calls: int
    samples: int
    seconds: float
    batch_us_per_call: list[float]   # per timing batch, in order

    @property
    def median_us_per_call(self) -> float:
        return statistics.median(self.batch_us_per_call) if self.batch_us_per_call else 0.0

    @property
    def median_samples_per_s(self) -> float:
        med = self.median_us_per_call
        return self.block / med * 1e6 if med else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    @property
    def us_per_call(self) -> float:
        return self.seconds / self.calls * 1e6 if self.calls else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "samples_per_s": self.samples_per_s, "us_per_call": self.us_per_call,
                "median_samples_per_s": self.median_samples_per_s, "median_us_per_call": self.median_us_per_call}


def measure(kind: str, block: int, seconds: float, seed: int = 12345) -> Cell:
    """Call ``take(block)`` on a fresh default ``kind`` generator for about
    ``seconds`` of wall time; returns the counts and the time taken.

    The clock is read once per batch of calls (the batch grows until it
    lasts about 1/50 of the budget), so timing costs nothing measurable.
    """
    from .generators import create

    gen = create(kind, seed=seed)
    take = gen.take
    for _ in range(3):          # warm caches, lazy state, first event batch
        take(block)
    gc.collect()
    batch, calls, per_batch = 1, 0, []
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        t0 = now
        for _ in range(batch):
            take(block)
        calls += batch
        now = time.perf_counter()
        if now - t0 < seconds / 50:
            batch *= 2
        else:
            per_batch.append((now - t0) / batch * 1e6)
    elapsed = now - start
    if not per_batch:           # a tiny budget: fall back to the whole run
        per_batch.append(elapsed / calls * 1e6)
    return Cell(kind, block, calls, calls * block, elapsed, per_batch)


def run_generators(args) -> int:
    """``wsgen bench generators``: every kind x block sizes; table + JSON."""
    from .generators import GENERATORS

    kinds = args.kinds or list(GENERATORS)
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown:
        print(f"unknown kind(s): {', '.join(unknown)}; known: {', '.join(GENERATORS)}", file=sys.stderr)
        return 2
    blocks = sorted(set(args.blocks))
    if any(b < 1 for b in blocks):
        print("block sizes must be >= 1", file=sys.stderr)
        return 2

    cells: list[Cell] = []
    rows = []
    header = ["kind"] + [f"block {b} (S/s)" for b in blocks] + ["us/call @1", "median", "targets"]
    print(f"generator throughput, single thread, ~{args.seconds:g} s per cell "
          f"(targets: >= {_si(TARGET_SAMPLES_PER_S_4096)}S/s at block 4096, < {TARGET_US_PER_CALL_1:g} us/call at block 1)")
    widths = [max(len(h), 18) if i == 0 else max(len(h), 12) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    misses = []
    for kind in kinds:
        by_block = {}
        for b in blocks:
            cell = measure(kind, b, args.seconds, seed=args.seed)
            cells.append(cell)
            by_block[b] = cell
        per_call = by_block[1].us_per_call if 1 in by_block else None
        med_call = by_block[1].median_us_per_call if 1 in by_block else None
        ok_tp = by_block[4096].median_samples_per_s >= TARGET_SAMPLES_PER_S_4096 if 4096 in by_block else None
        ok_call = med_call < TARGET_US_PER_CALL_1 if med_call is not None else None
        verdict = "ok" if (ok_tp is not False and ok_call is not False) else "MISS"
        if verdict == "MISS":
            misses.append(kind)
        row = [kind] + [_si(by_block[b].samples_per_s) for b in blocks] + [
            f"{per_call:.2f}" if per_call is not None else "-",
            f"{med_call:.2f}" if med_call is not None else "-", verdict]
        rows.append(row)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))),
              flush=True)

    summary = {}
    for kind in kinds:
        mine = {c.block: c for c in cells if c.kind == kind}
        summary[kind] = {
            "samples_per_s": {str(b): mine[b].samples_per_s for b in blocks},
            "median_samples_per_s": {str(b): mine[b].median_samples_per_s for b in blocks},
            "us_per_call_block_1": mine[1].us_per_call if 1 in mine else None,
            "median_us_per_call_block_1": mine[1].median_us_per_call if 1 in mine else None,
            "meets_targets": kind not in misses,
        }
    payload = {
        "scenario": "generators",
        "environment": _environment(),
        "settings": {"seconds_per_cell": args.seconds, "blocks": blocks, "seed": args.seed, "kinds": kinds},
        "targets": {"samples_per_s_at_block_4096": TARGET_SAMPLES_PER_S_4096,
                    "us_per_call_at_block_1": TARGET_US_PER_CALL_1},
        "cells": [c.as_dict() for c in cells],
        "summary": summary,
        "misses": misses,
    }
    if args.json:
        _write_json(args.json, payload)
        print(f"wrote {args.json}")
    if misses:
        print(f"below target: {', '.join(misses)}")
    return 1 if (misses and args.check) else 0


def configure_generators(parser: argparse.ArgumentParser) -> None:
    from .generators import GENERATORS

    parser.add_argument("--seconds", type=float, default=0.3,
                        help="wall time spent generating per (kind, block size) cell (default 0.3)")
    parser.add_argument("--kinds", type=_csv_list, default=None, metavar="KIND[,KIND...]",
                        help=f"comma-separated kinds to measure (default: all {len(GENERATORS)})")
    parser.add_argument("--blocks", type=lambda s: [int(x) for x in _csv_list(s)], default=list(DEFAULT_BLOCKS),
                        metavar="N[,N...]", help="block sizes (default 1,64,4096)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of every generator (default 12345)")
    parser.add_argument("--json", default="bench-results/generators.json", metavar="PATH",
                        help="where to write the JSON results ('' to skip; default bench-results/generators.json)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a kind misses a target")


# -- registry -------------------------------------------------------------------------

#: scenario name -> (help, add options to its parser, run it)
SCENARIOS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "generators": ("samples/s of every generator kind at block sizes 1, 64, 4096 and us per take(1)",
                   configure_generators, run_generators),
}


def configure(parser) -> None:
    """Add the bench sub-commands to ``parser`` (an argparse parser)."""
    parser.set_defaults(func=lambda args: parser.print_help())
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO", title="scenarios")
    for name, (help_text, add_options, run) in SCENARIOS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_options(p)
        p.set_defaults(func=run)
