"""wsgen.score: hand-computed figures, and NAB scores against NAB's own code.

The hand cases use one point anomaly at sample 100 of 200 samples unless
said otherwise: NAB's window length is int(0.1 * 200 / 1) = 20, so the
window is [90, 110] (21 samples). NAB's scaled sigmoid is
S(x) = 2 / (1 + exp(5x)) - 1 = tanh(-5x / 2), so an alarm at row i of a
window [a, b] scores tanh(5 (b - i + 1) / (2 w)) / tanh(5 / 2).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import wsgen
from wsgen.scoring.figures import ScoringError, events_from_labels, nab_windows

REFERENCE = Path(__file__).parent / "data" / "nab_reference.json"


def tp_score(b: int, i: int, w: int) -> float:
    """An alarm at row i in a window ending at b of width w (hand formula)."""
    return math.tanh(5 * (b - i + 1) / (2 * w)) / math.tanh(2.5)


def point(at: int, n: int = 200) -> list[int]:
    labels = [0] * n
    labels[at] = 1
    return labels


def test_early_detection_at_the_window_start_scores_the_maximum():
    f = wsgen.score(point(100), [90], probation=0.0, interval=0.5)
    assert f["window"] == {"rule": "nab", "length": 20}
    assert f["events"] == {"anomalies": 1, "windows": 1, "detected": 1, "missed": 0, "false_positives": 0,
                           "precision": 1.0, "recall": 1.0, "f1": 1.0}
    # the alarm is not on the anomalous sample itself
    assert f["points"] == {"anomalous": 1, "true_positives": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert f["delay"] == {"samples": {"median": -10.0, "max": -10.0}, "seconds": {"median": -5.0, "max": -5.0}}
    for name in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert f["nab"][name] == {"score": 100.0, "raw": 1.0}
    assert f["alarms"] == 1 and f["samples"] == 200 and (f["first"], f["last"]) == (0, 199)


def test_late_detection_at_the_window_end():
    f = wsgen.score(point(100), [110], probation=0.0)
    raw = tp_score(110, 110, 21)
    assert raw == pytest.approx(0.1200959635, abs=1e-9)
    assert f["nab"]["standard"]["raw"] == pytest.approx(raw, abs=1e-12)
    assert f["nab"]["standard"]["score"] == pytest.approx(100 * (raw + 1) / 2, abs=1e-9)
    # reward_low_FN_rate: null = -2, perfect = 1
    assert f["nab"]["reward_low_FN_rate"]["score"] == pytest.approx(100 * (raw + 2) / 3, abs=1e-9)
    assert f["delay"]["samples"] == {"median": 10.0, "max": 10.0}
    assert f["delay"]["seconds"] == {"median": None, "max": None}    # no interval given
    assert f["events"]["detected"] == 1


def test_two_detections_in_one_window_only_the_first_counts():
    f = wsgen.score(point(100), [95, 105], probation=0.0)
    assert f["nab"]["standard"]["raw"] == pytest.approx(tp_score(110, 95, 21), abs=1e-12)
    assert f["events"]["detected"] == 1 and f["events"]["false_positives"] == 0
    assert f["events"]["precision"] == 1.0
    assert f["alarms"] == 2
    assert f["delay"]["samples"] == {"median": -5.0, "max": -5.0}


def test_false_positives_far_from_and_near_a_window():
    # 20: before any window (-1); 190: (190 - 110) / 20 = 4 > 3 (-1); 120: 10 / 20 = 0.5 (S = -tanh(1.25))
    f = wsgen.score(point(100), [20, 100, 120, 190], probation=0.0)
    fp_unweighted = -1 - 1 - math.tanh(1.25)
    tp = tp_score(110, 100, 21)
    assert f["nab"]["standard"]["raw"] == pytest.approx(tp + 0.11 * fp_unweighted, abs=1e-12)
    assert f["nab"]["reward_low_FP_rate"]["raw"] == pytest.approx(tp + 0.22 * fp_unweighted, abs=1e-12)
    assert f["events"] == {"anomalies": 1, "windows": 1, "detected": 1, "missed": 0, "false_positives": 3,
                           "precision": 0.25, "recall": 1.0, "f1": 0.4}
    assert f["points"] == {"anomalous": 1, "true_positives": 1, "precision": 0.25, "recall": 1.0, "f1": 0.4}
    assert f["delay"]["samples"] == {"median": 0.0, "max": 0.0}


def test_a_missed_event():
    labels = [0] * 200
    labels[50] = labels[150] = 1      # windows int(0.1 * 200 / 2) = 10: [45, 55], [145, 155]
    f = wsgen.score(labels, [150], probation=0.0)
    raw = -1 + tp_score(155, 150, 11)
    assert f["nab"]["standard"]["raw"] == pytest.approx(raw, abs=1e-12)
    assert f["nab"]["standard"]["score"] == pytest.approx(100 * (raw + 2) / 4, abs=1e-9)
    assert f["nab"]["reward_low_FN_rate"]["raw"] == pytest.approx(raw - 1, abs=1e-12)
    assert f["events"] == {"anomalies": 2, "windows": 2, "detected": 1, "missed": 1, "false_positives": 0,
                           "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert f["points"]["recall"] == 0.5 and f["points"]["precision"] == 1.0


def test_nothing_detected_scores_zero_and_no_events_has_no_nab_score():
    f = wsgen.score(point(100), [], probation=0.0)
    assert f["nab"]["standard"] == {"score": 0.0, "raw": -1.0}
    assert f["events"]["precision"] is None and f["events"]["recall"] == 0.0 and f["events"]["f1"] is None
    g = wsgen.score([0] * 100, [5], probation=0.0)
    assert g["nab"]["standard"] == {"score": None, "raw": -0.11}
    assert g["events"]["precision"] == 0.0 and g["events"]["recall"] is None


def test_an_empty_stream():
    f = wsgen.score([], [])
    assert f["samples"] == 0 and f["alarms"] == 0
    assert f["events"] == {"anomalies": 0, "windows": 0, "detected": 0, "missed": 0, "false_positives": 0,
                           "precision": None, "recall": None, "f1": None}
    assert f["points"] == {"anomalous": 0, "true_positives": 0, "precision": None, "recall": None, "f1": None}
    assert f["delay"] == {"samples": {"median": None, "max": None}, "seconds": {"median": None, "max": None}}
    assert f["nab"]["standard"] == {"score": None, "raw": 0.0}
    with pytest.raises(ScoringError, match="no scored samples"):
        wsgen.score([], [0])


def test_probation_ignores_early_alarms_and_drops_a_window_starting_in_it():
    # N = 1000: probation min(floor(150), 750) = 150 rows; windows int(0.1*1000/2) = 50:
    # [75, 125] starts in probation (dropped), [575, 625] is scored
    labels = [0] * 1000
    labels[100] = labels[600] = 1
    f = wsgen.score(labels, [120, 610, 700])
    assert f["nab"]["probation"] == 150 and f["nab"]["windows"] == 1 and f["nab"]["detected"] == 1
    fp = math.tanh(-2.5 * 75 / 50)       # (700 - 625) / (51 - 1) = 1.5
    raw = tp_score(625, 610, 51) + 0.11 * fp
    assert f["nab"]["standard"]["raw"] == pytest.approx(raw, abs=1e-12)
    # the event-wise figures keep every window and alarm
    assert f["events"]["windows"] == 2 and f["events"]["detected"] == 2 and f["events"]["false_positives"] == 1


def test_long_events_window_rules_and_a_start_seq():
    labels = np.zeros(100, bool)
    labels[40:45] = True            # seqs 1040..1044
    assert events_from_labels(labels, 1000).tolist() == [[1040, 1044]]
    own = wsgen.score(labels, [1042, 1050], window="events", probation=0.0, start=1000, interval=0.1)
    assert own["window"] == {"rule": "events", "length": None}
    assert own["events"]["detected"] == 1 and own["events"]["false_positives"] == 1
    assert own["delay"]["samples"] == {"median": 2.0, "max": 2.0}
    assert own["delay"]["seconds"]["max"] == pytest.approx(0.2)
    assert own["points"] == {"anomalous": 5, "true_positives": 1, "precision": 0.5, "recall": 0.2,
                             "f1": pytest.approx(2 * 0.5 * 0.2 / 0.7)}
    # window [first - 5, last + 5] = [1035, 1049]: width 15, the alarm at 1042 is row 7 of it
    fixed = wsgen.score([{"first": 1040, "last": 1044, "kind": "spike"}], [1042], window=10, probation=0.0,
                        start=1000, length=100)
    assert fixed["window"] == {"rule": "fixed", "length": 10}
    assert fixed["nab"]["standard"]["raw"] == pytest.approx(tp_score(1049, 1042, 15), abs=1e-12)
    # the same events as pairs, and overlapping windows merge
    merged = wsgen.score([(10, 10), (14, 14)], [12], window=10, probation=0.0, length=100)
    assert merged["events"]["windows"] == 1 and merged["events"]["anomalies"] == 2
    assert merged["delay"]["samples"] == {"median": 2.0, "max": 2.0}


def test_scores_and_threshold_and_one_profile():
    f = wsgen.score(point(100), [90, 100, 150], scores=[0.2, 0.9, 0.5], threshold=0.5, probation=0.0,
                    profile="standard")
    assert f["alarms"] == 2 and set(f["nab"]) == {"probation", "windows", "detected", "false_positives",
                                                   "standard"}
    assert f["delay"]["samples"]["max"] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"truth": [0, 1, 0], "detections": [3]}, "outside the scored samples 0..2"),
    ({"truth": [0, 1, 0], "detections": [-1]}, "outside"),
    ({"truth": [0, 1, 0], "detections": [1.5]}, "integer"),
    ({"truth": [0, 1, 0], "detections": [1], "profile": "nope"}, "unknown profile 'nope'; known: standard"),
    ({"truth": [0, 1, 0], "detections": [1], "window": 0}, "window must be"),
    ({"truth": [0, 1, 0], "detections": [1], "window": "wide"}, "window must be"),
    ({"truth": [0, 1, 0], "detections": [1], "probation": 1.0}, "probation must be"),
    ({"truth": [(1, 0)], "detections": [], "length": 3}, "last 0 is before first 1"),
    ({"truth": [{"first": 1}], "detections": [], "length": 3}, "needs \"first\" and \"last\""),
    ({"truth": [(1, 2)], "detections": []}, "give length"),
    ({"truth": [0, 1, 0], "detections": [1], "length": 5}, "length 5 differs from the 3 labels"),
    ({"truth": [0, 1, 0], "detections": [1, 2], "scores": [0.5]}, "1 scores for 2 detections"),
])
def test_bad_input_says_what_is_wrong(kwargs, message):
    truth, detections = kwargs.pop("truth"), kwargs.pop("detections")
    with pytest.raises(ScoringError, match=message.replace("(", r"\(").replace(")", r"\)")):
        wsgen.score(truth, detections, **kwargs)


def test_nab_scores_equal_nabs_own_scorer():
    """Figures made by NAB's labeler and sweeper (scripts/nab_reference.py says how)."""
    reference = json.loads(REFERENCE.read_text())
    assert reference["nab_commit"] == "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
    assert len(reference["cases"]) == 60
    checked = 0
    for case in reference["cases"]:
        events = [(a, a) for a in case["anomalies"]]
        windows = nab_windows(np.array(events, np.int64).reshape(-1, 2), 0, case["length"], "nab",
                              case["probation"])
        assert windows.tolist() == case["windows"], case
        f = wsgen.score(events, case["alarms"], length=case["length"], probation=case["probation"])
        for name, ref in case["profiles"].items():
            assert f["nab"][name]["raw"] == pytest.approx(ref["raw"], abs=1e-9), (case, name)
            if ref["score"] is None:
                assert f["nab"][name]["score"] is None
            else:
                assert f["nab"][name]["score"] == pytest.approx(ref["score"], abs=1e-9), (case, name)
            checked += 1
    assert checked == 180


