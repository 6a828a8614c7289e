"""List-valued parameters that also arrive as text.

A query string (HTTP, WebSocket URL), ``wsgen sub --values 1,2,3`` and the
browser page's text boxes give a list parameter as a string; the WebSocket
``params`` object and the Python API give a JSON array. :func:`text_list`
accepts both: a string starting with ``[`` or ``{`` is parsed as JSON, any
other string is split at commas, semicolons or whitespace (``"1, 2;3 4"`` ->
``["1", "2", "3", "4"]``, each item then validated as a number by pydantic,
so an error names the item: ``values.2``).
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import PydanticCustomError

_SEPARATORS = re.compile(r"[,;\s]+")


def text_list(value: Any) -> Any:
    """A pydantic ``BeforeValidator``: a JSON or comma-separated string ->
    a list; anything else is returned unchanged (pydantic checks it)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            raise PydanticCustomError("list_text", "must be a JSON array or comma-separated numbers (the text is "
                                      "not valid JSON)") from None
    return [part for part in _SEPARATORS.split(text) if part]


def pairs(value: Any) -> Any:
    """A pydantic ``BeforeValidator`` for a list of pairs: accepts what
    :func:`text_list` accepts, and a flat list of an even count of numbers
    (``"1,0,2,5"`` -> ``[[1, 0], [2, 5]]``: what a browser shows a nested
    array as)."""
    value = text_list(value)
    if isinstance(value, (list, tuple)) and value and not any(isinstance(v, (list, tuple, dict)) for v in value):
        if len(value) % 2:
            raise PydanticCustomError("pairs", "must be (duration, level) pairs: an even count of numbers, got "
                                      "{count}", {"count": len(value)})
        return [[value[i], value[i + 1]] for i in range(0, len(value), 2)]
    return value
