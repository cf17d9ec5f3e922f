"""Server-sent events to every open page: rings, snapshots, devices coming and going.

Publishing happens on paho's thread; each open page has an asyncio queue on the web app's
loop. A page that cannot keep up loses old notifications, never blocks the ingest. A page's
stream belongs to the session that opened it: when the session ends, :data:`END` is put in
its queue and the stream closes.
"""

from __future__ import annotations

import asyncio
import json
import logging

log = logging.getLogger(__name__)
QUEUE = 100
END = ""
"""Put in a page's queue when its session ended: the stream closes."""


class Broadcaster:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[str]] = set()
        self._roles: dict[asyncio.Queue[str], str] = {}
        self._sessions: dict[asyncio.Queue[str], str] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, role: str = "member", session: str = "") -> asyncio.Queue[str]:
        """A queue for one open page of ``role``, opened with the session keyed ``session``."""
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        self._queues.add(queue)
        self._roles[queue] = role
        self._sessions[queue] = session
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._queues.discard(queue)
        self._roles.pop(queue, None)
        self._sessions.pop(queue, None)

    def end_sessions(self, keys: frozenset[str]) -> None:
        """Close the streams these sessions opened; safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end, keys)

    def _end(self, keys: frozenset[str]) -> None:
        for queue, key in list(self._sessions.items()):
            if key in keys:
                self._queues.discard(queue)  # nothing more is put after END, to push it out
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(END)

    @property
    def listeners(self) -> int:
        return len(self._queues)

    def publish(self, kind: str, data: dict, roles: frozenset[str] | None = None) -> None:
        """Send to every open page (of ``roles`` only, if given); safe from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        frame = f"event: {kind}\ndata: {json.dumps(data)}\n\n"
        self._loop.call_soon_threadsafe(self._deliver, frame, roles)

    def _deliver(self, frame: str, roles: frozenset[str] | None = None) -> None:
        for queue in list(self._queues):
            if roles is not None and self._roles.get(queue) not in roles:
                continue
            if queue.full():
                queue.get_nowait()  # drop the oldest for a page that is not reading
            queue.put_nowait(frame)
