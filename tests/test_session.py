"""The protocol's rules, pure: messages fed to Session with fake clocks.

No sockets and no asyncio: ``Session.handle(text)`` returns the replies and
``SessionStream.take(now, limit, wall)`` the samples due at ``now``.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgen import create
from wsgen.protocol import encoding
from wsgen.protocol import messages as P
from wsgen.server.config import Settings
from wsgen.engine import ANOMALY_KINDS, GENERATORS
from wsgen.protocol.session import Session

from reference import check_documented_reply  # noqa: E402  (tests/ is on sys.path under pytest)

MONO0 = 5000.0            # monotonic clock at the start of every test
WALL0 = 1_700_000_000.0   # Unix clock at the start of every test
EPS = 1e-6               # a little past a due time, where exactness is not the point
#: The 13 kinds of protocol v1, in registry order.
KINDS = ["sine", "cosine", "square", "sawtooth", "triangle", "normal", "uniform", "exponential", "random",
         "random-square", "clustered", "periodic-spike", "count-per-duration"]
SERVER_TYPES = {"subscribed", "updated", "paused", "resumed", "unsubscribed", "generators", "error"}


class Clock:
    """Fake monotonic and wall clocks moving together."""

    def __init__(self) -> None:
        self.mono = MONO0
        self.wall = WALL0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    def at(self, seconds: float) -> None:
        """Set both clocks to ``seconds`` after the start."""
        self.mono = MONO0 + seconds
        self.wall = WALL0 + seconds


def make(**settings) -> tuple[Session, Clock]:
    """A session on fake clocks; without grid alignment unless ``align_s`` is
    given (the rules of a lone stream are exact to the float without it)."""
    clock = Clock()
    settings.setdefault("align_s", 0.0)
    return Session(Settings(**settings), clock=lambda: clock.mono, wall=lambda: clock.wall), clock


def ask(session: Session, message) -> dict:
    """Send one message (dict -> JSON text; str/bytes as is); expect one reply."""
    raw = message if isinstance(message, (str, bytes)) else json.dumps(message)
    replies = session.handle(raw)
    assert len(replies) == 1, replies
    encoding.dumps(replies[0])  # every reply must be sendable
    return replies[0]


def subscribe(session: Session, **fields) -> dict:
    reply = ask(session, {"type": "subscribe", **fields})
    assert reply["type"] == "subscribed", reply
    return reply


def error_of(session: Session, message, code: str, id=None) -> dict:
    reply = ask(session, message)
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert reply["id"] == id, reply
    assert isinstance(reply["message"], str) and reply["message"]
    return reply


def take_all(session: Session, clock: Clock, id: str, limit: int = 1 << 20):
    return session.subscriptions[id].take(clock.mono, limit, clock.wall)


# -- subscribe ----------------------------------------------------------------

def test_subscribe_resolves_defaults_and_echoes_seed():
    session, clock = make()
    reply = subscribe(session, id="a", generator="sine", seed=42)
    assert reply == {"type": "subscribed", "id": "a", "generator": "sine",
                     "params": {"amplitude": 4.0, "frequency": 2.0, "phase": 0.0, "sample_rate": 100.0,
                                "interval": 1.0, "offset": 0.0},
                     "seed": 42, "seq": 0, "speed": 1.0, "backpressure": "block", "encoding": "json",
                     "interval": 1.0, "batch": False}
    chunk = take_all(session, clock, "a")
    assert chunk.block.seq == 0 and len(chunk.block) == 1 and chunk.block.values[0] == 0.0
    clock.advance(1.0 + EPS)
    chunk = take_all(session, clock, "a")
    assert chunk.block.seq == 1 and chunk.block.values[0] == pytest.approx(4 * math.sin(2 * math.pi * 0.02), abs=1e-12)


def test_subscribe_anomaly_defaults_use_interval():
    session, _ = make()
    reply = subscribe(session, id="r", generator="random", seed=1)
    assert reply["params"] == {"base_value": 0.0, "anomaly_probability": 0.05, "anomaly_range": 10.0,
                               "interval": 1.0}
    assert reply["interval"] == 1.0


def test_interval_and_its_alias_data_interval_over_the_protocol():
    session, _ = make()
    for i, params in enumerate([{"interval": 0.5}, {"data_interval": 0.5}]):
        reply = subscribe(session, id=f"r{i}", generator="random-square", seed=1, params=params)
        assert reply["params"]["interval"] == 0.5 and "data_interval" not in reply["params"]
        assert reply["interval"] == 0.5
    # the alias in an update, and in a URL subscription
    reply = session.handle(json.dumps({"type": "update", "id": "r0", "params": {"data_interval": 0.25}}))[0]
    assert reply["type"] == "updated" and reply["params"]["interval"] == 0.25
    reply = session.subscribe_url("clustered", {"interval": "0.2", "seed": "4"})[0]
    assert reply["type"] == "subscribed" and reply["params"]["interval"] == 0.2
    # both names: refused, naming both; the stream is untouched
    for msg in ({"type": "subscribe", "id": "both", "generator": "random", "params": {"interval": 1, "data_interval": 2}},
                {"type": "update", "id": "r0", "params": {"interval": 1, "data_interval": 2}}):
        err = error_of(session, msg, P.INVALID_PARAMS, msg["id"])
        assert err["details"][0]["field"] == "data_interval"
        assert "interval" in err["details"][0]["message"] and "give only one of interval, data_interval" in err["message"]
    assert session.subscriptions["r0"].generator.params.interval == 0.25
    assert "both" not in session.subscriptions


def test_drawn_seed_is_reported_and_reproduces_the_stream():
    session, clock = make()
    a = subscribe(session, id="a", generator="normal", params={"interval": 0.1})
    b = subscribe(session, id="b", generator="normal", params={"interval": 0.1})
    assert isinstance(a["seed"], int) and 0 <= a["seed"] < 2**53
    assert a["seed"] != b["seed"]
    clock.advance(1.0 + EPS)
    got = take_all(session, clock, "a").block.values
    assert len(got) == 11
    assert np.array_equal(got, create("normal", {"interval": 0.1}, seed=a["seed"]).take(11).values)


def test_auto_ids_are_generator_dash_number_and_skip_taken_ones():
    session, _ = make()
    subscribe(session, id="sine-2", generator="sine")
    assert subscribe(session, generator="sine")["id"] == "sine-1"
    assert subscribe(session, generator="sine")["id"] == "sine-3"   # sine-2 is taken
    assert subscribe(session, generator="normal")["id"] == "normal-4"
    assert sorted(session.subscriptions) == ["normal-4", "sine-1", "sine-2", "sine-3"]


def test_subscribe_options_are_echoed():
    session, _ = make()
    reply = subscribe(session, id="x", generator="uniform", seed=2**64 - 1, speed="max", backpressure="drop",
                      encoding="binary", start_seq=7, params={"min_val": -1, "max_val": 1, "interval": 0.5})
    assert reply["speed"] == "max" and reply["backpressure"] == "drop" and reply["encoding"] == "binary"
    assert reply["seq"] == 7 and reply["seed"] == 2**64 - 1 and reply["interval"] == 0.5
    assert reply["params"] == {"min_val": -1.0, "max_val": 1.0, "interval": 0.5}
    sub = session.subscriptions["x"]
    assert (sub.backpressure, sub.encoding, sub.generator.seq) == ("drop", "binary", 7)


# -- list -----------------------------------------------------------------------

def test_list_gives_every_generator_with_a_json_schema():
    session, _ = make()
    reply = ask(session, {"type": "list"})
    assert reply["type"] == "generators" and reply["protocol"] == 1
    gens = reply["generators"]
    assert [g["name"] for g in gens][:13] == KINDS
    assert [g["name"] for g in gens] == list(GENERATORS)
    for g in gens:
        schema = g["params_schema"]
        assert schema["type"] == "object"
        assert set(schema["properties"]) == set(GENERATORS[g["name"]].params_model.model_fields)
        assert g["interval_field"] in schema["properties"]
        assert g["anomalous"] == (g["name"] in ANOMALY_KINDS)
        assert g["family"] in ("waveform", "distribution", "anomaly", "process", "periodic", "recorded") and g["description"]
    json.loads(encoding.dumps(reply))


# -- update -------------------------------------------------------------------

def test_update_takes_effect_at_the_announced_seq_with_continuous_phase():
    session, clock = make()
    subscribe(session, id="s", generator="sine", seed=1, params={"interval": 0.1})
    clock.advance(0.4 + EPS)
    assert len(take_all(session, clock, "s").block) == 5          # samples 0..4
    reply = ask(session, {"type": "update", "id": "s", "params": {"frequency": 5}})
    assert reply == {"type": "updated", "id": "s", "seq": 5, "speed": 1.0,
                     "params": {"amplitude": 4.0, "frequency": 5.0, "phase": 0.0, "sample_rate": 100.0,
                                "interval": 0.1, "offset": 0.0}}
    clock.advance(1.0)
    chunk = take_all(session, clock, "s")
    assert chunk.block.seq == 5 and len(chunk.block) == 10
    # phase accumulator continues from c(5) = 5 * 2 / 100 cycles with the new step 5 / 100
    n = np.arange(5, 15)
    expected = 4 * np.sin(2 * np.pi * (5 * 2 / 100 + (n - 5) * 5 / 100))
    np.testing.assert_allclose(chunk.block.values, expected, rtol=0, atol=1e-12)
    ref = create("sine", {"interval": 0.1}, seed=1)
    ref.take(5)
    ref.update({"frequency": 5})
    assert np.array_equal(chunk.block.values, ref.take(10).values)


def test_update_is_validated_merged_with_current_params():
    session, _ = make()
    subscribe(session, id="u", generator="uniform", seed=3)
    assert ask(session, {"type": "update", "id": "u", "params": {"max_val": 10}})["params"]["max_val"] == 10.0
    assert ask(session, {"type": "update", "id": "u", "params": {"min_val": 5}})["params"] == {
        "min_val": 5.0, "max_val": 10.0, "interval": 1.0}
    err = error_of(session, {"type": "update", "id": "u", "params": {"min_val": 11}}, P.INVALID_PARAMS, "u")
    assert err["details"] == [{"field": "min_val", "value": 11.0, "message": "must be <= max_val (10.0)"}]
    assert session.subscriptions["u"].generator.params.min_val == 5.0


def test_invalid_update_leaves_params_and_stream_unchanged():
    session, clock = make()
    subscribe(session, id="s", generator="sine", seed=1, params={"interval": 0.1})
    clock.advance(0.2 + EPS)
    first = take_all(session, clock, "s").block.values
    before = session.subscriptions["s"].generator.params
    err = error_of(session, {"type": "update", "id": "s", "params": {"frequency": -1, "amplitude": 2}},
                   P.INVALID_PARAMS, "s")
    assert err["details"] == [{"field": "frequency", "value": -1,
                               "message": "Input should be greater than or equal to 0"}]
    err = error_of(session, {"type": "update", "id": "s", "params": {"bogus": 1}}, P.INVALID_PARAMS, "s")
    assert err["details"][0]["field"] == "bogus" and "unknown parameter" in err["details"][0]["message"]
    assert session.subscriptions["s"].generator.params == before
    clock.advance(0.3)
    rest = take_all(session, clock, "s").block.values
    assert np.array_equal(np.concatenate([first, rest]), create("sine", {"interval": 0.1}, seed=1).take(6).values)


def test_update_refused_by_min_interval_leaves_the_stream_untouched():
    # Regression: the refused update used to be applied then undone, which
    # started a new count-per-duration window and changed the stream.
    params = {"data_interval": 0.5, "duration": 5, "num_anomalies": 3}
    session, clock = make(min_interval_s=0.01)
    subscribe(session, id="c", generator="count-per-duration", seed=7, params=params)
    clock.advance(3.5)
    first = take_all(session, clock, "c").block
    err = error_of(session, {"type": "update", "id": "c", "params": {"data_interval": 0.001}},
                   P.INVALID_PARAMS, "c")
    assert err["details"] == [{"field": "data_interval", "value": 0.001, "message": "must be 0 or >= 0.01"}]
    clock.advance(10)
    rest = take_all(session, clock, "c").block
    ref = create("count-per-duration", params, seed=7).take(len(first) + len(rest))
    assert np.array_equal(np.concatenate([first.values, rest.values]), ref.values)
    assert np.array_equal(np.concatenate([first.labels, rest.labels]), ref.labels)
    assert len(ref.labels) == 28 and ref.labels[:10].sum() == ref.labels[10:20].sum() == 3  # 3 per 10-sample window


def test_update_speed_alone():
    session, clock = make()
    subscribe(session, id="s", generator="sine", params={"interval": 1.0})
    reply = ask(session, {"type": "update", "id": "s", "speed": 10})
    assert reply["speed"] == 10.0 and reply["seq"] == 0
    assert ask(session, {"type": "update", "id": "s", "speed": "max"})["speed"] == "max"
    assert session.subscriptions["s"].pacer.unpaced


def test_update_of_a_composition_merges_nested_objects():
    # Regression: a shallow pre-validation of the merged params replaced the
    # whole "base" object and refused this partial update.
    session, clock = make(min_interval_s=0.01)
    comp = {"interval": 0.1, "base": {"kind": "sine", "params": {"amplitude": 2}}}
    reply = subscribe(session, generator=comp, seed=1)
    sid = reply["id"]
    assert sid == "composite-1" and reply["generator"] == "composite" and reply["interval"] == 0.1
    clock.at(0.2 + EPS)
    first = take_all(session, clock, sid)
    assert first.block.seq == 0 and len(first.block.values) == 3
    upd = ask(session, {"type": "update", "id": sid, "params": {"base": {"params": {"amplitude": 3}}}})
    assert upd["type"] == "updated" and upd["seq"] == 3
    assert upd["params"]["base"]["kind"] == "sine" and upd["params"]["base"]["params"]["amplitude"] == 3.0
    err = error_of(session, {"type": "update", "id": sid, "params": {"interval": 0.001}}, P.INVALID_PARAMS, sid)
    assert err["details"] == [{"field": "interval", "value": 0.001, "message": "must be 0 or >= 0.01"}]
    assert session.subscriptions[sid].generator.params.interval == 0.1
    clock.at(0.5 + EPS)
    chunk = take_all(session, clock, sid)
    assert chunk.block.seq == 3 and set(chunk.to_json()) >= {"events", "values", "labels"}
    # the amplitude change is the sine's: values 3 * sin(2 pi * 2 n / 100) from sample 3 on
    np.testing.assert_allclose(chunk.block.values, 3 * np.sin(2 * np.pi * 2 * np.arange(3, 6) / 100), atol=1e-12)


def test_composition_rules_on_subscribe():
    session, _ = make()
    comp = {"interval": 0.1}
    err = error_of(session, {"type": "subscribe", "id": "c", "generator": comp, "params": {"a": 1}},
                   P.INVALID_MESSAGE, "c")
    assert err["details"][0]["field"] == "params"
    err = error_of(session, {"type": "subscribe", "id": "c", "generator": comp, "encoding": "binary"},
                   P.INVALID_MESSAGE, "c")
    assert err["details"][0]["field"] == "encoding"
    error_of(session, {"type": "subscribe", "id": "c", "generator": {"bogus": 1}}, P.INVALID_PARAMS, "c")
    error_of(session, {"type": "subscribe", "id": "c", "generator": ["sine"]}, P.INVALID_MESSAGE, "c")
    listing = ask(session, {"type": "list"})
    assert set(listing["composition"]) == {"schema", "presets", "channel_schema"}
    assert set(listing["composition"]["presets"]) == set(ANOMALY_KINDS)


# -- pause / resume / unsubscribe ------------------------------------------

def test_pause_stops_samples_and_resume_reanchors_at_now():
    session, clock = make()
    subscribe(session, id="p", generator="sine", seed=1, params={"interval": 0.1})
    clock.advance(0.25)
    assert len(take_all(session, clock, "p").block) == 3
    assert ask(session, {"type": "pause", "id": "p"}) == {"type": "paused", "id": "p", "seq": 3}
    assert ask(session, {"type": "pause", "id": "p"}) == {"type": "paused", "id": "p", "seq": 3}
    sub = session.subscriptions["p"]
    clock.advance(100)
    assert sub.due(clock.mono) == 0 and sub.next_due() == math.inf and session.next_due() == math.inf
    assert take_all(session, clock, "p") is None
    resumed_at, resumed_mono = clock.wall, clock.mono
    assert ask(session, {"type": "resume", "id": "p"}) == {"type": "resumed", "id": "p", "seq": 3}
    assert sub.due(clock.mono) == 1                 # sample 3 due now, no pile-up
    chunk = take_all(session, clock, "p")
    assert chunk.block.seq == 3 and chunk.t == resumed_at
    assert sub.next_due() == resumed_mono + 0.1
    clock.mono = np.nextafter(resumed_mono + 0.1, 0)
    assert sub.due(clock.mono) == 0
    clock.mono, clock.wall = resumed_mono + 0.1, resumed_at + 0.1
    assert sub.due(clock.mono) == 1
    chunk = take_all(session, clock, "p")
    assert chunk.t == resumed_at + 0.1
    # values never notice the pause
    assert np.array_equal(chunk.block.values, create("sine", seed=1).take(5).values[4:])


def test_resume_without_pause_does_not_reanchor():
    session, clock = make()
    subscribe(session, id="p", generator="sine", params={"interval": 0.1})
    clock.advance(0.35)
    assert ask(session, {"type": "resume", "id": "p"}) == {"type": "resumed", "id": "p", "seq": 0}
    assert len(take_all(session, clock, "p").block) == 4


def test_unsubscribe_reports_seq_and_frees_the_id():
    session, clock = make()
    subscribe(session, id="u", generator="sine", params={"interval": 0.1})
    clock.advance(0.5 + EPS)
    take_all(session, clock, "u")
    assert ask(session, {"type": "unsubscribe", "id": "u"}) == {"type": "unsubscribed", "id": "u", "seq": 6}
    assert session.subscriptions == {}
    error_of(session, {"type": "unsubscribe", "id": "u"}, P.UNKNOWN_ID, "u")
    assert subscribe(session, id="u", generator="cosine")["seq"] == 0


# -- errors -------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["{nope", "", "   ", "{\"type\": \"list\"", b"\xff\xfe", "NaN-ish"])
def test_invalid_json(raw):
    session, _ = make()
    err = error_of(session, raw, P.INVALID_JSON)
    assert "JSON object" in err["message"]


@pytest.mark.parametrize("raw", ["[1, 2]", "\"subscribe\"", "3", "null", "true", "[{\"type\": \"list\"}]"])
def test_non_object_json_is_invalid_json(raw):
    session, _ = make()
    err = error_of(session, raw, P.INVALID_JSON)
    assert "Input should be an object" in err["message"]


def test_unknown_and_missing_type():
    session, _ = make()
    err = error_of(session, {"type": "subscribbe", "id": "q"}, P.UNKNOWN_TYPE, "q")
    assert err["message"] == "unknown type 'subscribbe'; allowed: " + ", ".join(P.CLIENT_TYPES)
    assert P.CLIENT_TYPES[:6] == ("subscribe", "update", "pause", "resume", "unsubscribe", "list")
    assert {"detect", "score"} <= set(P.CLIENT_TYPES)
    err = error_of(session, {"id": "q", "generator": "sine"}, P.UNKNOWN_TYPE, "q")
    assert err["message"].startswith('missing "type"')
    error_of(session, {}, P.UNKNOWN_TYPE)
    error_of(session, {"type": 5}, P.UNKNOWN_TYPE)
    error_of(session, {"type": None}, P.UNKNOWN_TYPE)
    error_of(session, {"type": "x" * 10000}, P.UNKNOWN_TYPE)
    assert len(ask(session, {"type": "x" * 10000})["message"]) < 300


@pytest.mark.parametrize("message, field", [
    ({"type": "subscribe", "id": "m", "generator": "sine", "speed": 0}, "speed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "speed": -1}, "speed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "speed": 1e7}, "speed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "speed": "fast"}, "speed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "speed": True}, "speed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "backpressure": "maybe"}, "backpressure"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "encoding": "xml"}, "encoding"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "seed": -1}, "seed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "seed": 2**64}, "seed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "seed": 1.5}, "seed"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "start_seq": -1}, "start_seq"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "params": [1]}, "params"),
    ({"type": "subscribe", "id": "m", "generator": "sine", "colour": "red"}, "colour"),
    ({"type": "subscribe", "id": "m"}, "generator"),
    ({"type": "subscribe", "id": "m", "generator": 7}, "generator"),
    ({"type": "update", "id": "m", "params": "amplitude=2"}, "params"),
    ({"type": "update", "id": "m", "speed": 0}, "speed"),
    ({"type": "pause", "id": "m", "at": 3}, "at"),
])
def test_invalid_message_fields_name_the_field(message, field):
    session, _ = make()
    err = error_of(session, message, P.INVALID_MESSAGE, "m")
    assert [d["field"] for d in err["details"]] == [field]
    assert err["message"].startswith(f"invalid message: {field}: ")
    assert session.subscriptions == {}


@pytest.mark.parametrize("message, field", [
    ({"type": "update"}, "id"),
    ({"type": "pause", "id": ""}, "id"),
    ({"type": "resume", "id": "x" * 129}, "id"),
    ({"type": "unsubscribe", "id": 5}, "id"),
    ({"type": "subscribe", "id": 5, "generator": "sine"}, "id"),
    ({"type": "list", "id": "l"}, "id"),
])
def test_invalid_ids(message, field):
    session, _ = make()
    err = ask(session, message)
    assert err["type"] == "error" and err["code"] == P.INVALID_MESSAGE
    assert [d["field"] for d in err["details"]] == [field]
    assert err["id"] in (None, message.get("id"))


def test_details_values_are_sendable():
    session, _ = make()
    err = error_of(session, '{"type": "subscribe", "id": "b", "generator": "sine", "seed": %d}' % 10**30,
                   P.INVALID_MESSAGE, "b")
    assert err["details"][0]["value"] == str(10**30)
    err = error_of(session, '{"type": "subscribe", "id": "b", "generator": "sine", "params": {"amplitude": %d}}'
                   % 10**30, P.INVALID_PARAMS, "b")
    assert err["details"][0] == {"field": "amplitude", "value": str(10**30),
                                 "message": "Input should be less than or equal to 1000000000000"}
    err = error_of(session, '{"type": "subscribe", "id": "b", "generator": "sine", "params": {"amplitude": NaN}}',
                   P.INVALID_PARAMS, "b")
    assert err["details"][0]["value"] == "nan"
    err = error_of(session, '{"type": "subscribe", "id": "b", "generator": "sine", "speed": Infinity}',
                   P.INVALID_MESSAGE, "b")
    assert err["details"][0]["value"] == "inf"


def test_unknown_generator_lists_the_known_ones():
    session, _ = make()
    err = error_of(session, {"type": "subscribe", "id": "g", "generator": "sinus"}, P.UNKNOWN_GENERATOR, "g")
    assert err["message"] == "unknown generator 'sinus'; known: " + ", ".join(GENERATORS)
    error_of(session, {"type": "subscribe", "generator": "anomalies/random"}, P.UNKNOWN_GENERATOR)


def test_invalid_params_details_name_field_and_value():
    session, _ = make()
    err = error_of(session, {"type": "subscribe", "id": "b", "generator": "sine",
                             "params": {"amplitude": "big", "frequency": -1, "colour": "red"}},
                   P.INVALID_PARAMS, "b")
    assert err["details"] == [
        {"field": "amplitude", "value": "big",
         "message": "Input should be a valid number, unable to parse string as a number"},
        {"field": "frequency", "value": -1, "message": "Input should be greater than or equal to 0"},
        {"field": "colour", "value": "red",
         "message": "unknown parameter; allowed: amplitude, frequency, phase, sample_rate, interval, offset"},
    ]
    assert err["message"].startswith("invalid params: amplitude: ")
    err = error_of(session, {"type": "subscribe", "id": "c", "generator": "random-square",
                             "params": {"minimum_interval": 10, "maximum_interval": 5}}, P.INVALID_PARAMS, "c")
    assert err["details"] == [{"field": "minimum_interval", "value": 10,
                               "message": "must be <= maximum_interval (5)"}]
    assert session.subscriptions == {}


def test_unknown_id_for_every_message_that_names_one():
    session, _ = make()
    subscribe(session, id="real", generator="sine")
    for kind in ("update", "pause", "resume", "unsubscribe"):
        err = error_of(session, {"type": kind, "id": "ghost"}, P.UNKNOWN_ID, "ghost")
        assert err["message"] == "no subscription with id 'ghost'; active: real"
    assert list(session.subscriptions) == ["real"]


def test_duplicate_id_keeps_the_first_subscription():
    session, _ = make()
    subscribe(session, id="a", generator="sine", seed=1)
    err = error_of(session, {"type": "subscribe", "id": "a", "generator": "normal"}, P.DUPLICATE_ID, "a")
    assert "already in use" in err["message"]
    assert session.subscriptions["a"].name == "sine" and session.subscriptions["a"].generator.seed == 1


def test_limit_reached():
    session, _ = make(max_subscriptions=2)
    subscribe(session, id="a", generator="sine")
    subscribe(session, id="b", generator="sine")
    err = error_of(session, {"type": "subscribe", "id": "c", "generator": "sine"}, P.LIMIT_REACHED, "c")
    assert err["message"] == "at most 2 subscriptions per connection; unsubscribe one first"
    ask(session, {"type": "unsubscribe", "id": "a"})
    subscribe(session, id="c", generator="sine")
    assert sorted(session.subscriptions) == ["b", "c"]


def test_min_interval_on_subscribe_names_the_interval_field():
    session, _ = make(min_interval_s=0.01)
    err = error_of(session, {"type": "subscribe", "id": "f", "generator": "sine", "params": {"interval": 0.001}},
                   P.INVALID_PARAMS, "f")
    assert err["details"] == [{"field": "interval", "value": 0.001, "message": "must be 0 or >= 0.01"}]
    err = error_of(session, {"type": "subscribe", "id": "f", "generator": "random",
                             "params": {"data_interval": 0.005}}, P.INVALID_PARAMS, "f")
    assert err["details"][0]["field"] == "data_interval"     # the name the client gave
    err = error_of(session, {"type": "subscribe", "id": "f", "generator": "random",
                             "params": {"interval": 0.005}}, P.INVALID_PARAMS, "f")
    assert err["details"][0]["field"] == "interval"
    assert subscribe(session, id="f", generator="sine", params={"interval": 0})["interval"] == 0.0
    assert subscribe(session, id="g", generator="sine", params={"interval": 0.01})["interval"] == 0.01
    error_of(session, {"type": "update", "id": "g", "params": {"interval": 0.009}}, P.INVALID_PARAMS, "g")
    assert session.subscriptions["g"].generator.params.interval == 0.01


def test_every_error_code_is_reachable_and_counted():
    session, _ = make(max_subscriptions=2)
    subscribe(session, id="a", generator="sine")
    codes = [ask(session, m)["code"] for m in [
        "{", {"type": "pause"}, {"type": "nope"}, {"type": "subscribe", "id": "z", "generator": "nope"},
        {"type": "update", "id": "a", "params": {"amplitude": "x"}}, {"type": "pause", "id": "z"},
        {"type": "subscribe", "id": "a", "generator": "sine"}]]
    subscribe(session, id="b", generator="sine")
    codes.append(ask(session, {"type": "subscribe", "id": "z", "generator": "nope"})["code"])  # limit first
    ask(session, {"type": "unsubscribe", "id": "b"})
    subscribe(session, id="c", generator="random", score=True)
    codes.append(ask(session, {"type": "detect", "id": "c", "seq": 0})["code"])   # no sample sent yet
    # every code a client can cause (internal_error is a server bug: tests/test_ws_internal_errors.py)
    client_codes = [c for c in P.ERROR_CODES if c != P.INTERNAL_ERROR]
    assert codes == client_codes
    assert session.errors == client_codes


# -- pacing through SessionStream.take ---------------------------------------

def test_take_delivers_exactly_the_due_samples_with_stream_time():
    session, clock = make()
    subscribe(session, id="s", generator="sine", seed=1, params={"interval": 0.01})
    sub = session.subscriptions["s"]
    chunk = take_all(session, clock, "s")
    assert (chunk.block.seq, len(chunk.block), chunk.t, chunk.dt, chunk.lag) == (0, 1, WALL0, 0.01, 0.0)
    assert take_all(session, clock, "s") is None
    clock.at(0.0099)
    assert sub.due(clock.mono) == 0
    clock.at(0.01)
    assert sub.due(clock.mono) == 1
    clock.at(0.05 + EPS)
    chunk = take_all(session, clock, "s")
    assert chunk.block.seq == 1 and len(chunk.block) == 5          # samples 1..5 due by 0.05 s
    assert chunk.t == WALL0 + 1 * 0.01 and chunk.lag == pytest.approx(0.0, abs=1e-5)
    # samples due in the same tick share a chunk; a limit splits them
    clock.at(0.15 + EPS)
    part = sub.take(clock.mono, 4, clock.wall)
    assert (part.block.seq, len(part.block)) == (6, 4)
    assert part.lag == pytest.approx(0.06, abs=1e-5)                # sample 9 was due at 0.09 s, now 0.15 s
    rest = take_all(session, clock, "s")
    assert (rest.block.seq, len(rest.block), rest.t) == (10, 6, WALL0 + 10 * 0.01)
    ref = create("sine", seed=1).take(16).values
    assert np.array_equal(np.concatenate([part.block.values, rest.block.values]), ref[6:])


# -- grid alignment ---------------------------------------------------------

def test_fast_streams_of_one_connection_fall_due_together_on_its_grid():
    session, clock = make(align_s=0.05)
    grid = session.grid
    assert MONO0 - 0.05 < grid <= MONO0                        # a phase of the grid, in the past
    firsts = {}
    for k, delay in enumerate([0.0, 0.0033, 0.0071, 0.0139]):  # subscribed at scattered moments
        clock.at(delay)
        subscribe(session, id=f"s{k}", generator="sine", seed=k, params={"interval": 0.01})
        sub = session.subscriptions[f"s{k}"]
        due = sub.next_due()
        # the first sample is due at the next point of the grid: not before
        # the subscription, less than one pace after it
        assert clock.mono <= due < clock.mono + 0.01
        assert ((due - grid) / 0.01) == pytest.approx(round((due - grid) / 0.01), abs=1e-6)
        firsts[k] = (clock.mono, due)
    # from the first common grid point on, every stream falls due at the same
    # float instants: one wake-up serves them all
    clock.mono, clock.wall = firsts[3][1], WALL0 + (firsts[3][1] - MONO0)
    for sub in session.subscriptions.values():                  # catch up to that point
        sub.take(clock.mono, 8192, clock.wall)
    for _ in range(50):
        dues = {s.next_due() for s in session.subscriptions.values()}
        assert len(dues) == 1, dues
        (due,) = dues
        clock.wall += due - clock.mono
        clock.mono = due
        chunks = [s.take(clock.mono, 8192, clock.wall) for s in session.subscriptions.values()]
        assert all(c is not None and len(c.block) == 1 and c.lag == 0.0 for c in chunks)
        # stream time: each sample stamped with the wall-clock time it is due
        assert all(c.t == pytest.approx(clock.wall, abs=1e-6) for c in chunks)
    # stream time stays exact from each stream's first sample; values are untouched
    for k in range(4):
        sub = session.subscriptions[f"s{k}"]
        assert sub.pacer.stream_time(sub.generator.seq + 7) == sub.pacer.stream_time(sub.generator.seq) + 7 * 0.01
        assert sub.generator.seq > 50


def test_connections_get_spread_grid_phases_and_slow_streams_start_at_once():
    phases = []
    for _ in range(8):
        session, clock = make(align_s=0.05)
        phases.append(round((MONO0 - session.grid) % 0.01, 9))
        # a pace above align_s is not aligned: the first sample is due at once
        subscribe(session, id="slow", generator="sine", params={"interval": 0.1})
        assert session.subscriptions["slow"].next_due() == clock.mono
        # unpaced streams are never aligned either
        subscribe(session, id="max", generator="sine", params={"interval": 0.01}, speed="max")
        assert session.subscriptions["max"].due(clock.mono) > 1000
    assert len(set(phases)) == 8                              # eight connections, eight phases
    gaps = np.diff(sorted(phases))
    assert gaps.min() > 0.0002                                # spread, not clustered


def test_resume_of_a_fast_stream_lands_on_the_grid_without_pile_up():
    session, clock = make(align_s=0.05)
    subscribe(session, id="a", generator="sine", seed=1, params={"interval": 0.004})
    subscribe(session, id="b", generator="sine", seed=1, params={"interval": 0.004})
    a, b = session.subscriptions["a"], session.subscriptions["b"]
    ask(session, {"type": "pause", "id": "a"})
    clock.advance(10.0017)
    ask(session, {"type": "resume", "id": "a"})
    assert clock.mono <= a.next_due() < clock.mono + 0.004     # no backlog: due within one pace
    b.take(clock.mono, 1 << 30, clock.wall)                     # b caught up with its schedule
    assert a.next_due() == b.next_due()                         # both on the connection's grid
    seq = a.generator.seq
    chunk = a.take(a.next_due(), 100, clock.wall + (a.next_due() - clock.mono))
    assert (chunk.block.seq, len(chunk.block)) == (seq, 1)
    assert np.array_equal(chunk.block.values, create("sine", {"interval": 0.004}, seed=1).take(seq + 1).values[seq:])


@pytest.mark.parametrize("change", [{"params": {"interval": 2.0}}, {"params": {"interval": 0.001}},
                                    {"speed": 0.01}, {"speed": 4}])
@pytest.mark.parametrize("after", ["subscribe", "resume"])
def test_an_update_before_a_grid_aligned_first_sample_keeps_its_due_time_and_stamp(change, after):
    """Rule 5 with rule 8: the first sample of an anchoring (a subscribe, a
    resume) has no previous sample to continue from, so a re-timing before
    it is sent keeps its due time (the grid point) and its stamp; the pace
    changes from the next sample on. (It used to continue from a fictitious
    sample one grid step before: 2 s late, or stamped before the subscribe.)"""
    session, clock = make(align_s=0.05)
    clock.advance(0.0123)
    subscribe(session, id="a", generator="sine", seed=3, params={"interval": 0.02})
    sub = session.subscriptions["a"]
    if after == "resume":
        clock.advance(0.05 + EPS)
        sub.take(clock.mono, 8192, clock.wall)
        ask(session, {"type": "pause", "id": "a"})
        clock.advance(7.0031)
        ask(session, {"type": "resume", "id": "a"})
    anchored_at, anchored_wall = clock.mono, clock.wall
    due, seq = sub.next_due(), sub.generator.seq
    stamp = sub.pacer.stream_time(seq)
    assert anchored_at <= due < anchored_at + 0.02
    assert stamp == pytest.approx(anchored_wall + (due - anchored_at), abs=1e-9)
    reply = ask(session, {"type": "update", "id": "a", **change})
    assert reply["type"] == "updated" and reply["seq"] == seq
    assert sub.next_due() == due and sub.pacer.stream_time(seq) == stamp
    clock.mono, clock.wall = due, anchored_wall + (due - anchored_at)
    chunk = sub.take(clock.mono, 8192, clock.wall)
    assert (chunk.block.seq, len(chunk.block), chunk.t) == (seq, 1, stamp)
    pace = sub.pacer.interval / sub.pacer.speed
    assert sub.next_due() == pytest.approx(due + pace, abs=1e-9)        # the new pace from there on


@pytest.mark.parametrize("interval", [0.001, 0.01, 0.02, 1 / 3, 0.0001])
def test_no_drift_over_a_million_samples(interval):
    session, clock = make()
    subscribe(session, id="d", generator="sine", params={"interval": interval}, speed=1)
    pacer = session.subscriptions["d"].pacer
    rng = np.random.default_rng(0)
    ks = list(range(2000)) + list(range(10**6 - 1000, 10**6 + 1)) + [int(k) for k in rng.integers(0, 10**6, 2000)]
    for k in ks:
        t = MONO0 + k * interval
        assert pacer.due_count(0, t) == k + 1, k
        assert pacer.due_count(0, np.nextafter(t, -math.inf)) == k, k
        assert pacer.stream_time(k) == WALL0 + k * interval


def test_incremental_takes_over_a_million_samples_stay_on_schedule():
    session, clock = make()
    subscribe(session, id="d", generator="square", params={"interval": 0.001})
    sub = session.subscriptions["d"]
    total = 0
    for k in range(1000, 10**6 + 1, 1000):
        now = MONO0 + k * 0.001
        chunk = sub.take(now, 1 << 20, WALL0)
        assert chunk.block.seq == total
        total += len(chunk.block)
        assert total == k + 1
        assert chunk.t == WALL0 + chunk.block.seq * 0.001
        assert chunk.lag == 0.0
    assert total == 10**6 + 1
    assert sub.stats == {"samples": 10**6 + 1, "messages": 1000}


def test_speed_delivers_faster_with_the_same_stream_time():
    session, clock = make()
    subscribe(session, id="fast", generator="sine", seed=1, params={"interval": 1.0}, speed=60)
    subscribe(session, id="slow", generator="sine", seed=1, params={"interval": 1.0})
    clock.advance(1.0 + EPS)
    fast, slow = take_all(session, clock, "fast"), take_all(session, clock, "slow")
    assert len(fast.block) == 61 and len(slow.block) == 2
    assert fast.t == slow.t == WALL0 and fast.dt == slow.dt == 1.0
    assert np.array_equal(fast.block.values[:2], slow.block.values)
    clock.advance(1 / 60)
    assert session.subscriptions["fast"].next_due() == pytest.approx(MONO0 + 61 / 60, abs=1e-9)
    nxt = take_all(session, clock, "fast")
    assert (nxt.block.seq, len(nxt.block), nxt.t) == (61, 1, WALL0 + 61.0)


def test_speed_max_is_unpaced_but_stamps_stream_time():
    session, clock = make()
    reply = subscribe(session, id="m", generator="random", seed=5, speed="max", params={"data_interval": 60})
    assert reply["speed"] == "max"
    sub = session.subscriptions["m"]
    assert sub.pacer.unpaced and sub.due(clock.mono) > 10**15
    first = sub.take(clock.mono, 1000, clock.wall)
    second = sub.take(clock.mono, 500, clock.wall)
    assert (len(first.block), second.block.seq, len(second.block)) == (1000, 1000, 500)
    assert second.t == WALL0 + 1000 * 60.0 and second.dt == 60.0
    ref = create("random", {"data_interval": 60}, seed=5).take(1500)
    assert np.array_equal(np.concatenate([first.block.labels, second.block.labels]), ref.labels)


def test_interval_zero_is_unpaced_and_stamped_with_generation_time():
    session, clock = make()
    subscribe(session, id="z", generator="sine", params={"interval": 0})
    sub = session.subscriptions["z"]
    chunk = sub.take(clock.mono, 300, clock.wall)
    assert len(chunk.block) == 300 and chunk.t == WALL0 and chunk.dt == 0.0 and chunk.lag == 0.0
    clock.advance(2.5)
    assert sub.take(clock.mono, 300, clock.wall).t == WALL0 + 2.5


def test_retime_on_interval_update_continues_from_the_current_sample():
    session, clock = make()
    subscribe(session, id="r", generator="sine", seed=1, params={"interval": 0.1})
    clock.at(0.25)
    assert len(take_all(session, clock, "r").block) == 3            # due at 0, 0.1, 0.2
    assert ask(session, {"type": "update", "id": "r", "params": {"interval": 0.5}})["seq"] == 3
    sub = session.subscriptions["r"]
    assert sub.next_due() == pytest.approx(MONO0 + 0.7, abs=1e-12)   # sample 2's due time + 0.5
    clock.at(0.69)
    assert sub.due(clock.mono) == 0
    clock.at(0.71)
    chunk = take_all(session, clock, "r")
    assert (chunk.block.seq, len(chunk.block), chunk.dt) == (3, 1, 0.5)
    assert chunk.t == pytest.approx(WALL0 + 0.7, abs=1e-9)
    clock.at(1.21)
    assert take_all(session, clock, "r").t == pytest.approx(WALL0 + 1.2, abs=1e-9)
    # values are not affected by the interval
    assert np.array_equal(chunk.block.values, create("sine", seed=1).take(4).values[3:])


def test_retime_from_unpaced_uses_the_session_clocks():
    session, clock = make()
    subscribe(session, id="u", generator="sine", params={"interval": 0})
    sub = session.subscriptions["u"]
    assert len(sub.take(clock.mono, 10, clock.wall).block) == 10
    clock.advance(3)
    assert ask(session, {"type": "update", "id": "u", "params": {"interval": 0.5}})["seq"] == 10
    assert sub.due(clock.mono) == 1 and sub.due(clock.mono + 0.5) == 2
    chunk = sub.take(clock.mono + 0.5, 100, clock.wall)
    assert (chunk.block.seq, len(chunk.block)) == (10, 2)
    assert chunk.t == WALL0 + 3


def test_retime_on_speed_update():
    session, clock = make()
    subscribe(session, id="s", generator="sine", params={"interval": 1.0})
    clock.at(2.0)
    assert len(take_all(session, clock, "s").block) == 3
    ask(session, {"type": "update", "id": "s", "speed": 10})
    sub = session.subscriptions["s"]
    assert sub.next_due() == pytest.approx(MONO0 + 2.1, abs=1e-12)
    clock.at(3.0 + EPS)
    chunk = take_all(session, clock, "s")
    assert (chunk.block.seq, len(chunk.block), chunk.t) == (3, 10, WALL0 + 3.0)


def test_drop_due_skips_and_the_next_chunk_says_how_many():
    session, clock = make()
    subscribe(session, id="d", generator="sine", seed=1, params={"interval": 0.1}, backpressure="drop")
    sub = session.subscriptions["d"]
    take_all(session, clock, "d")
    clock.at(1.0 + EPS)
    assert sub.drop_due(clock.mono, 1 << 62) == 10
    clock.at(1.2 + EPS)
    chunk = take_all(session, clock, "d")
    assert (chunk.block.seq, len(chunk.block), chunk.skipped) == (11, 2, 10)
    msg = chunk.to_json()
    assert msg["skipped"] == 10 and msg["seq"] == 11 and msg["t"] == pytest.approx(WALL0 + 1.1, abs=1e-9)
    assert np.array_equal(chunk.block.values, create("sine", seed=1).take(13).values[11:])
    clock.at(1.3 + EPS)
    assert "skipped" not in take_all(session, clock, "d").to_json()


def test_data_message_fields():
    session, clock = make()
    subscribe(session, id="w", generator="sine", seed=1, params={"interval": 0.5})
    subscribe(session, id="a", generator="periodic-spike", seed=1,
              params={"data_interval": 0.5, "spike_interval": 1.0})
    clock.advance(1.0)
    w = take_all(session, clock, "w").to_json()
    assert set(w) == {"type", "id", "seq", "t", "dt", "values"}
    a = json.loads(encoding.dumps(take_all(session, clock, "a").to_json()))
    assert set(a) == {"type", "id", "seq", "t", "dt", "values", "labels"}
    assert a["labels"] == [True, False, True] and a["t"] == WALL0 and a["dt"] == 0.5
    clock.advance(5.0)
    late = session.subscriptions["w"].take(clock.mono, 2, clock.wall).to_json()
    assert late["lag"] == 4.0 and late["seq"] == 3


# -- URL subscriptions --------------------------------------------------------

def test_subscribe_url_converts_strings_and_splits_options():
    session, clock = make()
    reply = session.subscribe_url("sine", {"amplitude": "2", "interval": "0.01", "seed": "5", "speed": "max",
                                           "backpressure": "drop", "encoding": "binary", "start_seq": "10",
                                           "token": "secret"})
    assert reply == [{"type": "subscribed", "id": "sine", "generator": "sine",
                      "params": {"amplitude": 2.0, "frequency": 2.0, "phase": 0.0, "sample_rate": 100.0,
                                 "interval": 0.01, "offset": 0.0},
                      "seed": 5, "seq": 10, "speed": "max", "backpressure": "drop", "encoding": "binary",
                      "interval": 0.01, "batch": False, "max_lag": 1.0}]
    chunk = session.subscriptions["sine"].take(clock.mono, 5, clock.wall)
    assert np.array_equal(chunk.block.values, create("sine", {"amplitude": 2}, seed=5).take(15).values[10:])


def test_subscribe_url_speed_number_and_anomaly_kind():
    session, _ = make()
    reply = session.subscribe_url("random", {"anomaly_probability": "0.5", "data_interval": "0.1", "speed": "60"})
    assert reply[0]["type"] == "subscribed" and reply[0]["id"] == "random" and reply[0]["speed"] == 60.0
    assert reply[0]["params"]["anomaly_probability"] == 0.5


@pytest.mark.parametrize("query, code, field", [
    ({"seed": "abc"}, P.INVALID_MESSAGE, "seed"),
    ({"seed": "-3"}, P.INVALID_MESSAGE, "seed"),
    ({"start_seq": "1.5"}, P.INVALID_MESSAGE, "start_seq"),
    ({"speed": "fast"}, P.INVALID_MESSAGE, "speed"),
    ({"speed": "0"}, P.INVALID_MESSAGE, "speed"),
    ({"backpressure": "sometimes"}, P.INVALID_MESSAGE, "backpressure"),
    ({"encoding": "xml"}, P.INVALID_MESSAGE, "encoding"),
    ({"amplitude": "big"}, P.INVALID_PARAMS, "amplitude"),
    ({"colour": "red"}, P.INVALID_PARAMS, "colour"),
])
def test_subscribe_url_bad_query(query, code, field):
    session, _ = make()
    [err] = session.subscribe_url("sine", query)
    assert err["type"] == "error" and err["code"] == code and err["id"] == "sine"
    assert [d["field"] for d in err["details"]] == [field]
    assert session.subscriptions == {} and session.errors == [code]


def test_subscribe_url_min_interval():
    session, _ = make(min_interval_s=0.05)
    [err] = session.subscribe_url("sine", {"interval": "0.01"})
    assert err["code"] == P.INVALID_PARAMS and err["details"][0]["field"] == "interval"


# -- start_seq ----------------------------------------------------------------

@pytest.mark.parametrize("name", KINDS)
def test_start_seq_continues_the_uninterrupted_stream(name):
    interval_field = GENERATORS[name].interval_field
    params = {interval_field: 0.5}
    if name == "periodic-spike":
        params["spike_interval"] = 7.0
    if name == "count-per-duration":
        params.update(duration=20, num_anomalies=4)
    ref = create(name, params, seed=11).take(400)
    session, clock = make()
    subscribe(session, id="r", generator=name, seed=11, params=params, start_seq=137, speed="max")
    chunk = session.subscriptions["r"].take(clock.mono, 263, clock.wall)
    assert chunk.block.seq == 137
    assert np.array_equal(chunk.block.values, ref.values[137:])
    if ref.labels is not None:
        assert np.array_equal(chunk.block.labels, ref.labels[137:])
        assert chunk.block.labels.any()
    assert chunk.t == WALL0   # stream time restarts at the subscription: sample 137 is stamped "now"


# -- fuzz ---------------------------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers(min_value=-2**130, max_value=2**130)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
            | st.text(min_size=300, max_size=3000) | st.sampled_from(["max", "drop", "binary", "sine", "keep"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
_FIELDS = ["type", "id", "generator", "params", "seed", "start_seq", "speed", "backpressure", "encoding"]
_TEMPLATES = {
    "subscribe": {"type": "subscribe", "id": "f", "generator": "sine", "params": {"amplitude": 1},
                  "seed": 1, "start_seq": 0, "speed": 1, "backpressure": "block", "encoding": "json"},
    "update": {"type": "update", "id": "f", "params": {"amplitude": 2}, "speed": 2},
    "pause": {"type": "pause", "id": "f"},
    "resume": {"type": "resume", "id": "f"},
    "unsubscribe": {"type": "unsubscribe", "id": "f"},
    "list": {"type": "list"},
}


def _dumps(value) -> str:
    return json.dumps(value, allow_nan=True)


@st.composite
def _mutated(draw):
    msg = dict(_TEMPLATES[draw(st.sampled_from(sorted(_TEMPLATES)))])
    if "generator" in msg:
        msg["generator"] = draw(st.sampled_from(list(GENERATORS)))
        msg["params"] = draw(st.dictionaries(st.sampled_from(["amplitude", "interval", "data_interval", "mean",
                                                              "num_anomalies", "duration", "frequency", "x"]),
                                             st.floats(0, 10) | st.integers(0, 10) | _scalars, max_size=3))
    if "id" in msg:
        msg["id"] = draw(st.sampled_from(["f", "f", "g", "", "x" * 200]) | st.text(min_size=1, max_size=10))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        key = draw(st.sampled_from(_FIELDS) | st.text(max_size=8))
        if action == "drop":
            msg.pop(key, None)
        else:
            msg[key] = draw(_json)
    return _dumps(msg)


@st.composite
def _duplicate_keys(draw):
    pairs = draw(st.lists(st.tuples(st.sampled_from(_FIELDS), _json | st.sampled_from(list(_TEMPLATES))),
                          min_size=1, max_size=6))
    return "{" + ", ".join(f"{json.dumps(k)}: {_dumps(v)}" for k, v in pairs) + "}"


_messages = st.one_of(st.text(max_size=200), st.binary(max_size=100), _json.map(_dumps), _mutated(), _mutated(),
                      _mutated(), _duplicate_keys(), st.sampled_from([json.dumps(t) for t in _TEMPLATES.values()]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_messages, min_size=1, max_size=4))
def test_fuzz_handle_never_breaks_the_session(messages):
    session, clock = make(max_subscriptions=8)
    subscribe(session, id="keep", generator="sine", seed=3, params={"interval": 0.01})
    keep = session.subscriptions["keep"]
    params = keep.generator.params
    for raw in messages:
        if "keep" in (raw if isinstance(raw, str) else raw.decode("utf-8", "replace")):
            continue  # a message may legitimately act on "keep"; the others must not touch it
        live = set(session.subscriptions)
        replies = session.handle(raw)
        assert replies and isinstance(replies, list)
        try:
            parsed = P.parse_client_message(raw)
        except P.ProtocolError as exc:     # refused before any handler: exactly that error
            assert [(r["type"], r["code"]) for r in replies] == [("error", exc.code)], (raw, replies)
        else:                              # handled: exactly the documented reply, never internal_error
            assert len(replies) == 1, replies
            check_documented_reply(parsed, replies[0], live)
        for reply in replies:
            assert isinstance(reply, dict) and reply["type"] in SERVER_TYPES, reply
            json.loads(encoding.dumps(reply))
            if reply["type"] == "error":
                assert reply["code"] in P.ERROR_CODES + P.NAMED_ERROR_CODES
                assert isinstance(reply["message"], str) and reply["message"]
                assert reply["id"] is None or (isinstance(reply["id"], str) and len(reply["id"]) <= 128)
                for d in reply.get("details", []):
                    # row and column: only where a replayed file is bad (docs/generators.md)
                    assert set(d) - {"row", "column"} == {"field", "value", "message"} and d["message"]
                    assert "row" not in d or d["field"] in ("file", "value_column", "time_column", "label_column")
        clock.advance(0.003)
    assert session.subscriptions.get("keep") is keep
    assert keep.generator.params == params and not keep.paused
    clock.advance(0.05)
    chunk = keep.take(clock.mono, 1 << 20, clock.wall)
    n = math.floor((clock.mono - MONO0) / 0.01) + 1
    assert chunk.block.seq == 0 and len(chunk.block) in (n - 1, n, n + 1)   # rounding of the summed clock
    assert np.array_equal(chunk.block.values, create("sine", seed=3).take(len(chunk.block)).values)


# -- docs/protocol.md stays true -------------------------------------------

DOC = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def test_protocol_doc_names_every_code_and_message_type():
    doc = DOC.read_text()
    for code in P.ERROR_CODES:
        assert f"| `{code}` |" in doc, code
    for kind in P.CLIENT_TYPES:
        assert f"### `{kind}`" in doc, kind
    for kind in ("subscribed", "data", "updated", "generators", "error"):
        assert f"### `{kind}`" in doc, kind
    for close in ("1000", "1001", "1009", "1011"):
        assert f"| {close} |" in doc
    for status in ("401", "403", "404", "503"):
        assert f"| {status} |" in doc


def test_protocol_doc_failure_examples_are_what_the_server_says():
    section = DOC.read_text().split("### Failure paths", 1)[1]
    lines = [line.strip() for line in section.splitlines() if line.strip()[:3] in ("C: ", "S: ")]
    assert len(lines) == 30
    session, _ = make(max_subscriptions=2, min_interval_s=0.01)
    pending: list[dict] = []
    for line in lines:
        if line.startswith("C: "):
            assert not pending
            pending = session.handle(line[3:])
        else:
            assert pending, line
            assert json.loads(encoding.dumps(pending.pop(0))) == json.loads(line[3:])
    assert not pending