# -- every figure against a plain loop written from the definitions ---------------------


def loop_score(events, alarms, n, rule, probation, weights=(1.0, 0.11, 1.0)):
    """Every figure, one sample at a time, from the module doc's definitions (no numpy)."""
    alarms = sorted(set(alarms))
    events = sorted(events)
    if rule == "events":
        half = 0
    else:
        L = int(0.1 * n / len(events)) if rule == "nab" and events else (int(0.1 * n) if rule == "nab" else rule)
        half = L // 2
    raw_windows = [(max(a - half, 0), min(b + half, n - 1)) for a, b in events]

    def merged(ws):
        out = []
        for a, b in ws:
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return out

    wins = merged(raw_windows)
    holder = {}
    for k, (a, b) in enumerate(wins):
        for i in range(a, b + 1):
            holder[i] = k
    firsts = {}
    fps = 0
    for i in alarms:
        if i in holder:
            firsts.setdefault(holder[i], i)
        else:
            fps += 1
    delays = sorted(firsts[k] - min(e[0] for e in events if wins[k][0] <= e[0] <= wins[k][1]) for k in firsts)
    anomalous = {i for a, b in events for i in range(a, b + 1)}
    tp_points = sum(1 for i in alarms if i in anomalous)
    # NAB
    p = min(math.floor(probation * n), probation * 5000)
    nab_w = raw_windows[1:] if raw_windows and raw_windows[0][0] < p else raw_windows
    nab_w = merged(nab_w)
    a_tp, a_fp, a_fn = weights

    def sig(x):
        return -1.0 if x > 3 else 2 / (1 + math.exp(5 * x)) - 1

    best, fp = {}, 0.0
    for i in alarms:
        if i < p:
            continue
        inside = [k for k, (a, b) in enumerate(nab_w) if a <= i <= b]
        if inside:
            a, b = nab_w[inside[0]]
            best.setdefault(inside[0], a_tp * sig(-(b - i + 1) / (b - a + 1)) / sig(-1.0))
        else:
            before = [(a, b) for a, b in nab_w if b < i]
            if not before or before[-1][0] == before[-1][1]:
                fp -= a_fp
            else:
                a, b = before[-1]
                fp += a_fp * sig((i - b) / (b - a))
    scored = sum(1 for a, b in nab_w if b >= p)
    raw = sum(best.values()) + fp - a_fn * (scored - len(best))
    return {"windows": len(wins), "detected": len(firsts), "false_positives": fps,
            "anomalous": len(anomalous), "true_positives": tp_points, "delays": delays, "raw": raw,
            "score": None if scored == 0 else 100 * (raw + a_fn * scored) / ((a_tp + a_fn) * scored)}


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 400), data=st.data(), rule=st.sampled_from(["nab", "events", 1, 7, 30]),
       probation=st.sampled_from([0.0, 0.1, 0.15]))
def test_every_figure_equals_a_plain_loop(n, data, rule, probation):
    starts = data.draw(st.lists(st.integers(0, n - 1), max_size=6, unique=True))
    events = [(a, min(a + data.draw(st.integers(0, 12)), n - 1)) for a in starts]
    alarms = data.draw(st.lists(st.integers(0, n - 1), max_size=25))
    f = wsgen.score(events, alarms, window=rule, probation=probation, length=n, profile="standard")
    want = loop_score(events, alarms, n, rule, probation)
    assert (f["events"]["windows"], f["events"]["detected"], f["events"]["false_positives"]) == \
        (want["windows"], want["detected"], want["false_positives"])
    assert (f["points"]["anomalous"], f["points"]["true_positives"]) == (want["anomalous"], want["true_positives"])
    if want["delays"]:
        assert f["delay"]["samples"]["max"] == want["delays"][-1]
        assert f["delay"]["samples"]["median"] == pytest.approx(float(np.median(want["delays"])))
    assert f["nab"]["standard"]["raw"] == pytest.approx(want["raw"], abs=1e-9)
    if want["score"] is None:
        assert f["nab"]["standard"]["score"] is None
    else:
        assert f["nab"]["standard"]["score"] == pytest.approx(want["score"], abs=1e-9)
