"""The browser page builds working forms for the kinds of issue 15 from their
JSON Schema: list and object parameters are edited as JSON text, optional
bounds may be left empty (null), and the streams drawn equal the engine's
values. Headless Chromium against a real server (fixtures of test_browser)."""
from __future__ import annotations

import json

import numpy as np

from reference import engine  # noqa: E402  (tests/ is on sys.path under pytest)
from test_browser import browser, choose, click, js, server, set_knob, values, wait_for  # noqa: F401  (fixtures)


def used(driver, sid: str) -> dict:
    """The parameters the server reports for stream ``sid`` (the form may start from demo values)."""
    return js(driver, "return window.wsgen.stream(arguments[0]).params", sid)


def start(driver, kind: str, seed: int, knobs: dict[str, str]) -> str:
    choose(driver, "generator", kind)
    wait_for(driver, "document.getElementById('param-interval')", what=f"the {kind} form")
    for name, value in knobs.items():
        set_knob(driver, f"param-{name}", value)
    set_knob(driver, "seed", seed)
    before = set(js(driver, "return [...window.wsgen.streams().map(s => s.id)]") or [])
    click(driver, "start")
    return wait_for(driver, "window.wsgen.streams().map(s => s.id).find(i => !arguments[0].includes(i))",
                    sorted(before), what=f"a new {kind} stream")


def test_forms_of_the_new_kinds(server, browser):  # noqa: F811  (pytest fixtures)
    driver = browser
    driver.get(f"http://127.0.0.1:{server.http_port}/")
    wait_for(driver, "window.wsgen && window.wsgen.state === 'open'", what="the WebSocket to open")
    wait_for(driver, "!document.getElementById('start').disabled", what="the Start button")
    names = js(driver, "return [...document.querySelectorAll('#generator option')].map(o => o.value)")
    assert {"random-walk", "ou", "pulse", "steps", "pattern", "seasonal", "replay"} <= set(names)

    # seasonal: the components (a list of objects) shown as JSON, sent back as JSON
    choose(driver, "generator", "seasonal")
    shown = wait_for(driver, "document.getElementById('param-components') && "
                             "document.getElementById('param-components').value", what="the components box")
    assert json.loads(shown)[0]["name"] == "daily"
    sid = start(driver, "seasonal", 31, {"interval": "0.02", "dt": "3600"})
    wait_for(driver, "window.wsgen.lastValues(arguments[0]).length >= 30", sid, what="seasonal points")
    got = values(driver, sid)
    expected, _ = engine("seasonal", used(driver, sid), 31, got[-1]["seq"] + 1)
    assert [p["value"] for p in got] == [expected[p["seq"]] for p in got]

    # random-walk: min and max left empty (null); then bounded through the form
    sid = start(driver, "random-walk", 32, {"interval": "0.02", "max": "", "min": ""})
    wait_for(driver, "window.wsgen.lastValues(arguments[0]).length >= 20", sid, what="random-walk points")
    assert js(driver, "return window.wsgen.stream(arguments[0]).params.max", sid) is None
    got = values(driver, sid)
    expected, _ = engine("random-walk", used(driver, sid), 32, got[-1]["seq"] + 1)
    assert [p["value"] for p in got] == [expected[p["seq"]] for p in got]

    # pattern: values typed as text ("1,2,3") start the stream; a live change of them is an update
    sid = start(driver, "pattern", 33, {"interval": "0.02", "values": "1,2,3"})
    wait_for(driver, "window.wsgen.lastValues(arguments[0]).length >= 6", sid, what="pattern points")
    got = values(driver, sid)
    assert [p["value"] for p in got] == [float(1 + p["seq"] % 3) for p in got]
    set_knob(driver, "param-values", "[7, 8]")
    seq = wait_for(driver, "window.wsgen.lastUpdatedSeq", what="the updated ack")
    wait_for(driver, "JSON.stringify(window.wsgen.stream(arguments[0]).params.values) === '[7,8]'", sid,
             what="values [7, 8] confirmed")
    wait_for(driver, "window.wsgen.lastValues(arguments[0]).filter(p => p.seq >= arguments[1]).length >= 4",
             sid, seq, what="samples after the update")
    after = [p for p in values(driver, sid) if p["seq"] >= seq]
    expected, _ = engine("pattern", {**used(driver, sid), "values": [1, 2, 3]}, 33, after[-1]["seq"] + 1,
                         updates=[(seq, {"values": [7, 8]})])
    assert [p["value"] for p in after] == [expected[p["seq"]] for p in after]
    assert set(np.unique([p["value"] for p in after])) <= {7.0, 8.0}

    # replay: text and choice fields; the built-in example's rows and labels
    sid = start(driver, "replay", 34, {"interval": "0.02", "label_column": "label", "at_end": "loop"})
    wait_for(driver, "window.wsgen.lastValues(arguments[0]).length >= 10", sid, what="replay points")
    got = values(driver, sid)
    expected, labels = engine("replay", used(driver, sid), 34, got[-1]["seq"] + 1)
    assert used(driver, sid)["label_column"] == "label"
    assert [p["value"] for p in got] == [expected[p["seq"]] for p in got]
    assert [bool(p["label"]) for p in got] == [bool(labels[p["seq"]]) for p in got]

    # steps: a wrong list is refused by the server and the error lands on its box
    choose(driver, "generator", "steps")
    wait_for(driver, "document.getElementById('param-steps')", what="the steps box")
    set_knob(driver, "param-steps", "1,2,3")
    click(driver, "start")
    message = wait_for(driver, "document.getElementById('param-steps-error').textContent",
                       what="the error on the steps box")
    assert "even count" in message
