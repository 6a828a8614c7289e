"""What a composition's anomaly injectors are: their spec models.

An *event* is a run of samples ``first .. last`` (inclusive) that one *part*
of a composition (an anomaly injector or a fault) owns. This module holds the
models (frozen pydantic; unknown fields and NaN/inf refused):

* the **placements**, where a part's candidate events start (their sources
  are in :mod:`wsgen.engine.sources`):

  - ``random``:   each sample starts an event with ``probability``;
  - ``gaps``:     gap of ``min_gap .. max_gap`` samples (drawn), event, gap,
    event... (the original random-square / clustered placement);
  - ``periodic``: an event at the first sample at or after each multiple of
    ``every`` seconds of stream time;
  - ``count``:    exactly ``count`` events per window of ``duration`` seconds
    (``round(duration / interval)`` samples), at distinct random samples;
  - ``indices``:  events starting at the given sample indices;

* the **anomaly injectors** (what each does to the samples of its events is
  in :mod:`wsgen.engine.parts`; which candidates are kept, and the overlap
  rules, in :mod:`wsgen.engine.schedule`):

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

Live updates (applied at sample ``at``): events that started before ``at``
keep their place and length; candidates from ``at`` on are re-decided under
the new placement (rules per mode in :mod:`wsgen.engine.sources`); a new
``mode`` or ``stream`` starts the placement afresh at ``at``. Effect
parameters (heights, amplitude, std_dev, slope, factor, fill) apply from
``at``, also to the rest of an event in progress.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from wsgen.engine.fields import MAX_LEVEL, count, level
from wsgen.engine.placement import MAX_ANOMALIES_PER_WINDOW, symmetric, uniform_between

#: Most anomaly injectors in one composition.
MAX_INJECTORS = 16
#: Most sample indices in one ``indices`` placement.
MAX_INDICES = 10_000
#: Largest sample index an ``indices`` placement may name (event ids stay
#: below 2**53, exact in JavaScript).
MAX_INDEX = 2**48


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
        return uniform_between(height.low, height.high, u)
    if isinstance(height, SymmetricHeight):
        return symmetric(height.range, u)
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
