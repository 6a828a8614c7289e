"""Live scoring on a session, with no socket: detect, score, unsubscribe, and their errors.

The session is fed messages and a fake clock; samples are taken as the
WebSocket pump takes them (``SessionStream.take``), and the figures are
compared with ``wsgen.score`` on the truth those samples carried.
"""
from __future__ import annotations

import json

import numpy as np

import wsgen
from wsgen.scoring import live as detection
from wsgen.protocol.session import Session


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def session() -> tuple[Session, Clock]:
    clock = Clock()
    return Session(clock=clock, wall=lambda: 1.7e9 + clock.t), clock


def send(s: Session, **msg) -> dict:
    replies = s.handle(json.dumps(msg))
    assert len(replies) == 1
    return replies[0]


def take_all(s: Session, id: str, n: int, limit: int = 37) -> list:
    """Take ``n`` samples in chunks of at most ``limit`` (unpaced stream), as the pump does."""
    chunks, got = [], 0
    while got < n:
        c = s.subscriptions[id].take(s.clock(), min(limit, n - got))
        chunks.append(c)
        got += len(c.block.values) if not hasattr(c.block, "span") else c.block.span
    return chunks


def test_anomaly_kind_truth_runs_across_messages_and_figures_equal_wsgen_score():
    s, clock = session()
    r = send(s, type="subscribe", id="d", generator="random-square", seed=3, speed="max",
             params={"minimum_interval": 20, "maximum_interval": 40, "min_anomaly_duration": 5,
                     "max_anomaly_duration": 9}, score={"window": 12, "probation": 0.1})
    assert r["type"] == "subscribed" and r["score"] == {"window": 12, "probation": 0.1, "threshold": 0.5,
                                                        "watch": r["score"]["watch"]}
    chunks = take_all(s, "d", 400, limit=7)          # runs of 5-9 true labels cross 7-sample messages
    labels = np.concatenate([c.block.labels for c in chunks])
    truth = wsgen.scoring.figures.events_from_labels(labels)
    assert len(truth) >= 8
    recorded = s.subscriptions["d"].score
    assert np.stack([recorded._firsts, recorded._lasts], axis=1).tolist() == truth.tolist()
    alarms = [int(a) + 2 for a, _ in truth[::2]] + [3, 399]
    clock.t += 0.25
    r = send(s, type="detect", id="d", seqs=alarms)
    assert r == {"type": "detected", "id": "d", "added": len(set(alarms)), "alarms": len(set(alarms))}
    r = send(s, type="detect", id="d", seq=alarms[0])          # a repeat adds nothing
    assert r["added"] == 0 and r["alarms"] == len(set(alarms))
    got = send(s, type="score", id="d")
    want = wsgen.score(labels, alarms, window=12, probation=0.1, interval=1.0)
    assert got["type"] == "score" and got["ended"] is False
    for key in ("first", "last", "samples", "alarms", "window", "events", "points", "delay", "nab"):
        assert got[key] == want[key], key
    # latency: every alarm arrived 0.25 s after its message was made; samples behind = 399 - seq
    assert got["latency"]["seconds"] == {"median": 0.25, "max": 0.25}
    assert got["latency"]["samples"]["max"] == 399 - min(alarms)
    # unsubscribed carries the same figures
    r = send(s, type="unsubscribe", id="d")
    assert r["type"] == "unsubscribed" and r["score"] == {k: v for k, v in got.items() if k not in ("type", "id",
                                                                                                  "ended")}


