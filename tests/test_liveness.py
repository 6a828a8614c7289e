"""Peers that stop reading are dropped (issue 13, part 2): the write timeout.

Raw clients on loopback shrink their receive buffer and never read a stream;
the server (in-process, real sockets) must drop them within the write
timeout plus 2 s, count it in ``/metrics`` and log it once, on both ports.
A client that reads slowly but keeps reading is not dropped.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import socket
import threading
import time

import pytest

from wsgen.cli import build_parser
from wsgen.server.config import Settings
from wsgen.server.serve import start

pytestmark = pytest.mark.timeout(60)

WRITE_TIMEOUT = 1.0


def write_timeouts(running) -> dict[str, float]:
    out = {}
    for line in running.metrics.render().decode().splitlines():
        m = re.fullmatch(r'wsgen_write_timeouts_total\{path="(\w+)"\} (\S+)', line)
        if m:
            out[m[1]] = float(m[2])
    return out


def gauge(running, name: str) -> float:
    for line in running.metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def raw_client(port: int, request: bytes, rcvbuf: int = 4096) -> socket.socket:
    """A connected socket with a small receive buffer (set before connecting,
    so the window it advertises is small too) that has sent ``request``."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    return s


def ws_upgrade(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def http_get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


@pytest.fixture
async def strict():
    """Both ports, write timeout 1 s."""
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2,
                                   write_timeout_s=WRITE_TIMEOUT))
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.parametrize("path", ["/sine?speed=max", "/sine?interval=0.001&backpressure=drop",
                                  "/normal?interval=0.0001&speed=10"])
async def test_a_websocket_client_that_never_reads_is_dropped_within_the_write_timeout(strict, caplog, path):
    caplog.set_level(logging.INFO)
    s = raw_client(strict.ws_port, ws_upgrade(strict.ws_port, path))
    started = time.monotonic()
    try:
        assert await wait_until(lambda: gauge(strict, "wsgen_connections") == 1, 5)
        assert await wait_until(lambda: write_timeouts(strict).get("ws") == 1, WRITE_TIMEOUT + 10)
        waited = time.monotonic() - started
        # dropped: the connection, its subscription and its pump are gone
        assert await wait_until(lambda: gauge(strict, "wsgen_connections") == 0, 5)
        assert gauge(strict, 'wsgen_subscriptions{generator="%s"}' % path[1:].split("?")[0]) == 0
        assert waited <= WRITE_TIMEOUT + 2, waited
        lines = [r.getMessage() for r in caplog.records if "write timeout" in r.getMessage()]
        assert len(lines) == 1 and re.match(r"ws write timeout 127\.0\.0\.1:\d+: the client took no bytes for "
                                            r"1\.\d s", lines[0]), lines
        # the client sees the end too: after the data already in its buffers, a reset or EOF
        s.settimeout(5)
        with pytest.raises((ConnectionResetError, EOFError)):
            while s.recv(1 << 20):
                pass
            raise EOFError
    finally:
        s.close()


async def test_an_http_stream_that_is_never_read_is_dropped_within_the_write_timeout(strict, caplog):
    caplog.set_level(logging.INFO)
    s = raw_client(strict.http_port, http_get(strict.http_port, "/sine?speed=max&format=ndjson"))
    started = time.monotonic()
    try:
        assert await wait_until(lambda: gauge(strict, "wsgen_http_streams") == 1, 5)
        assert await wait_until(lambda: write_timeouts(strict).get("http") == 1, WRITE_TIMEOUT + 10)
        assert time.monotonic() - started <= WRITE_TIMEOUT + 2
        assert await wait_until(lambda: gauge(strict, "wsgen_http_streams") == 0, 5)   # the generator stopped
        lines = [r.getMessage() for r in caplog.records if "write timeout" in r.getMessage()]
        assert len(lines) == 1 and lines[0].startswith("http write timeout 127.0.0.1:"), lines
        assert "Traceback" not in caplog.text
    finally:
        s.close()


def slow_reader(s: socket.socket, stop: threading.Event, got: list[int]) -> None:
    """Read 4 KiB every 20 ms (about 200 KB/s, far below what the stream offers)."""
    s.settimeout(5)
    while not stop.is_set():
        chunk = s.recv(4096)
        if not chunk:
            return
        got[0] += len(chunk)
        time.sleep(0.02)


