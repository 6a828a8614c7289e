"""Events of a composition: where they go, and what anomalies do to a signal.

An *event* is a run of samples ``first .. last`` (inclusive) that one *part*
of a composition (an anomaly injector or a fault) owns. This module holds:

* the **placement** models and their sources of candidate events:

  - ``random``:   each sample starts an event with ``probability``;
  - ``gaps``:     gap of ``min_gap .. max_gap`` samples (drawn), event, gap,
    event... (the original random-square / clustered placement);
  - ``periodic``: an event at the first sample at or after each multiple of
    ``every`` seconds of stream time;
  - ``count``:    exactly ``count`` events per window of ``duration`` seconds
    (``round(duration / interval)`` samples), at distinct random samples;
  - ``indices``:  events starting at the given sample indices;

* :class:`Schedule`, the kept events of a part: a candidate overlapping an
  event of an earlier injector in the list, an earlier event of the same
  part, or (after a live update) an event in progress since before the
  update, is dropped unless the part has ``allow_overlap`` (earlier in the
  list wins, so adding an injector never moves the events of the ones before
  it; when events do overlap each keeps its own id, kind and window).
  Bounds: an ``allow_overlap`` part keeps at most ``MAX_LIVE`` (16) events
  live at once: deciding in start order, a candidate that would be one more
  is not started (so a block costs O(block * MAX_LIVE) and reports at most
  the events live at its start plus those starting in it, whatever the
  lengths and block sizes); a non-overlapping injector after the first has
  ``max_length <= MAX_BLOCKED_LENGTH`` (10000), since the injectors before
  it are decided that far ahead;
* the **anomaly injectors** (models and their effect on a block of values):

  - ``spike``:            one sample, ``+ height``;
  - ``level-shift``:      ``+ height`` over the event (a plateau);
  - ``noisy-cluster``:    ``+ amplitude * (2u - 1)``, ``u`` uniform per sample;
  - ``variance-change``:  ``+ std_dev * z``, ``z`` standard normal per sample;
  - ``trend-change``:     ``+ slope * (t - t_first)`` (units per second of
    stream time), back to the signal after the event;
  - ``frequency-change``: the waveform base runs at ``factor`` times its
    frequency, phase-continuous at the event start (the base resumes its
    own phase after the event); on a channel, ``+ gain * (warped - base)``;
  - ``flatline``:         stuck at the value of the sample before the event
    as this injector receives it (the signal after the injectors before it;
    the first sample's own value when the event starts at sample 0);
  - ``dropout``:          the samples are missing: NaN (sent as JSON null),
    or ``fill`` when given.

  A ``height`` is a number (fixed), ``{"low": a, "high": b}`` (uniform: ``a +
  (b - a) * u``) or ``{"range": r}`` (symmetric: ``r * (2u - 1)``), with one
  uniform ``u`` per event.

Randomness: a part with stream key ``K`` (its ``stream`` field, by default
derived from its position) draws from the PCG64 streams seeded by ``(seed,
spawn_key)`` with spawn keys ``(K,)`` (placement: the decision and event
uniform of ``random``, the event uniform of ``periodic`` / ``indices``, the
gaps and lengths of ``gaps``), ``(K+1,)`` (per-sample draws of the effect),
``(K+2,)`` (event lengths) and ``(K+3,)`` (event uniforms of ``gaps``);
``count`` window ``w`` uses ``(K, w)``. Every draw sits at a fixed position
(the sample index or event index), so values never depend on block sizes,
and the keys of the original anomaly kinds (21..26) reproduce them bit for bit.

Live updates (applied at sample ``at``, see :meth:`Schedule.truncate` and the
sources' ``rewind``): events that started before ``at`` keep their place and
length; candidates from ``at`` on are re-drawn under the new placement (the
draws at their fixed positions are unchanged). ``periodic`` keeps its
stream-time phase continuous; ``count`` ends its current window at ``at``;
``gaps`` counts the next gap from the end of the last started event (an event
so drawn that would start before ``at`` is clipped to start at ``at``, which
is what the original random-square / clustered show); a new ``mode`` or
``stream`` starts the placement afresh at ``at``. Effect
parameters (heights, amplitude, std_dev, slope, factor, fill) apply from
``at``, also to the rest of an event in progress.
"""
from __future__ import annotations

