"""HTTP compatibility path against a real uvicorn server on an ephemeral port.

The server runs in a background thread (its own event loop); the tests talk
to it with real clients (requests with ``stream=True``, httpx), the way the
original service's users do.
"""
from __future__ import annotations

import csv
import io
import json
import math
import threading
import time

import httpx
import numpy as np
import pytest
import requests

from wsgen.protocol import lines
from wsgen.server.config import Settings
from wsgen.engine import ANOMALY_KINDS, GENERATORS, catalogue, create
from servers import LOADED_LATENESS_S, ThreadedServer, test_settings, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def srv(threaded_server):
    return threaded_server


def get_lines(url: str, timeout: float = 10) -> list[str]:
    with requests.get(url, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        return [line.decode() for line in r.iter_lines()]


def text_of(values: np.ndarray) -> list[str]:
    """Reference rendering: three decimals, no negative zero."""
    return [("%.3f" % v).replace("-0.000", "0.000") for v in values]


# Parameters that make every kind show its features within a few hundred
# samples (anomaly kinds: anomalies do occur).
KIND_PARAMS = {
    "sine": {"amplitude": 3, "frequency": 1.5, "phase": 30, "sample_rate": 50},
    "cosine": {"amplitude": 2, "frequency": 3, "phase": 45},
    "square": {"frequency": 7, "duty_cycle": 0.3},
    "sawtooth": {"amplitude": 5, "frequency": 4},
    "triangle": {"amplitude": 2, "frequency": 6, "offset": 1},
    "normal": {"mean": 3, "std_dev": 2},
    "uniform": {"min_val": -2, "max_val": 5},
    "exponential": {"scale": 0.5},
    "random": {"anomaly_probability": 0.3, "anomaly_range": 4},
    "random-square": {"minimum_interval": 3, "maximum_interval": 9, "min_anomaly_duration": 2,
                      "max_anomaly_duration": 4, "anomaly_magnitude": 2},
    "clustered": {"minimum_interval": 3, "maximum_interval": 9, "min_anomaly_length": 2,
                  "max_anomaly_length": 4},
    "periodic-spike": {"spike_interval": 5, "data_interval": 0.5},
    "count-per-duration": {"num_anomalies": 5, "duration": 40},
    "random-walk": {"drift": 0.1, "min": -3, "max": 3}, "ou": {"theta": 0.5, "mean": 2},
    "pulse": {"on_duration": 2, "off_duration": 3}, "steps": {"steps": "1,0,2,5"},
    "pattern": {"values": "1,2,3", "samples_per_value": 2}, "seasonal": {"dt": 3600, "noise": 0.5},
    "replay": {"label_column": "label"},    # the built-in example, its labels (a spike at row 300)
}
PATHS = [f"/{n}" for n in GENERATORS] + [f"/anomalies/{n}" for n in ANOMALY_KINDS]


def query(params: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


# -- the original's values and its users' scripts ------------------------------

@pytest.mark.parametrize("path,expected", [
    ("/sine?speed=max&count=8", "0.000 0.501 0.995 1.472 1.927 2.351 2.738 3.082"),
    ("/sine?interval=0&count=8", "0.000 0.501 0.995 1.472 1.927 2.351 2.738 3.082"),
    ("/cosine?speed=max&count=5", "4.000 3.968 3.874 3.719 3.505"),
    ("/square?speed=max&count=26", "1.000 " * 25 + "-1.000"),
    ("/sawtooth?speed=max&count=3", "0.000 0.020 0.040"),
])
def test_original_first_values_on_defaults(srv, path, expected):
    assert get_lines(srv.http_url + path) == expected.split()


def test_no_negative_zero(srv):
    got = get_lines(srv.http_url + "/sine?interval=0&count=101")
    assert got[50] == "0.000" and got[100] == "0.000"
    assert not any(x == "-0.000" for x in got)


def test_readme_script_without_parameters(srv):
    # Example 1 of the original README: every line through json.loads.
    url = srv.http_url + "/sine"
    t0 = time.monotonic()
    data = []
    response = requests.get(url, stream=True, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    for line in response.iter_lines():
        if line:
            data.append(json.loads(line.decode("utf-8")))
            if len(data) == 1:
                first_after = time.monotonic() - t0
            if len(data) == 2:
                break
    response.close()
    assert data == [0.0, 0.501]
    assert first_after < LOADED_LATENESS_S                        # the stream starts at once
    assert time.monotonic() - t0 < 1.0 + LOADED_LATENESS_S          # default interval 1 s, no buffering


def test_readme_script_with_parameters(srv):
    # Example 2: same names as the original's query string.
    amplitude, frequency, phase, sample_rate, interval = 10, 2, 0, 100, 2
    url = (f"{srv.http_url}/sine?amplitude={amplitude}&frequency={frequency}&phase={phase}"
           f"&sample_rate={sample_rate}&interval={interval}")
    response = requests.get(url, stream=True, timeout=10)
    assert response.status_code == 200
    got = []
    for line in response.iter_lines():
        if line:
            got.append(line.decode("utf-8"))
            break
    response.close()
    assert got == ["0.000"]
    assert json.loads(got[0]) == 0.0


# -- same values as the engine, every kind, every path --------------------------

@pytest.mark.parametrize("path", PATHS)
def test_same_values_as_engine(srv, path):
    name = path.rsplit("/", 1)[1]
    params = KIND_PARAMS[name]
    n, seed = 400, 987654321
    ref = create(name, params, seed=seed).take(n)
    base = f"{srv.http_url}{path}?{query(params)}&seed={seed}&speed=max&count={n}"
    rows = [json.loads(x) for x in get_lines(base + "&format=ndjson")]
    assert [r["seq"] for r in rows] == list(range(n))
    assert np.array_equal([r["value"] for r in rows], ref.values)  # full precision, bit for bit
    if ref.labels is not None:
        assert [r["label"] for r in rows] == ref.labels.tolist()
        assert ref.labels.any() and not ref.labels.all()
    else:
        assert all("label" not in r for r in rows)
    assert get_lines(base) == text_of(ref.values)


def test_start_seq_and_seed_header(srv):
    ref = create("random-square", KIND_PARAMS["random-square"], seed=42, start_seq=1000).take(50)
    url = f"{srv.http_url}/anomalies/random-square?{query(KIND_PARAMS['random-square'])}&seed=42&start_seq=1000" \
          "&speed=max&count=50&format=ndjson"
    with requests.get(url, stream=True, timeout=10) as r:
        assert r.headers["x-wsgen-seed"] == "42" and r.headers["x-wsgen-start-seq"] == "1000"
        rows = [json.loads(x) for x in r.iter_lines()]
    assert [x["seq"] for x in rows] == list(range(1000, 1050))
    assert [x["value"] for x in rows] == ref.values.tolist()


def test_drawn_seed_is_returned_and_reproduces(srv):
    with requests.get(srv.http_url + "/normal?speed=max&count=20", stream=True, timeout=10) as r:
        seed = int(r.headers["x-wsgen-seed"])
        got = [line.decode() for line in r.iter_lines()]
    assert got == text_of(create("normal", {}, seed=seed).take(20).values)


def test_anomaly_paths_match_root_paths(srv):
    for name in ANOMALY_KINDS:
        q = f"?seed=7&speed=max&count=300&format=csv&{query(KIND_PARAMS[name])}"
        root = [r[:1] + r[2:] for r in csv.reader(get_lines(srv.http_url + "/" + name + q))]
        legacy = [r[:1] + r[2:] for r in csv.reader(get_lines(srv.http_url + "/anomalies/" + name + q))]
        assert root == legacy and len(root) == 301  # seq, value, label equal (t is wall time)


# -- formats ------------------------------------------------------------------------

def test_ndjson_strict(srv):
    with requests.get(srv.http_url + "/random?seed=3&speed=max&count=40&data_interval=0.25"
                      "&anomaly_probability=0.5&format=ndjson", stream=True, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        body = r.content.decode()
    assert body.endswith("\n")
    rows = [json.loads(line) for line in body.split("\n")[:-1]]
    assert len(rows) == 40
    for k, row in enumerate(rows):
        assert set(row) == {"seq", "t", "value", "label"}
        assert row["seq"] == k and isinstance(row["label"], bool) and isinstance(row["value"], float)
        assert abs(row["t"] - (rows[0]["t"] + 0.25 * k)) < 1e-5   # stream time, not delivery time
    assert abs(rows[0]["t"] - time.time()) < 5


def test_csv_strict(srv):
    with requests.get(srv.http_url + "/uniform?seed=5&interval=0.5&speed=max&count=25&format=csv",
                      stream=True, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        body = r.content.decode()
    rows = list(csv.reader(io.StringIO(body, newline=""), strict=True))
    assert rows[0] == ["seq", "t", "value"]
    ref = create("uniform", {}, seed=5).take(25).values
    assert [int(r[0]) for r in rows[1:]] == list(range(25))
    assert [float(r[2]) for r in rows[1:]] == ref.tolist()
    t = [float(r[1]) for r in rows[1:]]
    assert np.allclose(np.diff(t), 0.5, atol=1e-5)
    with requests.get(srv.http_url + "/clustered?seed=5&speed=max&count=3&format=csv", timeout=10) as r:
        rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["seq", "t", "value", "label"] and {r[3] for r in rows[1:]} <= {"true", "false"}


def parse_sse(body: str) -> list[dict]:
    """A strict Server-Sent Events parser (WHATWG event stream rules)."""
    assert "\r" not in body
    assert body.endswith("\n\n"), "the last event must be terminated"
    events, fields = [], {}
    for line in body.split("\n")[:-1]:
        if line == "":
            if fields:
                events.append(fields)
            fields = {}
            continue
        if line.startswith(":"):
            continue
        assert ":" in line, f"not a field line: {line!r}"
        name, value = line.split(":", 1)
        value = value[1:] if value.startswith(" ") else value
        assert name in ("id", "data", "event", "retry"), name
        assert name not in fields, f"repeated {name} in one event"
        fields[name] = value
    return events


def test_sse_strict(srv):
    n = 30
    with requests.get(srv.http_url + f"/periodic-spike?seed=9&spike_interval=2&data_interval=0.5&speed=max"
                      f"&count={n}&format=sse", stream=True, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache"
        events = parse_sse(r.content.decode())
    data = [e for e in events if "event" not in e]
    assert len(data) == n
    ref = create("periodic-spike", {"spike_interval": 2, "data_interval": 0.5}, seed=9).take(n)
    for k, e in enumerate(data):
        obj = json.loads(e["data"])
        assert e["id"] == str(k) == str(obj["seq"])
        assert obj["value"] == ref.values[k] and obj["label"] == bool(ref.labels[k])
    assert events[-1]["event"] == "end" and json.loads(events[-1]["data"]) == {"next_seq": n}


def test_sse_last_event_id_resumes(srv):
    with requests.get(srv.http_url + "/sine?seed=1&speed=max&count=3&format=sse",
                      headers={"Last-Event-ID": "9"}, timeout=10) as r:
        events = [e for e in parse_sse(r.text) if "id" in e]
    assert [e["id"] for e in events] == ["10", "11", "12"]
    ref = create("sine", {}, seed=1, start_seq=10).take(3).values
    assert [json.loads(e["data"])["value"] for e in events] == ref.tolist()


def test_content_types_and_stream_headers(srv):
    for fmt, ctype in [("text", "text/plain; charset=utf-8"), ("ndjson", "application/x-ndjson"),
                       ("csv", "text/csv; charset=utf-8"), ("sse", "text/event-stream; charset=utf-8")]:
        r = httpx.get(srv.http_url + f"/exponential?speed=max&count=2&format={fmt}", timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"] == ctype
        assert r.headers["x-accel-buffering"] == "no" and r.headers["cache-control"] == "no-cache"
        assert "content-encoding" not in r.headers
        assert r.headers.get("transfer-encoding") == "chunked"


# -- count, duration, pacing -------------------------------------------------------------

def test_count_and_duration_end_the_stream(srv):
    assert len(get_lines(srv.http_url + "/normal?speed=max&count=12345")) == 12345
    # duration in stream seconds: offsets 0, .5, 1, 1.5 are < 2
    assert len(get_lines(srv.http_url + "/normal?interval=0.5&speed=max&duration=2")) == 4
    assert len(get_lines(srv.http_url + "/normal?interval=0.1&speed=max&duration=0.3")) == 3
    # both: whichever comes first
    assert len(get_lines(srv.http_url + "/normal?interval=0.1&speed=max&duration=100&count=7")) == 7
    # unpaced: stream time is wall time
    t0 = time.monotonic()
    rows = get_lines(srv.http_url + "/normal?interval=0&duration=0.3")
    assert 0.295 < time.monotonic() - t0 < 0.3 + 5 * LOADED_LATENESS_S and len(rows) > 1000
    # count-per-duration: "duration" is the window; the stream limit is stream_duration
    ref = create("count-per-duration", {"duration": 10, "num_anomalies": 2}, seed=2).take(20)
    got = get_lines(srv.http_url + "/count-per-duration?duration=10&num_anomalies=2&seed=2&stream_duration=20&speed=max")
    assert got == text_of(ref.values)


def test_pacing_is_on_time(srv):
    t0 = time.monotonic()
    rows, arrivals = [], []
    with requests.get(srv.http_url + "/sine?interval=0.05&count=10&format=ndjson", stream=True, timeout=10) as r:
        for line in r.iter_lines():
            arrivals.append(time.time())
            rows.append(json.loads(line))
    total = time.monotonic() - t0
    assert [row["seq"] for row in rows] == list(range(10))
    # the server's stamps: exactly one interval apart, from the first (no drift by construction)
    stamps = np.array([row["t"] for row in rows])
    np.testing.assert_allclose(stamps - stamps[0], 0.05 * np.arange(10), atol=2e-6)   # (stamps in whole us)
    # each line leaves at its stamp, never before it, and at most a loaded machine's wake-up after it
    late = np.array(arrivals) - stamps
    assert late.min() > -0.005 and late.max() < LOADED_LATENESS_S, late
    assert 0.45 - 0.005 < total < 0.45 + LOADED_LATENESS_S, total


def test_speed_changes_delivery_not_timestamps(srv):
    t0 = time.monotonic()
    rows = [json.loads(x) for x in get_lines(srv.http_url + "/sine?interval=0.2&speed=4&count=6&format=ndjson")]
    elapsed = time.monotonic() - t0
    assert 0.245 < elapsed < 0.25 + LOADED_LATENESS_S, elapsed              # 5 gaps of 0.05 s
    assert np.allclose(np.diff([r["t"] for r in rows]), 0.2, atol=1e-5)


def test_paced_chunks_share_a_tick_and_unpaced_chunks_are_big(srv):
    # 1 ms interval: samples due within one tick (2 ms by default) go out as one chunk.
    with requests.get(srv.http_url + "/sine?interval=0.001&count=300", stream=True, timeout=10) as r:
        chunks = list(r.raw.read_chunked())
    assert b"".join(chunks).count(b"\n") == 300
    assert len(chunks) <= 0.3 / Settings().tick_s + 20, len(chunks)    # ~150, not 300
    with requests.get(srv.http_url + "/sine?speed=max&count=40000", stream=True, timeout=10) as r:
        chunks = list(r.raw.read_chunked())
    assert b"".join(chunks).count(b"\n") == 40000
    assert max(c.count(b"\n") for c in chunks) >= 4096


# -- invalid requests ---------------------------------------------------------------------

BAD = [
    ("/normal?std_dev=-1", "std_dev"),
    ("/uniform?min_val=5&max_val=1", "min_val"),
    ("/sine?sample_rate=0", "sample_rate"),
    ("/count-per-duration?num_anomalies=31&duration=30", "num_anomalies"),
    ("/count-per-duration?num_anomalies=3601", "num_anomalies"),
    ("/count-per-duration?num_anomalies=1000000000&duration=1000000000", "num_anomalies"),
    ("/random-square?minimum_interval=5.5", "minimum_interval"),
    ("/random-square?minimum_interval=20&maximum_interval=10", "minimum_interval"),
    ("/random-square?start_seq=9007199254740992", "start_seq"),
    ("/sine?interval=-1", "interval"),
    ("/sine?interval=", "interval"),
    ("/periodic-spike?data_interval=0", "data_interval"),
    ("/sine?amplitude=nan", "amplitude"),
    ("/sine?amplitude=inf", "amplitude"),
    ("/normal?mean=-inf", "mean"),
    ("/sine?frequency=abc", "frequency"),
    ("/sine?amplitud=3", "amplitud"),
    ("/anomalies/random?interval=1&data_interval=1", "data_interval"),
    ("/sine?amplitude=1&amplitude=2", "amplitude"),
    ("/sine?format=xml", "format"),
    ("/sine?speed=0", "speed"),
    ("/sine?speed=-2", "speed"),
    ("/sine?speed=fast", "speed"),
    ("/sine?speed=nan", "speed"),
    ("/sine?speed=inf", "speed"),
    ("/sine?speed=1e7", "speed"),
    ("/sine?seed=abc", "seed"),
    ("/sine?seed=-1", "seed"),
    ("/sine?seed=18446744073709551616", "seed"),
    ("/sine?count=0", "count"),
    ("/sine?count=1.5", "count"),
    ("/sine?duration=0", "duration"),
    ("/sine?duration=nan", "duration"),
    ("/sine?start_seq=-5", "start_seq"),
    ("/count-per-duration?stream_duration=abc", "stream_duration"),
    ("/sine?stream_duration=5", "stream_duration"),
]


def test_invalid_parameters_are_422_while_others_stream(srv):
    # A paced stream and a speed=max hog run while the bad requests arrive.
    arrivals: list[float] = []
    hog_lines = [0]
    stop = threading.Event()

    def paced():
        with requests.get(srv.http_url + "/sine?interval=0.02&count=100", stream=True, timeout=20) as r:
            for _ in r.iter_lines():
                arrivals.append(time.monotonic())

    def hog():
        with requests.get(srv.http_url + "/normal?speed=max", stream=True, timeout=20) as r:
            for chunk in r.iter_content(1 << 16):
                hog_lines[0] += chunk.count(b"\n")
                if stop.is_set():
                    break

    threads = [threading.Thread(target=paced), threading.Thread(target=hog)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    with httpx.Client(base_url=srv.http_url, timeout=5) as client:
        for path, field in BAD:
            t0 = time.monotonic()
            r = client.get(path)
            assert time.monotonic() - t0 < LOADED_LATENESS_S, path
            assert r.status_code == 422, (path, r.text)
            body = r.json()
            assert body["error"] == "invalid_params" and field in body["message"]
            fields = {d["field"]: d for d in body["details"]}
            assert field in fields, (path, body)
            assert "value" in fields[field] and fields[field]["message"]
        r = client.get("/sine?amplitud=3")
        assert "amplitude" in r.json()["details"][0]["message"]   # lists what is allowed
        r = client.get("/healthz")
        assert r.status_code == 200
    threads[0].join(10)
    stop.set()
    threads[1].join(10)
    assert len(arrivals) == 100
    gaps = np.diff(arrivals)
    assert gaps.max() < LOADED_LATENESS_S, gaps.max()                       # never stalled
    assert abs((arrivals[-1] - arrivals[0]) - 99 * 0.02) < LOADED_LATENESS_S  # and on schedule
    assert hog_lines[0] > 100_000
    assert wait_until(lambda: srv.active_streams() == 0)


def test_unknown_generator_is_404(srv):
    assert requests.get(srv.http_url + "/sinus", timeout=5).status_code == 404
    assert requests.get(srv.http_url + "/anomalies/sine", timeout=5).status_code == 404


# -- disconnects ------------------------------------------------------------------------

def test_disconnect_stops_the_generator(srv):
    assert wait_until(lambda: srv.active_streams() == 0)
    paced = requests.get(srv.http_url + "/sine?interval=5", stream=True, timeout=10)
    unpaced = requests.get(srv.http_url + "/sine?speed=max", stream=True, timeout=10)
    sse = requests.get(srv.http_url + "/random?format=sse", stream=True, timeout=10)
    # keep the iterators: dropping one closes its connection (urllib3)
    readers = [paced.iter_lines(), unpaced.iter_content(100), sse.iter_lines()]
    for it in readers:
        next(it)     # then stop reading: the unpaced one blocks on a full socket
    assert srv.active_streams() == 3
    time.sleep(0.3)
    assert srv.active_streams() == 3
    for r in (paced, unpaced, sse):
        r.close()
    assert wait_until(lambda: srv.active_streams() == 0, 3.0)


# -- docs, catalogue, health ------------------------------------------------------------------

def test_docs_are_self_contained(srv):
    r = requests.get(srv.http_url + "/docs", timeout=5)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert "http://" not in html and "https://" not in html
    assert "/static/docs/swagger-ui-bundle.js" in html and "/static/docs/swagger-ui.css" in html
    js = requests.get(srv.http_url + "/static/docs/swagger-ui-bundle.js", timeout=5)
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert len(js.content) > 500_000 and b"SwaggerUIBundle" in js.content
    css = requests.get(srv.http_url + "/static/docs/swagger-ui.css", timeout=5)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert requests.get(srv.http_url + "/static/docs/favicon-32x32.png", timeout=5).status_code == 200


def test_openapi_lists_every_path_with_its_parameters(srv):
    spec = requests.get(srv.http_url + "/openapi.json", timeout=5).json()
    assert set(PATHS) <= set(spec["paths"])
    assert {"/generators", "/healthz"} <= set(spec["paths"])
    for path in PATHS:
        name = path.rsplit("/", 1)[1]
        model = GENERATORS[name].params_model
        op = spec["paths"][path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        for field_name, info in model.model_fields.items():
            p = params[field_name]
            assert p["in"] == "query" and not p["required"] and p["description"]
            default = p["schema"].get("default")       # (FastAPI drops a null default)
            if p["schema"].get("type") == "string" and isinstance(info.default, (list, tuple)):
                default = json.loads(default)            # a list parameter: its text form
                assert default == json.loads(json.dumps(info.default))
            else:
                assert default == info.default
        controls = {"seed", "speed", "count", "format", "start_seq"}
        controls |= {"stream_duration"} if "duration" in model.model_fields else {"duration"}
        assert controls <= set(params)
        assert "token" not in params  # not required by this server
        assert set(params) == set(model.model_fields) | set(model.aliases) | controls
        assert "422" in op["responses"]
        assert {"text/plain", "application/x-ndjson", "text/csv", "text/event-stream"} <= \
            set(op["responses"]["200"]["content"])
    assert spec["paths"]["/sine"]["get"]["parameters"][0]["schema"]["default"] == 4.0


def test_generators_catalogue(srv):
    r = requests.get(srv.http_url + "/generators", timeout=5)
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(catalogue()))
    assert {g["name"] for g in r.json()} == set(GENERATORS)


def test_healthz(srv):
    r = requests.get(srv.http_url + "/healthz", timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["active_streams"] >= 0


def test_metrics_count_http_samples(srv):
    get_lines(srv.http_url + "/exponential?speed=max&count=777")
    text = requests.get(srv.http_url + "/metrics", timeout=5).text
    line = next(x for x in text.splitlines()
                if x.startswith("wsgen_samples_sent_total{") and 'generator="exponential"' in x and 'path="http"' in x)
    assert float(line.split()[-1]) >= 777


# -- server settings ----------------------------------------------------------------------

def test_token_min_interval_and_stream_limit():
    settings = test_settings(token="s3cret", min_interval_s=0.01, max_connections=1)
    with ThreadedServer(settings) as s:
        assert requests.get(s.http_url + "/healthz", timeout=5).status_code == 200
        r = requests.get(s.http_url + "/sine?count=1&speed=max", timeout=5)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert requests.get(s.http_url + "/sine?count=1&token=wrong", timeout=5).status_code == 401
        assert requests.get(s.http_url + "/generators", timeout=5).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert requests.get(s.http_url + "/sine?count=1&speed=max", headers=auth, timeout=5).text == "0.000\n"
        assert requests.get(s.http_url + "/sine?count=1&speed=max&token=s3cret", timeout=5).text == "0.000\n"
        r = requests.get(s.http_url + "/sine?interval=0.001&count=1", headers=auth, timeout=5)
        assert r.status_code == 422 and r.json()["details"][0]["field"] == "interval"
        assert requests.get(s.http_url + "/sine?interval=0&count=1", headers=auth, timeout=5).status_code == 200
        docs = requests.get(s.http_url + "/docs?token=s3cret", timeout=5).text
        assert "/openapi.json?token=s3cret" in docs
        spec = requests.get(s.http_url + "/openapi.json?token=s3cret", timeout=5).json()
        assert "token" in {p["name"] for p in spec["paths"]["/sine"]["get"]["parameters"]}
        # one stream at a time on this server
        first = requests.get(s.http_url + "/sine?interval=5", headers=auth, stream=True, timeout=5)
        reader = first.iter_lines()
        next(reader)
        second = requests.get(s.http_url + "/sine?interval=5", headers=auth, timeout=5)
        assert second.status_code == 503 and second.headers["retry-after"]
        first.close()
        assert wait_until(lambda: s.active_streams() == 0)


def test_close_ends_open_streams_cleanly():
    with ThreadedServer() as s:
        got: list[str] = []
        done = threading.Event()

        def read():
            with requests.get(s.http_url + "/sine?interval=10", stream=True, timeout=10) as r:
                for line in r.iter_lines():   # ends without error when the server ends the stream
                    got.append(line.decode())
            done.set()

        t = threading.Thread(target=read)
        t.start()
        assert wait_until(lambda: s.active_streams() == 1)
        s.loop.call_soon_threadsafe(s.running._http.config.app.state.streams.close)
        assert done.wait(3), "stream did not end"
        t.join(3)
        assert got == ["0.000"]
        assert s.active_streams() == 0


# -- line formats, pure ----------------------------------------------------------------------

def test_lines_text_rounding_and_zero():
    values = np.array([0.0005, -0.0005, 0.00049, -0.00049, -1e-300, 2.0, -3.14159, 1e12])
    assert lines.text(values) == b"0.001\n-0.001\n0.000\n0.000\n0.000\n2.000\n-3.142\n1000000000000.000\n"
    assert lines.text(np.empty(0)) == b""


def test_lines_formats_roundtrip():
    block = create("random", {"anomaly_probability": 0.5}, seed=11).take(64)
    times = 1_700_000_000.0 + 0.125 * np.arange(64)
    rows = [json.loads(x) for x in lines.encode("ndjson", block, times).decode().splitlines()]
    assert [r["value"] for r in rows] == block.values.tolist()
    assert [r["label"] for r in rows] == block.labels.tolist()
    assert [r["t"] for r in rows] == times.tolist()
    table = list(csv.reader(io.StringIO((lines.header("csv", True) + lines.encode("csv", block, times)).decode())))
    assert table[0] == ["seq", "t", "value", "label"] and len(table) == 65
    events = parse_sse((lines.encode("sse", block, times) + lines.footer("sse", 64)).decode())
    assert [json.loads(e["data"]) for e in events[:-1]] == rows
    with pytest.raises(ValueError):
        lines.encode("ndjson", block)
    assert math.isclose(rows[1]["t"] - rows[0]["t"], 0.125)
