"""Fan-out's fast path (wsgen.protocol.fanout) through a real server and a
real client: many plain subscriptions on one connection, mixed with general
ones, under updates of parameters and speed (to "max" and back),
pause/resume, unsubscribe then resubscribe with the same id, seeds and
start_seq. From the client side every plain subscription's data must be
what the general path sends: consecutive seqs, the values of a fresh
generator with the same updates at the reported seqs, the stream time of
docs/protocol.md, lag >= 0, and the ordering guarantees; /metrics counts
what arrived."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import socket
import struct
import time

import numpy as np
import pytest
import requests
import websockets
from servers import ServeProcess

from wsgen.engine import create

pytestmark = pytest.mark.timeout(60)

PLAIN_KINDS = [("sine", {"amplitude": 2.0, "frequency": 3.0}), ("square", {"frequency": 2.0}),
               ("normal", {}), ("uniform", {}), ("pulse", {}), ("steps", {}), ("seasonal", {}),
               ("pattern", {"values": [0.0, 1.0, 2.5, -1.0], "samples_per_value": 3, "interpolation": "linear"})]
GENERAL = [  # (subscribe message extras) general subscriptions sharing the connection
    {"generator": "triangle", "encoding": "binary"},
    {"generator": "sawtooth", "batch": True},
    {"generator": "cosine", "backpressure": "drop"},
    {"generator": "random-walk"},
    {"generator": "triangle", "count": 150},
]


class Stream:
    """What the client saw of one subscription (from subscribed to unsubscribed)."""

    def __init__(self, msg: dict) -> None:
        self.sub = msg
        self.next_seq = msg["seq"]
        self.interval = msg["interval"]
        self.rows: list[tuple[int, float, float, list]] = []   # of each data message: seq, t, dt, values
        self.updates: list[dict] = []      # updated replies, in order
        self.marks: list[tuple[str, int]] = []   # ("paused"/"resumed"/"updated", seq): stream-time anchors
        self.paused = False
        self.closed = False


def check(stream: Stream, kind: str, params: dict) -> int:
    """Assert a plain subscription's data; returns its samples."""
    sub = stream.sub
    gen = create(kind, params, seed=sub["seed"], start_seq=sub["seq"])
    assert gen.render_ahead > 1
    ups = list(stream.updates)
    anchors = {seq for mark, seq in stream.marks if mark == "anchor"} | {sub["seq"]}
    expected_dt = sub["interval"]
    prev = None
    rows = stream.rows
    want = np.empty(sum(len(r[3]) for r in rows))
    cuts = [u["seq"] - sub["seq"] for u in ups] + [len(want)]
    start = 0
    for cut, u in zip(cuts, [None] + ups):
        if u is not None:
            gen.update({k: v for k, v in u["changes"].items() if k != "speed"})
        if cut > start:
            want[start:cut] = gen.take(cut - start).values
        start = max(start, cut)
    got = np.array([v for r in rows for v in r[3]])
    bad = np.flatnonzero(got != want)
    assert not len(bad), (sub["id"], [(i + sub["seq"], got[i], want[i]) for i in bad[:5]])
    for seq, t, dt, values in rows:
        while ups and ups[0]["seq"] <= seq:
            assert ups[0]["seq"] == seq, (sub["id"], seq, ups[0])   # the first data after updated
            expected_dt = ups.pop(0)["params"]["interval"]
        assert dt == expected_dt, (sub["id"], seq, dt, expected_dt)
        if prev is None or seq in anchors:
            prev = (seq, t)      # started, resumed or re-timed: sample seq is stamped t0 (docs/protocol.md)
        else:                    # t0 + (n - n0) * interval, exactly
            assert t == prev[1] + (seq - prev[0]) * dt, (sub["id"], seq, t, prev, dt)
    return len(got)


