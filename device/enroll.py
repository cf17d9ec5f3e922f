"""The device's side of enrollment (``porch device enroll TOKEN``).

The device makes its own keys (an ECDSA P-256 TLS key and an Ed25519 clip-signing key);
neither leaves it. It connects to the hub named in the token, checks the hub's certificate
against the token's fingerprint before sending anything, sends a CSR, and writes its
certificate, the CA, its keys and its ``device.toml`` only once the hub said yes: a refused
enrollment writes nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from porch.core.config import to_toml
from porch.core.enrollment import EnrollError, Token, pem_private_key
from porch.core.fsutil import atomic_write, hand_over
from porch.core.wire import spoken_name

TIMEOUT_S = 30


def _request(token: Token, body: bytes) -> dict:
    host, _, port = token.hub.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint below
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=TIMEOUT_S)
    try:
        try:
            connection.connect()
        except OSError as exc:
            raise EnrollError(f"cannot reach the hub at {token.hub}: {exc}") from None
        der = connection.sock.getpeercert(binary_form=True)
        if not der or hashlib.sha256(der).hexdigest() != token.fingerprint:
            raise EnrollError(
                f"the hub at {token.hub} is not the one this token names (its certificate's"
                " fingerprint differs): nothing was sent"
            )
        connection.request("POST", "/enroll", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read() or b"{}")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise EnrollError(f"enrollment with {token.hub} failed: {exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise EnrollError(f"the hub refused: {answer.get('detail', response.status)}")
    return answer


SERVICE_USER = "porch"
"""Who the doorbell's service runs as (systemd/porch-device.service's User=)."""


def enroll(
    token_text: str,
    directory: Path,
    config_path: Path,
    force: bool = False,
    service_user: str = SERVICE_USER,
) -> Path:
    """Enroll this device; returns the config file written. Run as root, it hands the
    keys' folder, the keys and the config to ``service_user`` (modes 0700/0600 kept), so
    that the service can read them and nobody else."""
    token = Token.decode(token_text)
    if token.expired:
        raise EnrollError("this enrollment token has expired (15 minutes): make a new one")
    if config_path.exists() and not force:
        raise EnrollError(f"{config_path} exists: use --force to replace it")
    tls_key = ec.generate_private_key(ec.SECP256R1())
    sign_key = ed25519.Ed25519PrivateKey.generate()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, token.name)]))
        .sign(tls_key, hashes.SHA256())
    )
    body = {
        "secret": token.secret,
        "name": token.name,
        "expires": token.expires,
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "sign_key": sign_key.public_key().public_bytes_raw().hex(),
    }
    answer = _request(token, json.dumps(body).encode())

    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = {
        "device.key": (pem_private_key(tls_key), 0o600),
        "sign.key": (pem_private_key(sign_key), 0o600),
        "device.crt": (answer["certificate"].encode(), 0o644),
        "ca.crt": (answer["ca"].encode(), 0o644),
    }
    for name, (data, mode) in files.items():
        atomic_write(directory / name, data)
        os.chmod(directory / name, mode)
    settings = {
        "device_id": answer["device_id"],
        "name": spoken_name(answer["device_id"]),
        "mqtt": {
            "host": answer["broker_host"],
            "port": int(answer["broker_port"]),
            "tls_ca": directory / "ca.crt",
            "tls_cert": directory / "device.crt",
            "tls_key": directory / "device.key",
        },
        "clips": {"seal_key": answer["seal_key"], "sign_key": directory / "sign.key"},
        # Said, not left to the default: the relay module decides (hardware.md: Chime relay).
        "gpio": {"chime_active_high": False},
    }
    heading = (
        f"# Written by 'porch device enroll' for {token.name}; add other settings as needed.\n"
    )
    config = heading + to_toml(settings)
    atomic_write(config_path, config.encode())
    os.chmod(config_path, 0o600)
    for path in (directory, *(directory / name for name in files), config_path):
        hand_over(path, service_user)
    return config_path
