"""Anomaly kinds: label positions and counts, values at and away from labels,
statistics of the random draws on a million samples (fixed seeds), and the
live-update rules of ``wsgen.engine.anomalies``."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from wsgen.engine import ANOMALY_KINDS, create

N = 1_000_000
SEED = 424242
ALPHA = 1e-4


def take(name, n, params=None, seed=SEED):
    block = create(name, params or {}, seed=seed).take(n)
    assert block.values.dtype == np.float64 and block.values.shape == (n,)
    assert block.labels is not None and block.labels.dtype == np.bool_ and block.labels.shape == (n,)
    return block.values, block.labels


def runs(labels):
    """(start, end) of each run of True, end exclusive."""
    d = np.diff(np.r_[0, labels.astype(np.int8), 0])
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def check_runs(labels, min_gap, max_gap, min_len, max_len, origin=0):
    """Every complete run and gap (from ``origin``) lies within its bounds."""
    starts, ends = runs(labels)
    assert len(starts) > 0
    assert min_gap <= starts[0] - origin <= max_gap
    complete = ends < len(labels)
    lengths = (ends - starts)[complete]
    assert lengths.min() >= min_len and lengths.max() <= max_len
    gaps = starts[1:] - ends[:-1]
    assert gaps.min() >= min_gap and gaps.max() <= max_gap
    # an unfinished run is no longer than allowed either
    assert (ends - starts).max() <= max_len
    return starts, ends


def test_anomaly_kinds_are_the_five_of_the_original():
    assert set(ANOMALY_KINDS) == {"random", "random-square", "clustered", "periodic-spike",
                                  "count-per-duration"}


# -- random -------------------------------------------------------------------

def test_random_label_rate_and_values():
    p, r, base = 0.05, 10.0, 3.0
    v, lab = take("random", N, {"anomaly_probability": p, "anomaly_range": r, "base_value": base})
    k = int(lab.sum())
    assert stats.binomtest(k, N, p).pvalue > ALPHA
    # the value deviates exactly where labelled
    np.testing.assert_array_equal(v != base, lab)
    assert np.all(v[~lab] == base)
    off = v[lab] - base
    assert off.min() >= -r and off.max() < r
    assert stats.kstest(off, "uniform", args=(-r, 2 * r)).pvalue > ALPHA
    # labels are independent of each other: runs of length 2 occur at rate p
    assert stats.binomtest(int(np.sum(lab[1:] & lab[:-1])), N - 1, p * p).pvalue > ALPHA


@pytest.mark.parametrize("p,expected", [(0.0, 0), (1.0, 5000)])
def test_random_probability_bounds(p, expected):
    v, lab = take("random", 5000, {"anomaly_probability": p})
    assert lab.sum() == expected


def test_random_update_applies_from_seq():
    ref_v, ref_l = take("random", 4000, {"anomaly_probability": 0.3})
    g = create("random", {"anomaly_probability": 0.3}, seed=SEED)
    a = g.take(1500)
    g.update({"base_value": 7.0, "anomaly_range": 1.0})
    b = g.take(2500)
    np.testing.assert_array_equal(a.values, ref_v[:1500])
    # the same draws decide: labels unchanged, values rescaled and shifted
    np.testing.assert_array_equal(np.r_[a.labels, b.labels], ref_l)
    np.testing.assert_allclose(b.values, 7.0 + ref_v[1500:] / 10.0, rtol=0, atol=1e-12)
    g.update({"anomaly_probability": 0.0})
    assert not g.take(1000).labels.any()


# -- random-square and clustered ------------------------------------------------

EVENT_KINDS = {
    "random-square": ("min_anomaly_duration", "max_anomaly_duration", "base_value"),
    "clustered": ("min_anomaly_length", "max_anomaly_length", "constant_value"),
}


@pytest.mark.parametrize("kind", list(EVENT_KINDS))
@pytest.mark.parametrize("bounds", [(50, 150, 5, 10), (1, 1, 1, 1), (3, 7, 1, 4), (100, 100, 20, 20)])
def test_event_runs_within_bounds(kind, bounds):
    lo_len, hi_len, level = EVENT_KINDS[kind]
    g0, g1, l0, l1 = bounds
    params = {"minimum_interval": g0, "maximum_interval": g1, lo_len: l0, hi_len: l1, level: 2.0}
    v, lab = take(kind, 100_000, params)
    check_runs(lab, g0, g1, l0, l1)
    assert np.all(v[~lab] == 2.0)
    if g0 == g1 and l0 == l1:   # fully determined: a gap, a run, a gap, ...
        period = g0 + l0
        expected = (np.arange(100_000) % period) >= g0
        np.testing.assert_array_equal(lab, expected)


def test_random_square_defaults_statistics():
    v, lab = take("random-square", N)
    starts, ends = check_runs(lab, 50, 150, 5, 10)
    # plateau at base + magnitude exactly where labelled
    np.testing.assert_array_equal(v, np.where(lab, 10.0, 0.0))
    complete = ends < N
    lengths = (ends - starts)[complete]
    gaps = np.r_[starts[0], starts[1:] - ends[:-1]]
    # lengths uniform on 5..10, gaps uniform on 50..150 (inclusive)
    assert np.array_equal(np.unique(lengths), np.arange(5, 11))
    assert stats.chisquare(np.bincount(lengths, minlength=11)[5:]).pvalue > ALPHA
    assert np.array_equal(np.unique(gaps), np.arange(50, 151))
    assert stats.chisquare(np.bincount(gaps, minlength=151)[50:]).pvalue > ALPHA
    # about N / (mean gap + mean length) events
    assert abs(len(starts) - N / (100 + 7.5)) < 5 * np.sqrt(N / 107.5)


def test_clustered_defaults_statistics():
    v, lab = take("clustered", N, {"constant_value": -1.0, "anomaly_magnitude": 4.0})
    starts, ends = check_runs(lab, 50, 150, 5, 10)
    np.testing.assert_array_equal(v != -1.0, lab)
    off = v[lab] + 1.0
    assert off.min() >= -4.0 and off.max() < 4.0
    assert stats.kstest(off, "uniform", args=(-4.0, 8.0)).pvalue > ALPHA
    assert abs(lag1_corr := float(np.corrcoef(off[:-1], off[1:])[0, 1])) < 5 / np.sqrt(len(off)), lag1_corr
    lengths = (ends - starts)[ends < N]
    assert stats.chisquare(np.bincount(lengths, minlength=11)[5:]).pvalue > ALPHA


@pytest.mark.parametrize("kind", list(EVENT_KINDS))
def test_event_level_updates_keep_event_places(kind):
    lo_len, hi_len, level = EVENT_KINDS[kind]
    ref_v, ref_l = take(kind, 5000)
    g = create(kind, {}, seed=SEED)
    a = g.take(2000)
    g.update({level: 5.0, "anomaly_magnitude": 1.0, "data_interval": 0.5})
    b = g.take(3000)
    np.testing.assert_array_equal(a.values, ref_v[:2000])
    np.testing.assert_array_equal(np.r_[a.labels, b.labels], ref_l)
    assert np.all(b.values[~b.labels] == 5.0)
    if kind == "random-square":
        assert np.all(b.values[b.labels] == 6.0)
    else:
        np.testing.assert_allclose(b.values[b.labels], 5.0 + ref_v[2000:][ref_l[2000:]] / 10.0,
                                   rtol=0, atol=1e-12)


def _update_point(labels, inside):
    """A sample index where an event is in progress (inside) or not."""
    starts, ends = runs(labels)
    if inside:
        return int(starts[5] + 2)      # in the middle of the sixth run
    return int(ends[5] + 3)            # in the sixth gap


@pytest.mark.parametrize("kind", list(EVENT_KINDS))
@pytest.mark.parametrize("inside", [True, False])
def test_event_bounds_update_rules(kind, inside):
    lo_len, hi_len, _ = EVENT_KINDS[kind]
    _, ref_l = take(kind, 3000)
    u = _update_point(ref_l, inside)
    assert ref_l[u] == inside
    g = create(kind, {}, seed=SEED)
    a = g.take(u)
    new = {"minimum_interval": 3, "maximum_interval": 6, lo_len: 1, hi_len: 2}
    g.update(new)
    b = g.take(3000)
    np.testing.assert_array_equal(a.labels, ref_l[:u])
    lab = np.r_[a.labels, b.labels]
    ref_starts, ref_ends = runs(ref_l)
    last = int(np.searchsorted(ref_starts, u) - 1)  # last event started before u
    last_end = int(ref_ends[last])
    # the event that started before u keeps its place and length
    np.testing.assert_array_equal(lab[:last_end + 1], ref_l[:last_end + 1])
    assert lab[last_end - 1] and not lab[last_end]
    # later gaps and lengths use the new bounds; the first gap counts from the
    # end of that event
    check_runs(lab[last_end:], 3, 6, 1, 2)


# -- periodic-spike -------------------------------------------------------------

def test_periodic_spike_defaults_three_per_hour():
    v, lab = take("periodic-spike", 36_000)
    np.testing.assert_array_equal(np.flatnonzero(lab), np.arange(0, 36_000, 1200))
    for h in range(10):
        assert lab[3600 * h:3600 * (h + 1)].sum() == 3
    np.testing.assert_array_equal(v != 0.0, lab)
    assert np.all((v[lab] >= 5.0) & (v[lab] <= 10.0))


@pytest.mark.parametrize("spike_interval,data_interval,expected", [
    (2.5, 1.0, [0, 3, 5, 8, 10, 13, 15, 18]),     # first sample at or after 0, 2.5, 5, ...
    (0.3, 0.1, [0, 3, 6, 9, 12, 15, 18]),         # 0.3 / 0.1 is not exactly 3 in floating point
    (1.0, 1.0, list(range(20))),
    (7.0, 2.0, [0, 4, 7, 11, 14, 18]),            # 0, 7, 14, 21, 28, 35 s = 3.5, 7, 10.5... samples
])
def test_periodic_spike_positions(spike_interval, data_interval, expected):
    _, lab = take("periodic-spike", 20, {"spike_interval": spike_interval, "data_interval": data_interval})
    assert list(np.flatnonzero(lab)) == expected


def test_periodic_spike_positions_long_run():
    # 0.3 s spikes at 0.1 s samples for a million samples: exactly every third
    _, lab = take("periodic-spike", N, {"spike_interval": 0.3, "data_interval": 0.1})
    np.testing.assert_array_equal(np.flatnonzero(lab), np.arange(0, N, 3))


def test_periodic_spike_heights_uniform():
    v, lab = take("periodic-spike", N, {"spike_interval": 1.0, "base_value": 2.0,
                                        "min_spike_range": -3.0, "max_spike_range": 5.0})
    assert lab.all()
    assert v.min() >= -1.0 and v.max() <= 7.0
    assert stats.kstest(v, "uniform", args=(-1.0, 8.0)).pvalue > ALPHA


def test_periodic_spike_interval_update_keeps_phase():
    g = create("periodic-spike", {"spike_interval": 10.0}, seed=SEED)
    a = g.take(25)                     # spikes at 0, 10, 20; 2.5 periods at 25
    assert list(np.flatnonzero(a.labels)) == [0, 10, 20]
    g.update({"spike_interval": 4.0})  # the next period boundary is 0.5 * 4 = 2 samples on
    b = g.take(20)
    assert list(np.flatnonzero(b.labels) + 25) == [27, 31, 35, 39, 43]
    g.update({"data_interval": 2.0})   # at 45: phase 2.5 + 20/4 = 7.5 periods
    c = g.take(10)                     # 2 s per sample, 4 s per spike: every second sample
    assert list(np.flatnonzero(c.labels) + 45) == [46, 48, 50, 52, 54]


def test_periodic_spike_update_right_after_a_spike():
    g = create("periodic-spike", {"spike_interval": 10.0}, seed=SEED)
    assert list(np.flatnonzero(g.take(21).labels)) == [0, 10, 20]
    g.update({"spike_interval": 1.0})  # phase at 21 is 2.1: the next crossing is at 22
    assert list(np.flatnonzero(g.take(4).labels) + 21) == [22, 23, 24]


def test_periodic_spike_level_update_keeps_positions():
    ref_v, ref_l = take("periodic-spike", 5000, {"spike_interval": 7.0})
    g = create("periodic-spike", {"spike_interval": 7.0}, seed=SEED)
    a = g.take(2000)
    g.update({"base_value": 1.0, "min_spike_range": 0.5, "max_spike_range": 0.5})
    b = g.take(3000)
    np.testing.assert_array_equal(np.r_[a.labels, b.labels], ref_l)
    np.testing.assert_array_equal(a.values, ref_v[:2000])
    assert np.all(b.values[b.labels] == 1.5) and np.all(b.values[~b.labels] == 1.0)


# -- count-per-duration -------------------------------------------------------

def windows(labels, w, origin=0):
    lab = labels[origin:]
    full = len(lab) // w
    return lab[:full * w].reshape(full, w)


@pytest.mark.parametrize("params,w", [
    ({}, 3600),
    ({"num_anomalies": 5, "duration": 100.0}, 100),
    ({"num_anomalies": 7, "duration": 10.0, "data_interval": 0.25}, 40),
    ({"num_anomalies": 30, "duration": 30.0}, 30),
    ({"num_anomalies": 0, "duration": 30.0}, 30),
    ({"num_anomalies": 1, "duration": 1.0}, 1),
    ({"num_anomalies": 2, "duration": 10.0, "data_interval": 3.0}, 3),
])
def test_count_per_duration_exact_counts(params, w, n=36_000):
    v, lab = take("count-per-duration", n, params)
    k = params.get("num_anomalies", 1)
    per = windows(lab, w).sum(axis=1)
    assert len(per) == n // w
    assert np.all(per == k)
    assert lab[(n // w) * w:].sum() <= k
    base = params.get("base_value", 0.0)
    np.testing.assert_array_equal(v[~lab], base)


def test_count_per_duration_statistics():
    w, k = 100, 3
    v, lab = take("count-per-duration", N, {"num_anomalies": k, "duration": float(w),
                                            "base_value": 1.0, "min_anomaly_range": 2.0,
                                            "max_anomaly_range": 6.0})
    win = windows(lab, w)
    assert np.all(win.sum(axis=1) == k)
    np.testing.assert_array_equal(v != 1.0, lab)
    off = v[lab] - 1.0
    assert off.min() >= 2.0 and off.max() <= 6.0
    assert stats.kstest(off, "uniform", args=(2.0, 4.0)).pvalue > ALPHA
    # positions uniform within the window
    pos = np.nonzero(win)[1]
    assert stats.chisquare(np.bincount(pos, minlength=w)).pvalue > ALPHA
    # windows differ from each other
    assert len({tuple(np.flatnonzero(r)) for r in win[:200]}) > 150


def test_count_per_duration_defaults_one_per_hour():
    v, lab = take("count-per-duration", 3600 * 24)
    assert np.all(windows(lab, 3600).sum(axis=1) == 1)
    pos = np.flatnonzero(lab) % 3600
    assert len(set(pos.tolist())) > 20       # not always the same moment
    assert np.all((v[lab] >= -10) & (v[lab] <= 10))


def test_count_per_duration_window_restarts_at_update():
    ref_v, ref_l = take("count-per-duration", 1000, {"num_anomalies": 2, "duration": 100.0})
    g = create("count-per-duration", {"num_anomalies": 2, "duration": 100.0}, seed=SEED)
    a = g.take(150)
    g.update({"num_anomalies": 3})
    b = g.take(1000)
    np.testing.assert_array_equal(a.values, ref_v[:150])
    np.testing.assert_array_equal(a.labels, ref_l[:150])
    assert a.labels[:100].sum() == 2
    # new windows of 100 samples start at the update
    assert np.all(windows(b.labels, 100).sum(axis=1) == 3)
    # a window-size change restarts there too
    g.update({"duration": 50.0})
    c = g.take(500)
    assert np.all(windows(c.labels, 50).sum(axis=1) == 3)
    g.update({"data_interval": 0.5})  # 50 s at 0.5 s: 100 samples
    d = g.take(1000)
    assert np.all(windows(d.labels, 100).sum(axis=1) == 3)


def test_count_per_duration_duration_and_interval_change_restart_even_if_size_is_kept():
    g = create("count-per-duration", {"num_anomalies": 4, "duration": 100.0}, seed=SEED)
    g.take(130)
    # 200 s at 2 s per sample: still 100 samples, but a new window starts at 130
    g.update({"duration": 200.0, "data_interval": 2.0})
    b = g.take(1000)
    assert np.all(windows(b.labels, 100).sum(axis=1) == 4)


def test_count_per_duration_level_update_keeps_windows():
    params = {"num_anomalies": 3, "duration": 50.0}
    ref_v, ref_l = take("count-per-duration", 1000, params)
    g = create("count-per-duration", params, seed=SEED)
    a = g.take(120)
    g.update({"base_value": 4.0, "min_anomaly_range": 1.0, "max_anomaly_range": 1.0})
    b = g.take(880)
    np.testing.assert_array_equal(np.r_[a.labels, b.labels], ref_l)
    assert np.all(b.values[b.labels] == 5.0) and np.all(b.values[~b.labels] == 4.0)


# -- every kind ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_labels_true_exactly_where_value_deviates_on_defaults(kind):
    params = {"count-per-duration": {"duration": 50.0}, "periodic-spike": {"spike_interval": 13.0},
              "random": {"anomaly_probability": 0.2}}.get(kind, {})
    v, lab = take(kind, 100_000, {**params, ("constant_value" if kind == "clustered" else "base_value"): 1.5})
    assert 0 < lab.sum() < len(lab)
    np.testing.assert_array_equal(v != 1.5, lab)
