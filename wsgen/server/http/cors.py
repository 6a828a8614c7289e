"""CORS on the HTTP port: which other origins' pages may read the streams.

One list governs both ports: ``--allow-origin`` (``WSGEN_ALLOW_ORIGINS``,
``Settings.allow_origins``) names the origins allowed to open WebSockets
(:class:`wsgen.server.ws.Gate`) and, here, to read HTTP responses from a browser:
``fetch`` of a stream or of ``/generators``, an ``EventSource`` on
``?format=sse``. ``*`` allows any origin. Without the option no
``Access-Control-Allow-Origin`` is sent (the browser keeps other origins
out; non-browser clients are not concerned), as before.

Starlette's :class:`~starlette.middleware.cors.CORSMiddleware` does the work:
it answers preflights (``OPTIONS`` with ``Access-Control-Request-Method``)
itself, before the token check, and adds the headers to every answer,
errors included (a 422 or 401 is readable to the page that caused it).
Allowed: ``GET``/``POST``, the request headers ``Authorization`` (the
token), ``Content-Type`` (a composition body) and ``Last-Event-ID``; the
response headers ``X-Wsgen-Seed`` and ``X-Wsgen-Start-Seq`` are exposed.
No credentials (cookies) are involved: the token travels in the
``Authorization`` header or ``?token=``.
"""
from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

#: Response headers a cross-origin page may read.
EXPOSED_HEADERS = ("X-Wsgen-Seed", "X-Wsgen-Start-Seq")


def install_cors(app: FastAPI, allow_origins: list[str]) -> bool:
    """Add the CORS middleware for ``allow_origins`` (``"*"``: any); add it
    after the middlewares it must wrap (the token gate). Returns whether it
    was added (not for an empty list)."""
    if not allow_origins:
        return False
    origins = ["*"] if "*" in allow_origins else [o.rstrip("/") for o in allow_origins]
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                       allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                       expose_headers=list(EXPOSED_HEADERS), allow_credentials=False, max_age=600)
    return True