async def _scenario(url: str, seed: int) -> tuple[int, dict[str, int]]:
    rnd = random.Random(seed)
    streams: dict[str, list[Stream]] = {}
    kinds: dict[str, tuple[str, dict]] = {}
    pending_changes: dict[str, list[dict]] = {}
    counts = {"messages": 0, "samples": 0}
    async with websockets.connect(url, max_size=None, compression=None, ping_interval=None) as ws:
        done = asyncio.Event()

        async def reader() -> None:
            try:
                await read(ws)
            except BaseException:
                done.set()
                raise

        async def read(ws) -> None:
            async for raw in ws:
                if isinstance(raw, bytes):
                    counts["messages"] += 1
                    continue
                msg = json.loads(raw)
                typ, sid = msg["type"], msg.get("id")
                if typ == "generators":
                    done.set()
                    continue
                if typ == "batch":
                    counts["messages"] += 1
                    continue
                if sid not in kinds:          # a general subscription: counted only
                    if typ == "data":
                        counts["messages"] += 1
                    continue
                cur = streams[sid][-1] if streams.get(sid) else None
                if typ == "subscribed":
                    streams.setdefault(sid, []).append(Stream(msg))
                elif typ == "data":
                    assert cur is not None and not cur.closed and not cur.paused, msg
                    assert msg["seq"] == cur.next_seq, (msg, cur.next_seq)
                    assert len(msg["values"]) >= 1 and msg.get("lag", 0) >= 0, msg
                    assert set(msg) <= {"type", "id", "seq", "t", "dt", "values", "lag"}, msg
                    cur.rows.append((msg["seq"], msg["t"], msg["dt"], msg["values"]))
                    cur.next_seq += len(msg["values"])
                    counts["messages"] += 1
                    counts["samples"] += len(msg["values"])
                elif typ == "updated":
                    assert msg["seq"] == cur.next_seq, (msg, cur.next_seq)
                    changes = pending_changes[sid].pop(0)
                    retimed = "speed" in changes or msg["params"]["interval"] != cur.interval
                    cur.interval = msg["params"]["interval"]
                    cur.updates.append({**msg, "changes": changes})
                    cur.marks.append(("anchor" if retimed else "updated", msg["seq"]))
                elif typ in ("paused", "resumed", "unsubscribed"):
                    assert msg["seq"] == cur.next_seq, (msg, cur.next_seq)
                    cur.marks.append(("anchor" if typ == "resumed" else typ, msg["seq"]))
                    cur.paused = typ == "paused"
                    cur.closed = typ == "unsubscribed"
                elif typ == "error":
                    raise AssertionError(msg)


        task = asyncio.create_task(reader())
        ids = [f"p{i}" for i in range(40)]
        for i, sid in enumerate(ids):
            kind, params = PLAIN_KINDS[i % len(PLAIN_KINDS)]
            params = {**params, "interval": rnd.choice([0.005, 0.01, 0.02])}
            kinds[sid] = (kind, params)
            pending_changes[sid] = []
            await ws.send(json.dumps({"type": "subscribe", "id": sid, "generator": kind, "params": params,
                                      "seed": 1000 + i, "start_seq": rnd.choice([0, 0, 7, 123456])}))
        for j, extra in enumerate(GENERAL):
            await ws.send(json.dumps({"type": "subscribe", "id": f"g{j}", "params": {"interval": 0.01},
                                      **extra}))
        for step in range(150):
            await asyncio.sleep(rnd.uniform(0, 0.03))
            sid = rnd.choice(ids)
            kind, _ = kinds[sid]
            action = rnd.random()
            if action < 0.3:
                changes = {"interval": rnd.choice([0.004, 0.01, 0.015])}
                if kind in ("sine", "square"):
                    changes["frequency"] = rnd.choice([1.0, 5.0])
                if kind == "sine":
                    changes["amplitude"] = rnd.choice([0.5, 3.0])
                msg = {"type": "update", "id": sid, "params": changes}
                if rnd.random() < 0.4:
                    msg["speed"] = rnd.choice([1, 3, 0.5])
                pending_changes[sid].append({**changes, **({"speed": msg["speed"]} if "speed" in msg else {})})
                await ws.send(json.dumps(msg))
            elif action < 0.45:
                pending_changes[sid].append({"speed": "max"})
                await ws.send(json.dumps({"type": "update", "id": sid, "speed": "max"}))
                await asyncio.sleep(rnd.uniform(0, 0.005))
                pending_changes[sid].append({"speed": rnd.choice([1, 2])})
                await ws.send(json.dumps({"type": "update", "id": sid, "speed": pending_changes[sid][-1]["speed"]}))
            elif action < 0.65:
                await ws.send(json.dumps({"type": "pause", "id": sid}))
                await asyncio.sleep(rnd.uniform(0, 0.05))
                await ws.send(json.dumps({"type": "resume", "id": sid}))
            elif action < 0.8:
                await ws.send(json.dumps({"type": "unsubscribe", "id": sid}))
                kind, params = kinds[sid]
                await ws.send(json.dumps({"type": "subscribe", "id": sid, "generator": kind, "params": params,
                                          "seed": rnd.randrange(1 << 32), "start_seq": rnd.choice([0, 99])}))
        for sid in ids:
            pending_changes[sid].append({"speed": 1})
            await ws.send(json.dumps({"type": "update", "id": sid, "speed": 1}))
            await ws.send(json.dumps({"type": "unsubscribe", "id": sid}))
        for j in range(len(GENERAL)):
            await ws.send(json.dumps({"type": "unsubscribe", "id": f"g{j}"}))
        await ws.send(json.dumps({"type": "list"}))
        await asyncio.wait_for(done.wait(), 30)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    total = 0
    by_kind: dict[str, int] = {}
    for sid, ss in streams.items():
        for s in ss:
            n = check(s, *kinds[sid])
            total += n
            by_kind[kinds[sid][0]] = by_kind.get(kinds[sid][0], 0) + n
    assert total > 1000
    return counts["messages"], by_kind


