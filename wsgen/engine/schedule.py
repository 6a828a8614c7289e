"""The kept events of a composition's parts, and the overlap rules.

:class:`Schedule` holds the events one part (an anomaly injector or a fault)
keeps from its source's candidates: a candidate overlapping an event of an
earlier injector in the list, an earlier event of the same part, or (after a
live update) an event in progress since before the update, is dropped unless
the part has ``allow_overlap`` (earlier in the list wins, so adding an
injector never moves the events of the ones before it; when events do overlap
each keeps its own id, kind and window).

Bounds: an ``allow_overlap`` part keeps at most ``MAX_LIVE`` (16) events live
at once: deciding in start order, a candidate that would be one more is not
started (so a block costs O(block * MAX_LIVE) and reports at most the events
live at its start plus those starting in it, whatever the lengths and block
sizes); a non-overlapping injector after the first has ``max_length <=
MAX_BLOCKED_LENGTH`` (10000), since the injectors before it are decided that
far ahead.

Event ids are ``first * ID_SLOTS + slot`` (:func:`event_dicts`).
"""
from __future__ import annotations

import bisect
import heapq
from typing import Any

import numpy as np

from wsgen.engine.sources import Source

#: Event ids are ``first * ID_SLOTS + slot`` (slots 0..15 injectors, 16.. faults).
ID_SLOTS = 32
#: Samples of candidates drawn at once when deciding events.
CHUNK = 1 << 18
#: Most events of one ``allow_overlap`` injector live at once (started and
#: not ended): a candidate that would make one more is not started. Decided
#: in start order, so it does not depend on block sizes; it bounds the work
#: and the events of a block to O(block * MAX_LIVE).
MAX_LIVE = 16
#: Longest event (``max_length``) of a non-overlapping injector that is not
#: the first: the injectors before it must be decided that far ahead to know
#: what it must avoid, which bounds that lookahead.
MAX_BLOCKED_LENGTH = 10_000


