"""Which agencies the owner trusts with area requests, decided by the owner alone.

An agency's key is trusted when a regional authority the owner imported certified it
(:class:`~porch.hub.area.AreaStore`), or when the owner accepted it here: on the page of a
request from it that matched the home (the fingerprint is shown there, to compare with the
one the agency publishes), by trusting the key or by approving the request. Nothing is
trusted for being heard first: whoever publishes first under a name gains nothing, and a
hub outside the area never records anything. A trusted key is bound to the relay account
its requests came through (each account may publish only under its own topics).

Names are compared by their Unicode confusable skeleton (UTS #39, with ICU's
``SpoofChecker``), after NFKC, case folding, collapsed spaces and with the punctuation at
either end left off: "Ankh-Morpork Сity Watch" (a Cyrillic С), a non-breaking hyphen or a
trailing dot is the same name as "Ankh-Morpork City Watch". A request from an untrusted
key under a trusted agency's name, or one that looks the same, is a conflict: refused, and
shown to the owner on the Area page.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import unicodedata

from icu import SpoofChecker

from porch.hub.consent import ConsentError

log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS area_trusted (
    fingerprint   TEXT PRIMARY KEY,  -- the agency's key (SHA-256 of its certificate)
    name          TEXT NOT NULL,     -- as the agency signed it
    skeleton      TEXT NOT NULL,     -- name_skeleton(name): how names are compared
    relay_account TEXT NOT NULL,     -- the relay account its requests come through
    accepted_by   TEXT NOT NULL,     -- the owner who trusted it
    accepted_at   REAL NOT NULL
);
"""
_SPOOF = SpoofChecker()
_SPOOF_LOCK = threading.Lock()
BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
"""Letters and symbols that show as nothing (Hangul fillers, the blank braille pattern)."""


def plain_name(name: str) -> str:
    """An agency's name as a person reads it: NFKC, case folded, any kind of space (or a
    character that shows as one) one space, and no punctuation or space at either end."""
    text = unicodedata.normalize("NFKC", name).casefold()
    spaced = "".join(" " if ch in BLANKS or unicodedata.category(ch)[0] == "Z" else ch
                     for ch in text)  # fmt: skip
    words = " ".join(spaced.split())
    edge = 0
    while edge < len(words) and unicodedata.category(words[-1 - edge])[0] in "PZ":
        edge += 1
    words = words[: len(words) - edge]
    while words and unicodedata.category(words[0])[0] in "PZ":
        words = words[1:]
    return words


def name_skeleton(name: str) -> str:
    """The name's confusable skeleton (UTS #39): equal for names a person could take for
    one another (see the module's text)."""
    with _SPOOF_LOCK:
        return str(_SPOOF.getSkeleton(0, plain_name(name)))


def printable(name: str) -> bool:
    """No invisible (format), control, private or unassigned characters in a name, no line
    or paragraph separator, nothing that shows as a blank but is a letter."""
    return all(
        unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cn", "Cs", "Zl", "Zp")
        and ch not in BLANKS
        for ch in name
    )


class TrustedAgencies:
    """The keys the owner accepted, on the hub's database (any thread)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        legacy = self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'area_agencies'"
        ).fetchone()[0]
        if legacy:  # pinned automatically by an earlier version: whoever came first
            dropped = self.conn.execute("SELECT count(*) FROM area_agencies").fetchone()[0]
            self.conn.execute("DROP TABLE area_agencies")
            if dropped:
                log.warning(
                    "%d agency key(s) pinned on first use by an earlier version are trusted"
                    " no more: accept each on a request's page",
                    dropped,
                )

    def all(self) -> list[dict]:
        return self._rows("1", ())

    def by_key(self, fp: str) -> dict | None:
        """The trusted agency of this key, or None."""
        return next(iter(self._rows("fingerprint = ?", (fp,))), None)

    def named_like(self, name: str) -> list[dict]:
        """Trusted agencies whose names a person could take for ``name``."""
        return self._rows("skeleton = ?", (name_skeleton(name),))

    def _rows(self, where: str, args: tuple[str, ...]) -> list[dict]:
        rows = self.conn.execute(
            "SELECT name, fingerprint, relay_account, accepted_by, accepted_at FROM area_trusted"
            f" WHERE {where} ORDER BY skeleton",
            args,
        ).fetchall()
        keys = ("name", "fingerprint", "relay_account", "accepted_by", "accepted_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def check(self, name: str, fp: str) -> None:
        """:class:`ConsentError` if this key cannot be trusted for this name: the name is
        not printable, or another trusted key holds it or a look-alike."""
        if not printable(name):
            raise ConsentError("the agency's name holds invisible or control characters")
        others = [a for a in self.named_like(name) if a["fingerprint"] != fp]
        if others:
            raise ConsentError(
                f"you trust {others[0]['name']!r} under another key"
                f" ({others[0]['fingerprint'][:16]}…): forget that one first if the agency"
                " changed its key"
            )

    def certified(self, name: str, fp: str, relay_account: str, authority: str) -> None:
        """A key the regional authority of fingerprint ``authority`` certified, heard here:
        its name is held like a trusted one, so that no other key takes it (it is trusted
        while the authority is)."""
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO area_trusted (fingerprint, name, skeleton,"
                " relay_account, accepted_by, accepted_at) VALUES (?, ?, ?, ?, ?, ?)",
                (fp, name, name_skeleton(name), relay_account, f"authority:{authority}",
                 time.time()),
            )  # fmt: skip

    def trust(self, name: str, fp: str, relay_account: str, owner: str) -> None:
        """The owner accepts this key for this agency; refused while another trusted key
        holds the same or a look-alike name (the owner forgets that one first)."""
        with self._lock:
            self.check(name, fp)
            with self.conn:
                self.conn.execute(
                    "INSERT OR REPLACE INTO area_trusted (fingerprint, name, skeleton,"
                    " relay_account, accepted_by, accepted_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (fp, name, name_skeleton(name), relay_account, owner, time.time()),
                )
        log.info("area requests: %s trusts %r, key %s", owner, name, fp)

    def forget_certified_by(self, authority: str) -> None:
        """The owner removed a regional authority: the keys it certified are trusted no more."""
        with self.conn:
            self.conn.execute(
                "DELETE FROM area_trusted WHERE accepted_by = ?", (f"authority:{authority}",)
            )

    def forget(self, fp: str) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM area_trusted WHERE fingerprint = ?", (fp,))
