"""Area requests end to end, with a real Mosquitto as the relay and as each home's broker:
an agency signs and publishes, hubs match locally, the owner decides, only an approval
sends anything (sealed to the agency), and nobody learns who has a camera."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
import zipfile
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from conftest import (
    TIMEOUT,
    module_home,
    start_hub,
    wait_for,
)
from cryptography.hazmat.primitives import hashes
from test_export import record_two_clips

from porch.agency.desk import Desk, relay_from
from porch.agency.dropbox import DropBox
from porch.agency.identity import Agency
from porch.agency.relay import add_agency, listener_lines
from porch.cli import main
from porch.core.area import EARTH_RADIUS_M, circle
from porch.core.config import AreaSettings
from porch.localbroker import LocalBroker, free_port

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="no mosquitto")
HOME = (51.5074, -0.1278)  # home A: inside the areas the agency asks
AWAY = (51.5300, -0.1278)  # home B: 2.5 km north, outside them


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / EARTH_RADIUS_M * 180 / 3.141592653589793, point[1]


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the connections made through it: how the tests
    see every connection a hub opens to the relay or to the drop box."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=TIMEOUT)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        self.listener.close()


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A relay; an agency with its drop box; home A (provisioned, a doorbell with two clips,
    inside the areas asked) and home B (2.5 km away); each hub reaches the relay and the drop
    box through its own counting proxy."""
    tmp = tmp_path_factory.mktemp("region")
    tmp.chmod(0o755)
    relay_dir = tmp / "relay"
    relay_port = free_port()
    relay = LocalBroker(relay_dir, relay_port, listener_lines(relay_dir, relay_port, "127.0.0.1"))
    relay.start()
    password = add_agency(relay_dir, "city-watch")
    relay.reload()
    agency = Agency(tmp / "agency")
    box_port = free_port()
    box_proxy = CountingProxy(box_port)
    agency.init("Ankh-Morpork City Watch", "city-watch", f"http://127.0.0.1:{box_proxy.port}")
    settings = {**agency.settings, "relay_host": "127.0.0.1", "relay_port": relay_port}
    from porch.core.config import to_toml

    (agency.root / "agency.toml").write_text(to_toml(settings))
    (agency.root / "relay.password").write_text(password)
    desk = Desk(agency)
    box = DropBox(desk, "127.0.0.1", box_port)
    box.start()
    proxies = {"a": CountingProxy(relay_port), "b": CountingProxy(relay_port)}

    def area_settings(name: str) -> AreaSettings:
        return AreaSettings(relay_host="127.0.0.1", relay_port=proxies[name].port,
                            allow_http_dropbox=True)  # fmt: skip

    with module_home("porch-area-", area_settings("a")) as home:
        clips = record_two_clips(home, postroll_s=2.0, every_s=3.0)
        home.hub.area.set_home(True, *HOME)
        home.hub.area_listener.refresh()
        broker_b = LocalBroker(tmp / "broker-b")
        broker_b.start()
        hub_b = start_hub(tmp / "hub-b", broker_b, area=area_settings("b"))
        hub_b.area.set_home(True, *AWAY)
        hub_b.area_listener.refresh()
        for hub in (home.hub, hub_b):
            wait_for(hub.area_listener.subscribed.is_set, what="the hubs on the relay")
        try:
            yield SimpleNamespace(home=home, hub=home.hub, hub_b=hub_b, clips=clips,
                                  agency=agency, desk=desk, box=box, relay=relay,
                                  relay_dir=relay_dir, proxies=proxies, box_proxy=box_proxy,
                                  password=password, tmp=tmp)  # fmt: skip
        finally:
            hub_b.stop()
            broker_b.stop()
            box.stop()
            desk.close()
            relay.stop()
            box_proxy.close()
            for proxy in proxies.values():
                proxy.close()


CENTRE = north_of(HOME, 120)  # the areas' centre: a burglary 120 m north of home A


