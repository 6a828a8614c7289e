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
* the stream controls ``seed``, ``start_seq``, ``speed``, ``count``,
  ``duration`` and ``format``: :class:`wsgen.protocol.controls.HttpStreamControls`
  is the only source of their types, bounds, defaults and OpenAPI
  documentation (the WebSocket ``subscribe`` shares all but ``format``).
  ``count`` and ``duration`` end the stream (with an interval of 0, stream
  time is wall-clock time); where the generator has a parameter of the same
  name (``count-per-duration``'s ``duration``, the window length), the
  control is called ``stream_duration`` instead;
* ``token``: the bearer token, when the server requires one and the client
  cannot send an ``Authorization: Bearer`` header (``EventSource``).

Every parameter is validated before a byte of the stream is sent, the
generator included (cross-field rules such as ``min_val <= max_val``); any
problem, an unknown or repeated parameter too, answers 422 with
``{"error": "invalid_params", "message", "details": [{field, value,
message}]}``. A stream is a one-stream session of the WebSocket's
(:mod:`wsgen.server.http.delivery`): the same pacer, stream times and
count / duration rules.

Compositions (docs/compositions.md): ``GET /composite?spec=<URL-encoded
JSON>`` or ``POST /composite`` (the spec as the JSON body), with the same
stream controls (:mod:`wsgen.server.http.composite_route`). With
``format=sse`` and faults, ``Last-Event-ID`` resumes at ``id + 1`` as a
slot, which is exact only without ``out_of_order``/``duplicates`` before it.

The app's modules, one job each: :mod:`~wsgen.server.http.query` (a stream
route's query), :mod:`~wsgen.server.http.stream_route` and
:mod:`~wsgen.server.http.composite_route` (the stream routes),
:mod:`~wsgen.server.http.delivery` (a stream's body),
:mod:`~wsgen.server.http.responses` (the streamed response, the registry of
open streams, the 422/503 answers), :mod:`~wsgen.server.http.openapi`,
:mod:`~wsgen.server.http.access_log`, :mod:`~wsgen.server.http.gates`
(token, Host), :mod:`~wsgen.server.http.pages` (web page, ``/docs``),
:mod:`~wsgen.server.http.meta`; this one only puts them together.

Other endpoints: ``/docs`` (Swagger UI, vendored: no CDN), ``/openapi.json``,
``/generators`` (catalogue with JSON Schemas), ``/healthz``, ``/metrics``
(Prometheus).
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from wsgen.engine import ANOMALY_KINDS, GENERATORS
from wsgen.server.access import loopback_bound
from wsgen.server.config import Settings
from wsgen.server.http import composite_route, meta, pages
from wsgen.server.http.access_log import AccessLog
from wsgen.server.http.cors import install_cors
from wsgen.server.http.gates import HostGate, TokenGate
from wsgen.server.http.openapi import composition_components, tag
from wsgen.server.http.responses import StreamRegistry
from wsgen.server.http.stream_route import GeneratorRoute
from wsgen.server.readiness import Readiness

__all__ = ["StreamRegistry", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    """The HTTP app: stream endpoints, docs, catalogue, health and metrics.

    ``app.state.streams`` (:class:`StreamRegistry`) counts open streams and
    ends them on ``close()``; ``app.state.metrics`` may be replaced by the
    server's shared :class:`~wsgen.server.metrics.Metrics`.
    """
    from wsgen.server.metrics import Metrics

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
        app.add_middleware(HostGate, bind_host=settings.host, allowed=tuple(settings.allow_hosts))
    app.state.streams = StreamRegistry()
    app.state.metrics = Metrics()

    routes = [(f"/{name}", spec) for name, spec in GENERATORS.items()]
    routes += [(f"/anomalies/{name}", GENERATORS[name]) for name in ANOMALY_KINDS]
    for path, spec in routes:
        route = GeneratorRoute(app, settings, spec, path)
        legacy = path.startswith("/anomalies/")
        app.add_api_route(
            path, route, methods=["GET"], response_class=PlainTextResponse,
            operation_id=f"stream_{path.strip('/').replace('/', '_').replace('-', '_')}",
            summary=f"Stream {spec.name}" + (" (same as /" + spec.name + ")" if legacy else ""),
            description=spec.description, tags=["anomalies (/anomalies/ paths)" if legacy else tag(spec)],
            openapi_extra=route.openapi(),
        )
    composite_route.install(app, settings)   # GET with ?spec=<json>, POST with the spec as the body

    from wsgen.server.http.streams import router as named_router
    app.include_router(named_router())   # /streams: named streams (wsgen.server.http.streams)
    from wsgen.server.http.score import router as score_router
    app.include_router(score_router())   # POST /score: offline scoring (wsgen.server.http.score)
    from wsgen.server.http.datasets import install as install_datasets
    install_datasets(app, settings)   # POST /datasets (uploads for replay), GET /datasets
    composite_route.install_presets(app)

    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(composition_components())
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]

    pages.install(app, settings)     # /, /config.json, /static, /docs
    meta.install(app)                # /generators, /healthz, /readyz, /metrics; JSON 404s

    if settings.token:
        app.add_middleware(TokenGate, token=settings.token)
    install_cors(app, settings.allow_origins)   # outside the token gate: preflights need no token (wsgen.server.http.cors)
    app.add_middleware(AccessLog)   # last added: outermost, so it sees the token gate's 401s too
    return app
