"""``seasonal``: named periodic components (daily, weekly...) from harmonics,
plus a linear trend and noise, on a time axis anchored to the calendar.

Sample ``n`` is at Unix time ``t(n) = start + n * dt`` seconds (``start``:
Unix seconds or an ISO-8601 date-time; ``dt``: seconds of signal time per
sample; ``interval`` only paces delivery). Its local time is ``t + 3600 *
utc_offset``. Each component ``c`` has a ``period`` ``P_c`` in seconds (or
``"hour"``, ``"day"``, ``"week"``) and harmonics ``h = 1, 2, ...`` with
amplitudes ``A_ch`` and phases ``phi_ch`` in degrees::

    x(n) = offset + trend * (t(n) - start)
           + sum_c sum_h A_ch * sin(2 pi frac(h * q_c(n)) + phi_ch * pi / 180)
           + noise * z[n]

    q_c(n) = frac((t(n) + 3600 * utc_offset - MONDAY) / P_c)

``MONDAY`` = 345600 s (1970-01-05T00:00Z, a Monday): every component's
cycle starts at local midnight of a Monday, so a ``"day"`` component lines
up with local days and a ``"week"`` one with weeks from Monday. With phase
0 a daily harmonic 1 rises through 0 at midnight and peaks at 06:00; phase
-90 puts its trough at midnight and its peak at noon. ``z[n]`` are the draws
of ``normal`` (Box-Muller on the PCG64 stream ``(seed, 11)``).

Live updates (from sample ``u = seq``): time goes on continuously: after a
change of ``dt`` sample ``u`` keeps its time and later samples step by the
new ``dt``; a change of ``start`` shifts the time axis by the difference
(``t(u)`` moves by ``new start - old start``); a new ``trend`` continues
from the trend level reached at ``u``. Components, offset, utc_offset and
noise apply as given.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from wsgen.engine.base import Generator, RandomStream, box_muller
from wsgen.engine.fields import MAX_LEVEL, interval, level
from wsgen.engine.listparams import text_list
from wsgen.engine.params import GeneratorParams

#: 1970-01-05T00:00:00Z, a Monday: where every component's cycle starts.
MONDAY = 345_600.0
#: Named periods, in seconds.
PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86_400.0, "week": 604_800.0}
MAX_COMPONENTS = 16
MAX_HARMONICS = 64
#: Most harmonics of all components together: each costs a sine per sample
#: (64: about 1.5 us a sample, so a block of 8192 stays near 10 ms).
MAX_HARMONICS_TOTAL = 64
#: Latest ``start`` accepted (Unix s, year 5138); earliest is minus this.
MAX_START_S = 1e11
NORMAL_KEY = 11


def _period(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in PERIODS:
        return PERIODS[value.strip().lower()]
    return value


def _unix_time(value: Any) -> Any:
    """Unix seconds from a number, a numeric string or an ISO-8601 date-time
    (UTC when it has no zone; ``Z`` accepted)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        float(text)
        return text                   # a number: pydantic checks it (finite, in range)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
    except ValueError:
        raise PydanticCustomError("date_time", "must be Unix seconds or an ISO-8601 date-time such as "
                                  "2026-01-05T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


Amplitude = Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]
Degrees = Annotated[float, Field(ge=-1e6, le=1e6)]


