"""`porch demo` (what README's first command runs): it starts, enrolls its simulated doorbell
through the real token and TLS endpoint, the doorbell comes online over mutual TLS, and
Ctrl-C stops it with exit 0; a second start reuses the enrollment."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
from conftest import TIMEOUT, wait_for


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


def device_state(data_dir) -> str | None:
    try:
        with sqlite3.connect(data_dir / "hub" / "hub.sqlite") as db:
            row = db.execute("SELECT state FROM devices WHERE device_id = 'front-door'")
            found = row.fetchone()
    except sqlite3.Error:
        return None
    return found[0] if found else None


def test_demo_starts_enrolls_its_doorbell_and_stops_cleanly(world):
    data_dir = world / "demo"
    for run in (1, 2):
        demo = start_demo(data_dir)
        try:
            found, seen = read_until(demo, r"open (http://127\.0\.0\.1:\d+)\s")
            assert ("Enrolled the simulated doorbell" in seen) == (run == 1), seen
            assert httpx.get(found.group(1) + "/login", timeout=TIMEOUT).status_code == 200
            wait_for(lambda: device_state(data_dir) == "online", what="the doorbell online")
            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=TIMEOUT) == 0
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
