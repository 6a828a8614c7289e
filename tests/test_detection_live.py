"""A real online detector scored live over a real WebSocket server.

river's HalfSpaceTrees (a test-only dependency) reads a composition sample
by sample as the data messages arrive and reports its alarms with
``detect`` while the stream goes on; the server's figures must equal a
scoring done here from the labels and events the client received, and
the NAB score that of a plain loop written from NAB's definitions (not
wsgen's code).
"""
from __future__ import annotations

import json
import math

import pytest
from river import anomaly
from websockets.asyncio.client import connect

import wsgen

SPEC = {
    "interval": 0.01,
    "base": {"kind": "sine", "params": {"amplitude": 1.0, "frequency": 0.5, "sample_rate": 100}, "offset": 5.0},
    "noise": {"kind": "normal", "std_dev": 0.05},
    "anomalies": [{"kind": "spike", "placement": {"mode": "periodic", "every": 3.0, "start": 0}, "height": 6.0},
                  {"kind": "level-shift", "placement": {"mode": "indices", "indices": [1650]},
                   "min_length": 40, "max_length": 40, "height": -3.0}],
}
SAMPLES = 2400
PROFILES = {"standard": (1.0, 0.11, 1.0), "reward_low_FP_rate": (1.0, 0.22, 1.0),
            "reward_low_FN_rate": (1.0, 0.11, 2.0)}


def nab_by_hand(windows: list[tuple[int, int]], alarms: list[int], n: int, probation: float,
                weights: tuple[float, float, float]) -> float:
    """NAB's normalised score by its definitions, one row at a time
    (windows already merged and with the probation's first-window rule applied)."""
    a_tp, a_fp, a_fn = weights
    p = min(math.floor(probation * n), probation * 5000)

    def sig(x: float) -> float:
        return -1.0 if x > 3 else 2 / (1 + math.exp(5 * x)) - 1

    best: dict[int, float] = {}
    fp = 0.0
    for i in sorted(set(alarms)):
        if i < p:
            continue
        inside = [k for k, (a, b) in enumerate(windows) if a <= i <= b]
        if inside:
            a, b = windows[inside[0]]
            best.setdefault(inside[0], a_tp * sig(-(b - i + 1) / (b - a + 1)) / sig(-1.0))
        else:
            before = [(a, b) for a, b in windows if b < i]
            if not before or before[-1][1] - before[-1][0] == 0:
                fp += -a_fp
            else:
                a, b = before[-1]
                fp += a_fp * sig((i - b) / (b - a))
    scored = [w for w in windows if w[1] >= p]
    raw = sum(best.values()) + fp - a_fn * (len(scored) - len(best))
    null, perfect = -a_fn * len(scored), a_tp * len(scored)
    return 100 * (raw - null) / (perfect - null)


async def test_half_space_trees_scored_live_equals_independent_scoring(server):
    # values lie in about [0, 12] (offset 5, amplitude 1, spikes of 6): the trees' feature range
    model = anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=100, seed=7, limits={"v": (0.0, 12.0)})
    events: dict[int, dict] = {}
    alarms: list[int] = []
    received = 0
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "hst", "generator": SPEC, "seed": 11,
                                  "speed": 20, "score": {"window": 60}}))
        replies: list[dict] = []
        while received < SAMPLES:
            msg = json.loads(await ws.recv())
            if msg["type"] != "data":
                replies.append(msg)
                continue
            for e in msg["events"]:
                events[e["id"]] = e
            found = []
            for i, v in enumerate(msg["values"]):
                x = {"v": v}
                if model.score_one(x) > 0.95 and msg["seq"] + i > 100:   # after the trees' warm-up
                    found.append(msg["seq"] + i)
                model.learn_one(x)
            received = msg["seq"] + len(msg["values"])
            if found:           # reported while the stream goes on, some as scores
                if len(found) == 1:
                    await ws.send(json.dumps({"type": "detect", "id": "hst", "seq": found[0], "score": 0.9}))
                else:
                    await ws.send(json.dumps({"type": "detect", "id": "hst", "seqs": found}))
                alarms += found
        await ws.send(json.dumps({"type": "score", "id": "hst"}))
        await ws.send(json.dumps({"type": "unsubscribe", "id": "hst"}))
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "data":      # sent before the unsubscribe took effect: part of the truth
                for e in msg["events"]:
                    events[e["id"]] = e
                received = msg["seq"] + len(msg["values"])
            elif msg["type"] == "unsubscribed":
                final = msg
                break
            else:
                replies.append(msg)
    assert replies[0]["type"] == "subscribed" and replies[0]["score"] == {"window": 60, "probation": 0.15,
                                                                          "threshold": 0.5,
                                                                          "watch": replies[0]["score"]["watch"]}
    detected = [r for r in replies if r["type"] == "detected"]
    assert detected and detected[-1]["alarms"] == len(set(alarms)) and sum(r["added"] for r in detected) == len(
        set(alarms))
    live = next(r for r in replies if r["type"] == "score")
    assert live["ended"] is False and live["alarms"] == len(set(alarms))

    figures = final["score"]
    assert (figures["first"], figures["last"]) == (0, final["seq"] - 1) == (0, received - 1)
    truth = sorted((e["first"], e["last"]) for e in events.values())
    assert len(truth) >= 8                                  # spikes every 300 samples, and the level shift
    want = wsgen.score(truth, alarms, window=60, length=received, interval=SPEC["interval"])
    for key in ("samples", "alarms", "window", "events", "points", "delay", "nab"):
        assert figures[key] == want[key], key
    # the detector found most events, several alarms each, and missed one (the spike at seq 0, in its
    # warm-up): every figure has something to count
    assert figures["events"]["detected"] >= 8 and figures["events"]["missed"] >= 1
    assert figures["alarms"] > figures["events"]["detected"] and figures["points"]["true_positives"] > 0

    windows = [(max(a - 30, 0), min(b + 30, received - 1)) for a, b in truth]
    if windows and windows[0][0] < min(math.floor(0.15 * received), 750):
        windows = windows[1:]
    for name, weights in PROFILES.items():
        assert figures["nab"][name]["score"] == pytest.approx(
            nab_by_hand(windows, alarms, received, 0.15, weights), abs=1e-9), name
    # latency, on the server's clock: never negative, and in samples at most what was sent
    assert 0 <= figures["latency"]["seconds"]["median"] <= figures["latency"]["seconds"]["max"]
    assert 0 <= figures["latency"]["samples"]["max"] < received