def ask(region, radius_m: float = 300, centre=CENTRE, hours: float = 1.0, **changes):
    """The agency asks every home within ``radius_m`` of ``centre`` for the last ``hours``
    (the clips' time among them); returns the published request."""
    end = time.time() - 1
    drafted = region.desk.draft(circle(*centre, radius_m), end - hours * 3600, end,
                                "CW-2026-0412", "warrant", "A burglary on Elm Street.",
                                "Sgt. Angua", "angua@watch.example", "W-77")  # fmt: skip
    if changes:
        drafted = drafted.model_copy(update=changes)
    region.desk.publish(drafted, relay_from(region.agency))
    return drafted


def heard(hub, request_id: str) -> list[dict]:
    return [h for h in hub.area.log(500) if h["request_id"] == request_id]


def area_requests(hub) -> list:
    return [r for r in hub.consent.all() if r.from_area]


def test_a_home_in_the_area_gets_the_request_and_one_outside_never_does(region):
    request = ask(region)
    wait_for(lambda: heard(region.hub, request.request_id), what="home A to hear it")
    wait_for(lambda: heard(region.hub_b, request.request_id), what="home B to hear it")
    [matched] = heard(region.hub, request.request_id)
    assert matched["outcome"] == "matched"
    [found] = [r for r in area_requests(region.hub) if r.request_id == matched["reason"]]
    assert found.organisation == "Ankh-Morpork City Watch" and found.name == "Sgt. Angua"
    assert found.origin["area_request_id"] == request.request_id
    assert found.devices == ["front-door"] and found.state == "pending"
    assert heard(region.hub_b, request.request_id)[0]["outcome"] == "outside"
    assert not area_requests(region.hub_b), "home B's owner never sees it"


def matched_request(region, request) -> str:
    """The home's own request id for an area request home A matched."""
    wait_for(lambda: heard(region.hub, request.request_id), what="home A to hear it")
    [entry] = heard(region.hub, request.request_id)
    assert entry["outcome"] == "matched", entry
    return entry["reason"]


def received(region, request_id: str) -> list[tuple]:
    return region.desk.conn.execute(
        "SELECT upload_id, bundle, verified, home_ca FROM received WHERE request_id = ?"
        " AND finished IS NOT NULL",
        (request_id,),
    ).fetchall()


def test_an_approval_reaches_the_drop_box_sealed_and_verified(region):
    request = ask(region)
    mine = matched_request(region, request)
    clip = region.clips[0]
    hub = region.hub
    hub.consent.decide(mine, "owner", approve=True, clip_ids=[clip["clip_id"]],
                       trims={clip["clip_id"]: (0.5, 1.5)})  # fmt: skip
    hub.builds.schedule(mine, "owner")
    wait_for(lambda: hub.deliveries.status(mine)["state"] == "delivered",
             what="the bundle at the drop box")  # fmt: skip
    [(_, bundle, verified, home_ca)] = received(region, request.request_id)
    assert json.loads(verified)["excerpts"] == 1
    fingerprint = region.home.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()
    assert home_ca == fingerprint, "the agency records which home CA the bundle carries"
    result = CliRunner().invoke(main, ["verify", bundle, "--ca",
                                       str(region.home.pki.path("ca.crt"))])  # fmt: skip
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    origin = manifest["request"]["origin"]
    assert origin["area_request_id"] == request.request_id
    text = json.dumps(manifest)
    assert "encryption_key" not in origin
    assert f"[{HOME[1]}, {HOME[0]}]" not in text and "latitude" not in text, "no home location"
    sealed_left = list((region.home.root / "hub" / "exports").glob(".*.sealed"))
    assert not sealed_left, "the sealed copy goes once it is delivered"
    report = CliRunner().invoke(main, ["agency", "report", str(region.agency.root)])
    assert f"{request.request_id}  CW-2026-0412  open  bundles received: 1" in report.output
    audit = [e.action for e in hub.audit.entries(mine)]
    assert audit == ["request", "approved", "export", "delivered"], audit
