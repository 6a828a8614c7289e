"""The access log and error counter of the HTTP app (its outermost middleware)."""
from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

#: (the logger of the HTTP app, whose name log configurations use)
log = logging.getLogger("wsgen.server.http.app")


class AccessLog:
    """What each request leaves behind: one log line when it ends (a stream:
    when it closes) with the client address, status, the ``error`` code of
    an error answer and the duration, one more when a stream starts; and
    every error answer (status 4xx/5xx) counted in ``wsgen_errors`` under
    its code with ``path="http"`` (:func:`error_code`; an exception that
    escapes the app before an answer is Starlette's 500, counted as
    ``internal_error``). The path only, never the query string (it may
    carry ``?token=``).

    Outermost middleware: it sees the answers of the token and Host gates
    too. The counter is ``app.state.metrics`` of the app serving the
    request, looked up per request (the server replaces it after
    :func:`create_app`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        client = scope.get("client")
        addr = f"{client[0]}:{client[1]}" if client else "?"
        path = scope.get("path", "")
        state: dict[str, Any] = {"status": None, "code": None}

        def failed(code: str) -> None:
            state["code"] = code
            metrics = getattr(scope["app"].state, "metrics", None)   # (Starlette sets scope["app"])
            if metrics is not None:
                metrics.error(code, "http")

        async def observed(message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if message["status"] == 200 and any(k.lower() == b"x-wsgen-seed" for k, _ in message.get("headers", [])):
                    log.info("http stream open %s %s %s", addr, scope.get("method"), path)
            elif message["type"] == "http.response.body" and (state["status"] or 0) >= 400 and state["code"] is None:
                failed(error_code(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            if state["status"] is None:      # ServerErrorMiddleware, outside, answers 500
                state["status"] = 500
                failed("internal_error")
            raise
        finally:
            code = f" code={state['code']}" if state["code"] else ""
            log.info("http %s %s %s status=%s%s duration=%.3fs", addr, scope.get("method"), path,
                     state["status"] if state["status"] is not None else "-", code, time.monotonic() - started)


def error_code(body: bytes) -> str:
    """The ``error`` code of an error answer's JSON body
    (``{"error": "invalid_params", ...}``); ``http_error`` for a body without
    one (plain text)."""
    try:
        code = orjson.loads(body).get("error")
    except (ValueError, AttributeError):
        code = None
    return code if isinstance(code, str) and code else "http_error"
