"""Area requests end to end, with a real Mosquitto as the relay and as each home's broker:
an agency signs and publishes, hubs match locally, the owner decides, only an approval
sends anything (sealed to the agency), and nobody learns who has a camera."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import socket
import sqlite3
import threading
import time
import zipfile
from types import SimpleNamespace

import httpx
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from paho.mqtt.enums import CallbackAPIVersion

from porch.agency.desk import Desk, relay_from
from porch.agency.dropbox import DropBox
from porch.agency.identity import Agency, RegionalAuthority
from porch.agency.relay import add_agency, listener_lines
from porch.cli import main
from porch.core.area import (
    CHUNK_TYPE,
    EARTH_RADIUS_M,
    OFFSET_HEADER,
    UPLOADS_PATH,
    Withdrawal,
    cells_covering,
    circle,
    fingerprint,
    request_topic,
    sign,
)
from porch.core.config import AreaSettings, to_toml
from porch.hub.consent import ConsentError
from porch.localbroker import LocalBroker, free_port
from tests.support.browser import needs_chromium, sign_in
from tests.support.common import TIMEOUT, wait_for
from tests.support.footage import record_two_clips
from tests.support.hub import PASSWORD, api, module_home, start_hub

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="no mosquitto")
HOME = (51.5074, -0.1278)  # home A: inside the areas the agency asks
AWAY = (51.5300, -0.1301)  # home B: 2.5 km north, outside them


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
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def pause(self) -> None:
        """Refuse connections (the far end is down) until :meth:`resume`."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting on it
        self.listener.close()

    def resume(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop:
            try:
                client, _ = listener.accept()
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
    (agency.root / "agency.toml").write_text(to_toml(settings))
    (agency.root / "relay.password").write_text(password)
    desk = Desk(agency)
    box = DropBox(desk, "127.0.0.1", box_port)
    box.start()
    proxies = {"a": CountingProxy(relay_port), "b": CountingProxy(relay_port)}

    def area_settings(name: str) -> AreaSettings:
        return AreaSettings(relay_host="127.0.0.1", relay_port=proxies[name].port,
                            relay_tls=False, allow_http_dropbox=True)  # fmt: skip

    with module_home("porch-area-", area_settings("a")) as home:
        clips = record_two_clips(home, postroll_s=2.0, every_s=3.0)
        # The owner accepted the Watch's key earlier (on a request's page, after a phone call)
        home.hub.area.trusted.trust(
            agency.name, fingerprint(agency.certificate()), "city-watch", "owner"
        )
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
                                  password=password, tmp=tmp, accounts={})  # fmt: skip
        finally:
            hub_b.stop()
            broker_b.stop()
            box.stop()
            desk.close()
            relay.stop()
            box_proxy.close()
            for proxy in proxies.values():
                proxy.close()


CENTRE = (north_of(HOME, 120)[0], -0.1265)  # a burglary about 150 m north-east of home A


def ask(region, radius_m: float = 300, centre=CENTRE, hours: float = 1.0, **changes):
    """The agency asks every home within ``radius_m`` of ``centre`` for the last ``hours``
    (the clips' time among them, up to a few seconds from now, as clocks differ); returns
    the published request."""
    end = time.time() + 30
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
    assert manifest["request"]["request_id"] == request.request_id, "named by the agency's id"
    assert "filed_by" not in manifest["request"] and mine not in text, "no hub-side ids"
    assert manifest["approval"]["decided_by"] == "the owner" and "owner" not in [
        manifest["request"]["name"]]  # fmt: skip
    assert manifest["request"]["devices"] == ["front-door"] == manifest["approval"]["scope"][
        "devices"]  # fmt: skip
    assert f"[{HOME[1]}, {HOME[0]}]" not in text and "latitude" not in text, "no home location"
    sealed_left = list((region.home.root / "hub" / "exports").glob(".*.sealed"))
    assert not sealed_left, "the sealed copy goes once it is delivered"
    report = CliRunner().invoke(main, ["agency", "report", str(region.agency.root)])
    assert f"{request.request_id}  CW-2026-0412  open  bundles received: 1" in report.output
    audit = [e.action for e in hub.audit.entries(mine)]
    assert audit == ["request", "approved", "export", "delivered"], audit


