"""Doorbells and integrations: the devices page, naming a doorbell, enrolling and revoking
one (owners and installers), and Home Assistant's read-only identity (the owner)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from porch.core.enrollment import EnrollError
from porch.core.wire import DEVICE_ID_PATTERN, HOME_ASSISTANT_IDENTITY, refuse_unprintable
from porch.hub.accounts import Session
from porch.hub.web.auth import DEVICES, PROVISIONING, Forbidden, allow
from porch.hub.web.site import NOT_PROVISIONED, DeviceId, Site


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    def home_assistant_since() -> float | None:
        if hub.authority is None:
            return None
        return hub.authority.registry.integration_created(HOME_ASSISTANT_IDENTITY)

    @routes.get("/devices", response_class=HTMLResponse)
    async def devices_page(
        request: Request, session: Annotated[Session, Depends(allow(*DEVICES, page=True))]
    ) -> Response:
        enrolled = hub.authority.registry.devices() if hub.authority else None
        return page(request, "devices.html", session, devices=hub.devices(), enrolled=enrolled,
                    home_assistant=home_assistant_since())  # fmt: skip

    @routes.post("/devices/name")
    async def rename_device(
        session: Annotated[Session, Depends(allow("owner"))],
        device_id: Annotated[str, Form(pattern=DEVICE_ID_PATTERN)],
        name: Annotated[str, Form(max_length=64)],
    ) -> Response:
        """The owner names a doorbell ("Front door"): shown on every page and in Home
        Assistant. An empty name goes back to its id."""
        name = " ".join(name.split())
        try:
            refuse_unprintable(name, "the name")
        except ValueError as exc:
            raise Forbidden(str(exc), 400) from None
        if not hub.web_db.set_display_name(device_id, name):
            raise Forbidden(f"no doorbell called {device_id}", 404)
        hub.home_assistant.renamed(device_id, name or device_id)
        return RedirectResponse("/devices", status_code=303)

    @routes.post("/integrations/home-assistant")
    async def home_assistant_identity(
        session: Annotated[Session, Depends(allow("owner"))],
    ) -> Response:
        """A read-only broker identity for Home Assistant, as a zip (CA, certificate, key);
        an earlier one stops working. The key is in this download only."""
        if hub.authority is None:
            raise Forbidden(NOT_PROVISIONED, 409)
        bundle = await asyncio.to_thread(hub.authority.new_home_assistant)
        hub.audit.append(session.username, "integration", "home-assistant", {"made": True})
        return Response(
            bundle,
            media_type="application/zip",
            headers={
                "Content-Disposition": 'attachment; filename="porch-home-assistant.zip"',
                "Cache-Control": "no-store",
            },
        )

    @routes.post("/integrations/home-assistant/revoke")
    async def revoke_home_assistant(
        session: Annotated[Session, Depends(allow("owner"))],
    ) -> Response:
        if hub.authority is None:
            raise Forbidden(NOT_PROVISIONED, 409)
        try:
            await asyncio.to_thread(hub.authority.revoke_home_assistant)
        except EnrollError as exc:
            raise Forbidden(str(exc), 409) from None
        hub.audit.append(session.username, "integration", "home-assistant", {"revoked": True})
        return RedirectResponse("/devices", status_code=303)

    @routes.post("/devices/enroll", response_class=HTMLResponse)
    async def enroll_device(
        request: Request,
        session: Annotated[Session, Depends(allow(*PROVISIONING))],
        name: Annotated[str, Form(max_length=64)],
    ) -> Response:
        """A one-time enrollment token for a new doorbell, as text and as a QR code."""
        if hub.authority is None:
            return page(request, "error.html", session, 409, message=NOT_PROVISIONED)
        try:
            token = hub.authority.new_token(name.strip().lower())
        except EnrollError as exc:
            return page(request, "devices.html", session, 400, devices=hub.devices(),
                        enrolled=hub.authority.registry.devices(), error=str(exc))  # fmt: skip
        text = token.encode()
        return page(request, "enroll.html", session, token=token, text=text, qr=qr_svg(text))

    @routes.post("/devices/{device_id}/revoke")
    async def revoke_device(
        device_id: DeviceId, session: Annotated[Session, Depends(allow(*PROVISIONING))]
    ) -> Response:
        if hub.authority is None:
            return JSONResponse({"detail": NOT_PROVISIONED}, status_code=409)
        try:
            await asyncio.to_thread(hub.authority.revoke, device_id)
        except EnrollError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return RedirectResponse("/devices", status_code=303)

    return routes


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (made here: nothing is fetched)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=6)
    return Markup(image.to_string(encoding="unicode"))
