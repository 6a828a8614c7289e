"""The web page (wsgen/static/web) in a real headless Chromium against a real server.

The server (WebSocket + HTTP on ephemeral ports) runs in its own event loop
in a background thread, so selenium's synchronous API drives the browser
from the test. The page exposes ``window.wsgen`` hooks (points drawn, the
values kept for the chart, the last ``updated`` seq...) so nothing here
parses pixels; a screenshot is still saved to ``artifacts/browser.png``.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
``chromium`` and ``chromium-driver``): without them the tests FAIL, they do
not skip.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


from servers import ThreadedServer  # noqa: E402  (tests/ is on sys.path under pytest)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "wsgen" / "static" / "web"
ARTIFACTS = REPO / "artifacts"

pytestmark = pytest.mark.timeout(120)


# -- a real server in a background thread ------------------------------------------

@contextlib.contextmanager
def served(**overrides):
    """A server in a thread's own loop (``servers.ThreadedServer``); yields (Running, loop)."""
    with ThreadedServer(**overrides) as srv:
        yield srv.running, srv.loop


@pytest.fixture(scope="module")
def server():
    with served() as (running, _):
        yield running


# -- headless Chromium ---------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"the browser test needs {' and '.join(missing)}: install the Debian packages chromium and "
                    "chromium-driver (apt-get install chromium chromium-driver)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wsgen-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1400,1050"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as exc:  # a driver that does not match the browser, a broken install...
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(f"could not start headless Chromium ({CHROMIUM}) with {CHROMEDRIVER}: {exc}", pytrace=False)
    driver.set_window_size(1400, 1050)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def wait_for(driver, script: str, *args, timeout: float = 10.0, what: str = ""):
    """Poll ``script`` (a JS expression) until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = js(driver, "return " + script, *args)
        if value:
            return value
        time.sleep(0.05)
    errors = js(driver, "return window.wsgen ? window.wsgen.errors() : 'no window.wsgen'")
    raise AssertionError(f"timed out after {timeout} s waiting for {what or script} (last: {value!r}; "
                         f"page errors: {errors!r})")


def set_knob(driver, element_id: str, value) -> None:
    """Set an input's value the way a user does: value, then input + change events."""
    js(driver, """
        const e = document.getElementById(arguments[0]);
        if (!e) throw new Error('no element #' + arguments[0]);
        e.value = arguments[1];
        e.dispatchEvent(new Event('input', {bubbles: true}));
        e.dispatchEvent(new Event('change', {bubbles: true}));
    """, element_id, str(value))


def _retry_stale(action, attempts: int = 20):
    """Run ``action()``; the page re-renders parts of itself (the form is
    rebuilt when the catalogue arrives), so an element found a moment ago
    can be replaced: find it again and retry."""
    from selenium.common.exceptions import StaleElementReferenceException
    for i in range(attempts):
        try:
            return action()
        except StaleElementReferenceException:
            if i == attempts - 1:
                raise
            time.sleep(0.05)


def choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    _retry_stale(lambda: Select(driver.find_element(By.ID, select_id)).select_by_value(value))


def click(driver, element_id: str) -> None:
    from selenium.webdriver.common.by import By
    _retry_stale(lambda: driver.find_element(By.ID, element_id).click())


def text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By
    return _retry_stale(lambda: driver.find_element(By.ID, element_id).text)


def values(driver, sub_id: str) -> list[dict]:
    return js(driver, "return window.wsgen.lastValues(arguments[0])", sub_id)


# -- the tests ------------------------------------------------------------------------

def test_chromium_installed():
    """CI installs chromium and chromium-driver; without them this fails (the others error), never skips."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    assert not missing, (f"the browser tests need {' and '.join(missing)}: install the Debian packages chromium "
                         "and chromium-driver (apt-get install chromium chromium-driver)")


def test_page_files_load_nothing_from_outside():
    """The page's own files name no http(s) URL: everything comes from the server."""
    for name in ("index.html", "app.js", "style.css"):
        found = re.findall(r"https?://[^\s\"')]+", (WEB / name).read_text(encoding="utf-8"))
        assert not found, f"wsgen/static/web/{name} refers to outside URLs: {found}"
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith(("static/web/", "data:")), f"index.html loads {src!r} from elsewhere"
        if src.startswith("static/web/"):
            assert (WEB / src.removeprefix("static/web/")).is_file(), f"index.html names a missing file: {src}"


