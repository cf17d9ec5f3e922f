"""Footage requests and the owner's decisions: the only way footage leaves the home.

A request names who asks, why, on what legal basis, which devices and which time window; it
expires. While it is pending it holds the clips inside its window (retention skips them).
The owner approves all of it, a narrower window or a subset of clips (optionally with
redaction), or declines; approving takes the owner's password again. An approval expires.
A bundle is built only from a recorded, unexpired approval (:mod:`porch.hub.exporter`).
Every step goes to the audit log.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field

from porch.core.area import LEGAL_BASES, LegalBasis, legal_basis
from porch.core.wire import refuse_unprintable
from porch.hub.audit import AuditLog

DAY = 86400.0
MIN_TRIM_S = 0.1
"""A trim shorter than this is a slip of the hand, not a choice."""
MAX_TRIM_SLACK_S = 0.5
"""A trim may end this far past a clip's listed end (its last frame), for rounding."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id  TEXT PRIMARY KEY,
    filed_at    REAL NOT NULL,
    filed_by    TEXT NOT NULL,          -- the requester's account, or the owner who entered it
    requester   TEXT NOT NULL,          -- JSON: name, organisation, contact
    reason      TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    legal_reference TEXT NOT NULL,
    devices     TEXT NOT NULL,          -- JSON list
    start_ts    REAL NOT NULL,
    end_ts      REAL NOT NULL,
    expires     REAL NOT NULL,          -- the request lapses (and its hold ends) then
    state       TEXT NOT NULL DEFAULT 'pending',   -- pending | approved | declined | withdrawn
    decision    TEXT,                   -- JSON: the owner's decision
    origin      TEXT                    -- JSON: an area request's details (porch.hub.area)
);
CREATE TABLE IF NOT EXISTS bundles (
    bundle_id   TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL UNIQUE,
    built_at    REAL NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL
);
"""


FIELD_LIMITS = {
    "name": 200,
    "organisation": 200,
    "contact": 200,
    "reason": 4000,
    "legal_reference": 200,
    "devices": 400,
    "message": 4000,
}
"""Longest text a request's fields take, characters: the server's limits and the forms'."""
FIELD_LABELS = {
    "name": "Your name",
    "organisation": "Organisation",
    "contact": "How to reach you",
    "reason": "Why",
    "legal_basis": "Legal basis",
    "legal_reference": "Reference",
    "start": "From",
    "end": "To",
    "devices": "Which doorbells",
    "expires_days": "The request lapses after",
    "message": "Message",
}


class ConsentError(Exception):
    """A request or decision refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


@dataclass
class FootageRequest:
    request_id: str
    filed_at: float
    filed_by: str
    name: str
    organisation: str
    contact: str
    reason: str
    legal_basis: LegalBasis
    legal_reference: str
    devices: list[str]
    start_ts: float
    end_ts: float
    expires: float
    state: str = "pending"
    decision: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)
    """For an area request: the agency's request id, area, drop box and keys."""

    @property
    def from_area(self) -> bool:
        return self.origin.get("kind") == "area"

    @property
    def lapsed(self) -> bool:
        """Pending past its expiry: the hold is over and it can no longer be approved."""
        return self.state == "pending" and time.time() >= self.expires

    @property
    def approval_live(self) -> bool:
        return self.state == "approved" and time.time() < self.decision.get("expires", 0)

    @property
    def status(self) -> str:
        if self.lapsed:
            return "expired"
        if self.state == "approved" and not self.approval_live:
            return "approval expired"
        return self.state

    def public(self) -> dict:
        """What a manifest says about the request."""
        data = asdict(self)
        data.pop("decision")
        data.pop("state")
        if not self.origin:
            data.pop("origin")
        else:  # what the bundle says of the area request it answers (not the keys)
            data["origin"] = {k: v for k, v in self.origin.items() if k != "encryption_key"}
        return data


def _row_to_request(row) -> FootageRequest:
    who = json.loads(row[3])
    return FootageRequest(
        request_id=row[0], filed_at=row[1], filed_by=row[2], name=who["name"],
        organisation=who["organisation"], contact=who["contact"], reason=row[4],
        legal_basis=row[5], legal_reference=row[6], devices=json.loads(row[7]),
        start_ts=row[8], end_ts=row[9], expires=row[10], state=row[11],
        decision=json.loads(row[12]) if row[12] else {},
        origin=json.loads(row[13]) if row[13] else {},
    )  # fmt: skip


