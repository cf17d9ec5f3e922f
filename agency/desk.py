"""The agency's desk: the requests it drafts, signs and publishes on the relay (one retained
message per cell its area touches, expiring with the request), withdraws, and what its drop
box received for each (the only thing it can know: how many bundles, never who was asked
or who declined)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from porch.agency.identity import Agency
from porch.core.area import (
    AreaRequest,
    LegalBasis,
    Polygon,
    Withdrawal,
    cells_covering,
    request_topic,
    sign,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    issued_at REAL NOT NULL,
    expires REAL NOT NULL,
    document TEXT NOT NULL,        -- the signed request (JSON)
    cells TEXT NOT NULL,           -- JSON list: where it was published
    withdrawn REAL
);
CREATE TABLE IF NOT EXISTS received (
    upload_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,          -- of the sealed upload
    received INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL,
    bundle TEXT,                   -- where the opened bundle lies
    verified TEXT,                 -- what the check said (JSON), or the reason it failed
    home_ca TEXT                   -- the fingerprint of the home CA the bundle carries
);
"""
PUBLISH_TIMEOUT_S = 30.0


class DeskError(Exception):
    """A request that cannot be made or sent; ``str()`` says why."""


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    account: str
    password: str
    tls_ca: str = ""


class Desk:
    def __init__(self, agency: Agency):
        self.agency = agency
        self.conn = sqlite3.connect(agency.root / "agency.sqlite", check_same_thread=False)
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    def draft(
        self,
        area: list[list[float]],
        start_ts: float,
        end_ts: float,
        case_reference: str,
        legal_basis: LegalBasis,
        reason: str,
        officer: str,
        contact: str,
        legal_reference: str = "",
        expires_h: float = 72,
    ) -> AreaRequest:
        settings = self.agency.settings
        now = time.time()
        try:
            return AreaRequest(
                request_id=uuid.uuid4().hex, agency=self.agency.name, issued_at=now,
                expires=now + expires_h * 3600, area=Polygon(coordinates=[area]),
                start_ts=start_ts, end_ts=end_ts, case_reference=case_reference,
                legal_basis=legal_basis, legal_reference=legal_reference, reason=reason,
                contact=contact, officer=officer, dropbox=settings["dropbox"],
                encryption_key=self.agency.encrypt_key().public_key().public_bytes_raw().hex(),
            )  # fmt: skip
        except ValueError as exc:
            raise DeskError(f"the request is not valid: {exc}") from None

    @staticmethod
    def precheck(request: AreaRequest) -> list[str]:
        """What hubs would refuse the request for, under their default limits (the agency
        would otherwise hear nothing back: a refusal looks like everyone declining)."""
        from porch.core.config import AreaSettings

        limits, problems = AreaSettings(), []
        shape = request.area.shape()
        km2 = shape.area_m2() / 1e6
        if not limits.min_area_km2 <= km2 <= limits.max_area_km2:
            problems.append(f"the area is {km2:.3f} km²; hubs take {limits.min_area_km2:g} to"
                            f" {limits.max_area_km2:g} km²")  # fmt: skip
        if not shape.simple():
            problems.append("the area's edges meet or cross")
        if shape.compactness() < limits.min_compactness:
            problems.append(f"the area is a strip (compactness {shape.compactness():.2f})")
        if request.end_ts - request.start_ts > limits.max_window_h * 3600:
            problems.append(f"the window is longer than {limits.max_window_h:g} h")
        if request.start_ts > time.time() or request.end_ts > time.time() + 300:
            problems.append("the window lies in the future")
        if request.expires - request.issued_at > limits.max_expiry_days * 86400:
            problems.append(f"it lapses more than {limits.max_expiry_days:g} days after issue")
        if not request.dropbox.startswith("https://"):
            problems.append("the drop box is not an https:// address")
        return problems

    def publish(self, request: AreaRequest, relay: Relay) -> list[str]:
        """Sign and publish a request in every cell its area touches; returns the cells."""
        cells = cells_covering(request.area.ring)
        payload = sign(request, self.agency.sign_key(), self.agency.chain())
        _publish(relay, [(request_topic(c, relay.account, request.request_id), payload)
                         for c in cells], request.expires)  # fmt: skip
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO requests (request_id, issued_at, expires, document, cells)"
                " VALUES (?, ?, ?, ?, ?)",
                (request.request_id, request.issued_at, request.expires,
                 request.model_dump_json(), json.dumps(cells)),
            )  # fmt: skip
        return cells

    def withdraw(self, request_id: str, relay: Relay) -> None:
        """Replace the request's retained messages with a signed withdrawal."""
        row = self.conn.execute(
            "SELECT expires, cells FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            raise DeskError(f"no request {request_id} from this agency")
        expires, cells = row[0], json.loads(row[1])
        now = time.time()
        withdrawal = Withdrawal(request_id=request_id, agency=self.agency.name, issued_at=now,
                                expires=max(expires, now + 60))  # fmt: skip
        payload = sign(withdrawal, self.agency.sign_key(), self.agency.chain())
        _publish(relay, [(request_topic(c, relay.account, request_id), payload) for c in cells],
                 withdrawal.expires)  # fmt: skip
        with self.lock, self.conn:
            self.conn.execute(
                "UPDATE requests SET withdrawn = ? WHERE request_id = ?", (time.time(), request_id)
            )

    def requests(self) -> list[dict]:
        """Every request issued, with the bundles received for it."""
        rows = self.conn.execute(
            "SELECT r.request_id, r.issued_at, r.expires, r.withdrawn, r.document, r.cells,"
            " (SELECT COUNT(*) FROM received b WHERE b.request_id = r.request_id"
            "  AND b.bundle IS NOT NULL),"
            " (SELECT COUNT(*) FROM received b WHERE b.request_id = r.request_id"
            "  AND b.finished IS NOT NULL AND b.bundle IS NULL)"
            " FROM requests r ORDER BY r.issued_at"
        ).fetchall()
        found = []
        for rid, issued, expires, withdrawn, document, cells, bundles, refused in rows:
            doc = json.loads(document)
            found.append({"request_id": rid, "issued_at": issued, "expires": expires,
                          "withdrawn": withdrawn, "case_reference": doc["case_reference"],
                          "cells": json.loads(cells), "bundles": bundles,
                          "refused": refused})  # fmt: skip
        return found

    def active(self, request_id: str) -> bool:
        row = self.conn.execute(
            "SELECT expires, withdrawn FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return row is not None and row[1] is None and row[0] > time.time() - 30 * 86400


def _publish(relay: Relay, messages: list[tuple[str, bytes]], expires: float) -> None:
    """Publish retained QoS 1 messages that the relay drops at ``expires``, and wait until
    the relay has every one."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agency-{uuid.uuid4().hex}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.username_pw_set(relay.account, relay.password)
    if relay.tls_ca:
        client.tls_set(ca_certs=relay.tls_ca)
    refused: list[str] = []
    connected = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(relay.host, relay.port, keepalive=30)
    except OSError as exc:
        raise DeskError(f"cannot reach the relay {relay.host}:{relay.port}: {exc}") from None
    client.loop_start()
    try:
        if not connected.wait(PUBLISH_TIMEOUT_S) or refused:
            raise DeskError(f"the relay refused the agency: {refused or 'no answer'}")
        infos = []
        for topic, payload in messages:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, int(expires - time.time()))
            infos.append(client.publish(topic, payload, qos=1, retain=True,
                                        properties=properties))  # fmt: skip
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise DeskError("the relay did not take every message in time")
    finally:
        client.disconnect()
        client.loop_stop()


def relay_from(agency: Agency, password: str | None = None) -> Relay:
    """The relay this agency publishes on, from its agency.toml (and relay.password)."""
    settings = agency.settings
    secret = password
    if secret is None:
        path = Path(agency.root) / "relay.password"
        secret = path.read_text().strip() if path.exists() else ""
    return Relay(settings.get("relay_host", "127.0.0.1"), int(settings.get("relay_port", 1883)),
                 settings["account"], secret, settings.get("relay_ca", ""))  # fmt: skip