def publish_raw(region, topic: str, payload: bytes) -> None:
    """Publish as the agency's relay account would (a tampered or replayed message)."""
    publish_as(region, "city-watch", topic, payload)


def publish_as(region, account: str, topic: str, payload: bytes) -> None:
    """Publish as relay ``account`` (its password from the region)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(account, region.password if account == "city-watch" else
                           region.accounts[account])  # fmt: skip
    client.connect("127.0.0.1", region.relay.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
    finally:
        client.disconnect()
        client.loop_stop()


def refusal(region, request_id: str) -> str:
    wait_for(lambda: heard(region.hub, request_id), what="home A to hear it")
    [entry] = [h for h in heard(region.hub, request_id) if h["outcome"] == "refused"][:1] or [
        heard(region.hub, request_id)[0]
    ]
    assert entry["outcome"] == "refused", entry
    return entry["reason"]


def strip_along_a_street() -> list[list[float]]:
    """2 km by 40 m (0.08 km²): big enough, but one street's houses."""
    lat, lon = CENTRE
    dlat = 20 / EARTH_RADIUS_M * 57.29577951308232
    dlon = 1000 / EARTH_RADIUS_M * 57.29577951308232 / 0.6225
    return [[lon - dlon, lat - dlat], [lon + dlon, lat - dlat], [lon + dlon, lat + dlat],
            [lon - dlon, lat + dlat], [lon - dlon, lat - dlat]]  # fmt: skip


def bow_tie() -> list[list[float]]:
    lat, lon = CENTRE
    d = 0.004
    return [[lon - d, lat - d], [lon + d, lat + d], [lon + d, lat - d], [lon - d, lat + d],
            [lon - d, lat - d]]  # fmt: skip


def traced_twice() -> list[list[float]]:
    """A 20 m square at the home with a 250 m square traced twice at its corner: counted as
    0.125 km², matching the 20 m square alone."""
    lat0, lon0 = HOME

    def at(north: float, east: float) -> list[float]:
        dlat = north / EARTH_RADIUS_M * 57.29577951308232
        return [lon0 + east / EARTH_RADIUS_M * 57.29577951308232 / 0.6225, lat0 + dlat]

    small = [at(-10, -10), at(-10, 10), at(10, 10), at(10, -10)]
    big = [at(10, 260), at(260, 260), at(260, 10)]
    ring = [*small[:3], *big, at(10, 10), *big, at(10, 10), small[3]]
    return [*ring, ring[0]]


GUARDRAILS = {
    "a ring traced twice": (dict(area=traced_twice()), "the area's edges meet or cross"),
    "one house": (dict(radius_m=60), "is under 0.05 km²"),
    "a city": (dict(radius_m=4000), "is over 25 km²"),
    "a street": (dict(area=strip_along_a_street()), "the area is a strip"),
    "a bow tie": (dict(area=bow_tie()), "the area's edges meet or cross"),
    "a week": (dict(hours=100), "the window is longer than 72 h"),
    "tomorrow": (dict(shift_h=+24), "the window lies in the future"),
    "expired": (dict(expires_in_h=-1), "expired"),
    "the home's router": (dict(dropbox="https://192.168.1.1/upload"), "not on the internet"),
    "plain http": (dict(dropbox="http://dropbox.example/"), "not a plain https://"),
}


@pytest.mark.parametrize("case", sorted(GUARDRAILS))
def test_each_guardrail_refuses_unseen_with_its_reason(region, case):
    change, reason = GUARDRAILS[case]
    before = len(area_requests(region.hub))
    end = time.time() - 1 + change.get("shift_h", 0) * 3600
    ring = change.get("area") or circle(*CENTRE, change.get("radius_m", 300))
    drafted = region.desk.draft(ring, end - change.get("hours", 1) * 3600, end, "CW-1",
                                "voluntary", "Guardrails.", "Sgt. Angua", "angua@x")  # fmt: skip
    if "dropbox" in change:
        drafted = drafted.model_copy(update={"dropbox": change["dropbox"]})
    if "expires_in_h" in change:
        drafted = drafted.model_copy(update={"issued_at": time.time() - 7200,
                                             "expires": time.time() - 3600})  # fmt: skip
    region.desk.publish(drafted, relay_from(region.agency))
    assert reason in refusal(region, drafted.request_id)
    assert len(area_requests(region.hub)) == before, "the owner never sees it"


