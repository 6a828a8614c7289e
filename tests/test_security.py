"""Who gets in: bearer token, origin allowlist, connection limits.

Real servers (``wsgen.server.serve.start`` in the test's loop, and one ``wsgen
serve`` child process for the CLI flags), real clients: ``websockets`` for
the handshake, ``httpx`` for HTTP.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import tempfile
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wsgen.engine import ANOMALY_KINDS, GENERATORS

from servers import ServeProcess, async_wait_until as wait_until, running_server  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-T0ken_Zq9"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
STREAM_PATHS = [f"/{n}" for n in GENERATORS] + [f"/anomalies/{n}" for n in ANOMALY_KINDS]
META_PATHS = ["/docs", "/openapi.json", "/generators", "/metrics"]


async def handshake(url: str, **kwargs):
    """Status of a WebSocket handshake: ``(101, ws)`` when it opened (the
    caller closes ``ws``), else ``(status, response)``."""
    try:
        ws = await connect(url, open_timeout=5, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response
    return 101, ws


async def refused(url: str, status: int, **kwargs):
    code, response = await handshake(url, **kwargs)
    if code == 101:
        await response.close()
    assert code == status, (url, kwargs, code)
    return response


async def opens(url: str, **kwargs):
    code, ws = await handshake(url, **kwargs)
    assert code == 101, (url, kwargs, code, getattr(ws, "body", b""))
    return ws


async def subscribe(ws, id: str, interval: float = 0.01) -> None:
    await ws.send(json.dumps({"type": "subscribe", "id": id, "generator": "sine", "params": {"interval": interval}}))
    while (m := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "subscribed":
        assert m["type"] == "data", m


async def gap_free_samples(ws, n: int, timeout: float = 5.0) -> int:
    """Read ``n`` more samples of the connection's only subscription,
    checking the seqs are consecutive; returns the last seq seen."""
    deadline = time.monotonic() + timeout
    got, last = 0, None
    while got < n:
        m = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if m["type"] != "data":
            continue
        if last is not None:
            assert m["seq"] == last, (m["seq"], last)
        last = m["seq"] + len(m["values"])
        got += len(m["values"])
    return last



def is_unauthorized_json(r: httpx.Response) -> bool:
    body = r.json()
    return (r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            and body["error"] == "unauthorized" and body["message"])


@pytest.fixture
async def secured():
    """Both servers, token required, at most 1 WebSocket connection."""
    async with running_server(token=TOKEN, max_connections=1) as running:
        yield running


# -- bearer token ---------------------------------------------------------------

async def test_http_token_on_every_endpoint_but_healthz_and_401_comes_first(secured):
    base = secured.http_url
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        spec = (await http.get("/openapi.json", headers=BEARER)).json()
        documented = set(spec["paths"])
        assert set(STREAM_PATHS) | {"/generators", "/healthz", "/metrics"} <= documented
        # no token, a wrong one, the wrong scheme, an empty one: 401 everywhere, the token gate
        # answers before routing (404), validation (422) and the stream limit (503)
        wrong = [{}, {"headers": {"Authorization": "Bearer nope"}}, {"params": {"token": "nope"}},
                 {"headers": {"Authorization": f"Basic {TOKEN}"}}, {"headers": {"Authorization": "Bearer"}},
                 {"params": {"token": TOKEN[:-1]}}, {"headers": {"Authorization": f"Bearer {TOKEN}x"}}]
        paths = sorted(documented - {"/healthz", "/readyz"}) + META_PATHS + ["/nope", "/sine?amplitude=banana",
                                                                   "/anomalies/sine", "/static/../generators"]
        for path in paths:
            for kw in wrong:
                r = await http.get(path, **kw)
                assert is_unauthorized_json(r), (path, kw, r.status_code, r.text[:200])
        # nothing was streamed or generated for any of them
        registry = secured.metrics.registry
        assert not [s for m in registry.collect() if m.name == "wsgen_samples_sent" for s in m.samples]
        assert registry.get_sample_value("wsgen_http_streams") == 0
        # /healthz, the static files (Swagger UI's bundle) and the page with its config are public:
        # the page then asks for the token, which its config says is needed
        assert (await http.get("/healthz")).json()["status"] == "ok"
        assert (await http.get("/readyz")).json()["ready"] is True     # probes send no token
        assert (await http.get("/static/docs/swagger-ui.css")).status_code == 200
        page = await http.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        config = (await http.get("/config.json")).json()
        assert config["token_required"] is True and TOKEN not in str(config)
        # the right token, as a header or as ?token=, opens everything
        for path in ["/generators", "/metrics", "/openapi.json", "/config.json", "/docs"]:
            assert (await http.get(path, headers=BEARER)).status_code == 200, path
            assert (await http.get(path, params={"token": TOKEN})).status_code == 200, path
        for path in STREAM_PATHS:
            r = await http.get(path, params={"count": 2, "speed": "max"}, headers=BEARER)
            assert r.status_code == 200 and len(r.text.splitlines()) == 2, (path, r.text)
        r = await http.get("/sine", params={"count": 3, "speed": "max", "token": TOKEN})
        assert r.text == "0.000\n0.501\n0.995\n"
        # behind the gate, the usual answers
        assert (await http.get("/sine?amplitude=banana", headers=BEARER)).status_code == 422
        assert (await http.get("/nope", headers=BEARER)).status_code == 404


async def test_ws_token_required_and_checked_before_origin_route_and_limits(secured):
    url = secured.ws_url
    for kwargs in [{}, {"additional_headers": {"Authorization": "Bearer nope"}},
                   {"additional_headers": {"Authorization": f"Basic {TOKEN}"}},
                   {"additional_headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}},
                   {"additional_headers": [("Authorization", f"Bearer {TOKEN}")] * 2}]:
        r = await refused(url, 401, **kwargs)
        assert r.headers["WWW-Authenticate"] == "Bearer"
    await refused(url + "/?token=nope", 401)
    await refused(url + f"/?token={TOKEN}x", 401)
    await refused(url + f"/?Token={TOKEN}", 401)
    # 401 before 403 (origin), 404 (route)
    await refused(url + "/nope", 401)
    await refused(url, 401, origin="https://evil.example")
    await refused(url + f"/nope?token={TOKEN}", 404)
    await refused(url, 403, origin="https://evil.example", additional_headers=BEARER)
    assert secured.gate.open == 0 and secured.metrics.registry.get_sample_value("wsgen_connections") == 0
    # the right token: header, or ?token= (a URL subscription ignores it as a parameter)
    ws = await opens(url, additional_headers=BEARER)
    await subscribe(ws, "a")
    await gap_free_samples(ws, 5)
    # 401 before 503 (the only connection slot is taken)
    await refused(url, 401)
    await refused(url, 503, additional_headers=BEARER)
    await ws.close()
    ws = await opens(url + f"/sine?interval=0.01&token={TOKEN}&seed=3")
    reply = json.loads(await ws.recv())
    assert reply["type"] == "subscribed" and reply["seed"] == 3 and "token" not in reply["params"]
    assert TOKEN not in json.dumps(reply)
    await ws.close()


async def test_bearer_scheme_is_case_insensitive_with_any_spaces_or_tabs_on_both_paths(secured):
    """RFC 9110: the auth scheme is case-insensitive and is followed by one or
    more spaces (tabs tolerated); the token itself is compared exactly. The
    WebSocket handshake and the HTTP app apply the same rule."""
    good = [f"bearer {TOKEN}", f"BEARER {TOKEN}", f"bEaReR {TOKEN}", f"Bearer   {TOKEN}", f"Bearer\t{TOKEN}",
            f"bearer \t {TOKEN}"]
    bad = [f"Bearer{TOKEN}", f"bearerx {TOKEN}", f"bear {TOKEN}", f"Bearer {TOKEN.lower()}", f"Bearer {TOKEN.upper()}",
           f"Bearer {TOKEN} {TOKEN}", f"Bearer {TOKEN},x", f"Basic {TOKEN}", TOKEN, "bearer", f"{TOKEN} Bearer"]
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=10) as http:
        for value in good:
            r = await http.get("/sine", params={"count": 2, "speed": "max"}, headers={"Authorization": value})
            assert r.status_code == 200 and r.text == "0.000\n0.501\n", (value, r.status_code, r.text[:200])
            ws = await opens(secured.ws_url + "/sine?interval=0.01", additional_headers={"Authorization": value})
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await gap_free_samples(ws, 3)
            await ws.close()
        for value in bad:
            assert is_unauthorized_json(await http.get("/generators", headers={"Authorization": value})), value
            r = await refused(secured.ws_url, 401, additional_headers={"Authorization": value})
            assert r.headers["WWW-Authenticate"] == "Bearer", value
        # a Bearer header, even a lower-case one, is the credential: a right ?token= does not rescue a wrong one
        assert is_unauthorized_json(await http.get("/generators", params={"token": TOKEN},
                                                   headers={"Authorization": "bearer nope"}))
        await refused(secured.ws_url + f"/?token={TOKEN}", 401, additional_headers={"Authorization": "BEARER nope"})
        # a header of another scheme (or none) leaves ?token= as the credential, as before
        r = await http.get("/generators", params={"token": TOKEN}, headers={"Authorization": f"Basic {TOKEN}"})
        assert r.status_code == 200
        await (await opens(secured.ws_url + f"/?token={TOKEN}", additional_headers={"Authorization": "Basic x"})).close()
        # a repeated Authorization header is no credential on either path
        assert is_unauthorized_json(await http.get("/generators", headers=[("Authorization", f"bearer {TOKEN}")] * 2))
        await refused(secured.ws_url, 401, additional_headers=[("Authorization", f"bearer {TOKEN}")] * 2)
    assert secured.gate.open == 0


async def test_the_token_never_reaches_the_logs(secured, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="wsgen.websockets")   # even if another test made it quieter
    caplog.set_level(logging.DEBUG, logger="wsgen")
    url = secured.ws_url
    ws = await opens(url + f"/sine?interval=0.01&token={TOKEN}")
    await ws.recv()
    await ws.send(json.dumps({"type": "pause", "id": TOKEN[:3]}))       # an error line
    await ws.close()
    ws = await opens(url + f"/?seed=1&token={TOKEN}&x=1")
    await ws.close()
    ws = await opens(url, additional_headers=BEARER)
    await ws.close()
    ws = await opens(url, additional_headers={"Authorization": f"bearer \t{TOKEN}"})   # any case, tabs: RFC 9110
    await ws.close()
    await refused(url + f"/nope?token={TOKEN}", 404)
    ws = await opens(url + f"/?to%6Ben={TOKEN}")       # the key percent-encoded: still the token
    await ws.close()
    await refused(url, 401, additional_headers={"Authorization": f"Bearer {TOKEN}x"})
    await refused(url + f"/?token={TOKEN}", 403, origin="https://evil.example")
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=10) as http:
        assert (await http.get(f"/sine?count=2&speed=max&token={TOKEN}")).status_code == 200
        assert (await http.get(f"/sine?count=2&speed=nope&token={TOKEN}")).status_code == 422
        assert (await http.get(f"/docs?token={TOKEN}")).status_code == 200
        assert (await http.get("/generators", headers=BEARER)).status_code == 200
        assert (await http.get("/generators", headers={"Authorization": f"BEARER  {TOKEN}"})).status_code == 200
        assert (await http.get("/generators", headers={"Authorization": f"bearer {TOKEN}x"})).status_code == 401
        assert (await http.get(f"/generators?token={TOKEN}x")).status_code == 401
    await asyncio.sleep(0.1)
    client_side = ("httpx", "httpcore", "websockets.client", "urllib3")
    server_records = [r for r in caplog.records if not r.name.startswith(client_side)]
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server_records)
    # logging was on at debug level: handshake lines and connection lines are there
    assert "GET /sine?interval=0.01&token=<redacted>" in text and "< Authorization: <redacted>" in text
    assert re.search(r"ws open 127\.0\.0\.1:\d+ path=/sine", text)
    assert re.search(r"ws close 127\.0\.0\.1:\d+ sent=1000 received=1000 duration=", text)
    assert re.search(r"http 127\.0\.0\.1:\d+ GET /sine status=200 duration=", text)     # HTTP lines: path only
    assert re.search(r"http 127\.0\.0\.1:\d+ GET /generators status=401 code=unauthorized", text)
    assert TOKEN not in text
    assert TOKEN[:-1] not in text                      # nor most of it (a wrong guess that was close)


# -- origin allowlist ----------------------------------------------------------

async def test_origin_allowlist_refuses_cross_site_websocket_hijacking(full_server):
    url, own = full_server.ws_url, full_server.http_url
    for kwargs in [{}, {"origin": own}, {"origin": own.replace("http://", "https://")}]:
        ws = await opens(url, **kwargs)
        await subscribe(ws, "a")
        await ws.close()
    port = full_server.http_port
    # the address the client asked for (its Host header) is its own origin: a page served through
    # a proxy on one address, or a non-browser client that sends the WebSocket address as Origin
    await (await opens(url, origin=f"http://127.0.0.1:{full_server.ws_port}")).close()
    hostile = ["https://evil.example", f"http://evil.example:{port}", "null", "file://",
               "http://127.0.0.1", f"ws://127.0.0.1:{port}", f"http://127.0.0.2:{port}",
               f"http://127.0.0.1:{port}.evil.example", "http://127.0.0.1:99999", "http://[::1", "",
               f"http://user@evil.example:{port}"]
    for origin in hostile:
        r = await refused(url, 403, origin=origin)
        assert b"origin" in r.body
    # a repeated Origin header is no origin at all
    await refused(url, 403, additional_headers=[("Origin", own), ("Origin", own)])
    # the Host header is what "own" is judged against: a page served elsewhere does not match
    await refused(url, 403, origin=own, additional_headers={"Host": "evil.example:1"})
    await refused(url, 403, origin=own, additional_headers={"Host": "[oops"})
    assert full_server.gate.open == 0


async def test_allow_origin_adds_exact_origins_and_star_allows_any():
    async with running_server(http_port=0, allow_origins=["https://app.example", "http://localhost:3000"]) as running:
        for origin in ["https://app.example", "http://localhost:3000"]:
            await (await opens(running.ws_url, origin=origin)).close()
        await (await opens(running.ws_url)).close()
        for origin in ["https://app.example.evil", "http://app.example", "https://evil.example/https://app.example",
                       "http://localhost:3001", f"http://localhost:{running.ws_port}"]:
            await refused(running.ws_url, 403, origin=origin)
    async with running_server(http_port=0, allow_origins=["*"]) as running:
        for origin in ["https://anything.example", "null", "http://127.0.0.1:99999"]:
            await (await opens(running.ws_url, origin=origin)).close()


# -- connection limits -----------------------------------------------------------------

async def test_total_limit_refuses_with_503_retry_after_and_serves_the_others(caplog):
    caplog.set_level(logging.INFO)
    async with running_server(http_port=0, max_connections=3) as running:
        inside = [await opens(running.ws_url) for _ in range(3)]
        for i, ws in enumerate(inside):
            await subscribe(ws, f"s{i}")
        last = [await gap_free_samples(ws, 3) for ws in inside]
        # a burst of 30 concurrent handshakes: every one refused, none let in past the limit
        results = await asyncio.gather(*[handshake(running.ws_url) for _ in range(30)])
        assert [code for code, _ in results] == [503] * 30
        for _, response in results:
            assert int(response.headers["Retry-After"]) > 0 and b"too many connections" in response.body
            assert bytes(response.body) == b"too many connections in total (--max-connections 3); retry later\n"
        assert running.gate.open == 3 and running.metrics.registry.get_sample_value("wsgen_connections") == 3
        # the three inside kept streaming, gap-free, meanwhile
        for ws, seq in zip(inside, last):
            m = json.loads(await ws.recv())
            assert m["type"] == "data" and m["seq"] == seq
            await gap_free_samples(ws, 10)
        # a slot freed (even abruptly) is a slot available
        inside[0].transport.abort()
        assert await wait_until(lambda: running.gate.open == 2)
        ws = await opens(running.ws_url)
        await subscribe(ws, "again")
        await gap_free_samples(ws, 3)
        await refused(running.ws_url, 503)
        for w in [ws, *inside[1:]]:
            w.transport.abort()    # close() would wait behind unread data (websockets #1555)
        assert await wait_until(lambda: running.gate.open == 0)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def socket_from(ip: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from source address ``ip``
    (any 127/8 address is local on Linux)."""
    sock = socket.socket()
    sock.bind((ip, 0))
    sock.connect(("127.0.0.1", port))
    return sock


