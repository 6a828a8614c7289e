"""Sources of candidate events: where each placement mode puts them.

``make_source(seed, key, placement, bounds, clock, at)`` gives the source of a
part's placement (models in :mod:`wsgen.engine.injectors`); its
``candidates(a, b)`` are ``(starts, lengths, u)`` of the candidate events
starting in samples ``[a, b)``, which :class:`~wsgen.engine.schedule.Schedule`
then keeps or drops. ``gaps``, ``periodic`` and ``count`` place events with
the pieces of :mod:`wsgen.engine.placement` that the original anomaly kinds
use, so their presets equal those kinds bit for bit.

Randomness: a part with stream key ``K`` (its ``stream`` field, by default
derived from its position) draws from the PCG64 streams seeded by ``(seed,
spawn_key)`` with spawn keys ``(K,)`` (placement: the decision and event
uniform of ``random``, the event uniform of ``periodic`` / ``indices``, the
gaps and lengths of ``gaps``), ``(K+1,)`` (per-sample draws of the effect),
``(K+2,)`` (event lengths) and ``(K+3,)`` (event uniforms of ``gaps``);
``count`` window ``w`` uses ``(K, w)``. Every draw sits at a fixed position
(the sample index or event index), so values never depend on block sizes,
and the keys of the original anomaly kinds (21..26) reproduce them bit for bit.

Live updates (``rewind(at, ...)``): ``periodic`` keeps its stream-time phase
continuous; ``count`` ends its current window at ``at``; ``gaps`` counts the
next gap from the end of the last started event (an event so drawn that would
start before ``at`` is clipped to start at ``at``, which is what the original
random-square / clustered show).
"""
from __future__ import annotations

import math

import numpy as np

from wsgen.engine.base import RandomStream
from wsgen.engine.placement import EPS, CountWindows, EventTrack, PhaseClock, count_between, window_samples


