"""Distributions: statistical tests on a million samples with fixed seeds, the
exact mapping of draws to values, and live updates."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from wsgen.engine import create

N = 1_000_000
SEED = 20240601
#: significance of every statistical test below (fixed seeds: deterministic)
ALPHA = 1e-4


def sample(name, params=None, n=N, seed=SEED):
    block = create(name, params or {}, seed=seed).take(n)
    assert block.labels is None
    assert block.values.dtype == np.float64 and block.values.shape == (n,)
    assert np.all(np.isfinite(block.values))
    return block.values


def lag1_corr(x):
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (-3.5, 0.25), (1e6, 1e3)])
def test_normal_ks_and_moments(mean, std):
    v = sample("normal", {"mean": mean, "std_dev": std})
    assert stats.kstest(v, "norm", args=(mean, std)).pvalue > ALPHA
    se = std / np.sqrt(N)
    assert abs(v.mean() - mean) < 5 * se
    assert abs(v.std() / std - 1) < 5 * np.sqrt(0.5 / N)
    assert abs(stats.skew(v)) < 5 * np.sqrt(6 / N)
    assert abs(stats.kurtosis(v)) < 5 * np.sqrt(24 / N)
    assert abs(lag1_corr(v)) < 5 / np.sqrt(N)


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (-7.0, 3.0), (5.0, 5.5)])
def test_uniform_ks_bounds_and_histogram(lo, hi):
    v = sample("uniform", {"min_val": lo, "max_val": hi})
    assert v.min() >= lo and v.max() < hi
    assert stats.kstest(v, "uniform", args=(lo, hi - lo)).pvalue > ALPHA
    counts, _ = np.histogram(v, bins=100, range=(lo, hi))
    assert stats.chisquare(counts).pvalue > ALPHA
    assert abs(lag1_corr(v)) < 5 / np.sqrt(N)


def test_uniform_with_equal_bounds_is_constant():
    v = sample("uniform", {"min_val": 2.5, "max_val": 2.5}, n=1000)
    assert np.all(v == 2.5)


@pytest.mark.parametrize("scale", [1.0, 0.01, 250.0])
def test_exponential_ks_and_mean(scale):
    v = sample("exponential", {"scale": scale})
    assert v.min() >= 0
    assert stats.kstest(v, "expon", args=(0, scale)).pvalue > ALPHA
    assert abs(v.mean() / scale - 1) < 5 / np.sqrt(N)
    assert abs(lag1_corr(v)) < 5 / np.sqrt(N)


@pytest.mark.parametrize("name", ["normal", "uniform", "exponential"])
def test_same_seed_same_stream_other_seed_other_stream(name):
    a = sample(name, n=10_000, seed=1)
    b = sample(name, n=10_000, seed=1)
    c = sample(name, n=10_000, seed=2)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a == c) < 0.01


def test_distribution_kinds_use_independent_streams():
    u = sample("uniform", n=100_000, seed=7)
    e = sample("exponential", n=100_000, seed=7)
    # the same seed gives kinds their own streams: exponential is not -ln(1-u)
    assert not np.allclose(e, -np.log1p(-u))
    assert abs(np.corrcoef(u, e)[0, 1]) < 5 / np.sqrt(100_000)


def test_parameters_only_change_the_mapping_of_the_draws():
    # the draws are the same whatever the parameters: values are an exact
    # affine map of the standard ones
    z = sample("normal", n=10_000, seed=3)
    np.testing.assert_array_equal(sample("normal", {"mean": 2.0, "std_dev": 3.0}, n=10_000, seed=3),
                                  z * 3.0 + 2.0)
    u = sample("uniform", n=10_000, seed=3)
    np.testing.assert_array_equal(sample("uniform", {"min_val": -1.0, "max_val": 4.0}, n=10_000, seed=3),
                                  u * 5.0 - 1.0)
    e = sample("exponential", n=10_000, seed=3)
    np.testing.assert_array_equal(sample("exponential", {"scale": 4.0}, n=10_000, seed=3), e * 4.0)


@pytest.mark.parametrize("name,change,mapping", [
    ("normal", {"mean": 100.0, "std_dev": 2.0}, lambda v: v * 2.0 + 100.0),
    ("uniform", {"min_val": 10.0, "max_val": 12.0}, lambda v: v * 2.0 + 10.0),
    ("exponential", {"scale": 0.5}, lambda v: v * 0.5),
])
def test_update_applies_from_the_next_sample(name, change, mapping):
    ref = sample(name, n=5000, seed=9)
    g = create(name, {}, seed=9)
    first = g.take(1234).values
    new = g.update(change)
    assert all(getattr(new, k) == v for k, v in change.items())
    rest = g.take(5000 - 1234).values
    np.testing.assert_array_equal(first, ref[:1234])
    np.testing.assert_array_equal(rest, mapping(ref[1234:]))
    # an interval change alone paces, it does not change values
    g2 = create(name, {}, seed=9)
    g2.take(100)
    g2.update({"interval": 0.0})
    np.testing.assert_array_equal(g2.take(4900).values, ref[100:])


def test_normal_box_muller_formula_on_the_stream():
    # z = sqrt(-2 ln(1 - u1)) cos(2 pi u2) with u1, u2 consecutive doubles of
    # the kind's PCG64 stream
    from wsgen.engine import RandomStream
    u = RandomStream(5, key=11, draws=2).uniforms(0, 1000)
    z = np.sqrt(-2.0 * np.log1p(-u[:, 0])) * np.cos(2 * np.pi * u[:, 1])
    np.testing.assert_allclose(sample("normal", n=1000, seed=5), z, rtol=1e-12, atol=1e-12)
