"""Who is at the door: the hub's person detector on real photographs and video frames
(tests/hub/people_pictures.toml, labelled by hand), each sent as a doorbell sends it (its
glance: 320 px wide, JPEG), and the hub's watch over glances (bounded per doorbell, only
while its motion goes on, a flood costing the others nothing)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from porch.core.wire import GLANCES_PER_S, Glance, MotionEvent, PersonEvent, new_id, now
from porch.device.agent import GLANCE_WIDTH
from porch.device.clips import thumbnail_jpeg
from porch.hub.people.detector import PersonDetector
from porch.hub.people.models import POSE, ModelError, model_path
from porch.hub.people.watch import PeopleWatch
from tests.support.common import wait_for
from tests.support.pictures import Picture, pictures


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return PersonDetector()


def glance_of(picture: Picture) -> bytes:
    return thumbnail_jpeg(picture.image(), GLANCE_WIDTH)


def test_the_detector_tells_people_from_animals_vehicles_and_empty_scenes(detector):
    seen: dict[tuple[str, bool], list[bool]] = {}
    false_people = []
    for picture in pictures():
        sighting = detector.look_jpeg(glance_of(picture))
        seen.setdefault((picture.kind, picture.night), []).append(sighting.person)
        if sighting.person and not picture.person:
            false_people.append(picture.name)
    recall = {key: sum(found) / len(found) for key, found in seen.items()}
    print({f"{kind}{' (night)' * night}": round(r, 2) for (kind, night), r in recall.items()})
    assert recall[("facing", False)] >= 0.95, recall  # measured: 12 of 12
    assert recall[("profile", False)] == 1.0, recall
    # At night (greyscale, dim, noisy) a single picture misses more: measured 9 of 12. A
    # visitor is seen in several glances, and one is enough (see the watch's test below).
    assert recall[("facing", True)] >= 0.7, recall
    # Turned away, face unseen: measured 3 of 4 by day and at night (BlazePose alone, whose
    # detector is anchored on a face: 3 and 2; HOG's upright figure adds one at night).
    assert recall[("away", False)] >= 0.75, recall
    assert recall[("away", True)] >= 0.75, recall
    assert not false_people, f"a person seen in {false_people}"
    assert sum(not p.person for p in pictures()) >= 25


def test_a_person_is_boxed_where_they_are(detector):
    (astronaut,) = [p for p in pictures(nights=False) if p.file == "astronaut.png"]
    sighting = detector.look_jpeg(glance_of(astronaut))
    assert sighting.person and sighting.box is not None
    x0, y0, x1, y1 = sighting.box
    assert x0 < 0.35 < x1 and y0 < 0.3 < y1, sighting.box  # her face, left of the picture


def test_what_is_not_a_jpeg_or_claims_a_giant_picture_is_refused_before_decoding(detector):
    real = pictures_of("facing")[0]
    at = real.index(b"\xff\xc0")  # the frame header: height and width at +5 and +7
    giant = real[: at + 5] + (60000).to_bytes(2, "big") * 2 + real[at + 9 :]
    # A marker without a length before the frame header: a reader that skips by length
    # would find a small frame in what follows while libjpeg decodes the giant one.
    tem = real[:2] + b"\xff\x01" + real[2:]
    for data in (b"", b"\xff\xd8not a jpeg", b"GIF89a" + bytes(100), real[:200], giant, tem):
        with pytest.raises(ValueError):
            detector.look_jpeg(data)
    assert detector.look_jpeg(real).person


def test_a_missing_or_altered_model_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelError, match="porch hub models"):
        model_path(POSE, tmp_path)
    (tmp_path / POSE.name).write_bytes(b"not the model")
    with pytest.raises(ModelError, match="porch hub models"):
        model_path(POSE, tmp_path)


class Heard:
    """What a watch told: person events and better pictures, as they came."""

    def __init__(self) -> None:
        self.people: list[tuple[PersonEvent, bytes]] = []
        self.pictures: list[tuple[PersonEvent, bytes]] = []
        self.changed = threading.Event()

    def person(self, event: PersonEvent, jpeg: bytes) -> None:
        self.people.append((event, jpeg))
        self.changed.set()

    def picture(self, event: PersonEvent, jpeg: bytes) -> None:
        self.pictures.append((event, jpeg))


@pytest.fixture
def watched(detector):
    heard = Heard()
    watch = PeopleWatch(detector, heard.person, heard.picture, confirm=2)
    watch.start()
    yield watch, heard
    watch.stop()


def motion(device: str, active: bool = True) -> MotionEvent:
    return MotionEvent(device_id=device, event_id=new_id(), ts=now(), active=active, area=0.1)


def pictures_of(kind: str) -> list[bytes]:
    return [glance_of(p) for p in pictures(nights=False) if p.kind == kind]


def test_two_glances_with_a_person_make_one_person_event_with_the_best_picture(watched):
    watch, heard = watched
    start = motion("front-door")
    watch.motion(start)
    faces = pictures_of("facing")
    for jpeg in faces[:6]:
        watch.glance(Glance("front-door", start.event_id, jpeg))
        time.sleep(1 / GLANCES_PER_S)  # as a doorbell sends them
    wait_for(lambda: watch.looked >= 6, what="six glances looked at")
    assert len(heard.people) == 1
    event, picture = heard.people[0]
    assert event.motion_event_id == start.event_id and event.device_id == "front-door"
    assert picture in faces
    assert all(e.event_id == event.event_id for e, _ in heard.pictures)


def test_no_person_event_for_animals_cars_or_an_empty_porch(watched):
    watch, heard = watched
    start = motion("front-door")
    watch.motion(start)
    others = pictures_of("animal") + pictures_of("vehicle") + pictures_of("empty")
    for jpeg in others:
        watch.glance(Glance("front-door", start.event_id, jpeg))
        time.sleep(1 / GLANCES_PER_S)
    wait_for(lambda: watch.looked + sum(watch.dropped.values()) >= len(others), what="looks")
    assert watch.looked >= len(others) * 0.9, watch.dropped
    assert not heard.people


def test_glances_count_only_during_their_own_motion(watched):
    watch, heard = watched
    face = pictures_of("facing")[0]
    stray = Glance("front-door", new_id(), face)  # no motion going on
    watch.glance(stray)
    start = motion("front-door")
    watch.motion(start)  # another motion: the stray one is not its
    for _ in range(3):
        watch.glance(Glance("front-door", new_id(), face))  # not this motion's id
        watch.glance(Glance("back-door", start.event_id, face))  # another doorbell's
        time.sleep(1 / GLANCES_PER_S)
    watch.motion(motion("front-door", active=False))
    watch.glance(Glance("front-door", start.event_id, face))  # after its motion ended
    time.sleep(0.5)
    assert watch.looked == 0 and not heard.people, watch.dropped


def test_a_glance_that_overtakes_its_motion_event_is_kept_for_it(watched):
    watch, heard = watched
    face = pictures_of("facing")[0]
    start = motion("front-door")
    watch.glance(Glance("front-door", start.event_id, face))  # QoS 0 overtook QoS 1
    watch.motion(start)
    time.sleep(1 / GLANCES_PER_S)
    watch.glance(Glance("front-door", start.event_id, face))
    wait_for(lambda: heard.people, what="the person")
    assert watch.looked == 2


def test_a_flooding_doorbell_is_cut_to_its_budget_and_the_others_are_seen_at_once(watched):
    watch, heard = watched
    face, empty = pictures_of("facing")[0], pictures_of("empty")[0]
    hostile, front = motion("hostile"), motion("front-door")
    watch.motion(hostile)
    watch.motion(front)
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            watch.glance(Glance("hostile", hostile.event_id, empty))

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        watch.glance(Glance("front-door", front.event_id, face))
        time.sleep(1 / GLANCES_PER_S)
        watch.glance(Glance("front-door", front.event_id, face))
        assert heard.changed.wait(5), "the front door's visitor was not seen"
        took = time.monotonic() - started
        time.sleep(1.0)
    finally:
        stop.set()
        flooding.join()
    drops = Counter({why: n for (device, why), n in watch.dropped.items() if device == "hostile"})
    assert drops["over budget"] > 1000, drops  # thousands sent, a few a second looked at
    assert not any(device == "front-door" for device, _ in watch.dropped), watch.dropped
    # two looks of its own, at most one of the flood's before each, and its 1/4 s gap
    assert took < 1.5, f"the front door's person took {took:.2f} s beside the flood"
    assert heard.people[0][0].device_id == "front-door"


def test_home_assistant_hears_a_person_only_while_their_motion_goes_on():
    from porch.core.config import HomeAssistantSettings
    from porch.hub.homeassistant import HomeAssistantBridge

    sent: list[tuple[str, bytes]] = []
    bridge = HomeAssistantBridge(HomeAssistantSettings(), lambda t, p, q, r: sent.append((t, p)),
                                 "0.1.0")  # fmt: skip
    start = motion("front-door")

    def person() -> PersonEvent:
        return PersonEvent(device_id="front-door", event_id=new_id(), ts=now(),
                           motion_event_id=start.event_id, score=0.9)  # fmt: skip

    def sensor() -> list[bytes]:
        return [p for t, p in sent if t == "porch/front-door/ha/person"]

    bridge.on_message(start)
    bridge.on_message(person())
    assert sensor() == [b"ON"]
    assert sent[-2][1].startswith(b'{"event_type": "person"')
    bridge.on_message(motion("front-door", active=False))
    bridge.on_message(person())  # looked at while the motion ended: an event, never stuck ON
    assert sensor() == [b"ON", b"OFF"]


def test_a_person_that_cannot_be_recorded_costs_that_person_not_the_watch(detector):
    heard = Heard()
    failures = []

    def full_disk(event: PersonEvent, jpeg: bytes) -> None:
        if not failures:
            failures.append(event)
            raise OSError(28, "No space left on device")
        heard.person(event, jpeg)

    watch = PeopleWatch(detector, full_disk, heard.picture, confirm=1)
    watch.start()
    try:
        face = pictures_of("facing")[0]
        for _ in range(2):  # two visits: the first person's event fails to be stored
            start = motion("front-door")
            watch.motion(start)
            watch.glance(Glance("front-door", start.event_id, face))
            time.sleep(1 / GLANCES_PER_S)
        wait_for(lambda: heard.people, what="the second visitor, after the first failed")
    finally:
        watch.stop()
    assert failures and heard.people[0][0].motion_event_id == start.event_id


def test_a_ring_after_a_visit_keeps_its_own_picture(hub_service):
    """The best picture of a visit is kept only while that visit's motion goes on: a person
    looked at as the motion ended, or a later ring, never puts an old visitor on a ring."""
    from porch.core.wire import RingEvent
    from porch.hub.db import Database

    hub = hub_service
    assert hub.people is not None
    visit = motion("front-door")
    hub.db.record_event(visit)
    hub._on_message(visit)
    person = PersonEvent(device_id="front-door", event_id=new_id(), ts=now(),
                         motion_event_id=visit.event_id, score=0.9)  # fmt: skip
    face = pictures_of("facing")[0]
    db = Database(hub.db.path)
    try:
        hub._best_for_ring(db, person, face)
        assert "front-door" in hub._best  # while the visit goes on
        ended = motion("front-door", active=False)
        hub.db.record_event(ended)
        hub._on_message(ended)
        assert hub._best == {}
        hub._best_for_ring(db, person, face)  # the watch, late, after the end
        assert hub._best == {}, "a finished visit's picture was kept"
    finally:
        db.close()
    ring = RingEvent(device_id="front-door", event_id=new_id(), ts=now())
    press = b"\xff\xd8the frame of the press"
    hub.ingest.handle("porch/front-door/event/ring", ring.to_bytes())
    hub.ingest.handle(f"porch/front-door/snapshot/{ring.event_id}", press)
    assert hub.ingest.snapshot_path(ring.event_id).read_bytes() == press


def porch_with(box: bool, gain: float = 1.0, night: bool = False, plain: bool = False,
               sun: float = 1.0) -> bytes:  # fmt: skip
    """A glance of the synthetic porch, with a real photograph of a box (opencv-doc's
    box.png) on the doorstep or not, in some light; ``plain``: a plain brown box on a
    gravel mat (scikit-image's photograph) instead; ``sun``: the lower half of the picture
    that much brighter."""
    import cv2
    import numpy as np
    import skimage.data

    from porch.device.camera.synthetic import Figure, LightChange, SyntheticScene
    from tests.support.pictures import OPENCV_DOC

    parcel = cv2.imread(str(OPENCV_DOC / "box.png"))
    figures = [Figure([(0, 0.5, 0.97, 0.18), (100, 0.5, 0.97, 0.18)], picture=parcel)]
    lights = [LightChange(0, 100, gain)] if gain != 1.0 else []
    scene = SyntheticScene(640, 360, 1, figures if box and not plain else [], lights)
    scene.night = night
    image = scene.render(50.0)
    if plain:  # a gravel mat on the doorstep, and on it (or not) a plain brown box
        mat = cv2.resize(skimage.data.gravel(), (240, 90))
        image[262:352, 200:440] = cv2.cvtColor(mat, cv2.COLOR_GRAY2BGR)
        if box:
            cv2.rectangle(image, (270, 280), (370, 350), (40, 80, 130), -1)
    if sun != 1.0:
        image[180:] = np.clip(image[180:].astype(np.float32) * sun, 0, 255).astype(np.uint8)
    return thumbnail_jpeg(image, GLANCE_WIDTH)


DOORSTEP = [(0.35, 0.7, 0.3, 0.3)]


def test_a_parcel_left_and_taken_is_told_apart_from_light_and_the_night_switch():
    from porch.hub.people.doorstep import Doorstep

    empty, parcel = porch_with(False), porch_with(True)
    doorstep = Doorstep()
    assert doorstep.visit(empty, empty, DOORSTEP) is None
    assert doorstep.visit(empty, porch_with(False, gain=1.8), DOORSTEP) is None  # sunshine
    assert doorstep.visit(empty, parcel, DOORSTEP) == "left"
    assert doorstep.visit(parcel, porch_with(True, gain=0.6), DOORSTEP) is None  # a cloud
    assert doorstep.visit(parcel, porch_with(True, night=True), DOORSTEP) is None  # IR on
    assert doorstep.visit(parcel, empty, DOORSTEP) == "taken"
    assert doorstep.visit(empty, parcel, []) is None, "no doorstep marked: no parcels"
    # A parcel from before the hub watched, taken: less on the doorstep than before.
    assert Doorstep().visit(parcel, empty, DOORSTEP) == "taken"


def test_a_parcel_left_by_day_and_taken_at_night_is_taken():
    from porch.hub.people.doorstep import Doorstep

    doorstep = Doorstep()
    assert doorstep.visit(porch_with(False), porch_with(True), DOORSTEP) == "left"
    dark = porch_with(True, night=True), porch_with(False, night=True)
    assert doorstep.visit(*dark, DOORSTEP) == "taken"
    assert not doorstep.parcel


def test_a_plain_box_on_a_patterned_mat_is_left():
    from porch.hub.people.doorstep import Doorstep

    mat, box = porch_with(False, plain=True), porch_with(True, plain=True)
    assert Doorstep().visit(mat, box, DOORSTEP) == "left"


def test_sun_on_the_floor_only_is_no_parcel():
    from porch.hub.people.doorstep import Doorstep

    for before, after in ((porch_with(False), porch_with(False, sun=1.5)),
                          (porch_with(True), porch_with(True, sun=0.7))):  # fmt: skip
        doorstep = Doorstep()
        assert doorstep.visit(before, after, DOORSTEP) is None


def test_a_visitor_who_waits_at_the_door_ends_their_visit_with_the_next_motion(detector):
    visits: list[tuple[PersonEvent, bytes, bytes]] = []
    heard = Heard()
    watch = PeopleWatch(detector, heard.person, heard.picture, confirm=1,
                        on_visit=lambda *visit: visits.append(visit))  # fmt: skip
    watch.start()
    face, empty, parcel = pictures_of("facing")[0], porch_with(False), porch_with(True)
    try:
        first = motion("front-door")
        watch.motion(first)
        for jpeg in (empty, face, face):  # the last: still standing there as it went quiet
            watch.glance(Glance("front-door", first.event_id, jpeg))
            time.sleep(1 / GLANCES_PER_S)
        wait_for(lambda: heard.people, what="the visitor")
        watch.motion(motion("front-door", active=False))
        time.sleep(0.5)
        assert not visits, "compared while the visitor still stood at the door"
        second = motion("front-door")  # they walk off, over the doorstep
        watch.motion(second)
        for jpeg in (face, parcel):
            watch.glance(Glance("front-door", second.event_id, jpeg))
            time.sleep(1 / GLANCES_PER_S)
        watch.motion(motion("front-door", active=False))
        wait_for(lambda: visits, what="the visit compared")
    finally:
        watch.stop()
    (person, before, after) = visits[0]
    assert person.motion_event_id == first.event_id
    assert before == empty and after == parcel, "the doorstep before the visitor came"


def test_a_parcel_left_before_the_hub_restarted_is_taken_after(tmp_path, broker):
    """A plain box left on a patterned mat; the hub restarts; the box is taken. Only the
    doorstep as it was before the box came tells that apart from a second parcel (the mat
    has more in it than the box had), so the hub keeps it in its database; marking the
    doorstep anew forgets it."""
    from porch.hub.db import Database
    from tests.support.hub import start_hub

    mat, box = porch_with(False, plain=True), porch_with(True, plain=True)

    def visit(hub, before: bytes, after: bytes) -> list[str]:
        person = PersonEvent(device_id="front-door", event_id=new_id(), ts=now(),
                             motion_event_id=new_id(), score=0.9)  # fmt: skip
        db = Database(hub.db.path)
        try:
            hub._on_visit(db, person, before, after)
        finally:
            db.close()
        return [e["action"] for e in hub.timeline(20) if e["kind"] == "parcel"]

    hub = start_hub(tmp_path / "hub", broker)
    try:
        hub.web_db.set_doorstep("front-door", DOORSTEP)
        assert visit(hub, mat, box) == ["left"]
    finally:
        hub.stop()
    hub = start_hub(tmp_path / "hub", broker)  # a restart: the same database
    try:
        assert visit(hub, box, mat) == ["taken", "left"], "the box taken after the restart"
        assert visit(hub, mat, box) == ["left", "taken", "left"]
        hub.web_db.set_doorstep("front-door", DOORSTEP)  # marked anew: nothing known
        hub.doorstep_changed("front-door")
        assert hub.web_db.doorstep_state("front-door") is None
        assert visit(hub, box, mat)[0] == "left", "without it, the mat looks like more"
    finally:
        hub.stop()
