"""Shared named streams: definitions, wall-clock anchoring, the update log.

A **named stream** (``plant/boiler-3/temperature``) is one signal that every
subscriber sees identically, on every server process:

* **Definition** (:class:`StreamDef`): a name, a generator (registry name or
  composition) with its params, a seed (default: derived from the name), an
  interval in seconds, an ``epoch`` (Unix seconds, default 0) and how many
  past samples are kept for backfill (``history``).
* **Anchoring**: sample ``n`` is due at ``epoch + n * interval`` (wall
  clock) and stamped with that time; ``seq`` on the wire is ``n``. A
  subscriber joining at ``T`` starts at the sample due at ``T``
  (``ceil((T - epoch) / interval)``), or earlier with ``start_seq`` as far
  back as the history reaches.
* **Values**: generator sample ``k`` is stream sample ``origin + k``, where
  ``origin`` is fixed when the definition enters the log (the sample due
  then). Values are a pure function of the definition, ``origin`` and the
  ordered updates: every process that applies the same log computes the same
  ``(seq, value)`` pairs, whatever its start time (a late process seeks,
  which gives the same values as taking, see
  :mod:`wsgen.engine.base`).
* **Updates** are log entries applied at an **effective seq**: the process
  receiving an operator's request picks the sample due one safety margin
  from now (``update_margin_s``, default 0.25 s of stream time); applying the
  log, an entry's seq becomes ``max(requested, previous update's seq)``, so
  every process applies it at the same sample. A process that reads an
  entry after generating past its seq (the log arrived later than the
  margin) rebuilds the stream from the log: later samples are right again,
  and ``wsgen_named_late_updates`` counts it.

Waveform and distribution streams run as a composition whose base is that
kind (same values), so that ``inject`` can lay an anomaly over them; their
``update`` params are the base's. Compositions with ``faults`` are refused:
faults are about one delivery, not the shared signal.

Log entries (JSON objects, the same in the embedded log and in Redis)::

    {"op": "define", "name": N, "def": {...}, "origin": seq}
    {"op": "delete", "name": N}
    {"op": "update", "name": N, "seq": s, "params": {...}}
    {"op": "inject", "name": N, "seq": s, "anomaly": {...}, "length": samples}

Nothing here does I/O; :mod:`wsgen.streams.controlplane` carries the log.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
import weakref
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wsgen.engine import Block, Generator, InvalidParams, UnknownGenerator, create, get_spec
from wsgen.engine.composite import CompositeBlock, create_composite, merge_changes, validate_spec
from wsgen.engine.params import summary, validate_params
from wsgen.engine.pacing import Pacer
from wsgen.errors import WsgenError

log = logging.getLogger("wsgen.streams.named")

NAME_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
#: Most samples a stream keeps for ``start_seq`` backfill.
MAX_HISTORY = 100_000
DEFAULT_HISTORY = 1000
DEFAULT_MARGIN_S = 0.25
#: How far ahead of now (seconds of stream time) an operator's change may be
#: set with ``seq``: changes apply in order, so one set years ahead would
#: hold back every later change of the stream.
MAX_CHANGE_AHEAD_S = 86_400.0
#: Longest ``inject`` window, in samples.
MAX_INJECT_SAMPLES = 10_000_000

#: Error codes of named-stream operations (also protocol error codes).
UNKNOWN_STREAM = "unknown_stream"
STREAM_EXISTS = "stream_exists"
FORBIDDEN = "forbidden"
TOO_LATE = "too_late"
CONTROL_PLANE_UNAVAILABLE = "control_plane_unavailable"
INVALID_PARAMS = "invalid_params"
NOT_SUPPORTED = "not_supported"

_HTTP_STATUS = {UNKNOWN_STREAM: 404, STREAM_EXISTS: 409, FORBIDDEN: 403, TOO_LATE: 409,
                CONTROL_PLANE_UNAVAILABLE: 503, INVALID_PARAMS: 422, NOT_SUPPORTED: 422}


class NamedError(WsgenError):
    """A refused named-stream operation: ``code`` (one of the constants
    above), a message saying what was wrong and what is allowed, and
    optional ``details`` (``{"field", "value", "message"}``)."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    @property
    def status(self) -> int:
        """The HTTP status that answers it."""
        return _HTTP_STATUS.get(self.code, 400)


