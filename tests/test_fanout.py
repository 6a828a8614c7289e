"""wsgen.protocol.fanout: the plain subscriptions' data messages, written
straight to JSON, are byte for byte those of ``take(now, limit).to_json()``
at the same instants, whatever the schedule (late wake-ups, stalls longer
than a block rendered ahead, pauses, updates of parameters and speed,
unpaced spells); the subscriptions it does not serve are handed back."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from wsgen.engine import create
from wsgen.protocol import encoding
from wsgen.protocol import messages
from wsgen.protocol.fanout import PlainTake, batch_text, is_plain, take_plain
from wsgen.protocol.session import Session

KINDS = [("sine", {"frequency": 3.0}), ("square", {"duty_cycle": 0.3}), ("normal", {"std_dev": 2.0}),
         ("uniform", {}), ("triangle", {}), ("sawtooth", {"phase": 0.25})]


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def twins(subscribes: list[dict]) -> tuple[Session, Session, Clock]:
    """Two sessions on one clock and one grid with the same subscriptions."""
    clock = Clock()
    a = Session(clock=clock, wall=lambda: 1.7e9 + clock.now)
    b = Session(clock=clock, wall=lambda: 1.7e9 + clock.now)
    b.grid = a.grid
    for msg in subscribes:
        for s in (a, b):
            reply = s.handle(json.dumps(msg))[0]
            assert reply["type"] == "subscribed", reply
    return a, b, clock


def general_text(sub, now: float, limit: int) -> bytes | None:
    chunk = sub.take(now, limit)
    return None if chunk is None else encoding.dumps(chunk.to_json())


def plain_pass(order, now: float, limit: int) -> PlainTake:
    """The send order's two passes at ``now``, as one PlainTake."""
    p, b = order.plain_pass.take(now, limit), order.batched_pass.take(now, limit)
    samples = {k: p.samples.get(k, 0) + b.samples.get(k, 0) for k in p.samples.keys() | b.samples.keys()}
    return PlainTake(p.texts + b.texts, p.lags + b.lags, samples, min(p.next_due, b.next_due), p.rest + b.rest)


def step(a: Session, b: Session, now: float, limit: int = 8192, via: str = "take_plain") -> tuple[list[bytes], list[bytes]]:
    """One wake-up of each twin: ``a`` through take_plain (``via="pass"``:
    the send order's PlainPass objects, as the server) and ``take`` for
    what it hands back, ``b`` through ``take`` alone; their texts by id."""
    order = a.send_order()
    general = order.general
    got = take_plain(order.plain + order.batched, now, limit) if via == "take_plain" else \
        plain_pass(order, now, limit)
    texts = {json.loads(t)["id"]: t for t in got.texts}
    assert len(texts) == len(got.texts) == len(got.lags)
    for sub in got.rest + general:
        text = general_text(sub, now, limit)
        if text is not None:
            texts[sub.id] = text
    want = {}
    for sub in b.subscriptions.values():
        text = general_text(sub, now, limit)
        if text is not None:
            want[sub.id] = text
    assert sum(got.samples.values()) == sum(len(json.loads(t)["values"]) for t in got.texts)
    assert all(lag >= 0 for lag in got.lags)
    return texts, want


@pytest.mark.parametrize("via", ["take_plain", "pass"])
def test_one_sample_messages_are_the_general_paths_bytes(via):
    subs = [{"type": "subscribe", "id": f"s{i}", "generator": kind, "params": {**params, "interval": 0.01},
             "seed": 40 + i} for i, (kind, params) in enumerate(KINDS)]
    a, b, clock = twins(subs)
    assert [s.id for s in a.send_order().plain] == [f"s{i}" for i in range(len(KINDS))]
    sent = 0
    for k in range(300):                         # every wake-up 0.3 ms after the grid point
        clock.now = a.grid + math.ceil((5000.0 - a.grid) / 0.01) * 0.01 + k * 0.01 + 0.0003
        texts, want = step(a, b, clock.now, via=via)
        assert texts == want
        sent += len(texts)
    assert sent >= 300 * len(KINDS) - len(KINDS)
    one = json.loads(texts["s0"])
    assert list(one) == ["type", "id", "seq", "t", "dt", "values", "lag"]
    assert one["dt"] == 0.01 and len(one["values"]) == 1 and one["lag"] == pytest.approx(0.0003, abs=2e-6)
    # the values are the generator's own: a fresh sine with the same seed and params
    ref = create("sine", {"frequency": 3.0, "interval": 0.01}, seed=40).take(one["seq"] + 1).values
    assert one["values"][0] == ref[-1]


