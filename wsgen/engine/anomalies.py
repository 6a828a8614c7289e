"""Anomaly streams of the original service, labelled.

Each returns, besides the values, a boolean label per sample that is True
exactly where the sample is an anomaly. Stream time of sample ``n`` is
``n * interval`` seconds; placements given in seconds are in stream time.
The sample interval is ``interval``, as for every kind; ``data_interval``
(the original service's name) is accepted as an alias, and giving both is
an error naming both.

* ``random``: sample n is ``base_value`` or, with probability
  ``anomaly_probability``, ``base_value + anomaly_range * (2*u - 1)`` (uniform
  in [-range, +range)). Two uniforms per sample: u1 < p decides, u2 the value.
* ``random-square``: flat at ``base_value``; after a gap of
  ``minimum_interval..maximum_interval`` samples (inclusive), a plateau at
  ``base_value + anomaly_magnitude`` lasting
  ``min_anomaly_duration..max_anomaly_duration`` samples; repeat.
* ``clustered``: as random-square, but each sample inside a cluster is
  ``constant_value + anomaly_magnitude * (2*u - 1)``.
* ``periodic-spike``: a spike of ``base_value + U[min_spike_range,
  max_spike_range]`` at the first sample at or after each multiple of
  ``spike_interval`` seconds of stream time (0, S, 2S, ...): defaults give
  three spikes in every hour.
* ``count-per-duration``: the stream is cut into windows of ``duration``
  seconds (``round(duration / interval)`` samples); each window holds
  exactly ``num_anomalies`` anomalies at distinct random samples, each
  ``base_value + U[min_anomaly_range, max_anomaly_range]``.

Live update rules (effective from sample ``u = seq``):

* levels and value ranges apply from ``u``;
* ``random-square`` / ``clustered``: events that started before ``u`` keep
  their place and length; later gaps and lengths use the new bounds (the gap
  after the last event is counted from its end);
* ``periodic-spike``: the stream-time phase is continuous: a new
  ``spike_interval`` or ``interval`` changes the pace from ``u`` on;
* ``count-per-duration``: changing ``num_anomalies``, ``duration`` or
  ``interval`` ends the current window at ``u`` (its anomalies at
  samples before ``u`` were sent) and starts a new one there.

Randomness: event draws use fixed positions of their own PCG64 stream
(event i uses doubles 2i, 2i+1), per-sample draws likewise, and each
count-per-duration window has its own stream keyed by its number, so values
never depend on block sizes.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from wsgen.engine.base import Generator, RandomStream
from wsgen.engine.fields import count, interval, level
from wsgen.engine.params import GeneratorParams, InvalidParams

DataInterval = interval(1.0, "Seconds of stream time between samples (0: as fast as the client reads)")
PositiveDataInterval = interval(
    1.0, "Seconds of stream time between samples; must be > 0 because anomalies are placed in "
    "stream time (use speed=max for fast delivery)", positive=True)
Probability = Annotated[float, Field(0.05, ge=0, le=1, description="Probability in [0, 1]")]

_EPS = 1e-9
# one-sample label arrays, copied for each take(1) (a copy is 3x cheaper than np.array([True]))
_TRUE1 = np.array([True])
_FALSE1 = np.array([False])
#: Most anomalies per count-per-duration window (and per ``count``
#: placement window): each window's placements are drawn at once, in the
#: take that reaches the window, so this bounds that take's cost (10,000
#: draws: 0.4 ms; 1e6 took 40 ms and 400 MB for some window sizes).
MAX_ANOMALIES_PER_WINDOW = 10_000
#: Most events a seek (``start_seq``) of random-square / clustered may replay
#: (a fifth of a second at worst); farther starts are refused, not ground through.
MAX_SEEK_EVENTS = 2 * 10**7


class RandomParams(GeneratorParams):
    """Parameters of ``random``."""

    aliases = {"data_interval": "interval"}
    base_value: level(0.0, "Level of normal samples")
    anomaly_probability: Probability
    anomaly_range: Annotated[float, Field(10.0, ge=0, le=1e12, description="Anomalies are base_value + U[-range, +range], >= 0")]
    interval: DataInterval


class _EventParams(GeneratorParams):
    aliases = {"data_interval": "interval"}
    anomaly_magnitude: level(10.0, "Height of the anomaly")
    minimum_interval: count(50, "Shortest gap between anomalies, in samples (>= 1)")
    maximum_interval: count(150, "Longest gap between anomalies, in samples (>= minimum_interval)")
    interval: DataInterval

    len_fields: ClassVar[tuple[str, str]]

    def bounds(self) -> tuple[int, int, int, int]:
        lo, hi = self.len_fields
        return self.minimum_interval, self.maximum_interval, getattr(self, lo), getattr(self, hi)

    def check(self):
        problems = []
        if self.minimum_interval > self.maximum_interval:
            problems.append(("minimum_interval", f"must be <= maximum_interval ({self.maximum_interval})"))
        lo, hi = self.len_fields
        if getattr(self, lo) > getattr(self, hi):
            problems.append((lo, f"must be <= {hi} ({getattr(self, hi)})"))
        return problems


class RandomSquareParams(_EventParams):
    """Parameters of ``random-square``."""

    len_fields = ("min_anomaly_duration", "max_anomaly_duration")
    base_value: level(0.0, "Level outside anomalies")
    min_anomaly_duration: count(5, "Shortest plateau, in samples (>= 1)")
    max_anomaly_duration: count(10, "Longest plateau, in samples (>= min_anomaly_duration)")


class ClusteredParams(_EventParams):
    """Parameters of ``clustered``."""

    len_fields = ("min_anomaly_length", "max_anomaly_length")
    constant_value: level(0.0, "Level outside clusters")
    min_anomaly_length: count(5, "Shortest cluster, in samples (>= 1)")
    max_anomaly_length: count(10, "Longest cluster, in samples (>= min_anomaly_length)")


class PeriodicSpikeParams(GeneratorParams):
    """Parameters of ``periodic-spike``."""

    aliases = {"data_interval": "interval"}
    base_value: level(0.0, "Level between spikes")
    spike_interval: Annotated[float, Field(1200.0, gt=0, le=1e9, description="Seconds of stream time between spikes (> 0, >= interval)",
                                           json_schema_extra={"unit": "s"})]
    min_spike_range: level(5.0, "Smallest spike height above base_value")
    max_spike_range: level(10.0, "Largest spike height above base_value (>= min_spike_range)")
    interval: PositiveDataInterval

    def check(self):
        problems = []
        if self.min_spike_range > self.max_spike_range:
            problems.append(("min_spike_range", f"must be <= max_spike_range ({self.max_spike_range})"))
        if self.spike_interval < self.interval:
            problems.append(("spike_interval", f"must be >= interval ({self.interval}): at most one spike per sample"))
        return problems


class CountPerDurationParams(GeneratorParams):
    """Parameters of ``count-per-duration``."""

    aliases = {"data_interval": "interval"}
    base_value: level(0.0, "Level of normal samples")
    num_anomalies: Annotated[int, Field(1, ge=0, le=MAX_ANOMALIES_PER_WINDOW,
                                        description="Anomalies in each window (0 .. samples per window, at most 10000)",
                                        json_schema_extra={"unit": "anomalies"})]
    min_anomaly_range: level(-10.0, "Smallest anomaly offset from base_value")
    max_anomaly_range: level(10.0, "Largest anomaly offset from base_value (>= min_anomaly_range)")
    duration: Annotated[float, Field(3600.0, gt=0, le=1e9, description="Window length in seconds of stream time",
                                     json_schema_extra={"unit": "s"})]
    interval: PositiveDataInterval

    @property
    def window_samples(self) -> int:
        """Samples per window: round(duration / interval)."""
        return int(round(self.duration / self.interval))

    def check(self):
        problems = []
        if self.min_anomaly_range > self.max_anomaly_range:
            problems.append(("min_anomaly_range", f"must be <= max_anomaly_range ({self.max_anomaly_range})"))
        w = self.window_samples
        if w < 1:
            problems.append(("duration", f"must hold at least one sample: duration / interval = {self.duration / self.interval:g}"))
        elif w > 10**9:
            problems.append(("duration", f"window of {w} samples is too long; duration / interval must be <= 1e9"))
        elif self.num_anomalies > w:
            problems.append(("num_anomalies", f"must be <= the samples in a window: duration / interval = {w}"))
        return problems


class Random(Generator):
    name = "random"
    Params = RandomParams
    anomalous = True

    def _setup(self):
        self._u = RandomStream(self.seed, key=21, draws=2)

    def _render(self, n, m):
        p = self.params
        if m == 1:  # fast path for take(1): same operations on Python floats
            u1, u2 = self._u.one(n)
            if u1 < p.anomaly_probability:
                return np.array([p.base_value + p.anomaly_range * (2.0 * u2 - 1.0)]), _TRUE1.copy()
            return np.array([p.base_value]), _FALSE1.copy()
        u = self._u.uniforms(n, m)
        labels = u[:, 0] < p.anomaly_probability
        values = np.full(m, p.base_value)
        if labels.any():
            values[labels] += p.anomaly_range * (2.0 * u[labels, 1] - 1.0)
        return values, labels


class EventTrack:
    """Anomaly events (gap, then a run of samples) drawn at fixed positions.

    Event ``i`` uses the uniforms ``2i`` (gap) and ``2i+1`` (length) of its
    own stream. Events are drawn lazily in vectorised batches; ``truncate``
    re-draws those not yet started after a parameter change.
    """

    def __init__(self, seed: int, key: int, bounds) -> None:
        self._u = RandomStream(seed, key=key, draws=2)
        self._bounds = bounds  # (min_gap, max_gap, min_len, max_len)
        self._first = 0        # index of the first stored event
        self.starts = np.empty(0, np.int64)
        self.ends = np.empty(0, np.int64)   # exclusive
        self._origin = 0        # end of the last event before the stored ones
        self._span = (0, 0, 0)  # (gap start, event start, event end) of the last ``inside``

    @property
    def _next_index(self) -> int:
        return self._first + len(self.starts)

    @property
    def _last_end(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else self._origin

    def extend(self, until: int) -> None:
        """Draw events until the last one starts at or after ``until``."""
        while not len(self.starts) or self.starts[-1] < until:
            lo_g, hi_g, lo_l, hi_l = self._bounds
            last = self._last_end
            need = (until - last) // (lo_g + lo_l) + 1
            batch = int(min(max(need, 64), 1 << 16))
            u = self._u.uniforms(self._next_index, batch)
            gaps = lo_g + np.floor(u[:, 0] * (hi_g - lo_g + 1)).astype(np.int64)
            lens = lo_l + np.floor(u[:, 1] * (hi_l - lo_l + 1)).astype(np.int64)
            ends = last + np.cumsum(gaps + lens)
            self.starts = np.concatenate([self.starts, ends - lens])
            self.ends = np.concatenate([self.ends, ends])

    def forget_before(self, n: int) -> None:
        """Drop stored events that ended at or before sample ``n`` (keep one)."""
        k = int(np.searchsorted(self.ends, n, side="right"))
        k = min(k, len(self.ends) - 1)
        if k > 0:
            self._origin = int(self.ends[k - 1])
            self._first += k
            self.starts = self.starts[k:]
            self.ends = self.ends[k:]

    def truncate(self, at: int, bounds) -> None:
        """Keep events that started before ``at``; later ones are re-drawn
        with ``bounds``."""
        self.extend(at)
        k = int(np.searchsorted(self.starts, at, side="left"))
        self.starts = self.starts[:k]
        self.ends = self.ends[:k]
        self._bounds = bounds
        self._span = (0, 0, 0)

    def mask(self, n: int, m: int) -> np.ndarray:
        """Boolean mask of samples n..n+m-1 that lie inside an event."""
        self.extend(n + m)
        lo = int(np.searchsorted(self.ends, n, side="right"))
        hi = int(np.searchsorted(self.starts, n + m, side="left"))
        diff = np.zeros(m + 1, np.int64)
        if hi > lo:
            s = np.clip(self.starts[lo:hi] - n, 0, m)
            e = np.clip(self.ends[lo:hi] - n, 0, m)
            np.add.at(diff, s, 1)
            np.add.at(diff, e, -1)
        out = np.cumsum(diff[:m]) > 0
        if len(self.starts) > 4096:
            self.forget_before(n + m)
        return out

    def inside(self, n: int) -> bool:
        """``mask(n, 1)[0]`` without arrays (the ``take(1)`` fast path).

        Keeps the gap and event around the last answer as Python ints
        (stored events never move; ``truncate`` resets it), so walking
        forward one sample at a time costs a comparison.
        """
        lo, start, end = self._span
        if not lo <= n < end:
            self.extend(n + 1)
            k = int(self.ends.searchsorted(n, side="right"))  # first event ending after n
            lo = int(self.ends[k - 1]) if k else self._origin
            start, end = int(self.starts[k]), int(self.ends[k])
            self._span = (lo, start, end)
            if len(self.starts) > 4096:
                self.forget_before(n + 1)
        return n >= start


class _EventGenerator(Generator):
    anomalous = True
    _key: int

    def _setup(self):
        self._events = EventTrack(self.seed, self._key, self.params.bounds())

    def _on_update(self, old, new, at):
        if old.bounds() != new.bounds():
            self._events.truncate(at, new.bounds())

    def _advance_to(self, n):
        # Walk in bounded batches, forgetting passed events as we go: a long
        # seek then takes linear time and constant memory (drawing up to n
        # in one go concatenated ever-growing arrays: quadratic, unbounded).
        events = self._events
        lo_gap, _, lo_len, _ = events._bounds
        if (n - self.seq) // (lo_gap + lo_len) > MAX_SEEK_EVENTS:
            limit = self.seq + MAX_SEEK_EVENTS * (lo_gap + lo_len)
            raise InvalidParams([{"field": "start_seq", "value": n, "message":
                                  f"too far: {self.name} replays its events to get there; at most {limit} "
                                  f"with these gap and length minimums"}])
        step = (lo_gap + lo_len) << 16
        at = self.seq
        while at < n:
            at = min(n, at + step)
            events.extend(at)
            events.forget_before(at)


class RandomSquare(_EventGenerator):
    name = "random-square"
    Params = RandomSquareParams
    _key = 22

    def _render(self, n, m):
        p = self.params
        if m == 1:
            hit = self._events.inside(n)
            values = np.array([p.base_value + p.anomaly_magnitude if hit else p.base_value])
            return values, (_TRUE1 if hit else _FALSE1).copy()
        labels = self._events.mask(n, m)
        values = np.where(labels, p.base_value + p.anomaly_magnitude, p.base_value)
        return values, labels


class Clustered(_EventGenerator):
    name = "clustered"
    Params = ClusteredParams
    _key = 23

    def _setup(self):
        super()._setup()
        self._u = RandomStream(self.seed, key=24)

    def _render(self, n, m):
        p = self.params
        if m == 1:
            hit = self._events.inside(n)
            u = self._u.one(n)
            v = p.constant_value + p.anomaly_magnitude * (2.0 * u - 1.0) if hit else p.constant_value
            return np.array([v]), (_TRUE1 if hit else _FALSE1).copy()
        labels = self._events.mask(n, m)
        u = self._u.uniforms(n, m)
        values = np.full(m, p.constant_value)
        values[labels] += p.anomaly_magnitude * (2.0 * u[labels] - 1.0)
        return values, labels


class PeriodicSpike(Generator):
    name = "periodic-spike"
    Params = PeriodicSpikeParams
    anomalous = True

    def _setup(self):
        self._u = RandomStream(self.seed, key=25)
        self._anchor = 0
        self._anchor_phase = 0.0      # spike periods elapsed at the anchor
        self._floor_before = -1       # floor(phase) of the sample before the anchor

    def _phase(self, n: int, m: int) -> np.ndarray:
        p = self.params
        k = np.arange(n - self._anchor, n - self._anchor + m, dtype=np.float64)
        k *= p.interval
        k /= p.spike_interval
        k += self._anchor_phase
        return k

    def _render(self, n, m):
        p = self.params
        if m == 1:  # fast path for take(1): same operations on Python floats
            a, ph0, di, si = self._anchor, self._anchor_phase, p.interval, p.spike_interval
            now = math.floor(float(n - a) * di / si + ph0 + _EPS)
            before = math.floor(float(n - 1 - a) * di / si + ph0 + _EPS) if n > a else self._floor_before
            u = self._u.one(n)
            if now > before:
                return (np.array([p.base_value + (p.min_spike_range + (p.max_spike_range - p.min_spike_range) * u)]),
                        _TRUE1.copy())
            return np.array([p.base_value]), _FALSE1.copy()
        start = n - 1 if n > self._anchor else n
        ph = self._phase(start, m + (start < n))
        fl = np.floor(ph + _EPS)
        if start == n:
            fl = np.concatenate(([self._floor_before], fl))
        labels = fl[1:] > fl[:-1]
        u = self._u.uniforms(n, m)
        values = np.full(m, p.base_value)
        values[labels] += p.min_spike_range + (p.max_spike_range - p.min_spike_range) * u[labels]
        return values, labels

    def _on_update(self, old, new, at):
        if (old.spike_interval, old.interval) != (new.spike_interval, new.interval):
            # phase of sample `at` and of the one before it, under the old pace
            before = (self._anchor_phase + ((at - 1 - self._anchor) * old.interval) / old.spike_interval
                      if at > self._anchor else None)
            at_phase = self._anchor_phase + ((at - self._anchor) * old.interval) / old.spike_interval
            self._floor_before = math.floor(before + _EPS) if before is not None else self._floor_before
            self._anchor_phase = at_phase
            self._anchor = at


class CountPerDuration(Generator):
    name = "count-per-duration"
    Params = CountPerDurationParams
    anomalous = True

    def _setup(self):
        self._origin = 0        # first sample of window number `_window_base`
        self._window_base = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._one: tuple = (None, [], None)  # (window number, offsets as a list, uniforms) for take(1)

    #: Windows one render may draw: each costs a random stream of its own
    #: (12 us), so a stream of one-sample windows renders 256 samples at a
    #: time (3 ms), not 8192 (100 ms of the server's loop).
    WINDOWS_PER_RENDER = 256

    @property
    def render_limit(self) -> int:
        """Most samples one take should hold (see :attr:`Generator.render_limit`)."""
        return self.WINDOWS_PER_RENDER * max(1, self.params.window_samples)

    def _window(self, number: int, size: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted anomaly offsets within window ``number`` and their uniforms."""
        hit = self._cache.get(number)
        if hit is None:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(26, number))))
            offsets = np.sort(rng.choice(size, k, replace=False)) if k else np.empty(0, np.int64)
            hit = (offsets, rng.random(k))
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[number] = hit
        return hit

    def _render(self, n, m):
        p = self.params
        w = p.window_samples
        if m == 1:  # fast path for take(1): bisect a Python list of the window's offsets
            j = (n - self._origin) // w
            number = self._window_base + j
            if self._one[0] != number:
                offsets, u = self._window(number, w, p.num_anomalies)
                self._one = (number, offsets.tolist(), u)
            _, offsets, u = self._one
            r = n - self._origin - j * w                # offset of n in its window
            i = bisect_left(offsets, r)
            if i < len(offsets) and offsets[i] == r:
                return (np.array([p.base_value + (p.min_anomaly_range + (p.max_anomaly_range - p.min_anomaly_range) * u[i])]),
                        _TRUE1.copy())
            return np.array([p.base_value]), _FALSE1.copy()
        labels = np.zeros(m, bool)
        values = np.full(m, p.base_value)
        first = (n - self._origin) // w
        last = (n + m - 1 - self._origin) // w if m else first - 1
        for j in range(first, last + 1):
            offsets, u = self._window(self._window_base + j, w, p.num_anomalies)
            start = self._origin + j * w - n          # window start relative to n
            lo, hi = np.searchsorted(offsets, (-start, m - start))   # offsets are sorted
            pos = start + offsets[lo:hi]
            labels[pos] = True
            values[pos] += p.min_anomaly_range + (p.max_anomaly_range - p.min_anomaly_range) * u[lo:hi]
        return values, labels

    def _on_update(self, old, new, at):
        if ((old.num_anomalies, old.duration, old.interval)
                != (new.num_anomalies, new.duration, new.interval)):
            self._window_base += (at - self._origin) // old.window_samples + 1
            self._origin = at
            self._cache.clear()
            self._one = (None, [], None)