class StreamDef(BaseModel):
    """A named stream's definition (what a scenario file lists).

    Attributes:
        name: ``segment/segment/...`` of letters, digits, ``_``, ``.``, ``-``.
        generator: a registry name (``sine``) or a composition object.
        params: the registry kind's parameters (not for a composition),
            without its interval field.
        seed: integer in [0, 2**64); default derived from the name (SHA-256).
        interval: seconds between samples, in (0, 86400].
        epoch: Unix time (s) of sample 0.
        history: samples kept for ``start_seq`` backfill, in [0, 100000].
        description: free text.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN, min_length=1, max_length=128)
    generator: str | dict[str, Any]
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(None, ge=0, lt=2**64)
    interval: float = Field(gt=0, le=86400, description="Seconds between samples")
    epoch: float = Field(0.0, ge=-1e11, le=1e11, description="Unix time of sample 0")
    history: int = Field(DEFAULT_HISTORY, ge=0, le=MAX_HISTORY)
    description: str = Field("", max_length=1000)

    @property
    def effective_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:6], "big")


def _prefixed(details: list[dict[str, Any]], prefix: str, strip: str = "") -> list[dict[str, Any]]:
    out = []
    for d in details:
        name = str(d.get("field", ""))
        if strip and name.startswith(strip):
            name = name[len(strip):]
        out.append({**d, "field": prefix + name if name else prefix.rstrip(".")})
    return out


#: What each required field of a definition takes (said when it is missing).
REQUIRED = {
    "name": "the stream's name: segments of letters, digits, '_', '.', '-' joined by '/' (such as plant/line1/temp)",
    "generator": "a registry kind (such as sine) or a composition object",
    "interval": "the seconds between samples, a number in (0, 86400]",
}


def _pydantic_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Error details of a definition; a missing field says what it takes
    (pydantic's ``Field required`` would show the whole definition as the
    value)."""
    from wsgen.protocol.messages import _details
    out = _details(exc)
    for d, err in zip(out, exc.errors(include_url=False)):
        if err["type"] == "missing" and d["field"] in REQUIRED:
            d.update(value=None, message=f"missing: give {REQUIRED[d['field']]}")
    return out


def validate_def(data: Mapping[str, Any] | StreamDef) -> StreamDef:
    """A checked definition, its generator built once to validate it.

    Raises:
        InvalidParams: each detail names the field (``interval``,
            ``params.amplitude``, ``generator.base.kind``...), the value
            and what is allowed.
    """
    if isinstance(data, StreamDef):
        d = data
    else:
        try:
            d = StreamDef.model_validate(data)
        except ValidationError as exc:
            details = _pydantic_details(exc)
            raise InvalidParams(details + _params_details(data, details)) from None
    build(d)
    return d


