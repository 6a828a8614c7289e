"""Shutdown says goodbye to slow readers too (issue 13, part 3).

A ``wsgen serve`` child process, SIGTERM, and three clients: a slow reader
of a fast stream (it reads slower than the stream, so data waits for it in
every buffer), a client that never reads, and an idle one. Generation stops
at the signal; every client still reading gets its 1001 within
``--graceful-timeout``; the rest are aborted then and the process exits 0.
"""
from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from servers import WSGEN, ServeProcess, free_port  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.timeout(90)

GRACE = 8.0


async def slow_reader(url: str, port: int, terminated: asyncio.Event, out: dict) -> None:
    """1 ms stream at speed 100 (about 100,000 samples/s), read one message
    per 20 ms: far slower than it comes. Records the close code and when it
    came after the signal."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", port))
    ws = await connect(url + "/sine?interval=0.001&speed=100", sock=s, ping_interval=None, max_queue=4)
    out["opened"] = True
    try:
        while True:
            message = await ws.recv()
            if terminated.is_set():
                out["bytes_after"] = out.get("bytes_after", 0) + len(message)
            await asyncio.sleep(0.02)
    except ConnectionClosed:
        out["code"] = ws.close_code
        out["at"] = time.monotonic()


def never_reader(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /sine?speed=max HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return s


async def test_sigterm_gives_a_slow_reader_its_1001_within_the_grace_period_then_aborts_the_rest():
    with tempfile.TemporaryFile("w+") as err:
        server = await asyncio.to_thread(ServeProcess, "--graceful-timeout", str(GRACE), "--write-timeout", "0",
                                         stderr=err, http=False)
        proc, url, port = server.proc, server.url, server.port
        stuck = None
        try:
            terminated, slow = asyncio.Event(), {}
            reader = asyncio.create_task(slow_reader(url, port, terminated, slow))
            stuck = never_reader(port)
            idle = await connect(url, ping_interval=None)
            await asyncio.sleep(3)                       # the slow reader's backlog fills every buffer
            assert slow.get("opened") and "code" not in slow
            proc.send_signal(signal.SIGTERM)
            terminated.set()
            signalled = time.monotonic()
            await asyncio.wait_for(reader, GRACE + 10)
            code = await asyncio.wait_for(asyncio.to_thread(proc.wait), GRACE + 10)
            exited = time.monotonic()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(idle.recv(), 5)
        finally:
            if stuck is not None:
                stuck.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        log = err.read()
    assert code == 0
    assert slow["code"] == 1001 and slow["at"] - signalled < GRACE, (slow, log[-2000:])
    # what reached it after the signal is what was queued then (server buffer 256 KiB, kernel 512 KiB,
    # its own socket and library queue), not a stream that went on
    assert slow.get("bytes_after", 0) < 3_000_000, slow
    assert idle.close_code == 1001
    # the never-reading client was aborted at the grace period, and the process went right after
    assert exited - signalled < GRACE + 4, exited - signalled
    assert re.search(r"1 WebSocket client\(s\) did not close within 8\.0 s; dropping them", log), log[-2000:]
    closes = re.findall(r"ws close 127\.0\.0\.1:\d+ sent=(\S+) received=(\S+)", log)
    assert sorted(closes) == [("1001", "-"), ("1001", "1001"), ("1001", "1001")], closes
    assert "Traceback" not in log


def test_sigterm_as_soon_as_the_port_answers_is_a_graceful_exit():
    """The ports open inside start-up, before the server has finished it
    (catalogues, a full garbage collection): a SIGTERM then is still a
    graceful stop (exit 0), not the default action (killed by the signal).
    A supervisor or an orchestrator may send it at any moment."""
    http_port = free_port()
    for attempt in range(3):
        proc = subprocess.Popen([*WSGEN, "serve", "--port", "0", "--http-port", str(http_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:       # poll the HTTP port: SIGTERM the moment it accepts
                try:
                    socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.002)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, (attempt, code, err)
        assert "Traceback" not in err