async def test_per_address_limit_counts_each_client_address_separately():
    async with running_server(http_port=0, max_connections=10, max_connections_per_ip=2) as running:
        url, port = running.ws_url, running.ws_port
        a = [await opens(url, sock=socket_from("127.0.0.1", port)) for _ in range(2)]
        r = await refused(url, 503, sock=socket_from("127.0.0.1", port))
        assert r.headers["Retry-After"]
        # the body names the limit that was hit (behind a proxy, every client shares one address)
        assert bytes(r.body) == b"too many connections from this address (--max-connections-per-ip 2); retry later\n"
        b = [await opens(url, sock=socket_from("127.0.0.2", port)) for _ in range(2)]
        await refused(url, 503, sock=socket_from("127.0.0.2", port))
        assert running.gate.per_ip == {"127.0.0.1": 2, "127.0.0.2": 2}
        for ws in a + b:
            await subscribe(ws, "x")
        for ws in a + b:
            await gap_free_samples(ws, 3)
        await a[0].close()
        await asyncio.sleep(0.1)
        ws = await opens(url, sock=socket_from("127.0.0.1", port))
        await refused(url, 503, sock=socket_from("127.0.0.2", port))
        for w in [ws, a[1], *b]:
            await w.close()
        await asyncio.sleep(0.1)
        assert running.gate.open == 0 and running.gate.per_ip == {}