def test_composition_scores_its_anomaly_events_not_its_faults():
    s, _ = session()
    spec = {"interval": 0.5, "anomalies": [{"kind": "spike", "height": 5,
                                            "placement": {"mode": "periodic", "every": 25, "start": 0}}],
            "faults": {"nulls": {"placement": {"probability": 0.05}}}}
    send(s, type="subscribe", id="c", generator=spec, seed=9, speed="max", score=True)
    chunks = take_all(s, "c", 300)
    events = {e["id"]: e for c in chunks for e in c.block.events}
    spikes = sorted((e["first"], e["last"]) for e in events.values() if e["kind"] == "spike")
    assert len(spikes) == 6 and any(e["kind"] == "null" for e in events.values())
    alarms = [spikes[1][0], spikes[3][0] + 1, 7]
    send(s, type="detect", id="c", seqs=alarms)
    got = send(s, type="score", id="c")
    want = wsgen.score(spikes, alarms, length=300, interval=0.5)
    assert got["events"] == want["events"] and got["nab"] == want["nab"] and got["delay"] == want["delay"]
    assert got["events"]["anomalies"] == 6
    assert got["delay"]["seconds"]["max"] == want["delay"]["samples"]["max"] * 0.5


def test_scores_are_thresholded_by_the_subscription_option():
    s, _ = session()
    send(s, type="subscribe", id="d", generator="periodic-spike", params={"spike_interval": 10}, speed="max",
         seed=1, score={"threshold": 0.8, "probation": 0})
    take_all(s, "d", 40)
    assert send(s, type="detect", id="d", seq=10, score=0.79)["added"] == 0
    assert send(s, type="detect", id="d", seq=10, score=0.8)["added"] == 1
    assert send(s, type="detect", id="d", seqs=[20, 21, 30], scores=[0.9, 0.1, 1.0])["alarms"] == 3
    assert send(s, type="score", id="d")["alarms"] == 3


def test_errors_change_nothing():
    s, _ = session()
    send(s, type="subscribe", id="d", generator="periodic-spike", params={"spike_interval": 10}, speed="max",
         seed=1, start_seq=100, score=True)
    send(s, type="subscribe", id="plain", generator="random", seed=1, speed="max")
    r = send(s, type="detect", id="d", seq=100)
    assert r["code"] == "out_of_range" and "no sample has been sent yet (the first will be 100)" in r["message"]
    take_all(s, "d", 50)
    cases = [
        ({"type": "detect", "id": "d", "seq": 99}, "out_of_range", "seq 99 is outside the samples sent: 100..149"),
        ({"type": "detect", "id": "d", "seqs": [120, 150]}, "out_of_range", "seq 150 is outside"),
        ({"type": "detect", "id": "nope", "seq": 1}, "unknown_id", "no subscription with id 'nope'"),
        ({"type": "score", "id": "nope"}, "unknown_id", "no subscription with id 'nope'"),
        ({"type": "detect", "id": "plain", "seq": 1}, "invalid_message", "is not scored: subscribe with"),
        ({"type": "score", "id": "plain"}, "invalid_message", "is not scored"),
        ({"type": "detect", "id": "d"}, "invalid_message", "give either seq (one alarm) or seqs"),
        ({"type": "detect", "id": "d", "seq": 120, "seqs": [121]}, "invalid_message", "give either seq"),
        ({"type": "detect", "id": "d", "seq": "x"}, "invalid_message", "seq"),
        ({"type": "detect", "id": "d", "seq": -1}, "invalid_message", "seq"),
        ({"type": "detect", "id": "d", "seqs": [120], "scores": [0.1, 0.2]}, "invalid_message",
         "2 scores for 1 seqs"),
        ({"type": "detect", "id": "d", "seqs": [120], "score": 0.5}, "invalid_message", "score goes with seq"),
        ({"type": "score", "id": "d", "extra": 1}, "invalid_message", "extra"),
        ({"type": "subscribe", "id": "w", "generator": "sine", "score": True}, "invalid_message",
         "'sine' has no ground truth to score against"),
        ({"type": "subscribe", "id": "w", "generator": "random", "score": True, "backpressure": "drop"},
         "invalid_message", "needs backpressure \"block\""),
        ({"type": "subscribe", "id": "w", "generator": "random", "score": {"window": 0}}, "invalid_message",
         "score.window: window must be \"nab\", \"events\" or a length in samples"),
        ({"type": "subscribe", "id": "w", "generator": "random", "score": {"probation": 1}}, "invalid_message",
         "score.probation: Input should be less than 1"),
    ]
    for msg, code, text in cases:
        r = send(s, **msg)
        assert r["type"] == "error" and r["code"] == code and text in r["message"], (msg, r)
    assert set(s.subscriptions) == {"d", "plain"}
    f = send(s, type="score", id="d")
    assert f["alarms"] == 0 and (f["first"], f["last"]) == (100, 149)
    assert send(s, type="detect", id="d", seqs=[100, 149])["alarms"] == 2


