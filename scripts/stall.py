#!/usr/bin/env python
"""Worst event-loop stall: subscribe to every extreme request while a 10 ms
stream runs on another connection, and report the longest loop step.

A wsgen server runs in a thread of this process (its event loop watched by
:class:`wsgen.server.loopwatch.LoopWatch`: wall and CPU time of every callback).
A paced sine at ``--interval`` (10 ms) runs on one connection; each case of
:func:`wsgen.bench.worstcase.cases` (every generator kind and injector at its
parameter extremes, at the largest ``start_seq``) is subscribed on its own
connection, read for a few messages and closed, one after the other. With
``--http N``, N clients also read ``speed=max`` ndjson streams from the HTTP
port as fast as they can for ``--seconds``.

Prints the ten costliest cases (loop CPU and wall per step), then the worst
step overall and the paced stream's largest gap between arrivals. Not a
test: numbers. Exit status 1 when a loop step took more than ``--max-ms``
of CPU.

    python scripts/stall.py                    # every case (a few minutes)
    python scripts/stall.py --sample 40        # all named kinds, 40 random composition cases
    python scripts/stall.py --only issue-13    # cases whose name contains this
    python scripts/stall.py --http 5 --cases 0 # five speed=max HTTP readers, no cases
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time

from wsgen.server.config import Settings
from wsgen.server.loopwatch import LoopWatch
from wsgen.server.serve import start
from wsgen.bench.worstcase import Paced, cases, paced_stream, subscribe_case


class _Server:
    """wsgen in a thread with its own event loop (both ports, loopback)."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wsgen-server", daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(start(settings), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _http_reader(url: str, stop: asyncio.Event, counts: list[int], i: int) -> None:
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /sine?speed=max&format=ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    while not stop.is_set():
        data = await reader.read(1 << 16)
        if not data:
            break
        counts[i] += data.count(b"\n")
    writer.close()


async def _run(args, url: str, http_url: str | None, watch: LoopWatch) -> int:
    paced = Paced()
    stop = asyncio.Event()
    stream = None

    async def responsive(timeout: float = 300.0) -> None:
        """Wait for the paced stream's next message (restarting it if a stall killed it)."""
        nonlocal stream
        if stream is None or stream.done():
            if stream is not None and not stream.cancelled():
                stream.exception()
            stream = asyncio.create_task(paced_stream(url, paced, args.interval, stop))
        count, deadline = len(paced.arrivals), time.perf_counter() + timeout
        while len(paced.arrivals) <= count and time.perf_counter() < deadline:
            if stream.done():
                if not stream.cancelled():
                    stream.exception()   # (retrieved: a stall closed it, the restart says so)
                stream = asyncio.create_task(paced_stream(url, paced, args.interval, stop))
            await asyncio.sleep(0.01)

    await responsive()
    results = []
    gcs = []      # the longest garbage collection of each run
    start_all = time.perf_counter()
    selected = [c for c in cases(sample=args.sample, seed=args.seed) if args.only in c.name]
    if args.cases is not None:
        selected = selected[:args.cases]
    for case in selected:
        watch.reset()
        t = time.perf_counter()
        try:
            reply = await subscribe_case(url, case)
            outcome = "ok" if reply.get("type") == "subscribed" else reply.get("code", "?")
        except Exception as exc:     # a measurement tool: say it and go on
            outcome = f"failed: {type(exc).__name__}: {exc}"
        ended = time.perf_counter()
        await responsive()           # the server answers again: its stalled step, if any, is recorded
        gap = paced.largest_gap(t, ended)
        gcs.append(watch.worst_gc)
        results.append((watch.worst_cpu, watch.worst_wall, gap, case.name, outcome, ended - t))
        if args.verbose:
            print(f"{case.name:60s} cpu {watch.worst_cpu.seconds * 1e3:7.2f} ms  wall "
                  f"{watch.worst_wall.seconds * 1e3:7.2f} ms  gap {gap * 1e3:7.1f} ms  {ended - t:6.2f} s  {outcome}",
                  flush=True)
    readers = []
    if args.http and http_url:
        watch.reset()
        counts = [0] * args.http
        before = len(paced.arrivals)
        t = time.perf_counter()
        readers = [asyncio.create_task(_http_reader(http_url, stop, counts, i)) for i in range(args.http)]
        await asyncio.sleep(1.0)      # the requests' setup: then the streams only
        watch.reset()
        before, counts[:] = len(paced.arrivals), [0] * args.http
        t = time.perf_counter()
        await asyncio.sleep(args.seconds)
        lags = sorted(paced.lags[before:])
        gcs.append(watch.worst_gc)
        results.append((watch.worst_cpu, watch.worst_wall, paced.largest_gap(t, time.perf_counter()),
                        f"http x{args.http} speed=max",
                        f"{sum(counts) / args.seconds / 1e6:.2f} M lines/s; paced lag p99 "
                        f"{lags[int(0.99 * (len(lags) - 1))] * 1e3 if lags else 0:.1f} ms", args.seconds))
    stop.set()
    for task in [stream, *readers]:
        task.cancel()
    await asyncio.gather(stream, *readers, return_exceptions=True)
    results.sort(key=lambda r: r[0].seconds, reverse=True)
    print(f"{len(results)} runs in {time.perf_counter() - start_all:.1f} s; costliest by loop CPU per step:")
    print(f"{'loop cpu ms':>11} {'loop wall ms':>12} {'paced gap ms':>12}  case / outcome / what ran")
    for cpu, wall, gap, name, outcome, _ in results[:10]:
        print(f"{cpu.seconds * 1e3:11.2f} {wall.seconds * 1e3:12.2f} {gap * 1e3:12.1f}  {name}  [{outcome}]  {cpu.what}")
    worst = max((r[0] for r in results), default=None)
    worst_wall = max((r[1] for r in results), default=None)
    gap = max((r[2] for r in results), default=0.0)
    print(f"longest garbage collection in the loop's thread (not counted in the steps): "
          f"{max(gcs, default=watch.worst_gc).seconds * 1e3:.2f} ms")
    if worst is not None:
        print(f"worst loop step: {worst.seconds * 1e3:.2f} ms CPU ({worst.what}); {worst_wall.seconds * 1e3:.2f} ms "
              f"wall ({worst_wall.what}); paced {args.interval * 1e3:g} ms stream's largest gap {gap * 1e3:.1f} ms")
    return 1 if worst is not None and worst.seconds * 1e3 > args.max_ms else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--sample", type=int, default=None, help="random composition cases to try (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample and of the registry mixes")
    p.add_argument("--only", default="", help="only the cases whose name contains this")
    p.add_argument("--cases", type=int, default=None, help="at most this many cases")
    p.add_argument("--interval", type=float, default=0.01, help="the paced stream's interval (default 0.01 s)")
    p.add_argument("--http", type=int, default=0, help="speed=max ndjson HTTP readers to run after the cases")
    p.add_argument("--seconds", type=float, default=5.0, help="how long the HTTP readers run (default 5)")
    p.add_argument("--max-ms", type=float, default=20.0, help="exit 1 above this loop CPU per step (default 20)")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per case as it runs")
    args = p.parse_args(argv)
    server = _Server(Settings(host="127.0.0.1", port=0, http_port=None if args.http else 0,
                              graceful_timeout_s=1, log_level="warning"))
    try:
        with LoopWatch(server.thread.ident) as watch:
            return asyncio.run(_run(args, server.running.ws_url, server.running.http_url, watch))
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
