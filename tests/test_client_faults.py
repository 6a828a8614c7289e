"""Errors that are the client's fault are not server errors (issue 13, part 6).

Real servers on ephemeral ports, real clients (raw sockets where a client
must misbehave), the server's own log lines and ``/metrics``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import socket

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsgen.server.config import Settings
from wsgen.server.logsummary import Summary
from wsgen.server.serve import start

pytestmark = pytest.mark.timeout(60)

SPEC = {"base": {"kind": "sine"}, "interval": 0.01}


def wsgen_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("wsgen")]


def errors_total(running) -> dict[tuple[str, str], float]:
    out = {}
    for line in running.metrics.render().decode().splitlines():
        m = re.fullmatch(r'wsgen_errors_total\{code="([^"]+)",path="([^"]+)"\} (\S+)', line)
        if m:
            out[(m[1], m[2])] = float(m[3])
    return out


async def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def raw_exchange(port: int, data: bytes, read: bool = True) -> bytes:
    """Send ``data`` on a new connection; return what comes back until the
    server closes (or nothing, with ``read=False``: close right away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


# -- HTTP: a request body the client cut short -------------------------------------------

async def test_post_composite_cut_short_or_badly_chunked_is_400_not_a_server_error(full_server, caplog):
    caplog.set_level(logging.INFO)
    port = full_server.http_port
    body = json.dumps(SPEC).encode()
    head = b"POST /composite?count=3&speed=max&seed=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    # 1. disconnect mid-body (Content-Length promises more)
    await asyncio.to_thread(raw_exchange, port, head + b"Content-Length: 500\r\n\r\n" + body[:10], False)
    # 2. a chunk size that is not hex: uvicorn answers 400 itself and drops the connection
    answer = await asyncio.to_thread(raw_exchange, port, head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    # 3. chunked, cut after the first chunk
    await asyncio.to_thread(raw_exchange, port, head + b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + body[:5] + b"\r\n", False)
    assert await wait_until(lambda: errors_total(full_server).get(("incomplete_body", "http")) == 3)
    assert ("internal_error", "http") not in errors_total(full_server)
    text = "\n".join(wsgen_lines(caplog))
    assert "Traceback" not in caplog.text and "ClientDisconnect" not in caplog.text
    assert len(re.findall(r"^http 127\.0\.0\.1:\d+ POST /composite status=400 code=incomplete_body ", text, re.M)) == 3
    # the server goes on: the same request, whole, streams
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"http://127.0.0.1:{port}/composite?count=3&speed=max&seed=1&format=ndjson", content=body)
    assert r.status_code == 200 and [json.loads(x)["seq"] for x in r.text.splitlines()] == [0, 1, 2]


# -- WebSocket: close codes of both directions ------------------------------------------------

async def test_close_log_line_has_the_code_sent_and_the_code_received(caplog):
    caplog.set_level(logging.INFO)
    running = await start(Settings(host="127.0.0.1", port=0, http_port=0, graceful_timeout_s=2,
                                   max_message_bytes=1024))
    try:
        ws = await connect(running.ws_url)
        too_big_port = ws.local_address[1]
        await ws.send("x" * 2000)                      # the server closes with 1009
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
        async with connect(running.ws_url) as ws2:     # the client closes with 1000
            normal_port = ws2.local_address[1]
        ws3 = await connect(running.ws_url)             # the server shuts down: 1001
        going_port = ws3.local_address[1]
    finally:
        await running.stop()
    lines = wsgen_lines(caplog)

    def closed(port):
        found = [x for x in lines if x.startswith(f"ws close 127.0.0.1:{port} ")]
        assert len(found) == 1, (port, found)
        m = re.fullmatch(rf"ws close 127\.0\.0\.1:{port} sent=(\S+) received=(\S+) duration=[0-9.]+s", found[0])
        assert m, found
        return m[1], m[2]

    assert closed(too_big_port) == ("1009", "-")          # (a failed connection does not wait for the reply)
    assert closed(normal_port) == ("1000", "1000")
    assert closed(going_port) == ("1001", "1001")


# -- WebSocket: repeated errors of one connection are summarised ---------------------------------

async def test_ten_thousand_bad_frames_log_a_handful_of_lines(server, caplog):
    caplog.set_level(logging.INFO)
    n = 10_000
    async with connect(server.ws_url) as ws:
        port = ws.local_address[1]
        for i in range(n):
            await ws.send("not json" if i % 2 else '{"type": "nope"}')
        got = 0
        while got < n:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            got += m["type"] == "error"
    assert await wait_until(lambda: any(x.startswith(f"ws close 127.0.0.1:{port} ") for x in wsgen_lines(caplog)))
    lines = [x for x in wsgen_lines(caplog) if f"127.0.0.1:{port}" in x]
    errors = [x for x in lines if x.startswith(f"ws error 127.0.0.1:{port} code=")]
    assert len(errors) == 5, errors
    summary = [x for x in lines if "more not logged" in x]
    assert len(summary) == 1, lines                       # at the close: the rest, counted
    m = re.search(r": (\d+) more not logged \(invalid_json=(\d+), unknown_type=(\d+)\); (\d+) in total", summary[0])
    assert m and int(m[1]) == n - 5 and int(m[2]) + int(m[3]) == n - 5 and int(m[4]) == n, summary
    assert len(lines) <= 10, lines
    assert errors_total(server)[("invalid_json", "ws")] == n // 2     # every error is still counted


def test_summary_logs_a_burst_then_one_line_a_minute_with_the_count(caplog):
    caplog.set_level(logging.INFO, logger="t")
    now = [0.0]
    s = Summary(logging.getLogger("t"), "ws error X", burst=3, period_s=60, clock=lambda: now[0])
    for i in range(3):
        s.log("a", "line %d", i)
    assert [r.getMessage() for r in caplog.records] == ["line 0", "line 1", "line 2"]
    caplog.clear()
    for second in range(150):            # 2 events a second for 150 s
        now[0] = 1.0 + second
        s.log("a", "held")
        s.log("b", "held")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "ws error X: more than 3; from now on one line a minute with the count"
    # a line at t=61 (events from t=1 to the first of t=61) and at t=121
    assert messages[1:] == ["ws error X: 121 more not logged (a=61, b=60); 124 in total",
                            "ws error X: 120 more not logged (a=60, b=60); 244 in total"]
    caplog.clear()
    s.close()
    assert [r.getMessage() for r in caplog.records] == ["ws error X: 59 more not logged (a=29, b=30); 303 in total"]


# -- refused handshakes: one INFO line each, with the reason ------------------------------------

async def test_refused_handshakes_are_logged_once_each_with_the_reason(caplog):
    caplog.set_level(logging.INFO)
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2, token="t0k"))
    try:
        for url, kwargs, status in [(running.ws_url + "/sine", {}, 401),
                                    (running.ws_url + "/sine?token=t0k", {"origin": "https://evil.example"}, 403),
                                    (running.ws_url + "/nothing?token=t0k", {}, 404)]:
            with pytest.raises(InvalidStatus) as info:
                await connect(url, open_timeout=5, **kwargs)
            assert info.value.response.status_code == status
    finally:
        await running.stop()
    refused = [r for r in caplog.records if r.getMessage().startswith("ws refused ")]
    assert [r.levelno for r in refused] == [logging.INFO] * 3
    texts = [r.getMessage() for r in refused]
    assert re.fullmatch(r"ws refused 127\.0\.0\.1:\d+ /sine status=401 code=unauthorized: missing or wrong bearer token",
                        texts[0]), texts
    assert re.fullmatch(r"ws refused 127\.0\.0\.1:\d+ /sine status=403 code=origin_refused: origin not allowed; "
                        r"see --allow-origin", texts[1]), texts
    assert re.match(r"ws refused 127\.0\.0\.1:\d+ /nothing status=404 code=not_found: no generator at /nothing", texts[2])
    assert "t0k" not in caplog.text


