"""Area requests: an agency asks every home in an area for footage, through a relay that
learns nothing, and each hub decides alone. The contract between the agency's tool
(``porch agency``), the relay (a plain MQTT broker) and hubs: topics, documents, signatures
and the geometry both sides compute the same way.

Topics: ``porch-area/v1/<cell>/<account>/<request id>``, one per coarse cell the area
touches (``account``: the agency's user name on the relay, whose ACL lets it write under
that name only, so one agency cannot overwrite another's requests) (a
geohash of :data:`CELL_PRECISION` characters, about 39 × 20 km at the equator, narrower
towards the poles), retained, with an MQTT 5 message expiry at the request's own expiry.
A hub subscribes to ``porch-area/v1/<its cell>/#`` and nothing else: the relay learns that
someone listens to a cell, never who or where in it.

Payload: a :class:`Envelope` (JSON): the document as a string, the agency's Ed25519
signature of its UTF-8 bytes, and the agency's certificate chain (its own first). The
document is an :class:`AreaRequest` or a :class:`Withdrawal`; a withdrawal replaces the
request's retained messages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from porch.core.wire import refuse_unprintable

VERSION: Final = 1
TOPIC_ROOT = "porch-area/v1"
CELL_PRECISION = 4
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_VERTICES = 256
MAX_CHAIN = 4
EARTH_RADIUS_M = 6_371_008.8
LegalBasis = Literal["voluntary", "warrant", "subpoena", "court_order"]
"""What a footage request rests on: an agency's area request, or a requester's own."""
LEGAL_BASES: tuple[LegalBasis, ...] = ("voluntary", "warrant", "subpoena", "court_order")
UPLOADS_PATH = "/v1/uploads"
"""The drop box's uploads, under the address a request gives (porch.hub.delivery)."""
OFFSET_HEADER = "Upload-Offset"
CHUNK_TYPE = "application/offset+octet-stream"
MAX_UPLOAD_BYTES = 4 * 1024**3
_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
_ID = r"^[0-9a-f]{32}$"


class AreaError(ValueError):
    """A document that is not a valid area request; ``str()`` says why."""


# -- cells --------------------------------------------------------------------------------


def _bits(precision: int) -> tuple[int, int]:
    """Bits of longitude and of latitude in a geohash of ``precision`` characters."""
    total = 5 * precision
    return (total + 1) // 2, total // 2


def _cell_of_index(ix: int, iy: int, precision: int) -> str:
    lon_bits, lat_bits = _bits(precision)
    value = 0
    for bit in range(5 * precision):  # even bits longitude, odd bits latitude, MSB first
        if bit % 2 == 0:
            lon_bits -= 1
            value = value << 1 | (ix >> lon_bits) & 1
        else:
            lat_bits -= 1
            value = value << 1 | (iy >> lat_bits) & 1
    return "".join(_BASE32[value >> 5 * (precision - 1 - i) & 31] for i in range(precision))


def _index(lat: float, lon: float, precision: int) -> tuple[int, int]:
    lon_bits, lat_bits = _bits(precision)
    ix = min(int((lon + 180) / 360 * (1 << lon_bits)), (1 << lon_bits) - 1)
    iy = min(int((lat + 90) / 180 * (1 << lat_bits)), (1 << lat_bits) - 1)
    return ix, iy


def cell(lat: float, lon: float, precision: int = CELL_PRECISION) -> str:
    """The geohash cell of a point."""
    return _cell_of_index(*_index(lat, lon, precision), precision)


def cells_covering(ring: list[tuple[float, float]], precision: int = CELL_PRECISION) -> list[str]:
    """Every cell that the bounding box of ``ring`` ((lon, lat) points) touches: the cells
    a request must be published in so that every hub inside the area hears it."""
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    x0, y0 = _index(min(lats), min(lons), precision)
    x1, y1 = _index(max(lats), max(lons), precision)
    return sorted(_cell_of_index(x, y, precision) for x in range(x0, x1 + 1)
                  for y in range(y0, y1 + 1))  # fmt: skip


ACCOUNT_PATTERN = r"[a-z0-9][a-z0-9-]{0,31}"


def request_topic(cell_name: str, account: str, request_id: str) -> str:
    return f"{TOPIC_ROOT}/{cell_name}/{account}/{request_id}"


def cell_subscription(cell_name: str) -> str:
    return f"{TOPIC_ROOT}/{cell_name}/#"


def parse_topic(topic: str) -> tuple[str, str, str]:
    """(cell, relay account, request id) of a relay topic; AreaError for anything else. The
    relay lets each agency account publish only under its own name, so the account is
    who published."""
    match = re.fullmatch(
        rf"{re.escape(TOPIC_ROOT)}/([{_BASE32}]{{1,12}})/({ACCOUNT_PATTERN})/([0-9a-f]{{32}})",
        topic,
    )
    if match is None:
        raise AreaError(f"not an area request topic: {topic[:120]!r}")
    return match[1], match[2], match[3]