def test_altered_replayed_and_withdrawn_requests_are_refused(region):
    hub = region.hub
    request = ask(region)
    mine = matched_request(region, request)
    topic = request_topic(cells_covering(request.area.ring)[0], "city-watch", request.request_id)
    payload = sign(request, region.agency.sign_key(), region.agency.chain())
    envelope = json.loads(payload)

    # Altered: a longer window, the signature left as it was.
    document = json.loads(envelope["document"])
    document["start_ts"] -= 3600
    altered = {**envelope, "document": json.dumps(document)}
    publish_raw(region, topic, json.dumps(altered).encode())
    wait_for(lambda: len(heard(hub, request.request_id)) >= 2, what="the altered copy heard")
    assert "altered" in heard(hub, request.request_id)[0]["reason"]

    # Replayed: the very same document published again.
    publish_raw(region, topic, payload)
    wait_for(lambda: len(heard(hub, request.request_id)) >= 3, what="the replay heard")
    assert "replayed" in heard(hub, request.request_id)[0]["reason"]
    assert (
        len([r for r in area_requests(hub) if r.origin["area_request_id"] == request.request_id])
        == 1
    )

    # Withdrawn: the pending request ends, its hold with it, and nothing is ever sent.
    region.desk.withdraw(request.request_id, relay_from(region.agency))
    wait_for(lambda: hub.consent.get(mine).state == "withdrawn", what="the withdrawal")
    with pytest.raises(ConsentError):
        hub.consent.decide(mine, "owner", approve=True)
    assert hub.deliveries.status(mine)["state"] == "none"


def another_agency(
    region, folder: str, name: str, authority=None, account: str = "city-watch"
) -> Desk:
    """Another agency, on the relay's ``account`` (certified by ``authority``, if given)."""
    found = Agency(region.tmp / folder)
    found.init(name, account, region.agency.settings["dropbox"])
    settings = {**region.agency.settings, "name": name, "account": account}
    (found.root / "agency.toml").write_text(to_toml(settings))
    password = region.password
    if account != "city-watch":
        password = region.accounts.get(account) or add_agency(region.relay_dir, account)
        region.accounts[account] = password
        region.relay.reload()
    (found.root / "relay.password").write_text(password)
    if authority is not None:
        authority.issue(found)
    return Desk(found)


def asks(desk: Desk, case: str = "X-1", name: str | None = None):
    """``desk``'s agency asks home A's area for the last hour (as ``name``, if given)."""
    end = time.time() - 1
    drafted = desk.draft(circle(*CENTRE, 300), end - 3600, end, case, "voluntary",
                         "Asked.", "Officer", "o@x")  # fmt: skip
    if name is not None:
        drafted = drafted.model_copy(update={"agency": name})
    desk.publish(drafted, relay_from(desk.agency))
    return drafted


def outcome(hub, request_id: str) -> dict:
    wait_for(lambda: heard(hub, request_id), what="the hub to hear it")
    return heard(hub, request_id)[0]


LOOK_ALIKES = ["Ankh-Morpork City Watch", "Ankh-Morpork \u0421ity Watch",  # Cyrillic С
               "Ankh\u2011Morpork City Watch", "Ankh-Morpork City Watch.",  # no-break hyphen
               "ANKH-MORPORK  city watch", "Ankh-Morpork City Watch\u3002",  # ideographic .
               "Ankh-Morpork\u3000City Watch"]  # fmt: skip


