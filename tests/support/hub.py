"""Hubs for the tests: the whole hub (ingest and web app) on a free port, a provisioned
home (CA, TLS broker with the generated ACL, hub), accounts per role, requests to the web
app as a role. Where a hub needs footage, a simulated doorbell makes it."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from porch.cli import main
from porch.core.config import (
    AreaSettings,
    ClipSettings,
    HubConfig,
    LiveSettings,
    MqttSettings,
    ProvisioningSettings,
    PushSettings,
    WebSettings,
    to_toml,
)
from porch.hub.accounts import ROLES
from porch.hub.ingest import Ingest
from porch.hub.service import HubService
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from porch.localbroker import LocalBroker, free_port
from porch.provisioning.broker import listener_lines, write_acl
from porch.provisioning.pki import Pki
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import device_config, run_agent

PASSWORD = "correct horse battery"
"""Every test account's password."""


def start_hub(
    data_dir: Path,
    broker: LocalBroker,
    live: LiveSettings | None = None,
    push: PushSettings | None = None,
    area: AreaSettings | None = None,
    **kwargs,
) -> HubService:
    """The whole hub (ingest and web app on a free port), running on a thread."""
    config = HubConfig(
        data_dir=data_dir,
        mqtt=broker.settings,
        web=WebSettings(port=free_port()),
        live=live or LiveSettings(),
        push=push or PushSettings(),
        area=area or AreaSettings(),
    )
    service = HubService(config, **kwargs)
    service.start()
    wait_for(service.ingest.subscribed.is_set, what="the hub to subscribe")
    return service


def hub_with_a_ring(tmp: Path, broker: LocalBroker, **hub_kwargs) -> HubService:
    """A hub with one account per role (named after it) and one ring with its clip and
    snapshot from a real (simulated) doorbell."""
    service = start_hub(tmp / "hub", broker, **hub_kwargs)
    for role in ROLES:
        service.accounts.add_user(role, PASSWORD, role)
    config = device_config(tmp, broker, clips=ClipSettings(preroll_s=1, postroll_s=1))
    with run_agent(config, realtime=False) as agent:
        wait_for(agent.link.connected.is_set, what="the device")
        wait_for(lambda: agent.media_time > 2, what="pre-roll")
        agent.doorbell.simulate_press()
        wait_for(
            lambda: service.web_db.timeline(10) and service.web_db.timeline(10)[0]["clip_id"],
            what="the clip on the hub",
        )
        wait_for(
            lambda: service.ingest.snapshot_path(
                service.web_db.timeline(1)[0]["event_id"]
            ).exists(),
            what="the snapshot",
        )
    return service


def someone_seen(service: HubService, ts: float) -> str:
    """A person event as the hub's people watch makes one (its own connection, a glance of a
    real face as its picture), at ``ts``; returns its id."""
    from porch.core.wire import PersonEvent, new_id
    from porch.device.clips import thumbnail_jpeg
    from porch.hub.db import Database
    from tests.support.real_face import photo

    person = PersonEvent(device_id="front-door", event_id=new_id(), ts=ts,
                         motion_event_id=new_id(), score=0.9)  # fmt: skip
    db = Database(service.db.path)
    try:
        service._on_person(db, person, thumbnail_jpeg(photo(), 320))
    finally:
        db.close()
    return person.event_id