COLUMNS = (
    "request_id, filed_at, filed_by, requester, reason, legal_basis, legal_reference, devices,"
    " start_ts, end_ts, expires, state, decision, origin"
)


class Consent:
    """Requests, decisions and holds, on the web app's database connection."""

    def __init__(self, conn: sqlite3.Connection, audit: AuditLog):
        self._db = conn
        self.audit = audit
        self._lock = threading.Lock()
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
        if "origin" not in columns:  # a hub from before area requests
            self._db.execute("ALTER TABLE requests ADD COLUMN origin TEXT")

    # -- requests -------------------------------------------------------------------------

    def file(
        self,
        filed_by: str,
        name: str,
        organisation: str,
        contact: str,
        reason: str,
        basis_text: str,
        legal_reference: str,
        devices: list[str],
        start_ts: float,
        end_ts: float,
        expires_days: float = 30,
        origin: dict | None = None,
    ) -> FootageRequest:
        basis = legal_basis(basis_text)
        if basis is None:
            raise ConsentError(f"legal basis must be one of {', '.join(LEGAL_BASES)}")
        if basis != "voluntary" and not legal_reference.strip():
            raise ConsentError(f"a {basis.replace('_', ' ')} needs its reference")
        if not devices:
            raise ConsentError("name at least one doorbell")
        if not 0 < end_ts - start_ts <= 7 * DAY:
            raise ConsentError("the time window must be positive and at most 7 days")
        if start_ts > time.time():
            raise ConsentError(
                "the window starts in the future: a request can only ask for footage that"
                " exists (its window may end later, to cover what is still being recorded)"
            )
        _printable({"name": name, "organisation": organisation, "contact": contact,
                    "legal_reference": legal_reference, "devices": devices})  # fmt: skip
        _printable({"reason": reason}, lines=True)
        if not (name.strip() and organisation.strip() and contact.strip() and reason.strip()):
            raise ConsentError("who asks (name, organisation, contact) and why are required")
        if not 0 < expires_days <= 90:
            raise ConsentError("a request expires within 90 days")
        request = FootageRequest(
            request_id=secrets.token_hex(8),
            filed_at=time.time(),
            filed_by=filed_by,
            name=name.strip(),
            organisation=organisation.strip(),
            contact=contact.strip(),
            reason=reason.strip(),
            legal_basis=basis,
            legal_reference=legal_reference.strip(),
            devices=sorted(set(devices)),
            start_ts=start_ts,
            end_ts=end_ts,
            expires=time.time() + expires_days * DAY,
            origin=origin or {},
        )
        who = {"name": request.name, "organisation": request.organisation,
               "contact": request.contact}  # fmt: skip
        with self._lock:
            self._db.execute(
                f"INSERT INTO requests ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (request.request_id, request.filed_at, filed_by, json.dumps(who), request.reason,
                 basis, request.legal_reference, json.dumps(request.devices), start_ts,
                 end_ts, request.expires, "pending", None,
                 json.dumps(origin) if origin else None),
            )  # fmt: skip
        self.audit.append(filed_by, "request", request.request_id, request.public())
        return request

    def get(self, request_id: str) -> FootageRequest | None:
        row = self._db.execute(
            f"SELECT {COLUMNS} FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return _row_to_request(row) if row else None

    def all(self, filed_by: str | None = None) -> list[FootageRequest]:
        query = f"SELECT {COLUMNS} FROM requests"
        rows = (
            self._db.execute(query + " WHERE filed_by = ? ORDER BY filed_at DESC", (filed_by,))
            if filed_by
            else self._db.execute(query + " ORDER BY filed_at DESC")
        )
        return [_row_to_request(row) for row in rows]

    def matching_clips(self, request: FootageRequest, start=None, end=None) -> list[dict]:
        """Stored clips of the request's devices that lie wholly inside the window."""
        start = request.start_ts if start is None else start
        end = request.end_ts if end is None else end
        marks = ",".join("?" * len(request.devices))
        rows = self._db.execute(
            "SELECT clip_id, device_id, start_ts, end_ts, sha256, size_bytes, meta FROM clips"
            f" WHERE state = 'stored' AND device_id IN ({marks}) AND start_ts >= ?"
            " AND end_ts <= ? ORDER BY start_ts",
            (*request.devices, start, end),
        ).fetchall()
        keys = ("clip_id", "device_id", "start_ts", "end_ts", "sha256", "size_bytes", "meta")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # -- the owner's decision -------------------------------------------------------------

    def decide(
        self,
        request_id: str,
        owner: str,
        approve: bool,
        clip_ids: list[str] | None = None,
        start_ts: float | None = None,
        end_ts: float | None = None,
        blur_faces: bool = False,
        boxes: list[dict] | None = None,
        message: str = "",
        approval_days: float = 14,
        trims: dict[str, tuple[float, float | None]] | None = None,
    ) -> FootageRequest:
        """Record the owner's decision (the caller has checked the owner's password).

        ``trims``: for some approved clips, the seconds (from the clip's start) that are to
        leave; the export then holds only the whole GOPs that show them."""
        _printable({"message": message}, lines=True)
        with self._lock:
            request = self.get(request_id)
            if request is None:
                raise ConsentError("no such request", 404)
            if request.state != "pending":
                raise ConsentError(f"this request was {request.state} already", 409)
            if request.lapsed:
                raise ConsentError("this request has expired", 409)
            decision: dict = {"decision": "approved" if approve else "declined",
                              "decided_by": owner, "decided_at": time.time(),
                              "message": message.strip()}  # fmt: skip
            if approve:
                start = request.start_ts if start_ts is None else start_ts
                end = request.end_ts if end_ts is None else end_ts
                if not request.start_ts <= start < end <= request.end_ts:
                    raise ConsentError("the approved window must lie inside the requested one")
                matching = {c["clip_id"] for c in self.matching_clips(request, start, end)}
                chosen = matching if clip_ids is None else set(clip_ids)
                if not chosen:
                    raise ConsentError("no clip to approve: decline instead")
                if not chosen <= matching:
                    raise ConsentError("an approved clip lies outside the approved window")
                if not 0 < approval_days <= 90:
                    raise ConsentError("an approval lasts at most 90 days")
                rows = self.matching_clips(request, start, end)
                devices = sorted({c["device_id"] for c in rows if c["clip_id"] in chosen})
                trimmed = checked_trims(trims or {}, [r for r in rows if r["clip_id"] in chosen])
                decision.update(
                    expires=time.time() + approval_days * DAY,
                    scope={
                        "devices": devices,
                        "start_ts": start,
                        "end_ts": end,
                        "clip_ids": sorted(chosen),
                    },
                    redaction={"blur_faces": blur_faces, "boxes": boxes or []},
                    trims=trimmed,
                    narrowed=(start, end) != (request.start_ts, request.end_ts)
                    or chosen != matching
                    or bool(trimmed),
                )
            state = "approved" if approve else "declined"
            self._db.execute(
                "UPDATE requests SET state = ?, decision = ? WHERE request_id = ?",
                (state, json.dumps(decision), request_id),
            )
        self.audit.append(owner, state, request_id, decision)
        updated = self.get(request_id)
        assert updated is not None
        return updated

    def withdraw(self, request_id: str, actor: str) -> None:
        """The asker took a request back: a pending one ends (its hold with it); an approved
        one is delivered no more (its bundle, if built, stays the owner's)."""
        with self._lock:
            request = self.get(request_id)
            if request is None or request.state in ("declined", "withdrawn"):
                return
            decision = {**request.decision, "withdrawn_at": time.time()}
            state = "withdrawn" if request.state == "pending" else request.state
            self._db.execute(
                "UPDATE requests SET state = ?, decision = ? WHERE request_id = ?",
                (state, json.dumps(decision), request_id),
            )
        self.audit.append(actor, "withdrawn", request_id, {"was": request.state})

    # -- holds and the report -------------------------------------------------------------

    def held_clip_ids(self) -> set[str]:
        return held_clip_ids(self._db)

    def report(self) -> list[dict]:
        """The transparency report: requests by organisation and legal basis, and outcomes."""
        table: dict[tuple[str, str], dict] = {}
        for request in self.all():
            key = (request.organisation, request.legal_basis)
            row = table.setdefault(key, {"organisation": key[0], "legal_basis": key[1],
                                         "received": 0, "by_area": 0, "approved": 0,
                                         "narrowed": 0, "declined": 0, "expired": 0,
                                         "pending": 0, "withdrawn": 0})  # fmt: skip
            row["received"] += 1
            row["by_area"] += int(request.from_area)
            status = request.status
            if request.state == "approved":
                row["approved"] += 1
                row["narrowed"] += int(bool(request.decision.get("narrowed")))
            elif status in row:
                row[status] += 1
        return sorted(table.values(), key=lambda r: (-r["received"], r["organisation"]))

    # -- bundles ---------------------------------------------------------------------------

    def bundle(self, request_id: str) -> dict | None:
        row = self._db.execute(
            "SELECT bundle_id, built_at, path, sha256, size_bytes FROM bundles"
            " WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        keys = ("bundle_id", "built_at", "path", "sha256", "size_bytes")
        return dict(zip(keys, row, strict=True)) if row else None

    def record_bundle(self, request_id: str, bundle_id: str, path: str, sha256: str,
                      size: int) -> None:  # fmt: skip
        self._db.execute(
            "INSERT INTO bundles (bundle_id, request_id, built_at, path, sha256, size_bytes)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (bundle_id, request_id, time.time(), path, sha256, size),
        )


def checked_trims(trims: dict[str, tuple[float, float | None]], chosen: list[dict]) -> dict:
    """The owner's trims, each of an approved clip whose doorbell signed its GOPs, inside
    the clip and at least a moment long: {clip id: [from s, to s]} (to None: its end)."""
    rows = {row["clip_id"]: row for row in chosen}
    checked = {}
    for clip_id, (start, end) in sorted(trims.items()):
        row = rows.get(clip_id)
        if row is None:
            raise ConsentError("a trimmed clip is not among the approved ones")
        meta = json.loads(row["meta"])
        if not meta.get("gops"):
            raise ConsentError(
                f"clip {clip_id[:8]} can only be shared whole: its doorbell did not sign its"
                " video in parts (GOPs)"
            )
        length = row["end_ts"] - row["start_ts"]
        end = length if end is None else end
        if not (0 <= start < end <= length + MAX_TRIM_SLACK_S):
            backwards = f" and end after it starts ({start:g} to {end:g} s given)" if (
                0 <= end <= start) else ""  # fmt: skip
            raise ConsentError(
                f"clip {clip_id[:8]}'s trim must lie within its {length:.1f} s{backwards}"
            )
        end = min(end, length)
        if end - start < MIN_TRIM_S:
            raise ConsentError(
                f"clip {clip_id[:8]}'s trim must lie within its {length:.1f} s and last at"
                f" least {MIN_TRIM_S:g} s"
            )
        checked[clip_id] = [start, end]
    return checked


def held_clip_ids(conn: sqlite3.Connection) -> set[str]:
    """Clips that retention must keep: inside the window of a pending, unexpired request,
    and the approved clips of a live approval whose bundle is not built yet (any thread's
    connection: retention runs on the ingest's)."""
    conn.executescript(SCHEMA)
    now = time.time()
    pending = conn.execute(
        "SELECT c.clip_id FROM clips c JOIN requests r ON r.state = 'pending'"
        " AND r.expires > ? AND c.start_ts >= r.start_ts AND c.end_ts <= r.end_ts"
        " AND c.device_id IN (SELECT value FROM json_each(r.devices))",
        (now,),
    )
    approved = conn.execute(
        "SELECT s.value FROM requests r, json_each(r.decision, '$.scope.clip_ids') s"
        " WHERE r.state = 'approved' AND json_extract(r.decision, '$.expires') > ?"
        " AND r.request_id NOT IN (SELECT request_id FROM bundles)",
        (now,),
    )
    return {clip_id for (clip_id,) in pending} | {clip_id for (clip_id,) in approved}


def _printable(fields: dict[str, object], lines: bool = False) -> None:
    """:class:`ConsentError` (400) naming the field that holds a control character or a
    bidirectional override (``lines``: newlines and tabs are text)."""
    for name, value in fields.items():
        try:
            refuse_unprintable(value, FIELD_LABELS.get(name, name), lines)
        except ValueError as exc:
            raise ConsentError(str(exc)) from None
