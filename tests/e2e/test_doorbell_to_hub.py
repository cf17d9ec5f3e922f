"""A press travels from the mock GPIO pin through a real Mosquitto into the hub's SQLite."""

from __future__ import annotations

import json
import sqlite3

from porch.core.config import GpioSettings, MotionSettings
from porch.device.camera.synthetic import Figure, SyntheticScene
from tests.support.common import wait_for
from tests.support.device import chime_closings, device_config, run_agent


def test_press_rings_chime_and_reaches_hub(tmp_path, broker, hub, mock_pins):
    config = device_config(tmp_path, broker)
    with run_agent(config) as agent:
        wait_for(agent.link.connected.is_set, what="the device to connect")
        agent.doorbell.simulate_press()
        wait_for(lambda: chime_closings(mock_pins, config.gpio) == 1, what="the chime")
        wait_for(lambda: hub.db.count_events("ring") == 1, what="the ring at the hub")
    row = hub.db.conn.execute("SELECT device_id, kind, data FROM events").fetchone()
    assert row[0] == "front-door" and row[1] == "ring"
    assert json.loads(row[2])["event_type"] == "ring"

    def state():
        return hub.db.conn.execute(
            "SELECT state FROM devices WHERE device_id='front-door'"
        ).fetchone()[0]

    wait_for(lambda: state() == "offline", what="the goodbye")  # the agent said it when stopping


def test_outage_loses_nothing_and_duplicates_nothing(tmp_path, broker, hub, mock_pins):
    """Broker down: 200 presses and motion pile up in the outbox; back up: all arrive once."""
    # A visitor walks past while the broker is down, so motion events queue up too.
    scene = SyntheticScene(
        320, 240, seed=3, figures=[Figure([(1.0, -0.1, 0.9, 0.6), (4.0, 1.1, 0.9, 0.6)])]
    )
    config = device_config(
        tmp_path,
        broker,
        motion=MotionSettings(enabled=True, end_after_s=0.5),
        gpio=GpioSettings(pin_factory="mock", bounce_s=0, chime_s=0.001, chime_active_high=False),
    )
    with run_agent(config, scene) as agent:
        wait_for(agent.link.connected.is_set, what="the device to connect")
        broker.stop()
        wait_for(lambda: not agent.link.connected.is_set(), what="the device to notice")
        for _ in range(200):
            agent.doorbell.simulate_press(hold_s=0)
        wait_for(lambda: agent.emitted["motion"] >= 2, what="motion start and end")
        wait_for(lambda: not agent.recorder.recording, what="the clip to finish")
        assert hub.db.count_events() == 0
        assert len(agent.outbox) == agent.emitted["ring"] + agent.emitted["motion"] >= 202
        assert len(agent.store.clips()) == agent.emitted["clip"] >= 1, "clips wait on the device"

        broker.start()
        wait_for(lambda: len(agent.outbox) == 0, what="the outbox to drain")
        wait_for(
            lambda: hub.db.count_events() == agent.emitted["ring"] + agent.emitted["motion"],
            what="every event at the hub",
        )
        wait_for(lambda: not agent.store.clips(), what="every clip safe on the hub")
    db = sqlite3.connect(hub.db.path)
    assert db.execute("SELECT count(*) FROM events WHERE kind='ring'").fetchone()[0] == 200
    motion = db.execute("SELECT count(*) FROM events WHERE kind='motion'").fetchone()[0]
    assert motion == agent.emitted["motion"]
    stored = db.execute("SELECT count(*) FROM clips WHERE state='stored'").fetchone()[0]
    assert stored == agent.emitted["clip"] >= 1
    # Exactly once: no event id twice (the primary key guarantees it) and none missing.
    ids = db.execute("SELECT count(DISTINCT event_id) FROM events").fetchone()[0]
    assert ids == 200 + motion


def test_unwritable_outbox_still_sends_the_press(tmp_path, broker, hub, mock_pins, caplog):
    """The outbox cannot be written (a full or failing SD card): the press goes out from
    memory instead, and the chime rings as always."""
    config = device_config(tmp_path, broker)
    with run_agent(config) as agent:
        wait_for(agent.link.connected.is_set, what="the device to connect")
        agent.outbox._db.execute("PRAGMA query_only = 1")  # every write now fails in SQLite
        agent.doorbell.simulate_press()
        wait_for(lambda: hub.db.count_events("ring") == 1, what="the ring at the hub")
        assert "outbox unwritable" in caplog.text
        assert len(agent.outbox) == 0
        assert chime_closings(mock_pins, config.gpio) == 1


def test_a_doorbell_without_its_camera_shows_why_on_the_devices_page(
    tmp_path, broker, hub_service, mock_pins
):
    from porch.core.config import CameraSettings
    from porch.device.agent import DoorbellAgent
    from porch.hub.accounts import ROLES
    from tests.support.device import RunningAgent
    from tests.support.hub import PASSWORD, api

    for role in ROLES:
        hub_service.accounts.add_user(role, PASSWORD, role)
    config = device_config(tmp_path, broker, camera=CameraSettings(source="picamera2"))
    with RunningAgent(DoorbellAgent(config)) as agent:
        wait_for(agent.link.connected.is_set, what="the doorbell")
        wait_for(lambda: (hub_service.devices() or [{}])[0].get("problem"),
                 what="the hub to hear of the camera")  # fmt: skip
        page = api(hub_service, "installer", "GET", "/devices").text
        assert "the camera cannot be opened" in page
        agent.doorbell.simulate_press(hold_s=0.01)
        wait_for(lambda: hub_service.ingest.db.count_events("ring") == 1, what="the ring")
