"""The HTTP port's request-head deadline (slowloris guard).

A client must send a request's line and headers within
``http_header_timeout_s`` of connecting (or, on a kept-alive connection, of
the first byte of its next request); otherwise the server closes the
connection. Answers and streams are not limited by it, nor is the idle
wait of a kept-alive connection (uvicorn's keep-alive timeout).

Real servers on ephemeral ports (``wsgen.server.serve.start`` in the test's loop,
and one ``wsgen serve`` child process for the flag and its environment
variable), raw TCP clients for the misbehaving ones, httpx for the others.
"""
from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time

import httpx
import orjson
import pytest


from servers import ServeProcess, running_server  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 0.5          # the header timeout of these tests' servers, seconds
SLACK = 1.0            # how much later than TIMEOUT a close may come on a busy machine


@pytest.fixture
async def server():
    async with running_server(http_header_timeout_s=TIMEOUT) as running:
        yield running


async def raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def seconds_until_closed(reader: asyncio.StreamReader, started: float, limit: float) -> float:
    """Read until the server closes the connection (at most ``limit``
    seconds after ``started``); return when that was, after ``started``.
    The server sends nothing before closing."""
    data = await asyncio.wait_for(reader.read(), max(0.01, started + limit - time.monotonic()))
    assert data == b"", data[:200]
    return time.monotonic() - started


async def response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 answer with a Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    return status, await asyncio.wait_for(reader.readexactly(length), 5)


class Stream:
    """An ndjson stream read in the background: the seqs it delivered."""

    def __init__(self, http: httpx.AsyncClient, interval: float) -> None:
        self.seqs: list[int] = []
        self.ended = False
        self.task = asyncio.create_task(self._read(http, interval))

    async def _read(self, http: httpx.AsyncClient, interval: float) -> None:
        async with http.stream("GET", "/sine", params={"interval": interval, "format": "ndjson"}) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                self.seqs.append(orjson.loads(line)["seq"])
        self.ended = True

    async def until(self, n: int, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seqs) < n:
            assert not self.task.done(), self.task
            assert time.monotonic() < deadline, len(self.seqs)
            await asyncio.sleep(0.01)


async def test_a_half_sent_request_head_is_closed_at_the_timeout_while_a_stream_keeps_flowing(server):
    port = server.http_port
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        stream = Stream(http, interval=0.02)                  # 50 samples/s, open for 5 timeouts below
        await stream.until(1)
        opened = time.monotonic()
        # three connections that never finish a request head: the textbook one, one that says
        # nothing at all, and one that trickles a long head a byte per fifth of the timeout
        half_r, half_w = await raw(port)
        half_w.write(b"GET /sine HTTP/1.1\r\nHo")
        mute_r, _mute_w = await raw(port)
        slow_r, slow_w = await raw(port)
        head = b"GET /sine HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 100

        async def trickle() -> None:
            for i in range(len(head)):
                slow_w.write(head[i:i + 1])
                await asyncio.sleep(TIMEOUT / 5)

        trickler = asyncio.create_task(trickle())
        started = time.monotonic()
        waited = await asyncio.gather(*(seconds_until_closed(r, started, TIMEOUT + SLACK)
                                        for r in (half_r, mute_r, slow_r)))
        trickler.cancel()
        for w in (half_w, _mute_w, slow_w):
            w.close()
        for seconds in waited:
            assert TIMEOUT * 0.8 < seconds < TIMEOUT + SLACK, waited   # trickling bought no time
        # the stream went on all along, and goes on past five timeouts: nothing cut it
        while time.monotonic() - opened < 5 * TIMEOUT:
            await asyncio.sleep(0.05)
        n = len(stream.seqs)
        await stream.until(n + 5)
        assert not stream.ended
        assert stream.seqs == list(range(stream.seqs[0], stream.seqs[0] + len(stream.seqs)))   # no gap
        assert len(stream.seqs) >= 0.6 * (time.monotonic() - opened - SLACK) / 0.02, len(stream.seqs)
        stream.task.cancel()
        await asyncio.gather(stream.task, return_exceptions=True)
        # the server still answers
        assert (await http.get("/healthz")).json()["status"] == "ok"


