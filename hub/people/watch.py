"""The hub's eye on every doorbell's motion: glances in, person events out.

A doorbell sends a few small JPEGs a second while motion goes on (:class:`Glance`). The
ingest hands each to :meth:`PeopleWatch.glance` on paho's thread, which only checks it and
keeps it: a glance for another device's or a finished motion is dropped; each device has a
budget of :data:`GLANCES_PER_S` a second (a burst of as many), and only its newest glance
waits, so a doorbell that floods costs the others at most one look per turn. One worker
thread looks at the waiting glances device by device, in turn.

``confirm`` glances of one motion with a person in them make a :class:`PersonEvent`; after
it, a glance in which the person shows better (:attr:`Sighting.visibility`) replaces the
event's picture. A glance that shows no one is forgotten at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from porch.core.config import PeopleSettings
from porch.core.wire import GLANCES_PER_S, Glance, MotionEvent, PersonEvent, new_id, now
from porch.hub.people.detector import PersonDetector, Sighting
from porch.hub.people.models import ModelError

log = logging.getLogger(__name__)
CARRY_S = 300.0
"""A visitor still at the door when their motion ended: their visit goes on into the next
motion of their doorbell that starts within this many seconds."""
VISIT_EVERY_S = 10.0
"""The doorstep is compared at most this often per doorbell (a hostile one could end
motions as fast as it likes)."""
WAIT_FOR_MOTION_S = 2.0
"""A glance may come before its motion event (QoS 0 overtakes QoS 1): it waits this long."""


@dataclass
class _Motion:
    """One device's motion going on, as the watch sees it."""

    event_id: str
    seen: int = 0
    person: PersonEvent | None = None
    best: float = 0.0
    first: bytes | None = None
    """Its first glance: the doorstep before the visitor reached it."""
    carried: PersonEvent | None = None
    """The person of the motion before it, still in view when that one ended (they waited
    at the door long enough for the porch to seem quiet): this motion ends their visit."""
    last: bytes | None = None
    """Its latest glance: normally the one a doorbell sends as its motion ends (the porch
    quiet); if that one was lost, the one before it."""


