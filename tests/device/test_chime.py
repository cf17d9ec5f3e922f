"""The chime rings whatever else is down: no broker at all, the presses kept for later."""

from __future__ import annotations

import logging

import pytest

from porch.core.config import GpioSettings
from porch.device.gpio import Doorbell
from porch.localbroker import LocalBroker
from tests.support.common import wait_for
from tests.support.device import chime_closings, device_config, run_agent


@pytest.mark.parametrize(
    ("polarity", "idle"),
    [(False, True), (True, False)],  # active low (most modules, what enrollment writes), high
    ids=["active low", "active high"],
)
def test_the_chime_relay_rests_open_at_either_polarity(mock_pins, polarity, idle):
    # From the moment the agent holds the pin, the relay stays open (the chime silent) until
    # a press closes it for chime_s.
    settings = GpioSettings(
        pin_factory="mock", bounce_s=0, chime_s=0.05, chime_active_high=polarity
    )
    bell = Doorbell(settings, on_press=lambda: None)
    try:
        pin = mock_pins.pin(settings.chime_pin)
        assert pin.state is idle, "the chime is silent at start"
        assert bell.problem is None
        bell.simulate_press(hold_s=0.01)
        wait_for(lambda: chime_closings(mock_pins, settings) == 1, what="the chime")
        wait_for(lambda: pin.state is idle, what="the chime to stop")
    finally:
        bell.close()


def test_a_chime_whose_polarity_is_unsaid_is_not_driven_and_the_status_says_so(
    tmp_path, mock_pins, caplog
):
    # A doorbell set up when active high was assumed (its device.toml never said): either
    # level might hold its chime on for good, so the pin is left alone; presses still ring
    # the hub, and its status (the Devices page, Home Assistant's problem sensor) says why.
    with LocalBroker(tmp_path / "broker") as broker:
        config = device_config(tmp_path, broker)
        config = config.model_copy(update={"gpio": GpioSettings(pin_factory="mock", bounce_s=0)})
        with caplog.at_level(logging.ERROR, logger="porch.device.gpio"), run_agent(config) as agent:
            assert "set gpio.chime_active_high" in caplog.text
            wait_for(lambda: retained_status(broker).get("problem"), what="the status")
            assert "chime silent" in retained_status(broker)["problem"]
            agent.doorbell.simulate_press(hold_s=0.01)
            wait_for(lambda: agent.emitted["ring"] == 1, what="the ring")
        states = [s.state for s in mock_pins.pin(config.gpio.chime_pin).states]
        assert not any(states), "the chime pin was driven"


def test_chime_rings_with_no_broker_at_all(tmp_path, mock_pins):
    # Nothing listens on this port: the chime must not care.
    config = device_config(tmp_path, LocalBroker(tmp_path / "unused"))
    with run_agent(config) as agent:
        for _ in range(3):
            agent.doorbell.simulate_press(hold_s=0.01)
            wait_for(lambda: not agent.doorbell.chime.is_active, what="the chime to stop")
        assert chime_closings(mock_pins, config.gpio) == 3
        assert len(agent.outbox) == 3


def retained_status(broker) -> dict:
    """The doorbell's retained status on the broker, as the hub would read it."""
    import json
    import subprocess

    got = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                          "porch/front-door/status", "-C", "1", "-W", "5"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    return json.loads(got.stdout) if got.stdout.strip() else {}


def test_a_doorbell_without_its_camera_still_rings_and_says_why(tmp_path, broker, mock_pins,
                                                                monkeypatch):  # fmt: skip
    """Camera source picamera2 where there is none (a loose ribbon reads the same): the
    button, the chime and the link work, the status names the fault, and the camera is tried
    again and again instead of the agent dying in a restart loop."""
    from porch.core.config import CameraSettings
    from porch.device import agent as agent_module
    from porch.device.agent import DoorbellAgent
    from tests.support.device import RunningAgent

    monkeypatch.setattr(agent_module, "CAMERA_RETRY_S", 0.3)
    tries = []
    opening = agent_module.open_source

    def counted(*args):
        tries.append(1)
        return opening(*args)

    monkeypatch.setattr(agent_module, "open_source", counted)
    config = device_config(tmp_path, broker, camera=CameraSettings(source="picamera2"))
    running = RunningAgent(DoorbellAgent(config))
    with running as agent:
        wait_for(agent.link.connected.is_set, what="the link")
        wait_for(lambda: "camera" in (retained_status(broker).get("problem") or ""),
                 what="the status to name the camera")  # fmt: skip
        agent.doorbell.simulate_press(hold_s=0.01)
        wait_for(lambda: chime_closings(mock_pins, config.gpio) == 1, what="the chime")
        wait_for(lambda: agent.link.published >= 1, what="the ring sent")
        wait_for(lambda: len(tries) >= 3, what="the camera tried again")
        assert running.thread.is_alive(), "no restart loop: the agent waits for its camera"
    assert retained_status(broker)["state"] == "offline"


class FailingSource:
    """A camera that gives a few pictures and then fails (a ribbon that works loose)."""

    def __init__(self, inner, frames: int):
        self.inner, self.left = inner, frames
        self.width, self.height = inner.width, inner.height

    def captures(self):
        for capture in self.inner.captures():
            if self.left == 0:
                raise RuntimeError("Camera frontend has timed out!")
            self.left -= 1
            yield capture

    def request_keyframe(self) -> None:
        self.inner.request_keyframe()

    def set_night(self, night: bool) -> None:
        self.inner.set_night(night)

    def close(self) -> None:
        self.inner.close()


def test_a_camera_that_fails_mid_run_is_reopened_and_the_fault_cleared(
    tmp_path, broker, mock_pins, monkeypatch
):
    from porch.device import agent as agent_module
    from porch.device.agent import DoorbellAgent
    from tests.support.device import RunningAgent, synthetic_source

    monkeypatch.setattr(agent_module, "CAMERA_RETRY_S", 0.3)
    config = device_config(tmp_path, broker)
    failing = FailingSource(synthetic_source(config), frames=10)
    with RunningAgent(DoorbellAgent(config, failing)) as agent:
        wait_for(agent.link.connected.is_set, what="the link")
        wait_for(lambda: agent.frames > 10 + 15, what="pictures again, from a reopened camera")
        wait_for(lambda: retained_status(broker).get("state") == "online"
                 and retained_status(broker).get("problem") is None,
                 what="the fault cleared")  # fmt: skip
        agent.doorbell.simulate_press(hold_s=0.01)
        wait_for(lambda: chime_closings(mock_pins, config.gpio) == 1, what="the chime")
