"""Where anomalies go: the pieces both anomaly engines share.

The original anomaly kinds (:mod:`wsgen.engine.anomalies`) and the
composition's placements (:mod:`wsgen.engine.sources`) place their events
with these, so a rule of placement, labelling or validation is written once:

* :class:`EventTrack`: gap, event, gap, event... with gaps and lengths drawn
  at fixed positions (``random-square``, ``clustered``; placement ``gaps``);
* :class:`PhaseClock`: stream-time phase ``t / every`` continuous across
  changes of pace, and the samples where its floor steps up
  (``periodic-spike``; placement ``periodic``);
* :class:`CountWindows`: exactly ``count`` events at distinct random samples
  of each window of ``size`` samples (``count-per-duration``; placement
  ``count``);
* the values drawn for an event or sample from its uniform ``u`` in [0, 1)
  (:func:`uniform_between`, :func:`symmetric`, and :func:`count_between`
  for whole numbers of samples: gaps, lengths, delays);
* the validation rules of their parameters (:func:`ordered`,
  :func:`pace_problems`, :func:`window_samples`, :func:`window_problems`):
  each returns ``(field, message)`` pairs, empty when the values are valid.

Random draws come from :class:`~wsgen.engine.base.RandomStream` (one class,
with its one-sample fast path, for every kind and every part of a
composition); normals from :func:`~wsgen.engine.base.box_muller`.
"""
from __future__ import annotations

import math
from bisect import bisect_left

import numpy as np

from wsgen.engine.base import RandomStream

#: Stream-time phase rounding tolerated at a period boundary (a spike or
#: periodic event is due when ``floor(phase + EPS)`` steps up).
EPS = 1e-9
#: Most anomalies per count window (``count-per-duration``'s
#: ``num_anomalies``, a ``count`` placement's ``count``): each window's
#: placements are drawn at once, in the take that reaches the window, so this
#: bounds that take's cost (10,000 draws: 0.4 ms; 1e6 took 40 ms and 400 MB).
MAX_ANOMALIES_PER_WINDOW = 10_000
#: Longest count window, in samples.
MAX_WINDOW_SAMPLES = 10**9

Problems = list[tuple[str, str]]


# -- values from uniforms -----------------------------------------------------------

def uniform_between(low, high, u):
    """``low + (high - low) * u``: uniform in [low, high) for ``u`` in [0, 1)
    (floats or arrays; the same operations, so the same bits, either way)."""
    return low + (high - low) * u


def symmetric(half_width, u):
    """``half_width * (2u - 1)``: uniform in [-half_width, +half_width)."""
    return half_width * (2.0 * u - 1.0)


def count_between(lo: int, hi: int, u: np.ndarray) -> np.ndarray:
    """Whole numbers uniform in ``lo .. hi`` (inclusive): ``lo + floor(u *
    (hi - lo + 1))`` as int64, at most ``hi`` (should ``u * (hi - lo + 1)``
    round up to the bound)."""
    return np.minimum(lo + np.floor(u * (hi - lo + 1)).astype(np.int64), hi)


# -- validation rules -------------------------------------------------------------

def ordered(low_field: str, low: float, high_field: str, high: float) -> Problems:
    """``low <= high``, else ``(low_field, "must be <= high_field (high)")``."""
    return [(low_field, f"must be <= {high_field} ({high})")] if low > high else []


def pace_problems(field: str, every: float, interval: float, what: str) -> Problems:
    """At most one periodic ``what`` (spike, event) per sample: ``every >= interval``."""
    if every < interval:
        return [(field, f"must be >= interval ({interval}): at most one {what} per sample")]
    return []


def window_samples(duration: float, interval: float) -> int:
    """Samples in a count window: ``round(duration / interval)``."""
    return round(duration / interval)


def window_problems(duration_field: str, count_field: str, duration: float, interval: float,
                    count: int) -> Problems:
    """A count window holds 1 .. :data:`MAX_WINDOW_SAMPLES` samples and at
    least ``count`` (the first rule broken, or none)."""
    w = window_samples(duration, interval)
    if w < 1:
        return [(duration_field, f"must hold at least one sample: duration / interval = {duration / interval:g}")]
    if w > MAX_WINDOW_SAMPLES:
        return [(duration_field, f"window of {w} samples is too long; duration / interval must be <= 1e9")]
    if count > w:
        return [(count_field, f"must be <= the samples in a window: duration / interval = {w}")]
    return []


# -- gaps and events --------------------------------------------------------------

