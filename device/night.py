"""Night mode: the doorbell switches to infrared itself, from the camera's own light measure.

At dusk the scene grows dark; once it has stayed below ``night_below_lux`` for
``confirm_s`` seconds, night mode goes on: the IR LEDs light (``ir_led_pin``), the IR-cut
filter moves out of the light path, the camera drops colour, and the motion detector is told
at that moment, so the switch, which changes every surface's brightness by a factor of its
own, never counts as motion.

The filter is driven as the module needs (``ir_cut``): not at all (a fixed filter, a NoIR
module, or one that switches itself from its own light sensor, which the motion detector
then learns unaided), one control input held at a level, or a bistable actuator moved by a
short pulse of either polarity through an H-bridge (then both inputs rest low).

Day returns once the light stays above ``day_above_lux``. The camera's lux counts the IR
LEDs' own light, which may alone pass that limit; so when the agent drives the LEDs, it
checks before switching: the LEDs go off for ``peek_s``, and only what the camera measures
then decides. A check that finds it still dark also learns how much the LEDs add, and the
next check waits until the measure less that share passes the limit (and at least
``peek_every_s``; and every two hours whatever the share): no flapping, and no dark blink in
the video every few seconds::

    night = NightMode(NightSettings(ir_led_pin=23), on_switch=print)
    night.update(lux=3.0, ts=0.0)    # None: not yet confirmed
    night.update(lux=2.5, ts=10.0)   # True: switched to night (on_switch(True) was called)
    night.close()

Everything runs on the capture thread, except the end of an actuator's pulse (gpiozero's
background blink); the lux comes with each capture (picamera2's ``Lux`` metadata; the
synthetic camera simulates it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from gpiozero import DigitalOutputDevice

from porch.core.config import NightSettings
from porch.device.gpio import use_pin_factory

log = logging.getLogger(__name__)
RECHECK_S = 7200.0
"""At night, a check with the LEDs off at least this often while the raw measure is above
the day limit, whatever share of it the LEDs were found to add, seconds."""


class IrCutFilter:
    """The camera module's IR-cut filter, driven as ``settings.ir_cut`` says."""

    def __init__(self, settings: NightSettings):
        self.settings = settings
        self._level: DigitalOutputDevice | None = None
        self._out: DigitalOutputDevice | None = None  # pulse: moves the filter out (night)
        self._in: DigitalOutputDevice | None = None  # pulse: moves it back in (day)
        if settings.ir_cut == "level":
            assert settings.ir_cut_pin is not None
            self._level = DigitalOutputDevice(
                settings.ir_cut_pin, active_high=not settings.ir_cut_reversed, initial_value=False
            )
        elif settings.ir_cut == "pulse":
            assert settings.ir_cut_pin is not None and settings.ir_cut_pin_b is not None
            pins = [settings.ir_cut_pin, settings.ir_cut_pin_b]
            if settings.ir_cut_reversed:
                pins.reverse()
            self._out, self._in = (DigitalOutputDevice(pin, initial_value=False) for pin in pins)

    def set(self, night: bool) -> None:
        """Filter out of the light path for night, in for day."""
        if self._level is not None:
            self._level.value = night
        if self._out is not None and self._in is not None:
            drive, rest = (self._out, self._in) if night else (self._in, self._out)
            rest.off()  # never both inputs high; off() also ends a pulse still under way
            drive.blink(on_time=self.settings.ir_cut_pulse_s, off_time=0, n=1, background=True)

    def close(self) -> None:
        for output in (self._level, self._out, self._in):
            if output is not None:
                output.close()


