"""HTTP port: answers to requests that went wrong on the client's side.

Neither is a server error (no 500, no traceback, no ``internal_error``):

* :func:`incomplete_body`: a request body that ended early (the client
  disconnected mid-body, or sent a chunk size the parser refused, after
  which uvicorn has already answered 400 itself and dropped the
  connection). Starlette raises ``ClientDisconnect`` from the body reader;
  this handler answers 400 ``incomplete_body`` (which goes nowhere when the
  client has gone, but is what the access log and ``wsgen_errors`` record).
* :class:`WebSocketElsewhere`: a WebSocket upgrade to a path the HTTP port
  does not serve as WebSocket (it serves ``/ws`` and ``/ws/...``:
  :mod:`wsgen.server.http.websocket`) gets 404 with a JSON body naming the endpoints
  (``ws://<host>:<ws port><path>``, and ``ws://<host>:<http port>/ws<path>``)
  instead of a bare 403. It is the one place to change if the HTTP port
  serves more WebSocket paths.

:func:`install` adds both to an app.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from wsgen.server.http.websocket import WS_PATH

__all__ = ["WebSocketElsewhere", "incomplete_body", "install", "ws_endpoint"]

log = logging.getLogger("wsgen.server.http.app")


async def incomplete_body(request: Request, exc: ClientDisconnect) -> JSONResponse:
    """400 ``incomplete_body``: the client went away (or broke the chunked
    encoding) before its request body was complete."""
    return JSONResponse({"error": "incomplete_body", "message": "the request body ended before it was complete "
                         "(the client disconnected, or sent an invalid chunk); send the whole body"},
                        status_code=400)


def _asked(host_header: str | None) -> tuple[str | None, int | None]:
    """The host name (an IPv6 address in brackets) and port of a ``Host``
    header, each None when absent or unparsable."""
    try:
        asked = urlsplit("//" + (host_header or ""))
        name, port = asked.hostname, asked.port
    except ValueError:
        return None, None
    return (f"[{name}]" if name and ":" in name else name), port


def ws_endpoint(host_header: str | None, bind_host: str, ws_port: int, path: str) -> str:
    """The WebSocket URL for ``path`` on the dedicated WebSocket port: the
    host the client used (its ``Host`` header, without port), else the
    address the server is bound to."""
    name = _asked(host_header)[0] or (f"[{bind_host}]" if ":" in bind_host else bind_host)
    return f"ws://{name}:{ws_port}{path or '/'}"


def _here(host_header: str | None, bind_host: str, scope: Scope, path: str) -> str:
    """The same endpoint under this port's ``/ws`` paths (:mod:`wsgen.server.http.websocket`),
    at the address the client asked for: its ``Host`` header as sent (name and
    port; behind a proxy, the proxy's), else the address and port the server
    is bound to."""
    ws_path = WS_PATH + (path if path != "/" else "")
    name, port = _asked(host_header)
    if name:
        return f"ws://{name}{f':{port}' if port else ''}{ws_path}"
    port = (scope.get("server") or (None, None))[1]
    return ws_endpoint(host_header, bind_host, port, ws_path)


class WebSocketElsewhere:
    """ASGI middleware: a ``websocket`` scope (an upgrade request that no
    other layer took) is answered with the WebSocket Denial Response
    extension: 404 and ``{"error": "not_found", "message", "ws_url"}``, or 503
    while the WebSocket server is not up. Logged once at INFO."""

    def __init__(self, app: ASGIApp, bind_host: str) -> None:
        self.app = app
        self.bind_host = bind_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        state = scope["app"].state
        ws_port = getattr(state, "ws_port", None)
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        path = scope.get("path", "/")
        if ws_port:
            host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
            url = ws_endpoint(host, self.bind_host, ws_port, path)
            here = _here(host, self.bind_host, scope, path)
            status, body = 404, {"error": "not_found", "ws_url": url, "ws_url_this_port": here,
                                 "message": f"no WebSocket endpoint at {path} on the HTTP port; connect to {url} "
                                            f"(the WebSocket port) or {here} (this port's WebSocket paths, "
                                            f"{WS_PATH} and {WS_PATH}/<generator>), with the same query"}
        else:
            status, body = 503, {"error": "unavailable", "message": "the WebSocket server is not running"}
        client = scope.get("client")
        log.info("http websocket upgrade refused %s %s status=%d: %s", f"{client[0]}:{client[1]}" if client else "?",
                 path, status, body["message"])
        metrics = getattr(state, "metrics", None)
        if metrics is not None:
            metrics.error(body["error"], "http")
        payload = orjson.dumps(body)
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "websocket.http.response.body", "body": payload})
        else:     # a server without the extension: a close is all it can send (it answers 403)
            await send({"type": "websocket.close", "code": 1008})


class _DenialIsNoError(logging.Filter):
    """uvicorn (0.54, websockets-sansio) logs \"ASGI callable returned without
    completing handshake\" at ERROR after a Denial Response it sent itself
    (it only counts an accepted handshake as complete); with
    :class:`WebSocketElsewhere` answering every ``websocket`` scope, that line
    is never an error of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


_DENIAL_FILTER = _DenialIsNoError()


def install(app: FastAPI, bind_host: str) -> None:
    """Add both answers to ``app``."""
    app.add_exception_handler(ClientDisconnect, incomplete_body)
    app.add_middleware(WebSocketElsewhere, bind_host=bind_host)
    logging.getLogger("uvicorn.error").addFilter(_DENIAL_FILTER)   # once: addFilter skips a filter already there
