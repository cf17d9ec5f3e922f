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
``clip/<id>/chunk/<n>`` QoS 1     :class:`ClipChunk`: raw bytes of chunk ``n`` (not JSON)
``clip/<id>/thumbnail`` QoS 1     :class:`ClipChunk` with ``index = THUMBNAIL``: the JPEG
``snapshot/<event>``   QoS 1      :class:`Snapshot`: a JPEG of the moment of a ring (not JSON)
``glance/<event>``     QoS 0      :class:`Glance`: a small JPEG of the scene while motion
                                  ``<event>`` goes on, a few a second, for the hub's person
                                  detector (not JSON; never stored unless it becomes the
                                  picture of a person event)
``cmd/clip/<id>/ack``  QoS 1      :class:`ClipAck`, hub → device: what the hub still misses,
                                  or that it has stored the whole clip (fsync'd)
``live/video``         QoS 0      :class:`LivePacket`: one encoded H.264 access unit, sent
                                  only while someone watches (binary header + Annex B)
``cmd/live``           QoS 1      :class:`LiveRequest`, hub → device: stream for ``lease_s``
                                  more seconds (renewed while anyone watches), or stop
``cmd/talk``           QoS 0      :class:`TalkPacket`, hub → device: 20 ms of someone's voice
                                  for the doorbell's speaker (binary header + 16-bit PCM)
=====================  =========  ==========================================================

A clip's metadata carries the device's signature of the clip and, in ``gops``
(:class:`GopSeal`, format ``porch-gops/1``), of its GOP table (:mod:`porch.core.gops`);
``container: journal`` marks a clip a crash cut short, sent as its journal
(:mod:`porch.core.journal`). Clips without ``gops`` (doorbells before it) stay valid.

Clip transfer is pulled by the hub: the device announces a clip (``meta``, again and again
until the hub confirms it), the hub answers with an ack listing what it lacks, the device
sends exactly that. A cut connection, a restart of either side or a corrupted chunk only
leads to another ack; the device deletes its copy only after an ack with ``stored: true``.
"""

from __future__ import annotations

import json
import re
import struct
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

PROTOCOL_VERSION: Final = 1
ROOT = "porch"
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 1024 * 1024
"""Largest clip chunk; binary chunk payloads may be this big, JSON ones only MAX_PAYLOAD_BYTES."""
MAX_SNAPSHOT_BYTES = 256 * 1024
MAX_GLANCE_BYTES = 48 * 1024
"""A glance is a lores frame (320 px wide) as a JPEG: about 15 KB; more is refused."""
GLANCES_PER_S = 4.0
"""The most glances a second a doorbell may send (the hub drops the rest)."""
MAX_LIVE_PACKET_BYTES = 1024 * 1024
TALK_RATE = 16000
"""Talk audio: mono, signed 16-bit little-endian samples at this rate, Hz."""
MAX_TALK_PACKET_BYTES = TALK_RATE * 2 // 5
"""At most 200 ms of talk audio in one packet."""
"""Largest encoded frame a device may stream live (a 1080p IDR is far below this)."""
MAX_VIEWERS = 16
MAX_LEASE_S = 60.0
MAX_CHUNKS = 8192
"""Most chunks a clip may have (its offer then lists 8192 hashes, about 540 KB of JSON)."""
MAX_OFFER_BYTES = 1024 * 1024
"""An offer (``clip/<id>/meta``) may be this big; other JSON payloads only MAX_PAYLOAD_BYTES."""
THUMBNAIL = -1
"""The chunk index that stands for a clip's JPEG thumbnail."""
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
ID_PATTERN = r"^[0-9a-f]{32}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
HOME_ASSISTANT_PREFIX = "homeassistant"
HUB_IDENTITY = "porch-hub"
"""The hub's certificate CN, hence its MQTT user name (``use_identity_as_username``). Every
identity of the home's own begins with ``porch``; no device may be called so."""

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_ID = re.compile(ID_PATTERN)

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, description="e.g. front-door")]
MessageId = Annotated[str, Field(pattern=ID_PATTERN, description="uuid4, 32 hex digits")]
Timestamp = Annotated[float, Field(ge=0, description="seconds since the Unix epoch")]


