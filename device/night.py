"""Night mode: the doorbell switches to infrared itself, from the camera's own light measure.

At dusk the scene grows dark; once it has stayed below ``night_below_lux`` for
``confirm_s`` seconds, night mode goes on: the IR LEDs light (``ir_led_pin``), the IR-cut
filter moves out of the light path (``ir_cut_pin``, on modules with a control input), the
camera drops colour, and the motion detector is told at that moment, so the switch, which
changes every surface's brightness by a factor of its own, never counts as motion. Day mode
returns once the light stays above ``day_above_lux``; the gap between the two limits (and
the IR LEDs' own light, which the camera also measures) keeps it from flapping::

    night = NightMode(NightSettings(ir_led_pin=23), on_switch=print)
    night.update(lux=3.0, ts=0.0)    # None: not yet confirmed
    night.update(lux=2.5, ts=10.0)   # True: switched to night (on_switch(True) was called)
    night.close()

Everything runs on the capture thread; the lux comes with each capture (picamera2's ``Lux``
metadata; the synthetic camera simulates it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpiozero import DigitalOutputDevice

from porch.core.config import NightSettings
from porch.device.gpio import use_pin_factory

log = logging.getLogger(__name__)


class NightMode:
    """Decides day or night from lux readings, with hysteresis, and drives the IR hardware."""

    def __init__(
        self,
        settings: NightSettings,
        on_switch: Callable[[bool], None],
        pin_factory: str = "auto",
    ):
        self.settings = settings
        self._on_switch = on_switch
        self.night = False
        self.switches = 0
        self._pending_since: float | None = None
        self._outputs: list[DigitalOutputDevice] = []
        if settings.ir_led_pin is not None or settings.ir_cut_pin is not None:
            use_pin_factory(pin_factory)
        for pin in (settings.ir_led_pin, settings.ir_cut_pin):
            if pin is not None:
                self._outputs.append(DigitalOutputDevice(pin, initial_value=False))

    def start(self) -> None:
        """Apply a fixed mode (``day`` or ``night``) at start; ``auto`` starts in day."""
        if self.settings.mode == "night":
            self._switch(True)

    def update(self, lux: float | None, ts: float) -> bool | None:
        """One capture's light measure at media time ``ts`` seconds; the new mode when this
        reading switched it, else None."""
        if self.settings.mode != "auto" or lux is None:
            return None
        settings = self.settings
        beyond = lux > settings.day_above_lux if self.night else lux < settings.night_below_lux
        if not beyond:
            self._pending_since = None
            return None
        if self._pending_since is None:
            self._pending_since = ts
        if ts - self._pending_since < settings.confirm_s:
            return None
        self._pending_since = None
        self._switch(not self.night)
        log.info("night mode %s (%.1f lux)", "on" if self.night else "off", lux)
        return self.night

    def _switch(self, night: bool) -> None:
        self.night = night
        self.switches += 1
        for output in self._outputs:
            output.value = night
        self._on_switch(night)

    def close(self) -> None:
        for output in self._outputs:
            output.close()
