"""Named streams over HTTP: list, stream, and the operator's changes.

* ``GET /streams``: the control plane's state and every stream's
  definition, origin, live and oldest seq, latest params and changes.
* ``GET /streams/<name>?format=&start_seq=&count=``: the stream's samples
  (formats of :mod:`wsgen.protocol.lines`: text, ndjson, csv, sse; ``seq`` and ``t``
  on the stream's own numbering and clock), from the live sample or from
  ``start_seq`` back to the history (an SSE client reconnecting with
  ``Last-Event-ID`` resumes after it); endless unless ``count``.
* Operator (header ``X-Wsgen-Admin-Token: <admin token>``, or
  ``?admin_token=``; a server with ``--token`` also wants the read token as
  usual):

  - ``PUT /streams/<name>``: create (body: the definition, ``name``
    optional); 201, or 409 ``stream_exists``;
  - ``DELETE /streams/<name>``: delete; subscribers get ``unsubscribed``;
  - ``POST /streams/<name>``: a change, body ``{"op": "update", "params":
    {...}}`` or ``{"op": "inject", "anomaly": {...}, "duration": s}``, both
    with an optional ``seq``; answers ``{"op", "seq", "params"}``: the seq
    the change applies from on every process.

Errors: JSON ``{"error": code, "message", "details"?}`` with the status of
:class:`wsgen.streams.named.NamedError` (403 forbidden, 404 unknown_stream, 409
stream_exists / too_late, 422 invalid_params / not_supported, 503
control_plane_unavailable).
"""
from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from wsgen.protocol import lines
from wsgen.protocol.controls import controls_from_text
from wsgen.server.access import token_ok
from wsgen.server.http.query import resume_seq
from wsgen.server.http.responses import STREAM_HEADERS, SampleStream, invalid_params
from wsgen.streams.named import FORBIDDEN, INVALID_PARAMS, NamedError, NamedStreams

ADMIN_HEADER = "x-wsgen-admin-token"
#: The stream controls a named stream takes (its seed, speed and end are the stream's own).
_CONTROLS = ("format", "start_seq", "count")


