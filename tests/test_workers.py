"""``wsgen serve --workers N`` (wsgen.server.workers): worker processes sharing both
ports with SO_REUSEPORT, /metrics summed over them, a dead worker restarted,
SIGTERM to the supervisor draining every worker. Real processes, real
clients; which worker answered comes from its ``/healthz`` (``pid``)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from servers import ServeProcess, wait_until
from wsgen.server.workers import resolve_workers, usable_cpus

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workers(*args: str, **kwargs) -> ServeProcess:
    return ServeProcess("--http-port", str(free_port()), *args, **kwargs)


async def health(base: str) -> dict:
    """/healthz over a fresh connection (the kernel picks the worker per connection)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return (await http.get("/healthz")).json()


async def metric(base: str, name: str, labels: str = "") -> float:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        text = (await http.get("/metrics")).text
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m[1]) if m else 0.0


async def pids_seen(base: str, want: int, timeout: float = 20) -> set[int]:
    seen: set[int] = set()

    async def more() -> bool:
        seen.add((await health(base))["pid"])
        return len(seen) >= want

    deadline = asyncio.get_running_loop().time() + timeout
    while not await more():
        assert asyncio.get_running_loop().time() < deadline, f"only workers {seen} answered"
    return seen


async def streams_on_both_workers(http: httpx.AsyncClient, base: str, path: str, at_least: int):
    """Open HTTP streams, each on its own connection, until at least
    ``at_least`` are open and each of the 2 workers holds some (the kernel
    picks a worker per connection, by a hash): their contexts, responses
    and open streams per worker pid (each worker's own /healthz)."""
    contexts, responses = [], []
    while True:
        while len(contexts) < at_least:
            cm = http.stream("GET", path)
            responses.append(await cm.__aenter__())
            contexts.append(cm)
        per_worker: dict[int, int] = {}
        while not (len(per_worker) == 2 and sum(per_worker.values()) == len(contexts)):
            h = await health(base)
            per_worker[h["pid"]] = h["active_streams"]
        if all(n > 0 for n in per_worker.values()) or len(contexts) >= 64:
            return contexts, responses, per_worker
        at_least += 4


def test_workers_value():
    assert resolve_workers("auto") == os.cpu_count()          # this machine: no CPU limit, every CPU usable
    assert resolve_workers("3") == 3 and resolve_workers(1) == 1
    for bad in ("0", "-1", "two", "1.5", "", "2000"):
        with pytest.raises(SystemExit, match=r"--workers \(or WSGEN_WORKERS\) must be a whole number in "
                                             r"\[1, 1024\] or 'auto'"):
            resolve_workers(bad)


async def test_two_workers_share_both_ports_and_metrics_are_the_whole_servers():
    with workers("--workers", "2") as proc:
        base = proc.http_url
        pids = await pids_seen(base, 2)
        assert proc.pid not in pids                    # the supervisor serves nothing itself
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # 12 or more HTTP streams held open, each on its own connection, some on each worker
            streams, responses, per_worker = await streams_on_both_workers(
                http, base, "/sine?interval=0.5&format=ndjson", 12)
            lines = [r.aiter_lines() for r in responses]     # (kept: a dropped iterator closes its stream)
            for it in lines:
                assert json.loads(await it.__anext__())["seq"] == 0
            assert all(n > 0 for n in per_worker.values()), per_worker
            # each worker's /healthz counts its own; /metrics counts them all, whoever answers
            for _ in range(6):
                assert await metric(base, "wsgen_http_streams") == len(streams)
            # 6 WebSocket connections on the shared WebSocket port
            sockets = [await connect(f"{proc.url}/sine?interval=0.5") for _ in range(6)]
            for ws in sockets:
                assert json.loads(await ws.recv())["type"] == "subscribed"
            for _ in range(6):
                assert await metric(base, "wsgen_connections") == 6
                assert await metric(base, "wsgen_subscriptions", '{generator="sine"}') == 6
            for ws in sockets:
                await ws.close()
            for s in streams:
                await s.__aexit__(None, None, None)
            # counters: 10 streams of 100 cosine samples, on whichever workers
            for _ in range(10):
                r = await http.get("/cosine?count=100&speed=max")
                assert len(r.text.splitlines()) == 100
        totals: list[float] = []

        async def settled() -> bool:      # each worker publishes its tallies within a second
            totals.append(await metric(base, "wsgen_samples_sent_total", '{generator="cosine",path="http"}'))
            return totals[-4:] == [1000.0] * 4
        deadline = asyncio.get_running_loop().time() + 15
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, totals[-8:]
            await asyncio.sleep(0.1)
        for _ in range(4):
            assert await metric(base, "wsgen_connections") == 0
            assert await metric(base, "wsgen_http_streams") == 0
        assert proc.stop() == 0


