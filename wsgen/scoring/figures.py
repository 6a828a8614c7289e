"""Scoring an anomaly detector against a stream's ground truth.

:func:`score` takes the truth (per-sample labels, or anomaly events with
inclusive ``first`` / ``last`` sample indices) and the detector's alarms
(sample indices, ``seq``) and returns every figure as a JSON-ready dict.
It is a pure function (numpy, no I/O); the live WebSocket scoring
(:mod:`wsgen.scoring.live`), ``POST /score`` and ``wsgen score`` all call it.

Terms
-----
* **Scored range**: samples ``start .. start + length - 1`` (``N = length``).
* **Event**: one anomaly, ``[first, last]`` inclusive. From labels, an event
  is a maximal run of consecutive true labels. Events are clipped to the
  scored range; those outside it are dropped.
* **Alarm**: a distinct detected ``seq`` (a seq sent twice counts once).
* **Window**: the samples around an event in which an alarm detects it.
  ``window`` chooses the rule:

  - ``"nab"`` (default): NAB's rule (``nab/labeler.py``, ``applyWindows``):
    window length ``L = int(0.1 * N / E)`` (``E`` events), the window
    ``[first - L // 2, last + L // 2]`` clipped to the scored range. For a
    one-sample event this is NAB's window centred on the anomaly; a longer
    event keeps all its samples inside its window.
  - an integer ``L >= 1``: the same with a fixed length ``L`` (independent of
    ``N``: the rule for a live stream whose windows must not move as it
    grows).
  - ``"events"``: each event is its own window, ``[first, last]``.

  Windows that overlap or touch (the next starts at or before the previous
  one's end) merge into one, as NAB's ``checkWindows`` does.

Figures (the keys of the returned dict)
---------------------------------------
* ``events``: over windows. ``detected``: windows holding at least one
  alarm; ``missed``: the others; ``false_positives``: alarms outside every
  window. ``precision = detected / (detected + false_positives)``,
  ``recall = detected / windows``, ``f1`` their harmonic mean.
* ``points``: over samples. ``anomalous``: samples inside an event;
  ``true_positives``: alarms on such samples. ``precision = true_positives /
  alarms``, ``recall = true_positives / anomalous``.
* ``delay``: per detected window, the first alarm in it minus the ``first``
  of the window's first event, in samples (negative: detected before the
  anomaly started, inside the early half of the window) and in stream
  seconds (samples times ``interval``); median and maximum.
* ``nab``: the NAB score of each profile, raw and normalised to 0-100, with
  NAB's definitions (numenta/NAB: ``nab/sweeper.py``, ``nab/labeler.py``,
  ``nab/runner.py``, ``config/profiles.json``):

  - probationary period: the first ``P = min(floor(p * N), p * 5000)``
    samples (``p = probation``, NAB's 0.15); alarms there are ignored, and
    the first window is dropped when it starts there (NAB's labeler);
  - an alarm at row ``i`` (``i = seq - start``) inside a window
    ``[a, b]`` (width ``w = b - a + 1``) scores ``A_TP * S(-(b - i + 1) /
    w) / S(-1)``, where ``S(x) = 2 / (1 + exp(5 x)) - 1`` (``-1`` for
    ``x > 3``): 1 at the window's first sample, falling towards 0 at its
    end. Only the best, i.e. first, alarm of a window counts; a window with
    none costs ``-A_FN``;
  - an alarm outside every window scores ``A_FP * S((i - b') / (w' - 1))``
    after a previous window ``[a', b']`` of width ``w'`` (``A_FP * -1``
    when there is none before it, or when ``w' = 1``, where NAB divides by
    zero);
  - windows whose every sample lies in the probationary period are not
    counted; ``W`` is the number of the others;
  - ``raw`` is the sum; ``score = 100 * (raw - null) / (perfect - null)``
    with ``null = -A_FN * W`` (no alarm) and ``perfect = A_TP * W`` (each
    window detected at its first sample): NAB's normalisation applied to
    one stream. ``null`` (JSON) when ``W = 0``.

  Cost matrices (:data:`PROFILES`) are NAB's ``config/profiles.json``.

Ratios whose denominator is 0 are ``None`` (JSON ``null``); an F1 with a
``None`` precision or recall is ``None``, with both 0 it is 0.

Known differences from NAB's code: NAB merges overlapping windows in one
pass (three mutually overlapping windows can stay two); here merging is
complete. NAB's Python 3 labeler indexes timestamps with ``L / 2``, which
fails for odd ``L``; here the half length is ``L // 2`` (its Python 2
meaning). NAB normalises over a whole corpus (summing scores and counting
labels); here each stream is normalised on its own.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
from wsgen.errors import WsgenError

#: NAB's cost matrices (numenta/NAB ``config/profiles.json``; ``tnWeight`` is unused by its scorer).
PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
#: NAB's probationary fraction.
PROBATION = 0.15
#: NAB's window size, as a fraction of the data length shared among the events.
WINDOW_FRACTION = 0.1

WindowRule = Union[str, int]


class ScoringError(WsgenError, ValueError):
    """Truth or detections that cannot be scored; the message says why and what is allowed."""


def check_window_rule(window: Any) -> WindowRule:
    """``window`` if it is a valid rule (``"nab"``, ``"events"`` or an int >= 1), else :class:`ScoringError`."""
    if window in ("nab", "events"):
        return window
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool) and 1 <= window <= 2**53:
        return int(window)
    raise ScoringError(f"window must be \"nab\", \"events\" or a length in samples in [1, 2**53]; got {window!r}")


def check_probation(probation: Any) -> float:
    if isinstance(probation, bool) or not isinstance(probation, (int, float)) or not 0 <= probation < 1:
        raise ScoringError(f"probation must be a fraction in [0, 1); got {probation!r}")
    return float(probation)


def events_from_labels(labels: Sequence[bool] | np.ndarray, start: int = 0) -> np.ndarray:
    """The runs of true labels as events: int64 array of shape (E, 2), rows
    ``[first, last]`` (inclusive seqs; ``labels[i]`` is sample ``start + i``)."""
    x = np.asarray(labels)
    if x.ndim != 1:
        raise ScoringError(f"labels must be one-dimensional; got shape {x.shape}")
    x = x.astype(bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([False], x, [False])).astype(np.int8)))
    return (edges.reshape(-1, 2) - [0, 1] + start).astype(np.int64)


def _is_labels(truth: Any, length: int | None) -> bool:
    """Whether ``truth`` is per-sample labels (a flat array or list of bools / 0 / 1) rather than events."""
    if isinstance(truth, np.ndarray):
        return truth.ndim == 1
    if not isinstance(truth, (list, tuple)):
        return False
    if not truth:
        return length in (None, 0)
    return all(isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)) for v in truth)


def _as_events(events: Iterable[Any]) -> np.ndarray:
    if isinstance(events, np.ndarray):     # (E, 2) integer rows, the fast path of live scoring
        if events.ndim != 2 or events.shape[1] != 2 or (events.size and not np.issubdtype(events.dtype, np.integer)):
            raise ScoringError(f"events as an array must be integers of shape (E, 2); got {events.dtype} "
                               f"{events.shape}")
        if np.any(events[:, 1] < events[:, 0]):
            raise ScoringError("an event's last is before its first")
        return events[np.argsort(events[:, 0], kind="stable")].astype(np.int64)
    rows = []
    for i, e in enumerate(events):
        if isinstance(e, Mapping):
            try:
                first, last = e["first"], e["last"]
            except KeyError:
                raise ScoringError(f"event {i}: an event object needs \"first\" and \"last\" "
                                   "(inclusive sample indices)") from None
        else:
            try:
                first, last = e
            except (TypeError, ValueError):
                raise ScoringError(f"event {i}: {e!r} is neither an object with first/last nor a "
                                   "[first, last] pair") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (first, last)):
            raise ScoringError(f"event {i}: first and last must be integers; got {first!r}, {last!r}")
        if last < first:
            raise ScoringError(f"event {i}: last {last} is before first {first}")
        rows.append((int(first), int(last)))
    rows.sort()
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def merge(windows: np.ndarray) -> np.ndarray:
    """Merge sorted-by-start windows that overlap or touch (next first <= the last of those before)."""
    if len(windows) < 2:
        return windows.reshape(-1, 2).astype(np.int64)
    reach = np.maximum.accumulate(windows[:, 1])
    new = np.ones(len(windows), bool)
    new[1:] = windows[1:, 0] > reach[:-1]
    heads = np.flatnonzero(new)
    return np.stack([windows[heads, 0], np.maximum.reduceat(windows[:, 1], heads)], axis=1).astype(np.int64)


def window_length(rule: WindowRule, length: int, n_events: int) -> int | None:
    """The window length in samples of ``rule`` (``None`` for ``"events"``)."""
    if rule == "events":
        return None
    if rule == "nab":
        return int(WINDOW_FRACTION * length / n_events) if n_events else int(WINDOW_FRACTION * length)
    return int(rule)


def windows(events: np.ndarray, start: int, length: int, rule: WindowRule) -> np.ndarray:
    """Each event's window under ``rule``, clipped to the scored range (unmerged, shape (E, 2))."""
    if len(events) == 0:
        return events.reshape(-1, 2)
    L = window_length(rule, length, len(events))
    half = 0 if L is None else L // 2
    w = events + [-half, half]
    return np.clip(w, start, start + length - 1)


