"""No request and no stream holds the event loop (issue 13, part 1).

The requests come from :mod:`wsgen.bench.worstcase`, which walks the parameter
space at its extremes (every generator kind, every injector and fault in
every placement with the longest and shortest events, ``allow_overlap`` on
and off, 16 injectors, at the largest ``start_seq``) rather than naming one
bad request. The server's own event loop is watched by
:class:`wsgen.server.loopwatch.LoopWatch`, and the assertions are on the CPU time
of each of its steps (``time.thread_time`` of the loop's thread), which the
machine's load does not stretch: no step may cost 20 ms.

The composition cases are many (800): each run tries a seeded random sample
of them; ``WSGEN_STALL_SEED=<n>`` picks another sample, and
``scripts/stall.py`` tries them all.
"""
from __future__ import annotations

import asyncio
import os
import random
import time

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect

from servers import ThreadedServer
from wsgen.server.budget import COMPOSITION_MAX_RENDER, FIRST_RENDER, RENDER_BUDGET_S, RenderBudget
from wsgen.engine import InvalidParams, create
from wsgen.engine import composite as composite_module
from wsgen.engine.placement import MAX_ANOMALIES_PER_WINDOW
from wsgen.engine.composite import MAX_START_SEQ, Composite
from wsgen.server.loopwatch import LoopWatch
from wsgen.bench.worstcase import Paced, composition_cases, paced_stream, registry_cases, subscribe_case

#: Most CPU seconds one step of the server's event loop may take.
MAX_STEP_S = 0.020
SEED = int(os.environ.get("WSGEN_STALL_SEED", "13"))


# -- the mechanism, piece by piece ---------------------------------------------

def test_render_budget_sizes_renders_by_their_measured_cost():
    b = RenderBudget(COMPOSITION_MAX_RENDER, FIRST_RENDER)
    assert b.size(10_000) == FIRST_RENDER == 16          # cost unknown: a small first render
    b.spent(16, 16 * 1e-6)                                # 1 us a sample: the cap may double
    assert b.size(10_000) == 32
    for _ in range(10):
        b.spent(b.size(10_000), b.size(10_000) * 1e-6)
    assert b.size(10_000) == COMPOSITION_MAX_RENDER       # never past the composition's limit
    b.spent(256, 256 * 100e-6)                            # the samples got dearer: 100 us each
    assert b.size(10_000) == int(RENDER_BUDGET_S / (0.5 * (1e-6 + 100e-6)))   # halfway: 59
    b.spent(59, 59 * 100e-6)                              # halfway again: 75.25 us, 39 samples
    assert b.size(10_000) == int(RENDER_BUDGET_S / (0.5 * (0.5 * (1e-6 + 100e-6) + 100e-6))) == 39
    assert b.size(10_000, share=5) == b.size(10_000) // 5     # five unpaced streams split it
    b.spent(1, 1.0)                                       # one sample costing a second: one at a time
    assert b.size(10_000) == 1


def test_a_trend_change_is_resumed_without_replaying_its_samples():
    # a trend change's state (its start time) is the clock's: start_seq needs no render of the
    # 2 million samples before it, and gives the values, labels and events of the whole stream
    spec = {"interval": 0.25, "base": {"kind": "sine", "params": {"sample_rate": 4}},
            "anomalies": [{"kind": "trend-change", "slope": 3.5, "allow_overlap": True,
                           "placement": {"mode": "random", "probability": 0.001},
                           "min_length": 10, "max_length": 10**9},
                          {"kind": "flatline", "placement": {"mode": "periodic", "every": 40},
                           "min_length": 3, "max_length": 9}]}
    whole = Composite(spec, seed=5).take(30_000)
    for n in (1, 977, 12_345, 29_000):
        part = Composite(spec, seed=5, start_seq=n).take(30_000 - n)
        assert np.array_equal(part.values, whole.values[n:])
        assert np.array_equal(part.labels, whole.labels[n:])
        assert [e for e in part.events if e["last"] >= n] == [e for e in whole.events if e["last"] >= n]
    far = Composite(spec, seed=5, start_seq=MAX_START_SEQ)   # the trend's events reach back 2e6 samples
    assert far.seq == MAX_START_SEQ and far.take(4).labels.all()


