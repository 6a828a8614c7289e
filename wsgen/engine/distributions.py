"""Independent draws: normal, uniform, exponential.

Every sample ``n`` uses its own uniform doubles ``u`` from a PCG64 stream
seeded by ``(seed, kind)`` (see :class:`~wsgen.engine.base.RandomStream`),
so values do not depend on block sizes and ``start_seq`` jumps directly.

* normal:      ``mean + std_dev * z``, ``z = sqrt(-2 ln(1 - u1)) * cos(2 pi u2)``
  (Box-Muller, Box & Muller 1958; two uniforms per sample)
* uniform:     ``min_val + (max_val - min_val) * u`` (one uniform per sample)
* exponential: ``-scale * ln(1 - u)`` (inverse transform; ``scale = 1/rate``)

Live updates take effect from the next sample; the draws themselves do not
change, only their mapping to values.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field
from typing import Annotated

from wsgen.engine.base import Generator, RandomStream, box_muller
from wsgen.engine.fields import MAX_LEVEL, interval, level
from wsgen.engine.params import GeneratorParams

Interval = interval(1.0, "Seconds between samples on the wire (0: as fast as the client reads)")
Spread = Annotated[float, Field(1.0, gt=0, le=MAX_LEVEL, description="Must be > 0")]


class NormalParams(GeneratorParams):
    """Parameters of ``normal``."""

    mean: level(0.0, "Mean of the distribution")
    std_dev: Annotated[float, Field(1.0, gt=0, le=MAX_LEVEL, description="Standard deviation, > 0")]
    interval: Interval


class UniformParams(GeneratorParams):
    """Parameters of ``uniform``: draws in [min_val, max_val)."""

    min_val: level(0.0, "Lower bound (inclusive)")
    max_val: level(1.0, "Upper bound; must be >= min_val")
    interval: Interval

    def check(self):
        if self.min_val > self.max_val:
            return [("min_val", f"must be <= max_val ({self.max_val})")]
        return []


class ExponentialParams(GeneratorParams):
    """Parameters of ``exponential``."""

    scale: Annotated[float, Field(1.0, gt=0, le=MAX_LEVEL, description="Scale = 1 / rate (the mean), > 0")]
    interval: Interval


class Normal(Generator):
    name = "normal"
    Params = NormalParams
    render_ahead = 64     # sample n draws the stream's doubles at n: small takes come from a block

    def _setup(self):
        self._u = RandomStream(self.seed, key=11, draws=2)

    def _render(self, n, m):
        p = self.params
        r = box_muller(self._u.uniforms(n, m))
        r *= p.std_dev
        if p.mean:
            r += p.mean
        return r, None


class Uniform(Generator):
    name = "uniform"
    Params = UniformParams
    render_ahead = 64     # sample n draws the stream's doubles at n: small takes come from a block

    def _setup(self):
        self._u = RandomStream(self.seed, key=12)

    def _render(self, n, m):
        p = self.params
        u = self._u.uniforms(n, m)
        u *= p.max_val - p.min_val
        u += p.min_val
        return u, None


class Exponential(Generator):
    name = "exponential"
    Params = ExponentialParams
    render_ahead = 64     # sample n draws the stream's doubles at n: small takes come from a block

    def _setup(self):
        self._u = RandomStream(self.seed, key=13)

    def _render(self, n, m):
        u = self._u.uniforms(n, m)
        r = np.log1p(-u)
        r *= -self.params.scale
        return r, None
