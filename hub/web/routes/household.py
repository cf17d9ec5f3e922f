"""The household's own pages: the timeline, your account (password, sessions, which
notifications reach your phone) and, for the owner, who belongs to the household."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from porch.hub.accounts import AccountError, Session
from porch.hub.push import PushError
from porch.hub.throttle import Throttled
from porch.hub.web.auth import EVERYONE, FOOTAGE, SESSION_COOKIE, Forbidden, allow
from porch.hub.web.site import NOT_PROVISIONED, Site, minutes


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    @routes.get("/", response_class=HTMLResponse)
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

    def account_page(request: Request, session: Session, status: int = 200, **ctx: Any) -> Response:
        """Your account: password and sessions; for the owner, the household too."""
        current = request.cookies.get(SESSION_COOKIE)
        household = hub.accounts.users() if session.role == "owner" else None
        push = hub.push.preferences(session.username) if session.role in FOOTAGE else None
        return page(request, "account.html", session, status,
                    sessions=hub.accounts.sessions(session.username, current),
                    household=household, push=push, ca_fingerprint=site.ca_fingerprint(),
                    **ctx)  # fmt: skip

    @routes.get("/account", response_class=HTMLResponse)
    async def account(
        request: Request, session: Annotated[Session, Depends(allow(*EVERYONE, page=True))]
    ) -> Response:
        return account_page(request, session)

    @routes.post("/account/password", response_class=HTMLResponse)
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
            ok = await site.checked_password(request, session.username, current)
        except Throttled as exc:
            wait = minutes(exc.retry_after_s)
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

    @routes.post("/account/sessions/{session_id}/end")
    async def end_session(
        session_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")],
        session: Annotated[Session, Depends(allow(*EVERYONE))],
    ) -> Response:
        """End one of your own sessions (a lost phone, a shared computer)."""
        hub.accounts.end_session(session.username, session_id)
        return RedirectResponse("/account", status_code=303)

    @routes.post("/account/notifications", response_class=HTMLResponse)
    async def push_preferences(
        request: Request,
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
        motion: Annotated[bool, Form()] = False,
        people: Annotated[bool, Form()] = False,
        parcels: Annotated[bool, Form()] = False,
        quiet_from: Annotated[str, Form(max_length=5)] = "",
        quiet_to: Annotated[str, Form(max_length=5)] = "",
    ) -> Response:
        """Beside rings, people at the door and any motion, and quiet hours, for this
        person's notifications (the form sends a box only when it is ticked)."""
        try:
            hub.push.set_preferences(
                session.username, motion, quiet_from, quiet_to, people, parcels
            )
        except PushError as exc:
            return account_page(request, session, 400, push_error=f"{exc}.")
        return RedirectResponse("/account", status_code=303)

    @routes.get("/ca.crt")
    async def home_ca(session: Annotated[Session, Depends(allow(*EVERYONE))]) -> Response:
        """The home CA's certificate, for a phone to trust the hub's HTTPS (docs/push.md)."""
        if hub.authority is None:
            raise Forbidden(NOT_PROVISIONED, 409)
        disposition = 'attachment; filename="porch-home-ca.crt"'
        return Response(hub.authority.pki.path("ca.crt").read_bytes(),
                        media_type="application/x-x509-ca-cert",
                        headers={"Content-Disposition": disposition})  # fmt: skip

    @routes.post("/household/invite", response_class=HTMLResponse)
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

    @routes.post("/household/{username}/remove")
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

    return routes
