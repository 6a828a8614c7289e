#!/usr/bin/env python
"""Soak run: the fan-out load against a ``wsgen serve`` child process for
``--minutes``, watching the server's memory.

The load is :func:`wsgen.bench.loadgen.fanout` (N subscriptions over M connections,
clients reading continuously) run back to back in segments of ``--segment``
seconds, each on fresh connections, so the run also churns connections and
subscriptions. After each segment the server's RSS and CPU are sampled; the
table shows every segment, then the RSS at the start (after the first
segment's warm-up) and at the end, and the growth in percent.

Not a CI test: it prints numbers. Exit status 1 when RSS grew more than
``--max-growth`` percent or samples went missing, 0 otherwise.

    python scripts/soak.py --minutes 10 --subscriptions 300 --connections 10
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

from wsgen.bench.loadgen import ServerProcess, fanout


def _row(cells: list, widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="total load time (default 10)")
    p.add_argument("--subscriptions", type=int, default=300)
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--interval", type=float, default=0.01, help="sample interval in seconds (default 0.01)")
    p.add_argument("--segment", type=float, default=60.0,
                   help="seconds per fan-out run; each run opens fresh connections (default 60)")
    p.add_argument("--max-growth", type=float, default=20.0,
                   help="RSS growth in percent above which the exit status is 1 (default 20)")
    args = p.parse_args(argv)

    total = args.minutes * 60
    segments = max(1, round(total / args.segment))
    seconds = total / segments
    server = ServerProcess.start(http=False)
    print(f"soak: {args.subscriptions} subscriptions over {args.connections} connections at "
          f"{args.interval:g} s for {args.minutes:g} min ({segments} runs of {seconds:.0f} s); "
          f"server pid {server.proc.pid} at {server.ws_url}", flush=True)
    columns = ["run", "elapsed_s", "delivered", "expected", "missing_%", "p50_ms", "p99_ms", "max_ms",
               "drift_ms", "cpu_%", "rss_mb"]
    widths = [max(len(c), 9) for c in columns]
    print(_row(columns, widths), flush=True)
    rows = []
    started = time.monotonic()
    rss_idle = server.rss_bytes() / 1e6
    try:
        for i in range(segments):
            r = asyncio.run(fanout(server.ws_url, args.subscriptions, args.connections, args.interval,
                                   seconds, server))
            if server.proc.poll() is not None:
                print(f"server exited with {server.proc.returncode}: {server.proc.stderr.read()}")
                return 1
            rows.append(r)
            missing = 100 * (1 - r["samples_delivered"] / r["samples_expected"]) if r["samples_expected"] else 0
            print(_row([i + 1, f"{time.monotonic() - started:.0f}", r["samples_delivered"],
                        r["samples_expected"], f"{missing:.3f}", f"{r['lateness_p50_ms']:.2f}",
                        f"{r['lateness_p99_ms']:.2f}", f"{r['lateness_max_ms']:.1f}", f"{r['drift_ms']:.2f}",
                        f"{r['server_cpu_pct']:.0f}", f"{r['server_rss_mb']:.1f}"], widths), flush=True)
    finally:
        server.stop()
        err = server.proc.stderr.read()
    start_mb = rows[0]["server_rss_start_mb"]          # loaded, after the first run's warm-up
    end_mb = rows[-1]["server_rss_mb"]
    growth = 100 * (end_mb - start_mb) / start_mb
    delivered = sum(r["samples_delivered"] for r in rows)
    expected = sum(r["samples_expected"] for r in rows)
    print()
    print(_row(["rss_idle_mb", "rss_start_mb", "rss_end_mb", "growth_%", "delivered", "expected"], [12] * 6))
    print(_row([f"{rss_idle:.1f}", f"{start_mb:.1f}", f"{end_mb:.1f}", f"{growth:+.2f}", delivered, expected],
               [12] * 6))
    if "Traceback" in err:
        print("server stderr:\n" + err)
        return 1
    ok = growth <= args.max_growth and delivered >= 0.999 * expected
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
