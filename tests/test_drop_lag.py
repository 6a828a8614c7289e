"""Backpressure ``drop`` bounds latency, not bytes (issue 13, part 4).

A ``drop`` subscription has ``max_lag`` (seconds, default 1): samples that
would arrive later than that behind their due time are skipped and reported
in ``skipped``, whatever sits in the buffers; ``wsgen_samples_dropped``
counts every skipped sample. Checked on the server's own stamps (``t``,
``seq``, ``lag``, ``skipped``) with a real server and client, and on the
session with a fake clock.
"""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from websockets.asyncio.client import connect

import wsgen
from wsgen.server.config import Settings
from wsgen.server.receipts import ReadReceipts
from wsgen.protocol.session import Session

pytestmark = pytest.mark.timeout(60)

MAX_LAG = 0.5


def dropped_metric(running) -> float:
    for line in running.metrics.render().decode().splitlines():
        m = re.fullmatch(r'wsgen_samples_dropped_total\{generator="sine"\} (\S+)', line)
        if m:
            return float(m[1])
    return 0.0


async def next_message(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def test_a_paused_reader_resumes_on_fresh_samples_with_the_gap_in_skipped(server):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "d", "generator": "sine", "seed": 1,
                                  "params": {"interval": 0.001}, "backpressure": "drop", "max_lag": MAX_LAG}))
        reply = await next_message(ws)
        assert reply["type"] == "subscribed" and reply["max_lag"] == MAX_LAG and reply["backpressure"] == "drop"
        received = 0
        expected_seq = 0
        skipped_reported = 0

        def check(m) -> None:
            nonlocal received, expected_seq, skipped_reported
            assert m["type"] == "data", m
            # every message: the seq continues exactly after what was sent and skipped
            assert m["seq"] == expected_seq + m.get("skipped", 0), (m["seq"], expected_seq, m.get("skipped"))
            assert m.get("lag", 0) <= MAX_LAG, m                     # never later than max_lag
            expected_seq = m["seq"] + len(m["values"])
            received += len(m["values"])
            skipped_reported += m.get("skipped", 0)

        started = time.time()
        while time.time() - started < 1.0:                          # read along for a second
            check(last := await next_message(ws))
        paused = time.time()
        await asyncio.sleep(3.0)                                     # stop reading: 3000 samples fall due
        resumed = time.time()
        stale = []
        while (m := await next_message(ws)).get("skipped", 0) < 1000:     # (not a short skip under load)
            check(m)
            stale.append(m)
        check(m)
        # what was in flight covers at most about max_lag (plus one ping interval) after the pause ...
        newest_stale = stale[-1]["t"] + (len(stale[-1]["values"]) - 1) * 0.001 if stale else last["t"]
        assert newest_stale - paused <= MAX_LAG + MAX_LAG / 4 + 0.5, (newest_stale - paused)
        # ... then the stream resumes on samples due at most max_lag before it resumed (server stamps)
        assert m["t"] >= resumed - MAX_LAG - 0.05, (m["t"] - resumed)
        assert m["skipped"] >= 3000 * 0.5                            # most of the pause was skipped
        # every skipped sample is counted, also those never reported: pause again, leave without reading
        await asyncio.sleep(1.0)
        await ws.send(json.dumps({"type": "unsubscribe", "id": "d"}))
        while (m := await next_message(ws))["type"] != "unsubscribed":
            check(m)
        assert m["seq"] >= expected_seq
        assert dropped_metric(server) == m["seq"] - received, (dropped_metric(server), m["seq"], received)
        assert dropped_metric(server) > skipped_reported             # (some were skipped after the last report)


async def test_max_lag_is_checked_and_also_a_url_option(server):
    async with connect(server.ws_url) as ws:
        for extra, field in [({"max_lag": 1.0}, "max_lag"),                           # with block: refused
                             ({"backpressure": "drop", "max_lag": 0}, "max_lag"),
                             ({"backpressure": "drop", "max_lag": 3601}, "max_lag"),
                             ({"backpressure": "drop", "max_lag": "soon"}, "max_lag")]:
            await ws.send(json.dumps({"type": "subscribe", "id": "x", "generator": "sine", **extra}))
            err = await next_message(ws)
            assert err["type"] == "error" and err["code"] == "invalid_message" and err["id"] == "x", err
            assert [d["field"] for d in err["details"]] == [field], err
        await ws.send(json.dumps({"type": "subscribe", "id": "y", "generator": "sine", "backpressure": "drop"}))
        assert (await next_message(ws))["max_lag"] == 1.0                              # the default
        await ws.send(json.dumps({"type": "subscribe", "id": "z", "generator": "sine"}))
        assert "max_lag" not in (await next_message(ws))                               # block: none
    async with connect(server.ws_url + "/sine?backpressure=drop&max_lag=0.25&interval=0.5") as ws:
        reply = await next_message(ws)
        assert reply["type"] == "subscribed" and reply["max_lag"] == 0.25


