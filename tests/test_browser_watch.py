"""The page watches another client's detector (issue 16), in headless Chromium
(fixtures and helpers of tests/test_browser.py), against a real server: a
Python client subscribes with ``score``, raises alarms at known seqs, and the
page opened with its watch token draws exactly those alarms on the chart
(read back from ``window.wsgen.watch``, not from pixels) and shows the
figures the owner's own ``score`` reply gives. A screenshot goes to
``artifacts/browser_watch.png``."""
from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from test_browser import ARTIFACTS, browser, click, js, wait_for  # noqa: F401  (browser: a fixture)
from servers import ThreadedServer

pytestmark = pytest.mark.timeout(120)

# periodic-spike, a spike every second (20 samples): events at seqs 0, 20, 40, 60, 80; with window 5 each
# window is [event - 2, event + 2]: 10 and 63 are false positives, 21 (1 sample late) and 40 detect events
ALARMS = [10, 21, 40, 63]


def reply(ws, kind: str, values: dict | None = None) -> dict:
    """Read until a message of type ``kind`` (the owner's data go into ``values``: seq -> value)."""
    while True:
        msg = json.loads(ws.recv(timeout=20))
        if msg["type"] == "data" and values is not None:
            for k, v in enumerate(msg["values"]):
                values[msg["seq"] + k] = v
        if msg["type"] == kind:
            return msg
        assert msg["type"] != "error", msg


def figures(score: dict) -> dict:
    return {k: v for k, v in score.items() if k not in ("type", "id")}


