"""Footage for the hub's tests: clips recorded by an enrolled, simulated doorbell in front
of a visitor, clips forged by a hostile one, and the checks a recipient runs on a bundle
(`porch verify`, and docs/verify.md's script with openssl alone)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner, Result

from porch.cli import main
from porch.core.wire import ClipMeta, new_id
from porch.device.camera.synthetic import Figure, SyntheticScene
from tests.support import real_face
from tests.support.common import ROOT, TIMEOUT, wait_for
from tests.support.device import RunningAgent, agent_from
from tests.support.hub import Home


def visitor_scene() -> SyntheticScene:
    """A visitor standing at the door, face to the camera, the whole time: a real person's
    photograph (tests/support/real_face.py's), head and shoulders."""
    figure = Figure([(0, 0.5, 1.0, 0.9), (3600, 0.5, 1.0, 0.9)], picture=real_face.photo())
    return SyntheticScene(640, 360, 1, [figure])


def record_two_clips(home: Home, postroll_s: float = 1.0, every_s: float = 1.5) -> list[dict]:
    """Enroll front-door, press twice in front of the visitor (``every_s`` seconds of video
    apart); the two clips at the hub."""
    config = home.enroll("front-door")
    agent = agent_from(config, home.root / "device", visitor_scene(), (640, 360), postroll_s)
    with RunningAgent(agent):
        wait_for(agent.link.connected.is_set, what="the device")
        for count in (1, 2):
            wait_for(lambda c=count: agent.media_time > every_s * c, what="pre-roll")
            agent.doorbell.simulate_press()
            wait_for(lambda c=count: len(stored(home)) >= c, what=f"clip {count} at the hub")
    return stored(home)


def stored(home: Home) -> list[dict]:
    rows = home.hub.web_db.conn.execute(
        "SELECT clip_id, start_ts, end_ts FROM clips WHERE state = 'stored' ORDER BY start_ts"
    ).fetchall()
    return [dict(zip(("clip_id", "start_ts", "end_ts"), r, strict=True)) for r in rows]


def run_verify(bundle: Path, ca: Path | None = None) -> Result:
    args = ["verify", str(bundle)] + (["--ca", str(ca)] if ca else [])
    return CliRunner().invoke(main, args)


def check_script(tmp_path: Path) -> Path:
    """docs/verify.md's check-bundle.sh, exactly as the page gives it."""
    text = (ROOT / "docs" / "verify.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "check-bundle" in b]
    script = tmp_path / "check-bundle.sh"
    script.write_text(block)
    return script


def run_check(
    script: Path, bundle: Path, fingerprint: str, without: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """docs/verify.md's script on ``bundle``; ``without``: as on a machine that lacks those
    commands (every other one of /usr/bin and /bin is there)."""
    env = dict(os.environ)
    if without:
        tools = Path(tempfile.mkdtemp(prefix="porch-tools-"))
        for folder in ("/usr/bin", "/bin"):
            for entry in os.scandir(folder):
                if entry.name not in without and not (tools / entry.name).exists():
                    (tools / entry.name).symlink_to(entry.path)
        env["PATH"] = str(tools)
    return subprocess.run(["sh", str(script), str(bundle), fingerprint], capture_output=True,
                          text=True, timeout=TIMEOUT, env=env)  # fmt: skip


MiB = 1024 * 1024
CHUNK = 64 * 1024


def forged_clip(size: int) -> tuple[ClipMeta, bytes]:
    data = os.urandom(size)
    chunks = [data[i : i + CHUNK] for i in range(0, size, CHUNK)]
    thumb = os.urandom(2000)
    now = time.time()
    meta = ClipMeta(
        device_id="evil", clip_id=new_id(), event_ids=[new_id()], start_ts=now - 10,
        trigger_ts=now - 5, end_ts=now, size_bytes=size,
        sha256=hashlib.sha256(data).hexdigest(), width=320, height=240, chunk_bytes=CHUNK,
        chunk_sha256=[hashlib.sha256(c).hexdigest() for c in chunks],
        thumbnail_bytes=len(thumb), thumbnail_sha256=hashlib.sha256(thumb).hexdigest(),
    )  # fmt: skip
    return meta, data
