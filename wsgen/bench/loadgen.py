"""Load generator for ``wsgen bench``: server scenarios measured from a
separate process.

Each scenario connects to a running server (``--url``/``--http-url``) or
starts one in a child process (``wsgen serve`` on free ports) so the load
generator never shares the server's process. Results are dicts of numbers;
``wsgen.bench`` prints them as tables and writes JSON.

Lateness of a data message = arrival wall-clock time minus the due time of
its last sample. At speed 1 a sample's stream time ``t`` *is* its due time on
the wall clock (``t = t0 + seq * dt``), so the client measures it without
knowing the server's clock anchors (same machine, same clock).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import orjson
from websockets.asyncio.client import connect

from wsgen.bench.reader import LeanConnection
from wsgen.protocol.encoding import decode_binary


@dataclass
class ServerProcess:
    """A ``wsgen serve`` child process on free ports."""

    proc: subprocess.Popen
    ws_url: str
    http_url: str | None

    @classmethod
    def start(cls, extra: list[str] | None = None, http: bool = True) -> "ServerProcess":
        cmd = [sys.executable, "-m", "wsgen.cli", "serve", "--port", "0", "--http-port", "0" if not http else "0",
               "--log-level", "warning", *(extra or [])]
        if http:
            cmd[cmd.index("--http-port") + 1] = str(_free_port())
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        m = re.search(r"WebSocket (ws://\S+)(?:\s+HTTP (http://\S+))?", line)
        if not m:
            proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")
        return cls(proc, m.group(1), m.group(2))

    @property
    def view(self) -> "ServerView":
        return ServerView(self.proc.pid, self.http_url)

    def pids(self) -> list[int]:
        return self.view.pids()

    def cpu_seconds(self) -> float:
        return self.view.cpu_seconds()

    def messages_sent(self) -> float | None:
        return self.view.messages_sent()

    def rss_bytes(self) -> int:
        return self.view.rss_bytes()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class ServerView:
    """What the load generator reads of a child server, from any process:
    its processes' CPU and memory (/proc) and its own count of data messages
    sent (/metrics)."""

    pid: int
    http_url: str | None = None

    def pids(self) -> list[int]:
        """The server's processes: itself and, with ``--workers``, its live workers."""
        pids, i = [self.pid], 0
        while i < len(pids):
            try:
                with open(f"/proc/{pids[i]}/task/{pids[i]}/children") as f:
                    pids += [int(p) for p in f.read().split()]
            except OSError:
                pass
            i += 1
        return pids

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server's processes (workers included)."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue     # a worker that just exited
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """Resident memory of the server's processes (workers included), bytes."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
            except OSError:
                continue
        return total

    def messages_sent(self) -> float | None:
        """WebSocket data messages the server has sent (its ``/metrics``;
        with workers, each worker's share is up to a second old); None
        without an HTTP port."""
        if not self.http_url:
            return None
        import urllib.request
        with urllib.request.urlopen(self.http_url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(v) for v in re.findall(r'^wsgen_messages_sent_total\{path="ws"\} (\S+)$', text, re.M))


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs, q) -> float:
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


async def throughput(url: str, encoding: str = "json", seconds: float = 3.0, generator: str = "sine") -> dict:
    """Scenario 1: one subscription at ``speed: "max"``: samples/s and MB/s received."""
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "t", "generator": generator, "speed": "max",
                                  "encoding": encoding, "seed": 1, "params": {}}))
        json.loads(await ws.recv())
        samples = nbytes = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            msg = await ws.recv()
            nbytes += len(msg)
            if isinstance(msg, bytes):
                samples += len(decode_binary(msg).values)
            else:
                samples += len(orjson.loads(msg)["values"])
        await _stop_and_drain(ws, "t")
    return {"encoding": encoding, "generator": generator, "seconds": round(elapsed, 3),
            "samples_per_s": samples / elapsed, "mb_per_s": nbytes / elapsed / 1e6}


async def _stop_and_drain(ws, sub_id: str, timeout: float = 10.0) -> None:
    """Unsubscribe, then read (and drop) what is in flight until the reply:
    closing a fast stream without it can leave the server's close frame
    behind data the client library no longer reads (its queue is full), and
    the close waits for its timeout."""
    await ws.send(json.dumps({"type": "unsubscribe", "id": sub_id}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if isinstance(msg, str) and '"unsubscribed"' in msg[:64]:
            return


async def fanout(url: str, subscriptions: int, connections: int, interval: float, seconds: float,
                 server: "ServerProcess | ServerView | None" = None, batch: bool = False,
                 raw: bool = False) -> dict:
    """Scenario 2: N subscriptions over M connections at ``interval`` for ``seconds``.

    Clients read continuously; the measurement window opens once every
    subscription is acknowledged and has settled. A sample counts as
    expected when its due time falls inside the window and as delivered when
    it arrived by the end of the window plus 100 ms.
    """
    per_conn = [subscriptions // connections + (i < subscriptions % connections) for i in range(connections)]
    window = {"start": float("inf"), "end": float("inf")}
    # two lists of floats, not a list of tuples: floats are not tracked by the
    # garbage collector, 6 million tuples are, and its full passes over them
    # stalled this reader for tens of milliseconds (counted as lateness)
    due_times: list[float] = []
    lateness: list[float] = []
    delivered = 0
    origin: dict[tuple[int, str], float] = {}      # stream time of seq 0, per subscription
    ready = asyncio.Event()
    acked = 0

    async def one(ci: int, n: int):
        # websockets' sans-I/O protocol under a plain asyncio.Protocol
        # (wsgen.bench.reader): the asyncio connection's recv() costs 4 times
        # more per message, and 100,000 separate messages a second are the point
        failed: list[BaseException] = []

        def on_text(payload: bytes, now: float) -> None:
            nonlocal acked
            frame = orjson.loads(payload)
            for m in frame["messages"] if frame.get("type") == "batch" else (frame,):
                kind = m.get("type")
                if kind == "data":
                    measure(ci, m, now)
                elif kind == "subscribed":
                    acked += 1
                    if acked == subscriptions:
                        ready.set()
                elif kind == "error" and not failed:
                    failed.append(RuntimeError(f"server refused a subscription: {m['code']}: {m['message']}"))
                    conn.abort()

        conn = await LeanConnection.open(url, on_text)
        try:
            for k in range(n):
                conn.send_text(json.dumps({"type": "subscribe", "id": f"s{k}", "generator": "sine",
                                           "params": {"interval": interval}, "batch": batch}))
            while not conn.closed.done():
                timeout = window["end"] + 0.1 - time.time()
                if timeout <= 0:
                    break
                await asyncio.wait([conn.closed], timeout=min(timeout, 0.5))   # the window's end is set later
                if failed:
                    break
            else:
                raise ConnectionError(f"connection {ci} closed by the server before the end of the run")
        finally:
            conn.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), 5)
            conn.abort()
        if failed:
            raise failed[0]

    def measure(ci: int, m: dict, now: float) -> None:
        # runs 100,000 times a second under the default fan-out: plain floats
        # and math (a numpy scalar op costs a microsecond here)
        nonlocal delivered
        count = len(m["values"])
        t, dt = m["t"], m["dt"]
        key = (ci, m["id"])
        if key not in origin:
            origin[key] = t - m["seq"] * dt
        due_last = t + (count - 1) * dt
        if window["start"] <= due_last < window["end"]:
            first_in = max(0, math.ceil((window["start"] - t) / dt - 1e-9))
            delivered += count - first_in
            due_times.append(due_last)
            lateness.append(now - due_last)

    tasks = [asyncio.create_task(one(i, n)) for i, n in enumerate(per_conn) if n]
    waiting = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait([waiting, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        for task in tasks:
            task.cancel()
        for task in done:
            task.result()          # a refused subscription or a lost connection: its error
        raise TimeoutError("the subscriptions were not all acknowledged within 120 s")
    await asyncio.sleep(1.0)
    cpu0 = server.cpu_seconds() if server else None
    rss0 = server.rss_bytes() if server else None
    sent0 = server.messages_sent() if server else None
    window["start"] = time.time()
    window["end"] = window["start"] + seconds
    await asyncio.gather(*tasks)
    cpu_s = server.cpu_seconds() - cpu0 if server else float("nan")
    sent1 = server.messages_sent() if server else None
    # data messages the server sent in the window (its own count), else those the clients received due in it
    sent = sent1 - sent0 if sent0 is not None and sent1 is not None else len(lateness)
    cpu = cpu_s / (seconds + 0.1) * 100
    expected = 0
    for key, t0 in origin.items():
        first = int(np.ceil((window["start"] - t0) / interval - 1e-9))
        end = int(np.ceil((window["end"] - t0) / interval - 1e-9))
        expected += end - first
    due = np.array(due_times)
    lat_ms = np.array(lateness) * 1000
    # drift: how much later messages arrive at the end of the run than at its start
    head = lat_ms[due < window["start"] + 1.0]
    tail = lat_ms[due >= window["end"] - 1.0]
    drift = float(np.median(tail) - np.median(head)) if len(head) and len(tail) else float("nan")
    return {"subscriptions": subscriptions, "connections": connections, "batch": batch, "interval_s": interval,
            "seconds": seconds, "samples_delivered": delivered, "samples_expected": expected,
            "lateness_p50_ms": _pct(lat_ms, 50), "lateness_p99_ms": _pct(lat_ms, 99),
            "lateness_max_ms": float(lat_ms.max()) if len(lat_ms) else float("nan"),
            "drift_ms": drift,
            "server_cpu_pct": cpu, "messages": len(lateness), "server_messages": sent,
            # server CPU per data message: the window's CPU over the data messages it sent
            "server_cpu_us_per_msg": cpu_s / sent * 1e6 if sent else float("nan"),
            "server_rss_mb": (server.rss_bytes() / 1e6) if server else float("nan"),
            "server_rss_start_mb": (rss0 / 1e6) if server else float("nan"),
            **({"_lateness_ms": lat_ms.tolist(), "_due": due_times, "_window": [window["start"], window["end"]]}
               if raw else {})}


def _fanout_part(job: tuple) -> dict:
    url, subscriptions, connections, interval, seconds, view, batch = job
    return asyncio.run(fanout(url, subscriptions, connections, interval, seconds, view, batch, raw=True))


def fanout_processes(url: str, subscriptions: int, connections: int, interval: float, seconds: float,
                     server: ServerProcess | None = None, batch: bool = False, clients: int = 2) -> dict:
    """:func:`fanout` from ``clients`` processes, each with its share of the
    connections and subscriptions (for more messages than one process
    reads: about 100,000 a second on a 2-core machine), merged into one result: counts summed,
    lateness percentiles over every message, the server's CPU and messages
    as the parts measured them over their (overlapping) windows."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    view = server.view if server else None
    share = lambda total, i: total // clients + (i < total % clients)     # noqa: E731
    jobs = [(url, share(subscriptions, i), share(connections, i), interval, seconds, view, batch)
            for i in range(clients)]
    with ProcessPoolExecutor(clients, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_fanout_part, jobs))
    lat_ms = np.concatenate([np.asarray(p["_lateness_ms"]) for p in parts]) if parts else np.array([])
    heads, tails = [], []
    for p in parts:
        due, lat = np.asarray(p["_due"]), np.asarray(p["_lateness_ms"])
        start, end = p["_window"]
        heads.append(lat[due < start + 1.0])
        tails.append(lat[due >= end - 1.0])
    head, tail = np.concatenate(heads), np.concatenate(tails)
    cpu_s = [p["server_cpu_pct"] / 100 * (seconds + 0.1) for p in parts]
    sent = [p["server_messages"] for p in parts]
    return {"subscriptions": subscriptions, "connections": connections, "batch": batch, "interval_s": interval,
            "seconds": seconds, "clients": clients,
            "samples_delivered": sum(p["samples_delivered"] for p in parts),
            "samples_expected": sum(p["samples_expected"] for p in parts),
            "lateness_p50_ms": _pct(lat_ms, 50), "lateness_p99_ms": _pct(lat_ms, 99),
            "lateness_max_ms": float(lat_ms.max()) if len(lat_ms) else float("nan"),
            "drift_ms": float(np.median(tail) - np.median(head)) if len(head) and len(tail) else float("nan"),
            "server_cpu_pct": float(np.mean([p["server_cpu_pct"] for p in parts])),
            "messages": sum(p["messages"] for p in parts), "server_messages": float(np.mean(sent)),
            "server_cpu_us_per_msg": float(np.mean([c / m * 1e6 for c, m in zip(cpu_s, sent) if m])),
            "server_rss_mb": float(np.max([p["server_rss_mb"] for p in parts])),
            "server_rss_start_mb": float(np.min([p["server_rss_start_mb"] for p in parts]))}


