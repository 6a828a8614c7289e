"""The stream controls: one model (``wsgen.protocol.controls``) for the
WebSocket ``subscribe`` and the HTTP query, the OpenAPI parameters generated
from it, and HTTP streams delivered by the WebSocket's own Session."""
from __future__ import annotations

import json
import math

import pytest
import requests

from wsgen.protocol import messages as P
from wsgen.protocol.controls import (MAX_DURATION_S, MAX_SEQ, HttpStreamControls, StreamControls,
                                     controls_from_text, openapi_parameters)
from wsgen.server.config import Settings
from wsgen.server.http.app import create_app

pytestmark = pytest.mark.timeout(60)


def test_subscribe_is_the_stream_controls_plus_the_websockets_own():
    shared = StreamControls.model_fields
    assert set(shared) == {"seed", "start_seq", "speed", "count", "duration"}
    for name, field in shared.items():
        assert repr(P.Subscribe.model_fields[name]) == repr(field), name
    assert set(HttpStreamControls.model_fields) - set(shared) == {"format", "token"}


def test_text_rules_and_their_limits():
    opts, errors = controls_from_text({"count": "5", "speed": "MAX", "duration": "2.5", "seed": "+7",
                                       "start_seq": "3", "format": "ndjson"})
    assert errors == []
    assert (opts.count, opts.speed, opts.duration, opts.seed, opts.start_seq, opts.format) == \
        (5, math.inf, 2.5, 7, 3, "ndjson")
    opts, errors = controls_from_text({"count": "0", "duration": "inf", "start_seq": str(MAX_SEQ + 1),
                                       "speed": "0", "format": "xml"}, {"duration": "stream_duration"})
    assert {(e["field"], e["value"], e["message"]) for e in errors} == {
        ("count", "0", "must be an integer in [1, 2**53] (samples), with start_seq + count <= 2**53"),
        ("stream_duration", "inf", f"must be a number of seconds in (0, {MAX_DURATION_S:g}]"),
        ("start_seq", str(MAX_SEQ + 1), "must be an integer in [0, 2**53]"),
        ("speed", "0", 'must be a number in (0, 1e6] or "max"'),
        ("format", "xml", "must be one of: text, ndjson, csv, sse"),
    }
    assert (opts.count, opts.duration, opts.start_seq, opts.speed, opts.format) == (None, None, 0, 1.0, "text")
    # the same limits on the WebSocket (pydantic's messages there)
    for bad in ({"count": 0}, {"duration": 2e9}, {"start_seq": MAX_SEQ + 1}, {"speed": 2e6}):
        with pytest.raises(P.ProtocolError) as exc:
            P.parse_client_message(json.dumps({"type": "subscribe", "generator": "sine", **bad}))
        assert exc.value.details[0]["field"] == next(iter(bad))


def test_no_seq_of_a_counted_stream_passes_2_53():
    """start_seq + count (the ``ended`` message's next seq) stays within the
    integers JavaScript holds exactly, on both transports."""
    opts, errors = controls_from_text({"start_seq": str(MAX_SEQ - 3), "count": "3"})
    assert errors == [] and (opts.start_seq, opts.count) == (MAX_SEQ - 3, 3)
    opts, errors = controls_from_text({"start_seq": str(MAX_SEQ - 3), "count": "4"})
    assert errors == [{"field": "count", "value": "4",
                       "message": "start_seq + count must be at most 2**53 (the seq after the last sample): "
                                  f"with start_seq {MAX_SEQ - 3}, count must be at most 3"}]
    assert (opts.start_seq, opts.count) == (MAX_SEQ - 3, None)
    with pytest.raises(P.ProtocolError) as exc:
        P.parse_client_message(json.dumps({"type": "subscribe", "generator": "sine", "start_seq": MAX_SEQ - 3,
                                           "count": 4}))
    assert exc.value.details[0]["field"] == "count"
    assert exc.value.details[0]["message"] == ("start_seq + count must be at most 2**53 (the seq after the last "
                                               f"sample): with start_seq {MAX_SEQ - 3}, count must be at most 3")
    with pytest.raises(P.ProtocolError) as exc:
        P.parse_client_message(json.dumps({"type": "subscribe", "generator": "sine", "start_seq": MAX_SEQ,
                                           "count": 1}))
    assert exc.value.details[0]["message"].endswith("with start_seq 9007199254740992, no count fits")
    assert P.parse_client_message(json.dumps({"type": "subscribe", "generator": "sine", "start_seq": MAX_SEQ}))


