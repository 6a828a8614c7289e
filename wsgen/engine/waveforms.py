"""Periodic waveforms: sine, cosine, square, sawtooth, triangle.

Sample ``n`` is taken at signal time ``n / sample_rate`` seconds. With the
phase in cycles ``c(n) = (n * frequency) / sample_rate`` and ``phi = phase``
in degrees:

* sine:     ``offset + amplitude * sin(2*pi*c + phi*pi/180)``
* cosine:   ``offset + amplitude * cos(2*pi*c + phi*pi/180)``
* square:   ``offset + amplitude`` while ``frac(c + phi/360) < duty_cycle``,
  else ``offset - amplitude`` (defaults: +1 first, then -1)
* sawtooth: ``offset + amplitude * frac(c + phi/360)``, rising from 0 toward
  ``amplitude`` over each period of ``1 / frequency`` seconds
* triangle: ``offset + amplitude * (1 - 4*|frac(c + phi/360 + 1/4) - 1/2|)``,
  0 at c=0, +amplitude at a quarter period, -amplitude at three quarters.

``frac`` and the duty-cycle comparison allow 1e-9 cycle of rounding, so a
sample that falls exactly on a period or duty boundary (e.g. 1.2 cycles,
computed as 1.19999...) is treated alike in every period.

Live updates: the phase accumulator ``c`` is continuous. When ``frequency``
or ``sample_rate`` changes at sample ``u``, ``c`` continues from ``c(u)``
with the new step ``frequency / sample_rate`` (no jump in phase); the other
parameters (amplitude, offset, phase, duty cycle) apply as given from ``u``.
``interval`` only paces delivery and never changes the values.
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field
from typing import Annotated

from wsgen.engine.base import Generator
from wsgen.engine.fields import interval, level
from wsgen.engine.params import GeneratorParams

TWO_PI = 2.0 * math.pi
_EPS = 1e-9  # cycles of rounding tolerated at period and duty boundaries

Frequency = Annotated[float, Field(2.0, ge=0, le=1e9, description="Frequency in Hz (cycles per second of signal time)",
                                   json_schema_extra={"unit": "Hz"})]
SampleRate = Annotated[float, Field(100.0, ge=1e-6, le=1e9,
                                    description="Sample rate in samples per second of signal time; sample n is at n / sample_rate s",
                                    json_schema_extra={"unit": "Hz"})]
Phase = Annotated[float, Field(0.0, ge=-1e6, le=1e6, description="Phase offset in degrees",
                               json_schema_extra={"unit": "deg"})]
Interval = interval(1.0, "Seconds between samples on the wire (0: as fast as the client reads)")
Offset = level(0.0, "Constant added to every sample")


class WaveParams(GeneratorParams):
    amplitude: level(4.0, "Peak amplitude")
    frequency: Frequency
    phase: Phase
    sample_rate: SampleRate
    interval: Interval
    offset: Offset


class SineParams(WaveParams):
    """Parameters of ``sine`` (names and defaults of the original ``/sine``)."""


class CosineParams(WaveParams):
    """Parameters of ``cosine`` (names and defaults of the original ``/cosine``)."""


class SquareParams(GeneratorParams):
    """Parameters of ``square``; defaults give +1 / -1, +1 first."""

    amplitude: level(1.0, "Peak amplitude: the wave is offset +/- amplitude")
    frequency: Frequency
    duty_cycle: Annotated[float, Field(0.5, ge=0, le=1, description="Fraction of each period at the high level, in [0, 1]")]
    phase: Phase
    sample_rate: SampleRate
    interval: Interval
    offset: Offset


class SawtoothParams(GeneratorParams):
    """Parameters of ``sawtooth``: rises from offset toward offset + amplitude."""

    amplitude: level(1.0, "Height of each ramp")
    frequency: Frequency
    phase: Phase
    sample_rate: SampleRate
    interval: Interval
    offset: Offset


class TriangleParams(SawtoothParams):
    """Parameters of ``triangle``: between offset - amplitude and offset + amplitude."""

    amplitude: level(1.0, "Peak amplitude")


class Waveform(Generator):
    """Base of the periodic kinds: a continuous phase accumulator.

    State: ``_anchor`` (sample index of the last frequency / sample-rate
    change) and ``_anchor_cycles`` (phase in cycles there, in [0, 1)).
    """

    render_ahead = 64     # _render is a function of the sample index: small takes come from a block

    def _setup(self) -> None:
        self._anchor = 0
        self._anchor_cycles = 0.0

    def _cycles(self, n: int, m: int) -> np.ndarray:
        """Phase in cycles of samples n..n+m-1 (without the ``phase`` param)."""
        p = self.params
        c = np.arange(n - self._anchor, n - self._anchor + m, dtype=np.float64)
        c *= p.frequency
        c /= p.sample_rate
        if self._anchor_cycles:
            c += self._anchor_cycles
        return c

    def _on_update(self, old, new, at: int) -> None:
        if (old.frequency, old.sample_rate) != (new.frequency, new.sample_rate):
            c = self._anchor_cycles + ((at - self._anchor) * old.frequency) / old.sample_rate
            self._anchor_cycles = c - math.floor(c)
            self._anchor = at

    def _frac_with_phase(self, n: int, m: int, shift: float = 0.0) -> np.ndarray:
        c = self._cycles(n, m)
        turn = self.params.phase / 360.0 + shift
        if turn:
            c += turn
        np.subtract(c, np.floor(c + _EPS), out=c)
        np.maximum(c, 0.0, out=c)
        return c


class _Trig(Waveform):
    """Sine and cosine: ``offset + amplitude * f(2*pi*c + phase)``, ``f`` in ``_f``."""

    _f = staticmethod(np.sin)

    def _render(self, n, m):
        p = self.params
        a = self._cycles(n, m)
        a *= TWO_PI
        if p.phase:
            a += math.radians(p.phase)
        self._f(a, out=a)
        a *= p.amplitude
        if p.offset:
            a += p.offset
        return a, None


class Sine(_Trig):
    name = "sine"
    Params = SineParams
    _f = staticmethod(np.sin)


class Cosine(_Trig):
    name = "cosine"
    Params = CosineParams
    _f = staticmethod(np.cos)


class Square(Waveform):
    name = "square"
    Params = SquareParams

    def _render(self, n, m):
        p = self.params
        x = self._frac_with_phase(n, m)
        x += _EPS
        high = x < p.duty_cycle
        out = np.where(high, p.offset + p.amplitude, p.offset - p.amplitude)
        return out, None


class Sawtooth(Waveform):
    name = "sawtooth"
    Params = SawtoothParams

    def _render(self, n, m):
        p = self.params
        x = self._frac_with_phase(n, m)
        x *= p.amplitude
        if p.offset:
            x += p.offset
        return x, None


class Triangle(Waveform):
    name = "triangle"
    Params = TriangleParams

    def _render(self, n, m):
        p = self.params
        x = self._frac_with_phase(n, m, 0.25)
        x -= 0.5
        np.abs(x, out=x)
        x *= -4.0 * p.amplitude
        x += p.amplitude + p.offset
        return x, None


