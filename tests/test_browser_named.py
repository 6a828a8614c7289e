"""The page's named-stream picker and operator panel, in headless Chromium
(fixtures and helpers of tests/test_browser.py), against a real server
with a scenario and an admin token. Values are checked by seq against the
plain generator; nothing parses pixels."""
from __future__ import annotations

import pytest

from test_browser import browser, choose, click, js, wait_for  # noqa: F401  (browser: a fixture)
from servers import ThreadedServer
from wsgen import create

pytestmark = pytest.mark.timeout(120)

SCENARIO = """
streams:
  - name: plant/boiler-3/temperature
    generator: sine
    params: {amplitude: 5, frequency: 0.5, offset: 80}
    interval: 0.05
    seed: 7
"""
NAME = "plant/boiler-3/temperature"


def test_stream_picker_and_operator_panel(browser, tmp_path):   # noqa: F811
    path = tmp_path / "plant.yaml"
    path.write_text(SCENARIO)
    with ThreadedServer(scenario=str(path), admin_token="OPS", update_margin_s=0.5) as srv:
        origin = srv.running.settings.named.streams[NAME].origin
        browser.get(srv.http_url + "/?admin_token=OPS")
        wait_for(browser, "window.wsgen && window.wsgen.state === 'open'", what="the page connected")
        assert wait_for(browser, "window.wsgen.namedStreams().length && window.wsgen.namedStreams()") == [NAME]
        assert js(browser, "return document.getElementById('operator').hidden") is False
        choose(browser, "named-stream", NAME)
        click(browser, "named-subscribe")
        sid = wait_for(browser, "window.wsgen.streams().length && window.wsgen.streams()[0].id")
        wait_for(browser, "window.wsgen.stream(arguments[0]).received >= 10", sid, timeout=20)
        ref = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.05}, seed=7)
        got = js(browser, "return window.wsgen.lastValues(arguments[0])", sid)
        expect = ref.take(got[-1]["seq"] - origin + 1).values
        assert [g["value"] for g in got] == [expect[g["seq"] - origin] for g in got]
        assert got[0]["t"] == pytest.approx(got[0]["seq"] * 0.05, abs=1e-3)
        # the operator injects a level shift of 40 for 0.5 s (10 samples): from the seq the server names
        js(browser, "document.getElementById('op-height').value = '40'; "
                    "document.getElementById('op-duration').value = '0.5'")
        choose(browser, "op-kind", "level-shift")
        click(browser, "op-inject")
        at = int(wait_for(browser, "document.getElementById('op-status').dataset.seq", timeout=20))
        assert wait_for(browser, "window.wsgen.stream(arguments[0]).updatedSeq", sid) == at
        wait_for(browser, "window.wsgen.stream(arguments[0]).lastSeq >= arguments[1]", sid, at + 12, timeout=20)
        got = {g["seq"]: g for g in js(browser, "return window.wsgen.lastValues(arguments[0])", sid)}
        full = create("sine", {"amplitude": 5, "frequency": 0.5, "offset": 80, "interval": 0.05}, seed=7) \
            .take(at + 12 - origin).values
        for seq in range(at - 2, at + 12):
            inside = at <= seq < at + 10
            assert got[seq]["label"] is inside, seq
            assert got[seq]["value"] == pytest.approx(full[seq - origin] + (40 if inside else 0), abs=1e-9), seq
        assert js(browser, "return window.wsgen.errors()") == []
        # without the admin token: no operator panel
        browser.get(srv.http_url + "/")
        wait_for(browser, "window.wsgen && window.wsgen.namedStreams().length")
        assert js(browser, "return document.getElementById('operator').hidden") is True
