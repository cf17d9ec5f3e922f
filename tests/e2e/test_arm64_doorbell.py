"""The doorbell on Raspberry Pi OS's userland: a Debian 12 arm64 root (scripts/arm64-root)
run under qemu-user, with ``porch[pi]`` from wheels only and this checkout's own wheel. Every
device module imports there, no hub library is installed, the device tests pass there, and
``porch device run`` (synthetic camera, simulated pins) hands its status, motion and a clip
to a hub on this machine.

Run by ``make test`` (``make test-arm64``); a plain ``pytest`` leaves it out (marker
``arm64``)."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from porch.hub.service import HubService
from tests.support.common import ROOT, TIMEOUT, build_wheel, wait_for
from tests.support.device import write_device_toml

pytestmark = [pytest.mark.arm64, pytest.mark.slow]

EMULATED = 10.0
"""How much slower the arm64 userland runs here than this machine, roughly (qemu-user)."""
HUB_LIBRARIES: set[str] = runpy.run_path(str(ROOT / "scripts" / "check-device-install"))["HUB_ONLY"]
"""The hub's own libraries, none of which a doorbell's install may bring."""


class Pi:
    """Runs commands in the arm64 root with bubblewrap: the root writable (the venv gets this
    checkout's wheel), the checkout read-only at /src, ``work`` at /work, this machine's
    network namespace (loopback: a broker here is 127.0.0.1 there too)."""

    def __init__(self, root: Path, work: Path):
        self.root, self.work = root, work

    def command(self, *args: str) -> list[str]:
        return ["bwrap", "--bind", str(self.root), "/", "--proc", "/proc", "--dev", "/dev",
                "--tmpfs", "/tmp", "--ro-bind", str(ROOT), "/src",
                "--bind", str(self.work), "/work", "--chdir", "/src", "--die-with-parent",
                "--clearenv", "--setenv", "PATH", "/opt/porch/bin:/usr/sbin:/usr/bin:/bin",
                "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
                "--setenv", "PYTHONDONTWRITEBYTECODE", "1", *args]  # fmt: skip

    def run(self, *args: str, timeout: float = 5 * TIMEOUT) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture(scope="module")
def pi(tmp_path_factory) -> Iterator[Pi]:
    root = os.environ.get("PORCH_ARM64_ROOT")
    assert root and (Path(root) / ".complete").exists(), (
        "PORCH_ARM64_ROOT must name the root scripts/arm64-root makes (make test-arm64 does both)"
    )
    work = tmp_path_factory.mktemp("pi")
    work.chmod(0o755)
    wheel = build_wheel(work / "wheel")
    machine = Pi(Path(root), work)
    # porch[pi] as hardware.md installs it (its dependencies are in the cached root already),
    # binary wheels only: the root has no compiler either.
    machine.run("pip", "install", "--quiet", "--only-binary=:all:", "--force-reinstall",
                "--no-deps", f"/work/wheel/{wheel.name}")  # fmt: skip
    machine.run("pip", "install", "--quiet", "--only-binary=:all:",
                f"/work/wheel/{wheel.name}[pi,test-device]")  # fmt: skip
    machine.run("pip", "check")
    yield machine


def test_the_doorbell_installs_from_wheels_and_every_device_module_imports(pi):
    script = (
        "import importlib, json, pkgutil, platform, porch\n"
        "names = [m.name for part in ('core', 'device')\n"
        "         for m in pkgutil.walk_packages([porch.__path__[0] + '/' + part],"
        " f'porch.{part}.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(json.dumps({'machine': platform.machine(), 'modules': len(names),"
        " 'file': porch.__file__}))"
    )
    seen = json.loads(pi.run("python", "-c", script).stdout)
    assert seen["machine"] == "aarch64"
    assert seen["modules"] >= 30, seen
    assert seen["file"].startswith("/opt/porch/lib/python3.11/site-packages/"), seen
    installed = {p["name"].lower() for p in json.loads(
        pi.run("pip", "list", "--format", "json").stdout)}  # fmt: skip
    assert not installed & HUB_LIBRARIES, (
        f"a hub library on the doorbell: {installed & HUB_LIBRARIES}"
    )
    assert {"lgpio", "gpiozero", "av", "opencv-python-headless", "paho-mqtt"} <= installed


@pytest.mark.timeout(45 * 60)  # about 7 minutes here: every instruction is emulated
def test_the_device_tests_pass_on_the_pi_userland(pi):
    """tests/device with only porch[pi] and pytest installed (CAP_SYS_ADMIN: the full-disk
    test mounts a tiny tmpfs); none may be skipped."""
    command = pi.command("python", "-m", "pytest", "-p", "no:cacheprovider", "-q",
                         "--durations=5", "--basetemp", "/tmp/pytest", "tests/device")  # fmt: skip
    command[1:1] = ["--cap-add", "CAP_SYS_ADMIN"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=40 * 60)
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary


def test_porch_device_run_hands_status_motion_and_a_clip_to_the_hub(pi, hub_service: HubService):
    """The agent as systemd would start it, on the Pi's userland, against this machine's
    broker and a hub here: online, motion from the synthetic porch's first visitor, and the
    clip of it stored at the hub; stopped, it says goodbye."""
    config = write_device_toml(pi.work / "device.toml", Path("/work/data"),
                               hub_service.config.mqtt.port, camera={"width": 640, "height": 360},
                               motion={"enabled": True})  # fmt: skip
    command = pi.command("porch", "device", "run", "--config", f"/work/{config.name}")
    log = pi.work / "agent.log"
    with log.open("wb") as output:
        agent = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        wait_for(lambda: [d for d in hub_service.devices() if d["state"] == "online"],
                 timeout=EMULATED * 10, what="the doorbell online")  # fmt: skip
        wait_for(lambda: hub_service.ingest.db.count_events("motion") >= 1, timeout=EMULATED * 12,
                 what="motion (the first visitor comes 10 to 20 s in)")  # fmt: skip
        wait_for(lambda: hub_service.ingest.clips_stored >= 1, timeout=EMULATED * 12,
                 what="a clip handed over and stored")  # fmt: skip
        print(f"online, motion and a stored clip {time.monotonic() - started:.0f} s after start")
    finally:
        # SIGTERM to the agent itself, as systemd stops it (bubblewrap passes no signals on;
        # the agent is its child), and bubblewrap then exits with the agent's status.
        children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
        agent.wait(TIMEOUT)
    assert agent.returncode == 0, log.read_text(errors="replace")[-3000:]
    wait_for(lambda: hub_service.devices()[0]["state"] == "offline", what="its goodbye")
