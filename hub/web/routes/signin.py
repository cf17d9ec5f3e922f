"""Signing in and out, and the one-time links that make an account (the owner's setup
link, an invitation): the only routes open to people who are not signed in."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from porch.hub.accounts import AccountError, Session
from porch.hub.throttle import Throttled
from porch.hub.web.auth import EVERYONE, SESSION_COOKIE, Forbidden, allow
from porch.hub.web.site import BROWSER_COOKIE, Site, cookie, minutes

LOGIN_COOKIE = "porch_login"
HOME = {"owner": "/", "member": "/", "installer": "/devices", "requester": "/requests"}
"""Where each role lands after signing in."""


def router(site: Site) -> APIRouter:
    hub, page = site.hub, site.page
    routes = APIRouter()

    @routes.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/") -> Response:
        nonce = secrets.token_urlsafe(16)
        response = page(request, "login.html", None, nonce=nonce, next=_local(next))
        cookie(response, request, LOGIN_COOKIE, nonce, max_age=3600)
        return response

    @routes.post("/login")
    async def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        nonce: Annotated[str, Form(max_length=64)],
        next: Annotated[str, Form(max_length=512)] = "/",
    ) -> Response:
        # Login CSRF: the form must carry the nonce of the cookie set with the form.
        sent = request.cookies.get(LOGIN_COOKIE, "")
        if not sent or not secrets.compare_digest(sent, nonce):
            raise Forbidden("the login form expired; reload it and try again")
        try:
            role = await site.checked_password(request, username.lower(), password)
        except Throttled as exc:
            return page(
                request,
                "login.html",
                None,
                429,
                nonce=nonce,
                next=_local(next),
                error=f"Too many failed attempts from here. Try again in"
                f" {minutes(exc.retry_after_s)}.",
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
        cookie(response, request, SESSION_COOKIE, token, max_age=14 * 24 * 3600)
        if not hub.accounts.browser_known(request.cookies.get(BROWSER_COOKIE), username.lower()):
            browser = hub.accounts.remember_browser(username.lower())
            cookie(response, request, BROWSER_COOKIE, browser, max_age=365 * 24 * 3600)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @routes.post("/logout")
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

        @routes.get(path, response_class=HTMLResponse)
        async def form(request: Request, token: str = Query("", max_length=64)) -> Response:
            if not valid(token):
                return page(request, "error.html", None, 404,
                            message=f"This {what} was used already or has expired.")  # fmt: skip
            return page(request, template, None, token=token, role=role(token))

        @routes.post(path)
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
    return routes


def _local(target: str) -> str:
    """Only same-site paths after login: never an open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