def test_a_trusted_agencys_name_under_another_key_or_a_look_alike_is_a_conflict(region):
    hub = region.hub
    desk = another_agency(region, "impostor", "Ankh-Morpork City Watch", account="impostor")
    try:
        for name in LOOK_ALIKES:
            forged = asks(desk, name=name)
            found = outcome(hub, forged.request_id)
            assert found["outcome"] == "conflict", (name, found)
            assert "claims the name of 'Ankh-Morpork City Watch'" in found["reason"]
        assert not [r for r in area_requests(hub) if r.organisation in LOOK_ALIKES[1:]]
        page = api(hub, "owner", "GET", "/area")
        assert "Conflicts to resolve" in page.text and "Ankh-Morpork \u0421ity Watch" in page.text
        # Blanks that are letters (a Hangul filler, the empty braille cell) are refused.
        for name in ("Ankh-Morpork\u3164City Watch", "Ankh-Morpork City\u2800Watch"):
            hidden = asks(desk, name=name)
            assert "invisible" in outcome(hub, hidden.request_id)["reason"]
        # A withdrawal of a request this hub never heard, by a key it does not trust, is
        # refused (it could otherwise withdraw a genuine request's id before it arrives).
        early = Withdrawal(request_id="ab" * 16, agency="Ankh-Morpork Night Watch",
                           issued_at=time.time(), expires=time.time() + 3600)  # fmt: skip
        payload = sign(early, desk.agency.sign_key(), desk.agency.chain())
        publish_as(region, "impostor", request_topic(cells_covering(
            circle(*CENTRE, 300))[0], "impostor", "ab" * 16), payload)  # fmt: skip
        assert "not heard here" in outcome(hub, "ab" * 16)["reason"]
        # A name that only resembles in part is another agency: heard, not trusted.
        other = asks(desk, name="Ankh-Morpork Night Watch")
        assert outcome(hub, other.request_id)["outcome"] == "matched"
    finally:
        desk.close()


def test_being_heard_first_earns_no_trust_on_any_hub(region):
    """A squatter on its own relay account publishes first under a name no hub knows: no
    hub trusts its key (nor one outside the area, which records nothing but 'outside'); its
    request is listed apart, and the genuine agency's request under that name, heard later,
    is not refused. Once the owner trusts the genuine key, the squatter's is a conflict, and
    the genuine document replayed through the squatter's account is refused."""
    hub, hub_b = region.hub, region.hub_b
    squatter = another_agency(region, "squatter", "Sto Helit Sheriff", account="squatter")
    genuine = another_agency(region, "sheriff", "Sto Helit Sheriff", account="sto-helit")
    try:
        first = asks(squatter, "SQ-1")
        assert outcome(hub, first.request_id)["outcome"] == "matched"
        assert outcome(hub_b, first.request_id)["outcome"] == "outside"
        for each in (hub, hub_b):
            assert "Sto Helit Sheriff" not in [a["name"] for a in each.area.agencies()]
        real = asks(genuine, "SH-1")
        assert outcome(hub, real.request_id)["outcome"] == "matched", "not shut out"
        mine = {r.origin["area_request_id"]: r for r in area_requests(hub)}
        listed = api(hub, "owner", "GET", "/requests").text
        untrusted = listed.split('id="untrusted-requests"')[1].split("</table>")[0]
        for request in (mine[first.request_id], mine[real.request_id]):
            assert not hub.area.is_trusted(request.origin)
            assert request.request_id in untrusted, "listed apart, not trusted"
            assert request.origin["agency_fingerprint"][:16] in untrusted
        page = api(hub, "owner", "GET", f"/requests/{mine[real.request_id].request_id}").text
        assert "You have not trusted this agency's key yet" in page

        trusted = api(hub, "owner", "POST", "/area/agencies/trust",
                      data={"request_id": mine[real.request_id].request_id})  # fmt: skip
        assert trusted.status_code == 303
        [entry] = [a for a in hub.area.agencies() if a["name"] == "Sto Helit Sheriff"]
        assert entry["fingerprint"] == fingerprint(genuine.agency.certificate())
        assert entry["relay_account"] == "sto-helit"
        again = asks(squatter, "SQ-2")
        assert outcome(hub, again.request_id)["outcome"] == "conflict"
        # The genuine document, replayed through the squatter's account: bound to its own.
        replay = asks(genuine, "SH-2")
        assert outcome(hub, replay.request_id)["outcome"] == "matched"
        moved = genuine.draft(circle(*CENTRE, 300), time.time() - 3600, time.time() - 1,
                              "SH-3", "voluntary", "Asked.", "Officer", "o@x")  # fmt: skip
        payload = sign(moved, genuine.agency.sign_key(), genuine.agency.chain())
        topic = request_topic(cells_covering(moved.area.ring)[0], "squatter", moved.request_id)
        publish_as(region, "squatter", topic, payload)
        assert "not the agency's ('sto-helit')" in refusal(region, moved.request_id)
        # Forgetting the key makes the genuine agency untrusted again, nothing more.
        forgot = api(hub, "owner", "POST", "/area/agencies/forget",
                     data={"fingerprint": entry["fingerprint"]})  # fmt: skip
        assert forgot.status_code == 303 and not hub.area.trusted.by_key(entry["fingerprint"])
    finally:
        squatter.close()
        genuine.close()


