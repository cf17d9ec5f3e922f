"""Area requests on the hub: one anonymous, read-only subscription to the relay's cell of the
home, every document checked here, and a match handed to the same consent code as any
request. Nothing goes out but that subscription until the owner approves; then the bundle,
sealed to the agency's key, goes to its drop box (:mod:`porch.hub.delivery`).

What is checked, in order (the first failure is the reason recorded in ``area_log``, and
the owner never sees the request): the envelope's signature; that it is not a replay (the
same request id again, as it was) nor altered (the same id, other content); the agency (its
key trusted: certified by a regional CA the owner imported or accepted by the owner, bound
to its relay account; or not yet trusted, and then under no trusted agency's name or a
look-alike of one: :mod:`porch.hub.agencies`); the expiry; the window (at most
``max_window_h``, and not in the future); the area (a simple polygon, between
``min_area_km2`` and ``max_area_km2``, compact enough); the drop box's address; whether the
home lies inside the area; and last the budgets (per agency key, per relay account, and
for keys not yet trusted a small one of their own, so that they cannot crowd out trusted
agencies). Only a request that passes all of it becomes a request under **Requests**,
marked when its agency is not trusted yet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from porch.core.area import (
    AreaError,
    AreaRequest,
    Polygon,
    Withdrawal,
    cell,
    cell_subscription,
    fingerprint,
    open_envelope,
    parse_topic,
)
from porch.core.config import AreaSettings
from porch.core.mqtt_client import connect, make_client
from porch.hub.agencies import TrustedAgencies, name_skeleton, printable
from porch.hub.consent import Consent, ConsentError, FootageRequest
from porch.hub.outbound import OutboundRefused, parse_target

log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS area_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    enabled INTEGER NOT NULL DEFAULT 0,
    latitude REAL,
    longitude REAL
);
CREATE TABLE IF NOT EXISTS area_authorities (
    fingerprint TEXT PRIMARY KEY,    -- a regional CA the owner imported
    name TEXT NOT NULL,
    pem TEXT NOT NULL,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS area_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    request_id TEXT NOT NULL,
    agency TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL,           -- matched | outside | refused | conflict | withdrawn
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS area_log_request ON area_log (request_id);
"""
SKEW_S = 300.0
"""Clocks may disagree this much: a window may end this far 'in the future'."""
OPEN_PER_KEY = 20
"""Pending area requests one agency key may have on a hub: a flood stops there."""
OPEN_PER_ACCOUNT = 20
"""Pending area requests through one relay account, whatever keys signed them."""
OPEN_AREA_REQUESTS = 50
"""Pending area requests of trusted agencies together (each holds clips against retention)."""
OPEN_UNTRUSTED = 10
"""Pending area requests of keys the owner has not trusted (yet), all together: listed
apart, and never counted against the trusted agencies' budget."""
OPEN_UNTRUSTED_PER_ACCOUNT = 3
"""Of those, through one relay account: sixty made-up agencies on one account get three."""
LOG_ROWS = 5000
"""Documents heard that the log keeps (the newest)."""
CONFLICTS_KEPT = 200
"""Conflicts the log keeps apart from that (the newest), for the Area page."""


@dataclass(frozen=True)
class Home:
    enabled: bool
    latitude: float | None
    longitude: float | None

    @property
    def cell(self) -> str | None:
        if self.latitude is None or self.longitude is None:
            return None
        return cell(self.latitude, self.longitude)


