"""Line formats of the HTTP streams and of ``wsgen sub``: pure functions
from samples to bytes.

Each format turns a :class:`~wsgen.engine.Block` (and, where the format
carries them, the stream times of its samples) into the bytes of one HTTP
chunk. Formatting is batched: one ``%`` over a whole block, no per-sample
Python calls beyond the string formatting itself.

Formats (``FORMATS`` maps each name to its media type):

``text`` (``text/plain; charset=utf-8``)
    The original service's format: one value per line, three decimals,
    ``0.501\\n``. Values that round to zero are written ``0.000`` (never
    ``-0.000``); a missing value (a composition's null fault) is ``null``.
    Each line parses with ``json.loads()`` (and, but for ``null``, ``float()``).
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

Compositions (``/composite``; :class:`CompositeFormatter`) deliver samples
with faults, so their rows differ:

* ``seq`` is each delivered sample's own index (``CompositeBlock.seqs``):
  it jumps over a gap, repeats for a duplicate, goes down when a sample
  arrives out of order; ``t`` is its own stream time (jitter included);
* ``value`` of a null fault: ``null`` in ``text`` (so that every line
  parses with ``json.loads``, as the original's users read them; ``float()``
  does not read it), ``null`` in ndjson/sse, an empty field in csv;
* every row has ``label`` and ``events``. ndjson/sse: ``"events"`` is the
  list of the event objects ``{"id","kind","first","last"}`` the sample
  lies in (``first <= seq <= last``), ``[]`` for most samples. A ``gap``
  event has no sample of its own: it is listed on the first delivered
  sample whose seq is past the gap (where a consumer sees the jump).
  csv: an ``events`` column, each event as ``kind:id:first:last``, joined
  by ``;`` (empty when none). Header ``seq,t,value,label,events``.
"""
from __future__ import annotations

import json
from itertools import chain
from typing import Any

import numpy as np

from wsgen.engine import Block
from wsgen.engine.faults import MAX_DELAY

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


def header(fmt: str, labelled: bool, events: bool = False) -> bytes:
    """Bytes sent before the first sample (the CSV header; else nothing).
    ``events``: a composition's CSV (label and events columns)."""
    if fmt == "csv":
        if events:
            return b"seq,t,value,label,events\n"
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
    if np.isnan(values).any():    # a composition's null fault: JSON null, as json.loads reads it
        return "".join(["null\n" if v != v else "%.3f\n" % v for v in values.tolist()]).encode("ascii")
    return (_repeat("%.3f\n", m) % tuple(values.tolist())).encode("ascii")


def _rows(block: Block, times: np.ndarray, plain: str, labelled: str,
          seqs: np.ndarray | None = None) -> tuple[str, tuple]:
    m = len(block)
    seqs = range(block.seq, block.seq + m) if seqs is None else seqs.tolist()
    if block.labels is None:
        cols = (seqs, times.tolist(), block.values.tolist())
        row = plain
    else:
        cols = (seqs, times.tolist(), block.values.tolist(), [_BOOL[b] for b in block.labels.tolist()])
        row = labelled
    return row, tuple(chain.from_iterable(zip(*cols)))


def ndjson(block: Block, times: np.ndarray, seqs: np.ndarray | None = None) -> bytes:
    """One JSON object per line (see the module docstring). ``seqs``: each
    sample's seq when they are not ``block.seq, block.seq + 1, ...``."""
    if not len(block):
        return b""
    row, args = _rows(block, times, _JSON_ROW + "\n", _JSON_ROW_LABEL + "\n", seqs)
    return (_repeat(row, len(block)) % args).encode("ascii")


def csv(block: Block, times: np.ndarray, seqs: np.ndarray | None = None) -> bytes:
    """CSV rows ``seq,t,value[,label]`` (the header comes from :func:`header`);
    ``seqs`` as for :func:`ndjson`."""
    if not len(block):
        return b""
    row, args = _rows(block, times, _CSV_ROW, _CSV_ROW_LABEL, seqs)
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


# -- compositions ------------------------------------------------------------------

