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
"""
from __future__ import annotations

from typing import Any

#: control -> {"http": name or None, "ws": name or None, "meaning": ..., "why": why one transport lacks it}
CONTROLS: dict[str, dict[str, Any]] = {
    "seed": {"http": "seed", "ws": "seed", "meaning": "seed of the random draws, in [0, 2^64)"},
    "speed": {"http": "speed", "ws": "speed", "meaning": "delivery speed-up in (0, 1e6], or max"},
    "count": {"http": "count", "ws": "count", "meaning": "end after this many samples"},
    "duration": {"http": "duration", "ws": "duration",
                 "meaning": "end after the samples within this many seconds of stream time of the first; "
                            "stream_duration on a generator with a duration parameter"},
    "start_seq": {"http": "start_seq", "ws": "start_seq", "meaning": "index of the first sample"},
    "format": {"http": "format", "ws": None, "meaning": "line format: text, ndjson, csv, sse",
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


def why_not(control: str, transport: str) -> str | None:
    """Why ``control`` is not available on ``transport`` (``"http"`` or
    ``"ws"``); ``None`` when it is, or is no control at all."""
    entry = CONTROLS.get(control)
    if entry is None or entry.get(transport) is not None:
        return None
    return entry["why"]
