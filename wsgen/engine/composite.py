"""Compositions: anomalies over any signal, with noise and faults, and the truth.

A composition is a JSON object (:class:`CompositionSpec`; JSON Schema from
``CompositionSpec.model_json_schema()``)::

    {
      "interval": 0.1,
      "base": {"kind": "sine", "params": {"amplitude": 2, "frequency": 0.5, "sample_rate": 10},
               "offset": 10, "trend": 0.01},
      "noise": {"kind": "normal", "std_dev": 0.1},
      "anomalies": [
        {"kind": "spike", "placement": {"mode": "random", "probability": 0.001},
         "height": {"low": 3, "high": 5}},
        {"kind": "level-shift", "placement": {"mode": "periodic", "every": 600},
         "min_length": 50, "max_length": 100, "height": -4},
        {"kind": "flatline", "placement": {"mode": "indices", "indices": [1000, 5000]},
         "min_length": 20, "max_length": 20}
      ],
      "faults": {"gaps": {"placement": {"probability": 0.001}, "max_length": 5},
                 "nulls": {"placement": {"probability": 0.001}},
                 "out_of_order": {"max_delay": 3}}
    }

Sample ``k`` (stream time ``t = k * interval`` seconds) is, in this order:

1. the **base**: ``constant`` (``params.value``) or any registry waveform,
   distribution, process, periodic shape or replay by name with its params
   (``interval`` excluded: the composition's paces), plus ``offset`` and
   ``trend * t`` (units per second);
2. plus the **noise**: ``normal`` (``std_dev * z``) or ``uniform`` (``low +
   (high - low) * u``), one draw per sample;
3. through each **anomaly injector** in list order (kinds and placements in
   :mod:`wsgen.engine.injectors`, overlap rules in :mod:`wsgen.engine.schedule`,
   effects in :mod:`wsgen.engine.parts`);
4. then the **faults** (:mod:`wsgen.engine.faults`): nulls, gaps,
   duplicates, jitter, out-of-order delivery.

:class:`Composite` is a :class:`~wsgen.engine.base.Generator`;
``take(m)`` returns a :class:`CompositeBlock` whose ``values`` / ``labels``
/ ``seqs`` / ``offsets`` are the *delivered* samples (see there for how a
consumer tells each fault) and whose ``events`` are the ground truth.

Randomness: one seed for the whole composition; the base generator draws as
its registry kind does (e.g. ``normal``: key 11), the noise from spawn key
``K`` (``noise.stream``, default 2), injector ``i`` and the faults from their
own keys (``stream``, default ``1000 + 8 * slot``), so changing one part
never changes the draws of another.

Live updates (``update(changes)``, applied from sample ``seq``; the changes
are merged with the current spec, validated whole, and on error nothing
changes):

* ``interval``: stream time stays continuous (``t`` goes on from its value
  at ``seq`` with the new step); ``periodic`` placements keep their phase,
  ``count`` placements start a new window.
* ``base``: a partial object is merged; the same ``kind`` with new
  ``params`` updates the base generator in place (waveforms stay
  phase-continuous), a new ``kind`` starts it afresh (its ``params`` are not
  carried over; ``offset`` and ``trend`` are); ``offset`` applies as given;
  a new ``trend`` continues from the trend level reached at ``seq``.
* ``noise``: merged (a new ``kind`` replaces it, ``null`` removes it); the
  draws stay, their mapping to values changes.
* ``anomalies``: a list that replaces the list; element ``i`` is merged with
  the current injector ``i`` when of the same ``kind`` (its ``placement``
  merged when of the same ``mode``), else it is a new injector. Events that
  started before ``seq`` keep their place and length; an injector removed or
  changed to another kind lets its events in progress run to their end with
  their old kind (and keeps blocking overlap until then); the others follow
  the rules of :mod:`~wsgen.engine.injectors` and :mod:`~wsgen.engine.sources`.
* ``faults``: each fault given is merged, ``null`` removes it (rules of
  :mod:`~wsgen.engine.faults`).

The five original anomaly streams are presets (:func:`preset`): their values
and labels equal the registry kinds' bit for bit.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping, Optional, Union

import numpy as np
from pydantic import Discriminator, Field, Tag, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wsgen.engine.base import Block, Generator, RandomStream, check_seed
from wsgen.engine.faults import FAULTS, Faults, FaultSet
from wsgen.engine.fields import MAX_LEVEL, interval, level
from wsgen.engine.injectors import (INJECTORS, MAX_INJECTORS, PLACEMENT_MODES, STATEFUL_KINDS, AnyInjector, Model,
                                    StreamKey, UniformHeight, tagged)
from wsgen.engine.parts import BlockContext, InjectorPart, default_key
from wsgen.engine.schedule import CHUNK, MAX_BLOCKED_LENGTH, Blockers, Intervals
from wsgen.engine.params import GeneratorParams, InvalidParams, _jsonable, error_details, summary, validate_params
from wsgen.engine.placement import ordered, pace_problems, uniform_between, window_problems
from wsgen.engine.registry import GENERATORS, get_spec

WAVEFORM_KINDS = tuple(n for n, s in GENERATORS.items() if s.family == "waveform")
DISTRIBUTION_KINDS = tuple(n for n, s in GENERATORS.items() if s.family == "distribution")
#: Processes (random-walk, ou), periodic shapes (pulse, steps, pattern, seasonal) and replay (its
#: values; the file's labels are not the composition's).
OTHER_BASE_KINDS = tuple(n for n, s in GENERATORS.items() if s.family in ("process", "periodic", "recorded"))
BASE_KINDS = ("constant", *WAVEFORM_KINDS, *DISTRIBUTION_KINDS, *OTHER_BASE_KINDS)
#: Default stream key of the noise.
NOISE_KEY = 2


# -- the constant base ---------------------------------------------------------

class ConstantParams(GeneratorParams):
    """Parameters of the ``constant`` base: every sample is ``value``."""

    value: level(0.0, "The level")
    interval: interval(1.0, "Unused in a composition (its interval paces)")


class Constant(Generator):
    name = "constant"
    Params = ConstantParams

    def _render(self, n, m):
        return np.full(m, self.params.value), None


def _base_model(kind: str) -> type[GeneratorParams]:
    return ConstantParams if kind == "constant" else get_spec(kind).params_model


# -- the spec ------------------------------------------------------------------

class BaseSpec(Model):
    """The signal the anomalies are injected into."""

    kind: Literal[BASE_KINDS] = Field("constant", description="constant, or a registry waveform, distribution, "
                                                    "process, periodic kind or replay")
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True,
                                   description="Parameters of the kind (those of the registry; no interval)")
    offset: level(0.0, "Added to every sample")
    trend: Annotated[float, Field(0.0, ge=-1e9, le=1e9, description="Linear trend in units per second of stream time",
                                  json_schema_extra={"unit": "1/s"})]

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("kind")
        if kind is None:
            return value
        if "interval" in value:
            raise PydanticCustomError("base_params", "{message}", {"message": "interval: not allowed here",
                                      "details": [{"field": "interval", "value": _jsonable(value["interval"]),
                                                   "message": "the composition's interval paces the samples"}]})
        try:
            params = validate_params(_base_model(kind), value)
        except InvalidParams as exc:
            raise PydanticCustomError("base_params", "{message}", {"message": str(exc), "details": exc.details}) from None
        out = params.model_dump()
        del out["interval"]
        return out


class NormalNoise(Model):
    """``std_dev * z``, z standard normal (Box-Muller on two uniforms)."""

    kind: Literal["normal"] = "normal"
    std_dev: Annotated[float, Field(1.0, gt=0, le=MAX_LEVEL, description="Standard deviation, > 0")]
    stream: StreamKey


class UniformNoise(Model):
    """``low + (high - low) * u``: uniform in [low, high)."""

    kind: Literal["uniform"] = "uniform"
    low: level(-1.0, "Lower bound")
    high: level(1.0, "Upper bound (>= low)")
    stream: StreamKey


Noise = Annotated[Union[Annotated[NormalNoise, Tag("normal")], Annotated[UniformNoise, Tag("uniform")]],
                  Discriminator(tagged("kind", "normal"))]


class CompositionSpec(GeneratorParams):
    """A composition: base signal, noise, anomaly injectors and faults."""

    interval: interval(1.0, "Seconds of stream time between samples (0: as fast as the client reads; "
                            "periodic and count placements need > 0)")
    base: BaseSpec = Field(default_factory=BaseSpec)
    noise: Optional[Noise] = None
    anomalies: list[AnyInjector] = Field(default_factory=list, max_length=MAX_INJECTORS,
                                         description=f"Anomaly injectors, applied in order (at most {MAX_INJECTORS})")
    faults: Faults = Field(default_factory=Faults)

    @model_validator(mode="after")
    def _cross_fields(self) -> "CompositionSpec":
        problems = self.check()
        if problems:
            details = [{"field": f, "value": _jsonable(self._value_at(f)), "message": m} for f, m in problems]
            raise PydanticCustomError("composition", "{message}", {"message": summary(details), "problems": details})
        return self

    def _value_at(self, path: str) -> Any:
        value: Any = self
        for key in path.split("."):
            value = value[int(key)] if key.isdigit() else getattr(value, key, None)
        return value if isinstance(value, (int, float, str, bool)) or value is None else None

    def check(self) -> list[tuple[str, str]]:
        """Cross-field rules: (dotted field path, message) per violation."""
        problems: list[tuple[str, str]] = []
        lookahead = 0   # how far ahead of a block the first injector is decided
        for i, inj in enumerate(self.anomalies):
            path = f"anomalies.{i}"
            problems += self._placement_problems(path, inj.placement)
            blocked = i > 0 and not inj.allow_overlap
            problems += _length_problems(path, inj, blocked=blocked)
            if blocked and inj.length_bounds[1] <= MAX_BLOCKED_LENGTH:
                lookahead += inj.length_bounds[1] - 1
                if lookahead > MAX_BLOCKED_LENGTH - 1:
                    problems.append((f"{path}.max_length", f"the injectors after the first without allow_overlap may "
                                     f"last at most {MAX_BLOCKED_LENGTH} samples in all (the sum of their "
                                     f"max_length - 1 is at most {MAX_BLOCKED_LENGTH - 1}: the ones before them are "
                                     f"decided that far ahead); here {lookahead}"))
                    lookahead = -(1 << 62)   # said once
            if isinstance(getattr(inj, "height", None), UniformHeight):
                problems += ordered(f"{path}.height.low", inj.height.low, "high", inj.height.high)
            if inj.kind == "frequency-change" and self.base.kind not in WAVEFORM_KINDS:
                problems.append((f"{path}.kind", f"frequency-change needs a waveform base ({', '.join(WAVEFORM_KINDS)}), "
                                                 f"not {self.base.kind}"))
        for name in FAULTS:
            fault = getattr(self.faults, name)
            if fault is not None:
                problems += self._placement_problems(f"faults.{name}", fault.placement)
                problems += _length_problems(f"faults.{name}", fault)
        if isinstance(self.noise, UniformNoise):
            problems += ordered("noise.low", self.noise.low, "high", self.noise.high)
        return problems

    def _placement_problems(self, path: str, p) -> list[tuple[str, str]]:
        iv = self.interval
        if p.start and iv <= 0:
            return [(f"{path}.placement.start", "start is in seconds of stream time: needs interval > 0")]
        if p.mode in ("periodic", "count") and iv <= 0:
            return [(f"{path}.placement.mode", f"{p.mode} places events in seconds of stream time: needs interval > 0")]
        at = f"{path}.placement."
        if p.mode == "periodic":
            return pace_problems(at + "every", p.every, iv, "event")
        if p.mode == "count":
            return window_problems(at + "duration", at + "count", p.duration, iv, p.count)
        if p.mode == "gaps":
            return ordered(at + "min_gap", p.min_gap, "max_gap", p.max_gap)
        return []


def _length_problems(path: str, spec, blocked: bool = False) -> list[tuple[str, str]]:
    lo, hi = spec.length_bounds
    if lo > hi:
        return ordered(f"{path}.min_length", lo, "max_length", hi)
    if blocked and hi > MAX_BLOCKED_LENGTH:
        return [(f"{path}.max_length", f"must be <= {MAX_BLOCKED_LENGTH} for an injector after the first without "
                                       f"allow_overlap (the ones before it are decided that far ahead)")]
    return []


# -- validation and merging -------------------------------------------------------

_UNION_FIELDS = {"placement": "mode", "height": None, "noise": "kind"}
_TAGS = frozenset([*INJECTORS, *PLACEMENT_MODES, "normal", "uniform", "fixed", "symmetric"])


def _path(loc: tuple) -> list:
    """The field path of an error location, without the union tags pydantic adds."""
    out: list = []
    for i, item in enumerate(loc):
        prev = loc[i - 1] if i else None
        after_union = prev in _UNION_FIELDS or (isinstance(prev, int) and i >= 2 and loc[i - 2] == "anomalies")
        if not (after_union and item in _TAGS):
            out.append(item)
    return out


def _message(err: dict[str, Any], path: list) -> str | list[dict[str, Any]] | None:
    """A composition's own messages for :func:`error_details` (see there)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "composition":
        return ctx["problems"]
    if kind == "base_params":
        return [{**d, "field": ".".join(map(str, [*path, d["field"]]))} for d in ctx["details"]]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        last = path[-1] if path else None
        path.append(_UNION_FIELDS.get(last) or "kind")
        if kind == "union_tag_not_found":
            return "missing: says which kind this is"
        # the wrong tag itself as the value, not the whole object holding it
        return [{"field": ".".join(map(str, path)), "value": _jsonable(ctx.get("tag")),
                 "message": f"must be one of {ctx.get('expected_tags', '')}".rstrip()}]
    return "unknown field" if kind == "extra_forbidden" else None


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    """Details of a composition's validation error, fields by dotted path."""
    return error_details(exc, "spec", path=_path, message=_message)


