"""What several benchmarks start with: a temporary home on loopback (imported after the
benchmark has put the repository on sys.path, for tests.support)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from porch.hub.service import HubService
from porch.localbroker import LocalBroker
from tests.support.hub import PASSWORD, start_hub


@contextmanager
def loopback_home(
    owner: bool = True, **hub_settings
) -> Iterator[tuple[Path, LocalBroker, HubService]]:
    """(a temporary directory, a Mosquitto on a free loopback port, a hub on it, started
    with conftest.start_hub's ``hub_settings``); gpiozero on mock pins, and with ``owner``
    an account 'owner' (password conftest.PASSWORD)."""
    Device.pin_factory = MockFactory()
    with tempfile.TemporaryDirectory() as tmp_name, LocalBroker(Path(tmp_name) / "b") as broker:
        tmp = Path(tmp_name)
        hub = start_hub(tmp / "hub", broker, **hub_settings)
        if owner:
            hub.accounts.add_user("owner", PASSWORD, "owner")
        try:
            yield tmp, broker, hub
        finally:
            hub.stop()
