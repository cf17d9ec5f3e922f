"""Night mode: the doorbell switches to IR from its camera's light measure, drives its IR
pins, and the switch is never motion; a visitor at night still is."""

from __future__ import annotations

import threading

import pytest

from porch.core.config import ClipSettings, MotionSettings, NightSettings
from porch.device.agent import DoorbellAgent
from porch.device.camera.synthetic import Figure, SyntheticScene
from porch.device.night import NightMode
from tests.support.common import wait_for
from tests.support.device import device_config, synthetic_source

IR_LED, IR_CUT = 22, 23


def test_switches_after_the_light_stays_low_and_back_after_it_stays_high():
    seen = []
    night = NightMode(NightSettings(confirm_s=10), seen.append)
    assert night.update(3.0, 0) is None
    assert night.update(3.0, 9.9) is None, "not yet confirmed"
    assert night.update(3.0, 10.0) is True
    assert seen == [True]
    # The IR LEDs light the scene up a little: that must not end night mode.
    assert night.update(12.0, 30) is None and night.update(12.0, 60) is None
    # A car's headlights for a few seconds do not either.
    assert night.update(500.0, 61) is None and night.update(8.0, 65) is None
    assert night.update(500.0, 66) is None
    assert night.update(500.0, 76) is False
    assert seen == [True, False]


def test_fixed_modes_and_cameras_without_a_light_measure_never_switch():
    seen = []
    NightMode(NightSettings(mode="night"), seen.append).start()
    assert seen == [True]
    day = NightMode(NightSettings(mode="day", confirm_s=0), seen.append)
    assert day.update(0.0, 0) is None and day.update(0.0, 100) is None
    auto = NightMode(NightSettings(confirm_s=0), seen.append)
    assert auto.update(None, 0) is None and auto.update(None, 100) is None
    assert seen == [True]


def test_limits_must_leave_a_gap():
    with pytest.raises(ValueError, match="day_above_lux"):
        NightSettings(night_below_lux=10, day_above_lux=10)


def test_the_ir_pins_follow_the_mode(mock_pins):
    settings = NightSettings(confirm_s=0, ir_led_pin=IR_LED, ir_cut_pin=IR_CUT)
    night = NightMode(settings, lambda _: None, "mock")
    led, cut = mock_pins.pin(IR_LED), mock_pins.pin(IR_CUT)
    assert led.state is False and cut.state is False
    night.update(1.0, 0)
    assert led.state is True and cut.state is True
    night.update(100.0, 1)
    assert led.state is False and cut.state is False
    night.close()


def test_dusk_on_the_doorbell_is_no_motion_and_no_clip_but_a_visitor_is(tmp_path, mock_pins):
    # Dusk falls 2-4 s in; the agent switches night mode at about 5 s (1 s to confirm): the
    # camera draws every surface by its own IR factor from the next frame. Nobody is there
    # until a visitor walks up at 12 s.
    visitor = Figure([(12, -0.15, 0.75, 0.35), (16, 0.5, 0.95, 0.7), (22, 0.5, 1.0, 0.95)])
    scene = SyntheticScene(
        640, 360, seed=31, figures=[visitor], daylight=[(0, 400), (2, 400), (4, 1)]
    )
    config = device_config(
        tmp_path,
        None,
        motion=MotionSettings(end_after_s=1.0),
        clips=ClipSettings(preroll_s=1, postroll_s=1),
        night=NightSettings(confirm_s=1, ir_led_pin=IR_LED),
    )
    agent = DoorbellAgent(config, synthetic_source(config, scene, realtime=False))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.media_time > 11.5, what="dusk and the quiet after it")
        assert agent.night.night and agent.night.switches == 1
        assert mock_pins.pin(IR_LED).state is True, "the IR LEDs are on"
        assert agent.emitted["motion"] == 0, "the switch raised a motion event"
        assert agent.store.clips() == [] and agent.emitted["clip"] == 0
        wait_for(lambda: agent.emitted["motion"] >= 1, what="the visitor at night")
    finally:
        agent.stop()
        thread.join(30)
        agent.outbox.close()
