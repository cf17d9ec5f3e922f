"""Helpers and fixtures every part's tests use: a real Mosquitto per test on a free
loopback port, a directory Mosquitto's own user may read, and waiting on a condition.
Nothing here needs more than the ``porch`` package itself."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from porch.localbroker import LocalBroker

ROOT = Path(__file__).resolve().parents[2]
"""The repository: its docs, systemd units and scripts."""
TIMEOUT = 60.0
"""Generous: two cores shared by a broker, encoders and the test itself."""


def wait_for(condition: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory Mosquitto's own user may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="porch-home-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
