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


def _json_object(text: str) -> dict:
    """argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(value).__name__}")
    return value


def _named_bench():
    from wsgen.bench import named as bench_named
    return bench_named


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


def measure(kind: str, block: int, seconds: float, seed: int = 12345, params: dict | None = None) -> Cell:
    """Call ``take(block)`` on a fresh ``kind`` generator (default
    parameters, or ``params``) for about ``seconds`` of wall time; returns
    the counts and the time taken.

    The clock is read once per batch of calls (the batch grows until it
    lasts about 1/50 of the budget), so timing costs nothing measurable.
    """
    from wsgen.engine import create

    gen = create(kind, params or {}, seed=seed)
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
    from wsgen.engine import GENERATORS

    kinds = args.kinds or list(GENERATORS)
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown:
        print(f"unknown kind(s): {', '.join(unknown)}; known: {', '.join(GENERATORS)}", file=sys.stderr)
        return 2
    if args.params:
        from wsgen.engine import InvalidParams, create
        for kind in kinds:
            try:
                create(kind, args.params, seed=args.seed)
            except InvalidParams as exc:
                print(f"--params for {kind}: {exc}", file=sys.stderr)
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
            cell = measure(kind, b, args.seconds, seed=args.seed, params=args.params)
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
        "settings": {"seconds_per_cell": args.seconds, "blocks": blocks, "seed": args.seed, "kinds": kinds,
                     "params": args.params or {}},
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
    from wsgen.engine import GENERATORS

    parser.add_argument("--seconds", type=float, default=0.3,
                        help="wall time spent generating per (kind, block size) cell (default 0.3)")
    parser.add_argument("--kinds", type=_csv_list, default=None, metavar="KIND[,KIND...]",
                        help=f"comma-separated kinds to measure (default: all {len(GENERATORS)})")
    parser.add_argument("--blocks", type=lambda s: [int(x) for x in _csv_list(s)], default=list(DEFAULT_BLOCKS),
                        metavar="N[,N...]", help="block sizes (default 1,64,4096)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of every generator (default 12345)")
    parser.add_argument("--params", type=_json_object, default=None, metavar="JSON",
                        help="parameters of every measured kind, a JSON object such as "
                             "'{\"min\": -1, \"max\": 1}' (default: each kind's defaults)")
    parser.add_argument("--json", default="bench-results/generators.json", metavar="PATH",
                        help="where to write the JSON results ('' to skip; default bench-results/generators.json)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a kind misses a target")


# -- server scenarios (load generator in this process, server in a child) --------------

def _print_table(rows: list[dict], columns: list[str]) -> None:
    def fmt(v):
        if isinstance(v, float):
            return _si(v) if abs(v) >= 1e4 else f"{v:.3f}"
        return str(v)
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def _median_runs(runs: list[dict]) -> dict:
    """Per-key median of repeated runs (numbers), first value otherwise;
    the runs themselves under ``runs``."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in runs)
    if len(runs) > 1:
        out["runs"] = runs        # every run's numbers, in the JSON (the table shows the medians)
    return out


def _with_server(args, body: Callable, http: bool = False) -> dict:
    """Run ``body(ws_url, http_url, server_or_None)`` against ``--url`` or a child server."""
    from wsgen.client import BadURL, websocket_url
    from wsgen.bench.loadgen import ServerProcess
    if getattr(args, "url", None):
        try:
            url = websocket_url(args.url)
        except BadURL as exc:
            raise SystemExit(f"wsgen bench: --url: {exc}") from None
        from websockets.exceptions import InvalidHandshake
        try:
            return body(url, getattr(args, "http_url", None), None)
        except (OSError, InvalidHandshake, TimeoutError) as exc:   # a server that is not there (a user's mistake)
            raise SystemExit(f"wsgen bench: cannot connect to {args.url}: {exc}") from None
    server = ServerProcess.start(extra=getattr(args, "server_args", None), http=http)
    try:
        return body(server.ws_url, server.http_url, server)
    finally:
        server.stop()


def _report(name: str, args, rows: list[dict], columns: list[str], targets: dict) -> int:
    _print_table(rows, columns)
    payload = {"scenario": name, "environment": _environment(), "targets": targets, "results": rows}
    if args.json:
        _write_json(args.json, payload)
        print(f"wrote {args.json}")
    return 0


def run_throughput(args) -> int:
    import asyncio
    from wsgen.bench.loadgen import throughput
    rows = []
    for generator in args.generators:
        for enc in args.encodings:
            runs = [_with_server(args, lambda u, h, s: asyncio.run(throughput(u, enc, args.seconds, generator)))
                    for _ in range(args.repeat)]
            rows.append(_median_runs(runs))
    return _report("throughput", args, rows, ["encoding", "generator", "samples_per_s", "mb_per_s"],
                   {"json_samples_per_s": 5e6, "binary_samples_per_s": 50e6})


