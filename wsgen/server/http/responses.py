"""What a stream answers: the response that streams it, the registry of
open streams, and the error answers of a stream route (422, 503)."""
from __future__ import annotations

import asyncio
from typing import Any

import anyio
from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from wsgen.engine.params import summary

#: Headers of every streamed response (no caching, no proxy buffering).
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}


class StreamRegistry:
    """The app's open streams: how many, and a way to end them all.

    ``close()`` (call it in the event loop, e.g. at shutdown) ends every
    stream at its next chunk or wake-up, cleanly (the response completes).
    """

    def __init__(self) -> None:
        self.active = 0
        self.unpaced = 0      # open streams delivering as fast as read (they share the loop)
        self.closing = False
        self._sleepers: set[asyncio.Future] = set()

    async def sleep(self, delay: float) -> None:
        """``asyncio.sleep(delay)`` that :meth:`close` cuts short."""
        if delay <= 0 or self.closing:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        handle = loop.call_later(delay, _wake, fut)
        self._sleepers.add(fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleepers.discard(fut)

    def close(self) -> None:
        self.closing = True
        for fut in list(self._sleepers):
            _wake(fut)


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class SampleStream(StreamingResponse):
    """A StreamingResponse that always watches for the client leaving (also
    on ASGI servers of spec 2.4, where Starlette would only notice at the
    next write) and always closes its iterator, so a disconnect stops the
    generator at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                async def run() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass  # the client went away mid-write
                    tg.cancel_scope.cancel()

                tg.start_soon(run)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def invalid_params(path: str, details: list[dict[str, Any]]) -> JSONResponse:
    """422 ``invalid_params``: ``invalid parameters for <path>: <summary>`` and the details."""
    return JSONResponse({"error": "invalid_params", "message": f"invalid parameters for {path}: "
                         + summary(details, values=True), "details": details},
                        status_code=422, headers={"Cache-Control": "no-store"})


def limit_reached(max_connections: int) -> JSONResponse:
    """503 ``limit_reached``: the server streams ``max_connections`` already."""
    return JSONResponse({"error": "limit_reached", "message": f"at most {max_connections} streams at once; "
                         "retry later"}, status_code=503, headers={"Retry-After": "5"})
