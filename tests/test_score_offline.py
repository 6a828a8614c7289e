"""Offline scoring: POST /score (JSON and CSV) and ``wsgen score``, against a
real server, and equal to the live figures of the same stream."""
from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect

import wsgen
from wsgen import cli
from wsgen.engine.composite import create_composite

pytestmark = pytest.mark.timeout(120)

SPEC = {
    "interval": 0.1,
    "base": {"kind": "sine", "params": {"amplitude": 2.0, "frequency": 0.2, "sample_rate": 10}, "offset": 3.0},
    "noise": {"kind": "normal", "std_dev": 0.2},
    "anomalies": [{"kind": "spike", "placement": {"mode": "periodic", "every": 15.0}, "height": 5.0},
                  {"kind": "level-shift", "placement": {"mode": "indices", "indices": [620]},
                   "min_length": 30, "max_length": 30, "height": 2.5}],
    "faults": {"nulls": {"placement": {"probability": 0.01}}},
}
LIVE_ONLY = ("latency", "definition")


def spec_truth(n: int, seed: int = 4) -> list[tuple[int, int]]:
    """The anomaly events of the first n samples, from the engine in process."""
    block = create_composite(SPEC, seed=seed).take(n)
    return sorted((e["first"], min(e["last"], n - 1)) for e in block.events if e["kind"] != "null")


async def test_post_score_equals_the_live_figures_of_the_same_stream(full_server):
    alarms = [150, 151, 300, 455, 640, 700, 905]
    async with connect(full_server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": SPEC, "seed": 4, "speed": "max",
                                  "score": {"window": "nab", "probation": 0.1}}))
        sent = 0
        while sent < 1000:
            msg = json.loads(await ws.recv())
            if msg["type"] == "data":
                sent = msg["seq"] + (msg["seqs"][-1] - msg["seq"] + 1 if msg.get("seqs") else len(msg["values"]))
        await ws.send(json.dumps({"type": "detect", "id": "s", "seqs": alarms}))
        await ws.send(json.dumps({"type": "unsubscribe", "id": "s"}))
        while (msg := json.loads(await ws.recv()))["type"] != "unsubscribed":
            pass
    live = msg["score"]
    last = msg["seq"] - 1
    assert last >= 999 and live["alarms"] == len(alarms)
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        r = await http.post("/score", json={"generator": SPEC, "seed": 4, "first": 0, "last": last,
                                            "probation": 0.1, "detections": alarms})
    assert r.status_code == 200, r.text
    offline = r.json()
    assert {k: v for k, v in offline.items() if k not in LIVE_ONLY} == \
        {k: v for k, v in live.items() if k not in LIVE_ONLY}
    assert offline["definition"] == {"generator": "composite", "seed": 4, "first": 0, "last": last}
    # and both equal wsgen.score on the truth generated here
    want = wsgen.score(spec_truth(last + 1), alarms, length=last + 1, probation=0.1, interval=0.1)
    assert offline["nab"] == want["nab"] and offline["events"] == want["events"]
    assert offline["events"]["detected"] >= 3 and offline["events"]["false_positives"] >= 1


