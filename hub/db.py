"""The hub's SQLite database (WAL): devices, events and clips.

Each thread opens its own :class:`Database`; SQLite's WAL lets the ingest write while
readers read. The schema version is kept in ``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from porch.core.wire import (
    HOME_ASSISTANT_FRESH_S,
    ClipMeta,
    MotionEvent,
    ParcelEvent,
    PersonEvent,
    RingEvent,
    Status,
)

SCHEMA_VERSION = 5
SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id   TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    last_seen   REAL NOT NULL,
    software    TEXT,
    display_name TEXT,                  -- set by the owner ("Front door"); else the id
    problem     TEXT                    -- what the doorbell says keeps it from working fully
);
CREATE TABLE IF NOT EXISTS events (
    event_id    TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,          -- ring | motion | person | parcel (the hub's own)
    ts          REAL NOT NULL,          -- when it happened, device clock (epoch seconds)
    received_at REAL NOT NULL,          -- when the hub stored it (epoch seconds)
    data        TEXT NOT NULL           -- the validated payload, JSON
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (ts);
CREATE INDEX IF NOT EXISTS people_by_motion ON events (json_extract(data, '$.motion_event_id'))
    WHERE kind = 'person';              -- the timeline shows a motion with a person once
CREATE TABLE IF NOT EXISTS doorsteps (
    device_id   TEXT PRIMARY KEY,
    zone        TEXT NOT NULL           -- JSON [[x, y, w, h], ...], fractions of the picture
);
CREATE TABLE IF NOT EXISTS doorstep_state (
    device_id   TEXT PRIMARY KEY,
    parcel      INTEGER NOT NULL,       -- 1: a parcel was left and not yet taken
    empty       BLOB                    -- the glance of the doorstep before that parcel came
);
CREATE TABLE IF NOT EXISTS clips (
    clip_id     TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    start_ts    REAL NOT NULL,
    trigger_ts  REAL NOT NULL,
    end_ts      REAL NOT NULL,
    size_bytes  INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    event_ids   TEXT NOT NULL,          -- JSON list
    received_at REAL NOT NULL,
    meta        TEXT,                   -- the ClipMeta as offered, JSON
    state       TEXT NOT NULL DEFAULT 'receiving',  -- receiving | stored
    stored_at   REAL,
    keep        INTEGER NOT NULL DEFAULT 0,         -- 1: never evicted
    touched     REAL                    -- receiving: when its last chunk (or offer) came
);
CREATE INDEX IF NOT EXISTS clips_by_time ON clips (start_ts);
CREATE TABLE IF NOT EXISTS clip_events (
    event_id    TEXT NOT NULL,
    clip_id     TEXT NOT NULL,
    PRIMARY KEY (event_id, clip_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clip_chunks (
    clip_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL,       -- -1 is the thumbnail
    PRIMARY KEY (clip_id, idx)
) WITHOUT ROWID;
"""
MIGRATIONS = {
    # 1 -> 2: clip transfer state
    2: [
        "ALTER TABLE clips ADD COLUMN meta TEXT",
        "ALTER TABLE clips ADD COLUMN state TEXT NOT NULL DEFAULT 'receiving'",
        "ALTER TABLE clips ADD COLUMN stored_at REAL",
        "ALTER TABLE clips ADD COLUMN keep INTEGER NOT NULL DEFAULT 0",
    ],
    # 2 -> 3: receiving clips are abandoned when they go quiet
    3: ["ALTER TABLE clips ADD COLUMN touched REAL"],
    # 3 -> 4: the owner names doorbells
    4: ["ALTER TABLE devices ADD COLUMN display_name TEXT"],
    # 4 -> 5: a doorbell says what keeps it from working fully (its camera)
    5: ["ALTER TABLE devices ADD COLUMN problem TEXT"],
}


