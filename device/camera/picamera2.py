"""The Raspberry Pi camera through picamera2: H.264 on ``main``, motion on ``lores``.

Only importable on a Pi with Raspberry Pi OS's ``python3-picamera2`` (0.3.33 or later, checked
at start; create the venv with ``--system-site-packages``); nothing else in Porch imports this
module unless the camera source is ``picamera2`` or ``auto`` on a Pi.

The encoder is picamera2's ``H264Encoder``: the V4L2 hardware encoder on a Pi 4 and earlier,
and on a Pi 5 (which has none) its software ``LibavH264Encoder``, which needs the real frame
rate (its default is 30). Either is asked for the constrained baseline profile that browsers
and aiortc negotiate (the Pi 4's encoder defaults to High).

The privacy mask is burned into the ``main`` stream in picamera2's ``pre_callback``, before
the encoder sees the frame, so recordings and live view never hold the masked pixels. It is
sized from the array picamera2 hands over, not from the configured size, which libcamera may
adjust.

Every picamera2 call used here is public and listed, with the version it was checked against,
in hardware.md's first-boot checklist.
"""

from __future__ import annotations

import logging
import queue
import re
from collections.abc import Iterator
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from porch.device.camera import Capture, EncodedPacket
from porch.device.camera.opencv import CameraError
from porch.device.regions import PrivacyMask

log = logging.getLogger(__name__)
PLANAR = ("YUV420", "YVU420")
"""Formats picamera2 hands as planes with half-size colour (see :class:`MaskBurner`)."""
SEMI_PLANAR = ("NV12", "NV21")
"""... and with U and V interleaved in one half-height plane."""
PACKED = ("XBGR8888", "XRGB8888", "BGR888", "RGB888")
"""Formats picamera2 hands as (height, width, channels) arrays."""
MAIN_FORMAT = "YUV420"
"""The encoded stream's format: 1.4 MB a 1280×720 buffer where XBGR8888 took 3.7 MB (six
buffers: 8 MB of a Pi Zero 2 W's 64 MB of CMA instead of 22 MB), and what both encoders
take without converting."""
VIDEO_BLACK, NEUTRAL = 16, 128
LORES_WIDTH = 320
"""The motion (and ring picture) stream's width; its height keeps the main stream's shape."""
YUV_TO_BGR = {
    "YUV420": cv2.COLOR_YUV2BGR_I420,
    "YVU420": cv2.COLOR_YUV2BGR_YV12,
    "NV12": cv2.COLOR_YUV2BGR_NV12,
    "NV21": cv2.COLOR_YUV2BGR_NV21,
}
"""How each lores format picamera2 may report is read: libcamera may hand NV12 for a
YUV420 request, and reading one as the other gives wrong colours."""


def lores_size(width: int, height: int) -> tuple[int, int]:
    """The lores stream's size: :data:`LORES_WIDTH` wide, the main stream's shape (even
    numbers). picamera2 does not keep the shape itself: a 4:3 lores of a 16:9 picture made
    every ring picture and thumbnail squashed."""
    return LORES_WIDTH, max(2, round(LORES_WIDTH * height / width / 2) * 2)


PROFILE = "constrained baseline"
MIN_PICAMERA2 = (0, 3, 33)
"""0.3.32 did not write back what was drawn through MappedArray (fixed in 0.3.33, commit
fcbdcca): the burned-in privacy mask could miss the hardware encoder's frames."""
SOFTWARE_ENCODER_THREADS = 2
"""A Pi 5's software encoder (picamera2's libav one) encodes with frame threads, each a
frame behind the last: its default (as many as cores, 4 to 6) held the first packet back
3 to 5 frames, a third of a second of live view at 15 fps. Two threads: one frame
(measured with libx264 and PyAV here: threads 0, 4, 2, 1 gave the first packet after
frame 2 (two cores), 3, 1, 0), with a second core's help."""
"""What aiortc and browsers negotiate for H.264 (profile-level-id 42e01f)."""


def is_raspberry_pi() -> bool:
    """True on a Raspberry Pi (read from the device tree, as gpiozero does)."""
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="ignore")
    except OSError:
        return False


