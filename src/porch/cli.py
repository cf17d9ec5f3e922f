"""The ``porch`` command. Each part brings its own commands and is loaded only when named,
so a doorbell's install (``porch[device]``) runs ``porch device …`` without the hub's
libraries, and ``porch hub …`` there says which part to install instead of a traceback."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

from porch.core import __version__
from porch.core.commands import load_or_exit
from porch.core.config import DeviceConfig, HubConfig, configuration_markdown, defaults_toml

MODELS: dict[str, type[DeviceConfig | HubConfig]] = {"device": DeviceConfig, "hub": HubConfig}

PARTS: dict[str, tuple[str, str, str]] = {
    # command: (where it is, the extra that installs it, its one-line help)
    "device": (
        "porch.device.cli:device",
        "device",
        "The doorbell agent (runs on the Raspberry Pi).",
    ),
    "hub": ("porch.hub.cli:hub", "hub", "The hub daemon (runs on the home server)."),
    "provision": (
        "porch.provisioning.cli:provision",
        "hub",
        "The installer's tools: the home CA, device enrollment and revocation, the broker.",
    ),
    "verify": (
        "porch.hub.cli:verify",
        "hub",
        "Check an export bundle offline: signatures, certificates, hashes, scope.",
    ),
    "audit": ("porch.hub.cli:audit", "hub", "The hub's hash-chained audit log."),
    "export": ("porch.hub.cli:export_group", "hub", "Export bundles of approved footage requests."),
    "agency": (
        "porch.agency.cli:agency",
        "hub",
        "An agency's side of area requests: keys, requests, withdrawals, its drop box.",
    ),
    "relay": (
        "porch.agency.cli:relay",
        "hub",
        "The relay broker that carries area requests (a plain Mosquitto).",
    ),
    "demo": (
        "porch.demo:demo",
        "hub,device",
        "The hub and one simulated doorbell with a Mosquitto of their own, on this machine.",
    ),
}


class PartsGroup(click.Group):
    """A group whose part commands are imported when used (click's lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *PARTS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in PARTS:
            return super().get_command(ctx, name)
        where, extra, _ = PARTS[name]
        module, _, attr = where.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "porch":
                raise
            click.echo(
                f"porch {name}: this install lacks its part ({exc.name} is missing);"
                f" install it with: pip install 'porch[{extra}]'",
                err=True,
            )
            sys.exit(2)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``porch --help`` lists every command without importing any part."""
        own = {name: self.commands[name].get_short_help_str() for name in self.commands}
        rows = sorted([*own.items(), *((name, part[2]) for name, part in PARTS.items())])
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=PartsGroup)
@click.version_option(__version__, prog_name="porch")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
def main(verbose: bool) -> None:
    """Porch: a self-hosted video doorbell that answers to its owner and nobody else."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.group("config")
def config_group() -> None:
    """Configuration files."""


@config_group.command("defaults")
@click.argument("which", type=click.Choice(sorted(MODELS)))
def config_defaults(which: str) -> None:
    """Print every setting with its default and meaning, as TOML."""
    click.echo(defaults_toml(MODELS[which]), nl=False)


@config_group.command("docs")
def config_docs() -> None:
    """Print docs/configuration.md (every setting of every file)."""
    click.echo(configuration_markdown(MODELS), nl=False)


@config_group.command("check")
@click.argument("which", type=click.Choice(sorted(MODELS)))
@click.argument("path", type=click.Path(path_type=Path))
def config_check(which: str, path: Path) -> None:
    """Validate a configuration file (exit 2 naming the first bad key)."""
    load_or_exit(MODELS[which], path)
    click.echo(f"{path}: ok")


if __name__ == "__main__":
    main()
