"""Who may do what: every route declares its roles with :func:`allow`, and nothing else
grants access. The same dependency checks the CSRF token of every state-changing request.

Anonymous requests to a page are sent to the login page; anonymous API and media requests get
401; a signed-in person whose role is not allowed gets 403.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Request

from porch.hub.accounts import Role, Session

SESSION_COOKIE = "porch_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class NotSignedIn(Exception):
    """No valid session; ``page`` says whether to redirect to the login page."""

    def __init__(self, page: bool):
        self.page = page


class Forbidden(Exception):
    """Refused: 403, or another 4xx status (429 when throttled)."""

    def __init__(self, reason: str, status: int = 403):
        self.reason = reason
        self.status = status


def current_session(request: Request) -> Session | None:
    accounts = request.app.state.hub.accounts
    return accounts.session(request.cookies.get(SESSION_COOKIE))


async def csrf_ok(request: Request, session: Session) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get("csrf")
        sent = field if isinstance(field, str) else None
    return sent is not None and secrets.compare_digest(sent, session.csrf)


def allow(*roles: Role, page: bool = False) -> Callable:
    """A dependency admitting only sessions of ``roles`` (with a valid CSRF token when the
    method changes state). ``page``: anonymous people are redirected, not refused."""

    async def dependency(request: Request) -> Session:
        session = current_session(request)
        if session is None:
            raise NotSignedIn(page)
        if session.role not in roles:
            raise Forbidden(f"a {session.role} may not use this page")
        if request.method not in SAFE_METHODS and not await csrf_ok(request, session):
            raise Forbidden("missing or wrong CSRF token; reload the page and try again")
        return session

    dependency.roles = frozenset(roles)  # type: ignore[attr-defined]  # read by the role test
    dependency.page = page  # type: ignore[attr-defined]
    return dependency


EVERYONE: tuple[Role, ...] = ("owner", "member", "installer", "requester")
FOOTAGE: tuple[Role, ...] = ("owner", "member")
"""Who may see pictures of the porch: clips, thumbnails, snapshots, live video."""
TALK: tuple[Role, ...] = ("owner", "member")
"""Who may talk through a doorbell's speaker from the live page."""
DEVICES: tuple[Role, ...] = ("owner", "member", "installer")
PROVISIONING: tuple[Role, ...] = ("owner", "installer")
"""Who may enroll and revoke doorbells."""
REQUESTS: tuple[Role, ...] = ("owner", "requester")
"""Who may see footage requests (a requester only their own)."""
