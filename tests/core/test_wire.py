"""The wire contract: round trips, topic checks, Home Assistant discovery."""

from __future__ import annotations

import json

import pytest

from porch.core.wire import (
    MAX_GLANCE_BYTES,
    THUMBNAIL,
    ClipAck,
    ClipChunk,
    ClipMeta,
    Glance,
    LivePacket,
    LiveRequest,
    MotionEvent,
    RingEvent,
    Status,
    TalkPacket,
    WireError,
    glance_topic,
    home_assistant_discovery,
    home_assistant_topics,
    new_id,
    now,
    parse,
    qos_for,
    topic_for,
)

MESSAGES = [
    Status(device_id="front-door", state="online", ts=now(), software="0.1.0"),
    RingEvent(device_id="front-door", event_id=new_id(), ts=now()),
    MotionEvent(device_id="front-door", event_id=new_id(), ts=now(), active=True, area=0.12),
    ClipMeta(
        device_id="front-door",
        clip_id=new_id(),
        event_ids=[new_id()],
        start_ts=1.0,
        trigger_ts=6.0,
        end_ts=16.0,
        size_bytes=1000,
        sha256="0" * 64,
        width=640,
        height=360,
        chunk_bytes=1024,
        chunk_sha256=["0" * 64],
        thumbnail_bytes=10,
        thumbnail_sha256="1" * 64,
    ),
    ClipAck(device_id="front-door", clip_id=new_id(), stored=False, missing=[-1, 0, 3]),
    LiveRequest(device_id="front-door", viewers=2, lease_s=10, keyframe=True),
    LivePacket("front-door", 12.5, True, b"\x00\x00\x00\x01\x67\x42"),
    TalkPacket("front-door", 7, b"\x01\x00" * 320),
    Status(device_id="front-door", state="online", speaker=True),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message):
    assert parse(topic_for(message), message.to_bytes()) == message


def test_chunk_topics_carry_raw_bytes():
    chunk = ClipChunk("front-door", new_id(), 7, b"\x00\x01" * 100)
    assert parse(topic_for(chunk), chunk.data) == chunk
    thumb = ClipChunk("front-door", chunk.clip_id, THUMBNAIL, b"\xff\xd8")
    assert topic_for(thumb).endswith("/thumbnail")
    assert parse(topic_for(thumb), thumb.data) == thumb
    for bad in ("chunk/-1", "chunk/x", "chunk/1234567", "chunk/1/2"):
        with pytest.raises(WireError):
            parse(f"porch/front-door/clip/{chunk.clip_id}/{bad}", b"x")
    with pytest.raises(WireError, match="empty"):
        parse(topic_for(chunk), b"")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\x01" + b"\x00" * 8, "empty"),
        (b"\x02" + b"\x00" * 8 + b"\x00\x00\x01\x65", "Annex B"),  # unknown flag
        (b"\x01" + b"\x7f\xf8" + b"\x00" * 6 + b"\x00\x00\x01\x65", "Annex B"),  # NaN pts
        (b"\x01" + b"\x00" * 8 + b"\x47\x40\x00", "Annex B"),  # not H.264
        (b"\x01" + b"\x00" * 8 + b"\x00\x00\x01" + b"\x00" * (1 << 20), "too big"),
    ],
)
def test_live_packets_must_be_timed_annex_b(payload, reason):
    with pytest.raises(WireError, match=reason):
        parse("porch/front-door/live/video", payload)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "header"),
        (b"\x00\x00\x00\x01", "header"),  # no samples
        (b"\x00\x00\x00\x01\x00", "16-bit"),  # half a sample
        (b"\x00\x00\x00\x01" + b"\x00" * 6402, "6400"),  # over 200 ms
    ],
)
def test_talk_packets_are_short_runs_of_samples(payload, reason):
    with pytest.raises(WireError, match=reason):
        parse("porch/front-door/cmd/talk", payload)


def test_a_lease_is_bounded():
    for bad in ({"viewers": -1, "lease_s": 5}, {"viewers": 1, "lease_s": 0},
                {"viewers": 1, "lease_s": 3600}, {"viewers": 99, "lease_s": 5}):  # fmt: skip
        payload = json.dumps({"v": 1, "device_id": "front-door", **bad}).encode()
        with pytest.raises(WireError):
            parse("porch/front-door/cmd/live", payload)


