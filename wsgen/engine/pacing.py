"""Drift-free pacing: when each sample is due, and what time it carries.

Two clocks, kept apart:

* **Delivery schedule** (monotonic clock): sample ``n`` is due at
  ``due0 + (n - seq0) * interval / speed``. It is computed from the anchor,
  never accumulated, so it does not drift however long the stream runs.
* **Stream time** (Unix seconds): sample ``n`` is stamped
  ``wall0 + (n - seq0) * interval``, whatever the speed, so ``speed: 60``
  or ``"max"`` delivers the same timestamps faster.

An interval of 0 (or ``speed = inf``, i.e. ``"max"``) means unpaced: every
sample is due at once and delivery is flow-controlled by the reader. With
interval 0 the stream time is the wall-clock time of generation.

A change of interval or speed re-anchors at the next sample: the schedule
continues from the last sample's due time with the new pace. ``resume``
re-anchors at "now" (a pause does not make samples pile up).

**Grid alignment.** A start or resume may be put on a *grid*: with an
anchor ``g`` (the connection's own origin) and a pace ``p`` no longer than
the alignment bound, the first sample is due at the next ``g + k * p``
(``k`` an integer, so at most one pace from now) instead of now. Streams of
one connection with the same pace then fall due at the same instants, bit
for bit (``due_time`` computes ``g + K * p`` for every one of them), and one
wake-up of the server serves them all: with 50 streams at 100 samples/s it
wakes 100 times a second instead of up to 5000. Connections get grids of
different phases (:func:`grid_phase`), so that they do not all wake at once.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

#: The speed "max" (as fast as the client reads), as the pacer holds it.
SPEED_AS_FAST_AS_READ = math.inf
_GOLDEN = (math.sqrt(5) - 1) / 2


def grid_phase(i: int, span: float) -> float:
    """The ``i``-th phase in [0, ``span``) of a low-discrepancy sequence
    (multiples of the golden ratio, modulo 1): however many grids there
    are, their phases stay evenly spread."""
    return (i * _GOLDEN) % 1.0 * span


@dataclass
class Pacer:
    """Schedule and stream clock of one stream.

    Attributes:
        interval: seconds of stream time between samples (>= 0).
        speed: delivery speed-up factor (> 0; ``math.inf`` = as fast as read).
        seq0: sample index of the schedule's anchor.
        due0: monotonic time (s) at which sample ``seq0`` is due.
        wall0: Unix time (s) stamped on sample ``tseq0``.
        tseq0: sample index of the stream clock's anchor (``seq0`` unless
            the schedule was put on a grid, whose anchor may lie before the
            stream's first sample).
    """

    interval: float
    speed: float
    seq0: int
    due0: float
    wall0: float
    tseq0: int | None = None
    #: Seconds of delivery time between samples (0 when unpaced); derived
    #: from interval and speed, kept up to date by :meth:`retime`.
    pace: float = field(init=False, default=0.0)
    #: True when every sample is due at once (interval 0 or speed "max").
    unpaced: bool = field(init=False, default=True)
    #: How many times the schedule was re-anchored (:meth:`retime`,
    #: :meth:`resume`): stamps computed before a change of it may differ from
    #: :meth:`stream_time` after (wsgen.protocol.fanout keeps stamps ahead).
    epoch: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.tseq0 is None:
            self.tseq0 = self.seq0
        self._repace()

    def _repace(self) -> None:
        self.pace = 0.0 if self.interval == 0 or math.isinf(self.speed) else self.interval / self.speed
        self.unpaced = self.pace == 0.0

    @classmethod
    def start(cls, interval: float, speed: float = 1.0, seq: int = 0,
              now: float | None = None, wall: float | None = None,
              grid: float | None = None, align_max: float = 0.0) -> "Pacer":
        """A pacer whose sample ``seq`` is due now, or at the next point of
        the grid anchored at ``grid`` when the pace is in (0, ``align_max``]
        (module docstring). The sample is stamped with the wall-clock time
        at which it is due."""
        pacer = cls(interval, speed, seq, 0.0, 0.0)
        pacer.resume(seq, now, wall, grid, align_max)
        return pacer

    def due_time(self, n: int) -> float:
        """Monotonic time at which sample ``n`` is due."""
        return self.due0 + (n - self.seq0) * self.pace

    def due_count(self, next_seq: int, now: float) -> int:
        """How many samples from ``next_seq`` on are due at ``now``
        (unbounded streams: callers cap it)."""
        if self.unpaced:
            return 1 << 62
        # the common cases first, by the definition itself (due when due_time <= now)
        if self.due0 + (next_seq - self.seq0) * self.pace > now:
            return 0
        if self.due0 + (next_seq + 1 - self.seq0) * self.pace > now:
            return 1
        paces = (now - self.due0) / self.pace
        if not -(1 << 62) < paces < 1 << 62:
            # a pace so small (e.g. a subnormal interval) that the quotient
            # overflows: everything is due (or nothing yet); floor(inf) raises
            return 1 << 62 if paces > 0 else 0
        due_through = self._last_due(self.seq0 + math.floor(paces), now)
        return max(0, due_through - next_seq + 1)

    def _last_due(self, guess: int, now: float) -> int:
        """The last sample due at ``now`` (``seq0 - 1`` if none), found from
        ``guess``. The division rounds (``now`` is a large float): settle on
        the definition, sample n is due when due_time(n) <= now, so a sample
        is due at exactly its due time, never one rounding error later. The
        search gallops then bisects: with a pace far below the resolution of
        ``now`` many samples share one due time, and stepping one by one
        would block the event loop (1e-18 s: 0.2 s per call)."""
        floor = self.seq0 - 1            # "none due": never evaluated
        n = max(guess, floor)
        if self.due_time(n + 1) <= now:
            step = 1
            while self.due_time(n + step) <= now:
                n += step
                step *= 2
                if step > 1 << 60:       # a pace below the resolution of ``now``: all due
                    return self.seq0 + (1 << 62) - 1
            hi = n + step
        else:
            hi, step = n + 1, 1
            while n > floor and self.due_time(n) > now:
                hi, n = n, max(floor, n - step)
                step *= 2
        while hi - n > 1:                # due_time(n) <= now < due_time(hi)
            mid = (n + hi) // 2
            if self.due_time(mid) <= now:
                n = mid
            else:
                hi = mid
        return n

    def stream_time(self, n: int, now_wall: float | None = None) -> float:
        """Unix time stamped on sample ``n`` (stream time)."""
        if self.interval == 0:
            return time.time() if now_wall is None else now_wall
        return self.wall0 + (n - self.tseq0) * self.interval

    def stream_times(self, n: int, m: int, now_wall: float | None = None) -> np.ndarray:
        """Unix times stamped on samples ``n .. n+m-1``: :meth:`stream_time`
        of each, the same floats (float64 array of ``m``)."""
        if self.interval == 0:
            return np.full(m, time.time() if now_wall is None else now_wall)
        k = np.arange(n - self.tseq0, n - self.tseq0 + m, dtype=np.float64)
        return self.wall0 + k * self.interval

    def retime(self, seq: int, interval: float | None = None, speed: float | None = None,
               now: float | None = None, wall: float | None = None) -> None:
        """Change interval and/or speed from sample ``seq`` on, continuing
        the schedule and the stream clock from the previous sample.

        ``now`` / ``wall`` (monotonic and Unix time, default: the real
        clocks) are used when the old pace was unpaced: the next sample is
        then due now and stamped now."""
        if seq > self.tseq0:
            # a sample went out since the last anchoring: continue from it
            prev_due, prev_wall = self.due_time(seq - 1), self.stream_time(seq - 1)
        else:
            # none yet (the anchoring's own first sample is next): it keeps
            # its due time and stamp, on a grid or not
            prev_due, prev_wall = None, None
            first_due, first_wall = self.due_time(seq), self.wall0 + (seq - self.tseq0) * self.interval
        old_pace, old_interval = self.pace, self.interval
        if interval is not None:
            self.interval = interval
        if speed is not None:
            self.speed = speed
        self._repace()
        if prev_due is None:
            due, wall = first_due, first_wall
        else:
            due = prev_due + self.pace if old_pace else max(prev_due, time.monotonic() if now is None else now)
            wall = prev_wall + self.interval if old_interval else (time.time() if wall is None else wall)
        self.seq0, self.due0, self.wall0, self.tseq0 = seq, due, wall, seq
        self.epoch += 1

    def resume(self, seq: int, now: float | None = None, wall: float | None = None,
               grid: float | None = None, align_max: float = 0.0) -> None:
        """Re-anchor so sample ``seq`` is due now and stamped now; or, with a
        ``grid`` anchor and a pace in (0, ``align_max``], due at the next grid
        point ``grid + k * pace`` >= now and stamped that much later."""
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        self.epoch += 1
        if grid is None or not 0.0 < self.pace <= align_max or now < grid:   # (grids lie in the past)
            self.seq0, self.due0, self.wall0, self.tseq0 = seq, now, wall, seq
            return
        # seq0 = seq - k and due0 = grid: due_time(n) = grid + (n - seq0) * pace,
        # the same expression (hence the same float) for every stream on the grid
        k = math.ceil((now - grid) / self.pace)
        self.seq0, self.due0 = seq - k, grid
        self.wall0, self.tseq0 = wall + (self.due_time(seq) - now), seq
