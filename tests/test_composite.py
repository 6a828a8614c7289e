"""Compositions (``wsgen.engine.composite``): exact event windows of each
anomaly kind, the original anomaly kinds as presets (bit for bit), block-split
determinism, independence of the parts' random streams, the faults as a
consumer sees them, live updates of each part, seek, and validation."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgen.engine import Block, InvalidParams, create
from wsgen.engine.composite import (Composite, CompositeBlock, CompositionSpec, create_composite, preset,
                                        validate_spec)
from wsgen.engine.schedule import ID_SLOTS

EXAMPLE = {
    "interval": 0.1,
    "base": {"kind": "sine", "params": {"amplitude": 2, "frequency": 0.5, "sample_rate": 10}, "offset": 10, "trend": 0.01},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [
        {"kind": "spike", "placement": {"mode": "random", "probability": 0.01}, "height": {"low": 3, "high": 5}},
        {"kind": "level-shift", "placement": {"mode": "periodic", "every": 60}, "min_length": 5, "max_length": 30,
         "height": -4},
        {"kind": "flatline", "placement": {"mode": "random", "probability": 0.01}, "min_length": 3, "max_length": 20},
        {"kind": "trend-change", "placement": {"mode": "gaps", "min_gap": 10, "max_gap": 50}, "min_length": 3,
         "max_length": 20},
        {"kind": "frequency-change", "placement": {"mode": "count", "count": 3, "duration": 50}, "min_length": 3,
         "max_length": 20, "allow_overlap": True},
        {"kind": "noisy-cluster", "placement": {"mode": "indices", "indices": [5, 100, 1000, 1003]}, "min_length": 3,
         "max_length": 20},
        {"kind": "variance-change", "min_length": 3, "max_length": 20},
        {"kind": "dropout", "min_length": 3, "max_length": 5},
    ],
    "faults": {"gaps": {"placement": {"probability": 0.01}, "max_length": 5},
               "nulls": {"placement": {"probability": 0.01}},
               "duplicates": {"placement": {"probability": 0.02}, "max_length": 3},
               "jitter": {"placement": {"probability": 0.3}, "max_length": 3, "max_jitter": 0.03},
               "out_of_order": {"max_delay": 3, "placement": {"probability": 0.05}}},
}


def bits(a):
    return np.asarray(a, np.float64).view(np.int64)


def collect(gen, splits, updates=None):
    """Take ``splits`` in turn (applying ``updates[seq]`` when reached) and
    concatenate the deliveries; events by id (each must be reported alike)."""
    out = {k: [] for k in ("values", "labels", "seqs", "offsets")}
    events = {}
    for m in splits:
        if updates and gen.seq in updates:
            gen.update(updates[gen.seq])
        block = gen.take(m)
        for k in out:
            out[k].append(getattr(block, k))
        for e in block.events:
            assert events.setdefault(e["id"], e) == e
    return {k: np.concatenate(v) for k, v in out.items()}, events


def same(a, b):
    for k in ("values", "offsets"):
        np.testing.assert_array_equal(bits(a[k]), bits(b[k]))
    for k in ("labels", "seqs"):
        np.testing.assert_array_equal(a[k], b[k])


def by_kind(events, kind):
    return sorted((e["first"], e["last"]) for e in events.values() if e["kind"] == kind)


def windows(labels):
    d = np.diff(np.r_[0, labels.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def at_indices(kind, indices=(10, 50), length=5, base=None, interval=1.0, **fields):
    inj = {"kind": kind, "placement": {"mode": "indices", "indices": list(indices)}, **fields}
    if kind != "spike":
        inj.update(min_length=length, max_length=length)
    return {"interval": interval, "base": base or {"kind": "constant", "params": {"value": 3.0}}, "anomalies": [inj]}


# -- spec and API -------------------------------------------------------------------

def test_example_spec_round_trips_through_json_and_has_a_schema():
    spec = validate_spec(EXAMPLE)
    dumped = spec.model_dump()
    assert validate_spec(json.loads(json.dumps(dumped))) == spec
    assert dumped["base"]["params"]["amplitude"] == 2 and "interval" not in dumped["base"]["params"]
    schema = CompositionSpec.model_json_schema()
    json.dumps(schema)
    assert {"interval", "base", "noise", "anomalies", "faults"} <= set(schema["properties"])
    assert schema["properties"]["anomalies"]["maxItems"] == 16


def test_generator_api():
    gen = create_composite(EXAMPLE, seed=7)
    assert isinstance(gen, Composite) and gen.seed == 7 and gen.seq == 0 and gen.anomalous
    assert gen.sample_interval == 0.1 and gen.name == "composite"
    json.dumps(gen.params.model_dump())
    block = gen.take(100)
    assert isinstance(block, CompositeBlock) and isinstance(block, Block)
    assert block.seq == 0 and block.span == 100 and gen.seq == 100
    assert block.values.dtype == np.float64 and block.labels.dtype == np.bool_ and block.seqs.dtype == np.int64
    assert len(block.values) == len(block.labels) == len(block.seqs) == len(block.offsets)
    empty = gen.take(0)
    assert empty.seq == 100 and len(empty.values) == 0 and empty.events == [] and gen.seq == 100
    assert Composite().take(3).values.tolist() == [0.0, 0.0, 0.0]
    drawn = Composite(EXAMPLE)
    assert 0 <= drawn.seed < 2**53
    with pytest.raises(ValueError):
        gen.take(-1)
    with pytest.raises(ValueError):
        gen.seek(5)
    with pytest.raises(ValueError):
        Composite(EXAMPLE, seed=-1)


def test_without_faults_delivery_is_every_sample_on_time():
    spec = {**EXAMPLE, "faults": {}, "interval": 0.25}
    block = Composite(spec, seed=1, start_seq=40).take(500)
    np.testing.assert_array_equal(block.seqs, np.arange(40, 540))
    np.testing.assert_array_equal(bits(block.offsets), bits(np.arange(40, 540) * 0.25))


# -- exact windows of each anomaly kind ---------------------------------------------------

def test_spike_at_indices():
    block = Composite(at_indices("spike", height=2.5), seed=1).take(100)
    assert block.events == [{"id": 10 * ID_SLOTS, "kind": "spike", "first": 10, "last": 10},
                            {"id": 50 * ID_SLOTS, "kind": "spike", "first": 50, "last": 50}]
    expected = np.full(100, 3.0)
    expected[[10, 50]] = 5.5
    np.testing.assert_array_equal(block.values, expected)
    assert np.flatnonzero(block.labels).tolist() == [10, 50]


@pytest.mark.parametrize("height,check", [
    (2.0, lambda v: np.all(v == 5.0)),
    ({"low": 1, "high": 2}, lambda v: np.all((v >= 4.0) & (v < 5.0)) and len(set(v)) == 1),
    ({"range": 2}, lambda v: np.all((v >= 1.0) & (v < 5.0)) and len(set(v)) == 1),
])
def test_level_shift_windows_and_heights(height, check):
    block = Composite(at_indices("level-shift", height=height), seed=2).take(100)
    assert [(e["first"], e["last"], e["kind"]) for e in block.events] == [(10, 14, "level-shift"), (50, 54, "level-shift")]
    assert windows(block.labels) == [(10, 14), (50, 54)]
    assert check(block.values[10:15]) and check(block.values[50:55])
    assert np.all(block.values[~block.labels] == 3.0)


def test_noisy_cluster_and_variance_change_stay_inside_their_windows():
    for kind, extra in (("noisy-cluster", {"amplitude": 4.0}), ("variance-change", {"std_dev": 2.0})):
        block = Composite(at_indices(kind, **extra), seed=3).take(100)
        assert windows(block.labels) == [(10, 14), (50, 54)]
        assert np.all(block.values[~block.labels] == 3.0)
        inside = block.values[block.labels]
        assert np.all(inside != 3.0) and len(set(inside.tolist())) == 10
        if kind == "noisy-cluster":
            assert np.all(np.abs(inside - 3.0) <= 4.0)


def test_trend_change_ramps_from_the_event_start():
    block = Composite(at_indices("trend-change", slope=2.0, interval=0.5), seed=4).take(100)
    assert windows(block.labels) == [(10, 14), (50, 54)]
    for s in (10, 50):
        np.testing.assert_allclose(block.values[s:s + 5], 3.0 + 2.0 * 0.5 * np.arange(5))
    assert np.all(block.values[~block.labels] == 3.0)


def test_flatline_sticks_at_the_previous_value():
    sine = {"kind": "sine", "params": {"amplitude": 1.0, "frequency": 1.0, "sample_rate": 17}}
    plain = Composite({"base": sine}, seed=5).take(100).values
    block = Composite(at_indices("flatline", base=sine, indices=(0, 10, 50)), seed=5).take(100)
    assert windows(block.labels) == [(0, 4), (10, 14), (50, 54)]
    assert np.all(block.values[0:5] == plain[0])
    assert np.all(block.values[10:15] == plain[9]) and np.all(block.values[50:55] == plain[49])
    np.testing.assert_array_equal(block.values[~block.labels], plain[~block.labels])


def test_frequency_change_is_phase_continuous_and_faster():
    sine = {"kind": "sine", "params": {"amplitude": 1.0, "frequency": 1.0, "sample_rate": 40}}
    plain = Composite({"base": sine}, seed=6).take(200).values
    block = Composite(at_indices("frequency-change", base=sine, indices=(20,), length=40, factor=3.0), seed=6).take(200)
    assert windows(block.labels) == [(20, 59)]
    k = np.arange(20, 60)
    np.testing.assert_allclose(block.values[20:60], np.sin(2 * np.pi * (20 / 40 + 3.0 * (k - 20) / 40)), atol=1e-9)
    assert block.values[20] == pytest.approx(plain[20], abs=1e-12)
    np.testing.assert_array_equal(block.values[~block.labels], plain[~block.labels])


def test_dropout_is_nan_or_fill():
    block = Composite(at_indices("dropout"), seed=7).take(60)
    assert windows(block.labels) == [(10, 14), (50, 54)]
    assert np.array_equal(np.isnan(block.values), block.labels)
    filled = Composite(at_indices("dropout", fill=-1.0), seed=7).take(60)
    assert np.all(filled.values[filled.labels] == -1.0) and np.all(filled.values[~filled.labels] == 3.0)


def test_events_spanning_blocks_are_reported_alike_in_each():
    gen = Composite(at_indices("level-shift", indices=(8,), length=10), seed=1)
    reported = [gen.take(5).events for _ in range(5)]
    ev = {"id": 8 * ID_SLOTS, "kind": "level-shift", "first": 8, "last": 17}
    assert reported == [[], [ev], [ev], [ev], []]


# -- placements and overlap ----------------------------------------------------------------

def test_periodic_count_gaps_and_random_placements():
    spike = {"kind": "spike", "height": 1.0}
    periodic = Composite({"interval": 0.5, "anomalies": [{**spike, "placement": {"mode": "periodic", "every": 7}}]},
                         seed=1).take(100)
    # the first event one period in (start defaults to every), none at sample 0
    assert [e["first"] for e in periodic.events] == [14, 28, 42, 56, 70, 84, 98]
    count = Composite({"interval": 2, "anomalies": [{**spike, "placement": {"mode": "count", "count": 4, "duration": 40}}]},
                      seed=2).take(200)
    assert np.bincount(np.flatnonzero(count.labels) // 20, minlength=10).tolist() == [4] * 10
    gaps = Composite({"anomalies": [{"kind": "level-shift", "placement": {"mode": "gaps", "min_gap": 5, "max_gap": 9},
                                     "min_length": 2, "max_length": 4}]}, seed=3).take(2000)
    runs = np.array(windows(gaps.labels))
    assert np.all((runs[:, 1] - runs[:, 0] + 1 >= 2) & (runs[:, 1] - runs[:, 0] + 1 <= 4))
    between = runs[1:, 0] - runs[:-1, 1] - 1
    assert between.min() >= 5 and between.max() <= 9 and 5 <= runs[0, 0] <= 9
    rand = Composite({"anomalies": [{**spike, "placement": {"mode": "random", "probability": 0.1}}]}, seed=4).take(20000)
    assert 1800 < rand.labels.sum() < 2200


def test_events_of_one_injector_never_overlap():
    spec = {"anomalies": [{"kind": "level-shift", "placement": {"probability": 0.3}, "min_length": 3, "max_length": 9}]}
    block = Composite(spec, seed=8).take(3000)
    ev = sorted((e["first"], e["last"]) for e in block.events)
    assert len(ev) > 100 and all(b[0] > a[1] for a, b in zip(ev, ev[1:]))
    assert windows(block.labels) == _merged([(f, min(l, 2999)) for f, l in ev])


def _merged(ev):
    out = []
    for f, l in ev:
        if out and f == out[-1][1] + 1:
            out[-1] = (out[-1][0], l)
        else:
            out.append((f, l))
    return out


def test_later_injector_yields_unless_allow_overlap():
    first = {"kind": "level-shift", "placement": {"mode": "indices", "indices": [10]}, "min_length": 10,
             "max_length": 10, "height": 1.0}
    second = {"kind": "level-shift", "placement": {"mode": "indices", "indices": [15, 30]}, "min_length": 5,
              "max_length": 5, "height": 100.0}
    block = Composite({"anomalies": [first, second]}, seed=1).take(50)
    assert [(e["first"], e["last"], e["id"] % ID_SLOTS) for e in block.events] == [(10, 19, 0), (30, 34, 1)]
    both = Composite({"anomalies": [first, {**second, "allow_overlap": True}]}, seed=1).take(50)
    assert [(e["first"], e["last"], e["id"] % ID_SLOTS) for e in both.events] == [(10, 19, 0), (15, 19, 1), (30, 34, 1)]
    assert both.values[15:20].tolist() == [101.0] * 5 and both.values[10:15].tolist() == [1.0] * 5
    # the earlier injector wins even when the later one's event starts first
    early = {**second, "placement": {"mode": "indices", "indices": [8]}}
    block = Composite({"anomalies": [first, early]}, seed=1).take(50)
    assert [(e["first"], e["id"] % ID_SLOTS) for e in block.events] == [(10, 0)]


# -- presets: the original anomaly kinds -------------------------------------------------------

PRESETS = [
    ("random", {}), ("random", {"anomaly_probability": 0.3, "anomaly_range": 2.5, "base_value": -1.5, "data_interval": 0}),
    ("random-square", {}), ("random-square", {"minimum_interval": 3, "maximum_interval": 7, "min_anomaly_duration": 1,
                                              "max_anomaly_duration": 4, "anomaly_magnitude": -2.25, "base_value": 1}),
    ("clustered", {}), ("clustered", {"minimum_interval": 2, "maximum_interval": 5, "min_anomaly_length": 2,
                                      "max_anomaly_length": 6, "anomaly_magnitude": 3.5, "constant_value": 0.5}),
    ("periodic-spike", {"spike_interval": 7, "data_interval": 1}),
    ("periodic-spike", {"spike_interval": 0.7, "data_interval": 0.3, "min_spike_range": -1, "max_spike_range": 4}),
    ("count-per-duration", {"duration": 50, "num_anomalies": 3}),
    ("count-per-duration", {"duration": 7.5, "num_anomalies": 5, "data_interval": 1.5, "min_anomaly_range": 1}),
]
SPLITS = [[3000], [1, 1, 1, 997, 2000], [7] * 428 + [4], [1000, 0, 1, 1999]]


@pytest.mark.parametrize("name,params", PRESETS)
def test_presets_equal_the_original_kinds_bit_for_bit(name, params):
    spec = preset(name, params)
    for seed, splits in zip((1, 42, 2**63 + 5, 987654321), SPLITS):
        orig = create(name, params, seed=seed)
        want_v = np.concatenate([orig.take(m).values for m in splits])
        orig = create(name, params, seed=seed)
        want_l = np.concatenate([orig.take(m).labels for m in splits])
        got, events = collect(Composite(spec, seed=seed), splits)
        np.testing.assert_array_equal(bits(got["values"]), bits(want_v))
        np.testing.assert_array_equal(got["labels"], want_l)
        assert got["seqs"].tolist() == list(range(3000))
        assert _merged(sorted((e["first"], min(e["last"], 2999)) for e in events.values())) == windows(want_l)
    late = Composite(spec, seed=3, start_seq=12_345).take(500)
    orig = create(name, params, seed=3, start_seq=12_345).take(500)
    np.testing.assert_array_equal(bits(late.values), bits(orig.values))
    np.testing.assert_array_equal(late.labels, orig.labels)


@pytest.mark.parametrize("name,params,change,composite_change", [
    ("random", {}, {"anomaly_probability": 0.5, "base_value": 2},
     {"base": {"params": {"value": 2}}, "anomalies": [{"placement": {"probability": 0.5}}]}),
    ("random-square", {}, {"minimum_interval": 5, "maximum_interval": 9, "max_anomaly_duration": 30},
     {"anomalies": [{"placement": {"min_gap": 5, "max_gap": 9}, "max_length": 30}]}),
    ("periodic-spike", {"spike_interval": 10}, {"spike_interval": 3.5, "data_interval": 0.5},
     {"interval": 0.5, "anomalies": [{"placement": {"every": 3.5}}]}),
    ("count-per-duration", {"duration": 50, "num_anomalies": 3}, {"num_anomalies": 7},
     {"anomalies": [{"placement": {"count": 7}}]}),
])
def test_presets_follow_the_original_live_update_rules(name, params, change, composite_change):
    for at in (1, 333):
        orig, comp = create(name, params, seed=9), Composite(preset(name, params), seed=9)
        a, b = orig.take(at), comp.take(at)
        orig.update(change)
        comp.update(composite_change)
        a2, b2 = orig.take(1500), comp.take(1500)
        np.testing.assert_array_equal(bits(np.r_[a.values, a2.values]), bits(np.r_[b.values, b2.values]))
        np.testing.assert_array_equal(np.r_[a.labels, a2.labels], np.r_[b.labels, b2.labels])


def test_unknown_preset_and_bad_params_are_refused():
    with pytest.raises(InvalidParams, match="not an anomaly kind"):
        preset("sine", {})
    with pytest.raises(InvalidParams) as err:
        preset("random", {"anomaly_probability": 2})
    assert err.value.details[0]["field"] == "anomaly_probability"


# -- determinism ---------------------------------------------------------------------------------

N_SPLIT = 700


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**64 - 1), cuts=st.lists(st.integers(0, N_SPLIT), max_size=12))
def test_any_block_split_gives_the_same_stream(seed, cuts):
    edges = sorted({0, N_SPLIT, *cuts})
    splits = [b - a for a, b in zip(edges, edges[1:])] + [0]
    whole, ev_whole = collect(Composite(EXAMPLE, seed=seed), [N_SPLIT])
    parts, ev_parts = collect(Composite(EXAMPLE, seed=seed), splits)
    same(whole, parts)
    assert ev_whole == ev_parts


def test_one_plus_one_plus_one_equals_three_with_updates_at_the_same_samples():
    updates = {200: {"noise": {"std_dev": 0.5}, "anomalies": [{"height": 9.0}, {"placement": {"every": 20}}]},
               450: {"faults": {"nulls": None, "gaps": {"placement": {"probability": 0.05}}}, "interval": 0.2}}
    ones, ev1 = collect(Composite(EXAMPLE, seed=11), [1] * 900, updates)
    blocks, ev2 = collect(Composite(EXAMPLE, seed=11), [100, 100, 250, 450], updates)
    same(ones, blocks)
    assert ev1 == ev2


def test_updates_that_change_nothing_change_no_sample():
    whole, ev_whole = collect(Composite(EXAMPLE, seed=23), [1500])
    noop = {100: {}, 101: {"anomalies": EXAMPLE["anomalies"]}, 108: {"interval": 0.1, "faults": {}}}
    updated, ev_updated = collect(Composite(EXAMPLE, seed=23), [100, 1, 7, 300, 1092], noop)
    same(whole, updated)
    assert ev_whole == ev_updated


def test_seek_equals_taking_the_samples_between():
    for start in (1, 37, 2500):
        gen = Composite(EXAMPLE, seed=12)
        gen.take(start)
        want = gen.take(800)
        got = Composite(EXAMPLE, seed=12, start_seq=start).take(800)
        same({k: getattr(want, k) for k in ("values", "labels", "seqs", "offsets")},
             {k: getattr(got, k) for k in ("values", "labels", "seqs", "offsets")})
        assert want.events == got.events


def test_seek_with_dense_stateful_events():
    """A flatline sticks at its input, which an earlier flatline may hold:
    seek must replay the whole chain."""
    flat = {"kind": "flatline", "placement": {"probability": 0.5}, "min_length": 5, "max_length": 6}
    spec = {"base": {"kind": "sine", "params": {"sample_rate": 13}},
            "anomalies": [flat, flat, flat, {**flat, "allow_overlap": True}]}
    for start in (7, 55, 62, 167, 1001):
        gen = Composite(spec, seed=24)
        gen.take(start)
        want = gen.take(100)
        got = Composite(spec, seed=24, start_seq=start).take(100)
        np.testing.assert_array_equal(bits(want.values), bits(got.values))
        np.testing.assert_array_equal(want.seqs, got.seqs)
        assert want.events == got.events


# -- independence of the parts' random streams ------------------------------------------------------

def test_noise_changes_do_not_move_the_anomalies():
    quiet = Composite(EXAMPLE, seed=13).take(3000)
    loud = Composite({**EXAMPLE, "noise": {"kind": "uniform", "low": -5, "high": 5}}, seed=13).take(3000)
    assert quiet.events == loud.events and np.array_equal(quiet.labels, loud.labels)
    assert not np.array_equal(quiet.values, loud.values, equal_nan=True)


def test_adding_or_changing_a_later_injector_does_not_move_earlier_events():
    one = {"anomalies": [EXAMPLE["anomalies"][0], EXAMPLE["anomalies"][2]]}
    two = {"anomalies": [*one["anomalies"], {"kind": "level-shift", "placement": {"probability": 0.05}}]}
    other = {"anomalies": [one["anomalies"][0], {**one["anomalies"][1], "placement": {"probability": 0.2}}]}
    ev_one = Composite(one, seed=14).take(5000).events
    ev_two = Composite(two, seed=14).take(5000).events
    assert [e for e in ev_two if e["id"] % ID_SLOTS < 2] == ev_one
    assert len([e for e in ev_two if e["id"] % ID_SLOTS == 2]) > 50
    first = [e for e in Composite(other, seed=14).take(5000).events if e["id"] % ID_SLOTS == 0]
    assert first == [e for e in ev_one if e["id"] % ID_SLOTS == 0]


def test_faults_do_not_move_the_anomalies_and_seeds_matter():
    clean = Composite({**EXAMPLE, "faults": {}}, seed=15).take(3000)
    faulty = Composite(EXAMPLE, seed=15).take(3000)
    anomaly_kinds = {a["kind"] for a in EXAMPLE["anomalies"]}
    assert [e for e in faulty.events if e["kind"] in anomaly_kinds] == clean.events
    assert Composite(EXAMPLE, seed=16).take(3000).events != faulty.events


def test_stream_key_pins_a_part_s_draws_wherever_it_sits():
    spike = {"kind": "spike", "placement": {"probability": 0.02}, "stream": 777}
    alone = Composite({"anomalies": [spike]}, seed=17).take(4000).events
    moved = Composite({"anomalies": [{"kind": "dropout", "placement": {"mode": "indices"}}, spike]},
                      seed=17).take(4000).events
    assert [(e["first"], e["kind"]) for e in alone] == [(e["first"], e["kind"]) for e in moved]


# -- faults as a consumer sees them ---------------------------------------------------------------------

def only(fault, **fields):
    return {"interval": 0.5, "anomalies": [{"kind": "spike", "placement": {"probability": 0.05}}],
            "faults": {fault: {"placement": {"probability": 0.03}, **fields}}}


def test_gaps_make_the_seq_jump_over_exactly_the_gap_events():
    got, events = collect(Composite(only("gaps", min_length=1, max_length=6), seed=18), [500, 1, 999])
    seqs = got["seqs"]
    assert np.all(np.diff(seqs) >= 1) and (np.diff(seqs) > 1).sum() > 5
    missing = sorted(set(range(1500)) - set(seqs.tolist()))
    assert missing == [k for f, l in by_kind(events, "gap") for k in range(f, l + 1)]
    assert got["labels"].sum() == sum(1 for f, l in by_kind(events, "spike") if f not in missing)


def test_nulls_are_nan_and_labelled():
    got, events = collect(Composite(only("nulls", max_length=3), seed=19), [1500])
    nulls = [k for f, l in by_kind(events, "null") for k in range(f, l + 1)]
    assert np.flatnonzero(np.isnan(got["values"])).tolist() == nulls and len(nulls) > 20
    assert np.all(got["labels"][nulls])


def test_duplicates_repeat_the_sample_in_place():
    got, events = collect(Composite(only("duplicates", max_length=2), seed=20), [700, 800])
    seqs = got["seqs"]
    dup = [k for f, l in by_kind(events, "duplicate") for k in range(f, l + 1)]
    counts = np.bincount(seqs, minlength=1500)
    assert np.flatnonzero(counts == 2).tolist() == dup and set(counts.tolist()) == {1, 2}
    first = np.searchsorted(seqs, dup)
    np.testing.assert_array_equal(seqs[first + 1], dup)
    np.testing.assert_array_equal(bits(got["values"][first]), bits(got["values"][first + 1]))
    assert np.all(got["labels"][first]) and np.all(got["labels"][first + 1])


def test_out_of_order_is_bounded_by_max_delay():
    gen = Composite(only("out_of_order", max_delay=4, max_length=3), seed=21)
    got, events = collect(gen, [300, 1, 1, 698, 5])
    seqs = got["seqs"]
    assert sorted(seqs.tolist()) == list(range(1005)) and seqs.tolist() != list(range(1005))
    high = np.maximum.accumulate(seqs)
    assert (high - seqs).max() <= 4 and (high - seqs).max() >= 2
    late = {k for f, l in by_kind(events, "out-of-order") for k in range(f, l + 1)}
    behind = set(seqs[seqs < high].tolist())
    assert behind <= late and len(behind) > 10
    # a held-back sample comes after (at least) the next one
    position = {k: i for i, k in enumerate(seqs.tolist())}
    assert all(position[k] > position[k + 1] for k in late if k + 1 not in late and k + 1 < 1005)
    assert np.all(got["labels"][np.isin(seqs, sorted(late))])


def test_jitter_is_bounded_and_only_in_jitter_events():
    got, events = collect(Composite(only("jitter", max_jitter=0.2, max_length=4), seed=22), [1500])
    off = got["offsets"] - got["seqs"] * 0.5
    jittered = [k for f, l in by_kind(events, "jitter") for k in range(f, l + 1)]
    assert np.abs(off).max() < 0.2 and np.abs(off).max() > 0.1
    assert np.flatnonzero(off != 0).tolist() == jittered


# -- live updates ------------------------------------------------------------------------------------

def test_interval_update_keeps_stream_time_continuous():
    gen = Composite({"interval": 1.0}, seed=1)
    gen.take(100)
    gen.update({"interval": 0.25})
    block = gen.take(8)
    assert gen.sample_interval == 0.25
    np.testing.assert_array_equal(block.offsets, 100 + 0.25 * np.arange(8))


def test_base_updates_follow_the_registry_generator():
    base = {"kind": "sine", "params": {"amplitude": 2, "frequency": 1.5, "sample_rate": 50}}
    gen, sine = Composite({"base": base}, seed=2), create("sine", base["params"], seed=2)
    np.testing.assert_array_equal(gen.take(77).values, sine.take(77).values)
    gen.update({"base": {"params": {"frequency": 4}}})
    sine.update({"frequency": 4})
    np.testing.assert_array_equal(gen.take(100).values, sine.take(100).values)
    assert gen.params.base.params["amplitude"] == 2.0
    gen.update({"base": {"kind": "normal", "params": {"std_dev": 3}}})
    np.testing.assert_array_equal(gen.take(50).values, create("normal", {"std_dev": 3}, seed=2, start_seq=177).take(50).values)


def test_offset_and_trend_updates_are_continuous():
    gen = Composite({"interval": 0.5, "base": {"trend": 2.0}}, seed=3)
    first = gen.take(10).values
    np.testing.assert_allclose(first, np.arange(10) * 0.5 * 2.0)
    gen.update({"base": {"trend": -1.0, "offset": 100}})
    np.testing.assert_allclose(gen.take(4).values, 100 + 10.0 - 0.5 * np.arange(4))


def test_noise_update_changes_the_mapping_not_the_draws():
    spec = {"noise": {"kind": "normal", "std_dev": 1.0}}
    gen = Composite(spec, seed=4)
    gen.take(50)
    gen.update({"noise": {"std_dev": 3.0}})
    after = gen.take(50).values
    np.testing.assert_array_equal(after, Composite({"noise": {"std_dev": 3.0}}, seed=4, start_seq=50).take(50).values)
    gen.update({"noise": None})
    assert np.all(gen.take(10).values == 0.0)


def test_injector_update_effect_and_placement_apply_from_seq():
    spike = {"kind": "spike", "placement": {"probability": 0.1}, "height": 1.0}
    gen = Composite({"anomalies": [spike]}, seed=5)
    before = gen.take(500)
    gen.update({"anomalies": [{"height": 7.0, "placement": {"probability": 0.3}}]})
    after = gen.take(500)
    ref = Composite({"anomalies": [{**spike, "height": 7.0, "placement": {"probability": 0.3}}]}, seed=5)
    ref.seek(500)
    np.testing.assert_array_equal(after.values, ref.take(500).values)
    np.testing.assert_array_equal(before.values, Composite({"anomalies": [spike]}, seed=5).take(500).values)
    assert gen.params.anomalies[0].height == 7.0


def test_changed_kind_or_removed_injector_lets_its_event_finish():
    shift = {"kind": "level-shift", "placement": {"mode": "indices", "indices": [8]}, "min_length": 10,
             "max_length": 10, "height": 5.0}
    gen = Composite({"anomalies": [shift]}, seed=6)
    gen.take(10)
    gen.update({"anomalies": [{"kind": "dropout", "placement": {"mode": "indices", "indices": [30]},
                               "min_length": 2, "max_length": 2}]})
    block = gen.take(30)
    assert [(e["kind"], e["first"], e["last"]) for e in block.events] == [("level-shift", 8, 17), ("dropout", 30, 31)]
    assert block.values[:8].tolist() == [5.0] * 8 and block.values[8:20].tolist() == [0.0] * 12
    assert np.isnan(block.values[20:22]).all()
    gen2 = Composite({"anomalies": [shift]}, seed=6)
    gen2.take(10)
    gen2.update({"anomalies": []})
    assert [(e["first"], e["last"]) for e in gen2.take(20).events] == [(8, 17)]
    assert gen2.take(20).events == []


def test_frequency_change_running_out_over_a_new_base_kind():
    sine = {"kind": "sine", "params": {"frequency": 1.0, "sample_rate": 20}}
    gen = Composite(at_indices("frequency-change", base=sine, indices=(5,), length=10), seed=1)
    gen.take(8)
    gen.update({"anomalies": [], "base": {"kind": "uniform", "params": {"min_val": 7, "max_val": 8}}})
    block = gen.take(10)
    assert [(e["first"], e["last"]) for e in block.events] == [(5, 14)]
    assert block.labels.tolist() == [True] * 7 + [False] * 3 and np.all((block.values >= 7) & (block.values < 8))


def test_new_events_of_an_earlier_injector_avoid_later_events_in_progress():
    second = {"kind": "level-shift", "placement": {"mode": "indices", "indices": [10]}, "min_length": 10,
              "max_length": 10}
    gen = Composite({"anomalies": [{"kind": "spike", "placement": {"mode": "indices"}}, second]}, seed=1)
    gen.take(12)
    gen.update({"anomalies": [{"placement": {"indices": [14, 25]}}, {}]})
    assert [(e["first"], e["kind"]) for e in gen.take(20).events] == [(10, "level-shift"), (25, "spike")]


def test_new_flatline_sticks_at_the_value_before_it():
    gen = Composite({"base": {"trend": 1.0}}, seed=7)
    gen.take(20)
    gen.update({"anomalies": [{"kind": "flatline", "placement": {"mode": "indices", "indices": [20]},
                               "min_length": 3, "max_length": 3}]})
    assert gen.take(5).values.tolist() == [19.0, 19.0, 19.0, 23.0, 24.0]


def test_fault_updates_add_merge_and_remove():
    gen = Composite({"faults": {"gaps": {"placement": {"mode": "indices", "indices": [5]}, "min_length": 4,
                                         "max_length": 4}}}, seed=8)
    gen.take(7)
    gen.update({"faults": {"gaps": None, "nulls": {"placement": {"mode": "indices", "indices": [10]}}}})
    block = gen.take(10)
    assert block.seqs.tolist() == [9, 10, 11, 12, 13, 14, 15, 16]  # the gap in progress runs to its end
    assert np.isnan(block.values[1]) and block.labels.tolist() == [False, True] + [False] * 6
    gen.update({"faults": {"nulls": {"max_length": 2, "min_length": 2, "placement": {"indices": [20]}}}})
    assert gen.params.faults.nulls.placement.indices == [20]
    assert np.isnan(gen.take(10).values[3:5]).all()


def test_invalid_update_changes_nothing_and_names_the_field():
    gen = Composite(EXAMPLE, seed=9)
    gen.take(100)
    before = gen.params
    with pytest.raises(InvalidParams) as err:
        gen.update({"anomalies": [{"height": {"low": 9, "high": 1}}]})
    assert [d["field"] for d in err.value.details] == ["anomalies.0.height.low"]
    with pytest.raises(InvalidParams) as err:
        gen.update(["interval"])
    assert gen.params is before
    ref = Composite(EXAMPLE, seed=9)
    ref.take(100)
    np.testing.assert_array_equal(bits(gen.take(300).values), bits(ref.take(300).values))


# -- validation --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,field", [
    ({"interval": float("nan")}, "interval"),
    ({"anomalies": [{"kind": "spike", "height": float("inf")}]}, "anomalies.0.height"),
    ({"anomalies": [{"kind": "boom"}]}, "anomalies.0.kind"),
    ({"anomalies": [{"kind": "spike", "placement": {"mode": "count", "count": 1.5}}]}, "anomalies.0.placement.count"),
    ({"anomalies": [{"kind": "spike", "placement": {"mode": "sometimes"}}]}, "anomalies.0.placement.mode"),
    ({"anomalies": [{"kind": "level-shift", "min_length": 9, "max_length": 2}]}, "anomalies.0.min_length"),
    ({"anomalies": [{"kind": "frequency-change"}]}, "anomalies.0.kind"),
    ({"interval": 0, "anomalies": [{"kind": "spike", "placement": {"mode": "periodic"}}]}, "anomalies.0.placement.mode"),
    ({"interval": 10, "anomalies": [{"kind": "spike", "placement": {"mode": "periodic", "every": 5}}]},
     "anomalies.0.placement.every"),
    ({"anomalies": [{"kind": "spike", "placement": {"mode": "count", "count": 11, "duration": 10}}]},
     "anomalies.0.placement.count"),
    ({"anomalies": [{"kind": "spike", "placement": {"mode": "indices", "indices": list(range(10_001))}}]},
     "anomalies.0.placement.indices"),
    ({"anomalies": [{"kind": "spike"}] * 17}, "anomalies"),
    ({"base": {"kind": "sine", "params": {"amplitude": "loud"}}}, "base.params.amplitude"),
    ({"base": {"kind": "sine", "params": {"interval": 1}}}, "base.params.interval"),
    ({"base": {"kind": "random"}}, "base.kind"),
    ({"noise": {"kind": "uniform", "low": 1, "high": 0}}, "noise.low"),
    ({"noise": {"kind": "pink"}}, "noise.kind"),
    ({"faults": {"jitter": {"max_jitter": 0}}}, "faults.jitter.max_jitter"),
    ({"faults": {"out_of_order": {"max_delay": 5000}}}, "faults.out_of_order.max_delay"),
    ({"faults": {"smoke": {}}}, "faults.smoke"),
    ({"color": "red"}, "color"),
])
def test_validation_errors_name_the_field(spec, field):
    with pytest.raises(InvalidParams) as err:
        Composite(spec, seed=1)
    assert field in [d["field"] for d in err.value.details], err.value.details
    json.dumps(err.value.details)
    with pytest.raises(InvalidParams):
        validate_spec("not an object")


@pytest.mark.parametrize("spec,field,value", [
    ({"anomalies": [{"kind": "spik"}]}, "anomalies.0.kind", "spik"),
    ({"anomalies": [{"kind": "spike", "placement": {"mode": "sometimes"}}]}, "anomalies.0.placement.mode",
     "sometimes"),
    ({"noise": {"kind": "pink"}}, "noise.kind", "pink"),
])
def test_a_wrong_kind_or_mode_is_quoted_itself_not_the_object_holding_it(spec, field, value):
    with pytest.raises(InvalidParams) as err:
        validate_spec(spec)
    assert err.value.details[0]["field"] == field and err.value.details[0]["value"] == value, err.value.details
    assert err.value.details[0]["message"].startswith("must be one of '")
    assert f"(got {value!r})" in str(err.value)


def test_spec_model_is_frozen_and_refuses_nan_directly():
    spec = validate_spec(EXAMPLE)
    with pytest.raises(Exception):
        spec.interval = 3
    with pytest.raises(Exception):
        CompositionSpec.model_validate({"base": {"offset": math.inf}})


# -- bounds: live events, lookahead --------------------------------------------------------

from wsgen.engine.injectors import MAX_INJECTORS  # noqa: E402
from wsgen.engine.schedule import MAX_BLOCKED_LENGTH, MAX_LIVE  # noqa: E402

ENDLESS = {"kind": "level-shift", "placement": {"mode": "random", "probability": 1},
           "min_length": 10**9, "max_length": 10**9, "allow_overlap": True}


def _most_live(events, n, m):
    """Most events live at once over samples n .. n+m-1."""
    count = np.zeros(m + 1, np.int64)
    for e in events:
        count[max(e["first"], n) - n] += 1
        count[min(e["last"] + 1, n + m) - n] -= 1
    return int(np.cumsum(count)[:m].max())


def test_endless_overlapping_events_stay_bounded():
    gen = create_composite({"interval": 0.1, "base": {"kind": "sine"}, "anomalies": [ENDLESS] * MAX_INJECTORS}, seed=1)
    for _ in range(4):
        block = gen.take(8192)
        assert len(block.events) == MAX_INJECTORS * MAX_LIVE
        for part in gen._parts:
            assert len(part.schedule.starts) == MAX_LIVE
    # the first MAX_LIVE samples start the events of each injector, then none
    assert sorted({e["first"] for e in block.events}) == list(range(MAX_LIVE))


@pytest.mark.parametrize("kind", ["level-shift", "noisy-cluster", "flatline", "dropout"])
def test_live_cap_is_deterministic_across_block_splits(kind):
    spec = {"interval": 0.1, "anomalies": [{"kind": kind, "placement": {"mode": "random", "probability": 0.5},
                                            "min_length": 30, "max_length": 80, "allow_overlap": True}]}
    one = create_composite(spec, seed=5).take(3000)
    assert _most_live(one.events, 0, 3000) == MAX_LIVE
    rng = np.random.default_rng(0)
    for _ in range(3):
        cuts = np.diff(np.r_[0, np.sort(rng.integers(0, 3000, 12)), 3000]).tolist()
        out, events = collect(create_composite(spec, seed=5), cuts)
        same(out, {k: getattr(one, k) for k in ("values", "labels", "seqs", "offsets")})
        assert sorted(events.values(), key=lambda e: e["id"]) == sorted(one.events, key=lambda e: e["id"])


def test_short_overlapping_events_cost_the_block_times_the_cap():
    spec = {"interval": 0.1, "anomalies": [{"kind": "level-shift", "allow_overlap": True,
                                            "placement": {"mode": "random", "probability": 1},
                                            "min_length": 10_000, "max_length": 10_000}]}
    gen = create_composite(spec, seed=1)
    for _ in range(3):
        block = gen.take(8192)
        # live at the block start, plus at most MAX_LIVE started in it (events outlast the block)
        assert len(block.events) <= 2 * MAX_LIVE
        assert _most_live(block.events, block.seq, 8192) <= MAX_LIVE


def test_lookahead_of_earlier_injectors_is_bounded():
    spike = {"kind": "spike", "placement": {"mode": "random", "probability": 1}}
    # (the later non-overlapping injectors last at most MAX_BLOCKED_LENGTH samples in all)
    length = MAX_BLOCKED_LENGTH // (MAX_INJECTORS // 2)
    shift = {"kind": "level-shift", "placement": {"mode": "random", "probability": 1},
             "min_length": length, "max_length": length}
    gen = create_composite({"anomalies": [spike, shift] * (MAX_INJECTORS // 2)}, seed=1)
    for _ in range(3):
        gen.take(8192)
    reach = MAX_BLOCKED_LENGTH + 8192
    for part in gen._parts:
        assert part.schedule.decided - gen.seq <= reach
        assert len(part.schedule.starts) <= reach + 8192


def test_long_events_of_a_later_non_overlapping_injector_are_refused():
    first = {"kind": "spike"}
    long = {"kind": "level-shift", "min_length": 1, "max_length": MAX_BLOCKED_LENGTH + 1}
    with pytest.raises(InvalidParams) as exc:
        validate_spec({"anomalies": [first, long]})
    assert exc.value.details[0]["field"] == "anomalies.1.max_length"
    validate_spec({"anomalies": [long, first]})  # the first may be long
    validate_spec({"anomalies": [first, {**long, "allow_overlap": True}]})  # so may an overlapping one
    # and the later ones add up: at most MAX_BLOCKED_LENGTH - 1 samples of lookahead in all
    half = {**long, "max_length": MAX_BLOCKED_LENGTH // 2}
    validate_spec({"anomalies": [first, half, half]})
    with pytest.raises(InvalidParams) as exc:
        validate_spec({"anomalies": [first, half, half, {**half, "max_length": 3}]})
    assert exc.value.details[0]["field"] == "anomalies.3.max_length"
    assert "at most 10000 samples in all" in exc.value.details[0]["message"]
