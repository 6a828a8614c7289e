"""`batch: true` subscriptions: their data share frames, nothing else changes."""
from __future__ import annotations

import json

import numpy as np
from websockets.asyncio.client import connect

import wsgen


async def test_batched_subscriptions_share_frames_with_exact_gap_free_data(server):
    async with connect(server.ws_url) as ws:
        for k in range(5):
            await ws.send(json.dumps({"type": "subscribe", "id": f"s{k}", "generator": "sine", "seed": k,
                                      "params": {"interval": 0.01, "amplitude": k + 1}, "batch": True}))
        await ws.send(json.dumps({"type": "subscribe", "id": "solo", "generator": "cosine",
                                  "params": {"interval": 0.01}}))
        acks, values, frames_with_many = 0, {}, 0
        while min((len(v) for v in values.values()), default=0) < 40 or len(values) < 6:
            frame = json.loads(await ws.recv())
            if frame["type"] == "subscribed":
                acks += 1
                assert frame["batch"] is (frame["id"] != "solo")
                continue
            if frame["type"] == "batch":
                assert all(m["type"] == "data" and m["id"] != "solo" for m in frame["messages"])
                frames_with_many += len(frame["messages"]) > 1
                messages = frame["messages"]
            else:
                assert frame["type"] == "data" and frame["id"] == "solo"   # unbatched: its own frames
                messages = [frame]
            for m in messages:
                assert m["seq"] == len(values.get(m["id"], []))            # gap-free, in order
                values.setdefault(m["id"], []).extend(m["values"])
    assert acks == 6 and frames_with_many > 0
    for k in range(5):
        ref = wsgen.create("sine", {"interval": 0.01, "amplitude": k + 1}, seed=k).take(40).values
        np.testing.assert_array_equal(np.array(values[f"s{k}"][:40]), ref)


async def test_batch_with_binary_encoding_is_refused_and_connection_goes_on(server):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "b", "generator": "sine", "batch": True,
                                  "encoding": "binary"}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "invalid_message" and err["id"] == "b"
        assert err["details"][0]["field"] == "batch"
        await ws.send(json.dumps({"type": "subscribe", "id": "b", "generator": "sine", "batch": True}))
        assert json.loads(await ws.recv())["type"] == "subscribed"


async def test_fast_subscriptions_of_a_connection_share_wake_ups(server):
    """Subscribed at scattered moments, five 10 ms streams still fall due
    together (the connection's pacing grid): about 100 frames a second of
    five messages each, not up to 500 frames of one or two."""
    import asyncio
    import time
    async with connect(server.ws_url) as ws:
        for k in range(5):
            await ws.send(json.dumps({"type": "subscribe", "id": f"s{k}", "generator": "sine", "seed": k,
                                      "params": {"interval": 0.01}, "batch": True}))
            await asyncio.sleep(0.0031)
        sizes, seqs, t_end = [], {}, None
        while t_end is None or time.monotonic() < t_end:
            frame = json.loads(await ws.recv())
            if frame["type"] != "batch":
                assert frame["type"] == "subscribed"
                continue
            if t_end is None:
                t_end = time.monotonic() + 1.0
            sizes.append(len(frame["messages"]))
            for m in frame["messages"]:
                assert m["seq"] == seqs.get(m["id"], 0)                 # gap-free, in order
                seqs[m["id"]] = m["seq"] + len(m["values"])
    assert 10 <= len(sizes) <= 125, len(sizes)      # ~100 wake-ups a second, fewer on a loaded machine
    assert sum(s == 5 for s in sizes) >= 0.9 * len(sizes), sizes
    for k in range(5):
        ref = wsgen.create("sine", {"interval": 0.01}, seed=k).take(seqs[f"s{k}"]).values
        assert len(ref) >= 10