_C_JSON = '{"seq":%d,"t":%.6f,"value":%s,"label":%s,"events":%s}'
_C_ROWS = {"ndjson": _C_JSON + "\n", "csv": "%d,%.6f,%s,%s,%s\n", "sse": "id: %d\ndata: " + _C_JSON + "\n\n"}


class CompositeFormatter:
    """Formats the :class:`~wsgen.engine.composite.CompositeBlock` s of
    one composition stream, in order (see the module docstring).

    Stateful: a sample held back by ``out_of_order`` arrives in a later block
    than its events, and a gap is listed on the first sample past it, so the
    formatter remembers recent events (those that may still own a delivered
    sample) and the gaps not yet listed.
    """

    def __init__(self, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        self.fmt = fmt
        self._recent: dict[int, dict[str, Any]] = {}   # id -> non-gap event
        self._gaps: dict[int, dict[str, Any]] = {}     # id -> gap not yet listed
        self._gap_done = -1                             # last sample of the latest listed gap

    def __call__(self, block: Block, times: np.ndarray | None = None) -> bytes:
        if self.fmt == "text":
            return text(block.values)
        if times is None:
            raise ValueError(f"format {self.fmt!r} needs the stream times of the samples")
        seqs = np.asarray(getattr(block, "seqs", None) if getattr(block, "seqs", None) is not None
                          else np.arange(block.seq, block.seq + len(block)), dtype=np.int64)
        per_sample = self._events(block, seqs)
        m = len(seqs)
        if not m:
            return b""
        if self.fmt == "csv":
            values = ["" if v != v else repr(v) for v in block.values.tolist()]
            evs = [";".join(f"{e['kind']}:{e['id']}:{e['first']}:{e['last']}" for e in lst) if lst else ""
                   for lst in per_sample]
        else:
            values = ["null" if v != v else repr(v) for v in block.values.tolist()]
            evs = ["[" + ",".join(json.dumps(e, separators=(",", ":")) for e in lst) + "]" if lst else "[]"
                   for lst in per_sample]
        labels = block.labels.tolist() if block.labels is not None else [False] * m
        cols = [seqs.tolist(), times.tolist(), values, [_BOOL[b] for b in labels], evs]
        if self.fmt == "sse":
            cols.insert(0, cols[0])
        return (_repeat(_C_ROWS[self.fmt], m) % tuple(chain.from_iterable(zip(*cols)))).encode("ascii")

    def _events(self, block: Block, seqs: np.ndarray) -> list[list[dict[str, Any]]]:
        """Take in ``block``'s events; the events of each of its delivered
        samples (``seqs``), forgetting those no later sample can lie in."""
        for e in getattr(block, "events", None) or ():
            if e["kind"] == "gap":
                if e["last"] > self._gap_done:
                    self._gaps.setdefault(e["id"], e)
            else:
                self._recent.setdefault(e["id"], e)
        per_sample = self._assign(seqs)
        horizon = block.seq - MAX_DELAY - 1      # a sample below it can no longer arrive
        self._recent = {i: e for i, e in self._recent.items() if e["last"] >= horizon}
        return per_sample

    def _assign(self, seqs: np.ndarray) -> list[list[dict[str, Any]]]:
        """The events of each delivered sample, sorted by (first, id)."""
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(seqs))]
        if not len(seqs):
            return out
        if self._recent:
            events = sorted(self._recent.values(), key=lambda e: (e["first"], e["id"]))
            order = np.argsort(seqs, kind="stable")
            ordered = seqs[order]
            lo = np.searchsorted(ordered, [e["first"] for e in events], "left")
            hi = np.searchsorted(ordered, [e["last"] for e in events], "right")
            for e, a, b in zip(events, lo.tolist(), hi.tolist()):
                for i in order[a:b].tolist():
                    out[i].append(e)
        if self._gaps:
            for gid, g in sorted(self._gaps.items(), key=lambda kv: kv[1]["first"]):
                past = np.flatnonzero(seqs > g["last"])
                if not len(past):
                    continue
                i = int(past[0])
                out[i].append(g)
                out[i].sort(key=lambda e: (e["first"], e["id"]))
                del self._gaps[gid]
                self._gap_done = max(self._gap_done, g["last"])
        return out
