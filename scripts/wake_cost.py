"""CPU cost of an asyncio event loop's timer wake-ups on this machine, with no work in them.

The fan-out path wakes once per connection per sample interval (a loop
timer each). Part of the server's CPU per data message is the loop's own
cost of those wake-ups: the timer handle, the heap, and, when the loop has
nothing else to do, the ``epoll_wait`` sleep and the kernel's wake-up of
the process (on a VM, a timer interrupt and often an exit to the host).
This script runs ``N`` callbacks that each re-arm themselves every
``--interval`` seconds at spread phases, as ``N`` connections' wake-ups
do, and prints the process CPU per wake-up and per second. With few
timers each wake-up is its own sleep; with many, asyncio runs those
falling in the same millisecond in one turn (``epoll_wait``'s timeout is
rounded up to whole milliseconds), so the sleeps are shared.

    python scripts/wake_cost.py [--timers 10 100] [--interval 0.01] [--seconds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time


async def wake_cost(timers: int, interval: float, seconds: float) -> dict:
    """Run ``timers`` self-re-arming callbacks for ``seconds``; CPU per wake-up."""
    loop = asyncio.get_running_loop()
    count = 0

    def tick(due: float) -> None:
        nonlocal count
        count += 1
        loop.call_at(due + interval, tick, due + interval)

    t0 = loop.time() + interval
    for k in range(timers):
        loop.call_at(t0 + k * interval / timers, tick, t0 + k * interval / timers)
    await asyncio.sleep(interval * 2)
    count, cpu0, wall0 = 0, time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"timers": timers, "wake_ups_per_s": round(count / wall),
            "cpu_pct": round(100 * cpu / wall, 1), "cpu_us_per_wake_up": round(1e6 * cpu / count, 2) if count else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timers", type=int, nargs="+", default=[10, 100])
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    for n in a.timers:
        print(json.dumps(asyncio.run(wake_cost(n, a.interval, a.seconds))))


if __name__ == "__main__":
    main()