def validate_spec(data: Mapping[str, Any] | CompositionSpec) -> CompositionSpec:
    """Validate a composition; raises :class:`InvalidParams` whose details
    name each wrong field by its dotted path (``anomalies.0.height.low``).
    A spec with ``channels`` gives a
    :class:`~wsgen.engine.channels.ChannelSpec`."""
    if isinstance(data, CompositionSpec):
        return data
    from wsgen.engine.channels import ChannelSpec, validate_channel_spec
    if isinstance(data, ChannelSpec):
        return data
    if not isinstance(data, Mapping):
        raise InvalidParams([{"field": "spec", "value": _jsonable(data), "message": "must be an object"}])
    if "channels" in data:      # several channels in one stream (wsgen.engine.channels)
        return validate_channel_spec(data)
    try:
        return CompositionSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidParams(_details(exc)) from None


def _merge_tagged(current: Any, new: Any, tag: str) -> Any:
    """``new`` merged onto ``current`` when both are objects of the same
    ``tag`` value (or ``new`` omits it); else ``new``."""
    if not isinstance(current, Mapping) or not isinstance(new, Mapping):
        return new
    if tag in new and new[tag] != current.get(tag):
        return dict(new)
    return {**current, **new}


def _merge_part(current: Any, new: Any, tag: str) -> Any:
    out = _merge_tagged(current, new, tag)
    if isinstance(out, dict) and isinstance(current, Mapping) and out.get(tag) == current.get(tag) \
            and isinstance(new.get("placement"), Mapping):
        out["placement"] = _merge_tagged(current.get("placement"), new["placement"], "mode")
    return out


