"""Named streams in one process: scenario files, the log's determinism, and
a real server (WebSocket and HTTP) driven by real clients.

Values are checked against the plain generators (``wsgen.create``,
``create_composite``): sample ``seq`` of a named stream is the generator's
sample ``seq - origin``, and a change applies from exactly its seq.
"""
from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect

from wsgen import create
from wsgen.server.config import Settings
from wsgen.engine.params import InvalidParams
from wsgen.streams.named import NamedError, NamedStreams, StreamDef, validate_def
from wsgen.streams.scenario import ScenarioError, parse_scenario
from wsgen.server.serve import start

SCENARIO = """
streams:
  - name: plant/boiler-3/temperature
    generator: sine
    params: {amplitude: 5, frequency: 0.5, offset: 80}
    interval: 0.02
    seed: 7
  - name: plant/boiler-3/pressure
    generator:
      base: {kind: normal, params: {mean: 3, std_dev: 0.05}}
      anomalies:
        - {kind: spike, placement: {mode: random, probability: 0.05}, height: 2}
    interval: 0.05
    history: 500
  - name: plant/line-1/errors
    generator: random-square
    params: {minimum_interval: 5, maximum_interval: 10, min_anomaly_duration: 2, max_anomaly_duration: 3}
    interval: 0.05
"""
TEMP = "plant/boiler-3/temperature"
ADMIN = "op-secret"


# -- scenario files ------------------------------------------------------------------

def test_scenario_loads_every_stream_with_its_definition():
    defs = parse_scenario(SCENARIO, "plant.yaml")
    assert [d.name for d in defs] == [TEMP, "plant/boiler-3/pressure", "plant/line-1/errors"]
    assert defs[0].params == {"amplitude": 5, "frequency": 0.5, "offset": 80} and defs[0].interval == 0.02
    assert defs[0].effective_seed == 7
    # no seed: one derived from the name, the same in every process
    assert defs[1].effective_seed == StreamDef(name="plant/boiler-3/pressure", generator="sine",
                                               interval=1).effective_seed
    assert parse_scenario("streams:\n - {name: a, generator: sine, interval: 1, epoch: 2026-01-01T00:00:00Z}")[0] \
        .epoch == 1767225600.0


@pytest.mark.parametrize("text, expected", [
    ("streams:\n - {name: a/b, generator: sine, params: {amplitude: fast}, interval: 1}",
     "plant.yaml: streams[0] (a/b): params.amplitude:"),
    ("streams:\n - {name: a, generator: sine, interval: 1}\n - {name: b, generator: sine, params: {interval: 2}, "
     "interval: 1}", "plant.yaml: streams[1] (b): params.interval: a named stream's interval is its top-level"),
    ("streams:\n - {name: a, generator: sine, interval: 0}", "plant.yaml: streams[0] (a): interval:"),
    # a missing field: what it takes, not the whole definition as the value
    ("streams:\n - {name: a, generator: sine}", "plant.yaml: streams[0] (a): interval: missing: give the seconds "
                                                "between samples, a number in (0, 86400]"),
    ("streams:\n - {name: a, interval: 1}", "plant.yaml: streams[0] (a): generator: missing: give a registry kind"),
    ("streams:\n - {name: a, generator: nope, interval: 1}", "plant.yaml: streams[0] (a): generator: unknown "
                                                              "generator 'nope'"),
    ("streams:\n - {name: a, generator: {base: {kind: sine}, faults: {nulls: {}}}, interval: 1}",
     "plant.yaml: streams[0] (a): generator.faults: faults are per delivery"),
    ("streams:\n - {name: a, generator: {base: {kind: sine, params: {frequency: x}}}, interval: 1}",
     "plant.yaml: streams[0] (a): generator.base.params.frequency:"),
    ("streams:\n - {name: a, generator: sine, interval: 1}\n - {name: a, generator: normal, interval: 1}",
     "plant.yaml: streams[1] (a): name 'a' is already used by streams[0]"),
    ("streams:\n - {name: 'bad name', generator: sine, interval: 1}", "plant.yaml: streams[0] (bad name): name:"),
    ("streams: [ {name: a", "plant.yaml: not valid YAML at line 1"),
    ("- a\n- b", "plant.yaml: expected a mapping with a list under 'streams'"),
])
def test_scenario_errors_name_file_stream_and_field(text, expected):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "plant.yaml")
    assert expected in str(info.value), str(info.value)