class AreaStore:
    """The owner's choices (on, the home's location, trusted authorities) and the log of
    every document heard, on one connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.conn.executescript(SCHEMA)
        self.trusted = TrustedAgencies(conn)
        self._lock = threading.Lock()

    def home(self) -> Home:
        row = self.conn.execute(
            "SELECT enabled, latitude, longitude FROM area_settings WHERE id = 1"
        ).fetchone()
        return Home(bool(row[0]), row[1], row[2]) if row else Home(False, None, None)

    def set_home(self, enabled: bool, latitude: float | None, longitude: float | None) -> None:
        if enabled and (latitude is None or longitude is None):
            raise ConsentError("set the home's location first: area requests are matched to it")
        if latitude is not None and not -85 <= latitude <= 85:
            raise ConsentError("the latitude must lie between -85 and 85 degrees")
        if longitude is not None and not -180 <= longitude <= 180:
            raise ConsentError("the longitude must lie between -180 and 180 degrees")
        with self.conn:
            self.conn.execute(
                "INSERT INTO area_settings (id, enabled, latitude, longitude) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled,"
                " latitude = excluded.latitude, longitude = excluded.longitude",
                (int(enabled), latitude, longitude),
            )

    def agencies(self) -> list[dict]:
        """The agencies whose keys the owner trusts (not those certified by an authority)."""
        return self.trusted.all()

    def forget_agency(self, fp: str) -> None:
        self.trusted.forget(fp)

    def trust_request(self, request: FootageRequest, owner: str) -> None:
        """The owner accepts the key of the agency that made this matched area request."""
        origin = request.origin
        if not request.from_area or self.is_trusted(origin):
            return
        self.trusted.trust(origin["agency"], origin["agency_fingerprint"],
                           origin.get("relay_account", ""), owner)  # fmt: skip

    def may_trust(self, request: FootageRequest) -> None:
        """:class:`ConsentError` if the owner could not trust this request's agency key."""
        if request.from_area and not self.is_trusted(request.origin):
            self.trusted.check(request.origin["agency"], request.origin["agency_fingerprint"])

    def is_trusted(self, origin: dict) -> bool:
        """Whether the agency of a filed area request is trusted now (accepted by the owner,
        or certified by an authority the owner still trusts)."""
        return self.trusted.by_key(origin.get("agency_fingerprint", "")) is not None

    def conflicts(self, limit: int = 20) -> list[dict]:
        """Requests refused because an untrusted key used a trusted agency's name."""
        rows = self.conn.execute(
            "SELECT at, request_id, agency, outcome, reason FROM area_log"
            " WHERE outcome = 'conflict' ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("at", "request_id", "agency", "outcome", "reason")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def authorities(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT fingerprint, name, pem, added_at FROM area_authorities ORDER BY name"
        ).fetchall()
        keys = ("fingerprint", "name", "pem", "added_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def add_authority(self, pem: str) -> dict:
        try:
            cert = x509.load_pem_x509_certificate(pem.strip().encode())
        except ValueError:
            raise ConsentError("not a PEM certificate") from None
        if pem.count("BEGIN CERTIFICATE") != 1:
            raise ConsentError("one certificate at a time: the regional authority's own")
        basic = _basic_constraints(cert)
        if basic is None or not basic.ca:
            raise ConsentError("that certificate is not a certificate authority's")
        name = _common_name(cert)
        found = {"fingerprint": fingerprint(cert), "name": name, "pem": pem.strip()}
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO area_authorities (fingerprint, name, pem, added_at)"
                " VALUES (?, ?, ?, ?)",
                (found["fingerprint"], name, found["pem"], time.time()),
            )
        return found

    def remove_authority(self, fp: str) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM area_authorities WHERE fingerprint = ?", (fp,))
        self.trusted.forget_certified_by(fp)

    def log(self, limit: int = 50) -> list[dict]:
        rows = self.conn.execute(
            "SELECT at, request_id, agency, outcome, reason FROM area_log"
            " ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("at", "request_id", "agency", "outcome", "reason")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def seen(self, request_id: str) -> list[tuple[str, str]]:
        """(document SHA-256, outcome) of what was heard before under this request id."""
        return self.conn.execute(
            "SELECT document_sha256, outcome FROM area_log WHERE request_id = ?", (request_id,)
        ).fetchall()

    def record(self, request_id: str, agency: str, digest: str, outcome: str, reason: str):
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO area_log (at, request_id, agency, document_sha256, outcome, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), request_id, agency[:200], digest, outcome, reason[:500]),
            )
            seq = cursor.lastrowid or 0
            if seq % 100 == 0:  # now and then: the newest LOG_ROWS stay, and conflicts
                self.conn.execute(
                    "DELETE FROM area_log WHERE seq <= ?"
                    " AND outcome NOT IN ('matched', 'conflict')",
                    (seq - LOG_ROWS,),
                )
                self.conn.execute(
                    "DELETE FROM area_log WHERE outcome = 'conflict' AND seq NOT IN"
                    " (SELECT seq FROM area_log WHERE outcome = 'conflict' ORDER BY seq DESC"
                    "  LIMIT ?)",
                    (CONFLICTS_KEPT,),
                )


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else "(no name)"


class Refused(Exception):
    """A document the owner will not see; ``str()`` is the reason recorded."""


class Conflict(Refused):
    """A key the owner has not trusted, under a trusted agency's name or a look-alike:
    refused, and shown to the owner as a conflict to resolve."""


