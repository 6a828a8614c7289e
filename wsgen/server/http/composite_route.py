"""The composition routes: ``GET /composite?spec=<URL-encoded JSON>``,
``POST /composite`` (the spec as the JSON body, read bounded in size and
time) and ``GET /composite/presets``.

The stream controls are query parameters in both; ``count`` counts slots
(sample indices): the stream sends exactly
``create_composite(spec, seed).take(count)``'s delivered samples (fewer rows
with gaps, more with duplicates). Rows carry the labels and ground-truth
events (formats in :mod:`wsgen.protocol.lines`, channels in
:mod:`wsgen.protocol.channel_lines`); an invalid spec answers 422 with
details naming the dotted field (``anomalies.0.height.low``).
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from wsgen.engine import InvalidParams
from wsgen.engine.composite import composition_catalogue, create_composite, validate_spec
from wsgen.protocol import channel_lines, lines
from wsgen.protocol.controls import HttpStreamControls
from wsgen.protocol.session import Chunk, Session
from wsgen.server import offload
from wsgen.server.config import Settings
from wsgen.server.http import delivery
from wsgen.server.http.openapi import composite_operation
from wsgen.server.http.stream_route import GeneratorRoute

#: Largest composition accepted as JSON (body or ``?spec=``), in bytes.
MAX_SPEC_BYTES = 1 << 20


class CompositionLines(delivery.Lines):
    """A composition's chunks: labels and events (a column per channel with channels)."""

    def header(self, fmt: str, gen) -> bytes:
        if getattr(gen, "channels", None):      # several channels: a column each (wsgen.protocol.channel_lines)
            return channel_lines.header(fmt, gen.channels)
        return lines.header(fmt, True, events=True)

    def encoder(self, fmt: str, gen):
        return channel_lines.formatter(fmt, gen)

    def times(self, chunk: Chunk, seq: int, m: int) -> np.ndarray:
        # the slot's time plus the sample's own offset from it (jitter, held back)
        return chunk.t + (chunk.block.offsets - seq * chunk.sub.pacer.interval)


async def read_spec_body(request: Request, timeout_s: float | None) -> tuple[str, dict[str, Any] | None]:
    """The request body as text (at most :data:`MAX_SPEC_BYTES` read, within
    ``timeout_s``: a client trickling a body must not hold a connection
    for ever), and the problem with it as a detail, or None."""
    body = bytearray()

    async def read() -> None:
        async for piece in request.stream():      # bounded: never the whole of a huge body
            body.extend(piece)
            if len(body) > MAX_SPEC_BYTES:
                break

    timed_out = False
    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        timed_out = True
    raw = body.decode("utf-8", "replace")
    if timed_out:
        return raw, {"field": "spec", "value": f"<{len(body)} bytes>",
                     "message": f"the request body did not arrive within {timeout_s} s"}
    if len(body) > MAX_SPEC_BYTES:
        return raw, {"field": "spec", "value": f"<{len(body)}+ bytes>",
                     "message": f"too large: a composition is at most {MAX_SPEC_BYTES} bytes of JSON"}
    if not raw.strip():
        return raw, {"field": "spec", "value": None,
                     "message": "missing: send the composition as the JSON request body"}
    return raw, None


class CompositeRoute(GeneratorRoute):
    """A composition stream: the spec in the query (``GET``) or the body (``POST``, ``body``)."""

    lines = CompositionLines()

    def __init__(self, app: FastAPI, settings: Settings, path: str, body: bool) -> None:
        super().__init__(app, settings, None, path, fields=() if body else ("spec",))
        self.body = body

    async def _generator(self, request: Request, session: Session, params: dict[str, str],
                         opts: HttpStreamControls, errors: list[dict[str, Any]]):
        if self.body:
            # bounded in time too: the body gets as long as the request head
            raw, problem = await read_spec_body(request, self.settings.http_header_timeout_s or None)
        else:
            raw, problem = params.get("spec"), None
            if raw is None:
                problem = {"field": "spec", "value": None, "message": "missing: the composition as "
                           "URL-encoded JSON (?spec=...), or POST it as the JSON body"}
        data = None
        if problem is None:
            try:
                data = orjson.loads(raw)   # strict JSON, bounded nesting (no RecursionError)
            except ValueError as exc:
                problem = {"field": "spec", "value": raw[:200], "message": f"not valid JSON: {exc}"}
        if problem is None:
            try:
                spec = await offload.run(validate_spec, data)   # off the event loop (up to 1 MB of JSON)
            except InvalidParams as exc:
                errors.extend(exc.details)
            else:
                self._check(session, spec, {}, errors)
        else:
            errors.append(problem)
        if errors:
            return None
        try:
            # off the event loop: a start_seq seek replays events (up to SEEK_BUDGET_S of CPU)
            return await offload.run(create_composite, spec, seed=opts.seed, start_seq=opts.start_seq)
        except InvalidParams as exc:
            errors.extend(exc.details)
            return None

    def openapi(self) -> dict[str, Any]:
        return composite_operation(self.body, self.query.public)


def install(app: FastAPI, settings: Settings) -> None:
    """Add ``GET``/``POST /composite`` and ``GET /composite/presets`` to ``app``."""
    for method, body in (("GET", False), ("POST", True)):
        route = CompositeRoute(app, settings, "/composite", body)
        app.add_api_route(
            "/composite", route, methods=[method], response_class=PlainTextResponse,
            operation_id=f"stream_composite_{method.lower()}",
            summary="Stream a composition" + (" (spec as the JSON body)" if body else " (spec as ?spec=<json>)"),
            description="A composition: a base signal plus noise, anomaly injectors and stream faults, with "
                        "the ground truth (labels, events) in every row of ndjson/csv/sse. See "
                        "docs/compositions.md; presets at GET /composite/presets.",
            tags=["compositions"], openapi_extra=route.openapi(),
        )


def install_presets(app: FastAPI) -> None:
    """Add ``GET /composite/presets``: the CompositionSpec JSON Schema and the five anomaly kinds."""
    @app.get("/composite/presets", summary="The composition JSON Schema and the five anomaly kinds as presets",
             tags=["compositions"])
    async def composite_presets() -> JSONResponse:
        return JSONResponse(composition_catalogue())