@pytest.mark.parametrize("via", ["take_plain", "pass"])
def test_random_schedules_updates_and_pauses_give_the_same_bytes(via):
    rng = random.Random(7)
    for trial in range(12):
        subs = []
        for i in range(8):
            kind, params = rng.choice(KINDS)
            subs.append({"type": "subscribe", "id": f"t{i}", "generator": kind, "seed": rng.randrange(1 << 40),
                         "params": {**params, "interval": rng.choice([0.001, 0.004, 0.01, 0.02, 0.1])},
                         "speed": rng.choice([1, 1, 2, 0.5]), "batch": rng.random() < 0.3})
        a, b, clock = twins(subs)
        handed_back = served = 0
        for _ in range(200):
            clock.now += rng.choice([0.0, 0.0005, 0.002, 0.01, 0.013, 0.05, 0.2, 1.5])
            if rng.random() < 0.15:                    # the same message to both twins
                i = rng.randrange(8)
                msg = rng.choice([{"type": "pause", "id": f"t{i}"}, {"type": "resume", "id": f"t{i}"},
                                  {"type": "update", "id": f"t{i}", "speed": rng.choice([1, 3, "max"])},
                                  {"type": "update", "id": f"t{i}",
                                   "params": {"interval": rng.choice([0.002, 0.01, 0.03])}},
                                  # values change (an error for the kinds without the parameter)
                                  {"type": "update", "id": f"t{i}",
                                   "params": rng.choice([{"amplitude": rng.uniform(0.5, 3)},
                                                         {"mean": rng.uniform(-1, 1)}])}])
                ra, rb = a.handle(json.dumps(msg)), b.handle(json.dumps(msg))
                assert ra == rb
            limit = rng.choice([8192, 8192, 3, 1])
            texts, want = step(a, b, clock.now, limit, via)
            assert texts == want, trial
            served += len(texts)
            handed_back += sum(1 for s in a.send_order().plain if s.pacer.unpaced)
        assert served > 100
        for sa, sb in zip(a.subscriptions.values(), b.subscriptions.values()):
            assert sa.generator.seq == sb.generator.seq
            assert sa.stats == sb.stats


def test_what_it_serves_and_what_it_hands_back():
    a, _, clock = twins([{"type": "subscribe", "id": "p", "generator": "sine", "params": {"interval": 0.01}},
                         {"type": "subscribe", "id": "bin", "generator": "sine", "encoding": "binary"},
                         {"type": "subscribe", "id": "bat", "generator": "sine", "batch": True},
                         {"type": "subscribe", "id": "drop", "generator": "sine", "backpressure": "drop"},
                         {"type": "subscribe", "id": "cnt", "generator": "sine", "count": 5},
                         {"type": "subscribe", "id": "lab", "generator": "random"},
                         {"type": "subscribe", "id": "walk", "generator": "random-walk"},
                         {"type": "subscribe", "id": "comp", "generator": {"base": {"kind": "sine"}}}])
    plain, batched, general = a.send_order()[:3]
    assert [s.id for s in plain] == ["p"] and [s.id for s in batched] == ["bat"]
    assert [s.id for s in general] == ["bin", "drop", "cnt", "lab", "walk", "comp"]
    assert [is_plain(s) for s in a.subscriptions.values()] == [True, False, True] + [False] * 5
    p = a.subscriptions["p"]
    # a stall of more than a block rendered ahead: the general take serves it
    clock.now += 64 * 0.01 + 0.001
    got = take_plain(plain, clock.now, 8192)
    assert got.texts == [] and got.rest == [p]
    chunk = p.take(clock.now, 8192)
    assert len(chunk.block) >= 64 and p.due(clock.now) == 0
    # caught up: one sample, then nothing until the next is due
    clock.now += 0.01
    got = take_plain(plain, clock.now, 8192)
    assert len(got.texts) == 1 and got.rest == [] and got.samples == {"sine": 1}
    assert got.next_due == p.pacer.due_time(p.generator.seq) > clock.now
    assert take_plain(plain, clock.now, 8192).texts == []
    # paused: skipped; unpaced (speed max): handed back
    a.handle(json.dumps({"type": "pause", "id": "p"}))
    assert take_plain(plain, clock.now + 1, 8192) == ([], [], {}, math.inf, [])
    a.handle(json.dumps({"type": "resume", "id": "p"}))
    a.handle(json.dumps({"type": "update", "id": "p", "speed": "max"}))
    assert take_plain(plain, clock.now + 1, 8192).rest == [p]


