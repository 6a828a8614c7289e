"""``pip install .`` (not editable) has everything the server serves.

The wheel is built from the repository, unpacked (a pure-Python wheel is its
installed files) into a folder outside the repository, and ``wsgen serve``
runs from there: the page, its files and the API docs come from the
package, not from the checkout.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import requests

from servers import ServeProcess

ROOT = Path(__file__).resolve().parent.parent


def test_a_built_wheel_serves_the_page_and_the_docs(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = list(dist.glob("wsgen-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    assert {"wsgen/static/web/index.html", "wsgen/static/web/app.js", "wsgen/static/docs/swagger-ui-bundle.js",
            "wsgen/static/datasets/example.csv"} <= names
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    where = subprocess.run([sys.executable, "-c", "import wsgen; print(wsgen.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(site / "wsgen" / "__init__.py"), where.stdout + where.stderr
    with ServeProcess(env=env, cwd=tmp_path) as server:
        page = requests.get(server.http_url + "/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert requests.get(server.http_url + "/static/web/app.js", timeout=10).status_code == 200
        docs = requests.get(server.http_url + "/docs", timeout=10)
        assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
        assert requests.get(server.http_url + "/static/docs/swagger-ui-bundle.js", timeout=10).status_code == 200
        assert requests.get(server.http_url + "/replay?count=3&speed=max", timeout=10).text.count("\n") == 3
