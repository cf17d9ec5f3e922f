"""``porch device``: run the doorbell agent, enroll it with a home."""

from __future__ import annotations

from pathlib import Path

import click

from porch.core.commands import load_or_exit, refused, stop_on_signals
from porch.core.config import DeviceConfig


@click.group()
def device() -> None:
    """The doorbell agent (runs on the Raspberry Pi)."""


@device.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="device.toml")
def device_run(config_path: Path | None) -> None:
    """Run the doorbell: button, chime, camera, motion, clips, events to the hub."""
    from porch.device.agent import DoorbellAgent

    config = load_or_exit(DeviceConfig, config_path)
    agent = DoorbellAgent(config)
    stop_on_signals(agent.stop)
    agent.start_link()
    try:
        agent.run()
    finally:
        agent.close()


@device.command("enroll")
@click.argument("token")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("/etc/porch/device"),
    show_default=True,
    help="Where the device's keys and certificates go.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("/etc/porch/device.toml"),
    show_default=True,
    help="The device.toml to write.",
)
@click.option("--force", is_flag=True, help="Replace an existing device.toml.")
@click.option(
    "--user",
    "service_user",
    default="porch",
    show_default=True,
    help="Run as root: the service's user, who gets the keys and the config (0600).",
)
def device_enroll(
    token: str, directory: Path, config_path: Path, force: bool, service_user: str
) -> None:
    """Enroll this doorbell with the hub named in TOKEN (from 'porch provision enroll')."""
    from porch.core.enrollment import EnrollError
    from porch.device.enroll import enroll
    from porch.device.sandbox import lookup_warning

    with refused(EnrollError, prefix="porch: enrollment refused: "):
        written = enroll(token, directory, config_path, force, service_user)
    click.echo(f"Enrolled. Start the agent with: porch device run --config {written}")
    warning = lookup_warning(load_or_exit(DeviceConfig, written).mqtt.host)
    if warning:
        click.echo(f"porch: warning: {warning}", err=True)
