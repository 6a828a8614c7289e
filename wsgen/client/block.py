"""What the client hands out: :class:`ReceivedBlock` (a run of samples of one
subscription, as received) and its decoding from a ``data`` message or a
binary frame.

It is public as ``wsgen.client.Block`` (the name the client has always
used; an alias of :class:`ReceivedBlock`). The class itself is named apart
from the engine's :class:`wsgen.Block` (``wsgen.create(...).take(n)``:
values and labels only), which carries no seqs, stream times, lag or events.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from wsgen.protocol.encoding import decode_binary

__all__ = ["Block", "ReceivedBlock", "block_from_binary", "block_from_json"]


@dataclass(frozen=True, eq=False)
class ReceivedBlock:
    """A run of samples of one subscription.

    Attributes:
        seq: index of the first sample.
        t: stream time of the first sample, Unix seconds.
        dt: seconds of stream time between samples.
        values: float64 array, shape (n,); shape (n, k) for a composition
            with k ``channels`` (columns in the declared order).
        labels: bool array, shape (n,) (or (n, k) with channels), True where
            the sample is an anomaly; ``None`` for generators without anomalies.
        id: subscription id.
        lag: seconds the last sample was behind schedule when sent.
        skipped: samples dropped by the server (backpressure ``drop``) just
            before this block; their seqs are missing from ``seqs``.
        events: ground truth of a composition: the event dicts ``{"id",
            "kind", "first", "last"}`` of the message(s) the samples came
            from (events overlapping their slots; see docs/compositions.md);
            ``[]`` for other generators.

    A composition's block takes ``seqs`` and ``timestamps`` from the message
    (its ``seqs`` / ``ts`` arrays): with faults they are not an arange (a
    gap jumps, a duplicate repeats, out-of-order goes down, jitter moves
    the times), and ``values`` holds NaN where a null fault hit.
    """

    seq: int
    t: float
    dt: float
    values: np.ndarray
    labels: np.ndarray | None = None
    id: str = ""
    lag: float = 0.0
    skipped: int = 0
    # set when the block joins runs that are not one arithmetic progression
    explicit_seqs: np.ndarray | None = field(default=None, repr=False)
    explicit_timestamps: np.ndarray | None = field(default=None, repr=False)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def seqs(self) -> np.ndarray:
        """Sequence number of every sample: int64, shape (n,)
        (``np.arange(seq, seq + n)`` unless samples were skipped)."""
        if self.explicit_seqs is not None:
            return self.explicit_seqs
        return np.arange(self.seq, self.seq + len(self.values), dtype=np.int64)

    @property
    def timestamps(self) -> np.ndarray:
        """Stream time of every sample, Unix seconds: float64, shape (n,)
        (``t + dt * arange(n)`` for one received block)."""
        if self.explicit_timestamps is not None:
            return self.explicit_timestamps
        return self.t + self.dt * np.arange(len(self.values), dtype=np.float64)

    def slice(self, start: int, stop: int | None = None) -> "ReceivedBlock":
        """Samples ``start:stop`` as a block (no copy of the arrays)."""
        stop = len(self) if stop is None else stop
        seqs = None if self.explicit_seqs is None else self.explicit_seqs[start:stop]
        times = None if self.explicit_timestamps is None else self.explicit_timestamps[start:stop]
        first_seq = int(seqs[0]) if seqs is not None and len(seqs) else self.seq + start
        first_t = float(times[0]) if times is not None and len(times) else self.t + self.dt * start
        events = self.events
        if events and (start, stop) != (0, len(self)):
            # keep the ground truth of the samples kept: events overlapping their seqs
            lo, hi = ((int(seqs.min()), int(seqs.max())) if seqs is not None and len(seqs)
                      else (self.seq + start, self.seq + stop - 1))
            events = [e for e in events if e.get("last", hi) >= lo and e.get("first", lo) <= hi]
        return ReceivedBlock(first_seq, first_t, self.dt, self.values[start:stop],
                     None if self.labels is None else self.labels[start:stop], self.id, self.lag,
                     self.skipped if start == 0 else 0, seqs, times, events)

    @staticmethod
    def concat(blocks: list["ReceivedBlock"]) -> "ReceivedBlock":
        """One block holding the samples of ``blocks`` in order."""
        if not blocks:
            raise ValueError("nothing to concatenate")
        if len(blocks) == 1:
            return blocks[0]
        first = blocks[0]
        values = np.concatenate([b.values for b in blocks])
        labels = None
        if all(b.labels is not None for b in blocks):
            labels = np.concatenate([b.labels for b in blocks])
        contiguous = all(b.explicit_seqs is None for b in blocks) and all(
            b.seq == a.seq + len(a) for a, b in zip(blocks, blocks[1:]))
        seqs = None if contiguous else np.concatenate([b.seqs for b in blocks])
        times = np.concatenate([b.timestamps for b in blocks])
        events: dict[Any, dict[str, Any]] = {}
        for b in blocks:
            for e in b.events:
                events.setdefault(e.get("id"), e)
        merged = sorted(events.values(), key=lambda e: (e.get("first", 0), e.get("id", 0)))
        return ReceivedBlock(first.seq, first.t, first.dt, values, labels, first.id, max(b.lag for b in blocks),
                     sum(b.skipped for b in blocks), seqs, times, merged)


def block_from_json(msg: Mapping[str, Any]) -> ReceivedBlock:
    """The :class:`ReceivedBlock` of a parsed ``data`` message (docs/protocol.md).

    Raises:
        KeyError, TypeError, ValueError: a message missing ``seq``, ``t``,
            ``dt``, ``values`` or ``id``, or with values that are not numbers.
    """
    values = np.asarray(msg["values"], dtype=np.float64)   # null (NaN on the wire) -> nan
    labels = msg.get("labels")
    if values.ndim == 2:    # a composition with channels: k arrays -> samples x channels
        values = np.ascontiguousarray(values.T)
        labels = None if labels is None else np.ascontiguousarray(np.asarray(labels, dtype=bool).T)
    seqs = msg.get("seqs")
    ts = msg.get("ts")
    return ReceivedBlock(int(msg["seq"]), float(msg["t"]), float(msg["dt"]), values,
                 None if labels is None else np.asarray(labels, dtype=bool), msg["id"],
                 float(msg.get("lag", 0.0)), int(msg.get("skipped", 0)),
                 None if seqs is None else np.asarray(seqs, dtype=np.int64),
                 None if ts is None else np.asarray(ts, dtype=np.float64),
                 list(msg.get("events") or ()))


def block_from_binary(frame: bytes) -> ReceivedBlock:
    """The :class:`ReceivedBlock` of a binary data frame (:func:`wsgen.protocol.encoding.decode_binary`;
    the values are copied out of the frame).

    Raises:
        ValueError: a frame that is not a wsgen binary frame.
    """
    f = decode_binary(frame)
    return ReceivedBlock(f.seq, f.t, f.dt, f.values.copy(), f.labels, f.id, float(f.lag), f.skipped)


#: The client's public name for :class:`ReceivedBlock` (``from wsgen.client import Block``).
Block = ReceivedBlock