import bisect
import copy
import heapq
import math
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from wsgen.engine.anomalies import MAX_ANOMALIES_PER_WINDOW, EventTrack
from wsgen.engine.fields import MAX_LEVEL, count, level
from wsgen.engine.waveforms import Waveform

#: Most anomaly injectors in one composition.
MAX_INJECTORS = 16
#: Most sample indices in one ``indices`` placement.
MAX_INDICES = 10_000
#: Largest sample index an ``indices`` placement may name (event ids stay
#: below 2**53, exact in JavaScript).
MAX_INDEX = 2**48
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
_EPS = 1e-9  # stream-time phase rounding tolerated by ``periodic`` (as the original)


class Model(BaseModel):
    """Base of the composition's models: frozen, unknown fields and NaN/inf refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


def tagged(field: str, default: str | None = None):
    """A discriminator reading ``field`` of a dict or model (``default`` when absent)."""
    def tag(value: Any):
        if isinstance(value, dict):
            return value.get(field, default)
        return getattr(value, field, None)
    return tag


StreamKey = Annotated[Optional[int], Field(None, ge=0, le=2**32 - 8, description=(
    "Random stream key K of this part (it uses spawn keys K .. K+3); default: derived from its position"))]
Seconds = Annotated[float, Field(gt=0, le=1e9, json_schema_extra={"unit": "s"})]
Length = count  # event lengths in samples, 1 .. 1e9
Level = Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]


# -- placements -----------------------------------------------------------------

class _Placement(Model):
    """What every placement has: ``start``, the stream time before which no
    event starts."""

    start: Annotated[Optional[float], Field(None, ge=0, le=1e9, json_schema_extra={"unit": "s"}, description=(
        "Seconds of stream time before which no event starts, so a detector sees a baseline first "
        "(needs interval > 0). Default: one period (every) for periodic, 0 for the others (random and "
        "count events fall on sample 0 only by chance, gaps begins with a gap, indices are as given)"))]

    @property
    def start_s(self) -> float:
        """``start``, its default resolved."""
        if self.start is not None:
            return self.start
        return getattr(self, "every", 0.0) if getattr(self, "mode", None) == "periodic" else 0.0


class RandomPlacement(_Placement):
    """Each sample starts an event with ``probability`` (one decision per sample)."""

    mode: Literal["random"] = "random"
    probability: Annotated[float, Field(0.01, ge=0, le=1, description="Probability in [0, 1] that a sample starts an event")]


class GapsPlacement(_Placement):
    """Gap, event, gap, event...: gaps of ``min_gap .. max_gap`` samples."""

    mode: Literal["gaps"] = "gaps"
    min_gap: count(50, "Shortest gap between events, in samples (>= 1)")
    max_gap: count(150, "Longest gap between events, in samples (>= min_gap)")


class PeriodicPlacement(_Placement):
    """An event at the first sample at or after ``start + k * every`` s of
    stream time, k = 0, 1, 2, ... (``start`` defaults to ``every``)."""

    mode: Literal["periodic"] = "periodic"
    every: Annotated[float, Field(1200.0, gt=0, le=1e9, description="Seconds of stream time between events (>= interval)",
                                  json_schema_extra={"unit": "s"})]


class CountPlacement(_Placement):
    """Exactly ``count`` events in each window of ``duration`` seconds."""

    mode: Literal["count"] = "count"
    count: Annotated[int, Field(1, ge=0, le=MAX_ANOMALIES_PER_WINDOW, description=f"Events per window (<= samples per window, at most {MAX_ANOMALIES_PER_WINDOW})")]
    duration: Annotated[float, Field(3600.0, gt=0, le=1e9, description="Window length in seconds of stream time",
                                     json_schema_extra={"unit": "s"})]


class IndicesPlacement(_Placement):
    """Events starting at the given sample indices (duplicates count once)."""

    mode: Literal["indices"] = "indices"
    indices: Annotated[list[Annotated[int, Field(ge=0, le=MAX_INDEX)]],
                       Field(default_factory=list, max_length=MAX_INDICES,
                             description=f"Sample indices where events start (at most {MAX_INDICES})")]


Placement = Annotated[Union[Annotated[RandomPlacement, Tag("random")], Annotated[GapsPlacement, Tag("gaps")],
                            Annotated[PeriodicPlacement, Tag("periodic")], Annotated[CountPlacement, Tag("count")],
                            Annotated[IndicesPlacement, Tag("indices")]],
                      Discriminator(tagged("mode", "random"))]
PLACEMENT_MODES = ("random", "gaps", "periodic", "count", "indices")


# -- heights ----------------------------------------------------------------------

class UniformHeight(Model):
    """``low + (high - low) * u``: uniform in [low, high)."""

    low: level(5.0, "Smallest height")
    high: level(10.0, "Largest height (>= low)")


class SymmetricHeight(Model):
    """``range * (2u - 1)``: uniform in [-range, +range)."""

    range: Annotated[float, Field(10.0, ge=0, le=MAX_LEVEL, description="Half-width, >= 0")]


def _height_tag(value: Any):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "fixed"
    if isinstance(value, dict):
        return "symmetric" if "range" in value else "uniform"
    return {UniformHeight: "uniform", SymmetricHeight: "symmetric"}.get(type(value))


Height = Annotated[Union[Annotated[Level, Tag("fixed")], Annotated[UniformHeight, Tag("uniform")],
                         Annotated[SymmetricHeight, Tag("symmetric")]],
                   Discriminator(_height_tag, custom_error_type="height",
                                 custom_error_message="must be a number, {\"low\": a, \"high\": b} or {\"range\": r}")]


def heights(height, u: np.ndarray) -> np.ndarray:
    """The height of each event from its uniform ``u``."""
    if isinstance(height, UniformHeight):
        return height.low + (height.high - height.low) * u
    if isinstance(height, SymmetricHeight):
        return height.range * (2.0 * u - 1.0)
    return np.full(len(u), float(height))


# -- injectors ------------------------------------------------------------------------

class Injector(Model):
    """Fields every anomaly injector has."""

    kind: str
    placement: Placement = Field(default_factory=RandomPlacement)
    allow_overlap: bool = Field(False, description="Keep this injector's events even where they overlap other events")
    stream: StreamKey

    @property
    def length_bounds(self) -> tuple[int, int]:
        return 1, 1


class _Lasting(Injector):
    min_length: Length(10, "Shortest event, in samples (>= 1)")
    max_length: Length(20, "Longest event, in samples (>= min_length)")

    @property
    def length_bounds(self) -> tuple[int, int]:
        return self.min_length, self.max_length


class Spike(Injector):
    """One sample raised by ``height``."""

    kind: Literal["spike"]
    height: Height = Field(default_factory=UniformHeight)


class LevelShift(_Lasting):
    """A plateau: ``+ height`` (one height per event) over the event."""

    kind: Literal["level-shift"]
    height: Height = 10.0


class NoisyCluster(_Lasting):
    """``+ amplitude * (2u - 1)`` with a fresh uniform per sample."""

    kind: Literal["noisy-cluster"]
    amplitude: level(10.0, "Half-width of the per-sample offsets")


class VarianceChange(_Lasting):
    """``+ std_dev * z`` with a standard normal per sample."""

    kind: Literal["variance-change"]
    std_dev: Annotated[float, Field(1.0, gt=0, le=MAX_LEVEL, description="Standard deviation added, > 0")]


class TrendChange(_Lasting):
    """A ramp of ``slope`` units per second of stream time from the event start."""

    kind: Literal["trend-change"]
    slope: Annotated[float, Field(1.0, ge=-1e9, le=1e9, description="Units per second of stream time",
                                  json_schema_extra={"unit": "1/s"})]


class FrequencyChange(_Lasting):
    """The waveform base at ``factor`` times its frequency."""

    kind: Literal["frequency-change"]
    factor: Annotated[float, Field(2.0, gt=0, le=1000, description="Frequency multiplier during the event, in (0, 1000]")]


class Flatline(_Lasting):
    """Stuck at the value of the sample before the event."""

    kind: Literal["flatline"]


class Dropout(_Lasting):
    """Missing samples: NaN (JSON null), or ``fill`` when given."""

    kind: Literal["dropout"]
    fill: Optional[Level] = Field(None, description="Value of the missing samples (default: null)")


INJECTORS = {c.model_fields["kind"].annotation.__args__[0]: c for c in
             (Spike, LevelShift, NoisyCluster, VarianceChange, TrendChange, FrequencyChange, Flatline, Dropout)}
AnyInjector = Annotated[Union[tuple(INJECTORS.values())], Field(discriminator="kind")]
#: Kinds whose events carry state captured at their first sample that only
#: rendering gives (the value before a flatline): seek renders the samples
#: they may reach back to. A trend change's state, its start time, is the
#: clock's ``time_of(first)``, the same float a render captures: no replay.
STATEFUL_KINDS = frozenset({"flatline"})


# -- random streams -------------------------------------------------------------------

class Stream:
    """Uniform doubles at fixed positions of the PCG64 stream seeded by
    ``(seed, spawn_key)``: sample ``n`` owns positions ``draws*n ..
    draws*n + draws - 1`` (as :class:`~wsgen.engine.base.RandomStream`,
    which it equals for ``spawn_key == (key,)``)."""

    def __init__(self, seed: int, spawn_key: tuple[int, ...], draws: int = 1) -> None:
        self._bitgen = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=spawn_key))
        self._initial = self._bitgen.state
        self._gen = np.random.Generator(self._bitgen)
        self._draws = draws
        self._next = 0

    def uniforms(self, n: int, m: int) -> np.ndarray:
        """Doubles of samples n .. n+m-1: shape (m,) or (m, draws)."""
        if n != self._next:
            if n < self._next:
                self._bitgen.state = self._initial
                self._next = 0
            self._bitgen.advance((n - self._next) * self._draws)
        out = self._gen.random(m * self._draws)
        self._next = n + m
        return out if self._draws == 1 else out.reshape(m, self._draws)

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Doubles of the given sample indices (ascending)."""
        k = len(positions)
        if k == 0:
            return np.empty((0,) if self._draws == 1 else (0, self._draws))
        lo, hi = int(positions[0]), int(positions[-1]) + 1
        if hi - lo <= 64 * k + 4096:
            return self.uniforms(lo, hi - lo)[positions - lo]
        return np.concatenate([self.uniforms(int(p), 1) for p in positions])

    def normals(self, n: int, m: int) -> np.ndarray:
        """Standard normals of samples n .. n+m-1 (Box-Muller on two uniforms
        each, as the ``normal`` distribution)."""
        u = self.uniforms(n, m)
        r = np.log1p(-u[:, 0])
        r *= -2.0
        np.sqrt(r, out=r)
        r *= np.cos(u[:, 1] * (2.0 * math.pi))
        return r