async def test_a_counted_stream_ends_with_its_final_score(server):
    """Alarms sent while a paced stream runs; the final score (before ``ended``) counts exactly the
    alarms the server acknowledged before it (replies come in request order)."""
    count = 300
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "c", "generator": "periodic-spike", "seed": 3,
                                  "params": {"spike_interval": 0.5, "interval": 0.01}, "speed": 3,
                                  "count": count, "score": {"window": 10, "probation": 0}}))
        sent_detects: list[list[int]] = []
        acknowledged: list[int] = []
        labels: list[bool] = []
        final = None
        ended = False
        while not (ended and not sent_detects):     # the end, and a reply to every detect sent
            msg = json.loads(await ws.recv())
            if msg["type"] == "data":
                labels += msg["labels"]
                found = [msg["seq"] + i for i, v in enumerate(msg["values"]) if abs(v) > 2]   # a spike
                if found:
                    await ws.send(json.dumps({"type": "detect", "id": "c", "seqs": found}))
                    sent_detects.append(found)
            elif msg["type"] == "detected":
                acknowledged += sent_detects.pop(0)
            elif msg["type"] == "error":
                assert msg["code"] == "unknown_id"          # a detect that came after the end
                sent_detects.pop(0)
            elif msg["type"] == "score":
                assert final is None and msg["ended"] is True
                final = msg
            elif msg["type"] == "ended":
                assert final is not None and msg["seq"] == count
                ended = True
        assert len(labels) == count
    want = wsgen.score(labels, [a for a in acknowledged], window=10, probation=0, interval=0.01)
    assert {k: final[k] for k in want} == want
    assert final["events"]["anomalies"] == 6 and final["alarms"] == len(acknowledged) >= 4


async def test_another_connection_watches_the_alarms_as_they_come(server):
    async with connect(server.ws_url) as owner, connect(server.ws_url) as watcher:
        await owner.send(json.dumps({"type": "subscribe", "id": "d", "generator": "periodic-spike", "seed": 1,
                                     "params": {"spike_interval": 10, "interval": 0.1}, "speed": "max",
                                     "score": {"window": 10, "probation": 0}}))
        msg = json.loads(await owner.recv())
        assert msg["type"] == "subscribed"
        token = msg["score"]["watch"]
        await watcher.send(json.dumps({"type": "watch", "id": "w", "token": token}))
        watching = json.loads(await watcher.recv())
        assert watching["type"] == "watching" and watching["of"]["seed"] == 1 and watching["alarms"] == []
        sent = 0
        while sent < 300:
            msg = json.loads(await owner.recv())
            if msg["type"] == "data":
                sent = msg["seq"] + len(msg["values"])
        await owner.send(json.dumps({"type": "detect", "id": "d", "seqs": [101, 150]}))
        await owner.send(json.dumps({"type": "detect", "id": "d", "seq": 202}))
        got = [json.loads(await watcher.recv()) for _ in range(2)]
        assert got == [{"type": "detections", "id": "w", "seqs": [101, 150]},
                       {"type": "detections", "id": "w", "seqs": [202]}]
        await watcher.send(json.dumps({"type": "score", "id": "w", "last": 299}))
        theirs = json.loads(await watcher.recv())
        assert theirs["type"] == "score" and theirs["id"] == "w" and theirs["alarms"] == 3
        assert theirs["events"]["detected"] == 2 and theirs["last"] == 299
        await owner.send(json.dumps({"type": "unsubscribe", "id": "d"}))
        while json.loads(await owner.recv())["type"] != "unsubscribed":
            pass                  # read what is in flight, so that the close is not stuck behind it
        bye = json.loads(await watcher.recv())
        assert bye["type"] == "unwatched" and bye["reason"] == "unsubscribed" and bye["score"]["alarms"] == 3
