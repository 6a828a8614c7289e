"""The data messages of a connection's plain subscriptions, in one pass.

Fan-out is many subscriptions at a modest rate: at each wake-up a
connection owes most of its subscriptions one data message of one sample.
Through :meth:`SessionStream.take <wsgen.protocol.session.SessionStream.take>`
each such message builds a :class:`~wsgen.engine.base.Block` (two arrays),
a :class:`~wsgen.protocol.session.Chunk`, a render budget's measures and a
dict, and most of a data message's server time went there, not to the
sample itself.

A *plain* subscription (:func:`is_plain`) is one whose data message has no
optional part but ``lag``: JSON, not batched, backpressure ``block``, not
scored, no ``count`` / ``duration`` / end of data, a kind whose samples are
rendered ahead in blocks (``render_ahead``: no labels). :func:`take_plain`
walks a connection's plain subscriptions once per wake-up and writes each
due message straight to its JSON text, with its samples as Python floats
from the generator's block rendered ahead
(:meth:`~wsgen.engine.base.Generator.take_list`).

The texts are those :func:`wsgen.protocol.encoding.dumps` makes of
``take(now, limit).to_json()`` at the same instant, byte for byte: the same
fields in the same order, computed with the same expressions (the pacer's
due time ``due0 + (n - seq0) * pace``, its stream time ``wall0 + (n - tseq0)
* interval``, ``lag`` to the microsecond). tests/test_fanout.py compares
them over random schedules. A subscription this pass does not serve at this
wake-up (unpaced now, or owing more samples than a block holds, after a
stall) is handed back for the general ``take``.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, NamedTuple

import orjson

if TYPE_CHECKING:
    from wsgen.protocol.session import SessionStream

__all__ = ["PlainTake", "is_plain", "take_plain"]

#: Plain subscriptions served between two looks at the clock: one wake-up
#: stops at ``deadline`` and hands the rest back (a few microseconds each).
_CLOCK_EVERY = 64


def is_plain(sub: "SessionStream") -> bool:
    """Whether :func:`take_plain` may serve ``sub`` (module docstring): the
    subscription's options, fixed at subscribe. Its pace is checked at each
    wake-up (an ``update`` of ``speed`` may make it unpaced)."""
    from wsgen.protocol.session import SessionStream
    gen = sub.generator
    return (type(sub) is SessionStream and sub.encoding == "json" and not sub.batch
            and sub.backpressure == "block" and sub.score is None and sub.end_seq is None
            and sub.end_at is None and gen.render_ahead > 1 and gen.render_limit is None
            and not gen.anomalous)


class PlainTake(NamedTuple):
    """What :func:`take_plain` took at one wake-up.

    Attributes:
        texts: JSON text (UTF-8 bytes) of each data message, in order.
        lags: seconds each message's last sample was behind its due time
            (>= 0), one per text, for the lateness histogram.
        samples: samples taken, by generator name.
        next_due: monotonic time (s) the earliest next sample of the served
            subscriptions is due (``inf`` when none).
        rest: the subscriptions handed back for the general ``take``, in order.
    """

    texts: list[bytes]
    lags: list[float]
    samples: dict[str, int]
    next_due: float
    rest: list["SessionStream"]


def take_plain(subs: list["SessionStream"], now: float, limit: int, deadline: float = math.inf,
               clock=time.monotonic) -> PlainTake:
    """Take the data messages due at monotonic time ``now`` of the plain
    subscriptions ``subs`` (each holds at most ``limit`` samples).

    Paused subscriptions and those held by an update are skipped, as
    ``take`` skips them. Once ``clock()`` passes ``deadline`` (looked at
    every 64 subscriptions), the subscriptions not yet served are handed
    back in :attr:`PlainTake.rest`.
    """
    texts: list[bytes] = []
    lags: list[float] = []
    samples: dict[str, int] = {}
    rest: list = []
    next_due = math.inf
    dumps = orjson.dumps
    for i, sub in enumerate(subs):
        if not i % _CLOCK_EVERY and i and clock() > deadline:
            rest.extend(subs[i:])
            break
        if sub.paused or sub.held:
            continue
        pacer = sub.pacer
        pace = pacer.pace
        if not pace:
            rest.append(sub)
            continue
        gen = sub.generator
        seq = gen.seq
        due0, seq0 = pacer.due0, pacer.seq0
        due = due0 + (seq - seq0) * pace              # Pacer.due_time(seq)
        if due > now:
            if due < next_due:
                next_due = due
            continue
        if due0 + (seq + 1 - seq0) * pace > now:      # Pacer.due_count's one-sample case
            m = 1
        else:
            m = pacer.due_count(seq, now)
            if m >= gen.render_ahead or m > limit:
                rest.append(sub)
                continue
            due = due0 + (seq + m - 1 - seq0) * pace  # of the last sample
        lag = now - due
        interval = pacer.interval
        msg = {"type": "data", "id": sub.id, "seq": seq, "t": pacer.wall0 + (seq - pacer.tseq0) * interval,
               "dt": interval, "values": gen.take_list(m)}
        if lag:
            msg["lag"] = int(lag * 1e6 + 0.5) / 1e6   # as Chunk.to_json
        texts.append(dumps(msg))
        lags.append(lag)
        sub.samples_sent += m
        sub.messages_sent += 1
        name = gen.name
        samples[name] = samples.get(name, 0) + m
        due = due0 + (seq + m - seq0) * pace          # the next sample's
        if due < next_due:
            next_due = due
    return PlainTake(texts, lags, samples, next_due, rest)