def test_one_relay_account_cannot_fill_the_owners_list(region):
    """Sixty made-up agencies, each with a key of its own, on one relay account: three of
    their requests reach the owner, listed apart; a trusted agency's next request still
    does."""
    hub = region.hub
    made_up = [another_agency(region, f"flood-{n}", f"Made-up Agency {n}", account="flood")
               for n in range(60)]  # fmt: skip
    try:
        sent = [asks(desk, f"F-{n}") for n, desk in enumerate(made_up)]
        for request in sent:
            outcome(hub, request.request_id)
        filed = [r for r in area_requests(hub) if r.origin.get("relay_account") == "flood"]
        assert len(filed) == 3, len(filed)
        refused = [outcome(hub, r.request_id)["reason"] for r in sent[3:]]
        assert all("relay account 'flood' has enough requests" in why for why in refused)
        watch = ask(region)
        assert outcome(hub, watch.request_id)["outcome"] == "matched", "the Watch still asks"
    finally:
        for desk in made_up:
            desk.close()


def test_a_regional_authority_vouches_for_its_agencies(region):
    authority = RegionalAuthority(region.tmp / "authority")
    authority.init("Ankh-Morpork Regional Authority")
    desk = another_agency(region, "certified", "Sto Lat Constabulary", authority)
    certified = desk.agency
    region.hub.area.add_authority((authority.root / "ca.crt").read_text())
    try:
        end = time.time() - 1
        asked = desk.draft(circle(*CENTRE, 300), end - 3600, end, "SL-1", "voluntary",
                           "Certified.", "Capt. Q", "q@x")  # fmt: skip
        desk.publish(asked, relay_from(certified))
        wait_for(lambda: heard(region.hub, asked.request_id), what="the certified request")
        assert heard(region.hub, asked.request_id)[0]["outcome"] == "matched"
        [held] = [a for a in region.hub.area.agencies() if a["name"] == "Sto Lat Constabulary"]
        assert held["accepted_by"].startswith("authority:"), "trusted through the authority"
        # Its name is held: a key of someone else's under it (or a look-alike) is a conflict.
        fake = another_agency(region, "sto-lat-fake", "Sto Lat Constabulary", account="impostor")
        try:
            forged = asks(fake, name="Sto Lat Constabu1ary")  # a digit one for an l
            assert outcome(region.hub, forged.request_id)["outcome"] == "conflict"
        finally:
            fake.close()
        mine = [r for r in area_requests(region.hub) if r.organisation == "Sto Lat Constabulary"]
        assert mine and all(region.hub.area.is_trusted(r.origin) for r in mine)
        [vouching] = region.hub.area.authorities()
        region.hub.area.remove_authority(vouching["fingerprint"])
        assert not any(region.hub.area.is_trusted(r.origin) for r in mine), "trusted no more"
    finally:
        desk.close()


