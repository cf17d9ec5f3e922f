"""``porch agency …`` (an agency's keys, its area requests, its drop box) and ``porch relay …``
(the relay broker's configuration). Missing or bad state exits 2 with a sentence."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import sys
import time
from pathlib import Path

import click

from porch.agency.identity import Agency, IdentityError, RegionalAuthority
from porch.core.area import LEGAL_BASES, AreaError, circle
from porch.core.config import to_toml

DIRECTORY = click.Path(path_type=Path, file_okay=False)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _when(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"not a time (ISO 8601, e.g. 2026-11-30T13:00): {text!r}")
    return moment.timestamp()


@click.group()
def agency() -> None:
    """An agency's side of area requests: keys, requests, withdrawals, its drop box."""


@agency.command("init")
@click.argument("directory", type=DIRECTORY)
@click.option("--name", required=True, help="The agency's name, as owners will see it.")
@click.option("--account", required=True, help="Its account on the relay (porch relay add-agency).")
@click.option("--dropbox", required=True, help="The https:// address of its drop box.")
@click.option("--relay", "relay_at", default="127.0.0.1:1883", show_default=True,
              help="The relay's host:port.")  # fmt: skip
@click.option("--relay-ca", default="", help="CA certificate of the relay's TLS (PEM).")
@click.option("--relay-password-file", type=click.Path(path_type=Path, dir_okay=False),
              help="The relay password that 'porch relay add-agency' gave.")  # fmt: skip
@click.option("--force", is_flag=True, help="Make new keys over existing ones.")
def init(directory, name, account, dropbox, relay_at, relay_ca, relay_password_file, force):
    """Make the agency's signing and encryption keys and its certificate."""
    host, _, port = relay_at.rpartition(":")
    if not host or not port.isdigit():
        _fail(f"--relay is host:port, not {relay_at!r}")
    if len(name) > 64:
        _fail("the agency's name is at most 64 characters (its certificate's common name)")
    if not dropbox.startswith("https://"):
        _fail("the drop box must be an https:// address: hubs send nowhere else")
    relay_ca = str(Path(relay_ca).resolve()) if relay_ca else ""
    found = Agency(directory)
    try:
        fp = found.init(name, account, dropbox, force)
    except IdentityError as exc:
        _fail(str(exc))
    settings = {**found.settings, "relay_host": host, "relay_port": int(port),
                "relay_ca": relay_ca}  # fmt: skip
    (directory / "agency.toml").write_text(to_toml(settings))
    if relay_password_file is not None:
        target = directory / "relay.password"
        shutil.copyfile(relay_password_file, target)
        target.chmod(0o600)
    click.echo(f"agency {name!r} in {directory}")
    click.echo(f"certificate SHA-256 {fp}")
    click.echo("Publish this fingerprint where owners can check it (your website, a letter).")


@agency.command("request")
@click.argument("directory", type=DIRECTORY)
@click.option("--area", "area_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A GeoJSON Polygon (or a Feature holding one).")  # fmt: skip
@click.option("--point", help="LAT,LON of the centre of a circle (with --radius-m).")
@click.option("--radius-m", type=float, help="The circle's radius, metres.")
@click.option("--from", "start", required=True, help="Start of the time window (ISO 8601).")
@click.option("--to", "end", required=True, help="End of the time window (ISO 8601).")
@click.option("--case", "case_reference", required=True, help="The case reference.")
@click.option("--basis", type=click.Choice(LEGAL_BASES), required=True, help="Legal basis.")
@click.option("--reference", default="", help="The warrant's or order's reference.")
@click.option("--reason", required=True, help="Why, in words the owner will read.")
@click.option("--officer", required=True, help="Who asks, by name.")
@click.option("--contact", required=True, help="How owners reach the officer.")
@click.option("--expires-h", type=float, default=72, show_default=True,
              help="Hours until the request lapses.")  # fmt: skip
@click.option("--anyway", is_flag=True, help="Publish even what hubs would refuse.")
def request(directory, area_file, point, radius_m, start, end, case_reference, basis,
            reference, reason, officer, contact, expires_h, anyway):  # fmt: skip
    """Sign a request and publish it on the relay, in every cell its area touches."""
    from porch.agency.desk import DeskError, relay_from

    if area_file is not None:
        try:
            data = json.loads(area_file.read_text())
            geometry = data.get("geometry", data)
            if geometry.get("type") != "Polygon":
                _fail(f"{area_file} is not a GeoJSON Polygon")
            ring = geometry["coordinates"][0]
        except (OSError, ValueError, KeyError, IndexError, AttributeError) as exc:
            _fail(f"{area_file}: not a GeoJSON Polygon ({exc})")
    elif point and radius_m:
        try:
            lat, lon = (float(v) for v in point.split(","))
        except ValueError:
            _fail(f"--point is LAT,LON, not {point!r}")
        ring = circle(lat, lon, radius_m)
    else:
        _fail("give the area: --area polygon.geojson, or --point LAT,LON with --radius-m")
    desk = _desk(directory)
    try:
        drafted = desk.draft(ring, _when(start), _when(end), case_reference, basis, reason,
                             officer, contact, reference, expires_h)  # fmt: skip
        problems = desk.precheck(drafted)  # hubs refuse these silently: say so here
        if problems and not anyway:
            _fail("hubs would refuse this request: " + "; ".join(problems))
        cells = desk.publish(drafted, relay_from(desk.agency))
    except (DeskError, AreaError, IdentityError) as exc:
        _fail(str(exc))
    click.echo(f"request {drafted.request_id} published in {len(cells)} cell(s): "
               + " ".join(cells))  # fmt: skip


