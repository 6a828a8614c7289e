"""HTTP endpoints of the recorded series: ``POST /datasets`` (upload) and
``GET /datasets`` (list), mounted by :func:`install` on the HTTP app.

``POST /datasets?name=<file>`` with the file as the raw request body
(``curl --data-binary @load.csv``) stores it under the data directory
(``wsgen serve --data-dir``) as ``<file>`` (a name ending in .csv, .parquet or
.pq; see :func:`wsgen.engine.datasets.check_name`), after reading it the way
``replay`` will (:func:`wsgen.engine.datasets.read`, in a worker thread) with the
columns given as ``value_column`` (default ``value``), ``time_column`` and
``label_column`` query parameters. Answers:

* 201 ``{"name", "rows", "bytes", "labelled", "median_step_s"}``: stored;
  replay it with ``{"generator": "replay", "params": {"file": name, ...}}``;
* 413 ``too_large``: the body is over ``--max-upload-bytes`` (read no
  further than that);
* 409 ``exists``: a file of that name is there (``overwrite=true`` replaces it);
* 422 ``invalid_dataset``: the file cannot be replayed; the message (and
  the one detail's) names the row and column, the detail's ``field`` the
  parameter (nothing is stored);
* 422 ``invalid_params``: a bad name or query parameter;
* 404 ``no_data_dir``: the server has no data directory; 403
  ``uploads_off``: ``--max-upload-bytes 0``.

The body must arrive within the HTTP header timeout after the request head
(a trickled upload cannot hold a connection). Writing is atomic: the upload
goes to a hidden temporary file, renamed once valid.

``GET /datasets``: ``{"data_dir": bool, "files": [{"name", "bytes"}]}``, the
replayable files of the data directory (sorted by name).
"""
from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from wsgen.engine import datasets
from wsgen.server.config import Settings

__all__ = ["install"]

_QUERY = ("name", "value_column", "time_column", "label_column", "overwrite", "token")


def _error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def install(app: FastAPI, settings: Settings) -> None:
    """Add ``POST /datasets`` and ``GET /datasets`` to ``app``."""

    @app.post("/datasets", status_code=201, tags=["recorded series"],
              summary="Upload a CSV or Parquet file for replay (raw body; ?name=file.csv)")
    async def upload(request: Request) -> JSONResponse:
        root = datasets.data_dir()
        if root is None:
            return _error(404, "no_data_dir", "this server has no data directory: start it with --data-dir DIR")
        limit = settings.max_upload_bytes
        if limit <= 0:
            return _error(403, "uploads_off", "uploads are off on this server (--max-upload-bytes 0)")
        query = dict(request.query_params)
        unknown = [k for k in query if k not in _QUERY]
        if unknown:
            return _error(422, "invalid_params", f"unknown parameter {unknown[0]!r}; allowed: {', '.join(_QUERY)}",
                          [{"field": unknown[0], "value": query[unknown[0]], "message": "unknown parameter"}])
        name = query.get("name", "")
        problem = datasets.check_name(name)
        if problem:
            return _error(422, "invalid_params", f"name: {problem}", [{"field": "name", "value": name,
                                                                      "message": problem}])
        overwrite = query.get("overwrite", "false").lower()
        if overwrite not in ("true", "false", "1", "0"):
            return _error(422, "invalid_params", "overwrite: must be true or false",
                          [{"field": "overwrite", "value": query["overwrite"], "message": "must be true or false"}])
        target = root / name
        clash = _path_clash(root, name)
        if clash:
            return _error(409, "exists", clash)
        if target.exists() and overwrite in ("false", "0"):
            return _error(409, "exists", f"{name} exists in the data directory; add overwrite=true to replace it")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, "too_large", f"the upload is {declared} bytes; at most {limit} (--max-upload-bytes)")

        body = bytearray()
        too_large = False

        async def read() -> None:
            nonlocal too_large
            async for piece in request.stream():
                body.extend(piece)
                if len(body) > limit:
                    too_large = True
                    break

        deadline = settings.http_header_timeout_s or None
        try:
            await asyncio.wait_for(read(), deadline)
        except asyncio.TimeoutError:
            return _error(422, "invalid_params", f"the request body did not arrive within {deadline} s")
        if too_large:
            return _error(413, "too_large", f"the upload is over {limit} bytes (--max-upload-bytes)")
        if not body:
            return _error(422, "invalid_params", "empty body: send the file as the request body")

        columns = {k: query.get(k, "value" if k == "value_column" else "") for k in
                   ("value_column", "time_column", "label_column")}
        tmp = target.parent / f".upload-{secrets.token_hex(8)}{target.suffix}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            await anyio.to_thread.run_sync(tmp.write_bytes, bytes(body))
            try:
                series = await anyio.to_thread.run_sync(lambda: datasets.read(tmp, display=name, **columns))
            except datasets.DatasetError as exc:
                return _error(422, "invalid_dataset", str(exc), [exc.detail(columns.get(exc.field, name))])
            os.replace(tmp, target)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            # a folder or file of that name appeared meanwhile (the check above came first)
            return _error(409, "exists", _path_clash(root, name) or f"{name} clashes with a file or folder of the "
                          "data directory; pick another name")
        finally:
            if tmp.exists():
                tmp.unlink()
        return JSONResponse({"name": name, "rows": len(series), "bytes": len(body),
                             "labelled": series.labels is not None, "median_step_s": series.median_step},
                            status_code=201, headers={"Cache-Control": "no-store"})

    @app.get("/datasets", tags=["recorded series"], summary="The replayable files of the data directory")
    async def listing() -> JSONResponse:
        root = datasets.data_dir()
        if root is None:
            return JSONResponse({"data_dir": False, "files": []})
        files = await anyio.to_thread.run_sync(_listing, root)
        return JSONResponse({"data_dir": True, "files": files}, headers={"Cache-Control": "no-store"})


def _path_clash(root: Path, name: str) -> str | None:
    """Why ``name`` cannot be a file under ``root`` (a folder has that name,
    or a file stands where one of its folders would be), or None."""
    target = root / name
    if target.is_dir():
        return f"{name} is a folder in the data directory; pick another name"
    for parent in target.relative_to(root).parents:
        if parent != Path(".") and (root / parent).exists() and not (root / parent).is_dir():
            return f"{parent.as_posix()} is a file in the data directory: {name} cannot go under it; pick another name"
    return None


def _listing(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and datasets.check_name(name) is None:
            out.append({"name": name, "bytes": path.stat().st_size})
    return out