def nab_windows(events: np.ndarray, start: int, length: int, rule: WindowRule, probation: float) -> np.ndarray:
    """The windows NAB scores: each event's window, the first one dropped
    when it starts in the probationary period, then merged (NAB's
    ``checkWindows``). Shape (W, 2), inclusive seqs."""
    wins = windows(events, start, length, rule)
    if len(wins) and wins[0, 0] - start < probation_length(probation, length):
        wins = wins[1:]
    return merge(wins)


def probation_length(probation: float, length: int) -> float:
    """NAB's probationary period in rows: ``min(floor(p * N), p * 5000)``."""
    return min(math.floor(probation * length), probation * 5000)


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's ``S(x) = 2 / (1 + exp(5 x)) - 1``, and -1 for ``x > 3``."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore"):
        val = 2.0 * (1.0 / (1.0 + np.exp(5.0 * x))) - 1.0
    return np.where(x > 3.0, -1.0, val)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _summary(values: np.ndarray, scale: float | None = 1.0) -> dict[str, float | None]:
    if len(values) == 0 or scale is None:
        return {"median": None, "max": None}
    return {"median": float(np.median(values)) * scale, "max": float(np.max(values)) * scale}


def _containing(wins: np.ndarray, alarms: np.ndarray) -> np.ndarray:
    """Index of the window holding each alarm, -1 where none does (windows sorted, disjoint)."""
    k = np.searchsorted(wins[:, 0], alarms, side="right") - 1 if len(wins) else np.full(len(alarms), -1)
    inside = (k >= 0) & (alarms <= wins[np.maximum(k, 0), 1]) if len(wins) else np.zeros(len(alarms), bool)
    return np.where(inside, k, -1)