class NightMode:
    """Decides day or night from lux readings, with hysteresis and checks with the IR LEDs
    off, and drives the IR hardware."""

    def __init__(
        self,
        settings: NightSettings,
        on_switch: Callable[[bool], None],
        pin_factory: str = "auto",
        on_relight: Callable[[], None] | None = None,
    ):
        """``on_switch(night)`` is called at each switch; ``on_relight()`` when the IR LEDs go
        off or on for a check (the picture changes brightness: tell the motion detector)."""
        self.settings = settings
        self._on_switch = on_switch
        self._on_relight = on_relight or (lambda: None)
        self.night = False
        self.switches = 0
        self.peeks = 0
        """Checks with the IR LEDs off, for logs and tests."""
        self.led_lux = 0.0
        """What the IR LEDs add to the camera's measure, as the last check found."""
        self._pending_since: float | None = None
        self._peek_since: float | None = None
        self._lit_lux = 0.0
        self._next_peek = -math.inf
        self._last_peek = -math.inf
        drives = settings.ir_led_pin is not None or settings.ir_cut in ("level", "pulse")
        if drives:
            use_pin_factory(pin_factory)
        self._led = (
            DigitalOutputDevice(settings.ir_led_pin, initial_value=False)
            if settings.ir_led_pin is not None
            else None
        )
        self._filter = IrCutFilter(settings)

    def start(self) -> None:
        """Apply the starting mode: ``night`` for a fixed night, else day (a bistable filter
        is pulsed into its day position, wherever it rested)."""
        if self.settings.mode == "night":
            self._switch(True)
        else:
            self._filter.set(False)

    @property
    def peeking(self) -> bool:
        """The IR LEDs are off for a check."""
        return self._peek_since is not None

    def update(self, lux: float | None, ts: float) -> bool | None:
        """One capture's light measure at media time ``ts`` seconds; the new mode when this
        reading switched it, else None."""
        if self.settings.mode != "auto":
            return None
        if self._peek_since is not None:
            return self._peeked(lux, ts)
        if lux is None:
            return None
        settings = self.settings
        if self.night:
            # By the measure less the LEDs' share, or by the measure itself once in a while
            # (a share learned too large must not keep the night on all day).
            beyond = lux - self.led_lux > settings.day_above_lux or (
                lux > settings.day_above_lux and ts - self._last_peek >= RECHECK_S
            )
        else:
            beyond = lux < settings.night_below_lux
        if not beyond:
            self._pending_since = None
            return None
        if self._pending_since is None:
            self._pending_since = ts
            self._lit_lux = lux
        self._lit_lux = min(self._lit_lux, lux)  # a passing car's lights are no LED share
        if ts - self._pending_since < settings.confirm_s:
            return None
        if self.night and self._led is not None:
            if ts >= self._next_peek:  # check with the LEDs off before believing it
                self._pending_since = None
                self._peek_since = self._last_peek = ts
                self.peeks += 1
                self._led.off()
                self._on_relight()
            return None
        self._pending_since = None
        self._switch(not self.night)
        log.info("night mode %s (%.1f lux)", "on" if self.night else "off", lux)
        return self.night

    def _peeked(self, lux: float | None, ts: float) -> bool | None:
        """During a check: once the exposure had ``peek_s`` to settle, the measure without
        the LEDs decides (no measure by then: still night, the LEDs back on)."""
        assert self._peek_since is not None and self._led is not None
        if ts - self._peek_since < self.settings.peek_s:
            return None
        self._peek_since = None
        if lux is not None and lux > self.settings.day_above_lux:
            log.info("night mode off (%.1f lux with the IR LEDs off)", lux)
            self._switch(False)  # the LEDs stay off
            return False
        if lux is not None:
            self.led_lux = max(0.0, self._lit_lux - lux)
        self._next_peek = ts + self.settings.peek_every_s
        log.info("still night: %s lux with the IR LEDs off, %.1f with them on", lux, self._lit_lux)
        self._led.on()
        self._on_relight()
        return None

    def _switch(self, night: bool) -> None:
        self.night = night
        self.switches += 1
        if self._led is not None:
            self._led.value = night
        self._filter.set(night)
        if night:
            self.led_lux = 0.0
            self._next_peek = self._last_peek = -math.inf
        self._on_switch(night)

    def close(self) -> None:
        if self._led is not None:
            self._led.close()
        self._filter.close()
