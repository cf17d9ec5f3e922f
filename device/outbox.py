"""The device's outbox: every event is stored in SQLite before it is published, and removed
only after the broker acknowledged it (QoS 1 PUBACK), so a restart or a broker outage loses
nothing. The hub drops the duplicates that a resend after a lost PUBACK can cause.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from porch.core.wire import Message, topic_for


@dataclass(frozen=True)
class Pending:
    seq: int
    topic: str
    payload: bytes


class Outbox:
    """A durable FIFO of messages to publish; safe to use from any thread."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged press survives power loss
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " topic TEXT NOT NULL,"
            " payload BLOB NOT NULL,"
            " created REAL NOT NULL)"
        )
        self._lock = threading.Lock()
        self.added = 0

    def put(self, message: Message) -> int:
        """Store a message durably; returns its sequence number."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)",
                (topic_for(message), message.to_bytes(), time.time()),
            )
            self.added += 1
            return int(cursor.lastrowid or 0)

    def pending(
        self, exclude: set[int] | frozenset[int] = frozenset(), limit: int = 100
    ) -> list[Pending]:
        """The oldest messages not yet acknowledged, except those in ``exclude``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM outbox ORDER BY seq LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        return [Pending(s, t, bytes(p)) for s, t, p in rows if s not in exclude][:limit]

    def remove(self, seqs: list[int]) -> None:
        """Forget acknowledged messages."""
        if seqs:
            with self._lock:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
