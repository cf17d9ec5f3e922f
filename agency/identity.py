"""An agency's keys and certificate, and a regional authority that can vouch for agencies.

An agency directory holds ``sign.key`` (Ed25519: signs requests), ``agency.crt`` (its
certificate, self-signed, or issued by a regional authority, whose certificate is then in
``chain.pem``), ``encrypt.key`` (X25519: bundles are sealed to it) and ``agency.toml``
(its name, relay account and drop box address). Owners trust an agency by its certificate's
fingerprint, accepted on a request's page after comparing it with the one the agency
publishes, or by the regional authority's certificate they import.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.x509.oid import NameOID

from porch.core.area import ACCOUNT_PATTERN, fingerprint, pem
from porch.core.config import to_toml
from porch.core.fsutil import atomic_write
from porch.core.seal import load_private_key

YEARS = 3


class IdentityError(Exception):
    """Keys or certificates missing or not fit; ``str()`` says what to do."""


def _name(cn: str, kind: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, kind),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # fmt: skip


def _certificate(subject: str, kind: str, public_key, issuer: x509.Name, signer, ca: bool):
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject, kind))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * YEARS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .sign(signer, None)
    )


def _private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _write_secret(path: Path, data: bytes) -> None:
    atomic_write(path, data)
    os.chmod(path, 0o600)


@dataclass
class Agency:
    root: Path

    @property
    def settings(self) -> dict:
        try:
            return tomllib.loads((self.root / "agency.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise IdentityError(
                f"{self.root}: no agency here ('porch agency init'): {exc}"
            ) from None

    @property
    def name(self) -> str:
        return self.settings["name"]

    def init(self, name: str, account: str, dropbox: str, force: bool = False) -> str:
        """Make the agency's keys and self-signed certificate; returns its fingerprint."""
        if not re.fullmatch(ACCOUNT_PATTERN, account):
            raise IdentityError("the relay account is lower-case letters, digits and '-'")
        if (self.root / "sign.key").exists() and not force:
            raise IdentityError(f"{self.root} holds an agency already (--force makes anew)")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        key = ed25519.Ed25519PrivateKey.generate()
        cert = _certificate(name, "Porch agency", key.public_key(), _name(name, "Porch agency"),
                            key, ca=False)  # fmt: skip
        _write_secret(self.root / "sign.key", _private_pem(key))
        _write_secret(self.root / "encrypt.key", _private_pem(x25519.X25519PrivateKey.generate()))
        atomic_write(self.root / "agency.crt", pem(cert))
        (self.root / "chain.pem").unlink(missing_ok=True)
        atomic_write(self.root / "agency.toml", to_toml(
            {"name": name, "account": account, "dropbox": dropbox}).encode())  # fmt: skip
        return fingerprint(cert)

    def sign_key(self) -> ed25519.Ed25519PrivateKey:
        return load_private_key(self.root / "sign.key", ed25519.Ed25519PrivateKey)

    def encrypt_key(self) -> x25519.X25519PrivateKey:
        return load_private_key(self.root / "encrypt.key", x25519.X25519PrivateKey)

    def certificate(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate((self.root / "agency.crt").read_bytes())
        except OSError:
            raise IdentityError(f"{self.root}: no agency here ('porch agency init')") from None

    def chain(self) -> list[bytes]:
        """The agency's certificate, then its authority's if it has one (PEM each)."""
        chain = [pem(self.certificate())]
        if (self.root / "chain.pem").exists():
            chain.append((self.root / "chain.pem").read_bytes())
        return chain


@dataclass
class RegionalAuthority:
    """A CA that vouches for the agencies of a region; owners may import its certificate."""

    root: Path

    def init(self, name: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        key = ed25519.Ed25519PrivateKey.generate()
        subject = _name(name, "Porch regional authority")
        cert = _certificate(name, "Porch regional authority", key.public_key(), subject, key,
                            ca=True)  # fmt: skip
        _write_secret(self.root / "ca.key", _private_pem(key))
        atomic_write(self.root / "ca.crt", pem(cert))
        return fingerprint(cert)

    def issue(self, agency: Agency) -> str:
        """Vouch for ``agency``: its key certified under the authority (CN: its name)."""
        key = serialization.load_pem_private_key((self.root / "ca.key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate((self.root / "ca.crt").read_bytes())
        cert = _certificate(agency.name, "Porch agency", agency.sign_key().public_key(),
                            ca.subject, key, ca=False)  # fmt: skip
        atomic_write(agency.root / "agency.crt", pem(cert))
        atomic_write(agency.root / "chain.pem", pem(ca))
        return fingerprint(cert)