def test_a_definition_reports_its_params_problems_with_its_other_ones():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("streams:\n - {name: a, generator: sine, params: {amplitude: fast}, interval: 1, "
                       "history: -5}\n - {name: b, generator: normal, params: {std_dev: -1}, interval: 0.1, "
                       "epoch: x}", "plant.yaml")
    lines = str(info.value).splitlines()
    assert [line.split(":")[1:3] for line in lines] == [
        [" streams[0] (a)", " history"], [" streams[0] (a)", " params.amplitude"],
        [" streams[1] (b)", " epoch"], [" streams[1] (b)", " params.std_dev"]], lines
    # params are checked with the interval: not when the interval itself is wrong
    with pytest.raises(InvalidParams) as exc:
        validate_def({"name": "a", "generator": "sine", "params": {"amplitude": "fast"}, "interval": 0})
    assert [d["field"] for d in exc.value.details] == ["interval"]
    with pytest.raises(InvalidParams) as exc:
        validate_def({"name": "a", "generator": "sine", "params": {"interval": 2}, "interval": 1, "history": -1})
    assert [d["field"] for d in exc.value.details] == ["history", "params.interval"]


def test_a_missing_interval_is_named_with_what_it_takes():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("streams:\n - {name: a, generator: sine}", "plant.yaml")
    assert str(info.value) == ("plant.yaml: streams[0] (a): interval: missing: give the seconds between samples, "
                               "a number in (0, 86400]")
    with pytest.raises(InvalidParams) as exc:
        validate_def({"name": "plant/a", "generator": "sine"})
    assert exc.value.details == [{"field": "interval", "value": None, "message": "missing: give the seconds between "
                                  "samples, a number in (0, 86400]"}]


# -- the log: deterministic, whatever the process's history ---------------------------

def _entries(named: NamedStreams) -> list[dict]:
    return [named.define_entry(d) for d in parse_scenario(SCENARIO)]


def test_log_replay_gives_identical_values_late_replica_and_late_change():
    clock = [1_800_000_000.0]
    a = NamedStreams(clock=lambda: clock[0])
    log = _entries(a)
    for e in log:
        a.apply(e)
    s = a.streams[TEMP]
    o = s.origin
    assert o == math.ceil(1_800_000_000.0 / 0.02 - 1e-9)
    for k in range(0, 300, 7):          # process A: generated bit by bit, as wake-ups come
        s.advance(o + k)
    log.append(a.request_update(TEMP, {"frequency": 2.0}, seq=o + 310))
    a.apply(log[-1])
    log.append(a.request_inject(TEMP, {"kind": "level-shift", "height": -30}, duration_s=0.1, seq=o + 400))
    a.apply(log[-1])
    for k in range(300, 700, 13):
        s.advance(o + k)
    # the reference: the plain generator, updated at exactly the change's index
    ref = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.02}, seed=7)
    first = ref.take(310).values
    ref.update({"frequency": 2.0})
    after = ref.take(390).values
    got = s.read(o + 200, o + 700)
    assert got.seq == o + 200
    np.testing.assert_array_equal(got.values[:110], first[200:])
    np.testing.assert_array_equal(got.values[110:200], after[:90])
    shift = got.values[200:205] - after[90:95]
    np.testing.assert_allclose(shift, -30.0, atol=1e-9)                 # 0.1 s at 0.02 s = 5 samples
    np.testing.assert_array_equal(got.values[205:300], after[95:190])
    assert got.labels[200:205].all() and not got.labels[:200].any() and not got.labels[205:].any()
    assert [(e["kind"], e["first"], e["last"]) for e in got.events] == [("level-shift", o + 400, o + 404)]
    # process B reads the whole log at once, later: the same values (it seeks)
    b = NamedStreams(clock=lambda: clock[0])
    for e in log:
        b.apply(e)
    np.testing.assert_array_equal(b.streams[TEMP].read(o + 200, o + 700).values, got.values)
    # a change read after its seq was generated: rebuilt, later samples right again
    late = {"op": "update", "name": TEMP, "seq": o + 650, "params": {"amplitude": 1}}
    assert a.apply(late)["late"] is True and a.late_updates == 1
    b.apply(late)
    np.testing.assert_array_equal(s.read(o + 600, o + 700).values, b.streams[TEMP].read(o + 600, o + 700).values)
    # the other kinds: a composition with random anomalies, an event-placing registry kind
    for name in ("plant/boiler-3/pressure", "plant/line-1/errors"):
        sa, sb = a.streams[name], b.streams[name]
        for k in range(0, 1200, 37):
            sa.advance(sa.origin + k)
        np.testing.assert_array_equal(sa.read(sa.origin + 900, sa.origin + 1200).values,
                                      sb.read(sb.origin + 900, sb.origin + 1200).values)
        np.testing.assert_array_equal(sa.read(sa.origin + 900, sa.origin + 1200).labels,
                                      sb.read(sb.origin + 900, sb.origin + 1200).labels)
    ref = create("random-square", {"minimum_interval": 5, "maximum_interval": 10, "min_anomaly_duration": 2,
                                   "max_anomaly_duration": 3, "interval": 0.05},
                 seed=StreamDef(name="plant/line-1/errors", generator="sine", interval=1).effective_seed)
    sa = a.streams["plant/line-1/errors"]
    np.testing.assert_array_equal(sa.read(sa.origin + 900, sa.origin + 1200).values, ref.take(1200).values[900:])


