"""The hub's side of provisioning: tokens, enrollment, revocation, and keeping Mosquitto's
ACL and CRL in step with the registry. Used by the CLI, the installer's pages and the
enrollment endpoint alike."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from porch.core.config import ProvisioningSettings
from porch.core.enrollment import EnrollRequest, Token
from porch.provisioning import broker
from porch.provisioning.enrollment import Registry, pem, redeem
from porch.provisioning.pki import Pki

log = logging.getLogger(__name__)


class HomeAuthority:
    def __init__(self, settings: ProvisioningSettings, reload: Callable[[], None] | None = None):
        self.settings = settings
        self.pki = Pki(Path(settings.pki_dir))
        self.registry = Registry(self.pki)
        self._reload = reload or (lambda: broker.reload(settings.reload_command))
        self._lock = threading.Lock()

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
        log.info("revoked %s", name)

    def sync_broker(self) -> None:
        """Rewrite the ACL from the registry and have Mosquitto re-read it and the CRL."""
        broker.write_acl(self.pki, self.registry.active_devices())
        self._reload()
