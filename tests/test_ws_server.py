"""The real server on an ephemeral port, driven by real ``websockets`` clients."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsgen import create
from wsgen.protocol import messages as P
from wsgen.protocol.encoding import decode_binary
from wsgen.server.serve import start

from servers import LOADED_LATENESS_S, async_wait_until as wait_until, running_server, test_settings  # noqa: E402  (tests/ is on sys.path under pytest)

KINDS = ["sine", "cosine", "square", "sawtooth", "triangle", "normal", "uniform", "exponential", "random",
         "random-square", "clustered", "periodic-spike", "count-per-duration"]


class Client:
    """A websockets client that files data messages by id and hands back replies."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.data: dict[str, list[dict]] = defaultdict(list)
        self.frames: list[tuple[float, dict]] = []     # (arrival wall time, data message) in order

    @staticmethod
    def decode(raw) -> dict:
        if isinstance(raw, bytes):
            f = decode_binary(raw)
            msg = {"type": "data", "id": f.id, "seq": f.seq, "t": f.t, "dt": f.dt, "values": list(f.values),
                   "binary": True}
            if f.labels is not None:
                msg["labels"] = list(f.labels)
            if f.lag:
                msg["lag"] = f.lag
            if f.skipped:
                msg["skipped"] = f.skipped
            return msg
        return orjson.loads(raw)

    async def recv(self, timeout: float = 5.0) -> dict:
        msg = self.decode(await asyncio.wait_for(self.ws.recv(), timeout))
        for data in msg["messages"] if msg["type"] == "batch" else [msg] if msg["type"] == "data" else []:
            self.data[data["id"]].append(data)
            self.frames.append((time.time(), data))
        return msg

    async def reply(self, timeout: float = 5.0) -> dict:
        """The next message that is not data (data on the way is filed)."""
        while True:
            msg = await self.recv(timeout)
            if msg["type"] not in ("data", "batch"):
                return msg

    async def request(self, message: dict | str) -> dict:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))
        return await self.reply()

    def count(self, id: str) -> int:
        return sum(len(m["values"]) for m in self.data[id])

    async def samples(self, id: str, n: int, timeout: float = 10.0) -> None:
        """Read until ``id`` has at least ``n`` samples."""
        deadline = time.monotonic() + timeout
        while self.count(id) < n:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            assert msg["type"] == "data", msg

    async def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.recv(left)
            except (asyncio.TimeoutError, TimeoutError):
                return
            assert msg["type"] == "data", msg

    def stream(self, id: str, gap_free: bool = True) -> tuple[int, np.ndarray]:
        """First seq and all values of ``id``, checking seqs are consecutive."""
        msgs = self.data[id]
        assert msgs, f"no data for {id}"
        if gap_free:
            for a, b in zip(msgs, msgs[1:]):
                assert b["seq"] == a["seq"] + len(a["values"]), (a["seq"], len(a["values"]), b["seq"])
                assert "skipped" not in b
        return msgs[0]["seq"], np.array([v for m in msgs for v in m["values"]], dtype=float)


async def open_client(url: str, **kwargs) -> Client:
    return Client(await connect(url, **kwargs))


async def hang_up(client: Client) -> None:
    """Drop the TCP connection. For clients that stopped reading a flood:
    ``close()`` would wait ``close_timeout`` for a closing handshake stuck
    behind the data (expected websockets behaviour, issue #1555)."""
    client.ws.transport.abort()
    await client.ws.wait_closed()


async def subscribe(client: Client, **fields) -> dict:
    reply = await client.request({"type": "subscribe", **fields})
    assert reply["type"] == "subscribed", reply
    return reply


def reference(name: str, params: dict, seed: int, n: int, start: int = 0):
    gen = create(name, params, seed=seed)
    if start:
        gen.seek(start)
    return gen.take(n)



@pytest.fixture
async def small_server():
    """A server with tight limits: 2 subscriptions, 1 ms smallest interval."""
    async with running_server(http_port=0, max_subscriptions=2, min_interval_s=0.001) as running:
        yield running


def server_side(server, client: Client):
    """The server's connection object for ``client``."""
    port = client.ws.local_address[1]
    [conn] = [c for c in server.ws_server.connections if c.remote_address[1] == port]
    return conn


