"""Live view on the device: the packets the encoder makes anyway, sent while the hub asks.

Nothing is encoded for live view: the stream that feeds the pre-roll buffer is published as
it is, once, however many people watch (the hub fans it out to each viewer). Streaming runs
only under a lease the hub renews while someone watches; without renewals (the hub went
away) it stops by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt

from porch.core.wire import LivePacket, LiveRequest, live_video_topic
from porch.device.camera import EncodedPacket

log = logging.getLogger(__name__)


class LiveStreamer:
    """Publishes encoded packets at QoS 0 while the hub's lease holds."""

    def __init__(self, device_id: str, client: mqtt.Client, request_keyframe: Callable[[], None]):
        self.device_id = device_id
        self._client = client
        self._topic = live_video_topic(device_id)
        self._request_keyframe = request_keyframe
        self._lock = threading.Lock()
        self._until = 0.0
        self.viewers = 0
        self.sent = 0
        """Packets published so far (read by tests and benchmarks)."""
        self.keyframes_requested = 0

    def on_request(self, request: LiveRequest) -> None:
        """The hub's lease: renew, start (with a fresh keyframe if asked) or stop."""
        with self._lock:
            was = self._until > time.monotonic()
            self.viewers = request.viewers
            self._until = time.monotonic() + request.lease_s if request.viewers else 0.0
        if request.viewers and request.keyframe:
            self.keyframes_requested += 1
            self._request_keyframe()
        if was != bool(request.viewers):
            log.info("live view %s (%d watching)", "on" if request.viewers else "off", self.viewers)

    @property
    def active(self) -> bool:
        return self._until > time.monotonic()

    def send(self, packets: Iterable[EncodedPacket]) -> None:
        """Called by the capture loop with each capture's packets; a no-op unless watched."""
        if not self.active:
            return
        for packet in packets:
            message = LivePacket(self.device_id, packet.pts, packet.keyframe, packet.data)
            self._client.publish(self._topic, message.to_bytes(), qos=0)
            self.sent += 1