async def update_latency(url: str, updates: int = 200, interval: float = 0.001) -> dict:
    """Scenario 3: update sent -> ``updated`` received, and -> first sample with the new params."""
    acks, firsts = [], []
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "u", "generator": "sine",
                                  "params": {"interval": interval}}))
        while orjson.loads(await ws.recv())["type"] != "subscribed":
            pass
        for i in range(updates):
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "update", "id": "u", "params": {"frequency": 1 + i % 7}}))
            seq = None
            while True:
                m = orjson.loads(await ws.recv())
                now = time.perf_counter()
                if m["type"] == "updated":
                    seq = m["seq"]
                    acks.append(now - sent)
                elif m["type"] == "data" and seq is not None and m["seq"] + len(m["values"]) > seq:
                    firsts.append(now - sent)
                    break
            await asyncio.sleep(0.005)
    a, f = np.array(acks) * 1000, np.array(firsts) * 1000
    return {"updates": updates, "interval_s": interval, "updated_p50_ms": _pct(a, 50), "updated_p99_ms": _pct(a, 99),
            "first_sample_p50_ms": _pct(f, 50), "first_sample_p99_ms": _pct(f, 99)}


def http_throughput(http_url: str, seconds: float = 3.0, path: str = "/sine") -> dict:
    """Scenario 4: the HTTP path at ``speed=max``: samples/s on one stream."""
    import requests
    lines = nbytes = 0
    with requests.get(f"{http_url}{path}?speed=max", stream=True, timeout=10) as r:
        r.raise_for_status()
        start = time.perf_counter()
        for chunk in r.iter_content(chunk_size=1 << 16):
            lines += chunk.count(b"\n")
            nbytes += len(chunk)
            if time.perf_counter() - start >= seconds:
                break
        elapsed = time.perf_counter() - start
    return {"path": path, "seconds": round(elapsed, 3), "samples_per_s": lines / elapsed, "mb_per_s": nbytes / elapsed / 1e6}


async def idle_memory(url: str, server: ServerProcess, connections: int = 1000) -> dict:
    """Scenario 5: server memory per idle connection holding one 1 sample/s subscription."""
    rss0 = server.rss_bytes()
    async with contextlib.AsyncExitStack() as stack:
        conns = []
        for i in range(connections):
            ws = await stack.enter_async_context(connect(url, compression=None, open_timeout=60))
            await ws.send(json.dumps({"type": "subscribe", "id": "m", "generator": "sine"}))
            conns.append(ws)
        for ws in conns:
            while orjson.loads(await ws.recv())["type"] != "subscribed":
                pass
        await asyncio.sleep(2.0)
        rss1 = server.rss_bytes()
    return {"connections": connections, "rss_before_mb": rss0 / 1e6, "rss_after_mb": rss1 / 1e6,
            "kb_per_connection": (rss1 - rss0) / connections / 1024}
