"""The enrollment contract both sides speak: the one-time token and the enrollment request.

A token carries the hub's enrollment address, the SHA-256 fingerprint of the hub's TLS
certificate (the device pins it), the device's name, an expiry and a random secret; it ends
in a check value so a mistyped or edited token is refused before anything is sent. The hub's
side (issuing, redeeming, the registry) is :mod:`porch.provisioning.enrollment`; the device's
is :mod:`porch.device.enroll`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from porch.core.wire import DEVICE_ID_PATTERN, HUB_IDENTITY

TOKEN_PREFIX = "porch1"
DEVICE_NAME = re.compile(DEVICE_ID_PATTERN)
RESERVED_PREFIX = "porch"
"""The home's own identities (the hub, the broker, the export signer) all begin so."""
RESERVED_NAMES = frozenset(
    {"hub", "broker", "ca", "mosquitto", "homeassistant", "home-assistant", "integration"}
)
"""Names a person could mistake for the home's own parts or its integrations."""


class EnrollError(Exception):
    """An enrollment refused; ``str()`` is the message shown to the installer."""


def check_device_name(name: str) -> None:
    """Refuse (:class:`EnrollError`) anything but a plain device name that no part of the
    home uses for itself: the broker's ACL gives ``porch-hub`` every topic."""
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        raise EnrollError(
            f"{name!r} is not a device name: lower-case letters, digits and '-', 32 at most"
        )
    if name.startswith(RESERVED_PREFIX) or name in RESERVED_NAMES:
        raise EnrollError(
            f"{name!r} is reserved for the home's own parts ({HUB_IDENTITY}, the broker,"
            " integrations): choose another name"
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Token:
    name: str
    hub: str
    """host:port of the hub's enrollment endpoint (TLS)."""
    fingerprint: str
    secret: str
    expires: int

    def encode(self) -> str:
        body = _b64(json.dumps(asdict(self), separators=(",", ":")).encode())
        return f"{TOKEN_PREFIX}.{body}.{_check(body)}"

    @classmethod
    def decode(cls, text: str) -> Token:
        parts = text.strip().split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise EnrollError("this is not a Porch enrollment token")
        body, check = parts[1], parts[2]
        if not secrets.compare_digest(_check(body), check):
            raise EnrollError(
                "the token is damaged or was altered: ask the installer for a new one"
            )
        try:
            fields = json.loads(_unb64(body))
            token = cls(**fields)
        except (ValueError, TypeError) as exc:
            raise EnrollError(f"the token is damaged or was altered ({exc})") from None
        if not DEVICE_NAME.fullmatch(token.name) or not re.fullmatch(
            r"[0-9a-f]{64}", token.fingerprint
        ):
            raise EnrollError("the token is damaged or was altered")
        return token

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires


@dataclass(frozen=True)
class EnrollRequest:
    """What a device sends: the token's secret, name and expiry, its CSR and signing key."""

    secret: str
    name: str
    expires: int
    csr: str
    sign_key: str
    """The device's Ed25519 public key, raw, hex."""


def pem_private_key(key: PrivateKeyTypes) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (files mode 0600, on the machine that made it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
