"""A request-head deadline for uvicorn's HTTP/1.1 connections (slowloris guard).

uvicorn (0.54, its h11 and httptools protocols alike) has no timeout on
reading a request head: its keep-alive timer runs only between requests,
is not armed before the first one, and every byte received disarms it. A
client that connects and sends a request line and headers slowly, or never
finishes them, holds its connection for ever; only ``limit_concurrency``
(``max_http_connections``) bounds how many.

:func:`protocol_class` returns uvicorn's own HTTP/1.1 protocol class with a
deadline added, as Go's ``ReadHeaderTimeout`` and hyper's
``header_read_timeout`` have it: the request head (request line and
headers) must be complete within ``timeout_s`` seconds

* of the connection opening, for its first request (a client that
  connects and sends nothing is closed too);
* of the first byte of the next request, on a kept-alive connection (the
  idle wait before that byte is uvicorn's keep-alive timeout, unchanged).

Bytes trickling in do not extend it. Past it the connection is closed,
without an answer. It does not run while a request is being answered, so
a stream of any length is never cut.
"""
from __future__ import annotations

import asyncio
import logging

__all__ = ["protocol_class"]

log = logging.getLogger("wsgen.server.http.app")


class _HeadDeadline:
    """Mixin over a uvicorn HTTP/1.1 protocol (``H11Protocol``,
    ``HttpToolsProtocol``): both set ``self.cycle`` to a new
    ``RequestResponseCycle`` when a request head is complete, which is all
    this needs to know of them."""

    header_timeout_s: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:
            self._disarm()                      # a request head is complete
        elif cycle is not None and cycle.response_complete:
            self._arm()                         # first bytes of the next request (no-op if armed)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        transport = self.transport
        # (after a WebSocket upgrade the transport has another protocol: not ours to close)
        if transport.is_closing() or transport.get_protocol() is not self:
            return
        client = self.client
        log.info("http %s request head not complete within %.1f s; closing",
                 f"{client[0]}:{client[1]}" if client else "?", self.header_timeout_s)
        transport.close()


def protocol_class(timeout_s: float) -> type:
    """uvicorn's HTTP/1.1 protocol class (httptools if installed, else h11:
    its ``http="auto"`` choice) with the request-head deadline ``timeout_s``
    (seconds, > 0). Pass it as ``uvicorn.Config(http=...)``."""
    if not timeout_s > 0:
        raise ValueError(f"header timeout must be > 0 seconds, got {timeout_s!r}")
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return type("HeadDeadlineHTTPProtocol", (_HeadDeadline, AutoHTTPProtocol), {"header_timeout_s": timeout_s})
