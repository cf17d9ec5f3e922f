"""The household's footage: a clip's page and its video, thumbnails, ring snapshots, the
page a notification opens, and keeping a clip past retention. Owners and members only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from porch.hub.accounts import Session
from porch.hub.web.auth import FOOTAGE, allow
from porch.hub.web.site import ClipId, EventId, Site, media


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    @routes.get("/clips/{clip_id}", response_class=HTMLResponse)
    async def clip_page(
        request: Request,
        clip_id: ClipId,
        session: Annotated[Session, Depends(allow(*FOOTAGE, page=True))],
    ) -> Response:
        clip = hub.stored_clip(clip_id)
        if clip is None:
            return page(request, "error.html", session, 404, message="No such clip.")
        return page(request, "clip.html", session, clip=clip)

    @routes.get("/clips/{clip_id}/video.mp4")
    async def clip_video(
        clip_id: ClipId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        return media(hub.clips.video(clip_id), "video/mp4", hub.stored_clip(clip_id))

    @routes.get("/clips/{clip_id}/thumbnail.jpg")
    async def clip_thumbnail(
        clip_id: ClipId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        return media(hub.clips.thumbnail(clip_id), "image/jpeg", hub.stored_clip(clip_id))

    @routes.get("/events/{event_id}/snapshot.jpg")
    async def snapshot(
        event_id: EventId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        path = hub.ingest.snapshot_path(event_id)
        return media(path, "image/jpeg", path.exists() or None)

    @routes.get("/event/{event_id}", response_class=HTMLResponse)
    async def event_page(
        request: Request,
        event_id: EventId,
        session: Annotated[Session, Depends(allow(*FOOTAGE, page=True))],
    ) -> Response:
        """One event, as a notification opens it: the snapshot (fetched from the hub, never
        carried by the notification) and its clip when it has arrived."""
        found = hub.timeline(1, event_id)
        if not found:
            return page(request, "error.html", session, 404, message="No such event here.")
        return page(request, "event.html", session, e=found[0])

    @routes.post("/clips/{clip_id}/keep")
    async def keep_clip(
        clip_id: ClipId,
        session: Annotated[Session, Depends(allow("owner"))],
        keep: Annotated[bool, Form()] = True,
    ) -> Response:
        if hub.stored_clip(clip_id) is None:
            return JSONResponse({"detail": "no such clip"}, status_code=404)
        hub.web_db.set_keep(clip_id, keep)
        return RedirectResponse(f"/clips/{clip_id}", status_code=303)

    return routes
