"""The doorbell's hardware: a push button and a chime relay on the Pi's GPIO (gpiozero).

Wiring (see hardware.md): the button between ``button_pin`` and GND, using the Pi's internal
pull-up; the chime relay's input on ``chime_pin``, active low as the common opto-isolated
relay modules are (``chime_active_high = false``, the default) or active high. The chime
sounds on every press before anything else happens, so it works with the broker, the hub or
the camera down::

    bell = Doorbell(GpioSettings(), on_press=lambda: print("ding"))
    # ... a visitor presses ...
    bell.close()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gpiozero import Button, Device, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from porch.core.config import GpioSettings

log = logging.getLogger(__name__)


def use_pin_factory(kind: str) -> None:
    """Select gpiozero's pin factory: ``mock`` simulates pins, ``auto`` lets gpiozero choose."""
    if kind == "mock" and not isinstance(Device.pin_factory, MockFactory):
        Device.pin_factory = MockFactory()


class Doorbell:
    """A button that rings the chime and then calls ``on_press`` (on gpiozero's thread)."""

    def __init__(self, settings: GpioSettings, on_press: Callable[[], None]):
        use_pin_factory(settings.pin_factory)
        self.settings = settings
        self.presses = 0
        self._on_press = on_press
        if "chime_active_high" not in settings.model_fields_set:
            # Doorbells set up when the default was active high: their relay would now hold
            # the chime on. Say so loudly until the file says which the module needs.
            log.warning(
                "gpio.chime_active_high is not set: driving the chime relay active low (the"
                " default since 2026-12; it was active high). Set it in device.toml to what"
                " your relay module needs (hardware.md: Chime relay)."
            )
        # initial_value=False is "chime off" whichever level that is: an active-low relay's
        # pin starts high, so the chime does not sound when the agent starts.
        self.chime = DigitalOutputDevice(
            settings.chime_pin, active_high=settings.chime_active_high, initial_value=False
        )
        self.button = Button(
            settings.button_pin, pull_up=True, bounce_time=settings.bounce_s or None
        )
        self.button.when_pressed = self._pressed

    def _pressed(self) -> None:
        self.presses += 1
        try:
            self.chime.blink(on_time=self.settings.chime_s, off_time=0.01, n=1, background=True)
        except Exception:  # a broken relay must not stop the event from reaching the hub
            log.exception("chime failed")
        try:
            self._on_press()
        except Exception:  # the chime rang; a failure further on must not kill the button
            log.exception("press handling failed")

    def simulate_press(self, hold_s: float = 0.05) -> None:
        """Press and release the button through the mock pin (simulated doorbells only)."""
        pin = self.button.pin
        if not hasattr(pin, "drive_low"):
            raise RuntimeError("simulate_press needs gpiozero's MockFactory")
        pin.drive_low()
        if hold_s:
            time.sleep(hold_s)
        pin.drive_high()

    def close(self) -> None:
        self.button.close()
        self.chime.close()
