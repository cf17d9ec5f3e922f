"""hardware.md's pin table and the default configuration must agree."""

from __future__ import annotations

import re

from porch.core.config import DeviceConfig
from tests.support.common import ROOT

HARDWARE = ROOT / "hardware.md"


def test_pin_table_matches_default_config():
    rows = re.findall(r"^\| (\d+) \| \d+ \| `gpio\.(\w+)` \|", HARDWARE.read_text(), re.M)
    table = {key: int(bcm) for bcm, key in rows}
    gpio = DeviceConfig().gpio
    assert table == {"button_pin": gpio.button_pin, "chime_pin": gpio.chime_pin}


def test_no_pin_is_used_twice():
    # The speaker's I2S pins, the amplifier's SD (BCM 4, taken by the max98357a overlay),
    # the button, the chime and night mode's pins must all differ.
    pins = re.findall(r"^\| (\d+) \| \d+ \| `", HARDWARE.read_text(), re.M)
    assert len(pins) >= 8
    assert len(pins) == len(set(pins)), pins
