"""Python client for the wsgen WebSocket server (protocol v1).

Async use::

    from wsgen.client import Client

    async with Client("ws://127.0.0.1:8765") as c:
        sub = await c.subscribe("sine", {"amplitude": 2}, seed=1, speed="max")
        block = await sub.take(1000)          # exactly 1000 samples
        block.values                          # float64, shape (1000,)
        block.seqs, block.timestamps          # int64 / float64 (Unix s), shape (1000,)
        seq = await sub.update(frequency=5)   # first sample with the new value
        async for block in sub:               # blocks as they arrive
            ...

Sync use (the async client runs in a background thread with its own event
loop)::

    from wsgen.client import stream, to_numpy

    values, labels, seqs, timestamps = to_numpy(url, "random", 10_000, seed=7)
    for block in stream(url, "sine", {"interval": 0.1}):
        ...

Delivery
    One reader task reads the connection and puts each data block into the
    queue of its subscription. Every queue holds at most ``queue_size``
    blocks; when one is full the reader waits (the server then waits too:
    backpressure ``block``, or skips samples: backpressure ``drop``), so no
    subscription loses data because another one is read slowly. While a
    request (update, pause, list...) awaits its reply the reader keeps
    reading past the bound, so awaiting a reply never deadlocks. Consume
    every subscription of a connection concurrently (or pause/unsubscribe
    the ones you do not read): a subscription whose queue stays full stalls
    the others on the same connection.

Reconnection
    When the connection drops (not after :meth:`Client.close`), the client
    reconnects with exponential backoff and jitter: before attempt ``k``
    (1, 2, ...) it sleeps ``d/2 + uniform(0, d/2)`` with
    ``d = min(backoff_cap, backoff_base * 2**(k-1))``. It then re-subscribes
    every subscription with the same id, generator, seed, speed, encoding and
    its *current* params (after updates) from ``start_seq`` = the next seq it
    expects, re-pauses paused ones and re-sends requests still awaiting a
    reply. Samples whose seq was already received are dropped, so a consumer
    sees no gap and no repeat.

    Caveat: the server rebuilds the generator from the current params and
    jumps to ``start_seq``, so the resumed samples are those of a stream that
    had the current params from the start. They equal the uninterrupted
    stream's when no parameter changed before the drop. After an update they
    still do for changes that carry no state (a waveform's amplitude, offset,
    phase or duty cycle; a distribution's parameters; the probability and
    range of ``random``), but not for changes that move state: a waveform's
    ``frequency`` or ``sample_rate`` (its phase accumulator restarts from
    the new value) or the event and timing parameters of the other anomaly
    kinds (their events are drawn again from the start).

    The stream time ``t`` of a resumed stream is anchored at the time of the
    resumption (as after a pause), not at the original start.

Errors
    :class:`ServerError` (``code``, ``message``, ``details``) is raised by the
    awaiting call when the server refuses a request, e.g. ``unknown_generator``,
    ``invalid_params`` (``details``: one dict per field: ``field``, ``value``,
    ``message``), ``duplicate_id``, ``unknown_id``, ``limit_reached``.
    :class:`ConnectionLost` is raised by pending calls and by iteration when
    the connection is gone for good (``reconnect=False``, attempts exhausted,
    or the server refused the handshake with a 4xx status).
    :class:`ClientClosed` is raised by calls made after :meth:`Client.close`.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import secrets
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from wsgen.engine.base import SEED_DRAW_LIMIT
from wsgen.protocol.encoding import decode_binary
from wsgen.protocol.messages import speed_to_wire
from wsgen.errors import WsgenError

__all__ = ["Block", "Client", "ClientClosed", "ConnectionLost", "DEFAULT_URL", "Subscription", "SyncClient",
           "ServerError", "SyncSubscription", "WsgenError", "stream", "to_numpy"]

log = logging.getLogger("wsgen.client")

DEFAULT_URL = "ws://127.0.0.1:8765"
#: Reply types of each request type (an ``error`` reply may answer any).
_REPLIES = {"subscribe": ("subscribed",), "update": ("updated",), "pause": ("paused",),
            "resume": ("resumed",), "unsubscribe": ("unsubscribed",), "list": ("generators",),
            "detect": ("detected",), "score": ("score",)}
#: Options of :func:`stream` / :func:`to_numpy` that go to ``subscribe``; the
#: others go to :class:`Client`.
_SUBSCRIBE_OPTIONS = ("speed", "backpressure", "encoding", "id", "start_seq")


# -- errors -------------------------------------------------------------------

class ServerError(WsgenError):
    """An ``error`` reply from the server.

    Attributes:
        code: stable error code (``unknown_generator``, ``invalid_params``,
            ``duplicate_id``, ``unknown_id``, ``limit_reached``,
            ``invalid_message``, ...).
        message: human-readable explanation.
        details: for validation errors, one dict per problem with ``field``,
            ``value`` and ``message``; otherwise ``None``.
        id: the subscription id the error is about (or ``None``).
    """

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details, self.id = code, message, details, id

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> "ServerError":
        return cls(str(msg.get("code")), str(msg.get("message")), msg.get("details"), msg.get("id"))


class ConnectionLost(WsgenError, ConnectionError):
    """The connection dropped and will not be restored."""


class ClientClosed(WsgenError, ConnectionError):
    """The client was closed (:meth:`Client.close`)."""


# -- data ---------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Block:
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

    def slice(self, start: int, stop: int | None = None) -> "Block":
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
        return Block(first_seq, first_t, self.dt, self.values[start:stop],
                     None if self.labels is None else self.labels[start:stop], self.id, self.lag,
                     self.skipped if start == 0 else 0, seqs, times, events)

    @staticmethod
    def concat(blocks: list["Block"]) -> "Block":
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
        return Block(first.seq, first.t, first.dt, values, labels, first.id, max(b.lag for b in blocks),
                     sum(b.skipped for b in blocks), seqs, times, merged)


def _block_from_json(msg: Mapping[str, Any]) -> Block:
    values = np.asarray(msg["values"], dtype=np.float64)   # null (NaN on the wire) -> nan
    labels = msg.get("labels")
    if values.ndim == 2:    # a composition with channels: k arrays -> samples x channels
        values = np.ascontiguousarray(values.T)
        labels = None if labels is None else np.ascontiguousarray(np.asarray(labels, dtype=bool).T)
    seqs = msg.get("seqs")
    ts = msg.get("ts")
    return Block(int(msg["seq"]), float(msg["t"]), float(msg["dt"]), values,
                 None if labels is None else np.asarray(labels, dtype=bool), msg["id"],
                 float(msg.get("lag", 0.0)), int(msg.get("skipped", 0)),
                 None if seqs is None else np.asarray(seqs, dtype=np.int64),
                 None if ts is None else np.asarray(ts, dtype=np.float64),
                 list(msg.get("events") or ()))


def _block_from_binary(frame: bytes) -> Block:
    f = decode_binary(frame)
    return Block(f.seq, f.t, f.dt, f.values.copy(), f.labels, f.id, float(f.lag), f.skipped)


# -- subscriptions -------------------------------------------------------------

_END = object()


class Subscription:
    """One stream on a :class:`Client` connection.

    Iterate it (``async for block in sub``) for :class:`Block` objects as
    they arrive; iteration ends after :meth:`unsubscribe` or
    :meth:`Client.close`, and raises :class:`ConnectionLost` (or the
    :class:`ServerError` of a refused re-subscription) if the stream is gone.

    Attributes:
        id: subscription id (unique on the connection).
        generator: generator name.
        seed: the seed (drawn by the client when none was given).
        params: full current parameters (defaults filled in by the server,
            updated by :meth:`update`).
        speed: delivery speed factor (number or ``"max"``).
        backpressure, encoding: delivery options as subscribed.
        interval: seconds of stream time between samples (from the server).
        paused: whether the server was last told to pause it.
        next_seq: seq of the next sample expected from the server. For a
            composition: the slot (sample index) its last received message
            started at, where a reconnection resumes (see below).
        composition: True when subscribed with a composition (then
            ``generator`` is ``"composite"`` and ``params`` the full spec).
        score_options: the scoring options subscribed with (``None``: not
            scored); see :meth:`detect`.
        last_score: the latest figures received (a ``score`` reply, the
            final ``score`` of a stream that ended, or those of
            ``unsubscribed``), ``None`` before any.
        detect_errors: :class:`ServerError` of :meth:`detect` calls nobody
            awaited (the latest 64).

    A composition resumes after a reconnection from the first slot of the
    last message received, and drops as many delivered samples as it had
    received from that slot on: deliveries from a slot do not depend on how
    the server splits them into messages, so the consumer sees each
    delivered sample once, duplicates by design (the ``duplicates`` fault)
    and held-back (``out_of_order``) samples included. Received seqs are
    never compared for dedup: they may repeat and go down by design.
    """

    @property
    def channels(self) -> list[str] | None:
        """The channel names of a composition with ``channels`` (the columns
        of ``values`` and ``labels``, from the server's ``subscribed``), else None."""
        names = self.params.get("channels") if self.composition else None
        return list(names) if isinstance(names, list) else None

    def __init__(self, client: "Client", id: str, generator: str | Mapping[str, Any], params: Mapping[str, Any],
                 seed: int, speed: float | str, backpressure: str, encoding: str, start_seq: int) -> None:
        self._client = client
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
        self.interval: float | None = None
        self.paused = False
        self.next_seq = start_seq
        self.start_seq = start_seq   # seq of the first sample asked for
        #: the stream ends before this seq (``count``, or ``duration`` once the interval is known); the
        #: server then sends ``ended`` and the iteration stops; a reconnection asks for what is left
        self.end_seq: int | None = None
        self._duration: float | None = None   # ``duration`` not yet turned into an end_seq
        self.acknowledged = False       # the server confirmed it at least once
        #: seq of the first sample the server sent (``start_seq``; for a named stream, the sample due
        #: when it joined); None until the first ``subscribed``
        self.first_seq: int | None = None
        self._items: deque = deque()
        self._ready = asyncio.Event()
        self._finished = False
        self._end_exc: BaseException | None = None
        self._leftover: Block | None = None
        self.score_options: dict[str, Any] | None = None
        self.max_lag: float | None = None     # backpressure drop: the lag bound (server default 1 s)
        self.last_score: dict[str, Any] | None = None
        self.detect_errors: deque = deque(maxlen=64)
        self._detecting: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return (f"<Subscription {self.id!r} {self.generator} seed={self.seed} next_seq={self.next_seq}"
                f"{' paused' if self.paused else ''}{' finished' if self._finished else ''}>")

    @property
    def finished(self) -> bool:
        """True once no more data will be queued (unsubscribed, closed, lost)."""
        return self._finished

    # -- called by the client ------------------------------------------------
    def _subscribe_message(self) -> dict[str, Any]:
        stream = getattr(self, "stream", None)
        if stream is not None:           # a named stream: resumes at its next seq (within its history)
            msg = {"type": "subscribe", "id": self.id, "stream": stream, "backpressure": self.backpressure,
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
        if self._duration is not None:
            msg["duration"] = self._duration
        return msg

    def _deliver(self, block: Block) -> None:
        """Queue a received block, dropping seqs already received."""
        if self._finished:
            return
        if self.composition:
            self._deliver_composition(block)
            return
        if block.seq < self.next_seq:
            if block.seq + len(block) <= self.next_seq:
                return
            block = block.slice(self.next_seq - block.seq)
        self.next_seq = block.seq + len(block)
        self._items.append(block)
        self._ready.set()

    def _deliver_composition(self, block: Block) -> None:
        """Queue a composition's block, dropping the samples delivered from
        the resume slot that were received before a reconnection."""
        q, n = block.seq, len(block)
        if q < self._slot:
            return                       # from before a resumption (cannot happen on one connection)
        if q > self._slot:
            self._have = max(0, self._have - self._n_at_slot)
            self._slot = q
        skip = min(self._have, n)
        self._n_at_slot = n
        self._have = max(self._have, n)
        self.next_seq = self._slot
        if skip:
            block = block.slice(skip) if skip < n else None
        if block is None or not len(block):
            return
        self._items.append(block)
        self._ready.set()

    def _finish(self, exc: BaseException | None = None) -> None:
        if not self._finished:
            self._finished = True
            self._end_exc = exc
        self._ready.set()

    async def _next(self) -> Block:
        if self._leftover is not None:
            block, self._leftover = self._leftover, None
            return block
        while not self._items:
            if self._finished:
                if self._end_exc is not None:
                    raise self._end_exc
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        block = self._items.popleft()
        self._client._reader_wake.set()
        return block

    # -- public API ------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Block]:
        return self

    async def __anext__(self) -> Block:
        """The next block as received (any length >= 1)."""
        return await self._next()

    async def take(self, n: int) -> Block:
        """Exactly ``n`` (>= 1) samples, concatenated into one :class:`Block`
        (values float64 (n,), labels bool (n,) or None). Samples beyond ``n``
        of the last block are kept for the next read.

        Raises:
            EOFError: the stream ended (unsubscribed/closed) before ``n``
                samples; :class:`ConnectionLost` if the connection is gone.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        parts: list[Block] = []
        got = 0
        while got < n:
            try:
                block = await self._next()
            except StopAsyncIteration:
                if parts:
                    self._leftover = Block.concat(parts)
                raise EOFError(f"subscription {self.id!r} ended after {got} of {n} samples") from None
            need = n - got
            if len(block) > need:
                self._leftover = block.slice(need)
                block = block.slice(0, need)
            parts.append(block)
            got += len(block)
        return Block.concat(parts)

    async def update(self, params: Mapping[str, Any] | None = None, /, *, speed: float | str | None = None,
                     **changes: Any) -> int:
        """Change some parameters (and/or the speed) from the next sample on.

        ``await sub.update(frequency=5)`` or ``await sub.update({"frequency": 5})``.
        Returns the seq of the first sample generated with the new values.

        Raises:
            ServerError: ``invalid_params`` (nothing changed; ``details`` names
                the fields), ``unknown_id``.
        """
        msg: dict[str, Any] = {"type": "update", "id": self.id, "params": {**dict(params or {}), **changes}}
        if speed is not None:
            msg["speed"] = speed_to_wire(speed)
        reply = await self._client._request(msg)
        return int(reply["seq"])

    async def pause(self) -> int:
        """Stop sending; returns the seq of the next sample (sent on resume)."""
        return int((await self._client._request({"type": "pause", "id": self.id}))["seq"])

    async def resume(self) -> int:
        """Resume sending (the schedule restarts now); returns the next seq."""
        return int((await self._client._request({"type": "resume", "id": self.id}))["seq"])

    async def unsubscribe(self) -> int:
        """End the subscription; returns the seq after its last sample.

        Blocks already received can still be read; iteration then ends. A
        scored subscription's final figures are then in :attr:`last_score`.
        """
        if self._finished:
            return self.next_seq
        await self._flush_detections()
        return int((await self._client._request({"type": "unsubscribe", "id": self.id}))["seq"])

    # -- scoring a detector (docs/protocol.md, "Scoring a detector") ----------
    def detect(self, seq: int | None = None, *, seqs: Iterable[int] | None = None, score: float | None = None,
               scores: Iterable[float] | None = None) -> "asyncio.Task[int]":
        """Report the detector's alarms on a scored subscription (subscribed
        with ``score=``): ``sub.detect(seq)``, ``sub.detect(seqs=[...])``, or
        anomaly scores (``score=`` / ``scores=``, thresholded by the server).

        Sends at once and returns a task: ``await`` it for the number of new
        alarms, or leave it (its error, if any, is logged and kept in
        :attr:`detect_errors`). :meth:`score` and :meth:`unsubscribe` wait
        for the detections sent before them.

        Raises (from the task): ServerError ``out_of_range`` (a seq not sent
        yet, or before the first), ``invalid_message`` (not scored).
        """
        msg: dict[str, Any] = {"type": "detect", "id": self.id}
        if seqs is not None:
            msg["seqs"] = [int(s) for s in seqs]
            if scores is not None:
                msg["scores"] = [float(v) for v in scores]
        else:
            msg["seq"] = int(seq)
            if score is not None:
                msg["score"] = float(score)
        task = asyncio.ensure_future(self._detect(msg))
        self._detecting.add(task)
        task.add_done_callback(self._detect_done)
        return task

    async def _detect(self, msg: dict[str, Any]) -> int:
        return int((await self._client._request(msg))["added"])

    def _detect_done(self, task: asyncio.Task) -> None:
        self._detecting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.detect_errors.append(exc)
            log.warning("detect on %s failed: %s", self.id, exc)

    async def _flush_detections(self) -> None:
        if self._detecting:
            await asyncio.gather(*list(self._detecting), return_exceptions=True)

    async def score(self, last: int | None = None) -> dict[str, Any]:
        """The figures so far of a scored subscription (after the detections
        already sent): the ``score`` message, also kept in :attr:`last_score`.

        ``last``: score the samples up to this seq only. At ``speed="max"``
        the server sends ahead of a slow reader: give the last seq the
        detector has seen (else the samples still in flight count as missed).

        Raises:
            ServerError: ``invalid_message`` (not scored), ``unknown_id``,
                ``out_of_range`` (``last`` not sent yet).
        """
        await self._flush_detections()
        msg: dict[str, Any] = {"type": "score", "id": self.id}
        if last is not None:
            msg["last"] = int(last)
        return await self._client._request(msg)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc) -> None:
        if not self._finished and not self._client.closed:
            try:
                await self.unsubscribe()
            except (ConnectionError, WsgenError):
                pass


# -- the client ------------------------------------------------------------------

@dataclass(eq=False)
class _Request:
    build: Callable[[], dict[str, Any]]
    id: str | None
    replies: tuple[str, ...]
    future: asyncio.Future
    internal: bool = False          # a re-subscription made by the client itself
    sent: bool = False


class BadURL(WsgenError, ValueError):
    """A server address that is not one :func:`websocket_url` understands;
    ``str()`` is one line saying what is expected."""


_BARE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]+(/.*)?")


def websocket_url(url: str) -> str:
    """The WebSocket address to dial for ``url``: ``ws://`` and ``wss://``
    addresses as given; a bare ``host:port`` as ``ws://host:port``; an HTTP
    server's address (``http://host:8000``, ``https://host/prefix``) becomes
    its WebSocket path (``ws://host:8000/ws``, ``wss://host/prefix/ws``), which
    serves the same protocol.

    Raises:
        BadURL: anything else (another scheme, no host, a port out of range).
    """
    expected = ("expected ws://host:port (or wss://, http://, https://, or a bare host:port), "
                "e.g. ws://127.0.0.1:8765")
    if "://" not in url and _BARE.fullmatch(url):
        url = "ws://" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:       # "Port out of range", a bad IPv6 literal
        raise BadURL(f"bad server address {url!r} ({exc}); {expected}") from None
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        what = ("no scheme" if not parts.scheme else
                f"scheme {parts.scheme}:// is not a WebSocket or HTTP one" if parts.scheme not in ("ws", "wss", "http", "https")
                else "no host")
        raise BadURL(f"bad server address {url!r} ({what}); {expected}")
    del port
    if parts.scheme not in ("http", "https"):
        return url
    path = parts.path.rstrip("/")
    if "/ws/" not in path + "/":   # /ws, /ws/<generator>, /prefix/ws stay
        path += "/ws"
    return urlunsplit(("ws" if parts.scheme == "http" else "wss", parts.netloc, path, parts.query, ""))


class Client:
    """Async client: one WebSocket connection, any number of subscriptions.

    Args:
        url: server address: the WebSocket port (``"ws://127.0.0.1:8765"``),
            or the HTTP port's WebSocket path (``"ws://127.0.0.1:8000/ws"``;
            an ``http://`` or ``https://`` address means that path, see
            :func:`websocket_url`).
        reconnect: reconnect and resume after a dropped connection.
        backoff_base: first reconnection delay scale, seconds.
        backoff_cap: largest reconnection delay, seconds.
        max_reconnect_attempts: attempts in a row before giving up
            (``None``: forever).
        queue_size: blocks buffered per subscription before the reader waits.
        request_timeout: seconds a request waits for its reply (``None``:
            forever); raises ``TimeoutError``.
        open_timeout: seconds for the opening handshake.
        token: bearer token, if the server requires one.
        **connect_kwargs: passed to ``websockets.asyncio.client.connect``.

    Use ``async with Client(url) as c`` or ``await c.connect()`` /
    ``await c.close()``. The first connection is not retried: its failure
    raises (``OSError``, ``websockets.exceptions.InvalidHandshake``,
    ``TimeoutError``).
    """

    def __init__(self, url: str = DEFAULT_URL, *, reconnect: bool = True, backoff_base: float = 0.1,
                 backoff_cap: float = 5.0, max_reconnect_attempts: int | None = None, queue_size: int = 256,
                 request_timeout: float | None = 30.0, open_timeout: float | None = 10.0,
                 token: str | None = None, **connect_kwargs: Any) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.url = websocket_url(url)
        self.reconnect = reconnect
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_reconnect_attempts = max_reconnect_attempts
        self.queue_size = queue_size
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.token = token
        self.connect_kwargs = connect_kwargs
        #: Number of successful reconnections so far.
        self.reconnects = 0
        self._subs: dict[str, Subscription] = {}
        self._pending: list[_Request] = []
        self._ws: ClientConnection | None = None
        self._ready = False          # connected and every pending request sent
        self._closing = False
        self._closed = False
        self._fatal: BaseException | None = None
        self._runner: asyncio.Task | None = None
        self._reader_wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._attempt = 0

    # -- lifecycle -------------------------------------------------------------
    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while a connection is open (False while reconnecting)."""
        return self._ready

    @property
    def closed(self) -> bool:
        return self._closing or self._closed

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """Active subscriptions by id (a copy)."""
        return dict(self._subs)

    async def connect(self) -> None:
        """Open the connection (raises if the server cannot be reached)."""
        if self._runner is not None:
            raise RuntimeError("already connected")
        ws = await self._open()
        self._ws = ws
        self._ready = True
        self._runner = asyncio.create_task(self._run(ws), name="wsgen-client")

    async def close(self) -> None:
        """Close the connection deliberately (no reconnection). Iterations
        end (StopAsyncIteration), pending calls raise :class:`ClientClosed`."""
        if self._closed:
            return
        self._closing = True
        self._reader_wake.set()
        runner, ws = self._runner, self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:
                pass
        if runner is not None:
            runner.cancel()
            try:
                await runner
            except (asyncio.CancelledError, Exception):
                pass
        if ws is not None and ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()
        self._ws = None
        self._ready = False
        self._closed = True
        for sub in list(self._subs.values()):
            sub._finish(None)
        self._subs.clear()
        self._fail_pending(ClientClosed("client closed"))

    async def _open(self) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        kwargs = {"compression": None, "max_size": 2**26, "open_timeout": self.open_timeout, "close_timeout": 2,
                  "additional_headers": headers, **self.connect_kwargs}
        return await connect(self.url, **kwargs)

    def _backoff(self, attempt: int) -> float:
        """Delay before reconnection attempt ``attempt`` (1, 2, ...), seconds."""
        d = min(self.backoff_cap, self.backoff_base * 2 ** min(attempt - 1, 60))
        return d / 2 + random.uniform(0, d / 2)

    async def _run(self, ws: ClientConnection) -> None:
        """Read the connection; on a drop, reconnect and resume."""
        resend = False
        while True:
            try:
                if resend:
                    await self._resend(ws)
                self._ready = True
                self._reader_wake.set()
                await self._read(ws)
                reason = f"closed by the server (code {ws.close_code})"
            except ConnectionClosed as exc:
                reason = str(exc)
            except OSError as exc:
                reason = repr(exc)
            self._ready = False
            self._ws = None
            if self._closing:
                return
            if not self.reconnect:
                self._fail(ConnectionLost(f"connection to {self.url} lost: {reason}"))
                return
            log.warning("connection to %s lost (%s); reconnecting", self.url, reason)
            self._prepare_resend()
            ws = await self._reconnect()
            if ws is None:
                return
            self._ws = ws
            self.reconnects += 1
            log.info("reconnected to %s; resuming %d subscription(s)", self.url, len(self._subs))
            resend = True

    async def _reconnect(self) -> ClientConnection | None:
        while True:
            self._attempt += 1
            if self.max_reconnect_attempts is not None and self._attempt > self.max_reconnect_attempts:
                self._fail(ConnectionLost(f"could not reconnect to {self.url} after "
                                          f"{self.max_reconnect_attempts} attempts"))
                return None
            await asyncio.sleep(self._backoff(self._attempt))
            if self._closing:
                return None
            try:
                return await self._open()
            except InvalidStatus as exc:
                status = exc.response.status_code
                if 400 <= status < 500 and status not in (408, 429):
                    self._fail(ConnectionLost(f"server refused the reconnection: HTTP {status}"))
                    return None
                log.info("reconnection attempt %d failed: %s", self._attempt, exc)
            except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
                log.info("reconnection attempt %d failed: %r", self._attempt, exc)

    def _prepare_resend(self) -> None:
        """After a drop: queue re-subscriptions first, then every request
        still awaiting a reply (sent again in order)."""
        old = []
        for req in self._pending:
            if req.internal:
                if not req.future.done():
                    req.future.cancel()
            else:
                req.sent = False
                old.append(req)
        loop = asyncio.get_running_loop()
        fresh: list[_Request] = []
        for sub in self._subs.values():
            if not sub.acknowledged or sub._finished:
                continue   # its own subscribe request is among ``old``
            req = _Request(sub._subscribe_message, sub.id, _REPLIES["subscribe"], loop.create_future(),
                           internal=True)
            req.future.add_done_callback(self._resubscribed(sub))
            fresh.append(req)
            if sub.paused:
                msg = {"type": "pause", "id": sub.id}
                fresh.append(_Request(lambda m=msg: m, sub.id, _REPLIES["pause"], loop.create_future(),
                                      internal=True))
        self._pending = fresh + old

    def _resubscribed(self, sub: Subscription):
        def done(fut: asyncio.Future) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None:
                log.warning("re-subscription of %r failed: %s", sub.id, exc)
                if self._subs.get(sub.id) is sub:
                    del self._subs[sub.id]
                sub._finish(exc)
        return done

    async def _resend(self, ws: ClientConnection) -> None:
        while True:
            req = next((r for r in self._pending if not r.sent), None)
            if req is None:
                return
            req.sent = True
            await ws.send(orjson.dumps(req.build()), text=True)

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        for sub in list(self._subs.values()):
            sub._finish(exc)
        self._subs.clear()
        self._fail_pending(exc)

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, []
        for req in pending:
            if not req.future.done():
                req.future.set_exception(exc)
                if req.internal:
                    req.future.exception()   # retrieved: no "never retrieved" warning

    # -- reading -----------------------------------------------------------------
    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self._attempt = 0
            try:
                if isinstance(raw, bytes):
                    await self._on_block(_block_from_binary(raw))
                    continue
                msg = orjson.loads(raw)
                kind = msg.get("type")
                if kind == "data":
                    await self._on_block(_block_from_json(msg))
                else:
                    self._on_reply(msg)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring a malformed server message: %r", exc)

    async def _on_block(self, block: Block) -> None:
        sub = self._subs.get(block.id)
        if sub is None:
            return   # unsubscribed meanwhile
        while True:
            self._reader_wake.clear()
            if (len(sub._items) < self.queue_size or self._pending or sub._finished or self._closing):
                break
            await self._reader_wake.wait()
        sub._deliver(block)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        sub = self._subs.get(msg.get("id")) if isinstance(msg.get("id"), str) else None
        if sub is not None:
            if kind == "subscribed":
                if not sub.acknowledged:          # where the server started it (a named stream: the live seq)
                    sub.first_seq = int(msg.get("seq", sub.start_seq))
                sub.acknowledged = True
                sub.params = dict(msg.get("params", sub.params))
                sub.seed = msg.get("seed", sub.seed)
                sub.speed = msg.get("speed", sub.speed)
                sub.interval = msg.get("interval", sub.interval)
                if sub._duration is not None and sub.interval:   # the server's rule (wsgen.protocol.session.stream_end)
                    seq0 = int(msg.get("seq", 0))
                    end = seq0 + max(1, math.ceil(sub._duration / sub.interval - 1e-9))
                    sub.end_seq = end if sub.end_seq is None else min(sub.end_seq, end)
                    sub._duration = None
                sub.paused = False
                sub.next_seq = max(sub.next_seq, int(msg.get("seq", 0)))
            elif kind == "updated":
                sub.params = dict(msg.get("params", sub.params))
                sub.speed = msg.get("speed", sub.speed)
                for name in ("interval", "data_interval"):
                    if name in sub.params:
                        sub.interval = sub.params[name]
            elif kind == "paused":
                sub.paused = True
            elif kind == "resumed":
                sub.paused = False
            elif kind == "score":
                sub.last_score = msg
            elif kind in ("unsubscribed", "ended"):     # ended: its count / duration reached
                if "score" in msg:
                    sub.last_score = msg["score"]
                del self._subs[sub.id]
                sub._finish(None)
        self._resolve(msg)

    def _resolve(self, msg: dict[str, Any]) -> None:
        kind, ident = msg.get("type"), msg.get("id")
        for req in self._pending:
            if req.id == ident and (kind == "error" or kind in req.replies):
                self._pending.remove(req)
                if not req.future.done():
                    if kind == "error":
                        req.future.set_exception(ServerError.from_message(msg))
                    else:
                        req.future.set_result(msg)
                return
        if kind == "error":
            log.warning("server error not matched to a request: %s: %s", msg.get("code"), msg.get("message"))

    # -- requests ------------------------------------------------------------------
    async def _request(self, msg: dict[str, Any] | Callable[[], dict[str, Any]], id: str | None = None,
                       replies: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Send a request (now, or after reconnecting) and await its reply."""
        if self.closed:
            raise ClientClosed("client closed")
        if self._fatal is not None:
            raise self._fatal
        if self._runner is None:
            raise RuntimeError("not connected: use 'async with Client(...)' or 'await client.connect()'")
        build = msg if callable(msg) else (lambda m=msg: m)
        if not callable(msg):
            id = msg.get("id")
            replies = _REPLIES[msg["type"]]
        req = _Request(build, id, replies or (), asyncio.get_running_loop().create_future())
        self._pending.append(req)
        self._reader_wake.set()       # a reader waiting for room may read on
        try:
            ws = self._ws
            if self._ready and ws is not None:
                req.sent = True
                try:
                    await ws.send(orjson.dumps(build()), text=True)
                except ConnectionClosed:
                    req.sent = False     # sent again after reconnecting, or failed by _fail
            return await asyncio.wait_for(req.future, self.request_timeout)
        finally:
            if req in self._pending:     # timed out or the caller was cancelled
                self._pending.remove(req)

    def _new_id(self, generator: str | Mapping[str, Any]) -> str:
        if not isinstance(generator, str):
            generator = "composite"
        while True:
            ident = f"{generator}-{next(self._ids)}"
            if ident not in self._subs:
                return ident

    async def subscribe(self, generator: str | Mapping[str, Any], params: Mapping[str, Any] | None = None, *,
                        seed: int | None = None, speed: float | str = 1.0, backpressure: str = "block",
                        encoding: str = "json", id: str | None = None, start_seq: int = 0,
                        score: bool | Mapping[str, Any] = False, max_lag: float | None = None,
                        count: int | None = None, duration: float | None = None) -> Subscription:
        """Start a stream.

        Args:
            generator: registry name (``"sine"``, ``"random"``, ...; see
                :meth:`list`), or a composition (a dict: the JSON spec of
                docs/compositions.md; ``params`` must then be empty, and
                ``encoding`` ``"json"``). Its blocks carry ``events``, and
                ``seqs`` / ``timestamps`` from the message.
            params: parameter values; omitted ones take their defaults.
            seed: integer in [0, 2**64); ``None``: the client draws one in
                [0, 2**53) (read it back from ``sub.seed``), so that a
                reconnection resumes the same stream.
            speed: delivery speed-up factor in (0, 1e6], or ``"max"`` (as
                fast as the client reads). Stream timestamps do not depend on
                it.
            backpressure: ``"block"`` (the server waits for a slow reader)
                or ``"drop"`` (it skips samples; ``Block.skipped``).
            max_lag: with ``"drop"``: seconds; samples that would arrive
                later than this behind their due time are skipped (server
                default 1; docs/protocol.md, Backpressure).
            encoding: ``"json"`` or ``"binary"`` (same values, bit for bit).
            id: subscription id; ``None``: ``"<generator>-<n>"``.
            start_seq: seq of the first sample.
            count: end after this many samples (slots of a composition), as
                the HTTP ``count``: the server sends ``ended``, iteration
                stops and :meth:`Subscription.take` raises ``EOFError`` past
                it. A reconnection asks for what is left.
            duration: end after the samples within this many seconds of
                stream time of the first one (the HTTP ``duration``).
            score: score a detector on this stream (anomaly kinds and
                compositions): ``True``, or options ``{"window", "probation",
                "threshold"}``; then :meth:`Subscription.detect` and
                :meth:`Subscription.score`. After a reconnection the
                scoring starts again from the seq resumed at.

        Returns:
            The :class:`Subscription` (``id``, ``generator``, ``seed``,
            ``params`` with every default filled in, ``interval``).

        Raises:
            ServerError: ``unknown_generator``, ``invalid_params`` (with
                ``details``), ``duplicate_id``, ``limit_reached``,
                ``invalid_message`` (bad speed, seed, encoding...).
        """
        if isinstance(generator, Mapping) and params:
            raise ValueError("a composition carries its parameters in the generator dict; leave params out")
        if seed is None:
            seed = secrets.randbelow(SEED_DRAW_LIMIT)
        ident = self._new_id(generator) if id is None else id
        sub = Subscription(self, ident, generator, params or {}, seed, speed, backpressure, encoding, start_seq)
        if score:
            sub.score_options = {} if score is True else dict(score)
        sub.max_lag = max_lag
        if count is not None:
            sub.end_seq = start_seq + int(count)
        sub._duration = duration
        register = ident not in self._subs   # a duplicate is sent anyway: the server refuses it
        if register:
            self._subs[ident] = sub          # before sending: data may follow the reply at once
        try:
            await self._request(sub._subscribe_message, ident, _REPLIES["subscribe"])
        except BaseException:
            if register and self._subs.get(ident) is sub:
                del self._subs[ident]
            sub._finish(None)
            raise
        return sub

    async def list(self) -> list[dict[str, Any]]:
        """The server's catalogue: one dict per generator with ``name``,
        ``family``, ``anomalous``, ``description``, ``interval_field`` and
        ``params_schema`` (JSON Schema; defaults, descriptions, ``unit``)."""
        reply = await self._request({"type": "list"})
        return reply["generators"]

    # -- named streams (docs/protocol.md, "Named streams") -------------------------------
    async def subscribe_stream(self, name: str, *, start_seq: int | None = None, backpressure: str = "block",
                               encoding: str = "json", id: str | None = None) -> Subscription:
        """Subscribe to the named stream ``name`` (shared by every subscriber,
        on every replica): from the sample due now, or from ``start_seq``
        (back to the stream's history). ``sub.stream`` is its name,
        ``sub.generator`` its kind, ``sub.params`` its current parameters. A
        reconnection resumes at the next seq, with the same values.

        Raises:
            ServerError: ``unknown_stream``, ``invalid_params`` (a
                ``start_seq`` older than the history), ``duplicate_id``...
        """
        ident = self._new_id(name) if id is None else id
        sub = Subscription(self, ident, "named", {}, 0, 1.0, backpressure, encoding, start_seq or 0)
        sub.stream = name
        register = ident not in self._subs
        if register:
            self._subs[ident] = sub
        try:
            reply = await self._request(sub._subscribe_message, ident, _REPLIES["subscribe"])
        except BaseException:
            if register and self._subs.get(ident) is sub:
                del self._subs[ident]
            sub._finish(None)
            raise
        sub.generator = reply.get("generator", sub.generator)
        return sub

    async def update_stream(self, name: str, params: Mapping[str, Any], admin_token: str,
                            seq: int | None = None) -> dict[str, Any]:
        """Operator: change the named stream's parameters; returns the
        ``updated`` reply, whose ``seq`` is where every replica applies it.

        Raises:
            ServerError: ``forbidden`` (token), ``too_late`` (``seq`` within
                the safety margin), ``invalid_params``,
                ``control_plane_unavailable`` (Redis down), ``unknown_stream``.
        """
        msg: dict[str, Any] = {"type": "update", "id": self._new_id("op"), "stream": name, "params": dict(params),
                               "admin_token": admin_token}
        if seq is not None:
            msg["seq"] = seq
        return await self._request(lambda: msg, msg["id"], ("updated",))

    async def inject_stream(self, name: str, anomaly: Mapping[str, Any], admin_token: str,
                            duration: float | None = None, seq: int | None = None) -> dict[str, Any]:
        """Operator: lay ``anomaly`` (an injector of docs/compositions.md,
        e.g. ``{"kind": "level-shift", "height": 5}``) over the named stream
        for ``duration`` seconds from one safety margin ahead (or ``seq``);
        returns the ``updated`` reply (its ``seq``). Errors as
        :meth:`update_stream`, and ``not_supported`` (a kind placing its own
        anomalies)."""
        msg: dict[str, Any] = {"type": "inject", "id": self._new_id("op"), "stream": name,
                               "anomaly": dict(anomaly), "admin_token": admin_token}
        if duration is not None:
            msg["duration"] = duration
        if seq is not None:
            msg["seq"] = seq
        return await self._request(lambda: msg, msg["id"], ("updated",))


# -- sync wrappers -----------------------------------------------------------------

class SyncSubscription:
    """Blocking view of a :class:`Subscription` (from :class:`SyncClient`).

    Iterate it for blocks; ``take``, ``update``, ``pause``, ``resume``,
    ``unsubscribe``, ``score`` as in the async class; ``detect`` waits for
    its reply (report many alarms at once with ``seqs=``).
    """

    def __init__(self, owner: "SyncClient", sub: Subscription) -> None:
        self._owner = owner
        self.subscription = sub

    def __getattr__(self, name: str) -> Any:
        if name in ("id", "generator", "seed", "params", "speed", "backpressure", "encoding", "interval",
                    "paused", "next_seq", "finished", "composition", "channels", "score_options", "last_score",
                    "detect_errors"):
            return getattr(self.subscription, name)
        raise AttributeError(name)

    def __iter__(self) -> Iterator[Block]:
        return self

    def __next__(self) -> Block:
        try:
            return self._owner._call(self.subscription.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def take(self, n: int) -> Block:
        return self._owner._call(self.subscription.take(n))

    def update(self, params: Mapping[str, Any] | None = None, /, *, speed: float | str | None = None,
               **changes: Any) -> int:
        return self._owner._call(self.subscription.update(params, speed=speed, **changes))

    def pause(self) -> int:
        return self._owner._call(self.subscription.pause())

    def resume(self) -> int:
        return self._owner._call(self.subscription.resume())

    def unsubscribe(self) -> int:
        return self._owner._call(self.subscription.unsubscribe())

    def detect(self, seq: int | None = None, *, seqs: Iterable[int] | None = None, score: float | None = None,
               scores: Iterable[float] | None = None) -> int:
        """As :meth:`Subscription.detect`, waiting for the reply: the number of new alarms."""
        async def detect() -> int:
            return await self.subscription.detect(seq, seqs=seqs, score=score, scores=scores)
        return self._owner._call(detect())

    def score(self, last: int | None = None) -> dict[str, Any]:
        return self._owner._call(self.subscription.score(last))


class SyncClient:
    """Blocking client: a :class:`Client` run in a background thread with
    its own event loop. Same arguments as :class:`Client`.

    ::

        with SyncClient(url) as c:
            sub = c.subscribe("sine", {"amplitude": 2}, seed=1, speed="max")
            block = sub.take(1000)

    Ctrl-C while waiting interrupts the call; :meth:`close` (or leaving the
    ``with`` block) closes the connection and stops the thread.
    """

    def __init__(self, url: str = DEFAULT_URL, **client_options: Any) -> None:
        self.url = url
        self._options = client_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None

    def __enter__(self) -> "SyncClient":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("not open")
        return self._client

    def open(self) -> None:
        if self._loop is not None:
            raise RuntimeError("already open")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wsgen-sync-client", daemon=True)
        self._thread.start()

        async def make() -> Client:
            client = Client(self.url, **self._options)
            await client.connect()
            return client
        try:
            self._client = self._call(make())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro, timeout: float | None = None):
        if self._loop is None:
            coro.close()
            raise RuntimeError("not open")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise

    def subscribe(self, generator: str | Mapping[str, Any], params: Mapping[str, Any] | None = None,
                  **options: Any) -> SyncSubscription:
        """As :meth:`Client.subscribe`."""
        return SyncSubscription(self, self._call(self.client.subscribe(generator, params, **options)))

    def list(self) -> list[dict[str, Any]]:
        """As :meth:`Client.list`."""
        return self._call(self.client.list())

    def subscribe_stream(self, name: str, **options: Any) -> SyncSubscription:
        """As :meth:`Client.subscribe_stream`."""
        return SyncSubscription(self, self._call(self.client.subscribe_stream(name, **options)))

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._client is not None and self._loop.is_running():
                self._call(self._client.close(), timeout=10)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(5)
            except Exception:
                pass
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None


def _split_options(opts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    sub = {k: v for k, v in opts.items() if k in _SUBSCRIBE_OPTIONS}
    client = {k: v for k, v in opts.items() if k not in _SUBSCRIBE_OPTIONS}
    return client, sub


def stream(url: str, generator: str | Mapping[str, Any], params: Mapping[str, Any] | None = None, seed: int | None = None,
           **opts: Any) -> Iterator[Block]:
    """Blocks of one subscription, as they arrive (blocking iterator).

    ``opts``: ``speed``, ``backpressure``, ``encoding``, ``id``,
    ``start_seq`` go to :meth:`Client.subscribe`, the others (``reconnect``,
    ``queue_size``, ...) to :class:`Client`. The connection opens on the
    first ``next()`` and closes when the iterator is closed or collected
    (``break`` out of a ``for`` loop, or call ``.close()``).

    Raises (from ``next()``): :class:`WsgenError`, :class:`ConnectionLost`,
    ``OSError`` if the server cannot be reached.
    """
    client_opts, sub_opts = _split_options(opts)
    with SyncClient(url, **client_opts) as c:
        sub = c.subscribe(generator, params, seed=seed, **sub_opts)
        yield from sub


def to_numpy(url: str, generator: str | Mapping[str, Any], n: int, params: Mapping[str, Any] | None = None, seed: int | None = None,
             **opts: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Capture ``n`` samples of a stream as arrays.

    ``speed`` defaults to ``"max"`` here (a capture, not a live view; the
    timestamps are stream time whatever the speed). Other ``opts`` as in
    :func:`stream`.

    Returns:
        ``(values, labels, seqs, timestamps)``: float64 (n,); bool (n,) or
        ``None`` for generators without anomalies; int64 (n,); float64 (n,)
        Unix seconds.
    """
    opts.setdefault("speed", "max")
    client_opts, sub_opts = _split_options(opts)
    with SyncClient(url, **client_opts) as c:
        sub = c.subscribe(generator, params, seed=seed, **sub_opts)
        block = sub.take(n)
    return block.values, block.labels, block.seqs, block.timestamps
