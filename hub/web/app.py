"""The hub's web app: every route, with the roles it admits (see :mod:`.auth`).

Pages are server-rendered (Jinja2) and readable on a phone; ``static/porch.js`` adds the
ring banner (server-sent events) and the timeline's live rows. Media (clips, thumbnails,
snapshots) are served with HTTP range requests, to owners and members only.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cryptography.hazmat.primitives import hashes
from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, Field

from porch.core import __version__
from porch.core.enrollment import EnrollError
from porch.core.wire import DEVICE_ID_PATTERN, HOME_ASSISTANT_IDENTITY, ID_PATTERN
from porch.hub.accounts import MIN_PASSWORD, PASSWORD_RULE, AccountError, Role, Session
from porch.hub.area import area_summary
from porch.hub.consent import (
    FIELD_LABELS,
    FIELD_LIMITS,
    LEGAL_BASES,
    ConsentError,
    FootageRequest,
)
from porch.hub.delivery import delivery_status
from porch.hub.live import LiveError
from porch.hub.push import PushError
from porch.hub.throttle import Throttled
from porch.hub.web.auth import (
    DEVICES,
    EVERYONE,
    FOOTAGE,
    PROVISIONING,
    REQUESTS,
    SESSION_COOKIE,
    TALK,
    Forbidden,
    NotSignedIn,
    allow,
    current_session,
)

if TYPE_CHECKING:
    from porch.hub.service import HubService

HERE = Path(__file__).parent
ClipId = Annotated[str, PathParam(pattern=ID_PATTERN, description="32 hex digits")]
EventId = Annotated[str, PathParam(pattern=ID_PATTERN, description="32 hex digits")]
DeviceId = Annotated[str, PathParam(pattern=DEVICE_ID_PATTERN, description="e.g. front-door")]
RequestId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="16 hex digits")]
LiveSessionId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
MAX_SDP = 64 * 1024
MAX_TRIMS = 1000
"""Trims one review form may carry (one a matching clip)."""
NO_TELEMETRY: TelemetryConfig = {
    "auto_configure": False,
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
NOT_PROVISIONED = "this hub is not provisioned: run 'porch provision init' first"


class LiveOffer(BaseModel):
    """A browser's WebRTC offer to watch a doorbell."""

    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP)


class LiveAnswer(BaseModel):
    session: str
    type: Literal["answer"] = "answer"
    sdp: str


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


