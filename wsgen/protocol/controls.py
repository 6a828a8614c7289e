"""Stream controls on each transport: one table, so that they mean the same
everywhere or say why not.

A *stream control* is an option of a stream that is not a generator
parameter: ``seed``, ``speed``, ``count``, ``duration``, ``start_seq``
(both transports, same meaning: HTTP query parameters, WebSocket
``subscribe`` fields and URL options); ``format`` (HTTP only: the line
format of a response); ``backpressure``, ``encoding``, ``batch`` (WebSocket
only: how one connection's messages are sent). :data:`CONTROLS` says, for
each, its name on each transport (``None``: not there) and, where one lacks
it, why; the ``generators`` reply carries it as ``controls`` and the errors
for a control given on the wrong transport quote its ``why``.

:class:`StreamControls` is the one model of the controls both transports
share (their types, bounds and defaults: the limits live here and nowhere
else); the WebSocket ``subscribe`` message extends it
(:class:`wsgen.protocol.messages.Subscribe`), and :class:`HttpStreamControls`
adds the HTTP-only ``format`` (and the ``token`` of the auth layer). The HTTP
query parser reads the text of a query with :func:`controls_from_text`, and
the OpenAPI query parameters of the HTTP stream routes are generated from the
same model (:func:`openapi_parameters`).
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Mapping

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo,
                      WithJsonSchema, field_validator)

from wsgen.engine.base import SEED_LIMIT, SEED_RULE
from wsgen.protocol import lines

#: Largest ``start_seq`` and ``count`` (and any sequence number a client
#: gives): the integers JavaScript holds exactly.
MAX_SEQ = 2**53
#: Longest ``duration`` of a stream, in seconds of stream time (about 31 years).
MAX_DURATION_S = 1e9
#: The largest numeric delivery speed-up (``speed``; ``"max"`` is beyond it), on every transport.
MAX_SPEED_FACTOR = 1e6
SPEED_RULE = 'must be a number in (0, 1e6] or "max"'
_INT_TEXT = re.compile(r"\+?[0-9]{1,20}")


def _speed(value: Any) -> float:
    if value == "max":
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= MAX_SPEED_FACTOR):
        raise ValueError(f"speed {SPEED_RULE}")
    return float(value)


def speed_from_text(text: str) -> float:
    """The speed-up written as text (an HTTP query, a command line):
    ``max`` (any case) is ``inf``, else a number in (0, 1e6].

    Raises ValueError (``speed must be ...``) otherwise; the same rule as
    the ``speed`` field of ``subscribe``.
    """
    text = text.strip()
    if text.lower() == "max":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"speed {SPEED_RULE}") from None
    return _speed(value)


def seed_from_text(text: str) -> int:
    """A seed written as text (decimal digits, an optional ``+``): an
    integer in [0, 2**64). Raises ValueError (``seed must be ...``)
    otherwise; the same rule as ``Seed`` (:func:`wsgen.engine.base.check_seed`)."""
    if not _INT_TEXT.fullmatch(text.strip()) or int(text) >= SEED_LIMIT:
        raise ValueError(f"seed {SEED_RULE}")
    return int(text)


def int_from_text(text: str) -> int:
    """Decimal digits (an optional ``+``) as an integer; ValueError otherwise."""
    if not _INT_TEXT.fullmatch(text.strip()):
        raise ValueError("not an integer")
    return int(text)


def _float_from_text(text: str) -> float:
    """A finite number; ValueError otherwise."""
    x = float(text)
    if not math.isfinite(x):
        raise ValueError("not finite")
    return x


#: Delivery speed-up factor: a number in (0, 1e6], or "max" (held as inf).
Speed = Annotated[float, BeforeValidator(_speed), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SPEED_FACTOR},
               {"type": "string", "enum": ["max"]}]})]
def _seed_range(value: int) -> int:
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(SEED_RULE)      # the words of check_seed and of the HTTP query, on every transport
    return value


Seed = Annotated[int, AfterValidator(_seed_range), WithJsonSchema(
    {"type": "integer", "minimum": 0, "exclusiveMaximum": SEED_LIMIT,
     "description": "Seed of the random streams, in [0, 2**64)"})]
#: A sequence number (sample index) a client gives.
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


class StreamControls(BaseModel):
    """The stream controls both transports share: what a stream delivers
    and when, as opposed to the generator's parameters. Defaults: a drawn
    seed, sample 0, speed 1, endless."""

    model_config = ConfigDict(extra="forbid")

    seed: Seed | None = Field(
        None, description="Seed of the random streams, in [0, 2**64). Omitted: one is drawn and returned (HTTP: "
                          "in the X-Wsgen-Seed response header). Same name, parameters and seed: same values, "
                          "over HTTP and WebSocket.")
    start_seq: Seq = Field(0, description="Index of the first sample (resume a seeded stream where it stopped). "
                                          "HTTP with format=sse: a Last-Event-ID request header resumes after "
                                          "that id.")
    speed: Speed = Field(1.0, description="Delivery speed-up: a number in (0, 1e6], or `max` (as fast as the "
                                          "client reads). Timestamps and anomaly placement do not change.")
    count: Annotated[int, Field(ge=1, le=MAX_SEQ)] | None = Field(
        None, description="End the stream after this many samples (slots for a composition). Default: endless; "
                          "set it when trying a stream out on the docs page.")
    duration: Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)] | None = Field(
        None, description="End the stream before the first sample whose stream time is this many seconds after "
                          "the first sample's (stream seconds; at speed 1 also seconds of delivery). Default: "
                          "endless.")

    @field_validator("count")
    @classmethod
    def _last_seq_fits(cls, count: int | None, info: ValidationInfo) -> int | None:
        """Every seq the stream reports (up to ``start_seq + count``, the
        ``ended`` message's next seq) is at most :data:`MAX_SEQ` (the
        integers JavaScript holds exactly)."""
        start = info.data.get("start_seq", 0)
        if count is not None and start + count > MAX_SEQ:
            room = f"count must be at most {MAX_SEQ - start}" if start < MAX_SEQ else "no count fits"
            raise ValueError(f"start_seq + count must be at most 2**53 (the seq after the last sample): "
                             f"with start_seq {start}, {room}")
        return count


class HttpStreamControls(StreamControls):
    """:class:`StreamControls` plus those of an HTTP response."""

    format: Literal[tuple(lines.FORMATS)] = Field(  # type: ignore[valid-type]
        "text", description="`text`: one value per line, 3 decimals (the original format). `ndjson`: one JSON "
                            "object per line {seq, t, value[, label]}. `csv`: header `seq,t,value[,label]` then "
                            "rows. `sse`: Server-Sent Events (`id: seq`, `data: <json>`).")
    token: str | None = Field(None, description="Bearer token, for clients that cannot send an Authorization "
                                                "header (checked by the auth layer).")


def _meaning(name: str) -> str:
    """The first sentence of a control's description in the model."""
    text = HttpStreamControls.model_fields[name].description or ""
    return text.split(". ")[0].rstrip(".")


