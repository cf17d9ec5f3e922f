"""Home Assistant hears of the doorbells from the hub, not from the doorbells.

The hub knows what Home Assistant cannot: whether an event is fresh. A ring replayed from a
doorbell's outbox an hour after a broker outage must not chime, light up or speak in the
house (Home Assistant acts on delivery and ignores the event's timestamp), so only events
heard within ``HOME_ASSISTANT_FRESH_S`` of happening are passed on; late ones reach the
timeline, marked late. The hub publishes, for each doorbell (topics in
:func:`porch.core.wire.home_assistant_topics`):

* its device-based discovery config (retained), named as the doorbell names itself;
* each fresh ring, as the ``event`` entity's ``{"event_type": "ring"}``, and each person the
  hub's detector saw, as ``{"event_type": "person"}`` (the class only, never a picture);
* motion and person (``occupancy``) as a retained ``ON``/``OFF``, so they recover after
  Home Assistant restarts, set ``OFF`` when the doorbell comes online (never ``unknown`` on
  a fresh broker) and when it goes offline, so they never stick ``ON``; a person is ``OFF``
  again when the motion they came with ends;
* the ring's snapshot (retained), only when the owner has opted in: it puts the visitor's
  picture into Home Assistant's own storage.

A doorbell the hub does not count as enrolled (revoked, removed) is never announced, and
revoking one clears everything retained about it: its discovery, motion and picture, and
the doorbell's own retained status, which its broker identity can no longer clear (so Home
Assistant would otherwise show it available). Without the picture opt-in, the discovery
config removes a picture announced before. Home Assistant's identity may read these topics
and write nothing (provisioning/broker.py).
Runs on paho's network thread (the ingest's callbacks); person events on the people watch's.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from porch.core.config import HomeAssistantSettings
from porch.core.wire import (
    HOME_ASSISTANT_FRESH_S,
    Message,
    MotionEvent,
    PersonEvent,
    RingEvent,
    Snapshot,
    Status,
    home_assistant_discovery,
    home_assistant_topics,
    spoken_name,
    status_topic,
)

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], None]
"""(topic, payload, qos, retain)."""


class HomeAssistantBridge:
    def __init__(
        self,
        settings: HomeAssistantSettings,
        publish: Publish,
        software: str,
        display_name: Callable[[str], str | None] = lambda _: None,
        enrolled: Callable[[str], bool] = lambda _: True,
    ):
        self.settings = settings
        self._enrolled = enrolled
        self._publish = publish
        self._software = software
        self._display_name = display_name
        self._software_of: dict[str, str] = {}
        self._announced: dict[str, str] = {}
        """Discovery published, by device: the name it was published with."""
        self._fresh_rings: set[str] = set()
        self._last_ring: dict[str, str] = {}
        """Each doorbell's last fresh ring: a better picture of its visitor may follow."""
        self._people = threading.Lock()
        self._moving: dict[str, str] = {}
        """Each doorbell's motion going on (its event id): a person is ON only during it."""
        self.late = 0
        """Events not passed on because they came late."""

    def on_message(self, message: Message, received: float | None = None) -> None:
        """A message the hub stored (or a status), as it arrives."""
        if not self.settings.enabled:
            return
        received = time.time() if received is None else received
        topics = home_assistant_topics(message.device_id)
        if isinstance(message, Status):
            self._status(message, topics)
        elif isinstance(message, RingEvent):
            if self._fresh(message.ts, received):
                if self.settings.snapshots:
                    self._fresh_rings.add(message.event_id)
                    if len(self._fresh_rings) > 100:  # snapshots that never came
                        self._fresh_rings.pop()
                self._last_ring[message.device_id] = message.event_id
                body = {"event_type": "ring", "ts": message.ts}
                self._publish(topics["ring"], json.dumps(body).encode(), 1, False)
        elif isinstance(message, MotionEvent):
            if not message.active or self._fresh(message.ts, received):  # a late end is harmless
                self._publish(topics["motion"], b"ON" if message.active else b"OFF", 1, True)
            with self._people:
                if message.active:
                    self._moving[message.device_id] = message.event_id
                else:
                    self._moving.pop(message.device_id, None)
                    self._publish(topics["person"], b"OFF", 1, True)
        elif isinstance(message, PersonEvent):  # the hub's own, from the watch's thread
            if self._enrolled(message.device_id) and self._fresh(message.ts, received):
                body = {"event_type": "person", "ts": message.ts}
                self._publish(topics["ring"], json.dumps(body).encode(), 1, False)
                with self._people:  # not ON after its motion's end said OFF
                    if self._moving.get(message.device_id) == message.motion_event_id:
                        self._publish(topics["person"], b"ON", 1, True)
        elif isinstance(message, Snapshot) and message.event_id in self._fresh_rings:
            self._fresh_rings.discard(message.event_id)
            self._publish(topics["snapshot"], message.data, 1, True)

    def ring_picture(self, device_id: str, event_id: str, jpeg: bytes) -> None:
        """A better picture of a fresh ring's visitor (the hub's best glance), published as
        its picture when the owner opted in."""
        opted_in = self.settings.enabled and self.settings.snapshots
        if opted_in and self._enrolled(device_id) and self._last_ring.get(device_id) == event_id:
            self._publish(home_assistant_topics(device_id)["snapshot"], jpeg, 1, True)

    def _fresh(self, ts: float, received: float) -> bool:
        if received - ts <= HOME_ASSISTANT_FRESH_S:
            return True
        self.late += 1
        return False

    def _status(self, status: Status, topics: dict[str, str]) -> None:
        name = self._display_name(status.device_id) or status.name or spoken_name(status.device_id)
        if not self._enrolled(status.device_id):  # revoked: its stale retained status
            return
        self._software_of[status.device_id] = status.software or self._software
        if status.state == "online" and self._announced.get(status.device_id) != name:
            self._announce(status.device_id, name)
        # Online: no motion yet (not 'unknown'); offline: a doorbell that drops mid-motion
        # is not moving.
        self._publish(topics["motion"], b"OFF", 1, True)
        with self._people:
            self._moving.pop(status.device_id, None)
            self._publish(topics["person"], b"OFF", 1, True)
        if status.state == "online":  # its camera down, say: it still rings
            self._publish(topics["problem"], b"ON" if status.problem else b"OFF", 1, True)

    def _announce(self, device_id: str, name: str) -> None:
        software = self._software_of.get(device_id, self._software)
        config = home_assistant_discovery(device_id, name, software, self.settings.snapshots)
        topic = home_assistant_topics(device_id)["discovery"]
        self._publish(topic, json.dumps(config).encode(), 1, True)
        self._announced[device_id] = name

    def renamed(self, device_id: str, name: str) -> None:
        """The owner renamed the doorbell: Home Assistant's device takes the new name."""
        if self.settings.enabled and device_id in self._announced:
            self._announce(device_id, name)

    def forget(self, device_id: str) -> None:
        """The doorbell was revoked or removed: clear everything retained about it, so it
        disappears from Home Assistant."""
        topics = home_assistant_topics(device_id)
        for topic in (topics["discovery"], topics["motion"], topics["person"],
                      topics["problem"], topics["snapshot"], status_topic(device_id)):  # fmt: skip
            self._publish(topic, b"", 1, True)
        self._announced.pop(device_id, None)
        self._last_ring.pop(device_id, None)
        with self._people:
            self._moving.pop(device_id, None)
        log.info("%s removed from Home Assistant", device_id)
