"""Compositions over a real WebSocket server: values, labels, events and
faults as a strict JSON client sees them."""
from __future__ import annotations

import json
import math

import numpy as np
from websockets.asyncio.client import connect

import wsgen
from wsgen.engine.composite import create_composite, preset

SPEC = {
    "interval": 0.0,
    "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 1.0, "sample_rate": 50}, "offset": 10.0},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [{"kind": "spike", "placement": {"mode": "indices", "indices": [5, 40]}, "height": 7.0},
                  {"kind": "flatline", "placement": {"mode": "indices", "indices": [100]},
                   "min_length": 10, "max_length": 10}],
    "faults": {"nulls": {"placement": {"mode": "indices", "indices": [20]}},
               "gaps": {"placement": {"mode": "indices", "indices": [30]}, "min_length": 3, "max_length": 3}},
}


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


async def collect(ws, sub_id: str, slots: int) -> list[dict]:
    out, seen = [], 0
    while seen < slots:
        msg = strict_loads(await ws.recv())
        if msg["type"] == "data" and msg["id"] == sub_id:
            out.append(msg)
            seen = msg["seq"] + (msg["seqs"][-1] - msg["seq"] + 1 if msg.get("seqs") else len(msg["values"]))
    return out


async def test_composition_stream_matches_engine_with_events_and_faults(server):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "c", "generator": SPEC, "seed": 9, "speed": "max"}))
        ack = strict_loads(await ws.recv())
        assert ack["type"] == "subscribed" and ack["generator"] == "composite" and ack["seed"] == 9
        msgs = await collect(ws, "c", 200)
    seqs = np.concatenate([m["seqs"] for m in msgs])
    values = np.array([np.nan if v is None else v for m in msgs for v in m["values"]])
    labels = np.concatenate([m["labels"] for m in msgs])
    n = len(seqs[seqs < 200])
    engine = create_composite(SPEC, seed=9).take(200)
    np.testing.assert_array_equal(seqs[:n], engine.seqs)
    np.testing.assert_array_equal(labels[:n], engine.labels)
    np.testing.assert_array_equal(values[:n], engine.values)      # NaN == NaN for assert_array_equal
    assert 20 in seqs and math.isnan(values[list(seqs).index(20)])  # null fault arrives as JSON null
    assert not {30, 31, 32} & set(seqs.tolist())                    # gap: those seqs never sent
    events = {(e["kind"], e["first"], e["last"]) for m in msgs for e in m["events"]}
    assert {("spike", 5, 5), ("spike", 40, 40), ("flatline", 100, 109), ("gap", 30, 32), ("null", 20, 20)} <= events


async def test_preset_composition_equals_original_kind_over_the_wire(server):
    async with connect(server.ws_url) as ws:
        spec = preset("random", {"anomaly_probability": 0.3}).model_dump()
        spec["interval"] = 0.0
        await ws.send(json.dumps({"type": "subscribe", "id": "p", "generator": spec, "seed": 4, "speed": "max"}))
        await ws.send(json.dumps({"type": "subscribe", "id": "o", "generator": "random", "seed": 4, "speed": "max",
                                  "params": {"anomaly_probability": 0.3, "data_interval": 0}}))
        got: dict[str, list] = {"p": [], "o": []}
        while min(sum(len(m["values"]) for m in v) for v in got.values()) < 500:
            msg = strict_loads(await ws.recv())
            if msg["type"] == "data":
                got[msg["id"]].append(msg)
    for key in got:
        got[key] = (np.concatenate([m["values"] for m in got[key]])[:500],
                    np.concatenate([m["labels"] for m in got[key]])[:500])
    np.testing.assert_array_equal(got["p"][0], got["o"][0])
    np.testing.assert_array_equal(got["p"][1], got["o"][1])
    ref = wsgen.create("random", {"anomaly_probability": 0.3}, seed=4).take(500)
    np.testing.assert_array_equal(got["o"][0], ref.values)


async def test_composition_errors_name_the_field_and_connection_goes_on(server):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "bad", "generator": {"base": {"kind": "sine"},
                                  "anomalies": [{"kind": "spike", "placement": {"mode": "random", "probability": 2}}]}}))
        err = strict_loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "invalid_params" and err["id"] == "bad"
        assert any("probability" in d["field"] for d in err["details"])
        await ws.send(json.dumps({"type": "subscribe", "id": "bin", "generator": {"base": {"kind": "sine"}},
                                  "encoding": "binary"}))
        err = strict_loads(await ws.recv())
        assert err["code"] == "invalid_message" and err["details"][0]["field"] == "encoding"
        await ws.send(json.dumps({"type": "list"}))
        cat = strict_loads(await ws.recv())
        assert set(cat["composition"]["presets"]) == set(wsgen.ANOMALY_KINDS)
        assert "properties" in cat["composition"]["schema"]


async def test_composition_live_update_of_noise_keeps_anomalies(server):
    spec = {"interval": 0.0, "base": {"kind": "constant", "params": {"value": 1.0}},
            "anomalies": [{"kind": "spike", "placement": {"mode": "random", "probability": 0.05}, "height": 5.0}]}
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "u", "generator": spec, "seed": 3, "speed": 1000}))
        assert strict_loads(await ws.recv())["type"] == "subscribed"
        await ws.send(json.dumps({"type": "update", "id": "u", "params": {"noise": {"kind": "uniform", "low": -0.1, "high": 0.1}}}))
        labels, updated_seq = [], None
        while updated_seq is None or len(labels) < updated_seq + 300:
            msg = strict_loads(await ws.recv())
            if msg["type"] == "updated":
                updated_seq = msg["seq"]
                assert msg["params"]["noise"]["kind"] == "uniform"
            elif msg["type"] == "data":
                labels.extend(msg["labels"])
    reference = create_composite(spec, seed=3).take(len(labels))
    np.testing.assert_array_equal(np.array(labels), reference.labels)   # noise never moves the anomalies


async def test_composition_start_seq_beyond_its_bound_is_refused_quickly(server):
    from wsgen.engine.composite import MAX_START_SEQ
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "far", "generator": {"base": {"kind": "sine"}},
                                  "start_seq": MAX_START_SEQ + 1}))
        err = strict_loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "invalid_params"
        assert err["details"][0]["field"] == "start_seq"