class AreaRequests:
    """Checks what the relay brings and files what matches (one thread at a time: paho's)."""

    def __init__(
        self,
        store: AreaStore,
        consent: Consent,
        settings: AreaSettings,
        devices: Callable[[], list[str]],
        on_request: Callable[[dict], None] | None = None,
    ):
        self.store = store
        self.consent = consent
        self.settings = settings
        self.devices = devices
        self.on_request = on_request

    def handle(
        self, topic: str, payload: bytes, retained: bool = False, now: float | None = None
    ) -> str:
        """Check one relay message; returns the outcome recorded, or 'ignored' for the
        relay's stored copy of a document heard before (``retained``: it came from the
        relay's store when the hub subscribed, not as a new publication)."""
        now = time.time() if now is None else now
        if not payload:
            return "ignored"  # a retained message cleared
        digest = hashlib.sha256(payload).hexdigest()
        request_id, agency = "-" * 32, "?"
        try:
            _, account, request_id = parse_topic(topic)
            document, chain = open_envelope(payload)
            agency = document.agency
            if document.request_id != request_id:
                raise Refused("the document names another request than its topic")
            earlier = self.store.seen(request_id)
            if any(d == digest for d, _ in earlier):
                if retained:
                    return "ignored"  # the relay's copy, again after a reconnection
                raise Refused("replayed: this very document was heard before")
            if not printable(document.agency):
                raise Refused("the agency's name holds invisible or control characters")
            trust = self._trust(document, chain, account, now)
            if isinstance(document, Withdrawal):
                return self._withdraw(document, chain, digest)
            if any(outcome != "withdrawn" for _, outcome in earlier):
                raise Refused("another document under a request id already heard: altered")
            if any(outcome == "withdrawn" for _, outcome in earlier):
                raise Refused("withdrawn by the agency")
            return self._check_and_file(document, chain, digest, now, trust, account)
        except AreaError as exc:
            return self._refuse(request_id, agency, digest, str(exc))
        except Conflict as exc:
            return self._refuse(request_id, agency, digest, str(exc), "conflict")
        except Refused as exc:
            return self._refuse(request_id, agency, digest, str(exc))

    def _refuse(
        self, request_id: str, agency: str, digest: str, reason: str, outcome: str = "refused"
    ) -> str:
        log.warning("area request %s from %r %s: %s", request_id, agency[:80], outcome, reason)
        self.store.record(request_id, agency, digest, outcome, reason)
        return outcome

    def _trust(self, document, chain: list[x509.Certificate], account: str, now: float) -> str:
        """How the agency's key is trusted: ``authority`` (issued by a regional CA the
        owner imported), ``trusted`` (accepted by the owner, and published through the relay
        account it came through then) or ``untrusted`` (the owner decides on the request's
        page). :class:`Conflict` for an untrusted key under a trusted agency's name or a
        look-alike of it."""
        agency_cert = chain[0]
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        if not agency_cert.not_valid_before_utc <= moment <= agency_cert.not_valid_after_utc:
            raise Refused("the agency's certificate is not valid now")
        for authority in self.store.authorities():
            ca = x509.load_pem_x509_certificate(authority["pem"].encode())
            try:
                agency_cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if _common_name(agency_cert) != document.agency:
                raise Refused("the agency's name is not the one its certificate gives")
            self.store.trusted.certified(document.agency, fingerprint(agency_cert), account,
                                         authority["fingerprint"])  # fmt: skip
            return "authority"
        fp = fingerprint(agency_cert)
        known = self.store.trusted.by_key(fp)
        if known is not None:
            if name_skeleton(known["name"]) != name_skeleton(document.agency):
                raise Refused(f"a key you trust as {known['name']!r} signs as another agency")
            if known["relay_account"] and known["relay_account"] != account:
                raise Refused(
                    f"published through relay account {account!r}, not the agency's"
                    f" ({known['relay_account']!r})"
                )
            return "trusted"
        for other in self.store.trusted.named_like(document.agency):
            raise Conflict(
                f"a key you have not trusted ({fp[:16]}…) claims the name of"
                f" {other['name']!r}, which you trust under {other['fingerprint'][:16]}…"
            )
        return "untrusted"

    def _check_and_file(
        self, request: AreaRequest, chain, digest: str, now: float, trust: str, account: str
    ) -> str:
        limits = self.settings
        if request.expires <= now:
            raise Refused("expired")
        if request.expires - request.issued_at > limits.max_expiry_days * 86400:
            raise Refused(f"lapses later than {limits.max_expiry_days:g} days after issue")
        if request.issued_at > now + SKEW_S:
            raise Refused("issued in the future")
        if request.end_ts - request.start_ts > limits.max_window_h * 3600:
            raise Refused(f"the window is longer than {limits.max_window_h:g} h")
        if request.end_ts > now + SKEW_S or request.start_ts > now:
            raise Refused("the window lies in the future: only footage that exists is asked for")
        shape = request.area.shape()
        if not shape.simple():
            raise Refused("the area's edges meet or cross, or a corner comes twice")
        size_km2 = shape.area_m2() / 1e6
        if size_km2 < limits.min_area_km2:
            raise Refused(f"the area ({size_km2:.4f} km²) is under {limits.min_area_km2:g} km²")
        if size_km2 > limits.max_area_km2:
            raise Refused(f"the area ({size_km2:.1f} km²) is over {limits.max_area_km2:g} km²")
        if shape.compactness() < limits.min_compactness:
            raise Refused(
                f"the area is a strip (compactness {shape.compactness():.2f} <"
                f" {limits.min_compactness:g}): it could single out a street"
            )
        self._check_dropbox(request.dropbox)
        home = self.store.home()
        if not home.enabled or home.latitude is None or home.longitude is None:
            raise Refused("area requests are off on this hub")
        if not shape.contains(home.latitude, home.longitude):
            self.store.record(request.request_id, request.agency, digest, "outside", "")
            return "outside"
        fp = fingerprint(chain[0])
        self._within_budget(fp, account, trust)
        devices = self.devices()
        if not devices:
            self.store.record(request.request_id, request.agency, digest, "outside",
                              "no doorbell")  # fmt: skip
            return "outside"
        origin = {
            "kind": "area",
            "area_request_id": request.request_id,
            "agency": request.agency,
            "agency_fingerprint": fingerprint(chain[0]),
            "case_reference": request.case_reference,
            "area": request.area.model_dump(),
            "area_km2": round(size_km2, 4),
            "dropbox": request.dropbox,
            "encryption_key": request.encryption_key,
            "issued_at": request.issued_at,
            "trust": trust,
            "relay_account": account,
        }
        reason = f"{request.reason}\n(case {request.case_reference})"
        days = min(90.0, (request.expires - now) / 86400)
        try:
            filed = self.consent.file(
                f"agency:{fingerprint(chain[0])[:16]}", request.officer, request.agency,
                request.contact, reason, request.legal_basis,
                request.legal_reference or request.case_reference, devices,
                request.start_ts, request.end_ts, days, origin=origin,
            )  # fmt: skip
        except ConsentError as exc:
            raise Refused(str(exc)) from None
        self.store.record(request.request_id, request.agency, digest, "matched",
                          filed.request_id)  # fmt: skip
        log.info("area request %s from %r matches this home: request %s",
                 request.request_id, request.agency, filed.request_id)  # fmt: skip
        if self.on_request is not None:
            self.on_request({"request_id": filed.request_id, "organisation": request.agency})
        return "matched"

    def _within_budget(self, fp: str, account: str, trust: str) -> None:
        """Refused when the key, its relay account or (for a key not trusted yet) the
        untrusted ones together already have as many requests pending as they may."""
        pending = [r.origin for r in self.consent.all() if r.status == "pending" and r.from_area]
        mine = sum(1 for o in pending if o.get("agency_fingerprint") == fp)
        if mine >= OPEN_PER_KEY:
            raise Refused(f"the agency has {mine} requests open here already")
        through = [o for o in pending if o.get("relay_account") == account]
        if len(through) >= OPEN_PER_ACCOUNT:
            raise Refused(f"relay account {account!r} has {len(through)} requests open here")
        if trust == "untrusted":
            untrusted = [o for o in pending if not self.store.is_trusted(o)]
            if sum(1 for o in untrusted if o.get("relay_account") == account) >= (
                OPEN_UNTRUSTED_PER_ACCOUNT
            ):
                raise Refused(f"relay account {account!r} has enough requests from keys you"
                              " have not trusted open here")  # fmt: skip
            if len(untrusted) >= OPEN_UNTRUSTED:
                raise Refused(f"{len(untrusted)} requests from keys you have not trusted are"
                              " open here already")  # fmt: skip
        elif sum(1 for o in pending if self.store.is_trusted(o)) >= OPEN_AREA_REQUESTS:
            raise Refused(f"{OPEN_AREA_REQUESTS} area requests are open here already")

    def _check_dropbox(self, url: str) -> None:
        reason = dropbox_refusal(url, self.settings.allow_http_dropbox)
        if reason:
            raise Refused(reason)

    def _withdraw(self, withdrawal: Withdrawal, chain, digest: str) -> str:
        """Only the agency that made a request may withdraw it: the same key."""
        matched = self.store.conn.execute(
            "SELECT reason FROM area_log WHERE request_id = ? AND outcome = 'matched'",
            (withdrawal.request_id,),
        ).fetchone()
        if matched is not None:
            request = self.consent.get(matched[0])
            if request is None or request.origin.get("agency_fingerprint") != fingerprint(chain[0]):
                raise Refused("a withdrawal signed by another key than the request's")
            self.consent.withdraw(matched[0], f"agency:{withdrawal.agency[:60]}")
        elif self.store.trusted.by_key(fingerprint(chain[0])) is None:
            # Of a request not matched here, only a trusted key's withdrawal is recorded: a
            # squatter could otherwise withdraw a genuine request's id before this hub heard it
            raise Refused("a withdrawal, by a key not trusted here, of a request not heard here")
        self.store.record(withdrawal.request_id, withdrawal.agency, digest, "withdrawn", "")
        log.info("area request %s withdrawn by %r", withdrawal.request_id, withdrawal.agency)
        return "withdrawn"