# -- sources of candidate events --------------------------------------------------------

class Lengths:
    """Event lengths ``lo + floor(u * (hi - lo + 1))``, ``u`` from ``(K+2,)`` at the start."""

    def __init__(self, seed: int, key: int, bounds: tuple[int, int]) -> None:
        self.bounds = bounds
        self._u = Stream(seed, (key + 2,))

    def draw(self, starts: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds
        if lo == hi:
            return np.full(len(starts), lo, np.int64)
        out = lo + np.floor(self._u.at(starts) * (hi - lo + 1)).astype(np.int64)
        return np.minimum(out, hi)


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
    return at if behind <= 0 else at + max(0, math.ceil(behind / clock.interval - _EPS))


class RandomSource(Source):
    """Two uniforms per sample from ``(K,)``: ``u1 < probability`` starts an
    event, ``u2`` is its event uniform (the original ``random``)."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._u = Stream(seed, (key,), draws=2)

    def candidates(self, a, b):
        u = self._u.uniforms(a, b - a)
        hit = np.flatnonzero(u[:, 0] < self.placement.probability)
        starts = a + hit
        return starts, self.lengths.draw(starts), u[hit, 1]


class GapsSource(Source):
    """The original random-square / clustered :class:`EventTrack` on ``(K,)``
    (gaps and lengths), counted from the sample the source was created at;
    event uniforms from ``(K+3,)``."""

    skippable = False

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._bounds = (placement.min_gap, placement.max_gap, *bounds)
        self._track = EventTrack(seed, key, self._bounds)
        self._shift = at
        self._u = Stream(seed, (key + 3,))
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
    """The original ``periodic-spike`` placement: an event where
    ``floor(phase + 1e-9)`` steps up, ``phase = t / every`` (continuous across
    changes of ``every`` and ``interval``); event uniforms from ``(K,)`` at
    the event's sample."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._u = Stream(seed, (key,))
        self._set_anchor(at, placement, clock)

    def _set_anchor(self, at: int, placement, clock) -> None:
        """Phase ``(t - start) / every`` from sample ``at`` on (start 0: the
        original periodic-spike's ``t / every``, the same floats)."""
        start = placement.start_s
        self._pace = (placement.every, clock.interval)
        self._start = start
        self._anchor = at
        self._anchor_phase = (clock.time_of(at) - start) / placement.every if start else clock.time_of(at) / placement.every
        self._floor_before = math.floor((clock.time_of(at - 1) - start) / placement.every + _EPS) if at > 0 else -1

    def _phase(self, n: int, m: int) -> np.ndarray:
        every, interval = self._pace
        k = np.arange(n - self._anchor, n - self._anchor + m, dtype=np.float64)
        k *= interval
        k /= every
        k += self._anchor_phase
        return k

    def candidates(self, a, b):
        if a > self._anchor:
            fl = np.floor(self._phase(a - 1, b - a + 1) + _EPS)
        else:
            fl = np.concatenate(([self._floor_before], np.floor(self._phase(a, b - a) + _EPS)))
        starts = a + np.flatnonzero(fl[1:] > fl[:-1])
        return starts, self.lengths.draw(starts), self._u.at(starts)

    def rewind(self, at, placement, bounds, clock):
        super().rewind(at, placement, bounds, clock)
        pace = (placement.every, clock.interval)
        if placement.start_s != self._start:
            self._set_anchor(at, placement, clock)       # a new start: a new phase, from at
        elif pace != self._pace:
            old_every, old_interval = self._pace
            if at > self._anchor:
                before = self._anchor_phase + ((at - 1 - self._anchor) * old_interval) / old_every
                self._floor_before = math.floor(before + _EPS)
            self._anchor_phase += ((at - self._anchor) * old_interval) / old_every
            self._anchor = at
            self._pace = pace


class CountSource(Source):
    """The original ``count-per-duration`` placement: window ``w`` of
    ``round(duration / interval)`` samples draws its sorted offsets and their
    uniforms from ``(K, w)``; a change of count, duration or interval ends
    the current window at ``at``."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._shape = (placement.count, placement.duration, clock.interval)
        self._origin, self._window_base = at, 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def _size(self) -> int:
        return int(round(self._shape[1] / self._shape[2]))

    def _window(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(number)
        if hit is None:
            k = self._shape[0]
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(self.key, number))))
            offsets = np.sort(rng.choice(self._size, k, replace=False)) if k else np.empty(0, np.int64)
            hit = (offsets, rng.random(k))
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[number] = hit
        return hit

    def candidates(self, a, b):
        w = self._size
        starts, us = [], []
        for j in range((a - self._origin) // w, (b - 1 - self._origin) // w + 1):
            offsets, u = self._window(self._window_base + j)
            first = self._origin + j * w
            lo, hi = np.searchsorted(offsets, (a - first, b - first))
            starts.append(first + offsets[lo:hi])
            us.append(u[lo:hi])
        starts = np.concatenate(starts).astype(np.int64) if starts else np.empty(0, np.int64)
        return starts, self.lengths.draw(starts), np.concatenate(us) if us else np.empty(0)

    def rewind(self, at, placement, bounds, clock):
        super().rewind(at, placement, bounds, clock)
        shape = (placement.count, placement.duration, clock.interval)
        if shape != self._shape:
            self._window_base += (at - self._origin) // self._size + 1
            self._origin = at
            self._shape = shape
            self._cache.clear()


class IndicesSource(Source):
    """Events at fixed sample indices; event uniforms from ``(K,)`` there."""

    def __init__(self, seed, key, placement, bounds, clock, at):
        super().__init__(seed, key, placement, bounds, clock, at)
        self._u = Stream(seed, (key,))
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


# -- kept events ----------------------------------------------------------------------

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

    def __init__(self, schedules: list["Schedule"], fixed: Intervals | None = None) -> None:
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

    def decide(self, until: int, blocked: "Blockers | Intervals | None", allow_overlap: bool) -> None:
        """Decide the candidates starting before ``until``."""
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


def expand(starts: np.ndarray, ends: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (relative to ``n``) of the samples of each event inside
    ``[n, n+m)`` and the index of the event each belongs to."""
    lo = np.maximum(starts, n) - n
    sizes = np.minimum(ends, n + m) - n - lo
    ev = np.repeat(np.arange(len(starts)), sizes)
    pos = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes - lo, sizes)
    return pos, ev


