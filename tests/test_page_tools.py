"""The page's tools (issue 17 part 9) in a real headless Chromium against a
real server: the composition builder (built from the composition JSON
Schema), "copy as" (each text run as a user would run it, giving the same
samples), CSV/JSON downloads (real files), anomaly windows as shaded bands,
slider ranges per field, and stale messages cleared on switching generator.
Screenshots go to artifacts/page-*.png."""
from __future__ import annotations

import csv
import io
import json
import math
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests

import wsgen
from wsgen.engine.composite import CompositionSpec, create_composite
from servers import ThreadedServer  # noqa: E402  (tests/ is on sys.path under pytest)
from test_browser import (ARTIFACTS, CHROMEDRIVER, CHROMIUM, choose, click, js, set_knob,  # noqa: E402
                          wait_for)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server():
    with ThreadedServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def downloads():
    path = Path(tempfile.mkdtemp(prefix="wsgen-downloads-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def driver(downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wsgen-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                f"--user-data-dir={profile}", "--window-size=1400,1300"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    d.set_window_size(1400, 1300)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, server):
    driver.get(server.http_url + "/")
    wait_for(driver, "window.wsgen && window.wsgen.state === 'open' && !document.getElementById('start').disabled",
             what="the page to connect")
    wait_for(driver, "!document.getElementById('compose-start').disabled", what="the composition schema")


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"page-{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    return path


def by_seq(driver, sub_id: str) -> dict[int, float | None]:
    return {p["seq"]: p["value"] for p in js(driver, "return window.wsgen.lastValues(arguments[0])", sub_id)}


def values_of(ndjson: str) -> list:
    return [json.loads(line)["value"] for line in ndjson.splitlines()]


# -- the composition builder ---------------------------------------------------------------------

def test_composition_builder_from_the_schema(server, driver):
    open_page(driver, server)
    click(driver, "compose-details")
    schema = CompositionSpec.model_json_schema()
    kinds = sorted(schema["properties"]["anomalies"]["items"]["discriminator"]["mapping"])
    # the "add injector" list offers every injector kind the schema has, nothing hard-coded
    offered = js(driver, "return [...document.getElementById('c-anomalies-add').options].slice(1).map(o => o.value"
                         " && o.textContent)")
    assert sorted(offered) == kinds
    faults = js(driver, "return [...document.querySelectorAll('#compose-form [data-path^=\"faults.\"]')]"
                        ".map(e => e.dataset.path).filter(p => p.split('.').length === 2)")
    assert sorted(faults) == sorted(f"faults.{k}" for k in schema["$defs"]["Faults"]["properties"])
    spec = js(driver, "return window.wsgen.composition.spec()")
    assert [a["kind"] for a in spec["anomalies"]] == ["spike", "level-shift"]
    # edit it as a user does: add a dropout, drop it again, the interval, a nulls fault, a spike placed at 5
    choose(driver, "c-anomalies-add", str(offered.index("dropout")))
    assert [a["kind"] for a in js(driver, "return window.wsgen.composition.spec()")["anomalies"]][-1] == "dropout"
    click(driver, "c-anomalies-2-remove")
    set_knob(driver, js(driver, "return document.querySelector('[data-path=\"interval\"] input').id"), 0.1)
    click(driver, "c-faults-nulls-on")
    placement = js(driver, "return document.getElementById('c-anomalies-0-placement-variant').id")
    choose(driver, placement, str(["random", "gaps", "periodic", "count", "indices"].index("indices")))
    set_knob(driver, js(driver, "return document.querySelector('[data-path=\"anomalies.0.placement.indices\"] input')"
                                ".id"), "[5, 25]")
    # the base's params are the kind's own form (from the catalogue), without interval; another kind
    # starts from its demo values
    field_id = "return document.querySelector(`[data-path='${arguments[0]}'] input, [data-path='${arguments[0]}'] select`).id"
    assert js(driver, "return !!document.querySelector(\"[data-path='base.params.amplitude']\")")
    choose(driver, js(driver, field_id, "base.kind"), "square")
    assert js(driver, "return window.wsgen.composition.spec()")["base"]["params"] == {"frequency": 0.5, "sample_rate": 20.0}
    assert js(driver, "return !!document.querySelector(\"[data-path='base.params.duty_cycle']\")")
    assert not js(driver, "return !!document.querySelector(\"[data-path='base.params.interval']\")")
    set_knob(driver, js(driver, field_id, "base.params.duty_cycle"), 0.25)
    spec = js(driver, "return window.wsgen.composition.spec()")
    assert spec["base"]["params"]["duty_cycle"] == 0.25
    assert spec["interval"] == 0.1 and spec["faults"]["nulls"] == {"min_length": 1, "max_length": 1}   # its defaults
    assert spec["anomalies"][0]["placement"] == {"mode": "indices", "indices": [5, 25]}
    assert json.loads(js(driver, "return document.getElementById('compose-json').value")) == spec
    # start it: the samples are the engine's, by seq, nulls included
    set_knob(driver, "compose-seed", 7)
    click(driver, "compose-start")
    sub = wait_for(driver, "window.wsgen.streams().find(s => s.generator === 'composite' && s.received >= 40)?.id",
                   timeout=15, what="the composition's samples")
    got = by_seq(driver, sub)
    ref = create_composite(spec, seed=7).take(max(got) + 1)
    expected = dict(zip(ref.seqs.tolist(), ref.values.tolist()))
    for seq, value in got.items():
        want = expected[seq]
        assert (value is None and math.isnan(want)) or value == want, (seq, value, want)
    # the shaded windows: the spikes at 5 and 25, and the null faults' samples (labelled too), as the engine says
    windows = js(driver, "return window.wsgen.anomalyWindows(arguments[0])", sub)
    labels = dict(zip(ref.seqs.tolist(), ref.labels.tolist()))
    assert {5, 25} <= {w["first"] for w in windows}
    assert all(labels[k] for w in windows for k in range(w["first"], w["last"] + 1))
    assert all(k in range(w["first"], w["last"] + 1) for w in windows for k in [w["first"]])
    assert sum(w["last"] - w["first"] + 1 for w in windows) == sum(labels[k] for k in got if k >= min(got))
    assert js(driver, "return window.wsgen.bandsDrawn") >= 2
    js(driver, "window.scrollTo(0, 0)")
    shot(driver, "composition")
    click(driver, f"stop-{sub}")
    wait_for(driver, "window.wsgen.streams().length === 0", what="stopped")


def test_composition_builder_channels(server, driver):
    # several channels: names, gain, offset, an own base, the noise's correlation, each injector's
    # target channels, typed in the builder's boxes as a user does; the page's channels are the engine's
    open_page(driver, server)
    click(driver, "compose-details")
    assert js(driver, "return document.getElementById('compose-channel-fields').hidden")
    assert not js(driver, "return !!document.getElementById('c-anomalies-0-channels')")
    set_knob(driver, "compose-channels", "x, y, z")
    assert not js(driver, "return document.getElementById('compose-channel-fields').hidden")
    set_knob(driver, "compose-gain", "1, 2, 0.5")
    set_knob(driver, "compose-offset", "0, 3 6")
    bases = {"z": {"kind": "cosine", "params": {"amplitude": 1, "frequency": 1, "sample_rate": 20}}}
    set_knob(driver, "compose-bases", json.dumps(bases))
    set_knob(driver, "compose-correlation", "1, 0.8, 0; 0.8, 1, 0; 0, 0, 1")
    set_knob(driver, "c-anomalies-0-channels", "x, z")            # the spikes on x and z
    set_knob(driver, "c-anomalies-1-channels", "y")               # the level shift on y
    spec = js(driver, "return window.wsgen.composition.spec()")
    assert spec["channels"] == ["x", "y", "z"] and spec["gain"] == [1, 2, 0.5] and spec["offset"] == [0, 3, 6]
    assert spec["bases"] == bases
    assert spec["noise"] == {"kind": "normal", "std_dev": 0.1, "correlation": [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]]}
    assert [a["channels"] for a in spec["anomalies"]] == [["x", "z"], ["y"]]
    assert json.loads(js(driver, "return document.getElementById('compose-json').value")) == spec
    # a bad box is marked and refuses Start, naming the box
    set_knob(driver, "compose-gain", "1, two")
    assert js(driver, "return document.getElementById('compose-gain').classList.contains('invalid')")
    assert "gain per channel" in js(driver, "return document.getElementById('compose-channels-error').textContent")
    set_knob(driver, "compose-gain", "1, 2, 0.5")
    assert js(driver, "return window.wsgen.composition.spec()") == spec
    js(driver, "document.getElementById('compose-channels-box').scrollIntoView()")
    shot(driver, "composition-channels")
    set_knob(driver, "compose-seed", 3)
    click(driver, "compose-start")
    sub = wait_for(driver, "window.wsgen.streams().find(s => s.generator === 'composite')?.id",
                   what="the composition stream")
    wait_for(driver, "window.wsgen.channels(arguments[0]).length === 3 && "
                     "window.wsgen.channels(arguments[0]).every(c => c.points.length >= 70)", sub,
             timeout=30, what="70 samples of each channel")
    channels = js(driver, "return window.wsgen.channels(arguments[0])", sub)
    assert [c["name"] for c in channels] == ["x", "y", "z"]
    last = max(p["seq"] for c in channels for p in c["points"])
    ref = create_composite(spec, seed=3).take(last + 1)
    for c, ch in enumerate(channels):
        seqs = [p["seq"] for p in ch["points"]]
        np.testing.assert_array_equal([p["value"] for p in ch["points"]], ref.values[seqs, c])
        np.testing.assert_array_equal([p["label"] for p in ch["points"]], ref.labels[seqs, c])
    # the spike every 3 s (60 samples) is on x and z only, the level shift on y only
    spikes = [e for e in ref.events if e["kind"] == "spike"]
    assert spikes and all(e["channels"] == ["x", "z"] for e in spikes)
    assert all(e["channels"] == ["y"] for e in ref.events if e["kind"] == "level-shift")
    assert not ref.labels[:, 1][[e["first"] for e in spikes]].any()
    click(driver, f"stop-{sub}")
    wait_for(driver, "window.wsgen.streams().length === 0", what="stopped")
    # no names: one signal again, every field of channels gone
    set_knob(driver, "compose-channels", "")
    spec = js(driver, "return window.wsgen.composition.spec()")
    assert not {"channels", "gain", "offset", "bases"} & set(spec) and "correlation" not in spec["noise"]
    assert all("channels" not in a for a in spec["anomalies"])
    assert not js(driver, "return !!document.getElementById('c-anomalies-0-channels')")
    assert js(driver, "return window.wsgen.errors()") == []


# -- copy as -----------------------------------------------------------------------------------------

def run(cmd: list[str], timeout: float = 60) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (cmd, r.stderr)
    assert "Traceback" not in r.stderr
    return r.stdout


def test_copy_as_gives_what_reproduces_the_stream(server, driver):
    open_page(driver, server)
    choose(driver, "generator", "sine")
    set_knob(driver, "param-amplitude", 3)
    set_knob(driver, "seed", 11)
    click(driver, "start")
    wait_for(driver, "window.wsgen.stream('sine-1')?.status === 'running'", what="the sine")
    params = js(driver, "return window.wsgen.stream('sine-1').params")
    ref = wsgen.create("sine", params, seed=11).take(5).values.tolist()
    texts = {f: js(driver, "return window.wsgen.copyAs(arguments[0])", f)
             for f in ("message", "ws_url", "http_url", "curl", "python", "wsgen_sub")}
    # the menu shows the same text
    choose(driver, "copy-as", "curl")
    assert js(driver, "return document.getElementById('copy-text').value") == texts["curl"]
    assert "curl of sine-1" in js(driver, "return document.getElementById('copy-title').textContent")
    shot(driver, "copy-as")

    msg = json.loads(texts["message"])
    assert msg == {"type": "subscribe", "id": "sine-1", "generator": "sine", "params": params, "seed": 11}
    assert texts["ws_url"].startswith(f"ws://127.0.0.1:{server.running.http_port}/ws/sine?")
    assert values_of(requests.get(texts["http_url"] + "&count=5&speed=max", timeout=10).text) == ref
    curl = shlex.split(texts["curl"])
    curl[-1] += "&count=5&speed=max"
    assert values_of(run(curl)) == ref
    sub = shlex.split(texts["wsgen_sub"])
    assert sub[:2] == ["wsgen", "sub"]
    out = run([sys.executable, "-m", "wsgen.cli", *sub[1:], "--count", "5", "--speed", "max", "--format", "ndjson"])
    assert values_of(out) == ref
    code = texts["python"].replace("block = await sub.take(100)", "block = await sub.take(5)") \
        .replace("print(block.values)", "print(json.dumps(block.values.tolist()))")
    assert json.loads(run([sys.executable, "-c", "import json\n" + code]).strip()) == ref
    # a URL subscription from the WebSocket URL: the same samples
    from websockets.sync.client import connect
    with connect(texts["ws_url"] + "&count=5&speed=max") as ws:
        got = []
        while len(got) < 5:
            m = json.loads(ws.recv(timeout=10))
            got += m.get("values", [])
    assert got == ref
    click(driver, "stop-sine-1")
    wait_for(driver, "window.wsgen.streams().length === 0", what="stopped")

    # a composition: message, curl (POST) and wsgen sub --spec reproduce it
    click(driver, "compose-details")
    set_knob(driver, "compose-seed", 5)
    click(driver, "compose-start")
    sub_id = wait_for(driver, "window.wsgen.streams().find(s => s.generator === 'composite')?.id", what="composite")
    spec = js(driver, "return window.wsgen.composition.spec()")
    ref = create_composite(spec, seed=5).take(5).values.tolist()
    texts = {f: js(driver, "return window.wsgen.copyAs(arguments[0])", f) for f in ("message", "curl", "wsgen_sub")}
    assert json.loads(texts["message"]) == {"type": "subscribe", "id": sub_id, "generator": spec, "seed": 5}
    curl = shlex.split(texts["curl"])
    curl[4] += "&count=5&speed=max"
    assert values_of(run(curl)) == ref
    out = run([sys.executable, "-m", "wsgen.cli", *shlex.split(texts["wsgen_sub"])[1:], "--count", "5", "--speed",
               "max", "--format", "ndjson"])
    assert values_of(out) == ref
    click(driver, f"stop-{sub_id}")
    wait_for(driver, "window.wsgen.streams().length === 0", what="stopped")


# -- downloads, bands, sliders, stale messages ---------------------------------------------------------

def test_downloads_bands_sliders_and_fresh_messages(server, driver, downloads):
    open_page(driver, server)
    # slider ranges follow each field's meaning
    choose(driver, "generator", "sine")
    def slider(name):
        return js(driver, "const e = document.getElementById(arguments[0]); return [+e.min, +e.max]",
                  f"param-{name}-slider")
    assert slider("phase") == [-360, 360]                 # degrees: a full turn either way (was -10..10)
    assert slider("interval") == [0, 1]                   # around the demo's 0.05 s
    choose(driver, "generator", "random")
    assert slider("anomaly_probability") == [0, 1]        # a probability: its bounds
    choose(driver, "generator", "square")
    assert slider("duty_cycle") == [0, 1]

    # a labelled stream: anomaly windows as shaded bands, one per run of labelled samples
    choose(driver, "generator", "random-square")
    set_knob(driver, "seed", 3)
    set_knob(driver, "param-interval", 0.01)
    click(driver, "start")
    # seed 3: plateaus start at 60, 155, 225, 314 (gaps of 40..100 samples)
    wait_for(driver, "window.wsgen.stream('random-square-1')?.received >= 360", timeout=30, what="samples")
    windows = js(driver, "return window.wsgen.anomalyWindows('random-square-1')")
    labels = {p["seq"]: p["label"] for p in js(driver, "return window.wsgen.lastValues('random-square-1')")}
    runs, start = [], None
    for seq in sorted(labels):
        if labels[seq] and start is None:
            start = seq
        if not labels[seq] and start is not None:
            runs.append({"first": start, "last": seq - 1})
            start = None
    if start is not None:
        runs.append({"first": start, "last": max(labels)})
    assert windows == runs and len(runs) >= 2
    wait_for(driver, "window.wsgen.bandsDrawn >= arguments[0]", len(runs), what="the bands drawn")
    # the dots are big with a dark ring
    series = js(driver, "return window.wsgen.seriesLabels()")
    assert "random-square-1 anomalies" in series

    # downloads: real files, the samples on the chart
    for kind in ("csv", "json"):
        target = downloads / f"wsgen-chart.{kind}"
        target.unlink(missing_ok=True)
        on_chart = js(driver, "return window.wsgen.lastValues('random-square-1')")
        click(driver, f"download-{kind}")
        deadline = time.monotonic() + 10
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert target.exists(), list(downloads.iterdir())
        text = target.read_text()
        if kind == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            assert list(rows[0]) == ["stream", "seq", "t", "value", "label"]
            got = [(int(r["seq"]), float(r["value"]), r["label"] == "true") for r in rows]
        else:
            data = json.loads(text)["streams"]
            assert data[0]["generator"] == "random-square" and data[0]["seed"] == "3"
            got = [(p["seq"], p["value"], p["label"]) for p in data[0]["samples"]]
        # the file holds the chart's samples (it may hold a few more, taken a moment later)
        first = {p["seq"]: (p["seq"], p["value"], p["label"]) for p in on_chart}
        assert got and all(first[g[0]] == g for g in got if g[0] in first) and len(set(first) & {g[0] for g in got}) > 100
        ref = wsgen.create("random-square", js(driver, "return window.wsgen.stream('random-square-1').params"),
                           seed=3).take(got[-1][0] + 1)
        assert [g[1] for g in got] == ref.values[got[0][0]:got[-1][0] + 1].tolist()
    shot(driver, "bands")

    # an error and an "updated" line, then another generator: both are gone
    set_knob(driver, "param-minimum_interval", 90)
    wait_for(driver, "document.getElementById('update-status').textContent.includes('updated at seq')", what="updated")
    choose(driver, "generator", "uniform")
    set_knob(driver, "param-min_val", 5)
    set_knob(driver, "param-max_val", 1)
    click(driver, "start")
    wait_for(driver, "document.getElementById('errors').textContent.includes('invalid_params')", what="the error")
    choose(driver, "generator", "sine")
    assert js(driver, "return document.getElementById('errors').textContent") == ""
    assert js(driver, "return document.getElementById('update-status').textContent") == ""
    click(driver, "stop-random-square-1")
    wait_for(driver, "window.wsgen.streams().length === 0", what="stopped")
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
