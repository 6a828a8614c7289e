"""How long an event loop's steps take: wall and CPU time of each callback.

A stall of the event loop is one callback (a task step, an I/O callback, a
timer) that runs long: everything else waits for it. :class:`LoopWatch`
times every callback run by one thread's asyncio loop, in wall seconds
(``time.perf_counter``: what clients feel, but stretched when the machine
is loaded) and in CPU seconds of that thread (``time.thread_time``: what
the step cost, independent of the load), and keeps the worst of each with
a description of the callback (a task's coroutine name, or the callback's).

The garbage collector's pauses are counted apart (``gc.callbacks``): a
collection runs in whichever thread allocates when a threshold is passed,
and lasts in proportion to every object of the process (in a test, pytest's
too), whatever the step was doing; a step's CPU is its own work, the
collections within it subtracted, and :attr:`LoopWatch.worst_gc` is the
longest collection in the watched thread.

It wraps ``asyncio.events.Handle._run``, through which the pure-Python
event loop runs every callback (task steps included), for its lifetime;
the threads it does not watch pay one comparison per callback. It does
not see a loop that runs its callbacks elsewhere (uvloop). For tests and
``scripts/stall.py``, not for production.
"""
from __future__ import annotations

import asyncio.events
import gc
import threading
import time
from dataclasses import dataclass, field

__all__ = ["LoopWatch", "Step"]


@dataclass(order=True)
class Step:
    """One callback's time: ``seconds`` and what ran."""

    seconds: float = 0.0
    what: str = field(default="", compare=False)


def _describe(handle: asyncio.events.Handle) -> str:
    callback = handle._callback
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        return f"task {getattr(coro, '__qualname__', coro)!s}"
    return f"callback {getattr(callback, '__qualname__', callback)!s}"


class LoopWatch:
    """Times the callbacks of the event loop running in thread ``ident``
    (default: the thread that enters it). Use as a context manager.

    Attributes:
        worst_cpu, worst_wall: the costliest :class:`Step` so far, in CPU
            and in wall seconds (garbage collections excluded).
        worst_gc: the longest garbage collection in the thread (CPU).
        steps: callbacks timed.
        slow: how many took more than ``slow_s`` of CPU.
    """

    _lock = threading.Lock()
    _watches: list["LoopWatch"] = []

    def __init__(self, ident: int | None = None, slow_s: float = 0.02, keep: bool = False) -> None:
        self.ident = ident
        self.slow_s = slow_s
        self.keep = keep
        self.reset()

    def reset(self) -> None:
        """Forget what was measured so far."""
        self.worst_cpu, self.worst_wall, self.steps, self.slow = Step(), Step(), 0, 0
        self.worst_gc = Step()      # the longest garbage collection (CPU seconds) in the thread
        #: with ``keep``: (CPU seconds, callback) of every step, in order
        self.cpu: list[tuple[float, object]] = []

    def share_over(self, seconds: float, what: str = "") -> float:
        """With ``keep``: the fraction of the steps whose description
        contains ``what`` that cost more than ``seconds`` of CPU."""
        costs = [c for c, handle in self.cpu if what in _describe(handle)]
        return sum(c > seconds for c in costs) / len(costs) if costs else 0.0

    def __enter__(self) -> "LoopWatch":
        if self.ident is None:
            self.ident = threading.get_ident()
        with LoopWatch._lock:
            LoopWatch._watches = [*LoopWatch._watches, self]
            asyncio.events.Handle._run = _timed_run
            if _on_gc not in gc.callbacks:
                gc.callbacks.append(_on_gc)
        return self

    def __exit__(self, *exc) -> None:
        with LoopWatch._lock:
            LoopWatch._watches = [w for w in LoopWatch._watches if w is not self]
            if not LoopWatch._watches:
                asyncio.events.Handle._run = _ORIGINAL
                if _on_gc in gc.callbacks:
                    gc.callbacks.remove(_on_gc)

    def _record(self, handle, wall: float, cpu: float) -> None:
        self.steps += 1
        if self.keep:
            self.cpu.append((cpu, handle))
        if cpu > self.slow_s:
            self.slow += 1
        if cpu > self.worst_cpu.seconds:
            self.worst_cpu = Step(cpu, _describe(handle))
        if wall > self.worst_wall.seconds:
            self.worst_wall = Step(wall, _describe(handle))


_ORIGINAL = asyncio.events.Handle._run
_gc = threading.local()     # per thread: CPU seconds spent collecting, and when the current one began


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc.began = time.thread_time()
        return
    began = getattr(_gc, "began", None)
    if began is None:
        return
    spent = time.thread_time() - began
    _gc.total = getattr(_gc, "total", 0.0) + spent
    ident = threading.get_ident()
    for watch in LoopWatch._watches:
        if watch.ident == ident and spent > watch.worst_gc.seconds:
            watch.worst_gc = Step(spent, f"gc generation {info.get('generation')}")


def _timed_run(handle) -> None:
    ident = threading.get_ident()
    watches = [w for w in LoopWatch._watches if w.ident == ident]
    if not watches:
        return _ORIGINAL(handle)
    collected = getattr(_gc, "total", 0.0)
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        return _ORIGINAL(handle)
    finally:
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        paused = getattr(_gc, "total", 0.0) - collected
        for watch in watches:
            watch._record(handle, wall - paused, cpu - paused)