@pytest.fixture(scope="module")
def furnished_site(tmp_path_factory) -> Iterator[HubService]:
    """For a module's page walks: hub_with_a_ring plus a filed footage request (its id as
    ``request_id``) and an area request as the relay listener files one (``area_request_id``;
    the home's location set, area requests off), on mock pins."""
    from porch.core.area import circle

    Device.pin_factory = MockFactory()
    tmp = tmp_path_factory.mktemp("site")
    with LocalBroker(tmp / "broker") as broker:
        service = hub_with_a_ring(tmp, broker)
        now = time.time()
        service.person_event_id = someone_seen(service, now - 120)
        request = service.consent.file("requester", "Officer Dibble", "Ankh Police", "d@example",
                                       "a parcel", "warrant", "W-1", ["front-door"], now - 3600,
                                       now - 1)  # fmt: skip
        service.request_id = request.request_id
        service.area.set_home(False, 51.5074, -0.1278)
        origin = {"kind": "area", "area_request_id": "ab" * 16, "agency": "City Watch",
                  "agency_fingerprint": "cd" * 32, "case_reference": "CW-1",
                  "area": {"type": "Polygon", "coordinates": [circle(51.5085, -0.1265, 300)]},
                  "area_km2": 0.28, "dropbox": "https://watch.example/dropbox",
                  "encryption_key": "ef" * 32, "issued_at": now}  # fmt: skip
        asked = service.consent.file("agency:cdcdcdcdcdcdcdcd", "Sgt. Angua", "City Watch",
                                     "angua@example", "a burglary", "warrant", "W-2",
                                     ["front-door"], now - 3600, now - 1,
                                     origin=origin)  # fmt: skip
        service.area_request_id = asked.request_id
        yield service
        service.stop()
    Device.pin_factory.reset()
    Device.pin_factory = None


def site_pages(site: HubService) -> dict[str, tuple[str, ...]]:
    """Every page of furnished_site a signed-in person opens, with the roles it admits."""
    row = site.web_db.timeline(1)[0]
    return {
        "/": ("owner", "member"),
        "/devices": ("owner", "member", "installer"),
        f"/devices/{row['device_id']}/doorstep": ("owner",),
        "/account": ROLES,
        f"/clips/{row['clip_id']}": ("owner", "member"),
        f"/event/{row['event_id']}": ("owner", "member"),  # where a notification leads
        f"/event/{site.person_event_id}": ("owner", "member"),
        "/requests": ("owner", "requester"),
        "/requests/new": ("owner", "requester"),
        f"/requests/{site.request_id}": ("owner", "requester"),
        f"/requests/{site.area_request_id}": ("owner",),
        "/area": ("owner",),
        f"/live/{row['device_id']}": ("owner", "member"),
    }


@pytest.fixture
def hub_service(tmp_path: Path, broker: LocalBroker) -> Iterator[HubService]:
    service = start_hub(tmp_path / "hub", broker)
    yield service
    service.stop()


@pytest.fixture
def hub(hub_service: HubService) -> Ingest:
    return hub_service.ingest


def api(service, role: str | None, method: str, path: str, **kw) -> httpx.Response:
    """One request to the hub signed in as the account named ``role`` (None: anonymous)."""
    cookies, headers = {}, dict(kw.pop("headers", {}))
    if role is not None:
        token = service.accounts.open_session(role)
        cookies[SESSION_COOKIE] = token
        headers[CSRF_HEADER] = service.accounts.session(token).csrf
    with httpx.Client(base_url=service.url, cookies=cookies, timeout=TIMEOUT) as client:
        return client.request(method, path, headers=headers, **kw)


class Home:
    """A provisioned home: CA, broker with the generated TLS listener and ACL, hub."""

    def __init__(
        self, root: Path, area: AreaSettings | None = None, push: PushSettings | None = None
    ):
        self.root = root
        settings = ProvisioningSettings(
            pki_dir=str(root / "pki"),
            enroll_port=free_port(),
            broker_port=free_port(),
            reload_command=[],
        )
        self.pki = Pki(root / "pki")
        self.pki.init(["127.0.0.1"])
        write_acl(self.pki, [])
        port = settings.broker_port
        self.broker = LocalBroker(
            root / "broker", port, listener_lines(self.pki, port, "127.0.0.1")
        )
        self.broker.start()
        self.config = HubConfig(
            data_dir=root / "hub",
            mqtt=MqttSettings(
                port=port,
                tls_ca=str(self.pki.path("ca.crt")),
                tls_cert=str(self.pki.path("hub.crt")),
                tls_key=str(self.pki.path("hub.key")),
            ),
            web=WebSettings(port=free_port()),
            provisioning=settings,
            area=area or AreaSettings(),
            push=push or PushSettings(),
        )
        self.start_hub()

    def start_hub(self) -> None:
        self.hub = HubService(self.config, reload_broker=self.broker.reload)
        self.hub.start()
        wait_for(self.hub.ingest.subscribed.is_set, what="the hub on the TLS broker")
        self.authority = self.hub.authority

    def restart_hub(self) -> None:
        """The hub stopped and started again (an upgrade, a reboot); the broker runs on."""
        self.hub.stop()
        self.start_hub()

    def enroll(self, name: str) -> Path:
        """Enroll ``name`` through the CLI, as an installer would; returns its device.toml."""
        token = self.authority.new_token(name).encode()
        config = self.root / name / "device.toml"
        result = device_enroll(token, self.root / name)
        assert result.exit_code == 0, result.output
        return config

    def close(self) -> None:
        self.hub.stop()
        self.broker.stop()


