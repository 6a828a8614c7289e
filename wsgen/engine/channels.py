"""Several channels in one stream: a composition with ``channels``.

A composition that declares ``channels`` (:class:`ChannelSpec`) streams k
named channels per sample, for example 8 correlated sensors with a level
shift on sensor 3 and the truth attached::

    {
      "interval": 0.01,
      "channels": "temp_1..temp_8",
      "base": {"kind": "sine", "params": {"amplitude": 1, "frequency": 0.1, "sample_rate": 100}},
      "gain": [1, 1, 2, 1, 1, 1, 1, 0.5],
      "offset": {"temp_8": 20},
      "bases": {"temp_2": {"kind": "random-walk", "params": {"volatility": 0.1}}},
      "noise": {"kind": "normal", "std_dev": 0.1, "correlation": [[1, 0.8, ...], ...]},
      "anomalies": [{"kind": "level-shift", "channels": ["temp_3"], "height": 5,
                     "placement": {"mode": "indices", "indices": [5000]},
                     "min_length": 201, "max_length": 201}]
    }

Fields besides those of a single-channel composition
(:mod:`wsgen.engine.composite`):

* ``channels``: 1 to :data:`MAX_CHANNELS` (32) unique names (``[A-Za-z_]``
  then ``[A-Za-z0-9_.-]``, at most 32 characters, none of ``seq``, ``t``,
  ``value``, ``label``, ``events``, nor starting ``label_``), or a range
  string ``"<prefix><a>..<prefix><b>"`` (``"temp_1..temp_8"``).
* ``base``: the shared base (as a composition's); ``bases``: an own base per
  channel name (``{"kind", "params", "offset", "trend"}``), replacing the
  shared one for that channel.
* ``gain``, ``offset``: per channel, a list of k numbers or an object
  ``{name: number}`` (the others: gain 1, offset 0).
* ``noise``: ``{"kind": "normal", "std_dev", "correlation", "stream"}``:
  ``std_dev`` a number or k numbers, ``correlation`` a k x k correlation
  matrix (default identity): symmetric, unit diagonal, entries in [-1, 1]
  and positive definite (an invalid matrix is refused naming
  ``noise.correlation`` or the entry). Or ``{"kind": "uniform", "low",
  "high", "stream"}``: independent uniform noise, ``low`` / ``high`` a
  number or k numbers (``low_c <= high_c``).
* ``anomalies``: the injectors of a composition, each with ``channels``
  (names it targets; default all). A ``frequency-change`` needs a waveform
  base on the channels it targets (it runs that base ``factor`` times
  faster; the channel's gain applies to the warped base, its noise stays).
  ``channels x (1 + injectors)`` is at most :data:`MAX_CHANNEL_PARTS` (256).
* ``faults``: as a composition's; a fault hits every channel of a sample
  (a gap drops the whole sample, a null fault nulls every channel).

Channel ``c`` (``b`` its base spec: the shared one or its own) is, at
sample ``k`` (``t = k * interval``)::

    x_c = gain_c * base_c(k) + (gain_c * b.offset + offset_c) + gain_c * b.trend * t
          + sum_{j <= c} (std_dev_c * L[c, j]) * z_j(k)

(uniform noise: ``+ (low_c + (high_c - low_c) * u_c(k))`` instead of the
sum, ``u_c`` the first of the two uniforms of sample ``k`` of random stream
``(noise.stream or 2, 1 + c)``: the streams of the normals), then the
injectors that target ``c``, then the faults. A ``frequency-change`` on
``c`` adds ``gain_c * (warped_c(k) - base_c(k))`` over its events
(``warped_c``: the base run ``factor`` times faster, phase-continuous at
the event start). ``L`` is the
Cholesky factor of ``correlation`` (``L L^T = correlation``), ``z_j``
independent standard normals (Box-Muller, random stream spawn key
``(noise.stream or 2, 1 + j)``), summed in the fixed order ``j = 0 .. c``
elementwise so that any block split gives the same bits. The shared base
draws from the composition's seed (so channels sharing it see the same
signal); an own base of channel ``c`` from the seed
``SeedSequence(seed, spawn_key=(7000, c))``.

Ground truth: ``labels`` has one column per channel, True where an
injector targeting that channel (or a non-gap fault) covers the sample;
each event carries ``channels``: the names it hits (a fault: all). The
events of one injector are the same on every channel it targets (one
schedule, decided once over all injectors as in a single composition).

Engine: channel ``c`` is a single-channel :class:`Composite` whose
injectors that do not target ``c`` are *muted* (their events are decided,
and so block overlap, exactly as in the others, but change no value and
no label). So blocks of any size give the same bits, the stream is seeded,
``start_seq`` seeks each channel as a composition seeks (the 1 s CPU
budget is shared by the channels), and single-channel compositions are
untouched.

Live updates (``update(changes)``, applied from sample ``seq``; merged
with the current spec as a composition's are, validated whole, nothing
changes on error): ``channels`` stay (another list is refused naming
``channels``); ``gain``, ``offset``, ``bases`` replace the current ones
(a channel moving between its own base and the shared one gets a new base
from ``seq``, with that base's seed); ``noise`` is merged (the draws stay,
their mixing changes); an injector's ``channels`` apply from ``seq``, to
its events in progress too; every other rule is the composition's, per
channel. An event's ``channels`` are those of its injector's slot now.

Not supported: binary encoding (as every composition), scoring (per-channel
truth has no single score), named streams.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, Optional, Union

import numpy as np
from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wsgen.engine.base import RandomStream
from wsgen.engine.composite import (base_generator, composition_seed, NOISE_KEY, SEEK_BUDGET_S, BaseSpec, Composite, CompositeBlock,
                                    CompositionSpec, _details, merge_changes, validate_spec)
from wsgen.engine.faults import Faults
from wsgen.engine.fields import MAX_LEVEL, interval
from wsgen.engine.injectors import Model, StreamKey, tagged
from wsgen.engine.parts import InjectorPart, default_key
from wsgen.engine.params import GeneratorParams, InvalidParams, _jsonable, summary

#: Most channels of one composition: a take costs about 0.3 ms per channel with 16 injectors
#: (each channel is a composition), so a one-sample take of 32 stays near 10 ms of the loop.
MAX_CHANNELS = 32
#: Most ``channels x (1 + injectors)``: every channel runs every injector (muted where it
#: does not target it), about 35 us each per take, so a one-sample take stays near 10 ms.
MAX_CHANNEL_PARTS = 256
#: Names a channel may not take (they are fields of the HTTP rows).
RESERVED_NAMES = frozenset({"seq", "t", "value", "values", "label", "labels", "events"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_RANGE = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*?)(\d+)\.\.([A-Za-z_][A-Za-z0-9_.-]*?)(\d+)")
#: Spawn key of the seed of channel c's own base: (OWN_BASE_KEY, c).
OWN_BASE_KEY = 7000


def expand_channels(value: Any) -> Any:
    """``"temp_1..temp_8"`` -> ``["temp_1", ..., "temp_8"]``; other values as given."""
    if not isinstance(value, str):
        return value
    m = _RANGE.fullmatch(value)
    if m is None or m.group(1) != m.group(3):
        raise ValueError(f"a range of channel names is \"<prefix><first>..<prefix><last>\" such as "
                         f"\"temp_1..temp_8\", not {value!r}; or give a list of names")
    a, b = int(m.group(2)), int(m.group(4))
    if not 0 <= b - a < MAX_CHANNELS:
        raise ValueError(f"{value!r} names {b - a + 1} channels: 1 to {MAX_CHANNELS}")
    return [f"{m.group(1)}{i}" for i in range(a, b + 1)]


PerChannel = Optional[Union[list[Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]],
                            dict[str, Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]]]]


class ChannelNoise(Model):
    """Correlated normal noise: ``std_dev_c * (L z)_c`` with ``L L^T = correlation``."""

    kind: Literal["normal"] = "normal"
    std_dev: Union[Annotated[float, Field(gt=0, le=MAX_LEVEL)], list[Annotated[float, Field(gt=0, le=MAX_LEVEL)]]] = \
        Field(1.0, description="Standard deviation (> 0): one for every channel, or one per channel")
    correlation: Optional[list[list[float]]] = Field(
        None, description="k x k correlation matrix (symmetric, unit diagonal, positive definite); default identity")
    stream: StreamKey


Bounds = Union[Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)],
               list[Annotated[float, Field(ge=-MAX_LEVEL, le=MAX_LEVEL)]]]


class ChannelUniformNoise(Model):
    """Independent uniform noise: ``low_c + (high_c - low_c) * u_c``."""

    kind: Literal["uniform"]
    low: Bounds = Field(-1.0, description="Lower bound: one for every channel, or one per channel")
    high: Bounds = Field(1.0, description="Upper bound (>= low): one for every channel, or one per channel")
    stream: StreamKey


AnyChannelNoise = Annotated[Union[Annotated[ChannelNoise, Tag("normal")], Annotated[ChannelUniformNoise, Tag("uniform")]],
                            Discriminator(tagged("kind", "normal"))]


class ChannelSpec(GeneratorParams):
    """A composition of several named channels (module doc)."""

    interval: interval(1.0, "Seconds of stream time between samples (0: as fast as the client reads)")
    channels: list[str] = Field(..., min_length=1, max_length=MAX_CHANNELS,
                                description='Channel names, in the order of the wire\'s arrays, or a range '
                                            '"temp_1..temp_8"')
    base: BaseSpec = Field(default_factory=BaseSpec, description="The base shared by the channels without their own")
    bases: dict[str, BaseSpec] = Field(default_factory=dict, description="Own base per channel name")
    gain: PerChannel = Field(None, description="Per channel: list of k numbers or {name: number}; default 1")
    offset: PerChannel = Field(None, description="Per channel: list of k numbers or {name: number}; default 0")
    noise: Optional[AnyChannelNoise] = None
    anomalies: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Anomaly injectors of a composition (CompositionSpec), each with channels: the names it targets "
        "(default all)"))
    faults: Faults = Field(default_factory=Faults)

    @field_validator("channels", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return expand_channels(value)

    @model_validator(mode="after")
    def _cross_fields(self) -> "ChannelSpec":
        problems = self.problems()
        if problems:
            details = [{"field": f, "value": v, "message": m} for f, v, m in problems]
            raise PydanticCustomError("composition", "{message}", {"message": summary(details), "problems": details})
        k = len(self.channels)
        object.__setattr__(self, "gain", self._per_channel(self.gain, 1.0))
        object.__setattr__(self, "offset", self._per_channel(self.offset, 0.0))
        names = list(self.channels)
        anomalies = []
        for a in self.anomalies:
            targets = a.get("channels", names)
            anomalies.append({**a, "channels": [n for n in names if n in targets]})
        object.__setattr__(self, "anomalies", anomalies)
        fields = () if self.noise is None else ("std_dev",) if isinstance(self.noise, ChannelNoise) else ("low", "high")
        for fname in fields:
            if not isinstance(getattr(self.noise, fname), list):
                object.__setattr__(self.noise, fname, [float(getattr(self.noise, fname))] * k)
        return self

    def _per_channel(self, value, default: float) -> list[float]:
        if value is None:
            return [default] * len(self.channels)
        if isinstance(value, dict):
            return [float(value.get(n, default)) for n in self.channels]
        return [float(v) for v in value]

    def problems(self) -> list[tuple[str, Any, str]]:
        """Cross-field rules: (dotted field path, value, message) per violation."""
        out: list[tuple[str, Any, str]] = []
        names, k = list(self.channels), len(self.channels)
        seen: set[str] = set()
        for i, n in enumerate(names):
            if not _NAME.fullmatch(n) or n in RESERVED_NAMES or n.startswith("label_"):
                out.append((f"channels.{i}", n, "a name is [A-Za-z_] then [A-Za-z0-9_.-], at most 32 characters, "
                            f"not one of {', '.join(sorted(RESERVED_NAMES))} nor starting with label_"))
            elif n in seen:
                out.append((f"channels.{i}", n, "names must be unique"))
            seen.add(n)
        if k * (1 + len(self.anomalies)) > MAX_CHANNEL_PARTS:
            out.append(("anomalies", len(self.anomalies), f"channels x (1 + injectors) is at most {MAX_CHANNEL_PARTS} "
                        f"(here {k} x {1 + len(self.anomalies)}): every channel runs every injector; use fewer "
                        "channels or injectors"))
        for key in self.bases:
            if key not in seen:
                out.append((f"bases.{key}", key, f"not a channel: {', '.join(names)}"))
        for fname in ("gain", "offset"):
            value = getattr(self, fname)
            if isinstance(value, list) and len(value) != k:
                out.append((fname, len(value), f"give {k} numbers (one per channel) or an object {{name: number}}"))
            elif isinstance(value, dict):
                out += [(f"{fname}.{key}", key, f"not a channel: {', '.join(names)}") for key in value if key not in seen]
        if self.noise is not None:
            out += _noise_problems(self.noise, k)
        for i, a in enumerate(self.anomalies):
            targets = a.get("channels")
            if targets is None:
                continue
            if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
                out.append((f"anomalies.{i}.channels", _jsonable(targets), "must be a non-empty list of channel names"))
                continue
            out += [(f"anomalies.{i}.channels", t, f"not a channel: {', '.join(names)}") for t in targets if t not in seen]
        if not out:
            out += self._composition_problems()
        return out

    def _composition_problems(self) -> list[tuple[str, Any, str]]:
        """The rules of a single composition, on each base (errors named in this spec's terms)."""
        names = list(self.channels)
        faults = self.faults.model_dump(exclude_none=True)
        shared = {n for n in names if n not in self.bases}
        out: list[tuple[str, Any, str]] = []
        for where, base, users in [("base", self.base, shared),
                                   *((f"bases.{n}", b, {n}) for n, b in self.bases.items())]:
            plain = []
            for given in self.anomalies:
                a = {key: v for key, v in given.items() if key != "channels"}
                if a.get("kind") == "frequency-change" and not users & set(given.get("channels", names)):
                    # it does not touch the channels of this base, whatever its kind: checked as
                    # an injector with the same placement and lengths and no effect fields
                    a = {**{key: v for key, v in a.items() if key != "factor"}, "kind": "flatline"}
                plain.append(a)
            try:
                validate_spec({"interval": self.interval, "base": base.model_dump(), "anomalies": plain,
                               "faults": faults})
            except InvalidParams as exc:
                for d in exc.details:
                    f = d["field"]
                    f = where + f[4:] if f.startswith("base") else f
                    out.append((f, d.get("value"), d["message"]))
                if not all(d["field"].startswith("base") for d in exc.details):
                    break   # the anomalies' and faults' problems, once
        return out

    def inner(self, c: int) -> dict[str, Any]:
        """The single-channel composition of channel ``c`` (its injectors all
        present: the channel mutes those that do not target it)."""
        b = self.bases.get(self.channels[c], self.base)
        g = self.gain[c]
        return {"interval": self.interval,
                "base": {"kind": b.kind, "params": b.params, "trend": g * b.trend,
                         "offset": b.offset if g == 1 and self.offset[c] == 0 else g * b.offset + self.offset[c]},
                "anomalies": [{key: v for key, v in a.items() if key != "channels"} for a in self.anomalies],
                "faults": self.faults.model_dump(exclude_none=True)}


def _noise_problems(noise: ChannelNoise | ChannelUniformNoise, k: int) -> list[tuple[str, Any, str]]:
    if isinstance(noise, ChannelUniformNoise):
        out = [(f, len(v), f"give one number, or {k} (one per channel)")
               for f, v in (("noise.low", noise.low), ("noise.high", noise.high)) if isinstance(v, list) and len(v) != k]
        if out:
            return out
        per_channel = isinstance(noise.low, list)
        lows = noise.low if per_channel else [noise.low] * k
        highs = noise.high if isinstance(noise.high, list) else [noise.high] * k
        out = [(f"noise.low.{c}" if per_channel else "noise.low", lo, f"must be <= high ({hi})")
               for c, (lo, hi) in enumerate(zip(lows, highs)) if lo > hi]
        return out if per_channel else out[:1]
    if isinstance(noise.std_dev, list) and len(noise.std_dev) != k:
        return [("noise.std_dev", len(noise.std_dev), f"give one number, or {k} (one per channel)")]
    r = noise.correlation
    if r is None:
        return []
    if len(r) != k or any(len(row) != k for row in r):
        return [("noise.correlation", _jsonable(f"{len(r)} rows"), f"must be a {k} x {k} matrix (one row per channel)")]
    a = np.array(r, dtype=np.float64)
    out = []
    for i in range(k):
        for j in range(k):
            v = a[i, j]
            f = f"noise.correlation.{i}.{j}"
            if not math.isfinite(v) or abs(v) > 1:
                out.append((f, _jsonable(float(v)), "must be a number in [-1, 1]"))
            elif i == j and v != 1:
                out.append((f, float(v), "the diagonal of a correlation matrix is 1"))
            elif j > i and v != a[j, i]:
                out.append((f, float(v), f"must equal noise.correlation.{j}.{i} ({float(a[j, i])!r}): the matrix is symmetric"))
    if out:
        return out
    smallest = float(np.linalg.eigvalsh(a)[0])
    if smallest <= 1e-10:
        return [("noise.correlation", None, f"must be positive definite (its smallest eigenvalue is {smallest:.3g}): "
                 "no set of channels can have these correlations")]
    return []


def validate_channel_spec(data: Mapping[str, Any] | ChannelSpec) -> ChannelSpec:
    """Validate a composition with ``channels``; raises :class:`InvalidParams`
    whose details name each wrong field by its dotted path
    (``noise.correlation.0.1``, ``anomalies.0.channels``)."""
    if isinstance(data, ChannelSpec):
        return data
    try:
        return ChannelSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidParams(_details(exc)) from None


# -- running ---------------------------------------------------------------------------

class _Normals:
    """The independent normals ``z_j`` of samples ``n .. n+m-1``, shape (m, k),
    kept for the block last asked (every channel asks for the same block);
    with uniform noise, channel ``c`` draws the first uniform of the same
    stream ``j = c`` instead."""

    def __init__(self, seed: int, key: int, k: int) -> None:
        self.key = key
        self._streams = [RandomStream(seed, (key, 1 + j), draws=2) for j in range(k)]
        self._block: tuple[int, int] | None = None
        self._z = np.empty((0, k))
        self._done = 0      # columns of _z drawn

    def block(self, n: int, m: int, upto: int) -> np.ndarray:
        if self._block != (n, m):
            self._z = np.empty((m, len(self._streams)))
            self._done = 0
            self._block = (n, m)
        while self._done < upto:
            self._z[:, self._done] = self._streams[self._done].normals(n, m)
            self._done += 1
        return self._z

    def uniforms(self, n: int, m: int, c: int) -> np.ndarray:
        """Uniforms in [0, 1) of channel ``c``, samples ``n .. n+m-1``."""
        return self._streams[c].uniforms(n, m)[:, 0]


@dataclass(frozen=True)
class _UniformRow:
    """Channel ``c``'s uniform noise: ``low + width * u_c``."""

    c: int
    low: float
    width: float


class _ChannelBase:
    """Channel ``c``'s base as a composition sees it: ``gain * base + noise``."""

    def __init__(self, gen, gain: float, normals: _Normals | None, row: np.ndarray | None) -> None:
        self.gen, self.gain, self.normals, self.row = gen, gain, normals, row
        self.seq = gen.seq

    @property
    def row(self) -> np.ndarray | None:
        """``std_dev_c * L[c]`` (None without noise)."""
        return self._row

    @row.setter
    def row(self, row: np.ndarray | _UniformRow | None) -> None:
        self._row = row
        self._terms = [] if row is None or isinstance(row, _UniformRow) else [
            (j, float(row[j])) for j in np.flatnonzero(row).tolist()]

    def take(self, m: int):
        n = self.seq
        block = self.gen.take(m)
        x = self.raw = block.values
        if self.gain != 1:
            x = x * self.gain
        if isinstance(self._row, _UniformRow):
            u = self._row
            x = x + (u.low + u.width * self.normals.uniforms(n, m, u.c))
        elif self.normals is not None:
            terms = self._terms
            z = self.normals.block(n, m, terms[-1][0] + 1)
            j, w = terms[0]
            noise = w * z[:, j]
            for j, w in terms[1:]:
                noise += w * z[:, j]
            x = x + noise
        self.seq = n + m
        block.values = x
        return block

    def seek(self, n: int) -> None:
        self.gen.seek(n)
        self.seq = n

    def waveform_part(self) -> tuple[Any, np.ndarray, float]:
        """For ``frequency-change``: the base generator, its own values of
        the block last taken (before gain and noise) and the gain."""
        return self.gen, self.raw, self.gain

    def update(self, params) -> None:
        """New params of the same kind from ``seq`` (the kind's own rule)."""
        self.gen.update(params)


class _MutedPart(InjectorPart):
    """An injector on a channel it does not target: its events are decided
    (they block overlap as anywhere) and reported, nothing is changed."""

    def apply(self, x, labels, ctx):
        idx = self.positions(ctx.n, ctx.m)[0]
        if ctx.m:
            self.input_last = self.output_last = float(x[-1])
        return self.events(idx)


class _InnerSpec(CompositionSpec):
    """A channel's own composition: every injector of the spec, also a
    ``frequency-change`` that does not target this channel (muted here)
    whatever this channel's base; :class:`ChannelSpec` checks the bases of
    the channels each one targets."""

    def check(self) -> list[tuple[str, str]]:
        changed = {f"anomalies.{i}.kind" for i, a in enumerate(self.anomalies) if a.kind == "frequency-change"}
        return [(f, m) for f, m in super().check() if f not in changed]


def _validate_inner(data: Mapping[str, Any] | CompositionSpec) -> CompositionSpec:
    if isinstance(data, CompositionSpec):
        return data
    try:
        return _InnerSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidParams(_details(exc)) from None


class _Channel(Composite):
    """The single-channel composition of one channel."""

    _validate = staticmethod(_validate_inner)

    def __init__(self, spec: ChannelSpec, c: int, seed: int, normals: _Normals | None, row) -> None:
        self._c = c
        self._setup_channel(spec, seed, normals, row)
        super().__init__(spec.inner(c), seed=seed)

    def _setup_channel(self, spec: ChannelSpec, seed: int, normals: _Normals | None, row) -> None:
        self._name = name = spec.channels[self._c]
        self._targets = frozenset(i for i, a in enumerate(spec.anomalies) if name in a["channels"])
        self._own = name in spec.bases
        self._base_seed = seed if not self._own else int(
            np.random.SeedSequence(seed, spawn_key=(OWN_BASE_KEY, self._c)).generate_state(1, np.uint64)[0])
        self._gain, self._normals, self._row = spec.gain[self._c], normals, row

    def update_channel(self, spec: ChannelSpec, normals: _Normals | None, row) -> None:
        """Apply ``spec`` from ``seq`` (rules in the module doc)."""
        own, at = self._own, self.seq
        self._setup_channel(spec, self.seed, normals, row)
        inner = spec.inner(self._c)
        inner["faults"] = spec.faults.model_dump()      # None removes a fault
        self.update(inner)              # a new base kind is built by _make_base, new injectors by _new_part
        if own != self._own:            # own base <-> shared base: another seed, a new base from here
            self._base = self._make_base(self.params.base, at)
        self._base.gain, self._base.normals, self._base.row = self._gain, normals, row
        for i, part in enumerate(self._parts):     # an injector's channels changed: from here
            part.__class__ = InjectorPart if i in self._targets else _MutedPart

    def _make_base(self, base: BaseSpec, at: int):
        path = f"bases.{self._name}" if self._own else "base"
        return _ChannelBase(base_generator(base, self._base_seed, at, path), self._gain, self._normals, self._row)

    def _new_part(self, i: int, inj, at: int) -> InjectorPart:
        cls = InjectorPart if i in self._targets else _MutedPart
        return cls(self.seed, i, inj, self._clock, at)


@dataclass
class ChannelBlock(CompositeBlock):
    """A :class:`~wsgen.engine.composite.CompositeBlock` of k channels:
    ``values`` float64 and ``labels`` bool of shape (samples, k), columns in
    the order of ``channels``; each event has ``channels`` (names)."""

    channels: tuple[str, ...] = ()


class ChannelComposite(Composite):
    """A running composition with channels (module doc). Same arguments and
    errors as :class:`~wsgen.engine.composite.Composite`; ``take(m)``
    gives a :class:`ChannelBlock`."""

    name = "composite"
    Params = ChannelSpec
    anomalous = True

    def __init__(self, spec: Mapping[str, Any] | ChannelSpec, seed: int | None = None, start_seq: int = 0) -> None:
        self.params: ChannelSpec = validate_channel_spec(spec)   # type: ignore[assignment]
        self.seed: int = composition_seed(seed, start_seq)
        self.seq = 0
        p = self.params
        self.channels: tuple[str, ...] = tuple(p.channels)
        k = len(self.channels)
        normals, rows = self._noise_rows(p)
        self._channels = [_Channel(p, c, self.seed, normals, rows[c]) for c in range(k)]
        self._slot_channels = [list(a["channels"]) for a in p.anomalies]
        if start_seq:
            self.seek(int(start_seq), SEEK_BUDGET_S)
        self.prime()

    def prime(self) -> None:
        for ch in self._channels:
            ch.prime()

    def take(self, m: int) -> ChannelBlock:
        """Produce slots ``seq .. seq+m-1`` (m >= 0) of every channel."""
        if m < 0:
            raise ValueError(f"m must be >= 0, got {m}")
        n = self.seq
        blocks = [ch.take(m) for ch in self._channels]
        first = blocks[0]
        d, k = len(first.values), len(blocks)
        values, labels = np.empty((d, k)), np.empty((d, k), bool)
        for c, b in enumerate(blocks):
            values[:, c] = b.values
            labels[:, c] = b.labels
        everyone = list(self.channels)
        events = [{**e, "channels": self._slot_channels[e["id"] % 32] if e["id"] % 32 < len(self._slot_channels)
                   else everyone} for e in first.events]
        self.seq = n + m
        return ChannelBlock(n, values, labels, events=events, seqs=first.seqs, offsets=first.offsets, span=m,
                            channels=self.channels)

    def seek(self, n: int, budget_s: float | None = None) -> None:
        """Move every channel to slot ``n`` (``Composite.seek``; the budget is shared)."""
        if n < self.seq:
            raise ValueError(f"can only seek forward: seq is {self.seq}, asked for {n}")
        share = None if budget_s is None else budget_s / len(self._channels)
        for ch in self._channels:
            ch.seek(n, share)
        self.seq = n

    def update(self, changes: Mapping[str, Any]) -> ChannelSpec:   # type: ignore[override]
        """Apply a partial spec from sample ``seq`` (rules in the module doc);
        returns the full new spec; on error (:class:`InvalidParams`) nothing
        changes."""
        if not isinstance(changes, Mapping):
            raise InvalidParams([{"field": "params", "value": _jsonable(changes),
                                  "message": "must be an object of spec fields to values"}])
        if "channels" in changes:
            try:
                same = expand_channels(changes["channels"]) == list(self.channels)
            except ValueError:
                same = False
            if not same:
                raise InvalidParams([{"field": "channels", "value": _jsonable(changes["channels"]),
                                      "message": f"the channels of a stream stay {', '.join(self.channels)}: "
                                                 "subscribe again for others"}])
        new = validate_channel_spec(merge_changes(self.params.model_dump(), changes))
        normals, rows = self._noise_rows(new)
        for ch, row in zip(self._channels, rows):
            ch.update_channel(new, normals, row)
        self.params = new
        self._slot_channels = [list(a["channels"]) for a in new.anomalies]
        return new

    def _noise_rows(self, p: ChannelSpec) -> tuple[_Normals | None, list]:
        """The normals and each channel's row ``std_dev_c * L[c]`` (None without noise)."""
        k = len(p.channels)
        if p.noise is None:
            return None, [None] * k
        key = default_key(p.noise.stream, NOISE_KEY)
        old = getattr(self, "_normals", None)
        normals = old if old is not None and old.key == key else _Normals(self.seed, key, k)
        self._normals = normals
        if isinstance(p.noise, ChannelUniformNoise):
            return normals, [_UniformRow(c, float(lo), float(hi) - float(lo))
                             for c, (lo, hi) in enumerate(zip(p.noise.low, p.noise.high))]
        corr = np.eye(k) if p.noise.correlation is None else np.array(p.noise.correlation, dtype=np.float64)
        chol = np.linalg.cholesky(corr)
        return normals, [chol[c] * p.noise.std_dev[c] for c in range(k)]
