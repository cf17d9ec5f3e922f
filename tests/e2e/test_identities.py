"""Broker identities that cannot be had: reserved names refused when a token is made and
when it is redeemed, revocation that outlives re-enrollment, one open token per name. Against
a real Mosquitto running the generated listener, ACL and CRL."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from porch.cli import main
from porch.core.enrollment import EnrollError
from porch.provisioning.broker import acl
from tests.support.common import TIMEOUT, wait_for
from tests.support.hub import PASSWORD, Home, api, device_enroll

pytestmark = pytest.mark.skipif(
    not shutil.which("mosquitto_pub"), reason="mosquitto-clients is not installed"
)


def publish_with(home: Home, keys: Path, topic: str) -> subprocess.CompletedProcess:
    """mosquitto_pub with the certificate in ``keys`` (QoS 1, MQTT 5: a refusal is seen)."""
    return subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(home.broker.port), "-V", "mqttv5",
         "-q", "1", "--cafile", str(home.pki.path("ca.crt")), "--cert",
         str(keys / "device.crt"), "--key", str(keys / "device.key"), "-t", topic, "-m", "x"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["porch-hub", "porch-broker", "porch-hub-export", "broker"])
def test_reserved_names_get_no_token_anywhere(home, world, name):
    with pytest.raises(EnrollError, match="reserved"):
        home.authority.new_token(name)
    home.hub.accounts.add_user("installer", PASSWORD, "installer")
    page = api(home.hub, "installer", "POST", "/devices/enroll", data={"name": name})
    assert "reserved" in page.text and "porch device enroll porch1." not in page.text
    hub_toml = world / "hub.toml"
    hub_toml.write_text(f'[provisioning]\npki_dir = "{home.pki.root}"\n')
    cli = CliRunner().invoke(main, ["provision", "enroll", "--config", str(hub_toml), name])
    assert cli.exit_code == 2 and "reserved" in cli.output
    count = home.authority.registry.conn.execute("SELECT count(*) FROM tokens").fetchone()[0]
    assert count == 0, "no token was stored"


def test_a_token_for_a_reserved_name_is_refused_when_redeemed(home):
    # A token an older hub made for the hub's own identity: its certificate would have had
    # the hub's ACL (every topic). Redeeming it must fail and write nothing.
    real = home.authority.new_token("front-door")
    forged = replace(real, name="porch-hub", secret="s" * 43)
    home.authority.registry.conn.execute(
        "INSERT INTO tokens (hash, name, expires, created) VALUES (?, ?, ?, ?)",
        (hashlib.sha256(forged.secret.encode()).hexdigest(), "porch-hub", forged.expires, 0.0),
    )
    result = device_enroll(forged.encode(), home.root / "impostor")
    assert result.exit_code == 2 and "reserved" in result.output, result.output
    assert not (home.root / "impostor").exists()
    assert home.authority.registry.active_devices() == []
    assert home.pki.path("mosquitto.acl").read_text().count("user porch-hub") == 1


def test_the_acl_generator_refuses_duplicates_and_leaves_out_reserved_names(caplog):
    with pytest.raises(ValueError, match="two sections for front-door"):
        acl(["front-door", "back-door", "front-door"])
    text = acl(["porch-hub", "front door\nuser porch-hub", "back-door"])
    assert text.count("user porch-hub") == 1, "only the hub's own section"
    assert "user back-door" in text and "front door" not in text
    assert "reserved" in caplog.text and "not a device name" in caplog.text


def test_a_device_enrolled_under_a_now_reserved_name_cannot_block_revocation(home):
    # Enrolled before such names were refused: it is left out of the ACL (and said so),
    # and revoking another device still rewrites the CRL and reloads the broker.
    other = home.root / "other"
    assert device_enroll(home.authority.new_token("back-door").encode(), other).exit_code == 0
    home.authority.registry.conn.execute(
        "INSERT INTO devices (name, serial, fingerprint, sign_key, enrolled) VALUES"
        " ('porch-cam', '12345', 'ab', '00', 0)"
    )
    home.authority.revoke("back-door")
    assert "user porch-cam" not in home.pki.path("mosquitto.acl").read_text()
    wait_for(lambda: publish_with(home, other / "keys", "porch/back-door/status").returncode != 0,
             what="back-door refused after the reload")  # fmt: skip


def test_a_second_token_cannot_enroll_a_name_that_enrolled_meanwhile(home):
    # The installer clicks "enroll" again while the doorbell is enrolling: the second token
    # was made before the first was redeemed, and must not give a second certificate.
    first = home.authority.new_token("front-door")
    registry = home.authority.registry
    hidden = home.authority.new_token("side-door")  # made while nothing was enrolled ...
    registry.conn.execute("UPDATE tokens SET name = 'front-door' WHERE hash = ?",
                          (hashlib.sha256(hidden.secret.encode()).hexdigest(),))  # fmt: skip
    registry.conn.execute("UPDATE tokens SET replaced = NULL")  # ... and still open
    assert device_enroll(first.encode(), home.root / "first").exit_code == 0
    second = replace(hidden, name="front-door")
    result = device_enroll(second.encode(), home.root / "second")
    assert result.exit_code == 2 and "enrolled already" in result.output, result.output
    assert len(registry.revoked_serials()) == 0 and registry.active_devices() == ["front-door"]


def test_a_revoked_certificate_stays_refused_after_its_name_enrolls_again(home):
    first = home.root / "first"
    assert device_enroll(home.authority.new_token("front-door").encode(), first).exit_code == 0
    assert publish_with(home, first / "keys", "porch/front-door/status").returncode == 0
    home.authority.revoke("front-door")
    second = home.root / "second"
    assert device_enroll(home.authority.new_token("front-door").encode(), second).exit_code == 0
    other = home.root / "other"
    assert device_enroll(home.authority.new_token("back-door").encode(), other).exit_code == 0
    home.authority.revoke("back-door")  # rewrites the CRL, and the broker re-reads it

    def refused(keys: Path) -> bool:
        return publish_with(home, keys, "porch/front-door/status").returncode != 0

    wait_for(lambda: refused(other / "keys"), what="back-door refused")
    assert refused(first / "keys"), "the first front-door certificate connected again"
    assert publish_with(home, second / "keys", "porch/front-door/status").returncode == 0
    serials = home.authority.registry.revoked_serials()
    assert len(serials) == 2 and len(set(serials)) == 2


def test_a_new_token_for_a_name_ends_the_open_one(home):
    older = home.authority.new_token("side-door")
    time.sleep(0.01)
    newer = home.authority.new_token("side-door")
    result = device_enroll(older.encode(), home.root / "older")
    assert result.exit_code == 2 and "newer token" in result.output, result.output
    assert not (home.root / "older").exists()
    assert device_enroll(newer.encode(), home.root / "newer").exit_code == 0
    # and it is spent: nothing left to enroll a second certificate for the name
    again = device_enroll(newer.encode(), home.root / "again")
    assert again.exit_code == 2


def test_no_identity_can_knock_another_off_by_taking_its_client_id(home, mock_pins):
    """A hostile doorbell (or Home Assistant's identity) connecting with the hub's client id,
    or another doorbell's, would have the broker drop that client (MQTT's session takeover):
    the hub off the broker most of the time, measured before this was fixed. The listener
    makes every client id its certificate's name, so each can only replace itself."""
    import io
    import zipfile

    from tests.support.device import RunningAgent, agent_from

    home.enroll("front-door")
    config = home.enroll("back-door")
    zipfile.ZipFile(io.BytesIO(home.authority.new_home_assistant())).extractall(home.root / "ha")
    drops = []
    ingest_client = home.hub.ingest._client
    hub_gone = ingest_client.on_disconnect
    ingest_client.on_disconnect = lambda *args: (drops.append("hub"), hub_gone(*args))
    attackers = []
    with RunningAgent(agent_from(config, home.root / "back-door" / "data")) as victim:
        wait_for(victim.link.connected.is_set, what="the back door connected")
        door_gone = victim.link._client.on_disconnect
        victim.link._client.on_disconnect = lambda *a: (drops.append("door"), door_gone(*a))
        keys = [(home.root / "front-door" / "keys", "device"), (home.root / "ha", "client")]
        for folder, stem in keys:
            for stolen in ("porch-hub", "porch-device-back-door", "back-door"):
                attackers.append(subprocess.Popen(
                    ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(home.broker.port),
                     "-i", stolen, "--cafile", str(home.pki.path("ca.crt")),
                     "--cert", str(folder / f"{stem}.crt"), "--key", str(folder / f"{stem}.key"),
                     "-t", "porch/front-door/cmd/#"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        try:
            time.sleep(3)  # six attackers reconnect as they are replaced by each other
            assert drops == [], f"knocked off the broker: {drops}"
            assert home.hub.ingest.connected.is_set() and victim.link.connected.is_set()
        finally:
            for attacker in attackers:
                attacker.terminate()
                attacker.wait(TIMEOUT)