@pytest.mark.parametrize("seed", [1])
def test_plain_subscriptions_mixed_with_general_ones_under_changes(seed, tmp_path):
    log = tmp_path / "server.log"
    with open(log, "w") as err, ServeProcess(stderr=err) as srv:
        messages, samples = asyncio.run(_scenario(srv.url, seed))
        text = requests.get(srv.http_url + "/metrics", timeout=10).text
    sent = {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^wsgen_samples_sent_total\{generator="([^"]+)",path="ws"\} (\S+)$', text, re.MULTILINE)}
    # every message of the connection (plain, general, batch, binary) and every plain sample, exactly
    assert float(re.search(r'^wsgen_messages_sent_total\{path="ws"\} (\S+)$', text, re.MULTILINE).group(1)) == messages
    assert {k: sent[k] for k in samples} == samples
    assert "Traceback" not in log.read_text()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))


class RawClient:
    """A WebSocket client on a plain blocking socket with a small receive
    buffer: when it does not read, nothing does (no library reading ahead)."""

    def __init__(self, url: str, rcvbuf: int = 16384) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, msg: dict) -> None:
        payload, mask = json.dumps(msg).encode(), os.urandom(4)
        n = len(payload)
        head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "closed"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> dict:
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._need(2), "big")
        elif n == 127:
            n = int.from_bytes(self._need(8), "big")
        payload = self._need(n)
        assert b0 == 0x81, (b0, payload[:100])      # one text frame a message
        return json.loads(payload)


def _slow_reader(url: str, pid: int) -> tuple[list[int], list[int], dict[str, list[int]]]:
    """50 plain subscriptions at 1000 samples/s each on a client that stops
    reading for 3 s, then reads everything."""
    ids = [f"s{i}" for i in range(50)]
    seqs: dict[str, list[int]] = {i: [] for i in ids}
    rss, sizes = [], []
    ws = RawClient(url)
    for i, sid in enumerate(ids):
        ws.send({"type": "subscribe", "id": sid, "generator": "sine", "seed": i, "params": {"interval": 0.001}})
    for _ in range(6):          # not reading
        time.sleep(0.5)
        rss.append(_rss_kb(pid))
    for sid in ids:
        ws.send({"type": "unsubscribe", "id": sid})
    left = set(ids)
    while left:
        msg = ws.recv()
        if msg["type"] == "data":
            seqs[msg["id"]].extend(range(msg["seq"], msg["seq"] + len(msg["values"])))
            assert msg.get("lag", 0) >= 0
            sizes.append(len(msg["values"]))
        elif msg["type"] == "unsubscribed":
            assert msg["seq"] == len(seqs[msg["id"]])
            left.discard(msg["id"])
    # a client that goes away without a close frame, mid-stream, unread data in its buffer
    bye = RawClient(url)
    for sid in ids:
        bye.send({"type": "subscribe", "id": sid, "generator": "square", "params": {"interval": 0.001}})
    time.sleep(0.5)
    bye.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # RST
    bye.sock.close()
    ws.sock.close()
    time.sleep(0.5)
    return rss, sizes, seqs