def loaded(clock: list[float]) -> NamedStreams:
    """The scenario's streams, their log applied, on ``clock`` (a 0.25 s margin)."""
    named = NamedStreams(margin_s=0.25, clock=lambda: clock[0])
    for e in _entries(named):
        named.apply(e)
    return named


def test_effective_seq_is_one_margin_ahead_and_late_requests_are_refused():
    clock = [1_800_000_000.0]
    named = loaded(clock)
    s = named.streams[TEMP]
    entry = named.request_update(TEMP, {"amplitude": 2})
    assert entry["seq"] == s.seq_due_at(clock[0] + 0.25) == s.origin + 13      # 0.25 / 0.02 = 12.5 -> 13
    with pytest.raises(NamedError) as info:
        named.request_update(TEMP, {"amplitude": 2}, seq=s.origin + 12)
    assert info.value.code == "too_late" and "the earliest seq" in info.value.message
    # at most a day of stream time ahead (0.02 s samples: 4,320,000 of them): one set years ahead
    # would hold back every later change of the stream
    day = s.seq_due_at(clock[0] + 86_400)
    assert named.request_update(TEMP, {"amplitude": 2}, seq=day)["seq"] == day
    with pytest.raises(NamedError) as info:
        named.request_update(TEMP, {"amplitude": 2}, seq=day + 1)
    assert info.value.code == "invalid_params" and "too far ahead" in info.value.message
    assert info.value.details == [{"field": "seq", "value": day + 1, "message": f"must be <= {day}"}]
    assert named.request_update(TEMP, {"amplitude": 2}, seq=s.origin + 500)["seq"] == s.origin + 500
    named.apply(named.request_update(TEMP, {"amplitude": 2}, seq=s.origin + 500))
    # a later change never applies before an earlier one, in every process
    assert named.apply({"op": "update", "name": TEMP, "seq": s.origin + 20, "params": {"amplitude": 3}})["seq"] \
        == s.origin + 500
    for params, code, field in [({"interval": 1}, "invalid_params", "params.interval"),
                                ({"amplitude": "big"}, "invalid_params", "params.amplitude"),
                                ({}, "invalid_params", "params")]:
        with pytest.raises(NamedError) as info:
            named.request_update(TEMP, params)
        assert info.value.code == code and info.value.details[0]["field"] == field, info.value.details
    with pytest.raises(NamedError) as info:
        named.request_inject("plant/line-1/errors", {"kind": "spike"})
    assert info.value.code == "not_supported"
    with pytest.raises(NamedError) as info:
        named.request_update("nope", {"amplitude": 1})
    assert info.value.code == "unknown_stream" and TEMP in info.value.message


def base_params(params: dict) -> dict:
    """A waveform stream's own parameters (it runs as a composition over its kind)."""
    return params["base"]["params"]


