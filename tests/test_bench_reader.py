"""wsgen.bench.reader: the load generator's lean WebSocket reader against a real server."""
from __future__ import annotations

import asyncio
import json

import orjson
import pytest

import wsgen
from servers import running_server
from wsgen.bench.reader import LeanConnection


async def test_reads_every_data_message_in_order_and_answers_the_servers_pings():
    # pings every 0.2 s with a 0.5 s timeout: a reader that did not answer
    # them would be closed (1011) long before the 2 s below are over
    async with running_server(ping_interval_s=0.2, ping_timeout_s=0.5) as srv:
        got: list[dict] = []
        stamps: list[float] = []

        def on_text(payload: bytes, now: float) -> None:
            got.append(orjson.loads(payload))
            stamps.append(now)

        conn = await LeanConnection.open(f"ws://127.0.0.1:{srv.ws_port}/", on_text)
        conn.send_text(json.dumps({"type": "subscribe", "id": "a", "generator": "sawtooth", "seed": 3,
                                   "params": {"interval": 0.05, "amplitude": 2.0, "frequency": 1.0}}))
        await asyncio.sleep(2.0)
        assert not conn.closed.done()
        conn.close()
        await asyncio.wait_for(conn.closed, 10)

    assert got[0]["type"] == "subscribed" and got[0]["id"] == "a"
    data = [m for m in got if m["type"] == "data"]
    seqs = [s for m in data for s in range(m["seq"], m["seq"] + len(m["values"]))]
    assert len(seqs) >= 20 and seqs == list(range(len(seqs)))      # no gap, no repeat, in order
    # exactly the engine's samples (sawtooth at the default 100 Hz sample rate: 2 * n / 100 at first)
    values = [v for m in data for v in m["values"]]
    assert values[:5] == [0.0, 0.02, 0.04, 0.06, 0.08]
    engine = wsgen.create("sawtooth", {"interval": 0.05, "amplitude": 2.0, "frequency": 1.0}, seed=3)
    assert values == engine.take(len(values)).values.tolist()
    # the stamp of a read is never before the stream time of what it completed
    for m, now in zip(got[1:], stamps[1:]):
        if m["type"] == "data":
            assert now >= m["t"] + (len(m["values"]) - 1) * m["dt"] - 1e-6


async def test_a_refused_handshake_raises_connection_error():
    async with running_server(token="s3cret") as srv:
        with pytest.raises(ConnectionError, match="handshake refused"):
            await LeanConnection.open(f"ws://127.0.0.1:{srv.ws_port}/", lambda payload, now: None, timeout=10)


async def test_wss_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="ws:// only"):
        await LeanConnection.open("wss://127.0.0.1:1/", lambda payload, now: None)