def get(url: str, headers: dict | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_page_routes(server):
    """GET / is the page, /static/web/ its files, /config.json the WebSocket port."""
    base = f"http://127.0.0.1:{server.http_port}"
    status, ctype, body = get(base + "/")
    assert status == 200 and ctype.startswith("text/html") and "static/web/app.js" in body
    status, _, body = get(base + "/config.json")
    config = json.loads(body)
    assert status == 200 and config["ws_port"] == server.ws_port and config["token_required"] is False
    for path in ("app.js", "style.css", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css"):
        assert get(f"{base}/static/web/{path}")[0] == 200, path
    assert get(base + "/static/docs/swagger-ui.css")[0] == 200     # the docs' files are still there
    assert "/" not in json.loads(get(base + "/openapi.json")[2])["paths"]


def test_live_page(server, browser):
    driver = browser
    base = f"http://127.0.0.1:{server.http_port}"
    driver.get(base + "/")

    # Connected, catalogue in the picker, WebSocket URL derived from location: the HTTP port's /ws.
    wait_for(driver, "window.wsgen && window.wsgen.state === 'open'", what="the WebSocket to open")
    wait_for(driver, "!document.getElementById('start').disabled", what="the Start button")
    assert js(driver, "return window.wsgen.wsUrl") == f"ws://127.0.0.1:{server.http_port}/ws"
    assert text(driver, "status") == "open"
    names = js(driver, "return [...document.querySelectorAll('#generator option')].map(o => o.value)")
    assert {"sine", "random", "uniform", "count-per-duration"} <= set(names)

    # The form is built from the JSON Schema: bounds, default, description as tooltip.
    choose(driver, "generator", "sine")
    amp = js(driver, """const e = document.getElementById('param-amplitude');
                        return {value: e.value, min: e.min, max: e.max, title: e.title,
                                slider: !!document.getElementById('param-amplitude-slider')}""")
    assert float(amp["value"]) == 4.0 and float(amp["min"]) == -1e12 and amp["slider"]
    assert "Peak amplitude" in amp["title"]

    # A new stream's form opens on the catalogue's lively demo values, and says so; one click gives the
    # original service's defaults (what the HTTP endpoints keep).
    def knob(name):
        return float(js(driver, "return document.getElementById(arguments[0]).value", "param-" + name))
    assert (knob("interval"), knob("frequency"), knob("sample_rate")) == (0.05, 0.5, 20.0)
    assert "Demo values" in text(driver, "preset-note") and "interval=0.05" in text(driver, "preset-note")
    click(driver, "preset-toggle")
    assert (knob("interval"), knob("frequency"), knob("sample_rate")) == (1.0, 2.0, 100.0)
    assert "defaults" in text(driver, "preset-note")

    # Start a seeded sine, 50 samples a second.
    set_knob(driver, "param-interval", 0.02)
    _retry_stale(lambda: driver.find_element("id", "seed").send_keys("12345"))
    click(driver, "start")
    wait_for(driver, "window.wsgen.pointsDrawn('sine-1') >= 30", what="sine points drawn")
    assert text(driver, "seed-sine-1") == "12345"
    assert text(driver, "seed-used") == "12345"
    assert js(driver, "return window.wsgen.stream('sine-1').status") == "running"
    before = values(driver, "sine-1")
    assert [p["seq"] for p in before] == list(range(before[0]["seq"], before[0]["seq"] + len(before)))
    assert 3.9 <= max(abs(p["value"]) for p in before) <= 4.0 + 1e-9
    # The seeded sine is exactly amplitude * sin(2 pi f n / rate).
    for p in before[:20]:
        assert p["value"] == pytest.approx(4.0 * math.sin(2 * math.pi * 2.0 * p["seq"] / 100.0), abs=1e-9)

    # Move the amplitude knob while it runs: one debounced update, acknowledged, drawn at once.
    assert js(driver, "return window.wsgen.sent().update") is None
    set_knob(driver, "param-amplitude-slider", 7)
    set_knob(driver, "param-amplitude", 9)
    seq = wait_for(driver, "window.wsgen.lastUpdatedSeq", what="the updated ack")
    assert js(driver, "return window.wsgen.sent().update") == 1, "the two knob moves were not debounced into one"
    assert f"updated at seq {seq}" in text(driver, "update-status")
    wait_for(driver, "window.wsgen.stream('sine-1').params.amplitude === 9", what="amplitude 9 confirmed")
    wait_for(driver, "window.wsgen.lastValues('sine-1').filter(p => p.seq >= arguments[0]).length >= 60", seq,
             what="a period of samples after the update")
    after = [p for p in values(driver, "sine-1") if p["seq"] >= seq]
    old = [p for p in values(driver, "sine-1") if p["seq"] < seq]
    assert 8.9 <= max(abs(p["value"]) for p in after) <= 9.0 + 1e-9
    assert max(abs(p["value"]) for p in old) <= 4.0 + 1e-9
    assert float(js(driver, "return document.getElementById('param-amplitude-slider').value")) == 9

    # Pause: no more samples; resume: they flow again.
    click(driver, "pause-sine-1")
    wait_for(driver, "window.wsgen.stream('sine-1').status === 'paused'", what="paused")
    time.sleep(0.3)
    held = js(driver, "return window.wsgen.stream('sine-1')")
    time.sleep(0.6)
    still = js(driver, "return window.wsgen.stream('sine-1')")
    assert still["lastSeq"] == held["lastSeq"] and still["received"] == held["received"]
    assert js(driver, "return document.getElementById('resume-sine-1').disabled") is False
    click(driver, "resume-sine-1")
    wait_for(driver, "window.wsgen.stream('sine-1').lastSeq >= arguments[0] + 10", held["lastSeq"],
             what="samples after resume")
    assert js(driver, "return window.wsgen.stream('sine-1').status") == "running"

    # A second stream on the same chart: random anomalies, seed drawn by the server.
    choose(driver, "generator", "random")
    assert js(driver, "return window.wsgen.selected") is None
    set_knob(driver, "param-interval", 0.02)
    set_knob(driver, "param-anomaly_probability", 0.3)
    _retry_stale(lambda: driver.find_element("id", "seed").clear())
    click(driver, "start")
    wait_for(driver, "window.wsgen.pointsDrawn('random-2') >= 60 && window.wsgen.anomaliesDrawn('random-2') >= 5",
             what="random points and anomaly markers drawn")
    assert re.fullmatch(r"\d+", text(driver, "seed-random-2"))
    labels = js(driver, "return window.wsgen.seriesLabels()")
    assert labels == ["sine-1 (sine)", "random-2 (random)", "random-2 anomalies"]
    for p in values(driver, "random-2"):
        if p["label"]:
            assert -10 <= p["value"] <= 10
        else:
            assert p["value"] == 0.0
    assert js(driver, "return document.querySelectorAll('#streams li').length") == 2
    assert js(driver, "return window.wsgen.pointsDrawn('sine-1')") > 0

    # The server's errors are shown: a cross-field rule only the server checks.
    choose(driver, "generator", "uniform")
    set_knob(driver, "param-min_val", 5)
    set_knob(driver, "param-max_val", 1)
    click(driver, "start")
    wait_for(driver, "document.getElementById('errors').textContent.includes('invalid_params')",
             what="the error shown")
    assert "min_val" in text(driver, "errors")
    assert "must be <= max_val" in text(driver, "param-min_val-error")
    assert js(driver, "return window.wsgen.stream('uniform-3')") is None
    assert js(driver, "return document.querySelectorAll('#streams li').length") == 2

    # Back to the sine's live knobs for the picture.
    click(driver, "select-sine-1")
    assert js(driver, "return document.getElementById('generator').value") == "sine"
    assert float(js(driver, "return document.getElementById('param-amplitude').value")) == 9
    time.sleep(0.3)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # Everything the page loaded came from this server.
    loaded = js(driver, "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(u.startswith(base + "/") for u in loaded), loaded

    # Stop both streams.
    click(driver, "stop-sine-1")
    click(driver, "stop-random-2")
    wait_for(driver, "window.wsgen.streams().length === 0", what="streams stopped")
    wait_for(driver, "window.wsgen.seriesLabels().length === 0", what="the chart emptied")

    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_token_passed_on_and_reconnect(browser):
    """?token= in the page URL reaches the fetches and the WebSocket; a
    server that goes away is reconnected to, and streams come back."""
    driver = browser
    with served(token="s3cret") as (running, loop):
        base = f"http://127.0.0.1:{running.http_port}"
        # The page, its files and its config are public; the data needs the token.
        assert get(base + "/static/web/app.js")[0] == 200
        status, _, body = get(base + "/config.json")
        assert status == 200 and json.loads(body)["token_required"] is True
        assert get(base + "/generators")[0] == 401
        # Opened without the token, the page says what to do.
        driver.get(base + "/")
        wait_for(driver, "document.getElementById('errors').textContent.includes('needs a token')",
                 what="the page to ask for the token")
        driver.get(base + "/?token=s3cret")
        wait_for(driver, "window.wsgen && window.wsgen.state === 'open'", what="the WebSocket to open")
        assert js(driver, "return window.wsgen.wsUrl") == f"ws://127.0.0.1:{running.http_port}/ws?token=s3cret"
        assert js(driver, "return document.querySelectorAll('#generator option').length") >= 10
        choose(driver, "generator", "sine")
        set_knob(driver, "param-interval", 0.02)
        _retry_stale(lambda: driver.find_element("id", "seed").send_keys("7"))
        click(driver, "start")
        wait_for(driver, "window.wsgen.pointsDrawn('sine-1') >= 10", what="sine points drawn")
        # Drop every WebSocket client: the page reconnects and subscribes again where it stopped.
        for ws in list(running.ws_server.connections):
            asyncio.run_coroutine_threadsafe(ws.close(1012, "test restart"), loop).result(timeout=5)
        wait_for(driver, "window.wsgen.state !== 'open'", timeout=5, what="the page to see the close")
        last = js(driver, "return window.wsgen.stream('sine-1').lastSeq")
        wait_for(driver, "window.wsgen.state === 'open' && window.wsgen.stream('sine-1').lastSeq > arguments[0] + 10",
                 last, timeout=15, what="reconnect and samples again")
        seqs = [p["seq"] for p in values(driver, "sine-1")]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "samples lost or repeated across the reconnect"
        assert text(driver, "seed-sine-1") == "7"
    # With a wrong token the page shows the server's refusal, clearly.
    with served(token="s3cret") as (running, _):
        driver.get(f"http://127.0.0.1:{running.http_port}/?token=wrong")
        wait_for(driver, "document.getElementById('errors').textContent.includes('missing or wrong bearer token')",
                 what="the server's 401 on the page")


def test_page_on_the_dedicated_port_with_ws_port(server, browser):
    """``/?ws=port``: the page streams over the dedicated WebSocket port
    (from /config.json) instead of the HTTP port's /ws."""
    driver = browser
    driver.get(f"http://127.0.0.1:{server.http_port}/?ws=port")
    wait_for(driver, "window.wsgen && window.wsgen.state === 'open'", what="the WebSocket to open")
    assert js(driver, "return window.wsgen.wsUrl") == f"ws://127.0.0.1:{server.ws_port}/"
    wait_for(driver, "!document.getElementById('start').disabled", what="the Start button")
    choose(driver, "generator", "sine")
    set_knob(driver, "param-interval", 0.02)
    click(driver, "start")
    wait_for(driver, "window.wsgen.pointsDrawn('sine-1') >= 5", what="sine points drawn over the dedicated port")
