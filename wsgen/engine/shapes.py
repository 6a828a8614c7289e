"""Repeating shapes: ``pulse``, ``steps`` and ``pattern``.

pulse and steps are functions of signal time: sample ``n`` is at ``t = n *
dt`` seconds (``dt`` = seconds of signal time per sample; ``interval`` only
paces delivery). With the period ``P`` and ``c(n) = frac(t / P)`` the
position in the cycle (in cycles; a sample within 1e-9 cycle of a boundary is
taken as on it, so 0.1 + 0.2 s falls on a 0.3 s boundary as it should):

* pulse (Grafana TestData's "predictable pulse", in seconds):
  ``P = on_duration + off_duration``; ``on_value`` while ``c * P <
  on_duration``, else ``off_value`` (on first).
* steps: ``steps = [(d_0, l_0), (d_1, l_1), ...]`` (durations in seconds,
  levels), ``P = sum(d_i)``; ``l_i`` while ``d_0 + ... + d_(i-1) <= c * P <
  d_0 + ... + d_i``. The sequence repeats.

pattern is a function of the sample index: ``values = [v_0 .. v_(L-1)]``
held for ``samples_per_value`` samples each, repeating; sample ``n`` is in
value ``i = n // samples_per_value`` at ``k = n % samples_per_value``:

* ``interpolation = "step"``: ``v_(i mod L)``;
* ``interpolation = "linear"``: ``v_i + (v_(i+1) - v_i) * k /
  samples_per_value`` (indices mod L: the last value ramps to the first).

Live updates (from sample ``u = seq``):

* pulse, steps: the position in the cycle is kept in seconds: after a change
  of ``dt`` or of the durations, the cycle goes on from the same number of
  seconds into it (wrapped by the new period) with the new ``dt``. Levels
  apply as given.
* pattern: the position is kept: sample ``u`` stays in value ``i`` at ``k``
  (``k`` clamped below a smaller ``samples_per_value``; ``i`` taken mod a
  new length), and the next samples count on from there. New ``values``
  apply as given.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from wsgen.engine.base import Generator
from wsgen.engine.fields import MAX_COUNT, interval, level
from wsgen.engine.listparams import pairs, text_list
from wsgen.engine.params import GeneratorParams

_EPS = 1e-9   # cycles of rounding tolerated at boundaries (as the waveforms)
#: Most values of a pattern and most (duration, level) pairs of steps.
MAX_POINTS = 10_000
MAX_DURATION_S = 1e9

Interval = interval(1.0, "Seconds between samples on the wire (0: as fast as the client reads)")
Dt = Annotated[float, Field(1.0, ge=1e-9, le=1e9, description="Seconds of signal time per sample (1 / sample rate)",
                            json_schema_extra={"unit": "s"})]
Duration = Annotated[float, Field(gt=0, le=MAX_DURATION_S)]
Level = Annotated[float, Field(ge=-1e12, le=1e12)]


class PulseParams(GeneratorParams):
    """Parameters of ``pulse``: on_value for on_duration s, then off_value for off_duration s, repeating."""

    on_value: level(1.0, "Level while on")
    off_value: level(0.0, "Level while off")
    on_duration: Annotated[float, Field(1.0, gt=0, le=MAX_DURATION_S, description="Seconds on (first) in each cycle",
                                        json_schema_extra={"unit": "s"})]
    off_duration: Annotated[float, Field(1.0, gt=0, le=MAX_DURATION_S, description="Seconds off in each cycle",
                                         json_schema_extra={"unit": "s"})]
    dt: Dt
    interval: Interval


class StepsParams(GeneratorParams):
    """Parameters of ``steps``: a repeating sequence of (duration in s, level) pairs."""

    steps: Annotated[list[tuple[Duration, Level]], BeforeValidator(pairs),
                     Field([(1.0, 0.0), (1.0, 1.0)], min_length=1, max_length=MAX_POINTS, validate_default=True,
                           description="(duration in s, level) pairs, in order; also the text "
                                       "'d0,l0,d1,l1,...'")]
    dt: Dt
    interval: Interval


class PatternParams(GeneratorParams):
    """Parameters of ``pattern``: a list of values that repeats, stepped or linearly interpolated."""

    values: Annotated[list[Level], BeforeValidator(text_list),
                      Field([0.0, 1.0, 0.0, -1.0], min_length=1, max_length=MAX_POINTS, validate_default=True,
                            description="The values, in order; also the text 'v0,v1,...'")]
    samples_per_value: Annotated[int, Field(1, ge=1, le=MAX_COUNT, description="Samples each value lasts",
                                            json_schema_extra={"unit": "samples"})]
    interpolation: Literal["step", "linear"] = Field(
        "step", description="step: hold each value; linear: ramp from each value to the next")
    interval: Interval


class _Cyclic(Generator):
    """A function of the position in a cycle of ``period()`` seconds.

    State: ``_anchor`` (sample of the last re-anchoring) and
    ``_anchor_cycles`` (position there, in cycles in [0, 1))."""

    render_ahead = 64     # a function of the sample index: small takes come from a block

    def period(self, p) -> float:
        raise NotImplementedError

    def _setup(self) -> None:
        self._anchor = 0
        self._anchor_cycles = 0.0

    def _cycles(self, n: int, m: int) -> np.ndarray:
        """frac of the position in cycles of samples n..n+m-1, in [0, 1)."""
        p = self.params
        c = np.arange(n - self._anchor, n - self._anchor + m, dtype=np.float64)
        c *= p.dt / self.period(p)
        if self._anchor_cycles:
            c += self._anchor_cycles
        np.subtract(c, np.floor(c + _EPS), out=c)
        np.maximum(c, 0.0, out=c)
        c += _EPS
        return c

    def _on_update(self, old, new, at: int) -> None:
        p_old, p_new = self.period(old), self.period(new)
        if old.dt != new.dt or p_old != p_new:
            c = self._anchor_cycles + (at - self._anchor) * (old.dt / p_old)
            seconds = (c - math.floor(c + _EPS)) * p_old          # into the current cycle
            c = seconds / p_new
            self._anchor_cycles = max(c - math.floor(c + _EPS), 0.0)
            self._anchor = at


class Pulse(_Cyclic):
    name = "pulse"
    Params = PulseParams

    def period(self, p):
        return p.on_duration + p.off_duration

    def _render(self, n, m):
        p = self.params
        c = self._cycles(n, m)
        return np.where(c < p.on_duration / self.period(p), p.on_value, p.off_value), None


class Steps(_Cyclic):
    name = "steps"
    Params = StepsParams

    def _setup(self) -> None:
        super()._setup()
        self._table_for = None

    def period(self, p):
        return math.fsum(d for d, _ in p.steps)

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        if self._table_for is not p:
            durations = np.array([d for d, _ in p.steps])
            ends = np.cumsum(durations)[:-1] / self.period(p)      # boundaries, in cycles
            self._tables = ends, np.array([lv for _, lv in p.steps])
            self._table_for = p
        return self._tables

    def _render(self, n, m):
        ends, levels = self._table()
        c = self._cycles(n, m)
        return levels[np.searchsorted(ends, c, side="right")], None


class Pattern(Generator):
    name = "pattern"
    Params = PatternParams
    render_ahead = 64

    def _setup(self) -> None:
        self._anchor = 0          # sample where the position was last fixed
        self._anchor_index = 0    # value index there (mod len(values))
        self._anchor_k = 0        # sample within that value there
        self._values_for = None

    def _render(self, n, m):
        p = self.params
        if self._values_for is not p:
            self._values = np.array(p.values, dtype=np.float64)
            self._values_for = p
        values, spv, length = self._values, p.samples_per_value, len(p.values)
        s = np.arange(n - self._anchor + self._anchor_k, n - self._anchor + self._anchor_k + m, dtype=np.int64)
        i = s // spv
        i += self._anchor_index
        i %= length
        if p.interpolation == "step" or spv == 1:
            return values[i], None
        k = (s % spv).astype(np.float64)
        k /= spv
        v = values[i]
        nxt = i + 1
        nxt[nxt == length] = 0
        k *= values[nxt] - v
        k += v
        return k, None

    def _on_update(self, old, new, at: int) -> None:
        spv_old = old.samples_per_value
        s = (at - self._anchor) + self._anchor_k
        index, k = self._anchor_index + s // spv_old, s % spv_old
        self._anchor = at
        self._anchor_index = index % len(new.values)
        self._anchor_k = min(k, new.samples_per_value - 1)