class Lengths:
    """Event lengths ``lo + floor(u * (hi - lo + 1))``, ``u`` from ``(K+2,)`` at the start."""

    def __init__(self, seed: int, key: int, bounds: tuple[int, int]) -> None:
        self.bounds = bounds
        self._u = RandomStream(seed, (key + 2,))

    def draw(self, starts: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds
        if lo == hi:
            return np.full(len(starts), lo, np.int64)
        return count_between(lo, hi, self._u.at(starts))


class Source:
    """Candidate events of one part, asked for in increasing ranges of start.

    ``candidates(a, b)`` returns ``(starts, lengths, u)`` of the candidates
    starting in ``[a, b)``; ``rewind(at, placement, bounds, clock)`` applies
    changed parameters from sample ``at`` (the next call starts at ``at``).
    """

    def __init__(self, seed: int, key: int, placement, bounds: tuple[int, int], clock, at: int) -> None:
        self.seed, self.key, self.placement = seed, key, placement
        self.lengths = Lengths(seed, key, bounds)
        self.first = first_allowed(placement.start_s, clock, at)

    #: Whether candidates are a pure function of the sample range (any range
    #: may be skipped); ``gaps`` draws its events one after the other.
    skippable = True

    def candidates(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def rewind(self, at: int, placement, bounds: tuple[int, int], clock) -> None:
        self.placement = placement
        self.lengths.bounds = bounds
        self.first = first_allowed(placement.start_s, clock, at)

    def forget(self, before: int) -> None:
        """Events ending at or before ``before`` will not be asked again."""

    @property
    def longest(self) -> int:
        """Longest candidate still to come."""
        return self.lengths.bounds[1]


def first_allowed(start: float, clock, at: int) -> int:
    """The first sample at or after ``at`` whose stream time is at least
    ``start`` seconds (``at`` itself once that time has passed)."""
    if start <= 0 or clock.interval <= 0:
        return 0
    behind = start - clock.time_of(at)
    return at if behind <= 0 else at + max(0, math.ceil(behind / clock.interval - EPS))


class RandomSource(Source):
    """Two uniforms per sample from ``(K,)``: ``u1 < probability`` starts an
    event, ``u2`` is its event uniform (the original ``random``)."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._u = RandomStream(seed, (key,), draws=2)

    def candidates(self, a, b):
        u = self._u.uniforms(a, b - a)
        hit = np.flatnonzero(u[:, 0] < self.placement.probability)
        starts = a + hit
        return starts, self.lengths.draw(starts), u[hit, 1]


class GapsSource(Source):
    """The original random-square / clustered :class:`~wsgen.engine.placement.EventTrack` on ``(K,)``
    (gaps and lengths), counted from the sample the source was created at;
    event uniforms from ``(K+3,)``."""

    skippable = False

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._bounds = (placement.min_gap, placement.max_gap, *bounds)
        self._track = EventTrack(seed, key, self._bounds)
        self._shift = at
        self._u = RandomStream(seed, (key + 3,))
        self._clipped: tuple[int, int] | None = None  # (at, end) of an event clipped by a change

    def candidates(self, a, b):
        track, shift = self._track, self._shift
        track.extend(b - shift)
        lo, hi = np.searchsorted(track.starts, (a - shift, b - shift), side="left")
        starts = track.starts[lo:hi] + shift
        lengths = track.ends[lo:hi] - track.starts[lo:hi]
        if self._clipped is not None and a <= self._clipped[0] < b:
            starts = np.r_[self._clipped[0], starts]
            lengths = np.r_[self._clipped[1] - self._clipped[0], lengths]
        return starts, lengths, self._u.at(starts)

    def rewind(self, at, placement, bounds, clock):
        """New bounds: the next gap counts from the end of the last event
        started before ``at`` (as the original); an event so drawn that
        would have started before ``at`` is clipped to start at ``at``."""
        super().rewind(at, placement, bounds, clock)
        new = (placement.min_gap, placement.max_gap, *bounds)
        if new != self._bounds:
            self._clipped = None
            track, rel = self._track, at - self._shift
            track.truncate(rel, new)
            kept = len(track.starts)
            track.extend(rel)
            straddles = np.flatnonzero((track.starts[kept:] < rel) & (track.ends[kept:] > rel))
            if len(straddles):
                self._clipped = (at, int(track.ends[kept + straddles[0]]) + self._shift)
            self._bounds = new

    @property
    def longest(self):
        clipped = self._clipped[1] - self._clipped[0] if self._clipped is not None else 0
        return max(self.lengths.bounds[1], clipped)

    def forget(self, before):
        if len(self._track.starts):
            self._track.forget_before(before - self._shift)


class PeriodicSource(Source):
    """The original ``periodic-spike`` placement: an event where the
    :class:`~wsgen.engine.placement.PhaseClock` of ``(t - start) / every``
    steps (continuous across changes of ``every`` and ``interval``); event
    uniforms from ``(K,)`` at the event's sample."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._u = RandomStream(seed, (key,))
        self._set_anchor(at, placement, clock)

    def _set_anchor(self, at: int, placement, clock) -> None:
        """Phase ``(t - start) / every`` from sample ``at`` on (start 0: the
        original periodic-spike's ``t / every``, the same floats)."""
        start, every = placement.start_s, placement.every
        self._start = start
        phase = (clock.time_of(at) - start) / every if start else clock.time_of(at) / every
        before = math.floor((clock.time_of(at - 1) - start) / every + EPS) if at > 0 else -1
        self._clock = PhaseClock(every, clock.interval, at, phase, before)

    def candidates(self, a, b):
        starts = a + np.flatnonzero(self._clock.steps(a, b - a))
        return starts, self.lengths.draw(starts), self._u.at(starts)

    def rewind(self, at, placement, bounds, clock):
        super().rewind(at, placement, bounds, clock)
        if placement.start_s != self._start:
            self._set_anchor(at, placement, clock)       # a new start: a new phase, from at
        else:
            self._clock.repace(at, placement.every, clock.interval)


class CountSource(Source):
    """The original ``count-per-duration`` placement: the
    :class:`~wsgen.engine.placement.CountWindows` of ``round(duration /
    interval)`` samples, key ``K`` (window ``w`` draws from ``(K, w)``); a
    change of count, duration or interval ends the current window at ``at``."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._shape = (placement.count, placement.duration, clock.interval)
        self._windows = CountWindows(seed, key, placement.count, window_samples(placement.duration, clock.interval),
                                     origin=at)

    def candidates(self, a, b):
        starts, u = self._windows.hits(a, b)
        return starts, self.lengths.draw(starts), u

    def rewind(self, at, placement, bounds, clock):
        super().rewind(at, placement, bounds, clock)
        shape = (placement.count, placement.duration, clock.interval)
        if shape != self._shape:
            self._windows.restart(at, placement.count, window_samples(placement.duration, clock.interval))
            self._shape = shape


class IndicesSource(Source):
    """Events at fixed sample indices; event uniforms from ``(K,)`` there."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._u = RandomStream(seed, (key,))
        self._indices = np.unique(np.asarray(placement.indices, np.int64))

    def candidates(self, a, b):
        lo, hi = np.searchsorted(self._indices, (a, b))
        starts = self._indices[lo:hi]
        return starts, self.lengths.draw(starts), self._u.at(starts)

    def rewind(self, at, placement, bounds, clock):
        super().rewind(at, placement, bounds, clock)
        self._indices = np.unique(np.asarray(placement.indices, np.int64))


SOURCES = {"random": RandomSource, "gaps": GapsSource, "periodic": PeriodicSource,
           "count": CountSource, "indices": IndicesSource}


def make_source(seed: int, key: int, placement, bounds: tuple[int, int], clock, at: int) -> Source:
    """The source of ``placement``, its draws anchored as of sample ``at``."""
    return SOURCES[placement.mode](seed, key, placement, bounds, clock, at)
