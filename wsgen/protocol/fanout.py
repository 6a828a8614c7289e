"""The data messages of a connection's plain subscriptions, in one pass.

Fan-out is many subscriptions at a modest rate: at each wake-up a
connection owes most of its subscriptions one data message of one sample.
Through :meth:`SessionStream.take <wsgen.protocol.session.SessionStream.take>`
each such message builds a :class:`~wsgen.engine.base.Block` (two arrays),
a :class:`~wsgen.protocol.session.Chunk`, a render budget's measures and a
dict, and most of a data message's server time went there, not to the
sample itself.

A *plain* subscription (:func:`is_plain`) is one whose data message has no
optional part but ``lag``: JSON, backpressure ``block``, not
scored, no ``count`` / ``duration`` / end of data, a kind whose samples are
rendered ahead in blocks (``render_ahead``: no labels, and no state but
``seq``). :func:`take_plain` walks a connection's plain subscriptions once
per wake-up and writes each due message straight to its JSON text:

* one sample (the common case): the text was written ahead, with those of
  the next samples (:class:`TextsAhead`: 64, in a few C calls and one join
  a message), so the message costs a list index and its ``lag``. Texts
  ahead are written again when the generator's parameters change (its
  ``version``) or the pacer re-anchors its stream clock (its ``epoch``).
  A subscription's first texts ahead are fewer, 1 to 64 by its id, so that
  subscriptions started together do not all write theirs at one wake-up;
* a few samples (a late wake-up): the JSON of a dict, the samples from
  :meth:`~wsgen.engine.base.Generator.take` as floats.

The message texts of one connection's wake-up are mostly written from
memory that another connection's wake-up has since pushed out of the CPU's
caches: writing 64 at once from one subscription's state is what makes them
cheap, more than the fewer Python steps.

Subscriptions at one pace on the connection's pacing grid fall due at the
same instants: :class:`PlainPass` serves each such *lockstep* group with
one look at its schedule, and each member's message is then its text ahead
and the group's shared end. The pump serves a connection's plain
subscriptions through the passes of its send order.

A batched plain subscription's message goes in the wake-up's ``batch``
message, whose text is the data messages' texts joined
(:func:`batch_text`).

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
import zlib
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import orjson

from wsgen.protocol.encoding import wire_lag

if TYPE_CHECKING:
    from wsgen.protocol.session import SessionStream

__all__ = ["PlainPass", "PlainTake", "SendOrder", "TextsAhead", "batch_text", "is_plain", "take_plain"]

#: Plain subscriptions served between two looks at the clock: one wake-up
#: stops at ``deadline`` and hands the rest back (a few microseconds each).
_CLOCK_EVERY = 64
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: One-sample data messages written ahead at once (:class:`TextsAhead`).
AHEAD = 64
#: Takes between two formings of a pass's lockstep groups while some of its
#: subscriptions are in none (:class:`PlainPass`).
REGROUP_EVERY = 64


def is_plain(sub: "SessionStream") -> bool:
    """Whether :func:`take_plain` may serve ``sub`` (module docstring): the
    subscription's options, fixed at subscribe. Its pace is checked at each
    wake-up (an ``update`` of ``speed`` may make it unpaced)."""
    from wsgen.protocol.session import SessionStream
    gen = sub.generator
    return (type(sub) is SessionStream and sub.encoding == "json"
            and sub.backpressure == "block" and sub.score is None and sub.end_seq is None
            and sub.end_at is None and gen.render_ahead > 1 and gen.render_limit is None
            and not gen.anomalous)


class SendOrder(NamedTuple):
    """A connection's subscriptions as a wake-up serves them
    (:meth:`Session.send_order <wsgen.protocol.session.Session.send_order>`),
    valid until a message changes them.

    Attributes:
        plain: plain subscriptions sending their own frames (:func:`take_plain`).
        batched: plain subscriptions whose messages share the ``batch`` message.
        general: the others (``take``): those sending their own frames
            first, the batched ones last.
        plain_pass: the pass serving ``plain`` (:class:`PlainPass`).
        batched_pass: the pass serving ``batched``.
    """

    plain: list["SessionStream"]
    batched: list["SessionStream"]
    general: list["SessionStream"]
    plain_pass: "PlainPass"
    batched_pass: "PlainPass"

    @classmethod
    def of(cls, subs: list["SessionStream"]) -> "SendOrder":
        """The order of ``subs`` (plain ones flagged ``plain`` at subscribe)."""
        plain = [s for s in subs if s.plain and not s.batch]
        batched = [s for s in subs if s.plain and s.batch]
        general = [s for s in subs if not s.plain and not s.batch] + [s for s in subs if not s.plain and s.batch]
        return cls(plain, batched, general, PlainPass(plain), PlainPass(batched))


def batch_text(texts: list[bytes]) -> bytes:
    """The ``batch`` message holding the data messages ``texts`` (JSON):
    the bytes :func:`wsgen.protocol.encoding.dumps` makes of
    ``messages.batch`` of them (orjson writes no whitespace)."""
    return b'{"type":"batch","messages":[' + b",".join(texts) + b"]}"


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


class TextsAhead:
    """The JSON texts of a plain subscription's next one-sample data
    messages, without their end (``lag`` and the closing brace).

    Attributes:
        first: seq of the first text.
        texts: one per sample from ``first`` on (``len(texts)`` >= 1).
        epoch: the pacer's ``epoch`` they were stamped under.
        version: the generator's ``version`` their values came from.
    """

    __slots__ = ("first", "texts", "epoch", "version")

    def __init__(self, sub: "SessionStream", m: int = AHEAD) -> None:
        gen, pacer = sub.generator, sub.pacer
        n = gen.seq
        values = np.ascontiguousarray(gen.peek(m), dtype=np.float64)   # (a no-op: float64 by contract)
        interval = pacer.interval
        dumps = orjson.dumps
        # each field's numbers in one call, split at the commas (numbers hold none):
        # the same texts as orjson writes them one by one
        seqs = dumps(list(range(n, n + m)))[1:-1].split(b",")
        stamps = dumps(pacer.stream_times(n, m), option=_NUMPY)[1:-1].split(b",")
        samples = dumps(values, option=_NUMPY)[1:-1].split(b",")
        head = b'{"type":"data","id":' + dumps(sub.id) + b',"seq":'
        middle = b',"dt":' + dumps(interval) + b',"values":['
        stamp = b',"t":'
        self.texts = [b"".join((head, s, stamp, t, middle, v, b"]")) for s, t, v in zip(seqs, stamps, samples)]
        self.first, self.epoch, self.version = n, pacer.epoch, gen.version


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
    ends: dict[float, bytes] = {}          # lag -> the end of a text ahead (the wake-up's subscriptions share few)
    next_due = math.inf
    dumps = orjson.dumps
    for sub in subs if len(subs) <= _CLOCK_EVERY else _until(subs, deadline, clock, rest):
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
        lag = now - due
        if due0 + (seq + 1 - seq0) * pace > now:      # Pacer.due_count's one-sample case
            m = 1
            ahead = sub.texts_ahead
            if ahead is None:
                ahead = sub.texts_ahead = TextsAhead(sub, 1 + zlib.crc32(sub.id.encode()) % AHEAD)
            elif not 0 <= seq - ahead.first < len(ahead.texts) or ahead.epoch != pacer.epoch \
                    or ahead.version != gen.version:
                ahead = sub.texts_ahead = TextsAhead(sub)
            end = ends.get(lag)
            if end is None:
                end = ends[lag] = b',"lag":%b}' % dumps(wire_lag(lag)) if lag else b"}"
            texts.append(ahead.texts[seq - ahead.first] + end)
            gen.seq = seq + 1
        else:
            m = pacer.due_count(seq, now)
            if m >= gen.render_ahead or m > limit:
                rest.append(sub)
                continue
            lag = now - (due0 + (seq + m - 1 - seq0) * pace)   # of the last sample
            interval = pacer.interval
            msg = {"type": "data", "id": sub.id, "seq": seq, "t": pacer.wall0 + (seq - pacer.tseq0) * interval,
                   "dt": interval, "values": gen.take(m).values.tolist()}
            if lag:
                msg["lag"] = wire_lag(lag)
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


def _until(subs: list, deadline: float, clock, rest: list):
    """``subs`` one by one, until ``clock()`` (looked at every
    :data:`_CLOCK_EVERY`) passes ``deadline``; those not given are put in
    ``rest``."""
    for start in range(0, len(subs), _CLOCK_EVERY):
        if start and clock() > deadline:
            rest.extend(subs[start:])
            return
        yield from subs[start:start + _CLOCK_EVERY]


class PlainPass:
    """:func:`take_plain` over one list of plain subscriptions, with those
    in lockstep served together.

    Subscriptions on one pacing grid at one pace fall due at the same
    instants (pacing.py: a connection's streams of up to ``align_s``
    between samples start on its grid): their due times are the same float
    while none is paused, updated or late. A *lockstep* group is such a set
    (two or more with the same ``pace``, ``due0`` and ``seq - seq0``). At a
    wake-up one look at the group's schedule says whether one sample of
    each is due, and then each member's message is its text ahead and the
    shared end (``lag``): the per-subscription part is a list index, a
    concatenation and three counters. The texts are those take_plain
    writes, byte for byte (the same :class:`TextsAhead`, the same due time
    and ``lag``).

    The groups are formed at the first take, again after one broke (a
    member's ``seq`` moved by something else), and every
    :data:`REGROUP_EVERY` takes while some subscriptions are in none
    (formed at a late wake-up, two of one schedule may have been a sample
    apart). Subscriptions in no group (alone at their pace, paused,
    unpaced) go through take_plain; so do a group's members at a late
    wake-up (owing more than one sample). A message that may change a
    subscription (subscribe, update, pause, resume, unsubscribe) renews the
    send order, and so the pass
    (:meth:`Session.send_order <wsgen.protocol.session.Session.send_order>`):
    a group never outlives a pause, resume or update of a member.
    """

    __slots__ = ("subs", "groups", "loose", "_until_regroup")

    def __init__(self, subs: list["SessionStream"]) -> None:
        self.subs = subs
        self.groups: list[_Lockstep] | None = None    # formed at the first take
        self.loose: list["SessionStream"] = subs
        self._until_regroup = 0

    def take(self, now: float, limit: int, deadline: float = math.inf, clock=time.monotonic) -> PlainTake:
        """:func:`take_plain` of the subscriptions at ``now``: the same
        messages (lockstep groups first), lags, samples, next due time and
        subscriptions handed back."""
        if self.groups is None:
            self._regroup()
        elif self._until_regroup <= 0:
            self._regroup()              # subscriptions that were apart may have come into step
        self._until_regroup -= 1
        if not self.groups:
            return take_plain(self.loose, now, limit, deadline, clock)
        texts: list[bytes] = []
        lags: list[float] = []
        samples: dict[str, int] = {}
        next_due = math.inf
        aside: list = []
        for group in self.groups:
            due = group.take(now, texts, lags, samples)
            if due is None:
                aside += group.subs
                if group.broken:
                    self.groups = None        # formed again at the next take
            elif due < next_due:
                next_due = due
        loose = aside + self.loose if aside else self.loose
        if not loose:
            return PlainTake(texts, lags, samples, next_due, [])
        got = take_plain(loose, now, limit, deadline, clock)
        texts += got.texts
        lags += got.lags
        for name, n in got.samples.items():
            samples[name] = samples.get(name, 0) + n
        return PlainTake(texts, lags, samples, min(next_due, got.next_due), got.rest)

    def _regroup(self) -> None:
        by_schedule: dict[tuple, list] = {}
        loose = []
        for sub in self.subs:
            pacer = sub.pacer
            if sub.paused or sub.held or not pacer.pace:
                loose.append(sub)
            else:
                by_schedule.setdefault((pacer.pace, pacer.due0, sub.generator.seq - pacer.seq0), []).append(sub)
        groups = []
        for members in by_schedule.values():
            if len(members) > 1:
                groups.append(_Lockstep(members))
            else:
                loose += members
        self.groups, self.loose = groups, loose
        # formed at a late wake-up, streams of one schedule may have been apart (one behind):
        # look again after a while while some are not in a group or one schedule has two
        apart = loose or len({(g.pacer.pace, g.pacer.due0) for g in groups}) < len(groups)
        self._until_regroup = REGROUP_EVERY if apart else 1 << 62


class _Lockstep:
    """Plain subscriptions falling due at the same instants
    (:class:`PlainPass`). Positions are counted in ``j = seq - seq0``, the
    same for every member; member ``i``'s ``seq`` is ``j + offsets[i]``.

    Attributes:
        broken: True once the members' ``seq`` no longer keep their
            offsets, or one is paused or held (nothing does that while the
            pass lives, but a group checks it at every take).
    """

    __slots__ = ("subs", "gens", "pacer", "offsets", "refs", "renew", "names", "broken")

    def __init__(self, subs: list["SessionStream"]) -> None:
        self.subs = subs
        self.gens = [s.generator for s in subs]
        self.pacer = pacer = subs[0].pacer
        j = subs[0].generator.seq - pacer.seq0
        self.offsets = [g.seq - j for g in self.gens]
        self.broken = False
        self.names: dict[str, int] = {}
        for g in self.gens:
            self.names[g.name] = self.names.get(g.name, 0) + 1
        self.refs: list[tuple[list[bytes], int]] = []
        for sub, gen, offset in zip(subs, self.gens, self.offsets):
            ahead = sub.texts_ahead           # as take_plain checks it
            if ahead is None:
                ahead = sub.texts_ahead = TextsAhead(sub, 1 + zlib.crc32(sub.id.encode()) % AHEAD)
            elif not 0 <= gen.seq - ahead.first < len(ahead.texts) or ahead.epoch != sub.pacer.epoch \
                    or ahead.version != gen.version:
                ahead = sub.texts_ahead = TextsAhead(sub)
            self.refs.append((ahead.texts, ahead.first - offset))     # text of j: texts[j - (first - offset)]
        self.renew = min(len(texts) + start for texts, start in self.refs)   # the first j some member lacks

    def take(self, now: float, texts: list[bytes], lags: list[float], samples: dict[str, int]) -> float | None:
        """Append each member's message if one sample each is due at
        ``now``; return the next due time, or None (nothing taken: the
        members go through take_plain) when more than one sample is due (a
        late wake-up) or the group is :attr:`broken`."""
        gens, offsets = self.gens, self.offsets
        j = gens[0].seq - offsets[0]
        for sub, gen, offset in zip(self.subs, gens, offsets):
            if gen.seq - offset != j or sub.paused or sub.held:
                self.broken = True
                return None
        pacer = self.pacer
        due0, pace = pacer.due0, pacer.pace
        # the members' own expression, due0 + (seq - seq0) * pace: seq - seq0 == j for each
        due = due0 + j * pace
        if due > now:
            return due
        next_due = due0 + (j + 1) * pace
        if next_due <= now:
            return None                   # a late wake-up: take_plain's several-sample messages
        lag = now - due
        end = b',"lag":%b}' % orjson.dumps(wire_lag(lag)) if lag else b"}"
        if j >= self.renew:
            self._renew(j)
        texts += [t[j - start] + end for t, start in self.refs]
        lags += [lag] * len(gens)
        for gen in gens:
            gen.seq += 1
        for sub in self.subs:
            sub.samples_sent += 1
            sub.messages_sent += 1
        for name, n in self.names.items():
            samples[name] = samples.get(name, 0) + n
        return next_due

    def _renew(self, j: int) -> None:
        """Point at the texts ahead of ``j`` of each member, written anew
        for those that have none (their last ones were sent, or a late
        wake-up went past them)."""
        refs, subs, offsets = self.refs, self.subs, self.offsets
        for i, (texts, start) in enumerate(refs):
            if not 0 <= j - start < len(texts):
                sub = subs[i]
                ahead = sub.texts_ahead = TextsAhead(sub)
                refs[i] = (ahead.texts, ahead.first - offsets[i])
        self.renew = min(len(texts) + start for texts, start in refs)