def test_params_at_a_seq_are_those_its_sample_is_generated_with():
    named = loaded([1_800_000_000.0])
    s = named.streams[TEMP]
    o = s.origin
    first = base_params(s.latest)
    named.apply({"op": "update", "name": TEMP, "seq": o + 100, "params": {"amplitude": 2}})
    named.apply({"op": "update", "name": TEMP, "seq": o + 300, "params": {"offset": 10}})
    assert base_params(s.params_at(o)) == base_params(s.params_at(o + 99)) == first
    assert base_params(s.params_at(o + 100)) == base_params(s.params_at(o + 299)) == {**first, "amplitude": 2.0}
    assert s.params_at(o + 300) == s.latest
    assert base_params(s.latest) == {**first, "amplitude": 2.0, "offset": 10.0}
    assert [(c.seq, base_params(p)["offset"]) for c, p in s.changes_after(o + 100)] == [(o + 300, 10.0)]
    assert [c.seq for c, _ in s.changes_after(o + 99)] == [o + 100, o + 300]
    assert s.changes_after(o + 300) == []
    # the generator agrees: each sample is the plain generator's with the params at its seq
    s.advance(o + 400)
    got = s.read(o + 50, o + 400).values
    for seq in (o + 50, o + 99, o + 100, o + 299, o + 300, o + 399):
        ref = create("sine", base_params(s.params_at(seq)), seed=7)
        ref.seek(seq - o)
        assert ref.take(1).values[0] == got[seq - o - 50], seq


# -- a real server -------------------------------------------------------------------------

@pytest.fixture
async def plant(tmp_path):
    path = tmp_path / "plant.yaml"
    path.write_text(SCENARIO)
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2,
                                   scenario=str(path), admin_token=ADMIN, update_margin_s=0.5))
    try:
        yield running
    finally:
        await running.stop()


class Reader:
    """A WebSocket client that files data by seq and keeps the other messages."""

    def __init__(self, ws) -> None:
        self.ws, self.values, self.other = ws, {}, []

    async def pump(self, until, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out; other messages: {self.other[-3:]}"
            msg = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if msg["type"] == "data":
                for i, v in enumerate(msg["values"]):
                    self.values[msg["seq"] + i] = v
            else:
                self.other.append(msg)

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.other if m["type"] == kind]


async def test_two_subscribers_same_values_and_an_update_from_the_same_seq(plant):
    async with connect(plant.ws_url) as wa, connect(plant.ws_url + "/streams/" + TEMP) as wb:
        a, b = Reader(wa), Reader(wb)
        await wa.send(json.dumps({"type": "subscribe", "id": "a", "stream": TEMP}))
        await a.pump(lambda: a.of("subscribed"))
        await b.pump(lambda: b.of("subscribed"))
        sub = a.of("subscribed")[0]
        assert sub["stream"] == TEMP and sub["seq"] >= sub["origin"] and sub["interval"] == 0.02
        assert b.of("subscribed")[0]["id"] == TEMP
        origin = sub["origin"]
        await a.pump(lambda: len(a.values) >= 5)
        await wa.send(json.dumps({"type": "update", "id": "op", "stream": TEMP, "params": {"amplitude": 50},
                                  "admin_token": ADMIN}))
        await a.pump(lambda: any(m.get("id") == "op" for m in a.of("updated")))
        ack = next(m for m in a.of("updated") if m["id"] == "op")
        at = ack["seq"]
        await a.pump(lambda: max(a.values) >= at + 20)
        await b.pump(lambda: b.of("updated") and max(b.values, default=0) >= at + 20)
        # every subscriber is told, naming the same seq
        assert [m["seq"] for m in a.of("updated") if m["id"] == "a"] == [at]
        assert b.of("updated")[0]["seq"] == at and b.of("updated")[0]["changes"] == {"amplitude": 50}
        # the same (seq, value) pairs on both
        common = sorted(set(a.values) & set(b.values))
        assert len(common) >= 20
        assert all(a.values[s] == b.values[s] for s in common)
        # the reference generator, changed at exactly that seq
        ref = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.02}, seed=7)
        before = ref.take(at - origin).values
        ref.update({"amplitude": 50})
        after = ref.take(40).values
        expect = {origin + i: v for i, v in enumerate(before)}
        expect.update({at + i: v for i, v in enumerate(after)})
        assert all(a.values[s] == expect[s] for s in common if s in expect)
        assert a.values[at - 1] == before[-1] and a.values[at] == after[0] and a.values[at + 19] == after[19]
        # backfill: start_seq back into the history gives the same values
        start = min(a.values)
        await wa.send(json.dumps({"type": "subscribe", "id": "back", "stream": TEMP, "start_seq": start}))
        back = Reader(wa)
        got: dict[int, float] = {}

        async def collect():
            while len(got) < 30:
                msg = orjson.loads(await wa.recv())
                if msg["type"] == "data" and msg["id"] == "back":
                    for i, v in enumerate(msg["values"]):
                        got[msg["seq"] + i] = v
        await asyncio.wait_for(collect(), 20)
        assert min(got) == start
        assert all(got[s] == expect[s] for s in got if s in expect)
        del back