LOGIN_COOKIE = "porch_login"
BROWSER_COOKIE = "porch_browser"
"""Marks a browser that has signed in to an account before (see hub/throttle.py)."""
KEEPALIVE_S = 15.0
HOME = {"owner": "/", "member": "/", "installer": "/devices", "requester": "/requests"}


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
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, name: str, session: Session | None, status: int = 200, **ctx):
        ctx.update(request=request, session=session, version=__version__, status=status)
        ctx.setdefault("password_rule", PASSWORD_RULE)
        ctx.setdefault("min_password", MIN_PASSWORD)
        ctx.setdefault("limits", FIELD_LIMITS)
        response = templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

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
        reason = _reason(exc.errors())
        session = current_session(request)
        route = request.scope.get("route")
        if getattr(route, "path", "") == "/requests" and session is not None:
            form = await request.form()
            return page(request, "request_new.html", session, 400, bases=LEGAL_BASES,
                        error=reason, form=form)  # fmt: skip
        return page(request, "error.html", session, 400, message=reason)

    @app.exception_handler(LiveError)
    async def live_error(request: Request, exc: LiveError) -> Response:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            session = current_session(request)
            return page(request, "error.html", session, exc.status, message=exc.reason)
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    # -- signing in -----------------------------------------------------------------------

    async def checked_password(request: Request, username: str, password: str) -> Role | None:
        """The account's role if the password is right; every check, at sign-in or to
        confirm a decision, goes through the throttle (raises :class:`Throttled`). A
        browser that signed in to the account before is not slowed by strangers' guesses."""
        address = request.client.host if request.client else "?"
        browser = request.cookies.get(BROWSER_COOKIE)
        known = hub.accounts.browser_known(browser, username)
        attempt = hub.throttle.begin(username, address, known)
        role = None
        try:
            if attempt.delay_s:
                await asyncio.sleep(attempt.delay_s)
            async with hub.throttle.checks:
                role = await asyncio.to_thread(hub.accounts.check_password, username, password)
        finally:
            hub.throttle.finish(attempt, role is not None)
        if role is None and known and browser:
            hub.accounts.browser_failed(browser)
        return role

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/") -> Response:
        nonce = secrets.token_urlsafe(16)
        response = page(request, "login.html", None, nonce=nonce, next=_local(next))
        _cookie(response, request, LOGIN_COOKIE, nonce, max_age=3600)
        return response

    @app.post("/login")
    async def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        nonce: Annotated[str, Form(max_length=64)],
        next: Annotated[str, Form(max_length=512)] = "/",
    ) -> Response:
        # Login CSRF: the form must carry the nonce of the cookie set with the form.
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, nonce):
            raise Forbidden("the login form expired; reload it and try again")
        try:
            role = await checked_password(request, username.lower(), password)
        except Throttled as exc:
            return page(
                request,
                "login.html",
                None,
                429,
                nonce=nonce,
                next=_local(next),
                error=f"Too many failed attempts from here. Try again in"
                f" {_minutes(exc.retry_after_s)}.",
            )
        if role is None:
            return page(
                request,
                "login.html",
                None,
                401,
                nonce=nonce,
                next=_local(next),
                error="Wrong username or password.",
            )
        token = hub.accounts.open_session(username.lower())
        target = _local(next) if next not in ("", "/") else HOME[role]
        response = RedirectResponse(target, status_code=303)
        _cookie(response, request, SESSION_COOKIE, token, max_age=14 * 24 * 3600)
        if not hub.accounts.browser_known(request.cookies.get(BROWSER_COOKIE), username.lower()):
            browser = hub.accounts.remember_browser(username.lower())
            _cookie(response, request, BROWSER_COOKIE, browser, max_age=365 * 24 * 3600)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(
        request: Request, session: Annotated[Session, Depends(allow(*EVERYONE))]
    ) -> Response:
        hub.accounts.close_session(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def account_link(
        path: str,
        template: str,
        what: str,
        valid: Callable[[str], bool],
        create: Callable[[str, str, str], object],
        role: Callable[[str], str | None] = lambda _: None,
    ) -> None:
        """A one-time link that makes an account (the owner's setup link, a requester's
        invitation): its form while the token holds, then the account and the sign-in page.
        ``create`` raises an AccountError naming ``what`` when the token is spent."""

        @app.get(path, response_class=HTMLResponse)
        async def form(request: Request, token: str = Query("", max_length=64)) -> Response:
            if not valid(token):
                return page(request, "error.html", None, 404,
                            message=f"This {what} was used already or has expired.")  # fmt: skip
            return page(request, template, None, token=token, role=role(token))

        @app.post(path)
        async def submit(
            request: Request,
            token: Annotated[str, Form(max_length=64)],
            username: Annotated[str, Form(max_length=64)],
            password: Annotated[str, Form(max_length=1024)],
        ) -> Response:
            try:
                await asyncio.to_thread(create, token, username.lower(), password)
            except AccountError as exc:
                status = 404 if what in str(exc) else 400
                return page(request, template, None, status, token=token, role=role(token),
                            error=str(exc))  # fmt: skip
            return RedirectResponse("/login", status_code=303)

    account_link("/setup", "setup.html", "setup link", hub.accounts.setup_token_valid,
                 hub.accounts.create_owner_with_setup_token)  # fmt: skip
    account_link("/invite", "invite.html", "invitation",
                 lambda token: hub.accounts.invite_role(token) is not None,
                 hub.accounts.accept_invite, hub.accounts.invite_role)  # fmt: skip

    # -- pages ----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def timeline(
        request: Request, session: Annotated[Session, Depends(allow(*FOOTAGE, page=True))]
    ) -> Response:
        return page(
            request,
            "timeline.html",
            session,
            events=hub.timeline(100),
            demo=hub.simulated_press is not None,
        )

    @app.get("/devices", response_class=HTMLResponse)
    async def devices_page(
        request: Request, session: Annotated[Session, Depends(allow(*DEVICES, page=True))]
    ) -> Response:
        enrolled = hub.authority.registry.devices() if hub.authority else None
        return page(request, "devices.html", session, devices=hub.devices(), enrolled=enrolled,
                    home_assistant=_home_assistant_since())  # fmt: skip

    @app.post("/devices/name")
    async def rename_device(
        session: Annotated[Session, Depends(allow("owner"))],
        device_id: Annotated[str, Form(pattern=DEVICE_ID_PATTERN)],
        name: Annotated[str, Form(max_length=64)],
    ) -> Response:
        """The owner names a doorbell ("Front door"): shown on every page and in Home
        Assistant. An empty name goes back to its id."""
        name = " ".join(name.split())
        if not hub.web_db.set_display_name(device_id, name):
            raise Forbidden(f"no doorbell called {device_id}", 404)
        hub.home_assistant.renamed(device_id, name or device_id)
        return RedirectResponse("/devices", status_code=303)

    def _ca_fingerprint() -> str | None:
        """The home CA's SHA-256, as `porch verify` prints it and docs/verify.md takes it."""
        if hub.authority is None:
            return None
        return hub.authority.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()

    def _home_assistant_since() -> float | None:
        if hub.authority is None:
            return None
        return hub.authority.registry.integration_created(HOME_ASSISTANT_IDENTITY)

    @app.post("/integrations/home-assistant")
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

    @app.post("/integrations/home-assistant/revoke")
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

    @app.post("/devices/enroll", response_class=HTMLResponse)
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

    @app.post("/devices/{device_id}/revoke")
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

    def account_page(request: Request, session: Session, status: int = 200, **ctx) -> Response:
        """Your account: password and sessions; for the owner, the household too."""
        current = request.cookies.get(SESSION_COOKIE)
        household = hub.accounts.users() if session.role == "owner" else None
        push = hub.push.preferences(session.username) if session.role in FOOTAGE else None
        return page(request, "account.html", session, status,
                    sessions=hub.accounts.sessions(session.username, current),
                    household=household, push=push, ca_fingerprint=_ca_fingerprint(),
                    **ctx)  # fmt: skip

    @app.get("/account", response_class=HTMLResponse)
    async def account(
        request: Request, session: Annotated[Session, Depends(allow(*EVERYONE, page=True))]
    ) -> Response:
        return account_page(request, session)

    @app.post("/account/password", response_class=HTMLResponse)
    async def change_password(
        request: Request,
        session: Annotated[Session, Depends(allow(*EVERYONE))],
        current: Annotated[str, Form(max_length=1024)],
        new: Annotated[str, Form(max_length=1024)],
        again: Annotated[str, Form(max_length=1024)],
    ) -> Response:
        """A new password, after the current one (throttled like signing in); every other
        session ends."""
        try:
            ok = await checked_password(request, session.username, current)
        except Throttled as exc:
            wait = _minutes(exc.retry_after_s)
            return account_page(request, session, 429, password_error=f"Try again in {wait}.")
        if ok is None:
            return account_page(request, session, 403, password_error="That is not your"
                                " current password.")  # fmt: skip
        if new != again:
            return account_page(request, session, 400, password_error="The new password and"
                                " its repetition differ.")  # fmt: skip
        try:
            await asyncio.to_thread(hub.accounts.change_password, session.username, new,
                                    request.cookies.get(SESSION_COOKIE))  # fmt: skip
        except AccountError as exc:
            return account_page(request, session, 400, password_error=f"{exc}.")
        return account_page(request, session, password_done=True)

    @app.post("/account/sessions/{session_id}/end")
    async def end_session(
        session_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")],
        session: Annotated[Session, Depends(allow(*EVERYONE))],
    ) -> Response:
        """End one of your own sessions (a lost phone, a shared computer)."""
        hub.accounts.end_session(session.username, session_id)
        return RedirectResponse("/account", status_code=303)

    @app.post("/household/invite", response_class=HTMLResponse)
    async def invite_household(
        request: Request,
        session: Annotated[Session, Depends(allow("owner"))],
        role: Annotated[Literal["member", "installer"], Form()],
    ) -> Response:
        """A one-time link that makes a member's or an installer's account."""
        token = hub.accounts.new_invite(role, session.username)
        hub.audit.append(session.username, "invite", role, {})
        return page(request, "invite_link.html", session, link=f"{hub.url}/invite?token={token}",
                    role=role)  # fmt: skip

    @app.post("/household/{username}/remove")
    async def remove_household(
        request: Request,
        username: Annotated[str, PathParam(max_length=64)],
        session: Annotated[Session, Depends(allow("owner"))],
    ) -> Response:
        """Remove an account (its sessions end at once); never the last owner."""
        try:
            hub.accounts.remove_user(username)
        except AccountError as exc:
            return account_page(request, session, 409, household_error=f"{exc}.")
        hub.audit.append(session.username, "remove", username, {})
        return RedirectResponse("/account", status_code=303)

    @app.get("/clips/{clip_id}", response_class=HTMLResponse)
    async def clip_page(
        request: Request,
        clip_id: ClipId,
        session: Annotated[Session, Depends(allow(*FOOTAGE, page=True))],
    ) -> Response:
        clip = hub.stored_clip(clip_id)
        if clip is None:
            return page(request, "error.html", session, 404, message="No such clip.")
        return page(request, "clip.html", session, clip=clip)

    # -- media ----------------------------------------------------------------------------

    @app.get("/clips/{clip_id}/video.mp4")
    async def clip_video(
        clip_id: ClipId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        return _media(hub.clips.video(clip_id), "video/mp4", hub.stored_clip(clip_id))

    @app.get("/clips/{clip_id}/thumbnail.jpg")
    async def clip_thumbnail(
        clip_id: ClipId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        return _media(hub.clips.thumbnail(clip_id), "image/jpeg", hub.stored_clip(clip_id))

    @app.get("/events/{event_id}/snapshot.jpg")
    async def snapshot(
        event_id: EventId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> Response:
        path = hub.ingest.snapshot_path(event_id)
        return _media(path, "image/jpeg", path.exists() or None)

    @app.get("/event/{event_id}", response_class=HTMLResponse)
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

    # -- notifications on phones (Web Push) -----------------------------------------------

    @app.get("/manifest.webmanifest")
    async def manifest() -> Response:
        """The web app manifest: Porch installs on a phone's home screen."""
        body = {
            "name": "Porch", "short_name": "Porch", "start_url": "/", "scope": "/",
            "display": "standalone", "background_color": "#faf8f5", "theme_color": "#1d2430",
            "icons": [{"src": f"/static/icon-{n}.png", "sizes": f"{n}x{n}", "type": "image/png",
                       "purpose": "any maskable"} for n in (192, 512)],
        }  # fmt: skip
        return JSONResponse(body, media_type="application/manifest+json")

    @app.get("/sw.js")
    async def service_worker() -> Response:
        """The service worker, from the root so that it may serve the whole hub."""
        response = FileResponse(HERE / "static" / "sw.js", media_type="application/javascript")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/api/push")
    async def push_state(
        request: Request, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict:
        """What a page needs to turn notifications on: the hub's VAPID key and the user's
        preferences."""
        return {"enabled": hub.config.push.enabled, "public_key": hub.push.public_key,
                "subscriptions": hub.push.subscriptions(session.username),
                **hub.push.preferences(session.username)}  # fmt: skip

    @app.post("/api/push/subscriptions")
    async def push_subscribe(
        subscription: PushSubscription, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict:
        """This browser's push subscription (from its service worker)."""
        if not hub.config.push.enabled:
            raise Forbidden("notifications are turned off on this hub", 409)
        try:
            hub.push.subscribe(session.username, subscription.endpoint,
                               subscription.keys.p256dh, subscription.keys.auth)  # fmt: skip
        except PushError as exc:
            raise Forbidden(str(exc), 400) from None
        return {"subscriptions": hub.push.subscriptions(session.username)}

    @app.post("/api/push/unsubscribe")
    async def push_unsubscribe(
        subscription: PushSubscription, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict:
        hub.push.unsubscribe(session.username, subscription.endpoint)
        return {"subscriptions": hub.push.subscriptions(session.username)}

    @app.post("/account/notifications", response_class=HTMLResponse)
    async def push_preferences(
        request: Request,
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
        motion: Annotated[bool, Form()] = False,
        quiet_from: Annotated[str, Form(max_length=5)] = "",
        quiet_to: Annotated[str, Form(max_length=5)] = "",
    ) -> Response:
        """Motion too or rings only, and quiet hours, for this person's notifications."""
        try:
            hub.push.set_preferences(session.username, motion, quiet_from, quiet_to)
        except PushError as exc:
            return account_page(request, session, 400, push_error=f"{exc}.")
        return RedirectResponse("/account", status_code=303)

    @app.get("/ca.crt")
    async def home_ca(session: Annotated[Session, Depends(allow(*EVERYONE))]) -> Response:
        """The home CA's certificate, for a phone to trust the hub's HTTPS (docs/push.md)."""
        if hub.authority is None:
            raise Forbidden(NOT_PROVISIONED, 409)
        disposition = 'attachment; filename="porch-home-ca.crt"'
        return Response(hub.authority.pki.path("ca.crt").read_bytes(),
                        media_type="application/x-x509-ca-cert",
                        headers={"Content-Disposition": disposition})  # fmt: skip

    @app.post("/clips/{clip_id}/keep")
    async def keep_clip(
        clip_id: ClipId,
        session: Annotated[Session, Depends(allow("owner"))],
        keep: Annotated[bool, Form()] = True,
    ) -> Response:
        if hub.stored_clip(clip_id) is None:
            return JSONResponse({"detail": "no such clip"}, status_code=404)
        hub.web_db.set_keep(clip_id, keep)
        return RedirectResponse(f"/clips/{clip_id}", status_code=303)

    # -- footage requests: the only way footage leaves ----------------------------------

    def own_request(request_id: str, session: Session) -> FootageRequest:
        """The request, if this person may see it: the owner any, a requester only theirs."""
        found = hub.consent.get(request_id)
        if found is None or (session.role == "requester" and found.filed_by != session.username):
            raise ConsentError("no such request", 404)
        return found

    @app.exception_handler(ConsentError)
    async def consent_error(request: Request, exc: ConsentError) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            session = current_session(request)
            return page(request, "error.html", session, exc.status, message=str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get("/requests", response_class=HTMLResponse)
    async def requests_page(
        request: Request, session: Annotated[Session, Depends(allow(*REQUESTS, page=True))]
    ) -> Response:
        owner = session.role == "owner"
        mine = hub.consent.all(None if owner else session.username)
        return page(request, "requests.html", session, requests=mine,
                    report=hub.consent.report() if owner else None)  # fmt: skip

    @app.get("/requests/new", response_class=HTMLResponse)
    async def request_form(
        request: Request, session: Annotated[Session, Depends(allow(*REQUESTS, page=True))]
    ) -> Response:
        return page(request, "request_new.html", session, bases=LEGAL_BASES)

    @app.post("/requests")
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
                                     legal_basis, legal_reference, chosen, _when(start),
                                     _when(end), expires_days)  # fmt: skip
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

    @app.get("/requests/{request_id}", response_class=HTMLResponse)
    async def request_page(
        request: Request,
        request_id: RequestId,
        session: Annotated[Session, Depends(allow(*REQUESTS, page=True))],
    ) -> Response:
        found = own_request(request_id, session)
        clips = hub.consent.matching_clips(found) if session.role == "owner" else []
        for clip in clips:
            clip["trimmable"] = bool(json.loads(clip["meta"]).get("gops"))
        area = delivered = None
        if found.from_area and session.role == "owner":
            area = area_summary(found.origin, hub.area.home())
            delivered = delivery_status(hub.web_db.conn, request_id)
        return page(request, "request.html", session, r=found, clips=clips, area=area,
                    delivered=delivered,
                    bundle=hub.consent.bundle(request_id), build=hub.builds.status(request_id),
                    ca_fingerprint=_ca_fingerprint(),
                    audit=hub.audit.entries(request_id))  # fmt: skip

    @app.post("/requests/{request_id}/decision")
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
            ok = await checked_password(request, session.username, password)
        except Throttled as exc:
            wait = _minutes(exc.retry_after_s)
            raise Forbidden(f"too many wrong passwords: try again in {wait}", 429) from None
        if ok != "owner":
            raise Forbidden("wrong password: the decision was not recorded")
        await asyncio.to_thread(
            hub.consent.decide, request_id, session.username, action == "approve",
            # nothing ticked approves nothing (not "everything in the window")
            clip_ids or ([] if action == "approve" else None),
            _when(start) if start else None, _when(end) if end else None,
            blur_faces, _boxes(boxes), message, approval_days, trims,
        )  # fmt: skip
        if action == "approve":  # built now, in the background: ready when they look
            hub.builds.schedule(request_id, session.username)
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    @app.get("/api/requests/{request_id}/bundle")
    async def bundle_status(
        request_id: RequestId, session: Annotated[Session, Depends(allow(*REQUESTS))]
    ) -> dict:
        """Where the bundle of an approved request stands: queued, building (percent),
        ready or failed."""
        own_request(request_id, session)
        status = hub.builds.status(request_id).public()
        if status["error"] and session.role != "owner":  # the details are the owner's
            status["error"] = "the home's hub could not build it; its owner can see why"
        return status

    @app.get("/requests/{request_id}/bundle.zip")
    async def download_bundle(
        request: Request,
        request_id: RequestId,
        session: Annotated[Session, Depends(allow(*REQUESTS))],
    ) -> Response:
        """The signed bundle of an approved request, once it is built (in the background,
        since the approval); before that, where it stands."""
        found = own_request(request_id, session)
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

    # -- area requests ----------------------------------------------------------------------

    def area_page(request: Request, session: Session, status: int = 200, **ctx) -> Response:
        home = hub.area.home()
        return page(request, "area.html", session, status, home=home, cell=home.cell,
                    relay=hub.config.area.relay.host, limits_area=hub.config.area,
                    agencies=hub.area.agencies(), authorities=hub.area.authorities(),
                    heard=hub.area.log(), **ctx)  # fmt: skip

    @app.get("/area", response_class=HTMLResponse)
    async def area_settings(
        request: Request, session: Annotated[Session, Depends(allow("owner", page=True))]
    ) -> Response:
        return area_page(request, session)

    @app.post("/area", response_class=HTMLResponse)
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

    @app.post("/area/agencies/forget")
    async def forget_agency(
        session: Annotated[Session, Depends(allow("owner"))],
        name: Annotated[str, Form(max_length=200)],
    ) -> Response:
        """Forget the key an agency came with first (its next request pins a new one)."""
        hub.area.forget_agency(name)
        hub.audit.append(session.username, "area agency forgotten", "-", {"agency": name})
        return RedirectResponse("/area", status_code=303)

    @app.post("/area/authorities", response_class=HTMLResponse)
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

    @app.post("/area/authorities/remove")
    async def remove_authority(
        session: Annotated[Session, Depends(allow("owner"))],
        fingerprint: Annotated[str, Form(pattern=r"^[0-9a-f]{64}$")],
    ) -> Response:
        hub.area.remove_authority(fingerprint)
        hub.audit.append(session.username, "area authority removed", "-",
                         {"fingerprint": fingerprint})  # fmt: skip
        return RedirectResponse("/area", status_code=303)

    @app.get("/api/requests/{request_id}/delivery")
    async def delivery(
        request_id: RequestId, session: Annotated[Session, Depends(allow("owner"))]
    ) -> dict:
        """Where the bundle of an approved area request stands on its way to the agency."""
        own_request(request_id, session)
        return delivery_status(hub.web_db.conn, request_id)

    @app.post("/requests/{request_id}/deliver")
    async def deliver_again(
        request_id: RequestId, session: Annotated[Session, Depends(allow("owner"))]
    ) -> Response:
        """Send a failed delivery again (it resumes where the drop box stands)."""
        found = own_request(request_id, session)
        if not (found.from_area and found.approval_live and hub.consent.bundle(request_id)):
            raise ConsentError("nothing to send: no built bundle of a live area approval", 409)
        hub.deliveries.schedule(request_id)
        return RedirectResponse(f"/requests/{request_id}", status_code=303)

    @app.post("/requesters/invite", response_class=HTMLResponse)
    async def invite_requester(
        request: Request, session: Annotated[Session, Depends(allow("owner"))]
    ) -> Response:
        token = hub.accounts.new_invite("requester", session.username)
        link = f"{hub.url}/invite?token={token}"
        hub.audit.append(session.username, "invite", "requester", {})
        return page(request, "invite_link.html", session, link=link, role="requester")

    # -- live view ------------------------------------------------------------------------

    def device_or_404(device_id: str) -> dict:
        for device in hub.devices():
            if device["device_id"] == device_id:
                return device
        raise LiveError(404, f"no doorbell called {device_id!r}")

    @app.get("/live/{device_id}", response_class=HTMLResponse)
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

    @app.post("/api/devices/{device_id}/live", status_code=201)
    async def live_offer(
        device_id: DeviceId,
        offer: LiveOffer,
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
    ) -> LiveAnswer:
        """Start watching: the browser's offer in, the hub's answer (with its candidates) out."""
        if device_or_404(device_id)["state"] != "online":
            raise LiveError(409, f"{device_id} is offline")
        live_id, sdp = await hub.live.open(
            device_id, session.username, offer.sdp, may_talk=session.role in TALK
        )
        return LiveAnswer(session=live_id, sdp=sdp)

    @app.post("/api/live/{live_id}/candidates", status_code=204)
    async def live_candidate(
        live_id: LiveSessionId,
        candidate: IceCandidate,
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
    ) -> None:
        await hub.live.add_candidate(live_id, session.username, candidate.model_dump())

    @app.delete("/api/live/{live_id}", status_code=204)
    async def live_leave(
        live_id: LiveSessionId, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> None:
        await hub.live.leave(live_id, session.username)

    @app.get("/api/devices/{device_id}/live")
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

    # -- live updates and JSON ------------------------------------------------------------

    @app.get("/events/stream")
    async def stream(
        request: Request, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> StreamingResponse:
        queue = hub.broadcaster.subscribe(session.role)

        async def frames():
            try:
                yield "retry: 2000\n: connected\n\n"
                while True:
                    try:
                        yield await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keepalive\n\n"
            finally:
                hub.broadcaster.unsubscribe(queue)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/events")
    async def api_events(
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict]:
        return hub.timeline(limit)

    @app.get("/api/devices")
    async def api_devices(session: Annotated[Session, Depends(allow(*DEVICES))]) -> list[dict]:
        return hub.devices()

    if (press := hub.simulated_press) is not None:

        @app.post("/demo/press")
        async def demo_press(session: Annotated[Session, Depends(allow(*FOOTAGE))]) -> dict:
            """Press the simulated doorbell's button (through its mock GPIO pin)."""
            await asyncio.to_thread(press)
            return {"pressed": time.time()}

    return app


def _when(text: str) -> float:
    """A time from a form: epoch seconds, or ISO 8601 (a browser's datetime-local is local)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ConsentError(f"not a time: {text!r}") from None


def _trims(clips: list[str], starts: list[str], ends: list[str], ticked: set[str]) -> dict:
    """The review form's trims of ticked clips: {clip id: (from s, to s or None: its end)}."""
    if not len(clips) == len(starts) == len(ends) or len(clips) > MAX_TRIMS:
        raise ConsentError("trims come as one clip, one start and one end each")
    trims: dict = {}
    for clip_id, start, end in zip(clips, starts, ends, strict=True):
        start, end = start.strip(), end.strip()
        if clip_id not in ticked or not (start or end):
            continue
        if not all(re.fullmatch(r"\d{1,6}(\.\d{1,3})?", v) for v in (start or "0", end or "0")):
            raise ConsentError(f"a trim is in seconds: {start[:20]!r} to {end[:20]!r}")
        trims[clip_id] = (float(start or 0), float(end) if end else None)
    return trims


def _boxes(text: str) -> list[dict]:
    """Redaction boxes, one 'x,y,w,h' per line, as fractions of the frame."""
    boxes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            x, y, w, h = (float(v) for v in line.split(","))
        except ValueError:
            raise ConsentError(f"a box is 'x,y,w,h' in fractions of the frame: {line!r}") from None
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1):
            raise ConsentError(f"a box must lie in the frame: {line!r}")
        boxes.append({"x": x, "y": y, "w": w, "h": h})
    return boxes


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (made here: nothing is fetched)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=6)
    return Markup(image.to_string(encoding="unicode"))


def _media(path: Path, media_type: str, exists: object) -> Response:
    if not exists or not path.exists():
        return JSONResponse({"detail": "not found"}, status_code=404)
    response = FileResponse(path, media_type=media_type)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _reason(errors: Sequence[Any]) -> str:
    """The first validation error, in words a person filling the form understands."""
    error = errors[0]
    field = next((str(p) for p in reversed(error.get("loc", ())) if isinstance(p, str)), "")
    label = FIELD_LABELS.get(field, field.replace("_", " ").capitalize() or "The form")
    message = str(error.get("msg", "is not valid"))
    if error.get("type") == "missing":
        message = "is required"
    elif error.get("type") == "string_too_long":
        message = f"is too long: at most {error['ctx']['max_length']} characters"
    return f"{label} {message[0].lower()}{message[1:]}."


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class PushSubscription(BaseModel):
    """A browser's PushSubscription, as its toJSON() gives it."""

    endpoint: str = Field(max_length=1000)
    keys: PushKeys = Field(default_factory=lambda: PushKeys(p256dh="", auth=""))


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def _local(target: str) -> str:
    """Only same-site paths after login: never an open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
