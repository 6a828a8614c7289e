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
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

MAX_SPEED = math.inf


@dataclass
class Pacer:
    """Schedule and stream clock of one stream.

    Attributes:
        interval: seconds of stream time between samples (>= 0).
        speed: delivery speed-up factor (> 0; ``math.inf`` = as fast as read).
        seq0: sample index of the anchor.
        due0: monotonic time (s) at which sample ``seq0`` is due.
        wall0: Unix time (s) stamped on sample ``seq0``.
    """

    interval: float
    speed: float
    seq0: int
    due0: float
    wall0: float
    #: Seconds of delivery time between samples (0 when unpaced); derived
    #: from interval and speed, kept up to date by :meth:`retime`.
    pace: float = field(init=False, default=0.0)
    #: True when every sample is due at once (interval 0 or speed "max").
    unpaced: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        self._repace()

    def _repace(self) -> None:
        self.pace = 0.0 if self.interval == 0 or math.isinf(self.speed) else self.interval / self.speed
        self.unpaced = self.pace == 0.0

    @classmethod
    def start(cls, interval: float, speed: float = 1.0, seq: int = 0,
              now: float | None = None, wall: float | None = None) -> "Pacer":
        """A pacer whose sample ``seq`` is due now."""
        return cls(interval, speed, seq, time.monotonic() if now is None else now,
                   time.time() if wall is None else wall)

    def due_time(self, n: int) -> float:
        """Monotonic time at which sample ``n`` is due."""
        return self.due0 + (n - self.seq0) * self.pace

    def due_count(self, next_seq: int, now: float) -> int:
        """How many samples from ``next_seq`` on are due at ``now``
        (unbounded streams: callers cap it)."""
        if self.unpaced:
            return 1 << 62
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
        return self.wall0 + (n - self.seq0) * self.interval

    def retime(self, seq: int, interval: float | None = None, speed: float | None = None,
               now: float | None = None, wall: float | None = None) -> None:
        """Change interval and/or speed from sample ``seq`` on, continuing
        the schedule and the stream clock from the previous sample.

        ``now`` / ``wall`` (monotonic and Unix time, default: the real
        clocks) are used when the old pace was unpaced: the next sample is
        then due now and stamped now."""
        if seq > self.seq0:
            prev_due, prev_wall = self.due_time(seq - 1), self.stream_time(seq - 1)
        else:
            prev_due, prev_wall = None, None
        old_pace, old_interval = self.pace, self.interval
        if interval is not None:
            self.interval = interval
        if speed is not None:
            self.speed = speed
        self._repace()
        if prev_due is None:
            due, wall = self.due_time(seq), self.wall0 + (seq - self.seq0) * old_interval
        else:
            due = prev_due + self.pace if old_pace else max(prev_due, time.monotonic() if now is None else now)
            wall = prev_wall + self.interval if old_interval else (time.time() if wall is None else wall)
        self.seq0, self.due0, self.wall0 = seq, due, wall

    def resume(self, seq: int, now: float | None = None, wall: float | None = None) -> None:
        """Re-anchor so sample ``seq`` is due now and stamped now."""
        self.seq0 = seq
        self.due0 = time.monotonic() if now is None else now
        self.wall0 = time.time() if wall is None else wall

    def lag(self, next_seq: int, now: float) -> float:
        """Seconds by which sample ``next_seq`` is behind its due time (>= 0)."""
        if self.unpaced:
            return 0.0
        return max(0.0, now - self.due_time(next_seq))
