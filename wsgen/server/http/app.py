"""HTTP compatibility adapter: the original service's endpoints, streamed.

``create_app(settings)`` builds a FastAPI app serving every generator at the
original service's path (``/sine``, ``/random``, ... plus ``/triangle``) and
the anomaly kinds also under ``/anomalies/<name>``. A script written for the
original (``requests.get(url, stream=True)``, one value per line) works
unchanged against it: same query parameter names and defaults, one sample per
line with three decimals, paced by ``interval`` (``data_interval``, its alias on the anomaly kinds).

Query parameters of a stream endpoint:

* the generator's parameters (its pydantic model is the only source of their
  names, defaults, bounds and OpenAPI documentation);
* ``seed`` (integer in [0, 2**64); drawn when omitted and returned in the
  ``X-Wsgen-Seed`` response header), ``start_seq`` (first sample index);
* ``speed``: delivery speed-up (a number in (0, 1e6], or ``max`` = as fast
  as the client reads). Stream times and anomaly placement do not change;
* ``count``: stop after this many samples; ``duration``: stop before the
  first sample whose stream time is ``duration`` seconds or more after the
  first one's (stream seconds: at ``speed=1`` also seconds of delivery; with
  an interval of 0, stream time is wall-clock time). Where the generator has
  a parameter of the same name (``count-per-duration``'s ``duration``, the
  window length), the stream control is called ``stream_duration`` instead;
* ``format``: ``text`` (default), ``ndjson``, ``csv`` or ``sse``
  (see :mod:`wsgen.protocol.lines`);
* ``token``: the bearer token, when the server requires one and the client
  cannot send an ``Authorization: Bearer`` header (``EventSource``).

Every parameter is validated before a byte of the stream is sent, the
generator included (cross-field rules such as ``min_val <= max_val``); any
problem, an unknown or repeated parameter too, answers 422 with
``{"error": "invalid_params", "message", "details": [{field, value,
message}]}``.

Delivery: sample ``n`` is due at ``t0 + n * interval / speed`` (``Pacer``,
no drift); samples due within one tick (``settings.tick_s``) go out as one
chunk. Unpaced streams send chunks of at most ``settings.max_block``
samples, sized by time (:mod:`wsgen.server.budget`: unpaced streams split a few
milliseconds per round between them), and let the event loop serve others
between chunks; the client's reading speed paces them. A generator that may
be costly to build (a composition, a ``start_seq``) is built in a worker
thread (:mod:`wsgen.server.offload`). A client that disconnects ends its stream at once.

Compositions (docs/compositions.md): ``GET /composite?spec=<URL-encoded
JSON>`` or ``POST /composite`` (the spec as the JSON body), with the same
stream controls as query parameters, stream ``create_composite(spec,
seed).take(count)``'s delivered samples (``count`` counts slots, i.e. sample
indices; gaps send fewer rows, duplicates more). Rows carry the labels and
ground-truth events (formats in :mod:`wsgen.protocol.lines`); an invalid spec answers
422 with details naming the dotted field (``anomalies.0.height.low``).
``GET /composite/presets``: the CompositionSpec JSON Schema and the five
anomaly kinds as presets. With ``format=sse`` and faults, ``Last-Event-ID``
resumes at ``id + 1`` as a slot, which is exact only without
``out_of_order``/``duplicates`` before it.

Other endpoints: ``/docs`` (Swagger UI, vendored: no CDN), ``/openapi.json``,
``/generators`` (catalogue with JSON Schemas), ``/healthz``, ``/metrics``
(Prometheus).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from importlib.resources import files
from typing import Any, AsyncIterator
from urllib.parse import quote

import anyio
import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from wsgen.protocol import channel_lines
from wsgen.protocol import lines
from wsgen.server import offload
from wsgen.server.budget import COMPOSITION_MAX_RENDER, FIRST_RENDER, RenderBudget
from wsgen.server.access import HOST_REFUSED, host_allowed, loopback_bound, token_ok
from wsgen.server.readiness import Readiness
from wsgen.server.config import Settings
from wsgen.protocol.controls import why_not
from wsgen.server.http.cors import install_cors
from wsgen.engine import ANOMALY_KINDS, GENERATORS, GeneratorSpec, InvalidParams, catalogue, create, validate_params
from wsgen.engine.composite import CompositionSpec, composition_catalogue, create_composite, validate_spec
from wsgen.engine.pacing import Pacer
from wsgen.protocol.messages import (MAX_SPEED_FACTOR, SEED_LIMIT, SEED_RULE, SPEED_RULE, seed_from_text,
                                     speed_from_text)

__all__ = ["CONTROLS", "StreamRegistry", "create_app"]

#: Largest composition accepted as JSON (body or ``?spec=``), in bytes.
MAX_SPEC_BYTES = 1 << 20

#: ``maxLength`` the OpenAPI document gives a list parameter's text (keeps
#: generated URLs under the HTTP server's request-line limit; not enforced).
LIST_PARAM_TEXT_MAX = 1000
#: Largest ``start_seq`` (and ``count``): integers JavaScript holds exactly.
MAX_SEQ = 2**53
#: Longest ``duration`` of a stream, in seconds (about 31 years).
MAX_DURATION_S = 1e9
#: An idle SSE stream sends a comment this often so proxies keep it open.
SSE_KEEPALIVE_S = 15.0

_INT = re.compile(r"\+?[0-9]{1,20}")

#: Stream controls: name -> (OpenAPI schema, description).
CONTROLS: dict[str, tuple[dict[str, Any], str]] = {
    "seed": ({"type": "integer", "minimum": 0, "maximum": SEED_LIMIT - 1},
             "Seed of the random streams, in [0, 2**64). Omitted: one is drawn and returned in the "
             "X-Wsgen-Seed response header. Same name, parameters and seed: same values, here and over "
             "WebSocket."),
    "speed": ({"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SPEED_FACTOR},
                         {"type": "string", "enum": ["max"]}], "default": 1},
              "Delivery speed-up: a number in (0, 1e6], or `max` (as fast as the client reads). "
              "Timestamps and anomaly placement do not change."),
    "count": ({"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
              "End the stream after this many samples (default: endless). Set it when trying a stream "
              "out on this page."),
    "duration": ({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
                 "End the stream before the first sample whose stream time is this many seconds after "
                 "the first sample's (stream seconds; at speed 1 also seconds of delivery). Default: endless."),
    "format": ({"type": "string", "enum": list(lines.FORMATS), "default": "text"},
               "`text`: one value per line, 3 decimals (the original format). `ndjson`: one JSON object per "
               "line {seq, t, value[, label]}. `csv`: header `seq,t,value[,label]` then rows. `sse`: "
               "Server-Sent Events (`id: seq`, `data: <json>`)."),
    "start_seq": ({"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "default": 0},
                  "Index of the first sample (resume a seeded stream where it stopped). With format=sse, "
                  "a Last-Event-ID request header resumes after that id."),
    "token": ({"type": "string"},
              "Bearer token, for clients that cannot send an Authorization header."),
}

_STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}


# -- stream registry ---------------------------------------------------------

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


# -- query parsing -------------------------------------------------------------

class _Options:
    """Parsed stream controls."""

    seed: int | None = None
    speed: float = 1.0
    count: int | None = None
    duration: float | None = None
    format: str = "text"
    start_seq: int | None = None


def _parse_int(value: str, lo: int, hi: int) -> int | None:
    if not _INT.fullmatch(value.strip()):
        return None
    n = int(value)
    return n if lo <= n <= hi else None


def _parse_float(value: str) -> float | None:
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _parse_control(name: str, value: str, opts: _Options) -> str | None:
    """Store control ``name`` in ``opts``; return an error message or None."""
    if name in ("seed", "speed"):       # the protocol's rules (wsgen.protocol.messages)
        try:
            setattr(opts, name, seed_from_text(value) if name == "seed" else speed_from_text(value))
        except ValueError:
            return SEED_RULE if name == "seed" else SPEED_RULE
    elif name == "count":
        n = _parse_int(value, 1, MAX_SEQ)
        if n is None:
            return "must be an integer in [1, 2**53] (samples)"
        opts.count = n
    elif name == "duration":
        x = _parse_float(value)
        if x is None or not 0 < x <= MAX_DURATION_S:
            return f"must be a number of seconds in (0, {MAX_DURATION_S:g}]"
        opts.duration = x
    elif name == "format":
        if value not in lines.FORMATS:
            return f"must be one of: {', '.join(lines.FORMATS)}"
        opts.format = value
    elif name == "start_seq":
        n = _parse_int(value, 0, MAX_SEQ)
        if n is None:
            return "must be an integer in [0, 2**53]"
        opts.start_seq = n
    return None  # token: checked by the auth layer


def _control_names(fields: tuple[str, ...]) -> dict[str, str]:
    """Control -> query name on a route whose model has ``fields``: a
    control named like a generator parameter becomes ``stream_<name>``."""
    return {c: (f"stream_{c}" if c in fields else c) for c in CONTROLS}


def _invalid(path: str, details: list[dict[str, Any]]) -> JSONResponse:
    summary = "; ".join(f"{d['field']}: {d['message']}" + (f" (got {d['value']!r})" if d['value'] is not None else "")
                        for d in details)
    return JSONResponse({"error": "invalid_params", "message": f"invalid parameters for {path}: {summary}",
                         "details": details}, status_code=422, headers={"Cache-Control": "no-store"})


# -- the stream ------------------------------------------------------------------

class _Route:
    """One stream endpoint: a generator kind at a path."""

    def __init__(self, app: FastAPI, settings: Settings, spec: GeneratorSpec, path: str) -> None:
        self.app = app
        self.settings = settings
        self.spec = spec
        self.path = path
        self.aliases = dict(spec.params_model.aliases)
        self.fields = tuple(spec.params_model.model_fields) + tuple(self.aliases)
        self.controls = _control_names(self.fields)
        self.by_query = {q: c for c, q in self.controls.items()}
        public = [q for c, q in self.controls.items() if c != "token" or settings.token]
        self.allowed = ", ".join(self.fields + tuple(public))

    async def __call__(self, request: Request) -> Response:
        params, opts, errors = self._query(request)
        gen = await self._generator(request, params, opts, errors)
        if gen is None:
            return _invalid(self.path, errors)
        streams: StreamRegistry = self.app.state.streams
        if streams.active >= self.settings.max_connections or streams.closing:
            return JSONResponse({"error": "limit_reached", "message": f"at most {self.settings.max_connections} "
                                 "streams at once; retry later"}, status_code=503, headers={"Retry-After": "5"})
        headers = dict(_STREAM_HEADERS, **{"X-Wsgen-Seed": str(gen.seed), "X-Wsgen-Start-Seq": str(gen.seq)})
        return SampleStream(self._body(gen, opts), media_type=lines.FORMATS[opts.format], headers=headers)

    def _query(self, request: Request) -> tuple[dict[str, str], _Options, list[dict[str, Any]]]:
        """The generator's parameters (as given), the stream controls, and
        the problems found so far."""
        errors: list[dict[str, Any]] = []
        given: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            given.setdefault(key, []).append(value)
        params: dict[str, str] = {}
        opts = _Options()
        for key, values in given.items():
            if len(values) > 1:
                errors.append({"field": key, "value": values, "message": "given more than once; give it once"})
                continue
            value = values[0]
            if key in self.fields:
                params[key] = value
            elif key in self.by_query:
                problem = _parse_control(self.by_query[key], value, opts)
                if problem:
                    errors.append({"field": key, "value": value, "message": problem})
            else:
                why = why_not(key, "http")    # a WebSocket option given here: say so
                errors.append({"field": key, "value": value,
                               "message": why or f"unknown parameter; allowed: {self.allowed}"})
        if opts.format == "sse" and opts.start_seq is None and "last-event-id" in request.headers:
            last = _parse_int(request.headers["last-event-id"], 0, MAX_SEQ - 1)
            if last is None:
                errors.append({"field": "Last-Event-ID", "value": request.headers["last-event-id"],
                               "message": "must be the id of an event of this stream (an integer)"})
            else:
                opts.start_seq = last + 1
        return params, opts, errors

    def _interval_problems(self, model, given: dict[str, str]) -> list[dict[str, Any]]:
        interval, floor = model.sample_interval, self.settings.min_interval_s
        if 0 < interval < floor:
            name = next((a for a, f in self.aliases.items() if f == model.interval_field and a in given),
                        model.interval_field)
            return [{"field": name, "value": interval,
                     "message": f"must be 0 (unpaced) or >= {floor}, this server's smallest interval"}]
        return []

    async def _generator(self, request: Request, params: dict[str, str], opts: _Options,
                         errors: list[dict[str, Any]]):
        """The generator to stream, or None with ``errors`` filled in."""
        try:
            model = validate_params(self.spec.params_model, params)
        except InvalidParams as exc:
            errors.extend(exc.details)
        else:
            errors.extend(self._interval_problems(model, params))
        if errors:
            return None
        try:
            if offload.worth_offloading(False, opts.start_seq, self.spec.name):   # a seek or a file: off the loop
                return await offload.run(create, self.spec.name, model, seed=opts.seed, start_seq=opts.start_seq)
            return create(self.spec.name, model, seed=opts.seed, start_seq=opts.start_seq or 0)
        except InvalidParams as exc:
            errors.extend(exc.details)
            return None

    # -- hooks of the stream body (a composition's differ) ----------------------
    def _header(self, fmt: str, gen) -> bytes:
        return lines.header(fmt, gen.anomalous)

    def _encoder(self, fmt: str, gen=None):
        """A callable (block, times) -> bytes for the chunks of one stream."""
        return lambda block, times: lines.encode(fmt, block, times)

    def _times(self, block, seq: int, m: int, pacer: Pacer) -> np.ndarray:
        """Stream time (Unix s) of each sample of ``block`` (slots ``seq .. seq+m-1``)."""
        if pacer.interval > 0:
            k = np.arange(seq - pacer.tseq0, seq - pacer.tseq0 + m, dtype=np.float64)
            return pacer.wall0 + k * pacer.interval
        return np.full(m, time.time())

    async def _body(self, gen, opts: _Options) -> AsyncIterator[bytes]:
        """The chunks of one stream (see the module docstring for the rules)."""
        settings, fmt = self.settings, opts.format
        streams: StreamRegistry = self.app.state.streams
        metrics = getattr(self.app.state, "metrics", None)
        with_times = lines.needs_times(fmt)
        encode = self._encoder(fmt, gen)
        streams.active += 1
        if metrics:
            metrics.http_streams.inc()
        counted_unpaced = False
        try:
            pacer = Pacer.start(gen.sample_interval, opts.speed, gen.seq)
            seq = first = gen.seq
            end = None if opts.count is None else seq + opts.count
            data_end = getattr(gen, "end_seq", None)       # replay with at_end "end": its last row
            if data_end is not None:
                end = data_end if end is None else min(end, data_end)
            wall_end = None
            if opts.duration is not None:
                if pacer.interval > 0:
                    # samples whose offset k * interval < duration: sample 0 always
                    # (the fudge against rounding made it 0 samples for a duration
                    # below 1e-9 intervals); a ratio past 2**62 is endless
                    ratio = opts.duration / pacer.interval
                    if ratio < 1 << 62:
                        n = max(1, math.ceil(ratio - 1e-9))
                        end = seq + n if end is None else min(end, seq + n)
                else:
                    wall_end = pacer.wall0 + opts.duration
            tick = max(settings.tick_s, 0.0)
            block_max = max(1, settings.max_block)
            # chunks sized by time (wsgen.server.budget): no chunk holds the loop for long
            budget = RenderBudget(COMPOSITION_MAX_RENDER if gen.name == "composite" else None, FIRST_RENDER)
            counted_unpaced = pacer.unpaced
            streams.unpaced += counted_unpaced
            head = self._header(fmt, gen)
            if head:
                yield head
            last_sent = time.monotonic()
            while not streams.closing:
                if end is not None and seq >= end:
                    break
                if pacer.unpaced:
                    # (the first sample is at offset 0 < duration: always sent)
                    if wall_end is not None and seq > first and time.time() >= wall_end:
                        break
                    # Fair share: unpaced streams split the render budget between
                    # them, so a paced stream waits for one round of small chunks
                    # (about RENDER_BUDGET_S in all), not for N big ones.
                    m = budget.size(block_max, streams.unpaced)
                else:
                    now = time.monotonic()
                    m = pacer.due_count(seq, now)
                    if m == 0:
                        wake = max(pacer.due_time(seq), last_sent + tick)
                        if fmt == "sse":
                            wake = min(wake, last_sent + SSE_KEEPALIVE_S)
                        await streams.sleep(wake - now)
                        if fmt == "sse" and time.monotonic() - last_sent >= SSE_KEEPALIVE_S:
                            last_sent = time.monotonic()
                            yield lines.keepalive(fmt)
                        continue
                    m = budget.size(min(m, block_max))
                if end is not None:
                    m = min(m, end - seq)
                if gen.render_limit is not None:   # a kind whose samples can be dear, by its parameters
                    m = min(m, gen.render_limit)
                started = budget.clock()
                block = gen.take(m)
                if with_times:
                    chunk = encode(block, self._times(block, seq, m, pacer))
                else:
                    chunk = encode(block, None)     # text (a composition with channels: one array per line)
                budget.spent(m, budget.clock() - started)   # the chunk's render and encoding
                seq += m
                last_sent = time.monotonic()
                yield chunk
                if metrics:
                    metrics.sent_http(gen.name, m)
                # Let other clients run between chunks: a send that does not
                # block would otherwise keep the loop for this stream alone.
                await asyncio.sleep(0)
            else:
                return  # server shutting down: no end event, clients may reconnect
            tail = lines.footer(fmt, seq)
            if tail:
                yield tail
        finally:
            streams.active -= 1
            streams.unpaced -= counted_unpaced
            if metrics:
                metrics.http_streams.dec()

    def openapi(self) -> dict[str, Any]:
        """OpenAPI ``parameters`` (from the model) and responses of the route."""
        schema = self.spec.schema()
        params = []
        for name, prop in schema.get("properties", {}).items():
            prop = dict(prop)
            prop.pop("title", None)
            description = prop.get("description", "")
            unit = prop.get("unit")
            if unit and f"[{unit}]" not in description:
                description = f"{description} [{unit}]".strip()
            if prop.get("type") in ("array", "object"):
                # a list in a query string is text: JSON or comma-separated (wsgen.engine.listparams)
                prop = {"type": "string", "maxLength": LIST_PARAM_TEXT_MAX, "default": json.dumps(prop.get("default"))}
                description += " (in a query string: JSON, or numbers separated by commas)"
            params.append({"name": name, "in": "query", "required": False, "description": description,
                           "schema": prop})
        for alias, name in self.spec.params_model.aliases.items():
            params.append({"name": alias, "in": "query", "required": False, "deprecated": True,
                           "description": f"Another name for {name} (the original service's); give one of them.",
                           "schema": dict(schema["properties"][name], title=alias)})
        for control, query in self.controls.items():
            if control == "token" and not self.settings.token:
                continue
            cschema, description = CONTROLS[control]
            if query != control:
                description += f" (Named {query} here: {control} is the generator's own parameter.)"
            params.append({"name": query, "in": "query", "required": False, "description": description,
                           "schema": dict(cschema)})
        label = ', "label": false' if self.spec.anomalous else ""
        example_json = '{"seq": 0, "t": 1700000000.0, "value": 0.0%s}' % label
        return {
            "parameters": params,
            "responses": {
                "200": {
                    "description": "An endless stream (unless count or duration is given), one sample per "
                                   "line; the X-Wsgen-Seed header holds the seed.",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}, "example": "0.000\n0.501\n0.995\n"},
                        "application/x-ndjson": {"schema": {"type": "string"}, "example": example_json + "\n"},
                        "text/csv": {"schema": {"type": "string"},
                                     "example": "seq,t,value%s\n0,1700000000.000000,0.0%s\n"
                                                % (",label" if label else "", ",false" if label else "")},
                        "text/event-stream": {"schema": {"type": "string"},
                                              "example": f"id: 0\ndata: {example_json}\n\n"},
                    },
                },
                "422": {"description": "Invalid query parameters; nothing was streamed.",
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
                "503": {"description": "Too many streams open; retry later.",
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            },
        }


class _CompositeRoute(_Route):
    """A composition stream: ``GET /composite?spec=<URL-encoded JSON>`` or
    ``POST /composite`` with the spec as the JSON body; the stream controls
    are query parameters in both. ``count`` counts slots (sample indices):
    the stream sends exactly ``create_composite(spec, seed).take(count)``'s
    delivered samples (fewer rows with gaps, more with duplicates)."""

    def __init__(self, app: FastAPI, settings: Settings, path: str, body: bool) -> None:
        self.app = app
        self.settings = settings
        self.path = path
        self.body = body
        self.fields = () if body else ("spec",)
        self.aliases: dict[str, str] = {}
        self.controls = _control_names(self.fields)
        self.by_query = {q: c for c, q in self.controls.items()}
        public = [q for c, q in self.controls.items() if c != "token" or settings.token]
        self.allowed = ", ".join(self.fields + tuple(public))

    async def _generator(self, request: Request, params: dict[str, str], opts: _Options,
                         errors: list[dict[str, Any]]):
        raw: Any = None
        problem: dict[str, Any] | None = None
        if self.body:
            body = bytearray()

            async def read() -> None:
                async for piece in request.stream():      # bounded: never the whole of a huge body
                    body.extend(piece)
                    if len(body) > MAX_SPEC_BYTES:
                        break

            # bounded in time too: the body gets as long as the request head
            # (a client trickling a body must not hold a connection for ever)
            deadline = self.settings.http_header_timeout_s or None
            timed_out = False
            try:
                await asyncio.wait_for(read(), deadline)
            except asyncio.TimeoutError:
                timed_out = True
            raw = body.decode("utf-8", "replace")
            if timed_out:
                problem = {"field": "spec", "value": f"<{len(body)} bytes>",
                           "message": f"the request body did not arrive within {deadline} s"}
            elif len(body) > MAX_SPEC_BYTES:
                problem = {"field": "spec", "value": f"<{len(body)}+ bytes>",
                           "message": f"too large: a composition is at most {MAX_SPEC_BYTES} bytes of JSON"}
            elif not raw.strip():
                problem = {"field": "spec", "value": None,
                           "message": "missing: send the composition as the JSON request body"}
        else:
            raw = params.get("spec")
            if raw is None:
                problem = {"field": "spec", "value": None, "message": "missing: the composition as "
                           "URL-encoded JSON (?spec=...), or POST it as the JSON body"}
        data = None
        if problem is None:
            try:
                data = orjson.loads(raw)   # strict JSON, bounded nesting (no RecursionError)
            except ValueError as exc:
                problem = {"field": "spec", "value": raw[:200], "message": f"not valid JSON: {exc}"}
        spec = None
        if problem is None:
            try:
                spec = await offload.run(validate_spec, data)   # off the event loop (up to 1 MB of JSON)
            except InvalidParams as exc:
                errors.extend(exc.details)
            else:
                errors.extend(self._interval_problems(spec, {}))
        else:
            errors.append(problem)
        if errors:
            return None
        try:
            # off the event loop: a start_seq seek replays events (up to SEEK_BUDGET_S of CPU)
            return await offload.run(create_composite, spec, seed=opts.seed, start_seq=opts.start_seq or 0)
        except InvalidParams as exc:
            errors.extend(exc.details)
            return None

    def _header(self, fmt: str, gen) -> bytes:
        if getattr(gen, "channels", None):      # several channels: a column each (wsgen.protocol.channel_lines)
            return channel_lines.header(fmt, gen.channels)
        return lines.header(fmt, True, events=True)

    def _encoder(self, fmt: str, gen=None):
        return channel_lines.formatter(fmt, gen)

    def _times(self, block, seq: int, m: int, pacer: Pacer) -> np.ndarray:
        # the slot's time plus the sample's own offset from it (jitter, held back)
        first = pacer.wall0 + (seq - pacer.tseq0) * pacer.interval if pacer.interval > 0 else time.time()
        return first + (block.offsets - seq * pacer.interval)

    def openapi(self) -> dict[str, Any]:
        params = []
        if not self.body:
            params.append({"name": "spec", "in": "query", "required": True,
                           "description": "The composition (schema: CompositionSpec; see POST /composite and "
                                          "GET /composite/presets) as URL-encoded JSON.",
                           "schema": {"type": "string"},
                           "example": json.dumps(_EXAMPLE_SPEC, separators=(",", ":"))})
        for control, query in self.controls.items():
            if control == "token" and not self.settings.token:
                continue
            cschema, description = CONTROLS[control]
            if control == "count":
                description = ("End the stream after this many slots (sample indices): the samples "
                               "create_composite(spec, seed).take(count) delivers. Default: endless.")
            if control == "format":
                description = ("`text`: one value per line, 3 decimals, `nan` for a null fault. `ndjson`: "
                               "{seq, t, value (null for a null fault), label, events: [{id, kind, first, "
                               "last}]} per line; a gap's event is on the first sample past it. `csv`: "
                               "`seq,t,value,label,events`, events as `kind:id:first:last` joined by `;`, "
                               "an empty value for a null fault. `sse`: the ndjson objects as events.")
            params.append({"name": query, "in": "query", "required": False, "description": description,
                           "schema": dict(cschema)})
        example = ('{"seq":5,"t":1700000000.5,"value":17.0,"label":true,'
                   '"events":[{"id":160,"kind":"spike","first":5,"last":5}]}')
        out: dict[str, Any] = {
            "parameters": params,
            "responses": {
                "200": {
                    "description": "The composition's delivered samples (see the format parameter); endless "
                                   "unless count or duration is given. X-Wsgen-Seed holds the seed.",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}, "example": "10.000\nnan\n10.502\n"},
                        "application/x-ndjson": {"schema": {"type": "string"}, "example": example + "\n"},
                        "text/csv": {"schema": {"type": "string"},
                                     "example": "seq,t,value,label,events\n5,1700000000.500000,17.0,true,"
                                                "spike:160:5:5\n"},
                        "text/event-stream": {"schema": {"type": "string"}, "example": f"id: 5\ndata: {example}\n\n"},
                    },
                },
                "422": {"description": "Invalid composition (details name each field by its dotted path, e.g. "
                                       "anomalies.0.height.low) or query parameters; nothing was streamed.",
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
                "503": {"description": "Too many streams open; retry later.",
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            },
        }
        if self.body:
            out["requestBody"] = {"required": True, "description": "The composition (CompositionSpec).",
                                  "content": {"application/json": {
                                      "schema": {"$ref": "#/components/schemas/CompositionSpec"},
                                      "example": _EXAMPLE_SPEC}}}
        return out


#: The example composition of the docs.
_EXAMPLE_SPEC: dict[str, Any] = {
    "interval": 0.1,
    "base": {"kind": "sine", "params": {"amplitude": 2, "frequency": 0.5, "sample_rate": 10}, "offset": 10},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [{"kind": "spike", "placement": {"mode": "random", "probability": 0.01},
                   "height": {"low": 3, "high": 5}}],
    "faults": {"nulls": {"placement": {"mode": "random", "probability": 0.01}}},
}


def _composition_components() -> dict[str, Any]:
    """CompositionSpec's JSON Schema as OpenAPI components (refs rewritten)."""
    schema = CompositionSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "CompositionSpec": schema}


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "examples": ["invalid_params"]},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {
            "type": "object", "required": ["field", "value", "message"],
            "properties": {"field": {"type": "string"}, "value": {}, "message": {"type": "string"},
                           "row": {"type": ["integer", "null"], "description": "replay / uploads: 1-based data row"},
                           "column": {"type": ["string", "null"], "description": "replay / uploads: the column"}}}},
    },
}


