"""The async client: one websockets connection driving a
:class:`~wsgen.client.state.ClientState` (the protocol logic, no I/O).

This module does the I/O only: one reader task reads the connection, hands
replies to the state and wakes the callers awaiting them, queues each data
block in its subscription (with the backpressure bound of
``queue_size``), and after a drop reconnects through websockets' own
reconnecting iterator (``async for ws in connect(...)``), with the delays of
:class:`~wsgen.client.state.Backoff`, then sends what the state queued
(re-subscriptions, re-pauses, unanswered requests).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from contextlib import aclosing
from typing import Any, AsyncIterator, Callable, Iterable, Mapping

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from wsgen.client.block import ReceivedBlock
from wsgen.client.errors import ClientClosed, ConnectionLost
from wsgen.client.state import REPLIES, Backoff, ClientState, StreamState, parse_frame
from wsgen.client.url import DEFAULT_URL, websocket_url
from wsgen.engine.base import SEED_DRAW_LIMIT
from wsgen.errors import WsgenError
from wsgen.protocol.messages import speed_to_wire

__all__ = ["Client", "Subscription"]

log = logging.getLogger("wsgen.client")


class Subscription(StreamState):
    """One stream on a :class:`Client` connection.

    Iterate it (``async for block in sub``) for :class:`ReceivedBlock` objects as
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
        watch_token: a scored subscription's watch token (``None``: not
            scored): give it to a dashboard, which sends ``watch`` with it
            (or opens the page at ``/?watch=TOKEN``); a reconnection gets a new one.
        last_score: the latest figures received (a ``score`` reply, the
            final ``score`` of a stream that ended, or those of
            ``unsubscribed``), ``None`` before any.
        detect_errors: :class:`ServerError` of :meth:`detect` calls nobody
            awaited (the latest 64).

    The attributes above are the subscription's protocol state
    (:class:`~wsgen.client.state.StreamState`, also ``stream``,
    ``start_seq``, ``end_seq``, ``first_seq``, ``acknowledged``,
    ``max_lag``); this class adds the queue of received blocks and the calls.

    A composition resumes after a reconnection from the first slot of the
    last message received, and drops as many delivered samples as it had
    received from that slot on: deliveries from a slot do not depend on how
    the server splits them into messages, so the consumer sees each
    delivered sample once, duplicates by design (the ``duplicates`` fault)
    and held-back (``out_of_order``) samples included. Received seqs are
    never compared for dedup: they may repeat and go down by design.
    """

    def __init__(self, client: "Client", id: str, generator: str | Mapping[str, Any], params: Mapping[str, Any],
                 seed: int, speed: float | str, backpressure: str, encoding: str, start_seq: int) -> None:
        super().__init__(id, generator, params, seed, speed, backpressure, encoding, start_seq)
        self._client = client
        self._items: deque = deque()
        self._ready = asyncio.Event()
        self._ended = False
        self._end_exc: BaseException | None = None
        self._leftover: ReceivedBlock | None = None
        self.detect_errors: deque = deque(maxlen=64)
        self._detecting: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return (f"<Subscription {self.id!r} {self.generator} seed={self.seed} next_seq={self.next_seq}"
                f"{' paused' if self.paused else ''}{' finished' if self.finished else ''}>")

    # -- called by the client ------------------------------------------------
    def _deliver(self, block: ReceivedBlock) -> None:
        """Queue the part of a received block not received before."""
        kept = self.accept(block)
        if kept is not None:
            self._items.append(kept)
            self._ready.set()

    def _finish(self, exc: BaseException | None = None) -> None:
        """No more data: iteration ends once the queue is read (raising
        ``exc`` if given)."""
        self.finished = True
        if not self._ended:
            self._ended = True
            self._end_exc = exc
        self._ready.set()

    async def _next(self) -> ReceivedBlock:
        if self._leftover is not None:
            block, self._leftover = self._leftover, None
            return block
        while not self._items:
            if self._ended:
                if self._end_exc is not None:
                    raise self._end_exc
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        block = self._items.popleft()
        self._client._reader_wake.set()
        return block

    # -- public API ------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[ReceivedBlock]:
        return self

    async def __anext__(self) -> ReceivedBlock:
        """The next block as received (any length >= 1)."""
        return await self._next()

    async def take(self, n: int) -> ReceivedBlock:
        """Exactly ``n`` (>= 1) samples, concatenated into one :class:`ReceivedBlock`
        (values float64 (n,), labels bool (n,) or None). Samples beyond ``n``
        of the last block are kept for the next read.

        Raises:
            EOFError: the stream ended (unsubscribed/closed) before ``n``
                samples; :class:`ConnectionLost` if the connection is gone.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        parts: list[ReceivedBlock] = []
        got = 0
        while got < n:
            try:
                block = await self._next()
            except StopAsyncIteration:
                if parts:
                    self._leftover = ReceivedBlock.concat(parts)
                raise EOFError(f"subscription {self.id!r} ended after {got} of {n} samples") from None
            need = n - got
            if len(block) > need:
                self._leftover = block.slice(need)
                block = block.slice(0, need)
            parts.append(block)
            got += len(block)
        return ReceivedBlock.concat(parts)

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
        if self.finished:
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
        if not self.finished and not self._client.closed:
            try:
                await self.unsubscribe()
            except (ConnectionError, WsgenError):
                pass



