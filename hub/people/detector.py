"""A person in a picture: MediaPipe's BlazePose person detector (LiteRT) and CenterFace's
face detector (OpenCV's DNN), each on a small letterboxed copy of the frame, and where both
see nobody, OpenCV's HOG people detector on the frame itself.

Any one is enough: BlazePose finds a body by its head and shoulders, also in profile and
in greyscale; CenterFace finds a face the body detector misses (a close-up, a person behind a
camera); HOG finds a whole upright figure by its outline, also turned away (the other two
look for a face), if it is tall in the picture, as a visitor at the door is. Their
thresholds come from the labelled real pictures in tests/hub/people_pictures.toml (see
docs/architecture.md, "Who is at the door"). Nothing is kept of what was seen but the
scores and a box: no face is recognised, compared or stored apart from the event's picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from porch.hub.people.faces import FaceDetector, letterbox
from porch.hub.people.models import POSE, model_path

POSE_SIZE = 224
FACE_SIZE = (320, 192)
"""CenterFace's input (width, height), fixed: OpenCV's DNN answers wrongly once the size
changes. A doorbell's 16:9 lores frame fits it at 320 px wide."""
FIGURE_FRAME = 240
"""The height a frame is scaled to for HOG, whose window is 128 px tall: figures from about
half the frame's height up (a visitor near the door), at a cost that does not depend on the
glance (a doorbell's 320×180 lores picture becomes 427×240)."""
MAX_PIXELS = 1280 * 960
"""A glance larger than this (pixels) is refused before it is decoded: a doorbell sends its
lores picture, 320 px wide; a hostile one must not make the hub decode a giant."""
NO_LENGTH = frozenset({0x00, 0x01, *range(0xD0, 0xDA)})
"""JPEG markers without a length (TEM, RSTn, SOI, EOI): before the frame header they would
make a reader that skips by length and libjpeg disagree on where it is."""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """A JPEG's width and height from its frame header (SOF), without decoding it;
    :class:`ValueError` if there is none before the picture's data."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise ValueError("not a JPEG: a marker was expected")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in NO_LENGTH:
            raise ValueError("not a JPEG a doorbell makes: a marker without a length")
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if at + 9 > len(data):
                break
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # the picture's data, with no frame header before it
            break
        at += 2 + length
    raise ValueError("not a JPEG: no frame header")


def decode_glance(data: bytes) -> np.ndarray:
    """A glance's picture (BGR); :class:`ValueError` if it is not a JPEG of a size a glance
    may have (the size is read from its header before anything is decoded)."""
    width, height = jpeg_size(data)
    if not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"a JPEG of {width}×{height} pixels is refused")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"not a JPEG picture: {exc}") from None
    if image is None or image.size == 0 or image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ValueError("not a JPEG picture of a glance's size")
    return image


@dataclass(frozen=True)
class Sighting:
    """What the detectors saw in one frame: their best scores and the most likely person's
    box (normalised x0, y0, x1, y1), if any."""

    body: float
    face: float
    box: tuple[float, float, float, float] | None
    person: bool
    figure: float = 0.0
    """HOG's margin for its best upright figure (0: not asked, or nothing)."""

    @property
    def score(self) -> float:
        """How sure, 0 to 1: the strongest of the detectors (HOG's margin over 4)."""
        return max(self.body, self.face, min(1.0, self.figure / 4))

    @property
    def visibility(self) -> float:
        """How well the person shows (for the best picture): a confident, large box, more so
        with the face to the camera."""
        if not self.person or self.box is None:
            return 0.0
        x0, y0, x1, y1 = self.box
        return self.score * math.sqrt(max(0.0, (x1 - x0) * (y1 - y0))) * (1.0 + self.face)