def test_a_passed_deadline_hands_the_rest_back():
    subs = [{"type": "subscribe", "id": f"s{i}", "generator": "sine", "params": {"interval": 0.01}}
            for i in range(64 + 10)]
    clock = Clock()
    s = Session(clock=clock)
    s.settings.max_subscriptions = 100
    for msg in subs:
        assert s.handle(json.dumps(msg))[0]["type"] == "subscribed"
    plain = s.send_order().plain
    clock.now += 0.011
    got = take_plain(plain, clock.now, 8192, deadline=0.0)     # the clock is looked at after 64
    assert len(got.texts) == 64 and [x.id for x in got.rest] == [f"s{i}" for i in range(64, 74)]
    got = take_plain(plain, clock.now, 8192)
    assert len(got.texts) == 10 and got.rest == []


def test_peek_is_take_without_advancing():
    for kind, params in KINDS:
        g1, g2 = create(kind, params, seed=3), create(kind, params, seed=3)
        for m in [1, 1, 5, 63, 1, 2, 30, 1]:
            peeked = g1.peek(m)
            assert g1.seq == g2.seq and np.array_equal(peeked, g2.take(m).values)
            g1.seek(g1.seq + m)
        change = {"amplitude": 2.0} if "amplitude" in type(g1.params).model_fields else {"mean": 1.5} \
            if kind == "normal" else {"max_val": 3.0}
        assert g1.update(change) == g2.update(change)
        assert g1.version == g2.version == 1
        g1.seek(g1.seq + 100)
        g2.seek(g2.seq + 100)
        assert np.array_equal(g1.peek(40), g2.take(40).values)
    with pytest.raises(ValueError, match="render_ahead"):
        create("random").peek(1)
    with pytest.raises(ValueError, match="render_ahead"):
        create("random-walk").peek(5)


def test_texts_ahead_are_rewritten_when_values_or_stamps_change():
    a, b, clock = twins([{"type": "subscribe", "id": "w", "generator": "sine", "params": {"interval": 0.01}}])
    sub, twin = a.subscriptions["w"], b.subscriptions["w"]

    def wake():
        clock.now = sub.pacer.due_time(sub.generator.seq) + 0.0002
        texts, want = step(a, b, clock.now)
        assert texts == want and len(texts) == 1
        return json.loads(texts["w"])

    first = wake()
    ahead = sub.texts_ahead
    assert ahead.first == first["seq"] and 1 <= len(ahead.texts) <= 64
    while sub.texts_ahead is ahead:              # served from the texts ahead until they run out
        wake()
    assert sub.texts_ahead.first == ahead.first + len(ahead.texts) and len(sub.texts_ahead.texts) == 64
    for msg in ({"type": "update", "id": "w", "params": {"amplitude": 9.0}},      # the generator's version
                {"type": "update", "id": "w", "speed": 2},                        # the pacer's epoch
                {"type": "pause", "id": "w"}):
        assert a.handle(json.dumps(msg)) == b.handle(json.dumps(msg))
        if msg["type"] == "pause":
            clock.now += 3.0
            for s in (a, b):
                s.handle(json.dumps({"type": "resume", "id": "w"}))
        before = sub.texts_ahead
        got = wake()
        assert sub.texts_ahead is not before and sub.texts_ahead.first == got["seq"]
    assert abs(got["values"][0]) <= 9.0 and twin.generator.seq == sub.generator.seq