def spoken_name(device_id: str) -> str:
    """The name people see for a doorbell nobody has named: ``back-door`` is "Back door"."""
    return device_id.replace("-", " ").capitalize()


class WireError(ValueError):
    """A message that is not part of the contract; ``str()`` says why."""


def new_id() -> str:
    """A fresh event or clip id."""
    return uuid.uuid4().hex


BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Marks that reorder the text shown after them (Trojan Source, CVE-2021-42574)."""


def unprintable(text: str, lines: bool = False) -> str | None:
    """The first character of ``text`` that no one would see as written: a control
    character (NUL, ESC …; with ``lines``, newlines and tabs are text), a lone surrogate, a
    line or paragraph separator or a bidirectional override. None when there is none."""
    for ch in text:
        if ch in BIDI_CONTROLS or (
            unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") and not (lines and ch in "\n\r\t")
        ):
            return ch
    return None


def refuse_unprintable(value: object, where: str = "a text", lines: bool = False) -> None:
    """ValueError naming ``where`` if a string in ``value`` (or in its lists and dicts) holds
    a character :func:`unprintable` finds: every string a doorbell, an agency or a person
    sends is refused so at the contract, before anything stores or shows it."""
    if isinstance(value, str):
        found = unprintable(value, lines)
        if found is not None:
            raise ValueError(
                f"{where} holds an invisible or control character (U+{ord(found):04X})"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unprintable(key, where, lines)
            refuse_unprintable(item, str(key), lines)
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_unprintable(item, where, lines)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    v: Literal[1] = PROTOCOL_VERSION
    device_id: DeviceId

    @model_validator(mode="before")
    @classmethod
    def _printable(cls, data: Any) -> Any:
        refuse_unprintable(data, "payload")
        return data

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Status(_Payload):
    """Retained presence of a device. The last will carries ``state: offline``."""

    state: Literal["online", "offline"]
    ts: Timestamp | None = None
    software: str | None = Field(default=None, max_length=64)
    speaker: bool = False
    """The doorbell has a speaker: people watching live may talk through it."""
    name: str | None = Field(default=None, max_length=64)
    """What the doorbell is called in its device.toml ("Front door"), for Home Assistant."""
    problem: str | None = Field(default=None, max_length=200)
    """What keeps an online doorbell from working fully (its camera, say): it still rings."""


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


class GopSeal(BaseModel):
    """The device's signature over a clip's GOP table (:mod:`porch.core.gops`): any run of
    whole GOPs of the clip can then be shared on its own and still be checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal["porch-gops/1"]
    count: int = Field(ge=1, le=100_000, description="GOPs the signed table lists")
    complete: bool = Field(description="the whole clip (else: up to a checkpoint, a crash)")
    table_sha256: str = Field(pattern=SHA256_PATTERN)
    signature: str | None = Field(
        None, pattern=r"^[0-9a-f]{128}$", description="Ed25519 over table_sha256, at capture"
    )