async def test_a_subscriber_hears_of_the_changes_its_samples_will_cross(plant):
    """A change set ahead (or one a history start crosses) was announced
    before the subscriber came: its ``subscribed`` carries the params of its
    first sample, then an ``updated`` for each later change."""
    async with connect(plant.ws_url) as ws:
        r = Reader(ws)
        await ws.send(json.dumps({"type": "subscribe", "id": "a", "stream": TEMP}))
        await r.pump(lambda: r.of("subscribed"))
        await ws.send(json.dumps({"type": "update", "id": "op1", "stream": TEMP, "params": {"offset": 0},
                                  "admin_token": ADMIN}))
        await r.pump(lambda: any(m.get("id") == "op1" for m in r.of("updated")))
        near = next(m for m in r.of("updated") if m["id"] == "op1")["seq"]
        await r.pump(lambda: r.values and max(r.values) > near + 2)
        at = max(r.values) + 1500                             # 30 s ahead
        await ws.send(json.dumps({"type": "update", "id": "op2", "stream": TEMP, "params": {"amplitude": 50},
                                  "seq": at, "admin_token": ADMIN}))
        await r.pump(lambda: any(m.get("id") == "op2" for m in r.of("updated")))

        async def subscribe(id: str, told: int, **extra) -> tuple[dict, list[dict]]:
            await ws.send(json.dumps({"type": "subscribe", "id": id, "stream": TEMP, **extra}))
            await r.pump(lambda: len([m for m in r.of("updated") if m["id"] == id]) >= told)
            sub = next(m for m in r.of("subscribed") if m["id"] == id)
            updates = [m for m in r.of("updated") if m["id"] == id]
            assert r.other.index(updates[0]) == r.other.index(sub) + 1       # right after its subscribed
            return sub, updates

        sub, told = await subscribe("b", 1)                   # live: the change ahead
        assert sub["seq"] < at
        assert (base_params(sub["params"])["offset"], base_params(sub["params"])["amplitude"]) == (0.0, 5.0)
        assert [(m["seq"], m["op"], base_params(m["params"])["amplitude"], m["changes"]) for m in told] == \
            [(at, "update", 50.0, {"amplitude": 50})]
        sub, told = await subscribe("c", 1, start_seq=near)   # from the first changed sample
        assert (sub["seq"], base_params(sub["params"])["offset"], base_params(sub["params"])["amplitude"]) == \
            (near, 0.0, 5.0)
        assert [m["seq"] for m in told] == [at]
        sub, told = await subscribe("d", 2, start_seq=near - 1)   # from the sample before it: both changes
        assert (base_params(sub["params"])["offset"], base_params(sub["params"])["amplitude"]) == (80.0, 5.0)
        assert [(m["seq"], m["changes"]) for m in told] == [(near, {"offset": 0}), (at, {"amplitude": 50})]