def test_batch_text_is_the_batch_messages_json():
    texts = [encoding.dumps({"type": "data", "id": f"b{i}", "seq": i, "t": 1.5, "dt": 0.25, "values": [i / 3]})
             for i in range(3)]
    assert batch_text(texts) == encoding.dumps(messages.batch([json.loads(t) for t in texts]))
    assert batch_text(texts[:1]) == encoding.dumps(messages.batch([json.loads(texts[0])]))


def test_metrics_of_plain_messages():
    from wsgen.server.metrics import LATENESS_BUCKETS, Metrics
    m = Metrics()
    m.sent_texts([0.0001, 0.0001, 0.003, 0.0001, 0.0005, 7.0], {"sine": 5, "square": 2})
    d = m.delivery
    want = [0] * (len(LATENESS_BUCKETS) + 1)
    want[0], want[3], want[-1] = 4, 1, 1          # <= 0.5 ms (0.0005 itself included), <= 5 ms, +Inf
    assert d.buckets == want
    assert d.lateness_sum == pytest.approx(7.0038)
    assert d.messages["ws"] == 6 and d.samples == {("sine", "ws"): 5, ("square", "ws"): 2}
    text = m.render().decode()
    assert 'wsgen_schedule_lateness_seconds_bucket{le="0.0005"} 4.0' in text
    assert 'wsgen_samples_sent_total{generator="square",path="ws"} 2.0' in text


def test_lockstep_groups_give_the_same_bytes_across_renewals_and_late_wake_ups():
    """Subscriptions at one pace on the connection's grid form one lockstep
    group whatever their start (another grid point, a ``start_seq``); its
    messages stay the general path's bytes over many renewals of the texts
    ahead, late wake-ups (several samples: the group steps aside, then forms
    again) and wake-ups exactly on the due time (no ``lag``)."""
    clock = Clock()
    a = Session(clock=clock, wall=lambda: 1.7e9 + clock.now)
    b = Session(clock=clock, wall=lambda: 1.7e9 + clock.now)
    b.grid = a.grid
    rng = random.Random(11)
    for i in range(12):
        kind, params = KINDS[i % len(KINDS)]
        msg = {"type": "subscribe", "id": f"g{i}", "generator": kind, "seed": 100 + i,
               "params": {**params, "interval": 0.01}, "start_seq": rng.choice([0, 0, 7, 1000])}
        for s in (a, b):
            assert s.handle(json.dumps(msg))[0]["type"] == "subscribed"
        clock.now += rng.choice([0.0, 0.004, 0.01, 0.023])       # another grid point
        step(a, b, clock.now, via="pass")
    msg = {"type": "subscribe", "id": "slow", "generator": "sine", "params": {"interval": 0.03}}
    for s in (a, b):
        s.handle(json.dumps(msg))
    order = a.send_order()
    first = a.subscriptions["g0"]
    grouped = late = 0
    for k in range(400):
        due = first.pacer.due_time(first.generator.seq)
        clock.now = rng.choice([due, due + 0.0004, due + 0.0004, due + 0.0004, due + 0.015, due + 0.031])
        late += clock.now >= due + 0.01
        texts, want = step(a, b, clock.now, via="pass")
        assert texts == want, k
        groups = order.plain_pass.groups
        if groups:
            assert [len(g.subs) for g in groups] == [12] and "slow" not in [s.id for s in groups[0].subs]
            grouped += 1
    assert late > 50 and grouped > 200
    renewed = [s.texts_ahead.first for s in order.plain]
    assert len(set(renewed)) > 3        # the members' texts ahead end at different wake-ups
    for sa, sb in zip(a.subscriptions.values(), b.subscriptions.values()):
        assert sa.generator.seq == sb.generator.seq and sa.stats == sb.stats


