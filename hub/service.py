"""The hub process: one asyncio loop serving the web app, with the MQTT ingest beside it.

``porch hub run`` calls :meth:`HubService.run`; the demo and the tests use
:meth:`HubService.start` / :meth:`HubService.stop`, which run the same thing on a thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from porch.core import __version__
from porch.core.config import HubConfig
from porch.core.fsutil import atomic_write
from porch.core.sdnotify import Notifier
from porch.core.wire import (
    HOME_ASSISTANT_FRESH_S,
    ClipAck,
    Message,
    MotionEvent,
    ParcelEvent,
    PersonEvent,
    RingEvent,
    Snapshot,
    Status,
    new_id,
    now,
    spoken_name,
)
from porch.hub.accounts import Accounts
from porch.hub.area import AreaListener, AreaRequests, AreaStore
from porch.hub.audit import AuditLog
from porch.hub.builds import BuildStatus, BundleBuilds
from porch.hub.clipopener import ClipOpener
from porch.hub.clipstore import HubClipStore
from porch.hub.consent import Consent
from porch.hub.db import Database
from porch.hub.delivery import Deliveries
from porch.hub.exporter import Exporter
from porch.hub.homeassistant import HomeAssistantBridge
from porch.hub.ingest import Ingest
from porch.hub.live import LiveRelay
from porch.hub.people.doorstep import Doorstep
from porch.hub.people.watch import PeopleWatch, open_watch
from porch.hub.push import Push
from porch.hub.throttle import Throttle
from porch.hub.web.app import create_app
from porch.hub.web.broadcast import Broadcaster
from porch.hub.web.headers import SecurityHeaders
from porch.provisioning.authority import HomeAuthority
from porch.provisioning.endpoint import create_enroll_app

log = logging.getLogger(__name__)
REVOCATIONS_EVERY_S = 2.0
"""How soon a revocation made by another process (the CLI) reaches Home Assistant."""
RETENTION_EVERY_S = 3600
SNAPSHOT_SHARE = 50
"""Ring snapshots may take this fraction (1/50) of the clip store's cap."""


