"""The audit log: every request, decision, export and download, in a hash chain.

Each entry's hash covers its own fields and the previous entry's hash; the head (the last
sequence number and hash) is signed with the hub's export key after every append. Editing an
entry breaks its hash, inserting or deleting one breaks the sequence or the chain, and
cutting entries off the end no longer matches the signed head. :meth:`AuditLog.verify` says
where.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

GENESIS = "0" * 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq     INTEGER PRIMARY KEY,
    ts      REAL NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    data    TEXT NOT NULL,      -- JSON
    prev    TEXT NOT NULL,      -- the previous entry's hash (GENESIS for the first)
    hash    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NOT NULL     -- Ed25519 over "porch-audit:<seq>:<hash>", hex
);
"""


def entry_hash(seq: int, ts: float, actor: str, action: str, subject: str, data: str,
               prev: str) -> str:  # fmt: skip
    canonical = json.dumps([seq, ts, actor, action, subject, data, prev], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def head_message(seq: int, digest: str) -> bytes:
    return f"porch-audit:{seq}:{digest}".encode()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: float
    actor: str
    action: str
    subject: str
    data: dict


class AuditLog:
    def __init__(self, conn: sqlite3.Connection, key: ed25519.Ed25519PrivateKey | None):
        self._db = conn
        self._key = key
        self._lock = threading.Lock()
        self._db.executescript(SCHEMA)

    def append(self, actor: str, action: str, subject: str, data: dict | None = None) -> int:
        """Add an entry and sign the new head; returns its sequence number."""
        payload = json.dumps(data or {}, sort_keys=True, separators=(",", ":"))
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            row = last.fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            ts = round(time.time(), 6)
            digest = entry_hash(seq, ts, actor, action, subject, payload, prev)
            self._db.execute(
                "INSERT INTO audit (seq, ts, actor, action, subject, data, prev, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, ts, actor, action, subject, payload, prev, digest),
            )
            signature = self._key.sign(head_message(seq, digest)).hex() if self._key else ""
            self._db.execute(
                "INSERT OR REPLACE INTO audit_head (id, seq, hash, signature) VALUES (1, ?, ?, ?)",
                (seq, digest, signature),
            )
        return seq

    def entries(self, subject: str | None = None) -> list[AuditEntry]:
        query = "SELECT seq, ts, actor, action, subject, data FROM audit"
        rows = (
            self._db.execute(query + " WHERE subject = ? ORDER BY seq", (subject,))
            if subject
            else self._db.execute(query + " ORDER BY seq")
        )
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def verify(self, public: ed25519.Ed25519PublicKey | None) -> tuple[int, str | None]:
        """(entries checked, the first problem or None)."""
        rows = self._db.execute(
            "SELECT seq, ts, actor, action, subject, data, prev, hash FROM audit ORDER BY seq"
        ).fetchall()
        prev, expected = GENESIS, 1
        for seq, ts, actor, action, subject, data, stored_prev, digest in rows:
            if seq != expected:
                return len(rows), f"entry {expected} is missing (the next one is {seq})"
            if stored_prev != prev:
                return len(rows), f"entry {seq} does not follow entry {seq - 1} (inserted?)"
            if entry_hash(seq, ts, actor, action, subject, data, stored_prev) != digest:
                return len(rows), f"entry {seq} was edited (its hash does not match)"
            prev, expected = digest, seq + 1
        head = self._db.execute("SELECT seq, hash, signature FROM audit_head").fetchone()
        if head is None:
            return len(rows), None if not rows else "the signed head is missing"
        last = rows[-1][0] if rows else 0
        if head[0] != last or head[1] != prev:
            return len(rows), (
                f"the log ends at entry {last} but the signed head is entry {head[0]}"
                " (entries deleted or appended behind the hub's back)"
            )
        if public is not None:
            try:
                public.verify(bytes.fromhex(head[2]), head_message(head[0], head[1]))
            except (InvalidSignature, ValueError):
                return len(rows), "the head's signature is wrong"
        return len(rows), None