class ClipMeta(_Payload):
    """A clip that is whole in the device's store: pre-roll + event + post-roll.

    ``container`` is ``mp4``, or ``journal`` for a clip whose recording a crash cut short:
    the file is then its journal (:mod:`porch.core.journal`), which the hub turns into an
    MP4, proven by ``gops`` alone. ``gops`` is absent from clips of doorbells before it; the
    hub exports those whole."""

    clip_id: MessageId
    event_ids: list[MessageId] = Field(max_length=1000)
    start_ts: Timestamp
    trigger_ts: Timestamp
    end_ts: Timestamp
    size_bytes: int = Field(gt=0, description="an empty clip is no clip")
    sha256: str = Field(pattern=SHA256_PATTERN)
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)
    chunk_bytes: int = Field(ge=1024, le=MAX_CHUNK_BYTES)
    chunk_sha256: list[Annotated[str, Field(pattern=SHA256_PATTERN)]] = Field(max_length=MAX_CHUNKS)
    thumbnail_bytes: int = Field(ge=1, le=MAX_CHUNK_BYTES)
    thumbnail_sha256: str = Field(pattern=SHA256_PATTERN)
    sealed: bool = Field(False, description="video and thumbnail sealed to the hub's key")
    plain_sha256: str | None = Field(
        None, pattern=SHA256_PATTERN, description="SHA-256 of the video before sealing"
    )
    signature: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{128}$",
        description="the device's Ed25519 signature over plain_sha256 (or sha256), at capture",
    )
    gops: GopSeal | None = None
    container: Literal["mp4", "journal"] = "mp4"

    @model_validator(mode="after")
    def _chunks_cover_the_file(self) -> ClipMeta:
        if len(self.chunk_sha256) != self.chunk_count:
            raise ValueError(
                f"{self.chunk_count} chunk hashes expected, {len(self.chunk_sha256)} given"
            )
        if self.container == "journal" and (
            self.gops is None or self.gops.complete or self.signature or self.plain_sha256
        ):
            raise ValueError("a journal clip carries a checkpoint's GOP seal and nothing else")
        return self

    @property
    def chunk_count(self) -> int:
        return -(-self.size_bytes // self.chunk_bytes)


class ClipAck(_Payload):
    """Hub → device: the clip is stored whole (``stored``), or these chunks are still missing."""

    clip_id: MessageId
    stored: bool
    missing: list[Annotated[int, Field(ge=THUMBNAIL)]] = Field(
        default_factory=list, max_length=65537
    )


@dataclass(frozen=True)
class ClipChunk:
    """Raw bytes of one chunk of a clip (``index`` from 0), or its thumbnail (``THUMBNAIL``)."""

    device_id: str
    clip_id: str
    index: int
    data: bytes

    def to_bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Snapshot:
    """A JPEG of the porch at the moment of an event, for the ring banner (raw bytes)."""

    device_id: str
    event_id: str
    data: bytes

    def to_bytes(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Glance:
    """A small JPEG of the scene during motion ``event_id``, for the hub's person detector
    (raw bytes). Late is as good as lost: QoS 0, and the hub keeps only the newest."""

    device_id: str
    event_id: str
    data: bytes

    def to_bytes(self) -> bytes:
        return self.data


class PersonEvent(_Payload):
    """The hub saw a person during motion ``motion_event_id``: made by the hub's detector,
    never taken from a doorbell. Kept in the event log beside rings and motion."""

    event_id: MessageId
    ts: Timestamp
    motion_event_id: MessageId
    score: float = Field(ge=0, le=1, description="the detector's confidence")
    event_type: Literal["person"] = "person"


class ParcelEvent(_Payload):
    """The hub saw the doorstep zone change for good during a visit (motion
    ``motion_event_id``, with a person): a parcel left, or something taken. Made by the hub,
    never taken from a doorbell."""

    event_id: MessageId
    ts: Timestamp
    motion_event_id: MessageId
    action: Literal["left", "taken"]
    event_type: Literal["parcel"] = "parcel"


class LiveRequest(_Payload):
    """Hub → device: stream live video for ``lease_s`` more seconds (``viewers`` > 0), or stop.

    The hub renews the lease while anyone watches; a device whose hub went away stops by
    itself when the lease runs out. ``keyframe`` asks the encoder for an IDR frame now, so that
    a new viewer's picture starts at once.
    """

    viewers: int = Field(ge=0, le=MAX_VIEWERS)
    lease_s: float = Field(gt=0, le=MAX_LEASE_S)
    keyframe: bool = False


_LIVE_HEADER = struct.Struct(">Bd")  # flags (bit 0: keyframe), media time in seconds
_START_CODES = (b"\x00\x00\x00\x01", b"\x00\x00\x01")


@dataclass(frozen=True)
class LivePacket:
    """One encoded H.264 access unit for live view: a 9-byte header, then Annex B bytes."""

    device_id: str
    pts: float
    keyframe: bool
    data: bytes

    def to_bytes(self) -> bytes:
        return _LIVE_HEADER.pack(int(self.keyframe), self.pts) + self.data

    @classmethod
    def from_bytes(cls, device_id: str, payload: bytes) -> LivePacket:
        size = _LIVE_HEADER.size
        if not size < len(payload) <= size + MAX_LIVE_PACKET_BYTES:
            raise WireError(f"live packet of {len(payload)} bytes is empty or too big")
        flags, pts = _LIVE_HEADER.unpack_from(payload)
        data = bytes(payload[size:])
        if flags & ~1 or not 0 <= pts < 1e9 or not data.startswith(_START_CODES):
            raise WireError("live packet is not a flagged, timed Annex B H.264 access unit")
        return cls(device_id, pts, bool(flags & 1), data)


_TALK_HEADER = struct.Struct(">I")  # sequence number, rising per device while the hub runs


@dataclass(frozen=True)
class TalkPacket:
    """Hub → device: a slice of a viewer's voice, ``pcm`` at :data:`TALK_RATE` (mono s16le)."""

    device_id: str
    seq: int
    pcm: bytes

    def to_bytes(self) -> bytes:
        return _TALK_HEADER.pack(self.seq) + self.pcm

    @classmethod
    def from_bytes(cls, device_id: str, payload: bytes) -> TalkPacket:
        size = _TALK_HEADER.size
        pcm = bytes(payload[size:])
        if not 0 < len(pcm) <= MAX_TALK_PACKET_BYTES or len(pcm) % 2:
            raise WireError(
                f"talk packet of {len(payload)} bytes is not a header and up to"
                f" {MAX_TALK_PACKET_BYTES} bytes of 16-bit samples"
            )
        (seq,) = _TALK_HEADER.unpack_from(payload)
        return cls(device_id, seq, pcm)


Message = (
    Status
    | RingEvent
    | MotionEvent
    | ClipMeta
    | ClipAck
    | ClipChunk
    | Snapshot
    | Glance
    | PersonEvent
    | ParcelEvent
    | LiveRequest
    | LivePacket
    | TalkPacket
)


def device_client_id(device_id: str) -> str:
    """The MQTT client id a doorbell connects with (one connection per doorbell)."""
    return f"porch-device-{device_id}"


def status_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/status"


def ring_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/event/ring"


def motion_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/event/motion"


def clip_meta_topic(device_id: str, clip_id: str) -> str:
    return f"{ROOT}/{device_id}/clip/{clip_id}/meta"


def clip_chunk_topic(device_id: str, clip_id: str, index: int) -> str:
    if index == THUMBNAIL:
        return f"{ROOT}/{device_id}/clip/{clip_id}/thumbnail"
    return f"{ROOT}/{device_id}/clip/{clip_id}/chunk/{index}"


def snapshot_topic(device_id: str, event_id: str) -> str:
    return f"{ROOT}/{device_id}/snapshot/{event_id}"


def glance_topic(device_id: str, event_id: str) -> str:
    return f"{ROOT}/{device_id}/glance/{event_id}"


def clip_ack_topic(device_id: str, clip_id: str) -> str:
    return f"{ROOT}/{device_id}/cmd/clip/{clip_id}/ack"


def live_video_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/live/video"


def live_request_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/cmd/live"


def talk_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/cmd/talk"


def device_commands(device_id: str) -> str:
    """What a device subscribes to: its own command topics."""
    return f"{ROOT}/{device_id}/cmd/#"


def topic_for(message: Message) -> str:
    """The topic a message is published on."""
    match message:
        case ClipAck():
            return clip_ack_topic(message.device_id, message.clip_id)
        case ClipChunk():
            return clip_chunk_topic(message.device_id, message.clip_id, message.index)
        case Snapshot():
            return snapshot_topic(message.device_id, message.event_id)
        case Glance():
            return glance_topic(message.device_id, message.event_id)
        case Status():
            return status_topic(message.device_id)
        case RingEvent():
            return ring_topic(message.device_id)
        case MotionEvent():
            return motion_topic(message.device_id)
        case ClipMeta():
            return clip_meta_topic(message.device_id, message.clip_id)
        case LivePacket():
            return live_video_topic(message.device_id)
        case LiveRequest():
            return live_request_topic(message.device_id)
        case TalkPacket():
            return talk_topic(message.device_id)
    raise TypeError(f"not a wire message: {message!r}")


def qos_for(message: Message) -> int:
    """The QoS a message is published with: 0 for live media and glances (late is as good
    as lost), 1 for everything else."""
    return 0 if isinstance(message, LivePacket | TalkPacket | Glance) else 1


HUB_SUBSCRIPTION = f"{ROOT}/+/#"
"""What the hub subscribes to: everything every device publishes."""

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "status": TypeAdapter(Status),
    "event/ring": TypeAdapter(RingEvent),
    "event/motion": TypeAdapter(MotionEvent),
    "clip/*/meta": TypeAdapter(ClipMeta),
    "cmd/clip/*/ack": TypeAdapter(ClipAck),
    "cmd/live": TypeAdapter(LiveRequest),
}


def _kind(rest: list[str], topic: str) -> tuple[str, str | None, int | None]:
    """The topic's pattern (clip ids as ``*``), its clip id and its chunk index, if any."""
    clip_at = 1 if rest[:1] == ["clip"] else 2 if rest[:2] == ["cmd", "clip"] else None
    if clip_at is None or len(rest) <= clip_at:
        return "/".join(rest), None, None
    clip_id = rest[clip_at]
    if not _ID.fullmatch(clip_id):
        raise WireError(f"bad clip id in topic {topic!r}")
    pattern = [*rest[:clip_at], "*", *rest[clip_at + 1 :]]
    if pattern[-2:-1] == ["chunk"] and len(pattern) == 4:
        index = rest[-1]
        if not index.isdigit() or len(index) > 6:
            raise WireError(f"bad chunk index in topic {topic!r}")
        return "clip/*/chunk", clip_id, int(index)
    if pattern == ["clip", "*", "thumbnail"]:
        return "clip/*/chunk", clip_id, THUMBNAIL
    return "/".join(pattern), clip_id, None


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
    if len(parts) == 4 and parts[2] == "snapshot":
        if not _ID.fullmatch(parts[3]):
            raise WireError(f"bad event id in topic {topic!r}")
        if not 0 < len(payload) <= MAX_SNAPSHOT_BYTES or not payload.startswith(b"\xff\xd8"):
            raise WireError(f"snapshot is not a JPEG of at most {MAX_SNAPSHOT_BYTES} bytes")
        return Snapshot(device_id, parts[3], bytes(payload))
    if len(parts) == 4 and parts[2] == "glance":
        if not _ID.fullmatch(parts[3]):
            raise WireError(f"bad event id in topic {topic!r}")
        if not 0 < len(payload) <= MAX_GLANCE_BYTES or not payload.startswith(b"\xff\xd8"):
            raise WireError(f"glance is not a JPEG of at most {MAX_GLANCE_BYTES} bytes")
        return Glance(device_id, parts[3], bytes(payload))
    if parts[2:] == ["live", "video"]:
        return LivePacket.from_bytes(device_id, payload)
    if parts[2:] == ["cmd", "talk"]:
        return TalkPacket.from_bytes(device_id, payload)
    kind, clip_id, index = _kind(parts[2:], topic)
    if kind == "clip/*/chunk":
        assert clip_id is not None and index is not None
        if not 0 < len(payload) <= MAX_CHUNK_BYTES:
            raise WireError(f"chunk of {len(payload)} bytes is empty or over {MAX_CHUNK_BYTES}")
        return ClipChunk(device_id, clip_id, index, bytes(payload))
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        raise WireError(f"unknown topic {topic!r}")
    limit = MAX_OFFER_BYTES if kind in ("clip/*/meta", "cmd/clip/*/ack") else MAX_PAYLOAD_BYTES
    if len(payload) > limit:
        raise WireError(f"payload of {len(payload)} bytes exceeds {limit}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("payload is not a JSON object")
    if data.get("v") != PROTOCOL_VERSION:
        raise WireError(f"unsupported protocol version {data.get('v')!r}")
    try:
        message: Message = adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise WireError(f"{where}: {first['msg']}") from None
    if message.device_id != device_id:
        raise WireError(f"payload device {message.device_id!r} does not match topic {topic!r}")
    named = getattr(message, "clip_id", None)  # a clip's topics carry messages that name it
    if clip_id is not None and named != clip_id:
        raise WireError(f"payload clip {named!r} does not match topic {topic!r}")
    return message


def now() -> float:
    """Wall-clock seconds since the epoch, as carried in every ``ts`` field."""
    return time.time()


def home_assistant_node(device_id: str) -> str:
    """A device's one identifier in Home Assistant: its device, its discovery topic and the
    prefix of its entities' unique ids (``porch_front_door``)."""
    return f"porch_{device_id}".replace("-", "_")


HOME_ASSISTANT_IDENTITY = "porch-home-assistant"
"""The broker identity (certificate CN) of the home's Home Assistant: reads, never writes."""
HOME_ASSISTANT_FRESH_S = 30.0
"""A ring or motion start the hub hears later than this after it happened is late: it goes
to the timeline, marked so, but not to Home Assistant (whose automations would chime,
light up or speak for a visitor long gone)."""


def home_assistant_topics(device_id: str) -> dict[str, str]:
    """What the hub publishes for Home Assistant about one doorbell, by kind: discovery
    (retained), fresh rings, motion state (retained), the last ring's picture (retained,
    only when the owner opts in)."""
    base = f"{ROOT}/{device_id}/ha"
    return {
        "discovery": f"{HOME_ASSISTANT_PREFIX}/device/{home_assistant_node(device_id)}/config",
        "ring": f"{base}/ring",
        "motion": f"{base}/motion",
        "person": f"{base}/person",
        "problem": f"{base}/problem",
        "snapshot": f"{base}/snapshot",
    }


def home_assistant_discovery(
    device_id: str, name: str, software: str, snapshot: bool = False
) -> dict[str, Any]:
    """The device-based discovery config (Home Assistant 2024.11 or later) of one doorbell:
    an ``event`` entity (``device_class: doorbell``; rings and people), a motion and a person
    (``occupancy``) ``binary_sensor`` and, when
    ``snapshot``, an ``image`` of the last ring; available while the doorbell is online."""
    node = home_assistant_node(device_id)
    topics = home_assistant_topics(device_id)
    components: dict[str, dict[str, Any]] = {
        f"{node}_doorbell": {
            "platform": "event",
            "name": "Doorbell",
            "unique_id": f"{node}_doorbell",
            "device_class": "doorbell",
            "event_types": ["ring", "person"],
            "state_topic": topics["ring"],
        },
        f"{node}_motion": {
            "platform": "binary_sensor",
            "name": "Motion",
            "unique_id": f"{node}_motion",
            "device_class": "motion",
            "state_topic": topics["motion"],
            "payload_on": "ON",
            "payload_off": "OFF",
        },
    }
    components[f"{node}_person"] = {
        "platform": "binary_sensor",
        "name": "Person",
        "unique_id": f"{node}_person",
        "device_class": "occupancy",
        "state_topic": topics["person"],
        "payload_on": "ON",
        "payload_off": "OFF",
    }
    components[f"{node}_problem"] = {
        "platform": "binary_sensor",
        "name": "Problem",
        "unique_id": f"{node}_problem",
        "device_class": "problem",
        "entity_category": "diagnostic",
        "state_topic": topics["problem"],
    }
    if not snapshot:  # a picture announced before, removed (Home Assistant's way)
        components[f"{node}_snapshot"] = {"platform": "image"}
    else:
        components[f"{node}_snapshot"] = {
            "platform": "image",
            "name": "Last ring",
            "unique_id": f"{node}_snapshot",
            "image_topic": topics["snapshot"],
            "content_type": "image/jpeg",
        }
    return {
        "device": {
            "identifiers": [node],
            "name": name,
            "manufacturer": "Porch",
            "model": "Porch doorbell",
            "sw_version": software,
        },
        "origin": {"name": "Porch", "sw_version": software},
        "components": components,
        "availability": [
            {
                "topic": status_topic(device_id),
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "qos": 1,
    }
