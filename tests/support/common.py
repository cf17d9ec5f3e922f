"""Helpers and fixtures every part's tests use: a real Mosquitto per test on a free
loopback port, a directory Mosquitto's own user may read, and waiting on a condition.
Nothing here needs more than the ``porch`` package itself."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
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


class CountingListener:
    """A TCP listener on ``host`` (a loopback address) that counts the connections made to
    it and closes each: how a test sees whether anything connected where it must not."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def build_wheel(out: Path) -> Path:
    """Porch's wheel, built by pip from a copy of this checkout (pip builds in the tree it is
    given; links kept as links), in ``out``."""
    tree = out / "checkout"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "var", "build", "*.egg-info", "__pycache__", ".*_cache"))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(tree)],
        check=True,
        timeout=10 * TIMEOUT,
    )
    (built,) = out.glob("porch-*.whl")
    return built
