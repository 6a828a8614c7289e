"""Work that must not run on the event loop, run in a worker thread.

Building a generator can be costly: validating a composition of a megabyte
of JSON, or resuming one at a far ``start_seq`` (its events are replayed:
up to :data:`~wsgen.engine.composite.SEEK_BUDGET_S` of CPU). The
WebSocket and HTTP adapters build them here, in one worker thread, and
start the stream when it is ready; the event loop keeps serving everyone
else meanwhile (the worker holds the GIL for at most the interpreter's
switch interval at a time while the loop wants it: 0.5 ms while a build
runs, :data:`SWITCH_INTERVAL_S`, instead of the default 5 ms).

One worker: builds queue behind each other instead of taking the loop's
core from it; a connection's messages still apply in order (its reader
waits for its own build).
"""
from __future__ import annotations

import asyncio
import functools
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

__all__ = ["WORKERS", "run", "worth_offloading"]

T = TypeVar("T")

#: Threads building generators.
WORKERS = 1
#: The interpreter's GIL switch interval while a build runs (default 5 ms):
#: how long the event loop may wait for the GIL the worker holds.
SWITCH_INTERVAL_S = 0.0005

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="wsgen-build")
    return _pool


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in the worker thread; its result or its
    exception. Cancelling the await leaves ``fn`` to finish in the worker
    (its result is dropped)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _yielding, functools.partial(fn, *args, **kwargs))


def _yielding(work: Callable[[], T]) -> T:
    """Run ``work`` with a short GIL switch interval, so that the event
    loop's thread waits at most that long for the GIL when it wants it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return work()
    finally:
        sys.setswitchinterval(before)


def worth_offloading(composition: bool, start_seq: int | None, kind: str | None = None) -> bool:
    """Whether building a generator may cost the loop more than it should:
    a composition (validation and events), a far start (seek), or a
    ``replay`` (it may read and parse its file: about a second per million
    CSV rows the first time). A named kind from sample 0 costs
    microseconds: built in place."""
    return composition or bool(start_seq) or kind == "replay"
