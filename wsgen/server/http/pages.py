"""The pages a browser opens: the web page (``/``, its files under
``/static/web/`` and ``/config.json``), the static files and the API docs
(``/docs``, Swagger UI vendored: no CDN)."""
from __future__ import annotations

from importlib.resources import files
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from wsgen.server.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Add the page, its config, the static files and ``/docs`` to ``app``."""
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
