"""Live scoring of a detector on its own subscription (no I/O).

A subscription opened with ``"score"`` (docs/protocol.md, "Scoring a
detector") keeps the ground truth of every sample it sends and the alarms
its client reports back with ``detect``; ``score`` (and ``unsubscribed``,
and the end of a stream with ``count``) gives the figures of
:func:`wsgen.scoring.score` over the samples sent so far, plus the
detection latency measured on the server's clock.

The truth: a composition's anomaly events (``events`` of its data
messages, fault events excluded: a null or a gap is not an anomaly to
detect); an anomaly kind's or a labelled replay's runs of true labels (a run
continued across two messages is one event).

The window rule of a live stream (option ``window``): ``"nab"`` (default)
applies NAB's rule to the samples sent so far, as if they were a NAB data
file: window length ``int(0.1 * sent / events)``. The figures of each
``score`` are then exactly what ``POST /score`` and NAB give for that
prefix of the stream, and the final ones (``count`` reached) those of the
whole stream; but a window can widen or narrow as the stream grows (it is
stable when the events come at a steady rate), so an alarm can change from
true to false positive. A fixed length (``window: 200``) gives windows
that never move; ``"events"`` scores each event's own samples.

Added to those figures, ``latency``, per alarm on the server's monotonic
clock: ``seconds`` from the moment the data message holding the alarm's
sample was made (just before it was sent) to the moment the alarm arrived
(``None`` for samples sent more than :data:`SENT_KEEP` messages earlier),
and ``samples`` sent after that sample by then; median and maximum. The
delays in seconds use the subscription's interval at the time of scoring.

Memory and time are bounded: at most :data:`MAX_EVENTS` events and
:data:`MAX_ALARMS` distinct alarms per subscription (16 bytes each), which
keeps one scoring under about 10 ms. Once a stream reaches
:data:`MAX_EVENTS` events, scoring stops at the last sample before the
event that would pass the limit (``scored_last``); the stream goes on.
"""
from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from .generators.injectors import INJECTORS
from .scoring import PROBATION, WindowRule, score

#: Events a scored subscription keeps.
MAX_EVENTS = 20_000
#: Distinct alarms a scored subscription keeps.
MAX_ALARMS = 20_000
#: Data messages whose send time is kept for the wall-clock latency.
SENT_KEEP = 65_536

ANOMALY_KINDS = frozenset(INJECTORS)


@dataclass(frozen=True)
class Options:
    """A subscription's scoring options (the ``score`` object of ``subscribe``)."""

    window: WindowRule = "nab"
    probation: float = PROBATION
    threshold: float = 0.5

    def to_wire(self) -> dict[str, Any]:
        return {"window": self.window, "probation": self.probation, "threshold": self.threshold}


class OutOfRange(ValueError):
    """A detection of a sample the subscription has not sent (or no longer scores)."""


