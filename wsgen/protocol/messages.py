"""Protocol v1 messages: the wire contract (see docs/protocol.md).

Client messages are validated as one pydantic tagged union on ``type``.
Server messages are built by the small functions below, so every reply has
one shape in one place. Nothing here does I/O.
"""
from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError,
                      model_validator)
from wsgen.protocol.controls import MAX_SEQ, Seq, Speed, StreamControls
# the text rules of seed and speed, also read from here (wsgen.cli.subscriber)
from wsgen.protocol.controls import Seed, seed_from_text, speed_from_text  # noqa: F401
from wsgen.engine.params import brief_value, error_details, summary
from wsgen.errors import WsgenError

PROTOCOL_VERSION = 1

#: Stable error codes (docs/protocol.md, "Error codes").
INVALID_JSON = "invalid_json"
INVALID_MESSAGE = "invalid_message"
UNKNOWN_TYPE = "unknown_type"
UNKNOWN_GENERATOR = "unknown_generator"
INVALID_PARAMS = "invalid_params"
UNKNOWN_ID = "unknown_id"
DUPLICATE_ID = "duplicate_id"
LIMIT_REACHED = "limit_reached"
OUT_OF_RANGE = "out_of_range"
INTERNAL_ERROR = "internal_error"
ERROR_CODES = (INVALID_JSON, INVALID_MESSAGE, UNKNOWN_TYPE, UNKNOWN_GENERATOR, INVALID_PARAMS,
               UNKNOWN_ID, DUPLICATE_ID, LIMIT_REACHED, OUT_OF_RANGE, INTERNAL_ERROR)
#: Codes of named streams' operations (wsgen.streams.session; docs/protocol.md, "Named streams").
NAMED_ERROR_CODES = ("unknown_stream", "forbidden", "too_late", "not_supported", "control_plane_unavailable")

SubscriptionId = Annotated[str, Field(min_length=1, max_length=128, description="The client's name for the subscription")]
StreamName = Annotated[str, Field(min_length=1, max_length=128, description="A named stream, e.g. plant/boiler-3/temperature")]


def _generator(value: Any) -> str | dict:
    if isinstance(value, str) and len(value) <= 64:
        return value
    if isinstance(value, dict):
        return value
    raise ValueError("generator must be a registry name (a string of at most 64 characters) "
                     "or a composition object")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _window(value: Any) -> str | int:
    if isinstance(value, str) and value in ("nab", "events"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SEQ:
        return value
    raise ValueError("window must be \"nab\", \"events\" or a length in samples (an integer in [1, 2**53])")


def _score_option(value: Any) -> Any:
    """``score``: ``true`` means the default options, ``false`` none."""
    return {} if value is True else None if value is False else value


class ScoreOptions(_Message):
    """How a scored subscription scores its client's detections (wsgen/scoring/live.py, wsgen/scoring/figures.py)."""

    window: Annotated[Any, BeforeValidator(_window)] = Field(
        "nab", description="window rule: \"nab\" (NAB's, over the samples sent so far), \"events\" (each "
                           "event's own samples) or a fixed length in samples centred on each event")
    probation: Annotated[float, Field(ge=0, lt=1)] = Field(0.15, description="NAB's probationary fraction")
    threshold: FiniteFloat = Field(0.5, description="a detect with a score is an alarm when score >= threshold")


class Subscribe(_Message, StreamControls):
    """Start a subscription: the stream controls (:class:`~wsgen.protocol.controls.StreamControls`:
    seed, start_seq, speed, count, duration) and the WebSocket's own fields."""

    type: Literal["subscribe"]
    id: SubscriptionId | None = None
    generator: Annotated[Any, BeforeValidator(_generator)] = Field(
        None, description="A registry name, or a composition object (base, noise, anomalies, faults); "
                          "omitted for a named stream (stream)")
    stream: StreamName | None = Field(None, description="A named stream, shared by every subscriber "
                                                        "(wsgen.streams.session); instead of generator")
    params: dict[str, Any] = Field(default_factory=dict)
    backpressure: Literal["block", "drop"] = "block"
    max_lag: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = Field(
        None, description="backpressure drop only: seconds; samples that would arrive later than this behind "
                          "their due time are skipped (default 1)")
    encoding: Literal["json", "binary"] = "json"
    batch: bool = Field(False, description="deliver this subscription's data inside `batch` messages "
                                           "shared with the connection's other batched subscriptions")
    score: Annotated[ScoreOptions | None, BeforeValidator(_score_option)] = Field(
        None, description="score the client's detections against the stream's truth: true, or options "
                          "(labelled streams; docs/protocol.md)")


class Update(_Message):
    """Change some parameters of a running subscription."""

    type: Literal["update"]
    id: SubscriptionId
    params: dict[str, Any] = Field(default_factory=dict)
    speed: Speed | None = None
    stream: StreamName | None = Field(None, description="A named stream to change (operator; with admin_token)")
    admin_token: str | None = Field(None, max_length=1024, description="The operator token (named streams)")
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)] | None = Field(
        None, description="Named streams: the seq to apply from (default: one safety margin from now)")


