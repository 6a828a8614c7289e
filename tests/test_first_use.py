"""What a new user meets first (issue 17), on a real server over every
transport: one name for the sample interval, text lines ``json.loads`` reads,
stream controls that mean the same over HTTP and WebSocket."""
from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

import wsgen
from wsgen.engine import ANOMALY_KINDS
from wsgen.engine.composite import create_composite, preset


async def recv_json(ws) -> dict:
    return json.loads(await ws.recv())


async def ws_values(url: str, n: int) -> tuple[dict, list[float], list[float]]:
    """The ``subscribed`` reply, the first ``n`` values and their stamps ``t``
    of a URL subscription."""
    values, stamps = [], []
    async with connect(url) as ws:
        ack = await recv_json(ws)
        if ack["type"] != "subscribed":
            return ack, values, stamps
        while len(values) < n:
            msg = await recv_json(ws)
            if msg["type"] == "data":
                values += msg["values"]
                stamps += [msg["t"] + i * msg["dt"] for i in range(len(msg["values"]))]
    return ack, values[:n], stamps[:n]


# -- item 2: ``interval`` everywhere, ``data_interval`` an alias ------------------------

async def test_interval_and_data_interval_on_every_transport(full_server):
    http, ws = full_server.http_url, full_server.ws_url
    async with httpx.AsyncClient(timeout=10) as client:
        for kind in ANOMALY_KINDS:
            ref = wsgen.create(kind, {"interval": 0.5}, seed=11).take(60).values
            for name in ("interval", "data_interval"):
                # HTTP: the original's text lines and ndjson stamps 0.5 s apart
                r = await client.get(f"{http}/anomalies/{kind}?seed=11&speed=max&count=60&{name}=0.5&format=ndjson")
                assert r.status_code == 200, r.text
                rows = [json.loads(line) for line in r.text.splitlines()]
                assert [row["value"] for row in rows] == ref.tolist()
                assert np.allclose(np.diff([row["t"] for row in rows]), 0.5, atol=2e-6)
                # WebSocket URL subscription
                ack, values, stamps = await ws_values(f"{ws}/{kind}?seed=11&speed=max&{name}=0.5", 60)
                assert ack["params"]["interval"] == 0.5 and "data_interval" not in ack["params"]
                assert values == ref.tolist() and np.allclose(np.diff(stamps), 0.5)
            # both names: 422 naming both, over HTTP, and an error over WebSocket
            r = await client.get(f"{http}/{kind}?interval=0.5&data_interval=0.5")
            assert r.status_code == 422
            body = r.json()
            assert body["details"][0]["field"] == "data_interval"
            assert "give only one of interval, data_interval" in body["message"]
            ack, _, _ = await ws_values(f"{ws}/{kind}?interval=0.5&data_interval=0.5", 1)
            assert ack["type"] == "error" and ack["code"] == "invalid_params"
            assert "give only one of interval, data_interval" in ack["message"]
        # compositions pace with ``interval``; the presets take either name
        r = await client.post(f"{http}/composite?seed=11&speed=max&count=5&format=ndjson",
                              json={"interval": 0.25, "base": {"kind": "constant", "params": {"value": 1}}})
        assert r.status_code == 200
        assert np.allclose(np.diff([json.loads(x)["t"] for x in r.text.splitlines()]), 0.25, atol=2e-6)
        r = await client.get(f"{http}/composite/presets")
        assert all(p["interval"] == 1.0 for p in r.json()["presets"].values())
    # the catalogue says so
    async with connect(ws) as conn:
        await conn.send(json.dumps({"type": "list"}))
        gens = {g["name"]: g for g in (await recv_json(conn))["generators"]}
    assert all(g["interval_field"] == "interval" for g in gens.values())
    assert {n for n, g in gens.items() if g["param_aliases"]} == set(ANOMALY_KINDS)


# -- item 6: text lines json.loads reads -------------------------------------------------

