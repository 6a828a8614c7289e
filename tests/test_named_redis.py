"""Named streams across replicas: ``wsgen serve`` processes sharing one Redis.

A real ``redis-server`` (Debian's) runs as a child process on a free
loopback port with its own temporary folder (append-only file, fsync at
every write, so a SIGKILL loses nothing); each replica is a ``wsgen serve``
child process with ``--redis-url``. Everything is compared by seq, never by
timing: the tests hold at a load of 4 on 2 cores. The update margin is 2 s
of stream time, so that a replica busy for a while still reads each change
before its seq comes due.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from wsgen import create

from servers import ServeProcess, free_port, wait_until as _wait_until  # noqa: E402  (tests/ is on sys.path)
from test_named import Reader as NamedReader  # noqa: E402

pytestmark = pytest.mark.timeout(240)
assert shutil.which("redis-server"), "needs redis-server (apt-get install redis-server; .ci/run installs it)"

TEMP = "plant/boiler-3/temperature"
ADMIN = "op-secret"
INTERVAL = 0.05
PARAMS = {"amplitude": 5, "frequency": 0.5, "offset": 80}
SCENARIO = f"""
streams:
  - name: {TEMP}
    generator: sine
    params: {json.dumps(PARAMS)}
    interval: {INTERVAL}
    seed: 7
    history: 4000
  - name: plant/boiler-3/pressure
    generator:
      base: {{kind: normal, params: {{mean: 3, std_dev: 0.05}}}}
      anomalies:
        - {{kind: level-shift, placement: {{mode: random, probability: 0.02}}, min_length: 3, max_length: 6, height: 1}}
    interval: {INTERVAL}
"""


def wait_until(predicate, timeout: float = 30.0) -> bool:
    """``servers.wait_until``, any exception meaning "not yet" (Redis or a replica still starting)."""
    return _wait_until(predicate, timeout, interval=0.05, ignore=(Exception,))


class RedisServer:
    """``redis-server`` on a free loopback port, data in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port, self.proc = folder, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        assert wait_until(self._pings, 20), (self.folder / "redis.log").read_text()[-2000:]

    def _pings(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class Replica(ServeProcess):
    """``wsgen serve`` of the plant scenario on the shared Redis, in a child
    process on free ports (``servers.ServeProcess``); its log in ``<name>.log``."""

    def __init__(self, folder: Path, redis_url: str, name: str) -> None:
        self.log = folder / f"{name}.log"
        with open(self.log, "ab") as log:
            super().__init__("--scenario", str(folder / "plant.yaml"), "--admin-token", ADMIN, "--redis-url",
                             redis_url, "--update-margin", "2", "--log-level", "warning", stderr=log, cwd=str(folder))
        # the log read from Redis: the streams are defined
        ok = wait_until(lambda: httpx.get(self.http + "/streams", timeout=2).json()["streams"], 60)
        assert ok, self.log.read_text()[-3000:]

    @property
    def http(self) -> str:
        return self.http_url

    @property
    def ws(self) -> str:
        return self.url


class Reader(NamedReader):
    """tests/test_named.py's reader with this file's longer default wait
    (three processes and Redis on two cores), and a request/reply helper."""

    async def pump(self, until, timeout: float = 60.0) -> None:
        await super().pump(until, timeout)

    async def ask(self, message: dict, timeout: float = 60.0) -> dict:
        """Send ``message``; its reply (the first non-data message with its id)."""
        n = len(self.other)
        await self.ws.send(json.dumps(message))
        await self.pump(lambda: any(m.get("id") == message.get("id") for m in self.other[n:]), timeout)
        return next(m for m in self.other[n:] if m.get("id") == message.get("id"))


def reference(origin: int, changes: list[tuple[int, dict]], upto: int) -> dict[int, float]:
    """seq -> value of the sine stream, computed with the plain generator:
    index ``seq - origin``, each change applied at its seq."""
    gen = create("sine", {**PARAMS, "interval": INTERVAL}, seed=7)
    out: dict[int, float] = {}
    seq = origin
    for at, params in sorted(changes, key=lambda c: c[0]) + [(upto, None)]:
        for i, v in enumerate(gen.take(at - seq).values.tolist()):
            out[seq + i] = v
        seq = at
        if params is not None:
            gen.update(params)
    return out


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "plant.yaml").write_text(SCENARIO)
    redis = RedisServer(tmp_path)
    redis.start()
    replicas: list[Replica] = []
    try:
        yield tmp_path, redis, replicas
    finally:
        for r in replicas:
            r.stop()
        redis.kill()


