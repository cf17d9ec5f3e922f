"""OpenCV ``VideoCapture``: USB/V4L2 cameras by index, video files, RTSP URLs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2

from porch.device.camera import Frame


class CameraError(RuntimeError):
    """The camera could not be opened or stopped delivering frames."""


class OpenCVCamera:
    """Frames from ``cv2.VideoCapture(uri)``, resized to ``width``×``height``.

    A file is paced at ``fps`` when ``realtime`` and loops at its end, so that a recorded porch
    can stand in for a camera; a live device or stream is read as fast as it delivers.
    """

    def __init__(self, uri: str, width: int, height: int, fps: float, realtime: bool = True):
        self.uri = uri
        self.width, self.height, self.fps = width, height, fps
        self.realtime = realtime
        target = int(uri) if uri.isdigit() else uri
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            raise CameraError(f"cannot open camera {uri!r}")
        self._is_file = not uri.isdigit() and "://" not in uri
        if not self._is_file:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self._capture.set(cv2.CAP_PROP_FPS, fps)

    def frames(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while True:
            ok, image = self._capture.read()
            if not ok and self._is_file:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._capture.read()
            if not ok:
                raise CameraError(f"camera {self.uri!r} stopped delivering frames")
            if image.shape[1] != self.width or image.shape[0] != self.height:
                image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
            if self._is_file:
                ts = index / self.fps
                if self.realtime:
                    delay = start + ts - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            else:
                ts = time.monotonic() - start
            index += 1
            yield Frame(image, ts)

    def set_night(self, night: bool) -> None:
        """Nothing to do: a V4L2 webcam or stream has no night mode Porch can drive (its own
        IR switch, if any, is caught by the motion detector as a scene change)."""

    def close(self) -> None:
        self._capture.release()