class HubService:
    """Everything the hub runs, wired together."""

    def __init__(
        self,
        config: HubConfig,
        on_message: Callable[[Message], None] | None = None,
        simulated_press: Callable[[], None] | None = None,
        reload_broker: Callable[[], None] | None = None,
    ):
        self.config = config
        data = Path(config.data_dir)
        self.db = Database(data / "hub.sqlite")  # ingest's connection (paho's thread)
        self.web_db = Database(data / "hub.sqlite")  # the web app's (the event loop's thread)
        self.authority: HomeAuthority | None = None
        if config.provisioning.pki_dir:
            self.authority = HomeAuthority(config.provisioning, reload=reload_broker)
        opener = ClipOpener(self.authority)
        self.clips = HubClipStore(self.db, data / "clips", config.clips, opener)
        self.accounts = Accounts(self.web_db.conn)
        self.throttle = Throttle()
        self.broadcaster = Broadcaster()
        self.simulated_press = simulated_press
        self._print = on_message
        self.ingest = Ingest(self.db, config.mqtt, self.clips, on_message=self._on_message)
        push_db = Database(data / "hub.sqlite")  # the push senders' (their pool's threads)
        self.push = Push(push_db.conn, config.push, data / "vapid.pem")
        authority = self.authority
        self.home_assistant = HomeAssistantBridge(
            config.home_assistant,
            self.ingest.publish_raw,
            __version__,
            self.db.display_name,
            (lambda d: d in authority.registry.active_devices()) if authority else lambda _: True,
        )
        self._revocations_done: set[str] = set()
        if authority is not None:  # the Devices page's revocations; the CLI's are polled
            authority.on_revoke = self._revoked
        self.live = LiveRelay(config.live, self.ingest.publish)
        self.ingest.on_live = self.live.feed
        people_db = Database(data / "hub.sqlite")  # the people watch's (its thread)
        self.people: PeopleWatch | None = open_watch(
            config.people,
            lambda event, jpeg: self._on_person(people_db, event, jpeg),
            lambda event, jpeg: self._on_person_picture(people_db, event, jpeg),
            lambda person, before, after: self._on_visit(people_db, person, before, after),
            lambda device_id: bool(self.db.doorstep(device_id)),  # paho's thread
        )
        self._doorsteps: dict[str, Doorstep] = {}
        """Each doorbell's doorstep as the watch last saw it (the people watch's thread)."""
        self._doorstep_lock = threading.Lock()
        """Held while a visit reads and writes a doorstep's state, and while it is forgotten."""
        self._best: dict[str, tuple[str, bytes]] = {}
        """Each doorbell's best picture of the person in its motion going on (its id);
        set only while the watch says that motion goes on, under ``_best_lock``."""
        self._best_lock = threading.Lock()
        if self.people is not None:
            self.ingest.on_glance = self.people.glance
        # A session that ends (signed out, password changed, account removed) closes what
        # it opened: live views, talk and the pages' event streams, within the second.
        self.accounts.on_sessions_ended(self.live.end_sessions)
        self.accounts.on_sessions_ended(self.broadcaster.end_sessions)
        self.accounts.on_sessions_ended(self.push.end_sessions)  # that phone's notifications
        export_key = self.authority.pki.export_key() if self.authority else None
        self.audit = AuditLog(self.web_db.conn, export_key)
        self.consent = Consent(self.web_db.conn, self.audit)
        models = Path(config.people.models_dir) if config.people.models_dir else None
        self.exporter = Exporter(self.consent, self.clips, self.authority, data / "exports", models)
        # The background builder's own connection, consent and exporter (its thread).
        build_db = Database(data / "hub.sqlite")
        # Area requests: the relay listener's connection (paho's thread) and the drop box
        # sender's (its thread), each with its consent; the web app's store for the page.
        area_db, delivery_db = Database(data / "hub.sqlite"), Database(data / "hub.sqlite")
        self._databases = (
            self.db, self.web_db, push_db, build_db, area_db, delivery_db, people_db
        )  # fmt: skip
        self.area = AreaStore(self.web_db.conn)
        self.area_listener = AreaListener(
            AreaRequests(
                AreaStore(area_db.conn),
                Consent(area_db.conn, AuditLog(area_db.conn, export_key)),
                config.area,
                lambda: [d["device_id"] for d in area_db.devices()],
                lambda filed: self.broadcaster.publish(
                    "request", filed, roles=frozenset({"owner"})
                ),
            ),
            config.area,
        )
        self.deliveries = Deliveries(
            delivery_db.conn,
            Consent(delivery_db.conn, AuditLog(delivery_db.conn, export_key)),
            data / "exports",
            config.area.allow_http_dropbox,
        )
        build_consent = Consent(build_db.conn, AuditLog(build_db.conn, export_key))
        self.builds = BundleBuilds(
            Exporter(build_consent, self.clips, self.authority, data / "exports", models),
            self._on_build,
        )
        self.app = create_app(self)
        self._server: uvicorn.Server | None = None
        self._enroll_server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        web = self.config.web
        scheme = "https" if web.tls_cert else "http"
        return web.public_url or f"{scheme}://{web.host}:{web.port}"

    # what the pages show (web loop's thread)
    def timeline(self, limit: int, event_id: str | None = None) -> list[dict]:
        rows = self.web_db.timeline(limit, event_id)
        for row in rows:
            row["snapshot"] = self.ingest.snapshot_path(row["event_id"]).exists()
        return rows

    def devices(self) -> list[dict]:
        return self.web_db.devices()

    def stored_clip(self, clip_id: str) -> dict | None:
        return self.web_db.stored_clip(clip_id)

    def _on_area_request(self, filed: dict) -> None:
        """An area request matched this home (the relay listener's thread): owners are told."""
        self.broadcaster.publish("request", filed, roles=frozenset({"owner"}))

    def _on_build(self, request_id: str, status: BuildStatus) -> None:
        """A bundle's progress. Pages ask for it themselves (only who may see the request
        learns it), so nothing is broadcast; the log notes where it ended. A ready bundle of
        an area request goes to the agency's drop box."""
        if status.state in ("ready", "failed"):
            log.info("bundle of request %s: %s %s", request_id, status.state, status.error)
        request = self.builds.exporter.consent.get(request_id)  # the builder's connection
        if status.state == "ready" and request is not None and request.from_area:
            self.deliveries.schedule(request_id)

    # paho's thread
    def _on_message(self, message: Message) -> None:
        if self._print is not None:
            self._print(message)
        self.home_assistant.on_message(message)
        fresh = isinstance(message, RingEvent | MotionEvent) and (
            time.time() - message.ts <= HOME_ASSISTANT_FRESH_S
        )  # a late ring rings no phone either
        if fresh and isinstance(message, RingEvent):
            name = self.db.display_name(message.device_id) or message.device_id
            self.push.ring(name, message.event_id, message.ts)
        elif fresh and isinstance(message, MotionEvent) and message.active:
            name = self.db.display_name(message.device_id) or message.device_id
            self.push.motion(name, message.event_id, message.ts, message.device_id)
        if self.people is not None and isinstance(message, MotionEvent):
            self.people.motion(message, fresh)  # first: the watch knows it ended ...
            if not message.active:
                with self._best_lock:  # ... so no best picture of it is kept after this
                    self._best.pop(message.device_id, None)
        if isinstance(message, Status) and message.state == "offline":
            with self._best_lock:
                self._best.pop(message.device_id, None)
        if isinstance(message, Snapshot):  # a ring's, from the doorbell at the press
            with self._best_lock:
                best = self._best.get(message.device_id)
            if best is not None and self.db.ring_during(message.device_id, best[0]) == (
                message.event_id
            ):
                self._ring_picture(message.device_id, message.event_id, best[1])
                return
        match message:
            case RingEvent():
                self.broadcaster.publish(
                    "ring",
                    {
                        "event_id": message.event_id,
                        "device_id": message.device_id,
                        "name": self.db.display_name(message.device_id) or message.device_id,
                        "ts": message.ts,
                        "snapshot": self.ingest.snapshot_path(message.event_id).exists(),
                    },
                )
            case Snapshot():
                self.broadcaster.publish("snapshot", {"event_id": message.event_id})
            case MotionEvent(active=True):
                self.broadcaster.publish(
                    "motion",
                    {
                        "event_id": message.event_id,
                        "device_id": message.device_id,
                        "name": self.db.display_name(message.device_id) or message.device_id,
                        "ts": message.ts,
                    },
                )
            case Status():
                self.live.device_status(
                    message.device_id, message.state == "online", message.speaker
                )
                self.broadcaster.publish(
                    "status",
                    {
                        "device_id": message.device_id,
                        "state": message.state,
                    },
                )
            case ClipAck(stored=True):
                known = self.db.clip(message.clip_id)
                events = known[1].event_ids if known else []
                self.broadcaster.publish("clip", {"clip_id": message.clip_id, "event_ids": events})

    # the people watch's thread
    def _on_person(self, db: Database, event: PersonEvent, jpeg: bytes) -> None:
        """Someone at the door: the event and its picture stored, then told as a ring is
        (the pages, the phones that want it, Home Assistant: the class only)."""
        atomic_write(self.ingest.snapshot_path(event.event_id), jpeg)
        if not db.record_event(event):
            return
        self._best_for_ring(db, event, jpeg)
        name = db.display_name(event.device_id) or spoken_name(event.device_id)
        log.info("a person at %s (motion %s)", name, event.motion_event_id)
        self.home_assistant.on_message(event)
        self.push.person(name, event.event_id, event.ts, event.device_id)
        self.broadcaster.publish(
            "person",
            {
                "event_id": event.event_id,
                "motion_event_id": event.motion_event_id,
                "device_id": event.device_id,
                "name": name,
                "ts": event.ts,
                "snapshot": True,
            },
        )
        if self._print is not None:
            self._print(event)

    def _on_person_picture(self, db: Database, event: PersonEvent, jpeg: bytes) -> None:
        """A better picture of the person: it becomes the event's picture (and its ring's)."""
        atomic_write(self.ingest.snapshot_path(event.event_id), jpeg)
        self.broadcaster.publish("snapshot", {"event_id": event.event_id})
        self._best_for_ring(db, event, jpeg)

    def _best_for_ring(self, db: Database, event: PersonEvent, jpeg: bytes) -> None:
        """The best picture of a visitor is also the picture of their ring (the banner's,
        Home Assistant's when opted in), not the frame of the press: kept for the rest of
        their motion, and given to a ring made during it."""
        with self._best_lock:
            if self.people is None or not self.people.moving(
                event.device_id, event.motion_event_id
            ):
                return  # the visit ended (or the doorbell was revoked) while it was looked at
            self._best[event.device_id] = (event.motion_event_id, jpeg)
        ring = db.ring_during(event.device_id, event.motion_event_id)
        if ring is not None:
            self._ring_picture(event.device_id, ring, jpeg)

    def _on_visit(self, db: Database, person: PersonEvent, before: bytes, after: bytes) -> None:
        """A visit ended: a parcel left or taken, if the owner marked a doorstep and it stayed
        changed; stored with both pictures, told to the pages and the phones that want it."""
        with self._doorstep_lock:  # a doorstep marked anew or a revocation waits, or wins
            if person.device_id in self._revocations_done:
                return
            zone = db.doorstep(person.device_id)
            if not zone:
                return
            doorstep = self._doorsteps.get(person.device_id)
            if doorstep is None:  # the first visit since the hub started: as it stored it
                stored = db.doorstep_state(person.device_id)
                doorstep = Doorstep.restore(*stored) if stored else Doorstep()
                self._doorsteps[person.device_id] = doorstep
            action = doorstep.visit(before, after, zone)
            if action is None:
                return
            # The picture from before a parcel only while one is there (it may show the
            # visitor arriving): once taken, nothing of it stays.
            empty = doorstep.empty_jpeg if doorstep.parcel else None
            db.set_doorstep_state(person.device_id, doorstep.parcel, empty)
        if person.device_id in self._revocations_done:  # revoked meanwhile
            return
        event = ParcelEvent(device_id=person.device_id, event_id=new_id(), ts=now(),
                            motion_event_id=person.motion_event_id, action=action)  # fmt: skip
        atomic_write(self.ingest.before_path(event.event_id), before)
        atomic_write(self.ingest.snapshot_path(event.event_id), after)
        if not db.record_event(event):
            return
        name = db.display_name(event.device_id) or spoken_name(event.device_id)
        log.info("parcel %s at %s", action, name)
        self.push.parcel(name, action, event.event_id, event.ts, event.device_id)
        self.broadcaster.publish(
            "parcel",
            {"event_id": event.event_id, "device_id": event.device_id, "name": name,
             "ts": event.ts, "action": action},
        )  # fmt: skip
        if self._print is not None:
            self._print(event)

    def doorstep_changed(self, device_id: str) -> None:
        """The doorstep was marked anew (or the doorbell revoked): what the watch remembered
        of it (the doorstep without a parcel, a parcel on it) no longer holds."""
        with self._doorstep_lock:
            self._doorsteps.pop(device_id, None)
            db = Database(self.web_db.path)  # its own connection: any thread may call this
            try:
                db.forget_doorstep_state(device_id)
            finally:
                db.close()

    def _ring_picture(self, device_id: str, ring_id: str, jpeg: bytes) -> None:
        atomic_write(self.ingest.snapshot_path(ring_id), jpeg)
        self.broadcaster.publish("snapshot", {"event_id": ring_id})
        self.home_assistant.ring_picture(device_id, ring_id, jpeg)

    async def serve(self) -> None:
        """Serve until told to stop (Ctrl-C, SIGTERM or :meth:`stop`)."""
        self.broadcaster.bind(asyncio.get_running_loop())
        self.live.bind(asyncio.get_running_loop())
        web = self.config.web
        config = uvicorn.Config(
            SecurityHeaders(self.app),  # outside FastAPI's error handling: on 500s too
            host=web.host,
            port=web.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            ssl_certfile=web.tls_cert or None,
            ssl_keyfile=web.tls_key or None,
        )
        self._server = uvicorn.Server(config)
        if self.people is not None:
            self.people.start()
        self.ingest.start()
        self.builds.start()
        self.deliveries.start()
        self.area_listener.refresh()
        revocations = asyncio.create_task(self._revocations())
        retention = asyncio.create_task(self._retention())
        watchdog = asyncio.create_task(self._watchdog())
        enrollment = self._serve_enrollment()
        try:
            await self._server.serve()
        finally:
            Notifier().stopping()
            watchdog.cancel()
            retention.cancel()
            revocations.cancel()
            if self._enroll_server is not None and enrollment is not None:
                self._enroll_server.should_exit = True
                await enrollment
            await self.live.close()
            self.ingest.stop()
            if self.people is not None:
                self.people.stop()
            self.area_listener.stop()
            self.builds.stop()
            self.deliveries.stop()
            self.push.close()
            for database in self._databases:  # a long test run or a restart leaks no files
                database.close()

    def _serve_enrollment(self) -> asyncio.Future | None:
        """The enrollment endpoint over TLS with the hub's certificate, when provisioned."""
        if self.authority is None:
            return None
        settings, pki = self.config.provisioning, self.authority.pki
        config = uvicorn.Config(
            SecurityHeaders(create_enroll_app(self.authority)),
            host=settings.enroll_host,
            port=settings.enroll_port,
            ssl_certfile=str(pki.path("hub.crt")),
            ssl_keyfile=str(pki.path("hub.key")),
            log_level="warning",
            access_log=False,
        )
        self._enroll_server = uvicorn.Server(config)
        return asyncio.ensure_future(self._enroll_server.serve())

    async def _watchdog(self) -> None:
        """READY once the web app listens, then WATCHDOG pings from the event loop: a loop
        that hangs gets the hub restarted."""
        systemd = Notifier()
        if not systemd.enabled:
            return
        while self._server is None or not self._server.started:
            await asyncio.sleep(0.1)
        systemd.ready()
        while True:
            systemd.watchdog()
            await asyncio.sleep(max(0.5, systemd.interval_s / 2))

    def _revoked(self, device_id: str) -> None:
        """A doorbell revoked, on the Devices page or with 'porch provision revoke' (any
        thread but paho's): Home Assistant forgets it and its retained status goes. The
        broker did the rest when the revocation reloaded it: the doorbell's ACL section is
        gone, so its open connection may neither publish nor receive from then on, and its
        CRL refuses the next one. (Its connection cannot be taken over: the listener makes
        every client id its certificate's name, so no identity can knock another off.)"""
        self._revocations_done.add(device_id)
        if self.people is not None:  # first: no person of it is told after this
            self.people.forget(device_id)
        with self._best_lock:
            self._best.pop(device_id, None)
        self.doorstep_changed(device_id)
        self.home_assistant.forget(device_id)

    async def _revocations(self) -> None:
        """Revocations made while the hub was down or by another process ('porch provision
        revoke'), noticed within REVOCATIONS_EVERY_S and handled as the page's are."""
        if self.authority is None:
            return
        while True:
            revoked = {d["name"] for d in self.authority.registry.devices() if d["revoked"]}
            for device_id in sorted(revoked - self._revocations_done):
                await asyncio.to_thread(self._revoked, device_id)
            await asyncio.sleep(REVOCATIONS_EVERY_S)

    async def _retention(self) -> None:
        """Retention runs hourly too, not only when a clip arrives (a quiet porch ages); ring
        snapshots age with the clips and may take a fiftieth of the clip store's cap."""
        settings = self.config.clips
        while True:
            removed = self.clips.enforce_limits(db=self.web_db)
            if removed:
                log.info("retention deleted %d clip(s)", len(removed))
            pruned = self.ingest.prune_snapshots(
                settings.retention_days * 86400, settings.max_bytes // SNAPSHOT_SHARE
            )
            if pruned:
                log.info("retention deleted %d snapshot(s)", pruned)
            await asyncio.sleep(RETENTION_EVERY_S)

    def run(self) -> None:
        asyncio.run(self.serve())

    def start(self, timeout_s: float = 30) -> None:
        """Serve on a thread (the demo, the tests); returns once the web app listens."""
        self._thread = threading.Thread(target=self.run, name="hub", daemon=True)
        self._thread.start()
        pause = threading.Event()
        for _ in range(int(timeout_s * 20)):
            enrolling = self._enroll_server is None or self._enroll_server.started
            if self._server is not None and self._server.started and enrolling:
                return
            if not self._thread.is_alive():
                break  # uvicorn gave up (the port is taken, say) and said why on stderr
            pause.wait(0.05)
        web = self.config.web
        raise RuntimeError(f"the hub's web app did not start on {web.host}:{web.port}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
