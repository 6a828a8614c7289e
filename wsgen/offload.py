"""Work that must not run on the event loop, run in a worker thread.

Building a generator can be costly: validating a composition of a megabyte
of JSON, or resuming one at a far ``start_seq`` (its events are replayed:
up to :data:`~wsgen.generators.composite.SEEK_BUDGET_S` of CPU). The
WebSocket and HTTP adapters build them here, in one worker thread, and
start the stream when it is ready; the event loop keeps serving everyone
else meanwhile (the worker holds the GIL for at most the interpreter's
switch interval, 5 ms, at a time while the loop wants it).

One worker: builds queue behind each other instead of taking the loop's
core from it; a connection's messages still apply in order (its reader
waits for its own build).
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

__all__ = ["WORKERS", "run", "worth_offloading"]

T = TypeVar("T")

#: Threads building generators.
WORKERS = 1

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
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))


def worth_offloading(composition: bool, start_seq: int | None, kind: str | None = None) -> bool:
    """Whether building a generator may cost the loop more than it should:
    a composition (validation and events), a far start (seek), or a
    ``replay`` (it may read and parse its file: about a second per million
    CSV rows the first time). A named kind from sample 0 costs
    microseconds: built in place."""
    return composition or bool(start_seq) or kind == "replay"
