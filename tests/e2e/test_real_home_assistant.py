"""Porch in a real Home Assistant Core (2026.2, in the Debian 13 root scripts/home-assistant-root
makes), set up as docs/home-assistant.md tells an owner: onboarded, the MQTT integration added
through its config flow with the identity the hub's page hands out. What a person sees in Home
Assistant is checked there, in its device registry and states: the doorbell and its entities
with their names and classes, a ring, motion on and off, unavailable when it stops, and gone
after a revoke (on the web page or the command line) and after the hub restarts.

Run by ``make test`` (``make test-home-assistant``) in a network namespace with only loopback;
a plain ``pytest`` leaves it out (marker ``real_home_assistant``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from porch.core.config import MotionSettings
from porch.device.camera.synthetic import Figure, SyntheticScene
from tests.support.common import wait_for
from tests.support.device import RunningAgent, agent_from
from tests.support.home_assistant import RealHomeAssistant, home_assistant_root, only_loopback
from tests.support.hub import Home, api, module_home, revoke_from_the_shell

pytestmark = [pytest.mark.real_home_assistant, pytest.mark.slow]

SEEN_S = 30.0
"""How long Home Assistant may take to show a change (it takes well under a second)."""


@pytest.fixture(scope="module")
def porch_home() -> Iterator[Home]:
    assert only_loopback(), "run in a network namespace with only loopback: scripts/loopback-only"
    with module_home("porch-ha-") as home:
        yield home


@pytest.fixture(scope="module")
def home_assistant(porch_home: Home, tmp_path_factory) -> Iterator[RealHomeAssistant]:
    """Home Assistant onboarded, with Porch's MQTT identity from the Devices page's download."""
    import io
    import zipfile

    ha = RealHomeAssistant(home_assistant_root(), tmp_path_factory.mktemp("home-assistant"))
    try:
        ha.start()
        ha.onboard()
        made = api(porch_home.hub, "owner", "POST", "/integrations/home-assistant")
        assert made.status_code == 200, made.text
        identity = ha.folder.parent / "identity"
        zipfile.ZipFile(io.BytesIO(made.content)).extractall(identity)
        ha.add_mqtt("127.0.0.1", porch_home.broker.port, identity)
        yield ha
    finally:
        ha.stop()
    failures = [line for line in ha.log.splitlines() if "Unable to install package" in line]
    assert not failures, f"Home Assistant lacked a requirement: {failures[:3]}"


def doorbell(home: Home, name: str, scene: SyntheticScene) -> RunningAgent:
    """``name`` on mock pins, seeing ``scene``; enrolled as an installer does, the first time."""
    config = home.root / name / "device.toml"
    if not config.exists():
        home.enroll(name)
    agent = agent_from(config, home.root / name / "data", scene,
                       motion=MotionSettings(enabled=True, end_after_s=0.5))  # fmt: skip
    return RunningAgent(agent)


def walk_up(scene: SyntheticScene, started: float) -> None:
    """A visitor comes to the door a second from now, waits three seconds without ringing
    and leaves."""
    t = time.monotonic() - started + 1.0
    scene.figures.append(Figure([(t, -0.1, 0.9, 0.6), (t + 2, 0.5, 1.0, 0.95),
                                 (t + 5, 0.5, 1.0, 0.95), (t + 7, 1.1, 0.9, 0.6)]))  # fmt: skip


def device_named(ha: RealHomeAssistant, identifier: str) -> dict | None:
    for device in ha.devices():
        if ["mqtt", identifier] in device["identifiers"]:
            return device
    return None


def porch_states(ha: RealHomeAssistant, device: str) -> dict[str, dict]:
    prefix = device.replace("-", "_") + "_"
    return {key: value for key, value in ha.states().items()
            if key.split(".", 1)[1].startswith(prefix)}  # fmt: skip


def test_a_doorbell_in_home_assistant_from_enrollment_to_revocation(
    porch_home: Home, home_assistant: RealHomeAssistant
):
    ha = home_assistant
    scene = SyntheticScene(320, 240, seed=5)
    running = doorbell(porch_home, "front-door", scene)
    started = time.monotonic()
    agent = running.__enter__()
    try:
        wait_for(lambda: device_named(ha, "porch_front_door"), timeout=SEEN_S,
                 what="the doorbell in Home Assistant's devices")  # fmt: skip
        device = device_named(ha, "porch_front_door")
        assert device is not None
        assert device["name"] == "Front door" and device["manufacturer"] == "Porch", device
        wait_for(lambda: len(porch_states(ha, "front-door")) == 4, timeout=SEEN_S,
                 what="its four entities")  # fmt: skip
        states = porch_states(ha, "front-door")
        assert sorted(states) == ["binary_sensor.front_door_motion",
                                  "binary_sensor.front_door_person",
                                  "binary_sensor.front_door_problem",
                                  "event.front_door_doorbell"], sorted(states)  # fmt: skip
        bell = states["event.front_door_doorbell"]["attributes"]
        assert bell["device_class"] == "doorbell", bell
        assert bell["event_types"] == ["ring", "person"], bell
        motion = states["binary_sensor.front_door_motion"]
        assert motion["attributes"]["device_class"] == "motion"
        person = states["binary_sensor.front_door_person"]
        assert person["attributes"]["device_class"] == "occupancy"
        problem = states["binary_sensor.front_door_problem"]
        assert problem["attributes"]["device_class"] == "problem"
        wait_for(lambda: ha.state("binary_sensor.front_door_motion")["state"] == "off",
                 timeout=SEEN_S, what="motion off, not unknown, before any motion")  # fmt: skip
        assert ha.state("binary_sensor.front_door_problem")["state"] == "off"
        assert ha.state("binary_sensor.front_door_person")["state"] == "off"
        assert bell_state(ha) == "unknown", "no ring yet"

        agent.doorbell.simulate_press()
        wait_for(lambda: bell_state(ha) not in ("unknown", "unavailable"), timeout=SEEN_S,
                 what="the ring fired in Home Assistant")  # fmt: skip
        fired = ha.state("event.front_door_doorbell")
        assert fired["attributes"]["event_type"] == "ring", fired

        walk_up(scene, started)
        wait_for(lambda: ha.state("binary_sensor.front_door_motion")["state"] == "on",
                 timeout=SEEN_S, what="motion on in Home Assistant")  # fmt: skip
        wait_for(lambda: ha.state("binary_sensor.front_door_person")["state"] == "on",
                 timeout=SEEN_S, what="someone at the door in Home Assistant")  # fmt: skip
        seen = ha.state("event.front_door_doorbell")
        assert seen["attributes"]["event_type"] == "person", seen
        wait_for(lambda: ha.state("binary_sensor.front_door_motion")["state"] == "off",
                 timeout=SEEN_S, what="motion off again")  # fmt: skip
        wait_for(lambda: ha.state("binary_sensor.front_door_person")["state"] == "off",
                 timeout=SEEN_S, what="nobody at the door again")  # fmt: skip
    finally:
        running.__exit__(None, None, None)

    # The doorbell stops (unplugged, say): Home Assistant shows it unavailable.
    wait_for(lambda: all(s["state"] == "unavailable"
                         for s in porch_states(ha, "front-door").values()),
             timeout=SEEN_S, what="every entity unavailable")  # fmt: skip

    # Plugged in again, then revoked on the Devices page while it runs (so its own retained
    # "online" stays on the broker unless the hub clears it): it leaves Home Assistant ...
    with doorbell(porch_home, "front-door", scene):
        wait_for(lambda: bell_state(ha) != "unavailable", timeout=SEEN_S,
                 what="available again")  # fmt: skip
        revoked = api(porch_home.hub, "owner", "POST", "/devices/front-door/revoke")
        assert revoked.status_code == 303, revoked.text
        wait_for(lambda: device_named(ha, "porch_front_door") is None, timeout=SEEN_S,
                 what="the revoked doorbell gone from Home Assistant")  # fmt: skip
        assert porch_states(ha, "front-door") == {}
    # ... and a hub restart does not bring it back.
    porch_home.restart_hub()
    stays_gone(ha, "porch_front_door", "front-door")


def test_a_doorbell_revoked_on_the_command_line_leaves_home_assistant_for_good(
    porch_home: Home, home_assistant: RealHomeAssistant
):
    ha = home_assistant
    running = doorbell(porch_home, "back-door", SyntheticScene(320, 240, seed=6))
    agent = running.__enter__()
    try:
        # Named after what the installer enrolled it as, as Home Assistant shows it.
        wait_for(lambda: ha.state("event.back_door_doorbell") is not None, timeout=SEEN_S,
                 what="the second doorbell in Home Assistant")  # fmt: skip
        assert (device_named(ha, "porch_back_door") or {}).get("name") == "Back door"
        wait_for(agent.link.connected.is_set, what="the doorbell connected")
        revoke_from_the_shell(porch_home, "back-door")
        # Running, not stopped: it is gone all the same, and a press on it reaches nothing.
        wait_for(lambda: device_named(ha, "porch_back_door") is None, timeout=SEEN_S,
                 what="the revoked doorbell gone from Home Assistant")  # fmt: skip
        agent.doorbell.simulate_press()
        wait_for(lambda: agent.emitted["ring"] == 1, what="the press")
        time.sleep(2)
        assert ha.state("event.back_door_doorbell") is None
    finally:
        running.__exit__(None, None, None)
    porch_home.restart_hub()
    stays_gone(ha, "porch_back_door", "back-door")


def bell_state(ha: RealHomeAssistant) -> str:
    state = ha.state("event.front_door_doorbell")
    return state["state"] if state else "missing"


def stays_gone(ha: RealHomeAssistant, identifier: str, name: str) -> None:
    """Nothing of the doorbell comes back within a few seconds of the hub's start (the hub
    announces what it announces within one: it did, before, 5 ms after starting)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert device_named(ha, identifier) is None, "the hub announced it again"
        assert porch_states(ha, name) == {}, porch_states(ha, name)
        time.sleep(0.5)


def test_home_assistant_revoked_hears_nothing_more(
    porch_home: Home, home_assistant: RealHomeAssistant
):
    """The owner revokes Home Assistant's identity on the Devices page while it is connected:
    from then on a ring does not reach it (its connection gets nothing the ACL no longer
    allows). Last in this module: Home Assistant keeps no identity after it."""
    ha = home_assistant
    with doorbell(porch_home, "garage", SyntheticScene(320, 240, seed=7)) as agent:
        wait_for(lambda: ha.state("binary_sensor.garage_motion") is not None
                 and ha.state("binary_sensor.garage_motion")["state"] == "off",
                 timeout=SEEN_S, what="the garage doorbell in Home Assistant")  # fmt: skip
        revoked = api(porch_home.hub, "owner", "POST", "/integrations/home-assistant/revoke")
        assert revoked.status_code == 303, revoked.text
        agent.doorbell.simulate_press()
        wait_for(lambda: porch_home.hub.db.count_events("ring", "garage") == 1,
                 what="the ring at the hub")  # fmt: skip
        time.sleep(2)  # a ring reaches Home Assistant well within this when it may
        assert ha.state("event.garage_doorbell")["state"] == "unknown", "it heard the ring"