def keyframes_on_demand(encoder: object) -> bool:
    """Whether ``encoder.force_key_frame()`` can be used. picamera2's software encoder (a
    Pi 5's) sets ``frame.pict_type = "I"``, which PyAV 14 and later refuse (they take an
    enum): there a new viewer waits for the next regular keyframe instead."""
    if not hasattr(encoder, "force_key_frame"):
        return False  # picamera2 before 0.3.32
    if type(encoder).__name__ != "LibavH264Encoder":
        return True
    import av

    return int(av.__version__.split(".")[0]) < 14


class MaskBurner:
    """Blacks out the privacy mask in whatever array picamera2 hands over (called on its
    thread, under its lock: the polygons are filled straight into the array, sized from it).

    ``YUV420`` (the main stream's format: a third of XBGR8888's memory) comes as one
    (height × 3/2, stride) array: the Y plane's rows, then the U and the V plane, each a
    quarter of the picture with rows of stride / 2 bytes; ``NV12`` (which libcamera may hand
    instead) as the Y rows, then rows of U and V interleaved, stride bytes each. Y becomes
    video black (16), U and V neutral (128) over the mask and every colour sample touching
    it. A format it does not know is refused: a mask burned into the wrong bytes hides
    nothing.
    """

    def __init__(self, privacy: PrivacyMask, fmt: str = "XBGR8888", width: int | None = None):
        if fmt not in PLANAR + SEMI_PLANAR + PACKED:
            raise CameraError(f"cannot burn the privacy mask into {fmt!r} pictures")
        self.privacy = privacy
        self.format = fmt
        self.width = width

    def __call__(self, array: np.ndarray) -> None:
        if self.format in PACKED:
            self.privacy.burn(array)
            return
        rows, stride = array.shape
        height = rows * 2 // 3
        width = min(self.width or stride, stride)
        self.privacy.burn(array[:height, :width], VIDEO_BLACK)
        if self.format in SEMI_PLANAR:
            # (picamera2 hands NV12 cut to the picture's width; splitting the last axis
            # is always a view, so the burn reaches the buffer)
            pairs = array[height:, : width // 2 * 2].reshape(height // 2, width // 2, 2)
            for channel in (0, 1):
                self.privacy.burn_halved(pairs[:, :, channel], NEUTRAL)
            return
        flat = array.reshape(-1)  # the buffer itself (picamera2's array is contiguous)
        plane = (height // 2) * (stride // 2)
        for start in (height * stride, height * stride + plane):
            chroma = flat[start : start + plane].reshape(height // 2, stride // 2)
            self.privacy.burn_halved(chroma[:, : width // 2], NEUTRAL)


class Clocks:
    """Puts frames and encoded packets on one media clock, seconds from the first frame.

    Frames carry the sensor's timestamp (ns); picamera2's encoder stamps packets in µs from
    its own first frame, whose sensor time it keeps as ``firsttimestamp`` (µs).
    """

    def __init__(self) -> None:
        self.start_us: float | None = None

    def frame(self, sensor_ns: int, encoder_first_us: int | None) -> float:
        frame_us = sensor_ns / 1000
        if self.start_us is None:
            first = encoder_first_us if encoder_first_us is not None else frame_us
            self.start_us = min(frame_us, first)
        return (frame_us - self.start_us) / 1e6

    def packet(self, encoder_us: int, encoder_first_us: int) -> float:
        assert self.start_us is not None, "a frame first"
        return max(0.0, (encoder_first_us + encoder_us - self.start_us) / 1e6)


def check_picamera2_version(version: str | None) -> None:
    """:class:`CameraError` for a picamera2 older than :data:`MIN_PICAMERA2` (``None``: its
    version cannot be told, which is let through with a warning)."""
    if version is None:
        log.warning("cannot tell picamera2's version: it must be 0.3.33 or later")
        return
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    if numbers < MIN_PICAMERA2:
        raise CameraError(
            f"picamera2 {version} is too old: 0.3.33 or later burns the privacy mask into"
            " what the encoder sees (sudo apt update && sudo apt full-upgrade)"
        )


def picamera2_version() -> str | None:
    try:
        return metadata.version("picamera2")
    except metadata.PackageNotFoundError:
        return None


class Picamera2Source:
    """Captures from the Pi camera: ``lores`` pictures for motion, ``main`` encoded to H.264."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        keyframe_interval_s: float,
        bitrate_kbps: int,
        privacy: PrivacyMask,
    ):
        from picamera2 import MappedArray, Picamera2
        from picamera2.encoders import H264Encoder
        from picamera2.outputs import Output

        check_picamera2_version(picamera2_version())

        self._packets: queue.SimpleQueue[tuple[bytes, int, bool]] = queue.SimpleQueue()
        packets = self._packets

        class _Packets(Output):
            def outputframe(self, frame, keyframe=True, timestamp=None, *args, **kwargs):
                packets.put((bytes(frame), int(timestamp or 0), bool(keyframe)))

        self._camera = Picamera2()
        config = self._camera.create_video_configuration(
            main={"size": (width, height), "format": MAIN_FORMAT},
            lores={"size": lores_size(width, height), "format": "YUV420"},
            controls={"FrameRate": fps},
        )
        self._camera.configure(config)
        # libcamera may adjust the size: clips are muxed at the size the encoder really gets.
        self.width, self.height = self._camera.camera_configuration()["main"]["size"]
        if (self.width, self.height) != (width, height):
            log.warning("camera adjusted %dx%d to %dx%d", width, height, self.width, self.height)
        lores = self._camera.camera_configuration()["lores"]
        to_bgr = YUV_TO_BGR.get(str(lores.get("format", "YUV420")))
        if to_bgr is None:
            raise CameraError(f"the camera's lores stream came as {lores.get('format')!r}")
        self._to_bgr: int = to_bgr
        if privacy:
            main = self._camera.camera_configuration()["main"]
            burner = MaskBurner(privacy, str(main.get("format", MAIN_FORMAT)), self.width)

            def burn(request) -> None:
                with MappedArray(request, "main") as mapped:
                    burner(mapped.array)

            self._camera.pre_callback = burn
        self._privacy = privacy
        encoder = H264Encoder(
            bitrate=bitrate_kbps * 1000,
            repeat=True,  # SPS/PPS before every IDR, so any keyframe can start a clip or a viewer
            iperiod=max(1, round(keyframe_interval_s * fps)),
            # a Pi 5's software encoder hands this to PyAV's add_stream(rate=...), which
            # refuses a float (the config's 15.0): a Fraction, exact for 15 or 30000/1001
            framerate=Fraction(fps).limit_denominator(1001),
            profile=PROFILE,
        )
        if hasattr(encoder, "threads"):  # the software encoder's frame threads
            encoder.threads = SOFTWARE_ENCODER_THREADS
        self._encoder = encoder
        self._keyframes = keyframes_on_demand(encoder)
        if not self._keyframes:
            log.warning(
                "this encoder cannot make a keyframe on demand: a new live viewer waits up"
                " to %.1f s for the next one",
                keyframe_interval_s,
            )
        self._camera.start_recording(encoder, _Packets())

    def captures(self) -> Iterator[Capture]:
        clocks = Clocks()
        while True:
            request = self._camera.capture_request()
            try:
                yuv = request.make_array("lores")
                metadata = request.get_metadata()
            finally:
                request.release()
            first = self._encoder.firsttimestamp
            ts = clocks.frame(metadata.get("SensorTimestamp", 0), first)
            image = self._privacy.burn(cv2.cvtColor(yuv, self._to_bgr))
            packets = []
            while not self._packets.empty():
                data, encoder_us, keyframe = self._packets.get()
                pts = clocks.packet(encoder_us, self._encoder.firsttimestamp or 0)
                packets.append(EncodedPacket(data, pts, keyframe))
            yield Capture(ts, image, packets, metadata.get("Lux"))

    def request_keyframe(self) -> None:
        """Ask the encoder for an IDR now (picamera2's public ``force_key_frame``)."""
        if self._keyframes:
            self._encoder.force_key_frame()

    def set_night(self, night: bool) -> None:
        """Colour off at night: under IR light it is false colour (magenta) at best."""
        self._camera.set_controls({"Saturation": 0.0 if night else 1.0})

    def close(self) -> None:
        self._camera.stop_recording()
        self._camera.close()