@pytest.mark.parametrize("kind", ["spike", "level-shift", "noisy-cluster", "variance-change", "trend-change",
                                  "frequency-change", "flatline", "dropout"])
def test_a_seek_in_steps_equals_the_takes_it_skips(kind):
    # the seek now goes in steps sized by their cost (checking its CPU budget between them):
    # what follows it is still what the takes would have given, for every injector
    extra = {"frequency-change": {"factor": 3}, "trend-change": {"slope": -2}}.get(kind, {})
    lengths = {} if kind == "spike" else {"min_length": 2, "max_length": 700}
    spec = {"interval": 0.1, "base": {"kind": "triangle", "params": {"sample_rate": 10}}, "noise": {"std_dev": 0.5},
            "anomalies": [{"kind": kind, "placement": {"mode": "gaps", "min_gap": 1, "max_gap": 300},
                           **lengths, **extra},
                          {"kind": kind, "allow_overlap": True, "placement": {"mode": "random", "probability": 0.01},
                           **lengths, **extra}],
            "faults": {"out_of_order": {"max_delay": 5, "placement": {"probability": 0.05}},
                       "gaps": {"placement": {"mode": "periodic", "every": 7}, "max_length": 3}}}
    whole = Composite(spec, seed=2).take(20_000 + 10)
    for n in (300, 4_321, 19_999):
        part = Composite(spec, seed=2, start_seq=n).take(20_000 + 10 - n)
        # the samples of seq >= n, in the order delivered (those held back from before n are not resumed)
        later = whole.seqs >= n
        assert part.seq == n and len(part.values) > 0
        assert np.array_equal(part.seqs, whole.seqs[later])
        assert np.array_equal(part.values, whole.values[later], equal_nan=True)
        assert np.array_equal(part.labels, whole.labels[later])
        assert np.array_equal(part.offsets, whole.offsets[later])


def test_a_seek_past_its_cpu_budget_is_refused_naming_start_seq(monkeypatch):
    monkeypatch.setattr(composite_module, "SEEK_BUDGET_S", 0.0)
    spec = {"interval": 0.01, "anomalies": [{"kind": "level-shift", "placement": {"mode": "gaps", "min_gap": 1,
                                                                                 "max_gap": 3}}]}
    with pytest.raises(InvalidParams) as err:
        Composite(spec, seed=1, start_seq=50_000)
    (detail,) = err.value.details
    assert detail["field"] == "start_seq" and detail["value"] == 50_000
    assert "resume at a smaller start_seq" in detail["message"] and "limit is 0 s" in detail["message"]
    Composite(spec, seed=1, start_seq=0).take(10)      # from the start: nothing to replay


def test_count_windows_hold_at_most_ten_thousand_events():
    # each window's placements are drawn in the take that reaches it: 1e6 of them took 40 ms
    spec = {"interval": 1e-3, "anomalies": [{"kind": "spike", "placement": {
        "mode": "count", "count": MAX_ANOMALIES_PER_WINDOW + 1, "duration": 1000}}]}
    with pytest.raises(InvalidParams) as err:
        Composite(spec)
    assert err.value.details[0]["field"] == "anomalies.0.placement.count"
    assert "10000" in err.value.details[0]["message"]
    with pytest.raises(InvalidParams) as err:
        create("count-per-duration", {"num_anomalies": MAX_ANOMALIES_PER_WINDOW + 1, "duration": 10**6})
    assert err.value.details[0]["field"] == "num_anomalies"
    spec["anomalies"][0]["placement"]["count"] = MAX_ANOMALIES_PER_WINDOW
    assert Composite(spec, seed=3).take(1_000_000).labels.sum() == MAX_ANOMALIES_PER_WINDOW


# -- against a real server ---------------------------------------------------------

