"""WebSocket adapter: moves messages between sockets and :class:`Session`.

One :class:`Connection` per client: a reader (the handler coroutine) feeds
client messages to the session and sends its replies; a pump task sends the
samples that fall due, one ``data`` message per subscription per wake-up.
Wake-ups are at least one tick apart, so samples due within a tick share a
message. ``await send`` waits while the socket's buffer is above its
high-water mark: that is the ``block`` backpressure; ``drop`` subscriptions
skip what falls due while the buffer is full instead.
"""
from __future__ import annotations

import asyncio
import http
import logging
import math
import time
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wsgen.protocol import encoding
from wsgen.server import offload
from wsgen.server.budget import RENDER_BUDGET_S
from wsgen.server.access import HOST_REFUSED, host_allowed, token_ok
from wsgen.server.config import Settings
from wsgen.engine import ANOMALY_KINDS, GENERATORS
from wsgen.server.logsummary import Summary
from wsgen.server.receipts import ReadReceipts
from wsgen.server.frames import drain, send_frames, write_texts
from wsgen.protocol.fanout import PlainTake, batch_text
from wsgen.protocol.session import Chunk, Session

log = logging.getLogger("wsgen.server.ws")

_NONE_PLAIN = PlainTake([], [], {}, math.inf, [])   # a connection without plain subscriptions (never changed)


def route(path: str) -> tuple[str | None, dict[str, str]] | None:
    """Generator name and query of a request path; ``(None, q)`` for ``/``;
    ``None`` for a path that names no generator."""
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    name = parts.path.strip("/")
    if name.startswith("ws/"):   # /ws/<generator>: the HTTP port's paths (wsgen.server.http.websocket), here too
        name = name[3:]
    if name.startswith("anomalies/"):
        name = name[len("anomalies/"):]
        if name not in ANOMALY_KINDS:
            return None
    if name in ("", "ws"):
        return None, query
    if name.startswith("streams/") and len(name) > len("streams/"):
        return name, query          # a named stream (wsgen.streams.session)
    return (name, query) if name in GENERATORS else None