def test_nothing_leaves_on_decline_silence_or_not_being_in_the_area(region):
    """Every connection a hub opens goes through a counting proxy: declining, ignoring, or
    lying outside the area opens none to the drop box, and none but the one subscription
    to the relay."""
    hub, hub_b = region.hub, region.hub_b
    sent_before = region.box_proxy.connections
    declined, ignored = ask(region), ask(region)
    elsewhere = ask(region, centre=(north_of(HOME, 3000)[0], -0.1265))  # neither home
    for request in (declined, ignored, elsewhere):
        for each in (hub, hub_b):
            wait_for(lambda r=request, h=each: heard(h, r.request_id), what="both hubs hear")
    hub.consent.decide(matched_request(region, declined), "owner", approve=False,
                       message="Not this time.")  # fmt: skip
    assert heard(hub, elsewhere.request_id)[0]["outcome"] == "outside"
    assert heard(hub_b, declined.request_id)[0]["outcome"] == "outside"
    assert region.box_proxy.connections == sent_before, "not one connection to the drop box"
    assert region.proxies["a"].connections == 1 and region.proxies["b"].connections == 1
    report = CliRunner().invoke(main, ["agency", "report", str(region.agency.root)])
    for request in (declined, ignored, elsewhere):  # all the agency can know: nothing came
        assert f"{request.request_id}  CW-2026-0412  open  bundles received: 0" in report.output


@needs_chromium
def test_the_owner_sees_the_area_trims_and_approves_and_the_agency_receives(region, browser):
    hub = region.hub
    request = ask(region)
    mine = matched_request(region, request)
    owner = browser.new_context().new_page()
    sign_in(owner, hub.url, "owner")
    owner.goto(f"{hub.url}/requests")
    owner.click(f"tr[data-request='{mine}'] a")
    assert "area request" in owner.inner_text("body")
    path = owner.get_attribute("#area-view path", "d")
    assert path.startswith("M ") and path.count(" L ") >= 60, "the area, drawn from the request"
    caption = owner.inner_text("#area-caption")
    assert "lies inside it" in caption and "km²" in caption
    fingerprint = region.agency.certificate().fingerprint(hashes.SHA256()).hex()
    assert owner.inner_text("#agency-fingerprint").strip() == fingerprint
    clip = region.clips[1]["clip_id"]
    owner.check(f"#matching input[value='{clip}']")
    owner.fill(f"input[name=trim_from][data-clip='{clip}']", "0.5")
    owner.uncheck("input[name=blur_faces]")
    owner.fill("input[name=password]", PASSWORD)
    owner.click("#approve")
    owner.wait_for_selector("#request-status:has-text('approved')", timeout=TIMEOUT * 1000)
    owner.wait_for_selector("#delivery-state:has-text('delivered')", timeout=2 * TIMEOUT * 1000)
    [(_, bundle, verified, _)] = received(region, request.request_id)
    assert json.loads(verified)["excerpts"] == 1
    result = CliRunner().invoke(main, ["verify", bundle, "--ca",
                                       str(region.home.pki.path("ca.crt"))])  # fmt: skip
    assert result.exit_code == 0 and "1 excerpt(s)" in result.output, result.output


