"""``POST /score``: a detector's alarms scored against a regenerated stream.

Two forms of request (:mod:`wsgen.scoring.offline` holds the rules):

* ``Content-Type: application/json``: a definition object with its
  ``detections`` (seqs, or ``{"seq", "score"}`` objects);
* ``Content-Type: text/csv``: the detections as CSV (header ``seq`` and
  optionally ``score``), the definition in ``?definition=<url-encoded JSON>``.

The answer is the figures of :func:`wsgen.scoring.figures.score` (200), or 422 with
``{"error": "invalid_params", "message", "details"}``. The stream is
read and generated again in a worker thread, so the event loop keeps serving,
one request at a time: a request at the limits (a 16 MiB body, 1e7 samples)
needs about 0.4 GB while it is scored, and several at once would multiply
that and take turns at the interpreter lock with the event loop's thread
(stalls of a quarter of a second with three). The others wait, holding only
their bodies.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wsgen.scoring.offline import MAX_SAMPLES, Definition, DefinitionError, parse, read_csv, score_definition

#: Largest request body, bytes.
MAX_BODY = 16 * 1024 * 1024


def _invalid(exc: DefinitionError) -> JSONResponse:
    return JSONResponse({"error": "invalid_params", "message": str(exc), "details": exc.details},
                        status_code=422, headers={"Cache-Control": "no-store"})


def _bad(message: str, field: str) -> JSONResponse:
    return _invalid(DefinitionError(message, [{"field": field, "value": None, "message": message}]))


async def _read(request: Request) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def router() -> APIRouter:
    r = APIRouter(tags=["scoring"])
    one_at_a_time = asyncio.Semaphore(1)

    @r.post("/score", summary="Score a detector's alarms against a stream regenerated from its definition",
            description="JSON body: {generator, params, seed, first, last, window, probation, threshold, "
                        "profile, detections}; or a text/csv body of detections (header seq[,score]) with "
                        "?definition=<url-encoded JSON>. At most "
                        f"{MAX_SAMPLES} samples. Figures as in docs/protocol.md, 'Scoring a detector'.",
            responses={422: {"description": "Invalid definition or detections; details name each field"}})
    async def score(request: Request) -> JSONResponse:
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind not in ("text/csv", "application/json", ""):
            return _bad(f"Content-Type {kind!r}: send application/json (a definition with detections) or "
                        "text/csv (detections, with ?definition=)", "content-type")
        body = await _read(request)
        if body is None:
            return _bad(f"the body is larger than {MAX_BODY} bytes", "body")
        # parsing megabytes of JSON or CSV, and generating the stream, would hold the event loop
        async with one_at_a_time:
            return await asyncio.to_thread(_answer, kind, body, request.query_params.get("definition"))

    return r


def _answer(kind: str, body: bytes, definition: str | None) -> JSONResponse:
    """The answer to one request (in a worker thread)."""
    try:
        if kind == "text/csv":
            if definition is None:
                return _bad("a CSV body needs ?definition=<url-encoded JSON definition>", "definition")
            defn = parse(_json_object(definition, "definition"))
            seqs, scores = read_csv(body.decode("utf-8", "replace"))
        else:
            defn = parse(_json_object(body.decode("utf-8", "replace"), "body"))
            seqs = scores = None
        figures = score_definition(defn, seqs, scores)
    except DefinitionError as exc:
        return _invalid(exc)
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DefinitionError(f"{field} is not JSON ({exc})", [{"field": field, "value": None,
                                                                 "message": "not JSON"}]) from None
    if not isinstance(data, dict):
        raise DefinitionError(f"{field} must be a JSON object (a definition)",
                              [{"field": field, "value": None, "message": "must be an object"}])
    return data


__all__ = ["Definition", "router"]