def _error(exc: NamedError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    return JSONResponse(body, status_code=exc.status)


def _named(request: Request) -> NamedStreams:
    named = getattr(request.app.state.settings, "named", None)
    if named is None:
        raise NamedError("unknown_stream", "this server has no named streams")
    return named


def _check_admin(request: Request) -> None:
    expected = request.app.state.settings.admin_token
    if not expected:
        raise NamedError(FORBIDDEN, "operator changes are off on this server: start it with --admin-token "
                         "(or WSGEN_ADMIN_TOKEN)")
    given = request.headers.get(ADMIN_HEADER)
    if given is None:
        given = request.query_params.get("admin_token")
    if given is None or not token_ok(expected, [], given):
        raise NamedError(FORBIDDEN, "changing named streams needs the operator token: send the header "
                         "'X-Wsgen-Admin-Token: <token>' (or ?admin_token=)")


async def _submit(named: NamedStreams, entry: dict[str, Any]) -> dict[str, Any]:
    result = named.plane.submit(entry)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise NamedError(INVALID_PARAMS, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise NamedError(INVALID_PARAMS, "the body must be a JSON object")
    return body


async def _as_operator(request: Request, work: Callable[[NamedStreams], Awaitable[Response]]) -> Response:
    """``work(named)`` for the operator (:func:`_check_admin`); a NamedError becomes its JSON answer."""
    try:
        _check_admin(request)
        return await work(_named(request))
    except NamedError as exc:
        return _error(exc)


def router() -> APIRouter:
    """The ``/streams`` routes (the app's ``state.settings.named`` holds the streams)."""
    r = APIRouter(tags=["named streams"])

    @r.get("/streams", summary="Named streams: definitions, seqs, changes and the control plane's state")
    async def list_streams(request: Request) -> JSONResponse:
        named = getattr(request.app.state.settings, "named", None)
        if named is None:
            return JSONResponse({"control_plane": None, "streams": []})
        return JSONResponse({"control_plane": named.plane.status(), "margin_s": named.margin_s,
                             "streams": named.describe()})

    @r.get("/streams/{name:path}", summary="Stream a named stream (text, ndjson, csv, sse)")
    async def stream(request: Request, name: str) -> Response:
        try:
            named = _named(request)
            shared = named.get(name)
        except NamedError as exc:
            return _error(exc)
        given = {k: v for k, v in request.query_params.items() if k not in ("token", "admin_token")}
        opts, problems = controls_from_text({k: v for k, v in given.items() if k in _CONTROLS})
        problems += [{"field": k, "value": v, "message": "unknown parameter; allowed: " + ", ".join(_CONTROLS)
                      + ", token"} for k, v in given.items() if k not in _CONTROLS]
        fmt, count = opts.format, opts.count
        start = opts.start_seq if "start_seq" in given else None
        if fmt == "sse" and start is None:      # an EventSource reconnecting
            start, problem = resume_seq(request)
            problems += [problem] if problem else []
        live = shared.live_seq()
        oldest = max(shared.origin, live - shared.cap)
        if start is not None and start < oldest:
            problems.append({"field": "start_seq", "value": start, "message": f"must be >= {oldest}, the oldest "
                             f"sample kept (history {shared.cap}); the live sample is {live}"})
        if problems:
            return invalid_params(f"/streams/{name}", problems)
        seq = live if start is None else start
        headers = dict(STREAM_HEADERS, **{"X-Wsgen-Start-Seq": str(seq), "X-Wsgen-Stream": name})
        return SampleStream(_body(request.app, named, shared, seq, count, fmt), media_type=lines.FORMATS[fmt],
                            headers=headers)

    @r.put("/streams/{name:path}", summary="Create a named stream (operator)", status_code=201)
    async def create(request: Request, name: str) -> Response:
        async def work(named: NamedStreams) -> Response:
            body = await _json_body(request)
            if body.setdefault("name", name) != name:
                raise NamedError(INVALID_PARAMS, f"the body's name {body['name']!r} is not the path's {name!r}",
                                 [{"field": "name", "value": body["name"], "message": "must match the path"}])
            result = await _submit(named, named.request_define(body))
            stream = named.streams.get(name)
            return JSONResponse({"created": name, "origin": result.get("origin"),
                                 "stream": stream.describe() if stream else None}, status_code=201)
        return await _as_operator(request, work)

    @r.delete("/streams/{name:path}", summary="Delete a named stream (operator)")
    async def delete(request: Request, name: str) -> Response:
        async def work(named: NamedStreams) -> Response:
            await _submit(named, named.request_delete(name))
            return JSONResponse({"deleted": name})
        return await _as_operator(request, work)

    @r.post("/streams/{name:path}", summary="Update or inject into a named stream (operator)")
    async def change(request: Request, name: str) -> Response:
        async def work(named: NamedStreams) -> Response:
            body = await _json_body(request)
            op, seq = body.get("op"), body.get("seq")
            if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
                raise NamedError(INVALID_PARAMS, "seq must be a non-negative integer",
                                 [{"field": "seq", "value": seq, "message": "must be an integer >= 0"}])
            allowed = {"update": {"op", "params", "seq"}, "inject": {"op", "anomaly", "duration", "seq"}}
            if op not in allowed:
                raise NamedError(INVALID_PARAMS, "op must be \"update\" or \"inject\"",
                                 [{"field": "op", "value": op, "message": "must be update or inject"}])
            unknown = sorted(set(body) - allowed[op])
            if unknown:
                raise NamedError(INVALID_PARAMS, f"unknown field {unknown[0]!r} for {op}; allowed: "
                                 + ", ".join(sorted(allowed[op])),
                                 [{"field": unknown[0], "value": body[unknown[0]], "message": "unknown field"}])
            if op == "update":
                entry = named.request_update(name, body.get("params") or {}, seq)
            else:
                entry = named.request_inject(name, body.get("anomaly"), body.get("duration"), seq)
            result = await _submit(named, entry)
            if result.get("skipped"):
                raise NamedError(INVALID_PARAMS, f"the change was not applied: {result['skipped']}")
            return JSONResponse({"op": op, "stream": name, "seq": result["seq"], "late": result.get("late", False),
                                 "params": result.get("params")})
        return await _as_operator(request, work)

    return r


async def _body(app, named: NamedStreams, shared, seq: int, count: int | None, fmt: str):
    """The chunks of one HTTP subscription to a named stream."""
    streams = app.state.streams
    metrics = getattr(app.state, "metrics", None)
    end = None if count is None else seq + count
    tick = max(app.state.settings.tick_s, 0.001)
    block_max = max(1, min(app.state.settings.max_block, shared.cap or 1))
    pacer = shared.pacer
    streams.active += 1
    if metrics:
        metrics.http_streams.inc()
    try:
        head = lines.header(fmt, shared.labelled)
        if head:
            yield head
        while not streams.closing and named.streams.get(shared.name) is shared:
            if end is not None and seq >= end:
                break
            now = time.monotonic()
            m = pacer.due_count(seq, now)
            if m <= 0:
                await streams.sleep(max(pacer.due_time(seq) - now, tick))
                continue
            m = min(m, block_max, end - seq if end is not None else m)
            shared.advance(seq + m)
            if seq < shared.hist_seq:
                seq = shared.hist_seq
                continue
            block = shared.read(seq, seq + m)
            if fmt == "text":
                chunk = lines.text(block.values)
            else:
                chunk = lines.encode(fmt, block, shared.times_of(seq, m))
            seq += m
            yield chunk
            if metrics:
                metrics.sent_http(shared.kind, m)
            await asyncio.sleep(0)
        else:
            return
        tail = lines.footer(fmt, seq)
        if tail:
            yield tail
    finally:
        streams.active -= 1
        if metrics:
            metrics.http_streams.dec()
