"""The device's MQTT connection: presence and the outbox drain. (Home Assistant hears of the
doorbell from the hub, which knows which events are fresh: hub/homeassistant.py.)

A publisher thread sends the outbox's oldest messages at QoS 1 and deletes each one when its
PUBACK arrives. paho keeps unacknowledged QoS 1 messages across reconnects and sends them
again itself, so a message stays "in flight" (and is not published twice by us) until its
PUBACK; after a restart of the agent everything left in the outbox is sent again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from porch.core.config import MqttSettings
from porch.core.mqtt_client import MAX_IN_FLIGHT, connect, make_client
from porch.core.wire import (
    Message,
    Status,
    WireError,
    device_client_id,
    device_commands,
    now,
    parse,
    qos_for,
    status_topic,
    topic_for,
)
from porch.device.outbox import Outbox

log = logging.getLogger(__name__)


class DeviceLink:
    """Keeps the device connected and its outbox draining; :meth:`wake` after each put."""

    def __init__(
        self,
        device_id: str,
        name: str,
        settings: MqttSettings,
        outbox: Outbox,
        software: str,
        speaker: bool = False,
        on_command: Callable[[Message], None] | None = None,
        on_connection: Callable[[bool], None] | None = None,
    ):
        self.device_id = device_id
        self.name = name
        self.settings = settings
        self.outbox = outbox
        self.software = software
        self.speaker = speaker
        self.problem: str | None = None
        """Said in the online status while set (:meth:`set_problem`)."""
        self.connected = threading.Event()
        self.published = 0
        self._status_due = threading.Event()
        """The online status is to be (re)published; only the publisher thread publishes it, so
        a problem set while connecting is never overtaken by an older status."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox seq; publisher thread only
        self._client = make_client(device_client_id(device_id), settings)
        offline = Status(device_id=device_id, state="offline", software=software)
        self._client.will_set(status_topic(device_id), offline.to_bytes(), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self.on_command = on_command
        self.on_connection = on_connection
        self._thread = threading.Thread(target=self._publisher, name="outbox", daemon=True)

    def start(self) -> None:
        connect(self._client, self.settings)
        self._thread.start()

    def wake(self) -> None:
        """Something was put in the outbox: publish it now if connected."""
        self._wake.set()

    def set_problem(self, problem: str | None) -> None:
        """Something keeps the doorbell from working fully (its camera), or nothing does
        any more: the retained online status says so as soon as the link is up."""
        if problem == self.problem:
            return
        self.problem = problem
        self._status_due.set()
        self._wake.set()

    def _online(self) -> Status:
        return Status(
            device_id=self.device_id,
            state="online",
            ts=now(),
            software=self.software,
            speaker=self.speaker,
            name=self.name,
            problem=self.problem,
        )

    def publish_direct(self, message: Message) -> None:
        """Publish without the outbox, at the message's QoS (paho keeps a QoS 1 one in memory
        until acknowledged; a QoS 0 one sent while the broker is away is lost)."""
        self._client.publish(topic_for(message), message.to_bytes(), qos=qos_for(message))

    def stop(self) -> None:
        """Say goodbye (retained offline status) and disconnect."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if self.connected.is_set():
            offline = Status(
                device_id=self.device_id, state="offline", ts=now(), software=self.software
            )
            info = self._client.publish(
                status_topic(self.device_id), offline.to_bytes(), 1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code: ReasonCode, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        log.info("connected to the broker at %s:%d", self.settings.host, self.settings.port)
        client.subscribe(device_commands(self.device_id), qos=1)
        self.connected.set()
        self._status_due.set()
        self._wake.set()
        if self.on_connection is not None:
            self.on_connection(True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            log.warning("lost the broker (%s); events wait in the outbox", reason_code)
        self.connected.clear()
        if self.on_connection is not None:
            self.on_connection(False)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            message = parse(msg.topic, bytes(msg.payload))
        except WireError as exc:
            log.warning("ignored command on %r: %s", msg.topic[:200], exc)
            return
        if self.on_command is not None:
            try:
                self.on_command(message)
            except Exception:  # a bad command must not take the connection down
                log.exception("command on %r failed", msg.topic)

    @property
    def client(self) -> mqtt.Client:
        return self._client

    def _on_publish(self, client, userdata, mid: int, reason_code: ReasonCode, properties) -> None:
        # Runs on paho's network thread: hand over, never touch the outbox here.
        self._acks.put((mid, not reason_code.is_failure))
        if reason_code.is_failure:
            log.error("broker refused message %d: %s", mid, reason_code)
        self._wake.set()

    def _publisher(self) -> None:
        refused: set[int] = set()
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            done = []
            while not self._acks.empty():
                mid, accepted = self._acks.get()
                seq = self._in_flight.pop(mid, None)
                if seq is None:
                    continue
                if accepted:
                    done.append(seq)
                else:
                    refused.add(seq)  # kept; tried again after the next reconnect
            self.outbox.remove(done)
            self.published += len(done)
            if not self.connected.is_set():
                refused.clear()
                continue
            if self._status_due.is_set():
                self._status_due.clear()  # before reading the problem: a later change sets it again
                self._client.publish(status_topic(self.device_id), self._online().to_bytes(),
                                     qos=1, retain=True)  # fmt: skip
            room = MAX_IN_FLIGHT - len(self._in_flight)
            if room <= 0:
                continue
            busy = set(self._in_flight.values()) | refused
            for item in self.outbox.pending(exclude=busy, limit=room):
                info = self._client.publish(item.topic, item.payload, qos=1)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    log.warning("publish failed (%s); will retry", mqtt.error_string(info.rc))
                    break
                self._in_flight[info.mid] = item.seq