async def test_http_stream_list_and_operator_endpoints(plant):
    base = plant.http_url
    async with httpx.AsyncClient(timeout=20) as http:
        listing = (await http.get(base + "/streams")).json()
        assert listing["control_plane"] == {"kind": "embedded", "up": True}
        names = [s["name"] for s in listing["streams"]]
        assert names == sorted([TEMP, "plant/boiler-3/pressure", "plant/line-1/errors"])
        temp = next(s for s in listing["streams"] if s["name"] == TEMP)
        origin = temp["origin"]
        async with http.stream("GET", base + f"/streams/{TEMP}?format=ndjson&count=5") as resp:
            assert resp.status_code == 200
            rows = [json.loads(line) for line in (await resp.aread()).decode().splitlines()]
        ref = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.02}, seed=7)
        values = ref.take(rows[-1]["seq"] - origin + 1).values
        assert [r["seq"] for r in rows] == list(range(rows[0]["seq"], rows[0]["seq"] + 5))
        assert [r["value"] for r in rows] == values[rows[0]["seq"] - origin:].tolist()
        assert rows[0]["t"] == pytest.approx(rows[0]["seq"] * 0.02, abs=1e-6)
        # operator: no token, wrong token, then create / inject / delete
        body = {"generator": "uniform", "params": {"min_val": 1, "max_val": 2}, "interval": 0.05, "seed": 3}
        r = await http.put(base + "/streams/lab/u", json=body)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        r = await http.put(base + "/streams/lab/u", json=body, headers={"X-Wsgen-Admin-Token": "wrong"})
        assert r.status_code == 403
        r = await http.put(base + "/streams/lab/u", json=body, headers={"X-Wsgen-Admin-Token": ADMIN})
        assert r.status_code == 201 and r.json()["stream"]["seed"] == 3
        r = await http.put(base + "/streams/lab/u", json=body, headers={"X-Wsgen-Admin-Token": ADMIN})
        assert r.status_code == 409 and r.json()["error"] == "stream_exists"
        r = await http.put(base + "/streams/lab/v", json={**body, "interval": -1},
                           headers={"X-Wsgen-Admin-Token": ADMIN})
        assert r.status_code == 422 and r.json()["details"][0]["field"] == "interval"
        r = await http.post(base + "/streams/lab/u", json={"op": "inject", "anomaly": {"kind": "level-shift",
                            "height": 100}, "duration": 0.5}, headers={"X-Wsgen-Admin-Token": ADMIN})
        assert r.status_code == 200, r.text
        at = r.json()["seq"]
        async with http.stream("GET", base + f"/streams/lab/u?format=ndjson&start_seq={at - 2}&count=14") as resp:
            rows = [json.loads(line) for line in (await resp.aread()).decode().splitlines()]
        assert [r["seq"] for r in rows] == list(range(at - 2, at + 12))
        assert [r["label"] for r in rows] == [False] * 2 + [True] * 10 + [False] * 2
        assert all(1 <= r["value"] <= 2 for r in rows[:2] + rows[12:])
        assert all(101 <= r["value"] <= 102 for r in rows[2:12])
        async with http.stream("GET", base + "/streams/lab/u?format=sse&count=2",
                               headers={"Last-Event-ID": str(at + 3)}) as resp:
            events = [line for line in (await resp.aread()).decode().splitlines() if line.startswith("id: ")]
        assert events == [f"id: {at + 4}", f"id: {at + 5}"]
        r = await http.post(base + "/streams/lab/u", json={"op": "update", "params": {"max_val": 5}, "seq": 1},
                            headers={"X-Wsgen-Admin-Token": ADMIN})
        assert r.status_code == 409 and r.json()["error"] == "too_late"
        r = await http.delete(base + "/streams/lab/u", headers={"X-Wsgen-Admin-Token": ADMIN})
        assert r.status_code == 200
        r = await http.get(base + "/streams/lab/u")
        assert r.status_code == 404 and r.json()["error"] == "unknown_stream"
        r = await http.get(base + f"/streams/{TEMP}?start_seq=1")
        assert r.status_code == 422 and r.json()["details"][0]["field"] == "start_seq"
        metrics = (await http.get(base + "/metrics")).text
        assert 'wsgen_control_plane_up{kind="embedded"} 1.0' in metrics
        assert "wsgen_named_streams 3.0" in metrics