#: control -> {"http": name or None, "ws": name or None, "meaning": ..., "why": why one transport lacks it}
CONTROLS: dict[str, dict[str, Any]] = {
    **{name: {"http": name, "ws": name, "meaning": _meaning(name)} for name in StreamControls.model_fields},
    "format": {"http": "format", "ws": None, "meaning": "line format: " + ", ".join(lines.FORMATS),
               "why": "format is an HTTP control (text, ndjson, csv, sse lines); a WebSocket carries JSON "
                      "data messages, or binary frames with encoding=binary"},
    "backpressure": {"http": None, "ws": "backpressure", "meaning": "block or drop when the client reads slowly",
                     "why": "backpressure is a WebSocket option: an HTTP stream is always sent at the pace "
                            "its client reads (block)"},
    "encoding": {"http": None, "ws": "encoding", "meaning": "json or binary data messages",
                 "why": "encoding is a WebSocket option: over HTTP choose the line format with format"},
    "batch": {"http": None, "ws": "batch", "meaning": "share frames with the connection's other streams",
              "why": "batch is a WebSocket option: an HTTP response carries one stream"},
}


#: What each control accepts, as the error message of a bad value in text
#: (an HTTP query); from the limits above.
TEXT_RULES: dict[str, str] = {
    "seed": SEED_RULE,
    "speed": SPEED_RULE,
    "count": "must be an integer in [1, 2**53] (samples), with start_seq + count <= 2**53",
    "duration": f"must be a number of seconds in (0, {MAX_DURATION_S:g}]",
    "start_seq": "must be an integer in [0, 2**53]",
    "format": "must be one of: " + ", ".join(lines.FORMATS),
    "token": "must be text",
}
def _speed_value(text: str) -> float | str:
    speed = speed_from_text(text)
    return "max" if math.isinf(speed) else speed     # as the model takes it


