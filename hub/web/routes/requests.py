"""Footage requests, the only way footage leaves the home: a requester files one and
downloads the signed bundle of an approval; the owner reviews, narrows, trims, redacts,
approves or declines, and invites requesters."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from porch.hub.accounts import Session
from porch.hub.area import area_summary
from porch.hub.consent import FIELD_LIMITS, LEGAL_BASES, ConsentError, FootageRequest
from porch.hub.delivery import delivery_status
from porch.hub.throttle import Throttled
from porch.hub.web.auth import REQUESTS, Forbidden, allow
from porch.hub.web.site import RequestId, Site, minutes, when
from porch.hub.web.site import boxes as drawn_boxes

MAX_TRIMS = 1000
"""Trims one review form may carry (one a matching clip)."""


def own_request(site: Site, request_id: str, session: Session) -> FootageRequest:
    """The request, if this person may see it: the owner any, a requester only theirs."""
    found = site.hub.consent.get(request_id)
    if found is None or (session.role == "requester" and found.filed_by != session.username):
        raise ConsentError("no such request", 404)
    return found


def trust_agency_of(site: Site, found: FootageRequest, owner: str) -> None:
    """The owner trusts the key of the agency that made this area request, on the record."""
    site.hub.area.trust_request(found, owner)
    site.hub.audit.append(owner, "area agency trusted", found.request_id,
                          {"agency": found.origin["agency"],
                           "fingerprint": found.origin["agency_fingerprint"]})  # fmt: skip


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    @routes.get("/requests", response_class=HTMLResponse)
    async def requests_page(
        request: Request, session: Annotated[Session, Depends(allow(*REQUESTS, page=True))]
    ) -> Response:
        owner = session.role == "owner"
        mine = hub.consent.all(None if owner else session.username)
        untrusted = [r for r in mine if r.from_area and not hub.area.is_trusted(r.origin)]
        return page(request, "requests.html", session, untrusted=untrusted,
                    requests=[r for r in mine if r not in untrusted],
                    report=hub.consent.report() if owner else None)  # fmt: skip

    @routes.get("/requests/new", response_class=HTMLResponse)
    async def request_form(
        request: Request, session: Annotated[Session, Depends(allow(*REQUESTS, page=True))]
    ) -> Response:
        return page(request, "request_new.html", session, bases=LEGAL_BASES)

    @routes.post("/requests")
    async def file_request(
        request: Request,
        session: Annotated[Session, Depends(allow(*REQUESTS))],
        name: Annotated[str, Form(max_length=FIELD_LIMITS["name"])],
        organisation: Annotated[str, Form(max_length=FIELD_LIMITS["organisation"])],
        contact: Annotated[str, Form(max_length=FIELD_LIMITS["contact"])],
        reason: Annotated[str, Form(max_length=FIELD_LIMITS["reason"])],
        legal_basis: Annotated[str, Form(max_length=20)],
        start: Annotated[str, Form(max_length=40)],
        end: Annotated[str, Form(max_length=40)],
        legal_reference: Annotated[str, Form(max_length=FIELD_LIMITS["legal_reference"])] = "",
        devices: Annotated[str, Form(max_length=FIELD_LIMITS["devices"])] = "all",
        expires_days: Annotated[float, Form(gt=0, le=90)] = 30,
    ) -> Response:
        """File a request. Doorbells are named, or 'all': no list of them is shown."""
        known = [d["device_id"] for d in hub.devices()]
        wanted = [d.strip() for d in devices.split(",") if d.strip()]
        chosen = known if wanted in ([], ["all"]) else [d for d in wanted if d in known]
        try:
            filed = hub.consent.file(session.username, name, organisation, contact, reason,
                                     legal_basis, legal_reference, chosen, when(start),
                                     when(end), expires_days)  # fmt: skip
        except ConsentError as exc:  # the form again, as it was filled, with the reason
            form = await request.form()
            return page(request, "request_new.html", session, exc.status, bases=LEGAL_BASES,
                        error=str(exc), form=form)  # fmt: skip
        hub.broadcaster.publish(
            "request",
            {"request_id": filed.request_id, "organisation": filed.organisation},
            roles=frozenset({"owner"}),
        )
        return RedirectResponse(f"/requests/{filed.request_id}", status_code=303)

    @routes.get("/requests/{request_id}", response_class=HTMLResponse)
    async def request_page(
        request: Request,
        request_id: RequestId,
        session: Annotated[Session, Depends(allow(*REQUESTS, page=True))],
    ) -> Response:
        found = own_request(site, request_id, session)
        clips = hub.consent.matching_clips(found) if session.role == "owner" else []
        for clip in clips:
            clip["trimmable"] = bool(json.loads(clip["meta"]).get("gops"))
        area = delivered = trusted = None
        if found.from_area and session.role == "owner":
            area = area_summary(found.origin, hub.area.home())
            delivered = delivery_status(hub.web_db.conn, request_id)
            trusted = hub.area.is_trusted(found.origin)
        return page(request, "request.html", session, r=found, clips=clips, area=area,
                    delivered=delivered, trusted=trusted,
                    bundle=hub.consent.bundle(request_id), build=hub.builds.status(request_id),
                    ca_fingerprint=site.ca_fingerprint(),
                    audit=hub.audit.entries(request_id))  # fmt: skip

    @routes.post("/requests/{request_id}/decision")
    async def decide(
        request: Request,
        request_id: RequestId,
        session: Annotated[Session, Depends(allow("owner"))],
        action: Annotated[Literal["approve", "decline"], Form()],
        password: Annotated[str, Form(max_length=1024)],
        clip_ids: Annotated[list[str] | None, Form()] = None,
        start: Annotated[str, Form(max_length=40)] = "",
        end: Annotated[str, Form(max_length=40)] = "",
        blur_faces: Annotated[bool, Form()] = False,
        boxes: Annotated[str, Form(max_length=2000)] = "",
        message: Annotated[str, Form(max_length=FIELD_LIMITS["message"])] = "",
        approval_days: Annotated[float, Form(gt=0, le=90)] = 14,
        trim_clip: Annotated[list[str] | None, Form()] = None,
        trim_from: Annotated[list[str] | None, Form()] = None,
        trim_to: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        """The owner's decision; approving (or declining) asks for the password again, which
        counts against the same throttle as signing in. ``trim_clip``, ``trim_from`` and
        ``trim_to`` come in threes: the seconds of a clip to share (both empty: all of it)."""
        trims = _trims(trim_clip or [], trim_from or [], trim_to or [], set(clip_ids or []))
        try:
            ok = await site.checked_password(request, session.username, password)
        except Throttled as exc:
            wait = minutes(exc.retry_after_s)
            raise Forbidden(f"too many wrong passwords: try again in {wait}", 429) from None
        if ok != "owner":
            raise Forbidden("wrong password: the decision was not recorded")
        found = own_request(site, request_id, session)
        # Approving sends footage to the key's drop box: it accepts the key, as the page says
        # beside its fingerprint (refused, before anything is recorded, if it cannot be).
        accepts = action == "approve" and found.from_area and not hub.area.is_trusted(found.origin)
        if accepts:
            hub.area.may_trust(found)
        await asyncio.to_thread(
            hub.consent.decide, request_id, session.username, action == "approve",
            # nothing ticked approves nothing (not "everything in the window")
            clip_ids or ([] if action == "approve" else None),
            when(start) if start else None, when(end) if end else None,
            blur_faces, _boxes(boxes), message, approval_days, trims,
        )  # fmt: skip
        if accepts:
            trust_agency_of(site, found, session.username)
        if action == "approve":  # built now, in the background: ready when they look
            hub.builds.schedule(request_id, session.username)
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    @routes.get("/api/requests/{request_id}/bundle")
    async def bundle_status(
        request_id: RequestId, session: Annotated[Session, Depends(allow(*REQUESTS))]
    ) -> dict:
        """Where the bundle of an approved request stands: queued, building (percent),
        ready or failed."""
        own_request(site, request_id, session)
        status = hub.builds.status(request_id).public()
        if status["error"] and session.role != "owner":  # the details are the owner's
            status["error"] = "the home's hub could not build it; its owner can see why"
        return status

    @routes.get("/requests/{request_id}/bundle.zip")
    async def download_bundle(
        request: Request,
        request_id: RequestId,
        session: Annotated[Session, Depends(allow(*REQUESTS))],
    ) -> Response:
        """The signed bundle of an approved request, once it is built (in the background,
        since the approval); before that, where it stands."""
        found = own_request(site, request_id, session)
        if not found.approval_live:
            raise ConsentError("there is no live approval to download", 410)
        status = hub.builds.status(request_id)
        bundle = hub.consent.bundle(request_id)
        if status.state != "ready" or bundle is None or not Path(bundle["path"]).exists():
            if status.state == "none":
                status = hub.builds.schedule(request_id, session.username)
            error = status.error if session.role == "owner" else "its owner can see why"
            detail = (f"the bundle is not ready: {status.state}"
                      + (f" ({status.percent} %)" if status.state == "building" else "")
                      + (f": {error}" if status.error else ""))  # fmt: skip
            if "text/html" in request.headers.get("accept", ""):
                return page(request, "error.html", session, 409,
                            message=detail[0].upper() + detail[1:] + ". Its page shows when"
                            " it is ready.")  # fmt: skip
            return JSONResponse({"detail": detail, **status.public()}, status_code=409)
        record = {"bundle_id": bundle["bundle_id"], "sha256": bundle["sha256"]}
        hub.audit.append(session.username, "download", request_id, record)
        response = FileResponse(bundle["path"], media_type="application/zip",
                                filename=f"porch-export-{bundle['bundle_id']}.zip")  # fmt: skip
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @routes.post("/requesters/invite", response_class=HTMLResponse)
    async def invite_requester(
        request: Request, session: Annotated[Session, Depends(allow("owner"))]
    ) -> Response:
        token = hub.accounts.new_invite("requester", session.username)
        link = f"{hub.url}/invite?token={token}"
        hub.audit.append(session.username, "invite", "requester", {})
        return page(request, "invite_link.html", session, link=link, role="requester")

    return routes


def _trims(
    clips: list[str], starts: list[str], ends: list[str], ticked: set[str]
) -> dict[str, tuple[float, float | None]]:
    """The review form's trims of ticked clips: {clip id: (from s, to s or None: its end)}."""
    if not len(clips) == len(starts) == len(ends) or len(clips) > MAX_TRIMS:
        raise ConsentError("trims come as one clip, one start and one end each")
    trims: dict[str, tuple[float, float | None]] = {}
    for clip_id, start, end in zip(clips, starts, ends, strict=True):
        start, end = start.strip(), end.strip()
        if clip_id not in ticked or not (start or end):
            continue
        if not all(re.fullmatch(r"\d{1,6}(\.\d{1,3})?", v) for v in (start or "0", end or "0")):
            raise ConsentError(f"a trim is in seconds: {start[:20]!r} to {end[:20]!r}")
        trims[clip_id] = (float(start or 0), float(end) if end else None)
    return trims


def _boxes(text: str) -> list[dict[str, float]]:
    """Redaction boxes, one 'x,y,w,h' per line, as fractions of the frame."""
    try:
        found = drawn_boxes(text)
    except ValueError as exc:
        raise ConsentError(str(exc)) from None
    return [{"x": x, "y": y, "w": w, "h": h} for x, y, w, h in found]
