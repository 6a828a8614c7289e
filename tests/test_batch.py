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
        acks, values, seqs, frames_with_many = 0, {}, {}, 0
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
