"""The home's own certificate authority and the hub's keys, in one directory (0700, files 0600).

=================  ===========================================================================
``ca.key/.crt``    the home CA (ECDSA P-256): signs the broker's, the hub's and every device's
                   certificate, and the revocation list
``broker.key/.crt`` Mosquitto's TLS server certificate (owned by the ``mosquitto`` user)
``hub.key/.crt``   the hub: TLS server (web app, enrollment) and its MQTT client identity
                   (CN ``porch-hub``)
``seal.key``       X25519: devices seal clips to its public half; only the hub can open them
``export.key/.crt`` Ed25519: signs export bundles and the audit log's head (apart from TLS)
``crl.pem``        revoked device certificates
``registry.sqlite`` enrollment tokens (hashes only) and enrolled devices
=================  ===========================================================================

ECDSA P-256 for everything TLS (browsers and Mosquitto accept it everywhere); Ed25519 and
X25519 only where TLS is not involved.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from porch.core.enrollment import pem_private_key
from porch.core.fsutil import atomic_write, hand_over
from porch.core.seal import Key, load_private_key
from porch.core.wire import HUB_IDENTITY

CA_YEARS = 20
LEAF_YEARS = 5
FILES = ("ca.key", "ca.crt", "broker.key", "broker.crt", "hub.key", "hub.crt", "seal.key",
         "export.key", "export.crt", "crl.pem")  # fmt: skip
EXPORT_IDENTITY = "porch-hub-export"
EMAIL_PROTECTION = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.4")
"""The extended key usage C2PA validators accept for a claim signer (of those a private CA
may issue); without one they reject the credential."""


class PkiError(Exception):
    """Provisioning cannot go on; ``str()`` says why and what to do."""


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex: what a device pins."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Porch home"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _alt_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass
class Pki:
    """The directory; every method reads what it needs from disk."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def initialised(self) -> bool:
        return all(self.path(name).exists() for name in FILES)

    def ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        return self._key("ca.key", ec.EllipticCurvePrivateKey), self.cert("ca.crt")

    def cert(self, name: str) -> x509.Certificate:
        if not self.path(name).exists():
            raise PkiError(f"{self.path(name)} is missing: run 'porch provision init' first")
        return x509.load_pem_x509_certificate(self.path(name).read_bytes())

    def _key(self, name: str, kind: type[Key]) -> Key:
        return load_private_key(self.path(name), kind)

    def seal_key(self) -> x25519.X25519PrivateKey:
        return self._key("seal.key", x25519.X25519PrivateKey)

    def export_key(self) -> ed25519.Ed25519PrivateKey:
        return self._key("export.key", ed25519.Ed25519PrivateKey)

    def content_credentials(self) -> tuple[bytes, bytes]:
        """(certificate chain, private key), PEM, that sign C2PA Content Credentials: the
        export key, with a certificate of its own (issued on first use) carrying the key
        usages C2PA requires."""
        if not self.path("c2pa.crt").exists():
            key = self.export_key()
            ca_key, ca_cert = self.ca()
            cert = (
                self._builder(_name(EXPORT_IDENTITY), ca_cert.subject, key.public_key())
                .not_valid_after(_now() + dt.timedelta(days=365 * LEAF_YEARS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                    critical=False,
                )
                .add_extension(
                    x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage([EMAIL_PROTECTION]), critical=False)
                .sign(ca_key, hashes.SHA256())
            )
            self._write("c2pa.crt", _pem_cert(cert), 0o644)
        chain = self.path("c2pa.crt").read_bytes() + self.path("ca.crt").read_bytes()
        return chain, pem_private_key(self.export_key())

    def seal_public(self) -> bytes:
        return self.seal_key().public_key().public_bytes_raw()

    def hub_fingerprint(self) -> str:
        return fingerprint(self.cert("hub.crt"))

    # -- creating -------------------------------------------------------------------------

    def init(self, hosts: list[str], force: bool = False) -> list[str]:
        """Create the CA and the hub's keys; returns the files written.

        Idempotent: a complete directory is left as it is. A partial one (or a complete one
        with ``force``) is refused without ``force`` and recreated with it.
        """
        present = [name for name in FILES if self.path(name).exists()]
        if present and not force:
            if len(present) == len(FILES):
                return []
            raise PkiError(
                f"{self.root} holds part of a PKI ({', '.join(present)}); "
                "re-run with --force to replace it (every enrolled device must enroll again)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if force:
            (self.root / "registry.sqlite").unlink(missing_ok=True)
        hosts = list(dict.fromkeys([*hosts, "localhost", "127.0.0.1"]))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            self._builder(_name("Porch home CA"), _name("Porch home CA"), ca_key.public_key())
            .not_valid_after(_now() + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self._write("ca.key", pem_private_key(ca_key))
        self._write("ca.crt", _pem_cert(ca_cert), 0o644)
        for name, cn, usages in (
            ("broker", "porch-broker", [ExtendedKeyUsageOID.SERVER_AUTH]),
            ("hub", HUB_IDENTITY,
             [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        ):  # fmt: skip
            key = ec.generate_private_key(ec.SECP256R1())
            cert = self.issue(key.public_key(), cn, usages, hosts)
            self._write(f"{name}.key", pem_private_key(key))
            self._write(f"{name}.crt", _pem_cert(cert), 0o644)
        self._write("seal.key", pem_private_key(x25519.X25519PrivateKey.generate()))
        export_key = ed25519.Ed25519PrivateKey.generate()
        self._write("export.key", pem_private_key(export_key))
        self._write(
            "export.crt", _pem_cert(self.issue(export_key.public_key(), EXPORT_IDENTITY, [])), 0o644
        )
        self.write_crl([])
        self.path("c2pa.crt").unlink(missing_ok=True)  # a new CA and export key: a new one
        self.content_credentials()  # (older homes get theirs on their first export)
        self._give_broker_its_key()
        return [*FILES, "c2pa.crt"]

    def issue(
        self,
        public_key,
        cn: str,
        usages: list[x509.ObjectIdentifier],
        hosts: list[str] | None = None,
        years: int = LEAF_YEARS,
    ) -> x509.Certificate:
        """A leaf certificate signed by the home CA; the subject is ours, never the CSR's."""
        ca_key, ca_cert = self.ca()
        builder = (
            self._builder(_name(cn), ca_cert.subject, public_key)
            .not_valid_after(_now() + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if usages:  # none: a signing-only key (exports, capture signatures)
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if hosts:
            builder = builder.add_extension(_alt_names(hosts), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def write_crl(self, serials: list[int]) -> None:
        ca_key, ca_cert = self.ca()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(_now() - dt.timedelta(minutes=5))
            .next_update(_now() + dt.timedelta(days=365 * CA_YEARS))
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_now() - dt.timedelta(minutes=5))
                .build()
            )
        self._write("crl.pem", builder.sign(ca_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM), 0o644)  # fmt: skip

    @staticmethod
    def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    def _write(self, name: str, data: bytes, mode: int = 0o600) -> None:
        path = self.path(name)
        atomic_write(path, data)
        os.chmod(path, mode)

    def _give_broker_its_key(self) -> None:
        """Run as root (``sudo porch provision init``), hand the files to the hub's ``porch``
        user and the broker's key to ``mosquitto``, which Mosquitto drops to and which must
        read it; the directory may be entered, not listed."""
        for name in (*FILES, "c2pa.crt"):
            hand_over(self.path(name), "mosquitto" if name == "broker.key" else HUB_USER)
        hand_over(self.root, HUB_USER)
        os.chmod(self.root, 0o711)


HUB_USER = "porch"
"""The system user the hub runs as (systemd/porch-hub.service)."""
