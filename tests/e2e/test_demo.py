"""`porch demo` (what README's first command runs): it starts, enrolls its simulated doorbell
through the real token and TLS endpoint, the doorbell comes online over mutual TLS, and
Ctrl-C stops it with exit 0; a second start reuses the enrollment."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx

from tests.support.common import TIMEOUT, wait_for


def start_demo(data_dir):
    return subprocess.Popen(
        [sys.executable, "-m", "porch.cli", "demo", "--no-browser", "--port", "0",
         "--width", "320", "--height", "240", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def read_until(process, pattern: str) -> tuple[re.Match, str]:
    seen = ""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        found = re.search(pattern, seen)
        if found:
            return found, seen
    raise AssertionError(f"the demo never printed {pattern!r}:\n{seen}")


def online_since(data_dir, since: float) -> bool:
    """The doorbell said "online" to this run's hub (not a state left by the last run)."""
    try:
        with sqlite3.connect(data_dir / "hub" / "hub.sqlite") as db:
            row = db.execute(
                "SELECT state, last_seen FROM devices WHERE device_id = 'front-door'"
            ).fetchone()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == "online" and row[1] >= since


def drain(process, into: list[str]) -> None:
    """Keep reading the demo's output, so that it never blocks on a full pipe."""
    for line in process.stdout:
        into.append(line)


def test_demo_starts_enrolls_its_doorbell_and_stops_cleanly(world):
    data_dir = world / "demo"
    for run in (1, 2):
        started = time.time()
        demo = start_demo(data_dir)
        try:
            found, seen = read_until(demo, r"open (http://127\.0\.0\.1:\d+)\s")
            rest: list[str] = []
            threading.Thread(target=drain, args=(demo, rest), daemon=True).start()
            assert ("Enrolled the simulated doorbell" in seen) == (run == 1), seen
            assert httpx.get(found.group(1) + "/login", timeout=TIMEOUT).status_code == 200
            wait_for(lambda s=started: online_since(data_dir, s), what="the doorbell online")
            if run == 1:  # README: the visitor who walks up shows as someone at the door
                wait_for(lambda r=rest: "someone at the door" in "".join(r), timeout=90,
                         what="the demo's first visitor told apart from motion")  # fmt: skip
            if run == 2:  # the command line works against the demo, through its hub.toml
                hub_toml = data_dir / "hub.toml"
                wait_for(lambda h=hub_toml, r=rest, s=seen: str(h) in "".join(r) + s,
                         what="the demo to print its config's path")  # fmt: skip
                audit = subprocess.run(
                    [sys.executable, "-m", "porch.cli", "audit", "verify", "--config",
                     str(hub_toml)], capture_output=True, text=True, timeout=TIMEOUT,
                )  # fmt: skip
                assert audit.returncode == 0 and "intact" in audit.stdout, audit.stderr
                made = subprocess.run(
                    [sys.executable, "-m", "porch.cli", "provision", "home-assistant",
                     "--config", str(hub_toml), "--out", str(world / "ha.zip")],
                    capture_output=True, text=True, timeout=TIMEOUT,
                )  # fmt: skip
                assert made.returncode == 0, made.stderr
                acl = (data_dir / "pki" / "mosquitto.acl").read_text()
                assert "user porch-home-assistant" in acl
            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=2 * TIMEOUT) == 0, "".join(rest)[-3000:]
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()


def test_the_owners_edits_to_the_demos_hub_toml_survive_the_next_run(tmp_path):
    from porch.core.config import HomeAssistantSettings, HubConfig, MqttSettings, WebSettings, load
    from porch.demo import _with_owners_settings, _write_hub_toml

    first = HubConfig(data_dir=tmp_path / "hub", mqtt=MqttSettings(port=1111),
                      web=WebSettings(port=2222))  # fmt: skip
    path = _write_hub_toml(first, tmp_path)
    text = path.read_text().replace("snapshots = false", "snapshots = true")
    path.write_text(text)  # the owner opts in to the picture, as docs/home-assistant.md says
    run = HubConfig(data_dir=tmp_path / "hub", mqtt=MqttSettings(port=3333),
                    web=WebSettings(port=4444))  # fmt: skip
    merged = _with_owners_settings(tmp_path, run)
    assert merged.home_assistant == HomeAssistantSettings(snapshots=True)
    assert (merged.mqtt.port, merged.web.port) == (3333, 4444), "this run's ports"
    _write_hub_toml(merged, tmp_path)
    assert load(HubConfig, path).home_assistant.snapshots
    path.write_text("not toml [")
    assert _with_owners_settings(tmp_path, run) == run, "a broken file is written anew"
