"""One HTTP stream's body: a :class:`~wsgen.protocol.session.SessionStream`
of a one-stream :class:`~wsgen.protocol.session.Session` (the WebSocket's
rules: its :class:`~wsgen.engine.pacing.Pacer`, stream times, count /
duration / end of data) sent as lines.

Delivery: sample ``n`` is due at ``t0 + n * interval / speed`` (the pacer,
no drift); samples due within one tick (``settings.tick_s``) go out as one
chunk. Unpaced streams send chunks of at most ``settings.max_block``
samples, sized by time (:mod:`wsgen.server.budget`: unpaced streams split a
few milliseconds per round between them), and let the event loop serve
others between chunks; the client's reading speed paces them. An idle SSE
stream sends a comment every :data:`SSE_KEEPALIVE_S`. A stream ends at its
``count`` / ``duration`` (with the format's footer), or, without a footer,
when the server closes (:class:`~wsgen.server.http.responses.StreamRegistry`).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable

import numpy as np

from wsgen.engine import Generator
from wsgen.protocol import lines
from wsgen.protocol import messages as P
from wsgen.protocol.controls import HttpStreamControls, StreamControls
from wsgen.protocol.session import Chunk, Session, SessionStream
from wsgen.server.budget import COMPOSITION_MAX_RENDER, FIRST_RENDER, UNLIMITED, RenderBudget
from wsgen.server.config import Settings

#: An idle SSE stream sends a comment this often so proxies keep it open.
SSE_KEEPALIVE_S = 15.0


def http_session(settings: Settings) -> Session:
    """The session of one HTTP stream: a grid aligns the streams of one
    connection, and a response carries one, so it has none."""
    session = Session(settings)
    session.grid = None
    return session


def open_stream(session: Session, gen: Generator, opts: HttpStreamControls,
                given: dict[str, Any]) -> SessionStream:
    """Subscribe ``session`` to ``gen`` with the stream controls ``opts``
    (already validated: the model is the subscribe message's own) and the
    generator parameters as ``given`` (they name the interval's key in an
    error). Raises ProtocolError."""
    shared = opts.model_dump(include=set(StreamControls.model_fields))
    msg = P.Subscribe.model_construct(type="subscribe", id="http", generator=gen.name, params=given, **shared)
    return session.open(msg, gen)


class Lines:
    """How a route writes its chunks (a composition's differ): the
    format's header, an encoder ``(block, times) -> bytes``, and each
    sample's stream time."""

    def header(self, fmt: str, gen: Generator) -> bytes:
        return lines.header(fmt, gen.anomalous)

    def encoder(self, fmt: str, gen: Generator) -> Callable[[Any, np.ndarray | None], bytes]:
        return lambda block, times: lines.encode(fmt, block, times)

    def times(self, chunk: Chunk, seq: int, m: int) -> np.ndarray:
        """Stream time (Unix s) of each sample of ``chunk`` (slots ``seq .. seq+m-1``)."""
        return chunk.sub.pacer.stream_times(seq, m, chunk.t)


async def body(app: Any, session: Session, sub: SessionStream, fmt: str, out: Lines) -> AsyncIterator[bytes]:
    """The chunks of one stream (module docstring); counts it in
    ``app.state.streams`` and the metrics while it is open."""
    settings: Settings = app.state.settings
    streams = app.state.streams
    metrics = getattr(app.state, "metrics", None)
    gen, pacer = sub.generator, sub.pacer
    with_times = lines.needs_times(fmt)
    encode = out.encoder(fmt, gen)
    streams.active += 1
    if metrics:
        metrics.http_streams.inc()
    counted_unpaced = False
    try:
        tick = max(settings.tick_s, 0.0)
        block_max = max(1, settings.max_block)
        # chunks sized by time (wsgen.server.budget), encoding included: no chunk holds the loop for long
        budget = RenderBudget(COMPOSITION_MAX_RENDER if gen.name == "composite" else None, FIRST_RENDER)
        sub.budget = sub.seek_budget = UNLIMITED      # (this loop sizes the chunks)
        counted_unpaced = pacer.unpaced
        streams.unpaced += counted_unpaced
        head = out.header(fmt, gen)
        if head:
            yield head
        last_sent = time.monotonic()
        while not streams.closing:
            now = time.monotonic()
            if sub.finished(now):
                break
            if pacer.unpaced:
                # Fair share: unpaced streams split the render budget between
                # them, so a paced stream waits for one round of small chunks
                # (about RENDER_BUDGET_S in all), not for N big ones.
                limit = budget.size(block_max, streams.unpaced)
            else:
                m = sub.due(now)
                if m <= 0:
                    wake = max(sub.next_due(), last_sent + tick)
                    if fmt == "sse":
                        wake = min(wake, last_sent + SSE_KEEPALIVE_S)
                    await streams.sleep(wake - now)
                    if fmt == "sse" and time.monotonic() - last_sent >= SSE_KEEPALIVE_S:
                        last_sent = time.monotonic()
                        yield lines.keepalive(fmt)
                    continue
                limit = budget.size(min(m, block_max))
            seq = gen.seq
            started = budget.clock()
            chunk = sub.take(now, limit)
            if chunk is None:        # (nothing due after all)
                await streams.sleep(tick)
                continue
            m = gen.seq - seq
            if with_times:
                data = encode(chunk.block, out.times(chunk, seq, m))
            else:
                data = encode(chunk.block, None)   # text (a composition with channels: one array per line)
            budget.spent(m, budget.clock() - started)   # the chunk's render and encoding
            last_sent = time.monotonic()
            yield data
            if metrics:
                metrics.sent_http(gen.name, m)
            # Let other clients run between chunks: a send that does not
            # block would otherwise keep the loop for this stream alone.
            await asyncio.sleep(0)
        else:
            return  # server shutting down: no end event, clients may reconnect
        tail = lines.footer(fmt, gen.seq)
        if tail:
            yield tail
    finally:
        streams.active -= 1
        streams.unpaced -= counted_unpaced
        if metrics:
            metrics.http_streams.dec()
        session.close()
