"""Every third-party module the project imports is declared in pyproject.toml.

A fresh machine installs only what ``pyproject.toml`` declares (``pip
install -e '.[test]'``), so an import that works here only because a package
was installed by hand, or came in as another package's dependency, breaks
there. deptry reads the declarations from ``pyproject.toml`` and the imports
from the code (``wsgen/``, ``tests/``, ``clients/``, ``scripts/``; settings in
``[tool.deptry]``) and reports:

* DEP001: a module imported that no declared requirement provides;
* DEP003: a module imported directly that is only there as the dependency of
  another (``starlette`` through FastAPI, for instance);
* DEP002: a declared requirement that nothing imports.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def deptry(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deptry", "--no-ansi", str(root)], cwd=root, capture_output=True, text=True,
                          timeout=120)


def test_every_import_is_declared():
    r = deptry(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No dependency issues found" in r.stdout + r.stderr


def test_an_undeclared_import_fails_the_check(tmp_path):
    """The check can fail: a copy of the project whose code imports a module
    that pyproject.toml does not declare (one installed here as a dependency
    of a declared package, and one installed nowhere)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "wsgen", tmp_path / "wsgen", ignore=shutil.ignore_patterns("__pycache__", "static"))
    (tmp_path / "wsgen" / "_undeclared.py").write_text("import idna\nimport no_such_module_anywhere\n")
    r = deptry(tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    problems = [line for line in out.splitlines() if "_undeclared.py" in line]
    assert len(problems) == 2, out
    assert "DEP003 'idna' imported but it is a transitive dependency" in problems[0], out
    assert "DEP001 'no_such_module_anywhere' imported but missing from the dependency definitions" in problems[1], out
