"""The household's footage: a clip's page and its video, thumbnails, ring snapshots, the
page a notification opens, and keeping a clip past retention. Owners and members only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from porch.hub.accounts import Session
from porch.hub.web.auth import FOOTAGE, Forbidden, allow
from porch.hub.web.site import ClipId, DeviceId, EventId, Site, boxes, media


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()
    MIN_BOX = 0.05  # a doorstep box narrower than this holds no whole 8-pixel block of a glance

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

    @routes.get("/events/{event_id}/before.jpg")
    async def before_picture(
        event_id: EventId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        """A parcel event's picture from before the visit."""
        path = hub.ingest.before_path(event_id)
        return media(path, "image/jpeg", path.exists() or None)

    @routes.get("/devices/{device_id}/doorstep", response_class=HTMLResponse)
    async def doorstep_page(
        request: Request,
        device_id: DeviceId,
        session: Annotated[Session, Depends(allow("owner", page=True))],
    ) -> Response:
        """The owner marks the doorstep on the doorbell's latest picture: where a parcel
        left or taken is told."""
        zone = hub.web_db.doorstep(device_id)
        text = "\n".join(",".join(f"{v:.4f}" for v in box) for box in zone)
        return doorstep(request, session, device_id, text)

    def doorstep(request: Request, session: Session, device_id: str, zone: str,
                 error: str = "") -> Response:  # fmt: skip
        names = {d["device_id"]: d["name"] for d in hub.devices()}
        if device_id not in names:
            return page(request, "error.html", session, 404, message="No such doorbell.")
        return page(request, "doorstep.html", session, 400 if error else 200,
                    device_id=device_id, doorbell=names[device_id], error=error,
                    clip_id=hub.web_db.latest_clip(device_id), zone=zone)  # fmt: skip

    @routes.post("/devices/{device_id}/doorstep", response_class=HTMLResponse)
    async def set_doorstep(
        request: Request,
        device_id: DeviceId,
        session: Annotated[Session, Depends(allow("owner"))],
        zone: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        """Save the doorstep zone (empty: none, no parcels told)."""
        if device_id not in {d["device_id"] for d in hub.devices()}:
            raise Forbidden(f"no doorbell called {device_id}", 404)
        try:
            drawn = boxes(zone)
            if any(w < MIN_BOX or h < MIN_BOX for _, _, w, h in drawn):
                raise ValueError(f"a doorstep box is at least {MIN_BOX:.0%} of the picture a side")
        except ValueError as exc:
            return doorstep(request, session, device_id, zone, f"{exc}.")
        hub.web_db.set_doorstep(device_id, drawn)
        hub.doorstep_changed(device_id)
        return RedirectResponse("/devices", status_code=303)

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
