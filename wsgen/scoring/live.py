"""Live scoring of a detector on its own subscription (no I/O).

A subscription opened with ``"score"`` (docs/protocol.md, "Scoring a
detector") keeps the ground truth of every sample it sends and the alarms
its client reports back with ``detect``; ``score`` (and ``unsubscribed``,
and the end of a stream with ``count``) gives the figures of
:func:`wsgen.scoring.figures.score` over the samples sent so far, plus the
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
import math
import secrets
import weakref
from array import array
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from wsgen.engine.injectors import INJECTORS
from wsgen.scoring.figures import PROBATION, WindowRule, score
from wsgen.errors import WsgenError

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


class OutOfRange(WsgenError, ValueError):
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
        self._alarms: set[int] = set()    # the alarms' seqs; per alarm, in the order they came:
        self._alarm_seqs = array("q")     # its seq,
        self._alarm_secs = array("d")     # its latency in seconds (NaN: its message is no longer kept),
        self._alarm_behind = array("q")   # how many samples had been sent after it
        self.token: str | None = None     # watch token (register)
        self.watchers: list[tuple[weakref.ref, str]] = []   # (watcher session, its watch id)
        #: the owner's delivery speed now, as the wire writes it (set by announce)
        self.speed: Callable[[], float | str | None] = lambda: None

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
    def detect(self, seqs: list[int], scores: list[float] | None, now: float) -> list[int]:
        """Add alarms (the seqs whose score, when given, is ``>= threshold``),
        received at monotonic time ``now``; returns the new ones.

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
            self._alarms.add(s)
            self._alarm_seqs.append(s)
            self._alarm_secs.append(math.nan if made is None else now - made)
            self._alarm_behind.append(behind - s)
        if new and self.watchers:
            _notify(self, lambda wid: {"type": "detections", "id": wid, "seqs": new})
        return new

    @property
    def alarms(self) -> int:
        return len(self._alarms)

    # -- figures -------------------------------------------------------------
    def figures(self, interval: float | None, upto: int | None = None) -> dict[str, Any]:
        """The figures over ``start .. last`` (:func:`wsgen.scoring.figures.score`), plus ``latency``;
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
        m = len(self._alarm_seqs)
        alarms = np.frombuffer(self._alarm_seqs, np.int64, m) if m else np.zeros(0, np.int64)
        kept = alarms <= last
        f = score(events, alarms[kept], window=self.options.window, probation=self.options.probation,
                  start=self.start, length=last - self.start + 1, interval=interval or None)
        secs = np.frombuffer(self._alarm_secs, np.float64, m)[kept] if m else np.zeros(0)
        secs = secs[~np.isnan(secs)]
        behind = np.frombuffer(self._alarm_behind, np.int64, m)[kept] if m else np.zeros(0, np.int64)
        f["latency"] = {
            "seconds": {"median": float(np.median(secs)) if len(secs) else None,
                        "max": float(secs.max()) if len(secs) else None},
            "samples": {"median": float(np.median(behind)) if len(behind) else None,
                        "max": float(behind.max()) if len(behind) else None},
        }
        f["options"] = self.options.to_wire()
        return f


# -- the protocol's side (called by wsgen.protocol.session) ---------------------------

def live_score(msg, gen) -> LiveScore | None:
    """The :class:`LiveScore` a ``subscribe`` asks for (``None`` without ``score``).

    Raises:
        ProtocolError: ``invalid_message`` for a stream with no ground truth
            or with backpressure ``drop`` (dropped samples have no truth).
    """
    from wsgen.protocol import messages as P
    if msg.score is None:
        return None
    composite = getattr(gen, "name", "") == "composite"
    if getattr(gen, "channels", None):
        raise P.ProtocolError(P.INVALID_MESSAGE, "a composition with channels has one truth per channel, not "
                              "one score: score a single-channel composition", msg.id,
                              [{"field": "score", "value": True, "message": "not available with channels"}])
    if not (composite or getattr(gen, "anomalous", False)):
        raise P.ProtocolError(P.INVALID_MESSAGE, f"{gen.name!r} has no ground truth to score against: score "
                              "an anomaly kind, a composition or a replay with label_column", msg.id,
                              [{"field": "score", "value": True, "message": "needs a labelled stream"}])
    if msg.backpressure == "drop":
        raise P.ProtocolError(P.INVALID_MESSAGE, "a scored subscription needs backpressure \"block\": dropped "
                              "samples would leave holes in the truth", msg.id,
                              [{"field": "backpressure", "value": "drop", "message": "must be \"block\" with score"}])
    o = Options(msg.score.window, msg.score.probation, msg.score.threshold)
    live = LiveScore(o, gen.seq, composite)
    register(live, gen)
    return live


def announce(sub, reply: dict[str, Any]) -> dict[str, Any]:
    """The ``subscribed`` reply, with the scoring options of a scored subscription."""
    if sub.score is not None:
        reply["score"] = {**sub.score.options.to_wire(), "watch": sub.score.token}
        # the owner's delivery speed, as it is now (an update may change it), for
        # ``watching.of``; a weak reference: no cycle from the token to the subscription
        from wsgen.protocol.messages import speed_to_wire
        pacer = weakref.ref(sub.pacer)
        sub.score.speed = lambda: None if pacer() is None else speed_to_wire(pacer().speed)
    return reply


def final(sub) -> dict[str, Any] | None:
    """The figures of a scored subscription (for ``unsubscribed`` and the end of a stream), else
    ``None``; its watchers hear ``unwatched`` with them."""
    if sub.score is None:
        return None
    figures = sub.score.figures(sub.generator.sample_interval)
    end = getattr(sub, "end_seq", None)
    released(sub.score, "ended" if end is not None and sub.generator.seq >= end else "unsubscribed", figures)
    return figures


def _scored(session, id: str) -> LiveScore:
    from wsgen.protocol import messages as P
    sub = session._sub(id)
    if sub.score is None:
        raise P.ProtocolError(P.INVALID_MESSAGE, f"subscription {id!r} is not scored: subscribe with "
                              "\"score\": true (or options) to send detect and score", id)
    return sub.score


def on_detect(session, msg) -> list[dict[str, Any]]:
    """A ``detect`` message: record the alarms, reply ``detected``."""
    from wsgen.protocol import messages as P
    live = _scored(session, msg.id)
    seqs = [msg.seq] if msg.seqs is None else msg.seqs
    scores = None if msg.score is None and msg.scores is None else (
        [msg.score] if msg.scores is None else msg.scores)
    try:
        added = len(live.detect(seqs, scores, session.clock()))
    except OutOfRange as exc:
        raise P.ProtocolError(P.OUT_OF_RANGE, str(exc), msg.id) from None
    except OverflowError as exc:
        raise P.ProtocolError(P.LIMIT_REACHED, str(exc), msg.id) from None
    return [P.detected(msg.id, added, live.alarms)]


def on_score(session, msg) -> list[dict[str, Any]]:
    """A ``score`` message: the figures so far (up to its ``last``, when given)."""
    from wsgen.protocol import messages as P
    live = watched(session, msg.id)
    interval = live.interval() if live is not None else None
    if live is None:
        live = _scored(session, msg.id)
        interval = session.subscriptions[msg.id].generator.sample_interval
    try:
        figures = live.figures(interval, msg.last)
    except OutOfRange as exc:
        raise P.ProtocolError(P.OUT_OF_RANGE, str(exc), msg.id) from None
    return [P.score(msg.id, figures)]


# -- watching another connection's scored subscription (read-only) ------------
#
# A scored subscription has a watch token (in its ``subscribed`` reply). Any
# connection of the same server process that knows the token can ``watch``
# it: it gets the alarms so far, then each new one as the owner reports it
# (``detections``), asks ``score`` with its watch id, and hears ``unwatched``
# when the owner unsubscribes, ends or leaves. Nothing else: a watcher cannot
# detect, change or stop the stream. Tokens are per process: with
# ``wsgen serve --workers N`` a watcher must reach the owner's worker.

#: Watches one connection may hold.
MAX_WATCHES = 64

_tokens: "weakref.WeakValueDictionary[str, LiveScore]" = weakref.WeakValueDictionary()
#: watcher session -> its watch ids -> the watched subscription's LiveScore
_watches: "weakref.WeakKeyDictionary[Any, dict[str, LiveScore]]" = weakref.WeakKeyDictionary()


def register(live: LiveScore, gen) -> str:
    """Give ``live`` a watch token, and what a watcher needs to draw the same stream."""
    token = secrets.token_urlsafe(16)
    live.token = token
    first = live.start          # (not live itself: no reference cycle, the token goes with the subscription)
    live.describe = lambda: {"generator": gen.name, "params": gen.params.model_dump(), "seed": gen.seed,
                             "first": first, "interval": gen.sample_interval}
    live.interval = lambda: gen.sample_interval
    _tokens[token] = live
    return token


def _notify(live: LiveScore, make) -> None:
    """Push ``make(watch_id)`` to every watcher still there."""
    for ref, wid in list(live.watchers):
        session = ref()
        if session is None or _watches.get(session, {}).get(wid) is not live:
            continue
        push = getattr(session, "push", None)
        if push is not None:
            push(make(wid))


def released(live: LiveScore | None, reason: str, figures: dict[str, Any] | None) -> None:
    """The owner unsubscribed, its stream ended, or it left (``reason``): tell the watchers."""
    if live is None or live.token is None:
        return
    tokens, watches = _tokens, _watches
    tokens.pop(live.token, None)
    live.token = None
    _notify(live, lambda wid: {"type": "unwatched", "id": wid, "reason": reason,
                               **({} if figures is None else {"score": figures})})
    for ref, wid in live.watchers:
        session = ref()
        if session is not None and watches.get(session, {}).get(wid) is live:
            del watches[session][wid]
    live.watchers.clear()


def session_closed(session) -> None:
    """A connection left: its scored subscriptions' watchers hear ``unwatched``; its own watches end."""
    for sub in list(session.subscriptions.values()):
        live = getattr(sub, "score", None)
        if isinstance(live, LiveScore):
            released(live, "closed", None)
    _watches.pop(session, None)


