"""Video sources behind one small interface: :class:`VideoSource` yields :class:`Capture`.

* :mod:`.synthetic` — a deterministic scene (figures, lighting, noise); the default off a Pi.
* :mod:`.opencv` — OpenCV ``VideoCapture``: a V4L2 device index, a video file or an RTSP URL.
* :mod:`.picamera2` — the Raspberry Pi camera with its hardware H.264 encoder (Pi only).

Raw-frame cameras are wrapped in :class:`porch.device.encoder.EncodingSource`, which burns the
privacy mask in and encodes with libx264; picamera2 does both on the Pi's hardware itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One raw picture from a camera."""

    image: np.ndarray
    """BGR, uint8, shape (height, width, 3)."""
    ts: float
    """Media time, seconds, monotonic from the source's start."""
    lux: float | None = None
    """The camera's own estimate of the scene's light, lux, where it gives one."""


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One H.264 access unit in Annex B form (start codes, SPS/PPS inline on keyframes)."""

    data: bytes
    pts: float
    """Media time, seconds."""
    keyframe: bool


@dataclass(frozen=True, slots=True)
class Capture:
    """What the agent receives per frame: a picture to analyse and the encoded stream so far."""

    ts: float
    """Media time, seconds."""
    image: np.ndarray
    """BGR picture with privacy masks already burned in (may be smaller than the stream)."""
    packets: list[EncodedPacket] = field(default_factory=list)
    lux: float | None = None
    """The camera's own estimate of the scene's light, lux (None: the camera gives none)."""


class Camera(Protocol):
    """A source of raw frames."""

    width: int
    height: int
    fps: float

    def frames(self) -> Iterator[Frame]: ...

    def set_night(self, night: bool) -> None: ...

    def close(self) -> None: ...


class VideoSource(Protocol):
    """A source of captures: analysed pictures plus encoded packets."""

    width: int
    height: int

    def captures(self) -> Iterator[Capture]: ...

    def request_keyframe(self) -> None:
        """Make the next encoded frame an IDR with SPS/PPS (for a new live viewer)."""
        ...

    def set_night(self, night: bool) -> None:
        """Night mode on or off: the camera's own part (colour off, exposure for IR light)."""
        ...

    def close(self) -> None: ...
