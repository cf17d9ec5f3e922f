"""The service units: sandbox scores from systemd-analyze, and the notify/watchdog protocol
the agents speak to systemd."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess

import pytest

from tests.support.common import ROOT, wait_for
from tests.support.device import device_config, run_agent

UNITS = ROOT / "systemd"
TARGETS = {"porch-hub.service": 2.0, "porch-device.service": 3.0}


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is absent")
@pytest.mark.parametrize("unit", sorted(TARGETS))
def test_unit_exposure_meets_its_target(unit):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNITS / unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    score = float(found.group(1))
    print(f"{unit}: exposure {score} (target <= {TARGETS[unit]})")
    assert score <= TARGETS[unit]


@pytest.mark.parametrize("unit", sorted(TARGETS))
def test_units_are_watched_and_restart(unit):
    text = (UNITS / unit).read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ReadWritePaths=", "PrivateTmp=yes", "ProtectHome=yes",
                 "RestrictAddressFamilies="):  # fmt: skip
        assert line in text, f"{unit} lacks {line}"


def test_agent_tells_systemd_it_is_ready_and_pings_the_watchdog(
    tmp_path, broker, mock_pins, monkeypatch
):
    path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    received: list[str] = []

    def heard(state: str) -> bool:
        with contextlib.suppress(TimeoutError):
            received.append(listener.recv(100).decode())
        return received.count(state) >= (3 if state == "WATCHDOG=1" else 1)

    try:
        with run_agent(device_config(tmp_path, broker)):
            wait_for(lambda: heard("READY=1"), what="READY=1")
            wait_for(lambda: heard("WATCHDOG=1"), what="three watchdog pings")
        wait_for(lambda: heard("STOPPING=1"), what="STOPPING=1")
    finally:
        listener.close()


def _unit_settings(text: str) -> dict[str, list[str]]:
    """A unit file's settings, each key with every value it is given (DeviceAllow repeats)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_device_unit_lets_the_pi_libraries_see_their_board():
    # gpiozero identifies the board from /proc/cpuinfo or /proc/device-tree, picamera2 checks
    # the device tree, lgpio opens /dev/gpiochip* and makes a FIFO in the working directory,
    # libcamera needs /dev/video*, /dev/media* and /dev/dma_heap. Hide any and the doorbell
    # silently falls back to a synthetic camera, or fails to start.
    settings = _unit_settings((UNITS / "porch-device.service").read_text())
    assert "pid" not in settings.get("ProcSubset", []), "ProcSubset=pid hides /proc/cpuinfo"
    assert settings.get("PrivateDevices", ["no"])[-1] == "no"
    hidden = " ".join(
        settings.get("InaccessiblePaths", []) + settings.get("TemporaryFileSystem", [])
    )
    for path in ("/proc/cpuinfo", "/proc/device-tree", "/dev", "/sys/firmware"):
        assert path not in hidden, f"{path} is hidden"
    allowed = " ".join(settings.get("DeviceAllow", []))
    for device in ("char-gpiochip", "char-video4linux", "char-media", "/dev/dma_heap/"):
        assert device in allowed, f"{device} is not allowed"
    workdir = settings.get("WorkingDirectory", [""])[-1]
    writable = settings.get("ReadWritePaths", []) + [
        f"/var/lib/{name}" for name in settings.get("StateDirectory", [])
    ]
    assert workdir and any(workdir.startswith(path) for path in writable), (
        "no writable working directory for lgpio's FIFO"
    )
