"""What pages' scripts call: the ring banner's event stream, the timeline and devices as
JSON, this browser's push subscription, and the demo's simulated press."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from porch.hub.accounts import Session
from porch.hub.push import PushError
from porch.hub.web.auth import DEVICES, FOOTAGE, Forbidden, allow
from porch.hub.web.broadcast import END
from porch.hub.web.site import Site

KEEPALIVE_S = 15.0
"""A comment line on an idle event stream, so that proxies and phones keep it open."""


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class PushSubscription(BaseModel):
    """A browser's PushSubscription, as its toJSON() gives it."""

    endpoint: str = Field(max_length=1000)
    keys: PushKeys = Field(default_factory=lambda: PushKeys(p256dh="", auth=""))


def router(site: Site) -> APIRouter:
    hub = site.hub
    routes = APIRouter()

    @routes.get("/events/stream")
    async def stream(
        request: Request, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> StreamingResponse:
        queue = hub.broadcaster.subscribe(session.role, session.key)

        async def frames() -> AsyncIterator[str]:
            """Events until the session ends (at once when it is ended; an expired one is
            noticed at the next keepalive)."""
            try:
                yield "retry: 2000\n: connected\n\n"
                checked = time.monotonic()
                while True:
                    try:
                        frame = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        frame = ": keepalive\n\n"
                    if time.monotonic() - checked >= KEEPALIVE_S:  # expired meanwhile?
                        if not hub.accounts.alive(session.key):
                            return
                        checked = time.monotonic()
                    if frame == END:
                        return
                    yield frame
            finally:
                hub.broadcaster.unsubscribe(queue)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @routes.get("/api/events")
    async def api_events(
        session: Annotated[Session, Depends(allow(*FOOTAGE))],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return hub.timeline(limit)

    @routes.get("/api/devices")
    async def api_devices(
        session: Annotated[Session, Depends(allow(*DEVICES))],
    ) -> list[dict[str, Any]]:
        return hub.devices()

    @routes.get("/api/push")
    async def push_state(
        request: Request, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict[str, Any]:
        """What a page needs to turn notifications on: the hub's VAPID key and the user's
        preferences."""
        return {"enabled": hub.config.push.enabled, "public_key": hub.push.public_key,
                "subscriptions": hub.push.subscriptions(session.username),
                **hub.push.preferences(session.username)}  # fmt: skip

    @routes.post("/api/push/subscriptions")
    async def push_subscribe(
        subscription: PushSubscription, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict[str, Any]:
        """This browser's push subscription (from its service worker)."""
        if not hub.config.push.enabled:
            raise Forbidden("notifications are turned off on this hub", 409)
        try:
            hub.push.subscribe(session.username, subscription.endpoint,
                               subscription.keys.p256dh, subscription.keys.auth,
                               session.key)  # fmt: skip
        except PushError as exc:
            raise Forbidden(str(exc), 400) from None
        return {"subscriptions": hub.push.subscriptions(session.username)}

    @routes.post("/api/push/unsubscribe")
    async def push_unsubscribe(
        subscription: PushSubscription, session: Annotated[Session, Depends(allow(*FOOTAGE))]
    ) -> dict[str, Any]:
        hub.push.unsubscribe(session.username, subscription.endpoint)
        return {"subscriptions": hub.push.subscriptions(session.username)}

    if (press := hub.simulated_press) is not None:

        @routes.post("/demo/press")
        async def demo_press(
            session: Annotated[Session, Depends(allow(*FOOTAGE))],
        ) -> dict[str, float]:
            """Press the simulated doorbell's button (through its mock GPIO pin)."""
            await asyncio.to_thread(press)
            return {"pressed": time.time()}

    return routes
