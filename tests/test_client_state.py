"""The client's protocol logic with no I/O (wsgen.client.state), driven by
feeding it messages: reply matching, resume positions after a drop,
de-duplication, stream ends and the reconnection backoff."""
from __future__ import annotations

import numpy as np
import orjson
import pytest

from wsgen.client import ReceivedBlock, ServerError
from wsgen.client.state import REPLIES, Backoff, ClientState, StreamState, parse_frame
from wsgen.protocol.encoding import encode_binary


def sine(id="s", start_seq=0, **params) -> StreamState:
    return StreamState(id, "sine", params, 7, 1.0, "block", "json", start_seq)


def blk(seq, n, id="s") -> ReceivedBlock:
    return ReceivedBlock(seq, 100.0 + seq, 1.0, np.arange(seq, seq + n, dtype=float), None, id)


def subscribed(id="s", seq=0, **extra) -> dict:
    return {"type": "subscribed", "id": id, "seq": seq, "seed": 7, "speed": 1.0, "interval": 0.5,
            "params": {"amplitude": 1.0, "frequency": 2.0}, **extra}


# -- de-duplication and resume position ----------------------------------------------

def test_accept_drops_seqs_already_received_and_advances_next_seq():
    s = sine()
    kept = [s.accept(blk(seq, n)) for seq, n in [(0, 10), (5, 10), (3, 4), (15, 5), (12, 3)]]
    assert [None if b is None else (b.seq, len(b)) for b in kept] == [(0, 10), (10, 5), None, (15, 5), None]
    assert s.next_seq == 20
    np.testing.assert_array_equal(kept[1].values, [10.0, 11.0, 12.0, 13.0, 14.0])
    np.testing.assert_array_equal(kept[1].timestamps, [110.0, 111.0, 112.0, 113.0, 114.0])


def test_accept_nothing_once_finished():
    s = sine()
    s.finished = True
    assert s.accept(blk(0, 3)) is None and s.next_seq == 0


def test_composition_dedup_counts_samples_from_the_resume_slot():
    s = StreamState("c", {"interval": 1.0}, {}, 1, 1.0, "block", "json", 0)

    def comp(slot, seqs):
        seqs = np.asarray(seqs, dtype=np.int64)
        return ReceivedBlock(slot, 0.0, 1.0, seqs.astype(float), None, "c", explicit_seqs=seqs,
                     explicit_timestamps=seqs.astype(float))
    assert s.accept(comp(0, [0, 1, 1, 2])).seqs.tolist() == [0, 1, 1, 2]   # a duplicate by design is kept
    assert s.accept(comp(4, [4, 3])).seqs.tolist() == [4, 3]                # out of order is kept
    assert s.next_seq == 4
    msg = s.subscribe_message()                                              # resume from slot 4
    assert (msg["start_seq"], msg["generator"], "params" in msg) == (4, {"interval": 1.0}, False)
    assert s.accept(comp(4, [4])) is None                                    # 2 samples from slot 4 already held
    assert s.accept(comp(5, [3, 5, 6])).seqs.tolist() == [5, 6]              # 1 more to skip ("3"), then new
    assert s.next_seq == 5


def test_subscribe_message_resumes_at_next_seq_with_current_params_and_what_is_left():
    s = sine(amplitude=2.0)
    s.end_seq, s.max_lag, s.score_options = 50, 0.5, {"window": 10}
    assert s.subscribe_message() == {
        "type": "subscribe", "id": "s", "generator": "sine", "params": {"amplitude": 2.0}, "seed": 7, "start_seq": 0,
        "speed": 1.0, "backpressure": "block", "encoding": "json", "score": {"window": 10}, "max_lag": 0.5,
        "count": 50}
    s.apply(subscribed())
    s.apply({"type": "updated", "id": "s", "seq": 12, "speed": "max", "params": {"amplitude": 3.0, "interval": 0.25}})
    s.accept(blk(0, 20))
    assert s.subscribe_message() == {
        "type": "subscribe", "id": "s", "generator": "sine", "params": {"amplitude": 3.0, "interval": 0.25}, "seed": 7,
        "start_seq": 20, "speed": "max", "backpressure": "block", "encoding": "json", "score": {"window": 10},
        "max_lag": 0.5, "count": 30}
    assert s.interval == 0.25


def test_named_stream_resumes_at_its_next_seq():
    s = StreamState("n", "named", {}, 0, 1.0, "block", "binary", 0)
    s.stream = "plant"
    assert s.subscribe_message() == {"type": "subscribe", "id": "n", "stream": "plant", "backpressure": "block",
                                     "encoding": "binary"}
    s.apply(subscribed("n", seq=1234))
    assert (s.first_seq, s.next_seq) == (1234, 1234)
    s.accept(blk(1234, 6, "n"))
    assert s.subscribe_message()["start_seq"] == 1240


