"""The hub's side of provisioning: tokens, enrollment, revocation, and keeping Mosquitto's
ACL and CRL in step with the registry. Used by the CLI, the installer's pages and the
enrollment endpoint alike."""

from __future__ import annotations

import io
import logging
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from porch.core.config import ProvisioningSettings
from porch.core.enrollment import EnrollRequest, Token, pem_private_key
from porch.core.wire import HOME_ASSISTANT_IDENTITY
from porch.provisioning import broker
from porch.provisioning.enrollment import Registry, pem, redeem
from porch.provisioning.pki import Pki

log = logging.getLogger(__name__)
HOME_ASSISTANT_README = """Porch for Home Assistant: a read-only identity on the home's broker.

In Home Assistant: Settings > Devices & services > Add integration > MQTT, then
  Broker: {host}    Port: {port}
  Advanced options: Use a client certificate: yes; Broker certificate validation: Custom,
  upload ca.crt; Client certificate: client.crt; Private key: client.key.
The doorbells appear by themselves (MQTT discovery). Keep client.key private: whoever holds
it reads your doorbells' rings and motion. Revoke it on the hub's Devices page.
"""


class HomeAuthority:
    def __init__(self, settings: ProvisioningSettings, reload: Callable[[], None] | None = None):
        self.settings = settings
        self.pki = Pki(Path(settings.pki_dir))
        self.registry = Registry(self.pki)
        self._reload = reload or (lambda: broker.reload(settings.reload_command))
        self._lock = threading.Lock()
        self.on_revoke: Callable[[str], None] | None = None
        """Told each revoked device's name (the hub clears what it published about it)."""

    @property
    def public_host(self) -> str:
        return self.settings.public_host or self.settings.enroll_host

    def new_token(self, name: str) -> Token:
        hub = f"{self.public_host}:{self.settings.enroll_port}"
        return self.registry.new_token(name, hub)

    def enroll(self, request: EnrollRequest) -> dict:
        """Redeem a device's request: its certificate and everything it needs to connect."""
        with self._lock:
            cert = redeem(self.pki, self.registry, request)
            self.sync_broker()
        log.info("enrolled %s", request.name)
        return {
            "device_id": request.name,
            "certificate": pem(cert),
            "ca": pem(self.pki.cert("ca.crt")),
            "broker_host": self.public_host,
            "broker_port": self.settings.broker_port,
            "seal_key": self.pki.seal_public().hex(),
        }

    def revoke(self, name: str) -> None:
        with self._lock:
            self.registry.revoke(name)
            self.sync_broker()
        if self.on_revoke is not None:
            self.on_revoke(name)
        log.info("revoked %s", name)

    def new_home_assistant(self) -> bytes:
        """A read-only broker identity for the home's Home Assistant, as a zip to hand to its
        MQTT integration: the CA, a client certificate and its key (made here, and kept
        nowhere but in the zip). An earlier one stops working."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.pki.issue(key.public_key(), HOME_ASSISTANT_IDENTITY,
                              [ExtendedKeyUsageOID.CLIENT_AUTH])  # fmt: skip
        with self._lock:
            self.registry.add_integration(HOME_ASSISTANT_IDENTITY, cert)
            self.sync_broker()
        log.info("made a Home Assistant identity (serial %d)", cert.serial_number)
        files = {
            "ca.crt": pem(self.pki.cert("ca.crt")).encode(),
            "client.crt": pem(cert).encode(),
            "client.key": pem_private_key(key),
            "README.txt": HOME_ASSISTANT_README.format(
                host=self.public_host, port=self.settings.broker_port
            ).encode(),
        }
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return out.getvalue()

    def revoke_home_assistant(self) -> None:
        with self._lock:
            self.registry.revoke_integration(HOME_ASSISTANT_IDENTITY)
            self.sync_broker()
        log.info("revoked the Home Assistant identity")

    def sync_broker(self) -> None:
        """Rewrite the ACL from the registry and have Mosquitto re-read it and the CRL."""
        registry = self.registry
        broker.write_acl(self.pki, registry.active_devices(), registry.active_integrations())
        self._reload()
