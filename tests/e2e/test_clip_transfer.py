"""Clips leave the device: chunked, hash-checked, resumable, freed only after the hub's ack."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading

import porch.device.transfer as transfer
from porch.core.config import ClipSettings, EncoderSettings
from porch.core.fsutil import sha256_file
from porch.core.wire import ClipMeta
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent


def small_chunks(**extra) -> dict:
    """Clips of ~150 KB in 4 KiB chunks: dozens of chunks, quick to make."""
    return {
        "clips": ClipSettings(preroll_s=1, postroll_s=1, chunk_bytes=4096, retry_s=0.5, **extra),
        "encoder": EncoderSettings(keyframe_interval_s=1.0, bitrate_kbps=600),
    }


def press_for_clip(agent) -> ClipMeta:
    """Press once the device is connected and has pre-roll; the clip's metadata when whole."""
    wait_for(agent.link.connected.is_set, what="the device to connect")
    wait_for(lambda: agent.media_time > 2, what="pre-roll")
    clips = agent.emitted["clip"]
    agent.doorbell.simulate_press()
    wait_for(lambda: agent.emitted["clip"] > clips, what="the clip on the device")
    return agent.recorder.last_clip.meta


def test_clip_reaches_the_hub_byte_identical_and_the_device_frees_it(
    tmp_path, broker, hub, mock_pins
):
    config = device_config(tmp_path, broker, **small_chunks())
    with run_agent(config, realtime=False) as agent:
        meta = press_for_clip(agent)
        clip_id = meta.clip_id
        assert meta.chunk_count > 10
        wait_for(lambda: agent.store.get(clip_id) is None, what="the device to free its copy")
    assert hub.db.clip(clip_id)[0] == "stored"
    assert sha256_file(hub.clips.video(clip_id)) == meta.sha256
    assert hub.clips.thumbnail(clip_id).read_bytes()[:2] == b"\xff\xd8"
    assert agent.sender.confirmed == 1


def test_transfer_cut_by_the_broker_resumes_and_ends_identical(tmp_path, broker, hub, mock_pins):
    """The broker stops after the hub has taken 10 chunks; the device keeps its copy through
    the outage; after the restart the transfer resumes and the hub's file is identical."""
    cut, stopped = threading.Event(), threading.Event()
    original = hub.clips.chunk
    seen = []

    def chunk_then_cut(chunk):
        answer = original(chunk)
        seen.append(chunk.index)
        if len(seen) == 10:
            cut.set()
            stopped.wait(60)  # no further chunk is handled before the broker is gone
        return answer

    hub.clips.chunk = chunk_then_cut
    config = device_config(tmp_path, broker, **small_chunks())
    with run_agent(config, realtime=False) as agent:
        meta = press_for_clip(agent)
        clip_id = meta.clip_id
        wait_for(cut.is_set, what="ten chunks at the hub")
        broker.stop()
        stopped.set()
        got = hub.db.count_chunks(clip_id)
        assert 0 < got < meta.chunk_count, "cut halfway"
        assert hub.db.clip(clip_id)[0] == "receiving"
        wait_for(lambda: not agent.link.connected.is_set(), what="the device to notice")
        assert agent.store.get(clip_id) is not None, "no confirmation, no deletion"

        broker.start()
        wait_for(lambda: agent.store.get(clip_id) is None, what="the resumed transfer")
    assert hub.db.clip(clip_id)[0] == "stored"
    assert sha256_file(hub.clips.video(clip_id)) == meta.sha256
    # Resumed, not restarted: chunks already stored were not all asked for again.
    assert agent.sender.chunks_sent < 2 * (meta.chunk_count + 1)


def test_a_corrupted_chunk_is_rejected_and_asked_for_again(
    tmp_path, broker, hub, mock_pins, monkeypatch
):
    real_read = transfer.read_chunk
    corrupted = []

    def flip_a_byte_once(path, index, chunk_bytes):
        data = real_read(path, index, chunk_bytes)
        if index == 3 and not corrupted:
            corrupted.append(index)
            return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        return data

    monkeypatch.setattr(transfer, "read_chunk", flip_a_byte_once)
    config = device_config(tmp_path, broker, **small_chunks())
    with run_agent(config, realtime=False) as agent:
        meta = press_for_clip(agent)
        clip_id = meta.clip_id
        wait_for(lambda: agent.store.get(clip_id) is None, what="the clip to be confirmed")
    assert corrupted == [3]
    assert hub.clips.bad_chunks == 1
    assert sha256_file(hub.clips.video(clip_id)) == meta.sha256