FANOUT_COLUMNS = ["workers", "clients", "subscriptions", "connections", "batch", "interval_s", "samples_delivered",
                  "samples_expected", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "drift_ms",
                  "server_cpu_pct", "server_cpu_us_per_msg", "server_rss_mb"]


def _fanout_run(args, subscriptions: int, batch: bool) -> dict:
    import asyncio
    from wsgen.bench.loadgen import fanout
    from wsgen.bench.loadgen import fanout_processes
    connections = max(args.connections, -(-subscriptions // 50))   # the server allows 64 per connection
    if args.clients > 1:
        runs = [_with_server(args, lambda u, h, s: fanout_processes(
            u, subscriptions, connections, args.interval, args.seconds, s, batch, args.clients), http=True)
            for _ in range(args.repeat)]
    else:
        runs = [_with_server(args, lambda u, h, s: asyncio.run(
            fanout(u, subscriptions, connections, args.interval, args.seconds, s, batch)), http=True)
            for _ in range(args.repeat)]
    row = _median_runs(runs)
    row["workers"] = args.workers if not getattr(args, "url", None) else "?"
    row["clients"] = args.clients
    return row


def _fanout_ok(row: dict, p99_ms: float = 10.0) -> bool:
    """Every sample delivered and p99 lateness <= ``p99_ms``."""
    return row["samples_delivered"] >= row["samples_expected"] and row["lateness_p99_ms"] <= p99_ms


def run_fanout(args) -> int:
    """Fan-out rows: with and without ``batch`` unless one is chosen; with
    ``--capacity``, the most subscriptions (at ``--interval``) served with
    every sample delivered and p99 <= 10 ms (``--capacity-p99-ms``): doubling from
    ``--subscriptions`` until a run fails, then bisecting to 5 %."""
    args.server_args = ["--workers", str(args.workers)]
    modes = [args.batch] if args.batch is not None else [False, True]
    rows = []
    for batch in modes:
        if not args.capacity:
            rows.append(_fanout_run(args, args.subscriptions, batch))
            continue
        good, bad, n = 0, None, args.subscriptions
        while bad is None or bad - good > max(args.connections, good // 20):
            row = _fanout_run(args, n, batch)
            row["capacity_probe"] = True
            rows.append(row)
            print(f"  {n} subscriptions, batch={batch}: p99 {row['lateness_p99_ms']:.1f} ms, "
                  f"{row['samples_delivered']}/{row['samples_expected']} delivered: "
                  f"{'ok' if _fanout_ok(row, args.capacity_p99_ms) else 'too many'}", flush=True)
            if _fanout_ok(row, args.capacity_p99_ms):
                good = n
                if bad is None and n >= args.capacity_max:
                    break          # as far as asked: the capacity is at least this
                n = min(n * 2, args.capacity_max) if bad is None else (good + bad) // 2
            else:
                bad = n
                n = (good + bad) // 2
                if n < args.connections:
                    break
        rows.append({"workers": args.workers, "batch": batch, "capacity_subscriptions": good,
                     "interval_s": args.interval, "connections": args.connections})
        print(f"capacity, {args.workers} worker(s), batch={batch}: {good} subscriptions at "
              f"{1 / args.interval:g} samples/s", flush=True)
    if args.capacity:
        return _report("fanout-capacity", args, rows, FANOUT_COLUMNS + ["capacity_subscriptions"],
                       {"lateness_p99_ms": 10})
    return _report("fanout", args, rows, FANOUT_COLUMNS,
                   {"lateness_p99_ms": 10, "drift_ms": 1, "server_cpu_pct": 60, "server_cpu_us_per_msg": 4})


def run_update(args) -> int:
    import asyncio
    from wsgen.bench.loadgen import update_latency
    runs = [_with_server(args, lambda u, h, s: asyncio.run(update_latency(u, args.updates, args.interval)))
            for _ in range(args.repeat)]
    return _report("update", args, [_median_runs(runs)], ["updates", "interval_s", "updated_p50_ms", "updated_p99_ms",
                                                          "first_sample_p50_ms", "first_sample_p99_ms"],
                   {"updated_p99_ms": 5})


def run_http(args) -> int:
    from wsgen.bench.loadgen import http_throughput
    runs = [_with_server(args, lambda u, h, s: http_throughput(h, args.seconds, args.path), http=True)
            for _ in range(args.repeat)]
    return _report("http", args, [_median_runs(runs)], ["path", "samples_per_s", "mb_per_s"],
                   {"samples_per_s": 1.5e6})


def run_memory(args) -> int:
    import asyncio
    from wsgen.bench.loadgen import idle_memory, ServerProcess
    if args.url:
        raise SystemExit("bench memory measures a child server's RSS; it does not take --url")
    rows = []
    for _ in range(args.repeat):
        server = ServerProcess.start(http=False)
        try:
            rows.append(asyncio.run(idle_memory(server.ws_url, server, args.connections)))
        finally:
            server.stop()
    return _report("memory", args, [_median_runs(rows)], ["connections", "rss_before_mb", "rss_after_mb",
                                                          "kb_per_connection"], {"kb_per_connection": 50})


def _server_options(parser: argparse.ArgumentParser, name: str, seconds: float | None = 3.0,
                    http: bool = False) -> None:
    parser.add_argument("--url", default=None, help="WebSocket URL of a running server (default: start one in a child process)")
    if http:
        parser.add_argument("--http-url", default=None, help="HTTP base URL of a running server")
    if seconds is not None:
        parser.add_argument("--seconds", type=float, default=seconds, help=f"measurement time per run (default {seconds})")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the table shows medians (default 3)")
    parser.add_argument("--json", default=f"bench-results/{name}.json", metavar="PATH",
                        help=f"where to write the JSON results ('' to skip; default bench-results/{name}.json)")


def configure_throughput(p):
    _server_options(p, "throughput")
    p.add_argument("--encodings", type=_csv_list, default=["json", "binary"], help="json,binary")
    p.add_argument("--generators", "--generator", type=_csv_list, default=["sine", "sawtooth"],
                   help="generators, one row each per encoding (default sine,sawtooth: sine's libm sin "
                        "costs about 14 ns a sample on the server, sawtooth is about 3 ns, so its rows show "
                        "what the transport carries)")


def configure_fanout(p):
    _server_options(p, "fanout", seconds=60.0)
    p.add_argument("--subscriptions", type=int, default=1000)
    p.add_argument("--connections", type=int, default=20,
                   help="connections (default 20: 50 subscriptions each, under the server's 64 per connection)")
    p.add_argument("--interval", type=float, default=0.01, help="sample interval in seconds (default 0.01 = 100/s)")
    p.add_argument("--batch", action=argparse.BooleanOptionalAction, default=None,
                   help="only with batch: true (data of one wake-up share a frame), or only without "
                        "(--no-batch); default: a row each")
    p.add_argument("--clients", type=int, default=1, metavar="K",
                   help="load-generator processes sharing the connections (default 1; one process reads "
                        "about 100,000 separate messages a second on a 2-core machine)")
    p.add_argument("--workers", default="1", metavar="N|auto",
                   help="the child server's --workers (default 1)")
    p.add_argument("--capacity", action="store_true",
                   help="find the most subscriptions served with every sample delivered and p99 <= 10 ms "
                        "(doubling from --subscriptions, then bisecting)")
    p.add_argument("--capacity-p99-ms", type=float, default=10.0, metavar="MS",
                   help="with --capacity: the lateness p99 a run may have (default 10)")
    p.add_argument("--capacity-max", type=int, default=100_000, metavar="N",
                   help="with --capacity: stop doubling at N subscriptions (default 100000)")
    p.set_defaults(repeat=1)


def configure_update(p):
    _server_options(p, "update", seconds=None)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--interval", type=float, default=0.001)


def configure_http(p):
    _server_options(p, "http", http=True)
    p.add_argument("--path", default="/sine")


def configure_memory(p):
    _server_options(p, "memory", seconds=None)
    p.add_argument("--connections", type=int, default=1000)
    p.set_defaults(repeat=1)


# -- registry -------------------------------------------------------------------------

#: scenario name -> (help, add options to its parser, run it)
SCENARIOS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "generators": ("samples/s of every generator kind at block sizes 1, 64, 4096 and us per take(1)",
                   configure_generators, run_generators),
    "throughput": ("1. one subscription at speed max, JSON and binary: samples/s and MB/s",
                   configure_throughput, run_throughput),
    "fanout": ("2. N subscriptions over M connections at an interval: delivery, lateness, drift, server CPU/RSS",
               configure_fanout, run_fanout),
    "update": ("3. live update latency: until `updated` and until the first sample with new params",
               configure_update, run_update),
    "http": ("4. HTTP compatibility path at speed=max: samples/s on one stream", configure_http, run_http),
    "memory": ("5. server memory per idle connection holding one 1 sample/s subscription",
               configure_memory, run_memory),
    "named": ("6. per-message cost of N subscribers of one named stream vs N private streams (in process)",
              lambda p: _named_bench().configure(p), lambda args: _named_bench().run(args)),
}


def configure(parser) -> None:
    """Add the bench sub-commands to ``parser`` (an argparse parser)."""
    parser.set_defaults(func=lambda args: parser.print_help())
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO", title="scenarios")
    for name, (help_text, add_options, run) in SCENARIOS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_options(p)
        p.set_defaults(func=run)