# -- geometry -----------------------------------------------------------------------------


class Shape:
    """A polygon in metres on a plane tangent at its own centre (an equirectangular view:
    for areas of a few km, off by well under 1 %)."""

    def __init__(self, ring: list[tuple[float, float]]):
        points = list(ring)
        if len(points) > 1 and points[0] == points[-1]:
            points = points[:-1]
        if not 3 <= len(points) <= MAX_VERTICES:
            raise AreaError(f"an area needs 3 to {MAX_VERTICES} corners")
        for lon, lat in points:
            if not (-180 <= lon <= 180 and -85 <= lat <= 85):
                raise AreaError("a corner lies outside the map (longitude, latitude)")
        lons = [p[0] for p in points]
        if max(lons) - min(lons) > 10:
            raise AreaError("an area may not span more than 10 degrees of longitude")
        self.lat0 = (min(p[1] for p in points) + max(p[1] for p in points)) / 2
        self.lon0 = (min(lons) + max(lons)) / 2
        self.points = [self.project(lat, lon) for lon, lat in points]

    def project(self, lat: float, lon: float) -> tuple[float, float]:
        """(x, y) in metres east and north of the shape's centre."""
        x = math.radians(lon - self.lon0) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0))
        return x, math.radians(lat - self.lat0) * EARTH_RADIUS_M

    def edges(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        return list(zip(self.points, [*self.points[1:], self.points[0]], strict=True))

    def area_m2(self) -> float:
        return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in self.edges())) / 2

    def perimeter_m(self) -> float:
        return sum(math.dist(a, b) for a, b in self.edges())

    def compactness(self) -> float:
        """4πA/P²: 1 for a circle, 0.79 a square, 0.14 a 20:1 strip, near 0 a street."""
        perimeter = self.perimeter_m()
        return 4 * math.pi * self.area_m2() / perimeter**2 if perimeter else 0.0

    def simple(self) -> bool:
        """No corner twice, and no two edges that meet anywhere but at the corner they
        share: a bow tie, or a ring traced twice, could count a large area while matching
        a small one."""
        if len(set(self.points)) != len(self.points):
            return False
        edges = self.edges()
        for i, (a, b) in enumerate(edges):
            for j in range(i + 1, len(edges)):
                c, d = edges[j]
                if j == i + 1 or (i == 0 and j == len(edges) - 1):
                    # neighbours share a corner; they may not fold back over each other
                    if _cross(a, b, d if j == i + 1 else c) == 0 and _overlap(a, b, c, d):
                        return False
                    continue
                if _touch(a, b, c, d):
                    return False
        return True

    def contains(self, lat: float, lon: float) -> bool:
        x, y = self.project(lat, lon)
        inside = False
        for (x1, y1), (x2, y2) in self.edges():
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def distance_m(self, lat: float, lon: float) -> float:
        """How far a point lies from the area: 0 inside, else to its nearest edge."""
        if self.contains(lat, lon):
            return 0.0
        p = self.project(lat, lon)
        return min(_to_segment(p, a, b) for a, b in self.edges())


_Point = Sequence[float]
"""(x, y) in metres, or a GeoJSON corner."""


def _cross(o: _Point, a: _Point, b: _Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on(p: _Point, a: _Point, b: _Point) -> bool:
    """``p`` lies on segment ``a``-``b`` (given it is on their line)."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _touch(a: _Point, b: _Point, c: _Point, d: _Point) -> bool:
    """Segments a-b and c-d meet at all (crossing, touching or overlapping)."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return (
        (d1 == 0 and _on(a, c, d)) or (d2 == 0 and _on(b, c, d))
        or (d3 == 0 and _on(c, a, b)) or (d4 == 0 and _on(d, a, b))
    )  # fmt: skip


def _overlap(a: _Point, b: _Point, c: _Point, d: _Point) -> bool:
    """Two collinear neighbouring edges run back over each other (more than their corner)."""
    shared = b if b in (c, d) else a
    far1 = a if shared == b else b
    far2 = d if shared == c else c
    along = (far1[0] - shared[0]) * (far2[0] - shared[0]) + (far1[1] - shared[1]) * (
        far2[1] - shared[1]
    )
    return along > 0


def _to_segment(p: _Point, a: _Point, b: _Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = dx * dx + dy * dy
    t = (
        0.0
        if length == 0
        else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length))
    )
    return math.dist(p, (a[0] + t * dx, a[1] + t * dy))


