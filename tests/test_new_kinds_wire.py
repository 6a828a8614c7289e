"""The kinds of issue 15 on every transport, against a real server on
ephemeral ports: WebSocket (Python client, URL subscription, live update),
HTTP (GET /<kind> with list parameters as text, 422 naming the field,
/generators), a composition with a new base over HTTP, and ``wsgen sub`` /
``wsgen list`` as subprocesses. Values are compared bit for bit with the
engine (tests/reference.py)."""
from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote

import httpx
import numpy as np
import orjson
import pytest
import websockets

from wsgen.client import Client, WsgenError

from reference import engine  # noqa: E402  (tests/ is on sys.path under pytest)
from servers import WSGEN, ServeProcess  # noqa: E402

NEW = ["random-walk", "ou", "pulse", "steps", "pattern", "seasonal"]
SEASONAL = [{"name": "daily", "period": "day", "amplitudes": [2.0, 0.5], "phases": [-90, 0]},
            {"name": "weekly", "period": "week", "amplitudes": [1.0]}]

#: per kind: parameters as JSON values (WebSocket) and as the query-string text that means the same
CASES = {
    "random-walk": ({"drift": 0.1, "volatility": 2.0, "min": -3.0, "max": 4.0},
                    "drift=0.1&volatility=2&min=-3&max=4"),
    "ou": ({"theta": 0.5, "sigma": 2.0, "mean": 10.0, "dt": 0.1}, "theta=0.5&sigma=2&mean=10&dt=0.1"),
    "pulse": ({"on_duration": 0.3, "off_duration": 0.2, "dt": 0.1, "on_value": 7.0},
              "on_duration=0.3&off_duration=0.2&dt=0.1&on_value=7"),
    "steps": ({"steps": [[1.0, 0.0], [2.0, 5.0], [0.5, -1.0]], "dt": 0.5}, "steps=1,0,2,5,0.5,-1&dt=0.5"),
    "pattern": ({"values": [1.0, 5.0, 2.0], "samples_per_value": 3, "interpolation": "linear"},
                "values=1,5,2&samples_per_value=3&interpolation=linear"),
    "seasonal": ({"components": SEASONAL, "start": "2026-01-05T00:00:00Z", "dt": 900.0, "noise": 0.1},
                 "components=" + quote(json.dumps(SEASONAL)) + "&start=2026-01-05T00:00:00Z&dt=900&noise=0.1"),
}


@pytest.mark.parametrize("kind", NEW)
async def test_client_stream_equals_engine_and_live_update(server, kind):
    params, _ = CASES[kind]
    changes = {"random-walk": {"drift": -1.0}, "ou": {"mean": -5.0}, "pulse": {"off_duration": 1.0},
               "steps": {"steps": "1,9"}, "pattern": {"values": [0, 10]}, "seasonal": {"dt": 60.0}}[kind]
    async with Client(server.ws_url, reconnect=False) as c:
        sub = await c.subscribe(kind, params, seed=77, speed="max")
        first = await sub.take(300)
        at = await sub.update(changes)
        rest = await sub.take(at + 300 - first.seq - len(first))
        await sub.unsubscribe()
    got = np.concatenate([first.values, rest.values])
    expected, labels = engine(kind, params, 77, len(got), updates=[(at, changes)])
    assert labels is None
    assert got.tobytes() == expected.tobytes()


async def test_url_subscription_with_list_params(server):
    async with websockets.connect(server.ws_url + "/pattern?values=4,5,6&samples_per_value=2&seed=1&speed=max") as ws:
        reply = json.loads(await ws.recv())
        assert reply["type"] == "subscribed" and reply["params"]["values"] == [4.0, 5.0, 6.0]
        got = []
        while len(got) < 12:
            msg = json.loads(await ws.recv())
            if msg["type"] == "data":
                got += msg["values"]
    assert got[:12] == [4, 4, 5, 5, 6, 6] * 2


async def test_websocket_invalid_params_name_the_field(server):
    async with Client(server.ws_url, reconnect=False) as c:
        with pytest.raises(WsgenError) as info:
            await c.subscribe("steps", {"steps": "1,2,3"})
        assert info.value.code == "invalid_params" and info.value.details[0]["field"] == "steps"
        with pytest.raises(WsgenError) as info:
            await c.subscribe("seasonal", {"components": [{"name": "a", "period": -1, "amplitudes": [1]}]})
        assert info.value.details[0]["field"] == "components.0.period"
        # the connection goes on
        sub = await c.subscribe("pulse", {}, seed=1, speed="max")
        assert (await sub.take(4)).values.tolist() == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("kind", NEW)
