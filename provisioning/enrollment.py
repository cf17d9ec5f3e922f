"""One-time enrollment, the hub's side: issuing tokens, redeeming them, the device registry.

The token and request formats are the shared contract in :mod:`porch.core.enrollment`. The
hub keeps only the secret's hash, and a token works once: redeeming marks it used in the same
statement that checks it was unused.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from porch.core.enrollment import EnrollError, EnrollRequest, Token, check_device_name
from porch.core.fsutil import hand_over
from porch.provisioning.pki import HUB_USER, Pki

TOKEN_TTL_S = 15 * 60


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Registry:
    """Tokens (hashes) and enrolled devices, in ``registry.sqlite`` beside the keys."""

    def __init__(self, pki: Pki):
        self.pki = pki
        path = pki.path("registry.sqlite")
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        path.chmod(0o600)
        hand_over(path, HUB_USER)
        self.conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS tokens (
                hash TEXT PRIMARY KEY, name TEXT NOT NULL, expires INTEGER NOT NULL,
                created REAL NOT NULL, used REAL);
            CREATE TABLE IF NOT EXISTS devices (
                name TEXT PRIMARY KEY, serial TEXT NOT NULL, fingerprint TEXT NOT NULL,
                sign_key TEXT NOT NULL, enrolled REAL NOT NULL, revoked REAL,
                sign_cert TEXT);
            -- Every certificate ever revoked, by serial, never deleted: re-enrolling a name
            -- replaces its devices row, and its old certificate must stay on the CRL.
            CREATE TABLE IF NOT EXISTS integrations (
                name TEXT PRIMARY KEY, serial TEXT NOT NULL, created REAL NOT NULL,
                revoked REAL);
            CREATE TABLE IF NOT EXISTS revoked_certificates (
                serial TEXT PRIMARY KEY, name TEXT NOT NULL, revoked REAL NOT NULL);
            INSERT OR IGNORE INTO revoked_certificates (serial, name, revoked)
                SELECT serial, name, revoked FROM devices WHERE revoked IS NOT NULL;
            """
        )
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(tokens)")}
        if "replaced" not in columns:  # registries made before one-open-token-per-name
            self.conn.execute("ALTER TABLE tokens ADD COLUMN replaced REAL")

    def new_token(self, name: str, hub: str, ttl_s: int = TOKEN_TTL_S) -> Token:
        """A one-time token for ``name``; it ends any earlier token for that name still open,
        so at most one can ever enroll it."""
        check_device_name(name)
        if name in self.active_devices():
            raise EnrollError(f"{name} is enrolled already: revoke it first to enroll it again")
        token = Token(
            name=name,
            hub=hub,
            fingerprint=self.pki.hub_fingerprint(),
            secret=secrets.token_urlsafe(32),
            expires=int(time.time()) + ttl_s,
        )
        with self.conn:  # one transaction: the old tokens end as the new one begins
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "UPDATE tokens SET replaced = ? WHERE name = ? AND used IS NULL"
                " AND replaced IS NULL",
                (time.time(), name),
            )
            self.conn.execute(
                "INSERT INTO tokens (hash, name, expires, created) VALUES (?, ?, ?, ?)",
                (hash_secret(token.secret), name, token.expires, time.time()),
            )
        return token

    def check(self, secret: str, name: str, expires: int) -> None:
        """Refuse a token that is unknown, used, expired or altered; writes nothing."""
        check_device_name(name)
        row = self.conn.execute(
            "SELECT name, expires, used, replaced FROM tokens WHERE hash = ?",
            (hash_secret(secret),),
        ).fetchone()
        if row is None:
            raise EnrollError("unknown enrollment token: ask the installer for a new one")
        if row[0] != name or row[1] != expires:
            raise EnrollError("the token was altered: ask the installer for a new one")
        if row[2] is not None:
            raise EnrollError("this enrollment token was used already: each works once")
        if row[3] is not None:
            raise EnrollError(
                f"a newer token was made for {name}, which ended this one: use the newest"
            )
        if name in self.active_devices():
            raise EnrollError(f"{name} is enrolled already: revoke it first to enroll it again")
        if time.time() >= expires:
            raise EnrollError("this enrollment token has expired (15 minutes): make a new one")

    def redeem(self, secret: str) -> bool:
        """Mark the token used; False if another request used it first."""
        cursor = self.conn.execute(
            "UPDATE tokens SET used = ? WHERE hash = ? AND used IS NULL AND replaced IS NULL",
            (time.time(), hash_secret(secret)),
        )
        return cursor.rowcount == 1

    def add_device(
        self, name: str, cert: x509.Certificate, sign_key: bytes, sign_cert: x509.Certificate
    ) -> None:
        """Record a newly enrolled device; refused while the name is enrolled (two
        enrollments racing each other), so a row only ever replaces a revoked one."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            row = self.conn.execute(
                "SELECT revoked FROM devices WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] is None:
                raise EnrollError(f"{name} is enrolled already: revoke it first")
            self.conn.execute(
                "INSERT OR REPLACE INTO devices (name, serial, fingerprint, sign_key, enrolled,"
                " sign_cert) VALUES (?, ?, ?, ?, ?, ?)",
                (name, str(cert.serial_number), cert.fingerprint(hashes.SHA256()).hex(),
                 sign_key.hex(), time.time(), pem(sign_cert)),
            )  # fmt: skip

    def sign_cert(self, name: str) -> str | None:
        """The certificate (PEM) binding the device's capture-signing key to the home CA;
        kept after a revocation, since clips signed before it stay valid."""
        row = self.conn.execute("SELECT sign_cert FROM devices WHERE name = ?", (name,))
        found = row.fetchone()
        return found[0] if found else None

    def revoke(self, name: str) -> None:
        self._revoke("devices", name, f"no enrolled device called {name}")

    def _revoke(self, table: Literal["devices", "integrations"], name: str, missing: str) -> None:
        """Mark ``name``'s identity in ``table`` revoked and put its serial on the CRL."""
        now = time.time()
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            cursor = self.conn.execute(
                f"UPDATE {table} SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)
            )
            if cursor.rowcount != 1:
                raise EnrollError(missing)
            self.conn.execute(
                "INSERT OR IGNORE INTO revoked_certificates (serial, name, revoked)"
                f" SELECT serial, name, ? FROM {table} WHERE name = ?",
                (now, name),
            )
        self.pki.write_crl(self.revoked_serials())

    def revoked_serials(self) -> list[int]:
        """Every certificate ever revoked: the CRL, which never forgets one."""
        rows = self.conn.execute("SELECT serial FROM revoked_certificates ORDER BY revoked")
        return [int(serial) for (serial,) in rows]

    def add_integration(self, name: str, cert: x509.Certificate) -> None:
        """Record an integration identity; an earlier one of the same name is revoked."""
        now = time.time()
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT OR IGNORE INTO revoked_certificates (serial, name, revoked)"
                " SELECT serial, name, ? FROM integrations WHERE name = ? AND revoked IS NULL",
                (now, name),
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO integrations (name, serial, created) VALUES (?, ?, ?)",
                (name, str(cert.serial_number), now),
            )
        self.pki.write_crl(self.revoked_serials())

    def revoke_integration(self, name: str) -> None:
        self._revoke("integrations", name, f"there is no {name} identity to revoke")

    def active_integrations(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM integrations WHERE revoked IS NULL")
        return sorted(name for (name,) in rows)

    def integration_created(self, name: str) -> float | None:
        row = self.conn.execute(
            "SELECT created FROM integrations WHERE name = ? AND revoked IS NULL", (name,)
        ).fetchone()
        return row[0] if row else None

    def active_devices(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM devices WHERE revoked IS NULL ORDER BY name")
        return [name for (name,) in rows]

    def devices(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT name, fingerprint, enrolled, revoked FROM devices ORDER BY name"
        )
        keys = ("name", "fingerprint", "enrolled", "revoked")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def sign_key(self, name: str) -> ed25519.Ed25519PublicKey | None:
        """The device's clip-signing key, if it is enrolled and not revoked."""
        row = self.conn.execute(
            "SELECT sign_key FROM devices WHERE name = ? AND revoked IS NULL", (name,)
        ).fetchone()
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(row[0])) if row else None


def redeem(pki: Pki, registry: Registry, request: EnrollRequest) -> x509.Certificate:
    """The hub's side of enrollment: check everything first, then use the token and issue."""
    registry.check(request.secret, request.name, request.expires)
    try:
        csr = x509.load_pem_x509_csr(request.csr.encode())
        sign_key = bytes.fromhex(request.sign_key)
        ed25519.Ed25519PublicKey.from_public_bytes(sign_key)
    except ValueError as exc:
        raise EnrollError(f"unreadable certificate request or signing key: {exc}") from None
    if not csr.is_signature_valid:
        raise EnrollError("the certificate request's signature is wrong")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise EnrollError("the device key must be ECDSA P-256")
    if not registry.redeem(request.secret):
        raise EnrollError("this enrollment token was used already: each works once")
    cert = pki.issue(key, request.name, [ExtendedKeyUsageOID.CLIENT_AUTH])
    signing = pki.issue(ed25519.Ed25519PublicKey.from_public_bytes(sign_key), request.name, [])
    registry.add_device(request.name, cert, sign_key, signing)
    return cert


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