def event_dicts(schedule: Schedule, idx: np.ndarray, slot: int, kind: str) -> list[dict[str, Any]]:
    """Ground-truth records of the events ``idx`` of a schedule."""
    return [{"id": s * ID_SLOTS + slot, "kind": kind, "first": s, "last": e - 1}
            for s, e in zip(schedule.starts[idx].tolist(), schedule.ends[idx].tolist())]


# -- injectors at work ------------------------------------------------------------------

class Part:
    """A part of a composition that owns events (an injector or a fault):
    its spec (``placement``, ``length_bounds``, ``stream``), its kept events
    (:class:`Schedule`) and its per-sample stream ``(K+1,)``.

    ``slot`` is its place (0..15 injectors, 16.. faults): event ids are
    ``first * 32 + slot``, and the default stream key is ``1000 + 8 * slot``.
    """

    def __init__(self, seed: int, slot: int, spec, clock, at: int, kind: str | None = None) -> None:
        self.seed, self.slot, self.kind = seed, slot, kind or spec.kind
        #: values of the last rendered sample before and after this part
        #: (None: not rendered yet; the composite hands it the stage before's)
        self.input_last: float | None = None
        self.output_last = math.nan
        self.spec = spec
        self.schedule = Schedule(self._source(spec, clock, at), at)
        self._samples = self._sample_stream()

    @property
    def key(self) -> int:
        return default_key(self.spec.stream, 1000 + 8 * self.slot)

    def _source(self, spec, clock, at: int) -> Source:
        return make_source(self.seed, default_key(spec.stream, 1000 + 8 * self.slot), spec.placement,
                           spec.length_bounds, clock, at)

    def _sample_stream(self) -> Stream:
        return Stream(self.seed, (self.key + 1,))

    def respec(self, spec, clock, at: int) -> None:
        """Apply ``spec`` (same kind) from sample ``at``: events started
        before ``at`` stay; later ones are re-decided (see the module doc)."""
        old, self.spec = self.spec, spec
        self.schedule.truncate(at)
        if (old.placement.mode, old.stream) != (spec.placement.mode, spec.stream):
            self.schedule.source = self._source(spec, clock, at)
            self._samples = self._sample_stream()
        else:
            self.schedule.source.rewind(at, spec.placement, spec.length_bounds, clock)

    @property
    def max_length(self) -> int:
        """Longest event this part may have (its bound, or a longer kept one)."""
        return max(self.spec.length_bounds[1], self.schedule.longest)

    def positions(self, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(event indices, sample positions relative to ``n``, event of each
        position) of the events overlapping ``[n, n+m)``."""
        sched = self.schedule
        idx = sched.overlapping(n, n + m)
        pos, ev = expand(sched.starts[idx], sched.ends[idx], n, m)
        return idx, pos, ev

    def events(self, idx: np.ndarray) -> list[dict[str, Any]]:
        return event_dicts(self.schedule, idx, self.slot, self.kind)


class InjectorPart(Part):
    """An anomaly injector at work."""

    def _sample_stream(self) -> Stream:
        return Stream(self.seed, (self.key + 1,), draws=2 if self.spec.kind == "variance-change" else 1)

    def apply(self, x: np.ndarray, labels: np.ndarray, ctx: "BlockContext") -> list[dict[str, Any]]:
        """Inject the events overlapping the block into ``x`` (in place), mark
        their samples in ``labels``; return their ground-truth records."""
        idx, pos, ev = self.positions(ctx.n, ctx.m)
        last_in = float(x[-1]) if ctx.m else self.input_last
        if len(idx):
            labels[pos] = True
            _EFFECTS[self.spec.kind](self, x, ctx, idx, pos, ev)
        if ctx.m:
            self.input_last, self.output_last = last_in, float(x[-1])
        return self.events(idx)

    def _add(self, x: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
        if self.spec.allow_overlap:
            np.add.at(x, pos, values)
        else:
            x[pos] += values

    def _capture(self, idx: np.ndarray, value_at) -> np.ndarray:
        """The per-event state, captured when first needed."""
        state = self.schedule.state
        for i in idx.tolist():
            if math.isnan(state[i]):
                state[i] = value_at(int(self.schedule.starts[i]))
        return state[idx]


class BlockContext:
    """What effects read besides the values: the block's range, the base
    signal alone, the stream time of each sample and the base generator."""

    def __init__(self, n: int, m: int, base: np.ndarray, times: np.ndarray, base_gen, clock) -> None:
        self.n, self.m, self.base, self.times, self.base_gen, self.clock = n, m, base, times, base_gen, clock


def _spike(part, x, ctx, idx, pos, ev):
    part._add(x, pos, heights(part.spec.height, part.schedule.u[idx])[ev])


def _cluster(part, x, ctx, idx, pos, ev):
    u = part._samples.uniforms(ctx.n, ctx.m)
    part._add(x, pos, part.spec.amplitude * (2.0 * u[pos] - 1.0))


def _variance(part, x, ctx, idx, pos, ev):
    part._add(x, pos, part.spec.std_dev * part._samples.normals(ctx.n, ctx.m)[pos])


def _trend(part, x, ctx, idx, pos, ev):
    def start_time(s):
        return float(ctx.times[s - ctx.n]) if s >= ctx.n else ctx.clock.time_of(s)
    t0 = part._capture(idx, start_time)
    part._add(x, pos, part.spec.slope * (ctx.times[pos] - t0[ev]))


def _frequency(part, x, ctx, idx, pos, ev):
    n, m, base_gen, base, gain = ctx.n, ctx.m, ctx.base_gen, ctx.base, None
    if hasattr(base_gen, "waveform_part"):  # a channel's base, gain * waveform + noise (wsgen.engine.channels)
        base_gen, base, gain = base_gen.waveform_part()
    if not isinstance(base_gen, Waveform):  # base changed kind while an event runs out: labels only
        return
    for s, e in zip(part.schedule.starts[idx].tolist(), part.schedule.ends[idx].tolist()):
        lo, hi = max(s, n), min(e, n + m)
        delta = warped_waveform(base_gen, s, part.spec.factor, lo, hi - lo) - base[lo - n:hi - n]
        x[lo - n:hi - n] += delta if gain is None or gain == 1 else gain * delta


def _flatline(part, x, ctx, idx, pos, ev):
    n, m = ctx.n, ctx.m
    sched, x_in = part.schedule, x.copy()
    for i in idx.tolist():
        s, e = int(sched.starts[i]), int(sched.ends[i])
        if n <= s < n + m:
            sched.state[i] = x_in[s - 1 - n] if s > n else (part.input_last if s > 0 else x_in[0])
        x[max(s, n) - n:min(e, n + m) - n] = sched.state[i]


def _dropout(part, x, ctx, idx, pos, ev):
    x[pos] = math.nan if part.spec.fill is None else part.spec.fill


_EFFECTS = {"spike": _spike, "level-shift": _spike, "noisy-cluster": _cluster, "variance-change": _variance,
            "trend-change": _trend, "frequency-change": _frequency, "flatline": _flatline, "dropout": _dropout}


def warped_waveform(base_gen, start: int, factor: float, n: int, m: int) -> np.ndarray:
    """Samples n..n+m-1 of the waveform ``base_gen`` run at ``factor`` times
    its frequency from sample ``start`` on, phase-continuous there.

    Uses the phase accumulator of :class:`~wsgen.engine.waveforms.Waveform`
    (``_cycles``, ``_anchor``, ``_anchor_cycles``, ``_render``) on a copy.
    """
    c = float(base_gen._cycles(start, 1)[0])
    g = copy.copy(base_gen)
    g._anchor, g._anchor_cycles = start, c - math.floor(c)
    g.params = base_gen.params.model_copy(update={"frequency": base_gen.params.frequency * factor})
    values, _ = g._render(n, m)
    return values


def default_key(stream: int | None, default: int) -> int:
    """A part's stream key: its ``stream`` field, else ``default``."""
    return default if stream is None else stream
