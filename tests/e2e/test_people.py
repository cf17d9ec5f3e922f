"""Who is at the door, end to end on a provisioned home (real Mosquitto with its TLS listener
and ACL, the hub, a simulated doorbell with real certificates, a Web Push service on
loopback, mosquitto_sub as Home Assistant): a real cat's photograph crossing the porch and
headlights sweeping it are motion only; a visitor who walks up and does not ring is a person,
told to the owner's phone and to Home Assistant (the class only), with the best picture on
the timeline. A hostile doorbell flooding glances with mosquitto_pub is cut to its budget."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import cv2
import pytest

from porch.core.config import MotionSettings, PushSettings
from porch.core.wire import MotionEvent, glance_topic, motion_topic, new_id
from porch.device.camera.synthetic import Figure, LightChange, SyntheticScene
from tests.support.browser import needs_chromium, sign_in, wait_in_page
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import RunningAgent, agent_from
from tests.support.home_assistant import Listener, client_args, ha_identity
from tests.support.hub import PASSWORD, Home, subscribe
from tests.support.pictures import pictures
from tests.support.push_service import PushService

pytestmark = pytest.mark.skipif(
    not shutil.which("mosquitto_sub"), reason="mosquitto-clients is not installed"
)
VISITOR_AT = 18.0
"""When the visitor comes into view (media seconds): after the cat (2-8 s) and the
headlights (10-14 s)."""


def porch_scene() -> SyntheticScene:
    (cat,) = [p.image() for p in pictures(nights=False) if p.file == "chelsea.png"]
    t = VISITOR_AT
    walk = [(t, -0.1, 0.75, 0.35), (t + 4, 0.5, 0.9, 0.7), (t + 6, 0.5, 1.0, 0.95),
            (t + 9, 0.5, 1.0, 0.95), (t + 13, 1.1, 0.75, 0.35)]  # fmt: skip
    figures = [Figure([(2, -0.1, 0.98, 0.3), (8, 1.1, 0.98, 0.3)], picture=cat), Figure(walk)]
    headlights = [LightChange(10, 14, 2.5, sweep=True)]
    return SyntheticScene(320, 240, 1, figures, headlights)


def left(sensor: list[str]) -> bool:
    """Home Assistant's person sensor went on and then off again."""
    return "ON" in sensor and "OFF" in sensor[sensor.index("ON") :]


@pytest.fixture
def home(world):
    running = Home(world, push=PushSettings(allow_loopback=True, motion_cooldown_s=0))
    running.hub.accounts.add_user("owner", PASSWORD, "owner")
    yield running
    running.close()


@needs_chromium
def test_a_visitor_who_does_not_ring_is_a_person_and_a_cat_or_headlights_are_not(home, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844})  # the owner's phone
    sign_in(page, home.hub.url, "owner")
    push = PushService()
    phone = push.subscription("/push/owner-phone")
    assert subscribe(home.hub, "owner", phone).status_code == 200
    config = home.enroll("front-door")
    listener = Listener(home, ha_identity(home), "porch/+/ha/#", "homeassistant/#")
    agent = agent_from(config, home.root / "front-door" / "data", scene=porch_scene(),
                       motion=MotionSettings(enabled=True, end_after_s=1.0))  # fmt: skip
    hub = home.hub
    try:
        with RunningAgent(agent):
            wait_for(lambda: agent.media_time > VISITOR_AT - 1, timeout=60, what="the cat")
            starts = [e for e in hub.timeline(50) if e["kind"] == "motion"]
            assert starts, "the cat and the headlights moved nothing: the test tests nothing"
            assert hub.people is not None and hub.people.looked >= 4, hub.people.dropped
            assert not push.received, "a push for a cat or headlights"
            wait_for(lambda: [e for e in hub.timeline(50) if e["kind"] == "person"],
                     timeout=30, what="the visitor as a person")  # fmt: skip
            seen_at = agent.media_time
            wait_for(lambda: push.received, what="the push for the person")
            # The open page: the visitor's motion row became theirs, with their picture.
            wait_in_page(page, "document.querySelector('#timeline li.person img')?.naturalWidth")
            assert page.inner_text("#timeline li.person strong") == "Someone"
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            wait_for(lambda: left(listener.on("porch/front-door/ha/person")),
                     timeout=40, what="the person gone in Home Assistant")  # fmt: skip
    finally:
        listener.close()
        push.close()
    # Seen within a second or two of walking into view: the first glances show a person.
    assert VISITOR_AT < seen_at < VISITOR_AT + 3.5, seen_at
    (person,) = [e for e in hub.timeline(50) if e["kind"] == "person"]
    assert not any(e["event_id"] == person["motion_event_id"] for e in hub.timeline(50)), (
        "the motion the person came with is shown once, as the person"
    )
    assert hub.timeline(1, person["motion_event_id"]), "a motion push's link leads nowhere"
    assert hub.ingest.snapshot_path(person["event_id"]).stat().st_size > 1000  # best picture
    (message,) = push.received  # rings and people by default: the cat's motion pushed nothing
    body = json.loads(phone.decrypt(message.body))
    assert body["body"] == "Someone at the front door" and body["kind"] == "person", body
    assert not {"image", "snapshot", "picture"} & set(body), "no picture in the message"
    events = [json.loads(p) for p in listener.on("porch/front-door/ha/ring")]
    assert [e["event_type"] for e in events] == ["person"], events
    sensor = listener.on("porch/front-door/ha/person")
    assert sensor.count("ON") == 1 and left(sensor), sensor
    assert not listener.on("porch/front-door/ha/snapshot"), "no picture without the opt-in"
    discovery = json.loads(listener.on("homeassistant/device/porch_front_door/config")[-1])
    assert discovery["components"]["porch_front_door_person"]["device_class"] == "occupancy"
    assert "person" in discovery["components"]["porch_front_door_doorbell"]["event_types"]


