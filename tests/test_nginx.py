"""deploy/nginx.conf in front of two ``wsgen serve`` replicas.

Debian's nginx runs as a child process of the test, with its own
configuration, pid and log files in a temporary folder; the configuration
is deploy/nginx.conf with only the addresses changed (the replicas' ports,
free loopback ports to listen on). Through it: every transport works, the
same seed gives the same values whichever replica serves it, a replica
killed mid-stream is survived by the Python client (it reconnects through
nginx and resumes at its next seq), and HTTP lines are not buffered.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

import wsgen
from servers import ServeProcess, async_wait_until, wait_until
from wsgen.client import Client

pytestmark = pytest.mark.timeout(120)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_config(http_ports: list[int], ws_ports: list[int], listen_http: int, listen_ws: int) -> str:
    """deploy/nginx.conf with the replicas' ports in its upstream blocks and
    loopback listen addresses; nothing else changed."""
    text = CONF.read_text()

    def upstream(name: str, ports: list[int]) -> None:
        nonlocal text
        block = re.search(r"upstream %s \{.*?\n\}" % name, text, re.S)
        assert block, f"deploy/nginx.conf has no upstream {name}"
        lines = [ln for ln in block[0].splitlines() if not ln.strip().startswith("server ")]
        options = re.search(r"server \S+( [^;]*);", block[0])[1]
        servers = [f"    server 127.0.0.1:{p}{options};" for p in ports]
        text = text.replace(block[0], "\n".join(lines[:2] + servers + lines[2:]))

    upstream("wsgen_http", http_ports)
    upstream("wsgen_ws", ws_ports)
    assert text.count("listen 80;") == 1 and text.count("listen 8765;") == 1
    return text.replace("listen 80;", f"listen 127.0.0.1:{listen_http};").replace(
        "listen 8765;", f"listen 127.0.0.1:{listen_ws};")


class Nginx:
    """nginx as a child process: ``-p`` a temporary prefix, foreground, its
    own pid and logs; stopped by PID."""

    def __init__(self, site: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wsgen-nginx-"))
        (self.dir / "wsgen.conf").write_text(site)
        d = self.dir
        (d / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/wsgen.conf;
}}
""" + ("user root;\n" if os.geteuid() == 0 else ""))   # workers need the temporary folder
        check = subprocess.run([NGINX, "-t", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([NGINX, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)      # fast shutdown of master and workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster():
    """Two replicas behind nginx: yields (replicas, http_url, ws_url)."""
    replicas = [ServeProcess("--graceful-timeout", "1"), ServeProcess("--graceful-timeout", "1")]
    listen_http, listen_ws = free_port(), free_port()
    nginx = Nginx(site_config([r.http_port for r in replicas], [r.port for r in replicas], listen_http, listen_ws))
    try:
        assert wait_until(lambda: listening(listen_http) and listening(listen_ws), 15), \
            (nginx.dir / "error.log").read_text()
        yield replicas, f"http://127.0.0.1:{listen_http}", f"ws://127.0.0.1:{listen_ws}"
    finally:
        nginx.stop()
        for r in replicas:
            r.stop()


def connections(replica: ServeProcess) -> int:
    """Open WebSocket connections of one replica, from its own /metrics."""
    text = httpx.get(replica.http_url + "/metrics", timeout=5).text
    return int(float(re.search(r"^wsgen_connections (\S+)$", text, re.M)[1]))


PARAMS = {"amplitude": 3.0, "frequency": 5.0, "interval": 0.01}


def expected(n: int, seed: int = 42, start: int = 0) -> np.ndarray:
    return wsgen.create("sine", PARAMS, seed=seed, start_seq=start).take(n).values


async def test_every_transport_through_nginx(cluster):
    _, http_url, ws_url = cluster
    ws_http_port = http_url.replace("http://", "ws://")
    ref = expected(20)
    async with httpx.AsyncClient(base_url=http_url, timeout=20) as http:
        q = "seed=42&amplitude=3&frequency=5&interval=0.01&count=20&speed=max"
        text = (await http.get(f"/sine?{q}")).text.split()
        np.testing.assert_allclose([float(v) for v in text], ref, atol=5e-4)       # 3 decimals
        nd = [json.loads(ln) for ln in (await http.get(f"/sine?{q}&format=ndjson")).text.splitlines()]
        assert [r["seq"] for r in nd] == list(range(20))
        np.testing.assert_array_equal([r["value"] for r in nd], ref)
        sse = (await http.get(f"/sine?{q}&format=sse")).text
        events = [json.loads(ln[5:]) for ln in sse.splitlines() if ln.startswith("data:")]
        assert events[-1] == {"next_seq": 20}
        values = [e["value"] for e in events[:-1]]
        np.testing.assert_array_equal(values, ref)
        assert (await http.get("/readyz")).json()["ready"] is True
    # WebSocket: messages on the HTTP port's /ws, a URL subscription under /ws/, the dedicated port
    for url in (ws_http_port + "/ws", ws_url + "/"):
        for encoding in ("json", "binary"):
            async with Client(url) as c:
                sub = await c.subscribe("sine", PARAMS, seed=42, encoding=encoding)
                block = await sub.take(20)
                np.testing.assert_array_equal(block.values, ref)
                assert list(block.seqs) == list(range(20))
    # /ws/sine as the page served through nginx would open it: Origin is nginx's address
    for url, origin in ((ws_http_port + "/ws/sine", http_url), (ws_url + "/sine", None)):
        async with connect(url + "?seed=42&amplitude=3&frequency=5&interval=0.01", origin=origin) as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
            got: list[float] = []
            while len(got) < 20:
                got += json.loads(await ws.recv())["values"]
            np.testing.assert_array_equal(got[:20], ref)


async def test_same_seed_same_values_on_either_replica(cluster):
    replicas, http_url, _ = cluster
    url = http_url.replace("http://", "ws://") + "/ws"
    base = [connections(r) for r in replicas]
    async with Client(url) as a, Client(url) as b:
        # least_conn: two connections at once land on the two replicas
        assert await async_wait_until(lambda: [connections(r) - n for r, n in zip(replicas, base)] == [1, 1], 10)
        sa = await a.subscribe("sine", PARAMS, seed=9)
        sb = await b.subscribe("sine", PARAMS, seed=9)
        va, vb = (await sa.take(30)).values, (await sb.take(30)).values
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(va, expected(30, seed=9))


async def test_http_lines_are_not_buffered(cluster):
    _, http_url, _ = cluster
    arrivals: list[float] = []
    async with httpx.AsyncClient(base_url=http_url, timeout=20) as http:
        started = time.monotonic()
        async with http.stream("GET", "/sine?interval=0.5&count=3&format=ndjson") as r:
            async for line in r.aiter_lines():
                if line:
                    arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 3
    assert arrivals[0] < 1.5, arrivals          # the first of a 1 s stream, not its end
    assert arrivals[2] - arrivals[0] > 0.5, arrivals   # lines came as they were made, not together


async def test_client_survives_a_replica_killed_mid_stream(cluster):
    replicas, http_url, _ = cluster
    url = http_url.replace("http://", "ws://") + "/ws"
    base = [connections(r) for r in replicas]
    async with Client(url, backoff_base=0.05) as c:
        sub = await c.subscribe("sine", PARAMS, seed=77)
        first = await sub.take(30)
        serving = [i for i, r in enumerate(replicas) if connections(r) > base[i]]
        assert len(serving) == 1
        victim = replicas[serving[0]]
        victim.kill()                 # SIGKILL: no close frame, no goodbye
        rest = await sub.take(120)    # reconnected through nginx, to the other replica
        assert c.reconnects >= 1
    seqs = np.concatenate([first.seqs, rest.seqs])
    np.testing.assert_array_equal(seqs, np.arange(150))          # no gap, no repeat
    np.testing.assert_array_equal(np.concatenate([first.values, rest.values]), expected(150, seed=77))


def test_beside_debians_default_site_the_public_name_reaches_wsgen():
    # README: "Drop this file into /etc/nginx/conf.d/". Debian's nginx.conf also includes
    # sites-enabled/default, the default_server of port 80 (server_name _): a server block with no
    # server_name then never saw a request that named a host, and every one got that site's 404
    replica = ServeProcess("--graceful-timeout", "1", "--allow-host", "wsgen.example.com")
    listen_http, listen_ws = free_port(), free_port()
    debian_default = (f"server {{\n    listen 127.0.0.1:{listen_http} default_server;\n    server_name _;\n"
                      f"    location / {{ return 404; }}\n}}\n")     # /etc/nginx/sites-available/default's role
    nginx = Nginx(site_config([replica.http_port], [replica.port], listen_http, listen_ws) + debian_default)
    try:
        assert wait_until(lambda: listening(listen_http), 15), (nginx.dir / "error.log").read_text()
        r = httpx.get(f"http://127.0.0.1:{listen_http}/sine?seed=42&amplitude=3&frequency=5&interval=0.01"
                      "&count=3&speed=max&format=ndjson", headers={"Host": "wsgen.example.com"}, timeout=20)
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal([json.loads(ln)["value"] for ln in r.text.splitlines()], expected(3))
    finally:
        nginx.stop()
        replica.stop()