@agency.command("list")
@click.argument("directory", type=DIRECTORY)
def list_requests(directory):
    """The agency's requests, and how many bundles its drop box received for each."""
    _report(directory)


@agency.command("report")
@click.argument("directory", type=DIRECTORY)
def report(directory):
    """Bundles received per request: all an agency can know (never who declined)."""
    _report(directory)


def _report(directory: Path) -> None:
    desk = _desk(directory)
    rows = desk.requests()
    if not rows:
        click.echo("no requests yet")
    for row in rows:
        state = "withdrawn" if row["withdrawn"] else (
            "open" if row["expires"] > time.time() else "lapsed")  # fmt: skip
        click.echo(f"{row['request_id']}  {row['case_reference']}  {state}"
                   f"  bundles received: {row['bundles']}"
                   + (f" (refused: {row['refused']})" if row["refused"] else ""))  # fmt: skip


@agency.command("withdraw")
@click.argument("directory", type=DIRECTORY)
@click.argument("request_id")
def withdraw(directory, request_id):
    """Take a request back: hubs drop it, and nothing more is accepted for it."""
    from porch.agency.desk import DeskError, relay_from

    desk = _desk(directory)
    try:
        desk.withdraw(request_id, relay_from(desk.agency))
    except DeskError as exc:
        _fail(str(exc))
    click.echo(f"request {request_id} withdrawn")


@agency.command("dropbox")
@click.argument("directory", type=DIRECTORY)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8600, show_default=True)
def dropbox(directory, host, port):
    """Serve the drop box (put it behind the https:// address requests give)."""
    from porch.agency.dropbox import DropBox

    box = DropBox(_desk(directory), host, port)
    click.echo(f"drop box at {box.url}")
    box.run()


def _desk(directory: Path):
    from porch.agency.desk import Desk

    found = Agency(directory)
    try:
        found.certificate()
        found.settings  # noqa: B018 - read now, so that a wrong folder fails here
    except IdentityError as exc:
        _fail(str(exc))
    return Desk(found)


@agency.group("authority")
def authority() -> None:
    """A regional authority that vouches for agencies (owners may import its certificate)."""


@authority.command("init")
@click.argument("directory", type=DIRECTORY)
@click.option("--name", required=True, help="The authority's name.")
def authority_init(directory, name):
    """Make the authority's CA."""
    fp = RegionalAuthority(directory).init(name)
    click.echo(f"authority {name!r}: certificate {directory / 'ca.crt'}, SHA-256 {fp}")


@authority.command("issue")
@click.argument("directory", type=DIRECTORY)
@click.argument("agency_directory", type=DIRECTORY)
def authority_issue(directory, agency_directory):
    """Certify an agency's key under the authority."""
    try:
        fp = RegionalAuthority(directory).issue(Agency(agency_directory))
    except (IdentityError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"agency certified: SHA-256 {fp}")


@click.group()
def relay() -> None:
    """The relay broker that carries area requests (a plain Mosquitto)."""


@relay.command("config")
@click.argument("directory", type=DIRECTORY)
@click.option("--port", type=int, default=8883, show_default=True)
@click.option("--bind", default="0.0.0.0", show_default=True)
@click.option("--certfile", default="", help="TLS certificate of the relay (PEM).")
@click.option("--keyfile", default="", help="Its key.")
def relay_config(directory, port, bind, certfile, keyfile):
    """Write the relay's mosquitto.conf, ACL and password file."""
    from porch.agency.relay import config_text

    if bool(certfile) != bool(keyfile):
        _fail("--certfile and --keyfile go together")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mosquitto.conf").write_text(config_text(directory, port, bind, certfile,
                                                          keyfile))  # fmt: skip
    if os.geteuid() == 0:  # Mosquitto started as root drops to its own user
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            user = None
        if user is not None:
            os.chown(directory, user.pw_uid, user.pw_gid)
            click.echo(f"{directory} now belongs to mosquitto (it keeps requests there);"
                       + (f" make {keyfile} readable by it too" if keyfile else ""))  # fmt: skip
    click.echo(f"wrote {directory / 'mosquitto.conf'}; run: mosquitto -c"
               f" {directory / 'mosquitto.conf'}")  # fmt: skip


@relay.command("add-agency")
@click.argument("directory", type=DIRECTORY)
@click.argument("account")
def relay_add_agency(directory, account):
    """Give an agency an account that may publish its own requests; prints its password."""
    from porch.agency.relay import RelayError, add_agency

    try:
        password = add_agency(directory, account)
    except RelayError as exc:
        _fail(str(exc))
    click.echo(password)
    click.echo("(Mosquitto reads new accounts on SIGHUP: systemctl reload mosquitto, or"
               " kill -HUP its process.)", err=True)  # fmt: skip
