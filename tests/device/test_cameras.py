"""Camera back-ends other than the synthetic one, and the choice between them."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from porch.core.config import CameraSettings, ClipSettings
from porch.device.agent import DoorbellAgent, open_source
from porch.device.camera.opencv import CameraError, OpenCVCamera
from porch.device.camera.synthetic import SyntheticScene
from porch.device.regions import PrivacyMask
from tests.support.common import wait_for
from tests.support.device import device_config


@pytest.fixture
def porch_video(tmp_path):
    """A 2 s MP4 of the synthetic porch at 640×360, written with PyAV."""
    path = tmp_path / "porch.mp4"
    scene = SyntheticScene(640, 360, seed=9)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(scene.render(i / 10), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_opencv_reads_a_file_resizes_and_loops(porch_video):
    camera = OpenCVCamera(str(porch_video), 320, 180, fps=10, realtime=False)
    frames = []
    for frame in camera.frames():
        frames.append(frame)
        if len(frames) == 45:
            break
    camera.close()
    assert all(f.image.shape == (180, 320, 3) for f in frames)
    assert [f.ts for f in frames[:3]] == [0.0, 0.1, 0.2]
    # The file has 20 frames: frame 20 is frame 0 again.
    assert np.abs(frames[20].image.astype(int) - frames[0].image.astype(int)).mean() < 3


def test_opencv_missing_device_is_a_clear_error(tmp_path):
    with pytest.raises(CameraError, match="cannot open camera"):
        OpenCVCamera(str(tmp_path / "no-such.mp4"), 320, 240, fps=10)


def test_agent_records_a_clip_from_a_video_file(tmp_path, porch_video, mock_pins):
    config = device_config(
        tmp_path,
        None,
        camera=CameraSettings(
            source="opencv", uri=str(porch_video), width=320, height=180, fps=10, realtime=False
        ),
        clips=ClipSettings(preroll_s=1, postroll_s=1),
    )
    source = open_source(config, PrivacyMask([]))
    assert type(source.camera).__name__ == "OpenCVCamera"
    agent = DoorbellAgent(config, source)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.media_time > 2, what="2 s of video")
        agent.doorbell.simulate_press()
        wait_for(agent.store.clips, what="the clip")
    finally:
        agent.stop()
        thread.join(30)
        agent.outbox.close()
    [clip] = agent.store.clips()
    assert (clip.meta.width, clip.meta.height) == (320, 180)


def test_auto_is_synthetic_off_a_pi(tmp_path):
    config = device_config(
        tmp_path, None, camera=CameraSettings(source="auto", width=160, height=120)
    )
    source = open_source(config, PrivacyMask([]))
    assert type(source.camera).__name__ == "SyntheticCamera"