def circle(lat: float, lon: float, radius_m: float, corners: int = 64) -> list[list[float]]:
    """A circle as a closed GeoJSON ring of ``corners`` corners ((lon, lat) pairs)."""
    ring = []
    for k in range(corners):
        angle = 2 * math.pi * k / corners
        dlat = math.degrees(radius_m * math.cos(angle) / EARTH_RADIUS_M)
        dlon = math.degrees(
            radius_m * math.sin(angle) / EARTH_RADIUS_M / math.cos(math.radians(lat))
        )
        ring.append([round(lon + dlon, 7), round(lat + dlat, 7)])
    return [*ring, ring[0]]


def legal_basis(text: str) -> LegalBasis | None:
    """``text`` as one of :data:`LEGAL_BASES`, or None when it is none of them."""
    return next((basis for basis in LEGAL_BASES if basis == text), None)


# -- documents ----------------------------------------------------------------------------


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _printable(cls, data: Any) -> Any:
        refuse_unprintable(data, "document", lines=True)  # a reason may run over lines
        return data

    v: Literal[1] = VERSION
    request_id: str = Field(pattern=_ID)
    agency: str = Field(min_length=1, max_length=64, description="as its certificate's CN")
    issued_at: float
    expires: float


class Polygon(BaseModel):
    """A GeoJSON Polygon (one outer ring of [longitude, latitude] pairs)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[Annotated[list[float], Field(min_length=2, max_length=2)]]] = Field(
        min_length=1, max_length=1
    )

    def shape(self) -> Shape:
        return Shape([(p[0], p[1]) for p in self.coordinates[0]])

    @property
    def ring(self) -> list[tuple[float, float]]:
        return [(p[0], p[1]) for p in self.coordinates[0]]


class AreaRequest(_Document):
    """What an agency asks: footage of ``start_ts``..``end_ts`` from homes inside ``area``."""

    kind: Literal["request"] = "request"
    area: Polygon
    start_ts: float
    end_ts: float
    case_reference: str = Field(min_length=1, max_length=200)
    legal_basis: LegalBasis
    legal_reference: str = Field("", max_length=200)
    reason: str = Field(min_length=1, max_length=4000)
    contact: str = Field(min_length=1, max_length=200)
    officer: str = Field(min_length=1, max_length=200, description="who asks, by name")
    dropbox: str = Field(pattern=r"^https?://[^\s]{1,500}$")
    encryption_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="X25519, raw, hex")

    @model_validator(mode="after")
    def _coherent(self) -> AreaRequest:
        if not self.start_ts < self.end_ts:
            raise ValueError("the window must end after it starts")
        if not self.issued_at < self.expires:
            raise ValueError("the request must expire after it was issued")
        return self


class Withdrawal(_Document):
    """The agency takes a request back; hubs drop it (retained in its place until expiry)."""

    kind: Literal["withdrawal"] = "withdrawal"


Document = AreaRequest | Withdrawal


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    document: str = Field(max_length=MAX_PAYLOAD_BYTES)
    signature: str = Field(pattern=r"^[0-9a-f]{128}$")
    certificates: list[str] = Field(min_length=1, max_length=MAX_CHAIN)


def sign(document: Document, key: ed25519.Ed25519PrivateKey, chain: list[bytes]) -> bytes:
    """The relay payload for ``document``: signed by ``key``, whose certificate (PEM) comes
    first in ``chain``."""
    text = document.model_dump_json()
    envelope = Envelope(document=text, signature=key.sign(text.encode()).hex(),
                        certificates=[c.decode() for c in chain])  # fmt: skip
    return envelope.model_dump_json().encode()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of a certificate's DER, hex: what an owner compares with the agency's."""
    return cert.fingerprint(hashes.SHA256()).hex()


def open_envelope(payload: bytes) -> tuple[Document, list[x509.Certificate]]:
    """The document and the certificate chain of a relay payload, its signature checked
    against the first certificate's key. Whether that agency is trusted is the caller's
    to decide. AreaError says what is wrong."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise AreaError(f"larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        envelope = Envelope.model_validate_json(payload)
        chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in envelope.certificates]
    except (ValidationError, ValueError) as exc:
        raise AreaError(f"not a signed area document ({_first(exc)})") from None
    key = chain[0].public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise AreaError("the agency's certificate does not hold an Ed25519 key")
    try:
        key.verify(bytes.fromhex(envelope.signature), envelope.document.encode())
    except InvalidSignature:
        raise AreaError("the signature does not match the document: altered") from None
    try:
        data = json.loads(envelope.document)
        kind = data.get("kind") if isinstance(data, dict) else None
        model = Withdrawal if kind == "withdrawal" else AreaRequest
        return model.model_validate(data), chain
    except (ValidationError, ValueError) as exc:
        raise AreaError(f"not an area document ({_first(exc)})") from None


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "document"
        return f"{where}: {error['msg']}"
    return str(exc)[:200]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