def test_duration_becomes_end_seq_by_the_servers_rule():
    s = sine(start_seq=10)
    s.duration = 2.0                      # interval 0.5 -> 4 samples from the first one
    assert s.subscribe_message()["duration"] == 2.0
    assert s.apply(subscribed(seq=10)) is False
    assert (s.end_seq, s.duration, s.first_seq, s.acknowledged) == (14, None, 10, True)
    s.accept(blk(10, 3))
    assert s.subscribe_message()["count"] == 1 and "duration" not in s.subscribe_message()


def test_replies_change_the_stream_and_ended_ends_it():
    s = sine()
    s.apply(subscribed())
    assert s.params == {"amplitude": 1.0, "frequency": 2.0} and s.interval == 0.5
    s.apply({"type": "paused", "id": "s", "seq": 4})
    assert s.paused
    s.apply({"type": "resumed", "id": "s", "seq": 4})
    assert not s.paused
    score = {"type": "score", "id": "s", "precision": 1.0}
    assert s.apply(score) is False and s.last_score == score
    assert s.apply({"type": "ended", "id": "s", "seq": 9, "score": {"recall": 0.5}}) is True
    assert s.last_score == {"recall": 0.5}


def test_channels_of_a_composition():
    s = StreamState("c", {"channels": ["a", "b"]}, {}, 1, 1.0, "block", "json", 0)
    assert s.channels == ["a", "b"] and sine().channels is None


# -- pending requests and reply matching -------------------------------------------

def request(state, msg, waiter=None):
    return state.request(lambda m=msg: m, msg.get("id"), REPLIES[msg["type"]], waiter)


def test_reply_answers_the_oldest_request_with_its_id_and_reply_type():
    st = ClientState()
    upd1 = request(st, {"type": "update", "id": "a", "params": {}})
    lst = request(st, {"type": "list"})
    pause = request(st, {"type": "pause", "id": "a"})
    upd2 = request(st, {"type": "update", "id": "a", "params": {}})
    assert st.receive({"type": "paused", "id": "a", "seq": 3}).request is pause
    assert st.receive({"type": "updated", "id": "a", "seq": 4}).request is upd1
    got = st.receive({"type": "error", "id": None, "code": "invalid_json", "message": "bad"})
    assert got.request is lst and (got.error.code, got.error.message) == ("invalid_json", "bad")
    got = st.receive({"type": "error", "id": "a", "code": "invalid_params", "message": "no", "details": [{"field": "x"}]})
    assert got.request is upd2 and got.error.details == [{"field": "x"}] and got.error.id == "a"
    assert st.pending == [] and not st.awaiting_reply


def test_unmatched_replies_answer_nothing():
    st = ClientState()
    request(st, {"type": "update", "id": "a", "params": {}})
    got = st.receive({"type": "error", "id": "b", "code": "unknown_id", "message": "?"})
    assert got.request is None and isinstance(got.error, ServerError) and got.error.code == "unknown_id"
    assert st.receive({"type": "paused", "id": "a", "seq": 1}).request is None   # not a reply to update
    assert len(st.pending) == 1


def test_unsubscribed_ends_and_removes_the_stream_and_answers_the_request():
    st = ClientState()
    s = sine()
    assert st.add(s) and not st.add(sine())            # a second "s" is not registered
    req = request(st, {"type": "unsubscribe", "id": "s"})
    got = st.receive({"type": "unsubscribed", "id": "s", "seq": 30})
    assert (got.request, got.ended, got.end_error) == (req, s, None)
    assert s.finished and st.streams == {}


def test_new_ids_count_up_and_skip_taken_ones():
    st = ClientState()
    st.add(sine("sine-2"))
    assert [st.new_id("sine"), st.new_id("sine"), st.new_id({"interval": 1}), st.new_id("op")] == [
        "sine-1", "sine-3", "composite-4", "op-5"]


def test_send_order_and_forget():
    st = ClientState()
    a = request(st, {"type": "list"})
    b = request(st, {"type": "pause", "id": "x"})
    assert st.next_unsent() is a
    assert a.message() == {"type": "list"} and a.sent
    assert st.next_unsent() is b
    st.forget(b)
    st.forget(b)                                        # twice is harmless
    assert st.next_unsent() is None and st.pending == [a]


# -- after a drop ----------------------------------------------------------------------