async def test_protocol_errors_and_deletion_notice(plant):
    async with connect(plant.ws_url) as ws:
        r = Reader(ws)

        async def reply(message: dict) -> dict:
            n = len(r.other)
            await ws.send(json.dumps(message))
            await r.pump(lambda: len(r.other) > n)
            return r.other[n]

        assert (await reply({"type": "subscribe", "id": "x", "stream": "nope"}))["code"] == "unknown_stream"
        m = await reply({"type": "subscribe", "id": "x", "stream": TEMP, "speed": 10})
        assert m["code"] == "invalid_message" and m["details"][0]["field"] == "speed"
        m = await reply({"type": "subscribe", "id": "x", "stream": TEMP, "generator": "sine"})
        assert m["code"] == "invalid_message" and m["details"][0]["field"] == "generator"
        m = await reply({"type": "subscribe", "id": "x", "stream": TEMP, "start_seq": 5})
        assert m["code"] == "invalid_params" and m["details"][0]["field"] == "start_seq"
        m = await reply({"type": "update", "id": "op", "stream": TEMP, "params": {"amplitude": 1}})
        assert m["code"] == "forbidden" and m["id"] == "op"
        m = await reply({"type": "update", "id": "op", "stream": TEMP, "params": {"amplitude": 1},
                         "admin_token": "no"})
        assert m["code"] == "forbidden"
        m = await reply({"type": "inject", "stream": "plant/line-1/errors", "anomaly": {"kind": "spike"},
                         "admin_token": ADMIN})
        assert m["code"] == "not_supported"
        m = await reply({"type": "inject", "stream": TEMP, "anomaly": {"kind": "spike", "placement": {}},
                         "admin_token": ADMIN})
        assert m["code"] == "invalid_params" and m["details"][0]["field"] == "anomaly.placement"
        m = await reply({"type": "subscribe", "id": "p", "stream": "plant/boiler-3/pressure"})
        assert m["type"] == "subscribed" and m["generator"] == "composite"
        await r.pump(lambda: len(r.values) >= 3)
        async with httpx.AsyncClient() as http:
            d = await http.delete(plant.http_url + "/streams/plant/boiler-3/pressure",
                                  headers={"X-Wsgen-Admin-Token": ADMIN})
            assert d.status_code == 200
        await r.pump(lambda: r.of("unsubscribed"))
        assert r.of("unsubscribed")[0]["id"] == "p" and r.of("unsubscribed")[0]["reason"] == "stream deleted"
        # the connection goes on
        m = await reply({"type": "subscribe", "id": "p", "stream": TEMP})
        assert m["type"] == "subscribed"
    # the HTTP port's /ws/streams/<name> (one-port mode) subscribes by URL too
    url = plant.http_url.replace("http://", "ws://") + "/ws/streams/" + TEMP + "?start_seq=0"
    async with connect(url) as ws:
        r = Reader(ws)
        await r.pump(lambda: r.of("subscribed") or r.of("error"))
        assert r.of("subscribed") and r.of("subscribed")[0]["stream"] == TEMP, r.other
        await r.pump(lambda: len(r.values) >= 2)
    async with connect(plant.ws_url + "/streams/no/such?start_seq=0") as ws:
        r = Reader(ws)
        await r.pump(lambda: r.of("error"))
        assert r.of("error")[0]["code"] == "unknown_stream"


def test_bench_named_measures_both_ways(tmp_path):
    from wsgen.cli import main
    out = tmp_path / "named.json"
    assert main(["bench", "named", "--subscribers", "20", "--wakeups", "20", "--repeat", "1",
                 "--signal", "composition", "--json", str(out), "--sockets", "1", "--connections", "2"]) == 0
    result = json.loads(out.read_text())
    assert result["subscribers"] == 20 and len(result["runs"]) == 1
    assert result["median_private_us"] > 0 and result["median_named_us"] > 0
    assert [r["mode"] for r in result["sockets"]] == ["private", "named"]
    assert all(r["subscriptions"] == 20 and r["messages"] > 0 and r["server_cpu_us_per_msg"] >= 0
               for r in result["sockets"])