async def test_replicas_share_values_updates_late_replica_and_redis_outage(cluster):
    folder, redis, replicas = cluster
    a = Replica(folder, redis.url, "a")
    b = Replica(folder, redis.url, "b")
    replicas += [a, b]
    async with connect(a.ws) as wa, connect(b.ws + "/streams/" + TEMP) as wb:
        ra, rb = Reader(wa), Reader(wb)
        sub = await ra.ask({"type": "subscribe", "id": "t", "stream": TEMP})
        assert sub["type"] == "subscribed", sub
        await rb.pump(lambda: rb.of("subscribed"))
        origin = sub["origin"]
        assert rb.of("subscribed")[0]["origin"] == origin          # one definition, from the log
        await ra.pump(lambda: len(ra.values) >= 10)
        await rb.pump(lambda: len(rb.values) >= 10)

        # three changes, each sent to replica A, applied from the same seq on B
        changes: list[tuple[int, dict]] = []
        for i, params in enumerate([{"amplitude": 20}, {"frequency": 2.0}, {"offset": -10}]):
            ack = await ra.ask({"type": "update", "id": f"op{i}", "stream": TEMP, "params": params,
                                "admin_token": ADMIN})
            assert ack["type"] == "updated" and ack["late"] is False, ack
            changes.append((ack["seq"], params))
            await rb.pump(lambda: len(rb.of("updated")) > i)
            told = rb.of("updated")[i]
            assert (told["seq"], told["changes"]) == (ack["seq"], params)
        last = changes[-1][0]
        await ra.pump(lambda: max(ra.values) >= last + 20)
        await rb.pump(lambda: max(rb.values) >= last + 20)
        expect = reference(origin, changes, last + 40)
        common = sorted(set(ra.values) & set(rb.values))
        assert len(common) > 40 and all(s in ra.values for s in (last - 1, last, last + 19))
        assert all(ra.values[s] == rb.values[s] for s in common)                 # identical on both
        assert all(ra.values[s] == expect[s] for s in ra.values if s in expect)  # and right, from each seq
        assert all(rb.values[s] == expect[s] for s in rb.values if s in expect)
        for at, _ in changes:
            assert at in common and at - 1 in common

        # a third replica, started after the three changes, reproduces the stream
        c = Replica(folder, redis.url, "c")
        replicas.append(c)
        first = min(ra.values)
        async with connect(c.ws) as wc:
            rc = Reader(wc)
            r = await rc.ask({"type": "subscribe", "id": "t", "stream": TEMP, "start_seq": first})
            assert r["type"] == "subscribed" and r["seq"] == first and r["origin"] == origin, r
            await rc.pump(lambda: max(rc.values, default=0) >= last + 20)
            assert all(rc.values[s] == ra.values[s] for s in rc.values if s in ra.values)
            assert len(set(rc.values) & set(ra.values)) >= last + 20 - first
            # a subscriber moved from A to C resumes at its next seq with the same values
            moved = max(ra.values) + 1
            r = await rc.ask({"type": "subscribe", "id": "moved", "stream": TEMP, "start_seq": moved})
            assert r["seq"] == moved
            await rc.pump(lambda: max(rc.values) >= moved + 5)
            await ra.pump(lambda: max(ra.values) >= moved + 5)
            assert all(rc.values[s] == ra.values[s] for s in range(moved, moved + 5))

        # Redis dies: streams go on (the same values on both), changes are refused, /readyz and /metrics say so
        redis.kill()
        before = max(ra.values)
        await ra.pump(lambda: max(ra.values) >= before + 40)
        await rb.pump(lambda: max(rb.values) >= before + 40)
        common = [s for s in set(ra.values) & set(rb.values) if s > before]
        assert len(common) >= 20 and all(ra.values[s] == rb.values[s] == expect.get(s, ra.values[s])
                                         for s in common)
        refused = await ra.ask({"type": "update", "id": "down", "stream": TEMP, "params": {"amplitude": 1},
                                "admin_token": ADMIN})
        assert refused["type"] == "error" and refused["code"] == "control_plane_unavailable", refused
        assert "unreachable" in refused["message"] and "retry later" in refused["message"]
        async with httpx.AsyncClient(timeout=10) as http:
            ready = (await http.get(a.http + "/readyz")).json()
            assert ready["ready"] is True and ready["control_plane"]["up"] is False
            assert "wsgen_control_plane_up{kind=\"redis\"} 0.0" in (await http.get(a.http + "/metrics")).text
            r = await http.post(b.http + "/streams/" + TEMP, json={"op": "update", "params": {"amplitude": 1}},
                                headers={"X-Wsgen-Admin-Token": ADMIN})
            assert r.status_code == 503 and r.json()["error"] == "control_plane_unavailable"

            # Redis is back (same folder: the log survived): changes work again, everywhere at one seq
            redis.start()
            assert wait_until(lambda: httpx.get(a.http + "/readyz", timeout=2).json()["control_plane"]["up"], 30)
            r = await http.post(a.http + "/streams/" + TEMP, json={"op": "update", "params": {"amplitude": 3}},
                                headers={"X-Wsgen-Admin-Token": ADMIN})
            assert r.status_code == 200, r.text
            at = r.json()["seq"]
            assert "wsgen_control_plane_up{kind=\"redis\"} 1.0" in (await http.get(a.http + "/metrics")).text
        await rb.pump(lambda: any(m["seq"] == at for m in rb.of("updated")))
        await ra.pump(lambda: max(ra.values) >= at + 10)
        await rb.pump(lambda: max(rb.values) >= at + 10)
        changes.append((at, {"amplitude": 3}))
        expect = reference(origin, changes, at + 10)
        for s in range(at - 5, at + 10):
            assert ra.values[s] == rb.values[s] == expect[s], s