def revoke_from_the_shell(home: Home, name: str) -> None:
    """``porch provision revoke NAME`` with the home's hub.toml, as an owner runs it beside the
    running hub (its broker reloaded by a signal, as systemd's reload would)."""
    settings = home.config.model_dump(mode="json")
    settings["provisioning"]["reload_command"] = ["kill", "-HUP", str(home.broker.pid)]
    hub_toml = home.root / "hub.toml"
    hub_toml.write_text(to_toml(settings))
    revoked = CliRunner().invoke(main, ["provision", "revoke", name, "--config", str(hub_toml)])
    assert revoked.exit_code == 0, revoked.output


def device_enroll(token: str, directory: Path) -> Result:
    return CliRunner().invoke(
        main,
        ["device", "enroll", token, "--dir", str(directory / "keys"),
         "--config", str(directory / "device.toml")],
    )  # fmt: skip


@contextmanager
def module_home(prefix: str, area: AreaSettings | None = None) -> Iterator[Home]:
    """A provisioned home for a module's tests, in a directory Mosquitto's user can read,
    with an account per role (named after it), on mock pins; removed afterwards."""
    world = Path(tempfile.mkdtemp(prefix=prefix))
    world.chmod(0o755)
    Device.pin_factory = MockFactory()
    home = Home(world, area)
    try:
        for role in ROLES:
            home.hub.accounts.add_user(role, PASSWORD, role)
        yield home
    finally:
        home.close()
        Device.pin_factory.reset()
        Device.pin_factory = None
        shutil.rmtree(world, ignore_errors=True)


@pytest.fixture
def home(world: Path) -> Iterator[Home]:
    running = Home(world)
    yield running
    running.close()


ENDINGS = ("removed", "password", "ended", "logout")
"""The ways a member's session ends: removed by the owner, the password changed on another
device, ended from another device's account page, signed out."""


def end_session(service: HubService, how: str, cookie: str) -> None:
    """End the member's session ``cookie`` the way ``how`` says (one of :data:`ENDINGS`),
    as a person would: from another session, or (``logout``) with this one."""
    if how == "removed":
        done = api(service, "owner", "POST", "/household/member/remove")
    elif how == "password":  # changed on the member's phone: every other session ends
        new = "another horse battery"
        done = api(service, "member", "POST", "/account/password",
                   data={"current": PASSWORD, "new": new, "again": new})  # fmt: skip
    elif how == "ended":  # "End" beside that session on the member's phone
        ended = hashlib.sha256(cookie.encode()).hexdigest()[:16]
        done = api(service, "member", "POST", f"/account/sessions/{ended}/end")
    else:
        done = httpx.post(service.url + "/logout", cookies={SESSION_COOKIE: cookie},
                          headers={CSRF_HEADER: service.accounts.session(cookie).csrf})  # fmt: skip
    assert done.status_code in (200, 303), done.text


def subscribe(hub: HubService, username: str, subscription) -> httpx.Response:
    """A signed-in person's browser hands the hub its push subscription (as porch.js does)."""
    token = hub.accounts.open_session(username)
    headers = {CSRF_HEADER: hub.accounts.session(token).csrf}
    url = hub.url + "/api/push/subscriptions"
    return httpx.post(url, json=subscription.json(), headers=headers,
                      cookies={SESSION_COOKIE: token}, timeout=TIMEOUT)  # fmt: skip
