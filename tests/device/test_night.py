"""Night mode: the doorbell switches to IR from its camera's light measure, drives its IR
pins, and the switch is never motion; a visitor at night still is."""

from __future__ import annotations

import contextlib
import itertools
import threading

import pytest

from porch.core.config import ClipSettings, MotionSettings, NightSettings
from porch.device.agent import DoorbellAgent
from porch.device.camera.synthetic import Figure, SyntheticScene
from porch.device.night import NightMode
from tests.support.common import wait_for
from tests.support.device import device_config, synthetic_source

IR_LED, IR_CUT, IR_CUT_B = 22, 23, 24


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
    settings = NightSettings(confirm_s=0, peek_s=1, ir_led_pin=IR_LED, ir_cut_pin=IR_CUT)
    assert settings.ir_cut == "level", "a control pin alone is the level mode, as before"
    night = NightMode(settings, lambda _: None, "mock")
    led, cut = mock_pins.pin(IR_LED), mock_pins.pin(IR_CUT)
    assert led.state is False and cut.state is False
    night.update(1.0, 0)
    assert led.state is True and cut.state is True
    night.update(100.0, 1)
    assert night.peeking and led.state is False and cut.state is True, "a check, LEDs off"
    assert night.update(100.0, 2) is False
    assert led.state is False and cut.state is False
    night.close()


def test_a_level_filter_with_reversed_polarity_is_low_at_night(mock_pins):
    settings = NightSettings(confirm_s=0, ir_cut="level", ir_cut_pin=IR_CUT, ir_cut_reversed=True)
    night = NightMode(settings, lambda _: None, "mock")
    night.start()
    cut = mock_pins.pin(IR_CUT)
    assert cut.state is True, "day: high"
    night.update(1.0, 0)
    assert cut.state is False, "night: low"
    night.close()


def _pulses(pin) -> list[float]:
    """Lengths of the high pulses a mock pin has seen, seconds."""
    states = pin.states
    return [b.timestamp for a, b in itertools.pairwise(states) if a.state and not b.state]


@pytest.mark.parametrize("reversed_", [False, True], ids=["normal", "reversed"])
def test_a_bistable_filter_gets_one_pulse_of_each_polarity(mock_pins, reversed_):
    settings = NightSettings(
        confirm_s=0,
        ir_cut="pulse",
        ir_cut_pin=IR_CUT,
        ir_cut_pin_b=IR_CUT_B,
        ir_cut_reversed=reversed_,
        ir_cut_pulse_s=0.15,
    )
    night = NightMode(settings, lambda _: None, "mock")
    out, back = mock_pins.pin(IR_CUT), mock_pins.pin(IR_CUT_B)
    if reversed_:
        out, back = back, out
    night.start()  # wherever the filter rested, it is moved to day
    wait_for(lambda: len(_pulses(back)) == 1, what="the day pulse at start")
    night.update(1.0, 0)
    wait_for(lambda: len(_pulses(out)) == 1, what="the night pulse")
    night.update(500.0, 1)
    wait_for(lambda: len(_pulses(back)) == 2, what="the day pulse")
    for pulse in _pulses(out) + _pulses(back):
        assert 0.14 <= pulse <= 0.6, f"a {pulse:.3f} s pulse"
    assert len(_pulses(out)) == 1
    assert out.state is False and back.state is False, "both inputs rest low"
    # Never both inputs high at once: each pulse on one starts after the other went low.
    changes = sorted(
        [(s.timestamp, "out", s.state) for s in _absolute(out)]
        + [(s.timestamp, "back", s.state) for s in _absolute(back)]
    )
    high: set[str] = set()
    for _, which, state in changes:
        (high.add if state else high.discard)(which)
        assert len(high) < 2, "both H-bridge inputs high"
    night.close()


def _absolute(pin):
    """A mock pin's states with their times since it was made (it records intervals)."""
    elapsed, result = 0.0, []
    for state in pin.states:
        elapsed += state.timestamp
        result.append(type(state)(elapsed, state.state))
    return result


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ir_cut": "pulse", "ir_cut_pin": 23}, "needs ir_cut_pin_b"),
        ({"ir_cut": "level"}, "needs ir_cut_pin"),
        ({"ir_led_pin": 23, "ir_cut_pin": 23}, "different pins"),
        ({"ir_cut": "self", "ir_cut_pin": 23}, "not used with ir_cut = 'self'"),
        ({"ir_cut_pin": 23, "ir_cut_pin_b": 24}, "ir_cut_pin_b is not used"),
    ],
)
def test_a_filter_setting_that_cannot_work_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        NightSettings(**fields)


def test_an_ir_pin_on_the_chime_or_button_pin_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"night\.ir_led_pin and gpio\.chime_pin are both BCM 27"):
        device_config(tmp_path, None, night=NightSettings(ir_led_pin=27))