class LiveScore:
    """Truth, alarms and send times of one scored subscription.

    Args:
        options: the scoring options.
        start: seq of the subscription's first sample.
        composite: the stream is a composition (truth from ``events``), else
            an anomaly kind (truth from ``labels``).
    """

    def __init__(self, options: Options, start: int, composite: bool) -> None:
        self.options = options
        self.start = start
        self.composite = composite
        self.next = start                 # first seq not yet sent
        self.limit: int | None = None     # scoring stops before this seq (event limit)
        self._firsts, self._lasts = array("q"), array("q")
        self._seen: set[int] = set()      # composition event ids recorded
        self._sent_end, self._sent_at = [], []   # per data message: end seq (exclusive), monotonic time made
        self._sent_from = start                  # first seq of the oldest message in those lists
        self._alarms: dict[int, tuple[float | None, int]] = {}   # seq -> (latency s, samples behind)

    # -- the truth, as samples are sent -------------------------------------
    def record(self, block, now: float) -> None:
        """Note the truth of a block of samples about to be sent, made at monotonic time ``now``."""
        seq = block.seq
        end = seq + (block.span if self.composite else len(block.values))
        if self.limit is None:
            if self.composite:
                for e in block.events:
                    if e["kind"] in ANOMALY_KINDS and e["id"] not in self._seen:
                        if not self._add(e["first"], e["last"]):
                            break
                        self._seen.add(e["id"])
            elif block.labels is not None and block.labels.any():
                x = block.labels
                edges = np.flatnonzero(np.diff(np.concatenate(([False], x, [False])).astype(np.int8)))
                for a, b in (edges.reshape(-1, 2) - [0, 1] + seq).tolist():
                    if a == seq and self._lasts and self._lasts[-1] == seq - 1:
                        self._lasts[-1] = b           # a run going on from the previous message
                    elif not self._add(a, b):
                        break
        self.next = end
        self._sent_end.append(end)
        self._sent_at.append(now)
        if len(self._sent_end) > 2 * SENT_KEEP:
            self._sent_from = self._sent_end[SENT_KEEP - 1]
            del self._sent_end[:SENT_KEEP], self._sent_at[:SENT_KEEP]

    def _add(self, first: int, last: int) -> bool:
        if len(self._firsts) >= MAX_EVENTS:
            self.limit = first
            return False
        self._firsts.append(first)
        self._lasts.append(last)
        return True

    @property
    def last(self) -> int:
        """Last scored seq (``start - 1`` when nothing is sent yet)."""
        end = self.next if self.limit is None else min(self.next, self.limit)
        return end - 1

    # -- alarms ------------------------------------------------------------
    def detect(self, seqs: list[int], scores: list[float] | None, now: float) -> int:
        """Add alarms (the seqs whose score, when given, is ``>= threshold``),
        received at monotonic time ``now``; returns how many are new.

        Raises:
            OutOfRange: a seq before the first sample or after the last one
                scored; nothing is added then.
            OverflowError: the alarms would pass :data:`MAX_ALARMS`.
        """
        last = self.last
        for s in seqs:
            if not self.start <= s <= last:
                if last < self.start:
                    raise OutOfRange(f"seq {s}: no sample has been sent yet (the first will be {self.start})")
                if s > last and self.limit is not None and s < self.next:
                    raise OutOfRange(f"seq {s}: scoring stopped at seq {last} (at most {MAX_EVENTS} events "
                                     "are kept per subscription)")
                raise OutOfRange(f"seq {s} is outside the samples sent: {self.start}..{last}")
        if scores is not None:
            seqs = [s for s, v in zip(seqs, scores) if v >= self.options.threshold]
        new = [s for s in dict.fromkeys(seqs) if s not in self._alarms]
        if len(self._alarms) + len(new) > MAX_ALARMS:
            raise OverflowError(f"at most {MAX_ALARMS} distinct alarms are kept per subscription; "
                                f"{len(self._alarms)} are")
        behind = self.next - 1
        for s in new:
            i = bisect.bisect_right(self._sent_end, s)
            made = self._sent_at[i] if s >= self._sent_from else None   # (i < len: s < self.next)
            self._alarms[s] = (None if made is None else now - made, behind - s)
        return len(new)

    @property
    def alarms(self) -> int:
        return len(self._alarms)

    # -- figures -------------------------------------------------------------
    def figures(self, interval: float | None, upto: int | None = None) -> dict[str, Any]:
        """The figures over ``start .. last`` (:func:`wsgen.scoring.score`), plus ``latency``;
        with ``upto``, over ``start .. upto`` only (the alarms after it left out).

        Raises:
            OutOfRange: ``upto`` before the first sample or after the last one scored.
        """
        last = self.last
        if upto is not None:
            if not self.start <= upto <= last:
                raise OutOfRange(f"last {upto} is outside the samples scored: {self.start}..{last}"
                                 if last >= self.start else f"last {upto}: no sample has been sent yet")
            last = upto
        n = len(self._firsts)
        events = np.stack([np.frombuffer(self._firsts, np.int64, n), np.frombuffer(self._lasts, np.int64, n)],
                          axis=1) if n else np.zeros((0, 2), np.int64)
        alarms = np.fromiter(self._alarms, np.int64, len(self._alarms))
        kept = alarms <= last
        f = score(events, alarms[kept], window=self.options.window, probation=self.options.probation,
                  start=self.start, length=last - self.start + 1, interval=interval or None)
        lat = [v for v, k in zip(self._alarms.values(), kept.tolist()) if k]
        secs = np.array([s for s, _ in lat if s is not None])
        behind = np.array([b for _, b in lat])
        f["latency"] = {
            "seconds": {"median": float(np.median(secs)) if len(secs) else None,
                        "max": float(secs.max()) if len(secs) else None},
            "samples": {"median": float(np.median(behind)) if len(behind) else None,
                        "max": float(behind.max()) if len(behind) else None},
        }
        f["options"] = self.options.to_wire()
        return f