def test_event_limit_stops_scoring_at_the_limit(monkeypatch):
    monkeypatch.setattr(detection, "MAX_EVENTS", 3)
    s, _ = session()
    send(s, type="subscribe", id="d", generator="periodic-spike", params={"spike_interval": 10}, speed="max",
         seed=1, score={"probation": 0})
    take_all(s, "d", 60)                   # spikes at 0, 10, 20, 30 (the 4th passes the limit), 40, 50
    f = send(s, type="score", id="d")
    assert f["last"] == 29 and f["events"]["anomalies"] == 3
    r = send(s, type="detect", id="d", seq=35)
    assert r["code"] == "out_of_range" and "scoring stopped at seq 29 (at most 3 events" in r["message"]
    assert send(s, type="detect", id="d", seq=29)["added"] == 1


def test_alarm_limit(monkeypatch):
    monkeypatch.setattr(detection, "MAX_ALARMS", 4)
    s, _ = session()
    send(s, type="subscribe", id="d", generator="random", seed=1, speed="max", score=True)
    take_all(s, "d", 20)
    assert send(s, type="detect", id="d", seqs=[1, 2, 3])["alarms"] == 3
    r = send(s, type="detect", id="d", seqs=[4, 5])
    assert r["code"] == "limit_reached" and "at most 4 distinct alarms" in r["message"]
    assert send(s, type="detect", id="d", seqs=[3, 4])["alarms"] == 4


def test_a_stream_reaching_its_count_sends_its_final_score_before_ended():
    s, _ = session()
    send(s, type="subscribe", id="d", generator="periodic-spike", params={"spike_interval": 10, "interval": 0.1},
         speed="max", seed=1, count=250, score={"probation": 0, "window": 10})
    take_all(s, "d", 250)
    sub = s.subscriptions["d"]
    assert sub.finished(s.clock()) and sub.take(s.clock(), 10) is None
    send(s, type="detect", id="d", seqs=[2, 101])
    final, ended = s.end("d")
    assert final["type"] == "score" and final["ended"] is True and ended["type"] == "ended"
    want = wsgen.score([(0, 0), (100, 100), (200, 200)], [2, 101], length=250, window=10, probation=0,
                       interval=0.1)
    assert {k: final[k] for k in want} == want
    # an unscored stream ends with ended alone
    send(s, type="subscribe", id="p", generator="random", seed=1, speed="max", count=5)
    take_all(s, "p", 5)
    assert [m["type"] for m in s.end("p")] == ["ended"]


def test_named_streams_are_not_scored():
    from wsgen.server.config import Settings
    from wsgen.streams.named import NamedStreams
    from wsgen.streams.scenario import parse_scenario

    settings = Settings()
    clock = Clock()
    named = NamedStreams(clock=lambda: 1.8e9 + clock.t)
    for d in parse_scenario("streams:\n - {name: plant/t, generator: random, interval: 0.1, seed: 3}"):
        named.apply(named.define_entry(d))
    settings.named = named
    s = Session(settings, clock=clock, wall=lambda: 1.8e9 + clock.t)
    r = send(s, type="subscribe", id="n", stream="plant/t", score=True)
    assert r["code"] == "invalid_message" and r["details"][0]["field"] == "score"
    assert send(s, type="subscribe", id="n", stream="plant/t")["type"] == "subscribed"
    for msg in ({"type": "detect", "id": "n", "seq": 1}, {"type": "score", "id": "n"}):
        r = send(s, **msg)
        assert r["code"] == "invalid_message" and "is a named stream, which is not scored" in r["message"]