def test_a_delivery_waits_out_a_drop_box_that_is_down_and_resumes_a_cut_upload(region):
    hub = region.hub
    request = ask(region)
    mine = matched_request(region, request)
    hub.consent.decide(mine, "owner", approve=True, clip_ids=[region.clips[0]["clip_id"]])
    region.box_proxy.pause()
    try:
        hub.builds.schedule(mine, "owner")
        wait_for(lambda: "retrying" in hub.deliveries.status(mine)["error"],
                 what="the delivery to meet a drop box that is down")  # fmt: skip
        [sealed] = (region.home.root / "hub" / "exports").glob(".*.sealed")
        data = sealed.read_bytes()
        # Half of it had gone before the connection was cut (sent here straight to the box).
        box = f"http://127.0.0.1:{region.box.server.config.port}{UPLOADS_PATH}"
        opened = httpx.post(box, json={"request_id": request.request_id, "size": len(data),
                                       "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
        half = len(data) // 2
        cut = httpx.patch(f"{box}/{opened.json()['upload']}", content=data[:half],
                          headers={OFFSET_HEADER: "0", "Content-Type": CHUNK_TYPE})  # fmt: skip
        assert cut.status_code == 204 and cut.headers[OFFSET_HEADER] == str(half)
    finally:
        region.box_proxy.resume()
    wait_for(lambda: hub.deliveries.status(mine)["state"] == "delivered",
             what="the delivery once the drop box is back")  # fmt: skip
    rows = region.desk.conn.execute(
        "SELECT received, size, bundle FROM received WHERE request_id = ?", (request.request_id,)
    ).fetchall()
    assert len(rows) == 1 and rows[0][0] == rows[0][1] == len(data) and rows[0][2], rows


def test_only_the_owner_reaches_area_settings_and_deliveries(region):
    hub = region.hub
    mine = next(r.request_id for r in area_requests(hub))
    for role in ("member", "installer", "requester", None):
        assert api(hub, role, "GET", "/area").status_code in (302, 401, 403)
        for path, data in (("/area", {"enabled": "true", "latitude": "1", "longitude": "2"}),
                           ("/area/authorities", {"pem": "x"}),
                           ("/area/agencies/forget", {"fingerprint": "ab" * 32}),
                           ("/area/agencies/trust", {"request_id": mine}),
                           (f"/requests/{mine}/deliver", {})):  # fmt: skip
            assert api(hub, role, "POST", path, data=data).status_code in (401, 403), path
        assert api(hub, role, "GET", f"/api/requests/{mine}/delivery").status_code in (401, 403)
    assert hub.area.home().latitude == HOME[0], "nothing changed"
    bad = api(hub, "owner", "POST", "/area", data={"enabled": "true", "latitude": "north"})
    assert bad.status_code == 400 and "degrees" in bad.text
    assert hub.area.home().enabled and hub.area.home().latitude == HOME[0]


def test_the_relay_holds_no_hub_identity_or_location(region):
    """Last in the module: the relay is stopped and its persistence and log read. They
    hold the agencies' requests, and nothing of any hub: no name, no certificate, no
    coordinates, not even a connection."""
    region.relay.stop()
    try:
        files = {p.name: p.read_bytes() for p in region.relay_dir.iterdir() if p.is_file()}
    finally:
        region.relay.start()
    assert "mosquitto.db" in files and b"porch-area/v1/" in files["mosquitto.db"]
    everything = b"".join(files.values())
    hub_ca = region.home.pki.path("ca.crt").read_text().splitlines()[1].encode()
    hub_cert = region.home.pki.path("hub.crt").read_text().splitlines()[1].encode()
    for secret in (b"porch-hub", b"front-door", hub_ca, hub_cert, b"New client connected"):
        assert secret not in everything, secret
    for coordinate in (*HOME, *AWAY):
        assert not re.search(rb"%s(?!\d)" % re.escape(str(coordinate).encode()), everything)


def test_only_the_asking_agency_withdraws_and_no_request_pins_a_name(region):
    hub = region.hub
    request = ask(region)
    mine = matched_request(region, request)
    mallory = another_agency(region, "mallory", "Mallory Ltd")
    try:
        # Nothing Mallory sends makes a hub trust its key, valid or not.
        end = time.time() - 1
        stale = mallory.draft(circle(*CENTRE, 300), end - 3600, end, "M-1", "voluntary",
                              "Stale.", "M", "m@x")  # fmt: skip
        stale = stale.model_copy(update={"agency": "Sto Lat Watch", "issued_at": end - 7200,
                                         "expires": end - 60})  # fmt: skip
        mallory.publish(stale, relay_from(mallory.agency))
        assert "expired" in refusal(region, stale.request_id)
        assert "sto lat watch" not in [a["name"].casefold() for a in hub.area.agencies()]
        # Mallory asks once, validly, then withdraws City Watch's request.
        own = mallory.draft(circle(*CENTRE, 300), end - 3600, end, "M-0", "voluntary",
                            "Valid.", "M", "m@x")  # fmt: skip
        mallory.publish(own, relay_from(mallory.agency))
        wait_for(lambda: heard(hub, own.request_id), what="Mallory's own request")
        assert "Mallory Ltd" not in [a["name"] for a in hub.area.agencies()]
        forged = Withdrawal(request_id=request.request_id, agency="Mallory Ltd",
                            issued_at=time.time(), expires=time.time() + 3600)  # fmt: skip
        payload = sign(forged, mallory.agency.sign_key(), mallory.agency.chain())
        topic = request_topic(cells_covering(request.area.ring)[0], "city-watch",
                              request.request_id)  # fmt: skip
        publish_raw(region, topic, payload)
        wait_for(lambda: len(heard(hub, request.request_id)) >= 2, what="the forged withdrawal")
        assert "another key" in heard(hub, request.request_id)[0]["reason"]
        assert hub.consent.get(mine).state == "pending"
        # A name with invisible characters is refused outright.
        hidden = mallory.draft(circle(*CENTRE, 300), end - 3600, end, "M-2", "voluntary",
                               "Look-alike.", "M", "m@x")  # fmt: skip
        hidden = hidden.model_copy(update={"agency": "Ankh-Morpork City\u200b Watch"})
        mallory.publish(hidden, relay_from(mallory.agency))
        assert "invisible" in refusal(region, hidden.request_id)
    finally:
        mallory.close()


def test_the_agency_tool_refuses_what_hubs_would_refuse_before_sending(region):
    end = time.time() - 60
    args = [
        "agency",
        "request",
        str(region.agency.root),
        "--point",
        f"{CENTRE[0]},{CENTRE[1]}",
        "--from",
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(end - 3600)),
        "--to",
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(end)),
        "--case",
        "CW-5",
        "--basis",
        "voluntary",
        "--reason",
        "Small.",
        "--officer",
        "A",
        "--contact",
        "a@x",
    ]
    before = region.desk.requests()
    tiny = CliRunner().invoke(main, [*args, "--radius-m", "60"])
    assert tiny.exit_code == 2 and "hubs would refuse this request: the area is" in tiny.output
    assert region.desk.requests() == before, "nothing was published"
    # This test's drop box is plain http on 127.0.0.1 (the test hubs allow it): said, then
    # sent when the agency insists.
    fine = CliRunner().invoke(main, [*args, "--radius-m", "300"])
    assert fine.exit_code == 2 and fine.output.count(";") == 0 and "drop box" in fine.output
    sent = CliRunner().invoke(main, [*args, "--radius-m", "300", "--anyway"])
    assert sent.exit_code == 0 and "published in" in sent.output, sent.output


