"""Doorbells for the tests: gpiozero's MockFactory pins, small fast simulated doorbells on
the synthetic camera (in the test's process or as ``porch device run`` of its own). Needs
only a doorbell's install (``porch[device]``): nothing here imports the hub."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from porch.core.config import (
    CameraSettings,
    ClipSettings,
    DeviceConfig,
    EncoderSettings,
    GpioSettings,
    MotionSettings,
    load,
    to_toml,
)
from porch.device.agent import DoorbellAgent
from porch.device.camera.synthetic import SyntheticCamera, SyntheticScene
from porch.device.encoder import EncodingSource, H264Encoder
from porch.device.regions import PrivacyMask
from porch.localbroker import LocalBroker
from tests.support.common import TIMEOUT


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = None


def chime_closings(mock_pins: MockFactory, gpio: GpioSettings) -> int:
    """How many times the chime relay's pin went to its closing level (low for an active-low
    relay module, the default)."""
    closed = gpio.chime_active_high
    states = [s.state for s in mock_pins.pin(gpio.chime_pin).states]
    return sum(1 for a, b in itertools.pairwise(states) if a != closed and b == closed)


def write_device_toml(path: Path, data_dir: Path, port: int, **settings) -> Path:
    """A device.toml for ``porch device run`` in its own process: mock pins, a synthetic
    camera at 320×240 (``settings`` add keys and tables, e.g. ``motion={"enabled": False}``)."""
    camera = {"source": "synthetic", "width": 320, "height": 240, **settings.pop("camera", {})}
    data = {"device_id": "front-door", "data_dir": data_dir, **settings}
    gpio = {"pin_factory": "mock", "chime_active_high": False}
    data = {**data, "mqtt": {"port": port}, "gpio": gpio, "camera": camera}
    path.write_text(to_toml(data))
    return path


def start_device(config: Path, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """``porch device run --config CONFIG`` as a process of its own (to kill -9, say)."""
    return subprocess.Popen(
        [sys.executable, "-m", "porch.cli", "device", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def device_config(tmp_path: Path, broker: LocalBroker | None, **sections) -> DeviceConfig:
    """A small, fast simulated doorbell; ``sections`` override whole config sections."""
    base = {
        "device_id": "front-door",
        "data_dir": tmp_path / "device",
        "gpio": GpioSettings(pin_factory="mock", bounce_s=0, chime_active_high=False),
        "camera": CameraSettings(source="synthetic", width=320, height=240, fps=15),
        "encoder": EncoderSettings(keyframe_interval_s=1.0, bitrate_kbps=400),
        "motion": MotionSettings(enabled=False),
        "clips": ClipSettings(preroll_s=2, postroll_s=1),
    }
    if broker is not None:
        base["mqtt"] = broker.settings
    base.update(sections)
    return DeviceConfig(**base)


def synthetic_source(
    config: DeviceConfig, scene: SyntheticScene | None = None, realtime: bool = True
) -> EncodingSource:
    cam = config.camera
    scene = scene or SyntheticScene(cam.width, cam.height, cam.seed)
    privacy = PrivacyMask(config.motion.privacy_masks)
    encoder = H264Encoder(cam.width, cam.height, cam.fps, config.encoder)
    return EncodingSource(SyntheticCamera(scene, cam.fps, realtime), encoder, privacy)


class RunningAgent:
    """A :class:`DoorbellAgent` whose capture loop runs on a thread of the test."""

    def __init__(self, agent: DoorbellAgent):
        self.agent = agent
        self.thread = threading.Thread(target=agent.run, name="capture", daemon=True)

    def __enter__(self) -> DoorbellAgent:
        self.agent.start_link()
        self.thread.start()
        return self.agent

    def __exit__(self, *exc) -> None:
        self.agent.stop()
        self.thread.join(timeout=TIMEOUT)
        self.agent.close()


def run_agent(
    config: DeviceConfig, scene: SyntheticScene | None = None, realtime: bool = True
) -> RunningAgent:
    return RunningAgent(DoorbellAgent(config, synthetic_source(config, scene, realtime)))


def agent_from(
    config_path: Path,
    data: Path,
    scene: SyntheticScene | None = None,
    size=(320, 240),
    postroll_s: float = 1.0,
    realtime: bool = True,
    motion: MotionSettings | None = None,
) -> DoorbellAgent:
    """The agent an enrolled device.toml describes, on mock pins and a small synthetic camera
    (``scene``: a scene of the test's own), motion detection off unless ``motion`` says."""
    config = load(DeviceConfig, config_path)
    config = config.model_copy(
        update={
            "data_dir": data,
            "gpio": GpioSettings(pin_factory="mock", bounce_s=0, chime_active_high=False),
            "camera": CameraSettings(source="synthetic", width=size[0], height=size[1]),
            "motion": motion or MotionSettings(enabled=False),
            "clips": config.clips.model_copy(update={"preroll_s": 1.0, "postroll_s": postroll_s}),
        }
    )
    source = synthetic_source(config, scene, realtime) if scene or not realtime else None
    return DoorbellAgent(config, source)
