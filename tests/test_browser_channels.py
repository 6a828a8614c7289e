"""The page plots each channel of a composition with channels: real
headless Chromium against a real server; the spec typed into the
composition builder's JSON box and started with its button; each channel's
points are the engine's, by seq, with its own labels. Screenshot:
artifacts/page-channels.png."""
from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np
import pytest

from wsgen.engine.composite import create_composite
from servers import ThreadedServer  # noqa: E402  (tests/ is on sys.path under pytest)
from test_browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM, js, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(180)

SPEC = {
    "interval": 0.02,
    "channels": ["x", "y", "z"],
    "base": {"kind": "sine", "params": {"amplitude": 1.0, "frequency": 1.0, "sample_rate": 50}},
    "offset": [0, 3, 6],
    "noise": {"kind": "normal", "std_dev": 0.1, "correlation": [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]]},
    "anomalies": [{"kind": "level-shift", "channels": ["y"], "height": 2.0,
                   "placement": {"mode": "indices", "indices": [10]}, "min_length": 10, "max_length": 10}],
}


@pytest.fixture(scope="module")
def server():
    with ThreadedServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wsgen-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                f"--user-data-dir={profile}", "--window-size=1400,1100"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_plots_each_channel_with_its_labels(server, driver):
    driver.get(server.http_url + "/")
    wait_for(driver, "window.wsgen && window.wsgen.state === 'open' && !document.getElementById('start').disabled",
             what="the page to connect")
    # as a user would: the composition builder's JSON box, its seed, its Start button
    wait_for(driver, "!document.getElementById('compose-start').disabled", what="the composition builder")
    js(driver, "document.querySelector('#compose-form')?.closest('details')?.setAttribute('open', '')")
    js(driver, "const box = document.getElementById('compose-json'); box.value = arguments[0];"
               "box.dispatchEvent(new Event('change'))", json.dumps(SPEC))
    assert js(driver, "return window.wsgen.composition.spec()") == {**SPEC, "faults": {}}   # the builder's empty faults
    js(driver, "const seed = document.getElementById('compose-seed'); seed.value = '7';"
               "seed.dispatchEvent(new Event('input'))")
    js(driver, "document.getElementById('compose-start').click()")
    sub = wait_for(driver, "window.wsgen.streams().find(s => s.generator === 'composite')?.id",
                   what="the composition stream")
    wait_for(driver, "window.wsgen.channels(arguments[0]).length === 3 && "
                     "window.wsgen.channels(arguments[0]).every(c => c.points.length >= 40 && c.drawn >= 40)", sub,
             timeout=30, what="40 samples of each channel drawn")
    channels = js(driver, "return window.wsgen.channels(arguments[0])", sub)
    assert [c["name"] for c in channels] == ["x", "y", "z"]
    assert len({c["color"] for c in channels}) == 3
    labels = js(driver, "return window.wsgen.seriesLabels()")
    assert [lb for lb in labels if not lb.endswith("anomalies")] == [f"{sub}.{n} ({n})" for n in "xyz"]
    last = max(p["seq"] for c in channels for p in c["points"])
    ref = create_composite(SPEC, seed=7).take(last + 1)
    for c, ch in enumerate(channels):
        seqs = [p["seq"] for p in ch["points"]]
        np.testing.assert_array_equal([p["value"] for p in ch["points"]], ref.values[seqs, c])
        np.testing.assert_array_equal([p["label"] for p in ch["points"]], ref.labels[seqs, c])
    y = {p["seq"]: p["label"] for p in channels[1]["points"]}
    assert [s for s, lb in y.items() if lb] == list(range(10, 20))          # the shift, on y only
    assert not any(p["label"] for c in (0, 2) for p in channels[c]["points"])
    stream = js(driver, "return window.wsgen.stream(arguments[0])", sub)
    assert stream["received"] >= 40 and stream["anomalies"] == 10
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "page-channels.png"
    js(driver, "window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    js(driver, "document.getElementById(arguments[0]).click()", f"stop-{sub}")
    wait_for(driver, "window.wsgen.streams().length === 0", what="stopped")
    assert js(driver, "return window.wsgen.errors()") == []