def on_watch(session, msg) -> list[dict[str, Any]]:
    """A ``watch`` message: start watching by token; reply ``watching``."""
    from wsgen.protocol import messages as P
    mine = _watches.setdefault(session, {})
    if msg.id in mine or msg.id in session.subscriptions:
        raise P.ProtocolError(P.DUPLICATE_ID, f"id {msg.id!r} is already in use on this connection; pick "
                              "another id for the watch", msg.id)
    if len(mine) >= MAX_WATCHES:
        raise P.ProtocolError(P.LIMIT_REACHED, f"at most {MAX_WATCHES} watches per connection; unwatch one first",
                              msg.id)
    live = _tokens.get(msg.token)
    if live is None:
        raise P.ProtocolError(P.UNKNOWN_ID, "no scored subscription with this watch token in this server process "
                              "(it ended, or its owner left; with --workers N, connect to the owner's worker)",
                              msg.id)
    mine[msg.id] = live
    live.watchers.append((weakref.ref(session), msg.id))
    of = {**live.describe(), "speed": live.speed()}
    return [{"type": "watching", "id": msg.id, "of": of, "options": live.options.to_wire(),
             "last": live.last, "alarms": sorted(live._alarms)}]


def on_unwatch(session, msg) -> list[dict[str, Any]]:
    from wsgen.protocol import messages as P
    mine = _watches.get(session, {})
    if mine.pop(msg.id, None) is None:
        known = ", ".join(sorted(mine)) or "none"
        raise P.ProtocolError(P.UNKNOWN_ID, f"no watch with id {msg.id!r}; watches: {known}", msg.id)
    return [{"type": "unwatched", "id": msg.id, "reason": "unwatched"}]


def watched(session, id: str) -> LiveScore | None:
    """The subscription a watch id of ``session`` watches, if it is one."""
    return _watches.get(session, {}).get(id)
