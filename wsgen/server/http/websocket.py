"""The WebSocket protocol on the HTTP port: ``ws://host:8000/ws`` and ``/ws/<generator>?...``.

For deployments that expose one port (an ingress, a hosted platform, a proxy
with one upstream). uvicorn parses every request on the HTTP port; one that
asks to upgrade to WebSocket it hands over, with its transport and its
request head (re-serialised), to the ``ws`` protocol class of its config.
:meth:`Handoff.protocol_class` is that class. It looks at the request path:

* ``/ws`` and ``/ws/...``: the connection becomes a connection *of the
  dedicated WebSocket server*, made by that server's own connection factory
  (the one its listening socket uses). It goes through the same handshake
  checks (:class:`wsgen.server.ws.Gate`: token, Host, Origin, route, connection
  limits, open timeout), the same :class:`wsgen.server.ws.Connection` and
  :class:`wsgen.protocol.session.Session` (messages, errors, pacing, backpressure,
  keepalive, write limits), the same metrics, and the same graceful
  shutdown (1001, then abort at the grace period). ``/ws`` is the message
  protocol (the dedicated port's ``/``), ``/ws/<generator>?...`` a URL
  subscription (the dedicated port's ``/<generator>?...``).
* any other path: the ``fallback`` protocol class (what uvicorn would use
  without this module), whose answer says where the WebSocket endpoints are.

While the WebSocket server is not running yet, or no longer accepts
(graceful shutdown), a ``/ws`` upgrade is answered ``503`` with
``Retry-After``.

The dedicated port stays the faster path: here each connection's reads pass
through uvicorn's transport first (one extra Python call per received chunk,
nothing per sent frame).
"""
from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["WS_PATH", "Handoff", "is_ws_target"]

WS_PATH = "/ws"

_BODY = b"the WebSocket server is not accepting connections now; retry later\n"
_UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


def is_ws_target(target: bytes) -> bool:
    """Whether a request target (``b"/ws/sine?seed=1"``) is one of the HTTP
    port's WebSocket paths: ``/ws`` or anything under ``/ws/``."""
    path = target.split(b"?", 1)[0]
    return path == b"/ws" or path.startswith(b"/ws/")


class Handoff:
    """Where the HTTP port's WebSocket upgrades go.

    Create it before the HTTP server, pass :meth:`protocol_class` as
    ``uvicorn.Config(ws=...)``, and set :attr:`server` to the running
    ``websockets`` server once it listens.
    """

    def __init__(self, fallback: Any = "auto") -> None:
        #: the dedicated WebSocket server (``websockets.asyncio.server.Server``)
        self.server: Any = None
        self.fallback = fallback

    def _fallback_class(self) -> type | None:
        if not isinstance(self.fallback, str):
            return self.fallback
        from uvicorn.config import WS_PROTOCOLS
        from uvicorn.importer import import_from_string
        target = WS_PROTOCOLS.get(self.fallback, self.fallback)
        return import_from_string(target) if target else None

    def connection_factory(self):
        """The WebSocket server's protocol factory (a new ``ServerConnection``
        per call), or None while it does not accept connections."""
        server = self.server
        if server is None or not server.is_serving():
            return None
        # websockets keeps its factory in a closure and hands it to
        # loop.create_server(); asyncio.Server keeps it (CPython since 3.4).
        return server.server._protocol_factory

    def protocol_class(self) -> type[asyncio.Protocol]:
        """The class for ``uvicorn.Config(ws=...)``."""
        handoff = self
        fallback = self._fallback_class()

        class UpgradeToWebSocket(_Upgrade):
            _handoff = handoff
            _fallback = fallback

        return UpgradeToWebSocket


class _Upgrade(asyncio.Protocol):
    """Picks the protocol of an upgraded connection from its request path
    and passes every event to it.

    uvicorn calls ``connection_made`` and ``data_received`` (with the request
    head), then ``transport.set_protocol(self)``; once that is done the
    transport is pointed at the chosen protocol directly, and this object
    is out of the way.
    """

    _handoff: Handoff
    _fallback: type | None

    def __init__(self, config: Any = None, server_state: Any = None, app_state: Any = None) -> None:
        self._uvicorn = {"config": config, "server_state": server_state, "app_state": app_state}
        self.transport: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport   # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            self._choose(data)
            if self.inner is None:
                return
        self.inner.data_received(data)

    def _choose(self, head: bytes) -> None:
        transport = self.transport
        target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        if is_ws_target(target):
            factory = self._handoff.connection_factory()
            if factory is None:
                transport.write(_UNAVAILABLE)
                transport.close()
                return
            inner = factory()
        elif self._fallback is not None:
            inner = self._fallback(**self._uvicorn)
        else:
            transport.close()
            return
        self.inner = inner
        inner.connection_made(transport)
        # uvicorn sets this object as the transport's protocol right after
        # this call returns; point the transport at ``inner`` after that
        asyncio.get_running_loop().call_soon(self._detach, inner)

    def _detach(self, inner: asyncio.Protocol) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.get_protocol() is self:
            transport.set_protocol(inner)

    # events that reach this object before the hand-over completes

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