def test_the_ir_leds_own_light_never_makes_it_day(mock_pins):
    # A whole night, a reading a second: dusk at 1 h, dawn at 9 h. The IR LEDs add 60 lux to
    # what the camera measures, past day_above_lux (40) on their own. Each check turns them
    # off for peek_s, and only that darker reading decides.
    settings = NightSettings(confirm_s=10, peek_s=1, peek_every_s=120, ir_led_pin=IR_LED)
    relights, switches = [], []
    night = NightMode(settings, switches.append, "mock", lambda: relights.append(1))
    led = mock_pins.pin(IR_LED)

    def ambient(t: float) -> float:
        hours = t / 3600
        if hours < 1:
            return 400 * (1 - hours) + 2
        if hours < 9:
            return 2.0
        return min(400.0, 2 + 400 * (hours - 9))

    for second in range(10 * 3600):
        night.update(ambient(second) + (60.0 if led.state else 0.0), float(second))
    assert switches == [True, False], "one dusk, one dawn: no flapping"
    # One check learns the LEDs' share, one every two hours makes sure it was not learned
    # too large (a night that would last all day), one finds the dawn: 1 + 4 + 1.
    assert night.peeks <= 6, f"{night.peeks} checks with the LEDs off in a night"
    assert len(relights) == 2 * night.peeks - 1, "each check's LEDs off and on, the last stays off"
    assert led.state is False
    night.close()


def test_dusk_on_the_doorbell_is_no_motion_and_no_clip_but_a_visitor_is(tmp_path, mock_pins):
    # Dusk falls 2-4 s in; the agent switches night mode at about 5 s (1 s to confirm): the
    # camera draws every surface by its own IR factor from the next frame. Nobody is there
    # until a visitor walks up at 12 s.
    visitor = Figure([(12, -0.15, 0.75, 0.35), (16, 0.5, 0.95, 0.7), (22, 0.5, 1.0, 0.95)])
    scene = SyntheticScene(
        640, 360, seed=31, figures=[visitor], daylight=[(0, 400), (2, 400), (4, 1)]
    )
    with dusk_on_the_doorbell(tmp_path, scene, NightSettings(confirm_s=1, ir_led_pin=IR_LED)):
        assert mock_pins.pin(IR_LED).state is True, "the IR LEDs are on"


@contextlib.contextmanager
def dusk_on_the_doorbell(tmp_path, scene: SyntheticScene, night: NightSettings):
    """Run the agent on ``scene`` (dusk at 2-4 s, a visitor at 12 s): night mode on once,
    no motion event and no clip by 11.5 s; the block runs then; the visitor at night must
    then be motion."""
    config = device_config(
        tmp_path,
        None,
        motion=MotionSettings(end_after_s=1.0),
        clips=ClipSettings(preroll_s=1, postroll_s=1),
        night=night,
    )
    agent = DoorbellAgent(config, synthetic_source(config, scene, realtime=False))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.media_time > 11.5, what="dusk and the quiet after it")
        assert agent.night.night and agent.night.switches == 1
        assert agent.emitted["motion"] == 0, "the switch raised a motion event"
        assert agent.store.clips() == [] and agent.emitted["clip"] == 0
        yield agent
        wait_for(lambda: agent.emitted["motion"] >= 1, what="the visitor at night")
    finally:
        agent.stop()
        thread.join(30)
        agent.outbox.close()


def test_a_module_that_switches_itself_is_no_motion_either(tmp_path):
    # The module's own light sensor moves its filter at 20 lux (about 3.9 s in), unseen by
    # the agent; every small surface changes by its own factor, the brightest clip. The
    # agent turns colour off a second later (its own switch, which it signals).
    visitor = Figure([(12, -0.15, 0.75, 0.35), (16, 0.5, 0.95, 0.7), (22, 0.5, 1.0, 0.95)])
    scene = SyntheticScene(
        640,
        360,
        seed=32,
        figures=[visitor],
        daylight=[(0, 400), (2, 400), (4, 1)],
        switches_below_lux=20,
        surfaces=24,
        ir_gain=1.3,
    )
    with dusk_on_the_doorbell(tmp_path, scene, NightSettings(confirm_s=1, ir_cut="self")):
        pass  # (the module's own switch raised no motion event and no clip)


def test_a_check_is_not_fooled_by_a_passing_car_nor_stuck_without_a_measure(mock_pins):
    settings = NightSettings(confirm_s=10, peek_s=1, peek_every_s=60, ir_led_pin=IR_LED)
    night = NightMode(settings, lambda _: None, "mock")
    led = mock_pins.pin(IR_LED)
    night.update(1.0, 0)  # dusk, confirm_s 10 ...
    night.update(1.0, 10)
    assert night.night and led.state is True
    # The LEDs add 50 lux; a car's lights add 300 more for the first second of the window.
    night.update(351.0, 20)
    for t in range(21, 31):
        night.update(51.0, float(t))
    assert night.peeking and led.state is False
    night.update(1.0, 31.5)
    assert not night.peeking and led.state is True
    assert night.led_lux == pytest.approx(50.0), "the car's light was taken for the LEDs'"
    # A check during which the camera gives no measure ends with the LEDs on, still night.
    night.led_lux = 0.0
    for t in range(100, 111):
        night.update(51.0, float(t))
    assert night.peeking
    assert night.update(None, 112.0) is None
    assert not night.peeking and led.state is True and night.night
    night.close()