@pytest.mark.parametrize("port_name", ["ws_port", "http_port"])
async def test_a_slow_reader_that_keeps_reading_is_not_dropped(strict, port_name):
    port = getattr(strict, port_name)
    request = (ws_upgrade(port, "/sine?speed=max") if port_name == "ws_port"
               else http_get(port, "/sine?speed=max&format=ndjson"))
    s = raw_client(port, request)
    stop, got = threading.Event(), [0]
    reader = threading.Thread(target=slow_reader, args=(s, stop, got), daemon=True)
    reader.start()
    try:
        await asyncio.sleep(4 * WRITE_TIMEOUT)
        before = got[0]
        await wait_until(lambda: got[0] > before, 5)
        assert got[0] > before                     # still streaming
        assert write_timeouts(strict) == {}
        path = "ws" if port_name == "ws_port" else "http"
        assert gauge(strict, "wsgen_connections" if path == "ws" else "wsgen_http_streams") == 1
    finally:
        stop.set()
        reader.join(10)
        s.close()


async def test_write_timeout_zero_turns_it_off():
    running = await start(Settings(host="127.0.0.1", port=0, http_port=0, graceful_timeout_s=2, write_timeout_s=0))
    s = raw_client(running.ws_port, ws_upgrade(running.ws_port, "/sine?speed=max"))
    try:
        assert await wait_until(lambda: gauge(running, "wsgen_connections") == 1, 5)
        await asyncio.sleep(2.5)
        assert gauge(running, "wsgen_connections") == 1 and write_timeouts(running) == {}
    finally:
        s.close()
        await running.stop()


def test_flags_and_environment(monkeypatch):
    args = build_parser().parse_args(["serve"])
    assert (args.write_timeout, args.ping_interval, args.ping_timeout) == (30.0, 20.0, 20.0)
    monkeypatch.setenv("WSGEN_WRITE_TIMEOUT", "7.5")
    monkeypatch.setenv("WSGEN_PING_INTERVAL", "0")
    monkeypatch.setenv("WSGEN_PING_TIMEOUT", "3")
    args = build_parser().parse_args(["serve"])
    assert (args.write_timeout, args.ping_interval, args.ping_timeout) == (7.5, 0.0, 3.0)
    args = build_parser().parse_args(["serve", "--write-timeout", "2", "--ping-interval", "5", "--ping-timeout", "0"])
    assert (args.write_timeout, args.ping_interval, args.ping_timeout) == (2.0, 5.0, 0.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--write-timeout", "-1"])


async def test_ping_interval_zero_turns_keepalive_off_and_a_timeout_closes_with_1011():
    from websockets.asyncio.client import connect

    off = await start(Settings(host="127.0.0.1", port=0, http_port=0, graceful_timeout_s=2, ping_interval_s=0))
    try:
        async with connect(off.ws_url) as ws:
            conn = next(iter(off.ws_server.connections))
            assert conn.ping_interval is None and conn.keepalive_task is None
            await ws.send('{"type": "list"}')
            await ws.recv()
    finally:
        await off.stop()
    quick = await start(Settings(host="127.0.0.1", port=0, http_port=0, graceful_timeout_s=2,
                                 ping_interval_s=0.2, ping_timeout_s=0.3))
    try:
        # a client that does not answer pings (reading paused: its pongs are never sent)
        ws = await connect(quick.ws_url, ping_interval=None)
        ws.transport.pause_reading()
        assert await wait_until(lambda: gauge(quick, "wsgen_connections") == 0, 10)
        ws.transport.resume_reading()
        await ws.wait_closed()
        assert ws.close_code == 1011 and ws.close_reason == "keepalive ping timeout"
    finally:
        await quick.stop()


async def test_the_kernel_backstop_and_the_send_buffer_bound_are_set_on_both_ports(strict):
    """TCP_USER_TIMEOUT = write timeout + one sweep + 1 s (ms), so the
    server's own check acts (and logs) first; SO_SNDBUF = send_buffer_bytes / 4,
    which Linux doubles (wsgen.server.serve)."""
    from websockets.asyncio.client import connect

    async with connect(strict.ws_url) as ws:
        await ws.send('{"type": "list"}')
        await ws.recv()
        [conn] = strict.ws_server.connections
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == int((1.0 + 0.2 + 1.0) * 1000)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * (strict.settings.send_buffer_bytes // 4)
    s = raw_client(strict.http_port, http_get(strict.http_port, "/sine?interval=1"))
    try:
        assert await wait_until(lambda: gauge(strict, "wsgen_http_streams") == 1, 5)
        [http_conn] = [c for c in strict._http.server_state.connections]
        sock = http_conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2200
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * (strict.settings.send_buffer_bytes // 4)
    finally:
        s.close()
