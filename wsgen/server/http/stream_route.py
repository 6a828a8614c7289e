"""The stream route of a generator kind (``GET /sine``, ``GET /anomalies/spike``, ...).

A request is read (:class:`~wsgen.server.http.query.StreamQuery`), every
parameter validated before a byte is sent (the generator's cross-field rules
and this server's smallest interval too: any problem answers 422 with every
detail), the generator built (off the event loop when it may be costly:
:mod:`wsgen.server.offload`), then streamed as a one-stream session
(:mod:`wsgen.server.http.delivery`). Too many streams open: 503.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from wsgen.engine import GeneratorSpec, InvalidParams, create, validate_params
from wsgen.protocol import lines
from wsgen.protocol.controls import HttpStreamControls
from wsgen.protocol.messages import ProtocolError
from wsgen.protocol.session import Session
from wsgen.server import offload
from wsgen.server.config import Settings
from wsgen.server.http import delivery
from wsgen.server.http.openapi import generator_operation
from wsgen.server.http.query import StreamQuery
from wsgen.server.http.responses import STREAM_HEADERS, SampleStream, invalid_params, limit_reached


class GeneratorRoute:
    """One stream endpoint: a generator kind at a path."""

    #: how the chunks are written (a composition's differ)
    lines = delivery.Lines()

    def __init__(self, app: FastAPI, settings: Settings, spec: GeneratorSpec | None, path: str,
                 fields: tuple[str, ...] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.spec = spec
        self.path = path
        if fields is None:
            fields = tuple(spec.params_model.model_fields) + tuple(spec.params_model.aliases)
        self.query = StreamQuery(fields, bool(settings.token))

    async def __call__(self, request: Request) -> Response:
        params, opts, errors = self.query.parse(request)
        session = delivery.http_session(self.settings)
        gen = await self._generator(request, session, params, opts, errors)
        if gen is None:
            return invalid_params(self.path, errors)
        streams = self.app.state.streams
        if streams.active >= self.settings.max_connections or streams.closing:
            return limit_reached(self.settings.max_connections)
        try:
            sub = delivery.open_stream(session, gen, opts, params)
        except ProtocolError as exc:
            return invalid_params(self.path, exc.details or [{"field": "params", "value": None,
                                                               "message": exc.message}])
        headers = dict(STREAM_HEADERS, **{"X-Wsgen-Seed": str(gen.seed), "X-Wsgen-Start-Seq": str(gen.seq)})
        return SampleStream(delivery.body(self.app, session, sub, opts.format, self.lines),
                            media_type=lines.FORMATS[opts.format], headers=headers)

    @staticmethod
    def _check(session: Session, model: Any, given: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        """The server's rules on validated parameters (the session's), as details in ``errors``."""
        try:
            session.check_params(model, given)
        except ProtocolError as exc:
            errors.extend(exc.details or ())

    async def _generator(self, request: Request, session: Session, params: dict[str, str],
                         opts: HttpStreamControls, errors: list[dict[str, Any]]):
        """The generator to stream, or None with ``errors`` filled in."""
        try:
            model = validate_params(self.spec.params_model, params)
        except InvalidParams as exc:
            errors.extend(exc.details)
        else:
            self._check(session, model, params, errors)
        if errors:
            return None
        try:
            if offload.worth_offloading(False, opts.start_seq, self.spec.name):   # a seek or a file: off the loop
                return await offload.run(create, self.spec.name, model, seed=opts.seed, start_seq=opts.start_seq)
            return create(self.spec.name, model, seed=opts.seed, start_seq=opts.start_seq)
        except InvalidParams as exc:
            errors.extend(exc.details)
            return None

    def openapi(self) -> dict[str, Any]:
        """``openapi_extra`` of the route (:mod:`wsgen.server.http.openapi`)."""
        return generator_operation(self.spec, self.query.public)
