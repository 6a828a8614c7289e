"""Line formats of a composition with channels (HTTP ``/composite``, ``wsgen sub``).

One row per delivered sample, one field per channel, in declared order
(``wsgen.engine.channels``); channel names never collide with the other
fields (``seq``, ``t``, ``events``, ``label_*`` are refused as names):

``ndjson``
    ``{"seq":0,"t":1700000000.000000,"x":1.5,"y":null,"label_x":false,"label_y":true,"events":[...]}``:
    values as full float64 (``null`` for a null fault), a label per channel,
    and the events the sample lies in (each with its ``channels``), as for a
    single-channel composition (:class:`wsgen.protocol.lines.CompositeFormatter`).
``csv``
    header ``seq,t,<name>...,label_<name>...,events``; an empty field for a
    null fault; events as ``kind:id:first:last:<name>|<name>`` joined by ``;``.
``sse``
    ``id: <seq>`` and ``data: <the ndjson object>``.
``text``
    one JSON array per sample, a value per channel with three decimals
    (``[1.500,-0.250,null]``), so every line reads with ``json.loads``.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from wsgen.engine import Block
from wsgen.protocol.lines import FORMATS, CompositeFormatter

_BOOL = ("false", "true")


def header(fmt: str, channels: Sequence[str]) -> bytes:
    """The CSV header of a channel composition (else nothing)."""
    if fmt != "csv":
        return b""
    return ",".join(["seq", "t", *channels, *(f"label_{c}" for c in channels), "events"]).encode() + b"\n"


def _text(v: float) -> str:
    if v != v:
        return "null"
    s = "%.3f" % v
    return "0.000" if s == "-0.000" else s


class ChannelFormatter(CompositeFormatter):
    """Formats the :class:`~wsgen.engine.channels.ChannelBlock` s of one
    stream, in order (the module doc). Stateful as
    :class:`~wsgen.protocol.lines.CompositeFormatter`: it keeps recent events for
    samples held back and gaps not yet listed."""

    def __init__(self, fmt: str, channels: Sequence[str]) -> None:
        super().__init__(fmt)
        self.channels = tuple(channels)
        self._keys = [json.dumps(c) for c in self.channels]
        self._label_keys = [json.dumps(f"label_{c}") for c in self.channels]

    def __call__(self, block: Block, times: np.ndarray | None = None) -> bytes:
        values = np.asarray(block.values).reshape(len(block), len(self.channels))
        if self.fmt == "text":
            return "".join("[" + ",".join(_text(v) for v in row) + "]\n" for row in values.tolist()).encode("ascii")
        if times is None:
            raise ValueError(f"format {self.fmt!r} needs the stream times of the samples")
        seqs = np.asarray(block.seqs, dtype=np.int64)
        per_sample = self._events(block, seqs)
        labels = np.asarray(block.labels).reshape(values.shape).tolist()
        out: list[str] = []
        for s, t, row, lab, evs in zip(seqs.tolist(), times.tolist(), values.tolist(), labels, per_sample):
            if self.fmt == "csv":
                ev = ";".join(f"{e['kind']}:{e['id']}:{e['first']}:{e['last']}:{'|'.join(e.get('channels', ()))}"
                              for e in evs)
                out.append("%d,%.6f,%s,%s,%s\n" % (s, t, ",".join("" if v != v else repr(v) for v in row),
                                                    ",".join(_BOOL[b] for b in lab), ev))
                continue
            fields = ",".join(f"{k}:{'null' if v != v else repr(v)}" for k, v in zip(self._keys, row))
            flags = ",".join(f"{k}:{_BOOL[b]}" for k, b in zip(self._label_keys, lab))
            ev = "[" + ",".join(json.dumps(e, separators=(",", ":")) for e in evs) + "]"
            obj = '{"seq":%d,"t":%.6f,%s,%s,"events":%s}' % (s, t, fields, flags, ev)
            out.append(f"id: {s}\ndata: {obj}\n\n" if self.fmt == "sse" else obj + "\n")
        return "".join(out).encode("utf-8")


def formatter(fmt: str, gen: Any):
    """The formatter of a composition stream: channels or not."""
    channels = getattr(gen, "channels", None)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return ChannelFormatter(fmt, channels) if channels else CompositeFormatter(fmt)