def test_every_message_type_renews_the_send_order_or_changes_no_subscription():
    from wsgen.protocol.messages import CLIENT_TYPES
    from wsgen.protocol.session import CHANGING, UNCHANGING
    assert CHANGING | UNCHANGING == set(CLIENT_TYPES) and not CHANGING & UNCHANGING
    a, b, clock = twins([{"type": "subscribe", "id": f"u{i}", "generator": "sine", "params": {"interval": 0.01}}
                         for i in range(3)])
    order = a.send_order()
    for msg in ({"type": "list"}, {"type": "score", "id": "u0"}, {"type": "unwatch", "id": "w"}):
        a.handle(json.dumps(msg))                  # (errors for these ids: still nothing changed)
        assert a.send_order() is order
    a.handle(json.dumps({"type": "resume", "id": "u0"}))
    assert a.send_order() is not order


def test_a_paused_member_steps_the_group_aside_even_without_a_message():
    """Defence in depth: a member's state changed behind the session's back
    (no handler does it) breaks the group rather than serving it."""
    a, b, clock = twins([{"type": "subscribe", "id": f"q{i}", "generator": "sine", "params": {"interval": 0.01}}
                         for i in range(3)])
    order = a.send_order()
    clock.now += 0.01
    texts, want = step(a, b, clock.now, via="pass")
    assert texts == want and len(texts) == 3 and len(order.plain_pass.groups) == 1
    for s in (a, b):
        s.subscriptions["q1"].paused = True
    clock.now += 0.01
    texts, want = step(a, b, clock.now, via="pass")
    assert texts == want and sorted(texts) == ["q0", "q2"] and order.plain_pass.groups is None


def test_a_message_gives_a_new_pass_and_a_moved_seq_steps_the_group_aside():
    subs = [{"type": "subscribe", "id": f"m{i}", "generator": "sine", "params": {"interval": 0.01}, "seed": i}
            for i in range(4)]
    a, b, clock = twins(subs)
    order = a.send_order()
    for _ in range(3):
        clock.now += 0.01
        texts, want = step(a, b, clock.now, via="pass")
        assert texts == want and len(texts) == 4
    assert [len(g.subs) for g in order.plain_pass.groups] == [4]
    for s in (a, b):
        s.handle(json.dumps({"type": "pause", "id": "m2"}))
    assert a.send_order() is not order              # any message: a new order, groups formed again
    order = a.send_order()
    clock.now += 0.01
    texts, want = step(a, b, clock.now, via="pass")
    assert texts == want and sorted(texts) == ["m0", "m1", "m3"]
    assert [[s.id for s in g.subs] for g in order.plain_pass.groups] == [["m0", "m1", "m3"]]
    assert [s.id for s in order.plain_pass.loose] == ["m2"]
    # a member's seq moved by something else (as the general take would): not served by the group
    for s in (a, b):
        s.subscriptions["m1"].generator.seek(s.subscriptions["m1"].generator.seq + 5)
    clock.now += 0.01
    texts, want = step(a, b, clock.now, via="pass")
    assert texts == want and sorted(texts) == ["m0", "m3"]      # m1 is 5 samples ahead of its schedule
    assert order.plain_pass.groups is None          # formed again at the next take
    clock.now += 0.01
    texts, want = step(a, b, clock.now, via="pass")
    assert texts == want
    assert [[s.id for s in g.subs] for g in order.plain_pass.groups] == [["m0", "m3"]]


def test_subscriptions_apart_when_the_groups_formed_come_into_one_group():
    subs = [{"type": "subscribe", "id": f"k{i}", "generator": "sine", "params": {"interval": 0.01}, "seed": i}
            for i in range(4)]
    a, b, clock = twins(subs)
    order = a.send_order()
    first = a.subscriptions["k0"]
    due = first.pacer.due_time(first.generator.seq)
    clock.now = due + 0.0002
    got = take_plain([a.subscriptions["k0"], a.subscriptions["k1"]], clock.now, 8192)   # k2, k3 stay behind
    assert len(got.texts) == 2
    for s in ("k0", "k1"):
        b.subscriptions[s].take(clock.now, 8192)
    sizes = []
    for k in range(80):
        clock.now = due + (k + 1) * 0.01 + 0.0002
        texts, want = step(a, b, clock.now, via="pass")
        assert texts == want and len(texts) == 4, k
        sizes.append(sorted(len(g.subs) for g in order.plain_pass.groups))
    assert sizes[0] == [2, 2] and sizes[-1] == [4]
    assert sizes.index([4]) <= 65


