"""The doorbell's hardware: a push button and a chime relay on the Pi's GPIO (gpiozero).

Wiring (see hardware.md): the button between ``button_pin`` and GND, using the Pi's internal
pull-up; the chime relay's input on ``chime_pin``, active low as the common opto-isolated
relay modules are (``chime_active_high = false``, what enrollment writes) or active high.
The chime sounds on every press before anything else happens, so it works with the broker,
the hub or the camera down. With the polarity unsaid the chime is not driven at all: the
wrong level would hold a chime on for good::

    bell = Doorbell(GpioSettings(chime_active_high=False), on_press=lambda: print("ding"))
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
CHIME_UNSAID = "chime silent: set gpio.chime_active_high (hardware.md)"
"""Said in the doorbell's status (short: the camera's fault may follow it)."""


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
        self.problem: str | None = None
        """Why the chime is not driven, if it is not (for the doorbell's status)."""
        self.chime: DigitalOutputDevice | None = None
        if settings.chime_active_high is None:
            # A doorbell set up when active high was assumed, or a file that does not say:
            # either level might hold its chime on. Ring nothing until the file says.
            self.problem = CHIME_UNSAID
            log.error(
                "the chime is silent: set gpio.chime_active_high in device.toml (false for"
                " most relay modules, true for one that closes on high; hardware.md: Chime"
                " relay)"
            )
        else:
            # initial_value=False is "chime off" whichever level that is: an active-low
            # relay's pin starts high, so the chime does not sound when the agent starts.
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
            if self.chime is not None:
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
        if self.chime is not None:
            self.chime.close()
