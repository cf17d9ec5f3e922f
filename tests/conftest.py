"""Shared fixtures: a real Mosquitto per test on a free loopback port, gpiozero's MockFactory,
a hub ingesting into a real SQLite file, and doorbell agents on the synthetic camera."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from porch.config import (
    CameraSettings,
    ClipSettings,
    DeviceConfig,
    EncoderSettings,
    GpioSettings,
    HubConfig,
    LiveSettings,
    MotionSettings,
    WebSettings,
)
from porch.device.agent import DoorbellAgent
from porch.device.camera.synthetic import SyntheticCamera, SyntheticScene
from porch.device.encoder import EncodingSource, H264Encoder
from porch.device.regions import PrivacyMask
from porch.hub.ingest import Ingest
from porch.hub.service import HubService
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from porch.localbroker import LocalBroker, free_port

TIMEOUT = 60.0
"""Generous: two cores shared by a broker, encoders and the test itself."""
PASSWORD = "correct horse battery"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    # Plain host candidates instead of mDNS names: deterministic, and still this machine only.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
needs_chromium = pytest.mark.skipif(
    not shutil.which("chromium"),
    reason="Debian's chromium is not installed (make test installs it)",
)


def launch_chromium(playwright):
    """Debian's headless Chromium through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def sign_in(page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def wait_for(condition: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = None


def start_hub(
    data_dir: Path, broker: LocalBroker, live: LiveSettings | None = None, **kwargs
) -> HubService:
    """The whole hub (ingest and web app on a free port), running on a thread."""
    config = HubConfig(
        data_dir=data_dir,
        mqtt=broker.settings,
        web=WebSettings(port=free_port()),
        live=live or LiveSettings(),
    )
    service = HubService(config, **kwargs)
    service.start()
    wait_for(service.ingest.subscribed.is_set, what="the hub to subscribe")
    return service


@pytest.fixture
def hub_service(tmp_path: Path, broker: LocalBroker) -> Iterator[HubService]:
    service = start_hub(tmp_path / "hub", broker)
    yield service
    service.stop()


@pytest.fixture
def hub(hub_service: HubService) -> Ingest:
    return hub_service.ingest


def api(service, role: str | None, method: str, path: str, **kw) -> httpx.Response:
    """One request to the hub signed in as the account named ``role`` (None: anonymous)."""
    cookies, headers = {}, {}
    if role is not None:
        token = service.accounts.open_session(role)
        cookies[SESSION_COOKIE] = token
        headers[CSRF_HEADER] = service.accounts.session(token).csrf
    with httpx.Client(base_url=service.url, cookies=cookies, timeout=TIMEOUT) as client:
        return client.request(method, path, headers=headers, **kw)


def device_config(tmp_path: Path, broker: LocalBroker | None, **sections) -> DeviceConfig:
    """A small, fast simulated doorbell; ``sections`` override whole config sections."""
    base = {
        "device_id": "front-door",
        "data_dir": tmp_path / "device",
        "gpio": GpioSettings(pin_factory="mock", bounce_s=0),
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