def test_samples_due_more_than_max_lag_ago_are_skipped_when_the_server_falls_behind():
    """The session on a fake clock: the server wakes 2 s late; of the 33
    samples due (1/16 s apart) those due more than max_lag = 0.25 s ago
    (seq 0..28) are skipped and the message says so."""
    now = [1000.0]
    session = Session(Settings(align_s=0), clock=lambda: now[0], wall=lambda: 1_700_000_000.0)
    drops = []
    session.on_drop = lambda name, n: drops.append((name, n))
    [reply] = session.handle(json.dumps({"type": "subscribe", "id": "d", "generator": "sine", "seed": 3,
                                         "params": {"interval": 0.0625}, "backpressure": "drop", "max_lag": 0.25}))
    assert reply["max_lag"] == 0.25
    sub = session.subscriptions["d"]
    now[0] += 2.0
    chunk = sub.take(now[0], 8192)
    assert (chunk.block.seq, len(chunk.block.values), chunk.skipped) == (29, 4, 29)
    assert chunk.lag == 0.0 and chunk.t == 1_700_000_000.0 + 29 * 0.0625
    assert drops == [("sine", 29)]
    assert chunk.block.values.tolist() == wsgen.create("sine", {"interval": 0.0625}, seed=3, start_seq=29).take(4).values.tolist()
    # a block subscription delivers everything late instead
    block = Session(Settings(align_s=0), clock=lambda: now[0])
    block.handle(json.dumps({"type": "subscribe", "id": "b", "generator": "sine", "params": {"interval": 0.0625}}))
    now[0] += 2.0
    late = block.subscriptions["b"].take(now[0], 8192)
    assert (late.block.seq, len(late.block.values), late.skipped) == (0, 33, 0)


def test_read_receipts_age_follows_pings_and_pongs():
    r = ReadReceipts()
    assert r.age(5.0) == 0.0 and not r.want_ping(5.0, 0.25)
    r.data_sent(10.0)
    assert r.age(10.5) == 0.0 and r.want_ping(10.0, 0.25)      # (0 until a first pong: a client may never answer)
    a = r.next_token()
    r.ping_sent(a, 10.0)
    r.data_sent(10.1)
    assert not r.want_ping(10.2, 0.25)           # one ping per 0.25 s at most
    assert r.want_ping(10.25, 0.25)
    b = r.next_token()
    assert a != b
    r.ping_sent(b, 10.3)
    assert not r.want_ping(11.0, 0.25)           # no data since the last ping: nothing to confirm
    r.acked(a)                                   # all before ping a was read: the oldest unread is 10.1
    assert r.answered
    assert r.age(11.0) == pytest.approx(0.9)
    r.acked(a)                                   # again: nothing changes
    assert r.age(11.0) == pytest.approx(0.9)
    r.acked(b)
    assert r.age(11.0) == 0.0 and not r.want_ping(11.0, 0.25)


async def test_the_python_client_passes_max_lag(server):
    from wsgen.client import Client, WsgenError

    async with Client(server.ws_url) as c:
        sub = await c.subscribe("sine", {"interval": 0.01}, backpressure="drop", max_lag=0.3, seed=1)
        block = await sub.take(3)
        assert block.seq == 0 and len(block) == 3
        with pytest.raises(WsgenError) as info:
            await c.subscribe("sine", {"interval": 0.01}, max_lag=0.3)            # block: refused, so it was sent
        assert info.value.code == "invalid_message" and "max_lag" in info.value.message


async def test_wsgen_sub_takes_max_lag(server):
    import subprocess
    import sys

    def sub(*extra):
        return subprocess.run([sys.executable, "-m", "wsgen.cli", "sub", "sine", "--url", server.ws_url, "--seed", "1",
                               "--interval", "0.01", "--count", "3", "-q",
                               "--amplitude", "4", "--frequency", "2", "--sample-rate", "100", *extra],
                              capture_output=True, text=True, timeout=30)

    ok = await asyncio.to_thread(sub, "--backpressure", "drop", "--max-lag", "0.5")
    assert ok.returncode == 0 and ok.stdout.splitlines() == [repr(v) for v in
                                                             wsgen.create("sine", {}, seed=1).take(3).values.tolist()]
    refused = await asyncio.to_thread(sub, "--max-lag", "0.5")                   # block: the server says why
    assert refused.returncode == 2 and "error invalid_message" in refused.stderr and "max_lag" in refused.stderr
