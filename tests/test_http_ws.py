"""The WebSocket protocol on the HTTP port (``wsgen.server.http.websocket``): ``/ws`` and
``/ws/<generator>?...`` give the same replies as the dedicated port's ``/``
and ``/<generator>?...``, under the same token, origin and limit rules.

Real servers on ephemeral ports (``wsgen.server.serve.start``), real clients
(``websockets``, :class:`wsgen.client.Client`, ``wsgen sub``).
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsgen.client import Client, websocket_url
from wsgen.server.config import Settings
from wsgen.server.serve import start

pytestmark = pytest.mark.timeout(60)

# Every kind of reply a client can get, in one script: errors for bad input
# (not JSON, unknown type, invalid parameters, unknown id), a subscription,
# an update, a pause and resume, a duplicate id, the subscription limit,
# and an unsubscribe. ``None`` marks "read data until seq N".
SCRIPT: list = [
    "not json",
    {"type": "nope", "id": "x"},
    {"type": "subscribe", "id": "bad", "generator": "sine", "params": {"amplitude": -1, "frequency": "fast"}},
    {"type": "update", "id": "ghost", "params": {"amplitude": 1}},
    {"type": "subscribe", "id": "a", "generator": "random", "seed": 7, "params": {"data_interval": 0.01}},
    ("data", "a", 20),
    {"type": "update", "id": "a", "params": {"anomaly_probability": 0.5}},
    ("data", "a", 40),
    {"type": "subscribe", "id": "a", "generator": "sine"},
    {"type": "subscribe", "id": "b", "generator": "normal", "seed": 3, "params": {"interval": 0.01}},
    {"type": "subscribe", "id": "c", "generator": "uniform"},
    ("data", "b", 10),
    {"type": "pause", "id": "a"},
    {"type": "unsubscribe", "id": "b"},
]
TIMING = {"t", "lag", "dt", "skipped"}   # fields that depend on when the reply was sent


async def run_script(url: str) -> tuple[list[dict], dict[str, list]]:
    """Replies to SCRIPT (data messages aside, timing fields removed) and
    the data each subscription received, as ``{id: [(seq, value, label)]}``."""
    replies: list[dict] = []
    data: dict[str, list] = {}

    def keep(message: dict) -> None:
        if message["type"] == "data":
            labels = message.get("labels") or [None] * len(message["values"])
            data.setdefault(message["id"], []).extend(
                zip(range(message["seq"], message["seq"] + len(message["values"])), message["values"], labels))
        else:
            replies.append({k: v for k, v in message.items() if k not in TIMING})

    async with connect(url, open_timeout=10) as ws:
        for step in SCRIPT:
            if isinstance(step, tuple):
                _, sid, upto = step
                while len(data.get(sid, [])) < upto:
                    keep(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                continue
            await ws.send(step if isinstance(step, str) else json.dumps(step))
            # each message gets exactly one reply (data may come between)
            before = len(replies)
            while len(replies) == before:
                keep(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return replies, data


async def test_message_protocol_gives_the_same_replies_on_both_ports():
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2,
                                   max_subscriptions=2))
    try:
        dedicated = await run_script(running.ws_url)
        one_port = await run_script(f"ws://127.0.0.1:{running.http_port}/ws")
    finally:
        await running.stop()
    replies, data = dedicated
    assert [r["type"] for r in replies] == ["error", "error", "error", "error", "subscribed", "updated", "error",
                                           "subscribed", "error", "paused", "unsubscribed"]
    assert [r.get("code") for r in replies if r["type"] == "error"] == [
        "invalid_json", "unknown_type", "invalid_params", "unknown_id", "duplicate_id", "limit_reached"]
    assert one_port[0] == replies
    # same seed, same samples, whichever port served them
    for sid in data:
        n = min(len(data[sid]), len(one_port[1][sid]))
        assert n >= 10
        assert one_port[1][sid][:n] == data[sid][:n]
    assert [s for s, _, _ in data["a"][:40]] == list(range(40))


async def test_url_subscription_under_ws_equals_the_dedicated_ports(full_server):
    query = "seed=11&interval=0.01&amplitude=3&frequency=7"

    async def first(url: str, n: int = 30) -> list:
        got = []
        async with connect(url, open_timeout=10) as ws:
            subscribed = json.loads(await ws.recv())
            assert subscribed["type"] == "subscribed" and subscribed["seed"] == 11
            while len(got) < n:
                m = json.loads(await ws.recv())
                got += list(zip(range(m["seq"], m["seq"] + len(m["values"])), m["values"]))
        return got[:n]

    a = await first(f"{full_server.ws_url}/sine?{query}")
    b = await first(f"ws://127.0.0.1:{full_server.http_port}/ws/sine?{query}")
    c = await first(f"ws://127.0.0.1:{full_server.ws_port}/ws/sine?{query}")   # /ws/ on the dedicated port too
    assert a == b == c
    assert [s for s, _ in a] == list(range(30))
    assert a[1][1] == pytest.approx(3 * np.sin(2 * np.pi * 7 * 0.01))
    # anomaly kinds under /ws/anomalies/<kind>
    async with connect(f"ws://127.0.0.1:{full_server.http_port}/ws/anomalies/random?seed=1&data_interval=0.01") as ws:
        assert json.loads(await ws.recv())["generator"] == "random"


async def status_of(url: str, **kwargs) -> tuple[int, bytes]:
    try:
        ws = await connect(url, open_timeout=10, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code, bytes(exc.response.body)
    await ws.close()
    return 101, b""


async def test_token_origin_route_and_connection_limits_apply_on_the_http_port():
    token = "tok-9zX"
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2,
                                   token=token, max_connections=2))
    base = f"ws://127.0.0.1:{running.http_port}"
    try:
        for url in (running.ws_url + "/", base + "/ws"):
            assert (await status_of(url))[0] == 401
            assert (await status_of(url + "?token=wrong"))[0] == 401
            assert (await status_of(url, additional_headers={"Authorization": f"Bearer {token}"}))[0] == 101
            assert (await status_of(url + f"?token={token}", origin="https://evil.example"))[0] == 403
        # the page's own origin (the HTTP port) may connect to either port
        page = f"http://127.0.0.1:{running.http_port}"
        assert (await status_of(base + f"/ws?token={token}", origin=page))[0] == 101
        assert (await status_of(running.ws_url + f"/?token={token}", origin=page))[0] == 101
        status, body = await status_of(base + f"/ws/nope?token={token}")
        assert status == 404 and b"no generator at /ws/nope; connect to /ws and send messages, or to /ws/<generator>" in body
        # max_connections counts both ports together
        a = await connect(base + f"/ws?token={token}")
        b = await connect(running.ws_url + f"/?token={token}")
        try:
            for url in (base + f"/ws?token={token}", running.ws_url + f"/?token={token}"):
                status, body = await status_of(url)
                assert status == 503 and b"too many connections" in body
            assert running.gate.open == 2
        finally:
            await a.close()
            await b.close()
    finally:
        await running.stop()


async def test_other_paths_are_not_served_as_websocket_on_the_http_port(full_server):
    for path in ("/sine", "/", "/wsx", "/metrics"):
        status, _ = await status_of(f"ws://127.0.0.1:{full_server.http_port}{path}")
        assert status != 101, path
    # and plain HTTP still works beside it, on /ws's neighbours too
    import httpx
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{full_server.http_port}/sine?seed=1&count=3&speed=max")
        assert r.status_code == 200 and len(r.text.splitlines()) == 3


async def test_graceful_shutdown_closes_http_port_websockets_with_1001():
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2))
    ws = await connect(f"ws://127.0.0.1:{running.http_port}/ws/sine?interval=0.01")
    assert json.loads(await ws.recv())["type"] == "subscribed"
    await running.stop()
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1001


async def test_python_client_on_either_port_gets_the_same_stream(full_server):
    async def take(url: str):
        async with Client(url) as c:
            sub = await c.subscribe("normal", {"interval": 0.01, "mean": 5}, seed=21)
            return (await sub.take(25)).values

    a = await take(full_server.ws_url)
    b = await take(f"ws://127.0.0.1:{full_server.http_port}/ws")
    c = await take(full_server.http_url)            # an http:// address means its /ws
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert websocket_url("https://h.example/prefix/") == "wss://h.example/prefix/ws"
    assert websocket_url("ws://h:1") == "ws://h:1"


def test_wsgen_sub_over_the_http_port(threaded_server):
    args = ["sine", "--seed", "5", "--interval", "0.01", "--count", "5", "--format", "csv"]
    outs = []
    for url in (threaded_server.url, threaded_server.http_url + "/ws", threaded_server.http_url):
        out = subprocess.run([sys.executable, "-m", "wsgen.cli", "sub", *args, "--url", url],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        outs.append([line.split(",")[0::2] for line in out.stdout.splitlines()])   # seq, value (not t)
    assert outs[0] == outs[1] == outs[2]
    assert len(outs[0]) == 6 and outs[0][1][0] == "0"


async def test_behind_a_proxy_the_pages_origin_is_the_host_it_asked_for():
    """A page served through a proxy on one public address (no port of ours
    in its origin) may open that address's /ws; other origins may not."""
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2,
                                   allow_hosts=["proxy.example"]))
    try:
        for origin, host, status in [("http://proxy.example", "proxy.example", 101),
                                     ("https://proxy.example", "proxy.example", 101),
                                     ("http://proxy.example:8080", "proxy.example:8080", 101),
                                     ("http://proxy.example:8080", "proxy.example", 403),
                                     ("http://proxy.example", "proxy.example:8080", 403),
                                     ("http://evil.example", "proxy.example", 403),
                                     ("null", "proxy.example", 403)]:
            # the URL's address is the Host header sent; the TCP connection goes to our HTTP port
            got, _ = await status_of(f"ws://{host}/ws", origin=origin, host="127.0.0.1", port=running.http_port)
            assert got == status, (origin, host)
    finally:
        await running.stop()