def test_connection_lost_queues_resubscriptions_then_pauses_then_unanswered_requests():
    st = ClientState()
    a, p, new = sine("a"), sine("p"), sine("new")
    for s in (a, p, new):
        st.add(s)
    st.receive(subscribed("a"))
    st.receive(subscribed("p"))
    st.receive({"type": "paused", "id": "p", "seq": 5})
    a.accept(blk(0, 42, "a"))
    sub_new = request(st, {"type": "subscribe", "id": "new"})       # not confirmed yet: re-sent as is
    upd = request(st, {"type": "update", "id": "a", "params": {"amplitude": 2}})
    sub_new.message()
    upd.message()
    st.connection_lost()
    sent = []
    while (req := st.next_unsent()) is not None:
        msg = req.message()
        sent.append((msg["type"], msg["id"], msg.get("start_seq"), req.internal))
    assert sent == [("subscribe", "a", 42, True), ("subscribe", "p", 0, True), ("pause", "p", None, True),
                    ("subscribe", "new", None, False), ("update", "a", None, False)]
    st.connection_lost()                                            # a second drop: the client's own are rebuilt, once
    assert [(r.build()["type"], r.id) for r in st.pending] == [
        ("subscribe", "a"), ("subscribe", "p"), ("pause", "p"), ("subscribe", "new"), ("update", "a")]


def test_refused_resubscription_ends_the_stream_with_the_error():
    st = ClientState()
    s = sine("a")
    st.add(s)
    st.receive(subscribed("a"))
    st.connection_lost()
    st.next_unsent().message()
    got = st.receive({"type": "error", "id": "a", "code": "limit_reached", "message": "too many"})
    assert got.request.internal and got.ended is s and got.end_error.code == "limit_reached"
    assert s.finished and st.streams == {} and st.pending == []


def test_clear_returns_streams_and_the_callers_requests():
    st = ClientState()
    s = sine("a")
    st.add(s)
    st.receive(subscribed("a"))
    st.connection_lost()                       # one internal re-subscription
    mine = request(st, {"type": "list"})
    streams, requests = st.clear()
    assert streams == [s] and s.finished and requests == [mine]
    assert st.streams == {} and st.pending == []


# -- frames and backoff ------------------------------------------------------------------

def test_parse_frame_json_data_binary_and_reply():
    data = {"type": "data", "id": "s", "seq": 3, "t": 10.0, "dt": 0.5, "values": [1.0, None], "labels": [False, True],
            "lag": 0.25, "skipped": 2}
    b = parse_frame(orjson.dumps(data).decode())
    assert (b.id, b.seq, b.t, b.dt, b.lag, b.skipped) == ("s", 3, 10.0, 0.5, 0.25, 2)
    np.testing.assert_array_equal(b.values, [1.0, np.nan])
    np.testing.assert_array_equal(b.labels, [False, True])
    np.testing.assert_array_equal(b.timestamps, [10.0, 10.5])
    frame = encode_binary("s", 3, 10.0, 0.5, np.array([1.0, 2.0]), None, 0.0, 0)
    b = parse_frame(frame)
    assert (b.id, b.seq, b.labels) == ("s", 3, None)
    np.testing.assert_array_equal(b.values, [1.0, 2.0])
    assert parse_frame('{"type": "paused", "id": "s", "seq": 1}') == {"type": "paused", "id": "s", "seq": 1}
    with pytest.raises(ValueError):
        parse_frame("{not json")
    with pytest.raises(KeyError):
        parse_frame('{"type": "data", "id": "s"}')


def test_backoff_delays_and_attempt_limit():
    halves = Backoff(0.1, 1.0, max_attempts=3, uniform=lambda lo, hi: hi)     # the longest delay each time
    assert [halves.delay(k) for k in (1, 2, 3, 4, 5, 70)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert [halves.next(), halves.next(), halves.next(), halves.next()] == pytest.approx([0.1, 0.2, 0.4, None])
    halves.reset()
    assert halves.attempt == 0 and halves.next() == pytest.approx(0.1)
    shortest = Backoff(0.1, 1.0, uniform=lambda lo, hi: lo)
    assert [shortest.delay(k) for k in (1, 2, 3)] == pytest.approx([0.05, 0.1, 0.2])
    assert all(shortest.next() is not None for _ in range(100))                # no limit


def test_a_scored_subscriptions_watch_token_is_the_latest_subscribed_ones():
    s = sine()
    assert s.watch_token is None
    s.apply(subscribed(score={"window": 10, "probation": 0.0, "threshold": 0.5, "watch": "tok-1"}))
    assert s.watch_token == "tok-1"
    s.apply(subscribed(seq=40, score={"window": 10, "probation": 0.0, "threshold": 0.5, "watch": "tok-2"}))
    assert s.watch_token == "tok-2"          # re-subscribed after a reconnect: the server gave a new one
    s.apply({"type": "updated", "id": "s", "seq": 50, "params": {}})
    assert s.watch_token == "tok-2"
