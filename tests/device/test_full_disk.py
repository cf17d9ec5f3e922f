"""A full disk under the clip store: the clip being written is dropped whole, the clips
already stored stay intact, events still go out, and the agent keeps running."""

from __future__ import annotations

import os
import subprocess

import pytest

from porch.core.config import ClipSettings, EncoderSettings
from porch.core.fsutil import sha256_file
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs mounted where the agent keeps its clips."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    where = tmp_path / "device" / "clips"
    where.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def press_and_settle(agent) -> bool:
    """Press once (while idle) and wait for that clip's fate; True when it was stored."""
    failed, clips = agent.recorder.failed, agent.emitted["clip"]
    agent.doorbell.simulate_press()
    wait_for(
        lambda: agent.recorder.failed > failed or agent.emitted["clip"] > clips,
        what="the clip to be stored or dropped",
    )
    return agent.emitted["clip"] > clips


def test_full_disk_drops_the_new_clip_and_keeps_the_old(tmp_path, tiny_disk, mock_pins):
    config = device_config(
        tmp_path,
        None,
        encoder=EncoderSettings(keyframe_interval_s=1.0, bitrate_kbps=2000),
        clips=ClipSettings(preroll_s=1, postroll_s=2, store_max_bytes=100 * 1024 * 1024),
    )
    with run_agent(config, realtime=False) as agent:
        wait_for(lambda: agent.media_time > 2, what="pre-roll")
        assert press_and_settle(agent)
        [first] = agent.store.clips()
        digest = sha256_file(first.video)

        # Fill the disk until the next clip cannot fit.
        for _ in range(8):
            if not press_and_settle(agent):
                break
        assert agent.recorder.failed >= 1, "a clip must have hit the full disk"
        assert not [p for p in tiny_disk.iterdir() if p.name.endswith(".part")]
        for clip in agent.store.clips():
            assert clip.meta.clip_id == first.meta.clip_id or clip.video.exists()
        assert sha256_file(first.video) == digest, "the stored clip is untouched"
        assert agent.emitted["ring"] == agent.doorbell.presses, "every press still went out"

        # Space comes back (the hub took the old clips): recording works again.
        for clip in agent.store.clips():
            agent.store.remove(clip.meta.clip_id)
        frames = agent.frames
        assert press_and_settle(agent), "recording works again"
        assert agent.frames > frames
