"""Redaction for exports: bystanders' faces blurred, and boxes the owner draws blacked out.

Faces are found with OpenCV's Haar frontal-face cascade, which ships inside the
``opencv-python-headless`` wheel (no model is downloaded). Detection finds, it never
recognises: nothing about a face is kept but the rectangle that gets blurred. Each face box
is grown by a margin and held for a few frames, so a face the detector misses for a frame or
two stays blurred. The result is re-encoded with libx264; the manifest records the
original's SHA-256 and what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

DETECT_WIDTH = 640
MARGIN = 0.25
HOLD_FRAMES = 5
DETECTOR = "opencv haarcascade_frontalface_default"


@dataclass(frozen=True)
class Box:
    """A rectangle the owner draws, as fractions of the frame (0..1)."""

    x: float
    y: float
    w: float
    h: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        x0, y0 = int(self.x * width), int(self.y * height)
        return x0, y0, min(width, x0 + int(self.w * width)), min(height, y0 + int(self.h * height))


@dataclass
class RedactionReport:
    blur_faces: bool
    boxes: list[Box]
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    face_boxes: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    """(frame, x0, y0, x1, y1) of every blurred face, for tests and the curious."""

    def description(self) -> str:
        """In words, for the clip's Content Credentials."""
        done = []
        if self.blur_faces:
            done.append(f"{self.faces} faces blurred in {self.frames_with_faces} of"
                        f" {self.frames} frames ({DETECTOR})")  # fmt: skip
        if self.boxes:
            done.append(f"{len(self.boxes)} area(s) chosen by the owner blacked out")
        return "; ".join(done) or "re-encoded"

    def summary(self) -> dict:
        return {
            "blur_faces": self.blur_faces,
            "detector": DETECTOR if self.blur_faces else None,
            "boxes": [vars(b) for b in self.boxes],
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "faces_blurred": self.faces,
        }


class FaceFinder:
    def __init__(self) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"the face detector is missing: {path}")

    def find(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_WIDTH / width)
        small = cv2.resize(image, (int(width * scale), int(height * scale)))
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        found = self._cascade.detectMultiScale(gray, 1.1, 4, minSize=(16, 16))
        boxes = []
        for x, y, w, h in found:
            grow_w, grow_h = w * MARGIN, h * MARGIN
            x0 = max(0, int((x - grow_w) / scale))
            y0 = max(0, int((y - grow_h) / scale))
            x1 = min(width, int((x + w + grow_w) / scale))
            y1 = min(height, int((y + h + grow_h) / scale))
            boxes.append((x0, y0, x1, y1))
        return boxes


def blur(image: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Irreversibly: pixelate to 8×8 blocks, then blur the blocks' edges."""
    x0, y0, x1, y1 = box
    region = image[y0:y1, x0:x1]
    if region.size == 0:
        return
    h, w = region.shape[:2]
    small = cv2.resize(region, (max(1, w // 16), max(1, h // 16)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    image[y0:y1, x0:x1] = cv2.GaussianBlur(coarse, (0, 0), max(1.0, min(w, h) / 12))


def redact(
    source: Path,
    target: Path,
    blur_faces: bool,
    boxes: list[Box],
    progress: Callable[[float], None] | None = None,
) -> RedactionReport:
    """Write a redacted copy of the MP4 ``source`` to ``target``; ``progress`` gets the
    fraction of frames done."""
    report = RedactionReport(blur_faces, boxes)
    finder = FaceFinder() if blur_faces else None
    held: list[tuple[tuple[int, int, int, int], int]] = []
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mp4") as out:
        video_in = inp.streams.video[0]
        rate = video_in.average_rate or Fraction(15)
        video_out = out.add_stream("libx264", rate=rate)
        video_out.width, video_out.height = video_in.width, video_in.height
        video_out.pix_fmt = "yuv420p"
        video_out.options = {"preset": "veryfast", "crf": "23", "profile": "baseline"}
        expected = video_in.frames or 1
        for frame in inp.decode(video_in):
            if progress is not None:
                progress(min(1.0, report.frames / expected))
            image = frame.to_ndarray(format="bgr24")
            height, width = image.shape[:2]
            if finder is not None:
                found = finder.find(image)
                held = [(b, HOLD_FRAMES) for b in found] + [
                    (b, n - 1) for b, n in held if n > 1 and b not in found
                ]
                if found:
                    report.frames_with_faces += 1
                    report.faces += len(found)
                for box, _ in held:
                    blur(image, box)
                    report.face_boxes.append((report.frames, *box))
            for drawn in boxes:
                x0, y0, x1, y1 = drawn.pixels(width, height)
                image[y0:y1, x0:x1] = 0
            redacted = av.VideoFrame.from_ndarray(image, format="bgr24")
            redacted.pts, redacted.time_base = report.frames, 1 / Fraction(rate)
            for packet in video_out.encode(redacted):
                out.mux(packet)
            report.frames += 1
        for packet in video_out.encode():
            out.mux(packet)
    return report