@pytest.mark.parametrize("via", ["take_plain", "pass"])
def test_an_update_that_gives_a_replay_labels_takes_it_off_the_plain_pass(via):
    """A replay given a ``label_column`` by an update has labels (and no
    samples rendered ahead): its data messages carry ``labels``, from the
    general path, as its twin's; without the label column again it is
    plain again. (The pass used to write texts ahead of it: ValueError from
    ``peek``, and the server closed the connection with 1011.)"""
    a, b, clock = twins([{"type": "subscribe", "id": f"r{i}", "generator": "replay", "params": {"interval": 0.01}}
                         for i in range(3)])
    for _ in range(5):
        clock.now += 0.01
        texts, want = step(a, b, clock.now, via=via)
        assert texts == want and len(texts) == 3
    for change, labelled in (({"label_column": "label"}, True), ({"label_column": ""}, False)):
        msg = json.dumps({"type": "update", "id": "r0", "params": change})
        assert a.handle(msg) == b.handle(msg)
        assert [s.id for s in a.send_order().plain] == (["r1", "r2"] if labelled else ["r0", "r1", "r2"])
        for _ in range(70):                         # past the texts ahead written before the update
            clock.now += 0.01
            texts, want = step(a, b, clock.now, via=via)
            assert texts == want and len(texts) == 3
            assert ("labels" in json.loads(texts["r0"])) is labelled
    for sa, sb in zip(a.subscriptions.values(), b.subscriptions.values()):
        assert sa.generator.seq == sb.generator.seq and sa.stats == sb.stats


def test_lockstep_groups_of_one_pace_from_different_intervals_batched_and_past_a_deadline():
    """Intervals 0.01, 0.02 at speed 2 and 0.005 at speed 0.5 are one pace:
    one lockstep group (each message its own ``dt`` and ``t``), and the
    batched ones another; with more than 64 subscriptions and a deadline
    already passed, late wake-ups (the group steps aside, take_plain hands
    some back for ``take``) keep every subscription the general path's
    bytes, and the groups form again once on time."""
    clock = Clock()
    a = Session(clock=clock, wall=lambda: 1.7e9 + clock.now)
    b = Session(clock=clock, wall=lambda: 1.7e9 + clock.now)
    b.grid = a.grid
    for s in (a, b):
        s.settings.max_subscriptions = 100
    for i in range(90):
        interval, speed = [(0.01, 1), (0.02, 2), (0.005, 0.5)][i % 3]
        kind, params = KINDS[i % len(KINDS)]
        msg = json.dumps({"type": "subscribe", "id": f"s{i}", "generator": kind, "seed": i, "speed": speed,
                          "params": {**params, "interval": interval}, "batch": i % 5 == 0})
        assert a.handle(msg) == b.handle(msg)
    order = a.send_order()
    first = a.subscriptions["s1"]
    dts = set()
    for k in range(120):
        due = first.pacer.due_time(first.generator.seq)
        clock.now = due + [0.0003, 0.0003, 0.025, 0.9][k % 4]        # on time, 2 samples late, 90 late
        p = order.plain_pass.take(clock.now, 8192, deadline=0.0)
        q = order.batched_pass.take(clock.now, 8192, deadline=0.0)
        texts = {json.loads(t)["id"]: t for t in p.texts + q.texts}
        assert len(texts) == len(p.texts) + len(q.texts)
        for sub in p.rest + q.rest:
            assert sub.id not in texts
            texts[sub.id] = general_text(sub, clock.now, 8192)
        want = {s.id: general_text(s, clock.now, 8192) for s in b.subscriptions.values()}
        assert texts == want and len(texts) == 90, k
        if k % 4 == 0:
            assert [len(g.subs) for g in order.plain_pass.groups] == [72]
            assert [len(g.subs) for g in order.batched_pass.groups] == [18]
            dts |= {json.loads(t)["dt"] for t in p.texts}
    assert dts == {0.01, 0.02, 0.005}
    for sa, sb in zip(a.subscriptions.values(), b.subscriptions.values()):
        assert sa.generator.seq == sb.generator.seq and sa.stats == sb.stats