def test_score_up_to_a_given_last_leaves_later_samples_and_alarms_out():
    s, _ = session()
    send(s, type="subscribe", id="d", generator="periodic-spike", params={"spike_interval": 10, "interval": 0.1},
         speed="max", seed=1, score={"probation": 0, "window": 10})
    take_all(s, "d", 300)
    send(s, type="detect", id="d", seqs=[101, 150, 203])
    part = send(s, type="score", id="d", last=199)
    want = wsgen.score([(0, 0), (100, 100)], [101, 150], length=200, window=10, probation=0, interval=0.1)
    assert {k: part[k] for k in want} == want and part["last"] == 199
    assert send(s, type="score", id="d")["alarms"] == 3
    for last, text in ((300, "last 300 is outside the samples scored: 0..299"), (-1, "last")):
        r = send(s, type="score", id="d", last=last)
        assert r["type"] == "error" and text in r["message"], r
    assert send(s, type="score", id="d", last=300)["code"] == "out_of_range"


def test_a_labelled_replay_is_scored_live_and_offline_alike():
    """The built-in example file (1440 rows, three labelled incidents), to its end."""
    from wsgen.scoring.offline import parse, score_definition

    s, _ = session()
    params = {"label_column": "label", "at_end": "end"}
    send(s, type="subscribe", id="r", generator="replay", params=params, speed="max", score={"probation": 0})
    chunks = take_all(s, "r", 1440, limit=500)
    labels = np.concatenate([c.block.labels for c in chunks])
    assert s.subscriptions["r"].finished(s.clock())
    truth = wsgen.scoring.figures.events_from_labels(labels)
    assert len(truth) == 3
    alarms = [int(truth[0][0]) + 1, 700]
    send(s, type="detect", id="r", seqs=alarms)
    final, ended = s.end("r")
    assert (final["type"], final["ended"], ended["reason"]) == ("score", True, "end_of_data")
    want = wsgen.score(labels, alarms, probation=0)
    for key in ("events", "points", "nab", "alarms", "window"):
        assert final[key] == want[key], key
    offline = score_definition(parse({"generator": "replay", "params": params, "seed": 0, "last": 1439,
                                      "probation": 0, "detections": alarms}))
    assert {k: offline[k] for k in want} == {k: final[k] for k in want}


def test_the_protocol_doc_scoring_example_is_what_the_server_says():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    section = doc.split("## Scoring a detector", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip()[3:] for line in section.splitlines() if line.strip()[:3] in ("C: ", "S: ")]
    kinds = [line.strip()[:1] for line in section.splitlines() if line.strip()[:3] in ("C: ", "S: ")]
    assert len(lines) == 11
    s, clock = session()
    clock.t = 0.0           # as when the example was made: 0.004 s exactly
    pending: list[dict] = []
    for kind, text in zip(kinds, lines):
        msg = json.loads(text)
        if kind == "C":
            assert not pending
            pending = s.handle(text)
        elif msg["type"] == "data":            # the example's 300 samples, sent at once; alarms 4 ms later
            take_all(s, msg["id"], 300, limit=300)
            clock.t += 0.004
        else:
            reply = pending.pop(0)
            if reply["type"] == "subscribed":          # the watch token is random: the doc shows <token>
                reply["score"]["watch"] = "<token>"
            assert reply == msg
    assert not pending


# -- watching another connection's scored subscription ---------------------------------

