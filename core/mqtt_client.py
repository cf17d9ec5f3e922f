"""paho-mqtt clients with Porch's settings, for the device and the hub alike."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from porch.core.config import MqttSettings

MAX_IN_FLIGHT = 100
HUB_SESSION_EXPIRY_S = 7 * 24 * 3600
"""The broker queues QoS 1 messages for a hub that is away for up to this long."""


def make_client(client_id: str, settings: MqttSettings) -> mqtt.Client:
    """An MQTT 5 client that reconnects by itself (1 to 5 s apart)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    client.max_inflight_messages_set(MAX_IN_FLIGHT)
    client.max_queued_messages_set(0)  # unlimited: the outbox bounds what we queue
    if settings.tls_ca:
        client.tls_set(
            ca_certs=settings.tls_ca,
            certfile=settings.tls_cert or None,
            keyfile=settings.tls_key or None,
        )
    return client


def connect(client: mqtt.Client, settings: MqttSettings, session_expiry_s: int = 0) -> None:
    """Start connecting in the background; a session expiry > 0 keeps the session (and the
    broker's queue of messages for it) while the client is away."""
    properties = None
    if session_expiry_s:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
        properties.SessionExpiryInterval = session_expiry_s
    client.connect_async(
        settings.host,
        settings.port,
        settings.keepalive_s,
        clean_start=not session_expiry_s,
        properties=properties,
    )
    client.loop_start()
