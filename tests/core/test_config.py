"""Configuration: a wrong type or an unknown key stops with exit 2 naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from porch.core.config import ConfigError, DeviceConfig, HubConfig, defaults_toml, load
from tests.support.common import ROOT


def porch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "porch.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[camera]\nfps = "fast"\n', "camera.fps"),
        ("[camera]\ncolour = true\n", "camera.colour"),
        ("colour = 1\n", "colour"),
        ('[gpio]\nbutton_pin = "17"\n', "gpio.button_pin"),
        ("[gpio]\nbutton_pin = 99\n", "gpio.button_pin"),
        ("[motion]\nprivacy_masks = [[[0, 0], [2, 0], [1, 1]]]\n", "motion.privacy_masks"),
        ('device_id = "Front Door!"\n', "device_id"),
        ("[clips]\npreroll_s = true\n", "clips.preroll_s"),
    ],
)
def test_device_run_exits_2_naming_the_key(tmp_path, text, key):
    config = tmp_path / "device.toml"
    config.write_text(text)
    result = porch("device", "run", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert f"'{key}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_hub_run_exits_2_on_unknown_key(tmp_path):
    config = tmp_path / "hub.toml"
    config.write_text("[mqtt]\nhots = 'x'\n")
    result = porch("hub", "run", "--config", str(config))
    assert result.returncode == 2
    assert "unknown key 'mqtt.hots'" in result.stderr


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera\n")
    assert porch("config", "check", "device", str(bad)).returncode == 2
    missing = porch("config", "check", "device", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


@pytest.mark.parametrize("model", [DeviceConfig, HubConfig])
def test_printed_defaults_load_back_to_the_defaults(tmp_path, model):
    path = tmp_path / "defaults.toml"
    path.write_text(defaults_toml(model))
    assert load(model, path) == model()


def test_docs_list_every_default():
    """docs/configuration.md is generated from the models: regenerate it when they change."""
    from porch.cli import MODELS
    from porch.core.config import configuration_markdown

    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == configuration_markdown(MODELS), "run: porch config docs > docs/configuration.md"


def test_example_config_is_valid():
    for name, model in (("device.example.toml", DeviceConfig), ("hub.example.toml", HubConfig)):
        load(model, ROOT / "docs" / name)


def test_error_type():
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        from porch.core.config import validate

        validate(DeviceConfig, {"nope": 1})


def test_an_unnamed_doorbell_is_called_after_its_id_not_front_door():
    """A second doorbell enrolled as 'back-door' showed up in Home Assistant as another
    "Front door" (the old default name), and took the first one's entity ids."""
    assert DeviceConfig(device_id="back-door").name == "Back door"
    assert DeviceConfig().name == "Front door"
    assert DeviceConfig(device_id="back-door", name="Garden gate").name == "Garden gate"