def _first_in_window(k: np.ndarray) -> np.ndarray:
    """Positions of the first alarm of each window, from the (non-decreasing
    outside the -1s) window index of each sorted alarm."""
    if len(k) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero((k >= 0) & np.concatenate(([True], k[1:] != k[:-1])))


def nab_scores(wins: np.ndarray, alarms: np.ndarray, start: int, length: int, probation: float,
               profiles: Sequence[str]) -> dict[str, Any]:
    """NAB scores of sorted distinct ``alarms`` against merged, sorted ``wins``
    (the probation's window deletion already applied). See the module doc."""
    P = probation_length(probation, length)
    rows = alarms - start
    alarms = alarms[rows >= P]
    rows = rows[rows >= P]
    win_rows = wins - start
    scored = win_rows[:, 1] >= P if len(wins) else np.zeros(0, bool)
    W = int(scored.sum())
    k = _containing(win_rows, rows)
    inside = k >= 0
    # in a window: S(-(b - i + 1) / w) / S(-1); the first alarm is the best
    width = (win_rows[:, 1] - win_rows[:, 0] + 1).astype(float)
    first = _first_in_window(k)
    best = scaled_sigmoid(-(win_rows[k[first], 1] - rows[first] + 1) / width[k[first]]) / scaled_sigmoid(-1.0)
    detected = len(first)
    # outside: S((i - b') / (w' - 1)) after the previous window, -1 with none (or w' = 1)
    fp_rows = rows[~inside]
    prev = np.searchsorted(win_rows[:, 1], fp_rows, side="left") - 1 if len(wins) else np.full(len(fp_rows), -1)
    fp_unweighted = np.full(len(fp_rows), -1.0)
    has_prev = prev >= 0
    if has_prev.any():
        pw = width[prev[has_prev]]
        dist = (fp_rows[has_prev] - win_rows[prev[has_prev], 1]).astype(float)
        with np.errstate(divide="ignore"):
            pos = np.where(pw > 1, dist / np.maximum(pw - 1, 1), math.inf)
        fp_unweighted[has_prev] = scaled_sigmoid(pos)
    fp_sum = float(fp_unweighted.sum())
    tp_sum = float(best.sum())
    out: dict[str, Any] = {}
    for name in profiles:
        c = PROFILES[name]
        raw = c["tp"] * tp_sum + c["fp"] * fp_sum - c["fn"] * (W - detected)
        null, perfect = -c["fn"] * W, c["tp"] * W
        out[name] = {"score": None if W == 0 else 100.0 * (raw - null) / (perfect - null), "raw": raw}
    return {"windows": W, "detected": detected, "false_positives": len(fp_rows), "probation": math.ceil(P),
            "profiles": out}


