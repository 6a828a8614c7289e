"""Stochastic processes: ``random-walk`` and ``ou`` (Ornstein-Uhlenbeck).

Both draw one standard normal ``z[n]`` per sample exactly as ``normal`` does
(Box-Muller on the PCG64 stream of ``(seed, 11)``, two uniforms per sample),
so ``z[n]`` does not depend on block sizes, and each sample is computed from
the one before by a fixed floating-point recurrence (numpy's sequential
``add.accumulate`` and scipy's ``lfilter``, both one element after the
other), so blocks of any size give the same bits.

random-walk (Grafana TestData's default signal)::

    x[0] = start
    x[n] = R(x[n-1] + (drift + volatility * z[n]))      n >= 1

``R`` reflects at the optional bounds: a value above ``max`` becomes ``2*max
- y``, below ``min`` ``2*min - y``. With both bounds (width ``w = max -
min``) an overshoot of more than ``w`` is mirrored as often as needed, in
one step: ``R(y) = min + w - |((y - min) mod 2w) - w|`` (``min`` when ``w =
0``); the result is clamped to ``[min, max]`` against rounding. Values
inside the bounds pass unchanged.

ou, with the exact discretisation of ``dx = theta (mean - x) dt + sigma dW``
over ``dt`` seconds (Gillespie 1996, "Exact numerical simulation of the
Ornstein-Uhlenbeck process", Phys. Rev. E 54, 2084)::

    x[0] = start
    a = exp(-theta * dt),   s = sigma * sqrt((1 - a**2) / (2 * theta))
    x[n] - mean = a * (x[n-1] - mean) + s * z[n]         n >= 1

Its stationary law is normal with mean ``mean`` and variance
``sigma**2 / (2 * theta)``, whatever ``dt``.

Live updates (from sample ``u = seq``): both processes **continue from the
current value** ``x[u-1]`` with the new parameters from ``x[u]`` on (the
recurrence above with the new drift/volatility/bounds, or mean/theta/sigma/
dt); new bounds reflect the first step from it. Changing ``start`` restarts
the process there: ``x[u] = start``. ``interval`` only paces delivery.

Seeking (``start_seq``, dropped samples) computes the samples in between
vectorised, in slices of :data:`SEEK_SLICE`: its cost grows with the
distance, so ``start_seq`` is at most :data:`MAX_START_SEQ` (100000;
:data:`MAX_START_SEQ_BOUNDED` = 25000 for a walk with a bound, whose
reflections may need a scalar loop). Within 8 step scales of a bound a
bounded walk runs a Python loop (about 5-8 M samples/s: the reflection rule
is sequential, x[n] needs x[n-1], and no vectorised formula gives its bits:
folding the unbounded running sum into [min, max] is another process, whose
steps change sign after each reflection, drift included); farther from the
bounds, or without bounds, the walk is vectorised (20-30 M samples/s).
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Iterable, Mapping, Optional

import numpy as np
from pydantic import Field
from scipy.signal import lfilter

from wsgen.engine.base import Generator, RandomStream, box_muller
from wsgen.engine.fields import MAX_LEVEL, interval, level
from wsgen.engine.params import GeneratorParams, InvalidParams

#: Largest ``start_seq`` of these kinds: reaching it computes every sample
#: before it (vectorised: 30-70 ns a sample, up to about 0.2 us for a
#: bounded walk that reflects every few samples; a few ms for the largest).
MAX_START_SEQ = 100_000
#: Largest ``start_seq`` of a random walk with a bound: where it reflects
#: every few samples, its samples are computed one by one (about 0.2-0.4 us).
MAX_START_SEQ_BOUNDED = 25_000
#: Samples computed per slice while seeking.
SEEK_SLICE = 65_536
#: Samples computed ahead when fewer are taken (paced streams take a few at a
#: time; one vectorised render serves many messages). Invalidated by updates.
AHEAD = 64
#: A bounded walk within this many step scales (volatility + |drift|) of a
#: bound is computed by the scalar loop, :data:`_SCAN` samples at a time;
#: farther, by vectorised windows of at least :data:`_MIN_WINDOW` samples.
_FAR = 8.0
_SCAN = 256
_MIN_WINDOW = 64
#: Key of the normal draws (that of ``normal``: a walk's increments are the
#: ``normal`` stream with mean = drift, std_dev = volatility).
NORMAL_KEY = 11

Interval = interval(1.0, "Seconds between samples on the wire (0: as fast as the client reads)")
Bound = Annotated[Optional[Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]],
                  Field(None, description="Reflecting bound (null: none)")]


class RandomWalkParams(GeneratorParams):
    """Parameters of ``random-walk``: x[n] = x[n-1] + drift + volatility * z[n], reflected at min / max."""

    start: level(0.0, "Value of sample 0 (setting it live restarts the walk there); inside [min, max]")
    drift: Annotated[float, Field(0.0, ge=-1e9, le=1e9, description="Added at every step (units per sample)")]
    volatility: Annotated[float, Field(1.0, ge=0, le=1e9,
                                       description="Standard deviation of each step's noise (units per sample)")]
    min: Bound
    max: Bound
    interval: Interval

    def check(self):
        problems = []
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(("min", f"must be <= max ({self.max})"))
        elif (self.min is not None and self.start < self.min) or (self.max is not None and self.start > self.max):
            problems.append(("start", f"must be inside [min, max] = [{self.min}, {self.max}]"))
        return problems


class OUParams(GeneratorParams):
    """Parameters of ``ou``: Ornstein-Uhlenbeck, mean-reverting toward mean at rate theta with sigma noise."""

    mean: level(0.0, "Long-run mean the process reverts to")
    theta: Annotated[float, Field(1.0, gt=0, le=1e6, description="Mean-reversion rate, > 0 (per second of process time)",
                                  json_schema_extra={"unit": "1/s"})]
    sigma: Annotated[float, Field(1.0, ge=0, le=1e9, description="Noise intensity (units per sqrt(second)); "
                                  "stationary std dev = sigma / sqrt(2 theta)")]
    start: level(0.0, "Value of sample 0 (setting it live restarts the process there)")
    dt: Annotated[float, Field(1.0, ge=1e-9, le=1e9, description="Process time between samples, in seconds",
                               json_schema_extra={"unit": "s"})]
    interval: Interval


class _Recursive(Generator):
    """A process whose sample n is a function of sample n-1 and the draw
    z[n]: values computed ahead are buffered, so a take of a few samples costs
    a slice of an array.

    State: ``_buf`` holds the values of samples ``_buf_seq ..``; ``_before``
    is the value of sample ``_buf_seq - 1`` (None: sample ``_buf_seq`` is the
    start); ``_state`` the internal state after the last computed sample
    (None: the next one is the start). Subclasses implement
    ``_compute(n, m, state) -> (values, state)`` and ``_state_of(x)`` (the
    state that continues from value x under the current parameters).
    """

    def __init__(self, params: Mapping[str, Any] | GeneratorParams | None = None, seed: int | None = None,
                 start_seq: int = 0) -> None:
        super().__init__(params, seed=seed, start_seq=0)
        limit = self.max_start_seq()
        if int(start_seq) > limit:
            raise InvalidParams([{"field": "start_seq", "value": int(start_seq), "message":
                                  f"{self.name} resumes at most {limit} samples in (every sample before it is "
                                  "computed to get there)"}])
        if start_seq:
            self.seek(int(start_seq))

    def max_start_seq(self) -> int:
        """The largest ``start_seq`` accepted with these parameters."""
        return MAX_START_SEQ

    def _setup(self) -> None:
        self._z = RandomStream(self.seed, key=NORMAL_KEY, draws=2)
        self._buf = np.empty(0)
        self._buf_seq = 0
        self._before: float | None = None
        self._state: float | None = None

    def _normals(self, n: int, m: int) -> np.ndarray:
        """z[n .. n+m-1]: the Box-Muller of ``normal``, bit for bit."""
        return box_muller(self._z.uniforms(n, m))

    def _compute(self, n: int, m: int, state: float | None) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _state_of(self, x: float) -> float:
        return x

    def _render(self, n, m):
        i, end = n - self._buf_seq, self._buf_seq + len(self._buf)
        if n + m <= end:
            return self._buf[i:i + m].copy(), None
        want = max(m, AHEAD)
        new, self._state = self._compute(end, n + want - end, self._state)
        before = self._buf[i - 1] if i > 0 else self._before
        values = np.concatenate([self._buf[i:], new]) if end > n else new
        if want > m:                  # computed ahead: keep them (return a copy)
            self._buf, self._buf_seq, self._before = values, n, before
            return values[:m].copy(), None
        self._buf, self._buf_seq, self._before = values[-1:].copy(), n + m - 1, (
            float(values[-2]) if m > 1 else before)
        return values, None

    def _advance_to(self, n: int) -> None:
        end = self._buf_seq + len(self._buf)
        if n <= end:
            return
        state, last = self._state, None
        while end < n:
            k = min(SEEK_SLICE, n - end)
            values, state = self._compute(end, k, state)
            last, end = float(values[-1]), end + k
        self._state = state
        self._buf, self._buf_seq, self._before = np.empty(0), n, last

    def _value_before(self, at: int) -> float | None:
        i = at - 1 - self._buf_seq
        return float(self._buf[i]) if i >= 0 else self._before

    def _on_update(self, old, new, at: int) -> None:
        x = None if old.start != new.start else self._value_before(at)
        self._buf, self._buf_seq, self._before = np.empty(0), at, x
        self._state = None if x is None else self._state_of(x)


def reflect(y: float, lo: float | None, hi: float | None) -> float:
    """``y`` reflected into ``[lo, hi]`` (either bound may be None: none);
    see the module docstring for the formula."""
    if lo is None:
        return 2.0 * hi - y if y > hi else y
    if hi is None:
        return 2.0 * lo - y if y < lo else y
    if lo <= y <= hi:
        return y
    w = hi - lo
    if y > hi and y - hi <= w:
        x = 2.0 * hi - y
    elif y < lo and lo - y <= w:
        x = 2.0 * lo - y
    elif w == 0:
        return lo
    else:
        x = lo + w - abs((y - lo) % (2.0 * w) - w)
    return min(max(x, lo), hi)


class RandomWalk(_Recursive):
    name = "random-walk"
    Params = RandomWalkParams

    def max_start_seq(self) -> int:
        bounded = self.params.min is not None or self.params.max is not None
        return MAX_START_SEQ_BOUNDED if bounded else MAX_START_SEQ

    def _compute(self, n, m, state):
        p = self.params
        inc = self._normals(n, m)
        inc *= p.volatility
        inc += p.drift
        if state is None:             # sample n is the start
            inc[0] = p.start
        else:
            inc[0] += state
        if p.min is None and p.max is None:
            np.add.accumulate(inc, out=inc)
            return inc, float(inc[-1])
        inc = self._reflected(inc, p.min, p.max)
        return inc, float(inc[-1])

    def _reflected(self, inc: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
        """In place: ``inc[0]`` is the first value before reflection,
        ``inc[k]`` (k >= 1) the increments; returns the walk x[k] =
        R(x[k-1] + inc[k]) (``R``: :func:`reflect`).

        Far from the bounds a window is accumulated vectorised up to the
        first value outside them, which is reflected; the window is about
        as long as the walk needs to reach a bound from there ((distance /
        step scale) squared). Near a bound, where reflections come every few
        samples, :func:`scanner`'s loop takes over for :data:`_SCAN` samples.
        Both perform the same float operations in the same order (numpy's
        ``add.accumulate`` is sequential), so the bits do not depend on which
        one computed a sample, nor on block sizes."""
        p = self.params
        low = -math.inf if lo is None else lo
        high = math.inf if hi is None else hi
        scale = abs(p.volatility) + abs(p.drift)
        scan = scanner(lo, hi)
        m = len(inc)
        x = reflect(float(inc[0]), lo, hi)
        inc[0] = x
        i = 1                         # next sample to compute; x is sample i-1
        while i < m:
            room = min(x - low, high - x)
            if room <= _FAR * scale:  # near a bound: the scalar loop
                stop = min(m, i + _SCAN)
                values = scan(x, memoryview(inc[i:stop]))   # iterates as Python floats
                inc[i:stop] = values
                x, i = values[-1], stop
                continue
            reach = room / scale if scale else math.inf
            size = m - i if reach >= 256.0 else min(m - i, max(_MIN_WINDOW, int(reach * reach)))
            seg = inc[i:i + size]
            steps = seg.copy()
            seg[0] += x
            np.add.accumulate(seg, out=seg)
            out = (seg < low) | (seg > high)
            k = int(out.argmax())
            if not out[k]:            # no reflection in this window
                x, i = float(seg[-1]), i + size
                continue
            x = reflect(float(seg[k]), lo, hi)
            seg[k] = x
            seg[k + 1:] = steps[k + 1:]   # sums past the reflection: raw steps again
            i += k + 1
        return inc


def scanner(lo: float | None, hi: float | None):
    """``scan(x, steps) -> values``: the walk from value ``x`` over the floats
    ``steps``, one sample at a time, ``x = R(x + step)`` with :func:`reflect`
    inlined (the same float operations in the same order; ``min == max``
    calls it). The bounds are default arguments: fast locals of the loop."""
    if lo is None:
        def scan(x: float, steps: Iterable[float], hi: float = hi, h2: float = 2.0 * hi) -> list:
            out: list = []
            put = out.append
            for d in steps:
                y = x + d
                x = y if y <= hi else h2 - y
                put(x)
            return out
    elif hi is None:
        def scan(x: float, steps: Iterable[float], lo: float = lo, l2: float = 2.0 * lo) -> list:
            out: list = []
            put = out.append
            for d in steps:
                y = x + d
                x = y if y >= lo else l2 - y
                put(x)
            return out
    elif hi - lo == 0:
        def scan(x: float, steps: Iterable[float]) -> list:
            return [x := reflect(x + d, lo, hi) for d in steps]
    else:
        def scan(x: float, steps: Iterable[float], lo: float = lo, hi: float = hi, h2: float = 2.0 * hi,
                 l2: float = 2.0 * lo, w: float = hi - lo, w2: float = 2.0 * (hi - lo)) -> list:
            out: list = []
            put = out.append
            for d in steps:
                y = x + d
                if lo <= y <= hi:
                    x = y
                elif y > hi and y - hi <= w:          # one mirror: max(2 hi - y, lo)
                    x = h2 - y
                    if lo > x:
                        x = lo
                elif y < lo and lo - y <= w:          # min(2 lo - y, hi)
                    x = l2 - y
                    if hi < x:
                        x = hi
                else:                                  # the fold, then min(max(., lo), hi)
                    x = lo + w - abs((y - lo) % w2 - w)
                    if lo > x:
                        x = lo
                    if hi < x:
                        x = hi
                put(x)
            return out
    return scan


class OrnsteinUhlenbeck(_Recursive):
    name = "ou"
    Params = OUParams

    def _coefficients(self) -> tuple[float, float]:
        p = self.params
        a = math.exp(-p.theta * p.dt)
        s = p.sigma * math.sqrt(-math.expm1(-2.0 * p.theta * p.dt) / (2.0 * p.theta))
        return a, s

    def _state_of(self, x):
        return x - self.params.mean

    def _compute(self, n, m, state):
        p = self.params
        a, s = self._coefficients()
        w = self._normals(n, m)
        w *= s
        if state is None:             # sample n is the start: y[n] = start - mean
            w[0] = p.start - p.mean
            y = w if m == 1 else np.concatenate([w[:1], lfilter([1.0], [1.0, -a], w[1:], zi=[a * w[0]])[0]])
        else:
            y = lfilter([1.0], [1.0, -a], w, zi=[a * state])[0]
        last = float(y[-1])
        y += p.mean
        return y, last
