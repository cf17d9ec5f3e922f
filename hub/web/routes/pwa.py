"""The files that make the hub an installable web app: its manifest and its service worker
(served from the root, so that it may handle notifications for the whole hub). Public."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from porch.hub.web.site import HERE, Site


def router(site: Site) -> APIRouter:
    routes = APIRouter()

    @routes.get("/manifest.webmanifest")
    async def manifest() -> Response:
        """The web app manifest: Porch installs on a phone's home screen."""
        body = {
            "name": "Porch", "short_name": "Porch", "start_url": "/", "scope": "/",
            "display": "standalone", "background_color": "#faf8f5", "theme_color": "#1d2430",
            "icons": [{"src": f"/static/icon-{n}.png", "sizes": f"{n}x{n}", "type": "image/png",
                       "purpose": "any maskable"} for n in (192, 512)],
        }  # fmt: skip
        return JSONResponse(body, media_type="application/manifest+json")

    @routes.get("/sw.js")
    async def service_worker() -> Response:
        """The service worker, from the root so that it may serve the whole hub."""
        response = FileResponse(HERE / "static" / "sw.js", media_type="application/javascript")
        response.headers["Cache-Control"] = "no-cache"
        return response

    return routes