@pytest.fixture(scope="module")
def watched():
    """A server in a thread whose event loop is watched (its seeks may take
    0.25 s of CPU in the worker, not 1 s: the test is about the loop)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(composite_module, "SEEK_BUDGET_S", 0.25)
        with ThreadedServer() as srv:
            with LoopWatch(srv.thread.ident, keep=True) as watch:
                yield srv, watch


async def beside_a_paced_stream(srv, watch, requests):
    """Run ``await requests()`` while a 100 Hz stream runs on its own
    connection, the loop watched from when the stream flows; returns
    (its result, the stream's arrivals, perf_counter before and after it)
    once the stream has gone on after it."""
    paced, stop = Paced(), asyncio.Event()
    stream = asyncio.create_task(paced_stream(srv.url, paced, 0.01, stop))
    while not paced.arrivals:
        await asyncio.sleep(0.01)
    watch.reset()
    started = time.perf_counter()
    result = await requests()
    ended = time.perf_counter()
    count = len(paced.arrivals)
    while len(paced.arrivals) == count:     # the paced stream goes on after them all
        await asyncio.sleep(0.01)
    stop.set()
    stream.cancel()
    await asyncio.gather(stream, return_exceptions=True)
    return result, paced, started, ended


def _cases(sample: int):
    rng = random.Random(SEED)
    chosen = list(registry_cases(combos=2, rng=rng))
    chosen += list(composition_cases(sample=sample, rng=rng))[:sample]
    chosen += [c for c in composition_cases(sample=0) if c.name == "issue-13"]
    return chosen


def test_no_extreme_request_holds_the_loop_while_a_paced_stream_runs(watched):
    srv, watch = watched
    cases = _cases(sample=10)

    async def requests():
        return {case.name: await subscribe_case(srv.url, case, messages=2, seconds=5.0) for case in cases}

    replies, paced, started, ended = asyncio.run(beside_a_paced_stream(srv, watch, requests))
    outcomes = {name: r.get("code", r["type"]) for name, r in replies.items()}
    assert set(outcomes.values()) <= {"subscribed", "invalid_params"}, outcomes
    # the refusals are the seeks past their CPU budget (or a kind's own limit), naming start_seq
    for name, r in replies.items():
        if r["type"] == "error":
            assert r["details"][0]["field"] == "start_seq", (name, r)
        else:
            assert r["data"] >= 1, (name, "a subscribed stream sends data")
    assert sum(r["type"] == "subscribed" for r in replies.values()) >= len(replies) // 2
    # (garbage collections apart: they last in proportion to the whole process's objects,
    # here pytest's, whatever the step does; LoopWatch counts them on their own)
    assert watch.worst_cpu.seconds < MAX_STEP_S, (watch.worst_cpu, watch.steps, watch.worst_gc)
    # the paced stream never stopped (seconds of stall before; a loose bound: the machine may be loaded)
    assert paced.largest_gap(started, ended) < 1.0
    seqs = np.array(paced.seqs)
    assert np.all(np.diff(seqs) > 0)


def test_unpaced_http_readers_share_the_loop_in_small_steps(watched):
    # five clients read speed=max ndjson as fast as they can: each chunk is sized to its share of
    # RENDER_BUDGET_S, so a paced stream waits for one round of them (about 3 ms), not 25-35 ms
    srv, watch = watched

    async def run():
        paced, stop = Paced(), asyncio.Event()
        stream = asyncio.create_task(paced_stream(srv.url, paced, 0.01, stop))
        while not paced.arrivals:
            await asyncio.sleep(0.01)
        host, port = srv.http_url.split("//")[1].split(":")
        got = [0] * 5

        async def reader(i):
            r, w = await asyncio.open_connection(host, int(port))
            w.write(b"GET /sine?speed=max&format=ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            while not stop.is_set():
                data = await r.read(1 << 16)
                if not data:
                    break
                got[i] += data.count(b"\n")
            w.close()

        readers = [asyncio.create_task(reader(i)) for i in range(5)]
        while min(got) < 200_000:                 # each has read a fair amount
            await asyncio.sleep(0.05)
        watch.reset()
        count = len(paced.arrivals)
        while len(paced.arrivals) < count + 50:   # half a second of the paced stream meanwhile
            await asyncio.sleep(0.05)
        worst, over = watch.worst_cpu, watch.share_over(2 * RENDER_BUDGET_S / 5, "TaskHandle._run_coro")
        costs = sorted(c for c, _ in watch.cpu)
        stop.set()
        for t in [stream, *readers]:
            t.cancel()
        await asyncio.gather(stream, *readers, return_exceptions=True)
        return worst, over, got, costs

    worst, over, got, costs = asyncio.run(run())
    assert min(got) >= 200_000
    # a chunk of one reader costs its share of the budget (0.6 ms) plus the write; the
    # 1638-sample chunks of before (8192 / 5) cost about 3 ms each
    assert over < 0.05, (over, worst)
    # about 1,000 steps of 1-2 ms each; one of them may be stretched by the host
    # (a virtual machine's stolen time counts as the thread's CPU: 24 ms was seen
    # once in five runs), while a chunk sized wrongly costs too much in every round
    assert len(costs) > 100 and costs[-2] < MAX_STEP_S, (costs[-5:], worst)
    assert worst.seconds < 3 * MAX_STEP_S, worst


def test_many_costly_subscriptions_on_one_connection_take_turns_with_the_others(watched):
    # 40 subscriptions of 16 spike injectors with an event on every sample, on one connection:
    # each render is sized to the budget, and the pump lets the loop run between them once
    # its wake-up has had its share (one wake-up rendering all 40 held the loop for 40 renders)
    srv, watch = watched
    spike = {"kind": "spike", "allow_overlap": True, "placement": {"mode": "random", "probability": 1.0}}
    spec = {"interval": 1e-6, "anomalies": [spike] * 16}

    async def run():
        paced, stop = Paced(), asyncio.Event()
        stream = asyncio.create_task(paced_stream(srv.url, paced, 0.01, stop))
        async with connect(srv.url, max_size=None) as ws:
            for i in range(40):
                await ws.send(orjson.dumps({"type": "subscribe", "id": f"c{i}", "generator": spec,
                                            "seed": i}).decode())
            subscribed, data = set(), 0
            while len(subscribed) < 40 or data < 400:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg["type"] == "subscribed":
                    subscribed.add(msg["id"])
                    if len(subscribed) == 40:
                        watch.reset()
                elif msg["type"] == "data" and len(subscribed) == 40:
                    data += 1
                    assert msg["labels"] == [True] * len(msg["values"])
            worst, costs = watch.worst_cpu, sorted(c for c, _ in watch.cpu)
            for i in range(40):
                await ws.send(orjson.dumps({"type": "unsubscribe", "id": f"c{i}"}).decode())
            left = 40
            while left:
                if orjson.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "unsubscribed":
                    left -= 1
        stop.set()
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
        return worst, costs

    worst, costs = asyncio.run(run())
    # steps of 4-9 ms at load 4; one may be stretched by the host (36 ms was seen once in a
    # CI run: a virtual machine's stolen time counts as the thread's CPU), while a wake-up
    # rendering all 40 held the loop for 40 renders at every round (37 steps of 43-45 ms)
    assert len(costs) > 10 and costs[-2] < MAX_STEP_S, (costs[-5:], worst)
    assert worst.seconds < 3 * MAX_STEP_S, worst


def test_pipelined_catalogue_requests_take_turns_with_a_paced_stream(watched):
    # one connection pipelines 100 ``list`` messages and 20 HTTP clients ask for
    # /generators and /composite/presets at once: each used to rebuild the
    # catalogue on the loop (30-60 ms), one after the other (a 6 s stall of
    # every stream for 100 lists); built once now, and a connection's
    # messages take turns with the others
    srv, watch = watched
    import httpx

    async def requests():
        async with connect(srv.url, max_size=None, max_queue=None) as ws:
            for _ in range(100):
                await ws.send('{"type": "list"}')
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=60) as http:
                answers = await asyncio.gather(*[http.get(path) for path in
                                                 ["/generators", "/composite/presets"] * 10])
            return [orjson.loads(await asyncio.wait_for(ws.recv(), 60)) for _ in range(100)], answers

    (replies, answers), paced, started, ended = asyncio.run(beside_a_paced_stream(srv, watch, requests))
    assert [r["type"] for r in replies] == ["generators"] * 100
    assert all(r["generators"] == replies[0]["generators"] for r in replies)
    assert {a.status_code for a in answers} == {200}
    assert answers[0].json() == replies[0]["generators"]
    assert watch.worst_cpu.seconds < MAX_STEP_S, (watch.worst_cpu, watch.steps, watch.worst_gc)
    assert paced.largest_gap(started, ended) < 1.0
