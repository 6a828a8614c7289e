"""The kinds of issue 15 at the engine: random-walk, ou, pulse, steps, pattern,
seasonal. Statistical tests with fixed seeds (KS on the walk's increments, the
OU stationary mean and variance), exact values against sample-by-sample
references written from the formulas, live-update rules, validation that
names the field. Block-split invariance, seeks and seeds of every kind are in
test_engine_properties.py."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from scipy import stats

from wsgen.engine import InvalidParams, create
from wsgen.engine.composite import create_composite
from wsgen.engine.processes import MAX_START_SEQ, MAX_START_SEQ_BOUNDED

ALPHA = 1e-4
SEED = 20261202


def values(kind, params=None, n=1000, seed=SEED, start_seq=0):
    return create(kind, params or {}, seed=seed, start_seq=start_seq).take(n).values


def refused(kind, params, field, *words):
    with pytest.raises(InvalidParams) as info:
        create(kind, params, seed=1)
    fields = [d["field"] for d in info.value.details]
    assert field in fields, info.value.details
    message = info.value.details[fields.index(field)]["message"]
    for w in words:
        assert w in message, (w, message)
    # the same change as a live update is refused too, leaving the generator as it was
    g = create(kind, {}, seed=1)
    before = g.params
    with pytest.raises(InvalidParams):
        g.update(params)
    assert g.params == before


# -- random-walk ---------------------------------------------------------------------

def walk_reference(start, drift, vol, lo, hi, n, seed):
    """x[0] = start, x[k] = R(x[k-1] + (drift + vol * z[k])) one sample at a
    time, with z[k] the `normal` kind's draws and R the documented reflection:
    one mirror (2*max - y, 2*min - y) for an overshoot of at most the width,
    else the fold ``min + w - |((y - min) mod 2w) - w|``."""
    z = create("normal", {}, seed=seed).take(n).values
    xs, x = [], start
    for k in range(n):
        if k:
            y = x + (z[k] * vol + drift)
            if hi is not None and y > hi and (lo is None or y - hi <= hi - lo):
                y = 2 * hi - y
            elif lo is not None and y < lo and (hi is None or lo - y <= hi - lo):
                y = 2 * lo - y
            elif (lo is not None and y < lo) or (hi is not None and y > hi):
                w = hi - lo
                y = lo + w - abs(math.fmod(y - lo, 2 * w) % (2 * w) - w)
            x = min(max(y, lo if lo is not None else -math.inf), hi if hi is not None else math.inf)
        xs.append(x)
    return np.array(xs)


def test_random_walk_increments_are_normal_ks():
    drift, vol = 0.25, 3.0
    x = values("random-walk", {"drift": drift, "volatility": vol, "start": 10.0}, n=200_001)
    assert x[0] == 10.0
    inc = np.diff(x)
    assert stats.kstest(inc, "norm", args=(drift, vol)).pvalue > ALPHA
    assert abs(inc.mean() - drift) < 5 * vol / math.sqrt(len(inc))
    # independent increments: no lag-1 correlation
    assert abs(np.corrcoef(inc[:-1], inc[1:])[0, 1]) < 5 / math.sqrt(len(inc))
    # and the walk is exactly the running sum of the normal kind's draws
    np.testing.assert_array_equal(x[:5000], walk_reference(10.0, drift, vol, None, None, 5000, SEED))


def test_random_walk_reflects_exactly_at_the_bounds():
    # no noise, dyadic steps: every value is exact
    x = values("random-walk", {"drift": 0.375, "volatility": 0.0, "max": 1.0}, n=8)
    assert x.tolist() == [0.0, 0.375, 0.75, 0.875, 0.75, 0.875, 0.75, 0.875]
    x = values("random-walk", {"drift": -0.375, "volatility": 0.0, "min": -1.0, "start": -0.25}, n=6)
    assert x.tolist() == [-0.25, -0.625, -1.0, -0.625, -1.0, -0.625]
    # a step longer than the range: mirrored back and forth until inside
    x = values("random-walk", {"drift": 2.5, "volatility": 0.0, "min": 0.0, "max": 1.0}, n=4)
    assert x.tolist() == [0.0, 0.5, 1.0, 0.5]


@pytest.mark.parametrize("lo,hi", [(-2.0, 2.0), (None, 1.5), (-0.5, None), (0.0, 0.75)])
def test_random_walk_with_bounds_equals_the_sample_by_sample_reference(lo, hi):
    params = {"drift": 0.05, "volatility": 0.8, "min": lo, "max": hi, "start": 0.0}
    x = values("random-walk", params, n=6000)
    np.testing.assert_array_equal(x, walk_reference(0.0, 0.05, 0.8, lo, hi, 6000, SEED))
    assert (lo is None or x.min() >= lo) and (hi is None or x.max() <= hi)
    # it does touch the neighbourhood of each bound (the reflection is exercised)
    if lo is not None:
        assert x.min() < lo + 0.2
    if hi is not None:
        assert x.max() > hi - 0.2


@pytest.mark.parametrize("params", [
    {"drift": 0.0, "volatility": 1.0, "min": -40.0, "max": 25.0, "start": 20.0},   # long excursions, clusters
    {"drift": 0.3, "volatility": 1.0, "min": -30.0, "max": 3.0},                  # pinned at max by the drift
    {"drift": -0.75, "volatility": 0.0, "min": -9.5, "max": 9.5},                 # no noise: the drift alone
    {"drift": 0.0, "volatility": 2.0, "min": -0.4, "max": 0.3},                   # overshoots fold
    {"drift": 0.01, "volatility": 0.5, "max": 4.0},
])
def test_random_walk_vectorised_and_scalar_parts_give_the_reference_bits(params):
    # far from a bound windows are accumulated vectorised, near one a scalar
    # loop runs: whichever computed a sample, and whatever the block sizes,
    # the bits are the sample-by-sample reference's
    n = 40_000
    ref = walk_reference(params.get("start", 0.0), params["drift"], params["volatility"], params.get("min"),
                         params.get("max"), n, SEED)
    assert values("random-walk", params, n=n).tobytes() == ref.tobytes()
    g = create("random-walk", params, seed=SEED)
    sizes = [1, 7, 4096, 63, 1000, 3, 20_000]
    parts = [g.take(k).values for k in sizes]
    parts.append(g.take(n - sum(sizes)).values)
    assert np.concatenate(parts).tobytes() == ref.tobytes()


def test_random_walk_between_equal_bounds_stays_there():
    x = values("random-walk", {"min": 0.5, "max": 0.5, "start": 0.5, "volatility": 3.0}, n=5000)
    assert x.tolist() == [0.5] * 5000


def test_random_walk_update_continues_from_the_current_value():
    g = create("random-walk", {"drift": 1.0, "volatility": 0.0}, seed=1)
    assert g.take(4).values.tolist() == [0.0, 1.0, 2.0, 3.0]
    g.update({"drift": -0.5})
    assert g.take(3).values.tolist() == [2.5, 2.0, 1.5]
    g.update({"max": 1.75, "min": 0.0})          # reflects the first step from 1.5
    assert g.take(3).values.tolist() == [1.0, 0.5, 0.0]
    g.update({"start": 1.25})                     # a new start restarts the walk there
    assert g.take(2).values.tolist() == [1.25, 0.75]


def test_random_walk_validation_names_the_field():
    refused("random-walk", {"min": 3.0, "max": 1.0}, "min", "<= max")
    refused("random-walk", {"min": 1.0, "max": 3.0}, "start", "inside [min, max]")
    refused("random-walk", {"volatility": -1.0}, "volatility", "greater than or equal to 0")
    refused("random-walk", {"max": "high"}, "max")
    refused("random-walk", {"max": 1e300}, "max", "less than or equal to")
    with pytest.raises(InvalidParams) as info:
        create("random-walk", {}, seed=1, start_seq=MAX_START_SEQ + 1)
    assert info.value.details[0]["field"] == "start_seq" and str(MAX_START_SEQ) in info.value.details[0]["message"]
    assert create("random-walk", {}, seed=1, start_seq=MAX_START_SEQ).seq == MAX_START_SEQ
    # with a bound, reflections may need a scalar loop: a lower cap
    with pytest.raises(InvalidParams) as info:
        create("random-walk", {"max": 5.0}, seed=1, start_seq=MAX_START_SEQ_BOUNDED + 1)
    assert info.value.details[0]["field"] == "start_seq" and str(MAX_START_SEQ_BOUNDED) in info.value.details[0]["message"]
    b = create("random-walk", {"min": -1.0, "max": 1.0}, seed=4, start_seq=MAX_START_SEQ_BOUNDED).take(100)
    whole = walk_reference(0.0, 0.0, 1.0, -1.0, 1.0, MAX_START_SEQ_BOUNDED + 100, 4)
    assert b.values.tobytes() == whole[MAX_START_SEQ_BOUNDED:].tobytes()


# -- ou ------------------------------------------------------------------------------

def test_ou_exact_discretisation_sample_by_sample():
    theta, sigma, mean, dt, start = 0.7, 1.3, 4.0, 0.25, -2.0
    x = values("ou", {"theta": theta, "sigma": sigma, "mean": mean, "dt": dt, "start": start}, n=3000)
    z = create("normal", {}, seed=SEED).take(3000).values
    a = math.exp(-theta * dt)
    s = sigma * math.sqrt((1 - math.exp(-2 * theta * dt)) / (2 * theta))
    ref, y = [start], start - mean
    for k in range(1, 3000):
        y = z[k] * s + a * y
        ref.append(y + mean)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-12)
    assert x[0] == start


@pytest.mark.parametrize("theta,sigma,mean,dt", [(1.0, 1.0, 0.0, 1.0), (0.2, 3.0, 10.0, 0.5), (5.0, 0.5, -3.0, 2.0)])
def test_ou_stationary_mean_and_variance(theta, sigma, mean, dt):
    n = 400_000
    x = values("ou", {"theta": theta, "sigma": sigma, "mean": mean, "dt": dt, "start": mean}, n=n)
    var = sigma ** 2 / (2 * theta)
    a = math.exp(-theta * dt)
    # AR(1): the sample mean's variance is var/n * (1+a)/(1-a); the sample
    # variance's relative error is about sqrt(2/n * (1+a^2)/(1-a^2))
    se_mean = math.sqrt(var / n * (1 + a) / (1 - a))
    assert abs(x.mean() - mean) < 5 * se_mean
    assert abs(x.var() / var - 1) < 5 * math.sqrt(2 / n * (1 + a * a) / (1 - a * a))
    # lag-1 autocorrelation is exp(-theta dt)
    r1 = np.corrcoef(x[:-1] - mean, x[1:] - mean)[0, 1]
    assert abs(r1 - a) < 5 * math.sqrt((1 - a * a) / n) + 1e-3
    # the standardised innovations are standard normal
    s = math.sqrt(var * (1 - a * a))
    innov = ((x[1:] - mean) - a * (x[:-1] - mean)) / s
    assert stats.kstest(innov, "norm").pvalue > ALPHA


def test_ou_update_continues_from_the_current_value():
    g = create("ou", {"sigma": 0.0, "theta": math.log(2), "mean": 0.0, "start": 8.0}, seed=1)
    np.testing.assert_allclose(g.take(4).values, [8.0, 4.0, 2.0, 1.0], rtol=1e-15)
    g.update({"mean": 1.0})                        # reverts toward 1 from x = 1: stays
    np.testing.assert_allclose(g.take(2).values, [1.0, 1.0], rtol=1e-15)
    g.update({"mean": 5.0, "dt": 2.0})             # half-life 1 s, dt 2 s: 3/4 of the way each step
    np.testing.assert_allclose(g.take(2).values, [4.0, 4.75], rtol=1e-15)


def test_ou_validation_names_the_field():
    refused("ou", {"theta": 0}, "theta", "greater than 0")
    refused("ou", {"dt": 0}, "dt", "greater than or equal to")
    refused("ou", {"sigma": -1}, "sigma", "greater than or equal to 0")
    with pytest.raises(InvalidParams) as info:
        create("ou", {}, seed=1, start_seq=MAX_START_SEQ + 1)
    assert info.value.details[0]["field"] == "start_seq"


# -- pulse, steps, pattern -------------------------------------------------------------

def test_pulse_exact_values():
    x = values("pulse", {"on_value": 5.0, "off_value": -1.0, "on_duration": 0.3, "off_duration": 0.5, "dt": 0.1},
               n=17)
    assert x.tolist() == [5, 5, 5, -1, -1, -1, -1, -1] * 2 + [5]
    # Grafana's predictable pulse in samples: 2 on, 3 off
    assert values("pulse", {"on_duration": 2, "off_duration": 3}, n=10).tolist() == [1, 1, 0, 0, 0] * 2


def test_pulse_update_keeps_the_seconds_into_the_cycle():
    g = create("pulse", {"on_duration": 2, "off_duration": 2}, seed=1)
    assert g.take(3).values.tolist() == [1, 1, 0]       # sample 3 is 3 s into a 4 s cycle
    g.update({"off_duration": 6})                       # still 3 s in: off until 8 s
    assert g.take(7).values.tolist() == [0, 0, 0, 0, 0, 1, 1]
    g.update({"dt": 0.5})                               # 2 s into the cycle (on), half-second steps
    assert g.take(4).values.tolist() == [0, 0, 0, 0]
    g = create("pulse", {"on_duration": 2, "off_duration": 2}, seed=1)
    g.take(1)
    g.update({"dt": 0.5})                               # 1 s in: on for one more second
    assert g.take(4).values.tolist() == [1, 1, 0, 0]


def test_steps_exact_values():
    x = values("steps", {"steps": [[0.5, 1.0], [1.5, -2.0], [0.25, 7.0]], "dt": 0.25}, n=20)
    one = [1, 1, -2, -2, -2, -2, -2, -2, 7]
    assert x.tolist() == one + one + [1, 1]
    # the same steps as text (query strings, wsgen sub, the page)
    assert values("steps", {"steps": "0.5,1,1.5,-2,0.25,7", "dt": 0.25}, n=20).tolist() == x.tolist()
    assert values("steps", {"steps": "[[0.5,1],[1.5,-2],[0.25,7]]", "dt": 0.25}, n=20).tolist() == x.tolist()


def test_steps_validation_names_the_field():
    refused("steps", {"steps": "1,2,3"}, "steps", "even count", "3")
    refused("steps", {"steps": [[0, 1]]}, "steps.0.0", "greater than 0")
    refused("steps", {"steps": []}, "steps", "at least 1")
    refused("steps", {"steps": "1,x"}, "steps.0.1")
    refused("steps", {"steps": "[1,"}, "steps", "JSON")


def test_pattern_exact_values_step_and_linear():
    assert values("pattern", {"values": [3, 1, 4], "samples_per_value": 2}, n=8).tolist() == [3, 3, 1, 1, 4, 4, 3, 3]
    x = values("pattern", {"values": "0,4,-4", "samples_per_value": 4, "interpolation": "linear"}, n=13)
    assert x.tolist() == [0, 1, 2, 3, 4, 2, 0, -2, -4, -3, -2, -1, 0]


def test_pattern_update_keeps_the_position():
    g = create("pattern", {"values": [10, 20, 30], "samples_per_value": 3}, seed=1)
    assert g.take(4).values.tolist() == [10, 10, 10, 20]
    g.update({"values": [1, 2, 3, 4]})                 # still in value 1, at its second sample
    assert g.take(5).values.tolist() == [2, 2, 3, 3, 3]
    assert g.take(1).values.tolist() == [4]            # value 3, first of its 3 samples
    g.update({"samples_per_value": 1})                 # second sample of value 3 -> clamped to its last
    assert g.take(3).values.tolist() == [4, 1, 2]


def test_pattern_validation_names_the_field():
    refused("pattern", {"values": []}, "values", "at least 1")
    refused("pattern", {"values": "1,nan"}, "values.1", "finite")
    refused("pattern", {"interpolation": "cubic"}, "interpolation", "step", "linear")
    refused("pattern", {"samples_per_value": 0}, "samples_per_value", "greater than or equal to 1")


# -- seasonal ---------------------------------------------------------------------------

DAILY = [{"name": "daily", "period": "day", "amplitudes": [1.0], "phases": [-90.0]}]


def test_seasonal_lines_up_with_calendar_days():
    # 2026-01-05 is a Monday; hourly samples; trough at local midnight, peak at noon
    params = {"components": DAILY, "start": "2026-01-05T00:00:00Z", "dt": 3600}
    x = values("seasonal", params, n=49)
    assert x[0] == -1.0 and x[12] == 1.0 and x[24] == -1.0 and x[36] == 1.0 and x[48] == -1.0
    hours = np.arange(49)
    np.testing.assert_allclose(x, np.sin(2 * np.pi * hours / 24 - np.pi / 2), atol=1e-12)
    # the same from Unix seconds; and local time 2 h ahead of UTC moves the trough to 22:00 UTC
    start = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()
    assert values("seasonal", {**params, "start": start}, n=49).tobytes() == x.tobytes()
    y = values("seasonal", {**params, "utc_offset": 2}, n=49)
    assert y[22] == -1.0 and y[10] == 1.0
    # a start between samples: 06:00 is the zero crossing on the way up
    z = values("seasonal", {**params, "start": "2026-01-05T06:00:00+00:00"}, n=1)
    assert abs(z[0]) < 1e-15


def test_seasonal_sum_of_components_harmonics_trend_and_offset():
    comps = [{"name": "daily", "period": 86400, "amplitudes": [2.0, 0.5], "phases": [10.0, 45.0]},
             {"name": "weekly", "period": "week", "amplitudes": [3.0]}]
    start, dt = 1_767_571_200.0 + 3 * 3600, 600.0     # 2026-01-05T03:00Z
    x = values("seasonal", {"components": comps, "start": start, "dt": dt, "trend": 1e-4, "offset": 50.0}, n=2000)
    t = start + np.arange(2000) * dt
    qd = ((t - 345_600.0) % 86400) / 86400
    qw = ((t - 345_600.0) % 604_800) / 604_800
    ref = (50.0 + 1e-4 * (t - start) + 2.0 * np.sin(2 * np.pi * qd + np.radians(10))
           + 0.5 * np.sin(2 * np.pi * 2 * qd + np.radians(45)) + 3.0 * np.sin(2 * np.pi * qw))
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-9)


def test_seasonal_noise_is_the_normal_draws():
    comps = [{"name": "flat", "period": 60, "amplitudes": [0.0]}]
    x = values("seasonal", {"components": comps, "noise": 2.5, "offset": 1.0}, n=5000)
    z = create("normal", {}, seed=SEED).take(5000).values
    np.testing.assert_allclose(x, 1.0 + 2.5 * z, rtol=0, atol=1e-12)


def test_seasonal_update_keeps_time_continuous():
    comps = [{"name": "ramp", "period": 1e9, "amplitudes": [0.0]}]
    g = create("seasonal", {"components": comps, "trend": 1.0, "dt": 2.0}, seed=1)
    assert g.take(3).values.tolist() == [0.0, 2.0, 4.0]
    g.update({"dt": 10.0})                            # time (and the trend level) goes on from 6 s
    assert g.take(2).values.tolist() == [6.0, 16.0]
    g.update({"trend": -1.0})
    assert g.take(2).values.tolist() == [26.0, 16.0]
    # a new start shifts the calendar by the difference
    g = create("seasonal", {"components": DAILY, "dt": 3600, "start": "2026-01-05T00:00:00Z"}, seed=1)
    g.take(6)
    g.update({"start": "2026-01-05T06:00:00Z"})       # sample 6 is now at 12:00: the peak
    assert g.take(1).values[0] == 1.0


def test_seasonal_validation_names_the_field():
    refused("seasonal", {"start": "yesterday"}, "start", "ISO-8601")
    refused("seasonal", {"components": [{"name": "a", "period": 0, "amplitudes": [1]}]}, "components.0.period",
            "greater than or equal to 0.001")
    # each harmonic costs a sine per sample: 64 in all
    many = [{"name": f"c{i}", "period": 60 * (i + 1), "amplitudes": [1.0] * 16} for i in range(5)]
    refused("seasonal", {"components": many}, "components", "at most 64 harmonics", "got 80")
    assert len(create("seasonal", {"components": many[:4]}, seed=1).params.components) == 4
    refused("seasonal", {"components": [{"name": "a", "amplitudes": [1, 2], "phases": [0]}]}, "components",
            "one per amplitude")
    refused("seasonal", {"components": [{"name": "a", "amplitudes": [1]}, {"name": "a", "amplitudes": [2]}]},
            "components", "differ")
    refused("seasonal", {"components": [{"name": "a", "amplitudes": [1], "colour": 1}]}, "components.0.colour")
    refused("seasonal", {"utc_offset": 25}, "utc_offset", "less than or equal to 24")


# -- every new kind as the base of a composition -------------------------------------------

@pytest.mark.parametrize("kind,params", [
    ("random-walk", {"drift": 0.1, "min": -5, "max": 5}), ("ou", {"theta": 0.5}),
    ("pulse", {"on_duration": 3}), ("steps", {"steps": "1,0,2,3"}),
    ("pattern", {"values": [1, 2, 3], "interpolation": "linear", "samples_per_value": 2}),
    ("seasonal", {"dt": 3600, "noise": 0.1}),
])
def test_new_kinds_as_composition_bases(kind, params):
    spec = {"interval": 1, "base": {"kind": kind, "params": params, "offset": 100.0},
            "anomalies": [{"kind": "spike", "placement": {"mode": "periodic", "every": 50}, "height": 1000}]}
    b = create_composite(spec, seed=9).take(500)
    base = create(kind, params, seed=9).take(500).values + 100.0
    # the spikes are where they are over a constant base (placement does not depend on the base)
    flat = create_composite({**spec, "base": {"kind": "constant", "params": {"value": 0.0}}}, seed=9).take(500)
    assert b.labels.sum() >= 9
    np.testing.assert_array_equal(b.labels, flat.labels)
    np.testing.assert_array_equal(b.values[~b.labels], base[~b.labels])
    assert np.all(b.values[b.labels] != base[b.labels])