class Intervals:
    """A union of half-open intervals, for "does [s, e) overlap any?"."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        order = np.argsort(starts, kind="stable")
        s, e = starts[order], ends[order]
        if len(s):
            new = np.ones(len(s), bool)
            new[1:] = s[1:] >= np.maximum.accumulate(e)[:-1]
            first = np.flatnonzero(new)
            self._starts, self._ends = s[first], np.maximum.reduceat(e, first)
        else:
            self._starts = self._ends = np.empty(0, np.int64)

    def hits(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self._starts, e, side="left") - 1
        return (k >= 0) & (self._ends[np.maximum(k, 0)] > s)


class Blockers:
    """Events a part must avoid: the schedules of the parts before it and
    fixed intervals (``hits`` is True where ``[s, e)`` overlaps any)."""

    def __init__(self, schedules: list[Schedule], fixed: Intervals | None = None) -> None:
        self._schedules, self._fixed = schedules, fixed

    def hits(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        out = np.zeros(len(s), bool) if self._fixed is None else self._fixed.hits(s, e)
        for sched in self._schedules:
            out |= sched.hits(s, e)
        return out


def _sequential(starts: np.ndarray, ends: np.ndarray, busy: int) -> np.ndarray:
    """Mask of the events kept when each must start at or after the end of
    the last kept one (``busy`` before the first)."""
    if not len(starts):
        return np.ones(0, bool)
    if starts[0] >= busy and bool(np.all(starts[1:] >= ends[:-1])):
        return np.ones(len(starts), bool)
    keep = np.zeros(len(starts), bool)
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):  # loop over events only
        if s >= busy:
            keep[i], busy = True, e
    return keep


def _capped(starts: np.ndarray, ends: np.ndarray, live: np.ndarray, cap: int) -> np.ndarray | None:
    """Mask of the events kept when at most ``cap`` may be live at once
    (``live``: ends of the kept events still running at ``starts[0]``),
    deciding in start order; None when all are kept."""
    # live at s_i if all were kept: earlier ones not ended by s_i (an event
    # ending at or before s_i started before it)
    prior = np.sort(live)
    count = (len(prior) - np.searchsorted(prior, starts, side="right")
             + np.arange(len(starts)) - np.searchsorted(np.sort(ends), starts, side="right"))
    if count.max() < cap:
        return None
    keep = np.zeros(len(starts), bool)
    first = int(np.argmax(count >= cap))  # all before it are kept
    keep[:first] = True
    heap = [*prior.tolist(), *ends[:first].tolist()]
    heapq.heapify(heap)
    s_list, e_list = starts.tolist(), ends.tolist()
    i, k = first, len(s_list)
    while i < k:  # over kept events and jumps only
        s = s_list[i]
        while heap and heap[0] <= s:
            heapq.heappop(heap)
        if len(heap) < cap:
            keep[i] = True
            heapq.heappush(heap, e_list[i])
            i += 1
        else:  # full: skip to the first candidate starting when one ends
            i = bisect.bisect_left(s_list, heap[0], i + 1)
    return keep


class Schedule:
    """The kept events of one part, in start order.

    Arrays ``starts``, ``ends`` (exclusive), ``u`` (event uniforms) and
    ``state`` (a float captured at the event's first rendered sample:
    the stuck value of a flatline, the start time of a trend change; NaN
    until then). Candidates starting before ``decided`` have been decided.
    """

    def __init__(self, source: Source, at: int = 0) -> None:
        self.source = source
        self.starts = np.empty(0, np.int64)
        self.ends = np.empty(0, np.int64)
        self.u = np.empty(0)
        self.state = np.empty(0)
        self.decided = at
        self._busy = 0  # end of the last kept event (own overlap)
        self._reach: np.ndarray | None = None  # running max of ends (cache of ``hits``)

    def hits(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Whether ``[s, e)`` overlaps a kept event (O(log events) each)."""
        if not len(self.starts):
            return np.zeros(len(s), bool)
        if self._reach is None:
            self._reach = np.maximum.accumulate(self.ends)
        k = np.searchsorted(self.starts, e, side="left") - 1
        return (k >= 0) & (self._reach[np.maximum(k, 0)] > s)

    def decide(self, until: int, blocked: Blockers | Intervals | None, allow_overlap: bool) -> None:
        """Decide, once and for good, the candidates starting in ``[decided, until)``.

        The source's candidates are taken in start order, ``CHUNK`` samples
        of starts at a time, and each is kept or dropped:

        1. a candidate starting before the source's ``first`` (the
           placement's ``start``) is dropped;
        2. without ``allow_overlap``: a candidate ``[s, s + length)`` that
           overlaps any event of ``blocked`` is dropped. The caller passes
           as blockers the schedules of the parts before this one in the
           list (so the earlier injector wins, and adding an injector never
           moves the events of those before it) and, as fixed intervals, the
           events of later or retired parts that started before the last
           live update (an event in progress then keeps running). Then,
           going in start order, a candidate is kept only when it starts at
           or after the end of this part's last kept event (``_busy``): no
           part overlaps itself. Each candidate is judged on its own: a
           dropped candidate does not block later ones;
        3. with ``allow_overlap``: blockers and own events are ignored, but
           at most ``MAX_LIVE`` kept events may be live (started, not ended)
           at once; going in start order, a candidate that would be one more
           is dropped (:func:`_capped`).

        Kept events are appended to ``starts`` / ``ends`` / ``u`` (their
        ``state`` NaN until first rendered). The result depends only on the
        candidates and the blockers, never on how the calls split the range,
        provided the blockers are decided at least ``longest - 1`` samples
        beyond ``until`` (the composite's ``_decide`` sees to it).

        Args:
            until: first start not to decide (sample index).
            blocked: what this part must avoid (None: nothing).
            allow_overlap: the part's ``allow_overlap``.
        """
        while self.decided < until:
            b = min(until, self.decided + CHUNK)
            s, length, u = self.source.candidates(self.decided, b)
            if self.source.first > self.decided and len(s):      # placement.start
                late = s >= self.source.first
                s, length, u = s[late], length[late], u[late]
            e = s + length
            if not allow_overlap:
                if blocked is not None and len(s):
                    free = ~blocked.hits(s, e)
                    s, e, u = s[free], e[free], u[free]
                keep = _sequential(s, e, self._busy)
                s, e, u = s[keep], e[keep], u[keep]
            elif len(s):
                keep = _capped(s, e, self.ends[self.ends > s[0]], MAX_LIVE)
                if keep is not None:
                    s, e, u = s[keep], e[keep], u[keep]
            if len(s):
                self._reach = None
                self.starts = np.concatenate([self.starts, s])
                self.ends = np.concatenate([self.ends, e])
                self.u = np.concatenate([self.u, u])
                self.state = np.concatenate([self.state, np.full(len(s), np.nan)])
                self._busy = max(self._busy, int(e.max()))
            self.decided = b

    def skip(self, until: int) -> None:
        """Leave the candidates before ``until`` undecided, where that cannot
        matter (the caller knows no event of length > 1 is involved); a
        ``gaps`` source still walks its events."""
        if self.source.skippable:
            self.decided = max(self.decided, until)
        else:
            self.decide(until, None, True)

    def overlapping(self, a: int, b: int) -> np.ndarray:
        """Indices of the events overlapping samples ``[a, b)``, in start order."""
        if b <= a:
            return np.empty(0, np.int64)
        hi = int(np.searchsorted(self.starts, b, side="left"))
        return np.flatnonzero(self.ends[:hi] > a)

    def forget(self, before: int) -> None:
        """Drop the events that ended at or before ``before``."""
        keep = self.ends > before
        if not keep.all():
            self._reach = None
            self.starts, self.ends, self.u, self.state = (a[keep] for a in (self.starts, self.ends, self.u, self.state))
        self.source.forget(before)

    def truncate(self, at: int) -> None:
        """Drop the events starting at or after ``at`` (they will be re-decided)."""
        k = int(np.searchsorted(self.starts, at, side="left"))
        self._reach = None
        self.starts, self.ends, self.u, self.state = (a[:k] for a in (self.starts, self.ends, self.u, self.state))
        self.decided = min(self.decided, at)
        self._busy = int(self.ends.max()) if k else 0

    def frozen(self, before: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the events that started before ``before``."""
        k = int(np.searchsorted(self.starts, before, side="left"))
        return self.starts[:k], self.ends[:k]

    @property
    def longest(self) -> int:
        return int((self.ends - self.starts).max()) if len(self.starts) else 0


_NO_POSITIONS = np.empty(0, np.int64)
_NO_POSITIONS.flags.writeable = False


def expand(starts: np.ndarray, ends: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (relative to ``n``) of the samples of each event inside
    ``[n, n+m)`` and the index of the event each belongs to."""
    if not len(starts):
        return _NO_POSITIONS, _NO_POSITIONS
    lo = np.maximum(starts, n) - n
    sizes = np.minimum(ends, n + m) - n - lo
    ev = np.repeat(np.arange(len(starts)), sizes)
    pos = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes - lo, sizes)
    return pos, ev


def event_dicts(schedule: Schedule, idx: np.ndarray, slot: int, kind: str) -> list[dict[str, Any]]:
    """Ground-truth records of the events ``idx`` of a schedule."""
    if not len(idx):
        return []
    starts = schedule.starts[idx]
    return [{"id": i, "kind": kind, "first": s, "last": e}
            for i, s, e in zip((starts * ID_SLOTS + slot).tolist(), starts.tolist(), (schedule.ends[idx] - 1).tolist())]