def test_a_watcher_sees_the_owners_alarms_and_figures_read_only():
    owner, clock = session()
    pushed: list[dict] = []
    watcher = Session(clock=clock, wall=lambda: 1.7e9 + clock.t)
    watcher.push = pushed.append                      # as the WebSocket adapter sets it
    r = send(owner, type="subscribe", id="d", generator="periodic-spike", seed=1, speed="max",
             params={"spike_interval": 10, "interval": 0.1}, score={"window": 10, "probation": 0})
    token = r["score"]["watch"]
    assert isinstance(token, str) and len(token) >= 20
    take_all(owner, "d", 300)
    send(owner, type="detect", id="d", seqs=[101, 150])
    w = send(watcher, type="watch", id="w", token=token)
    assert w == {"type": "watching", "id": "w", "of": {"generator": "periodic-spike", "params": {
        "base_value": 0.0, "spike_interval": 10.0, "min_spike_range": 5.0, "max_spike_range": 10.0, "interval": 0.1},
        "seed": 1, "first": 0, "interval": 0.1, "speed": "max"}, "options": {"window": 10, "probation": 0.0, "threshold": 0.5},
        "last": 299, "alarms": [101, 150]}
    send(owner, type="detect", id="d", seqs=[150, 202])      # 150 again: only 202 is new
    assert pushed == [{"type": "detections", "id": "w", "seqs": [202]}]
    mine, theirs = send(watcher, type="score", id="w"), send(owner, type="score", id="d")
    assert {k: v for k, v in mine.items() if k != "id"} == {k: v for k, v in theirs.items() if k != "id"}
    # read-only: a watch is not a subscription
    assert send(watcher, type="detect", id="w", seq=5)["code"] == "unknown_id"
    assert send(watcher, type="pause", id="w")["code"] == "unknown_id"
    # the owner unsubscribes: the watcher hears it, with the final figures
    final = send(owner, type="unsubscribe", id="d")
    assert pushed[-1] == {"type": "unwatched", "id": "w", "reason": "unsubscribed", "score": final["score"]}
    assert send(watcher, type="score", id="w")["code"] == "unknown_id"


def test_watch_errors_and_the_owner_leaving():
    owner, clock = session()
    pushed: list[dict] = []
    watcher = Session(clock=clock, wall=lambda: 1.7e9 + clock.t)
    watcher.push = pushed.append
    token = send(owner, type="subscribe", id="d", generator="random", seed=1, speed="max", score=True)["score"]["watch"]
    send(watcher, type="subscribe", id="mine", generator="sine", seed=1)
    cases = [({"type": "watch", "id": "w", "token": "nope"}, "unknown_id", "no scored subscription with this watch"),
             ({"type": "watch", "id": "mine", "token": token}, "duplicate_id", "already in use"),
             ({"type": "watch", "id": "w"}, "invalid_message", "token"),
             ({"type": "unwatch", "id": "zz"}, "unknown_id", "no watch with id 'zz'")]
    for msg, code, text in cases:
        r = send(watcher, **msg)
        assert r["code"] == code and text in r["message"], r
    assert send(watcher, type="watch", id="w", token=token)["type"] == "watching"
    assert send(watcher, type="watch", id="w", token=token)["code"] == "duplicate_id"
    # nor can a subscription take a watch's id (the watch could no longer be scored)
    r = send(watcher, type="subscribe", id="w", generator="sine", seed=1)
    assert r["code"] == "duplicate_id" and "is a watch on this connection" in r["message"], r
    assert send(watcher, type="score", id="w")["type"] == "score"
    # the owner's speed as it is now: "max" at first, then what an update set
    assert send(watcher, type="watch", id="w2", token=token)["of"]["speed"] == "max"
    assert send(owner, type="update", id="d", speed=4)["type"] == "updated"
    assert send(watcher, type="watch", id="w3", token=token)["of"]["speed"] == 4
    assert send(watcher, type="unwatch", id="w3")["type"] == "unwatched"
    assert send(watcher, type="unwatch", id="w2") == {"type": "unwatched", "id": "w2", "reason": "unwatched"}
    owner.close()                                        # the owner's connection went away
    assert pushed == [{"type": "unwatched", "id": "w", "reason": "closed"}]
    assert send(watcher, type="watch", id="w3", token=token)["code"] == "unknown_id"
