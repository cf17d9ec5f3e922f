"""The doorbell agent: button, camera, motion, pre-roll, clips and the outbox, wired together.

Threads: gpiozero's calls :meth:`DoorbellAgent._on_press` (chime, outbox, hand-over to the
capture thread); the capture thread runs :meth:`DoorbellAgent.run` (pre-roll, motion, clips);
the link's publisher thread drains the outbox; paho's network thread talks to the broker.

A press, followed through the code: ``gpio.Doorbell._pressed`` (chime) →
``DoorbellAgent._on_press`` (``RingEvent`` into the outbox, link woken) →
``link.DeviceLink._publisher`` (QoS 1 publish) → the hub's ``ingest.Ingest.handle``.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

from porch.core import __version__
from porch.core.config import DeviceConfig
from porch.core.sdnotify import Notifier
from porch.core.wire import (
    MAX_GLANCE_BYTES,
    ClipAck,
    Glance,
    LiveRequest,
    Message,
    MotionEvent,
    RingEvent,
    Snapshot,
    TalkPacket,
    new_id,
    now,
)
from porch.device.camera import Camera, VideoSource
from porch.device.clips import (
    ClipProtection,
    ClipRecorder,
    ClipStore,
    StoredClip,
    recover_journals,
    thumbnail_jpeg,
)
from porch.device.gpio import Doorbell
from porch.device.link import DeviceLink
from porch.device.live import LiveStreamer
from porch.device.motion import MotionDetector, MotionTracker
from porch.device.night import NightMode
from porch.device.outbox import Outbox
from porch.device.preroll import PrerollBuffer
from porch.device.regions import DetectionZones, PrivacyMask
from porch.device.talk import TalkPlayer, output_factory
from porch.device.transfer import ClipSender

log = logging.getLogger(__name__)
GLANCE_WIDTH = 320
"""A glance's width: the lores stream's (320 × 180 for a 16:9 camera), about 15 KB as JPEG."""
CAMERA_RETRY_S = 10.0
"""How often a camera that failed, or could not be opened, is tried again."""


def open_source(config: DeviceConfig, privacy: PrivacyMask) -> VideoSource:
    """The configured camera as a :class:`VideoSource` (imports picamera2 only when used)."""
    camera = config.camera
    kind = camera.source
    if kind == "auto":
        from porch.device.camera.picamera2 import is_raspberry_pi

        kind = "picamera2" if is_raspberry_pi() else "synthetic"
    if kind == "picamera2":
        from porch.device.camera.picamera2 import Picamera2Source

        return Picamera2Source(
            camera.width,
            camera.height,
            camera.fps,
            config.encoder.keyframe_interval_s,
            config.encoder.bitrate_kbps,
            privacy,
        )
    from porch.device.encoder import EncodingSource, H264Encoder

    if kind == "opencv":
        from porch.device.camera.opencv import OpenCVCamera

        raw: Camera = OpenCVCamera(
            camera.uri, camera.width, camera.height, camera.fps, camera.realtime
        )
    else:
        from porch.device.camera.synthetic import SyntheticCamera, SyntheticScene

        scene = SyntheticScene.default(camera.width, camera.height, camera.seed)
        if camera.dusk_at_s is not None:
            scene.daylight = [(0.0, 400.0), (camera.dusk_at_s, 400.0), (camera.dusk_at_s + 5, 1.0)]
        raw = SyntheticCamera(scene, camera.fps, camera.realtime, camera.clock)
    encoder = H264Encoder(raw.width, raw.height, raw.fps, config.encoder)
    return EncodingSource(raw, encoder, privacy)


class DoorbellAgent:
    """One doorbell. ``run()`` blocks on the capture loop until :meth:`stop`."""

    def __init__(self, config: DeviceConfig, source: VideoSource | None = None):
        self.config = config
        data = Path(config.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.privacy = PrivacyMask(config.motion.privacy_masks)
        self.protection = ClipProtection.from_settings(config.clips)
        self.outbox = Outbox(data / "outbox.sqlite")
        self.store = ClipStore(data / "clips", config.clips.store_max_bytes)
        self.store.recover()
        recover_journals(self.store, config.clips.chunk_bytes)
        self.link = DeviceLink(
            config.device_id,
            config.name,
            config.mqtt,
            self.outbox,
            __version__,
            speaker=config.speaker.output != "none",
            on_command=self._on_command,
            on_connection=lambda up: self.sender.connected(up),
        )
        self.sender = ClipSender(
            config.device_id, self.store, self.link.client, config.clips.retry_s
        )
        self.live = LiveStreamer(config.device_id, self.link.client, self._request_keyframe)
        speaker = output_factory(config.speaker, data)
        self.talk = TalkPlayer(speaker) if speaker is not None else None
        self._source = source
        self._triggers: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._motion_event: str | None = None
        self._next_glance = 0.0
        self.media_time = 0.0
        """Media time of the latest capture, seconds (read by tests and the demo)."""
        self.frames = 0
        self.systemd = Notifier()
        self.emitted: Counter[str] = Counter()
        """Messages put in the outbox, by kind: ring, motion, clip."""
        self.doorbell = Doorbell(config.gpio, self._on_press)
        self._camera_problem: str | None = None
        self._report_problems()

    # gpiozero's thread
    def _on_press(self) -> None:
        event = RingEvent(device_id=self.config.device_id, event_id=new_id(), ts=now())
        self._emit("ring", event)
        self._triggers.put((event.event_id, event.ts))
        log.info("ring %s", event.event_id)

    def _emit(self, kind: str, message: Message) -> None:
        """Into the outbox and on its way; with the outbox unwritable (a full SD card), straight
        to paho's in-memory queue: it survives a broker outage, not a restart."""
        try:
            self.outbox.put(message)
        except sqlite3.Error as exc:
            log.error("outbox unwritable (%s): sending %s without a durable copy", exc, kind)
            self.link.publish_direct(message)
        self.emitted[kind] += 1
        self.link.wake()

    def _on_command(self, message: Message) -> None:
        if isinstance(message, ClipAck):
            self.sender.on_ack(message)
        elif isinstance(message, LiveRequest):
            self.live.on_request(message)
        elif isinstance(message, TalkPacket) and self.talk is not None:
            self.talk.on_packet(message)

    def _request_keyframe(self) -> None:
        if self._source is not None:
            self._source.request_keyframe()

    def _on_clip(self, clip: StoredClip) -> None:
        # The clip store is the durable record of an unconfirmed clip (not the outbox): the
        # sender offers it now and again until the hub confirms it.
        self.emitted["clip"] += 1
        self.sender.offer_soon()
        log.info(
            "clip %s: %.1f s, %d bytes",
            clip.meta.clip_id,
            clip.meta.end_ts - clip.meta.start_ts,
            clip.meta.size_bytes,
        )

    def start_link(self) -> None:
        self.sender.start()
        self.link.start()

    def run(self) -> None:
        """Capture until :meth:`stop`; opens the camera if none was given. A camera that
        cannot be opened or fails (a loose ribbon, a camera another program holds) costs the
        pictures, never the bell: the button, the chime and the link keep working, the
        online status names the fault, and the camera is tried again every
        ``CAMERA_RETRY_S`` (systemd's watchdog is fed meanwhile)."""
        self.systemd.ready()
        while not self._stop.is_set():
            try:
                source = self._source or open_source(self.config, self.privacy)
            except Exception as exc:
                self._camera_down(f"the camera cannot be opened: {exc}")
                continue
            self._source = source
            try:
                self._capture(source)
            except Exception as exc:
                log.exception("the camera failed")
                self._source = None
                self._camera_down(f"the camera failed: {exc}")
                continue
            return

    def _report_problems(self) -> None:
        """What keeps the doorbell from working fully (its chime, its camera), in its status."""
        problems = [p for p in (self.doorbell.problem, self._camera_problem) if p]
        self.link.set_problem("; ".join(problems)[:200] if problems else None)

    def _camera_down(self, problem: str) -> None:
        """Say what is wrong, keep systemd's watchdog fed, and wait to try again."""
        if self._camera_problem != problem[:200]:
            log.error("%s: the doorbell rings on; the camera is tried again every %.0f s",
                      problem, CAMERA_RETRY_S)  # fmt: skip
        self._camera_problem = problem[:200]
        self._report_problems()
        while not self._triggers.empty():  # rings without a picture: no clip of later
            self._triggers.get()
        deadline = time.monotonic() + CAMERA_RETRY_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.systemd.watchdog()
            self._stop.wait(0.5)

    def _capture(self, source: VideoSource) -> None:
        settings = self.config
        preroll = PrerollBuffer(settings.clips.preroll_s, settings.clips.preroll_max_bytes)
        recorder = ClipRecorder(
            settings.clips,
            self.store,
            preroll,
            source.width,
            source.height,
            settings.device_id,
            self._on_clip,
            self.protection,
        )
        tracker = None
        if settings.motion.enabled:
            detector = MotionDetector(
                settings.motion, self.privacy, DetectionZones(settings.motion.zones)
            )
            tracker = MotionTracker(detector)

        def switched(night: bool) -> None:
            # The camera changes the picture from its next frame; the detector re-learns it
            # from then on instead of seeing a whole-scene change as motion.
            source.set_night(night)
            if tracker is not None:
                tracker.detector.scene_changed(settings.night.settle_s)

        def relit() -> None:  # the IR LEDs went off or on for a check of the daylight
            if tracker is not None:
                tracker.detector.scene_changed(settings.night.settle_s)

        self.night = NightMode(settings.night, switched, settings.gpio.pin_factory, relit)
        self.night.start()
        self.recorder = recorder
        try:
            for capture in source.captures():
                if self._stop.is_set():
                    break
                self.systemd.watchdog()  # a stuck camera or encoder stops the pings
                if self._camera_problem is not None:  # pictures again
                    self._camera_problem = None
                    self._report_problems()
                self.media_time = capture.ts
                self.frames += 1
                # Presses first, so that the clip's pre-roll ends just before this capture,
                # whose packets feed() then appends; motion (below) starts after it.
                while not self._triggers.empty():
                    event_id, wall = self._triggers.get()
                    self._snapshot(event_id, capture.image)
                    recorder.trigger(event_id, capture.ts, wall, capture.image)
                for packet in capture.packets:
                    preroll.add(packet)
                recorder.feed(capture.packets, capture.ts)
                self.live.send(capture.packets)
                self.night.update(capture.lux, capture.ts)
                if tracker is not None:
                    self._motion(tracker, recorder, capture)
        finally:
            if self._stop.is_set():
                self.systemd.stopping()
            recorder.close()
            self.night.close()
            source.close()

    def _snapshot(self, event_id: str, image) -> None:
        """The ring banner's picture: sent at once, best effort (the clip follows anyway)."""
        try:
            jpeg = thumbnail_jpeg(image, self.config.clips.thumbnail_width)
        except ValueError:
            return
        self.link.publish_direct(Snapshot(self.config.device_id, event_id, jpeg))

    def _motion(self, tracker: MotionTracker, recorder: ClipRecorder, capture) -> None:
        change = tracker.update(capture.image, capture.ts)
        if tracker.active:
            recorder.extend(capture.ts)
        if change is None:
            if tracker.active:
                self._glance(capture)
            return
        if not change.active:  # the porch quiet again: how it looks now, for the doorstep
            self._glance(capture, last=True)
        event = MotionEvent(
            device_id=self.config.device_id,
            event_id=new_id(),
            ts=now(),
            active=change.active,
            area=round(min(1.0, change.area), 4),
        )
        self._emit("motion", event)
        self._motion_event = event.event_id if change.active else None
        self._next_glance = 0.0
        if change.active:
            recorder.trigger(event.event_id, capture.ts, event.ts, capture.image)
            self._glance(capture)
        log.info("motion %s (area %.3f)", "started" if change.active else "ended", change.area)

    def _glance(self, capture, last: bool = False) -> None:
        """While motion goes on, a small picture now and then for the hub's person detector,
        and one as it ends (``last``: the doorstep after a visit); best effort, QoS 0:
        never queued for later."""
        rate = self.config.motion.glances_per_s
        if not rate or self._motion_event is None or (capture.ts < self._next_glance and not last):
            return
        self._next_glance = capture.ts + 1.0 / rate
        try:
            jpeg = thumbnail_jpeg(capture.image, GLANCE_WIDTH)
        except ValueError:
            return
        if len(jpeg) <= MAX_GLANCE_BYTES and self.link.connected.is_set():
            self.link.publish_direct(Glance(self.config.device_id, self._motion_event, jpeg))
            self.emitted["glance"] += 1

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.doorbell.close()
        self.sender.stop()
        self.link.stop()
        if self.talk is not None:
            self.talk.close()
        self.outbox.close()