async def test_http_get_with_text_params_equals_engine(full_server, kind):
    params, query = CASES[kind]
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        r = await http.get(f"/{kind}?{query}&seed=5&count=400&speed=max&format=ndjson")
    assert r.status_code == 200, r.text
    rows = [orjson.loads(line) for line in r.text.splitlines()]
    assert [row["seq"] for row in rows] == list(range(400))
    expected, _ = engine(kind, params, 5, 400)
    assert np.array([row["value"] for row in rows]).tobytes() == expected.tobytes()


async def test_http_start_seq_and_invalid_params(full_server):
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        r = await http.get("/random-walk?seed=3&start_seq=1000&count=50&speed=max&format=ndjson")
        assert r.status_code == 200 and r.headers["X-Wsgen-Start-Seq"] == "1000"
        rows = [orjson.loads(line) for line in r.text.splitlines()]
        expected, _ = engine("random-walk", {}, 3, 1050)
        assert [row["seq"] for row in rows] == list(range(1000, 1050))
        assert np.array([row["value"] for row in rows]).tobytes() == expected[1000:].tobytes()
        for path, field in [("/steps?steps=1,2,3", "steps"), ("/pattern?values=1,x", "values.1"),
                            ("/random-walk?min=2&max=1", "min"), ("/seasonal?start=soon", "start"),
                            ("/ou?start_seq=600000", "start_seq")]:
            r = await http.get(path + "&count=1")
            assert r.status_code == 422, (path, r.text)
            body = r.json()
            assert body["error"] == "invalid_params" and field in [d["field"] for d in body["details"]], body


async def test_catalogue_lists_the_new_kinds(full_server):
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        gens = {g["name"]: g for g in (await http.get("/generators")).json()}
        openapi = (await http.get("/openapi.json")).json()
    for kind in NEW:
        assert gens[kind]["family"] == ("process" if kind in ("random-walk", "ou") else "periodic")
        assert gens[kind]["anomalous"] is False and gens[kind]["interval_field"] == "interval"
        assert f"/{kind}" in openapi["paths"]
    props = gens["steps"]["params_schema"]["properties"]
    assert props["steps"]["type"] == "array" and props["steps"]["default"] == [[1.0, 0.0], [1.0, 1.0]]
    assert gens["seasonal"]["params_schema"]["properties"]["components"]["type"] == "array"
    assert gens["pattern"]["params_schema"]["properties"]["interpolation"]["enum"] == ["step", "linear"]


async def test_composition_with_a_new_base_over_http(full_server):
    spec = {"interval": 0.5, "base": {"kind": "seasonal", "params": {"components": SEASONAL, "dt": 3600}},
            "anomalies": [{"kind": "level-shift", "placement": {"mode": "indices", "indices": [100]},
                           "min_length": 10, "max_length": 10, "height": 50}]}
    async with httpx.AsyncClient(base_url=full_server.http_url, timeout=30) as http:
        r = await http.post("/composite?seed=4&count=200&speed=max&format=ndjson", json=spec)
    assert r.status_code == 200, r.text
    rows = [orjson.loads(line) for line in r.text.splitlines()]
    rows = [row for row in rows if "value" in row]
    base, _ = engine("seasonal", {"components": SEASONAL, "dt": 3600}, 4, 200)
    values = np.array([row["value"] for row in rows])
    labels = np.array([row["label"] for row in rows])
    assert labels.nonzero()[0].tolist() == list(range(100, 110))
    np.testing.assert_array_equal(values[~labels], base[~labels])
    np.testing.assert_allclose(values[labels], base[labels] + 50, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def served_url():
    with ServeProcess("--log-level", "warning") as server:
        yield server.url


def test_wsgen_sub_and_list(served_url):
    import subprocess
    r = subprocess.run([*WSGEN, "sub", "steps", "--steps", "1,0,2,5", "--count", "9", "--format", "csv", "--seed", "2",
                        "--speed", "max", "--url", served_url], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["seq", "t", "value"]
    assert [float(row[2]) for row in rows[1:]] == [0, 5, 5, 0, 5, 5, 0, 5, 5]
    r = subprocess.run([*WSGEN, "sub", "random-walk", "--min", "-1", "--max", "1", "--volatility", "1",
                        "--count", "200", "--format", "csv",
                        "--seed", "2", "--speed", "max", "--url", served_url], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    got = np.array([float(row[2]) for row in list(csv.reader(io.StringIO(r.stdout)))[1:]])
    expected, _ = engine("random-walk", {"min": -1, "max": 1}, 2, 200)
    assert got.tobytes() == expected.tobytes()
    r = subprocess.run([*WSGEN, "list", "--url", served_url], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    for kind in NEW:
        assert f"\n{kind}  (" in "\n" + r.stdout, kind
