"""Notifications on the phone, with the page closed: Web Push (RFC 8030), the payload
encrypted to the browser (RFC 8291), the hub identified by VAPID (RFC 8292), with pywebpush.

Each owner or member turns notifications on per browser (the page subscribes through its
service worker and hands the hub the subscription). A ring, a person the hub saw (for those
who keep it on, the default) and any motion (for those who turn it on), each at most once per
``motion_cooldown_s`` but rings, sends each of them a message that names the doorbell and
the time and carries no picture: the push service (Google's, Mozilla's,
Apple's) learns only that a message of some size was sent at some time, to a subscription
it does not link to this home. Tapping the notification opens the event on the hub, which
the phone reaches on the home network or through the owner's VPN.

Subscriptions point only at the push services in ``push.services``, over HTTPS: the hub
sends nothing anywhere else, whatever a page hands it. A subscription the push service
reports gone (404, 410) is deleted. Quiet hours hold a person's notifications. Messages go
out from a small thread pool, never from paho's thread.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from porch.core.config import PushSettings
from porch.core.fsutil import atomic_write
from porch.hub.outbound import (
    OutboundRefused,
    Target,
    check_addresses,
    parse_target,
    public_session,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS push_subscriptions (
    endpoint   TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created    REAL NOT NULL,
    session    TEXT              -- the signed-in session that subscribed: ends with it
);
CREATE TABLE IF NOT EXISTS push_preferences (
    username   TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
    motion     INTEGER NOT NULL DEFAULT 0,
    people     INTEGER NOT NULL DEFAULT 1,  -- someone seen at the door (the hub's detector)
    parcels    INTEGER NOT NULL DEFAULT 0,  -- a parcel left or taken (opt-in)
    quiet_from TEXT,                 -- 'HH:MM', local time of the hub
    quiet_to   TEXT
);
"""
ROLES = ("owner", "member")
"""Who may be notified: those who may see what a ring shows."""
TTL_S = 600
PARCEL_EVERY_S = 10.0
"""At most one parcel notification per doorbell this often (a hostile doorbell could make
parcels as fast as its glances allow)."""
PER_PERSON = 10
"""Browsers and phones one person may have notified; a new one beyond retires the oldest
(a ring never fans out to an unbounded list, whoever filled it)."""
"""A ring older than this is no news: the push service may drop it."""