# -- access log ------------------------------------------------------------------

log = logging.getLogger("wsgen.server.http.app")


class _AccessLog:
    """What each request leaves behind: one log line when it ends (a stream:
    when it closes) with the client address, status, the ``error`` code of
    an error answer and the duration, one more when a stream starts; and
    every error answer (status 4xx/5xx) counted in ``wsgen_errors`` under
    its code with ``path="http"`` (:func:`_error_code`; an exception that
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
                failed(_error_code(message.get("body", b"")))
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


def _error_code(body: bytes) -> str:
    """The ``error`` code of an error answer's JSON body
    (``{"error": "invalid_params", ...}``); ``http_error`` for a body without
    one (plain text)."""
    try:
        code = orjson.loads(body).get("error")
    except (ValueError, AttributeError):
        code = None
    return code if isinstance(code, str) and code else "http_error"


# -- auth ----------------------------------------------------------------------

#: Paths open without the token: health, the browser page and what it needs
#: to start (no data: the page then asks for the token if the server needs one).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/", "/config.json"})


class _TokenGate:
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


class _HostGate:
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


# -- the app -------------------------------------------------------------------

def _tag(spec: GeneratorSpec) -> str:
    return {"waveform": "waveforms", "distribution": "distributions", "anomaly": "anomalies",
            "process": "processes", "periodic": "periodic shapes"}.get(spec.family, spec.family)


def create_app(settings: Settings) -> FastAPI:
    """The HTTP app: stream endpoints, docs, catalogue, health and metrics.

    ``app.state.streams`` (:class:`StreamRegistry`) counts open streams and
    ends them on ``close()``; ``app.state.metrics`` may be replaced by the
    server's shared :class:`~wsgen.server.metrics.Metrics`.
    """
    from wsgen.server.metrics import CONTENT_TYPE, Metrics

    app = FastAPI(
        title="wsgen HTTP streams",
        version="1",
        description="Synthetic time series over HTTP, compatible with the original streaming-data-gen "
                    "service: `GET /<generator>` streams one value per line. Query parameters: the "
                    "generator's own, plus `seed`, `speed`, `count`, `duration` (called `stream_duration` "
                    "on `/count-per-duration`, whose own `duration` is its window), `format`, `start_seq`. "
                    "Streams are endless by default: set `count` when using *Try it out* here.",
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.readiness = Readiness()   # wsgen.server.serve.start shares the server's
    from wsgen.server.http.client_faults import install as install_client_faults
    install_client_faults(app, settings.host)   # body cut short: 400; WebSocket upgrade: where to go
    if loopback_bound(settings.host):
        app.add_middleware(_HostGate, bind_host=settings.host, allowed=tuple(settings.allow_hosts))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            names = ", ".join(f"/{n}" for n in GENERATORS)
            return JSONResponse({"error": "not_found", "message": f"no endpoint at {request.url.path}; "
                                 f"streams: {names} (anomaly kinds also under /anomalies/), /composite; "
                                 "see /docs"}, status_code=404)
        return JSONResponse({"error": "http_error", "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
    app.state.streams = StreamRegistry()
    app.state.metrics = Metrics()

    routes = [(f"/{name}", spec) for name, spec in GENERATORS.items()]
    routes += [(f"/anomalies/{name}", GENERATORS[name]) for name in ANOMALY_KINDS]
    for path, spec in routes:
        route = _Route(app, settings, spec, path)
        legacy = path.startswith("/anomalies/")
        app.add_api_route(
            path, route, methods=["GET"], response_class=PlainTextResponse,
            operation_id=f"stream_{path.strip('/').replace('/', '_').replace('-', '_')}",
            summary=f"Stream {spec.name}" + (" (same as /" + spec.name + ")" if legacy else ""),
            description=spec.description, tags=["anomalies (/anomalies/ paths)" if legacy else _tag(spec)],
            openapi_extra=route.openapi(),
        )

    # -- compositions: GET with ?spec=<json>, POST with the spec as the body
    for method, body in (("GET", False), ("POST", True)):
        route = _CompositeRoute(app, settings, "/composite", body)
        app.add_api_route(
            "/composite", route, methods=[method], response_class=PlainTextResponse,
            operation_id=f"stream_composite_{method.lower()}",
            summary="Stream a composition" + (" (spec as the JSON body)" if body else " (spec as ?spec=<json>)"),
            description="A composition: a base signal plus noise, anomaly injectors and stream faults, with "
                        "the ground truth (labels, events) in every row of ndjson/csv/sse. See "
                        "docs/compositions.md; presets at GET /composite/presets.",
            tags=["compositions"], openapi_extra=route.openapi(),
        )

    from wsgen.server.http.streams import router as named_router
    app.include_router(named_router())   # /streams: named streams (wsgen.server.http.streams)
    from wsgen.server.http.score import router as score_router
    app.include_router(score_router())   # POST /score: offline scoring (wsgen.server.http.score)

    from wsgen.server.http.datasets import install as install_datasets
    install_datasets(app, settings)   # POST /datasets (uploads for replay), GET /datasets

    @app.get("/composite/presets", summary="The composition JSON Schema and the five anomaly kinds as presets",
             tags=["compositions"])
    async def composite_presets() -> JSONResponse:
        return JSONResponse(composition_catalogue())

    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_composition_components())
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]

    # -- the web page (wsgen/static/web, in the package): GET / is the page, its
    # files are under /static/web/ (before /static, and like it exempt from
    # the token gate: the page is public, the data is not), and
    # /config.json tells it the WebSocket port and whether a token is needed.
    web_dir = files("wsgen") / "static" / "web"
    if (web_dir / "index.html").is_file():
        app.mount("/static/web", StaticFiles(directory=str(web_dir)), name="web")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        if not (web_dir / "index.html").is_file():
            return PlainTextResponse(f"the web page is not installed here: {web_dir}/index.html is missing "
                                     "(it is part of the wsgen package: reinstall it)", status_code=404)
        return HTMLResponse((web_dir / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-cache"})

    @app.get("/config.json", include_in_schema=False)
    async def page_config() -> JSONResponse:
        return JSONResponse({"ws_port": getattr(app.state, "ws_port", None), "token_required": bool(settings.token),
                             "min_interval_s": settings.min_interval_s,
                             "max_subscriptions": settings.max_subscriptions},
                            headers={"Cache-Control": "no-store"})

    static_dir = files("wsgen") / "static"
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        openapi_url = root + "/openapi.json"
        if settings.token and "token" in request.query_params:
            openapi_url += "?token=" + quote(request.query_params["token"], safe="")
        return get_swagger_ui_html(
            openapi_url=openapi_url, title="wsgen HTTP streams - docs",
            swagger_js_url=root + "/static/docs/swagger-ui-bundle.js",
            swagger_css_url=root + "/static/docs/swagger-ui.css",
            swagger_favicon_url=root + "/static/docs/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False},
        )

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

    if settings.token:
        app.add_middleware(_TokenGate, token=settings.token)
    install_cors(app, settings.allow_origins)   # outside the token gate: preflights need no token (wsgen.server.http.cors)
    app.add_middleware(_AccessLog)   # last added: outermost, so it sees the token gate's 401s too
    return app