async def test_subscriber_moved_to_another_replica_through_nginx_resumes_at_its_next_seq(cluster):
    """deploy/nginx.conf in front of two replicas (as tests/test_nginx.py): the
    replica serving a Python client is killed; the client reconnects through
    nginx to the other and resumes the named stream at its next seq, with
    the same values (no gap, no repeat)."""
    import re

    import numpy as np

    from test_nginx import Nginx, listening, site_config
    from wsgen.client import Client

    folder, redis, replicas = cluster
    a = Replica(folder, redis.url, "a")
    b = Replica(folder, redis.url, "b")
    replicas += [a, b]
    listen_http, listen_ws = free_port(), free_port()
    nginx = Nginx(site_config([a.http_port, b.http_port], [a.port, b.port], listen_http, listen_ws))
    try:
        assert wait_until(lambda: listening(listen_http) and listening(listen_ws), 15)

        def connections(r: Replica) -> int:
            text = httpx.get(r.http + "/metrics", timeout=5).text
            return int(float(re.search(r"^wsgen_connections (\S+)$", text, re.M)[1]))

        async with Client(f"ws://127.0.0.1:{listen_http}/ws", backoff_base=0.05) as c:
            sub = await c.subscribe_stream(TEMP)
            first = await sub.take(20)
            serving = [r for r in (a, b) if await asyncio.to_thread(connections, r) == 1]
            assert len(serving) == 1
            os.kill(serving[0].proc.pid, signal.SIGKILL)     # no close frame, no goodbye
            rest = await sub.take(60)
            assert c.reconnects >= 1
        seqs = np.concatenate([first.seqs, rest.seqs])
        np.testing.assert_array_equal(seqs, np.arange(seqs[0], seqs[0] + 80))
        streams = httpx.get(next(r for r in (a, b) if r is not serving[0]).http + "/streams",
                            timeout=5).json()["streams"]
        origin = next(s["origin"] for s in streams if s["name"] == TEMP)
        expect = reference(origin, [], int(seqs[-1]) + 1)
        assert np.concatenate([first.values, rest.values]).tolist() == [expect[int(s)] for s in seqs]
    finally:
        nginx.stop()