def test_openapi_parameters_are_generated_from_the_model():
    doc = create_app(Settings(http_port=None)).openapi()
    params = {p["name"]: p for p in doc["paths"]["/sine"]["get"]["parameters"]}
    assert params["count"]["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_SEQ}
    assert params["duration"]["schema"] == {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S}
    assert params["start_seq"]["schema"]["default"] == 0
    assert params["speed"]["schema"]["anyOf"][1] == {"type": "string", "enum": ["max"]}
    assert params["format"]["schema"]["enum"] == ["text", "ndjson", "csv", "sse"]
    assert "token" not in params                   # no token on this server
    generated = {p["name"]: p for p in openapi_parameters()}
    for name in ("seed", "speed", "count", "duration", "start_seq", "format"):
        assert params[name] == generated[name], name
    # a control named like a generator parameter: stream_<name>, same schema
    cpd = {p["name"]: p for p in doc["paths"]["/count-per-duration"]["get"]["parameters"]}
    assert cpd["stream_duration"]["schema"] == params["duration"]["schema"]
    # a composition says what count means there
    comp = {p["name"]: p for p in doc["paths"]["/composite"]["get"]["parameters"]}
    assert comp["count"]["description"].startswith("End the stream after this many slots")
    assert comp["count"]["schema"] == params["count"]["schema"]


@pytest.fixture(scope="module")
def srv(threaded_server):
    return threaded_server


def ndjson(url: str) -> list[dict]:
    with requests.get(url, stream=True, timeout=10) as r:
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.iter_lines() if line]


def test_http_stream_time_is_the_pacers(srv):
    """``t`` is the stream time of each sample: first stamp + n * interval,
    whatever the speed; count and duration end it by the session's rule."""
    rows = ndjson(srv.http_url + "/sine?interval=0.25&speed=max&count=9&format=ndjson&seed=1")
    assert [r["seq"] for r in rows] == list(range(9))
    t0 = rows[0]["t"]
    for r in rows:
        assert abs(r["t"] - (t0 + r["seq"] * 0.25)) < 2e-6, r
    # duration 1.0 s at interval 0.25: the samples at offsets 0, 0.25, 0.5, 0.75
    rows = ndjson(srv.http_url + "/sine?interval=0.25&speed=max&duration=1&format=ndjson&start_seq=10")
    assert [r["seq"] for r in rows] == [10, 11, 12, 13]


def test_http_smallest_interval_is_the_sessions_rule():
    """The server's smallest interval, refused over HTTP with the detail the WebSocket gives."""
    from fastapi.testclient import TestClient
    app = create_app(Settings(http_port=None, min_interval_s=0.01))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.get("/sine?interval=0.001&count=1")
        assert r.status_code == 422
        assert r.json()["details"] == [{"field": "interval", "value": 0.001, "message": "must be 0 or >= 0.01"}]
        r = client.get("/anomalies/random?data_interval=0.001&count=1")
        assert r.json()["details"] == [{"field": "data_interval", "value": 0.001, "message": "must be 0 or >= 0.01"}]


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_a_bad_seed_gets_the_same_words_on_every_transport(seed):
    """The seed rule's message, whether the seed came in a subscribe, a
    WebSocket URL or an HTTP query (it was pydantic's bare bound on the WebSocket)."""
    from fastapi.testclient import TestClient

    from wsgen.engine.base import SEED_RULE
    from wsgen.protocol.session import Session
    session = Session()
    reply = session.handle(json.dumps({"type": "subscribe", "id": "a", "generator": "sine", "seed": seed}))[0]
    assert reply["details"] == [{"field": "seed", "value": seed if seed < 0 else str(seed), "message": SEED_RULE}]
    assert reply["message"] == f"invalid message: seed: {SEED_RULE}"
    url = session.subscribe_url("sine", {"seed": str(seed)})[0]
    assert url["details"][0]["field"] == "seed" and url["details"][0]["message"] == SEED_RULE
    with TestClient(create_app(Settings(http_port=None)), base_url="http://127.0.0.1") as client:
        r = client.get(f"/sine?seed={seed}&count=1")
        assert r.status_code == 422
        assert r.json()["details"] == [{"field": "seed", "value": str(seed), "message": SEED_RULE}]