async def test_a_dead_worker_is_restarted_and_logged():
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "wsgen.log"
        with open(log, "w") as err, workers("--workers", "2", stderr=err) as proc:
            base = proc.http_url
            first = await pids_seen(base, 2)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            assert wait_until(lambda: re.search(rf"worker \d \(pid {victim}\) exited with signal SIGKILL after "
                                                rf"[\d.]+ s; restarting", log.read_text()), 20), log.read_text()
            assert wait_until(lambda: re.search(r"worker \d restarted: pid (\d+)", log.read_text()), 20)
            new = int(re.search(r"worker \d restarted: pid (\d+)", log.read_text())[1])
            assert new not in first
            # the new worker serves: both live workers answer, the dead one is gone
            assert await pids_seen(base, 2) == (first - {victim}) | {new}
            async with httpx.AsyncClient(base_url=base) as http:
                r = await http.get("/sine?seed=3&count=5&speed=max&format=ndjson")
                assert [json.loads(ln)["seq"] for ln in r.text.splitlines()] == [0, 1, 2, 3, 4]
            assert proc.stop() == 0
        assert "Traceback" not in log.read_text()


async def test_sigterm_to_the_supervisor_drains_every_worker():
    env = {**os.environ, "WSGEN_WORKERS": "2"}
    with workers("--graceful-timeout", "3", env=env) as proc:
        base = proc.http_url
        await pids_seen(base, 2)
        sockets = [await connect(f"ws://127.0.0.1:{proc.http_port}/ws/sine?interval=0.05") for _ in range(8)]
        for ws in sockets:
            assert json.loads(await ws.recv())["type"] == "subscribed"

        async def closing_code(ws) -> int | None:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 20)
            except ConnectionClosed:
                return ws.close_code

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            streams, responses, per_worker = await streams_on_both_workers(
                http, base, "/sine?interval=0.05&format=ndjson", 8)
            assert all(n > 0 for n in per_worker.values()), per_worker

            async def ends_cleanly(r) -> list[dict]:
                return [json.loads(ln) async for ln in r.aiter_lines() if ln]

            proc.signal(signal.SIGTERM)
            codes = await asyncio.gather(*[closing_code(ws) for ws in sockets])
            ends = await asyncio.gather(*[ends_cleanly(r) for r in responses])
            for s in streams:
                await s.__aexit__(None, None, None)
        assert codes == [1001] * 8
        for rows in ends:                 # every HTTP stream ended (no cut line), gap-free
            seqs = [r["seq"] for r in rows if "seq" in r]
            assert seqs == list(range(len(seqs)))
        assert proc.wait(30) == 0


