"""Compositions with several channels: the engine (exact and statistical),
validation, and every transport (WebSocket, HTTP formats, the Python
client, ``wsgen sub``) against a real server."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
import requests
from websockets.asyncio.client import connect

from wsgen.client import Client
from wsgen.engine.composite import Composite, create_composite, validate_spec
from wsgen.engine.params import InvalidParams

pytestmark = pytest.mark.timeout(120)

K = 8
CORR = [[0.7 ** abs(i - j) for j in range(K)] for i in range(K)]
SENSORS = {
    "interval": 0.01,
    "channels": "s1..s8",
    "base": {"kind": "sine", "params": {"amplitude": 1.0, "frequency": 0.5, "sample_rate": 100}},
    "noise": {"kind": "normal", "std_dev": 0.2, "correlation": CORR},
    "anomalies": [{"kind": "level-shift", "channels": ["s3"], "height": 5.0,
                   "placement": {"mode": "indices", "indices": [5000]}, "min_length": 201, "max_length": 201}],
}
# faults, own bases, gain / offset, stateful and random injectors: everything that could break splits
RICH = {
    "interval": 0.5,
    "channels": ["x", "y", "z"],
    "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 1.0, "sample_rate": 50}, "offset": 10.0,
             "trend": 0.01},
    "bases": {"z": {"kind": "random-walk", "params": {"volatility": 0.5}}},
    "gain": [1, 2, 0.5],
    "offset": {"y": -3},
    "noise": {"kind": "normal", "std_dev": [0.1, 0.2, 0.3], "correlation": [[1, 0.5, 0.2], [0.5, 1, 0.1], [0.2, 0.1, 1]]},
    "anomalies": [{"kind": "spike", "channels": ["x", "z"], "placement": {"mode": "random", "probability": 0.02},
                   "height": {"low": 3, "high": 5}},
                  {"kind": "flatline", "channels": ["y"], "placement": {"mode": "indices", "indices": [100, 300]},
                   "min_length": 10, "max_length": 30},
                  {"kind": "noisy-cluster", "placement": {"mode": "gaps", "min_gap": 40, "max_gap": 80}}],
    "faults": {"nulls": {"placement": {"mode": "indices", "indices": [20]}},
               "gaps": {"placement": {"mode": "indices", "indices": [30]}, "min_length": 3, "max_length": 3},
               "duplicates": {"placement": {"mode": "indices", "indices": [50]}},
               "out_of_order": {"placement": {"mode": "indices", "indices": [60]}, "max_delay": 2}},
}


def plain(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "anomalies"}


# -- the engine -----------------------------------------------------------------------

def test_level_shift_on_sensor_3_from_5000_to_5200_exactly():
    n = 8000
    block = create_composite(SENSORS, seed=11).take(n)
    clean = create_composite(plain(SENSORS), seed=11).take(n)
    assert block.values.shape == (n, K) and block.labels.shape == (n, K)
    assert block.channels == tuple(f"s{i}" for i in range(1, 9))
    expected = np.zeros((n, K), bool)
    expected[5000:5201, 2] = True
    np.testing.assert_array_equal(block.labels, expected)
    # the shift is + 5 on s3 over the window, bit for bit; everything else untouched
    shifted = clean.values.copy()
    shifted[5000:5201, 2] += 5.0
    np.testing.assert_array_equal(block.values, shifted)
    assert block.events == [{"id": 5000 * 32, "kind": "level-shift", "first": 5000, "last": 5200, "channels": ["s3"]}]


def test_noise_has_the_requested_correlation_and_spread():
    spec = {"interval": 0.01, "channels": "s1..s8", "noise": {"std_dev": [0.5 + 0.25 * i for i in range(K)],
                                                               "correlation": CORR}}
    x = create_composite(spec, seed=3).take(200_000).values
    # standard error of a sample correlation r: (1 - r^2) / sqrt(n) <= 0.0023 here
    np.testing.assert_allclose(np.corrcoef(x.T), CORR, atol=0.012)
    np.testing.assert_allclose(x.std(axis=0), spec["noise"]["std_dev"], rtol=0.01)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=0.02)


def test_splits_and_start_seq_are_bit_identical():
    n = 3000
    whole = create_composite(RICH, seed=5).take(n)
    g = create_composite(RICH, seed=5)
    rng = np.random.default_rng(0)
    parts, got = [], 0
    while got < n:
        m = int(min(rng.choice([1, 2, 7, 64, 513]), n - got))
        parts.append(g.take(m))
        got += m
    np.testing.assert_array_equal(np.concatenate([p.values for p in parts]), whole.values)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), whole.labels)
    np.testing.assert_array_equal(np.concatenate([p.seqs for p in parts]), whole.seqs)
    # the seqs after start_seq (past the faults' hold-back) are the same samples
    late = create_composite(RICH, seed=5, start_seq=1000).take(n - 1000)
    i = int(np.searchsorted(whole.seqs, 1000))
    np.testing.assert_array_equal(late.seqs, whole.seqs[i:])
    np.testing.assert_array_equal(late.values, whole.values[i:])
    np.testing.assert_array_equal(late.labels, whole.labels[i:])


def test_faults_hit_every_channel_and_injectors_only_theirs():
    b = create_composite(RICH, seed=5).take(400)
    seqs = b.seqs.tolist()
    row = seqs.index(20)
    assert np.isnan(b.values[row]).all() and b.labels[row].all()          # a null fault: the whole sample
    assert not {30, 31, 32} & set(seqs)                                     # a gap: the whole sample
    assert seqs.count(50) == 2                                              # a duplicate
    by_kind = {}
    for e in b.events:
        by_kind.setdefault(e["kind"], []).append(e)
    assert all(e["channels"] == ["x", "z"] for e in by_kind["spike"])
    assert [e["channels"] for e in by_kind["flatline"]] == [["y"], ["y"]]
    assert all(e["channels"] == ["x", "y", "z"] for e in by_kind["noisy-cluster"] + by_kind["null"] + by_kind["gap"])
    fault_rows = np.zeros(len(seqs), bool)
    for e in by_kind["null"] + by_kind.get("duplicate", []) + by_kind.get("out-of-order", []):
        fault_rows |= (b.seqs >= e["first"]) & (b.seqs <= e["last"])
    for c, name in enumerate(("x", "y", "z")):
        mine = np.zeros(len(seqs), bool)
        for e in b.events:
            if e["kind"] not in ("null", "gap", "duplicate", "out-of-order", "jitter") and name in e["channels"]:
                mine |= (b.seqs >= e["first"]) & (b.seqs <= e["last"])
        np.testing.assert_array_equal(b.labels[:, c], mine | fault_rows)
    # a flatline on y holds y's value before it; x and z go on
    f = by_kind["flatline"][0]
    rows = [seqs.index(s) for s in range(f["first"], f["last"] + 1)]
    assert len(set(b.values[rows, 1].tolist())) == 1
    assert b.values[rows[0] - 1, 1] == b.values[rows[0], 1]
    assert len(set(b.values[rows, 0].tolist())) == len(rows)


def test_shared_base_gain_offset_and_own_bases():
    spec = {"interval": 0.1, "channels": ["a", "b", "c", "d"],
            "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 0.3, "sample_rate": 10}},
            "gain": {"b": 2.0}, "offset": [0, 3.0, 0, 0],
            "bases": {"c": {"kind": "normal", "params": {}}, "d": {"kind": "normal", "params": {}}}}
    x = create_composite(spec, seed=2).take(500).values
    base = Composite({"interval": 0.1, "base": spec["base"]}, seed=2).take(500).values
    np.testing.assert_array_equal(x[:, 0], base)
    np.testing.assert_array_equal(x[:, 1], base * 2.0 + 3.0)
    assert not np.array_equal(x[:, 2], x[:, 3])                      # own bases draw from their own seeds
    assert abs(np.corrcoef(x[:, 2], x[:, 3])[0, 1]) < 0.15


def test_one_channel_equals_the_plain_composition():
    spec = {"interval": 0.1, "base": {"kind": "normal", "params": {}},
            "anomalies": [{"kind": "spike"}, {"kind": "level-shift", "placement": {"mode": "gaps"}}],
            "faults": {"nulls": {}, "gaps": {}}}
    a = Composite(spec, seed=5).take(3000)
    c = create_composite({**spec, "channels": ["x"]}, seed=5).take(3000)
    np.testing.assert_array_equal(c.values[:, 0], a.values)
    np.testing.assert_array_equal(c.labels[:, 0], a.labels)
    np.testing.assert_array_equal(c.seqs, a.seqs)
    assert [{k: v for k, v in e.items() if k != "channels"} for e in c.events] == a.events


def test_live_update_from_seq_any_split_and_as_if_given_from_the_start():
    spec = {"interval": 0.1, "channels": ["x", "y", "z"],
            "base": {"kind": "sine", "params": {"amplitude": 2, "frequency": 0.3, "sample_rate": 10}},
            "bases": {"z": {"kind": "normal", "params": {}}},
            "noise": {"std_dev": 0.1, "correlation": [[1, .5, 0], [.5, 1, 0], [0, 0, 1]]},
            "anomalies": [{"kind": "spike", "channels": ["x"], "placement": {"mode": "indices", "indices": [50, 150]},
                           "height": 7},
                          {"kind": "flatline", "channels": ["z"], "placement": {"mode": "indices", "indices": [120]},
                           "min_length": 5, "max_length": 5}]}
    changes = {"offset": {"y": 10}, "gain": [1, 2, 1], "noise": {"std_dev": [0.1, 0.5, 0.1]},
               "anomalies": [{"channels": ["y"]}, {}]}

    def run(sizes):
        g, out, got, i = create_composite(spec, seed=3), [], 0, 0
        while got < 300:
            if got == 100:
                g.update(changes)
            m = min(sizes[i % len(sizes)], (100 if got < 100 else 300) - got)
            out.append(g.take(m))
            got, i = got + m, i + 1
        return np.concatenate([b.values for b in out]), np.concatenate([b.labels for b in out])

    v1, l1 = run([1, 7, 64])
    v2, l2 = run([300])
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(l1, l2)
    assert [np.flatnonzero(l1[:, c]).tolist() for c in range(3)] == [[50], [150], list(range(120, 125))]
    fresh = {**spec, "offset": {"y": 10}, "gain": [1, 2, 1],
             "noise": {**spec["noise"], "std_dev": [0.1, 0.5, 0.1]},
             "anomalies": [{**spec["anomalies"][0], "channels": ["y"]}, spec["anomalies"][1]]}
    b = create_composite(fresh, seed=3).take(300)
    np.testing.assert_array_equal(v1[100:], b.values[100:])
    np.testing.assert_array_equal(l1[100:], b.labels[100:])
    expected_x = b.values[:100, 0].copy()
    expected_x[50] += 7.0                                                # x kept its spike before the update
    np.testing.assert_array_equal(v1[:100, 0], expected_x)


@pytest.mark.parametrize("spec,field", [
    ({"channels": ["x", "y"], "noise": {"correlation": [[1, 0.5], [0.4, 1]]}}, "noise.correlation.0.1"),
    ({"channels": ["x", "y"], "noise": {"correlation": [[1, 1.5], [1.5, 1]]}}, "noise.correlation.0.1"),
    ({"channels": ["x", "y"], "noise": {"correlation": [[0.9, 0.5], [0.5, 1]]}}, "noise.correlation.0.0"),
    ({"channels": ["x", "y", "z"], "noise": {"correlation": [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]}},
     "noise.correlation"),
    ({"channels": ["x", "y"], "noise": {"correlation": [[1, 0.5]]}}, "noise.correlation"),
    ({"channels": ["x", "y"], "noise": {"std_dev": [1, 2, 3]}}, "noise.std_dev"),
    ({"channels": ["x", "x"]}, "channels.1"),
    ({"channels": ["x", "label_y"]}, "channels.1"),
    ({"channels": "a1..b3"}, "channels"),
    ({"channels": []}, "channels"),
    ({"channels": ["x"], "gain": [1, 2]}, "gain"),
    ({"channels": ["x"], "offset": {"q": 1}}, "offset.q"),
    ({"channels": ["x"], "bases": {"q": {}}}, "bases.q"),
    ({"channels": ["x", "y"], "bases": {"y": {"kind": "sine", "params": {"frequency": -1}}}}, "bases.y.params.frequency"),
    ({"channels": ["x"], "anomalies": [{"kind": "spike", "channels": ["q"]}]}, "anomalies.0.channels"),
    ({"channels": ["x"], "anomalies": [{"kind": "spike", "height": {"low": 3, "high": 1}}]}, "anomalies.0.height.low"),
    ({"channels": ["x"], "anomalies": [{"kind": "frequency-change"}]}, "anomalies.0.kind"),   # constant base
    ({"channels": ["x", "y"], "bases": {"y": {"kind": "normal"}}, "base": {"kind": "sine"},
      "anomalies": [{"kind": "frequency-change", "channels": ["y"]}]}, "anomalies.0.kind"),
    ({"channels": ["x", "y"], "noise": {"kind": "uniform", "low": [0, 2], "high": 1}}, "noise.low.1"),
    ({"channels": ["x", "y"], "noise": {"kind": "uniform", "low": 2}}, "noise.low"),
    ({"channels": ["x", "y"], "noise": {"kind": "uniform", "high": [1, 2, 3]}}, "noise.high"),
    ({"channels": ["x", "y"], "noise": {"kind": "uniform", "correlation": [[1, 0], [0, 1]]}}, "noise.correlation"),
    ({"channels": ["x"], "noise": {"kind": "pink"}}, "noise.kind"),
])
def test_invalid_specs_are_refused_naming_the_field(spec, field):
    with pytest.raises(InvalidParams) as exc:
        validate_spec(spec)
    assert field in [d["field"] for d in exc.value.details], exc.value.details


FREQ = {
    "interval": 0.01,
    "channels": ["x", "y", "z"],
    "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 1.5, "sample_rate": 100}},
    "bases": {"z": {"kind": "random-walk"}},
    "gain": [1, 2.5, 1],
    "offset": {"y": 4},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [{"kind": "frequency-change", "channels": ["y"], "factor": 3.0,
                   "placement": {"mode": "indices", "indices": [40, 150]}, "min_length": 30, "max_length": 30},
                  {"kind": "spike", "channels": ["z"], "height": 9.0, "placement": {"mode": "indices", "indices": [100]}}],
}


def test_frequency_change_on_one_channel_exactly():
    # y = 2.5 * sine + 4 + noise; over its events the sine runs 3 times faster
    # (phase-continuous at the event start): + 2.5 * (warped - sine), nothing else changes
    from wsgen.engine import create
    from wsgen.engine.parts import warped_waveform
    n = 300
    block = create_composite(FREQ, seed=5).take(n)
    clean = create_composite({**FREQ, "anomalies": FREQ["anomalies"][1:]}, seed=5).take(n)
    expected_labels = np.zeros((n, 3), bool)
    expected_labels[40:70, 1] = expected_labels[150:180, 1] = expected_labels[100, 2] = True
    np.testing.assert_array_equal(block.labels, expected_labels)
    assert [(e["kind"], e["first"], e["last"], e["channels"]) for e in block.events] == [
        ("frequency-change", 40, 69, ["y"]), ("spike", 100, 100, ["z"]), ("frequency-change", 150, 179, ["y"])]
    np.testing.assert_array_equal(block.values[:, [0, 2]], clean.values[:, [0, 2]])   # x, z untouched
    sine = create("sine", FREQ["base"]["params"], seed=5)
    base = sine.take(n).values
    expected = clean.values[:, 1].copy()
    for s in (40, 150):
        expected[s:s + 30] += 2.5 * (warped_waveform(sine, s, 3.0, s, 30) - base[s:s + 30])
    np.testing.assert_array_equal(block.values[:, 1], expected)
    # during an event y follows 2.5 * 2 sin(2 pi (1.5 s + 4.5 (k - s)) / 100) + 4, noise aside
    k = np.arange(40, 70)
    cycles = (1.5 * 40 + 4.5 * (k - 40)) / 100
    np.testing.assert_allclose(block.values[40:70, 1] - 4 - (clean.values[40:70, 1] - 4 - 2.5 * base[40:70]),
                               2.5 * 2.0 * np.sin(2 * np.pi * cycles), atol=1e-9)
    # any block split gives the same bits
    g = create_composite(FREQ, seed=5)
    parts = [g.take(m) for m in (1, 44, 3, 100, 152)]
    np.testing.assert_array_equal(np.concatenate([b.values for b in parts]), block.values)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in parts]), block.labels)


def test_frequency_change_on_a_single_channel_equals_the_composition_without_channels():
    single = {"interval": 0.01, "base": FREQ["base"], "anomalies": [
        {k: v for k, v in FREQ["anomalies"][0].items() if k != "channels"}]}
    a = create_composite({**single, "channels": ["x"]}, seed=2).take(200)
    b = create_composite(single, seed=2).take(200)
    assert a.values[:, 0].tobytes() == b.values.tobytes()
    np.testing.assert_array_equal(a.labels[:, 0], b.labels)


def test_frequency_change_may_target_only_the_waveform_channels():
    # z has a random-walk base: fine while the injector does not target it
    create_composite(FREQ, seed=1)
    with pytest.raises(InvalidParams) as exc:
        create_composite({**FREQ, "anomalies": [{**FREQ["anomalies"][0], "channels": ["y", "z"]}]}, seed=1)
    details = exc.value.details
    assert [d["field"] for d in details] == ["anomalies.0.kind"] and "random-walk" in details[0]["message"]


UNIFORM = {"interval": 0.01, "channels": ["a", "b", "c"], "base": {"kind": "constant", "params": {"value": 1.0}},
           "gain": [1, 1, 3], "noise": {"kind": "uniform", "low": [-1, 0, 10], "high": [1, 0.5, 10]},
           "anomalies": [{"kind": "level-shift", "channels": ["b"], "height": 5.0,
                          "placement": {"mode": "indices", "indices": [100]}, "min_length": 10, "max_length": 10}]}


def test_uniform_noise_per_channel_exactly_and_statistically():
    from wsgen.engine.base import RandomStream
    n = 100_000
    block = create_composite(UNIFORM, seed=8).take(n)
    lows, highs, gains = [-1.0, 0.0, 10.0], [1.0, 0.5, 10.0], [1.0, 1.0, 3.0]
    for c in range(3):
        u = RandomStream(8, (2, 1 + c), draws=2).uniforms(0, n)[:, 0]    # the channel's noise stream, first uniform
        expected = gains[c] * 1.0 + (lows[c] + (highs[c] - lows[c]) * u)
        if c == 1:
            expected[100:110] += 5.0
        assert block.values[:, c].tobytes() == expected.tobytes()
    noise = block.values.copy()
    noise[100:110, 1] -= 5.0
    noise -= np.array(gains)
    assert np.all(noise[:, 2] == 10.0)                                   # low = high: no spread
    for c in (0, 1):
        x = (noise[:, c] - lows[c]) / (highs[c] - lows[c])
        assert x.min() >= 0 and x.max() < 1
        assert stats.kstest(x, "uniform").pvalue > 1e-4
    assert abs(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]) < 5 / np.sqrt(n)   # independent channels
    expected_labels = np.zeros((n, 3), bool)
    expected_labels[100:110, 1] = True
    np.testing.assert_array_equal(block.labels, expected_labels)
    g = create_composite(UNIFORM, seed=8)
    parts = np.concatenate([g.take(m).values for m in (1, 999, 7, 98_993)])
    assert parts.tobytes() == block.values.tobytes()


def test_noise_kind_changes_live_on_the_same_draws():
    spec = {"interval": 0.01, "channels": ["a", "b"], "noise": {"kind": "normal", "std_dev": 1.0}}
    g = create_composite(spec, seed=4)
    first = g.take(50).values
    g.update({"noise": {"kind": "uniform", "low": 0.0, "high": [1.0, 2.0]}})
    second = g.take(50).values
    np.testing.assert_array_equal(first, create_composite(spec, seed=4).take(50).values)
    uniform = create_composite({**spec, "noise": {"kind": "uniform", "low": 0.0, "high": [1.0, 2.0]}}, seed=4)
    np.testing.assert_array_equal(second, uniform.take(100).values[50:])


def test_channel_range_and_round_trip():
    spec = validate_spec({"channels": "temp_1..temp_3", "noise": {"std_dev": 2}})
    assert spec.channels == ["temp_1", "temp_2", "temp_3"]
    assert spec.noise.std_dev == [2.0, 2.0, 2.0] and spec.gain == [1.0] * 3 and spec.offset == [0.0] * 3
    again = validate_spec(spec.model_dump())
    assert again.model_dump() == spec.model_dump()


# -- the wire ----------------------------------------------------------------------------

WIRE = {**RICH, "interval": 0.0}
N = 300


async def test_websocket_values_and_labels_are_one_array_per_channel(server):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "c", "generator": WIRE, "seed": 9, "speed": "max",
                                  "count": N}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "subscribed" and ack["params"]["channels"] == ["x", "y", "z"]
        msgs = []
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "data":
                msgs.append(msg)
            elif msg["type"] == "ended":
                break
    assert all(len(m["values"]) == 3 and len(m["labels"]) == 3 for m in msgs)
    values = np.concatenate([np.array(m["values"], dtype=float) for m in msgs], axis=1).T   # null -> nan
    labels = np.concatenate([np.array(m["labels"], dtype=bool) for m in msgs], axis=1).T
    seqs = np.concatenate([m["seqs"] for m in msgs])
    engine = create_composite(WIRE, seed=9).take(N)
    np.testing.assert_array_equal(seqs, engine.seqs)
    np.testing.assert_array_equal(values, engine.values)
    np.testing.assert_array_equal(labels, engine.labels)
    events = {e["id"]: e for m in msgs for e in m["events"]}
    assert sorted(events.values(), key=lambda e: (e["first"], e["id"])) == engine.events


async def test_websocket_refuses_binary_score_and_bad_updates_and_goes_on(server):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "b", "generator": WIRE, "encoding": "binary"}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["details"][0]["field"] == "encoding"
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": WIRE, "score": {}}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["details"][0]["field"] == "score", err
        await ws.send(json.dumps({"type": "subscribe", "id": "bad", "generator": {"channels": ["x", "y"], "noise": {
            "correlation": [[1, 2], [2, 1]]}}}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and "noise.correlation.0.1" in [d["field"] for d in err["details"]]
        await ws.send(json.dumps({"type": "subscribe", "id": "u", "generator": {**WIRE, "interval": 1.0}}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        for params, field in (({"channels": ["x", "y"]}, "channels"),
                              ({"noise": {"correlation": [[1, 0, 0], [0, 1, 0], [0, 0.5, 1]]}}, "noise.correlation.1.2")):
            await ws.send(json.dumps({"type": "update", "id": "u", "params": params}))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] != "data":
                    break
            assert msg["type"] == "error" and field in [d["field"] for d in msg["details"]], msg
        await ws.send(json.dumps({"type": "update", "id": "u", "params": {"offset": {"y": 10}}}))
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] != "data":
                break
        assert msg["type"] == "updated" and msg["params"]["offset"] == [0.0, 10.0, 0.0], msg
        await ws.send(json.dumps({"type": "unsubscribe", "id": "u"}))
        while json.loads(await ws.recv())["type"] == "data":
            pass


async def test_python_client_gives_samples_by_channels(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe(WIRE, seed=9, speed="max")
        block = await sub.take(N)
        assert sub.channels == ["x", "y", "z"]
    engine = create_composite(WIRE, seed=9).take(N + 10)
    assert block.values.shape == (N, 3) and block.labels.shape == (N, 3)
    np.testing.assert_array_equal(block.seqs, engine.seqs[:N])
    np.testing.assert_array_equal(block.values, engine.values[:N])
    np.testing.assert_array_equal(block.labels, engine.labels[:N])
    assert {e["id"] for e in block.events} <= {e["id"] for e in engine.events}


@pytest.fixture(scope="module")
def srv(threaded_server):
    return threaded_server


def http(srv, fmt: str) -> requests.Response:
    r = requests.post(srv.http_url + "/composite", params={"seed": 9, "speed": "max", "count": N, "format": fmt},
                      json=WIRE, timeout=20)
    assert r.status_code == 200, r.text
    return r


def test_http_ndjson_and_sse_have_a_field_per_channel(srv):
    engine = create_composite(WIRE, seed=9).take(N)
    rows = [json.loads(line) for line in http(srv, "ndjson").text.splitlines()]
    sse = [json.loads(line[6:]) for line in http(srv, "sse").text.splitlines() if line.startswith("data: {\"seq")]
    for got in (rows, sse):
        assert [r["seq"] for r in got] == engine.seqs.tolist()
        assert list(got[0]) == ["seq", "t", "x", "y", "z", "label_x", "label_y", "label_z", "events"]
        values = np.array([[np.nan if r[c] is None else r[c] for c in "xyz"] for r in got])
        np.testing.assert_array_equal(values, engine.values)
        np.testing.assert_array_equal(np.array([[r[f"label_{c}"] for c in "xyz"] for r in got]), engine.labels)
    spikes = [r for r in rows if any(e["kind"] == "spike" for e in r["events"])]
    assert spikes and all(e["channels"] == ["x", "z"] for r in spikes for e in r["events"] if e["kind"] == "spike")


def test_http_csv_and_text(srv):
    engine = create_composite(WIRE, seed=9).take(N)
    table = list(csv.reader(io.StringIO(http(srv, "csv").text)))
    assert table[0] == ["seq", "t", "x", "y", "z", "label_x", "label_y", "label_z", "events"]
    body = table[1:]
    assert [int(r[0]) for r in body] == engine.seqs.tolist()
    np.testing.assert_array_equal(np.array([[float(v) if v else np.nan for v in r[2:5]] for r in body]), engine.values)
    np.testing.assert_array_equal(np.array([[v == "true" for v in r[5:8]] for r in body]), engine.labels)
    text = [json.loads(line) for line in http(srv, "text").text.splitlines()]
    assert len(text) == len(engine.seqs) and all(len(r) == 3 for r in text)
    np.testing.assert_allclose(np.array([[np.nan if v is None else v for v in r] for r in text]), engine.values,
                               atol=0.0005 + 1e-12)


def test_http_invalid_matrix_is_a_422_naming_the_field(srv):
    r = requests.post(srv.http_url + "/composite", params={"count": 1},
                      json={"channels": ["x", "y"], "noise": {"correlation": [[1, 0.9], [0.9, -1]]}}, timeout=10)
    assert r.status_code == 422
    assert "noise.correlation.1.1" in [d["field"] for d in r.json()["details"]]


def test_wsgen_sub_prints_a_column_per_channel(srv):
    r = subprocess.run([sys.executable, "-m", "wsgen.cli", "sub", "--spec", json.dumps(WIRE), "--url", srv.url,
                        "--count", str(N), "--format", "csv", "--seed", "9", "--speed", "max", "--quiet"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    table = list(csv.reader(io.StringIO(r.stdout)))
    engine = create_composite(WIRE, seed=9).take(N + 10)
    assert table[0] == ["seq", "t", "x", "y", "z", "label_x", "label_y", "label_z", "events"]
    body = table[1:]
    assert len(body) == N
    np.testing.assert_array_equal(np.array([[float(v) if v else np.nan for v in r[2:5]] for r in body]),
                                  engine.values[:N])


@pytest.mark.parametrize("fmt", ["ndjson", "text"])
def test_wsgen_sub_ndjson_and_text(srv, fmt):
    r = subprocess.run([sys.executable, "-m", "wsgen.cli", "sub", "--spec", json.dumps(WIRE), "--url", srv.url,
                        "--count", str(N), "--format", fmt, "--seed", "9", "--speed", "max", "--quiet"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    engine = create_composite(WIRE, seed=9).take(N + 10)
    assert len(rows) == N
    if fmt == "ndjson":
        assert [row["seq"] for row in rows] == engine.seqs[:N].tolist()
        got = np.array([[np.nan if row[c] is None else row[c] for c in "xyz"] for row in rows])
        np.testing.assert_array_equal(got, engine.values[:N])
        np.testing.assert_array_equal(np.array([[row[f"label_{c}"] for c in "xyz"] for row in rows]),
                                      engine.labels[:N])
    else:
        got = np.array([[np.nan if v is None else v for v in row] for row in rows])
        np.testing.assert_array_equal(got, engine.values[:N])      # full precision, as for one channel


def test_sync_client_eight_sensors_level_shift_on_sensor_3(srv):
    from wsgen.client import SyncClient
    spec = {**SENSORS, "interval": 0.0}
    with SyncClient(srv.url) as c:
        sub = c.subscribe(spec, seed=4, speed="max")
        block = sub.take(8000)
        assert sub.channels == [f"s{i}" for i in range(1, 9)]
    engine = create_composite(spec, seed=4).take(8000)
    assert block.values.shape == (8000, 8)
    np.testing.assert_array_equal(block.values, engine.values)
    expected = np.zeros((8000, 8), bool)
    expected[5000:5201, 2] = True
    np.testing.assert_array_equal(block.labels, expected)
    assert [e for e in block.events if e["kind"] == "level-shift"] == [
        {"id": 5000 * 32, "kind": "level-shift", "first": 5000, "last": 5200, "channels": ["s3"]}]


def test_named_streams_and_offline_scoring_refuse_channels():
    from wsgen.scoring import offline as offline_score
    from wsgen.streams.named import validate_def
    with pytest.raises(InvalidParams) as exc:
        validate_def({"name": "plant/xyz", "generator": {"channels": ["x", "y"]}, "interval": 1})
    assert [d["field"] for d in exc.value.details] == ["generator.channels"]
    with pytest.raises(offline_score.DefinitionError) as err:
        offline_score.truth(offline_score.parse({"generator": {"channels": ["x", "y"]}, "seed": 1, "last": 10}))
    assert err.value.details[0]["field"] == "generator.channels"


def test_presets_endpoint_gives_the_channel_schema(srv):
    body = requests.get(srv.http_url + "/composite/presets", timeout=10).json()
    props = body["channel_schema"]["properties"]
    assert {"channels", "bases", "gain", "offset", "noise", "anomalies", "faults"} <= set(props)
    assert "correlation" in json.dumps(body["channel_schema"])


def test_http_get_with_start_seq_resumes_every_channel(srv):
    spec = {**SENSORS, "interval": 0.0}
    r = requests.get(srv.http_url + "/composite", params={"spec": json.dumps(spec), "seed": 2, "speed": "max",
                                                          "count": 400, "start_seq": 4900, "format": "ndjson"},
                     timeout=20)
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.text.splitlines()]
    engine = create_composite(spec, seed=2).take(5300)
    assert [row["seq"] for row in rows] == list(range(4900, 5300))
    names = [f"s{i}" for i in range(1, 9)]
    np.testing.assert_array_equal(np.array([[row[n] for n in names] for row in rows]), engine.values[4900:])
    shifted = [row["seq"] for row in rows if row["label_s3"]]
    assert shifted == list(range(5000, 5201))
    assert not any(row[f"label_{n}"] for row in rows for n in names if n != "s3")


def test_channels_times_injectors_is_bounded():
    with pytest.raises(InvalidParams) as exc:
        validate_spec({"channels": "c1..c32", "anomalies": [{"kind": "spike"}] * 8})
    assert [d["field"] for d in exc.value.details] == ["anomalies"]
    assert validate_spec({"channels": "c1..c32", "anomalies": [{"kind": "spike"}] * 7}).channels[-1] == "c32"
    with pytest.raises(InvalidParams) as exc:
        validate_spec({"channels": "c1..c33"})
    assert exc.value.details[0]["field"] == "channels"


def test_http_frequency_change_and_uniform_noise_on_channels(srv):
    spec = {**FREQ, "interval": 0.0, "noise": {"kind": "uniform", "low": [-0.5, 0, 0.25], "high": 0.5},
            "bases": {"z": {"kind": "sine", "params": {"frequency": 3, "sample_rate": 100}}},
            "anomalies": [{**FREQ["anomalies"][0], "channels": ["y", "z"]}, FREQ["anomalies"][1]]}
    r = requests.post(srv.http_url + "/composite", params={"seed": 6, "speed": "max", "count": N, "format": "ndjson"},
                      json=spec, timeout=20)
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.text.splitlines()]
    engine = create_composite(spec, seed=6).take(N)
    np.testing.assert_array_equal(np.array([[row[c] for c in "xyz"] for row in rows]), engine.values)
    labels = np.array([[row[f"label_{c}"] for c in "xyz"] for row in rows])
    np.testing.assert_array_equal(labels, engine.labels)
    assert labels[:, 0].sum() == 0 and labels[40:70, 1].all() and labels[40:70, 2].all() and labels[100, 2]
    changes = {e["id"]: e for row in rows for e in row["events"] if e["kind"] == "frequency-change"}
    assert sorted((e["first"], e["last"], e["channels"]) for e in changes.values()) == [
        (40, 69, ["y", "z"]), (150, 179, ["y", "z"])]