#: How each control's text becomes its value (then validated by the model).
_FROM_TEXT = {"seed": seed_from_text, "speed": _speed_value, "count": int_from_text,
              "start_seq": int_from_text, "duration": _float_from_text, "format": str, "token": str}
assert set(_FROM_TEXT) == set(HttpStreamControls.model_fields) == set(TEXT_RULES)
assert MAX_SEQ == 2**53   # (the rules' text)


def controls_from_text(given: Mapping[str, str], fields: Mapping[str, str] | None = None
                       ) -> tuple[HttpStreamControls, list[dict[str, Any]]]:
    """The controls ``given`` as text (control -> text) and a detail
    ``{field, value, message}`` for each one refused (``field``: its name
    in ``fields``, control -> query name, when given); refused controls
    keep their defaults."""
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, text in given.items():
        try:
            values[name] = _FROM_TEXT[name](text)
        except ValueError:
            errors.append({"field": (fields or {}).get(name, name), "value": text, "message": TEXT_RULES[name]})
    try:
        return HttpStreamControls.model_validate(values), errors
    except ValidationError as exc:
        # a rule between controls (count with start_seq) says what fits; the others, their text rule
        bad = {str(e["loc"][0]): str(e["ctx"]["error"]) if e["type"] == "value_error" and e["loc"][0] == "count"
               else None for e in exc.errors(include_url=False)}
    errors += [{"field": (fields or {}).get(n, n), "value": given[n], "message": bad[n] or TEXT_RULES[n]}
               for n in sorted(bad)]
    return HttpStreamControls.model_validate({k: v for k, v in values.items() if k not in bad}), errors


def openapi_parameters(names: Mapping[str, str] | None = None, descriptions: Mapping[str, str] | None = None,
                       model: type[BaseModel] = HttpStreamControls) -> list[dict[str, Any]]:
    """OpenAPI query parameters of the controls of ``model`` (all of them,
    or the controls of ``names``, control -> query name), from its JSON
    Schema: each field's bounds, default and description (``descriptions``
    replaces some)."""
    props = model.model_json_schema()["properties"]
    out = []
    for control, query in (names or {c: c for c in props}).items():
        prop = dict(props[control])
        description = prop.pop("description", None)
        prop.pop("title", None)
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:     # optional: the query leaves it out
            rest = [dict(o) for o in options if o != {"type": "null"}]
            inner = rest[0].pop("description", None) if len(rest) == 1 else None
            description = description or inner
            del prop["anyOf"]
            prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
            if "default" in prop and prop["default"] is None:
                del prop["default"]
        description = (descriptions or {}).get(control, description or "")
        if query != control:
            description += f" (Named {query} here: {control} is the generator's own parameter.)"
        out.append({"name": query, "in": "query", "required": False, "description": description, "schema": prop})
    return out

def why_not(control: str, transport: str) -> str | None:
    """Why ``control`` is not available on ``transport`` (``"http"`` or
    ``"ws"``); ``None`` when it is, or is no control at all."""
    entry = CONTROLS.get(control)
    if entry is None or entry.get(transport) is not None:
        return None
    return entry["why"]