def dropbox_refusal(url: str, allow_loopback_http: bool) -> str:
    """Why the hub will not send a bundle to ``url`` ('' when it will): only https://, and
    only to a public address (:mod:`porch.hub.outbound`), so that an agency cannot make the
    hub post into the home's own network (its router, its printer). The name is resolved
    at delivery, when the connection is made. Tests may allow http:// on 127.0.0.1."""
    try:
        parse_target(url, "the drop box", allow_loopback_http=allow_loopback_http)
    except OutboundRefused as exc:
        return str(exc)
    return ""


class AreaListener:
    """The hub's one connection to the relay: anonymous (no user name, a client id the
    broker picks, no will, no session), subscribed to the home's cell, reading only."""

    def __init__(self, requests: AreaRequests, settings: AreaSettings):
        self.requests = requests
        self.settings = settings
        self.subscribed = threading.Event()
        self.handled = 0
        self._cell: str | None = None
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """(Re)connect or stop after the owner turned area requests on or off or moved."""
        home = self.requests.store.home()
        wanted = home.cell if home.enabled and self.settings.relay.host else None
        with self._lock:
            if wanted == self._cell:
                return
            self._stop()
            self._cell = wanted
            if wanted is None:
                return
            client = make_client("", self.settings.relay)
            if self.settings.relay_tls and not self.settings.relay_tls_ca:
                client.tls_set()  # the system's trusted CAs
            client.on_connect = self._on_connect
            client.on_connect_fail = lambda c, u: log.warning(
                "cannot reach the area relay %s:%d", self.settings.relay_host,
                self.settings.relay_port)  # fmt: skip
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
            self._client = client
            connect(client, self.settings.relay)
        log.info("area requests: listening to the relay's cell %s", wanted)

    def stop(self) -> None:
        with self._lock:
            self._stop()
            self._cell = None

    def _stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.subscribed.clear()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("the area relay refused the hub: %s", reason_code)
            return
        if self._cell is not None:
            # QoS 0: no acknowledgement whose timing could tell the relay which hub matched
            # (requests are retained: one lost on a dropped connection comes again).
            client.subscribe(cell_subscription(self._cell), qos=0)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not code.is_failure for code in reason_codes):
            self.subscribed.set()

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            self.requests.handle(msg.topic, bytes(msg.payload), retained=bool(msg.retain))
        except Exception:  # a bug must cost one document, never the listener
            log.exception("area request on %r could not be handled", msg.topic[:120])
        self.handled += 1


