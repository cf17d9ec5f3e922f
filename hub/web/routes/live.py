"""Live view and talk: the live page, WebRTC signalling (the browser's offer, trickled
candidates, leaving) and who is watching. Owners and members; talk as ``auth.TALK`` says."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from porch.hub.accounts import Session
from porch.hub.live import LiveError
from porch.hub.web.auth import FOOTAGE, TALK, NotSignedIn, allow
from porch.hub.web.site import DeviceId, Site

LiveSessionId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
MAX_SDP = 64 * 1024


class LiveOffer(BaseModel):
    """A browser's WebRTC offer to watch a doorbell."""

    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP)


class LiveAnswer(BaseModel):
    session: str
    type: Literal["answer"] = "answer"
    sdp: str
    lease_s: float = Field(description="renew the view (POST …/lease) well within this")


class IceCandidate(BaseModel):
    """One trickled ICE candidate from the browser; ``candidate`` empty or null: no more."""

    candidate: str | None = Field(None, max_length=1024)
    sdpMid: str | None = Field(None, max_length=64)
    sdpMLineIndex: int | None = Field(None, ge=0, le=64)


class LiveState(BaseModel):
    device_id: str
    online: bool
    watching: int
    viewers: list[str] | None = Field(None, description="who is watching (owners only)")


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    def device_or_404(device_id: str) -> dict[str, Any]:
        for device in hub.devices():
            if device["device_id"] == device_id:
                return device
        raise LiveError(404, f"no doorbell called {device_id!r}")

    @routes.get("/live/{device_id}", response_class=HTMLResponse)
    async def live_page(
        request: Request,
        device_id: DeviceId,
        session: Annotated[Session, Depends(allow(*FOOTAGE, page=True))],
    ) -> Response:
        try:
            device = device_or_404(device_id)
        except LiveError as exc:
            return page(request, "error.html", session, 404, message=exc.reason)
        talk = session.role in TALK and hub.live.has_speaker(device_id)
        return page(
            request, "live.html", session, device=device, ice=hub.live.ice_servers, talk=talk
        )

    @routes.post("/api/devices/{device_id}/live", status_code=201)
    async def live_offer(
        device_id: DeviceId,
        offer: LiveOffer,
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
    ) -> LiveAnswer:
        """Start watching: the browser's offer in, the hub's answer (with its candidates) out."""
        if device_or_404(device_id)["state"] != "online":
            raise LiveError(409, f"{device_id} is offline")
        live_id, sdp = await hub.live.open(
            device_id, session.username, offer.sdp, session.role in TALK, session.key
        )
        if not hub.accounts.alive(session.key):  # signed out while the offer was answered
            await hub.live.leave(live_id, session.username)
            raise NotSignedIn(False)
        return LiveAnswer(session=live_id, sdp=sdp, lease_s=hub.live.settings.viewer_lease_s)

    @routes.post("/api/live/{live_id}/lease")
    async def live_renew(
        live_id: LiveSessionId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict[str, float]:
        """Keep watching: the page renews its view while its session holds."""
        return {"lease_s": hub.live.renew(live_id, session.username, session.key)}

    @routes.post("/api/live/{live_id}/candidates", status_code=204)
    async def live_candidate(
        live_id: LiveSessionId,
        candidate: IceCandidate,
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
    ) -> None:
        await hub.live.add_candidate(live_id, session.username, candidate.model_dump())

    @routes.delete("/api/live/{live_id}", status_code=204)
    async def live_leave(
        live_id: LiveSessionId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> None:
        await hub.live.leave(live_id, session.username)

    @routes.get("/api/devices/{device_id}/live")
    async def live_state(
        device_id: DeviceId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> LiveState:
        """Whether the doorbell is online and how many watch; owners also see who."""
        device = device_or_404(device_id)
        viewers = hub.live.viewers(device_id)
        return LiveState(
            device_id=device_id,
            online=device["state"] == "online",
            watching=len(viewers),
            viewers=sorted({v.username for v in viewers}) if session.role == "owner" else None,
        )

    return routes