class PushError(ValueError):
    """A subscription or preference refused; ``str()`` says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Push:
    def __init__(self, conn: sqlite3.Connection, settings: PushSettings, key_path: Path):
        self.settings = settings
        self._db = conn
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(push_subscriptions)")}
        if "session" not in columns:  # subscriptions from before they ended with a session
            self._db.execute("ALTER TABLE push_subscriptions ADD COLUMN session TEXT")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(push_preferences)")}
        if "people" not in columns:  # preferences from before people were told from motion
            self._db.execute(
                "ALTER TABLE push_preferences ADD COLUMN people INTEGER NOT NULL DEFAULT 1"
            )
        if "parcels" not in columns:
            self._db.execute(
                "ALTER TABLE push_preferences ADD COLUMN parcels INTEGER NOT NULL DEFAULT 0"
            )
        self._lock = threading.Lock()
        self._vapid = self._key(key_path)
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="push")
        self._last: dict[tuple[str, str, str], float] = {}
        """When each person was last told of each kind (motion, person) at each doorbell."""
        self.sent = 0
        self.gone = 0
        self.on_sent: Callable[[str], None] | None = None
        """Called with each endpoint after its message was accepted (benchmarks, tests)."""

    @staticmethod
    def _key(path: Path) -> Vapid:
        if path.exists():
            return Vapid.from_file(str(path))
        vapid = Vapid()
        vapid.generate_keys()
        atomic_write(path, vapid.private_pem())
        path.chmod(0o600)
        return vapid

    @property
    def public_key(self) -> str:
        """The applicationServerKey browsers subscribe with (uncompressed point, base64url)."""
        raw = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64(raw)

    # -- subscriptions (the web app's thread) ---------------------------------------------

    def target(self, endpoint: str) -> Target:
        """The subscription's endpoint as the hub will post to it (rebuilt from what the
        HTTP client's own parser makes of it): https:// to a known push service, no port,
        no user info. :class:`PushError` otherwise."""
        try:
            return parse_target(
                endpoint,
                "a push subscription",
                hosts=self.settings.services,
                any_port=False,
                allow_loopback_http=self.settings.allow_loopback,
            )
        except OutboundRefused as exc:
            raise PushError(f"{exc} (push.services)" if "hosts" in str(exc) else str(exc)) from None

    def subscribe(
        self, username: str, endpoint: str, p256dh: str, auth: str, session: str = ""
    ) -> None:
        """This browser's subscription, made with the signed-in ``session`` (its key): when
        that session is ended (signed out, ended from another device, the password
        changed), the browser is notified no more."""
        endpoint = self.target(endpoint).url
        try:
            key = base64.urlsafe_b64decode(p256dh + "=" * (-len(p256dh) % 4))
            secret = base64.urlsafe_b64decode(auth + "=" * (-len(auth) % 4))
        except ValueError:
            raise PushError("the subscription's keys are not base64url") from None
        if len(key) != 65 or key[0] != 4 or len(secret) != 16:
            raise PushError("the subscription's keys are not a P-256 key and a 16-byte secret")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO push_subscriptions (endpoint, username, p256dh, auth,"
                " created, session) VALUES (?, ?, ?, ?, ?, ?)",
                (endpoint, username, p256dh, auth, time.time(), session or None),
            )
            self._db.execute(
                "DELETE FROM push_subscriptions WHERE username = ? AND endpoint NOT IN"
                " (SELECT endpoint FROM push_subscriptions WHERE username = ?"
                "  ORDER BY created DESC, rowid DESC LIMIT ?)",
                (username, username, PER_PERSON),
            )

    def unsubscribe(self, username: str, endpoint: str) -> None:
        with contextlib.suppress(PushError):  # stored as parsed and rebuilt
            endpoint = self.target(endpoint).url
        with self._lock:
            self._db.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = ? AND username = ?",
                (endpoint, username),
            )

    def end_sessions(self, keys: frozenset[str]) -> None:
        """Signed-in sessions ended: the subscriptions made with them go (any thread)."""
        with self._lock:
            self._db.executemany(
                "DELETE FROM push_subscriptions WHERE session = ?", [(key,) for key in keys]
            )

    def subscriptions(self, username: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM push_subscriptions WHERE username = ?", (username,)
            ).fetchone()
        return int(row[0])

    def preferences(self, username: str) -> dict:
        """What this person is told of beside rings, and their quiet hours."""
        with self._lock:
            row = self._db.execute(
                "SELECT people, parcels, motion, quiet_from, quiet_to FROM push_preferences"
                " WHERE username = ?",
                (username,),
            ).fetchone()
        people, parcels, motion, quiet_from, quiet_to = row or (1, 0, 0, None, None)
        return {"people": bool(people), "parcels": bool(parcels), "motion": bool(motion),
                "quiet_from": quiet_from or "", "quiet_to": quiet_to or ""}  # fmt: skip

    def set_preferences(
        self,
        username: str,
        motion: bool,
        quiet_from: str,
        quiet_to: str,
        people: bool = True,
        parcels: bool = False,
    ) -> None:
        for value in (quiet_from, quiet_to):
            if value and not _clock(value):
                raise PushError(f"{value!r} is not a time of day (HH:MM)")
        if bool(quiet_from) != bool(quiet_to):
            raise PushError("quiet hours need a start and an end")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO push_preferences"
                " (username, people, parcels, motion, quiet_from, quiet_to)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    username,
                    int(people),
                    int(parcels),
                    int(motion),
                    quiet_from or None,
                    quiet_to or None,
                ),
            )

    # -- sending (called from paho's thread; the work is the pool's) -----------------------

    def ring(self, device_name: str, event_id: str, ts: float) -> None:
        when = dt.datetime.fromtimestamp(ts).strftime("%H:%M")
        body = {"title": device_name, "body": f"Someone rang at {when}", "kind": "ring",
                "event_id": event_id, "url": f"/event/{event_id}", "ts": ts}  # fmt: skip
        self._send(body)

    def person(self, device_name: str, event_id: str, ts: float, device_id: str = "") -> None:
        """Someone the hub's detector saw at the door (no picture, as for rings)."""
        body = {"title": device_name, "body": f"Someone at the {device_name.lower()}",
                "kind": "person", "event_id": event_id, "url": f"/event/{event_id}",
                "ts": ts}  # fmt: skip
        self._send(body, device_id or device_name)

    def parcel(
        self, device_name: str, action: str, event_id: str, ts: float, device_id: str = ""
    ) -> None:
        """A parcel left or something taken, for those who turned it on (no picture)."""
        where = device_name.lower()
        text = (
            f"Parcel left at the {where}"
            if action == "left"
            else f"Something taken from the {where}"
        )
        body = {"title": device_name, "body": text, "kind": "parcel", "event_id": event_id,
                "url": f"/event/{event_id}", "ts": ts}  # fmt: skip
        self._send(body, device_id or device_name)

    def motion(self, device_name: str, event_id: str, ts: float, device_id: str = "") -> None:
        when = dt.datetime.fromtimestamp(ts).strftime("%H:%M")
        body = {"title": device_name, "body": f"Motion at {when}", "kind": "motion",
                "event_id": event_id, "url": f"/event/{event_id}", "ts": ts}  # fmt: skip
        self._send(body, device_id or device_name)

    def _send(self, body: dict, device: str = "") -> None:
        """To each person who wants this kind; ``device``: whose cooldown it counts in."""
        if not self.settings.enabled:
            return
        kind = body["kind"]
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT s.endpoint, s.username, s.p256dh, s.auth, coalesce(p.motion, 0),"
                " coalesce(p.people, 1), coalesce(p.parcels, 0), p.quiet_from, p.quiet_to"
                " FROM push_subscriptions s"
                " JOIN users u ON u.username = s.username"
                " LEFT JOIN push_preferences p ON p.username = s.username"
                f" WHERE u.role IN ({','.join('?' * len(ROLES))})",
                ROLES,
            ).fetchall()
        data = json.dumps(body)
        for endpoint, username, p256dh, auth, motion, people, parcels, quiet_from, quiet_to in rows:
            wanted = {"ring": True, "person": people, "motion": motion, "parcel": parcels}[kind]
            if not wanted:
                continue
            if quiet_from and quiet_to and _within(quiet_from, quiet_to, now):
                continue
            if kind != "ring":  # per doorbell: a busy front door mutes not the back door
                key = (username, kind, device)
                wait = PARCEL_EVERY_S if kind == "parcel" else self.settings.motion_cooldown_s
                if now - self._last.get(key, 0.0) < wait:
                    continue
                self._last[key] = now
            info = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
            self._pool.submit(self._deliver, info, data)

    def _deliver(self, info: dict, data: str) -> None:
        try:  # parsed again and resolved now: only a public address of a known push service
            target = self.target(info["endpoint"])
            check_addresses(target, "a push subscription")
        except (PushError, OutboundRefused) as exc:
            log.warning("push not sent: %s", exc)
            return
        info = {**info, "endpoint": target.url}
        try:
            with public_session(self.settings.allow_loopback) as session:  # checked as it connects
                webpush(info, data, vapid_private_key=self._vapid, requests_session=session,
                        vapid_claims={"sub": self.settings.contact}, ttl=TTL_S,
                        timeout=10)  # fmt: skip
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (404, 410):
                self.gone += 1
                with self._lock:
                    self._db.execute(
                        "DELETE FROM push_subscriptions WHERE endpoint = ?", (info["endpoint"],)
                    )
                log.info("a push subscription is gone (%s): removed", status)
            else:
                log.warning("push failed (%s): %s", status, exc)
            return
        except Exception as exc:  # a push service that is down costs one message
            log.warning("push failed: %s", exc)
            return
        self.sent += 1
        if self.on_sent is not None:
            self.on_sent(info["endpoint"])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # a send in flight ends first


def _clock(value: str) -> tuple[int, int] | None:
    try:
        hours, minutes = (int(part) for part in value.split(":"))
    except ValueError:
        return None
    return (hours, minutes) if 0 <= hours < 24 and 0 <= minutes < 60 else None


def _within(start: str, end: str, now: float) -> bool:
    """Whether local time ``now`` lies in the quiet hours (which may span midnight)."""
    moment = dt.datetime.fromtimestamp(now)
    minute = moment.hour * 60 + moment.minute
    (sh, sm), (eh, em) = _clock(start), _clock(end)  # type: ignore[misc]
    begin, finish = sh * 60 + sm, eh * 60 + em
    return begin <= minute < finish if begin <= finish else minute >= begin or minute < finish