# -- origins: the server's own WebSocket origin ------------------------------------------------

async def test_the_servers_own_websocket_origin_is_accepted_and_other_ports_are_not(full_server):
    own = f"http://127.0.0.1:{full_server.ws_port}"      # what websocket-client sends by default
    async with connect(full_server.ws_url + "/sine?interval=0.01&seed=1", origin=own) as ws:
        assert json.loads(await ws.recv())["type"] == "subscribed"
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    try:
        for origin in (f"http://127.0.0.1:{other.getsockname()[1]}", f"http://localhost:{full_server.ws_port}",
                       f"http://evil.example:{full_server.ws_port}"):
            with pytest.raises(InvalidStatus) as info:
                await connect(full_server.ws_url, origin=origin, open_timeout=5)
            assert info.value.response.status_code == 403, origin
    finally:
        other.close()


# -- a WebSocket upgrade on the HTTP port says where to go ------------------------------------

async def test_websocket_upgrade_on_the_http_port_names_the_websocket_endpoint(full_server, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://127.0.0.1:{full_server.http_port}/sine?interval=0.1", open_timeout=5)
    response = info.value.response
    body = json.loads(bytes(response.body))
    url = f"ws://127.0.0.1:{full_server.ws_port}/sine"
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    here = f"ws://127.0.0.1:{full_server.http_port}/ws/sine"
    assert body["error"] == "not_found" and body["ws_url"] == url and body["ws_url_this_port"] == here
    assert url in body["message"] and here in body["message"]
    for good in (body["ws_url"], body["ws_url_this_port"]):                # and both are right
        async with connect(good + "?interval=0.1&seed=1") as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
    assert "ERROR" not in caplog.text and "Traceback" not in caplog.text
    assert sum("http websocket upgrade refused" in r.getMessage() for r in caplog.records) == 1


async def test_behind_a_proxy_the_this_port_hint_is_the_address_the_client_asked_for(full_server):
    # nginx passes the Host the client used (deploy/nginx.conf): the hint named the replica's own
    # port (ws://127.0.0.1:<replica http port>/ws/sine), which the client cannot reach
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    ws_port = full_server.ws_port
    cases = (("localhost:18090", "ws://localhost:18090/ws/sine", f"ws://localhost:{ws_port}/sine"),  # a proxy
             ("localhost", "ws://localhost/ws/sine", f"ws://localhost:{ws_port}/sine"),   # the default port
             ("[::1]:9", "ws://[::1]:9/ws/sine", f"ws://[::1]:{ws_port}/sine"))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{full_server.http_port}", timeout=10) as http:
        for host, here, dedicated in cases:
            r = await http.get("/sine?interval=0.1", headers={**upgrade, "Host": host})
            body = r.json()
            assert r.status_code == 404 and body["ws_url_this_port"] == here, (host, body)
            # the dedicated port's hint keeps the server's WebSocket port (a proxy's is unknown to it)
            assert body["ws_url"] == dedicated and here in body["message"] and dedicated in body["message"]
