"""kill -9 of the agent mid-clip: no half clip passes as whole, and the outbox replays."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess

from porch.core.fsutil import sha256_file
from porch.core.wire import parse
from porch.device.clips import ClipStore
from porch.localbroker import LocalBroker, free_port
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import start_device, write_device_toml
from tests.support.hub import start_hub


def test_kill9_mid_clip_leaves_no_half_clip_and_outbox_replays(tmp_path):
    port = free_port()  # nothing listens yet: the broker is "down" during the first run
    data = tmp_path / "device"
    config = tmp_path / "device.toml"
    write_device_toml(config, data, port, device_id="porch-cam", camera={"realtime": False},
                      clips={"preroll_s": 2, "postroll_s": 120})  # fmt: skip
    clips = data / "clips"

    agent = start_device(config, stderr=subprocess.PIPE)
    try:
        # The synthetic visitor arrives after ~10 s of video: a clip starts and keeps going.
        wait_for(
            lambda: clips.exists() and any(p.name.endswith(".part") for p in clips.iterdir()),
            what="a clip being written",
        )
        wait_for(
            lambda: max(p.stat().st_size for p in clips.iterdir()) > 50_000, what="the clip to grow"
        )
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(TIMEOUT)
    assert agent.returncode == -signal.SIGKILL
    assert any(p.name.endswith(".part") for p in clips.iterdir()), "killed mid-write"

    outbox = sqlite3.connect(data / "outbox.sqlite")
    queued = [parse(t, bytes(p)) for t, p in outbox.execute("SELECT topic, payload FROM outbox")]
    outbox.close()
    queued_events = {m.event_id for m in queued if hasattr(m, "event_id")}
    assert queued_events, "the motion start was stored before the kill"

    with LocalBroker(tmp_path / "broker", port=port) as broker:
        service = start_hub(tmp_path / "hub", broker)
        ingest = service.ingest
        agent = start_device(config, stderr=subprocess.PIPE)
        try:

            def replayed():
                rows = ingest.db.conn.execute("SELECT event_id FROM events").fetchall()
                return queued_events <= {r[0] for r in rows}

            wait_for(replayed, what="the outbox to replay")
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(TIMEOUT)
            service.stop()

    assert not any(p.name.endswith(".part") for p in clips.iterdir())
    store = ClipStore(clips, 1 << 30)
    for clip in store.clips():  # whatever is listed is whole: hash and all
        assert sha256_file(clip.video) == clip.meta.sha256
        assert clip.thumbnail.exists()
    for path in clips.iterdir():
        stem = path.name.split(".")[0]
        assert (clips / f"{stem}.json").exists(), f"{path.name} has no metadata"
    assert os.path.exists(data / "outbox.sqlite")