async def test_workers_start_from_a_folder_holding_a_wsgen_checkout(tmp_path):
    # the folder that holds a clone has a ``wsgen/`` directory: a worker
    # started with ``python -m`` put it first on its path and imported it
    # instead of the installed package (both workers died at start)
    shadow = tmp_path / "wsgen"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("the shadow package in the working directory")\n')
    script = Path(sys.executable).with_name("wsgen")      # the console script, as a user runs it
    assert script.exists(), script
    http_port = free_port()
    proc = subprocess.Popen([str(script), "serve", "--workers", "2", "--port", "0", "--http-port", str(http_port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert ServeProcess.LISTENING.search(line) and "(2 workers)" in line, (line, proc.stderr.read())
        assert len(await pids_seen(f"http://127.0.0.1:{http_port}", 2)) == 2
    finally:
        proc.terminate()
        assert proc.wait(60) == 0
    assert "shadow package" not in proc.stderr.read()


def test_workers_on_a_taken_port_refuse_in_one_line_even_against_other_workers():
    # a running `wsgen serve --workers 2` binds with SO_REUSEPORT: a second one on the same ports
    # used to start too, and the kernel split new connections between the two servers
    with workers("--workers", "2") as proc:
        for flag, port in (("--port", proc.port), ("--http-port", proc.http_port)):
            other = "--http-port" if flag == "--port" else "--port"
            run = subprocess.run([sys.executable, "-m", "wsgen.cli", "serve", "--workers", "2", flag, str(port),
                                  other, "0", "--log-level", "warning"], capture_output=True, text=True, check=False,
                                 timeout=60)
            zero = "0 picks a free one" if flag == "--port" else "0 turns HTTP off"
            assert run.returncode == 2, run.stderr
            assert run.stderr.strip() == (f"wsgen: cannot start: port {port} on 127.0.0.1 is already in use "
                                          f"(another wsgen serve?); stop that process or pick another port "
                                          f"with {flag} N ({zero})")
        assert proc.stop() == 0
    # a single-process server on the port: the same line (it was "[Errno 98] Address already in use")
    with ServeProcess("--http-port", "0") as single:
        run = subprocess.run([sys.executable, "-m", "wsgen.cli", "serve", "--workers", "2", "--port",
                              str(single.port), "--http-port", "0"], capture_output=True, text=True, check=False,
                             timeout=60)
        assert run.returncode == 2 and run.stderr.strip().startswith(
            f"wsgen: cannot start: port {single.port} on 127.0.0.1 is already in use"), run.stderr
        assert single.stop() == 0


def test_auto_follows_the_cpu_limit_and_affinity_not_the_machines_cpu_count(tmp_path):
    # a container's CPU limit is a cgroup quota: `--workers auto` on a 64-CPU node under a 2-CPU limit
    # started 64 workers of ~140 MB each (past the Deployment's 1 GiB memory limit)
    cpus = len(os.sched_getaffinity(0))
    v2 = tmp_path / "v2"
    v2.mkdir()
    for text, want in (("max 100000\n", cpus), ("100000 100000\n", 1), ("150000 100000\n", min(cpus, 2)),
                       ("50000 100000\n", 1)):
        (v2 / "cpu.max").write_text(text)
        assert usable_cpus(str(v2)) == want, text
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    for text, want in (("-1\n", cpus), ("100000\n", 1)):
        (v1 / "cpu" / "cpu.cfs_quota_us").write_text(text)
        assert usable_cpus(str(v1)) == want, text
    assert usable_cpus(str(tmp_path / "none")) == cpus                   # no cgroup files: the affinity
    # the affinity (taskset, a cpuset): one CPU allowed, one worker
    run = subprocess.run(["taskset", "-c", "0", sys.executable, "-c",
                          "from wsgen.server.workers import resolve_workers; print(resolve_workers('auto'))"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "1", run.stderr


def test_a_worker_that_cannot_start_says_why_in_one_line_not_a_traceback(tmp_path):
    missing = tmp_path / "no-such-dir"
    run = subprocess.run([sys.executable, "-m", "wsgen.cli", "serve", "--workers", "2", "--port", "0",
                          "--http-port", "0", "--data-dir", str(missing)], capture_output=True, text=True, check=False,
                         timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert f"wsgen: cannot start: --data-dir {missing}: not a directory" in lines, lines
    assert re.fullmatch(r"wsgen: cannot start: worker \d exited with exit code 2", lines[-1]), lines