def test_hub_store_cap_evicts_oldest_but_never_a_kept_clip(tmp_path, broker, hub, mock_pins):
    config = device_config(tmp_path, broker, **small_chunks())
    with run_agent(config, realtime=False) as agent:
        ids = []
        for _ in range(4):
            ids.append(press_for_clip(agent).clip_id)
            wait_for(lambda: agent.store.get(ids[-1]) is None, what="the clip at the hub")
    ids = [row[0] for row in hub.db.stored_clips()]  # oldest capture first
    assert len(ids) == 4
    # what each takes on disk, video and thumbnail
    sizes = {c: size for c, size, _, _ in hub.db.stored_clips()}
    assert all(size > hub.clips.video(c).stat().st_size for c, size in sizes.items())
    hub.db.set_keep(ids[0], True)
    hub.clips.settings = hub.clips.settings.model_copy(
        update={"max_bytes": sizes[ids[2]] + sizes[ids[3]] + sizes[ids[0]]}
    )
    removed = hub.clips.enforce_limits()
    assert removed == [ids[1]]
    assert hub.clips.video(ids[0]).exists() and not hub.clips.video(ids[1]).exists()
    # Retention: everything but the kept clip is too old a year from now.
    removed = hub.clips.enforce_limits(now=hub.clips.settings.retention_days * 86400 * 2 + 2e9)
    assert sorted(removed) == sorted([ids[2], ids[3]])
    assert [r[0] for r in hub.db.stored_clips()] == [ids[0]]


def start_hub_process(config_path):
    return subprocess.Popen(
        [sys.executable, "-m", "porch.cli", "hub", "run", "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill9_of_the_hub_mid_transfer_lists_no_partial_clip_and_completes(
    tmp_path, broker, mock_pins
):
    hub_dir = tmp_path / "hub"
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text(f'data_dir = "{hub_dir}"\n[mqtt]\nport = {broker.port}\n')
    config = device_config(
        tmp_path,
        broker,
        clips=ClipSettings(preroll_s=2, postroll_s=2, chunk_bytes=1024, retry_s=0.5),
        encoder=EncoderSettings(keyframe_interval_s=1.0, bitrate_kbps=3000),
    )
    hub = start_hub_process(hub_toml)
    try:
        with run_agent(config, realtime=False) as agent:
            wait_for(agent.link.connected.is_set, what="the device to connect")
            wait_for(lambda: agent.media_time > 3, what="pre-roll")
            wait_for((hub_dir / "hub.sqlite").exists, what="the hub's database")
            db = sqlite3.connect(hub_dir / "hub.sqlite", timeout=30)

            def chunks_at_hub(clip_id):
                row = db.execute("SELECT count(*) FROM clip_chunks WHERE clip_id=?", (clip_id,))
                return row.fetchone()[0]

            killed_mid_transfer = None
            for _ in range(5):  # a transfer can outrun the poll; then try with the next clip
                meta = press_for_clip(agent)
                wait_for(
                    lambda m=meta: (
                        chunks_at_hub(m.clip_id) > 0 or agent.store.get(m.clip_id) is None
                    ),
                    what="the transfer to start",
                )
                hub.send_signal(signal.SIGKILL)
                hub.wait(30)
                got = chunks_at_hub(meta.clip_id)
                if 0 < got < meta.chunk_count:
                    killed_mid_transfer = meta
                    break
                hub = start_hub_process(hub_toml)
            assert killed_mid_transfer is not None, "never caught a transfer in the middle"
            meta = killed_mid_transfer
            state = db.execute("SELECT state FROM clips WHERE clip_id=?", (meta.clip_id,))
            assert state.fetchone()[0] == "receiving", "a partial clip is never listed as stored"
            assert not (hub_dir / "clips" / f"{meta.clip_id}.mp4").exists()
            assert agent.store.get(meta.clip_id) is not None

            hub = start_hub_process(hub_toml)
            wait_for(lambda: agent.store.get(meta.clip_id) is None, what="the transfer to finish")
        state = db.execute("SELECT state FROM clips WHERE clip_id=?", (meta.clip_id,))
        assert state.fetchone()[0] == "stored"
        assert sha256_file(hub_dir / "clips" / f"{meta.clip_id}.mp4") == meta.sha256
        assert not [p for p in (hub_dir / "clips").iterdir() if p.name.endswith(".part")]
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(30)