class Database:
    """One connection to the hub's database."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL never corrupts
        self.conn.execute("PRAGMA busy_timeout=5000")
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path} was written by a newer Porch (schema {version})")
        if 0 < version < SCHEMA_VERSION:
            with self.conn:  # one transaction: a crash leaves the old schema, not half a new one
                self.conn.execute("BEGIN")
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(step, []):
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.conn.executescript(SCHEMA)  # creates what is missing, touches nothing else
        self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def record_status(self, status: Status) -> None:
        self.conn.execute(
            "INSERT INTO devices (device_id, state, last_seen, software, problem)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET state = excluded.state,"
            " last_seen = excluded.last_seen, software = coalesce(excluded.software, software),"
            " problem = excluded.problem",
            (status.device_id, status.state, time.time(), status.software, status.problem),
        )

    def record_event(self, event: RingEvent | MotionEvent | PersonEvent | ParcelEvent) -> bool:
        """Store an event; False when its id was stored before (a duplicate)."""
        kinds = {RingEvent: "ring", MotionEvent: "motion", PersonEvent: "person",
                 ParcelEvent: "parcel"}  # fmt: skip
        kind = kinds[type(event)]
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO events (event_id, device_id, kind, ts, received_at, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (event.event_id, event.device_id, kind, event.ts, time.time(), event.model_dump_json()),
        )
        self._seen(event.device_id)
        return cursor.rowcount == 1

    def record_clip(self, clip: ClipMeta) -> bool:
        """Store a clip's metadata (state ``receiving``); False when it was known already."""
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO clips (clip_id, device_id, start_ts, trigger_ts, end_ts,"
            " size_bytes, sha256, event_ids, received_at, meta)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                clip.clip_id,
                clip.device_id,
                clip.start_ts,
                clip.trigger_ts,
                clip.end_ts,
                clip.size_bytes,
                clip.sha256,
                json.dumps(clip.event_ids),
                time.time(),
                clip.model_dump_json(),
            ),
        )
        if cursor.rowcount == 1:
            self.conn.executemany(
                "INSERT OR IGNORE INTO clip_events (event_id, clip_id) VALUES (?, ?)",
                [(e, clip.clip_id) for e in clip.event_ids],
            )
        self._seen(clip.device_id)
        return cursor.rowcount == 1

    def timeline(self, limit: int, event_id: str | None = None) -> list[dict]:
        """Rings, people and motion starts, newest first, each with its stored clip if there
        is one and whether it reached the hub late (replayed after an outage); with
        ``event_id``, that one only. A motion in which the hub saw a person is shown once, as
        the person (with the motion's clip)."""
        if event_id is not None:  # one event (a notification's link): itself, even a
            # motion start the timeline shows as its person
            shown = (
                "(e.kind IN ('ring', 'person', 'parcel') OR json_extract(e.data, '$.active') = 1)"
            )
        else:
            shown = (
                "(e.kind IN ('ring', 'person', 'parcel') OR (json_extract(e.data, '$.active') = 1"
                " AND NOT EXISTS (SELECT 1 FROM events p WHERE p.kind = 'person'"
                " AND json_extract(p.data, '$.motion_event_id') = +e.event_id"  # the index
                " AND p.device_id = e.device_id)))"
            )
        only = " AND e.event_id = ?" if event_id is not None else ""
        rows = self.conn.execute(
            "SELECT e.event_id, e.device_id, e.kind, e.ts,"
            " (SELECT c.clip_id FROM clip_events ce JOIN clips c ON c.clip_id = ce.clip_id"
            "  WHERE ce.event_id = coalesce(json_extract(e.data, '$.motion_event_id'),"
            "  e.event_id) AND c.state = 'stored' LIMIT 1),"
            " e.received_at - e.ts > ?,"
            " (SELECT coalesce(d.display_name, e.device_id) FROM devices d"
            "  WHERE d.device_id = e.device_id),"
            " json_extract(e.data, '$.motion_event_id'), json_extract(e.data, '$.action')"
            f" FROM events e WHERE {shown}{only} ORDER BY e.ts DESC LIMIT ?",
            (HOME_ASSISTANT_FRESH_S, *([event_id] if only else []), limit),
        ).fetchall()
        keys = ("event_id", "device_id", "kind", "ts", "clip_id", "late", "name",
                "motion_event_id", "action")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def devices(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT device_id, state, last_seen, software, coalesce(display_name, device_id),"
            " problem FROM devices ORDER BY device_id"
        ).fetchall()
        keys = ("device_id", "state", "last_seen", "software", "name", "problem")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def display_name(self, device_id: str) -> str | None:
        """The name the owner gave the doorbell, if any."""
        row = self.conn.execute(
            "SELECT display_name FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        return row[0] if row else None

    def set_display_name(self, device_id: str, name: str) -> bool:
        cursor = self.conn.execute(
            "UPDATE devices SET display_name = ? WHERE device_id = ?", (name or None, device_id)
        )
        return cursor.rowcount == 1

    def stored_clip(self, clip_id: str) -> dict | None:
        row = self.conn.execute(
            "SELECT clip_id, device_id, start_ts, trigger_ts, end_ts, size_bytes, sha256, keep"
            " FROM clips WHERE clip_id = ? AND state = 'stored'",
            (clip_id,),
        ).fetchone()
        if row is None:
            return None
        keys = (
            "clip_id",
            "device_id",
            "start_ts",
            "trigger_ts",
            "end_ts",
            "size_bytes",
            "sha256",
            "keep",
        )
        return dict(zip(keys, row, strict=True))

    def clip(self, clip_id: str) -> tuple[str, ClipMeta] | None:
        """A clip's state and metadata, if known."""
        row = self.conn.execute(
            "SELECT state, meta FROM clips WHERE clip_id = ?", (clip_id,)
        ).fetchone()
        if row is None or row[1] is None:
            return None
        return row[0], ClipMeta.model_validate_json(row[1])

    def received_chunks(self, clip_id: str) -> set[int]:
        rows = self.conn.execute("SELECT idx FROM clip_chunks WHERE clip_id = ?", (clip_id,))
        return {r[0] for r in rows}

    def count_chunks(self, clip_id: str) -> int:
        row = self.conn.execute("SELECT count(*) FROM clip_chunks WHERE clip_id = ?", (clip_id,))
        return int(row.fetchone()[0])

    def mark_chunks(self, clip_id: str, indexes: list[int], received: bool = True) -> int:
        """Record chunks as received (or not); returns how many rows changed."""
        if received:
            cursor = self.conn.executemany(
                "INSERT OR IGNORE INTO clip_chunks (clip_id, idx) VALUES (?, ?)",
                [(clip_id, i) for i in indexes],
            )
            return cursor.rowcount
        cursor = self.conn.executemany(
            "DELETE FROM clip_chunks WHERE clip_id = ? AND idx = ?",
            [(clip_id, i) for i in indexes],
        )
        return cursor.rowcount

    def clip_stored(self, clip_id: str) -> None:
        """Mark a clip stored, durably (the device deletes its copy when told)."""
        self.conn.execute("PRAGMA synchronous=FULL")
        try:
            self._clip_stored(clip_id)
        finally:
            self.conn.execute("PRAGMA synchronous=NORMAL")

    def _clip_stored(self, clip_id: str) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "UPDATE clips SET state = 'stored', stored_at = ? WHERE clip_id = ?",
                (time.time(), clip_id),
            )
            self.conn.execute("DELETE FROM clip_chunks WHERE clip_id = ?", (clip_id,))

    def stored_clips(self) -> list[tuple[str, int, float, bool]]:
        """(clip_id, bytes on disk: video and thumbnail, stored_at, keep) of stored clips,
        oldest first."""
        return self.conn.execute(
            "SELECT clip_id, size_bytes + coalesce(json_extract(meta, '$.thumbnail_bytes'), 0),"
            " stored_at, keep FROM clips WHERE state = 'stored' ORDER BY start_ts"
        ).fetchall()

    def receiving_clips(self) -> list[str]:
        rows = self.conn.execute("SELECT clip_id FROM clips WHERE state = 'receiving'")
        return [r[0] for r in rows]

    def reserved_bytes(self, active_since: float = 0.0) -> int:
        """What clips being received may take on disk once whole (video and thumbnail);
        only those with a chunk or offer since ``active_since``."""
        row = self.conn.execute(
            "SELECT coalesce(sum(size_bytes + json_extract(meta, '$.thumbnail_bytes')), 0)"
            " FROM clips WHERE state = 'receiving' AND coalesce(touched, received_at) >= ?",
            (active_since,),
        ).fetchone()
        return int(row[0])

    def receiving_count(self, device_id: str) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM clips WHERE state = 'receiving' AND device_id = ?", (device_id,)
        ).fetchone()
        return int(row[0])

    def quiet_receiving(self, before: float) -> list[str]:
        """Clips being received whose last chunk (or offer) came before ``before``."""
        rows = self.conn.execute(
            "SELECT clip_id FROM clips WHERE state = 'receiving'"
            " AND coalesce(touched, received_at) < ?",
            (before,),
        )
        return [r[0] for r in rows]

    def touch_clip(self, clip_id: str, when: float) -> None:
        self.conn.execute("UPDATE clips SET touched = ? WHERE clip_id = ?", (when, clip_id))

    def latest_clip(self, device_id: str) -> str | None:
        """This doorbell's newest stored clip (its thumbnail: a picture to draw on)."""
        row = self.conn.execute(
            "SELECT clip_id FROM clips WHERE device_id = ? AND state = 'stored'"
            " ORDER BY start_ts DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        return row[0] if row else None

    def doorstep(self, device_id: str) -> list[tuple[float, float, float, float]]:
        """The doorstep zone the owner marked on this doorbell's picture (none: [])."""
        row = self.conn.execute(
            "SELECT zone FROM doorsteps WHERE device_id = ?", (device_id,)
        ).fetchone()
        return [tuple(box) for box in json.loads(row[0])] if row else []

    def set_doorstep(self, device_id: str, zone: list[tuple[float, float, float, float]]) -> None:
        """Mark the doorstep anew (none: unmark it). What was known of the doorstep goes with
        HubService.doorstep_changed, under the lock the people watch takes."""
        if zone:
            self.conn.execute(
                "INSERT OR REPLACE INTO doorsteps (device_id, zone) VALUES (?, ?)",
                (device_id, json.dumps([list(box) for box in zone])),
            )
        else:
            self.conn.execute("DELETE FROM doorsteps WHERE device_id = ?", (device_id,))

    def doorstep_state(self, device_id: str) -> tuple[bool, bytes | None] | None:
        """Whether a parcel is on this doorbell's doorstep, and the glance of the doorstep
        before it came; None when nothing is known."""
        row = self.conn.execute(
            "SELECT parcel, empty FROM doorstep_state WHERE device_id = ?", (device_id,)
        ).fetchone()
        return (bool(row[0]), row[1]) if row else None

    def set_doorstep_state(self, device_id: str, parcel: bool, empty: bytes | None) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO doorstep_state (device_id, parcel, empty) VALUES (?, ?, ?)",
            (device_id, int(parcel), empty),
        )

    def forget_doorstep_state(self, device_id: str) -> None:
        self.conn.execute("DELETE FROM doorstep_state WHERE device_id = ?", (device_id,))

    def ring_during(self, device_id: str, motion_event_id: str) -> str | None:
        """The latest ring of ``device_id`` since the motion ``motion_event_id`` began (or up
        to 5 s before it: a visitor may ring as they step into view), if any."""
        row = self.conn.execute(
            "SELECT r.event_id FROM events r JOIN events m ON m.event_id = ?"
            " WHERE r.device_id = ? AND m.device_id = ? AND r.kind = 'ring'"
            " AND r.ts >= m.ts - 5 ORDER BY r.ts DESC LIMIT 1",
            (motion_event_id, device_id, device_id),
        ).fetchone()
        return row[0] if row else None

    def event_device(self, event_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT device_id FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return row[0] if row else None

    def delete_clip(self, clip_id: str) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM clip_chunks WHERE clip_id = ?", (clip_id,))
            self.conn.execute("DELETE FROM clip_events WHERE clip_id = ?", (clip_id,))
            self.conn.execute("DELETE FROM clips WHERE clip_id = ?", (clip_id,))

    def set_keep(self, clip_id: str, keep: bool) -> None:
        self.conn.execute("UPDATE clips SET keep = ? WHERE clip_id = ?", (int(keep), clip_id))

    def _seen(self, device_id: str) -> None:
        self.conn.execute(
            "INSERT INTO devices (device_id, state, last_seen) VALUES (?, 'online', ?)"
            " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen",
            (device_id, time.time()),
        )

    def count_events(self, kind: str | None = None, device_id: str | None = None) -> int:
        query, args = "SELECT count(*) FROM events WHERE 1=1", list[str]()
        if kind:
            query, args = query + " AND kind = ?", [*args, kind]
        if device_id:
            query, args = query + " AND device_id = ?", [*args, device_id]
        return int(self.conn.execute(query, args).fetchone()[0])

    def events(self, limit: int = 100) -> list[sqlite3.Row]:
        self.conn.row_factory = sqlite3.Row
        try:
            return self.conn.execute(
                "SELECT * FROM events ORDER BY ts DESC LIMIT ?", (limit,)
            ).fetchall()
        finally:
            self.conn.row_factory = None

    def close(self) -> None:
        self.conn.close()
