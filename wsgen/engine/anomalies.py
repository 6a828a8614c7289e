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

The event tracks, phase clock, count windows and validation rules are those
of :mod:`wsgen.engine.placement`, which the composition's placements use too
(:func:`wsgen.engine.composite.preset` gives the equal composition).
"""
from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from wsgen.engine.base import Generator, RandomStream
from wsgen.engine.fields import count, interval, level
from wsgen.engine.params import GeneratorParams, InvalidParams
from wsgen.engine.placement import (MAX_ANOMALIES_PER_WINDOW, CountWindows, EventTrack, PhaseClock, ordered,
                                    pace_problems, symmetric, uniform_between, window_problems, window_samples)

DataInterval = interval(1.0, "Seconds of stream time between samples (0: as fast as the client reads)")
PositiveDataInterval = interval(
    1.0, "Seconds of stream time between samples; must be > 0 because anomalies are placed in "
    "stream time (use speed=max for fast delivery)", positive=True)
Probability = Annotated[float, Field(0.05, ge=0, le=1, description="Probability in [0, 1]")]

# one-sample label arrays, copied for each take(1) (a copy is 3x cheaper than np.array([True]))
_TRUE1 = np.array([True])
_FALSE1 = np.array([False])
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
        lo, hi = self.len_fields
        return (ordered("minimum_interval", self.minimum_interval, "maximum_interval", self.maximum_interval)
                + ordered(lo, getattr(self, lo), hi, getattr(self, hi)))


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
        return (ordered("min_spike_range", self.min_spike_range, "max_spike_range", self.max_spike_range)
                + pace_problems("spike_interval", self.spike_interval, self.interval, "spike"))


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
        return window_samples(self.duration, self.interval)

    def check(self):
        return (ordered("min_anomaly_range", self.min_anomaly_range, "max_anomaly_range", self.max_anomaly_range)
                + window_problems("duration", "num_anomalies", self.duration, self.interval, self.num_anomalies))


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
                return np.array([p.base_value + symmetric(p.anomaly_range, u2)]), _TRUE1.copy()
            return np.array([p.base_value]), _FALSE1.copy()
        u = self._u.uniforms(n, m)
        labels = u[:, 0] < p.anomaly_probability
        values = np.full(m, p.base_value)
        if labels.any():
            values[labels] += symmetric(p.anomaly_range, u[labels, 1])
        return values, labels


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
        lo_gap, _, lo_len, _ = events.bounds
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
            v = p.constant_value + symmetric(p.anomaly_magnitude, u) if hit else p.constant_value
            return np.array([v]), (_TRUE1 if hit else _FALSE1).copy()
        labels = self._events.mask(n, m)
        u = self._u.uniforms(n, m)
        values = np.full(m, p.constant_value)
        values[labels] += symmetric(p.anomaly_magnitude, u[labels])
        return values, labels


class PeriodicSpike(Generator):
    name = "periodic-spike"
    Params = PeriodicSpikeParams
    anomalous = True

    def _setup(self):
        self._u = RandomStream(self.seed, key=25)
        self._clock = PhaseClock(self.params.spike_interval, self.params.interval)

    def _render(self, n, m):
        p = self.params
        if m == 1:  # fast path for take(1): same operations on Python floats
            u = self._u.one(n)
            if self._clock.step_at(n):
                return np.array([p.base_value + uniform_between(p.min_spike_range, p.max_spike_range, u)]), _TRUE1.copy()
            return np.array([p.base_value]), _FALSE1.copy()
        labels = self._clock.steps(n, m)
        u = self._u.uniforms(n, m)
        values = np.full(m, p.base_value)
        values[labels] += uniform_between(p.min_spike_range, p.max_spike_range, u[labels])
        return values, labels

    def _on_update(self, old, new, at):
        self._clock.repace(at, new.spike_interval, new.interval)


class CountPerDuration(Generator):
    name = "count-per-duration"
    Params = CountPerDurationParams
    anomalous = True

    def _setup(self):
        p = self.params
        self._windows = CountWindows(self.seed, 26, p.num_anomalies, p.window_samples)

    #: Windows one render may draw: each costs a random stream of its own
    #: (12 us on a fast machine, 70 us on a slow one), so a stream of
    #: one-sample windows renders 64 samples at a time (1-5 ms), not 8192
    #: (0.1-0.6 s of the server's loop).
    WINDOWS_PER_RENDER = 64

    @property
    def render_limit(self) -> int:
        """Most samples one take should hold (see :attr:`Generator.render_limit`)."""
        return self.WINDOWS_PER_RENDER * max(1, self.params.window_samples)

    def _render(self, n, m):
        p = self.params
        if m == 1:  # fast path for take(1)
            u = self._windows.at(n)
            if u is not None:
                return (np.array([p.base_value + uniform_between(p.min_anomaly_range, p.max_anomaly_range, u)]),
                        _TRUE1.copy())
            return np.array([p.base_value]), _FALSE1.copy()
        pos, u = self._windows.hits(n, n + m)
        pos -= n
        labels = np.zeros(m, bool)
        labels[pos] = True
        values = np.full(m, p.base_value)
        values[pos] += uniform_between(p.min_anomaly_range, p.max_anomaly_range, u)
        return values, labels

    def _on_update(self, old, new, at):
        if ((old.num_anomalies, old.duration, old.interval)
                != (new.num_anomalies, new.duration, new.interval)):
            self._windows.restart(at, new.num_anomalies, new.window_samples)