async def test_csv_upload_with_scores_and_an_anomaly_kind(full_server):
    definition = {"generator": "periodic-spike", "params": {"spike_interval": 10, "interval": 0.1}, "seed": 1,
                  "last": 299, "window": 20, "probation": 0, "threshold": 0.7}
    csv_text = "seq,score\n103,0.9\n150,0.95\n195,0.3\n201,0.7\n"
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        r = await http.post("/score", params={"definition": json.dumps(definition)}, content=csv_text,
                            headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    f = r.json()
    # spikes at 0, 100, 200: 103 and 201 detect two (delays 3 and 1), 150 is a false positive, 195 is under 0.7
    assert f["alarms"] == 3
    assert f["events"] == {"anomalies": 3, "windows": 3, "detected": 2, "missed": 1, "false_positives": 1,
                           "precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3)}
    assert f["delay"]["samples"] == {"median": 2.0, "max": 3.0}
    assert f["delay"]["seconds"]["max"] == pytest.approx(0.3)
    assert f["nab"]["standard"]["raw"] == pytest.approx(
        wsgen.score([(0, 0), (100, 100), (200, 200)], [103, 150, 201], length=300, window=20,
                    probation=0)["nab"]["standard"]["raw"], abs=1e-12)


@pytest.mark.parametrize("kwargs, field, text", [
    ({"json": {"generator": "sine", "seed": 1, "last": 9, "detections": []}}, "generator", "'sine' has no ground truth"),
    ({"json": {"generator": "random", "seed": 1, "last": 9, "detections": [10]}}, "detections",
     "detection seq 10 is outside the scored samples 0..9"),
    ({"json": {"generator": "random", "last": 9}}, "seed", "Field required"),
    ({"json": {"generator": "random", "seed": 1, "first": 5, "last": 0}}, "definition", "last (0) must be >= first (5)"),
    ({"json": {"generator": "random", "seed": 1, "last": 10**9}}, "definition", "at most 10000000 samples"),
    ({"json": {"generator": "random", "seed": 1, "last": 9, "window": "wide"}}, "window", "window must be"),
    ({"json": {"generator": "nope", "seed": 1, "last": 9}}, "generator", "unknown generator 'nope'"),
    ({"json": {"generator": "random", "seed": 1, "last": 9, "params": {"anomaly_probability": 2}}},
     "anomaly_probability", "invalid params"),
    ({"json": [1, 2]}, "body", "must be a JSON object"),
    ({"content": "seq\n1\n", "headers": {"Content-Type": "text/csv"}}, "definition", "needs ?definition="),
    ({"content": "when\n1\n", "headers": {"Content-Type": "text/csv"},
      "params": {"definition": json.dumps({"generator": "random", "seed": 1, "last": 9})}}, "csv",
     "needs a header naming a seq column"),
    ({"content": "seq\nfive\n", "headers": {"Content-Type": "text/csv"},
      "params": {"definition": json.dumps({"generator": "random", "seed": 1, "last": 9})}}, "csv line 2",
     "CSV line 2: seq must be an integer"),
    ({"content": "x", "headers": {"Content-Type": "text/plain"}}, "content-type", "send application/json"),
])
async def test_bad_requests_get_422_naming_the_field(full_server, kwargs, field, text):
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        r = await http.post("/score", **kwargs)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "invalid_params" and text in body["message"], body
        assert any(d["field"] == field for d in body["details"]), body
        assert (await http.get("/healthz")).status_code == 200     # the server goes on


def test_wsgen_score_command(tmp_path, capsys):
    (tmp_path / "composition.json").write_text(json.dumps(SPEC))
    alarms = [150, 300, 455, 640, 700]
    (tmp_path / "alarms.csv").write_text("seq\n" + "\n".join(map(str, alarms)) + "\n")
    code = cli.main(["score", "--spec", str(tmp_path / "composition.json"), "--seed", "4", "--last", "999",
                     "--detections", str(tmp_path / "alarms.csv"), "--window", "40"])
    out = capsys.readouterr().out
    assert code == 0
    figures = json.loads(out)
    want = wsgen.score(spec_truth(1000), alarms, length=1000, window=40, interval=0.1)
    assert {k: figures[k] for k in want} == want
    # bad input: exit 2 with the reason on stderr
    code = cli.main(["score", "--generator", "sine", "--seed", "1", "--last", "9",
                     "--detections", str(tmp_path / "alarms.csv")])
    assert code == 2 and "'sine' has no ground truth" in capsys.readouterr().err
    # no seed: the truth cannot be regenerated; say how to give it
    code = cli.main(["score", "--spec", str(tmp_path / "composition.json"), "--last", "999",
                     "--detections", str(tmp_path / "alarms.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "seed is required: give --seed N" in err and "Field required" not in err


def test_wsgen_score_takes_the_range_from_a_per_sample_csv(tmp_path, capsys):
    """The issue's command: no --last; a detector's output with a row per sample (seq,score)."""
    (tmp_path / "composition.json").write_text(json.dumps(SPEC))
    rows = ["seq,score"] + [f"{i},{0.9 if i in (150, 455, 640) else 0.1}" for i in range(800)]
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")
    code = cli.main(["score", "--spec", str(tmp_path / "composition.json"), "--seed", "4",
                     "--detections", str(tmp_path / "scores.csv")])
    captured = capsys.readouterr()
    assert code == 0 and "scoring seqs 0..799 (the last seq of the CSV)" in captured.err
    figures = json.loads(captured.out)
    want = wsgen.score(spec_truth(800), [150, 455, 640], length=800, interval=0.1)
    assert {k: figures[k] for k in want} == want
