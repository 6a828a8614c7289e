"""The HTTP app's gates: the bearer token and the Host header (DNS
rebinding), with the WebSocket handshake's rules (:mod:`wsgen.server.access`)."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from wsgen.server.access import HOST_REFUSED, host_allowed, token_ok


#: Paths open without the token: health, the browser page and what it needs
#: to start (no data: the page then asks for the token if the server needs one).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/", "/config.json"})


class TokenGate:
    """Require ``Authorization: Bearer <token>`` (or ``?token=``) on every
    path but :data:`PUBLIC_PATHS` and the static files: the rule of the
    WebSocket handshake (:func:`wsgen.server.access.token_ok`); 401 otherwise."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope["path"].startswith("/static/"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        if token_ok(self.token, request.headers.getlist("authorization"), request.query_params.get("token")):
            return await self.app(scope, receive, send)
        response = JSONResponse({"error": "unauthorized", "message": "missing or wrong bearer token: send "
                                 "'Authorization: Bearer <token>' or add ?token=<token>"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class HostGate:
    """DNS-rebinding guard, the WebSocket handshake's rule
    (:func:`wsgen.server.access.host_allowed`): a Host header that is not a
    loopback name (or is missing or repeated) gets 400 ``bad_host``."""

    def __init__(self, app: ASGIApp, bind_host: str, allowed: tuple[str, ...] = ()) -> None:
        self.app = app
        self.bind_host = bind_host
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        if host_allowed(self.bind_host, host, self.allowed):
            return await self.app(scope, receive, send)
        await JSONResponse({"error": "bad_host", "message": HOST_REFUSED}, status_code=400)(scope, receive, send)
