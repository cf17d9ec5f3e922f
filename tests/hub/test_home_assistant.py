"""Home Assistant, as its MQTT integration would see the home's broker (real Mosquitto with
the generated TLS listener and ACL, mosquitto_sub and mosquitto_pub with the identity the
owner hands to Home Assistant): discovery and fresh rings, never a replayed ring, nothing it
may not read, nothing it may write, and a revoked doorbell gone."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from porch.core.wire import RingEvent, new_id, ring_topic
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import RunningAgent, agent_from
from tests.support.home_assistant import Listener, client_args, ha_identity
from tests.support.hub import Home, revoke_from_the_shell

pytestmark = pytest.mark.skipif(
    not shutil.which("mosquitto_sub"), reason="mosquitto-clients is not installed"
)


def test_home_assistant_sees_discovery_and_fresh_rings_only(home, mock_pins):
    config = home.enroll("front-door")
    keys = ha_identity(home)
    device_keys = home.root / "front-door" / "keys"
    # One connection, as Home Assistant has (its client id is its certificate's name: a
    # second one would replace the first), asking for what it may read and what it may not.
    forbidden_topics = ("porch/front-door/event/#", "porch/front-door/clip/#",
                        "porch/front-door/snapshot/#", "porch/front-door/glance/#",
                        "porch/front-door/cmd/#",
                        "porch/front-door/live/#", "porch/+/ha/snapshot")  # fmt: skip
    listener = Listener(home, keys, "homeassistant/#", "porch/+/ha/#", "porch/+/status",
                        *forbidden_topics)  # fmt: skip
    running = RunningAgent(agent_from(config, home.root / "front-door" / "data"))
    agent = running.__enter__()
    try:
        discovery = "homeassistant/device/porch_front_door/config"
        wait_for(lambda: listener.on(discovery), what="the doorbell's discovery config")
        config_sent = json.loads(listener.on(discovery)[-1])
        assert config_sent["device"]["identifiers"] == ["porch_front_door"]
        assert config_sent["origin"]["name"] == "Porch"
        components = config_sent["components"]
        entities = {key.removeprefix("porch_front_door_") for key, v in components.items()
                    if len(v) > 1}  # fmt: skip
        assert entities == {"doorbell", "motion", "person", "problem"}
        assert components["porch_front_door_problem"]["device_class"] == "problem"
        # no picture opt-in: a picture announced before is removed (only its platform)
        assert components["porch_front_door_snapshot"] == {"platform": "image"}
        wait_for(lambda: listener.on("porch/front-door/ha/motion") == ["OFF"],
                 what="motion off, not unknown, once the doorbell is online")  # fmt: skip
        wait_for(lambda: listener.on("porch/front-door/ha/problem") == ["OFF"],
                 what="no problem: its camera works")  # fmt: skip
        wait_for(lambda: listener.on("porch/front-door/ha/person") == ["OFF"],
                 what="nobody, not unknown, once the doorbell is online")  # fmt: skip
        wait_for(lambda: agent.media_time > 1.5, what="pre-roll")

        agent.doorbell.simulate_press()  # a fresh ring
        wait_for(lambda: listener.on("porch/front-door/ha/ring"), what="the ring for HA")
        ring = json.loads(listener.on("porch/front-door/ha/ring")[0])
        assert ring["event_type"] == "ring"
        wait_for(lambda: agent.emitted["clip"] >= 1, what="the clip (traffic HA may not see)")

        # A ring replayed an hour late (an outbox after an outage), as the device sends it.
        late = RingEvent(device_id="front-door", event_id=new_id(), ts=time.time() - 3600)
        sent = subprocess.run(["mosquitto_pub", *client_args(home, device_keys, "device.crt",
                                                             "device.key"),
                               "-q", "1", "-t", ring_topic("front-door"),
                               "-m", late.to_bytes().decode()],
                              capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: any(e["event_id"] == late.event_id for e in home.hub.timeline(10)),
                 what="the late ring on the hub's timeline")  # fmt: skip
        late_row = next(e for e in home.hub.timeline(10) if e["event_id"] == late.event_id)
        assert late_row["late"], "the timeline marks it late"
        time.sleep(1.0)  # anything Home Assistant would have had would be here by now
        assert len(listener.on("porch/front-door/ha/ring")) == 1, "the late ring rang the house"
        assert home.hub.home_assistant.late == 1
    finally:
        running.__exit__(None, None, None)
    read = [topic for topic, _ in listener.lines if not topic.startswith(
        ("homeassistant/", "porch/front-door/status", "porch/front-door/ha/"))]  # fmt: skip
    assert read == [] and not listener.on("porch/front-door/ha/snapshot"), (
        f"Home Assistant read what it may not: {read[:3]}")  # fmt: skip

    # Revoked: the doorbell's retained configs are cleared, so it leaves Home Assistant.
    home.authority.revoke("front-door")
    wait_for(lambda: listener.on(discovery)[-1:] == [""], what="the discovery config cleared")
    listener.close()
    retained = subprocess.run(["mosquitto_sub", *client_args(home, keys), "-t", "homeassistant/#",
                               "--retained-only", "-W", "2", "-v"],
                              capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert "porch_front_door" not in retained.stdout

    # Home Assistant may write nothing (tried once its listener is closed: the same identity
    # is the same client id, and a second connection would replace the first).
    for topic in ("porch/front-door/event/ring", discovery, "porch/front-door/cmd/live"):
        tried = subprocess.run(["mosquitto_pub", *client_args(home, keys), "-q", "1",
                                "-t", topic, "-m", "{}"],
                               capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
        assert "not authorized" in (tried.stdout + tried.stderr).lower(), (topic, tried)


def connects(home: Home, keys: Path) -> bool:
    """Whether mosquitto_sub with these keys gets a connection (it waits 1 s for messages)."""
    command = ["mosquitto_sub", *client_args(home, keys), "-t", "homeassistant/#", "-W", "1"]
    tried = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    return "error" not in tried.stderr.lower()


def test_the_home_assistant_identity_is_revocable(home):
    keys = ha_identity(home)
    assert connects(home, keys)
    home.authority.revoke_home_assistant()
    wait_for(lambda: not connects(home, keys), what="the revoked identity refused")


def test_the_owner_makes_and_revokes_the_identity_on_the_devices_page(home):
    from porch.hub.accounts import ROLES
    from tests.support.hub import PASSWORD, api

    for role in ROLES:
        home.hub.accounts.add_user(role, PASSWORD, role)
    for role in ("member", "installer", "requester"):
        assert api(home.hub, role, "POST", "/integrations/home-assistant").status_code == 403
    made = api(home.hub, "owner", "POST", "/integrations/home-assistant")
    assert made.status_code == 200 and made.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(made.content)) as archive:
        assert "BEGIN PRIVATE KEY" in archive.read("client.key").decode()
    assert "user porch-home-assistant" in home.pki.path("mosquitto.acl").read_text()
    page = api(home.hub, "owner", "GET", "/devices")
    assert "Make a new one" in page.text
    revoked = api(home.hub, "owner", "POST", "/integrations/home-assistant/revoke",
                  follow_redirects=False)  # fmt: skip
    assert revoked.status_code == 303
    assert "user porch-home-assistant" not in home.pki.path("mosquitto.acl").read_text()
    actions = [e.action for e in home.hub.audit.entries("home-assistant")]
    assert actions == ["integration", "integration"]


def retained(home: Home, keys: Path, *topics: str) -> str:
    """What the broker keeps retained on ``topics``, as Home Assistant would read it."""
    command = ["mosquitto_sub", *client_args(home, keys), "--retained-only", "-W", "2", "-v"]
    for topic in topics:
        command += ["-t", topic]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT).stdout


def test_a_doorbell_revoked_from_the_command_line_leaves_at_once_and_stays_gone(home, mock_pins):
    """'porch provision revoke' while the hub runs goes the way the page's Revoke goes: Home
    Assistant forgets the doorbell, its retained 'online' goes, its open connection can do
    nothing more (and it cannot connect again), and a hub restart does not announce it again."""
    config = home.enroll("front-door")
    keys = ha_identity(home)
    discovery = "homeassistant/device/porch_front_door/config"
    listener = Listener(home, keys, "homeassistant/#", "porch/+/status", "porch/+/ha/#")
    running = RunningAgent(agent_from(config, home.root / "front-door" / "data"))
    agent = running.__enter__()
    try:
        wait_for(lambda: listener.on(discovery), what="the doorbell announced")
        wait_for(lambda: agent.link.connected.is_set(), what="the doorbell connected")
        revoke_from_the_shell(home, "front-door")
        wait_for(lambda: listener.on(discovery)[-1:] == [""], timeout=10,
                 what="Home Assistant to forget it")  # fmt: skip
        # Its open connection stays, but may do nothing: a press reaches neither the hub
        # nor Home Assistant (the reloaded ACL has no section for it).
        rings = home.hub.db.count_events("ring")
        agent.doorbell.simulate_press()
        wait_for(lambda: agent.emitted["ring"] == 1, what="the press")
        time.sleep(2)
        assert home.hub.db.count_events("ring") == rings
        assert not listener.on("porch/front-door/ha/ring")
        assert "porch/front-door/status" not in retained(home, keys, "porch/+/status")
    finally:
        running.__exit__(None, None, None)
        listener.close()
    home.restart_hub()  # nothing brings the doorbell back
    time.sleep(2)
    left = retained(home, keys, "homeassistant/#", "porch/+/status", "porch/+/ha/#")
    assert "porch_front_door" not in left and "front-door" not in left, left
