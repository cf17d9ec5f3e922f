"""The `porch` command: `porch device run|enroll`, `porch hub run|adduser`, `porch provision
init|broker|enroll|revoke`, `porch demo`, `porch config`."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from porch import __version__
from porch.config import (
    ConfigError,
    DeviceConfig,
    HubConfig,
    configuration_markdown,
    defaults_toml,
    load,
)
from porch.hub.accounts import ROLES

MODELS = {"device": DeviceConfig, "hub": HubConfig}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load(model, path: Path | None):
    if path is None:
        return model()
    try:
        return load(model, path)
    except ConfigError as exc:
        click.echo(f"porch: bad configuration: {exc}", err=True)
        sys.exit(2)


@contextlib.contextmanager
def _refused(*errors: type[Exception], prefix: str = "porch: "):
    """Any of ``errors`` ends the command with its message and exit code 2."""
    try:
        yield
    except errors as exc:
        click.echo(f"{prefix}{exc}", err=True)
        sys.exit(2)


def _stop_on_signals(stop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())


@click.group()
@click.version_option(__version__, prog_name="porch")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
def main(verbose: bool) -> None:
    """Porch: a self-hosted video doorbell that answers to its owner and nobody else."""
    _setup_logging(verbose)


@main.group()
def device() -> None:
    """The doorbell agent (runs on the Raspberry Pi)."""


@device.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="device.toml")
def device_run(config_path: Path | None) -> None:
    """Run the doorbell: button, chime, camera, motion, clips, events to the hub."""
    from porch.device.agent import DoorbellAgent

    config = _load(DeviceConfig, config_path)
    agent = DoorbellAgent(config)
    _stop_on_signals(agent.stop)
    agent.start_link()
    try:
        agent.run()
    finally:
        agent.close()


@main.group()
def hub() -> None:
    """The hub daemon (runs on the home server)."""


@hub.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="hub.toml")
def hub_run(config_path: Path | None) -> None:
    """Serve the web app and ingest events from the broker."""
    from porch.hub.daemon import describe
    from porch.hub.service import HubService

    config = _load(HubConfig, config_path)
    service = HubService(config, on_message=lambda m: click.echo(describe(m)))
    click.echo(f"Porch hub on {service.url}")
    if not service.accounts.has_users():
        token = service.accounts.new_setup_token()
        click.echo(f"No account yet: create the owner at {service.url}/setup?token={token}")
    service.run()


@hub.command("adduser")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="hub.toml")
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@click.argument("username")
def hub_adduser(config_path: Path | None, role: str, username: str) -> None:
    """Create an account (asks for its password)."""
    from porch.hub.accounts import AccountError, Accounts
    from porch.hub.db import Database

    config = _load(HubConfig, config_path)
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    accounts = Accounts(Database(Path(config.data_dir) / "hub.sqlite").conn)
    with _refused(AccountError):
        accounts.add_user(username, password, role)
    click.echo(f"{username} can now sign in as {role}.")


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo keeps its broker state, database and clips.",
)
@click.option("--width", default=640, show_default=True, help="Simulated camera width, px.")
@click.option("--height", default=360, show_default=True, help="Simulated camera height, px.")
@click.option("--port", default=8080, show_default=True, help="Web app port (0: any free one).")
@click.option("--browser/--no-browser", default=True, help="Open the page in a browser.")
def demo(data_dir: Path, width: int, height: int, port: int, browser: bool) -> None:
    """The hub and one simulated doorbell with a Mosquitto of their own, on this machine."""
    from porch.demo import run_demo

    sys.exit(run_demo(data_dir, width, height, port, browser))


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
    _load(MODELS[which], path)
    click.echo(f"{path}: ok")


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
def device_enroll(token: str, directory: Path, config_path: Path, force: bool) -> None:
    """Enroll this doorbell with the hub named in TOKEN (from 'porch provision enroll')."""
    from porch.provisioning.device_enroll import enroll
    from porch.provisioning.enrollment import EnrollError

    with _refused(EnrollError, prefix="porch: enrollment refused: "):
        written = enroll(token, directory, config_path, force)
    click.echo(f"Enrolled. Start the agent with: porch device run --config {written}")


@main.group()
def provision() -> None:
    """The installer's tools: the home CA, device enrollment and revocation, the broker."""