def merge_changes(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A full spec dict: ``changes`` merged onto ``current`` by the rules
    of the module doc (validation is the caller's)."""
    out = dict(current)
    for key, new in changes.items():
        cur = current.get(key)
        if key == "base" and isinstance(new, Mapping) and isinstance(cur, Mapping):
            if "kind" in new and new["kind"] != cur.get("kind"):
                out[key] = {"offset": cur.get("offset"), "trend": cur.get("trend"), **new}
            else:
                out[key] = {**cur, **new}
                if isinstance(new.get("params"), Mapping):
                    out[key]["params"] = {**cur.get("params", {}), **new["params"]}
        elif key == "noise":
            out[key] = _merge_tagged(cur, new, "kind")
        elif key == "anomalies" and isinstance(new, list) and isinstance(cur, list):
            out[key] = [_merge_part(cur[i], v, "kind") if i < len(cur) else v for i, v in enumerate(new)]
        elif key == "faults" and isinstance(new, Mapping) and isinstance(cur, Mapping):
            out[key] = {**cur, **{k: _merge_part(cur.get(k), v, "_") for k, v in new.items()}}
        else:
            out[key] = new
    return out


# -- running a composition ---------------------------------------------------------

class Clock:
    """Stream time ``t(k) = t0 + (k - k0) * interval`` (``t0 = k0 = 0`` until
    the interval changes) and the trend level ``level0 + trend * (t - tt0)``,
    both continuous across live changes."""

    def __init__(self, interval: float, trend: float) -> None:
        self.interval, self._k0, self._t0 = interval, 0, 0.0
        self.trend, self._level0, self._tt0 = trend, 0.0, 0.0

    def times(self, n: int, m: int) -> np.ndarray:
        t = np.arange(n - self._k0, n - self._k0 + m, dtype=np.float64)
        t *= self.interval
        if self._t0:
            t += self._t0
        return t

    def time_of(self, k: int) -> float:
        return self._t0 + (k - self._k0) * self.interval

    def set_interval(self, at: int, interval: float) -> None:
        self._t0, self._k0, self.interval = self.time_of(at), at, interval

    @property
    def has_trend(self) -> bool:
        return bool(self.trend or self._level0)

    def levels(self, t: np.ndarray) -> np.ndarray:
        return self._level0 + self.trend * (t - self._tt0)

    def set_trend(self, at: int, trend: float) -> None:
        t = self.time_of(at)
        self._level0 += self.trend * (t - self._tt0)
        self._tt0, self.trend = t, trend


@dataclass
class CompositeBlock(Block):
    """What slots ``seq .. seq+span-1`` of a composition deliver.

    Attributes:
        seq: first slot (sample index) of the block; the next block starts
            at ``seq + span``.
        values: float64, one per delivered sample; NaN where a ``nulls``
            fault (or a ``dropout`` without fill) hit: sent as JSON null.
        labels: bool, aligned with ``values``: True when the sample lies in
            an anomaly event or a (non-gap) fault event.
        seqs: int64, the sample index of each delivered sample. Without
            faults it is ``arange(seq, seq + span)``. A consumer tells:
            a **gap** by a jump (``seqs[i+1] > seqs[i] + 1`` with no sample
            pending: the missing seqs are the ``gap`` events); a
            **duplicate** by the same seq twice in a row; **out of order**
            by a seq lower than one already seen (never by more than
            ``max_delay``).
        offsets: float64, stream time in seconds of each delivered sample
            since sample 0: ``seqs * interval`` (while the interval is
            unchanged) except under **jitter**, where it differs from that
            by less than ``max_jitter``.
        events: ground truth: one dict ``{"id", "kind", "first", "last"}``
            (ids stable: ``first * 32 + slot``; ``first`` / ``last``
            inclusive sample indices, NAB-style windows) per anomaly or fault
            event overlapping samples ``seq .. seq+span-1``, sorted by
            ``first`` then ``id``. An event spanning several blocks is
            reported, identical, in each.
        span: number of slots (sample indices) the block covers.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    seqs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    offsets: np.ndarray = field(default_factory=lambda: np.empty(0))
    span: int = 0


def composition_seed(seed: int | None, start_seq: int) -> int:
    """The seed a composition runs with (``seed``, or one drawn), after
    checking ``seed`` in [0, 2**64) and ``start_seq`` in [0, MAX_START_SEQ]
    (ValueError; InvalidParams naming ``start_seq`` past the limit)."""
    seed = check_seed(seed)
    if int(start_seq) < 0:
        raise ValueError(f"start_seq must be >= 0, got {start_seq!r}")
    if int(start_seq) > MAX_START_SEQ:
        raise InvalidParams([{"field": "start_seq", "value": int(start_seq), "message":
                              f"a composition resumes at most {MAX_START_SEQ} samples in (its events are "
                              "replayed to get there)"}])
    return seed



def base_generator(base: BaseSpec, seed: int, at: int, path: str = "base") -> Generator:
    """The generator of a composition's ``base`` (``constant`` or a named
    kind) with ``seed``, from sample ``at``.

    Raises:
        InvalidParams: what the kind checks only when its generator is made
            (replay's ``file``), its fields named from the composition:
            ``<path>.params.<field>`` (``path``: ``base``, or a channel's
            ``bases.<name>``).
    """
    cls = Constant if base.kind == "constant" else get_spec(base.kind).cls
    try:
        return cls(base.params, seed=seed, start_seq=at)
    except InvalidParams as exc:
        raise InvalidParams([{**d, "field": f"{path}.params.{d['field']}"} for d in exc.details]) from None


class Composite(Generator):
    """A running composition (see the module doc).

    Args:
        spec: a :class:`CompositionSpec` or its JSON object.
        seed: integer in [0, 2**64); ``None`` draws one (read back ``seed``).
        start_seq: first sample index to produce (``seek``).

    Raises:
        InvalidParams: the spec is invalid (each detail names the field by
            its dotted path, the value and what is allowed).
    """

    name = "composite"
    Params = CompositionSpec
    anomalous = True
    #: spec -> CompositionSpec (a channel's composition checks its own way: :mod:`.channels`)
    _validate = staticmethod(validate_spec)

    def __init__(self, spec: Mapping[str, Any] | CompositionSpec | None = None, seed: int | None = None,
                 start_seq: int = 0) -> None:
        self.params: CompositionSpec = self._validate({} if spec is None else spec)
        self.seed: int = composition_seed(seed, start_seq)
        self.seq = 0
        p = self.params
        self._clock = Clock(p.interval, p.base.trend)
        self._base = self._make_base(p.base, 0)
        self._noise = self._make_noise(p.noise)
        self._parts = [self._new_part(i, inj, 0) for i, inj in enumerate(p.anomalies)]
        self._retired: list[InjectorPart] = []
        self._freeze = 0  # events of later injectors started before this sample block earlier ones
        self._faults = FaultSet(self.seed, p.faults, self._clock, 0)
        self._signal_last = math.nan  # base + noise of the last rendered sample
        if start_seq:
            self.seek(int(start_seq), SEEK_BUDGET_S)
        self.prime()

    def prime(self) -> None:
        """Decide now the events that the next ``take`` would decide ahead
        of its block (the earlier injectors, up to ``MAX_BLOCKED_LENGTH``
        samples ahead, for the later non-overlapping ones to avoid): built
        off the event loop, a composition then costs its ``take`` calls
        only in proportion to their samples. Changes no value."""
        self._decide(self.seq + 1)

    def _make_base(self, base: BaseSpec, at: int) -> Generator:
        return base_generator(base, self.seed, at)

    def _new_part(self, i: int, inj, at: int) -> InjectorPart:
        """The part of injector ``i`` from sample ``at`` (a channel's composite
        mutes the injectors that do not target it: :mod:`.channels`)."""
        return InjectorPart(self.seed, i, inj, self._clock, at)

    def _make_noise(self, noise) -> RandomStream | None:
        return None if noise is None else RandomStream(self.seed, (default_key(noise.stream, NOISE_KEY),), draws=2)

    # -- producing samples --------------------------------------------------------
    def take(self, m: int) -> CompositeBlock:
        """Produce slots ``seq .. seq+m-1`` (m >= 0) as a :class:`CompositeBlock`."""
        if m < 0:
            raise ValueError(f"m must be >= 0, got {m}")
        n = self.seq
        delivery, events = self._render(n, m)
        self.seq = n + m
        self._forget(self.seq)
        return CompositeBlock(n, delivery.values, delivery.labels, events=events, seqs=delivery.seqs,
                              offsets=delivery.offsets, span=m)

    def _render(self, n: int, m: int):
        p, clock = self.params, self._clock
        self._decide(-(-(n + m) // DECIDE_STEP) * DECIDE_STEP)   # up to a multiple of DECIDE_STEP: once per 1024 take(1)s
        times = clock.times(n, m)
        base = self._base.take(m).values
        parts = [*self._retired, *self._parts]
        x = base.copy() if any(q.spec.kind == "frequency-change" for q in parts) else base
        if p.base.offset:
            x += p.base.offset
        if clock.has_trend:
            x += clock.levels(times)
        if self._noise is not None:
            if p.noise.kind == "normal":
                x += p.noise.std_dev * self._noise.normals(n, m)
            else:
                x += uniform_between(p.noise.low, p.noise.high, self._noise.uniforms(n, m)[:, 0])
        labels = np.zeros(m, bool)
        ctx = BlockContext(n, m, base, times, self._base, clock)
        lists = []
        before, self._signal_last = self._signal_last, float(x[-1]) if m else self._signal_last
        for part in parts:
            if part.input_last is None:  # new since the last block: it received the stage before's output
                part.input_last = part.output_last = before
            before = part.output_last
            found = part.apply(x, labels, ctx)
            if found:
                lists.append(found)
        delivery, fault_events = self._faults.render(n, m, x, labels, times)
        if len(lists) == 1 and not fault_events:
            return delivery, lists[0]   # one part's events: in start order, one per start
        events = sorted([*(e for found in lists for e in found), *fault_events], key=lambda e: (e["first"], e["id"]))
        return delivery, events

    def _decide(self, until: int) -> None:
        """Decide every part's events far enough ahead to render up to ``until``.

        Injector ``j`` avoids the events of injectors before it, and the
        events of later ones (and of retired ones) that started before the
        last live update, so injector ``i < j`` must be decided
        ``max_length(j) - 1`` samples beyond ``j`` (the length of ``j``'s
        candidates still to come, at most ``MAX_BLOCKED_LENGTH``: the
        lookahead is bounded by the sum of those of the later injectors).
        """
        parts = self._parts
        horizon = [until] * len(parts)
        for j in range(len(parts) - 1, 0, -1):
            if not parts[j].spec.allow_overlap:
                need = horizon[j] + parts[j].schedule.source.longest - 1
                horizon[:j] = [max(h, need) for h in horizon[:j]]
        for j, part in enumerate(parts):
            if part.schedule.decided >= horizon[j]:
                continue
            blocked = None
            if not part.spec.allow_overlap:
                spans = [q.schedule.frozen(self._freeze) for q in [*parts[j + 1:], *self._retired]
                         if not q.spec.allow_overlap]
                starts = np.concatenate([s for s, _ in spans]) if spans else np.empty(0, np.int64)
                fixed = Intervals(starts, np.concatenate([e for _, e in spans])) if len(starts) else None
                blocked = Blockers([q.schedule for q in parts[:j]], fixed)
            part.schedule.decide(horizon[j], blocked, part.spec.allow_overlap)
        self._faults.decide(until)

    def _forget(self, before: int) -> None:
        for part in [*self._retired, *self._parts]:
            part.schedule.forget(before)
        self._retired = [p for p in self._retired if len(p.schedule.starts)]
        self._faults.forget(before)

    def seek(self, n: int, budget_s: float | None = None) -> None:
        """Move forward to slot ``n`` without delivering the slots between.

        Events are decided (not rendered) up to ``n`` minus a tail; the tail
        (held-back samples, and the samples a flatline in progress may take
        its value from) is rendered and discarded, so what follows equals
        what ``take`` would have produced. Parts whose events all last one
        sample skip the distance; otherwise the cost is linear in it
        (vectorised draws; ``gaps`` placements walk their events).

        Args:
            n: the slot to move to (>= ``seq``).
            budget_s: most CPU seconds of the calling thread
                (``time.thread_time``) the seek may take, checked between
                steps of at most a few milliseconds; past it
                :class:`InvalidParams` naming ``start_seq`` is raised (and
                the composite is left part-way: discard it). None: no limit.
        """
        if n < self.seq:
            raise ValueError(f"can only seek forward: seq is {self.seq}, asked for {n}")
        goal, started = n, time.thread_time()
        step = SEEK_FIRST_STEP

        def paced(step: int, spent: float) -> int:
            """The next step: checks the budget; grows while steps are cheap."""
            used = time.thread_time() - started
            if budget_s is not None and used > budget_s:
                raise InvalidParams([{"field": "start_seq", "value": goal, "message":
                                      f"too far for this composition: resuming replays its events and had reached "
                                      f"sample {self.seq if self.seq > at0 else at} after {used:.2f} s of CPU (the "
                                      f"limit is {budget_s:g} s); resume at a smaller start_seq, or with fewer, "
                                      f"shorter or sparser events"}])
            return min(CHUNK, step * 2) if spent < SEEK_STEP_S else step

        parts = [*self._retired, *self._parts]
        # a flatline sticks at its input, which a flatline before it may hold: chains are
        # at most one event per stateful part long
        tail = 1 + self._faults.longest_delay + sum(p.max_length + 1 for p in parts if p.spec.kind in STATEFUL_KINDS)
        stop = max(self.seq, n - tail)
        if stop > self.seq:
            # one-sample events before ``stop`` cannot reach it nor block
            # anything that does: their draws need not be made
            if all(p.max_length <= 1 for p in parts):
                for part in self._parts:
                    part.schedule.skip(stop)
            self._faults.skip(stop)
        at = at0 = self.seq
        while at < stop:
            t = time.thread_time()
            at = min(stop, at + step)
            self._decide(at)
            self._forget(at)
            self._faults.drop_pending(at)
            step = paced(step, time.thread_time() - t)
        if stop > self.seq:
            self._base.seek(stop)
            self.seq = stop
            self._signal_last = math.nan
            for part in parts:
                part.input_last = part.output_last = math.nan
        while self.seq < n:
            t = time.thread_time()
            self.take(min(step, n - self.seq))
            step = paced(step, time.thread_time() - t)

    # -- live updates -------------------------------------------------------------
    def update(self, changes: Mapping[str, Any]) -> CompositionSpec:
        """Apply a partial spec from sample ``seq`` (rules in the module doc).

        Returns the full new spec; on error (:class:`InvalidParams`) nothing
        changes.
        """
        if not isinstance(changes, Mapping):
            raise InvalidParams([{"field": "params", "value": _jsonable(changes),
                                  "message": "must be an object of spec fields to values"}])
        new = self._validate(merge_changes(self.params.model_dump(), changes))
        old, at, clock = self.params, self.seq, self._clock
        if new.interval != old.interval:
            clock.set_interval(at, new.interval)
        if new.base.trend != old.base.trend:
            clock.set_trend(at, new.base.trend)
        if new.base.kind != old.base.kind:
            self._base = self._make_base(new.base, at)
        elif new.base.params != old.base.params:
            self._base.update(new.base.params)
        if (new.noise and (new.noise.stream, new.noise.kind)) != (old.noise and (old.noise.stream, old.noise.kind)):
            self._noise = self._make_noise(new.noise)
        parts = []
        for i, inj in enumerate(new.anomalies):
            part = self._parts[i] if i < len(self._parts) else None
            if part is not None and part.spec.kind == inj.kind:
                part.respec(inj, clock, at)
            else:
                if part is not None:
                    self._retire(part, at)
                part = self._new_part(i, inj, at)
            parts.append(part)
        for part in self._parts[len(new.anomalies):]:
            self._retire(part, at)
        self._parts, self._freeze = parts, at
        self._faults.update(new.faults, clock, at)
        self.params = new
        self.prime()      # the events re-decided from ``at`` (the server updates off its loop)
        return new

    def _retire(self, part: InjectorPart, at: int) -> None:
        part.schedule.truncate(at)
        if len(part.schedule.starts):
            self._retired.append(part)


#: Largest ``start_seq`` of a composition: seeking replays its events, at a
#: cost linear in the distance for long events and ``gaps`` placements (1e8
#: took 10 s and 1e11 hours). Within it, a seek also stops with an error
#: past :data:`SEEK_BUDGET_S`.
MAX_START_SEQ = 2_000_000
#: Events are decided up to the next multiple of this many samples past a
#: block (a decision does not depend on how the range is split, so this
#: changes no value; small blocks then ask the sources once per this many
#: samples, not once per block).
DECIDE_STEP = 1024
#: Most CPU seconds a composition's ``start_seq`` seek may take (the server
#: does it off its event loop, in a worker thread; this bounds the worker's
#: time): past it the subscription is refused, naming ``start_seq``.
SEEK_BUDGET_S = 1.0
#: First step of a seek, in samples; steps double while one costs less than
#: :data:`SEEK_STEP_S` of CPU (up to ``CHUNK``), so the budget is checked
#: every few milliseconds however costly the samples are.
SEEK_FIRST_STEP = 256
SEEK_STEP_S = 0.005


def create_composite(spec: Mapping[str, Any] | CompositionSpec | None = None, seed: int | None = None,
                     start_seq: int = 0) -> Composite:
    """A :class:`Composite` (same arguments); a spec with ``channels``
    gives a :class:`~wsgen.engine.channels.ChannelComposite`."""
    from wsgen.engine.channels import ChannelSpec, ChannelComposite
    if isinstance(spec, ChannelSpec) or (isinstance(spec, Mapping) and "channels" in spec):
        return ChannelComposite(spec, seed=seed, start_seq=start_seq)
    return Composite(spec, seed=seed, start_seq=start_seq)


# -- the original anomaly kinds as presets ---------------------------------------------

def preset(name: str, params: Mapping[str, Any] | None = None) -> CompositionSpec:
    """The composition equal to the original anomaly kind ``name`` with
    ``params`` (its own parameter names): values and labels bit for bit
    those of ``wsgen.create(name, params, seed)``, for every seed and block
    split (same random stream keys, formulas and event track).

    Raises:
        UnknownGenerator / InvalidParams: not an anomaly kind / bad params.
    """
    spec = get_spec(name)
    p = validate_params(spec.params_model, dict(params or {}))
    # start 0: the originals place events from sample 0 on
    if name == "random":
        base, inj = p.base_value, {"kind": "spike", "placement": {"mode": "random", "probability": p.anomaly_probability},
                                   "height": {"range": p.anomaly_range}, "stream": 21}
    elif name == "random-square":
        base, inj = p.base_value, {"kind": "level-shift", "height": p.anomaly_magnitude, "stream": 22,
                                   "placement": {"mode": "gaps", "min_gap": p.minimum_interval, "max_gap": p.maximum_interval},
                                   "min_length": p.min_anomaly_duration, "max_length": p.max_anomaly_duration}
    elif name == "clustered":
        base, inj = p.constant_value, {"kind": "noisy-cluster", "amplitude": p.anomaly_magnitude, "stream": 23,
                                       "placement": {"mode": "gaps", "min_gap": p.minimum_interval, "max_gap": p.maximum_interval},
                                       "min_length": p.min_anomaly_length, "max_length": p.max_anomaly_length}
    elif name == "periodic-spike":
        base, inj = p.base_value, {"kind": "spike", "placement": {"mode": "periodic", "every": p.spike_interval},
                                   "height": {"low": p.min_spike_range, "high": p.max_spike_range}, "stream": 25}
    elif name == "count-per-duration":
        base, inj = p.base_value, {"kind": "spike", "stream": 26,
                                   "placement": {"mode": "count", "count": p.num_anomalies, "duration": p.duration},
                                   "height": {"low": p.min_anomaly_range, "high": p.max_anomaly_range}}
    else:
        raise InvalidParams([{"field": "generator", "value": name,
                              "message": "not an anomaly kind: random, random-square, clustered, periodic-spike, count-per-duration"}])
    inj["placement"]["start"] = 0
    return validate_spec({"interval": p.sample_interval, "base": {"kind": "constant", "params": {"value": base}},
                          "anomalies": [inj]})


@functools.cache
def composition_catalogue() -> dict[str, Any]:
    """What clients need to build compositions: the JSON Schema of
    :class:`CompositionSpec`, the five original anomaly kinds as presets
    (their default specs) and the JSON Schema of a composition with
    channels (``channel_schema``: :class:`~.channels.ChannelSpec`).

    Built once (25-40 ms) and shared by every caller (the ``list`` reply,
    ``GET /composite/presets``): read it, do not change it."""
    from wsgen.engine.channels import ChannelSpec
    from wsgen.engine.registry import ANOMALY_KINDS
    return {"schema": CompositionSpec.model_json_schema(),
            "presets": {name: preset(name, {}).model_dump() for name in ANOMALY_KINDS},
            "channel_schema": ChannelSpec.model_json_schema()}