def _response(status: http.HTTPStatus, text: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")])
    for k, v in (extra or {}).items():
        headers[k] = v
    body = (text + "\n").encode()
    headers["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, headers, body)


class Refusal(NamedTuple):
    """A refused handshake: the error code (``wsgen_errors``) and the answer."""

    code: str
    response: Response


class Gate:
    """Handshake checks: token, origin, route and connection limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.open = 0
        #: the open connections (:class:`Connection`): shutdown stops their generation first
        self.connections: set = set()
        self.per_ip: dict[str, int] = {}
        self.http_port: int | None = settings.http_port
        self.ws_port: int | None = settings.port or None   # the bound port, set by serve.start

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None or origin in self.settings.allow_origins or "*" in self.settings.allow_origins:
            return True
        if _origin_is_host(origin, host_header):
            return True
        try:
            o = urlsplit(origin)
            h = urlsplit("//" + (host_header or ""))
            # the server's own HTTP page, or its own WebSocket origin (http://<host>:<ws port>, which
            # non-browser clients such as websocket-client send by default; no page can be served there)
            own_ports = {p for p in (self.http_port, self.ws_port) if p}
            return (o.scheme in ("http", "https") and o.hostname is not None and o.hostname == h.hostname
                    and o.port in own_ports)
        except ValueError:   # malformed: "http://host:99999", "http://[::1", ...
            return False

    def check(self, connection: ServerConnection, request: Request) -> Refusal | None:
        """``None`` to let the handshake go on, else why not (an error code, as
        counted in ``wsgen_errors``) and the HTTP answer."""
        s = self.settings
        if s.token:
            query_token = dict(parse_qsl(urlsplit(request.path).query)).get("token")
            if not token_ok(s.token, request.headers.get_all("Authorization"), query_token):
                return Refusal("unauthorized", _response(http.HTTPStatus.UNAUTHORIZED,
                               "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}))
        origin, host = _single(request.headers, "Origin", ""), _single(request.headers, "Host", "")
        if not host_allowed(s.host, host, s.allow_hosts):
            return Refusal("bad_host", _response(http.HTTPStatus.FORBIDDEN, HOST_REFUSED))
        if not self.origin_allowed(origin, host):
            return Refusal("origin_refused", _response(http.HTTPStatus.FORBIDDEN,
                                                       "origin not allowed; see --allow-origin"))
        if route(request.path) is None:
            names = ", ".join(GENERATORS)
            path = urlsplit(request.path).path
            root = "/ws/" if path.startswith("/ws/") else "/"   # the HTTP port's paths (wsgen.server.http.websocket)
            return Refusal("not_found", _response(http.HTTPStatus.NOT_FOUND,
                           f"no generator at {path}; "
                           f"connect to {root.rstrip('/') or '/'} and send messages, or to {root}<generator>: {names}"))
        ip = _peer_ip(connection)
        if self.open >= s.max_connections or self.per_ip.get(ip, 0) >= s.max_connections_per_ip:
            # which limit: behind a proxy every client shares the proxy's address (README, "Deploying")
            which = (f"in total (--max-connections {s.max_connections})" if self.open >= s.max_connections
                     else f"from this address (--max-connections-per-ip {s.max_connections_per_ip})")
            return Refusal("limit_reached", _response(http.HTTPStatus.SERVICE_UNAVAILABLE,
                           f"too many connections {which}; retry later", {"Retry-After": "5"}))
        return None

    def enter(self, ip: str) -> None:
        self.open += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

    def leave(self, ip: str) -> None:
        self.open -= 1
        left = self.per_ip.get(ip, 1) - 1
        if left:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)


def _single(headers: Headers, name: str, repeated: str | None = None) -> str | None:
    """A header's value; None when absent; ``repeated`` when given more than
    once (``Headers.get`` would raise, and the handshake answer 500)."""
    values = headers.get_all(name)
    return values[0] if len(values) == 1 else None if not values else repeated


def _origin_is_host(origin: str, host_header: str | None) -> bool:
    """Whether ``origin`` is the very address the client asked for (the
    ``Host`` header; a missing port is the origin scheme's default): the
    page's own origin, as behind a proxy or an ingress that serves the page
    and ``/ws`` on one public address (wsgen.server.http.websocket)."""
    try:
        o = urlsplit(origin)
        h = urlsplit("//" + (host_header or ""))
        if o.scheme not in ("http", "https") or not o.hostname or o.hostname != h.hostname:
            return False
        default = 443 if o.scheme == "https" else 80
        return (o.port or default) == (h.port or default)
    except ValueError:   # malformed port or bracket
        return False


def _peer_addr(connection: ServerConnection) -> str:
    addr = connection.remote_address
    if not addr:
        return "?"
    return f"[{addr[0]}]:{addr[1]}" if ":" in str(addr[0]) else f"{addr[0]}:{addr[1]}"


def _peer_ip(connection: ServerConnection) -> str:
    addr = connection.remote_address
    return str(addr[0]) if addr else "?"


class Connection:
    """Serve one WebSocket client until it leaves or the server stops."""

    def __init__(self, ws: ServerConnection, settings: Settings, metrics=None) -> None:
        self.ws = ws
        self.settings = settings
        self.session = Session(settings)
        self.session.offload = offload.run   # costly generators are built off the loop
        self.session.push = self._push   # messages the session sends unasked (named-stream changes)
        self.session.on_drop = metrics.dropped if metrics else None   # every sample skipped, when skipped
        self.receipts = ReadReceipts()   # what the client has read, for drop's max_lag (wsgen.server.receipts)
        self._pushing: set[asyncio.Task] = set()
        self.metrics = metrics
        self._waiter: asyncio.Future | None = None
        self._poked = False   # set by poke(): the pump looks again before sleeping
        self.peer = _peer_ip(ws)
        self.addr = _peer_addr(ws)   # ip:port, as in the open and close lines
        self._counted: dict[str, str] = {}   # subscription id -> generator, for the gauge
        self.error_log = Summary(log, f"ws error {self.addr}")   # a few lines, then one a minute

    async def send(self, message: dict) -> None:
        await self.ws.send(encoding.dumps(message), text=True)

    async def send_wakeup(self, unbatched: list[Chunk], batched: list[Chunk], texts: list[bytes] = (),
                          lags: list[float] = (), counts: dict[str, int] | None = None,
                          btexts: list[bytes] = ()) -> None:
        """The data of one wake-up, in one transport write (wsgen.server.frames):
        the data messages ``texts`` already in JSON (wsgen.protocol.fanout:
        the ``lags`` and samples by generator ``counts`` of these and of
        ``btexts``, for the metrics), a data message per ``unbatched`` chunk
        (JSON text or binary frame), then one ``batch`` message holding the
        data messages ``btexts`` (JSON) and the ``batched`` chunks."""
        frames = []
        for chunk in unbatched:
            if chunk.sub.encoding == "binary":
                b = chunk.block
                frames.append((False, encoding.encode_binary(chunk.sub.id, b.seq, chunk.t, chunk.dt, b.values,
                                                             b.labels, chunk.lag, chunk.skipped)))
            else:
                frames.append((True, encoding.dumps(chunk.to_json())))
        if batched or btexts:
            frames.append((True, batch_text([*btexts, *(encoding.dumps(c.to_json()) for c in batched)])))
        await send_frames(self.ws, frames, texts)
        if self.metrics:
            if lags:
                self.metrics.sent_texts(lags, counts)
            if unbatched or batched:
                self.metrics.sent_many(unbatched + batched if batched else unbatched)

    async def replies(self, messages: list[dict]) -> None:
        for message in messages:
            if not isinstance(message, dict):
                message = await message   # a named-stream change waiting for the control plane
            self._account(message)
            await self.send(message)
        self.poke()

    def _account(self, message: dict) -> None:
        """Metrics and logs for one reply."""
        kind = message["type"]
        if kind == "error":
            # %r: the id is the client's text; newlines in it must not forge log lines
            self.error_log.log(message["code"], "ws error %s code=%s id=%r", self.addr, message["code"],
                               message["id"])
            if self.metrics:
                self.metrics.error(message["code"], "ws")
        elif self.metrics and kind == "subscribed":
            self._counted[message["id"]] = message["generator"]
            self.metrics.subscriptions.labels(message["generator"]).inc()
        elif self.metrics and kind in ("unsubscribed", "ended"):
            name = self._counted.pop(message["id"], None)
            if name:
                self.metrics.subscriptions.labels(name).dec()

    def stop_generation(self) -> None:
        """Stop sending data at once (server shutdown): the pump ends, the
        subscriptions stay until the connection closes."""
        pump = getattr(self, "_pump", None)
        if pump is not None:
            pump.cancel()

    async def run(self, name: str | None, query: dict[str, str]) -> None:
        self._pump = pump = asyncio.create_task(self.pump())
        pump.add_done_callback(self._pump_ended)
        try:
            if name is not None:
                await self.replies(self.session.subscribe_url(name, query))
            async for message in self.ws:
                await self.replies(self.session.handle(message))
                # the loop's turn between two messages of one client: a client
                # that pipelines many (dear) requests delays the others by one
                # request at most, not by all of them
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            # wait without raising: a cancelled pump raises CancelledError (not
            # an Exception), which escaped and skipped the cleanup below; a
            # failed one is reported by _pump_ended
            await asyncio.wait([pump])
            self.session.close()
            self.error_log.close()
            if self.metrics:
                for name in self._counted.values():
                    self.metrics.subscriptions.labels(name).dec()
                self._counted.clear()

    def _push(self, message: dict) -> None:
        task = asyncio.ensure_future(self.replies([message]))
        self._pushing.add(task)
        task.add_done_callback(_pushed(self._pushing))

    def _pump_ended(self, pump: asyncio.Task) -> None:
        """A pump that fails (a server bug, never a client's doing) must not
        leave a silent connection: log it and close with 1011."""
        if pump.cancelled():
            return
        exc = pump.exception()
        if exc is not None and not isinstance(exc, ConnectionClosed):
            log.error("ws pump failed for %s; closing with 1011", self.addr, exc_info=exc)
            asyncio.ensure_future(self.ws.close(1011, "internal error"))

    async def pump(self) -> None:
        """Send what falls due, tick by tick, until cancelled."""
        s = self.settings
        clock = time.monotonic
        transport = self.ws.transport
        # ``send`` returns only once the buffer is below the low-water mark,
        # so the buffer is rarely seen full: a send that waited is what says
        # the client fell behind (20 ms at least: shorter waits may be the
        # scheduler, not the client). ``stalled_until`` is when the last such
        # wait ended; ``drop`` subscriptions skip what fell due until then.
        stall_s = max(s.tick_s, 0.02)
        stalled_until = -math.inf
        session = self.session
        live = session.subscriptions
        max_block = s.max_block
        receipts = self.receipts
        tick = s.tick_s
        ws = self.ws
        while True:
            now = clock()
            self._poked = False
            order = session.send_order()
            texts, btexts, lags, counts, next_due, rest, brest = self._take_plain(order, now)
            if not order.general and not rest and not brest:
                # only plain subscriptions, all served (fan-out's wake-up: the
                # general one below, without what none of them can need)
                if texts or btexts:
                    started = clock()
                    if not self._write_plain(texts, btexts, lags, counts):
                        await send_frames(ws, (), texts + [batch_text(btexts)] if btexts else texts)
                    elif ws.paused:
                        await drain(ws)       # the block backpressure, as send_frames
                    if clock() - started > stall_s:
                        stalled_until = clock()
                if not self._poked:
                    # the next plain wake-ups run as loop callbacks, without this
                    # task, until one needs it (Connection._plain_tick)
                    await self._plain_sleep(max(next_due, now + tick))
                    if ws.paused:
                        await drain(ws)
                continue
            busy = awaited = False
            unbatched: list[Chunk] = []   # one data message each, all sent in one write after the loop
            batched: list[Chunk] = []
            ending: list = []     # subscriptions that reached their count / duration
            drop_lag = math.inf   # the smallest max_lag of the drop subscriptions
            # Batched subscriptions come last in the send order: their chunks
            # are then taken and sent with no await between (a chunk held
            # while another send waits could go out after a "paused" or
            # "unsubscribed" reply).
            general = order.general
            for sub in (rest + brest + general if rest or brest else general):
                if clock() - now > RENDER_BUDGET_S:
                    # this wake-up had its share of the loop (each render is
                    # sized to the budget: many subscriptions add up): send
                    # what is held, let the others run, then go on
                    if texts or btexts or unbatched or batched:
                        started = clock()
                        await self.send_wakeup(unbatched, batched, texts, lags, counts, btexts)
                        if drop_lag < math.inf:
                            receipts.data_sent(started)
                        unbatched, batched, texts, btexts, lags, counts = [], [], [], [], [], {}
                    await asyncio.sleep(0)
                    awaited, now = True, clock()
                if awaited and live.get(sub.id) is not sub:
                    continue  # unsubscribed while an earlier send waited
                if sub.paused:
                    continue
                if sub.backpressure == "drop" and sub.max_lag < drop_lag:
                    drop_lag = sub.max_lag
                chunk = None
                if sub.pacer.unpaced:
                    busy = True
                    chunk = sub.take(now, max_block)
                elif sub.backpressure == "drop" and (receipts.age(now) > sub.max_lag or
                                                     transport.get_write_buffer_size() >
                                                     transport.get_write_buffer_limits()[1]):
                    # the client holds data older than max_lag unread, or the buffer is full
                    sub.drop_due(clock(), 1 << 62)     # (unpaced: nothing is "due" to drop; the send waits)
                else:
                    if sub.backpressure == "drop" and stalled_until > -math.inf:
                        sub.drop_due(stalled_until, 1 << 62)  # no-op once dropped
                    chunk = sub.take(now, max_block)
                if chunk is not None:
                    (batched if sub.batch else unbatched).append(chunk)
                if (sub.end_seq is not None or sub.end_at is not None) and sub.finished(now):
                    ending.append(sub)
                    continue
                due = sub.pacer.due_time(sub.generator.seq)   # sub.next_due(), inlined: not paused
                if due < next_due:
                    next_due = due
            sent = bool(texts or btexts or unbatched or batched)
            if sent:
                started = clock()
                await self.send_wakeup(unbatched, batched, texts, lags, counts, btexts)
                if clock() - started > stall_s:
                    stalled_until = clock()
            if drop_lag < math.inf and sent:
                receipts.data_sent(now)
            if drop_lag < math.inf and receipts.want_ping(clock(), drop_lag / 4):
                await self._read_receipt()
            for sub in ending:       # after its last data, batched or not
                if live.get(sub.id) is sub:
                    await self.replies(session.end(sub.id))
            if busy:
                await asyncio.sleep(0)
                if transport.get_write_buffer_size() > s.send_buffer_bytes:
                    await asyncio.sleep(s.tick_s / 5)
                continue
            if self._poked:
                continue   # a message changed the subscriptions while we were sending
            if awaited:
                next_due = session.next_due()   # computed before some sends: may be stale
            await self._sleep_until(max(next_due, now + s.tick_s))

    def _take_plain(self, order, now: float) -> tuple:
        """The plain subscriptions' data messages due at ``now``, straight
        to JSON (wsgen.protocol.fanout): texts, batched texts, their lags
        and samples by generator, the next due time, and the subscriptions
        handed back (unbatched, batched)."""
        limit, deadline = self.settings.max_block, now + RENDER_BUDGET_S
        texts, lags, counts, next_due, rest = order.plain_pass.take(now, limit, deadline) \
            if order.plain else _NONE_PLAIN
        if not order.batched:
            return texts, [], lags, counts, next_due, rest, []
        btexts, blags, bcounts, bnext_due, brest = order.batched_pass.take(now, limit, deadline)
        if btexts:
            lags = lags + blags
            counts = {k: counts.get(k, 0) + bcounts.get(k, 0) for k in counts.keys() | bcounts.keys()}
        return texts, btexts, lags, counts, min(next_due, bnext_due), rest, brest

    def _write_plain(self, texts: list[bytes], btexts, lags: list[float], counts: dict[str, int]) -> bool:
        """Write a wake-up's plain messages now (one write; the batched ones
        in one ``batch`` message) and count them; False, writing nothing,
        when the connection cannot take a write now (then ``send_frames``)."""
        if not write_texts(self.ws, texts + [batch_text(btexts)] if btexts else texts):
            return False
        if self.metrics:
            self.metrics.sent_texts(lags, counts)
        return True

    async def _plain_sleep(self, when: float) -> None:
        """Wait while the plain wake-ups from ``when`` on run as loop
        callbacks (:meth:`_plain_tick`): until one hands back to the pump,
        a :meth:`poke`, or the pump's cancellation (which cancels the
        next callback)."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        # nothing due (none, or all paused): no timer; a message pokes
        self._tick_handle = None if math.isinf(when) else loop.call_at(when, self._plain_tick)
        try:
            await waiter
        finally:
            self._waiter = None
            if self._tick_handle is not None:
                self._tick_handle.cancel()

    def _plain_tick(self) -> None:
        """One wake-up of a connection holding only plain subscriptions, as
        a loop callback: the pump's plain branch without a task step, a
        future and a coroutine chain per wake-up (a fifth of the server's
        time at 100 connections of 10 subscriptions). It hands back to the
        pump (resolving its waiter) when anything else is needed: another
        kind of subscription, a subscription it hands back, a message that
        changed them, a transport above its high-water mark or closing.
        Its exceptions go to the pump, which closes with 1011."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            now = time.monotonic()
            order = self.session.send_order()
            if order.general or self._poked or self.ws.paused:
                waiter.set_result(None)
                return
            texts, btexts, lags, counts, next_due, rest, brest = self._take_plain(order, now)
            if (texts or btexts) and not self._write_plain(texts, btexts, lags, counts):
                waiter.set_result(None)     # closing: the pump's send_frames raises ConnectionClosed
                return
            if rest or brest or self.ws.paused:
                waiter.set_result(None)
                return
            self._tick_handle = None if math.isinf(next_due) else \
                asyncio.get_running_loop().call_at(max(next_due, now + self.settings.tick_s), self._plain_tick)
        except Exception as exc:           # a bug of ours: the pump fails with it (1011, logged)
            waiter.set_exception(exc)

    async def _read_receipt(self) -> None:
        """Ping after the data sent so far: its pong says the client has read
        all of it (:mod:`wsgen.server.receipts`; for ``drop``'s ``max_lag``)."""
        token = self.receipts.next_token()
        pong = await self.ws.ping(token)
        self.receipts.ping_sent(token, time.monotonic())
        pong.add_done_callback(lambda fut: self._ponged(token, fut))

    def _ponged(self, token: bytes, pong: asyncio.Future) -> None:
        if pong.cancelled() or pong.exception() is not None:
            return      # the connection closed first
        self.receipts.acked(token)
        self.poke()     # drop subscriptions may send again

    def poke(self) -> None:
        """Wake the pump now (a message changed the subscriptions)."""
        self._poked = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep_until(self, when: float) -> None:
        """Sleep until monotonic time ``when`` or a :meth:`poke`, whichever
        comes first (one future and one timer handle: cheap per tick)."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        # asyncio's loop.time() is time.monotonic(): ``when`` is on its clock
        handle = None if math.isinf(when) else loop.call_at(when, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()


def _pushed(tasks: set):
    def done(task: asyncio.Task) -> None:
        tasks.discard(task)
        if not task.cancelled() and not isinstance(task.exception(), (ConnectionClosed, type(None))):
            log.error("ws push failed", exc_info=task.exception())
    return done


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def make_handler(settings: Settings, gate: Gate, metrics=None, deadline=None):
    """The ``websockets`` handler and ``process_request`` hook for a server.

    ``deadline``: a :class:`wsgen.server.liveness.WriteDeadline` that watches every
    connection (None: no write timeout)."""

    async def process_request(connection: ServerConnection, request: Request):
        refused = gate.check(connection, request)
        if refused is None:
            return None
        if metrics:
            metrics.error(refused.code, "ws")
        response = refused.response
        log.info("ws refused %s %s status=%d code=%s: %s", _peer_addr(connection), urlsplit(request.path).path,
                 response.status_code, refused.code, bytes(response.body).decode("utf-8", "replace").strip())
        return response

    async def handler(ws: ServerConnection) -> None:
        ip = _peer_ip(ws)
        gate.enter(ip)
        started = time.monotonic()
        routed = route(ws.request.path) or (None, {})
        addr = _peer_addr(ws)
        log.info("ws open %s path=%s", addr, urlsplit(ws.request.path).path)
        if metrics:
            metrics.connections.inc()
        conn = Connection(ws, settings, metrics)
        gate.connections.add(conn)
        if deadline is not None:
            deadline.watch(ws.transport, None, "ws")   # a client taking no bytes: aborted
        try:
            await conn.run(*routed)
        finally:
            gate.connections.discard(conn)
            gate.leave(ip)
            if metrics:
                metrics.connections.dec()
            # the close codes of both directions: a close the server starts (1001, 1009, 1011) is not
            # the code it receives (often none: 1006)
            sent, received = ws.protocol.close_sent, ws.protocol.close_rcvd
            log.info("ws close %s sent=%s received=%s duration=%.3fs", addr, sent.code if sent else "-",
                     received.code if received else "-", time.monotonic() - started)

    return handler, process_request
