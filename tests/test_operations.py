"""Operations: what /metrics and the log say about a running server.

* ``/metrics`` (Prometheus text, parsed with prometheus_client's parser):
  connections, subscriptions by generator, samples and messages sent,
  samples dropped, the schedule-lateness histogram and errors by code move
  exactly as a subscribe / data / error / unsubscribe sequence over
  WebSocket and an HTTP stream say they should; WebSocket and HTTP counters
  are in one registry, served at the HTTP server's /metrics; every HTTP
  error answer counts in wsgen_errors under its JSON ``error`` code, with
  path="http";
* the log: one line per WebSocket connection opened and closed, with the
  client address and the duration; one line per error with its code (and a
  client's text cannot forge a log line); one line per HTTP request (per
  stream when it ends) with status, error code and duration;
* small HTTP answers are not held back (no 40 ms Nagle/delayed-ACK stalls).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections import defaultdict

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wsgen.protocol.encoding import decode_binary

from servers import LOADED_LATENESS_S, async_wait_until, running_server  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.timeout(60)


def parse(text: str) -> tuple[dict, dict]:
    """Samples ``{(name, frozenset(labels)): value}`` and families
    ``{name: type}`` of a Prometheus text exposition."""
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


async def scrape(http: httpx.AsyncClient) -> dict:
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples, _ = parse(r.text)
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Reader:
    """Counts what a WebSocket client receives, per subscription."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.samples: dict[str, int] = defaultdict(int)
        self.messages = 0
        self.skipped = 0

    def _data(self, m: dict) -> None:
        self.samples[m["id"]] += len(m["values"])
        self.messages += 1
        self.skipped += m.get("skipped", 0)

    async def one(self, timeout: float = 5) -> dict | None:
        """Read one frame: the message, or None for data (counted)."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(raw, bytes):
            f = decode_binary(raw)
            self._data({"id": f.id, "values": f.values, "skipped": f.skipped})
            return None
        m = orjson.loads(raw)
        if m["type"] == "data":
            self._data(m)
        elif m["type"] == "batch":
            for inner in m["messages"]:
                self._data(inner)
        else:
            return m
        return None

    async def next(self, timeout: float = 5) -> dict:
        """The next message that is not data (data is counted)."""
        deadline = time.monotonic() + timeout
        while (m := await self.one(max(0.01, deadline - time.monotonic()))) is None:
            pass
        return m

    async def until(self, done, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, dict(self.samples)
            try:
                m = await self.one(max(0.01, deadline - time.monotonic()))
            except (asyncio.TimeoutError, TimeoutError):
                continue
            assert m is None, m


# -- metrics ------------------------------------------------------------------------

async def test_metrics_follow_a_websocket_session_and_an_http_stream_exactly(full_server):
    running = full_server
    app = running._http.config.app
    assert app.state.metrics is running.metrics            # one registry for both servers
    async with httpx.AsyncClient(base_url=running.http_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
        samples, types = parse(text)
        types = {k: v for k, v in types.items() if not k.endswith("_created")}   # (creation-time gauges)
        assert types == {"wsgen_connections": "gauge", "wsgen_subscriptions": "gauge", "wsgen_http_streams": "gauge",
                         "wsgen_samples_sent": "counter", "wsgen_messages_sent": "counter",
                         "wsgen_samples_dropped": "counter", "wsgen_schedule_lateness_seconds": "histogram",
                         "wsgen_errors": "counter", "wsgen_write_timeouts": "counter",
                         "wsgen_control_plane_up": "gauge", "wsgen_named_streams": "gauge",
                         "wsgen_named_subscribers": "gauge", "wsgen_named_log_entries": "counter",
                         "wsgen_named_late_updates": "counter"}
        assert value(samples, "wsgen_connections") == 0 and value(samples, "wsgen_http_streams") == 0

        async with connect(running.ws_url, max_size=None) as ws:
            client = Reader(ws)
            assert value(await scrape(http), "wsgen_connections") == 1
            subs = [("a", "sine", {}), ("b", "normal", {"encoding": "binary"}), ("c", "uniform", {"batch": True}),
                    ("d", "uniform", {})]
            for id, gen, extra in subs:
                await ws.send(json.dumps({"type": "subscribe", "id": id, "generator": gen,
                                          "params": {"interval": 0.005}, **extra}))
                assert (await client.next())["type"] == "subscribed"
            s = await scrape(http)
            assert [value(s, "wsgen_subscriptions", generator=g) for g in ("sine", "normal", "uniform")] == [1, 1, 2]
            await client.until(lambda: min(client.samples[id] for id, _, _ in subs) >= 40)
            # errors: two invalid_json, one unknown_id, one unknown_generator
            for bad in ["{", "[1]", '{"type": "pause", "id": "ghost"}',
                        '{"type": "subscribe", "id": "z", "generator": "nope"}']:
                await ws.send(bad)
                assert (await client.next())["type"] == "error"
            # unsubscribe all: "unsubscribed" follows the subscription's last data message
            for id, _, _ in subs:
                await ws.send(json.dumps({"type": "unsubscribe", "id": id}))
                assert (await client.next()) == {"type": "unsubscribed", "id": id, "seq": client.samples[id]}
            s = await scrape(http)
            for gen in ("sine", "normal", "uniform"):
                assert value(s, "wsgen_subscriptions", generator=gen) == 0
            sent = {g: value(s, "wsgen_samples_sent_total", generator=g, path="ws") for g in ("sine", "normal", "uniform")}
            assert sent == {"sine": client.samples["a"], "normal": client.samples["b"],
                            "uniform": client.samples["c"] + client.samples["d"]}, (sent, dict(client.samples))
            assert value(s, "wsgen_messages_sent_total", path="ws") == client.messages
            assert value(s, "wsgen_schedule_lateness_seconds_count") == client.messages
            buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                             if k[0] == "wsgen_schedule_lateness_seconds_bucket")
            assert [v for _, v in buckets] == sorted(v for _, v in buckets)          # cumulative
            assert buckets[-1] == (float("inf"), client.messages)
            assert value(s, "wsgen_schedule_lateness_seconds_bucket", le="1.0") >= 0.95 * client.messages   # on time
            assert value(s, "wsgen_errors_total", code="invalid_json", path="ws") == 2
            assert value(s, "wsgen_errors_total", code="unknown_id", path="ws") == 1
            assert value(s, "wsgen_errors_total", code="unknown_generator", path="ws") == 1
            assert value(s, "wsgen_samples_dropped_total", generator="sine") == 0
        assert await async_wait_until(lambda: running.gate.open == 0)
        s = await scrape(http)
        assert value(s, "wsgen_connections") == 0

        # an HTTP stream: its samples under path="http", the open-streams gauge while it runs
        r = await http.get("/sine", params={"count": 500, "speed": "max"})
        assert len(r.text.splitlines()) == 500
        s = await scrape(http)
        assert value(s, "wsgen_samples_sent_total", generator="sine", path="http") == 500
        assert value(s, "wsgen_samples_sent_total", generator="sine", path="ws") == sent["sine"]   # apart
        async with http.stream("GET", "/cosine", params={"interval": 5}) as stream:
            async for _ in stream.aiter_lines():
                break
            assert value(await scrape(http), "wsgen_http_streams") == 1
        deadline = time.monotonic() + 3
        while value(await scrape(http), "wsgen_http_streams") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        s = await scrape(http)
        assert value(s, "wsgen_http_streams") == 0
        assert value(s, "wsgen_samples_sent_total", generator="cosine", path="http") == 1
        # the registry the server holds is the one served
        assert s == parse(running.metrics.render().decode())[0]


def errors(samples: dict) -> dict:
    """``{(code, path): count}`` of ``wsgen_errors_total``."""
    return {(dict(k[1])["code"], dict(k[1])["path"]): v for k, v in samples.items() if k[0] == "wsgen_errors_total"}


async def test_http_error_answers_count_in_wsgen_errors_by_code_exactly(monkeypatch):
    """Each 4xx/5xx answer of the HTTP port counts once under the ``error``
    code of its JSON body, path="http"; successful requests, scrapes and
    streams do not count; WebSocket errors and refused handshakes count
    under path="ws"."""
    token = "t0ken-Metrics"
    auth = {"Authorization": f"Bearer {token}"}
    async with running_server(token=token, max_connections=1) as running:
        async with httpx.AsyncClient(base_url=running.http_url, timeout=10, headers=auth) as http:
            before = errors(await scrape(http))
            seen: list[str] = []

            async def bad(status: int, method: str, path: str, **kwargs) -> None:
                r = await http.request(method, path, **kwargs)
                assert r.status_code == status, (method, path, r.status_code, r.text[:200])
                seen.append(r.json()["error"])

            await bad(422, "GET", "/sine", params={"amplitude": "loud"})
            await bad(422, "GET", "/sine", params={"count": 0})
            await bad(422, "POST", "/composite", content=b"{" * ((1 << 20) + 1))     # a spec body over 1 MiB
            await bad(422, "POST", "/composite", content=b"")
            await bad(404, "GET", "/nope")
            await bad(405, "POST", "/sine")
            await bad(401, "GET", "/generators", headers={"Authorization": "Bearer nope"})
            await bad(401, "GET", "/sine", headers={"Authorization": f"Basic {token}"})
            await bad(400, "GET", "/healthz", headers={"Host": "evil.example"})     # DNS-rebinding guard
            await bad(400, "GET", "/generators", headers={"Host": f"evil.example:{running.http_port}"})
            async with http.stream("GET", "/sine", params={"interval": 5}) as stream:   # the only stream allowed
                async for _ in stream.aiter_lines():
                    break
                await bad(503, "GET", "/cosine", params={"count": 1})
            monkeypatch.setattr("wsgen.server.http.meta.catalogue", lambda: 1 / 0)              # a bug: Starlette's 500
            r = await http.get("/generators")
            assert r.status_code == 500
            monkeypatch.undo()
            # none of these count
            assert (await http.get("/sine", params={"count": 3, "speed": "max"})).text == "0.000\n0.501\n0.995\n"
            assert (await http.get("/healthz", headers={})).status_code == 200
            assert (await http.get("/generators", params={"token": token})).status_code == 200
            async with connect(running.ws_url, additional_headers=auth) as ws:       # one WebSocket error
                await ws.send("{")
                assert json.loads(await ws.recv())["code"] == "invalid_json"
                # refused WebSocket handshakes count too, under path="ws"
                for status, kwargs in [(503, {"additional_headers": auth}),           # max_connections=1
                                       (401, {}),
                                       (403, {"additional_headers": auth, "origin": "http://evil.example"}),
                                       (403, {"additional_headers": {**auth, "Host": "evil.example"}})]:
                    with pytest.raises(InvalidStatus) as refused:
                        await connect(running.ws_url, **kwargs)
                    assert refused.value.response.status_code == status
            with pytest.raises(InvalidStatus) as refused:
                await connect(running.ws_url + "/nope", additional_headers=auth)
            assert refused.value.response.status_code == 404
            after = errors(await scrape(http))
        delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        assert seen == ["invalid_params"] * 4 + ["not_found", "http_error", "unauthorized", "unauthorized",
                                                  "bad_host", "bad_host", "limit_reached"]
        assert delta == {("invalid_params", "http"): 4, ("not_found", "http"): 1, ("http_error", "http"): 1,
                         ("unauthorized", "http"): 2, ("bad_host", "http"): 2, ("limit_reached", "http"): 1,
                         ("internal_error", "http"): 1, ("invalid_json", "ws"): 1, ("limit_reached", "ws"): 1,
                         ("unauthorized", "ws"): 1, ("origin_refused", "ws"): 1, ("bad_host", "ws"): 1,
                         ("not_found", "ws"): 1}, delta


async def test_samples_dropped_under_backpressure_drop_are_counted(full_server):
    running = full_server
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", running.ws_port))
    async with connect(running.ws_url, sock=sock, max_queue=1, max_size=None) as ws:
        client = Reader(ws)
        await ws.send(json.dumps({"type": "subscribe", "id": "d", "generator": "sine", "backpressure": "drop",
                                  "params": {"interval": 2e-5}}))
        assert (await client.next())["type"] == "subscribed"
        port = ws.local_address[1]
        [conn] = [c for c in running.ws_server.connections if c.remote_address[1] == port]
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        await asyncio.sleep(1.0)                                  # not reading: the server skips
        await client.until(lambda: client.skipped > 10_000, timeout=10)
        async with httpx.AsyncClient(base_url=running.http_url, timeout=10) as http:
            dropped = value(await scrape(http), "wsgen_samples_dropped_total", generator="sine")
        assert dropped >= client.skipped > 10_000                # counted when reported (some still in flight)
        ws.transport.abort()


# -- logs ---------------------------------------------------------------------------

async def test_log_lines_for_connections_errors_and_http_requests(full_server, caplog):
    caplog.set_level(logging.INFO, logger="wsgen")
    running = full_server
    lifetimes = {}
    # a client that sends errors (one with a newline in its id) and closes normally
    started = time.monotonic()
    async with connect(running.ws_url + "/sine?interval=0.01") as ws:
        port_a = ws.local_address[1]
        client = Reader(ws)
        assert (await client.next())["type"] == "subscribed"
        await ws.send("{")
        assert (await client.next())["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "resume", "id": "x\nFORGED line"}))
        assert (await client.next())["code"] == "unknown_id"
        await asyncio.sleep(0.3)
        await ws.send(json.dumps({"type": "unsubscribe", "id": "sine"}))   # (so close() is not stuck behind
        assert (await client.next())["type"] == "unsubscribed"            # unread data, websockets #1555)
    lifetimes[port_a] = time.monotonic() - started
    # one that vanishes without a close frame
    started = time.monotonic()
    ws = await connect(running.ws_url)
    port_b = ws.local_address[1]
    await asyncio.sleep(0.2)
    ws.transport.abort()
    lifetimes[port_b] = time.monotonic() - started
    async with httpx.AsyncClient(base_url=running.http_url, timeout=10) as http:
        assert (await http.get("/sine", params={"count": 3, "speed": "max"})).status_code == 200
        assert (await http.get("/sine", params={"amplitude": "loud"})).status_code == 422
        assert (await http.get("/nope")).status_code == 404
    await asyncio.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("wsgen")]
    text = "\n".join(lines)
    for port, code in [(port_a, "1000"), (port_b, "1006")]:
        opened = [x for x in lines if x.startswith(f"ws open 127.0.0.1:{port} ")]
        closed = [x for x in lines if x.startswith(f"ws close 127.0.0.1:{port} ")]
        assert len(opened) == 1 and len(closed) == 1, (port, opened, closed)
        m = re.fullmatch(rf"ws close 127\.0\.0\.1:{port} sent=\S+ received=(\S+) duration=([0-9.]+)s", closed[0])
        assert m and m.group(1) in (code, "-"), closed
        assert abs(float(m.group(2)) - lifetimes[port]) < LOADED_LATENESS_S, (closed, lifetimes[port])
    assert f"ws open 127.0.0.1:{port_a} path=/sine" in text
    assert f"ws error 127.0.0.1:{port_a} code=invalid_json id=None" in text
    assert f"ws error 127.0.0.1:{port_a} code=unknown_id id='x\\nFORGED line'" in text
    assert not any(line.startswith("FORGED") for x in lines for line in x.splitlines()[1:] + [x])
    # HTTP: a line when a stream opens, one per request when it ends
    assert re.search(r"^http stream open 127\.0\.0\.1:\d+ GET /sine$", text, re.M)
    assert re.search(r"^http 127\.0\.0\.1:\d+ GET /sine status=200 duration=[0-9.]+s$", text, re.M)
    assert re.search(r"^http 127\.0\.0\.1:\d+ GET /sine status=422 code=invalid_params duration=", text, re.M)
    assert re.search(r"^http 127\.0\.0\.1:\d+ GET /nope status=404 code=not_found duration=", text, re.M)
    assert "amplitude" not in text                              # paths only: never a query string


async def test_small_http_answers_are_not_held_back(full_server):
    """A keep-alive client gets /healthz in well under the 40 ms a missing
    TCP_NODELAY costs (Nagle + delayed ACK between header and body writes)."""
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=10) as http:
        await http.get("/healthz")
        times = []
        for path in ["/healthz", "/metrics", "/sine?count=1"] * 10:
            t = time.perf_counter()
            assert (await http.get(path)).status_code == 200
            times.append(time.perf_counter() - t)
    times.sort()
    assert times[len(times) // 2] < 0.035, times     # Nagle + delayed ACK would make every one >= 40 ms


def test_uvicorns_own_log_lines_use_wsgens_log_format(tmp_path):
    # a garbage request on the HTTP port: uvicorn logs it itself, and did so in its own format
    # ("WARNING:  Invalid HTTP request received.", no time, no logger) among wsgen's lines
    from servers import ServeProcess
    log = tmp_path / "serve.log"
    with open(log, "w") as err, ServeProcess(stderr=err) as proc:
        assert proc.http_port
        with socket.create_connection(("127.0.0.1", proc.http_port), timeout=10) as s:
            s.sendall(b"GARBAGE\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 400 ")
        assert proc.stop() == 0
    lines = [ln for ln in log.read_text().splitlines() if "Invalid HTTP request" in ln]
    wsgen_format = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING uvicorn\.error: Invalid HTTP request received\."
    assert len(lines) == 1 and re.fullmatch(wsgen_format, lines[0]), lines
