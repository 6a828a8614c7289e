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
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError


class InvalidParams(ValueError):
    """Raised when parameters are invalid.

    Attributes:
        details: one dict per problem: ``field`` (name), ``value`` (as
            given), ``message`` (what is wrong and what is allowed).
    """

    def __init__(self, details: list[dict[str, Any]]) -> None:
        self.details = details
        super().__init__("; ".join(f"{d['field']}: {d['message']} (got {d['value']!r})"
                                   for d in details))


class GeneratorParams(BaseModel):
    """Base of every parameter model.

    Subclasses name the field that holds the sample interval in
    ``interval_field`` (``interval`` for waveforms and distributions,
    ``data_interval`` for the anomaly kinds, as in the original).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    interval_field: ClassVar[str] = "interval"

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


def validate_params(model: type[GeneratorParams], data: Mapping[str, Any]) -> GeneratorParams:
    """Validate ``data`` against ``model``.

    Returns the model instance. Raises :class:`InvalidParams` naming every
    wrong field, the value given and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise InvalidParams([{"field": "params", "value": _jsonable(data),
                              "message": "must be an object of parameter names to values"}])
    try:
        params = model.model_validate(dict(data))
    except ValidationError as exc:
        details = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "params"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(model.model_fields)
                message = f"unknown parameter; allowed: {allowed}"
            else:
                message = err["msg"]
            details.append({"field": field, "value": _jsonable(err.get("input")), "message": message})
        raise InvalidParams(details) from None
    problems = params.check()
    if problems:
        raise InvalidParams([{"field": f, "value": _jsonable(getattr(params, f)), "message": m}
                             for f, m in problems])
    return params