def area_summary(origin: dict, home: Home) -> dict | None:
    """What the owner is shown of an area: its size, how far it reaches from the home, and
    an SVG path of it in metres around the home (no map tiles: nothing is fetched)."""
    if home.latitude is None or home.longitude is None:
        return None
    polygon = Polygon.model_validate(origin["area"])
    shape = polygon.shape()
    here = shape.project(home.latitude, home.longitude)
    points = [(x - here[0], here[1] - y) for x, y in shape.points]  # y down, home at 0,0
    reach = max(max(abs(x), abs(y)) for x, y in points) or 1.0
    scale = 90 / reach
    path = "M " + " L ".join(f"{x * scale:.1f} {y * scale:.1f}" for x, y in points) + " Z"
    return {
        "km2": shape.area_m2() / 1e6,
        "distance_m": shape.distance_m(home.latitude, home.longitude),
        "reach_m": max(math.hypot(x, y) for x, y in points),
        "path": path,
        "bar_m": _round_bar(reach / 2),
        "bar_px": _round_bar(reach / 2) * scale,
    }


def _round_bar(metres: float) -> int:
    """A scale bar's length: 1, 2 or 5 times a power of ten, at most ``metres``."""
    power = 1
    while power * 10 <= metres:
        power *= 10
    return max(1, next(step * power for step in (5, 2, 1) if step * power <= max(metres, 1)))
