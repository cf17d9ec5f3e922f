"""What every router of the web app shares: the hub, pages rendered from its templates,
the throttled password check, the path parameters and the small helpers of forms."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cryptography.hazmat.primitives import hashes
from fastapi import Path as PathParam
from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from porch.core import __version__
from porch.core.wire import DEVICE_ID_PATTERN, ID_PATTERN
from porch.hub.accounts import MIN_PASSWORD, PASSWORD_RULE, Role, Session
from porch.hub.consent import FIELD_LABELS, FIELD_LIMITS, ConsentError

if TYPE_CHECKING:
    from porch.hub.service import HubService

HERE = Path(__file__).parent
ClipId = Annotated[str, PathParam(pattern=ID_PATTERN, description="32 hex digits")]
EventId = Annotated[str, PathParam(pattern=ID_PATTERN, description="32 hex digits")]
DeviceId = Annotated[str, PathParam(pattern=DEVICE_ID_PATTERN, description="e.g. front-door")]
RequestId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="16 hex digits")]
NOT_PROVISIONED = "this hub is not provisioned: run 'porch provision init' first"
BROWSER_COOKIE = "porch_browser"
"""Marks a browser that has signed in to an account before (see hub/throttle.py)."""


class Site:
    """The hub as its pages see it (``hub``), and what renders them."""

    def __init__(self, hub: HubService):
        self.hub = hub
        self.templates = Jinja2Templates(directory=HERE / "templates")

    def page(
        self, request: Request, name: str, session: Session | None, status: int = 200, **ctx: Any
    ) -> Response:
        """The template ``name`` as a page for ``session`` (None: signed out), never cached."""
        ctx.update(request=request, session=session, version=__version__, status=status)
        ctx.setdefault("password_rule", PASSWORD_RULE)
        ctx.setdefault("min_password", MIN_PASSWORD)
        ctx.setdefault("limits", FIELD_LIMITS)
        response = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def checked_password(self, request: Request, username: str, password: str) -> Role | None:
        """The account's role if the password is right; every check, at sign-in or to
        confirm a decision, goes through the throttle (raises :class:`Throttled`). A
        browser that signed in to the account before is not slowed by strangers' guesses."""
        hub = self.hub
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

    def ca_fingerprint(self) -> str | None:
        """The home CA's SHA-256, as `porch verify` prints it and docs/verify.md takes it."""
        if self.hub.authority is None:
            return None
        return self.hub.authority.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()


def when(text: str) -> float:
    """A time from a form: epoch seconds, or ISO 8601 (a browser's datetime-local is local)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ConsentError(f"not a time: {text!r}") from None


def media(path: Path, media_type: str, exists: object) -> Response:
    """A clip, thumbnail or snapshot (range requests work), private to this browser."""
    if not exists or not path.exists():
        return JSONResponse({"detail": "not found"}, status_code=404)
    response = FileResponse(path, media_type=media_type)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def reason(errors: Sequence[Any]) -> str:
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


def minutes(seconds: float) -> str:
    """A wait in words: "a minute", "3 minutes"."""
    count = max(1, math.ceil(seconds / 60))
    return "a minute" if count == 1 else f"{count} minutes"


def cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """An HttpOnly, SameSite=Strict cookie for the whole hub (Secure over HTTPS)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Rectangles drawn on a picture (static/boxes.js), one 'x,y,w,h' a line, as fractions
    of the frame; :class:`ValueError` says which line is wrong."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            x, y, w, h = (float(v) for v in line.split(","))
        except ValueError:
            raise ValueError(f"a box is 'x,y,w,h' in fractions of the frame: {line!r}") from None
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1):
            raise ValueError(f"a box must lie in the frame: {line!r}")
        found.append((x, y, w, h))
    if len(found) > 20:
        raise ValueError("at most 20 boxes")
    return found