def test_clip_meta_hashes_must_cover_the_file():
    data = json.loads(MESSAGES[3].to_bytes())
    data["size_bytes"] = 5000  # five 1 KiB chunks, one hash
    with pytest.raises(WireError, match="5 chunk hashes expected"):
        parse(topic_for(MESSAGES[3]), json.dumps(data).encode())


def test_clip_topic_must_match_payload():
    clip = MESSAGES[3]
    with pytest.raises(WireError, match="does not match"):
        parse(topic_for(clip).replace(clip.clip_id, new_id()), clip.to_bytes())


def test_home_assistant_discovery():
    config = home_assistant_discovery("front-door", "Front door", "0.1.0")
    assert home_assistant_topics("front-door")["discovery"] == (
        "homeassistant/device/porch_front_door/config"
    )
    assert config["origin"]["name"] == "Porch", "device-based discovery needs an origin"
    assert config["device"]["identifiers"] == ["porch_front_door"]
    assert config["device"]["name"] == "Front door"
    components = config["components"]
    event = components["porch_front_door_doorbell"]
    assert event["platform"] == "event" and event["device_class"] == "doorbell"
    assert event["event_types"] == ["ring", "person"]
    assert event["state_topic"] == "porch/front-door/ha/ring"
    motion = components["porch_front_door_motion"]
    assert motion["platform"] == "binary_sensor" and motion["device_class"] == "motion"
    person = components["porch_front_door_person"]
    assert person["platform"] == "binary_sensor" and person["device_class"] == "occupancy"
    assert person["state_topic"] == "porch/front-door/ha/person"
    entities = {key: c for key, c in components.items() if len(c) > 1}
    assert all(c["unique_id"].startswith("porch_front_door_") for c in entities.values())
    assert config["availability"][0]["topic"] == "porch/front-door/status"
    assert "porch_front_door_snapshot" not in entities, "no picture unless opted in"
    # and one announced before is removed (Home Assistant's way: the platform alone)
    assert components["porch_front_door_snapshot"] == {"platform": "image"}
    with_picture = home_assistant_discovery("front-door", "Front door", "0.1.0", snapshot=True)
    image = with_picture["components"]["porch_front_door_snapshot"]
    assert image["platform"] == "image" and image["content_type"] == "image/jpeg"


def test_a_glance_is_a_jpeg_of_bounded_size_for_an_event_of_its_own_device():
    jpeg = b"\xff\xd8" + bytes(1000)
    event_id = new_id()
    glance = parse(glance_topic("front-door", event_id), jpeg)
    assert isinstance(glance, Glance) and glance.event_id == event_id and qos_for(glance) == 0
    assert topic_for(glance) == glance_topic("front-door", event_id)
    too_big = b"\xff\xd8" + bytes(MAX_GLANCE_BYTES)
    for topic, payload in [
        (glance_topic("front-door", event_id), too_big),
        (glance_topic("front-door", event_id), b"GIF89a"),
        (glance_topic("front-door", event_id), b""),
        ("porch/front-door/glance/not-an-id", jpeg),
        ("porch/front-door/glance", jpeg),
    ]:
        with pytest.raises(WireError):
            parse(topic, payload)


@pytest.mark.parametrize(
    "text", ["1.0\x00", "\x1b[31mred", "tab\there", "line\nbreak", "abc\u202edcba", "\u2067x",
             "\u200fmark", "\ud800", "line\u2028separator", "\u2029"],
)  # fmt: skip
def test_control_and_bidi_override_characters_are_refused_in_any_string(text):
    for payload in ({"software": text}, {"name": text}):
        status = {"v": 1, "device_id": "front-door", "state": "online", **payload}
        with pytest.raises(WireError, match="invisible or control character"):
            parse("porch/front-door/status", json.dumps(status).encode())


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "Haustür", "باب", "👩\u200d🚀"])
def test_what_a_person_can_read_passes(text):
    status = {"v": 1, "device_id": "front-door", "state": "online", "software": text}
    assert parse("porch/front-door/status", json.dumps(status).encode()).software == text
