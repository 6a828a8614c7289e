"""The endpoints about the server rather than a stream: ``/generators``
(catalogue with JSON Schemas), ``/healthz``, ``/readyz``, ``/metrics``
(Prometheus), and the JSON answer of an unknown path."""
from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from wsgen.engine import GENERATORS, catalogue
from wsgen.server.metrics import CONTENT_TYPE


def install(app: FastAPI) -> None:
    """Add the meta endpoints and the JSON error answers to ``app``
    (``app.state.streams``, ``readiness`` and ``metrics`` are read per request)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            names = ", ".join(f"/{n}" for n in GENERATORS)
            return JSONResponse({"error": "not_found", "message": f"no endpoint at {request.url.path}; "
                                 f"streams: {names} (anomaly kinds also under /anomalies/), /composite; "
                                 "see /docs"}, status_code=404)
        return JSONResponse({"error": "http_error", "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.get("/generators", summary="The generators and the JSON Schemas of their parameters", tags=["meta"])
    async def generators() -> JSONResponse:
        return JSONResponse(catalogue())

    @app.get("/healthz", summary="Liveness and open streams", tags=["meta"])
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "pid": os.getpid(), "active_streams": app.state.streams.active,
                             "generators": len(GENERATORS)})

    @app.get("/readyz", summary="Readiness: 200 while accepting streams, 503 from the start of a graceful "
             "shutdown (wsgen.server.readiness)", tags=["meta"])
    async def readyz() -> JSONResponse:
        status, body = app.state.readiness.answer()
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/metrics", summary="Prometheus metrics", tags=["meta"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(app.state.metrics.render(), media_type=CONTENT_TYPE)