def _anchors() -> np.ndarray:
    """BlazePose detector's SSD anchors (centres, normalised): 28² × 2, 14² × 2, 7² × 6."""
    centres = []
    for grid, per_cell in ((28, 2), (14, 2), (7, 6)):
        for y in range(grid):
            for x in range(grid):
                centres += [((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell
    return np.asarray(centres, dtype=np.float32)


class PersonDetector:
    """Tells whether a person is in a BGR frame. Not thread-safe: one per thread."""

    def __init__(
        self,
        models: Path | None = None,
        body_score: float = 0.8,
        face_score: float = 0.6,
        figure_score: float = 2.0,
    ):
        from ai_edge_litert.interpreter import Interpreter

        self.body_score = body_score
        self.face_score = face_score
        self.figure_score = figure_score
        self._hog = cv2.HOGDescriptor()
        people = np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32)
        self._hog.setSVMDetector(people)
        self._pose = Interpreter(model_path=str(model_path(POSE, models)), num_threads=1)
        self._pose.allocate_tensors()
        self._pose_in = self._pose.get_input_details()[0]["index"]
        outputs = self._pose.get_output_details()
        self._boxes = next(o["index"] for o in outputs if o["shape"][-1] == 12)
        self._scores = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self._anchors = _anchors()
        self._face_finder = FaceDetector(FACE_SIZE, models)

    def look_jpeg(self, data: bytes) -> Sighting:
        """:meth:`look` at a glance (:func:`decode_glance`)."""
        return self.look(decode_glance(data))

    def look(self, image: np.ndarray) -> Sighting:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        body, body_box = self._body(image)
        face, face_box = self._faces(image)
        person = body >= self.body_score or face >= self.face_score
        box = body_box if body >= self.body_score or face < self.face_score else face_box
        if person:
            return Sighting(body=body, face=face, box=box, person=True)
        figure, figure_box = self._figure(image)
        person = figure >= self.figure_score
        return Sighting(body, face, figure_box if person else None, person, figure)

    def _figure(self, image: np.ndarray) -> tuple[float, tuple[float, float, float, float] | None]:
        """HOG's best upright figure, at least its 128 px window in a frame scaled to
        FIGURE_FRAME tall (and at most twice as wide): its margin and box. A person far off is
        no visitor, and HOG errs more on small windows; the scaling bounds the cost of any
        glance, a hostile doorbell's largest too."""
        height, width = image.shape[:2]
        scale = min(FIGURE_FRAME / height, 2 * FIGURE_FRAME / width)
        size = (max(64, round(width * scale)), max(128, round(height * scale)))
        scaled = cv2.resize(
            image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        rects, weights = self._hog.detectMultiScale(
            scaled, winStride=(8, 8), padding=(8, 8), scale=1.1
        )
        best, box = 0.0, None
        for (x, y, rw, rh), weight in zip(rects, np.ravel(weights), strict=True):
            if float(weight) > best:
                best = float(weight)
                box = self._back(x, y, x + rw, y + rh, 1.0, 0, 0, size[0], size[1])
        return best, box

    def _body(self, image: np.ndarray) -> tuple[float, tuple[float, float, float, float]]:
        h, w = image.shape[:2]
        boxed, scale, ox, oy = letterbox(image, POSE_SIZE, POSE_SIZE)
        rgb = cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        self._pose.set_tensor(self._pose_in, rgb[None])
        self._pose.invoke()
        logits = self._pose.get_tensor(self._scores)[0, :, 0]
        best = int(np.argmax(logits))
        score = float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, float(logits[best]))))))
        raw = self._pose.get_tensor(self._boxes)[0, best]
        ax, ay = self._anchors[best]
        # The box around the head (x, y, w, h in input pixels), the key points after it:
        # 0 the hips' centre, 1 a point on the circle around the whole body.
        cx, cy = raw[4] + ax * POSE_SIZE, raw[5] + ay * POSE_SIZE  # hips
        ex, ey = raw[6] + ax * POSE_SIZE, raw[7] + ay * POSE_SIZE
        radius = math.hypot(ex - cx, ey - cy)
        x0, y0, x1, y1 = cx - radius, cy - radius, cx + radius, cy + radius
        return score, self._back(x0, y0, x1, y1, scale, ox, oy, w, h)

    def _faces(self, image: np.ndarray) -> tuple[float, tuple[float, float, float, float]]:
        h, w = image.shape[:2]
        score, (x0, y0, x1, y1) = self._face_finder.best(image)
        return score, self._back(x0, y0, x1, y1, 1.0, 0, 0, w, h)

    @staticmethod
    def _back(x0, y0, x1, y1, scale, ox, oy, w, h) -> tuple[float, float, float, float]:
        """A box in the letterboxed input back in the frame, normalised and clipped."""

        def clip(value: float) -> float:
            return round(min(1.0, max(0.0, value)), 4)

        return (
            clip((x0 - ox) / scale / w),
            clip((y0 - oy) / scale / h),
            clip((x1 - ox) / scale / w),
            clip((y1 - oy) / scale / h),
        )