# -- the same from the command line -----------------------------------------------------

async def test_cli_flags_token_env_allow_origin_and_per_ip_limit():
    env = dict(os.environ, WSGEN_TOKEN=TOKEN)
    with tempfile.TemporaryFile("w+") as err:
        server = await asyncio.to_thread(ServeProcess, "--log-level", "debug", "--allow-origin", "https://app.example",
                                         "--max-connections-per-ip", "1", "--max-connections", "5", stderr=err,
                                         env=env)
        url, http_url = server.url, server.http_url
        try:
            await refused(url, 401)
            await refused(url + "/?token=nope", 401)
            await refused(url + f"/?token={TOKEN}", 403, origin="https://evil.example")
            ws = await opens(url + f"/sine?token={TOKEN}&interval=0.01", origin="https://app.example")
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await refused(url, 503, additional_headers=BEARER)              # one per address
            async with httpx.AsyncClient(base_url=http_url, timeout=10) as http:
                assert (await http.get("/healthz")).status_code == 200
                assert is_unauthorized_json(await http.get("/generators"))
                assert (await http.get("/generators", headers=BEARER)).status_code == 200
                assert (await http.get(f"/sine?count=1&token={TOKEN}")).text == "0.000\n"
            await ws.close()
            own = await opens(url, origin=http_url, additional_headers=BEARER)   # its own page's origin
            await own.close()
        finally:
            code = await asyncio.to_thread(server.stop)
        err.seek(0)
        log = err.read()
    assert code == 0
    assert "< GET /sine?token=<redacted>" in log and "Traceback" not in log
    assert TOKEN not in log