def test_slow_reader_blocks_the_plain_subscriptions_then_an_abrupt_disconnect(tmp_path):
    log = tmp_path / "server.log"
    with open(log, "w") as err, ServeProcess(stderr=err) as srv:
        rss, sizes, seqs = _slow_reader(srv.url, srv.pid)
        text = requests.get(srv.http_url + "/metrics", timeout=10).text
    # block: the server waited for the reader (nothing dropped, nothing repeated) ...
    for sid, got in seqs.items():
        assert got == list(range(len(got))), sid
    # ... and held what it could not send in bounded memory: while the client did
    # not read, the 50 streams fell 50,000 samples (~3.5 MB of JSON) a second behind
    assert max(rss) - rss[0] < 20_000, rss
    # it took the samples late, when the client read again (each stream's backlog
    # then goes in one message: ``lag`` is its last sample's), not on time into a buffer
    assert max(sizes) >= 1000, max(sizes)
    assert "wsgen_samples_dropped_total" not in text or re.search(
        r'^wsgen_samples_dropped_total\{[^}]*\} [1-9]', text, re.MULTILINE) is None
    assert "Traceback" not in log.read_text()


async def test_only_plain_subscriptions_all_paused_then_resumed_and_a_general_one_added(server):
    """A connection of plain subscriptions only wakes as loop callbacks; with
    every one paused nothing is due (no timer at all), and a message wakes
    it: resume goes on gap-free, and a general subscription added later is
    served beside them."""
    async with websockets.connect(server.ws_url) as ws:
        for i in range(3):
            await ws.send(json.dumps({"type": "subscribe", "id": f"p{i}", "generator": "sine", "seed": i,
                                      "params": {"interval": 0.005}}))
        seen: dict[str, list[int]] = {}

        async def until(pred):
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if msg["type"] == "data":
                    assert "p" not in msg["id"] or seen.get(msg["id"], [msg["seq"] - 1])[-1] == msg["seq"] - 1
                    seen.setdefault(msg["id"], []).extend(range(msg["seq"], msg["seq"] + len(msg["values"])))
                if pred(msg):
                    return msg

        await until(lambda m: all(len(seen.get(f"p{i}", [])) >= 5 for i in range(3)))
        paused = {}
        for i in range(3):
            await ws.send(json.dumps({"type": "pause", "id": f"p{i}"}))
        for i in range(3):
            reply = await until(lambda m: m["type"] == "paused")
            paused[reply["id"]] = reply["seq"]
        counts = {k: len(v) for k, v in seen.items()}
        await asyncio.sleep(0.3)
        for i in range(3):
            await ws.send(json.dumps({"type": "resume", "id": f"p{i}"}))
        await ws.send(json.dumps({"type": "subscribe", "id": "g", "generator": "random-walk", "seed": 1,
                                  "params": {"interval": 0.005}}))
        await until(lambda m: all(len(seen.get(k, [])) >= counts.get(k, 0) + 5 for k in ("p0", "p1", "p2", "g")))
        for i in range(3):
            s = seen[f"p{i}"]
            assert s == list(range(s[0], s[0] + len(s)))        # no gap, no repeat across the pause
            assert s[counts[f"p{i}"]] == paused[f"p{i}"]         # resumed at the seq the pause named
        assert seen["g"][:5] == [0, 1, 2, 3, 4]
