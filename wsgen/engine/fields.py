"""Reusable constrained field types for parameter models (units in the
descriptions; bounds keep every output finite)."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

#: Largest magnitude accepted for a level (amplitude, offset, base value...);
#: keeps every sample finite whatever the combination.
MAX_LEVEL = 1e12
#: Longest sample interval accepted, in seconds (one day).
MAX_INTERVAL_S = 86_400.0
#: Shortest non-zero sample interval accepted, in seconds (1 us): below it
#: stream time and schedules lose their meaning (and 5e-324 overflows them).
MIN_INTERVAL_S = 1e-6
#: Largest whole-sample count accepted (gaps, lengths, counts).
MAX_COUNT = 10**9


def _interval_floor(value: float) -> float:
    if 0 < value < MIN_INTERVAL_S:
        raise ValueError(f"must be 0 (unpaced) or at least {MIN_INTERVAL_S:g} s")
    return value


def level(default: float, description: str):
    return Annotated[float, Field(default, ge=-MAX_LEVEL, le=MAX_LEVEL, description=description)]


def interval(default: float, description: str, positive: bool = False):
    """Seconds in [MIN_INTERVAL_S, MAX_INTERVAL_S], or 0 unless ``positive``."""
    bound = {"ge": MIN_INTERVAL_S} if positive else {"ge": 0}
    return Annotated[float, Field(default, le=MAX_INTERVAL_S, description=description,
                                  json_schema_extra={"unit": "s"}, **bound), AfterValidator(_interval_floor)]


def count(default: int, description: str, minimum: int = 1):
    return Annotated[int, Field(default, ge=minimum, le=MAX_COUNT, description=description,
                                json_schema_extra={"unit": "samples"})]
