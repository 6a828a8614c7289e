"""Properties every generator kind keeps (hypothesis): block-split invariance
with live updates, determinism, ``start_seq`` / ``seek`` equal to the
uninterrupted stream, and drawn seeds that reproduce the stream."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgen.engine import GENERATORS, create
from wsgen.engine.base import SEED_DRAW_LIMIT

KINDS = list(GENERATORS)

#: starting parameters per kind: chosen so a few thousand samples hold many
#: periods, events, spikes and windows
START = {
    "sine": {}, "cosine": {"phase": 30.0}, "square": {"duty_cycle": 0.3},
    "sawtooth": {"frequency": 3.0}, "triangle": {"frequency": 1.7, "sample_rate": 50.0},
    "normal": {}, "uniform": {}, "exponential": {},
    "random": {"anomaly_probability": 0.1},
    "random-square": {"minimum_interval": 5, "maximum_interval": 30, "min_anomaly_duration": 1,
                      "max_anomaly_duration": 8},
    "clustered": {"minimum_interval": 3, "maximum_interval": 25, "min_anomaly_length": 2,
                  "max_anomaly_length": 9},
    "periodic-spike": {"spike_interval": 13.0},
    "count-per-duration": {"num_anomalies": 2, "duration": 50.0},
    "random-walk": {"min": -20.0, "max": 15.0, "drift": 0.05},
    "ou": {"theta": 0.3, "sigma": 2.0, "dt": 0.5},
    "pulse": {"on_duration": 0.3, "off_duration": 0.5, "dt": 0.1},
    "steps": {"steps": [[0.5, 1.0], [1.3, -2.0], [0.2, 7.0]], "dt": 0.1},
    "pattern": {"values": [1.0, 4.0, -2.0], "samples_per_value": 7, "interpolation": "linear"},
    "seasonal": {"dt": 3600.0, "noise": 0.2, "trend": 1e-6, "start": "2026-01-05T00:00:00Z"},
    "replay": {},   # the built-in example (files of a data directory: tests/test_replay.py)
}

#: live updates per kind, each valid whatever the others applied before it
UPDATES = {
    "sine": [{"frequency": 5.0}, {"sample_rate": 37.0, "amplitude": 2.0}, {"phase": 45.0, "offset": 1.0}],
    "cosine": [{"frequency": 0.3}, {"sample_rate": 11.0}, {"phase": -90.0, "interval": 0.0}],
    "square": [{"frequency": 3.3}, {"duty_cycle": 0.8}, {"sample_rate": 7.0, "offset": 2.0}],
    "sawtooth": [{"frequency": 0.7}, {"sample_rate": 13.0}, {"amplitude": -2.0, "phase": 10.0}],
    "triangle": [{"frequency": 4.1}, {"sample_rate": 9.0}, {"amplitude": 5.0, "phase": 100.0}],
    "normal": [{"mean": 3.0}, {"std_dev": 0.1}, {"interval": 0.5}],
    "uniform": [{"min_val": -5.0}, {"max_val": 10.0}, {"interval": 0.0}],
    "exponential": [{"scale": 3.0}, {"scale": 0.01}],
    "random": [{"anomaly_probability": 0.5}, {"base_value": 2.0, "anomaly_range": 1.0},
               {"anomaly_probability": 0.0}],
    "random-square": [{"minimum_interval": 2, "maximum_interval": 5},
                      {"min_anomaly_duration": 3, "max_anomaly_duration": 12},
                      {"base_value": 1.0, "anomaly_magnitude": -3.0}],
    "clustered": [{"minimum_interval": 1, "maximum_interval": 4},
                  {"min_anomaly_length": 1, "max_anomaly_length": 2},
                  {"constant_value": 1.0, "data_interval": 0.0}],
    "periodic-spike": [{"spike_interval": 7.0}, {"data_interval": 0.5}, {"min_spike_range": 0.0, "base_value": 1.0}],
    "count-per-duration": [{"num_anomalies": 3, "duration": 40.0}, {"duration": 25.0},
                           {"data_interval": 0.5}, {"base_value": -1.0, "max_anomaly_range": 20.0}],
    "random-walk": [{"drift": -0.3, "volatility": 0.5}, {"min": -2.0, "max": 2.0, "start": 1.0},
                    {"min": None, "max": None}, {"volatility": 3.0, "interval": 0.0}],
    "ou": [{"mean": 5.0}, {"theta": 2.0, "dt": 0.01}, {"sigma": 0.0}, {"start": -3.0}],
    "pulse": [{"on_duration": 0.7}, {"dt": 0.03}, {"on_value": 5.0, "off_value": -1.0}],
    "steps": [{"steps": "1,0,1,5"}, {"dt": 0.07}, {"steps": [[0.25, 3.0]]}],
    "pattern": [{"samples_per_value": 3}, {"values": [9.0, 8.0]}, {"interpolation": "step"},
                {"samples_per_value": 11, "values": "1,2,3,4,5"}],
    "seasonal": [{"dt": 60.0}, {"trend": -2e-6}, {"start": 1.7e9, "utc_offset": 2.0},
                 {"components": [{"name": "hourly", "period": "hour", "amplitudes": [1.0, 0.5, 0.25]}]}],
    "replay": [{"value_column": "label"}, {"interval": 0.25}, {"value_column": "value"}],   # at_end "end": NaN past it
}

PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**64 - 1)


def test_every_kind_has_start_params_and_updates():
    assert set(START) == set(KINDS) == set(UPDATES)
    for kind in KINDS:
        g = create(kind, START[kind], seed=1)
        for u in UPDATES[kind]:
            g.update(u)


def run(kind, seed, chunks, updates):
    """Take ``chunks`` samples in turn, applying each update (at, index)
    when the stream reaches ``at``; returns values and labels."""
    g = create(kind, START[kind], seed=seed)
    pending = sorted(updates)
    vals, labs = [], []
    for m in chunks:
        while m:
            while pending and pending[0][0] == g.seq:
                g.update(UPDATES[kind][pending.pop(0)[1]])
            step = m if not pending else min(m, pending[0][0] - g.seq)
            b = g.take(step)
            assert b.seq == g.seq - step and len(b) == step
            vals.append(b.values)
            labs.append(b.labels)
            m -= step
    while pending and pending[0][0] == g.seq:
        g.update(UPDATES[kind][pending.pop(0)[1]])
    values = np.concatenate(vals) if vals else np.empty(0)
    labels = None if GENERATORS[kind].cls.anomalous is False else (
        np.concatenate(labs) if labs else np.empty(0, bool))
    return values, labels


@st.composite
def split_plan(draw, kind):
    total = draw(st.integers(0, 3000))
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=40)))
    chunks = [b - a for a, b in zip([0] + cuts, cuts + [total])]
    n_up = len(UPDATES[kind])
    updates = draw(st.lists(st.tuples(st.integers(0, total), st.integers(0, n_up - 1)), max_size=5))
    return total, chunks, updates


@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data(), seed=seeds)
def test_block_split_invariance_with_updates(kind, data, seed):
    total, chunks, updates = data.draw(split_plan(kind))
    ref_v, ref_l = run(kind, seed, [total], updates)
    v, l = run(kind, seed, chunks, updates)
    assert len(ref_v) == total
    assert ref_v.dtype == np.float64 and np.all(np.isfinite(ref_v))
    np.testing.assert_array_equal(v, ref_v)   # bitwise: assert_array_equal on floats is exact
    assert v.tobytes() == ref_v.tobytes()
    if GENERATORS[kind].anomalous:
        assert ref_l.dtype == np.bool_
        np.testing.assert_array_equal(l, ref_l)
    else:
        assert ref_l is None and l is None


@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data(), seed=seeds, sizes=st.lists(st.integers(0, 700), min_size=1, max_size=8))
def test_one_sample_at_a_time_equals_one_block(kind, data, seed, sizes):
    # take(1) has its own fast path in several kinds: it must agree bit for
    # bit with the vectorised one, before and after updates
    total = sum(sizes)
    ones_n = min(total, 400)
    updates = data.draw(st.lists(st.tuples(st.integers(0, ones_n), st.integers(0, len(UPDATES[kind]) - 1)),
                                 max_size=4))
    ref_v, ref_l = run(kind, seed, [total], updates)
    v, l = run(kind, seed, [1] * ones_n, [u for u in updates if u[0] < ones_n])
    assert v.tobytes() == ref_v[:ones_n].tobytes()
    if ref_l is not None:
        np.testing.assert_array_equal(l, ref_l[:ones_n])
    again, _ = run(kind, seed, sizes, updates)
    assert again.tobytes() == ref_v.tobytes()


@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(seed=seeds, n=st.integers(0, 6000), k=st.integers(0, 400))
def test_start_seq_gives_the_uninterrupted_stream(kind, seed, n, k):
    whole = create(kind, START[kind], seed=seed).take(n + k)
    g = create(kind, START[kind], seed=seed, start_seq=n)
    assert g.seq == n
    b = g.take(k)
    assert b.seq == n
    assert b.values.tobytes() == whole.values[n:].tobytes()
    if whole.labels is not None:
        np.testing.assert_array_equal(b.labels, whole.labels[n:])
    # seek from a fresh generator gives the same
    h = create(kind, START[kind], seed=seed)
    h.seek(n)
    assert h.take(k).values.tobytes() == whole.values[n:].tobytes()


@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data(), seed=seeds)
def test_seek_after_updates_equals_taking_the_samples(kind, data, seed):
    a = data.draw(st.integers(0, 1500), label="taken before")
    jump = data.draw(st.integers(0, 3000), label="skipped")
    k = data.draw(st.integers(0, 500), label="taken after")
    up = data.draw(st.lists(st.integers(0, len(UPDATES[kind]) - 1), max_size=3), label="updates at a")
    g = create(kind, START[kind], seed=seed)
    h = create(kind, START[kind], seed=seed)
    for gen in (g, h):
        gen.take(a)
        for i in up:
            gen.update(UPDATES[kind][i])
    g.take(jump)
    h.seek(a + jump)
    assert g.seq == h.seq == a + jump
    bg, bh = g.take(k), h.take(k)
    assert bg.values.tobytes() == bh.values.tobytes()
    if bg.labels is not None:
        np.testing.assert_array_equal(bg.labels, bh.labels)


@pytest.mark.parametrize("kind", KINDS)
def test_far_start_seq_equals_the_uninterrupted_stream(kind):
    # the processes compute every sample on the way: their start_seq is capped
    n, k = (100_000 if kind in ("random-walk", "ou") else 1_234_567), 5000
    whole = create(kind, {}, seed=99).take(n + k)
    b = create(kind, {}, seed=99, start_seq=n).take(k)
    assert b.values.tobytes() == whole.values[n:].tobytes()
    if whole.labels is not None:
        np.testing.assert_array_equal(b.labels, whole.labels[n:])


@pytest.mark.parametrize("kind", KINDS)
def test_seek_in_steps_equals_one_seek(kind):
    far = 20_000 if kind in ("random-walk", "ou") else 90_000   # under the processes' start_seq caps
    g = create(kind, START[kind], seed=5)
    for n in (10, 10, 500, 501, far, far):
        g.seek(n)
        assert g.seq == n
    h = create(kind, START[kind], seed=5, start_seq=far)
    assert g.take(2000).values.tobytes() == h.take(2000).values.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_seek_backwards_and_negative_take_refused(kind):
    g = create(kind, {}, seed=1)
    g.take(10)
    with pytest.raises(ValueError):
        g.seek(9)
    with pytest.raises(ValueError):
        g.take(-1)
    assert g.seq == 10
    empty = g.take(0)
    assert empty.seq == 10 and len(empty) == 0 and empty.values.dtype == np.float64
    if GENERATORS[kind].anomalous:
        assert empty.labels is not None and empty.labels.dtype == np.bool_ and len(empty.labels) == 0
    assert g.seq == 10


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=10, deadline=None)
@given(seed=seeds)
def test_same_seed_same_stream(kind, seed):
    a = create(kind, START[kind], seed=seed).take(2000)
    b = create(kind, START[kind], seed=seed).take(2000)
    assert a.values.tobytes() == b.values.tobytes()
    if a.labels is not None:
        np.testing.assert_array_equal(a.labels, b.labels)


RANDOM_KINDS = [k for k in KINDS if k not in ("sine", "cosine", "square", "sawtooth", "triangle",
                                               "pulse", "steps", "pattern", "replay")]


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_other_seed_other_stream(kind):
    params = {**START[kind], **({"spike_interval": 1.0} if kind == "periodic-spike" else {})}
    a = create(kind, params, seed=1).take(5000)
    b = create(kind, params, seed=2).take(5000)
    assert a.values.tobytes() != b.values.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_drawn_seed_reproduces_the_stream(kind):
    g = create(kind, START[kind])
    assert isinstance(g.seed, int) and 0 <= g.seed < SEED_DRAW_LIMIT
    mine = g.take(3000)
    again = create(kind, START[kind], seed=g.seed).take(3000)
    assert mine.values.tobytes() == again.values.tobytes()
    if mine.labels is not None:
        np.testing.assert_array_equal(mine.labels, again.labels)
    # drawn seeds differ from one generator to the next
    assert len({create(kind).seed for _ in range(20)}) == 20


@pytest.mark.parametrize("kind", ["random", "random-square", "periodic-spike", "count-per-duration", "clustered"])
@settings(max_examples=15, deadline=None)
@given(seed=seeds, base=st.floats(-1e3, 1e3), n=st.integers(1, 5000))
def test_labels_exactly_where_value_deviates(kind, seed, base, n):
    level = "constant_value" if kind == "clustered" else "base_value"
    b = create(kind, {**START[kind], level: base}, seed=seed).take(n)
    np.testing.assert_array_equal(b.values != base, b.labels)


def test_non_anomalous_kinds_have_no_labels():
    for kind in KINDS:
        b = create(kind, START[kind], seed=1).take(5)
        assert (b.labels is not None) == GENERATORS[kind].anomalous
