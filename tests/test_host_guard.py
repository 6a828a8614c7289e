"""DNS-rebinding guard (issue 13, part 5): on a loopback-bound server only
real loopback names (``localhost``, literal loopback addresses) and the
operator's ``--allow-host`` names pass the Host check, on both ports.

Real servers on ephemeral ports; ``websockets`` for the handshake, ``httpx``
for HTTP.
"""
from __future__ import annotations

import socket

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wsgen.cli import build_parser
from wsgen.server.config import Settings
from wsgen.server.serve import start

pytestmark = pytest.mark.timeout(60)

#: Names that merely start with, end with or contain a loopback address or name.
LOOKALIKES = ["127.0.0.1.evil.example", "127.evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
              "evil.example.127.0.0.1", "evil-127.0.0.1", "0x7f000001", "2130706433", "127.1", "localhostx"]
LOOPBACK = ["localhost", "LocalHost", "127.0.0.1", "127.0.0.2", "127.255.255.254", "[::1]"]


async def ws_status(url: str, host: str, origin: str | None = None) -> int:
    """Status of a handshake on the server at ``url`` that sends ``Host: host``
    (the URL names ``host``; the socket is connected to the server's address)."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        async with connect(f"ws://{host}/", sock=sock, origin=origin, open_timeout=5) as ws:
            await ws.send('{"type": "list"}')
            assert '"generators"' in await ws.recv()
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.fixture
async def guarded():
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2,
                                   allow_hosts=["Wsgen.Test"]))
    try:
        yield running
    finally:
        await running.stop()


async def test_names_that_only_look_like_loopback_are_refused_on_both_ports(guarded):
    async with httpx.AsyncClient(base_url=guarded.http_url, timeout=10) as http:
        for name in LOOKALIKES:
            for host in (name, f"{name}:{guarded.http_port}"):
                for path in ("/metrics", "/sine?count=1", "/healthz"):
                    r = await http.get(path, headers={"Host": host})
                    assert r.status_code == 400 and r.json()["error"] == "bad_host", (host, path, r.text)
                    assert "--allow-host" in r.json()["message"]
            # the WebSocket handshake, with an Origin matching the Host (what a rebinding page sends)
            host = f"{name}:{guarded.ws_port}"
            assert await ws_status(guarded.ws_url, host, origin=f"http://{name}:{guarded.http_port}") == 403, host
            assert await ws_status(guarded.ws_url, host) == 403, host
        for name in LOOPBACK:
            r = await http.get("/sine?count=1", headers={"Host": f"{name}:{guarded.http_port}"})
            assert r.status_code == 200 and r.text == "0.000\n", (name, r.text)
            assert await ws_status(guarded.ws_url, f"{name}:{guarded.ws_port}") == 101, name


async def test_allow_host_names_pass_on_both_ports_in_any_case_and_with_a_port(guarded):
    async with httpx.AsyncClient(base_url=guarded.http_url, timeout=10) as http:
        for host in ("wsgen.test", "WSGEN.TEST:8000", f"wsgen.test:{guarded.http_port}"):
            r = await http.get("/sine?count=2", headers={"Host": host})
            assert r.status_code == 200 and r.text == "0.000\n0.501\n", (host, r.text)
        for host in ("sub.wsgen.test", "wsgen.test.evil.example", "wsgen.tes"):
            assert (await http.get("/healthz", headers={"Host": host})).status_code == 400, host
    assert await ws_status(guarded.ws_url, f"wsgen.test:{guarded.ws_port}") == 101
    assert await ws_status(guarded.ws_url, f"sub.wsgen.test:{guarded.ws_port}") == 403


async def test_a_server_without_allow_host_refuses_the_name_another_allows(full_server):
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=10) as http:
        assert (await http.get("/healthz", headers={"Host": "wsgen.test"})).status_code == 400
    assert await ws_status(full_server.ws_url, f"wsgen.test:{full_server.ws_port}") == 403


def test_allow_host_flag_repeats_and_env_is_comma_separated(monkeypatch):
    monkeypatch.setenv("WSGEN_ALLOW_HOSTS", "a.example,b.example")
    args = build_parser().parse_args(["serve"])
    assert args.allow_host == ["a.example", "b.example"]
    monkeypatch.delenv("WSGEN_ALLOW_HOSTS")
    args = build_parser().parse_args(["serve", "--allow-host", "x.example", "--allow-host", "y.example"])
    assert args.allow_host == ["x.example", "y.example"]
