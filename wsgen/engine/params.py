"""Parameter models and their validation.

Each generator kind has one pydantic model; it is the single source of truth
for the WebSocket ``params`` object, the HTTP query string and the JSON
Schema clients build their forms from. Field names and defaults are those of
the original HTTP service.

Rules every model keeps: NaN and infinities are refused; unknown fields are
refused; integer fields refuse fractions (``5.5``); cross-field rules
(``min <= max``, counts that can be met) are checked by :meth:`check`, so a
partial update is validated merged with the current values.
"""
from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError
from wsgen.errors import WsgenError


class InvalidParams(WsgenError, ValueError):
    """Raised when parameters are invalid.

    Attributes:
        details: one dict per problem: ``field`` (name), ``value`` (as
            given), ``message`` (what is wrong and what is allowed).
    """

    def __init__(self, details: list[dict[str, Any]]) -> None:
        self.details = details
        super().__init__(summary(details, values=True))


class GeneratorParams(BaseModel):
    """Base of every parameter model.

    The sample interval is the field ``interval`` of every kind
    (``interval_field``). ``aliases`` maps other accepted names to fields:
    the anomaly kinds also take ``data_interval``, the original service's
    name, for ``interval``. An alias is renamed before validation; a
    request holding a field and its alias is refused, naming both.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    interval_field: ClassVar[str] = "interval"
    aliases: ClassVar[dict[str, str]] = {}

    @property
    def sample_interval(self) -> float:
        """Seconds of stream time between consecutive samples."""
        return getattr(self, self.interval_field)

    def check(self) -> list[tuple[str, str]]:
        """Cross-field rules: a list of (field, message) for each violation."""
        return []


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def brief_value(value: Any) -> Any:
    """An offending value as an error reply shows it: objects and lists
    become ``"<dict>"``/``"<list>"``, strings over 200 characters
    ``"<str>"``, non-finite floats their text; other values as given."""
    if isinstance(value, (dict, list)) or (isinstance(value, str) and len(value) > 200):
        return f"<{type(value).__name__}>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def error_details(exc: ValidationError, root: str, *,
                  path: Callable[[tuple], list] = list,
                  message: Callable[[dict[str, Any], list], str | list[dict[str, Any]] | None] | None = None,
                  value: Callable[[Any], Any] = _jsonable,
                  limit: int | None = None) -> list[dict[str, Any]]:
    """The one rule turning a pydantic :class:`ValidationError` into error
    details: one dict per problem, ``field`` (the dotted location, or
    ``root`` when the whole input is wrong), ``value`` (the input, through
    ``value``: :func:`_jsonable` or :func:`brief_value`) and ``message``
    (pydantic's, without its ``"Value error, "`` prefix for our own
    ``ValueError`` messages).

    ``path`` maps an error's ``loc`` to the field path (drop union tags);
    ``message(err, path)`` may give the message of a special error (it may
    extend ``path``), return a list of ready details that stand for it, or
    None for pydantic's message. ``limit`` caps how many errors are read.
    """
    out: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False)[:limit]:
        where = path(err["loc"])
        text = message(err, where) if message else None
        if isinstance(text, list):
            out += text
            continue
        if text is None:
            text = err["msg"].removeprefix("Value error, ") if err["type"] == "value_error" else err["msg"]
        out.append({"field": ".".join(map(str, where)) or root, "value": value(err.get("input")), "message": text})
    return out


def summary(details: list[dict[str, Any]], values: bool = False) -> str:
    """Error details in one line: ``field: message; field: message``; with
    ``values``, each message is followed by `` (got <value>)`` (the value's
    ``repr``) where the detail has a value (not ``None``)."""
    return "; ".join(f"{d['field']}: {d.get('message')}"
                     + (f" (got {d['value']!r})" if values and d.get("value") is not None else "")
                     for d in details)


def resolve_aliases(model: type[GeneratorParams], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each alias of ``model`` (``model.aliases``, e.g.
    ``data_interval``) renamed to its field (``interval``).

    Raises :class:`InvalidParams` when a field and one of its aliases are
    both given (the detail names both; its ``field`` is the alias).
    """
    out = dict(data)
    for alias, name in model.aliases.items():
        if alias in out:
            if name in out:
                raise InvalidParams([{"field": alias, "value": _jsonable(out[alias]),
                                      "message": f"{alias} is another name for {name}, which is also given "
                                                 f"({out[name]!r}); give only one of {name}, {alias}"}])
            out[name] = out.pop(alias)
    return out


def validate_params(model: type[GeneratorParams], data: Mapping[str, Any]) -> GeneratorParams:
    """Validate ``data`` against ``model`` (aliases resolved first, see
    :func:`resolve_aliases`).

    Returns the model instance. Raises :class:`InvalidParams` naming every
    wrong field, the value given and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise InvalidParams([{"field": "params", "value": _jsonable(data),
                              "message": "must be an object of parameter names to values"}])
    given = {model.aliases[k]: k for k in data if k in model.aliases}   # field -> the alias used
    data = resolve_aliases(model, data)
    try:
        params = model.model_validate(data)
    except ValidationError as exc:
        def unknown(err: dict[str, Any], path: list) -> str | None:
            if err["type"] != "extra_forbidden":
                return None
            return f"unknown parameter; allowed: {', '.join([*model.model_fields, *model.aliases])}"
        details = error_details(exc, "params", message=unknown)
        raise InvalidParams([{**d, "field": given.get(d["field"], d["field"])} for d in details]) from None
    problems = params.check()
    if problems:
        raise InvalidParams([{"field": given.get(f, f), "value": _jsonable(getattr(params, f)), "message": m}
                             for f, m in problems])
    return params