class EventTrack:
    """Anomaly events (gap, then a run of samples) drawn at fixed positions.

    Event ``i`` uses the uniforms ``2i`` (gap) and ``2i+1`` (length) of the
    stream ``(seed, key)``: gap ``min_gap + floor(u * (max_gap - min_gap +
    1))`` samples, then the event, ``min_len + floor(u' * (max_len - min_len
    + 1))`` samples. Events are drawn lazily in vectorised batches;
    ``truncate`` re-draws those not yet started after a parameter change.
    ``starts`` / ``ends`` (exclusive) are sample indices.
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
    def bounds(self) -> tuple[int, int, int, int]:
        """(min_gap, max_gap, min_len, max_len) of the events still to draw."""
        return self._bounds

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
            gaps = count_between(lo_g, hi_g, u[:, 0])
            lens = count_between(lo_l, hi_l, u[:, 1])
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


# -- periods of stream time ------------------------------------------------------------

class PhaseClock:
    """Periods of stream time elapsed at sample ``k``:
    ``phase(k) = anchor_phase + (k - anchor) * interval / every`` (float64,
    in that order of operations). Sample ``k`` is on a *step* when
    ``floor(phase(k) + EPS)`` exceeds that of sample ``k - 1`` (for the
    anchor's first sample, ``floor_before``): the first sample at or after
    each multiple of ``every`` seconds.

    Args:
        every: seconds of stream time per period (> 0).
        interval: seconds of stream time per sample.
        anchor, anchor_phase, floor_before: the sample the phase is counted
            from, its phase, and ``floor(phase + EPS)`` of the sample before
            it (-1 at sample 0: sample 0 is on a step).
    """

    def __init__(self, every: float, interval: float, anchor: int = 0, anchor_phase: float = 0.0,
                 floor_before: int = -1) -> None:
        self.every, self.interval = every, interval
        self.anchor, self.anchor_phase, self.floor_before = anchor, anchor_phase, floor_before

    def phases(self, n: int, m: int) -> np.ndarray:
        """``phase(k)`` of samples n .. n+m-1 (n >= anchor), float64 shape (m,)."""
        k = np.arange(n - self.anchor, n - self.anchor + m, dtype=np.float64)
        k *= self.interval
        k /= self.every
        k += self.anchor_phase
        return k

    def steps(self, n: int, m: int) -> np.ndarray:
        """Boolean mask of samples n .. n+m-1 that are on a step."""
        if n > self.anchor:
            fl = np.floor(self.phases(n - 1, m + 1) + EPS)
        else:
            fl = np.concatenate(([self.floor_before], np.floor(self.phases(n, m) + EPS)))
        return fl[1:] > fl[:-1]

    def step_at(self, n: int) -> bool:
        """``steps(n, 1)[0]`` on Python floats (the ``take(1)`` fast path; same bits)."""
        a, ph0, di, si = self.anchor, self.anchor_phase, self.interval, self.every
        now = math.floor(float(n - a) * di / si + ph0 + EPS)
        before = math.floor(float(n - 1 - a) * di / si + ph0 + EPS) if n > a else self.floor_before
        return now > before

    def repace(self, at: int, every: float, interval: float) -> None:
        """New ``every`` / ``interval`` from sample ``at`` on, the phase
        continuous there (the phase of ``at`` and the floor of the sample
        before it are those of the old pace)."""
        if (every, interval) == (self.every, self.interval):
            return
        if at > self.anchor:
            before = self.anchor_phase + ((at - 1 - self.anchor) * self.interval) / self.every
            self.floor_before = math.floor(before + EPS)
        self.anchor_phase = self.anchor_phase + ((at - self.anchor) * self.interval) / self.every
        self.anchor = at
        self.every, self.interval = every, interval


# -- count windows -----------------------------------------------------------------------

class CountWindows:
    """Exactly ``count`` events per window of ``size`` samples.

    Window ``j`` covers samples ``origin + j * size ..`` (+ ``size``); its
    number is ``base + j``. Window number ``w`` draws, from the PCG64 stream
    seeded by ``(seed, spawn_key=(key, w))``, its sorted distinct offsets
    (``choice(size, count, replace=False)``) and then one uniform per event,
    so its events do not depend on block sizes. ``restart`` ends the current
    window at a live change and starts a new one there.
    """

    def __init__(self, seed: int, key: int, count: int, size: int, origin: int = 0) -> None:
        self.seed, self.key = seed, key
        self.count, self.size = count, size
        self.origin, self.base = origin, 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._one: tuple = (None, [], None)  # (window number, offsets as a list, uniforms) for ``at``

    def window(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted offsets (int64) of window ``number``'s events and their uniforms."""
        hit = self._cache.get(number)
        if hit is None:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(self.key, number))))
            k = self.count
            offsets = np.sort(rng.choice(self.size, k, replace=False)) if k else np.empty(0, np.int64)
            hit = (offsets, rng.random(k))
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[number] = hit
        return hit

    def hits(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(sample indices, uniforms) of the events in samples ``[a, b)``, ascending."""
        if b <= a:
            return np.empty(0, np.int64), np.empty(0)
        w = self.size
        starts, us = [], []
        for j in range((a - self.origin) // w, (b - 1 - self.origin) // w + 1):
            offsets, u = self.window(self.base + j)
            first = self.origin + j * w
            lo, hi = np.searchsorted(offsets, (a - first, b - first))   # offsets are sorted
            starts.append(first + offsets[lo:hi])
            us.append(u[lo:hi])
        return np.concatenate(starts).astype(np.int64), np.concatenate(us)

    def at(self, n: int) -> float | None:
        """The uniform of the event at sample ``n``, None when there is none
        (the ``take(1)`` fast path: bisects a Python list of the window's offsets)."""
        j = (n - self.origin) // self.size
        number = self.base + j
        if self._one[0] != number:
            offsets, u = self.window(number)
            self._one = (number, offsets.tolist(), u)
        _, offsets, u = self._one
        r = n - self.origin - j * self.size               # offset of n in its window
        i = bisect_left(offsets, r)
        return float(u[i]) if i < len(offsets) and offsets[i] == r else None

    def restart(self, at: int, count: int, size: int) -> None:
        """From sample ``at`` on, windows of ``size`` samples with ``count``
        events; the current window ends at ``at`` (its events before ``at``
        stay) and the next number starts there."""
        self.base += (at - self.origin) // self.size + 1
        self.origin = at
        self.count, self.size = count, size
        self._cache.clear()
        self._one = (None, [], None)
