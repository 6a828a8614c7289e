"""The client's protocol logic, with no I/O (sans-I/O, as websockets'
``protocol.py`` under its ``asyncio`` layer).

:class:`ClientState` is fed what arrives (:meth:`ClientState.receive` for a
parsed reply, :meth:`StreamState.accept` for a data block) and told when the
connection dropped (:meth:`ClientState.connection_lost`); it says what to
send (:meth:`ClientState.next_unsent`) and which request a reply answers.
It never reads, writes, sleeps or awaits: :mod:`wsgen.client.connection`
drives it over a websockets connection, and tests drive it with messages.

What it keeps:

- **Pending requests** (:class:`Request`), in the order sent. A reply
  answers the oldest pending request with the same ``id`` whose reply types
  (:data:`REPLIES`) include its ``type``; an ``error`` answers the oldest
  with the same ``id`` (``None`` included: an error without id goes to the
  oldest request without id).
- **Resume positions**: each :class:`StreamState` knows the seq it expects
  next (``next_seq``; a composition: the slot of its last message and how
  many samples from that slot it holds). After a drop,
  :meth:`ClientState.connection_lost` queues a re-subscription of every
  confirmed stream from there (with its current params, seed, speed,
  encoding and what is left of ``count``), a ``pause`` for the paused ones,
  then every request still awaiting a reply, in order.
- **De-duplication**: samples whose seq was already received are dropped
  (a composition: as many samples from the resume slot as were received
  from it; its seqs may repeat and go down by design, so they are never
  compared).
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import orjson

from wsgen.client.block import ReceivedBlock, block_from_binary, block_from_json
from wsgen.client.errors import ServerError
from wsgen.protocol.messages import speed_to_wire

__all__ = ["REPLIES", "Backoff", "ClientState", "Received", "Request", "StreamState", "parse_frame"]

#: Reply types of each request type (an ``error`` reply may answer any).
REPLIES: dict[str, tuple[str, ...]] = {
    "subscribe": ("subscribed",), "update": ("updated",), "pause": ("paused",), "resume": ("resumed",),
    "unsubscribe": ("unsubscribed",), "list": ("generators",), "detect": ("detected",), "score": ("score",)}


def parse_frame(raw: str | bytes) -> ReceivedBlock | dict[str, Any]:
    """One message from the server: a :class:`ReceivedBlock` for a binary frame or a
    ``data`` message, else the parsed JSON object (a reply).

    Raises:
        ValueError, KeyError, TypeError: a malformed message (not JSON, a
            binary frame that does not decode, a ``data`` message missing a field).
    """
    if isinstance(raw, bytes):
        return block_from_binary(raw)
    msg = orjson.loads(raw)
    if msg.get("type") == "data":
        return block_from_json(msg)
    return msg


class Backoff:
    """Reconnection attempts in a row and the delay before each.

    Before attempt ``k`` (1, 2, ...) the client sleeps
    ``d/2 + uniform(0, d/2)`` seconds with ``d = min(cap, base * 2**(k-1))``
    (exponential backoff with jitter). ``max_attempts`` attempts in a row at
    most (``None``: no limit); :meth:`reset` when the server is heard again.
    """

    def __init__(self, base: float = 0.1, cap: float = 5.0, max_attempts: int | None = None,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.base, self.cap, self.max_attempts = base, cap, max_attempts
        self._uniform = uniform
        #: attempts made since the last reset
        self.attempt = 0

    def delay(self, attempt: int) -> float:
        """Seconds to sleep before attempt ``attempt`` (1, 2, ...)."""
        d = min(self.cap, self.base * 2 ** min(attempt - 1, 60))
        return d / 2 + self._uniform(0, d / 2)

    def next(self) -> float | None:
        """Count one more attempt; its delay, or ``None`` when the attempts
        in a row would exceed ``max_attempts``."""
        self.attempt += 1
        if self.max_attempts is not None and self.attempt > self.max_attempts:
            return None
        return self.delay(self.attempt)

    def reset(self) -> None:
        self.attempt = 0


class StreamState:
    """What the client knows of one subscription (no I/O).

    Attributes:
        id: subscription id (unique on the connection).
        generator: generator name (``"composite"`` for a composition,
            ``"named"`` until a named stream's kind is known).
        composition: True when subscribed with a composition (then
            ``params`` is the full spec).
        params: full current parameters (defaults filled in by the server's
            ``subscribed``, changed by its ``updated``).
        seed: the seed; speed: speed factor on the wire (number or ``"max"``).
        backpressure, encoding: delivery options as subscribed.
        stream: the named stream's name (``None``: not a named stream).
        interval: seconds of stream time between samples (from the server).
        paused: whether the server was last told to pause it.
        next_seq: seq of the next sample expected. For a composition: the
            slot its last received message started at.
        start_seq: seq of the first sample asked for.
        end_seq: the stream ends before this seq (``count``, or ``duration``
            once the interval is known); ``None``: no end.
        duration: a ``duration`` not yet turned into ``end_seq``.
        acknowledged: the server confirmed it at least once.
        first_seq: seq of the first sample the server sent (a named stream:
            the sample due when it joined); ``None`` before ``subscribed``.
        score_options, max_lag: as subscribed (``None``: not given).
        watch_token: a scored subscription's watch token (from ``subscribed``:
            another connection sends ``watch`` with it to follow the alarms,
            read-only); a new one after each re-subscription; ``None`` when
            not scored.
        last_score: the latest scoring figures received, ``None`` before any.
        finished: no more data will be accepted.
    """

    def __init__(self, id: str, generator: str | Mapping[str, Any], params: Mapping[str, Any], seed: int,
                 speed: float | str, backpressure: str, encoding: str, start_seq: int) -> None:
        self.id = id
        self.composition = isinstance(generator, Mapping)
        self.generator = "composite" if self.composition else generator
        self.params: dict[str, Any] = dict(generator if self.composition else params)
        # composition resume point: from slot ``_slot`` on, ``_have`` delivered samples were received;
        # ``_n_at_slot``: samples of the message at ``_slot`` seen on this connection
        self._slot, self._have, self._n_at_slot = start_seq, 0, 0
        self.seed = seed
        self.speed = speed_to_wire(speed)
        self.backpressure = backpressure
        self.encoding = encoding
        self.stream: str | None = None
        self.interval: float | None = None
        self.paused = False
        self.next_seq = start_seq
        self.start_seq = start_seq
        self.end_seq: int | None = None
        self.duration: float | None = None
        self.acknowledged = False
        self.first_seq: int | None = None
        self.score_options: dict[str, Any] | None = None
        self.watch_token: str | None = None
        self.max_lag: float | None = None
        self.last_score: dict[str, Any] | None = None
        self.finished = False

    @property
    def channels(self) -> list[str] | None:
        """The channel names of a composition with ``channels`` (the columns
        of ``values`` and ``labels``, from the server's ``subscribed``), else None."""
        names = self.params.get("channels") if self.composition else None
        return list(names) if isinstance(names, list) else None

    def subscribe_message(self) -> dict[str, Any]:
        """The ``subscribe`` request that (re)starts this stream where the
        client stands: from ``next_seq`` (a composition: from its resume
        slot), with the current params and what is left of ``count``."""
        if self.stream is not None:      # a named stream: resumes at its next seq (within its history)
            msg = {"type": "subscribe", "id": self.id, "stream": self.stream, "backpressure": self.backpressure,
                   "encoding": self.encoding}
            if self.next_seq:
                msg["start_seq"] = self.next_seq
            return msg
        if self.composition:
            self._n_at_slot = 0          # the server starts again at _slot
            msg = {"type": "subscribe", "id": self.id, "generator": self.params, "seed": self.seed,
                   "start_seq": self._slot, "speed": self.speed, "backpressure": self.backpressure,
                   "encoding": self.encoding}
        else:
            msg = {"type": "subscribe", "id": self.id, "generator": self.generator, "params": self.params,
                   "seed": self.seed, "start_seq": self.next_seq, "speed": self.speed,
                   "backpressure": self.backpressure, "encoding": self.encoding}
        if self.score_options is not None:
            msg["score"] = self.score_options
        if self.max_lag is not None:
            msg["max_lag"] = self.max_lag
        if self.end_seq is not None:
            msg["count"] = max(1, self.end_seq - msg["start_seq"])
        if self.duration is not None:
            msg["duration"] = self.duration
        return msg

    def accept(self, block: ReceivedBlock) -> ReceivedBlock | None:
        """The part of a received block not received before (``None``: all
        of it was, or the stream is finished); advances the resume position."""
        if self.finished:
            return None
        if self.composition:
            return self._accept_composition(block)
        if block.seq < self.next_seq:
            if block.seq + len(block) <= self.next_seq:
                return None
            block = block.slice(self.next_seq - block.seq)
        self.next_seq = block.seq + len(block)
        return block

    def _accept_composition(self, block: ReceivedBlock) -> ReceivedBlock | None:
        """A composition's block less the samples delivered from the resume
        slot that were received before a reconnection."""
        q, n = block.seq, len(block)
        if q < self._slot:
            return None                  # from before a resumption (cannot happen on one connection)
        if q > self._slot:
            self._have = max(0, self._have - self._n_at_slot)
            self._slot = q
        skip = min(self._have, n)
        self._n_at_slot = n
        self._have = max(self._have, n)
        self.next_seq = self._slot
        if skip:
            return block.slice(skip) if skip < n else None
        return block if len(block) else None

    def apply(self, msg: Mapping[str, Any]) -> bool:
        """Take in a reply about this stream; True when it ended the stream
        (``unsubscribed``, or ``ended``: its count or duration reached)."""
        kind = msg.get("type")
        if kind == "subscribed":
            if not self.acknowledged:    # where the server started it (a named stream: the live seq)
                self.first_seq = int(msg.get("seq", self.start_seq))
            self.acknowledged = True
            self.params = dict(msg.get("params", self.params))
            self.seed = msg.get("seed", self.seed)
            self.speed = msg.get("speed", self.speed)
            self.interval = msg.get("interval", self.interval)
            score = msg.get("score")
            if isinstance(score, Mapping) and "watch" in score:
                self.watch_token = score["watch"]
            if self.duration is not None and self.interval:   # the server's rule (wsgen.protocol.session.stream_end)
                seq0 = int(msg.get("seq", 0))
                end = seq0 + max(1, math.ceil(self.duration / self.interval - 1e-9))
                self.end_seq = end if self.end_seq is None else min(self.end_seq, end)
                self.duration = None
            self.paused = False
            self.next_seq = max(self.next_seq, int(msg.get("seq", 0)))
        elif kind == "updated":
            self.params = dict(msg.get("params", self.params))
            self.speed = msg.get("speed", self.speed)
            for name in ("interval", "data_interval"):
                if name in self.params:
                    self.interval = self.params[name]
        elif kind == "paused":
            self.paused = True
        elif kind == "resumed":
            self.paused = False
        elif kind == "score":
            self.last_score = msg  # type: ignore[assignment]
        elif kind in ("unsubscribed", "ended"):
            if "score" in msg:
                self.last_score = msg["score"]
            return True
        return False


@dataclass(eq=False)
class Request:
    """A request awaiting its reply.

    ``build`` makes the message (called at each send: a re-subscription is
    built from the stream's state then); ``replies``: the reply types that
    answer it; ``waiter``: whatever the I/O layer resolves with the reply
    (an ``asyncio.Future``); ``internal``: sent by the client itself (a
    re-subscription or re-pause after a drop); ``sent``: on the current
    connection.
    """

    build: Callable[[], dict[str, Any]]
    id: str | None
    replies: tuple[str, ...]
    waiter: Any = None
    internal: bool = False
    sent: bool = False

    def message(self) -> dict[str, Any]:
        """The message to send now (marks the request sent)."""
        self.sent = True
        return self.build()


@dataclass
class Received:
    """What one reply did (:meth:`ClientState.receive`).

    ``request``: the pending request it answered (``None``: none matched);
    ``error``: the :class:`ServerError` of an ``error`` reply (for
    ``request``, or matched to nothing); ``ended``: the stream it ended
    (removed from :attr:`ClientState.streams`), with ``end_error`` the
    refusal of its re-subscription (``None``: it ended normally).
    """

    request: Request | None = None
    error: ServerError | None = None
    ended: StreamState | None = None
    end_error: ServerError | None = None


class ClientState:
    """The protocol state of one client: its streams by id and its pending
    requests (see the module docstring). No I/O."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamState] = {}
        self.pending: list[Request] = []
        self._ids = itertools.count(1)

    @property
    def awaiting_reply(self) -> bool:
        """True while any request (the client's own included) awaits its reply."""
        return bool(self.pending)

    def new_id(self, generator: str | Mapping[str, Any]) -> str:
        """A free subscription id: ``"<generator>-<n>"`` (``composite-<n>``
        for a composition), ``n`` counting up from 1 on this client."""
        if not isinstance(generator, str):
            generator = "composite"
        while True:
            ident = f"{generator}-{next(self._ids)}"
            if ident not in self.streams:
                return ident

    def add(self, stream: StreamState) -> bool:
        """Register a stream before its ``subscribe`` is sent (data may follow
        the reply at once). False if the id is taken: the request is sent
        anyway and the server refuses it (``duplicate_id``)."""
        if stream.id in self.streams:
            return False
        self.streams[stream.id] = stream
        return True

    def discard(self, stream: StreamState) -> None:
        """Forget ``stream`` (if registered as that object) and finish it."""
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        stream.finished = True

    def request(self, build: Callable[[], dict[str, Any]], id: str | None, replies: tuple[str, ...],
                waiter: Any = None) -> Request:
        """Add a pending request (sent now or after reconnecting)."""
        req = Request(build, id, replies, waiter)
        self.pending.append(req)
        return req

    def forget(self, req: Request) -> None:
        """Drop a request nobody awaits any more (timed out, cancelled)."""
        if req in self.pending:
            self.pending.remove(req)

    def next_unsent(self) -> Request | None:
        """The oldest pending request not sent on this connection."""
        return next((r for r in self.pending if not r.sent), None)

    def receive(self, msg: dict[str, Any]) -> Received:
        """Take in a reply (any message but ``data``): update its stream and
        match it to the request it answers."""
        kind, ident = msg.get("type"), msg.get("id")
        out = Received()
        stream = self.streams.get(ident) if isinstance(ident, str) else None
        if stream is not None and stream.apply(msg):
            del self.streams[stream.id]
            stream.finished = True
            out.ended = stream
        if kind == "error":
            out.error = ServerError.from_message(msg)
        for req in self.pending:
            if req.id == ident and (kind == "error" or kind in req.replies):
                self.pending.remove(req)
                out.request = req
                break
        req = out.request
        if req is not None and req.internal and out.error is not None and "subscribed" in req.replies:
            refused = self.streams.get(req.id)          # its re-subscription refused: the stream is gone
            if refused is not None:
                del self.streams[refused.id]
                refused.finished = True
                out.ended, out.end_error = refused, out.error
        return out

    def connection_lost(self) -> None:
        """The connection dropped: queue, to send on the next one, a
        re-subscription of every confirmed stream (then a ``pause`` if it was
        paused), then every request still awaiting a reply, in order. The
        client's own requests of the lost connection are dropped."""
        old = [r for r in self.pending if not r.internal]
        for req in old:
            req.sent = False
        fresh: list[Request] = []
        for stream in self.streams.values():
            if not stream.acknowledged or stream.finished:
                continue   # its own subscribe request is among ``old``
            fresh.append(Request(stream.subscribe_message, stream.id, REPLIES["subscribe"], internal=True))
            if stream.paused:
                pause = {"type": "pause", "id": stream.id}
                fresh.append(Request(lambda m=pause: m, stream.id, REPLIES["pause"], internal=True))
        self.pending = fresh + old

    def clear(self) -> tuple[list[StreamState], list[Request]]:
        """Forget everything (the connection is gone for good or closed):
        the streams (now finished) and the callers' pending requests, for the
        I/O layer to end with an error."""
        streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            stream.finished = True
        pending, self.pending = self.pending, []
        return streams, [r for r in pending if not r.internal]
