"""Area requests, the owner's side: turning them on and setting the home's location, the
agencies and regional authorities trusted, and the delivery of an approved bundle to an
agency's drop box. The owner only."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from porch.hub.accounts import Session
from porch.hub.consent import ConsentError
from porch.hub.delivery import delivery_status
from porch.hub.web.auth import allow
from porch.hub.web.routes.requests import own_request, trust_agency_of
from porch.hub.web.site import RequestId, Site


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    def area_page(request: Request, session: Session, status: int = 200, **ctx: Any) -> Response:
        home = hub.area.home()
        return page(request, "area.html", session, status, home=home, cell=home.cell,
                    relay=hub.config.area.relay.host, limits_area=hub.config.area,
                    agencies=hub.area.agencies(), authorities=hub.area.authorities(),
                    conflicts=hub.area.conflicts(),
                    heard=hub.area.log(), **ctx)  # fmt: skip

    @routes.get("/area", response_class=HTMLResponse)
    async def area_settings(
        request: Request, session: Annotated[Session, Depends(allow("owner", page=True))]
    ) -> Response:
        return area_page(request, session)

    @routes.post("/area", response_class=HTMLResponse)
    async def set_area(
        request: Request,
        session: Annotated[Session, Depends(allow("owner"))],
        latitude: Annotated[str, Form(max_length=40)] = "",
        longitude: Annotated[str, Form(max_length=40)] = "",
        enabled: Annotated[bool, Form()] = False,
    ) -> Response:
        """The owner turns area requests on or off and sets the home's location (kept on
        the hub: only the home's coarse cell is ever named to the relay)."""
        try:
            lat = float(latitude) if latitude.strip() else None
            lon = float(longitude) if longitude.strip() else None
            hub.area.set_home(enabled, lat, lon)
        except (ValueError, ConsentError) as exc:
            reason = str(exc) if isinstance(exc, ConsentError) else "the location is in degrees"
            return area_page(request, session, 400, error=reason)
        await asyncio.to_thread(hub.area_listener.refresh)
        hub.audit.append(session.username, "area settings", "-", {"enabled": enabled})
        return RedirectResponse("/area", status_code=303)

    @routes.post("/area/agencies/forget")
    async def forget_agency(
        session: Annotated[Session, Depends(allow("owner"))],
        fingerprint: Annotated[str, Form(pattern=r"^[0-9a-f]{64}$")],
    ) -> Response:
        """Trust an agency's key no more (its pending requests are listed as untrusted)."""
        hub.area.forget_agency(fingerprint)
        hub.audit.append(session.username, "area agency forgotten", "-",
                         {"fingerprint": fingerprint})  # fmt: skip
        return RedirectResponse("/area", status_code=303)

    @routes.post("/area/agencies/trust")
    async def trust_agency(
        session: Annotated[Session, Depends(allow("owner"))],
        request_id: Annotated[str, Form(pattern=r"^[0-9a-f]{16}$")],
    ) -> Response:
        """Trust the key of the agency that made this matched area request, after comparing
        its fingerprint with the one the agency publishes."""
        found = own_request(site, request_id, session)
        if not found.from_area:
            raise ConsentError("not an area request", 404)
        trust_agency_of(site, found, session.username)
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    @routes.post("/area/authorities", response_class=HTMLResponse)
    async def add_authority(
        request: Request,
        session: Annotated[Session, Depends(allow("owner"))],
        pem: Annotated[str, Form(max_length=20000)],
    ) -> Response:
        """Trust every agency a regional authority certifies (its CA certificate, PEM)."""
        try:
            added = hub.area.add_authority(pem)
        except ConsentError as exc:
            return area_page(request, session, 400, error=str(exc))
        hub.audit.append(session.username, "area authority", "-",
                         {"name": added["name"], "fingerprint": added["fingerprint"]})  # fmt: skip
        return RedirectResponse("/area", status_code=303)

    @routes.post("/area/authorities/remove")
    async def remove_authority(
        session: Annotated[Session, Depends(allow("owner"))],
        fingerprint: Annotated[str, Form(pattern=r"^[0-9a-f]{64}$")],
    ) -> Response:
        hub.area.remove_authority(fingerprint)
        hub.audit.append(session.username, "area authority removed", "-",
                         {"fingerprint": fingerprint})  # fmt: skip
        return RedirectResponse("/area", status_code=303)

    @routes.get("/api/requests/{request_id}/delivery")
    async def delivery(
        request_id: RequestId, session: Annotated[Session, Depends(allow("owner"))]
    ) -> dict:
        """Where the bundle of an approved area request stands on its way to the agency."""
        own_request(site, request_id, session)
        return delivery_status(hub.web_db.conn, request_id)

    @routes.post("/requests/{request_id}/deliver")
    async def deliver_again(
        request_id: RequestId, session: Annotated[Session, Depends(allow("owner"))]
    ) -> Response:
        """Send a failed delivery again (it resumes where the drop box stands)."""
        found = own_request(site, request_id, session)
        if not (found.from_area and found.approval_live and hub.consent.bundle(request_id)):
            raise ConsentError("nothing to send: no built bundle of a live area approval", 409)
        hub.deliveries.schedule(request_id)
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    return routes
