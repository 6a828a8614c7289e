"""Waveforms: exact values against the analytic formulas of
``wsgen.engine.waveforms`` and the original service's first samples."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wsgen.engine import create

TWO_PI = 2.0 * math.pi


def values(name, n, params=None, seed=0):
    return create(name, params or {}, seed=seed).take(n).values


def cycles(n, frequency=2.0, sample_rate=100.0):
    return np.arange(n, dtype=np.float64) * frequency / sample_rate


def frac(x):
    return x - np.floor(x)


def fmt(a):
    return " ".join(f"{v:.3f}" for v in a)


# -- the original service's first samples -------------------------------------

def test_sine_defaults_match_original_first_samples():
    assert fmt(values("sine", 8)) == "0.000 0.501 0.995 1.472 1.927 2.351 2.738 3.082"


def test_cosine_defaults_match_original_first_samples():
    assert fmt(values("cosine", 5)) == "4.000 3.968 3.874 3.719 3.505"


def test_square_defaults_plus_one_first_then_minus_one():
    v = values("square", 100)
    # frequency 2 Hz at 100 samples/s: a period of 50 samples, half high
    expected = np.tile(np.r_[np.ones(25), -np.ones(25)], 2)
    np.testing.assert_array_equal(v, expected)


def test_sawtooth_defaults_corrected_period_and_slope():
    v = values("sawtooth", 200)
    # period 1/frequency = 0.5 s = 50 samples, rising 0.02 per sample from 0
    np.testing.assert_allclose(v, (np.arange(200) % 50) * 0.02, rtol=0, atol=1e-12)
    assert v[0] == 0.0
    steps = np.diff(v)
    rising = steps[(np.arange(1, 200) % 50) != 0]
    np.testing.assert_allclose(rising, 0.02, rtol=0, atol=1e-12)
    assert len(rising) == 199 - 3
    # it drops back to 0 exactly at each period (samples 50, 100, 150)
    assert v[50] == v[100] == v[150] == 0.0
    assert v.min() >= 0.0 and v.max() < 1.0
    assert v.max() == pytest.approx(0.98)


# -- the analytic formulas --------------------------------------------------

WAVE_PARAMS = [
    {},
    {"amplitude": 2.5, "frequency": 3.0, "sample_rate": 250.0, "offset": -1.25},
    {"amplitude": -1.5, "frequency": 0.7, "sample_rate": 9.0, "phase": 33.0},
    {"amplitude": 7.0, "frequency": 13.0, "sample_rate": 17.0, "phase": -400.0, "offset": 3.0},
    {"frequency": 0.0, "phase": 45.0},
]


def _defaults(kind, params):
    return create(kind, params, seed=0).params


@pytest.mark.parametrize("params", WAVE_PARAMS)
def test_sine_formula(params):
    p = _defaults("sine", params)
    c = cycles(5000, p.frequency, p.sample_rate)
    expected = p.offset + p.amplitude * np.sin(TWO_PI * c + p.phase * math.pi / 180)
    np.testing.assert_allclose(values("sine", 5000, params), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("params", WAVE_PARAMS)
def test_cosine_formula(params):
    p = _defaults("cosine", params)
    c = cycles(5000, p.frequency, p.sample_rate)
    expected = p.offset + p.amplitude * np.cos(TWO_PI * c + p.phase * math.pi / 180)
    np.testing.assert_allclose(values("cosine", 5000, params), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("params", WAVE_PARAMS)
def test_sawtooth_formula(params):
    p = _defaults("sawtooth", params)
    x = frac(cycles(5000, p.frequency, p.sample_rate) + p.phase / 360)
    v = values("sawtooth", 5000, params)
    np.testing.assert_allclose(v, p.offset + p.amplitude * x, rtol=0, atol=1e-9)


@pytest.mark.parametrize("params", WAVE_PARAMS)
def test_triangle_formula(params):
    p = _defaults("triangle", params)
    x = frac(cycles(5000, p.frequency, p.sample_rate) + p.phase / 360 + 0.25)
    expected = p.offset + p.amplitude * (1 - 4 * np.abs(x - 0.5))
    np.testing.assert_allclose(values("triangle", 5000, params), expected, rtol=0, atol=1e-9)


def test_phase_is_in_degrees():
    assert values("sine", 1, {"phase": 30})[0] == pytest.approx(2.0, abs=1e-12)   # 4 sin(30 deg)
    assert values("sine", 1, {"phase": 90})[0] == pytest.approx(4.0, abs=1e-12)
    assert values("sine", 1, {"phase": -90})[0] == pytest.approx(-4.0, abs=1e-12)
    assert values("cosine", 1, {"phase": 60})[0] == pytest.approx(2.0, abs=1e-12)  # 4 cos(60 deg)
    assert values("sawtooth", 1, {"phase": 90})[0] == pytest.approx(0.25, abs=1e-12)
    assert values("square", 1, {"phase": 180})[0] == -1.0
    assert values("triangle", 1, {"phase": 90})[0] == pytest.approx(1.0, abs=1e-12)


def test_sine_with_phase_90_equals_cosine():
    for params in [{}, {"amplitude": 3.0, "frequency": 1.3, "sample_rate": 37.0, "offset": 0.5}]:
        s = values("sine", 3000, {**params, "phase": 90})
        c = values("cosine", 3000, params)
        np.testing.assert_allclose(s, c, rtol=0, atol=1e-9)


def test_cosine_honours_phase():
    base = values("cosine", 500)
    shifted = values("cosine", 500, {"phase": 90})
    assert not np.allclose(base, shifted)
    # cos(x + 90 deg) = -sin(x)
    np.testing.assert_allclose(shifted, -values("sine", 500), rtol=0, atol=1e-9)
    # a full turn changes nothing
    np.testing.assert_allclose(values("cosine", 500, {"phase": 360}), base, rtol=0, atol=1e-9)


def test_triangle_landmarks():
    # frequency 1 Hz at 100 samples/s: a period of 100 samples
    v = values("triangle", 400, {"amplitude": 3.0, "frequency": 1.0, "sample_rate": 100.0})
    for k in range(4):
        assert v[100 * k] == pytest.approx(0.0, abs=1e-12)
        assert v[100 * k + 25] == pytest.approx(3.0, abs=1e-12)
        assert v[100 * k + 50] == pytest.approx(0.0, abs=1e-12)
        assert v[100 * k + 75] == pytest.approx(-3.0, abs=1e-12)
    assert v.max() == pytest.approx(3.0) and v.min() == pytest.approx(-3.0)
    # straight lines: +0.12 per sample on the rise, -0.12 on the fall
    d = np.diff(v[:100])
    np.testing.assert_allclose(d[:25], 0.12, atol=1e-12)
    np.testing.assert_allclose(d[25:75], -0.12, atol=1e-12)
    np.testing.assert_allclose(d[75:], 0.12, atol=1e-12)
    with_offset = values("triangle", 400, {"amplitude": 3.0, "frequency": 1.0, "sample_rate": 100.0,
                                           "offset": 10.0})
    np.testing.assert_allclose(with_offset, v + 10.0, atol=1e-12)


@pytest.mark.parametrize("duty", [0.0, 0.1, 0.2, 0.5, 0.8, 1.0])
def test_square_duty_cycle_amplitude_offset(duty):
    # frequency 1 Hz at 100 samples/s: period 100 samples
    v = values("square", 1000, {"amplitude": 3.0, "offset": 1.0, "duty_cycle": duty,
                                "frequency": 1.0, "sample_rate": 100.0})
    assert set(np.unique(v)) <= {4.0, -2.0}
    high = v == 4.0
    for k in range(10):
        period = high[100 * k:100 * (k + 1)]
        # the high part comes first and lasts duty * period samples
        assert period.sum() == round(duty * 100)
        np.testing.assert_array_equal(period[:round(duty * 100)], True)


def test_square_high_and_low_levels():
    v = values("square", 50, {"amplitude": 0.5, "offset": -2.0})
    assert v[0] == -1.5 and v[-1] == -2.5


def test_zero_frequency_is_constant():
    for kind in ["sine", "cosine", "square", "sawtooth", "triangle"]:
        v = values(kind, 100, {"frequency": 0.0, "phase": 30.0})
        assert np.all(v == v[0]), kind


# -- live updates: the phase accumulator is continuous --------------------------

def test_phase_continuity_across_frequency_update():
    g = create("sine", {}, seed=0)
    before = g.take(30).values
    g.update({"frequency": 5.0})
    after = g.take(200).values
    # phase at the update is 30 * 2 / 100 = 0.6 cycles; from there 0.05 per sample
    c = 0.6 + np.arange(200) * 5.0 / 100.0
    np.testing.assert_allclose(after, 4.0 * np.sin(TWO_PI * c), rtol=0, atol=1e-9)
    np.testing.assert_allclose(before, 4.0 * np.sin(TWO_PI * cycles(30)), rtol=0, atol=1e-9)
    # no jump: the step across the update is no larger than the largest step
    # the new frequency makes
    whole = np.r_[before, after]
    assert abs(whole[30] - whole[29]) <= 4.0 * TWO_PI * 0.05 + 1e-9
    # compare with restarting the phase, which would jump
    assert abs(after[0] - values("sine", 1, {"frequency": 5.0})[0]) > 1.0


def test_phase_continuity_across_sample_rate_update():
    g = create("sawtooth", {"amplitude": 1.0}, seed=0)
    g.take(10)                       # phase 10 * 2 / 100 = 0.2
    g.update({"sample_rate": 20.0})  # step 0.1 cycle per sample
    v = g.take(20).values
    np.testing.assert_allclose(v, frac(0.2 + np.arange(20) * 0.1), rtol=0, atol=1e-9)


def test_several_frequency_updates_accumulate_phase():
    g = create("cosine", {"amplitude": 1.0, "frequency": 1.0, "sample_rate": 10.0}, seed=0)
    out, c, expected = [], 0.0, []
    for freq, m in [(1.0, 7), (2.5, 11), (0.0, 5), (3.0, 13), (1.0, 9)]:
        g.update({"frequency": freq})
        out.append(g.take(m).values)
        expected.append(np.cos(TWO_PI * (c + np.arange(m) * freq / 10.0)))
        c += m * freq / 10.0
    np.testing.assert_allclose(np.concatenate(out), np.concatenate(expected), rtol=0, atol=1e-9)


def test_amplitude_phase_offset_updates_keep_the_phase_clock():
    g = create("sine", {}, seed=0)
    g.take(40)
    g.update({"amplitude": 1.0, "offset": 5.0, "phase": 90.0, "interval": 0.25})
    v = g.take(60).values
    c = np.arange(40, 100) * 2.0 / 100.0
    np.testing.assert_allclose(v, 5.0 + np.sin(TWO_PI * c + math.pi / 2), rtol=0, atol=1e-9)


def test_interval_only_paces_never_changes_values():
    for kind in ["sine", "cosine", "square", "sawtooth", "triangle"]:
        a = values(kind, 300, {"interval": 0.0})
        b = values(kind, 300, {"interval": 5.0})
        np.testing.assert_array_equal(a, b)
        g = create(kind, {}, seed=0)
        g.take(100)
        g.update({"interval": 0.01})
        np.testing.assert_array_equal(g.take(200).values, b[100:])


def test_square_duty_cycle_update_and_frequency_continuity():
    g = create("square", {"frequency": 1.0, "sample_rate": 100.0}, seed=0)
    g.take(30)  # 0.3 cycles in
    g.update({"frequency": 2.0, "duty_cycle": 0.25})
    v = g.take(100).values
    x = frac(0.3 + np.arange(100) * 0.02)
    np.testing.assert_array_equal(v, np.where(x < 0.25, 1.0, -1.0))


def test_waveforms_are_not_anomalous_and_seed_free():
    for kind in ["sine", "cosine", "square", "sawtooth", "triangle"]:
        a = create(kind, {}, seed=1).take(100)
        b = create(kind, {}, seed=2).take(100)
        assert a.labels is None
        assert a.values.dtype == np.float64 and a.values.shape == (100,)
        np.testing.assert_array_equal(a.values, b.values)
