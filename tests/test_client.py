"""The Python client (wsgen.client) against a real server on an ephemeral port."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import wsgen
from wsgen.client import (Block, Client, ClientClosed, ConnectionLost, SyncClient, WsgenError, stream,
                          to_numpy)
from wsgen.server.serve import start

from reference import engine  # noqa: E402  (tests/ is on sys.path under pytest)
from servers import async_wait_until, test_settings  # noqa: E402


def abort_all(server) -> int:
    conns = list(server.ws_server.connections)
    for ws in conns:
        ws.transport.abort()
    return len(conns)


async def test_subscribe_values_equal_engine(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("sine", {"amplitude": 2, "interval": 0.5}, seed=1, speed="max")
        assert (sub.id, sub.generator, sub.seed) == ("sine-1", "sine", 1)
        assert sub.params["amplitude"] == 2.0 and sub.params["frequency"] == 2.0   # defaults filled in
        assert sub.interval == 0.5
        block = await sub.take(1500)
    expected, _ = engine("sine", {"amplitude": 2, "interval": 0.5}, 1, 1500)
    assert isinstance(block, Block) and block.values.dtype == np.float64 and block.values.shape == (1500,)
    np.testing.assert_array_equal(block.values, expected)
    assert block.labels is None
    np.testing.assert_array_equal(block.seqs, np.arange(1500))
    assert block.seqs.dtype == np.int64
    np.testing.assert_allclose(np.diff(block.timestamps), 0.5)
    assert block.t == block.timestamps[0]


async def test_blocks_have_properties_and_take_keeps_remainder(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("uniform", {"interval": 0.25}, seed=3, speed="max")
        first = await sub.__anext__()
        assert len(first) >= 1 and first.seq == 0
        np.testing.assert_array_equal(first.seqs, np.arange(first.seq, first.seq + len(first)))
        np.testing.assert_allclose(first.timestamps, first.t + first.dt * np.arange(len(first)))
        a = await sub.take(7)
        b = await sub.take(13)
    assert a.seq == len(first) and b.seq == len(first) + 7
    got = np.concatenate([first.values, a.values, b.values])
    expected, _ = engine("uniform", {"interval": 0.25}, 3, len(got))
    np.testing.assert_array_equal(got, expected)


async def test_labels_for_anomaly_kind(server):
    params = {"anomaly_probability": 0.2, "anomaly_range": 5.0}
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("random", params, seed=11, speed="max")
        block = await sub.take(5000)
    values, labels = engine("random", params, 11, 5000)
    assert block.labels is not None and block.labels.dtype == np.bool_
    np.testing.assert_array_equal(block.labels, labels)
    np.testing.assert_array_equal(block.values, values)
    assert 500 < block.labels.sum() < 1500


async def test_binary_encoding_identical(server):
    params = {"anomaly_magnitude": 7.5, "data_interval": 0.1}
    async with Client(server.ws_url) as c:
        j = await c.subscribe("clustered", params, seed=4, speed="max", id="as-json")
        b = await c.subscribe("clustered", params, seed=4, speed="max", encoding="binary", id="as-binary")
        assert b.encoding == "binary"
        bj, bb = await asyncio.gather(j.take(4000), b.take(4000))
    assert bb.values.flags.writeable
    np.testing.assert_array_equal(bj.values, bb.values)
    np.testing.assert_array_equal(bj.labels, bb.labels)
    values, labels = engine("clustered", params, 4, 4000)
    np.testing.assert_array_equal(bb.values, values)
    np.testing.assert_array_equal(bb.labels, labels)
    assert labels.any()


async def test_update_pause_resume_unsubscribe(server):
    params = {"interval": 0.004}
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("sine", params, seed=2)
        got = [await sub.take(30)]
        u = await sub.update(frequency=5)
        assert u >= 30 and sub.params["frequency"] == 5.0
        got.append(await sub.take(u))
        p = await sub.pause()
        assert sub.paused
        # everything generated before the pause arrives, then nothing
        while True:
            try:
                block = await asyncio.wait_for(sub.__anext__(), 0.3)
            except asyncio.TimeoutError:
                break
            got.append(block)
        all_ = Block.concat(got)
        assert all_.seqs[-1] == p - 1
        r = await sub.resume()
        assert r == p and not sub.paused
        got.append(await sub.take(40))
        end = await sub.unsubscribe()
        rest = [b async for b in sub]        # drains what was received, then ends
        got.extend(rest)
        assert sub.finished and sub.id not in c.subscriptions
        with pytest.raises(WsgenError) as info:
            await sub.update(frequency=1)
        assert info.value.code == "unknown_id"
    all_ = Block.concat(got)
    np.testing.assert_array_equal(all_.seqs, np.arange(end))
    expected, _ = engine("sine", params, 2, end, [(u, {"frequency": 5})])
    np.testing.assert_array_equal(all_.values, expected)


async def test_update_with_speed_and_dict(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("sine", {"interval": 0.01}, seed=2, speed=2)
        seq = await sub.update({"amplitude": 1.5}, speed="max")
        assert sub.speed == "max" and sub.params["amplitude"] == 1.5
        block = await sub.take(seq + 500)          # fast once unpaced
    expected, _ = engine("sine", {"interval": 0.01}, 2, seq + 500, [(seq, {"amplitude": 1.5})])
    np.testing.assert_array_equal(block.values, expected)


async def test_two_subscriptions_one_slow_consumer(server):
    """Small queues: a slow reader of one stream loses nothing of either."""
    pa, pb = {"interval": 0}, {"interval": 0, "mean": 3.0}
    async with Client(server.ws_url, queue_size=2) as c:
        a = await c.subscribe("sine", pa, seed=1, speed="max")
        b = await c.subscribe("normal", pb, seed=2, speed="max")
        assert a.id != b.id and len(c.subscriptions) == 2

        async def slow(sub, n):
            blocks, total = [], 0
            async for block in sub:
                blocks.append(block)
                total += len(block)
                await asyncio.sleep(0.002)
                if total >= n:
                    await sub.unsubscribe()    # stop reading only after stopping the stream
                    return Block.concat(blocks)

        async def fast(sub, n):
            block = await sub.take(n)
            await sub.unsubscribe()
            return block

        ba, bb = await asyncio.gather(slow(a, 20000), fast(b, 60000))
    np.testing.assert_array_equal(ba.seqs, np.arange(len(ba)))
    np.testing.assert_array_equal(ba.values, engine("sine", pa, 1, len(ba))[0])
    np.testing.assert_array_equal(bb.values, engine("normal", pb, 2, 60000)[0])


async def test_reply_does_not_deadlock_behind_full_queue(server):
    async with Client(server.ws_url, queue_size=1, request_timeout=5) as c:
        sub = await c.subscribe("sine", {"interval": 0}, seed=1, speed="max")
        await asyncio.sleep(0.2)              # the queue fills; the reader waits
        u = await sub.update(amplitude=9)     # must still get its reply
        block = await sub.take(u + 100)
    expected, _ = engine("sine", {"interval": 0}, 1, u + 100, [(u, {"amplitude": 9})])
    np.testing.assert_array_equal(block.values, expected)


async def test_list(server):
    async with Client(server.ws_url) as c:
        cat = await c.list()
    assert [g["name"] for g in cat] == [g["name"] for g in wsgen.catalogue()]
    sine = next(g for g in cat if g["name"] == "sine")
    assert sine["params_schema"]["properties"]["frequency"]["unit"] == "Hz"


async def test_errors(server):
    async with Client(server.ws_url) as c:
        with pytest.raises(WsgenError) as info:
            await c.subscribe("nosuch")
        assert info.value.code == "unknown_generator" and "sine" in info.value.message
        with pytest.raises(WsgenError) as info:
            await c.subscribe("sine", {"amplitude": "loud", "frequency": -1})
        assert info.value.code == "invalid_params"
        assert {d["field"] for d in info.value.details} == {"amplitude", "frequency"}
        assert c.subscriptions == {}
        first = await c.subscribe("sine", {"interval": 0.01}, id="x", seed=1)
        with pytest.raises(WsgenError) as info:
            await c.subscribe("cosine", id="x")
        assert info.value.code == "duplicate_id" and info.value.id == "x"
        assert c.subscriptions["x"] is first          # the original is untouched
        with pytest.raises(WsgenError) as info:
            await first.update(amplitude=float("1e20"))
        assert info.value.code == "invalid_params" and info.value.details[0]["field"] == "amplitude"
        block = await first.take(5)                    # still streaming, params unchanged
        assert first.params["amplitude"] == 4.0
        np.testing.assert_array_equal(block.values, engine("sine", {"interval": 0.01}, 1, 5)[0])
        with pytest.raises(WsgenError) as info:
            await c.subscribe("sine", speed=-3)
        assert info.value.code == "invalid_message"
    with pytest.raises(ClientClosed):
        await c.list()


async def test_error_without_id_goes_to_oldest_request_without_id():
    c = Client("ws://127.0.0.1:9")
    c._runner = asyncio.create_task(asyncio.sleep(10))     # pretend to be connected, never send
    try:
        t1 = asyncio.create_task(c._request({"type": "update", "id": "s", "params": {}}))
        t2 = asyncio.create_task(c.list())
        await asyncio.sleep(0)
        c._on_reply({"type": "error", "id": None, "code": "invalid_json", "message": "bad"})
        with pytest.raises(WsgenError) as info:
            await t2
        assert info.value.code == "invalid_json"
        assert not t1.done()
        c._on_reply({"type": "updated", "id": "s", "seq": 3, "params": {}, "speed": 1.0})
        assert (await t1)["seq"] == 3
    finally:
        c._runner.cancel()


async def test_duplicates_dropped_defensively():
    c = Client("ws://127.0.0.1:9")
    from wsgen.client import Subscription
    sub = Subscription(c, "s", "sine", {}, 1, 1.0, "block", "json", 0)

    def blk(seq, n):
        return Block(seq, 100.0 + seq, 1.0, np.arange(seq, seq + n, dtype=float), None, "s")
    for seq, n in [(0, 10), (5, 10), (3, 4), (15, 5), (12, 3)]:
        sub._deliver(blk(seq, n))
    block = await sub.take(20)
    np.testing.assert_array_equal(block.seqs, np.arange(20))
    np.testing.assert_array_equal(block.values, np.arange(20.0))
    np.testing.assert_array_equal(block.timestamps, 100.0 + np.arange(20.0))


def test_backoff_bounds():
    c = Client(backoff_base=0.1, backoff_cap=5.0)
    for attempt, full in [(1, 0.1), (2, 0.2), (3, 0.4), (7, 5.0), (40, 5.0)]:
        delays = [c._backoff(attempt) for _ in range(200)]
        assert min(delays) >= full / 2 and max(delays) <= full
        assert len(set(delays)) > 1          # jittered


async def test_reconnect_after_abort_resumes_without_gap(server):
    params = {"interval": 0.002, "amplitude": 2.0}
    async with Client(server.ws_url, backoff_base=0.02, backoff_cap=0.1) as c:
        sub = await c.subscribe("sine", params, seed=5)
        blocks, total, drops, u = [], 0, 0, None
        async for block in sub:
            blocks.append(block)
            total += len(block)
            if drops == 0 and total >= 80:
                assert abort_all(server) == 1
                drops = 1
            elif drops == 1 and u is None and c.reconnects >= 1:
                u = await sub.update(amplitude=3.0)     # current params must survive the next drop
            elif drops == 1 and u is not None and total >= u + 50:
                assert abort_all(server) == 1
                drops = 2
            if drops == 2 and total >= u + 250:
                break
        assert c.reconnects >= 2
        assert sub.params["amplitude"] == 3.0 and len(server.ws_server.connections) == 1
    got = Block.concat(blocks)
    np.testing.assert_array_equal(got.seqs, np.arange(len(got)))
    expected, _ = engine("sine", params, 5, len(got), [(u, {"amplitude": 3.0})])
    np.testing.assert_array_equal(got.values, expected)


async def test_reconnect_after_server_restart_on_same_port():
    params = {"interval": 0.002}
    s1 = await start(test_settings(http_port=0, graceful_timeout_s=1))
    port = s1.ws_port
    s2 = None
    c = Client(s1.ws_url, backoff_base=0.05, backoff_cap=0.2)
    await c.connect()
    try:
        sub = await c.subscribe("normal", params, seed=9, id="n")
        paused = await c.subscribe("sine", {"interval": 0.002}, seed=1, id="p")
        first = await sub.take(100)
        before = await paused.take(10)
        p = await paused.pause()
        await s1.stop()                      # clients get 1001 "going away"
        await asyncio.sleep(0.4)             # a few refused attempts
        assert not c.connected
        s2 = await start(test_settings(port=port, http_port=0, graceful_timeout_s=1))
        rest = await asyncio.wait_for(sub.take(400), 10)
        assert c.reconnects == 1 and c.connected
        assert paused.paused                 # re-paused after re-subscribing
        await asyncio.sleep(0.1)
        held = paused.next_seq
        await asyncio.sleep(0.1)
        assert paused.next_seq == held       # nothing new while paused
        assert await paused.resume() >= p
        after = await paused.take(p - 10 + 20)
    finally:
        await c.close()
        if s2 is not None:
            await s2.stop()
    got = Block.concat([first, rest])
    np.testing.assert_array_equal(got.seqs, np.arange(500))
    np.testing.assert_array_equal(got.values, engine("normal", params, 9, 500)[0])
    got = Block.concat([before, after])
    np.testing.assert_array_equal(got.seqs, np.arange(p + 20))
    np.testing.assert_array_equal(got.values, engine("sine", {"interval": 0.002}, 1, p + 20)[0])


async def test_no_reconnect_raises_connection_lost(server):
    async with Client(server.ws_url, reconnect=False) as c:
        sub = await c.subscribe("sine", {"interval": 0.01}, seed=1)
        await sub.take(3)
        abort_all(server)
        with pytest.raises(ConnectionLost):
            async for _ in sub:
                pass
        with pytest.raises(ConnectionLost):
            await c.list()
        assert c.reconnects == 0


async def test_deliberate_close_does_not_reconnect(server):
    c = Client(server.ws_url, backoff_base=0.01)
    await c.connect()
    sub = await c.subscribe("sine", {"interval": 0.01}, seed=1)
    await sub.take(2)
    await c.close()
    rest = [b async for b in sub]                  # iteration ends, no exception: what had arrived, in order
    seqs = np.concatenate([np.arange(2)] + [b.seqs for b in rest])
    np.testing.assert_array_equal(seqs, np.arange(len(seqs)))
    assert await async_wait_until(lambda: len(server.ws_server.connections) == 0)
    await asyncio.sleep(0.2)                       # and it stays closed: no reconnect after a close()
    assert c.reconnects == 0 and len(server.ws_server.connections) == 0


async def test_first_connection_failure_raises():
    s = await start(test_settings(http_port=0))
    url = s.ws_url
    await s.stop()
    with pytest.raises(OSError):
        async with Client(url):
            pass


# -- sync API (run in a worker thread so the test's loop keeps serving) ---------

async def test_to_numpy(server):
    params = {"anomaly_probability": 0.1}
    values, labels, seqs, timestamps = await asyncio.to_thread(to_numpy, server.ws_url, "random", 3000,
                                                               params, 7)
    ev, el = engine("random", params, 7, 3000)
    np.testing.assert_array_equal(values, ev)
    np.testing.assert_array_equal(labels, el)
    np.testing.assert_array_equal(seqs, np.arange(3000))
    np.testing.assert_allclose(np.diff(timestamps), 1.0)     # data_interval, whatever the speed
    v2, l2, _, _ = await asyncio.to_thread(to_numpy, server.ws_url, "sine", 10, None, 1)
    assert l2 is None
    np.testing.assert_array_equal(v2, engine("sine", {}, 1, 10)[0])


async def test_stream_iterator_closes_cleanly(server):
    def consume():
        got = []
        it = stream(server.ws_url, "sine", {"interval": 0.002}, seed=2, encoding="binary", queue_size=8)
        for block in it:
            got.append(block)
            if sum(map(len, got)) >= 50:
                break
        it.close()
        return Block.concat(got)

    block = await asyncio.to_thread(consume)
    np.testing.assert_array_equal(block.values, engine("sine", {"interval": 0.002}, 2, len(block))[0])
    assert await async_wait_until(lambda: len(server.ws_server.connections) == 0)
    # the sync client's own thread is gone (the server's build pool, wsgen-build, is the server's)
    assert await async_wait_until(lambda: not [t for t in threading.enumerate()
                                               if t.name.startswith("wsgen-") and not t.name.startswith("wsgen-build")])


async def test_sync_client(server):
    def work():
        with SyncClient(server.ws_url) as c:
            names = [g["name"] for g in c.list()]
            sub = c.subscribe("square", {"interval": 0.002}, seed=1)
            a = sub.take(20)
            u = sub.update(amplitude=2)
            b = sub.take(u)
            with pytest.raises(WsgenError):
                c.subscribe("nosuch")
            end = sub.unsubscribe()
            rest = list(sub)
            return names, Block.concat([a, b, *rest]), u, end

    names, block, u, end = await asyncio.to_thread(work)
    assert "square" in names
    np.testing.assert_array_equal(block.seqs, np.arange(end))
    expected, _ = engine("square", {"interval": 0.002}, 1, end, [(u, {"amplitude": 2})])
    np.testing.assert_array_equal(block.values, expected)



async def test_sync_call_given_up_is_cancelled_in_the_clients_thread(server):
    # what Ctrl-C does to a waiting call: the call is cancelled where it runs; the client goes on
    def work():
        with SyncClient(server.ws_url) as c:
            sub = c.subscribe("sine", {"interval": 0.5}, seed=1)
            with pytest.raises(TimeoutError):
                c._call(sub.subscription.take, 1000, timeout=0.3)     # 1000 samples at 2 a second: not in 0.3 s
            names = [g["name"] for g in c.list()]
            end = sub.unsubscribe()
            return names, end, c.client.connected
    names, end, connected = await asyncio.to_thread(work)
    assert "sine" in names and end >= 1 and connected


# -- compositions ------------------------------------------------------------------

COMPOSITION = {
    "interval": 0.002,
    "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 3.0, "sample_rate": 50}, "offset": 5.0},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [{"kind": "spike", "placement": {"mode": "random", "probability": 0.05}, "height": 4.0}],
    "faults": {"nulls": {"placement": {"mode": "random", "probability": 0.03}},
               "gaps": {"placement": {"mode": "random", "probability": 0.02}, "max_length": 3},
               "duplicates": {"placement": {"mode": "random", "probability": 0.03}},
               "out_of_order": {"placement": {"mode": "random", "probability": 0.03}, "max_delay": 3},
               "jitter": {"placement": {"mode": "random", "probability": 0.05}, "max_jitter": 0.0005}},
}


def composition_engine(n_slots, seed=5):
    from wsgen.engine.composite import create_composite
    return create_composite(COMPOSITION, seed=seed).take(n_slots)


async def test_composition_blocks_carry_seqs_ts_and_events(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe(COMPOSITION, seed=5, speed="max")
        assert sub.composition and sub.generator == "composite" and sub.id == "composite-1"
        assert sub.params["faults"]["nulls"]["placement"]["probability"] == 0.03   # full spec from the server
        block = await sub.take(600)
        with pytest.raises(ValueError):
            await c.subscribe(COMPOSITION, {"amplitude": 1})
    ref = composition_engine(1000)
    np.testing.assert_array_equal(block.seqs, ref.seqs[:600])
    np.testing.assert_array_equal(block.values, ref.values[:600])        # NaN where nulls hit
    np.testing.assert_array_equal(block.labels, ref.labels[:600])
    assert np.isnan(block.values).any() and (np.diff(block.seqs) <= 0).any() and (np.diff(block.seqs) > 1).any()
    t0 = block.timestamps[0] - ref.offsets[0]
    np.testing.assert_allclose(block.timestamps - t0, ref.offsets[:600], atol=1e-6)   # jitter included
    kinds = {e["kind"] for e in block.events}
    assert {"spike", "null", "gap", "duplicate", "out-of-order", "jitter"} <= kinds
    assert len({e["id"] for e in block.events}) == len(block.events)


async def test_composition_reconnect_resumes_exact_delivery(server):
    async with Client(server.ws_url, backoff_base=0.02, backoff_cap=0.1) as c:
        sub = await c.subscribe(COMPOSITION, seed=5)
        blocks, total, drops = [], 0, 0
        async for block in sub:
            blocks.append(block)
            total += len(block)
            if total >= 80 * (drops + 1) and drops < 2 and c.reconnects == drops:
                assert abort_all(server) == 1
                drops += 1
            if drops == 2 and total >= 400:
                break
        assert c.reconnects >= 2
    got = Block.concat(blocks)
    ref = composition_engine(2 * len(got) + 100)
    np.testing.assert_array_equal(got.seqs, ref.seqs[:len(got)])          # duplicates kept, nothing repeated
    np.testing.assert_array_equal(got.values, ref.values[:len(got)])


async def test_composition_dedup_by_slot_unit():
    c = Client("ws://127.0.0.1:9")
    from wsgen.client import Subscription
    sub = Subscription(c, "s", {"interval": 1.0}, {}, 1, 1.0, "block", "json", 0)

    def blk(slot, seqs):
        seqs = np.asarray(seqs, dtype=np.int64)
        return Block(slot, 0.0, 1.0, seqs.astype(float), None, "s", explicit_seqs=seqs,
                     explicit_timestamps=seqs.astype(float), events=[{"id": slot, "kind": "x", "first": slot, "last": slot}])
    sub._deliver(blk(0, [0, 1, 1, 2]))       # duplicate 1 kept
    sub._deliver(blk(4, [4, 3]))             # out of order kept
    assert sub.subscribe_message()["start_seq"] == 4 and "params" not in sub.subscribe_message()
    sub._deliver(blk(4, [4]))                # resumed at slot 4: already have 2 samples from there
    sub._deliver(blk(5, [3, 5, 6]))          # slot 5: 1 more to skip ("3"), then new
    block = await sub.take(7)
    np.testing.assert_array_equal(block.seqs, [0, 1, 1, 2, 4, 3, 5])
    assert [e["id"] for e in block.events] == [0, 4, 5]


@pytest.mark.parametrize("status, attempts, message", [
    (403, 1, "server refused the reconnection: HTTP 403"),          # 4xx: final at once
    (503, 3, "after 3 attempts"),                                   # 5xx: retried until the attempts run out
    (None, 3, "after 3 attempts")])                                 # nothing listening: likewise
async def test_reconnection_stops_on_a_4xx_or_after_max_attempts(status, attempts, message):
    from http import HTTPStatus

    from websockets.asyncio.server import serve
    state = {"refuse": False, "handshakes": 0}

    def process_request(connection, request):
        state["handshakes"] += 1
        if state["refuse"]:
            return connection.respond(HTTPStatus(status), "no\n")
        return None

    async def handler(ws):
        await ws.recv()          # never answers; the test drops it
    server = await serve(handler, "127.0.0.1", 0, process_request=process_request)
    port = server.sockets[0].getsockname()[1]
    c = Client(f"ws://127.0.0.1:{port}", backoff_base=0.01, backoff_cap=0.02, max_reconnect_attempts=3)
    await c.connect()
    try:
        state["refuse"] = True
        if status is None:
            server.close()
            await server.wait_closed()
        else:
            for ws in list(server.connections):
                ws.transport.abort()
        with pytest.raises(ConnectionLost, match=message):
            await asyncio.wait_for(c.list(), 10)
        with pytest.raises(ConnectionLost, match=message):
            await c.list()                                      # and it stays lost
        assert c.reconnects == 0 and not c.connected
        if status is not None:
            assert state["handshakes"] == 1 + attempts
    finally:
        await c.close()
        server.close()
