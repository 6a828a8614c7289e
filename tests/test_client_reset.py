"""A client that resets its connection while the server waits to send to it
(``speed: "max"``, the client not reading) is a client leaving: no error, no
traceback in the server's log, and the server goes on serving, on both the
WebSocket port and the HTTP port's ``/ws``."""
from __future__ import annotations

import base64
import json
import logging
import os
import socket
import struct
import time

import numpy as np
import pytest
from servers import ThreadedServer

import wsgen

pytestmark = pytest.mark.timeout(120)


def _open(port: int, path: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)     # fills at once: the server waits
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _text(obj: dict) -> bytes:
    payload = json.dumps(obj).encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _first_values(port: int, path: str, n: int) -> list[float]:
    s = _open(port, path)
    s.sendall(_text({"type": "subscribe", "id": "a", "generator": "sine", "seed": 3, "count": n, "speed": "max"}))
    buf, values = b"", []
    while len(values) < n:
        buf += s.recv(65536)
        while len(buf) >= 2:
            length, off = buf[1] & 0x7F, 2
            if length == 126:
                length, off = struct.unpack("!H", buf[2:4])[0], 4
            if len(buf) < off + length:
                break
            msg, buf = json.loads(buf[off:off + length]), buf[off + length:]
            if msg["type"] == "data":
                values += msg["values"]
    s.close()
    return values


def test_a_reset_while_the_server_waits_to_send_is_no_error(caplog):
    caplog.set_level(logging.INFO)
    with ThreadedServer() as srv:
        http_port = int(srv.http_url.rsplit(":", 1)[1])
        for port, path in ((srv.port, "/"), (http_port, "/ws")):
            for delay in (0.02, 0.05, 0.2):     # the server's buffers fill; its pumps wait for the clients
                clients = [_open(port, path) for _ in range(10)]
                for s in clients:
                    for k, (kind, speed) in enumerate((("sine", 1), ("normal", "max"), ("random", 1), ("sine", "max"))):
                        s.sendall(_text({"type": "subscribe", "id": f"x{k}", "generator": kind,
                                         "params": {"interval": 0.01}, "speed": speed}))
                time.sleep(delay)
                for s in clients:
                    _reset(s)
            time.sleep(0.5)
            assert _first_values(port, path, 50) == wsgen.create("sine", seed=3).take(50).values.tolist()
        assert np.isfinite(srv.tasks())
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("wsgen")]
    assert errors == [], [(r.name, r.getMessage()) for r in errors]
    assert not any(r.exc_info for r in caplog.records if r.name.startswith(("wsgen", "websockets")))


def test_send_frames_raises_connection_closed_when_the_client_resets_while_it_waits():
    """The mechanism, deterministically: ``send_frames`` waiting for a client
    that reads nothing (its transport paused above the high-water mark) gets
    the transport's ``ConnectionResetError`` from ``ws.drain()`` when the
    client resets; it raises ``ConnectionClosed``, as ``send`` does, which
    the pump takes as the client leaving (before: the pump failed with the
    reset, logged an error with its traceback and tried to close with 1011)."""
    import asyncio

    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    from wsgen.server.frames import send_frames

    async def run() -> BaseException | None:
        outcome: asyncio.Future = asyncio.get_running_loop().create_future()
        waiting = asyncio.Event()

        async def handler(ws) -> None:
            try:
                while True:
                    task = asyncio.ensure_future(send_frames(ws, [(True, b"x" * 60_000)] * 20))
                    await asyncio.sleep(0.05)
                    if not task.done():       # paused: it waits for the client
                        waiting.set()
                    await task
            except BaseException as exc:      # noqa: BLE001 - the test looks at what it is
                outcome.set_result(exc)

        async with serve(handler, "127.0.0.1", 0, compression=None, write_limit=65_536) as server:
            port = server.sockets[0].getsockname()[1]
            s = await asyncio.to_thread(_open, port, "/")
            await asyncio.wait_for(waiting.wait(), 20)
            _reset(s)
            return await asyncio.wait_for(outcome, 20)

    exc = asyncio.run(run())
    assert isinstance(exc, ConnectionClosed), repr(exc)