def score(truth: Sequence[bool] | np.ndarray | Iterable[Any], detections: Iterable[int] | np.ndarray, *,
          profile: str | Sequence[str] | None = None, window: WindowRule = "nab",
          probation: float = PROBATION, start: int = 0, length: int | None = None,
          interval: float | None = None, scores: Sequence[float] | np.ndarray | None = None,
          threshold: float = 0.5) -> dict[str, Any]:
    """Every figure of a detector's alarms against the truth (see the module doc).

    Args:
        truth: per-sample labels (bools or 0/1, ``truth[i]`` is sample
            ``start + i``; ``length`` defaults to their count), or anomaly
            events: objects with ``first`` and ``last`` (other keys, such as
            ``kind``, are ignored) or ``[first, last]`` pairs, inclusive seqs;
            with events ``length`` is required.
        detections: alarm seqs (integers in the scored range; repeats count once).
        profile: a NAB profile name or a list of them (:data:`PROFILES`);
            ``None``: all three.
        window: ``"nab"``, ``"events"`` or a window length in samples.
        probation: NAB's probationary fraction, in [0, 1).
        start: seq of the first scored sample.
        length: number of scored samples.
        interval: seconds of stream time per sample, for the delays in
            seconds (``None``: those are ``None``).
        scores: one anomaly score per detection: only detections whose
            score is ``>= threshold`` are alarms.
        threshold: see ``scores``.

    Returns:
        ``{"first", "last", "samples", "alarms", "window", "events",
        "points", "delay", "nab"}``, JSON-ready (floats, ints, ``None``).

    Raises:
        ScoringError: truth or detections malformed, a detection outside the
            scored range, an unknown profile or window rule.
    """
    rule = check_window_rule(window)
    probation = check_probation(probation)
    names = list(PROFILES) if profile is None else [profile] if isinstance(profile, str) else list(profile)
    for name in names:
        if name not in PROFILES:
            raise ScoringError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    if _is_labels(truth, length):
        labels = np.asarray(truth)
        if length is None:
            length = len(labels)
        elif length != len(labels):
            raise ScoringError(f"length {length} differs from the {len(labels)} labels given")
        events = events_from_labels(labels, start)
    else:
        if length is None:
            raise ScoringError("with events as the truth, give length (the number of scored samples)")
        events = _as_events(truth)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ScoringError(f"length must be an integer >= 0; got {length!r}")
    length = int(length)
    end = start + length - 1
    if len(events):
        events = events[(events[:, 1] >= start) & (events[:, 0] <= end)]
        events = np.clip(events, start, max(end, start))
    try:
        det = np.asarray(list(detections) if not isinstance(detections, np.ndarray) else detections)
    except TypeError:
        raise ScoringError("detections must be a list of seqs (integers)") from None
    if det.size and not np.issubdtype(det.dtype, np.integer):
        if not np.issubdtype(det.dtype, np.floating) or not np.all(det == np.floor(det)):
            raise ScoringError("detections must be integer seqs")
    det = det.astype(np.int64).reshape(-1)
    if scores is not None:
        s = np.asarray(scores, dtype=float).reshape(-1)
        if len(s) != len(det):
            raise ScoringError(f"{len(s)} scores for {len(det)} detections: give one score per detection")
        det = det[s >= threshold]
    bad = det[(det < start) | (det > end)]
    if len(bad):
        raise ScoringError(f"detection seq {int(bad[0])} is outside the scored samples {start}..{end}"
                           if length else f"detection seq {int(bad[0])}: there are no scored samples")
    alarms = np.sort(det)
    alarms = alarms[np.concatenate(([True], alarms[1:] != alarms[:-1]))] if len(alarms) else alarms

    wins = merge(windows(events, start, length, rule))
    k = _containing(wins, alarms)
    n_win, n_fp = len(wins), int((k < 0).sum())
    first_idx = _first_in_window(k)
    hit, first_alarm = k[first_idx], alarms[first_idx]
    n_hit = len(hit)
    # delay: the first alarm of each detected window minus the first seq of
    # its first event, the first event starting at or after the window's
    # start (windows only widen events, and disjoint windows keep the order)
    event_first = events[np.searchsorted(events[:, 0], wins[hit, 0], side="left"), 0]
    delays = first_alarm - event_first

    # points
    spans = merge(events)
    anomalous = int((spans[:, 1] - spans[:, 0] + 1).sum()) if len(spans) else 0
    in_event = _containing(spans, alarms) >= 0
    tp_points = int(in_event.sum())

    nab = nab_scores(nab_windows(events, start, length, rule, probation), alarms, start, length, probation,
                     names)

    p_ev, r_ev = _ratio(n_hit, n_hit + n_fp), _ratio(n_hit, n_win)
    p_pt, r_pt = _ratio(tp_points, len(alarms)), _ratio(tp_points, anomalous)
    return {
        "first": start, "last": end, "samples": length, "alarms": int(len(alarms)),
        "window": {"rule": "events" if rule == "events" else "nab" if rule == "nab" else "fixed",
                   "length": window_length(rule, length, len(events))},
        "events": {"anomalies": int(len(events)), "windows": n_win, "detected": n_hit, "missed": n_win - n_hit,
                   "false_positives": n_fp, "precision": p_ev, "recall": r_ev, "f1": _f1(p_ev, r_ev)},
        "points": {"anomalous": anomalous, "true_positives": tp_points, "precision": p_pt, "recall": r_pt,
                   "f1": _f1(p_pt, r_pt)},
        "delay": {"samples": _summary(delays), "seconds": _summary(delays, interval)},
        "nab": {"probation": nab["probation"], "windows": nab["windows"], "detected": nab["detected"],
                "false_positives": nab["false_positives"], **nab["profiles"]},
    }