def tiny_socket(port: int) -> socket.socket:
    """A connected client socket with a small receive buffer (no autotuning),
    so a client that stops reading backs the server up quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def stalled_client(server, **subscription) -> Client:
    """A client on a tiny socket, queueing at most one message, whose server
    side also has a tiny kernel send buffer; it stops reading after subscribing."""
    client = await open_client(server.ws_url, sock=tiny_socket(server.ws_port), max_queue=1)
    await subscribe(client, **subscription)
    server_side(server, client).transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return client


# -- subscribe, data, every message type -----------------------------------

async def test_subscribe_then_data_has_exact_sine_values(server):
    client = await open_client(server.ws_url)
    params = {"amplitude": 2.0, "frequency": 3.0, "interval": 0.005}
    reply = await subscribe(client, id="s", generator="sine", seed=1, params=params)
    assert reply == {"type": "subscribed", "id": "s", "generator": "sine", "seed": 1, "seq": 0, "speed": 1.0,
                     "backpressure": "block", "encoding": "json", "interval": 0.005, "batch": False,
                     "params": {"amplitude": 2.0, "frequency": 3.0, "phase": 0.0, "sample_rate": 100.0,
                                "interval": 0.005, "offset": 0.0}}
    await client.samples("s", 60)
    first, values = client.stream("s")
    assert first == 0
    assert np.array_equal(values, reference("sine", params, 1, len(values)).values)
    np.testing.assert_allclose(values[:4], 2 * np.sin(2 * np.pi * 3 * np.arange(4) / 100), atol=1e-12)
    m = client.data["s"][0]
    assert set(m) - {"lag"} == {"type", "id", "seq", "t", "dt", "values"} and m["dt"] == 0.005
    assert all(0 <= x.get("lag", 0) < 0.05 for x in client.data["s"])   # on time (lag: sub-tick wake-up delay)
    await client.ws.close()


async def test_every_message_type_over_the_wire(server):
    client = await open_client(server.ws_url)
    listing = await client.request({"type": "list"})
    assert listing["type"] == "generators" and listing["protocol"] == 1
    assert [g["name"] for g in listing["generators"]][:13] == KINDS
    assert all(g["params_schema"]["type"] == "object" for g in listing["generators"])

    await subscribe(client, id="a", generator="cosine", seed=2, params={"interval": 0.01})
    await client.samples("a", 3)
    upd = await client.request({"type": "update", "id": "a", "params": {"amplitude": 1}, "speed": 2})
    assert upd["type"] == "updated" and upd["id"] == "a" and upd["speed"] == 2.0
    assert upd["params"]["amplitude"] == 1.0 and upd["seq"] == client.count("a")
    paused = await client.request({"type": "pause", "id": "a"})
    assert paused == {"type": "paused", "id": "a", "seq": client.count("a")}
    resumed = await client.request({"type": "resume", "id": "a"})
    assert resumed == {"type": "resumed", "id": "a", "seq": paused["seq"]}
    await client.samples("a", paused["seq"] + 3)
    gone = await client.request({"type": "unsubscribe", "id": "a"})
    assert gone == {"type": "unsubscribed", "id": "a", "seq": client.count("a")}
    count = client.count("a")
    with pytest.raises((asyncio.TimeoutError, TimeoutError)):
        await client.recv(0.2)                                 # nothing follows "unsubscribed"
    assert client.count("a") == count
    client.stream("a")
    err = await client.request({"type": "pause", "id": "a"})
    assert err["type"] == "error" and err["code"] == P.UNKNOWN_ID and err["id"] == "a"
    await client.ws.close()


async def test_update_takes_effect_at_the_announced_seq_with_continuous_phase(server):
    client = await open_client(server.ws_url)
    params = {"interval": 0.005, "frequency": 2.0}
    await subscribe(client, id="u", generator="sine", seed=1, params=params)
    await client.samples("u", 10)
    upd = await client.request({"type": "update", "id": "u", "params": {"frequency": 7, "amplitude": 3}})
    s = upd["seq"]
    assert s >= 10 and client.count("u") <= s
    await client.samples("u", s + 40)
    first, values = client.stream("u")
    gen = create("sine", params, seed=1)
    before = gen.take(s).values
    gen.update({"frequency": 7, "amplitude": 3})
    after = gen.take(len(values) - s).values
    assert first == 0
    assert np.array_equal(values, np.concatenate([before, after]))
    # phase continuity: the phase accumulator at s is s * 2 / 100 cycles, then steps 7 / 100
    assert values[s] == pytest.approx(3 * np.sin(2 * np.pi * (s * 2 / 100 % 1)), abs=1e-9)
    assert values[s + 1] == pytest.approx(3 * np.sin(2 * np.pi * ((s * 2 / 100 + 7 / 100) % 1)), abs=1e-9)
    await client.ws.close()


async def test_pause_and_resume(server):
    client = await open_client(server.ws_url)
    await subscribe(client, id="p", generator="normal", seed=4, params={"interval": 0.005})
    await client.samples("p", 8)
    paused = await client.request({"type": "pause", "id": "p"})
    p = paused["seq"]
    assert client.count("p") == p            # everything before the pause point, nothing after
    with pytest.raises((asyncio.TimeoutError, TimeoutError)):
        await client.recv(0.3)
    t_resume = time.time()
    assert (await client.request({"type": "resume", "id": "p"}))["seq"] == p
    await client.samples("p", p + 10)
    after = [m for m in client.data["p"] if m["seq"] >= p]
    assert after[0]["seq"] == p
    assert abs(after[0]["t"] - t_resume) < 0.1                 # re-anchored at the resume, not t0 + p*dt
    assert after[0]["t"] - client.data["p"][0]["t"] > p * 0.005 + 0.25
    first, values = client.stream("p")
    assert np.array_equal(values, reference("normal", {"interval": 0.005}, 4, len(values)).values)
    await client.ws.close()


async def test_two_subscriptions_interleave_on_one_connection(server):
    client = await open_client(server.ws_url)
    await subscribe(client, id="a", generator="sine", seed=1, params={"interval": 0.01})
    await subscribe(client, id="b", generator="random", seed=2,
                    params={"data_interval": 0.02, "anomaly_probability": 0.3})
    await client.samples("b", 25)
    await client.samples("a", 40)
    order = [m["id"] for _, m in client.frames]
    assert order.index("b") < 5 and order[-6:].count("a") and order[-6:].count("b")   # interleaved
    for id, name, params, seed in [("a", "sine", {"interval": 0.01}, 1),
                                   ("b", "random", {"data_interval": 0.02, "anomaly_probability": 0.3}, 2)]:
        first, values = client.stream(id)
        ref = reference(name, params, seed, len(values))
        assert first == 0 and np.array_equal(values, ref.values)
    labels = [x for m in client.data["b"] for x in m["labels"]]
    assert labels == list(reference("random", {"data_interval": 0.02, "anomaly_probability": 0.3}, 2,
                                    len(labels)).labels)
    await client.ws.close()


# -- URL subscriptions --------------------------------------------------------

async def test_url_subscription_starts_subscribed(server):
    client = await open_client(server.ws_url + "/sine?amplitude=2&interval=0.01&seed=9")
    reply = await client.reply()
    assert reply["type"] == "subscribed" and reply["id"] == "sine" and reply["seed"] == 9
    assert reply["params"]["amplitude"] == 2.0 and reply["interval"] == 0.01
    await client.samples("sine", 10)
    first, values = client.stream("sine")
    assert first == 0 and np.array_equal(values, reference("sine", {"amplitude": 2}, 9, len(values)).values)
    # the connection takes messages as usual
    assert (await client.request({"type": "pause", "id": "sine"}))["type"] == "paused"
    await client.ws.close()


async def test_url_subscription_under_anomalies(server):
    client = await open_client(server.ws_url + "/anomalies/random?anomaly_probability=0.5&data_interval=0.01"
                               "&seed=4&backpressure=drop")
    reply = await client.reply()
    assert reply["type"] == "subscribed" and reply["id"] == "random" and reply["backpressure"] == "drop"
    await client.samples("random", 20)
    first, values = client.stream("random")
    ref = reference("random", {"anomaly_probability": 0.5}, 4, len(values))
    assert np.array_equal(values, ref.values)
    assert [x for m in client.data["random"] for x in m["labels"]] == list(ref.labels)
    await client.ws.close()


async def test_url_subscription_bad_option_is_an_error_on_an_open_connection(server):
    client = await open_client(server.ws_url + "/sine?seed=abc")
    err = await client.reply()
    assert err["type"] == "error" and err["code"] == P.INVALID_MESSAGE and err["id"] == "sine"
    assert err["details"][0]["field"] == "seed"
    assert (await client.request({"type": "list"}))["type"] == "generators"
    await client.ws.close()


async def test_url_subscription_unknown_param_names_the_params_and_the_url_options(server):
    client = await open_client(server.ws_url + "/sine?amplitud=2")
    err = await client.reply()
    assert err["type"] == "error" and err["code"] == P.INVALID_PARAMS and err["details"][0]["field"] == "amplitud"
    assert "allowed: amplitude, frequency" in err["message"]
    assert err["message"].endswith("the URL also takes the options seed, speed, backpressure, encoding, "
                                   "start_seq, count, duration, token, max_lag")
    await client.ws.close()


@pytest.mark.parametrize("path", ["/nope", "/anomalies/sine", "/anomalies/", "/sine/extra"])
async def test_unknown_path_is_404_at_handshake(server, path):
    with pytest.raises(InvalidStatus) as info:
        await connect(server.ws_url + path)
    assert info.value.response.status_code == 404
    assert server.gate.open == 0


# -- start_seq ----------------------------------------------------------------

async def test_start_seq_resumes_the_same_stream(server):
    params = {"interval": 0.002, "min_val": -5, "max_val": 5}
    one = await open_client(server.ws_url)
    await subscribe(one, id="u", generator="uniform", seed=5, params=params)
    await one.samples("u", 100)
    await one.ws.close()
    _, first_values = one.stream("u")

    two = await open_client(server.ws_url)
    reply = await subscribe(two, id="u", generator="uniform", seed=5, params=params, start_seq=60)
    assert reply["seq"] == 60
    await two.samples("u", 100)
    start, values = two.stream("u")
    assert start == 60
    assert np.array_equal(values[:40], first_values[60:100])
    assert np.array_equal(values, reference("uniform", params, 5, 60 + len(values)).values[60:])
    await two.ws.close()


# -- errors -------------------------------------------------------------------

async def test_every_error_code_over_the_wire_keeps_the_other_subscription(small_server):
    client = await open_client(small_server.ws_url)
    await subscribe(client, id="keep", generator="sine", seed=1, params={"interval": 0.005})
    await client.samples("keep", 5)
    cases = [
        ("{not json", P.INVALID_JSON, None),
        ('{"type": "pause"}', P.INVALID_MESSAGE, None),
        ('{"type": "subscribe", "id": "big", "generator": "sine", "seed": %d}' % 10**40, P.INVALID_MESSAGE, "big"),
        ({"type": "explode", "id": "x"}, P.UNKNOWN_TYPE, "x"),
        ({"type": "subscribe", "id": "g", "generator": "sinus"}, P.UNKNOWN_GENERATOR, "g"),
        ({"type": "subscribe", "id": "g", "generator": "sine", "params": {"amplitude": 1e13}}, P.INVALID_PARAMS, "g"),
        ({"type": "subscribe", "id": "g", "generator": "sine", "params": {"interval": 0.0005}}, P.INVALID_PARAMS, "g"),
        ({"type": "update", "id": "keep", "params": {"frequency": -3}}, P.INVALID_PARAMS, "keep"),
        ({"type": "resume", "id": "ghost"}, P.UNKNOWN_ID, "ghost"),
        ({"type": "subscribe", "id": "keep", "generator": "normal"}, P.DUPLICATE_ID, "keep"),
    ]
    seen = []
    for message, code, id in cases:
        err = await client.request(message)
        assert err["type"] == "error" and err["code"] == code and err["id"] == id, (message, err)
        assert err["message"]
        seen.append(code)
    err = next(e for e in [await client.request(cases[5][0])] if e)
    assert err["details"] == [{"field": "amplitude", "value": 1e13,
                               "message": "Input should be less than or equal to 1000000000000"}]
    await subscribe(client, id="second", generator="random", params={"interval": 1}, score=True)
    err = await client.request({"type": "subscribe", "id": "third", "generator": "sine"})
    assert err["code"] == P.LIMIT_REACHED and err["id"] == "third"
    seen.append(err["code"])
    err = await client.request({"type": "detect", "id": "second", "seq": 10**6})   # not sent yet
    assert err["code"] == P.OUT_OF_RANGE and err["id"] == "second"
    seen.append(err["code"])
    assert set(seen) == set(P.ERROR_CODES) - {P.INTERNAL_ERROR}   # internal_error: tests/test_ws_internal_errors.py
    # "keep" went on throughout, untouched
    n = client.count("keep")
    await client.samples("keep", n + 20)
    first, values = client.stream("keep")
    assert first == 0 and np.array_equal(values, reference("sine", {}, 1, len(values)).values)
    await client.ws.close()


async def test_message_too_big_closes_with_1009(server):
    client = await open_client(server.ws_url)
    await subscribe(client, id="s", generator="sine", params={"interval": 0.01})
    await client.ws.send(json.dumps({"type": "list", "pad": "x" * 70_000}))
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert await wait_until(lambda: server.gate.open == 0)


async def test_message_just_under_the_limit_is_an_ordinary_error(server):
    client = await open_client(server.ws_url)
    err = await client.request(json.dumps({"type": "list", "pad": "x" * 60_000}))
    assert err["code"] == P.INVALID_MESSAGE and err["details"][0]["field"] == "pad"
    await client.ws.close()


# -- pacing -------------------------------------------------------------------

async def test_20ms_stream_count_and_exact_stream_time(server):
    client = await open_client(server.ws_url)
    started = time.monotonic()
    await subscribe(client, id="p", generator="triangle", seed=1, params={"interval": 0.02})
    await client.read_for(2.0)
    elapsed = time.monotonic() - started
    expected = int(elapsed / 0.02) + 1         # never early; late by at most a loaded machine's wake-up
    assert expected - LOADED_LATENESS_S / 0.02 <= client.count("p") <= expected + 1, (client.count("p"), expected)
    first, values = client.stream("p")
    msgs = client.data["p"]
    t0 = msgs[0]["t"]
    for m in msgs:
        assert m["dt"] == 0.02
        assert m["t"] == t0 + m["seq"] * 0.02                   # exact, from the anchor, no accumulation
    # each sample arrives after its stream time and not much later
    late = [arrival - m["t"] - (len(m["values"]) - 1) * 0.02 for arrival, m in client.frames]
    assert min(late) > -0.005 and max(late) < LOADED_LATENESS_S, (min(late), max(late))
    await client.ws.close()


async def test_1ms_stream_arrives_in_ticks_not_one_message_per_sample(server):
    client = await open_client(server.ws_url)
    started = time.monotonic()
    await subscribe(client, id="f", generator="sine", params={"interval": 0.001})
    await client.read_for(1.0)
    elapsed = time.monotonic() - started
    n, messages = client.count("f"), len(client.data["f"])
    assert (elapsed - LOADED_LATENESS_S) / 0.001 <= n <= int(elapsed / 0.001) + 1, (n, elapsed)
    tick = server.settings.tick_s                      # at most one message per tick
    assert messages <= 1.2 * elapsed / tick + 10 and messages < 0.75 * n, (messages, n, tick)
    assert max(len(m["values"]) for m in client.data["f"]) >= 2
    client.stream("f")
    await client.ws.close()


async def test_speed_60_keeps_stream_time(server):
    client = await open_client(server.ws_url)
    started = time.monotonic()
    await subscribe(client, id="x", generator="sawtooth", seed=1, params={"interval": 1.0}, speed=60)
    await client.read_for(1.0)
    elapsed = time.monotonic() - started
    assert (elapsed - LOADED_LATENESS_S) * 60 <= client.count("x") <= int(elapsed * 60) + 1, (client.count("x"), elapsed)
    msgs = client.data["x"]
    t0 = msgs[0]["t"]
    assert all(m["dt"] == 1.0 and m["t"] == t0 + m["seq"] * 1.0 for m in msgs)
    last = msgs[-1]
    assert last["t"] + len(last["values"]) - 1 - t0 == client.count("x") - 1       # 60 s of stream time a second
    _, values = client.stream("x")
    assert np.array_equal(values, reference("sawtooth", {"interval": 1.0}, 1, len(values)).values)
    await client.ws.close()


async def test_speed_max_is_as_fast_as_read_with_stream_time(server):
    client = await open_client(server.ws_url)
    started = time.monotonic()
    reply = await subscribe(client, id="m", generator="random-square", seed=3, params={"data_interval": 60},
                            speed="max")
    assert reply["speed"] == "max"
    await client.samples("m", 50_000)
    assert time.monotonic() - started < 60       # 50 000 samples of 60 s: not paced (that would take 35 days)
    msgs = client.data["m"]
    t0 = msgs[0]["t"]
    assert all(m["t"] == t0 + m["seq"] * 60.0 and m["dt"] == 60.0 for m in msgs)
    _, values = client.stream("m")
    ref = reference("random-square", {"data_interval": 60}, 3, len(values))
    assert np.array_equal(values, ref.values)
    assert [x for m in msgs for x in m["labels"]] == list(ref.labels)
    await hang_up(client)


# -- backpressure -------------------------------------------------------------

async def test_backpressure_drop_skips_and_says_how_many(server):
    client = await stalled_client(server, id="d", generator="sine", seed=1, backpressure="drop",
                                  params={"interval": 2e-5})
    await asyncio.sleep(1.0)                                   # not reading: the server backs up
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not any("skipped" in m for m in client.data["d"][-20:]) \
            or len(client.data["d"]) < 3:
        await client.recv()
    for _ in range(5):
        await client.recv()
    msgs = client.data["d"]
    jumps = [(a, b) for a, b in zip(msgs, msgs[1:]) if "skipped" in b]
    assert jumps, "no data message said it skipped samples"
    for a, b in zip(msgs, msgs[1:]):
        assert b["seq"] == a["seq"] + len(a["values"]) + b.get("skipped", 0)
    a, b = max(jumps, key=lambda ab: ab[1]["skipped"])
    assert b["skipped"] > 10_000                               # most of a second of 50 000 samples/s
    gen = create("sine", {"interval": 2e-5}, seed=1)
    gen.seek(b["seq"])
    assert np.array_equal(np.array(b["values"], dtype=float), gen.take(len(b["values"])).values)
    await hang_up(client)


async def test_backpressure_block_bounds_the_buffer_and_spares_other_connections(server):
    stalled = await stalled_client(server, id="b", generator="sine", seed=1, params={"interval": 2e-5})
    conn = server_side(server, stalled)
    high = conn.transport.get_write_buffer_limits()[1]
    paced = await open_client(server.ws_url)
    started = time.monotonic()
    await subscribe(paced, id="p", generator="sine", params={"interval": 0.02})
    sizes = []

    async def watch():
        while True:
            sizes.append(conn.transport.get_write_buffer_size())
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    await paced.read_for(1.5)
    elapsed = time.monotonic() - started
    watcher.cancel()
    # the stalled connection's buffer stays near the high-water mark (+ one message)
    assert max(sizes) > 0 and max(sizes) < high + 300_000, (max(sizes), high)
    # the other connection kept its pace meanwhile
    expected = int(elapsed / 0.02) + 1
    assert expected - LOADED_LATENESS_S / 0.02 <= paced.count("p") <= expected + 1, (paced.count("p"), expected)
    late = [arrival - m["t"] - (len(m["values"]) - 1) * 0.02 for arrival, m in paced.frames]
    assert min(late) > -0.005 and max(late) < LOADED_LATENESS_S, (min(late), max(late))
    paced.stream("p")
    # block never skips: once read, the stalled stream is gap-free and shows its lag
    stalled.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    deadline = time.monotonic() + 10
    while max((m.get("lag", 0) for m in stalled.data["b"]), default=0) <= 0.5 and time.monotonic() < deadline:
        await stalled.recv()
    stalled.stream("b")
    assert max(m.get("lag", 0) for m in stalled.data["b"]) > 0.5
    await hang_up(stalled)
    await paced.ws.close()


@pytest.mark.parametrize("kind", ["pause", "unsubscribe"])
async def test_no_batched_data_after_paused_or_unsubscribed_even_when_the_pump_was_blocked(server, kind):
    # The pump may be blocked sending another subscription's data when the
    # pause arrives; samples of a batched subscription it had already taken
    # must not go out after the "paused" reply.
    client = await stalled_client(server, id="b", generator="sine", seed=1, batch=True, params={"interval": 0.001})
    await subscribe(client, id="fast", generator="sine", params={"interval": 2e-5})
    await asyncio.sleep(0.5)                                   # the pump is now stuck sending "fast"
    await client.ws.send(json.dumps({"type": kind, "id": "b"}))
    client.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    after, paused = [], None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (paused is None or len(after) < 50):
        msg = await client.recv()
        if msg["type"] == kind + "d":
            paused = msg
        elif paused is not None:
            after.append(msg)
    assert paused is not None and paused["id"] == "b"
    late = [m for m in after if m["type"] == "batch"]
    assert late == [], [(d["id"], d["seq"]) for m in late for d in m["messages"]]
    assert sum(len(d["values"]) for d in client.data["b"]) == paused["seq"]
    await hang_up(client)


# -- encodings ----------------------------------------------------------------

async def test_binary_frames_decode_to_the_json_values(server):
    client = await open_client(server.ws_url)
    params = {"data_interval": 0.005, "anomaly_probability": 0.3}
    await subscribe(client, id="j", generator="random", seed=6, params=params)
    reply = await subscribe(client, id="b", generator="random", seed=6, params=params, encoding="binary")
    assert reply["encoding"] == "binary"
    await client.samples("b", 100)
    await client.samples("j", 100)
    assert all(m.get("binary") for m in client.data["b"]) and not any(m.get("binary") for m in client.data["j"])
    _, jv = client.stream("j")
    _, bv = client.stream("b")
    n = min(len(jv), len(bv))
    assert np.array_equal(jv[:n], bv[:n])
    jl = [x for m in client.data["j"] for x in m["labels"]]
    bl = [bool(x) for m in client.data["b"] for x in m["labels"]]
    assert jl[:n] == bl[:n] and any(bl)
    t0 = client.data["b"][0]["t"]
    assert all(m["dt"] == 0.005 and m["t"] == t0 + m["seq"] * 0.005 for m in client.data["b"])
    assert np.array_equal(bv, reference("random", params, 6, len(bv)).values)
    await client.ws.close()


# -- lifecycle ----------------------------------------------------------------

async def test_disconnect_leaves_no_task_behind(server):
    await asyncio.sleep(0.05)
    before = len(asyncio.all_tasks())
    for abrupt in (False, True):
        client = await open_client(server.ws_url)
        await subscribe(client, id="a", generator="sine", params={"interval": 0.005})
        await subscribe(client, id="b", generator="normal", params={"interval": 0 if abrupt else 0.001})
        await client.samples("a", 5)
        assert server.gate.open == 1 and len(asyncio.all_tasks()) > before
        if abrupt:
            client.ws.transport.abort()
        else:
            await client.ws.close()
        assert await wait_until(lambda: server.gate.open == 0 and len(asyncio.all_tasks()) == before), \
            (server.gate.open, len(asyncio.all_tasks()), before)
    assert server.gate.per_ip == {}


async def test_shutdown_sends_1001_to_every_client():
    running = await start(test_settings(http_port=0, graceful_timeout_s=10))
    busy = await open_client(running.ws_url)
    await subscribe(busy, id="s", generator="sine", params={"interval": 0.005})
    idle = await open_client(running.ws_url)
    await busy.samples("s", 3)
    started = time.monotonic()
    await running.stop()
    assert time.monotonic() - started < 5        # everyone closed: no waiting out the 10 s of grace
    for client in (busy, idle):
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await client.recv(2)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert running.gate.open == 0


async def test_wsgen_serve_subprocess_exits_0_on_sigterm():
    script = os.path.join(os.path.dirname(sys.executable), "wsgen")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "wsgen.cli"]
    proc = subprocess.Popen(command + ["serve", "--port", "0", "--http-port", "0", "--graceful-timeout", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        match = re.search(r"wsgen: WebSocket (ws://127\.0\.0\.1:(\d+))", line)
        assert match and int(match.group(2)) != 0, line
        client = await open_client(match.group(1))
        await subscribe(client, id="s", generator="sine", seed=1, params={"interval": 0.01})
        await client.samples("s", 3)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await client.recv(3)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 15)
        assert code == 0
        assert time.monotonic() - sent < 5         # its client closed: no waiting out the 10 s of grace
        err = proc.stderr.read()
        assert "Traceback" not in err and "Error" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