async def test_a_trickled_post_body_is_answered_at_the_same_deadline(server):
    """POST /composite: a body that does not all arrive within the timeout
    gets a 422 naming the deadline (the connection is then free), while a
    whole body sent at once is served."""
    reader, writer = await raw(server.http_port)
    spec = b'{"interval": 0, "base": {"kind": "constant", "params": {"value": 1}}}'
    head = (f"POST /composite?count=2 HTTP/1.1\r\nHost: 127.0.0.1:{server.http_port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(spec)}\r\n\r\n").encode()
    started = time.monotonic()
    writer.write(head + spec[:10])                         # the head, then 10 bytes of the body, then nothing
    await writer.drain()
    status, body = await response(reader)
    waited = time.monotonic() - started
    assert status == 422 and TIMEOUT * 0.9 <= waited <= TIMEOUT + SLACK, (status, waited, body)
    problem = orjson.loads(body)
    assert problem["details"][0]["field"] == "spec"
    assert f"did not arrive within {TIMEOUT} s" in problem["details"][0]["message"]
    writer.close()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        r = await http.post("/composite", params={"count": 2}, content=spec)
        assert r.status_code == 200 and r.text == "1.000\n1.000\n", r.text


async def test_keep_alive_idle_is_unchanged_and_each_request_head_gets_the_whole_timeout(server):
    reader, writer = await raw(server.http_port)
    try:
        # a head sent in two parts, the second after most of the timeout: in time, answered
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        await asyncio.sleep(TIMEOUT * 0.6)
        writer.write(b"Host: 127.0.0.1\r\n\r\n")
        status, body = await response(reader)
        assert status == 200 and orjson.loads(body)["status"] == "ok"
        # idle on the kept-alive connection for three timeouts (uvicorn's keep-alive is 5 s):
        # the header deadline does not run between requests, the next request is answered
        await asyncio.sleep(TIMEOUT * 3)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _ = await response(reader)
        assert status == 200
        # the next request's head, begun and not finished: closed one timeout after its first byte
        await asyncio.sleep(TIMEOUT * 3)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")
        started = time.monotonic()
        waited = await seconds_until_closed(reader, started, TIMEOUT + SLACK)
        assert TIMEOUT * 0.8 < waited < TIMEOUT + SLACK, waited
    finally:
        writer.close()


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_wsgen_serve_takes_the_header_timeout_from_its_flag_or_environment(how):
    args, env = ["--http-header-timeout", str(TIMEOUT)], dict(os.environ)
    if how == "env":
        args, env["WSGEN_HTTP_HEADER_TIMEOUT"] = [], str(TIMEOUT)
    with tempfile.TemporaryFile("w+") as err:
        server = await asyncio.to_thread(ServeProcess, *args, stderr=err, env=env)
        http_port = server.http_port
        try:
            reader, writer = await raw(http_port)
            writer.write(b"GET /sine HTTP/1.1\r\nHo")
            started = time.monotonic()
            waited = await seconds_until_closed(reader, started, TIMEOUT + SLACK)
            writer.close()
            assert TIMEOUT * 0.8 < waited < TIMEOUT + SLACK, waited
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.get(f"http://127.0.0.1:{http_port}/sine", params={"count": 2, "speed": "max"})
                assert r.text == "0.000\n0.501\n"
        finally:
            code = await asyncio.to_thread(server.stop)
        err.seek(0)
        log = err.read()
    assert code == 0
    assert re.search(r"http 127\.0\.0\.1:\d+ request head not complete within 0\.5 s; closing", log), log[-2000:]
    assert "Traceback" not in log