def test_page_watches_a_detector_alarms_and_figures(browser, tmp_path):   # noqa: F811
    with ThreadedServer() as srv, connect(srv.url) as owner:
        owner.send(json.dumps({"type": "subscribe", "id": "d", "generator": "periodic-spike", "seed": 3,
                               "params": {"spike_interval": 1, "interval": 0.05}, "speed": 4,
                               "score": {"window": 5, "probation": 0}}))
        token = reply(owner, "subscribed")["score"]["watch"]
        values: dict[int, float] = {}
        while max(values, default=-1) < 80:
            reply(owner, "data", values)
        owner.send(json.dumps({"type": "pause", "id": "d"}))
        last = reply(owner, "paused", values)["seq"] - 1
        owner.send(json.dumps({"type": "detect", "id": "d", "seqs": ALARMS}))
        assert reply(owner, "detected")["alarms"] == 4
        owner.send(json.dumps({"type": "score", "id": "d"}))
        theirs = reply(owner, "score")
        assert theirs["last"] == last and theirs["alarms"] == 4
        assert (theirs["events"]["detected"], theirs["events"]["false_positives"]) == (2, 2)
        assert theirs["delay"]["samples"] == {"median": 0.5, "max": 1}

        browser.get(f"{srv.http_url}/?watch={token}&id=spiky")
        wait_for(browser, "window.wsgen && window.wsgen.watch.status === 'watching'", what="the page watches")
        assert js(browser, "return window.wsgen.watch.alarms()") == ALARMS
        sid = js(browser, "return window.wsgen.watch.streamId")
        assert sid == "spiky"
        # the page's own subscription to the same definition: the owner's values at the same seqs
        wait_for(browser, "window.wsgen.stream(arguments[0]).lastSeq >= 70", sid, timeout=30)
        got = [g for g in js(browser, "return window.wsgen.lastValues(arguments[0])", sid) if g["seq"] in values]
        assert got[0]["seq"] == 0 and len(got) >= 70        # (the page's stream goes on past the owner's pause)
        assert [g["value"] for g in got] == [values[g["seq"]] for g in got]
        assert js(browser, "return window.wsgen.stream(arguments[0]).seed", sid) == "3"
        # it caught up with the owner at 10x, then went on at speed 1 (one update, no marker on the chart)
        wait_for(browser, "window.wsgen.watch.catchingUp === false")
        assert js(browser, "return window.wsgen.sent().update") == 1
        assert js(browser, "return window.wsgen.stream(arguments[0]).updatedSeq", sid) is None
        # exactly the owner's alarms are marked on the chart, at their seqs
        assert wait_for(browser, "window.wsgen.watch.alarmsDrawn().length === 4 && window.wsgen.watch.alarmsDrawn()") \
            == ALARMS
        # the figures: the owner's own score reply, and shown on the page
        mine = wait_for(browser, "window.wsgen.watch.figures()")
        assert figures(mine) == figures(theirs)
        shown = js(browser, "return window.wsgen.watch.shown()")
        for name, value in (("precision", theirs["events"]["precision"]), ("recall", theirs["events"]["recall"]),
                            ("F1", theirs["events"]["f1"]), ("NAB standard", theirs["nab"]["standard"]["score"])):
            assert float(shown[name]) == pytest.approx(value, abs=1e-6), name
        assert shown["alarms"] == "4"
        assert shown["delay (samples)"] == "median 0.5 · max 1"

        # a new alarm comes live (seq 79: one sample early for the event at 80): drawn, and the figures follow
        owner.send(json.dumps({"type": "detect", "id": "d", "seq": 79}))
        assert reply(owner, "detected")["alarms"] == 5
        owner.send(json.dumps({"type": "score", "id": "d"}))
        theirs = reply(owner, "score")
        assert theirs["events"]["detected"] == 3 and theirs["delay"]["samples"] == {"median": 0, "max": 1}
        wait_for(browser, "window.wsgen.stream(arguments[0]).lastSeq >= 80", sid, timeout=30)
        assert wait_for(browser, "window.wsgen.watch.alarmsDrawn().length === 5 && window.wsgen.watch.alarmsDrawn()") \
            == ALARMS + [79]
        wait_for(browser, "window.wsgen.watch.figures().alarms === 5")
        assert figures(js(browser, "return window.wsgen.watch.figures()")) == figures(theirs)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "browser_watch.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        # the owner leaves the stream: the page says so and keeps the final figures
        owner.send(json.dumps({"type": "unsubscribe", "id": "d"}))
        final = reply(owner, "unsubscribed")["score"]
        assert wait_for(browser, "window.wsgen.watch.status.startsWith('ended') && window.wsgen.watch.status") \
            == "ended (unsubscribed)"
        assert {k: v for k, v in js(browser, "return window.wsgen.watch.figures()").items() if k != "latency"} \
            == {k: v for k, v in final.items() if k != "latency"}
        assert js(browser, "return window.wsgen.errors()") == []


def test_bad_watch_token_is_an_error_on_the_page(browser):   # noqa: F811
    with ThreadedServer() as srv:
        browser.get(f"{srv.http_url}/?watch=no-such-token&id=x")
        err = wait_for(browser, "window.wsgen && window.wsgen.errors().length && window.wsgen.errors()[0]")
        assert err["code"] == "unknown_id" and "watch token" in err["message"]
        assert wait_for(browser, "window.wsgen.watch.status") == "refused (unknown_id)"
        assert js(browser, "return window.wsgen.streams()") == []


SPEC = {"interval": 0.05, "base": {"kind": "sine", "params": {"amplitude": 2, "frequency": 0.5}, "offset": 10},
        "noise": {"kind": "normal", "std_dev": 0.1},
        "anomalies": [{"kind": "spike", "placement": {"mode": "periodic", "every": 1}, "height": 4}]}


