"""The hub's ingest: every message from the broker is validated against the wire contract,
then stored; duplicates (by event or clip id) are dropped, anything malformed is logged with
its reason and skipped. Nothing a device sends can crash the hub or change stored rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from porch.core.config import MqttSettings
from porch.core.fsutil import atomic_write
from porch.core.mqtt_client import HUB_SESSION_EXPIRY_S, connect, make_client
from porch.core.wire import (
    HUB_SUBSCRIPTION,
    ClipAck,
    ClipChunk,
    ClipMeta,
    LivePacket,
    LiveRequest,
    Message,
    Snapshot,
    Status,
    TalkPacket,
    WireError,
    parse,
    qos_for,
    topic_for,
)
from porch.hub.clipstore import HubClipStore
from porch.hub.db import Database

log = logging.getLogger(__name__)


class Ingest:
    """Subscribes to every device topic and stores what is valid.

    ``on_message`` (optional) receives each newly stored message, on paho's network thread.
    """

    def __init__(
        self,
        db: Database,
        settings: MqttSettings,
        clips: HubClipStore,
        on_message: Callable[[Message], None] | None = None,
        client_id: str = "porch-hub",
        on_live: Callable[[LivePacket], None] | None = None,
    ):
        self.db = db
        self.clips = clips
        self.snapshots = db.path.parent / "snapshots"
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.on_message = on_message
        self.on_live = on_live
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self.clips_stored = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._stopping = False
        self._client = make_client(client_id, settings)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self) -> None:
        connect(self._client, self.settings, HUB_SESSION_EXPIRY_S)

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def handle(self, topic: str, payload: bytes) -> Message | None:
        """Validate and store one message; returns it when it was new, else None."""
        try:
            message = parse(topic, payload)
        except WireError as exc:
            self.rejected += 1
            log.warning("rejected message on %r: %s", topic[:200], exc)
            return None
        if isinstance(message, LivePacket):
            if self.on_live is not None:
                self.on_live(message)
            return None
        if isinstance(message, ClipChunk):
            self._answer(self.clips.chunk(message))
            return None
        if isinstance(message, Snapshot):
            atomic_write(self.snapshot_path(message.event_id), message.data)
            if self.on_message is not None:
                self.on_message(message)
            return message
        if isinstance(message, ClipAck | LiveRequest | TalkPacket):
            self.rejected += 1
            log.warning("rejected a command on %r: commands go to devices, not from them", topic)
            return None
        if isinstance(message, Status):
            self.db.record_status(message)
            fresh = True
        elif isinstance(message, ClipMeta):
            fresh = self.db.record_clip(message)
            self._answer(self.clips.offer(message))
        else:
            fresh = self.db.record_event(message)
        if not fresh:
            self.duplicates += 1
            return None
        self.stored += 1
        if self.on_message is not None:
            self.on_message(message)
        return message

    def publish(self, message: Message) -> None:
        """Send a command to a device (paho queues QoS 1 ones while the broker is away)."""
        self._client.publish(topic_for(message), message.to_bytes(), qos=qos_for(message))

    def snapshot_path(self, event_id: str) -> Path:
        return self.snapshots / f"{event_id}.jpg"

    def _answer(self, ack: ClipAck | None) -> None:
        if ack is None:
            return
        self.publish(ack)
        if ack.stored:
            self.clips_stored += 1
            if self.on_message is not None:
                self.on_message(ack)

    def _on_connect(self, client, userdata, flags, reason_code: ReasonCode, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the hub: %s", reason_code)
            return
        self.connected.set()
        # noLocal: the hub's own acks to devices match porch/+/# too; it must not hear them.
        client.subscribe(HUB_SUBSCRIPTION, options=SubscribeOptions(qos=1, noLocal=True))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("subscription refused: %s", reason_codes)
            return
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping:
            log.warning("hub lost the broker: %s", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, msg.payload)
        except Exception:  # a bug must cost one message, never the ingest
            self.rejected += 1
            log.exception("failed to handle message on %r", msg.topic)