# -- the client ------------------------------------------------------------------

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
        self._retry = Backoff(backoff_base, backoff_cap, max_reconnect_attempts)
        self.queue_size = queue_size
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.token = token
        self.connect_kwargs = connect_kwargs
        #: Number of successful reconnections so far.
        self.reconnects = 0
        self._state = ClientState()
        self._ws: ClientConnection | None = None
        self._ready = False          # connected and every pending request sent
        self._closing = False
        self._closed = False
        self._fatal: BaseException | None = None
        self._runner: asyncio.Task | None = None
        self._reader_wake = asyncio.Event()
        self._refusal: ConnectionLost | None = None   # why the reconnecting iterator stopped
        self._delay: float | None = None               # before the next reconnection attempt, seconds

    backoff_base = property(lambda self: self._retry.base, lambda self, v: setattr(self._retry, "base", v),
                            doc="First reconnection delay scale, seconds.")
    backoff_cap = property(lambda self: self._retry.cap, lambda self, v: setattr(self._retry, "cap", v),
                           doc="Largest reconnection delay, seconds.")
    max_reconnect_attempts = property(lambda self: self._retry.max_attempts,
                                      lambda self, v: setattr(self._retry, "max_attempts", v),
                                      doc="Reconnection attempts in a row before giving up (None: forever).")

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
        return dict(self._state.streams)   # type: ignore[arg-type]  (every stream is a Subscription)

    async def connect(self) -> None:
        """Open the connection (raises if the server cannot be reached)."""
        if self._runner is not None:
            raise RuntimeError("already connected")
        ws = await self._connector()
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
        self._end_all(None, ClientClosed("client closed"))

    def _connector(self) -> connect:
        """websockets' ``connect``: awaited for the first connection (not
        retried), iterated to reconnect (retries as :meth:`_retryable` says,
        after the delays of :class:`Backoff`)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        kwargs = {"compression": None, "max_size": 2**26, "open_timeout": self.open_timeout, "close_timeout": 2,
                  "additional_headers": headers, "process_exception": self._retryable,
                  "reconnect_delays": self._delays, **self.connect_kwargs}
        return connect(self.url, **kwargs)

    def _backoff(self, attempt: int) -> float:
        """Delay before reconnection attempt ``attempt`` (1, 2, ...), seconds."""
        return self._retry.delay(attempt)

    def _next_attempt(self) -> float | None:
        """Count a reconnection attempt: its delay, or None (after noting
        why in ``_refusal``) when the attempts are exhausted."""
        delay = self._retry.next()
        if delay is None:
            self._refusal = ConnectionLost(f"could not reconnect to {self.url} after "
                                           f"{self._retry.max_attempts} attempts")
        return delay

    def _retryable(self, exc: Exception) -> Exception | None:
        """websockets' ``process_exception`` for a failed reconnection
        attempt: ``None`` to try again (network errors, handshake failures,
        5xx, 408, 429) while attempts are left, else the exception that stops."""
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            if 400 <= status < 500 and status not in (408, 429):
                return ConnectionLost(f"server refused the reconnection: HTTP {status}")
            log.info("reconnection attempt %d failed: %s", self._retry.attempt, exc)
        elif isinstance(exc, (OSError, InvalidHandshake, asyncio.TimeoutError)):
            log.info("reconnection attempt %d failed: %r", self._retry.attempt, exc)
        else:
            return ConnectionLost(f"reconnection to {self.url} failed: {exc!r}")
        self._delay = self._next_attempt()
        return self._refusal if self._delay is None else None

    def _delays(self):
        """websockets' ``reconnect_delays``: the delay :meth:`_retryable` drew."""
        while True:
            yield self._delay

    async def _run(self, ws: ClientConnection) -> None:
        """Read the connection; on a drop, reconnect and resume."""
        if not await self._dropped(await self._serve(ws, resend=False)):
            return
        try:
            async with aclosing(self._connector().__aiter__()) as connections:
                async for conn in connections:
                    self._ws = conn
                    self.reconnects += 1
                    log.info("reconnected to %s; resuming %d subscription(s)", self.url, len(self._state.streams))
                    if not await self._dropped(await self._serve(conn, resend=True)):
                        return
        except ConnectionLost as exc:         # from _retryable: refused, or attempts exhausted
            self._fail(exc)

    async def _serve(self, ws: ClientConnection, resend: bool) -> str:
        """Send what awaits sending, then read until the connection drops;
        returns why it dropped."""
        try:
            if resend:
                while (req := self._state.next_unsent()) is not None:
                    await ws.send(orjson.dumps(req.message()), text=True)
            self._ready = True
            self._reader_wake.set()
            await self._read(ws)
            return f"closed by the server (code {ws.close_code})"
        except ConnectionClosed as exc:
            return str(exc)
        except OSError as exc:
            return repr(exc)

    async def _dropped(self, reason: str) -> bool:
        """After a drop: False to stop (closing, no reconnection, attempts
        exhausted), else True once it is time for the next attempt."""
        self._ready = False
        self._ws = None
        if self._closing:
            return False
        if not self.reconnect:
            self._fail(ConnectionLost(f"connection to {self.url} lost: {reason}"))
            return False
        log.warning("connection to %s lost (%s); reconnecting", self.url, reason)
        self._state.connection_lost()
        delay = self._next_attempt()
        if delay is None:
            self._fail(self._refusal)
            return False
        await asyncio.sleep(delay)
        return not self._closing

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        self._end_all(exc, exc)

    def _end_all(self, stream_exc: BaseException | None, request_exc: BaseException) -> None:
        """End every subscription (with ``stream_exc``) and every pending call (with ``request_exc``)."""
        streams, requests = self._state.clear()
        for sub in streams:
            sub._finish(stream_exc)     # type: ignore[attr-defined]
        for req in requests:
            if not req.waiter.done():
                req.waiter.set_exception(request_exc)

    # -- reading -----------------------------------------------------------------
    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self._retry.reset()
            try:
                item = parse_frame(raw)
                if isinstance(item, ReceivedBlock):
                    await self._on_block(item)
                else:
                    self._on_reply(item)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring a malformed server message: %r", exc)

    async def _on_block(self, block: ReceivedBlock) -> None:
        sub: Subscription | None = self._state.streams.get(block.id)   # type: ignore[assignment]
        if sub is None:
            return   # unsubscribed meanwhile
        while True:
            self._reader_wake.clear()
            if (len(sub._items) < self.queue_size or self._state.awaiting_reply or sub.finished
                    or self._closing):
                break
            await self._reader_wake.wait()
        sub._deliver(block)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        got = self._state.receive(msg)
        if got.ended is not None:
            if got.end_error is not None:
                log.warning("re-subscription of %r failed: %s", got.ended.id, got.end_error)
            got.ended._finish(got.end_error)     # type: ignore[attr-defined]
        req = got.request
        if req is None:
            if got.error is not None:
                log.warning("server error not matched to a request: %s: %s", got.error.code, got.error.message)
        elif req.internal:
            if got.error is not None and got.end_error is None:
                log.warning("re-pause of %r failed: %s", req.id, got.error)
        elif not req.waiter.done():
            if got.error is not None:
                req.waiter.set_exception(got.error)
            else:
                req.waiter.set_result(msg)

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
            replies = REPLIES[msg["type"]]
        req = self._state.request(build, id, replies or (), asyncio.get_running_loop().create_future())
        self._reader_wake.set()       # a reader waiting for room may read on
        try:
            ws = self._ws
            if self._ready and ws is not None:
                try:
                    await ws.send(orjson.dumps(req.message()), text=True)
                except ConnectionClosed:
                    req.sent = False     # sent again after reconnecting, or failed by _fail
            return await asyncio.wait_for(req.waiter, self.request_timeout)
        finally:
            self._state.forget(req)     # answered, timed out or the caller was cancelled

    def _new_id(self, generator: str | Mapping[str, Any]) -> str:
        return self._state.new_id(generator)

    async def _start(self, sub: Subscription) -> dict[str, Any]:
        """Register ``sub`` (before sending: data may follow the reply at
        once) and send its ``subscribe``; the ``subscribed`` reply."""
        registered = self._state.add(sub)     # a duplicate id is sent anyway: the server refuses it
        try:
            return await self._request(sub.subscribe_message, sub.id, REPLIES["subscribe"])
        except BaseException:
            if registered:
                self._state.discard(sub)
            sub._finish(None)
            raise

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
                or ``"drop"`` (it skips samples; ``ReceivedBlock.skipped``).
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
        sub.duration = duration
        await self._start(sub)
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
        reply = await self._start(sub)
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


