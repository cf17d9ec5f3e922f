"""Garbage and schema-violating payloads on the hub's topics: rejected, logged, nothing changes."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porch.core.mqtt_client import make_client
from porch.core.wire import (
    MAX_PAYLOAD_BYTES,
    RingEvent,
    WireError,
    new_id,
    now,
    parse,
    ring_topic,
)
from porch.localbroker import LocalBroker
from tests.support.common import wait_for
from tests.support.hub import start_hub

TOPICS = [
    "porch/front-door/event/ring",
    "porch/front-door/event/motion",
    "porch/front-door/status",
    f"porch/front-door/clip/{'a' * 32}/meta",
    "porch/front-door/clip/../../meta",
    "porch/Front Door/event/ring",
    "porch/front-door/event/unknown",
    "porch/front-door",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


def valid_ring() -> dict:
    return json.loads(RingEvent(device_id="front-door", event_id=new_id(), ts=now()).to_bytes())


def violations() -> st.SearchStrategy[bytes]:
    """Payloads that are almost right: one field wrong, missing, extra or of the wrong type."""

    def mutate(data):
        field, value, action = data
        payload = valid_ring()
        if action == "drop":
            payload.pop(field, None)
        elif action == "set":
            payload[field] = value
        else:
            payload[f"extra_{field}"] = value
        return json.dumps(payload, allow_nan=True).encode()

    fields = st.sampled_from(["v", "device_id", "event_id", "ts", "event_type"])
    return st.tuples(fields, json_values, st.sampled_from(["drop", "set", "add"])).map(mutate)


garbage = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    violations(),
)


@given(topic=st.sampled_from(TOPICS), payload=garbage)
@settings(max_examples=500, deadline=None)
def test_parse_rejects_with_a_reason_and_nothing_else(topic, payload):
    try:
        message = parse(topic, payload)
    except WireError as exc:
        assert str(exc)
    else:  # a mutation may land on a valid value; then it really is valid
        assert message.device_id == "front-door"


@pytest.fixture(scope="module")
def hub_and_sender(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("garbage")
    with LocalBroker(tmp / "broker") as broker:
        service = start_hub(tmp / "hub", broker)
        ingest = service.ingest
        sender = make_client("attacker", broker.settings)
        connected = threading.Event()
        sender.on_connect = lambda *a: connected.set()
        sender.connect(broker.settings.host, broker.settings.port)
        sender.loop_start()
        wait_for(connected.is_set, what="the sender")
        yield ingest, sender
        sender.disconnect()
        sender.loop_stop()
        service.stop()


def dump(ingest) -> list[str]:
    return list(ingest.db.conn.iterdump())


def send(sender, topic: str, payload: bytes) -> None:
    sender.publish(topic, payload, qos=1).wait_for_publish(30)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(topic=st.sampled_from(TOPICS[:4]), payload=garbage)
def test_hub_survives_garbage_and_its_database_is_unchanged(hub_and_sender, topic, payload):
    ingest, sender = hub_and_sender
    try:
        parse(topic, payload)
    except WireError:
        pass
    else:
        return  # hypothesis found a valid message; not garbage
    before = dump(ingest)
    rejected = ingest.rejected
    send(sender, topic, payload)
    wait_for(lambda: ingest.rejected == rejected + 1, what="the rejection")
    assert dump(ingest) == before


def test_hub_rejects_the_classics_then_still_stores_a_valid_event(hub_and_sender):
    ingest, sender = hub_and_sender
    ring = valid_ring()
    other_device = dict(ring, device_id="back-door")  # forged: payload names another device
    status = {"v": 1, "device_id": "front-door", "state": "online"}
    # what a terminal, a log or a page would show otherwise than it was written
    unreadable = [{"software": "1.0\x00"}, {"software": "\x1b[2J\x1b[31mpwned"},
                  {"software": "safe\u202egnp.exe"}, {"name": "Front\u2066 door"},
                  {"software": "\ud800"}]  # fmt: skip
    cases = [
        *[("porch/front-door/status", json.dumps(dict(status, **f)).encode()) for f in unreadable],
        (ring_topic("front-door"), b"\xff\xfe not json"),
        (ring_topic("front-door"), b"[]"),
        (ring_topic("front-door"), json.dumps(dict(ring, v=2)).encode()),
        (ring_topic("front-door"), json.dumps(dict(ring, ts="yesterday")).encode()),
        (ring_topic("front-door"), json.dumps(dict(ring, ts=float("nan"))).encode()),
        (ring_topic("front-door"), json.dumps(other_device).encode()),
        (ring_topic("front-door"), b"{" * 100_000),
        (ring_topic("front-door"), b" " * (MAX_PAYLOAD_BYTES + 1)),
        ("porch/front-door/event/knock", json.dumps(ring).encode()),
    ]
    before = dump(ingest)
    rejected = ingest.rejected
    for topic, payload in cases:
        send(sender, topic, payload)
    wait_for(lambda: ingest.rejected == rejected + len(cases), what="every rejection")
    assert dump(ingest) == before

    send(sender, ring_topic("front-door"), json.dumps(ring).encode())
    # ``stored`` counts after the row is written: wait for the counter, not just the row.
    wait_for(lambda: ingest.stored >= 1, what="the valid event")
    assert ingest.db.count_events("ring") == 1
    stored = ingest.stored
    send(sender, ring_topic("front-door"), json.dumps(ring).encode())  # a replay
    wait_for(lambda: ingest.duplicates >= 1, what="the duplicate to be dropped")
    assert ingest.stored == stored


def test_raw_garbage_with_mqtt_v311_client(hub_and_sender):
    """An old-protocol client is no different: same rejections."""
    ingest, _ = hub_and_sender
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(ingest.settings.host, ingest.settings.port)
    client.loop_start()
    rejected = ingest.rejected
    client.publish(ring_topic("front-door"), b"\x00" * 50, qos=1).wait_for_publish(30)
    wait_for(lambda: ingest.rejected == rejected + 1)
    client.disconnect()
    client.loop_stop()
