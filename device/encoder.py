"""Software H.264 with PyAV's libx264, for cameras that give raw frames (off a Pi).

Low-latency settings: no B-frames, ``zerolatency`` (no lookahead, one frame in, one packet
out), constrained baseline profile (what browsers' WebRTC decodes everywhere), an IDR every
``keyframe_interval_s`` with SPS/PPS repeated inline, so any keyframe can start a clip or a
live viewer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction

import av

from porch.core.config import EncoderSettings
from porch.device.camera import Camera, Capture, EncodedPacket
from porch.device.regions import PrivacyMask

TIME_BASE = Fraction(1, 90000)


class H264Encoder:
    """Encodes BGR frames to Annex B H.264 packets; one frame in, zero or one packet out."""

    def __init__(self, width: int, height: int, fps: float, settings: EncoderSettings):
        keyint = max(1, round(settings.keyframe_interval_s * fps))
        self._context = av.CodecContext.create("libx264", "w")
        self._context.width, self._context.height = width, height
        self._context.pix_fmt = "yuv420p"
        self._context.time_base = TIME_BASE
        self._context.framerate = Fraction(fps).limit_denominator(1001)
        self._context.bit_rate = settings.bitrate_kbps * 1000
        self._context.options = {
            "preset": settings.preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": (
                f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:repeat-headers=1"
            ),
        }
        self._context.options["forced-idr"] = "1"
        self.frames_encoded = 0
        self._force_keyframe = False
        self._lock = threading.Lock()

    def request_keyframe(self) -> None:
        """Make the next frame an IDR (with SPS/PPS): a new live viewer starts at once."""
        self._force_keyframe = True

    def encode(self, image, ts: float) -> list[EncodedPacket]:
        """Encode one BGR frame taken at media time ``ts`` seconds."""
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = round(ts / TIME_BASE)
        frame.time_base = TIME_BASE
        if self._force_keyframe:
            self._force_keyframe = False
            frame.pict_type = av.video.frame.PictureType.I
        with self._lock:
            packets = self._context.encode(frame)
            self.frames_encoded += 1
        return [
            EncodedPacket(bytes(p), float(p.pts * TIME_BASE), bool(p.is_keyframe))
            for p in packets
            if p.pts is not None  # libx264 stamps every packet it returns
        ]


class EncodingSource:
    """A raw :class:`Camera` made a video source: mask burned in, then encoded in software."""

    def __init__(self, camera: Camera, encoder: H264Encoder, privacy: PrivacyMask):
        self.camera = camera
        self.encoder = encoder
        self.privacy = privacy
        self.width, self.height = camera.width, camera.height

    def captures(self) -> Iterator[Capture]:
        for frame in self.camera.frames():
            image = self.privacy.burn(frame.image)
            yield Capture(frame.ts, image, self.encoder.encode(image, frame.ts), frame.lux)

    def request_keyframe(self) -> None:
        self.encoder.request_keyframe()

    def set_night(self, night: bool) -> None:
        self.camera.set_night(night)

    def close(self) -> None:
        self.camera.close()