NULLS = {"interval": 0.1, "base": {"kind": "sine", "params": {"amplitude": 2, "sample_rate": 10}},
         "faults": {"nulls": {"placement": {"mode": "indices", "indices": [3, 7]}}},
         "anomalies": [{"kind": "dropout", "placement": {"mode": "indices", "indices": [12]},
                        "min_length": 2, "max_length": 2}]}


async def run_cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """``python -m wsgen.cli <args>``: exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsgen.cli", *args,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def test_text_lines_print_null_for_missing_values(full_server):
    ref = create_composite(NULLS, seed=2).take(20)
    missing = [i for i, v in enumerate(ref.values.tolist()) if math.isnan(v)]
    assert len(missing) >= 3       # two null faults and a dropout without fill
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(f"{full_server.http_url}/composite?seed=2&speed=max&count=20", json=NULLS)
    lines = r.text.splitlines()
    parsed = [json.loads(line) for line in lines]          # every line, as the original's users read
    assert [i for i, v in enumerate(parsed) if v is None] == missing
    assert all(lines[i] == "null" for i in missing)
    np.testing.assert_allclose([math.nan if v is None else v for v in parsed], ref.values, atol=5e-4)
    # wsgen sub prints the same way
    code, out, err = await run_cli("sub", "--spec", json.dumps(NULLS), "--seed", "2", "--speed", "max",
                                   "--count", "20", "--url", full_server.ws_url)
    assert code == 0, err
    parsed = [json.loads(line) for line in out.splitlines()]
    assert [i for i, v in enumerate(parsed) if v is None] == missing
    assert [v for v in parsed if v is not None] == [v for v in ref.values.tolist() if not math.isnan(v)]


# -- item 7: the stream controls mean the same on every transport ---------------------------

async def ws_stream(url: str, first: dict | None = None) -> tuple[list[dict], dict]:
    """Every data message of one subscription until its ``ended`` (or an
    error): (data messages, the last message)."""
    data = []
    async with connect(url) as ws:
        if first is not None:
            await ws.send(json.dumps(first))
        while True:
            msg = await asyncio.wait_for(recv_json(ws), 20)
            if msg["type"] == "batch":
                data += msg["messages"]
            elif msg["type"] == "data":
                data.append(msg)
            elif msg["type"] in ("ended", "error"):
                return data, msg


def flat(data: list[dict]) -> tuple[list[int], list[float], list[float]]:
    seqs = [m["seq"] + i for m in data for i in range(len(m["values"]))]
    values = [v for m in data for v in m["values"]]
    stamps = [m["t"] + i * m["dt"] for m in data for i in range(len(m["values"]))]
    return seqs, values, stamps


async def http_rows(client, url: str) -> list[dict]:
    r = await client.get(url)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


async def test_count_duration_seed_start_seq_speed_same_over_http_and_websocket(full_server):
    http, ws = full_server.http_url, full_server.ws_url
    cases = [  # (path and query, samples expected, reason)
        ("/sine?seed=3&speed=max&count=7&amplitude=2", 7, "count"),
        ("/sine?seed=3&speed=max&start_seq=100&count=5&interval=0.5", 5, "count"),
        ("/sine?seed=3&speed=max&interval=0.5&duration=1", 2, "duration"),
        ("/normal?seed=9&speed=1000&interval=0.25&duration=2.1", 9, "duration"),
        ("/anomalies/random?seed=5&speed=max&count=50&anomaly_probability=0.4", 50, "count"),
        # count-per-duration has a parameter called duration: the control is stream_duration
        ("/count-per-duration?seed=1&speed=max&duration=10&num_anomalies=2&stream_duration=30", 30, "duration"),
    ]
    async with httpx.AsyncClient(timeout=20) as client:
        for query, n, reason in cases:
            rows = await http_rows(client, f"{http}{query}&format=ndjson")
            data, last = await ws_stream(f"{ws}{query}")
            seqs, values, stamps = flat(data)
            assert last == {"type": "ended", "id": query.split("?")[0].rsplit("/", 1)[1], "seq": seqs[0] + n,
                            "reason": reason}, query
            assert len(rows) == n and [r["seq"] for r in rows] == seqs, query
            assert [r["value"] for r in rows] == values, query
            # stream time: the same spacing on both transports
            np.testing.assert_allclose(np.diff([r["t"] for r in rows]), np.diff(stamps), atol=1e-5)
    # the same controls in a subscribe message; batched too; the id is free again after ended
    data, last = await ws_stream(ws, {"type": "subscribe", "id": "b", "generator": "sine", "seed": 3,
                                      "speed": "max", "count": 7, "batch": True, "params": {"amplitude": 2}})
    assert last == {"type": "ended", "id": "b", "seq": 7, "reason": "count"}
    assert flat(data)[1] == wsgen.create("sine", {"amplitude": 2}, seed=3).take(7).values.tolist()
    async with connect(ws) as conn:
        for _ in range(2):
            await conn.send(json.dumps({"type": "subscribe", "id": "again", "generator": "square", "speed": "max",
                                        "count": 3}))
            msgs = []
            while not msgs or msgs[-1]["type"] != "ended":
                msgs.append(await asyncio.wait_for(recv_json(conn), 10))
            assert msgs[0]["type"] == "subscribed" and msgs[-1]["seq"] == 3
    # unpaced with a duration: ends by wall time, as on HTTP
    data, last = await ws_stream(ws, {"type": "subscribe", "id": "u", "generator": "sine",
                                      "params": {"interval": 0}, "duration": 0.2})
    assert last["type"] == "ended" and last["reason"] == "duration" and last["seq"] == len(flat(data)[1]) > 0


async def test_http_only_controls_are_refused_over_websocket_saying_why(full_server):
    async with connect(full_server.ws_url + "/sine?format=csv&count=3") as ws:
        err = await recv_json(ws)
        assert err["type"] == "error" and err["code"] == "invalid_message" and err["id"] == "sine"
        assert err["details"][0]["field"] == "format"
        assert "HTTP control" in err["message"] and "encoding=binary" in err["message"]
        # the connection goes on
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "sine", "count": 2, "speed": "max"}))
        assert (await recv_json(ws))["type"] == "subscribed"
    # and the other way: a WebSocket option over HTTP says why it is not there
    async with httpx.AsyncClient(timeout=10) as client:
        for key, value in (("backpressure", "drop"), ("encoding", "binary"), ("batch", "true")):
            r = await client.get(f"{full_server.http_url}/sine?count=1&{key}={value}")
            assert r.status_code == 422
            detail = r.json()["details"][0]
            assert detail["field"] == key and detail["message"].startswith(f"{key} is a WebSocket option"), detail
    # the catalogue says which control each transport has, and why one lacks some
    async with connect(full_server.ws_url) as ws:
        await ws.send(json.dumps({"type": "list"}))
        controls = (await recv_json(ws))["controls"]
    for name in ("seed", "speed", "count", "duration", "start_seq"):
        assert controls[name]["http"] == controls[name]["ws"] == name
    assert controls["format"]["ws"] is None and "HTTP control" in controls["format"]["why"]
    assert {n for n, c in controls.items() if c["http"] is None} == {"backpressure", "encoding", "batch"}
    for bad, field in (("count=0", "count"), ("count=x", "count"), ("duration=-1", "duration")):
        async with connect(full_server.ws_url + "/sine?" + bad) as ws:
            err = await recv_json(ws)
            assert err["code"] == "invalid_message" and err["details"][0]["field"] == field, err


# -- item 5: wrong port, wrong scheme, wrong path: one line, no traceback ---------------------

def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


async def test_sub_takes_http_and_bare_addresses_and_refuses_others_in_one_line(full_server):
    ref = wsgen.create("sine", {}, seed=4).take(3).values.tolist()
    ws_port, http_port = full_server.ws_port, full_server.http_port
    for url in (f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{ws_port}", f"127.0.0.1:{ws_port}"):
        code, out, err = await run_cli("sub", "sine", "--seed", "4", "--speed", "max", "--count", "3", "--url", url,
                                       "--defaults")
        assert code == 0, (url, err)
        assert [float(x) for x in out.split()] == ref, url
    for url, why, args in (("ftp://127.0.0.1:1", "scheme ftp://", ("sub", "sine")), ("nonsense", "no scheme", ("sub", "sine")),
                           ("ws://", "no host", ("list",)), ("ws://127.0.0.1:99999", "Port out of range", ("list",))):
        if True:
            code, out, err = await run_cli(*args, "--url", url)
            line = one_line(err)
            assert code == 2 and out == "", (url, err)
            assert line.startswith("wsgen: --url: bad server address") and why in line, line
            assert "expected ws://host:port (or wss://, http://, https://, or a bare host:port)" in line
    code, _, err = await run_cli("bench", "throughput", "--url", "nonsense")
    assert code != 0 and "expected ws://host:port" in one_line(err)
    code, _, err = await run_cli("bench", "throughput", "--url", "127.0.0.1:1")
    assert code != 0 and one_line(err).startswith("wsgen bench: cannot connect to 127.0.0.1:1")
    # nothing listening: one line saying so
    code, _, err = await run_cli("sub", "sine", "--count", "1", "--url", "127.0.0.1:1")
    assert code == 1 and one_line(err).startswith("wsgen: cannot connect to 127.0.0.1:1")


async def test_serve_on_a_taken_port_names_the_flag_in_one_line(full_server):
    for flag, port in (("--port", full_server.ws_port), ("--http-port", full_server.http_port)):
        other = "--http-port" if flag == "--port" else "--port"
        code, out, err = await run_cli("serve", flag, str(port), other, "0", "--log-level", "warning")
        line = one_line(err)
        assert code == 2, err
        zero = "0 picks a free one" if flag == "--port" else "0 turns HTTP off"
        assert line == (f"wsgen: cannot start: port {port} on 127.0.0.1 is already in use (another wsgen serve?); "
                        f"stop that process or pick another port with {flag} N ({zero})")
    code, _, err = await run_cli("serve", "--host", "192.0.2.1", "--port", "0", "--http-port", "0")   # TEST-NET-1
    line = one_line(err)
    assert code == 2 and line.startswith("wsgen: cannot start: --host 192.0.2.1: ") and "0.0.0.0 for every" in line
    code, _, err = await run_cli("serve", "--port", "99999")
    assert code == 2 and "argument --port: 99999: a port is in [0, 65535]" in err and "Traceback" not in err


# -- item 3: a placement's start offset ------------------------------------------------------

def labelled(spec: dict, n: int, seed: int = 1) -> list[int]:
    return np.flatnonzero(create_composite(spec, seed=seed).take(n).labels).tolist()


def test_placement_start_keeps_a_baseline_before_the_first_event():
    spike = {"kind": "spike", "height": 5.0}
    def spec(placement, interval=0.5):
        return {"interval": interval, "anomalies": [{**spike, "placement": placement}]}
    # periodic: default start = every (first event one period in); start 0 is the original phase
    assert labelled(spec({"mode": "periodic", "every": 3}), 30) == [6, 12, 18, 24]
    assert labelled(spec({"mode": "periodic", "every": 3, "start": 0}), 30) == [0, 6, 12, 18, 24]
    # an explicit start shifts the schedule: start + k * every (1.2 s -> sample 3 at 0.5 s a sample)
    assert labelled(spec({"mode": "periodic", "every": 3, "start": 1.2}), 30) == [3, 9, 15, 21, 27]
    # the other modes: no event before start, the draws after it unchanged
    for placement in ({"mode": "random", "probability": 0.3}, {"mode": "count", "count": 5, "duration": 10},
                      {"mode": "indices", "indices": [0, 3, 9, 15]}):
        free = labelled(spec(placement), 200, seed=7)
        late = labelled(spec({**placement, "start": 4}), 200, seed=7)
        assert free and free[0] < 8 and late == [i for i in free if i >= 8], placement
    # faults take the same start
    nulls = {"interval": 1, "faults": {"nulls": {"placement": {"mode": "random", "probability": 0.5, "start": 10}}}}
    values = create_composite(nulls, seed=3).take(40).values
    assert not np.isnan(values[:10]).any() and np.isnan(values[10:]).sum() > 5
    # a live change of interval before start keeps start in seconds
    comp = create_composite(spec({"mode": "periodic", "every": 100, "start": 10}, interval=1), seed=1)
    first = comp.take(4)                       # t = 0 .. 3
    comp.update({"interval": 2})               # samples 4.. at t = 4, 6, 8, 10: the event at sample 7
    assert not first.labels.any() and np.flatnonzero(comp.take(10).labels).tolist() == [3]
    # start needs stream time
    with pytest.raises(wsgen.InvalidParams) as info:
        create_composite(spec({"mode": "random", "probability": 0.1, "start": 5}, interval=0))
    assert info.value.details[0]["field"] == "anomalies.0.placement.start"


def test_the_original_kinds_keep_their_exact_output_as_presets():
    for kind in ANOMALY_KINDS:
        params = {"interval": 1.0, **({"spike_interval": 7} if kind == "periodic-spike" else {})}
        ref = wsgen.create(kind, params, seed=5).take(3000)
        comp = create_composite(preset(kind, params), seed=5).take(3000)
        assert np.array_equal(ref.values, comp.values) and np.array_equal(ref.labels, comp.labels), kind
    assert wsgen.create("periodic-spike", {"spike_interval": 7}, seed=5).take(8).labels[0]   # still at sample 0


# -- item 1: lively demo values beside the defaults ----------------------------------------------

async def test_catalogue_offers_demo_values_and_wsgen_sub_starts_from_them(full_server):
    async with httpx.AsyncClient(timeout=10) as client:
        cat = {g["name"]: g for g in (await client.get(f"{full_server.http_url}/generators")).json()}
        # the HTTP endpoints keep the original's defaults: one sample a second
        r = await client.get(f"{full_server.http_url}/sine?seed=1&speed=max&count=3&format=ndjson")
        assert np.allclose(np.diff([json.loads(x)["t"] for x in r.text.splitlines()]), 1.0, atol=2e-6)
    assert cat["sine"]["demo"] == {"frequency": 0.5, "sample_rate": 20.0, "interval": 0.05}
    assert cat["periodic-spike"]["demo"] == {"spike_interval": 3.0, "interval": 0.05}
    for name, gen in cat.items():
        # every demo is valid, paces at 20 samples a second, and leaves the defaults alone
        g = wsgen.create(name, gen["demo"], seed=1)
        assert g.sample_interval == 0.05, name
        assert gen["params_schema"]["properties"]["interval"]["default"] == 1.0, name
    # lively: the anomaly kinds show an anomaly within seconds (200 samples = 10 s)
    for name in ANOMALY_KINDS:
        assert wsgen.create(name, cat[name]["demo"], seed=2).take(200).labels.sum() >= 2, name
    # a 2 s period: sine's demo crosses zero going up every 40 samples
    v = wsgen.create("sine", cat["sine"]["demo"], seed=1).take(81).values
    assert np.allclose(v[[0, 40, 80]], 0, atol=1e-9) and v[10] == pytest.approx(4.0)
    # wsgen sub starts from them, and says so; --defaults does not
    code, out, err = await run_cli("sub", "sine", "--seed", "1", "--speed", "max", "--count", "41", "--format", "ndjson",
                                   "--url", full_server.ws_url, "--amplitude", "2")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    ref = wsgen.create("sine", {**cat["sine"]["demo"], "amplitude": 2}, seed=1).take(41).values
    assert [r["value"] for r in rows] == ref.tolist()
    assert np.allclose(np.diff([r["t"] for r in rows]), 0.05, atol=2e-6)   # (stamps in whole us)
    assert "wsgen: demo values frequency=0.5 sample_rate=20 interval=0.05 (lively, not the defaults" in err
    code, out, err = await run_cli("sub", "random", "--seed", "1", "--speed", "max", "--count", "3", "--format",
                                   "ndjson", "--url", full_server.ws_url, "--defaults", "--data-interval", "2")
    assert code == 0 and "demo" not in err
    assert np.allclose(np.diff([json.loads(x)["t"] for x in out.splitlines()]), 2.0, atol=2e-6)


# -- items 8 and 10: the README, as a new user reads it ----------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def json_blocks(text: str) -> list[str]:
    return re.findall(r"```json\n(.*?)```", text, re.S)


async def test_readme_messages_are_one_line_each_and_the_composition_runs(full_server):
    text = README.read_text()
    lines = [line for block in json_blocks(text) for line in block.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)   # each line a whole message
    composition = next(json.loads(line) for line in lines if '"generator": {' in line)
    msg = {**composition, "speed": "max", "count": 200}
    data, last = await ws_stream(full_server.ws_url, msg)
    assert last == {"type": "ended", "id": "c", "seq": 200, "reason": "count"}
    firsts = sorted({e["first"] for m in data for e in m["events"] if e["kind"] == "level-shift"})
    assert firsts[0] == 60                          # 6 s in at 0.1 s a sample: a baseline first
    # the same composition from a file with wsgen sub --spec, as the README shows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "composition.json")
        path.write_text(json.dumps(composition["generator"], indent=2))
        code, out, err = await run_cli("sub", "--spec", str(path), "--seed", "1", "--format", "ndjson", "--speed",
                                       "max", "--count", "100", "--url", full_server.ws_url)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert any(e["kind"] == "level-shift" and e["first"] == 60 for r in rows for e in r["events"])
    # set-up notes: a virtual environment first, and what to do about a taken port
    assert "python3 -m venv .venv && . .venv/bin/activate" in text
    assert "--port" in text and "--http-port" in text and "already in use" in text


async def test_python_client_takes_count_and_duration_as_the_other_transports(full_server):
    from wsgen.client import Client
    ref = wsgen.create("sine", {"interval": 0.5}, seed=2).take(12).values
    async with Client(full_server.ws_url) as c:
        sub = await c.subscribe("sine", {"interval": 0.5}, seed=2, speed="max", count=7)
        blocks = [b async for b in sub]                 # ends by itself, after seq 6
        assert np.concatenate([b.values for b in blocks]).tolist() == ref[:7].tolist()
        sub = await c.subscribe("sine", {"interval": 0.5}, seed=2, speed="max", duration=2.2, start_seq=3)
        got = np.concatenate([b.values for b in [b async for b in sub]])
        assert got.tolist() == ref[3:8].tolist()          # offsets 0, 0.5 .. 2.0 s < 2.2 s: 5 samples
        assert sub.end_seq == 8
        sub = await c.subscribe("random", {"interval": 0.5}, seed=2, speed="max", count=3)
        with pytest.raises(EOFError):
            await sub.take(4)


async def test_sub_pointed_at_the_http_port_root_says_where_the_websocket_is(full_server):
    """The server's 404 body names the WebSocket paths; the one line shows it."""
    host_port = full_server.http_url.removeprefix("http://")
    code, _, err = await run_cli("sub", "sine", "--count", "1", "--url", host_port)
    line = one_line(err)
    assert code == 1 and "HTTP 404" in line, err
    assert f"ws://{host_port}/ws" in line and full_server.ws_url in line, line