def test_a_drop_box_that_never_moves_on_ends_the_delivery_instead_of_spinning(tmp_path):
    """A hostile (or broken) drop box answers every chunk with 409 at offset 0: the
    delivery gives up with a reason, after a handful of requests, not a thousand a second."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from porch.hub.delivery import Deliveries, DeliveryError

    calls = []

    class Stuck(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"", offset: str = "0") -> None:
            calls.append(self.command)
            self.send_response(status)
            self.send_header(OFFSET_HEADER, offset)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(201, json.dumps({"upload": "u", "offset": 0,
                                          "state": "receiving"}).encode())  # fmt: skip

        def do_PATCH(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(409)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stuck)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sealed = tmp_path / "sealed"
    sealed.write_bytes(b"x" * 5000)
    deliveries = Deliveries(sqlite3.connect(tmp_path / "d.sqlite", check_same_thread=False),
                            None, tmp_path, allow_loopback_http=True)  # fmt: skip
    origin = {"dropbox": f"http://127.0.0.1:{server.server_address[1]}",
              "area_request_id": "ab" * 16}  # fmt: skip
    try:
        with pytest.raises(DeliveryError, match="takes no more"):
            deliveries._upload("r", origin["dropbox"], origin, sealed, 5000, "cd" * 32)
    finally:
        server.shutdown()
    assert calls == ["POST", "PATCH"]
