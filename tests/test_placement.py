"""The placement pieces both anomaly engines share (wsgen.engine.placement)
and the one random stream (wsgen.engine.base.RandomStream)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from wsgen.engine.base import RandomStream, box_muller
from wsgen.engine.placement import (
    CountWindows,
    EventTrack,
    PhaseClock,
    count_between,
    ordered,
    pace_problems,
    symmetric,
    uniform_between,
    window_problems,
    window_samples,
)


def split(total: int, sizes: list[int]):
    """(n, m) blocks covering 0 .. total-1 with the given sizes, repeated."""
    n, i = 0, 0
    while n < total:
        m = min(sizes[i % len(sizes)], total - n)
        yield n, m
        n, i = n + m, i + 1


# -- phase clock ---------------------------------------------------------------------

@pytest.mark.parametrize("every,interval", [(7.0, 1.0), (0.7, 0.3), (1200.0, 1.0), (1.0, 1.0)])
def test_phase_clock_steps_at_the_first_sample_at_or_after_each_period(every, interval):
    clock = PhaseClock(every, interval)
    got = np.flatnonzero(clock.steps(0, 5000)).tolist()
    e, i = Fraction(every), Fraction(interval)
    want = [math.ceil(k * e / i) for k in range(10_000) if math.ceil(k * e / i) < 5000]
    assert got == want


def test_phase_clock_one_sample_path_and_block_splits_agree():
    clock = PhaseClock(0.7, 0.3)
    whole = clock.steps(0, 3000)
    for sizes in ([1], [3, 1, 250], [999, 2001]):
        got = np.concatenate([clock.steps(n, m) if m > 1 else np.array([clock.step_at(n)])
                              for n, m in split(3000, sizes)])
        np.testing.assert_array_equal(got, whole)


def test_phase_clock_repace_keeps_the_phase_continuous():
    clock = PhaseClock(10.0, 1.0)
    assert np.flatnonzero(clock.steps(0, 15)).tolist() == [0, 10]
    clock.repace(15, 2.0, 1.0)          # phase 1.5 at sample 15: the next period begins at 2.0
    assert np.flatnonzero(clock.steps(15, 10)).tolist() == [1, 3, 5, 7, 9]   # samples 16, 18, ...
    assert [clock.step_at(n) for n in (15, 16, 17, 18)] == [False, True, False, True]
    clock.repace(20, 2.0, 0.5)          # interval halves at 20 (phase 4.0): periods every 4 samples
    assert np.flatnonzero(clock.steps(20, 12)).tolist() == [0, 4, 8]
    clock.repace(20, 2.0, 0.5)          # the same pace: nothing moves
    assert np.flatnonzero(clock.steps(20, 12)).tolist() == [0, 4, 8]


# -- count windows ---------------------------------------------------------------------

def test_count_windows_hold_exactly_count_distinct_events_whatever_the_split():
    windows = CountWindows(seed=5, key=26, count=3, size=50)
    pos, u = windows.hits(0, 1000)
    assert pos.dtype == np.int64 and len(pos) == len(u) == 60
    assert np.bincount(pos // 50, minlength=20).tolist() == [3] * 20
    assert np.all(np.diff(pos) > 0) and np.all((0 <= u) & (u < 1))
    for sizes in ([1], [7, 1, 49], [333]):
        fresh = CountWindows(seed=5, key=26, count=3, size=50)
        got = []
        for n, m in split(1000, sizes):
            if m == 1:
                v = fresh.at(n)
                got += [] if v is None else [(n, v)]
            else:
                p, w = fresh.hits(n, n + m)
                got += list(zip(p.tolist(), w.tolist()))
        assert got == list(zip(pos.tolist(), u.tolist()))
    assert windows.hits(10, 10)[0].tolist() == []


def test_count_windows_draw_each_window_from_its_own_stream():
    offsets, u = CountWindows(seed=5, key=26, count=3, size=50).window(4)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(5, spawn_key=(26, 4))))
    np.testing.assert_array_equal(offsets, np.sort(rng.choice(50, 3, replace=False)))
    np.testing.assert_array_equal(u, rng.random(3))


def test_count_windows_restart_ends_the_window_at_the_change():
    windows = CountWindows(seed=1, key=26, count=2, size=100)
    before, _ = windows.hits(0, 130)
    windows.restart(130, 4, 10)        # window 1 ends at 130; window 2 is 130..139
    after, _ = windows.hits(130, 230)
    window1, _ = CountWindows(seed=1, key=26, count=2, size=100).window(1)
    assert before[before >= 100].tolist() == (100 + window1[window1 < 30]).tolist()   # sent before the change
    assert np.bincount((after - 130) // 10, minlength=10).tolist() == [4] * 10
    offsets, _ = CountWindows(seed=1, key=26, count=4, size=10).window(2)
    np.testing.assert_array_equal(after[:4], 130 + offsets)


# -- event track ------------------------------------------------------------------------

def test_event_track_gaps_and_lengths_within_bounds_and_mask_equals_inside():
    track = EventTrack(seed=3, key=22, bounds=(3, 7, 1, 4))
    mask = track.mask(0, 2000)
    edges = np.flatnonzero(np.diff(np.r_[False, mask, False].astype(int)))
    starts, ends = edges[::2], edges[1::2]
    assert np.all((ends - starts >= 1) & (ends - starts <= 4))
    gaps = starts[1:] - ends[:-1]
    assert np.all((gaps >= 3) & (gaps <= 7)) and 3 <= starts[0] <= 7
    one = EventTrack(seed=3, key=22, bounds=(3, 7, 1, 4))
    assert [one.inside(n) for n in range(2000)] == mask.tolist()


def test_event_track_truncate_keeps_started_events_and_redraws_later_ones():
    track = EventTrack(seed=3, key=22, bounds=(3, 7, 1, 4))
    first = track.mask(0, 100)
    track.truncate(100, (50, 50, 5, 5))
    later = track.mask(0, 400)
    np.testing.assert_array_equal(later[:100], first)
    s = np.flatnonzero(np.diff(later[100:].astype(int)) == 1) + 101
    assert np.all(np.diff(s) == 55)


# -- values from uniforms ----------------------------------------------------------------

def test_values_from_uniforms_are_the_same_bits_on_floats_and_arrays():
    u = np.array([0.0, 0.25, 0.5, 0.999])
    np.testing.assert_array_equal(uniform_between(5.0, 10.0, u), [5.0, 6.25, 7.5, 5.0 + 5.0 * 0.999])
    np.testing.assert_array_equal(symmetric(10.0, u), [-10.0, -5.0, 0.0, 10.0 * (2.0 * 0.999 - 1.0)])
    r = np.random.default_rng(1).random(100)
    assert uniform_between(-1.5, 4.0, r).tolist() == [uniform_between(-1.5, 4.0, float(x)) for x in r]
    assert symmetric(2.5, r).tolist() == [symmetric(2.5, float(x)) for x in r]
    counts = count_between(3, 7, np.r_[r, 0.0, 1.0 - 2**-53])
    assert counts.dtype == np.int64 and counts.min() == 3 and counts.max() == 7
    assert np.bincount(count_between(3, 7, np.arange(1000) / 1000)).tolist() == [0, 0, 0] + [200] * 5
    assert count_between(1, 10**9, np.array([1.0 - 2**-53])).tolist() == [10**9]


# -- validation rules ---------------------------------------------------------------------

def test_validation_rules_name_the_field_and_the_rule():
    assert ordered("min_gap", 3, "max_gap", 5) == []
    assert ordered("min_gap", 6, "max_gap", 5) == [("min_gap", "must be <= max_gap (5)")]
    assert pace_problems("every", 1.0, 1.0, "event") == []
    assert pace_problems("spike_interval", 0.5, 1.0, "spike") == [
        ("spike_interval", "must be >= interval (1.0): at most one spike per sample")]
    assert window_samples(7.5, 1.5) == 5 and window_samples(10, 4) == 2
    assert window_problems("duration", "count", 50, 1.0, 50) == []
    assert window_problems("duration", "count", 0.4, 1.0, 1) == [
        ("duration", "must hold at least one sample: duration / interval = 0.4")]
    assert window_problems("duration", "count", 1e9, 0.5, 1) == [
        ("duration", "window of 2000000000 samples is too long; duration / interval must be <= 1e9")]
    assert window_problems("d", "count", 5, 1.0, 6) == [
        ("count", "must be <= the samples in a window: duration / interval = 5")]


# -- random stream ----------------------------------------------------------------------------

def test_random_stream_keys_positions_fast_path_and_normals():
    a, b = RandomStream(9, key=21, draws=2), RandomStream(9, key=(21,), draws=2)
    whole = a.uniforms(0, 1000)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(9, spawn_key=(21,))))
    np.testing.assert_array_equal(whole.ravel(), rng.random(2000))
    assert [b.one(n) for n in range(5)] == [tuple(r) for r in whole[:5].tolist()]
    pos = np.array([3, 17, 500, 999])
    np.testing.assert_array_equal(b.at(pos), whole[pos])
    far = np.array([0, 10**7])
    np.testing.assert_array_equal(b.at(far)[0], whole[0])
    np.testing.assert_array_equal(b.normals(100, 50), box_muller(whole[100:150].copy()))
    z = whole[100:150]
    np.testing.assert_array_equal(b.normals(100, 50), np.sqrt(-2.0 * np.log1p(-z[:, 0])) * np.cos(2.0 * math.pi * z[:, 1]))
    c = RandomStream(9, key=(21, 4))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(9, spawn_key=(21, 4))))
    np.testing.assert_array_equal(c.uniforms(0, 10), rng.random(10))
