"""The hub's web app: wires the routers of :mod:`.routes` (one per audience, each route
declaring its roles with :func:`.auth.allow`), the static files and the error pages.

Pages are server-rendered (Jinja2) and readable on a phone; ``static/porch.js`` adds the
ring banner (server-sent events) and the timeline's live rows. Media (clips, thumbnails,
snapshots) are served with HTTP range requests, to owners and members only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig

from porch.core import __version__
from porch.hub.consent import LEGAL_BASES, ConsentError
from porch.hub.live import LiveError
from porch.hub.web.auth import Forbidden, NotSignedIn, current_session
from porch.hub.web.routes import (
    api,
    area,
    devices,
    footage,
    household,
    live,
    pwa,
    requests,
    signin,
)
from porch.hub.web.site import HERE, Site, reason

if TYPE_CHECKING:
    from porch.hub.service import HubService

NO_TELEMETRY: TelemetryConfig = {
    "auto_configure": False,
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
ROUTERS = (signin, household, footage, devices, requests, area, live, api, pwa)
"""Every audience's routes, in the order they are matched."""


def create_app(hub: HubService) -> FastAPI:
    app = FastAPI(
        title="Porch hub",
        version=__version__,
        docs_url=None,  # the interactive docs load scripts from a CDN: nothing leaves the home
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry: off, and never exporters from OTEL_* variables,
        # whatever the environment says (request paths name devices and events).
        telemetry=NO_TELEMETRY,
    )
    app.state.hub = hub
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    site = Site(hub)
    _error_pages(app, site)
    for module in ROUTERS:
        app.include_router(module.router(site))
    return app


def _error_pages(app: FastAPI, site: Site) -> None:
    """What a refusal looks like: a page for a browser, JSON with ``detail`` for scripts."""
    page = site.page

    def refused(request: Request, status: int, message: str) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return page(request, "error.html", current_session(request), status, message=message)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if exc.page:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=302)
        return JSONResponse({"detail": "sign in first"}, status_code=401)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        """A form that fails validation comes back as its page, filled in as it was sent,
        with the reason; API clients get FastAPI's JSON list of errors."""
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        why = reason(exc.errors())
        session = current_session(request)
        route = request.scope.get("route")
        if getattr(route, "path", "") == "/requests" and session is not None:
            form = await request.form()
            return page(request, "request_new.html", session, 400, bases=LEGAL_BASES,
                        error=why, form=form)  # fmt: skip
        return page(request, "error.html", session, 400, message=why)

    @app.exception_handler(LiveError)
    async def live_error(request: Request, exc: LiveError) -> Response:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return refused(request, exc.status, exc.reason)

    @app.exception_handler(ConsentError)
    async def consent_error(request: Request, exc: ConsentError) -> Response:
        return refused(request, exc.status, str(exc))
