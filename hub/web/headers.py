"""Security headers on every response of the web app (an ASGI middleware, so streamed
responses, server-sent events and files get them too).

* ``Content-Security-Policy``: scripts, styles, images, media and connections from the hub
  itself only, no inline script or style, no plugins, no framing (``frame-ancestors 'none'``),
  forms post only to the hub. Images may also be ``blob:``/``data:`` (the snapshot preview);
  media ``blob:`` (the live stream's element source).
* ``Permissions-Policy``: no camera, geolocation or other powerful feature anywhere; the
  microphone only on the live page (its Talk button) and only for the hub itself.
* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (links to a clip or a
  request never leak to another site), ``X-Frame-Options: DENY`` for old browsers,
  ``Cross-Origin-Opener-Policy: same-origin``.
* ``Strict-Transport-Security`` when the app is served over TLS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
NO_FEATURES = (
    "camera=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), hid=(),"
    " midi=(), display-capture=(), accelerometer=(), gyroscope=(), magnetometer=()"
)
PERMISSIONS = f"microphone=(), {NO_FEATURES}"
TALK_PERMISSIONS = f"microphone=(self), {NO_FEATURES}"
TALK_PATHS = ("/live/",)
"""Pages whose Talk button may ask for the microphone."""
HSTS_S = 365 * 86400


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        permissions = TALK_PERMISSIONS if path.startswith(TALK_PATHS) else PERMISSIONS
        tls = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"content-security-policy", CSP),
                    (b"permissions-policy", permissions),
                    (b"x-content-type-options", "nosniff"),
                    (b"referrer-policy", "no-referrer"),
                    (b"x-frame-options", "DENY"),
                    (b"cross-origin-opener-policy", "same-origin"),
                    *([(b"strict-transport-security", f"max-age={HSTS_S}")] if tls else []),
                ):
                    if name not in present:
                        headers.append((name, value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
