"""The Python client's side of live scoring: subscribe(score=...), sub.detect(), await sub.score()."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect

import wsgen
from wsgen.client import Client, WsgenError

pytestmark = pytest.mark.timeout(60)


async def test_detect_and_score_with_the_client(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("random-square", {"minimum_interval": 30, "maximum_interval": 60,
                                                  "min_anomaly_duration": 4, "max_anomaly_duration": 8},
                                seed=5, speed="max", score={"window": 30, "probation": 0})
        assert sub.score_options == {"window": 30, "probation": 0}
        # another connection follows the alarms with the watch token the client kept
        assert isinstance(sub.watch_token, str) and len(sub.watch_token) >= 20
        async with connect(server.ws_url) as other:
            await other.send(json.dumps({"type": "watch", "id": "w", "token": sub.watch_token}))
            watching = json.loads(await asyncio.wait_for(other.recv(), 10))
        assert watching["type"] == "watching" and watching["of"]["seed"] == 5
        block = await sub.take(600)
        truth = wsgen.scoring.figures.events_from_labels(block.labels)
        assert len(truth) >= 8
        # an alarm 2 samples into every other event, fire and forget; one with a score under the threshold
        alarms = [int(a) + 2 for a, _ in truth[::2]]
        for seq in alarms:
            sub.detect(seq)
        sub.detect(int(truth[1][0]), score=0.1)
        added = await sub.detect(seqs=[10, 11], scores=[0.9, 0.2])
        assert added == 1
        figures = await sub.score()            # after every detection above
        assert figures["type"] == "score" and sub.last_score is figures
        last = figures["last"]
        assert last >= 599
        # samples sent but not yet read by the test count too: take them, then score on all of them
        rest = await sub.take(last + 1 - 600) if last >= 600 else None
        labels = block.labels if rest is None else np.concatenate([block.labels, rest.labels])
        want = wsgen.score(labels, alarms + [10], window=30, probation=0, interval=sub.interval)
        for key in ("events", "points", "delay", "nab", "alarms"):
            assert figures[key] == want[key], key
        assert figures["events"]["detected"] == len(alarms) and figures["events"]["false_positives"] == 1
        part = await sub.score(last=299)            # the samples up to 299 only
        assert part["last"] == 299 and part == wsgen.score(labels[:300], [a for a in alarms + [10] if a <= 299],
                                                           window=30, probation=0, interval=sub.interval) | {
            k: part[k] for k in ("type", "id", "ended", "latency", "options")}
        # errors: awaited ones raise, unawaited ones are kept
        with pytest.raises(WsgenError) as err:
            await sub.detect(10**9)
        assert err.value.code == "out_of_range"
        task = sub.detect(10**9 + 1)
        await asyncio.wait([task])
        assert sub.detect_errors and sub.detect_errors[-1].code == "out_of_range"
        # unsubscribe: the final figures
        await sub.unsubscribe()
        assert sub.last_score["alarms"] == len(alarms) + 1 and sub.last_score["last"] >= last


async def test_score_on_an_unscored_subscription_is_refused(server):
    async with Client(server.ws_url) as c:
        sub = await c.subscribe("random", seed=1, speed="max")
        await sub.take(10)
        with pytest.raises(WsgenError) as err:
            await sub.score()
        assert err.value.code == "invalid_message" and "is not scored" in str(err.value)
        with pytest.raises(WsgenError):
            await c.subscribe("sine", seed=1, score=True)


async def test_sync_client_detect_and_score(server):
    from wsgen.client import SyncClient

    def work():
        with SyncClient(server.ws_url) as c:
            sub = c.subscribe("periodic-spike", {"spike_interval": 10, "interval": 0.1}, seed=2, speed="max",
                              score={"window": 10, "probation": 0})
            block = sub.take(300)
            added = sub.detect(seqs=[101, 150])
            again = sub.detect(101)
            figures = sub.score(last=299)
            sub.unsubscribe()
            return block, added, again, figures, sub.last_score

    block, added, again, figures, last = await asyncio.to_thread(work)
    assert (added, again) == (2, 0)
    want = wsgen.score(block.labels, [101, 150], window=10, probation=0, interval=0.1)
    assert {k: figures[k] for k in want} == want
    assert last["alarms"] == 2 and last["events"]["detected"] == 1
