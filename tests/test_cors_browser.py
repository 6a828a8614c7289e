"""CORS (issue 17 part 4): a page on another origin reads the HTTP streams,
in a real headless Chromium: ``fetch`` (a stream, a POST with a JSON body:
preflighted, a token in ``Authorization``: preflighted) and ``EventSource``
on ``?format=sse``; the ``--allow-origin`` list governs it, and an origin
not on it is kept out by the browser."""
from __future__ import annotations

import contextlib
import json
import http.server
import tempfile
import threading
from pathlib import Path

import pytest
import requests

import wsgen
from servers import ThreadedServer  # noqa: E402  (tests/ is on sys.path under pytest)
from test_browser import browser, js, wait_for  # noqa: F401,E402  (the headless Chromium fixture)

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def other_origin():
    """A plain static page on another port: another origin (http://127.0.0.1:<port>)."""
    root = tempfile.mkdtemp(prefix="wsgen-origin-")
    Path(root, "index.html").write_text("<!doctype html><link rel=icon href='data:,'><title>another origin</title><p>dashboard</p>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


FETCH = """
const done = arguments[arguments.length - 1];
const [url, init] = [arguments[0], arguments[1]];
fetch(url, init || {}).then(async (r) => done({status: r.status, body: await r.text(),
                                            seed: r.headers.get('X-Wsgen-Seed'),
                                            acao: r.headers.get('Access-Control-Allow-Origin')}))
                      .catch((e) => done({error: String(e)}));
"""

EVENTSOURCE = """
const done = arguments[arguments.length - 1];
const es = new EventSource(arguments[0]);
const rows = [];
es.onmessage = (e) => rows.push(JSON.parse(e.data));
es.addEventListener('end', (e) => { es.close(); done({rows, end: JSON.parse(e.data)}); });
es.onerror = () => { es.close(); done({rows, error: 'EventSource error, readyState ' + es.readyState}); };
"""


def test_cross_origin_fetch_and_eventsource(browser):
    driver = browser
    driver.set_script_timeout(20)
    ref = wsgen.create("sine", {}, seed=3).take(5).values.tolist()
    with other_origin() as origin, ThreadedServer(allow_origins=[origin], token="t0k") as allowed, \
            ThreadedServer() as closed:
        driver.get(origin + "/")
        base = allowed.http_url
        # fetch of a stream, the token as ?token= (a simple request, no preflight)
        r = driver.execute_async_script(
            FETCH, f"{base}/sine?seed=3&count=5&speed=max&format=ndjson&token=t0k")
        assert r.get("status") == 200, r
        assert r["seed"] == "3"        # an exposed header is readable
        # what the browser was told (read here, outside the browser: JS cannot see these headers)
        h = requests.get(f"{base}/sine?count=1&speed=max&token=t0k", headers={"Origin": origin}, timeout=10).headers
        assert h["access-control-allow-origin"] == origin
        assert {x.strip() for x in h["access-control-expose-headers"].split(",")} == {"X-Wsgen-Seed", "X-Wsgen-Start-Seq"}
        pre = requests.options(f"{base}/composite", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == origin   # no token needed
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        evil = requests.get(f"{base}/sine?count=1&speed=max&token=t0k", headers={"Origin": "http://evil.example"},
                            timeout=10)
        assert "access-control-allow-origin" not in evil.headers
        assert [json.loads(x)["value"] for x in r["body"].splitlines()] == ref
        # the token in an Authorization header, and a POST of a JSON composition: both preflighted
        r = driver.execute_async_script(FETCH, f"{base}/composite?seed=3&count=4&speed=max&format=ndjson",
                                        {"method": "POST", "headers": {"Authorization": "Bearer t0k",
                                                                       "Content-Type": "application/json"},
                                         "body": json.dumps({"interval": 0.5, "base": {"kind": "constant",
                                                                                       "params": {"value": 2}}})})
        assert r.get("status") == 200, r
        assert [json.loads(x)["value"] for x in r["body"].splitlines()] == [2.0] * 4
        # an error answer is readable too (the page can show what was wrong)
        r = driver.execute_async_script(FETCH, f"{base}/sine?amplitude=loud&token=t0k")
        assert r.get("status") == 422 and "amplitude" in r["body"], r
        # EventSource on the SSE format, to its end event
        r = driver.execute_async_script(EVENTSOURCE, f"{base}/sine?seed=3&count=5&speed=max&format=sse&token=t0k")
        assert "error" not in r, r
        assert [row["value"] for row in r["rows"]] == ref and r["end"] == {"next_seq": 5}
        # a server without --allow-origin: the browser keeps this origin out
        r = driver.execute_async_script(FETCH, f"{closed.http_url}/sine?seed=3&count=5&speed=max")
        assert "error" in r and "Failed to fetch" in r["error"], r
        r = driver.execute_async_script(EVENTSOURCE, f"{closed.http_url}/sine?count=5&speed=max&format=sse")
        assert r["rows"] == [] and "error" in r
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    # the refused requests are logged by Chromium as CORS errors, the 422 as such, and nothing else
    assert severe and all("CORS" in m or "Access-Control-Allow-Origin" in m or "ERR_FAILED" in m
                          or "status of 422" in m for m in severe), severe