def test_a_doorbell_flooding_glances_is_cut_to_its_budget(home):
    config = home.enroll("front-door")
    home.enroll("hostile")
    keys = home.root / "hostile" / "keys"
    hub = home.hub
    assert hub.people is not None
    # The hostile doorbell's own certificate (its own topics only, as the broker's ACL
    # says): a motion announced, then a person's picture for it 100 times a second for 40 s,
    # each one the hub's detector would look at.
    (face,) = [p for p in pictures(nights=False) if p.file == "astronaut.png"]
    jpeg = home.root / "glance.jpg"
    cv2.imwrite(str(jpeg), cv2.resize(face.image(), (320, 320)))
    moving = MotionEvent(device_id="hostile", event_id=new_id(), ts=time.time(), active=True,
                         area=0.5)  # fmt: skip
    hostile = client_args(home, keys, "device.crt", "device.key")
    announced = subprocess.run(["mosquitto_pub", *hostile, "-t", motion_topic("hostile"),
                                "-q", "1", "-m", moving.to_bytes().decode()],
                               capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert announced.returncode == 0, announced.stderr
    started = time.monotonic()
    flood = subprocess.Popen(
        ["mosquitto_pub", *hostile, "-t", glance_topic("hostile", moving.event_id),
         "-f", str(jpeg), "--repeat", "4000", "--repeat-delay", "0.01", "-q", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    agent = agent_from(config, home.root / "front-door" / "data", scene=porch_scene(),
                       motion=MotionSettings(enabled=True, end_after_s=1.0))  # fmt: skip
    try:
        with RunningAgent(agent):
            wait_for(lambda: [e for e in hub.timeline(50)
                              if e["kind"] == "person" and e["device_id"] == "front-door"],
                     timeout=60, what="the front door's visitor, beside the flood")  # fmt: skip
            seen_at = agent.media_time
            flooding = flood.poll() is None
    finally:
        flood.wait(TIMEOUT * 2)
    flooded_s = time.monotonic() - started
    assert flooding, "the flood ended before the visitor came: it tested nothing"
    assert flood.returncode == 0, flood.stderr.read() if flood.stderr else ""
    dropped = {why: n for (device, why), n in hub.people.dropped.items() if device == "hostile"}
    assert dropped.get("over budget", 0) > 2000, dropped
    looked = hub.people.looked_at["hostile"]
    assert 10 < looked <= 4 * flooded_s + 4, (looked, flooded_s)  # its budget, no more
    assert VISITOR_AT < seen_at < VISITOR_AT + 3.5, seen_at  # as quick as without the flood


def test_a_ring_during_a_visit_has_the_best_picture_of_the_visitor(home):
    walk = [(2, -0.1, 0.75, 0.35), (5, 0.5, 1.0, 0.95), (11, 0.5, 1.0, 0.95),
            (14, 1.1, 0.75, 0.35)]  # fmt: skip
    scene = SyntheticScene(320, 240, 1, [Figure(walk)])
    config = home.enroll("front-door")
    hub = home.hub
    hub.home_assistant.settings = hub.home_assistant.settings.model_copy(
        update={"snapshots": True}  # the owner opted in to pictures in Home Assistant
    )
    listener = Listener(home, ha_identity(home), "porch/+/ha/snapshot")
    agent = agent_from(config, home.root / "front-door" / "data", scene=scene,
                       motion=MotionSettings(enabled=True, end_after_s=1.0))  # fmt: skip
    try:
        with RunningAgent(agent):
            wait_for(lambda: [e for e in hub.timeline(50) if e["kind"] == "person"],
                     timeout=30, what="the visitor as a person")  # fmt: skip
            agent.doorbell.simulate_press()
            wait_for(lambda: [e for e in hub.timeline(50) if e["kind"] == "ring"],
                     what="the ring")  # fmt: skip
            wait_for(lambda: agent.media_time > 16, timeout=40, what="the visitor gone")
            wait_for(lambda: hub._best == {}, what="their motion over")
    finally:
        listener.close()
    (person,) = [e for e in hub.timeline(50) if e["kind"] == "person"]
    (ring,) = [e for e in hub.timeline(50) if e["kind"] == "ring"]
    best = hub.ingest.snapshot_path(person["event_id"]).read_bytes()
    assert hub.ingest.snapshot_path(ring["event_id"]).read_bytes() == best, (
        "the ring's picture is the frame of the press, not the best of the visitor"
    )
    pictures_sent = listener.on("porch/front-door/ha/snapshot")
    assert pictures_sent, "Home Assistant got no picture of the ring"


@needs_chromium
def test_a_parcel_left_by_one_visitor_and_taken_by_another(home, browser):
    """The owner marks the doorstep on the device page; a courier puts down a box (a real
    photograph of one) and leaves; a second visitor takes it; headlights and the night
    switch in between are not parcels."""
    parcel = cv2.imread("/usr/share/doc/opencv-doc/examples/data/box.png")
    courier = [(2, -0.1, 0.75, 0.35), (5, 0.5, 1.0, 0.95), (8, 0.5, 1.0, 0.95),
               (11, 1.1, 0.75, 0.35)]  # fmt: skip
    taker = [(t + 24, x, y, h) for t, x, y, h in courier]
    scene = SyntheticScene(320, 240, 1, [
        Figure([(7, 0.5, 0.97, 0.18), (31, 0.5, 0.97, 0.18)], picture=parcel),
        Figure(courier), Figure(taker)],
        [LightChange(17, 20, 2.5, sweep=True)])  # fmt: skip
    # (the courier's motion ends about 13 s in; the headlights sweep the porch at 17-20 s,
    # before the second visitor at 26 s)
    config = home.enroll("front-door")
    hub = home.hub
    phone = PushService()
    owner_phone = phone.subscription("/push/owner")
    assert subscribe(hub, "owner", owner_phone).status_code == 200
    hub.push.set_preferences("owner", False, "", "", people=False, parcels=True)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    sign_in(page, hub.url, "owner")
    agent = agent_from(config, home.root / "front-door" / "data", scene=scene,
                       motion=MotionSettings(enabled=True, end_after_s=1.0))  # fmt: skip
    try:
        with RunningAgent(agent):
            wait_for(lambda: hub.web_db.latest_clip("front-door") or agent.media_time > 1,
                     what="the doorbell running")  # fmt: skip
            page.goto(hub.url + "/devices/front-door/doorstep")
            page.fill("#boxes", "nan,0.7,0.3,0.3")  # a careless edit: refused, kept to mend
            page.click("#doorstep-form button[type=submit]")
            assert "must lie in the frame" in page.inner_text("#doorstep-form .error")
            assert page.input_value("#boxes") == "nan,0.7,0.3,0.3"
            assert hub.web_db.doorstep("front-door") == []
            page.fill("#boxes", "0.35,0.7,0.3,0.3")  # as drawn on the picture
            page.click("#doorstep-form button[type=submit]")
            page.wait_for_url("**/devices")
            assert hub.web_db.doorstep("front-door") == [(0.35, 0.7, 0.3, 0.3)]
            page.goto(hub.url + "/")
            wait_for(lambda: parcels(hub) == ["left"], timeout=40, what="the parcel left")
            wait_in_page(page, "document.querySelector('#timeline li.parcel strong')")
            assert page.inner_text("#timeline li.parcel strong") == "Parcel left"
            wait_for(lambda: parcels(hub) == ["left", "taken"], timeout=40,
                     what="the parcel taken")  # fmt: skip
            wait_for(lambda: len(phone.received) >= 2, what="both pushes")
            wait_for(lambda: agent.media_time > 40, timeout=30, what="the porch quiet")
    finally:
        phone.close()
    # (the doorbell's motion detector does not count headlights as motion at all; light
    # that changes between a visit's glances is the unit tests' case)
    assert parcels(hub) == ["left", "taken"], "the headlights were a parcel"
    texts = [json.loads(owner_phone.decrypt(m.body))["body"] for m in phone.received]
    assert texts == ["Parcel left at the front door", "Something taken from the front door"]
    left = next(e for e in hub.timeline(50) if e["kind"] == "parcel" and e["action"] == "left")
    assert hub.ingest.before_path(left["event_id"]).exists()
    event = page.goto(f"{hub.url}/event/{left['event_id']}")
    assert event is not None and event.status == 200
    assert page.locator(".before-after img").count() == 2


def parcels(hub) -> list[str]:
    rows = [e for e in hub.timeline(50) if e["kind"] == "parcel"]
    return [e["action"] for e in sorted(rows, key=lambda e: e["ts"])]
