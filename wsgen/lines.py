"""Line formats of the HTTP streams: pure functions from samples to bytes.

Each format turns a :class:`~wsgen.generators.Block` (and, where the format
carries them, the stream times of its samples) into the bytes of one HTTP
chunk. Formatting is batched: one ``%`` over a whole block, no per-sample
Python calls beyond the string formatting itself.

Formats (``FORMATS`` maps each name to its media type):

``text`` (``text/plain; charset=utf-8``)
    The original service's format: one value per line, three decimals,
    ``0.501\\n``. Values that round to zero are written ``0.000`` (never
    ``-0.000``). Each line parses with ``float()`` and ``json.loads()``.
``ndjson`` (``application/x-ndjson``)
    One JSON object per line: ``{"seq":0,"t":1700000000.000000,"value":0.0}``
    plus ``"label":true|false`` for the anomaly kinds. ``seq`` is the sample
    index, ``t`` its stream time in Unix seconds (microsecond precision),
    ``value`` the full float64 value (shortest repr that round-trips).
``csv`` (``text/csv; charset=utf-8``)
    A header line ``seq,t,value`` (``seq,t,value,label`` for anomaly kinds),
    then one row per sample, same fields as ndjson (label ``true``/``false``),
    lines ending in ``\\n``.
``sse`` (``text/event-stream``)
    Server-Sent Events a browser ``EventSource`` reads: one event per sample,
    ``id: <seq>\\ndata: <the ndjson object>\\n\\n``. A stream ended by
    ``count``/``duration`` sends a last ``event: end`` (data
    ``{"next_seq": n}``) so clients can close instead of reconnecting.
"""
from __future__ import annotations

from itertools import chain

import numpy as np

from .generators import Block

#: Format name -> media type of the response.
FORMATS: dict[str, str] = {
    "text": "text/plain; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "sse": "text/event-stream; charset=utf-8",
}

#: Values whose three-decimal rendering is zero (|v| < 0.0005; the double
#: nearest 0.0005 is just above it and renders 0.001).
_ZERO_BAND = 0.0005

_JSON_ROW = '{"seq":%d,"t":%.6f,"value":%r}'
_JSON_ROW_LABEL = '{"seq":%d,"t":%.6f,"value":%r,"label":%s}'
_CSV_ROW = "%d,%.6f,%r\n"
_CSV_ROW_LABEL = "%d,%.6f,%r,%s\n"
_BOOL = ("false", "true")

# Format strings for whole blocks, cached by (row template, length).
_templates: dict[tuple[str, int], str] = {}


def _repeat(row: str, m: int) -> str:
    key = (row, m)
    t = _templates.get(key)
    if t is None:
        t = row * m
        if len(_templates) > 256:
            _templates.clear()
        _templates[key] = t
    return t


def needs_times(fmt: str) -> bool:
    """Whether ``fmt`` carries stream times (all but ``text``)."""
    return fmt != "text"


def header(fmt: str, labelled: bool) -> bytes:
    """Bytes sent before the first sample (the CSV header; else nothing)."""
    if fmt == "csv":
        return b"seq,t,value,label\n" if labelled else b"seq,t,value\n"
    return b""


def footer(fmt: str, next_seq: int) -> bytes:
    """Bytes sent when a stream ends by ``count``/``duration`` (SSE only)."""
    if fmt == "sse":
        return b'event: end\ndata: {"next_seq":%d}\n\n' % next_seq
    return b""


def keepalive(fmt: str) -> bytes:
    """Bytes that keep an idle stream alive without adding a sample (SSE
    comment); empty for formats where any extra byte would be a line."""
    return b": keepalive\n\n" if fmt == "sse" else b""


def text(values: np.ndarray) -> bytes:
    """``0.501\\n`` per value: three decimals, no negative zero."""
    m = len(values)
    if not m:
        return b""
    small = np.abs(values) < _ZERO_BAND
    if small.any():
        values = np.where(small, 0.0, values)
    return (_repeat("%.3f\n", m) % tuple(values.tolist())).encode("ascii")


def _rows(block: Block, times: np.ndarray, plain: str, labelled: str) -> tuple[str, tuple]:
    m = len(block)
    seqs = range(block.seq, block.seq + m)
    if block.labels is None:
        cols = (seqs, times.tolist(), block.values.tolist())
        row = plain
    else:
        cols = (seqs, times.tolist(), block.values.tolist(), [_BOOL[b] for b in block.labels.tolist()])
        row = labelled
    return row, tuple(chain.from_iterable(zip(*cols)))


def ndjson(block: Block, times: np.ndarray) -> bytes:
    """One JSON object per line (see the module docstring)."""
    if not len(block):
        return b""
    row, args = _rows(block, times, _JSON_ROW + "\n", _JSON_ROW_LABEL + "\n")
    return (_repeat(row, len(block)) % args).encode("ascii")


def csv(block: Block, times: np.ndarray) -> bytes:
    """CSV rows ``seq,t,value[,label]`` (the header comes from :func:`header`)."""
    if not len(block):
        return b""
    row, args = _rows(block, times, _CSV_ROW, _CSV_ROW_LABEL)
    return (_repeat(row, len(block)) % args).encode("ascii")


def sse(block: Block, times: np.ndarray) -> bytes:
    """One Server-Sent Event per sample: ``id: <seq>`` and ``data: <json>``."""
    if not len(block):
        return b""
    m = len(block)
    seqs = range(block.seq, block.seq + m)
    if block.labels is None:
        row = "id: %d\ndata: " + _JSON_ROW + "\n\n"
        cols = (seqs, seqs, times.tolist(), block.values.tolist())
    else:
        row = "id: %d\ndata: " + _JSON_ROW_LABEL + "\n\n"
        cols = (seqs, seqs, times.tolist(), block.values.tolist(), [_BOOL[b] for b in block.labels.tolist()])
    return (_repeat(row, m) % tuple(chain.from_iterable(zip(*cols)))).encode("ascii")


def encode(fmt: str, block: Block, times: np.ndarray | None = None) -> bytes:
    """The bytes of ``block`` in ``fmt``; ``times`` (stream time of each
    sample, Unix seconds) is required for every format but ``text``."""
    if fmt == "text":
        return text(block.values)
    if times is None:
        raise ValueError(f"format {fmt!r} needs the stream times of the samples")
    if fmt == "ndjson":
        return ndjson(block, times)
    if fmt == "csv":
        return csv(block, times)
    if fmt == "sse":
        return sse(block, times)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
