"""``porch provision``: the installer's tools on the hub (home CA, enrollment, the broker)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from porch.core.commands import CONFIG_OPTION, load_or_exit, refused, require
from porch.core.config import HubConfig


@click.group()
def provision() -> None:
    """The installer's tools: the home CA, device enrollment and revocation, the broker."""


def _provisioned(config_path: Path | None) -> HubConfig:
    """hub.toml, which must name the PKI directory."""
    config = load_or_exit(HubConfig, config_path)
    if not config.provisioning.pki_dir:
        click.echo("porch: set provisioning.pki_dir in hub.toml first", err=True)
        sys.exit(2)
    return config


def _authority(config_path: Path | None):
    from porch.provisioning.authority import HomeAuthority

    settings = _provisioned(config_path).provisioning
    require(Path(settings.pki_dir) / "ca.crt", "home CA", "run 'porch provision init' first")
    return HomeAuthority(settings)


@provision.command("init")
@CONFIG_OPTION
@click.option("--host", "hosts", multiple=True, help="A name or address devices use for the hub.")
@click.option("--force", is_flag=True, help="Replace an existing CA (devices must enroll again).")
def provision_init(config_path: Path | None, hosts: tuple[str, ...], force: bool) -> None:
    """Create the home CA and the hub's keys and certificates (idempotent)."""
    from porch.provisioning.pki import Pki, PkiError

    config = _provisioned(config_path)
    pki = Pki(Path(config.provisioning.pki_dir))
    public = config.provisioning.public_host or config.provisioning.enroll_host
    with refused(PkiError):
        written = pki.init([public, *hosts], force=force)
    state = f"created {len(written)} files in" if written else "already set up:"
    click.echo(f"Home CA {state} {pki.root}")
    click.echo(f"Hub certificate SHA-256: {pki.hub_fingerprint()}")


@provision.command("broker")
@CONFIG_OPTION
@click.option("--out", type=click.Path(path_type=Path), required=True, help="mosquitto .conf")
@click.option("--bind", default="0.0.0.0", show_default=True, help="Address to listen on.")
def provision_broker(config_path: Path | None, out: Path, bind: str) -> None:
    """Write Mosquitto's TLS listener and ACL (a conf.d drop-in)."""
    from porch.provisioning.broker import write_config

    authority = _authority(config_path)
    port = authority.settings.broker_port
    registry = authority.registry
    write_config(authority.pki, out, port, bind, registry.active_devices(),
                 registry.active_integrations())  # fmt: skip
    click.echo(f"Wrote {out} (TLS on {bind}:{port}, client certificates required)")


@provision.command("enroll")
@CONFIG_OPTION
@click.argument("name")
def provision_enroll(config_path: Path | None, name: str) -> None:
    """A one-time token (15 minutes) for the doorbell NAME, as text and as a QR code."""
    import io

    import qrcode

    from porch.core.enrollment import EnrollError

    with refused(EnrollError):
        token = _authority(config_path).new_token(name)
    text = token.encode()
    qr = qrcode.QRCode(border=1)
    qr.add_data(text)
    picture = io.StringIO()
    qr.print_ascii(out=picture, invert=True)
    click.echo(picture.getvalue())
    click.echo(f"On the doorbell, within 15 minutes:\n\n  porch device enroll {text}\n")


@provision.command("revoke")
@CONFIG_OPTION
@click.argument("name")
def provision_revoke(config_path: Path | None, name: str) -> None:
    """End NAME's access: its certificate goes on the CRL and out of the broker's ACL."""
    from porch.core.enrollment import EnrollError

    with refused(EnrollError):
        _authority(config_path).revoke(name)
    click.echo(f"{name} is revoked; the broker no longer accepts it.")


@provision.command("home-assistant")
@CONFIG_OPTION
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the zip.")
@click.option("--revoke", is_flag=True, help="End the identity made before.")
def provision_home_assistant(config_path: Path | None, out: Path | None, revoke: bool) -> None:
    """A read-only broker identity for Home Assistant (a zip: CA, certificate, key)."""
    from porch.core.enrollment import EnrollError

    authority = _authority(config_path)
    if revoke:
        with refused(EnrollError):
            authority.revoke_home_assistant()
        click.echo("The Home Assistant identity is revoked; the broker no longer accepts it.")
        return
    if out is None:
        click.echo("porch: give --out FILE.zip (or --revoke)", err=True)
        sys.exit(2)
    out.write_bytes(authority.new_home_assistant())
    out.chmod(0o600)
    click.echo(
        f"Wrote {out}: hand it to Home Assistant's MQTT integration (docs/home-assistant.md)"
    )
