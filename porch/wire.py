"""The wire contract between doorbell and hub: MQTT topics, JSON payloads, protocol version.

This is the only place these facts live; the device agent and the hub both import it.
Every payload is a JSON object with a ``v`` field; anything that does not parse, does not
match its schema, or names another device than its topic is rejected with a reason.

Topics, under ``porch/<device_id>/``:

=====================  =========  ==========================================================
``status``             retained   :class:`Status`; the broker publishes the last will
                                  (``state: offline``) when the device drops off
``event/ring``         QoS 1      :class:`RingEvent`: the button was pressed
``event/motion``       QoS 1      :class:`MotionEvent`: motion started or ended
``clip/<id>/meta``     QoS 1      :class:`ClipMeta`: a clip was finalised in the device store
=====================  =========  ==========================================================
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
ROOT = "porch"
MAX_PAYLOAD_BYTES = 64 * 1024
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
ID_PATTERN = r"^[0-9a-f]{32}$"
HOME_ASSISTANT_PREFIX = "homeassistant"

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_ID = re.compile(ID_PATTERN)

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, description="e.g. front-door")]
MessageId = Annotated[str, Field(pattern=ID_PATTERN, description="uuid4, 32 hex digits")]
Timestamp = Annotated[float, Field(ge=0, description="seconds since the Unix epoch")]


class WireError(ValueError):
    """A message that is not part of the contract; ``str()`` says why."""


def new_id() -> str:
    """A fresh event or clip id."""
    return uuid.uuid4().hex


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    v: Literal[1] = PROTOCOL_VERSION
    device_id: DeviceId

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Status(_Payload):
    """Retained presence of a device. The last will carries ``state: offline``."""

    state: Literal["online", "offline"]
    ts: Timestamp | None = None
    software: str | None = Field(default=None, max_length=64)


class RingEvent(_Payload):
    """A press of the doorbell button; ``event_type`` is read by Home Assistant's event entity."""

    event_id: MessageId
    ts: Timestamp
    event_type: Literal["ring"] = "ring"


class MotionEvent(_Payload):
    """Motion inside the detection zones started (``active``) or ended."""

    event_id: MessageId
    ts: Timestamp
    active: bool
    area: float = Field(ge=0, le=1, description="fraction of the watched area that changed")


class ClipMeta(_Payload):
    """A clip that is whole in the device's store: pre-roll + event + post-roll."""

    clip_id: MessageId
    event_ids: list[MessageId] = Field(max_length=1000)
    start_ts: Timestamp
    trigger_ts: Timestamp
    end_ts: Timestamp
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)


Message = Status | RingEvent | MotionEvent | ClipMeta


def status_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/status"


def ring_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/event/ring"


def motion_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/event/motion"


def clip_meta_topic(device_id: str, clip_id: str) -> str:
    return f"{ROOT}/{device_id}/clip/{clip_id}/meta"


def topic_for(message: Message) -> str:
    """The topic a message is published on."""
    match message:
        case Status():
            return status_topic(message.device_id)
        case RingEvent():
            return ring_topic(message.device_id)
        case MotionEvent():
            return motion_topic(message.device_id)
        case ClipMeta():
            return clip_meta_topic(message.device_id, message.clip_id)
    raise TypeError(f"not a wire message: {message!r}")


HUB_SUBSCRIPTION = f"{ROOT}/+/#"
"""What the hub subscribes to: everything every device publishes."""

_ADAPTERS: dict[str, TypeAdapter[Message]] = {
    "status": TypeAdapter(Status),
    "event/ring": TypeAdapter(RingEvent),
    "event/motion": TypeAdapter(MotionEvent),
    "clip/meta": TypeAdapter(ClipMeta),
}


def parse(topic: str, payload: bytes) -> Message:
    """Validate one received message against the contract.

    Raises :class:`WireError` naming the first thing wrong: an unknown topic, an oversized or
    non-JSON payload, a schema violation, or a payload whose device (or clip) is not its topic's.
    """
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != ROOT:
        raise WireError(f"unknown topic {topic!r}")
    device_id = parts[1]
    if not _DEVICE_ID.fullmatch(device_id):
        raise WireError(f"bad device id in topic {topic!r}")
    rest = parts[2:]
    clip_id = None
    if len(rest) == 3 and rest[0] == "clip" and rest[2] == "meta":
        clip_id = rest[1]
        if not _ID.fullmatch(clip_id):
            raise WireError(f"bad clip id in topic {topic!r}")
        kind = "clip/meta"
    else:
        kind = "/".join(rest)
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        raise WireError(f"unknown topic {topic!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("payload is not a JSON object")
    if data.get("v") != PROTOCOL_VERSION:
        raise WireError(f"unsupported protocol version {data.get('v')!r}")
    try:
        message = adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise WireError(f"{where}: {first['msg']}") from None
    if message.device_id != device_id:
        raise WireError(f"payload device {message.device_id!r} does not match topic {topic!r}")
    if clip_id is not None and isinstance(message, ClipMeta) and message.clip_id != clip_id:
        raise WireError(f"payload clip {message.clip_id!r} does not match topic {topic!r}")
    return message


def now() -> float:
    """Wall-clock seconds since the epoch, as carried in every ``ts`` field."""
    return time.time()


def home_assistant_discovery(device_id: str, name: str, software: str) -> dict[str, dict]:
    """Retained Home Assistant MQTT discovery configs, by topic.

    The doorbell appears as an ``event`` entity with ``device_class: doorbell`` and motion as a
    ``binary_sensor``; both share one device block and use the status topic for availability.
    """
    device = {
        "identifiers": [f"porch_{device_id}"],
        "name": name,
        "manufacturer": "Porch",
        "model": "Porch doorbell",
        "sw_version": software,
    }
    availability = [
        {
            "topic": status_topic(device_id),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    node = f"porch_{device_id}".replace("-", "_")
    return {
        f"{HOME_ASSISTANT_PREFIX}/event/{node}/doorbell/config": {
            "name": "Doorbell",
            "unique_id": f"{node}_doorbell",
            "device_class": "doorbell",
            "event_types": ["ring"],
            "state_topic": ring_topic(device_id),
            "availability": availability,
            "device": device,
        },
        f"{HOME_ASSISTANT_PREFIX}/binary_sensor/{node}/motion/config": {
            "name": "Motion",
            "unique_id": f"{node}_motion",
            "device_class": "motion",
            "state_topic": motion_topic(device_id),
            "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
            "availability": availability,
            "device": device,
        },
    }
