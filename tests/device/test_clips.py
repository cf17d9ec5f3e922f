"""Clips: real H.264 in real MP4 files, read back with PyAV."""

from __future__ import annotations

import av
import numpy as np

from porch.core.config import CameraSettings, ClipSettings, EncoderSettings, MotionSettings
from porch.device.camera import EncodedPacket
from porch.device.preroll import PrerollBuffer
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent

MASK = [[0.0, 0.0], [0.4, 0.0], [0.4, 0.5], [0.0, 0.5]]  # top-left: the neighbour's window


def decode_all(path):
    """(pts seconds, keyframe, BGR image) of every frame; raises if any frame fails."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            decoded = packet.decode()
            assert len(decoded) == 1, "every packet must decode to one frame"
            for frame in decoded:
                frames.append(
                    (
                        float(frame.pts * stream.time_base),
                        packet.is_keyframe,
                        frame.to_ndarray(format="bgr24"),
                    )
                )
    return frames


def test_clip_has_full_preroll_starts_on_keyframe_and_decodes(tmp_path, mock_pins):
    config = device_config(
        tmp_path,
        None,
        clips=ClipSettings(preroll_s=5, postroll_s=2),
        motion=MotionSettings(enabled=False, privacy_masks=[MASK]),
    )
    with run_agent(config, realtime=False) as agent:
        wait_for(lambda: agent.media_time > 8, what="8 s of video")
        agent.doorbell.simulate_press()
        wait_for(lambda: agent.store.clips(), what="the clip")
    [clip] = agent.store.clips()
    meta = clip.meta
    trigger = meta.trigger_ts - meta.start_ts  # where the press lies in the clip, seconds
    assert trigger >= 5.0

    frames = decode_all(clip.video)
    assert frames[0][0] == 0.0 and frames[0][1], "the clip starts on a keyframe at 0"
    assert frames[-1][0] >= trigger + 1.9, "post-roll follows the press"
    before = [pts for pts, _, _ in frames if pts < trigger]
    assert before[0] <= trigger - 5.0 and len(before) >= 5 * config.camera.fps
    pts = [f[0] for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)

    # The privacy mask is burned into every recorded frame: black under it (inset by a
    # macroblock, where the encoder may smear the edge), the scene elsewhere.
    h, w = config.camera.height, config.camera.width
    for _, _, image in frames:
        hidden = image[16 : int(h * 0.5) - 16, 16 : int(w * 0.4) - 16]
        assert hidden.max() <= 12
        assert image[int(h * 0.6) :, int(w * 0.5) :].mean() > 40
    assert clip.thumbnail.read_bytes()[:2] == b"\xff\xd8"


def test_store_cap_evicts_oldest_and_agent_keeps_running(tmp_path, mock_pins):
    cap = 1024 * 1024
    config = device_config(
        tmp_path,
        None,
        camera=CameraSettings(source="synthetic", width=320, height=240, fps=15),
        encoder=EncoderSettings(keyframe_interval_s=1.0, bitrate_kbps=3000, preset="ultrafast"),
        clips=ClipSettings(preroll_s=1, postroll_s=2, store_max_bytes=cap),
    )
    with run_agent(config, realtime=False) as agent:
        wait_for(lambda: agent.media_time > 2, what="pre-roll")
        first_ids = []
        for n in range(8):
            agent.doorbell.simulate_press(hold_s=0)
            wait_for(lambda n=n: agent.emitted["clip"] == n + 1, what=f"clip {n + 1}")
            if n == 0:
                first_ids = [c.meta.clip_id for c in agent.store.clips()]
        assert agent.store.evicted > 0
        kept = agent.store.clips()
        assert first_ids[0] not in {c.meta.clip_id for c in kept}, "the oldest went first"
        newest = max(c.size for c in kept)
        assert agent.store.used_bytes() <= cap + newest
        frames = agent.frames
        wait_for(lambda: agent.frames > frames + 15, what="the agent to keep capturing")
        assert agent.recorder.failed == 0


def test_preroll_keeps_whole_groups_within_bytes():
    buffer = PrerollBuffer(seconds=2.0, max_bytes=10_000)
    for i in range(100):  # 10 fps, keyframe every 10 frames, 100-byte packets
        buffer.add(EncodedPacket(b"x" * 100, i / 10, keyframe=i % 10 == 0))
        packets = buffer.packets()
        assert packets[0].keyframe
        assert buffer.bytes <= 10_000
        if i >= 30:
            assert packets[-1].pts - packets[0].pts >= 2.0
            assert buffer.duration() < 3.0
    tight = PrerollBuffer(seconds=5.0, max_bytes=1500)
    for i in range(100):
        tight.add(EncodedPacket(b"x" * 100, i / 10, keyframe=i % 10 == 0))
        assert tight.bytes <= 1500
        assert not tight.packets() or tight.packets()[0].keyframe
    assert tight.dropped_for_bytes > 0


def test_partial_files_never_pass_as_clips(tmp_path):
    from porch.device.clips import ClipStore

    store = ClipStore(tmp_path, 10 * 1024 * 1024)
    (tmp_path / ".abc.mp4.part").write_bytes(b"half")
    (tmp_path / "0123.mp4").write_bytes(np.zeros(100, np.uint8).tobytes())  # no metadata
    (tmp_path / "4567.json").write_text("{}")  # metadata without video
    assert sorted(store.recover()) == [".abc.mp4.part", "0123.mp4", "4567.json"]
    assert list(tmp_path.iterdir()) == []


def test_a_clip_is_finished_while_capture_goes_on(tmp_path, mock_pins, monkeypatch):
    # Finishing a clip (mux, hash, seal, write) takes seconds on a Pi Zero 2 W: it happens on
    # a thread of its own, so capture (and live view, and the next clip) never waits for it.
    import threading

    import porch.device.clips as clips

    seen: dict[str, object] = {}
    real = clips.offered

    def slow_offered(*args, **kwargs):
        seen["thread"] = threading.current_thread().name
        seen["from"] = agent.media_time
        threading.Event().wait(1.5)  # a slow card, a slow CPU
        seen["to"] = agent.media_time
        return real(*args, **kwargs)

    monkeypatch.setattr(clips, "offered", slow_offered)
    config = device_config(
        tmp_path,
        None,
        clips=ClipSettings(preroll_s=1, postroll_s=1),
        motion=MotionSettings(enabled=False),
    )
    with run_agent(config, realtime=False) as agent:
        wait_for(lambda: agent.media_time > 2, what="2 s of video")
        agent.doorbell.simulate_press()
        wait_for(lambda: agent.store.clips(), what="the clip")
        assert seen["thread"] != threading.current_thread().name
        assert str(seen["thread"]).startswith("clip-finish")
        assert float(seen["to"]) - float(seen["from"]) > 1.0, "capture stalled while finishing"
        wait_for(lambda: not agent.recorder.recording, what="the clip to be announced")
