"""The hub's ingest: every message from the broker is validated against the wire contract,
then stored; duplicates (by event or clip id) are dropped, anything malformed is logged with
its reason and skipped. Nothing a device sends can crash the hub or change stored rows.

Per-device limits, so that one enrolled device cannot fill the hub or starve the others:
timestamps must lie within :data:`MAX_PAST_S` before and :data:`MAX_FUTURE_S` after the
hub's clock; a clip offer needs room in the store (see :meth:`HubClipStore.admit`); a
snapshot is kept only for an event of the same device (one that arrives before its event
waits in memory for :data:`SNAPSHOT_WAIT_S`, at most two per device). Each kind of refusal is
logged once per device and counted after that (:attr:`Ingest.refusals`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
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
    Glance,
    LivePacket,
    LiveRequest,
    Message,
    MotionEvent,
    ParcelEvent,
    PersonEvent,
    RingEvent,
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
MAX_FUTURE_S = 300.0
"""A device's clock may run this far ahead of the hub's (seconds); later is refused."""
MAX_PAST_S = 366 * 86400.0
"""Events and clips older than a year are refused: an outbox replays days, not years."""
SNAPSHOT_WAIT_S = 30.0
SNAPSHOTS_WAITING = 2


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
        on_glance: Callable[[Glance], None] | None = None,
    ):
        self.db = db
        self.clips = clips
        self.snapshots = db.path.parent / "snapshots"
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.on_message = on_message
        self.on_live = on_live
        self.on_glance = on_glance
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self.clips_stored = 0
        self.refusals: Counter[tuple[str, str]] = Counter()
        """Refused messages by (device, kind of refusal)."""
        self._early_snapshots: dict[str, deque[tuple[float, Snapshot]]] = {}
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
        if isinstance(message, Glance):
            if self.on_glance is not None:
                self.on_glance(message)  # looked at, never stored as it came
            return None
        if isinstance(message, ClipChunk):
            self._answer(self.clips.chunk(message))
            return None
        if isinstance(message, Snapshot):
            return self._snapshot(message)
        if isinstance(message, RingEvent | MotionEvent | ClipMeta) and not self._in_time(message):
            return None
        if isinstance(message, ClipAck | LiveRequest | TalkPacket | PersonEvent | ParcelEvent):
            self.rejected += 1
            log.warning("rejected a command on %r: commands go to devices, not from them", topic)
            return None
        if isinstance(message, Status):
            self.db.record_status(message)
            fresh = True
        elif isinstance(message, ClipMeta):
            if self.db.clip(message.clip_id) is None:
                refusal = self.clips.admit(message)
                if refusal is not None:
                    kind, reason = refusal
                    self._refuse(message.device_id, kind, reason, quiet=kind == "busy")
                    return None
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
        if isinstance(message, RingEvent | MotionEvent):
            self._snapshot_waiting_for(message)
        return message

    def _refuse(self, device_id: str, kind: str, reason: str, quiet: bool = False) -> None:
        """Count a refusal; the first of its kind from a device is logged, with its name."""
        self.rejected += 1
        self.refusals[(device_id, kind)] += 1
        if self.refusals[(device_id, kind)] == 1 and not quiet:
            log.warning(
                "refused from %s: %s (%s; more of this kind are counted, not logged)",
                device_id, reason, kind,
            )  # fmt: skip

    def _in_time(self, message: RingEvent | MotionEvent | ClipMeta) -> bool:
        now = time.time()
        stamps = (
            [message.start_ts, message.trigger_ts, message.end_ts]
            if isinstance(message, ClipMeta)
            else [message.ts]
        )
        if all(now - MAX_PAST_S <= ts <= now + MAX_FUTURE_S for ts in stamps):
            return True
        worst = max(stamps, key=lambda ts: abs(ts - now))
        self._refuse(
            message.device_id,
            "timestamp",
            f"a timestamp {worst - now:+.3g} s from the hub's clock (allowed: one year before"
            f" to {MAX_FUTURE_S:.0f} s after)",
        )
        return False

    def _snapshot(self, snapshot: Snapshot) -> Snapshot | None:
        """Keep a snapshot only for a known event of the same device."""
        owner = self.db.event_device(snapshot.event_id)
        if owner is None:  # its event may be a moment behind it: wait a little, in memory
            waiting = self._early_snapshots.setdefault(snapshot.device_id, deque())
            if len(waiting) >= SNAPSHOTS_WAITING:
                waiting.popleft()
                self._refuse(snapshot.device_id, "snapshot", "snapshots for unknown events")
            waiting.append((time.monotonic(), snapshot))
            return None
        if owner != snapshot.device_id:
            self._refuse(snapshot.device_id, "snapshot", "a snapshot for another device's event")
            return None
        atomic_write(self.snapshot_path(snapshot.event_id), snapshot.data)
        if self.on_message is not None:
            self.on_message(snapshot)
        return snapshot

    def _snapshot_waiting_for(self, event: RingEvent | MotionEvent) -> None:
        waiting = self._early_snapshots.get(event.device_id)
        if not waiting:
            return
        now = time.monotonic()
        for arrived, snapshot in list(waiting):
            if now - arrived > SNAPSHOT_WAIT_S:
                waiting.remove((arrived, snapshot))
            elif snapshot.event_id == event.event_id:
                waiting.remove((arrived, snapshot))
                self._snapshot(snapshot)

    def publish_raw(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish what is not a wire message (Home Assistant's topics)."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish(self, message: Message) -> None:
        """Send a command to a device (paho queues QoS 1 ones while the broker is away)."""
        self._client.publish(topic_for(message), message.to_bytes(), qos=qos_for(message))

    def snapshot_path(self, event_id: str) -> Path:
        return self.snapshots / f"{event_id}.jpg"

    def before_path(self, event_id: str) -> Path:
        """A parcel event's picture from before the visit (its snapshot is after it)."""
        return self.snapshots / f"{event_id}.before.jpg"

    def prune_snapshots(self, max_age_s: float, max_bytes: int, now: float | None = None) -> int:
        """Delete ring snapshots older than ``max_age_s``, then the oldest until they take
        at most ``max_bytes``; returns how many went. Safe beside the ingest (its writes
        are atomic renames)."""
        now = time.time() if now is None else now
        files = []
        for path in self.snapshots.glob("*.jpg"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        total, removed = sum(size for _, size, _ in files), 0
        for mtime, size, path in files:
            if mtime >= now - max_age_s and total <= max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

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
            self.handle(msg.topic, bytes(msg.payload))
        except Exception:  # a bug must cost one message, never the ingest
            self.rejected += 1
            log.exception("failed to handle message on %r", msg.topic)