async def test_dns_rebinding_guard_refuses_foreign_host_on_loopback_server(full_server):
    """A page on evil.example that resolves to 127.0.0.1 still sends its own
    name in Host: a loopback-bound server refuses it on both paths."""
    import requests
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        async with connect(full_server.ws_url, additional_headers={"Host": f"evil.example:{full_server.ws_port}"}):
            pass
    assert info.value.response.status_code == 403
    loop = asyncio.get_running_loop()
    bad = await loop.run_in_executor(None, lambda: requests.get(full_server.http_url + "/healthz",
                                                                headers={"Host": "evil.example"}, timeout=5))
    assert bad.status_code == 400 and bad.json()["error"] == "bad_host", bad.text   # JSON, like every HTTP error
    good = await loop.run_in_executor(None, lambda: requests.get(
        full_server.http_url.replace("127.0.0.1", "localhost") + "/healthz", timeout=5))
    assert good.status_code == 200
    # the handshake's rule on both paths: any loopback name passes, with or without a port
    for host in ["127.0.0.2", f"[::1]:{full_server.http_port}", "LOCALHOST"]:
        r = await loop.run_in_executor(None, lambda: requests.get(full_server.http_url + "/healthz",
                                                                  headers={"Host": host}, timeout=5))
        assert r.status_code == 200, (host, r.text)
    async with connect(full_server.ws_url.replace("127.0.0.1", "localhost")) as ws:
        await ws.send('{"type": "list"}')
        assert '"generators"' in await ws.recv()
