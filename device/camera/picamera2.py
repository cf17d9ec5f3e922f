"""The Raspberry Pi camera through picamera2: hardware H.264 on ``main``, motion on ``lores``.

Only importable on a Pi with Raspberry Pi OS's ``python3-picamera2`` (create the venv with
``--system-site-packages``); nothing else in Porch imports this module unless the camera
source is ``picamera2`` or ``auto`` on a Pi.

The privacy mask is burned into the ``main`` stream in picamera2's ``pre_callback``, before
the encoder sees the frame, so recordings and live view never hold the masked pixels.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import cv2

from porch.device.camera import Capture, EncodedPacket
from porch.device.regions import PrivacyMask

LORES_SIZE = (320, 240)
V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME = 0x009909E5  # linux/v4l2-controls.h: CODEC_BASE + 229


def is_raspberry_pi() -> bool:
    """True on a Raspberry Pi (read from the device tree, as gpiozero does)."""
    try:
        return "Raspberry Pi" in Path("/proc/device-tree/model").read_text(errors="ignore")
    except OSError:
        return False


class Picamera2Source:
    """Captures from the Pi camera: ``lores`` pictures for motion, ``main`` encoded in hardware."""

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

        self.width, self.height = width, height
        self._packets: queue.SimpleQueue[EncodedPacket] = queue.SimpleQueue()
        packets = self._packets

        class _Packets(Output):
            def outputframe(self, frame, keyframe=True, timestamp=None, *args, **kwargs):
                # picamera2 gives sensor timestamps in microseconds.
                packets.put(EncodedPacket(bytes(frame), (timestamp or 0) / 1e6, bool(keyframe)))

        self._camera = Picamera2()
        config = self._camera.create_video_configuration(
            main={"size": (width, height), "format": "XBGR8888"},
            lores={"size": LORES_SIZE, "format": "YUV420"},
            controls={"FrameRate": fps},
        )
        self._camera.configure(config)
        if privacy:
            mask = privacy.mask(width, height) != 0

            def burn(request) -> None:
                with MappedArray(request, "main") as mapped:
                    mapped.array[mask] = 0

            self._camera.pre_callback = burn
        self._privacy = privacy
        encoder = H264Encoder(
            bitrate=bitrate_kbps * 1000,
            repeat=True,  # SPS/PPS before every IDR, so any keyframe can start a clip or a viewer
            iperiod=max(1, round(keyframe_interval_s * fps)),
        )
        self._camera.start_recording(encoder, _Packets())
        self._encoder = encoder

    def captures(self) -> Iterator[Capture]:
        # Frames and encoded packets carry their own clocks (picamera2's encoder may rebase its
        # timestamps); each is made relative to its own first value.
        start: float | None = None
        packets_start: float | None = None
        while True:
            request = self._camera.capture_request()
            try:
                yuv = request.make_array("lores")
                ts_us = request.get_metadata().get("SensorTimestamp", 0) / 1000
            finally:
                request.release()
            image = self._privacy.burn(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420))
            packets = []
            while not self._packets.empty():
                packets.append(self._packets.get())
            start = ts_us / 1e6 if start is None else start
            if packets and packets_start is None:
                packets_start = packets[0].pts
            rebased = [_rebase(p, packets_start or 0.0) for p in packets]
            yield Capture(ts_us / 1e6 - start, image, rebased)

    def request_keyframe(self) -> None:
        """Ask the hardware encoder for an IDR now (V4L2's force-key-frame control)."""
        import fcntl

        from v4l2 import VIDIOC_S_CTRL, v4l2_control

        device = getattr(self._encoder, "vd", None)
        if device is not None:
            control = v4l2_control(id=V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, value=1)
            fcntl.ioctl(device, VIDIOC_S_CTRL, control)

    def close(self) -> None:
        self._camera.stop_recording()
        self._camera.close()


def _rebase(packet: EncodedPacket, start: float) -> EncodedPacket:
    return EncodedPacket(packet.data, max(0.0, packet.pts - start), packet.keyframe)