# -- the protocol's side (called by wsgen.session) ---------------------------

def live_score(msg, gen) -> LiveScore | None:
    """The :class:`LiveScore` a ``subscribe`` asks for (``None`` without ``score``).

    Raises:
        ProtocolError: ``invalid_message`` for a stream with no ground truth
            or with backpressure ``drop`` (dropped samples have no truth).
    """
    from . import protocol as P
    if msg.score is None:
        return None
    composite = getattr(gen, "name", "") == "composite"
    if not (composite or getattr(gen, "anomalous", False)):
        raise P.ProtocolError(P.INVALID_MESSAGE, f"{gen.name!r} has no ground truth to score against: score "
                              "an anomaly kind, a composition or a replay with label_column", msg.id,
                              [{"field": "score", "value": True, "message": "needs a labelled stream"}])
    if msg.backpressure == "drop":
        raise P.ProtocolError(P.INVALID_MESSAGE, "a scored subscription needs backpressure \"block\": dropped "
                              "samples would leave holes in the truth", msg.id,
                              [{"field": "backpressure", "value": "drop", "message": "must be \"block\" with score"}])
    o = Options(msg.score.window, msg.score.probation, msg.score.threshold)
    return LiveScore(o, gen.seq, composite)


def announce(sub, reply: dict[str, Any]) -> dict[str, Any]:
    """The ``subscribed`` reply, with the scoring options of a scored subscription."""
    if sub.score is not None:
        reply["score"] = sub.score.options.to_wire()
    return reply


def final(sub) -> dict[str, Any] | None:
    """The figures of a scored subscription (for ``unsubscribed`` and the end of a stream), else ``None``."""
    return None if sub.score is None else sub.score.figures(sub.generator.sample_interval)


def _scored(session, id: str) -> LiveScore:
    from . import protocol as P
    sub = session._sub(id)
    if sub.score is None:
        raise P.ProtocolError(P.INVALID_MESSAGE, f"subscription {id!r} is not scored: subscribe with "
                              "\"score\": true (or options) to send detect and score", id)
    return sub.score


def on_detect(session, msg) -> list[dict[str, Any]]:
    """A ``detect`` message: record the alarms, reply ``detected``."""
    from . import protocol as P
    live = _scored(session, msg.id)
    seqs = [msg.seq] if msg.seqs is None else msg.seqs
    scores = None if msg.score is None and msg.scores is None else (
        [msg.score] if msg.scores is None else msg.scores)
    try:
        added = live.detect(seqs, scores, session.clock())
    except OutOfRange as exc:
        raise P.ProtocolError(P.OUT_OF_RANGE, str(exc), msg.id) from None
    except OverflowError as exc:
        raise P.ProtocolError(P.LIMIT_REACHED, str(exc), msg.id) from None
    return [P.detected(msg.id, added, live.alarms)]


def on_score(session, msg) -> list[dict[str, Any]]:
    """A ``score`` message: the figures so far (up to its ``last``, when given)."""
    from . import protocol as P
    live = _scored(session, msg.id)
    try:
        figures = live.figures(session.subscriptions[msg.id].generator.sample_interval, msg.last)
    except OutOfRange as exc:
        raise P.ProtocolError(P.OUT_OF_RANGE, str(exc), msg.id) from None
    return [P.score(msg.id, figures)]