class Component(BaseModel):
    """One periodic component: harmonics 1, 2, ... of ``period``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    name: Annotated[str, Field("daily", min_length=1, max_length=64, description="Its name (e.g. daily, weekly)")]
    period: Annotated[float, BeforeValidator(_period),
                      Field(86_400.0, ge=1e-3, le=1e9, description="Period in seconds, or minute / hour / day / week",
                            json_schema_extra={"unit": "s"})]
    amplitudes: Annotated[list[Amplitude], BeforeValidator(text_list),
                          Field([1.0], min_length=1, max_length=MAX_HARMONICS,
                                description="Amplitude of harmonic 1, 2, ... (harmonic h has period period / h)")]
    phases: Annotated[list[Degrees], BeforeValidator(text_list),
                      Field([], max_length=MAX_HARMONICS,
                            description="Phase of each harmonic in degrees (empty: all 0; else one per amplitude)",
                            json_schema_extra={"unit": "deg"})]


class SeasonalParams(GeneratorParams):
    """Parameters of ``seasonal``: daily / weekly profiles from harmonics, a trend and noise, on calendar time."""

    components: Annotated[list[Component], BeforeValidator(text_list),
                          Field([{"name": "daily", "period": 86_400.0, "amplitudes": [1.0, 0.3], "phases": [-90.0, 0.0]},
                                 {"name": "weekly", "period": 604_800.0, "amplitudes": [0.5], "phases": [0.0]}],
                                max_length=MAX_COMPONENTS, validate_default=True,
                                description="Periodic components: [{name, period, amplitudes, phases}, ...] "
                                            "(a JSON array in a query string)")]
    offset: level(0.0, "Constant added to every sample")
    trend: Annotated[float, Field(0.0, ge=-1e9, le=1e9, description="Linear trend in units per second of signal time",
                                  json_schema_extra={"unit": "1/s"})]
    noise: Annotated[float, Field(0.0, ge=0, le=MAX_LEVEL, description="Standard deviation of added normal noise")]
    start: Annotated[float, BeforeValidator(_unix_time),
                     Field(0.0, ge=-MAX_START_S, le=MAX_START_S,
                           description="Time of sample 0: Unix seconds or an ISO-8601 date-time (stored as Unix s)",
                           json_schema_extra={"unit": "s"})]
    utc_offset: Annotated[float, Field(0.0, ge=-24, le=24, description="Hours added to UTC for local time",
                                       json_schema_extra={"unit": "h"})]
    dt: Annotated[float, Field(60.0, ge=1e-6, le=1e9, description="Seconds of signal time per sample",
                               json_schema_extra={"unit": "s"})]
    interval: interval(1.0, "Seconds between samples on the wire (0: as fast as the client reads)")

    def check(self):
        total = sum(len(c.amplitudes) for c in self.components)
        if total > MAX_HARMONICS_TOTAL:
            return [("components", f"at most {MAX_HARMONICS_TOTAL} harmonics in all components together "
                                   f"(got {total}): each costs a sine per sample")]
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            return [("components", f"component names must differ (got {names})")]
        for c in self.components:
            if c.phases and len(c.phases) != len(c.amplitudes):
                return [("components", f"component {c.name!r}: phases must be empty or one per amplitude "
                                       f"({len(c.amplitudes)}), got {len(c.phases)}")]
        return []


class Seasonal(Generator):
    name = "seasonal"
    Params = SeasonalParams
    render_ahead = 64     # a function of the sample index: small takes come from a block

    def _setup(self) -> None:
        self._z = RandomStream(self.seed, key=NORMAL_KEY, draws=2)
        self._anchor = 0                        # sample index of the last re-anchoring
        self._anchor_t = self.params.start      # its time (Unix s)
        self._anchor_level = 0.0                # its trend level

    def _elapsed(self, n: int, m: int) -> np.ndarray:
        k = np.arange(n - self._anchor, n - self._anchor + m, dtype=np.float64)
        k *= self.params.dt
        return k

    def _render(self, n, m):
        p = self.params
        elapsed = self._elapsed(n, m)
        shift = self._anchor_t + 3600.0 * p.utc_offset - MONDAY   # local time - MONDAY at elapsed 0
        if p.trend:
            x = elapsed * p.trend
            x += self._anchor_level + p.offset
        else:
            x = np.full(m, self._anchor_level + p.offset)
        a = np.empty(m)
        for comp in p.components:
            q = elapsed + shift
            q /= comp.period                  # cycles since MONDAY (exact at whole periods)
            q -= np.floor(q)
            phases = comp.phases or [0.0] * len(comp.amplitudes)
            for h, (amp, phase) in enumerate(zip(comp.amplitudes, phases), start=1):
                if not amp:
                    continue
                if h == 1:
                    np.multiply(q, 2.0 * math.pi, out=a)
                else:
                    np.multiply(q, h, out=a)
                    a -= np.floor(a)
                    a *= 2.0 * math.pi
                if phase:
                    a += math.radians(phase)
                np.sin(a, out=a)
                a *= amp
                x += a
        if p.noise:
            r = box_muller(self._z.uniforms(n, m))
            r *= p.noise
            x += r
        return x, None

    def _on_update(self, old, new, at: int) -> None:
        if (old.dt, old.trend, old.start) != (new.dt, new.trend, new.start):
            elapsed = (at - self._anchor) * old.dt
            self._anchor_level += old.trend * elapsed
            self._anchor_t += elapsed + (new.start - old.start)
            self._anchor = at