@dataclass
class _Budget:
    tokens: float = GLANCES_PER_S
    at: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        moment = time.monotonic()
        self.tokens = min(GLANCES_PER_S, self.tokens + (moment - self.at) * GLANCES_PER_S)
        self.at = moment
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class PeopleWatch:
    """Looks for people in glances; calls ``on_person(event, jpeg)`` when one is first seen
    in a motion, and ``on_picture(event, jpeg)`` each time a better picture of them comes.
    Both run on the watch's thread."""

    def __init__(
        self,
        detector: PersonDetector,
        on_person: Callable[[PersonEvent, bytes], None],
        on_picture: Callable[[PersonEvent, bytes], None],
        confirm: int = 2,
        on_visit: Callable[[PersonEvent, bytes, bytes], None] | None = None,
        has_doorstep: Callable[[str], bool] = lambda device_id: True,
    ):
        self.detector = detector
        self.on_person = on_person
        self.on_picture = on_picture
        self.on_visit = on_visit
        """Called with a visit's person, first and last glance when its motion ended."""
        self.has_doorstep = has_doorstep
        """Whether the owner marked a doorstep on this doorbell: only then are visits kept."""
        self.confirm = confirm
        self.dropped: Counter[tuple[str, str]] = Counter()
        """Glances not looked at, by (device, why)."""
        self.looked = 0
        self.looked_at: Counter[str] = Counter()
        """Glances looked at, by device."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._motions: dict[str, _Motion] = {}
        self._early: dict[str, tuple[float, Glance]] = {}
        self._budgets: dict[str, _Budget] = {}
        self._waiting: OrderedDict[str, Glance] = OrderedDict()
        self._visits: list[tuple[PersonEvent, bytes, bytes]] = []
        self._carried: dict[str, tuple[float, PersonEvent, bytes]] = {}
        self._last_visit: dict[str, float] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="people", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # paho's thread
    def motion(self, event: MotionEvent, fresh: bool = True) -> None:
        """A motion started or ended at a doorbell, as stored; a start heard late (replayed
        after an outage) is no motion going on."""
        if event.active and not fresh:
            return
        with self._lock:
            device = event.device_id
            if not event.active:
                ended = self._motions.pop(device, None)
                self._waiting.pop(device, None)
                if ended is not None:
                    self._ended(device, ended)
                return
            motion = self._motions[device] = _Motion(event.event_id)
            carried = self._carried.pop(device, None)
            if carried and time.monotonic() - carried[0] < CARRY_S:
                motion.carried, motion.first = carried[1], carried[2]
            early = self._early.pop(event.device_id, None)
            if early and early[1].event_id == event.event_id:
                self._keep(motion, early[1])
                self._queue(early[1])

    def _ended(self, device: str, ended: _Motion) -> None:
        """A motion with a person ended: its visit is compared, if a doorstep is marked (at
        most every VISIT_EVERY_S per doorbell). Under the lock."""
        person = ended.carried or ended.person  # the visit began with the one carried on
        moment = time.monotonic()
        due = moment - self._last_visit.get(device, -VISIT_EVERY_S) >= VISIT_EVERY_S
        if (
            person and ended.first and ended.last and ended.last is not ended.first
            and (due or ended.carried is not None)  # a visit carried on is not a new one
            and self.has_doorstep(device)
        ):  # fmt: skip
            self._last_visit[device] = moment
            self._visits.append((person, ended.first, ended.last))
            self._wake.notify()

    def moving(self, device_id: str, motion_event_id: str) -> bool:
        """Whether that motion of that doorbell still goes on, as the watch last heard."""
        with self._lock:
            motion = self._motions.get(device_id)
            return motion is not None and motion.event_id == motion_event_id

    def forget(self, device_id: str) -> None:
        """A doorbell revoked or gone: nothing of it waits any more."""
        with self._lock:
            for table in (self._motions, self._early, self._budgets, self._waiting):
                table.pop(device_id, None)
            self._visits = [v for v in self._visits if v[0].device_id != device_id]
            self._carried.pop(device_id, None)

    def glance(self, glance: Glance) -> None:
        """Keep a glance to look at, if its motion is going on and its device within budget."""
        device = glance.device_id
        with self._lock:
            budget = self._budgets.setdefault(device, _Budget())
            if not budget.take():
                self.dropped[(device, "over budget")] += 1
                return
            motion = self._motions.get(device)
            if motion is None or motion.event_id != glance.event_id:
                if motion is None:  # its motion event may be a moment behind it
                    self._early[device] = (time.monotonic(), glance)
                else:
                    self.dropped[(device, "not its motion")] += 1
                return
            self._keep(motion, glance)
            self._queue(glance)

    @staticmethod
    def _keep(motion: _Motion, glance: Glance) -> None:
        if motion.first is None:
            motion.first = glance.data
        motion.last = glance.data

    def _queue(self, glance: Glance) -> None:
        if glance.device_id in self._waiting:
            self.dropped[(glance.device_id, "overtaken")] += 1
        self._waiting.pop(glance.device_id, None)
        self._waiting[glance.device_id] = glance  # at the back of the turn
        self._wake.notify()

    # the watch's thread
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._visits and not self._stop:
                    self._wake.wait(1.0)
                    self._expire_early()
                if self._stop:
                    return
                visit = self._visits.pop(0) if self._visits else None
                if visit is None:
                    _, glance = self._waiting.popitem(last=False)
            if visit is not None:
                try:
                    if self.detector.look_jpeg(visit[2]).person:
                        # Still at the door (standing long enough for the porch to seem
                        # quiet): their visit ends with the next motion.
                        with self._lock:
                            self._carried[visit[0].device_id] = (time.monotonic(), visit[0],
                                                                 visit[1])  # fmt: skip
                    elif self.on_visit is not None:
                        self.on_visit(*visit)
                except Exception:
                    log.exception("the doorstep after a visit at %s", visit[0].device_id)
                continue
            try:
                sighting = self.detector.look_jpeg(glance.data)
            except ValueError:
                self.dropped[(glance.device_id, "not a picture")] += 1
                continue
            except Exception:
                log.exception("the person detector failed on a glance from %s", glance.device_id)
                continue
            self.looked += 1
            self.looked_at[glance.device_id] += 1
            try:
                self._seen(glance, sighting)
            except Exception:  # a full disk, a locked database: this person, not the watch
                log.exception("a person seen at %s could not be recorded", glance.device_id)

    def _expire_early(self) -> None:
        moment = time.monotonic()
        for device, (arrived, _) in list(self._early.items()):
            if moment - arrived > WAIT_FOR_MOTION_S:
                del self._early[device]
                self.dropped[(device, "no motion")] += 1

    def _seen(self, glance: Glance, sighting: Sighting) -> None:
        if not sighting.person:
            return
        with self._lock:
            motion = self._motions.get(glance.device_id)
            if motion is None or motion.event_id != glance.event_id:
                return  # it ended while the detector looked
            motion.seen += 1
            first = motion.person is None and motion.seen >= self.confirm
            if first:
                motion.person = PersonEvent(
                    device_id=glance.device_id,
                    event_id=new_id(),
                    ts=now(),
                    motion_event_id=glance.event_id,
                    score=round(sighting.score, 3),
                )
            better = motion.person is not None and sighting.visibility > motion.best
            if better:
                motion.best = sighting.visibility
            person = motion.person
        if person is None:
            return
        if first:
            self.on_person(person, glance.data)
        elif better:
            self.on_picture(person, glance.data)


def open_watch(
    settings: PeopleSettings,
    on_person: Callable[[PersonEvent, bytes], None],
    on_picture: Callable[[PersonEvent, bytes], None],
    on_visit: Callable[[PersonEvent, bytes, bytes], None] | None = None,
    has_doorstep: Callable[[str], bool] = lambda device_id: True,
) -> PeopleWatch | None:
    """The hub's watch, or None (said in the log) when it is off or its models are missing:
    the hub then runs as before, every motion just motion."""
    if not settings.enabled:
        return None
    try:
        detector = PersonDetector(
            Path(settings.models_dir) if settings.models_dir else None,
            settings.body_score,
            settings.face_score,
            settings.figure_score,
        )
    except ModelError as exc:
        log.warning("people are not told from motion: %s", exc)
        return None
    return PeopleWatch(detector, on_person, on_picture, settings.confirm, on_visit, has_doorstep)
