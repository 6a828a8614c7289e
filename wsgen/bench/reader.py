"""A lean WebSocket reader for the load generator: websockets' sans-I/O
client protocol driven by a plain :class:`asyncio.Protocol`.

``wsgen bench fanout`` reads every data message in Python. Through
websockets' asyncio connection (``async for``/``recv``) each message costs a
future, a task switch and a queue hand-off: on a 2-core machine two reader
processes could not keep up with 100,000 separate messages a second, so the
bench measured its own backlog, not the server. Here the bytes of one socket
read go through :class:`websockets.client.ClientProtocol` (the same frame
parser, UTF-8 checks and ping/pong/close handling, without the asyncio
layer; see websockets' "Integrate the Sans-I/O layer" guide) and every text
message is handed to a callback with the wall-clock time of the read that
completed it: about 4 us per message instead of 15-20.

    reader = await LeanConnection.open("ws://127.0.0.1:8765/", on_text)
    reader.send_text('{"type": "subscribe", ...}')
    await reader.closed          # or reader.close()

``on_text(payload: bytes, now: float)`` is called for each text message
(``now``: ``time.time()`` when its last byte was read). Binary messages are
ignored. Errors: :class:`ConnectionError` from :meth:`LeanConnection.open`
when the handshake is refused or fails.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

__all__ = ["LeanConnection"]


class LeanConnection(asyncio.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, url: str, on_text: Callable[[bytes, float], None], max_size: int | None = None) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=max_size)
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()

    @classmethod
    async def open(cls, url: str, on_text: Callable[[bytes, float], None], timeout: float = 120.0,
                   max_size: int | None = None) -> "LeanConnection":
        """Connect, send the opening handshake and wait for the server's 101."""
        wsuri = parse_uri(url)
        if wsuri.secure:
            raise ValueError("the lean reader speaks ws:// only (a benchmark on loopback)")
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: cls(url, on_text, max_size), wsuri.host, wsuri.port), timeout)
        await asyncio.wait_for(conn.opened, timeout)
        return conn

    # -- asyncio.Protocol ------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport    # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if ws.handshake_exc is not None:
                    self._fail(ConnectionError(f"handshake refused: {ws.handshake_exc}"))
                elif not self.opened.done():
                    self.opened.set_result(None)
            elif event.opcode is Opcode.TEXT:
                self.on_text(event.data, now)
        self._flush()      # pongs to the server's pings, the closing handshake

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- sending -----------------------------------------------------------
    def send_text(self, text: str) -> None:
        """Send one text message (a client frame: masked by the protocol)."""
        self.ws.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        """Start the closing handshake (1000); :attr:`closed` resolves when
        the TCP connection is gone."""
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_close(1000)
            self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.ws.close_expected():
            # the closing handshake is done (or failed): the server closes TCP
            # first; do not wait for it for long
            asyncio.get_running_loop().call_later(2.0, transport.close)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()