class Inject(_Message):
    """Lay an anomaly over a named stream from a seq, for a duration (operator)."""

    type: Literal["inject"]
    id: SubscriptionId | None = None
    stream: StreamName | None = None
    anomaly: dict[str, Any] = Field(description="An injector of docs/compositions.md without placement "
                                                "and lengths, e.g. {\"kind\": \"level-shift\", \"height\": 5}")
    duration: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="Seconds of stream time the anomaly lasts (default: one sample)")
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)] | None = None
    admin_token: str | None = Field(None, max_length=1024)


class Pause(_Message):
    type: Literal["pause"]
    id: SubscriptionId


class Resume(_Message):
    type: Literal["resume"]
    id: SubscriptionId


class Unsubscribe(_Message):
    type: Literal["unsubscribe"]
    id: SubscriptionId


class ListGenerators(_Message):
    type: Literal["list"]



class Detect(_Message):
    """Alarms of the client's detector on a scored subscription: ``seq`` (with an
    optional ``score``) or ``seqs`` (with optional ``scores``, one each)."""

    type: Literal["detect"]
    id: SubscriptionId
    seq: Seq | None = None
    seqs: Annotated[list[Seq], Field(max_length=10_000)] | None = None
    score: FiniteFloat | None = None
    scores: Annotated[list[FiniteFloat], Field(max_length=10_000)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> "Detect":
        if (self.seq is None) == (self.seqs is None):
            raise ValueError("give either seq (one alarm) or seqs (a list of alarms)")
        if self.seq is None and self.score is not None:
            raise ValueError("score goes with seq; with seqs give scores (one per seq)")
        if self.seqs is None and self.scores is not None:
            raise ValueError("scores go with seqs; with seq give score")
        if self.scores is not None and len(self.scores) != len(self.seqs):
            raise ValueError(f"{len(self.scores)} scores for {len(self.seqs)} seqs: give one score per seq")
        return self


class Watch(_Message):
    """Watch another connection's scored subscription, read-only, by its watch token."""

    type: Literal["watch"]
    id: SubscriptionId = Field(description="This connection's name for the watch")
    token: str = Field(min_length=1, max_length=128, description="The watch token of the scored subscription "
                                                                 "(its subscribed reply's score.watch)")


class Unwatch(_Message):
    type: Literal["unwatch"]
    id: SubscriptionId


class ScoreRequest(_Message):
    """Ask for a scored subscription's figures so far (up to ``last``, when given)."""

    type: Literal["score"]
    id: SubscriptionId
    last: Seq | None = Field(None, description="score the samples up to this seq only (default: up to the "
                                               "last one sent)")


ClientMessage = Annotated[Union[Subscribe, Update, Pause, Resume, Unsubscribe, ListGenerators, Inject, Detect,
                                ScoreRequest, Watch, Unwatch],
                          Field(discriminator="type")]
CLIENT_TYPES = ("subscribe", "update", "pause", "resume", "unsubscribe", "list", "inject", "detect", "score", "watch", "unwatch")
_adapter: TypeAdapter = TypeAdapter(ClientMessage)


class ProtocolError(WsgenError):
    """A message that cannot be acted on; becomes an ``error`` reply."""

    def __init__(self, code: str, message: str, id: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.id, self.details = code, message, id, details

    def to_message(self) -> dict[str, Any]:
        return error(self.code, self.message, self.id, self.details)


def _path(loc: tuple) -> list:
    """An error location without the union's tag (a field may share a type's name: score)."""
    return list(loc[1:] if loc and loc[0] in CLIENT_TYPES else loc)


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    """At most 20 details of an invalid client message (:func:`~wsgen.engine.params.error_details`)."""
    return error_details(exc, "message", path=_path, value=brief_value, limit=20)


def parse_client_message(data: str | bytes) -> Subscribe | Update | Pause | Resume | Unsubscribe | ListGenerators:
    """Validate one client message (JSON text).

    Raises:
        ProtocolError: ``invalid_json`` (not JSON, or not an object),
            ``unknown_type`` (missing or unknown ``type``),
            ``invalid_message`` (fields of the wrong type or unknown).
    """
    try:
        return _adapter.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        kinds = {e["type"] for e in errors}
        # Tag errors first: they too have an empty ``loc``, but the message
        # was an object, so they are unknown_type, not invalid_json.
        if kinds & {"union_tag_not_found", "union_tag_invalid"}:
            given = errors[0].get("input", {})
            tag = given.get("type") if isinstance(given, dict) else None
            msg_id = given.get("id") if isinstance(given, dict) and isinstance(given.get("id"), str) else None
            what = "missing \"type\"" if tag is None else f"unknown type {repr(tag)[:80]}"
            raise ProtocolError(UNKNOWN_TYPE, f"{what}; allowed: {', '.join(CLIENT_TYPES)}",
                                msg_id if msg_id is None or len(msg_id) <= 128 else None) from None
        if kinds & {"json_invalid", "json_type"} or (len(errors) == 1 and not errors[0]["loc"]):
            detail = errors[0]["msg"]
            raise ProtocolError(INVALID_JSON, f"message is not a JSON object ({detail}); "
                                "send one JSON object with a \"type\" field per message") from None
        raise invalid_message(exc, "invalid message", _id_of(data)) from None


def invalid_message(exc: ValidationError, what: str, id: str | None = None) -> ProtocolError:
    """An ``invalid_message`` error from a pydantic error: ``what: field:
    message; ...`` with the details (:func:`_details`)."""
    details = _details(exc)
    return ProtocolError(INVALID_MESSAGE, f"{what}: {summary(details)}", id, details)


def subscribe_from_url(message: dict[str, Any]) -> Subscribe:
    """The ``subscribe`` a WebSocket URL's options make (``message``).
    Raises :class:`ProtocolError` ``invalid_message`` naming each bad option."""
    try:
        return Subscribe.model_validate(message)
    except ValidationError as exc:
        raise invalid_message(exc, "invalid subscription options in the URL", message.get("id")) from None


def _id_of(data: str | bytes) -> str | None:
    """Best-effort ``id`` of an invalid message, so its error can name it."""
    try:
        obj = json.loads(data)
    except Exception:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and len(value) <= 128 else None


# -- server messages ---------------------------------------------------------

def error(code: str, message: str, id: str | None = None,
          details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "error", "id": id, "code": code, "message": message}
    if details:
        msg["details"] = [{**d, "value": _wire_value(d.get("value"))} for d in details]
    return msg


def _wire_value(value: Any) -> Any:
    """A detail's offending value as JSON can carry it: integers beyond
    64 bits (which orjson refuses) and non-finite floats become text."""
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**64:
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def subscribed(id: str, generator: str, params: dict, seed: int, seq: int, speed: float | str,
               backpressure: str, encoding: str, interval: float, batch: bool = False,
               max_lag: float | None = None) -> dict[str, Any]:
    msg = {"type": "subscribed", "id": id, "generator": generator, "params": params, "seed": seed,
           "seq": seq, "speed": speed, "backpressure": backpressure, "encoding": encoding,
           "interval": interval, "batch": batch}
    if max_lag is not None:             # backpressure "drop"
        msg["max_lag"] = max_lag
    return msg


def batch(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Several ``data`` messages (of batched subscriptions) in one frame."""
    return {"type": "batch", "messages": messages}


def updated(id: str, seq: int, params: dict, speed: float | str) -> dict[str, Any]:
    return {"type": "updated", "id": id, "seq": seq, "params": params, "speed": speed}


def state_change(kind: str, id: str, seq: int, score: dict[str, Any] | None = None) -> dict[str, Any]:
    """``paused``, ``resumed`` or ``unsubscribed`` (with the figures of a scored subscription)."""
    msg = {"type": kind, "id": id, "seq": seq}
    if score is not None:
        msg["score"] = score
    return msg


def detected(id: str, added: int, alarms: int) -> dict[str, Any]:
    """Reply to ``detect``: the alarms it added (new distinct seqs at or above the
    threshold), and the subscription's distinct alarms so far."""
    return {"type": "detected", "id": id, "added": added, "alarms": alarms}


def score(id: str, figures: dict[str, Any], ended: bool = False) -> dict[str, Any]:
    """A scored subscription's figures (wsgen.scoring.live.LiveScore.figures): the reply to
    ``score``, or, with ``ended``, sent when its ``count`` or ``duration`` is reached."""
    return {"type": "score", "id": id, "ended": ended, **figures}


def ended(id: str, seq: int, reason: str) -> dict[str, Any]:
    """A subscription ended by its ``count`` or ``duration`` (``reason``);
    ``seq`` is the first sample not sent. The id is free again."""
    return {"type": "ended", "id": id, "seq": seq, "reason": reason}


def generators(catalogue: list[dict[str, Any]], composition: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = {"type": "generators", "protocol": PROTOCOL_VERSION, "generators": catalogue}
    if composition is not None:
        msg["composition"] = composition
    return msg


def speed_to_wire(speed: float | str) -> float | str:
    """A speed as the wire carries it: ``"max"`` for ``inf`` (or ``"max"``), else the number."""
    return "max" if speed == "max" or (isinstance(speed, float) and math.isinf(speed)) else speed
