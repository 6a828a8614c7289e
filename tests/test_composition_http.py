"""Compositions over the HTTP path, against a real uvicorn server: values,
labels, events and faults in every format, validation, OpenAPI, presets."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import requests

from wsgen.engine import ANOMALY_KINDS
from wsgen.engine.composite import create_composite

pytestmark = pytest.mark.timeout(60)

SPEC = {
    "interval": 0.5,
    "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 1.0, "sample_rate": 50}, "offset": 10.0},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [{"kind": "spike", "placement": {"mode": "indices", "indices": [5, 40]}, "height": 7.0},
                  {"kind": "flatline", "placement": {"mode": "indices", "indices": [100]},
                   "min_length": 10, "max_length": 10}],
    "faults": {"nulls": {"placement": {"mode": "indices", "indices": [20]}},
               "gaps": {"placement": {"mode": "indices", "indices": [30]}, "min_length": 3, "max_length": 3},
               "duplicates": {"placement": {"mode": "indices", "indices": [50]}},
               "out_of_order": {"placement": {"mode": "indices", "indices": [60]}, "max_delay": 2}},
}
N = 200


@pytest.fixture(scope="module")
def srv(threaded_server):
    return threaded_server


def stream(srv, fmt: str, spec=SPEC, post: bool = False, **query) -> requests.Response:
    params = {"seed": 9, "speed": "max", "count": N, "format": fmt, **query}
    if post:
        r = requests.post(srv.http_url + "/composite", params=params, json=spec, timeout=10)
    else:
        r = requests.get(srv.http_url + "/composite", params={"spec": json.dumps(spec), **params}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-wsgen-seed"] == "9"
    return r


def engine(spec=SPEC, n=N):
    return create_composite(spec, seed=9).take(n)


@pytest.mark.parametrize("post", [False, True])
def test_ndjson_equals_engine_with_events(srv, post):
    rows = [json.loads(line) for line in stream(srv, "ndjson", post=post).text.splitlines()]
    ref = engine()
    assert [r["seq"] for r in rows] == ref.seqs.tolist()
    values = np.array([math.nan if r["value"] is None else r["value"] for r in rows])
    np.testing.assert_array_equal(values, ref.values)                  # NaN where the null fault hit
    assert [r["label"] for r in rows] == ref.labels.tolist()
    by_seq = {r["seq"]: r for r in rows}
    assert by_seq[20]["value"] is None and by_seq[20]["events"][0]["kind"] == "null"
    assert [(e["kind"], e["first"], e["last"]) for e in by_seq[5]["events"]] == [("spike", 5, 5)]
    assert all(e["kind"] == "flatline" and (e["first"], e["last"]) == (100, 109)
               for s in range(100, 110) for e in by_seq[s]["events"])
    assert by_seq[0]["events"] == [] and by_seq[0]["label"] is False
    # the gap 30..32: never sent, listed on the first sample past it
    assert not {30, 31, 32} & set(by_seq)
    assert ("gap", 30, 32) in [(e["kind"], e["first"], e["last"]) for e in by_seq[33]["events"]]
    # duplicate: seq 50 twice in a row, same row
    i = [r["seq"] for r in rows].index(50)
    assert rows[i] == rows[i + 1] and rows[i]["events"][0]["kind"] == "duplicate"
    # out of order: seq 60 arrives after a later one, still with its event; times are its own
    j = [r["seq"] for r in rows].index(60)
    assert rows[j - 1]["seq"] > 60 and rows[j]["events"][0]["kind"] == "out-of-order"
    assert rows[j]["t"] - rows[0]["t"] == pytest.approx(60 * 0.5, abs=1e-5)
    truth = {(e["kind"], e["first"], e["last"]) for e in ref.events}
    got = {(e["kind"], e["first"], e["last"]) for r in rows for e in r["events"]}
    assert got == truth


def test_text_csv_sse(srv):
    ref = engine()
    text = stream(srv, "text").text.splitlines()
    assert len(text) == len(ref.values)
    assert text[ref.seqs.tolist().index(20)] == "null"
    # every line reads with json.loads, the null fault as None
    parsed = [json.loads(x) for x in text]
    assert [i for i, v in enumerate(parsed) if v is None] == [i for i, v in enumerate(ref.values) if math.isnan(v)]
    np.testing.assert_allclose([math.nan if v is None else v for v in parsed], ref.values, atol=5e-4)

    rows = list(csv.DictReader(io.StringIO(stream(srv, "csv").text)))
    assert list(rows[0]) == ["seq", "t", "value", "label", "events"]
    assert [int(r["seq"]) for r in rows] == ref.seqs.tolist()
    by_seq = {int(r["seq"]): r for r in rows}
    assert by_seq[20]["value"] == "" and by_seq[20]["events"].startswith("null:")
    assert by_seq[5]["events"] == f"spike:{5 * 32}:5:5" and by_seq[5]["label"] == "true"
    assert "gap:" in by_seq[33]["events"] and by_seq[0]["events"] == ""
    values = np.array([math.nan if r["value"] == "" else float(r["value"]) for r in rows])
    np.testing.assert_array_equal(values, ref.values)

    events = [e for e in stream(srv, "sse").text.split("\n\n") if e.startswith("id:")]
    data = [json.loads(e.split("data: ", 1)[1]) for e in events]
    assert [d["seq"] for d in data] == ref.seqs.tolist()
    assert int(events[5].split("\n")[0][4:]) == data[5]["seq"]


def test_start_seq_and_paced_preset(srv):
    ref = create_composite(SPEC, seed=9).take(300)
    slots = create_composite(SPEC, seed=9, start_seq=100).take(200)
    rows = [json.loads(line) for line in stream(srv, "ndjson", start_seq=100).text.splitlines()]
    assert [r["seq"] for r in rows] == slots.seqs.tolist()
    assert set(slots.seqs.tolist()) <= set(ref.seqs.tolist())
    # a preset over HTTP, paced (interval 0.05 s, speed 10): same values as the original kind
    presets = requests.get(srv.http_url + "/composite/presets", timeout=5).json()
    assert set(presets["presets"]) == set(ANOMALY_KINDS) and "properties" in presets["schema"]
    spec = dict(presets["presets"]["random"], interval=0.05)
    spec["anomalies"][0]["placement"]["probability"] = 0.3
    r = requests.get(srv.http_url + "/composite", params={"spec": json.dumps(spec), "seed": 4, "count": 40,
                                                    "speed": 10, "format": "text"}, timeout=10)
    orig = requests.get(srv.http_url + "/random", params={"anomaly_probability": 0.3, "data_interval": 0.05,
                                                     "seed": 4, "count": 40, "speed": 10}, timeout=10)
    assert r.text == orig.text and len(r.text.splitlines()) == 40


def test_invalid_spec_names_the_field(srv):
    bad = {"base": {"kind": "sine", "params": {"bogus": 1}},
           "anomalies": [{"kind": "spike", "placement": {"mode": "random", "probability": 2},
                          "height": {"low": 5, "high": 1}}]}
    for r in (requests.get(srv.http_url + "/composite", params={"spec": json.dumps(bad), "count": 1}, timeout=5),
              requests.post(srv.http_url + "/composite", params={"count": 1}, json=bad, timeout=5)):
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "invalid_params"
        fields = {d["field"] for d in body["details"]}
        assert "anomalies.0.placement.probability" in fields and "base.params.bogus" in fields
    r = requests.get(srv.http_url + "/composite", params={"spec": "{not json", "speed": "fast"}, timeout=5)
    assert r.status_code == 422 and {d["field"] for d in r.json()["details"]} == {"spec", "speed"}
    r = requests.get(srv.http_url + "/composite", params={"count": 1}, timeout=5)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "spec"
    r = requests.post(srv.http_url + "/composite", params={"spec": "{}"}, json={}, timeout=5)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "spec"   # not a query param on POST


def test_openapi_documents_composite(srv):
    doc = requests.get(srv.http_url + "/openapi.json", timeout=5).json()
    post = doc["paths"]["/composite"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CompositionSpec"}
    schemas = doc["components"]["schemas"]
    assert set(schemas["CompositionSpec"]["properties"]) == {"interval", "base", "noise", "anomalies", "faults"}
    refs = {m for m in __import__("re").findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))}
    assert refs <= set(schemas)
    get = doc["paths"]["/composite"]["get"]
    assert {p["name"] for p in get["parameters"]} >= {"spec", "seed", "speed", "count", "duration", "format",
                                                      "start_seq"}
    assert "/composite/presets" in doc["paths"]