def _params_details(data: Mapping[str, Any], details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The problems of a registry kind's ``params`` in a definition whose
    other fields failed (``details``), so that one pass reports them all;
    none when the kind, the params or the interval (which the params are
    checked with) are among the failures, or for a composition."""
    failed = {str(d.get("field", "")).split(".")[0] for d in details}
    kind, params = data.get("generator"), data.get("params", {})
    if failed & {"generator", "params", "interval"} or not isinstance(kind, str) or not isinstance(params, Mapping):
        return []
    try:
        spec = get_spec(kind)
    except UnknownGenerator:
        return []
    field_name = spec.interval_field
    if field_name in params:
        return [_interval_in_params(field_name, params[field_name])]
    try:
        validate_params(spec.params_model, {**params, field_name: data["interval"]})
    except InvalidParams as exc:
        return _prefixed(exc.details, "params.")
    return []


def _interval_in_params(field_name: str, value: Any) -> dict[str, Any]:
    return {"field": f"params.{field_name}", "value": value,
            "message": "a named stream's interval is its top-level interval; leave it out of params"}


def _wrapped(d: StreamDef) -> bool:
    """Whether a registry-named stream runs as a composition over that kind."""
    return isinstance(d.generator, str) and get_spec(d.generator).family in ("waveform", "distribution")


def _spec_of(d: StreamDef) -> dict[str, Any] | None:
    """The composition a stream runs (None for an anomaly registry kind)."""
    if isinstance(d.generator, dict):
        return {**d.generator, "interval": d.interval}
    if _wrapped(d):
        return {"interval": d.interval, "base": {"kind": d.generator, "params": dict(d.params)}}
    return None


def build(d: StreamDef, start: int = 0) -> Generator:
    """The generator of ``d`` at its sample ``start`` (generator index).

    Raises:
        InvalidParams: fields named from the definition's top (see
            :func:`validate_def`).
    """
    seed = d.effective_seed
    if isinstance(d.generator, dict):
        problems = []
        if "interval" in d.generator:
            problems.append({"field": "generator.interval", "value": d.generator["interval"],
                             "message": "a named stream's interval is its top-level interval; leave it out here"})
        if d.generator.get("faults"):
            problems.append({"field": "generator.faults", "value": "<dict>",
                             "message": "faults are per delivery, not part of a shared signal: leave them out "
                                        "(subscribe privately to a composition for faults)"})
        if d.params:
            problems.append({"field": "params", "value": "<dict>",
                             "message": "a composition carries its parameters in generator; leave params out"})
        if "channels" in d.generator:
            problems.append({"field": "generator.channels", "value": "<list>",
                             "message": "a named stream has one channel (the history is one value per sample): "
                                        "subscribe privately to a composition with channels"})
        if problems:
            raise InvalidParams(problems)
        try:
            return create_composite(_spec_of(d), seed=seed, start_seq=0) if not start else \
                _seek_new(create_composite(_spec_of(d), seed=seed), start)
        except InvalidParams as exc:
            raise InvalidParams(_prefixed(exc.details, "generator.")) from None
    try:
        spec = get_spec(d.generator)
    except UnknownGenerator as exc:
        raise InvalidParams([{"field": "generator", "value": d.generator, "message": str(exc)}]) from None
    field_name = spec.interval_field
    if field_name in d.params:
        raise InvalidParams([_interval_in_params(field_name, d.params[field_name])])
    if _wrapped(d):
        # validate as the kind itself first, so errors name params.<field>
        try:
            validate_params(spec.params_model, {**d.params, field_name: d.interval})
        except InvalidParams as exc:
            raise InvalidParams(_prefixed(exc.details, "params.")) from None
        gen = create_composite(_spec_of(d), seed=seed)
    else:
        try:
            gen = create(d.generator, {**d.params, field_name: d.interval}, seed=seed)
        except InvalidParams as exc:
            raise InvalidParams(_prefixed(exc.details, "params.")) from None
    return _seek_new(gen, start) if start else gen


def _seek_new(gen: Generator, start: int) -> Generator:
    gen.seek(start)
    return gen


@dataclass
class Change:
    """One update or injection, applied from stream sample ``seq``."""

    seq: int
    op: str                        # "update" | "inject"
    payload: dict[str, Any]        # update: params; inject: {"anomaly": {...}, "length": n}

    def describe(self) -> dict[str, Any]:
        return {"op": self.op, "seq": self.seq, **self.payload}


class SharedStream:
    """One named stream in this process: its generator, advanced once per
    wake-up however many subscribers read it, and its recent samples.

    ``advance(upto)`` generates samples up to (not including) stream seq
    ``upto``, applying each change at its seq; ``read(a, b)`` returns the
    kept samples ``a .. b-1`` as a block whose ``seq`` is ``a`` (stream
    numbering).
    """

    def __init__(self, d: StreamDef, origin: int, changes: list[Change] | None = None) -> None:
        self.d = d
        self.name = d.name
        self.origin = origin
        self.interval = d.interval
        self.epoch = d.epoch
        self.cap = d.history
        self.read_max = max(self.cap, 1)   # most samples one read returns
        self.wrapped = _wrapped(d)
        self.composite = isinstance(d.generator, dict) or self.wrapped
        self.kind = "composite" if isinstance(d.generator, dict) else d.generator
        self.changes: list[Change] = list(changes or ())
        self._applied = 0                 # changes[:_applied] are in the generator
        self.gen: Generator | None = None
        self.gen_seq = origin             # next stream seq the generator produces
        self.hist_seq = origin            # first stream seq kept
        self._values = np.empty(0)
        self._labels: np.ndarray | None = None
        self._events: list[dict[str, Any]] = []
        self.late_rebuilds = 0
        self._last: tuple | None = None          # shared_read's cache
        #: subscribers, told of changes and deletion (NamedSubscription)
        self.subscribers: weakref.WeakSet = weakref.WeakSet()
        #: latest parameters after every change in the log (validation of new requests)
        self.latest: dict[str, Any] = self._initial_params()
        self._initial = self.latest
        #: the parameters after each change of ``changes`` (:meth:`params_at`)
        self._after: list[dict[str, Any]] = []
        for c in self.changes:
            self.latest = self._merged(c)
            self._after.append(self.latest)
        # the shared schedule: sample n due at monotonic epoch + n * interval - (wall - mono)
        wall, mono = time.time(), time.monotonic()
        seq0 = max(origin, self.seq_due_at(wall))
        self.pacer = Pacer(self.interval, 1.0, seq0, mono + (self.time_of(seq0) - wall), self.time_of(seq0))

    @property
    def labelled(self) -> bool:
        """Whether samples carry labels (compositions and anomaly kinds)."""
        return self.composite or get_spec(self.d.generator).anomalous

    # -- clock ------------------------------------------------------------------
    def time_of(self, seq: int) -> float:
        """Unix time at which sample ``seq`` is due (and its stamp)."""
        return self.epoch + seq * self.interval

    def times_of(self, seq: int, m: int) -> np.ndarray:
        """:meth:`time_of` of samples ``seq .. seq+m-1``, the same floats (float64, shape ``(m,)``)."""
        return self.epoch + np.arange(seq, seq + m, dtype=np.float64) * self.interval

    def seq_due_at(self, wall: float) -> int:
        """The first sample due at or after Unix time ``wall``."""
        return math.ceil((wall - self.epoch) / self.interval - 1e-9)

    def live_seq(self, wall: float | None = None) -> int:
        """The sample a subscriber joining now starts at (not before ``origin``)."""
        return max(self.origin, self.seq_due_at(time.time() if wall is None else wall))

    # -- parameters ---------------------------------------------------------------
    def _initial_params(self) -> dict[str, Any]:
        spec = _spec_of(self.d)
        if spec is not None:
            return validate_spec(spec).model_dump()
        gen = build(self.d)
        return gen.params.model_dump()

    def _merged(self, c: Change) -> dict[str, Any]:
        """``latest`` after ``c`` (validated; raises InvalidParams)."""
        if c.op == "inject":
            spec = dict(self.latest)
            anomaly = self._anomaly(c)
            spec["anomalies"] = [*spec.get("anomalies", []), anomaly]
            return validate_spec(spec).model_dump()
        if self.composite:
            changes = {"base": {"params": c.payload}} if self.wrapped else c.payload
            return validate_spec(merge_changes(self.latest, changes)).model_dump()
        spec = get_spec(self.d.generator)
        return validate_params(spec.params_model, {**self.latest, **c.payload}).model_dump()

    def params_at(self, seq: int) -> dict[str, Any]:
        """The parameters sample ``seq`` is generated with: those after the
        last change at or before ``seq`` (changes are kept in seq order)."""
        i = bisect_right([c.seq for c in self.changes], seq)
        return self._after[i - 1] if i else self._initial

    def changes_after(self, seq: int) -> list[tuple[Change, dict[str, Any]]]:
        """The changes applying after sample ``seq``, each with the
        parameters after it, in seq order."""
        i = bisect_right([c.seq for c in self.changes], seq)
        return list(zip(self.changes[i:], self._after[i:]))

    def check_change(self, op: str, payload: dict[str, Any]) -> None:
        """Refuse a change that cannot apply (NamedError ``invalid_params`` or
        ``not_supported``), before it goes into the log."""
        if op == "inject" and not self.composite:
            raise NamedError(NOT_SUPPORTED, f"inject needs a stream whose generator is a composition, a waveform "
                             f"or a distribution; {self.name} runs {self.kind}, which places its own anomalies")
        if op == "update":
            interval_field = "interval" if not self.composite or not self.wrapped else \
                get_spec(self.d.generator).interval_field
            names = {"interval", "data_interval", interval_field}
            fixed = sorted(names & set(payload))
            if fixed:
                raise NamedError(INVALID_PARAMS, "a named stream's interval is fixed by its definition (its samples "
                                 "are anchored to the clock); delete and create it again to change it",
                                 [{"field": f"params.{fixed[0]}", "value": payload[fixed[0]],
                                   "message": "cannot change on a named stream"}])
        try:
            self._merged(Change(self.live_seq(), op, payload))
        except InvalidParams as exc:
            prefix = "anomaly." if op == "inject" else "params."
            strip = "anomalies." if op == "inject" else "base.params." if self.wrapped else ""
            details = _prefixed(exc.details, prefix, strip)
            if op == "inject":   # "anomalies.<i>.height" -> "anomaly.height"
                for d in details:
                    parts = d["field"].split(".")
                    if len(parts) > 2 and parts[1].isdigit():
                        d["field"] = ".".join([parts[0], *parts[2:]])
            raise NamedError(INVALID_PARAMS, f"invalid {op}: " + summary(details), details) from None

    def add_change(self, c: Change) -> tuple[Change, bool]:
        """Put a change from the log in place; returns it (with its seq made
        at least the previous change's) and whether it came late (samples
        past its seq were already generated here: the stream is rebuilt)."""
        if self.changes and c.seq < self.changes[-1].seq:
            c.seq = self.changes[-1].seq
        c.seq = max(c.seq, self.origin)
        try:
            self.latest = self._merged(c)
        except InvalidParams as exc:   # validated when requested; kept deterministic anyway
            log.warning("named stream %s: %s at seq %d cannot apply (%s); skipped", self.name, c.op, c.seq, exc)
            return c, False
        self.changes.append(c)
        self._after.append(self.latest)
        late = c.seq < self.gen_seq and self.gen is not None
        if late:
            self.late_rebuilds += 1
            log.warning("named stream %s: %s at seq %d arrived after sample %d was generated here; rebuilding "
                        "(raise --update-margin if this repeats)", self.name, c.op, c.seq, self.gen_seq - 1)
            self._rebuild()
        return c, late

    # -- generation -----------------------------------------------------------------
    def _apply(self, c: Change) -> None:
        gen = self.gen
        if c.op == "update":
            gen.update({"base": {"params": c.payload}} if self.wrapped else c.payload)
        else:
            gen.update({"anomalies": [*gen.params.model_dump()["anomalies"], self._anomaly(c)]})

    def _anomaly(self, c: Change) -> dict[str, Any]:
        anomaly = {**c.payload["anomaly"], "allow_overlap": True,
                   "placement": {"mode": "indices", "indices": [c.seq - self.origin]}}
        if anomaly["kind"] != "spike":
            anomaly["min_length"] = anomaly["max_length"] = c.payload["length"]
        return anomaly

    def _generator(self) -> Generator:
        if self.gen is None:
            self.gen = build(self.d)
            self.gen_seq = self.origin
            self._applied = 0
        return self.gen

    def _apply_due(self) -> None:
        changes = self.changes
        while self._applied < len(changes) and changes[self._applied].seq <= self.gen_seq:
            try:
                self._apply(changes[self._applied])
            except InvalidParams as exc:
                log.warning("named stream %s: change at seq %d failed (%s); skipped", self.name,
                            changes[self._applied].seq, exc)
            self._applied += 1

    def _next_change(self) -> float:
        return self.changes[self._applied].seq if self._applied < len(self.changes) else math.inf

    def _seek(self, target: int) -> None:
        gen = self._generator()
        while self.gen_seq < target:
            self._apply_due()
            stop = min(target, self._next_change())
            gen.seek(stop - self.origin)
            self.gen_seq = stop
        self._apply_due()
        self.hist_seq = self.gen_seq
        self._values = np.empty(0)
        self._labels = None
        self._events = []

    def _rebuild(self) -> None:
        """Recompute from the definition and the changes: the kept samples
        too (those past a late change were wrong)."""
        upto, keep_from = self.gen_seq, self.hist_seq
        self.gen = None
        self._generator()
        self._seek(keep_from)
        self.advance(upto)

    def advance(self, upto: int) -> None:
        """Generate the samples before stream seq ``upto`` (once per process)."""
        if upto <= self.gen_seq:
            return
        gen = self._generator()
        start = upto - max(self.cap, 1)
        if start > self.gen_seq:
            self._seek(start)
        while self.gen_seq < upto:
            self._apply_due()
            m = int(min(upto, self._next_change()) - self.gen_seq)
            block = gen.take(m)
            self._keep(block, m)
            self.gen_seq += m
        self._apply_due()

    def _keep(self, block: Block, m: int) -> None:
        if len(self._values):
            self._values = np.concatenate((self._values, block.values))
        else:
            self._values = block.values.copy()
        if block.labels is not None:
            self._labels = block.labels.copy() if self._labels is None or not len(self._labels) else \
                np.concatenate((self._labels, block.labels))
        events = getattr(block, "events", None)
        if events:
            known = {e["id"] for e in self._events}
            for e in events:
                if e["id"] not in known:
                    self._events.append({**e, "first": e["first"] + self.origin, "last": e["last"] + self.origin})
        cap = max(self.cap, 1)
        excess = len(self._values) - cap
        if excess >= cap or (excess > 0 and len(self._values) > 4096):
            self._values = self._values[excess:]
            if self._labels is not None:
                self._labels = self._labels[excess:]
            self.hist_seq += excess
            self._events = [e for e in self._events if e["last"] >= self.hist_seq]

    @property
    def oldest(self) -> int:
        """The oldest sample ``read`` can return (kept history bound)."""
        return max(self.origin, self.gen_seq - self.cap) if self.cap else self.gen_seq

    def read(self, a: int, b: int) -> Block:
        """Samples ``a .. b-1`` (``oldest <= a <= b``; generated as needed)."""
        self.advance(b)
        i, j = a - self.hist_seq, b - self.hist_seq
        values = self._values[i:j].copy()
        labels = None if self._labels is None else self._labels[i:j].copy()
        if not self.composite:
            return Block(a, values, labels)
        events = [e for e in self._events if e["first"] < b and e["last"] >= a]
        return CompositeBlock(a, values, labels if labels is not None else np.zeros(len(values), bool),
                              events=events, span=b - a)

    def shared_read(self, a: int, b: int) -> tuple[Block, list[dict[str, Any]]]:
        """:meth:`read`, and the ``data`` message's fields for it (``id``
        left for each subscriber), both built once for every subscriber
        reading ``a .. b-1`` in the same wake-up (the last range is cached;
        blocks are read-only by convention)."""
        cached = self._last
        if cached is not None and cached[0] == a and cached[1] == b and cached[2] == len(self.changes):
            return cached[3], cached[4]
        block = self.read(a, b)
        msg: dict[str, Any] = {"type": "data", "id": None, "seq": a, "t": self.time_of(a), "dt": self.interval,
                               "values": block.values.tolist()}
        if block.labels is not None:
            msg["labels"] = block.labels.tolist()
        events = getattr(block, "events", None)
        if events is not None:
            msg["events"] = events
        template = [msg]
        self._last = (a, b, len(self.changes), block, template)
        return block, template

    def describe(self) -> dict[str, Any]:
        """The definition, origin, latest params and changes (for ``GET /streams``)."""
        return {"name": self.name, "definition": self.d.model_dump(), "origin": self.origin,
                "seed": self.d.effective_seed, "interval": self.interval, "epoch": self.epoch,
                "live_seq": self.live_seq(), "oldest_seq": max(self.origin, self.live_seq() - self.cap),
                "params": self.latest, "changes": [c.describe() for c in self.changes],
                "subscribers": len(self.subscribers)}


class NamedStreams:
    """This process's named streams, kept in step with the log.

    ``apply(entry)`` applies one log entry (in log order) and returns what
    it did: ``{"op", "name", "seq"?, "late"?}``. ``request_*`` methods
    check an operator's request and build the entry to append (they do not
    apply it: the control plane appends, then every process applies).

    Args:
        margin_s: safety margin of updates, in seconds of stream time.
        clock: Unix time source (tests).
    """

    def __init__(self, margin_s: float = DEFAULT_MARGIN_S, clock: Callable[[], float] = time.time) -> None:
        self.streams: dict[str, SharedStream] = {}
        self.margin_s = margin_s
        self.clock = clock
        self.late_updates = 0
        self.entries = 0
        #: the control plane that carries the log (:mod:`wsgen.streams.controlplane`; set by it)
        self.plane: Any = None
        self._rids: set[str] = set()   # request ids seen: an append retried by the plane applies once

    # -- applying the log ---------------------------------------------------------
    def apply(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one log entry; unknown or broken entries are logged and skipped."""
        self.entries += 1
        op, name = entry.get("op"), entry.get("name")
        rid = entry.get("rid")
        if rid is not None:
            if rid in self._rids:
                return {"op": op, "name": name, "skipped": "a repeat of an entry already applied"}
            self._rids.add(rid)
        try:
            if op == "define":
                d = validate_def(entry["def"])
                old = self.streams.get(name)
                if old is not None and old.d == d:
                    return {"op": "define", "name": name, "origin": old.origin, "unchanged": True}
                if old is not None:
                    self._drop(old, "redefined")
                self.streams[name] = SharedStream(d, int(entry["origin"]))
                return {"op": "define", "name": name, "origin": int(entry["origin"])}
            if op == "delete":
                old = self.streams.pop(name, None)
                if old is not None:
                    self._drop(old, "deleted")
                return {"op": "delete", "name": name, "existed": old is not None}
            if op in ("update", "inject"):
                stream = self.streams.get(name)
                if stream is None:
                    return {"op": op, "name": name, "skipped": "unknown stream"}
                payload = dict(entry["params"]) if op == "update" else \
                    {"anomaly": dict(entry["anomaly"]), "length": int(entry["length"])}
                change, late = stream.add_change(Change(int(entry["seq"]), op, payload))
                self.late_updates += late
                result = {"op": op, "name": name, "seq": change.seq, "late": late, "params": stream.latest}
                for sub in list(stream.subscribers):
                    sub.changed(change, stream.latest)
                return result
        except (KeyError, TypeError, ValueError, InvalidParams) as exc:
            log.warning("control-plane entry %r skipped: %s", dict(entry), exc)
            return {"op": op, "name": name, "skipped": str(exc)}
        log.warning("control-plane entry with unknown op %r skipped", op)
        return {"op": op, "name": name, "skipped": "unknown op"}

    def _drop(self, stream: SharedStream, why: str) -> None:
        for sub in list(stream.subscribers):
            sub.ended(why)
        stream.subscribers.clear()

    # -- operator requests (checked here, applied through the log) ------------------
    def get(self, name: str) -> SharedStream:
        stream = self.streams.get(name)
        if stream is None:
            known = ", ".join(sorted(self.streams)) or "none"
            raise NamedError(UNKNOWN_STREAM, f"no named stream {name!r}; defined: {known}")
        return stream

    def request_define(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A ``define`` entry for a new stream (``stream_exists`` if taken)."""
        try:
            d = validate_def(data)
        except InvalidParams as exc:
            raise NamedError(INVALID_PARAMS, f"invalid stream definition: {exc}", exc.details) from None
        if d.name in self.streams:
            raise NamedError(STREAM_EXISTS, f"named stream {d.name!r} exists; delete it first to redefine it")
        return self.define_entry(d)

    def define_entry(self, d: StreamDef) -> dict[str, Any]:
        origin = math.ceil((self.clock() - d.epoch) / d.interval - 1e-9)
        return {"op": "define", "name": d.name, "def": d.model_dump(), "origin": origin}

    def request_delete(self, name: str) -> dict[str, Any]:
        self.get(name)
        return {"op": "delete", "name": name}

    def effective_seq(self, stream: SharedStream, seq: int | None = None) -> int:
        """The seq a change requested now applies from: the sample due one
        margin from now; a requested ``seq`` earlier than that is refused
        (``too_late``), a later one is kept."""
        earliest = stream.seq_due_at(self.clock() + self.margin_s)
        if stream.changes:
            earliest = max(earliest, stream.changes[-1].seq)
        if seq is None:
            return earliest
        if seq < earliest:
            raise NamedError(TOO_LATE, f"seq {seq} is too close or past: the earliest seq a change of "
                             f"{stream.name} can apply from on every process is {earliest} (now plus "
                             f"{self.margin_s} s); omit seq, or ask for >= {earliest}",
                             [{"field": "seq", "value": seq, "message": f"must be >= {earliest}"}])
        latest = max(earliest, stream.seq_due_at(self.clock() + MAX_CHANGE_AHEAD_S))
        if seq > latest:
            raise NamedError(INVALID_PARAMS, f"seq {seq} is too far ahead: a change of {stream.name} may be set "
                             f"at most {MAX_CHANGE_AHEAD_S:g} s of stream time from now (seq {latest}), since "
                             "changes apply in order and it would hold back every later one",
                             [{"field": "seq", "value": seq, "message": f"must be <= {latest}"}])
        return seq

    def request_update(self, name: str, params: Mapping[str, Any], seq: int | None = None) -> dict[str, Any]:
        stream = self.get(name)
        if not isinstance(params, Mapping) or not params:
            raise NamedError(INVALID_PARAMS, "update needs params: an object of the parameters to change",
                             [{"field": "params", "value": None, "message": "must be a non-empty object"}])
        stream.check_change("update", dict(params))
        return {"op": "update", "name": name, "seq": self.effective_seq(stream, seq), "params": dict(params)}

    def request_inject(self, name: str, anomaly: Mapping[str, Any], duration_s: float | None = None,
                       seq: int | None = None) -> dict[str, Any]:
        """An ``inject`` entry: ``anomaly`` (an injector of docs/compositions.md,
        without placement and lengths) from the effective seq for
        ``duration_s`` seconds (default one sample)."""
        stream = self.get(name)
        if not isinstance(anomaly, Mapping) or "kind" not in anomaly:
            raise NamedError(INVALID_PARAMS, "inject needs anomaly: an injector object with its kind, e.g. "
                             "{\"kind\": \"level-shift\", \"height\": 5}",
                             [{"field": "anomaly", "value": None, "message": "must be an object with a kind"}])
        fixed = sorted({"placement", "min_length", "max_length", "allow_overlap"} & set(anomaly))
        if fixed:
            raise NamedError(INVALID_PARAMS, "inject places the anomaly itself (from the effective seq for "
                             "duration seconds); leave out " + ", ".join(fixed),
                             [{"field": f"anomaly.{fixed[0]}", "value": anomaly[fixed[0]],
                               "message": "set by inject"}])
        if duration_s is None:
            length = 1
        else:
            if not isinstance(duration_s, (int, float)) or isinstance(duration_s, bool) or \
                    not 0 < duration_s <= MAX_INJECT_SAMPLES * stream.interval:
                raise NamedError(INVALID_PARAMS, f"duration must be a number of seconds in (0, "
                                 f"{MAX_INJECT_SAMPLES * stream.interval:g}]",
                                 [{"field": "duration", "value": duration_s, "message": "out of range"}])
            length = max(1, math.ceil(duration_s / stream.interval - 1e-9))
        payload = {"anomaly": dict(anomaly), "length": length}
        stream.check_change("inject", payload)
        return {"op": "inject", "name": name, "seq": self.effective_seq(stream, seq), "anomaly": dict(anomaly),
                "length": length}

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for _, s in sorted(self.streams.items())]


# -- subscriptions ------------------------------------------------------------------

class _Cursor:
    """What the WebSocket pump and metrics read as a subscription's
    ``generator``: the next seq, a name and the params."""

    __slots__ = ("seq", "name", "stream")

    def __init__(self, stream: SharedStream, seq: int) -> None:
        self.stream, self.seq, self.name = stream, seq, stream.kind

    @property
    def params(self):
        gen = self.stream.gen
        return gen.params if gen is not None else build(self.stream.d).params

    def seek(self, n: int) -> None:
        self.seq = n