def test_page_watches_a_detector_on_a_composition(browser):   # noqa: F811
    with ThreadedServer() as srv, connect(srv.url) as owner:
        owner.send(json.dumps({"type": "subscribe", "id": "c", "generator": SPEC, "seed": 11, "speed": 4,
                               "score": {"window": "events", "probation": 0}}))
        token = reply(owner, "subscribed")["score"]["watch"]
        values: dict[int, float] = {}
        labels: dict[int, bool] = {}
        while max(values, default=-1) < 60:
            msg = reply(owner, "data")
            for k, (v, lab) in enumerate(zip(msg["values"], msg["labels"])):
                values[msg["seq"] + k], labels[msg["seq"] + k] = v, lab
        owner.send(json.dumps({"type": "pause", "id": "c"}))
        reply(owner, "paused")
        hits = [s for s in sorted(labels) if labels[s] and s <= 50][:2]
        alarms = sorted(hits + [5])
        owner.send(json.dumps({"type": "detect", "id": "c", "seqs": alarms}))
        reply(owner, "detected")
        owner.send(json.dumps({"type": "score", "id": "c"}))
        theirs = reply(owner, "score")
        assert theirs["events"]["detected"] == 2 and theirs["events"]["false_positives"] == (0 if labels[5] else 1)

        # this time from the panel: paste the token, name it, press Watch
        browser.get(f"{srv.http_url}/")
        wait_for(browser, "window.wsgen && window.wsgen.state === 'open'", what="the page connected")
        js(browser, "document.getElementById('watch-token').value = arguments[0]; "
                    "document.getElementById('watch-name').value = 'composed'", token)
        click(browser, "watch-start")
        wait_for(browser, "window.wsgen && window.wsgen.watch.status === 'watching'", what="the page watches")
        wait_for(browser, "window.wsgen.stream('composed').lastSeq >= 55", timeout=30)
        got = [g for g in js(browser, "return window.wsgen.lastValues('composed')") if g["seq"] in values]
        assert got[0]["seq"] == 0 and len(got) >= 55
        assert [g["value"] for g in got] == [values[g["seq"]] for g in got]
        assert [g["label"] for g in got] == [labels[g["seq"]] for g in got]
        assert wait_for(browser, "window.wsgen.watch.alarmsDrawn().length === 3 && window.wsgen.watch.alarmsDrawn()") \
            == alarms
        wait_for(browser, "window.wsgen.watch.figures()")
        assert figures(js(browser, "return window.wsgen.watch.figures()")) == figures(theirs)
        assert js(browser, "return window.wsgen.errors()") == []


def test_page_watching_a_detector_far_ahead_starts_one_window_back(browser):   # noqa: F811
    with ThreadedServer() as srv, connect(srv.url) as owner:
        owner.send(json.dumps({"type": "subscribe", "id": "d", "generator": "periodic-spike", "seed": 3,
                               "params": {"spike_interval": 1, "interval": 0.05}, "speed": 20,
                               "score": {"window": 5, "probation": 0}}))
        token = reply(owner, "subscribed")["score"]["watch"]
        values: dict[int, float] = {}
        while max(values, default=-1) < 700:
            reply(owner, "data", values)
        owner.send(json.dumps({"type": "pause", "id": "d"}))
        last = reply(owner, "paused", values)["seq"] - 1
        owner.send(json.dumps({"type": "detect", "id": "d", "seqs": [150, last - 100, last - 1]}))
        reply(owner, "detected")
        browser.get(f"{srv.http_url}/?watch={token}&id=far")
        wait_for(browser, "window.wsgen && window.wsgen.watch.status === 'watching'", what="the page watches")
        assert js(browser, "return window.wsgen.watch.from") == last + 1 - 500     # the chart window: 500
        wait_for(browser, "window.wsgen.watch.catchingUp === false", timeout=30)
        got = [g for g in js(browser, "return window.wsgen.lastValues('far')") if g["seq"] in values]
        assert len(got) >= 100 and [g["value"] for g in got] == [values[g["seq"]] for g in got]
        # 150 is before the page's stream: not drawn; the other two are
        assert wait_for(browser, "window.wsgen.watch.alarmsDrawn().length === 2 && window.wsgen.watch.alarmsDrawn()") \
            == [last - 100, last - 1]
        assert js(browser, "return window.wsgen.watch.alarms()") == [150, last - 100, last - 1]