async def test_python_client_and_wsgen_sub_on_a_named_stream(plant):
    import re
    import sys

    from wsgen.client import Client, WsgenError

    ref = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.02}, seed=7)
    async with Client(plant.ws_url) as c:
        sub = await c.subscribe_stream(TEMP)
        assert sub.stream == TEMP and sub.generator == "sine" and sub.interval == 0.02
        block = await sub.take(10)
        origin = plant.settings.named.streams[TEMP].origin
        values = ref.take(block.seqs[-1] - origin + 1).values
        assert block.values.tolist() == values[block.seqs[0] - origin:].tolist()
        with pytest.raises(WsgenError) as info:
            await c.update_stream(TEMP, {"amplitude": 9}, admin_token="wrong")
        assert info.value.code == "forbidden"
        ack = await c.update_stream(TEMP, {"amplitude": 9}, admin_token=ADMIN)
        at = ack["seq"]
        got: dict[int, float] = {}
        async for b in sub:
            got.update(zip(b.seqs.tolist(), b.values.tolist()))
            if max(got) >= at + 3:
                break
        check = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.02}, seed=7)
        before = check.take(at - origin).values
        check.update({"amplitude": 9})
        after = check.take(4).values
        assert got[at - 1] == before[-1] and [got[at + i] for i in range(4)] == after.tolist()
        inj = await c.inject_stream(TEMP, {"kind": "spike", "height": 3}, admin_token=ADMIN)
        assert inj["op"] == "inject" and inj["seq"] > at
    async def wsgen(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsgen.cli", *args,
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin or b""), 60)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await wsgen("sub", "--stream", TEMP, "--url", plant.ws_url, "--count", "5",
                                 "--format", "ndjson", "-q")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == list(range(rows[0]["seq"], rows[0]["seq"] + 5))
    assert all(r["seq"] > at + 3 for r in rows) and "label" in rows[0]
    # without -q it says where it joined: the live seq, the first one printed
    code, out, err = await wsgen("sub", "--stream", TEMP, "--url", plant.ws_url, "--count", "3", "--format", "ndjson")
    assert code == 0, err
    first = json.loads(out.splitlines()[0])["seq"]
    assert re.search(rf"subscribed \S+ seed=\d+ from seq {first} ", err), err
    # an operator's lines in wsgen sub: an update, an injection, each naming its seq
    code, out, err = await wsgen("sub", "--stream", TEMP, "--url", plant.ws_url, "--count", "100", "-q",
                                 "--admin-token", ADMIN, stdin=b"amplitude=40\ninject level-shift height=7 duration=0.1\n")
    assert code == 0, err
    applied = [int(x) for x in re.findall(r"applies from seq (\d+)", err)]
    assert len(applied) == 2, err
    changes = plant.settings.named.streams[TEMP].changes
    assert [(c.op, c.seq) for c in changes[-2:]] == [("update", applied[0]), ("inject", applied[1])]
    assert changes[-2].payload == {"amplitude": 40}
    assert changes[-1].payload == {"anomaly": {"kind": "level-shift", "height": 7}, "length": 5}
    code, out, err = await wsgen("sub", "--stream", TEMP, "--url", plant.ws_url, "--count", "50", "-q",
                                 stdin=b"amplitude=41\n")
    assert code == 0 and "needs the operator token" in err
    code, out, err = await wsgen("sub", "sine", "--stream", TEMP, "--url", plant.ws_url)
    assert code == 2 and "--stream subscribes to a named stream" in err


def test_workers_without_a_shared_log_are_refused(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "plant.yaml"
    path.write_text(SCENARIO)
    out = subprocess.run([sys.executable, "-m", "wsgen.cli", "serve", "--workers", "2", "--port", "0",
                          "--http-port", "0", "--scenario", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "named streams (--scenario, --admin-token) with --workers need --redis-url" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("streams:\n - {name: a, generator: sine, interval: -1}\n")
    out = subprocess.run([sys.executable, "-m", "wsgen.cli", "serve", "--port", "0", "--http-port", "0",
                          "--scenario", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f"{bad}: streams[0] (a): interval:" in out.stderr, out.stderr


def test_a_change_or_subscription_missing_its_target_is_refused_naming_the_field():
    from wsgen.protocol.session import Session
    session = Session()
    [err] = session.handle('{"type": "update", "stream": "a/b", "params": {"amplitude": 2}}')
    assert err["code"] == "invalid_message" and [d["field"] for d in err["details"]] == ["id"]
    [err] = session.handle('{"type": "subscribe", "id": "m"}')
    assert err["code"] == "invalid_message" and err["message"].startswith("invalid message: generator: ")
    [err] = session.handle('{"type": "inject", "anomaly": {"kind": "spike"}}')
    assert err["code"] == "invalid_message" and err["details"][0]["field"] == "stream"


def test_every_named_error_code_is_documented():
    from wsgen.protocol import messages as P
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    for code in P.NAMED_ERROR_CODES:
        assert f"| `{code}` |" in doc, code