def _provisioned(config_path: Path | None) -> HubConfig:
    """hub.toml, which must name the PKI directory."""
    config = _load(HubConfig, config_path)
    if not config.provisioning.pki_dir:
        click.echo("porch: set provisioning.pki_dir in hub.toml first", err=True)
        sys.exit(2)
    return config


def _authority(config_path: Path | None):
    from porch.provisioning.authority import HomeAuthority

    return HomeAuthority(_provisioned(config_path).provisioning)


CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="hub.toml"
)


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
    with _refused(PkiError):
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
    write_config(authority.pki, out, port, bind, authority.registry.active_devices())
    click.echo(f"Wrote {out} (TLS on {bind}:{port}, client certificates required)")


@provision.command("enroll")
@CONFIG_OPTION
@click.argument("name")
def provision_enroll(config_path: Path | None, name: str) -> None:
    """A one-time token (15 minutes) for the doorbell NAME, as text and as a QR code."""
    import io

    import qrcode

    from porch.provisioning.enrollment import EnrollError

    with _refused(EnrollError):
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
    from porch.provisioning.enrollment import EnrollError

    with _refused(EnrollError):
        _authority(config_path).revoke(name)
    click.echo(f"{name} is revoked; the broker no longer accepts it.")


def _hub_parts(config_path: Path | None):
    """The hub's database, audit log, consent and exporter, without starting the hub."""
    from porch.hub.audit import AuditLog
    from porch.hub.clipstore import HubClipStore
    from porch.hub.consent import Consent
    from porch.hub.db import Database
    from porch.hub.exporter import Exporter
    from porch.provisioning.authority import HomeAuthority

    config = _load(HubConfig, config_path)
    data = Path(config.data_dir)
    db = Database(data / "hub.sqlite")
    authority = HomeAuthority(config.provisioning) if config.provisioning.pki_dir else None
    audit = AuditLog(db.conn, authority.pki.export_key() if authority else None)
    consent = Consent(db.conn, audit)
    clips = HubClipStore(db, data / "clips", config.clips)
    return authority, audit, Exporter(consent, clips, authority, data / "exports")


@main.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--ca",
    "ca_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The home CA certificate you were given (else the bundle's own is shown).",
)
def verify(bundle: Path, ca_path: Path | None) -> None:
    """Check an export bundle offline: signatures, certificates, hashes, scope."""
    from porch.export.bundle import BundleError
    from porch.export.verify import verify_bundle

    try:
        result = verify_bundle(bundle, ca_path.read_bytes() if ca_path else None)
    except BundleError as exc:
        click.echo(f"INVALID: {exc}", err=True)
        sys.exit(1)
    click.echo(f"VALID: bundle {result.bundle_id}, {result.clips} clip(s) for"
               f" {result.organisation}")  # fmt: skip
    if result.credentials:
        click.echo(f"C2PA Content Credentials of {result.credentials} clip(s): trusted under"
                   " the home CA")  # fmt: skip
    click.echo(f"home CA SHA-256 {result.ca_fingerprint}"
               + ("" if ca_path else " (compare it with the one the home gave you)"))  # fmt: skip


@main.group()
def audit() -> None:
    """The hub's hash-chained audit log."""


@audit.command("verify")
@CONFIG_OPTION
def audit_verify(config_path: Path | None) -> None:
    """Check every entry's hash, the chain and the signed head (exit 1 saying where)."""
    authority, log, _ = _hub_parts(config_path)
    public = authority.pki.export_key().public_key() if authority else None
    count, problem = log.verify(public)
    if problem:
        click.echo(f"audit log BROKEN: {problem}", err=True)
        sys.exit(1)
    signed = "head signed by the export key" if public else "head not signed (no home CA)"
    click.echo(f"audit log intact: {count} entries, {signed}")


@main.group("export")
def export_group() -> None:
    """Export bundles of approved footage requests."""


@export_group.command("build")
@CONFIG_OPTION
@click.argument("request_id")
def export_build(config_path: Path | None, request_id: str) -> None:
    """Build the bundle of an approved request (there is no other way to export)."""
    from porch.hub.consent import ConsentError

    _, _, exporter = _hub_parts(config_path)
    total = exporter.size(request_id)
    with (
        _refused(ConsentError, prefix="\nporch: "),
        click.progressbar(length=max(total, 1), label="Building the bundle") as bar,
    ):
        bundle = exporter.build(request_id, "cli", progress=bar.update)
    click.echo(f"{bundle['path']} ({bundle['size_bytes']} bytes, SHA-256 {bundle['sha256']})")


if __name__ == "__main__":
    main()
