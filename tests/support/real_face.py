"""A real face for the face-blur tests: the astronaut photograph that scikit-image ships in
its package (NASA, public domain; nothing is downloaded), moved, scaled, tilted and turned
across a 1280×720 porch at known positions, so that every frame's true face region is known
exactly and a person's view ("can the face be seen?") can be measured, not a detector's."""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from porch.device.camera.synthetic import SyntheticScene

WIDTH, HEIGHT, FPS = 1280, 720, 15
PHOTO_CROP = (112, 0, 352, 272)
"""Head and shoulders in the 512×512 photograph: x0, y0, x1, y1."""
FACE = (178, 68, 276, 174)
"""The face itself in the photograph (eyebrows to chin, cheek to cheek), checked by eye."""


def photo() -> np.ndarray:
    path = importlib.resources.files("skimage") / "data" / "astronaut.png"
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(path)
    x0, y0, x1, y1 = PHOTO_CROP
    return image[y0:y1, x0:x1]


@dataclass(frozen=True)
class Pose:
    cx: float
    cy: float
    """Where the crop's centre is, pixels."""
    scale: float
    tilt_deg: float
    """In-plane rotation (a tilted head)."""
    turn: float
    """Horizontal squeeze, 1 = facing the camera, 0.55 = turned well away."""


def pose(t: float, seconds: float) -> Pose:
    """The path: walks across the porch from left to right, comes closer, tilts one way and
    the other, turns away and back."""
    k = t / seconds
    return Pose(
        cx=260 + 760 * k,
        cy=380 + 40 * math.sin(2 * math.pi * k),
        scale=0.9 + 0.7 * k,
        tilt_deg=28 * math.sin(2 * math.pi * 1.5 * k),
        turn=1 - 0.45 * max(0.0, math.sin(2 * math.pi * 2 * k)),
    )


def matrix(p: Pose, size: tuple[int, int]) -> np.ndarray:
    """The 2×3 affine map from crop pixels to frame pixels."""
    w, h = size
    centre = np.float32([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    squeeze = np.float32([[p.scale * p.turn, 0, 0], [0, p.scale, 0], [0, 0, 1]])
    angle = math.radians(p.tilt_deg)
    rotate = np.float32([[math.cos(angle), -math.sin(angle), 0],
                         [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])  # fmt: skip
    place = np.float32([[1, 0, p.cx], [0, 1, p.cy], [0, 0, 1]])
    return (place @ rotate @ squeeze @ centre)[:2]


def face_polygon(p: Pose, size: tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = FACE
    ox, oy = PHOTO_CROP[:2]
    corners = np.float32([[x0 - ox, y0 - oy], [x1 - ox, y0 - oy], [x1 - ox, y1 - oy],
                          [x0 - ox, y1 - oy]]).reshape(-1, 1, 2)  # fmt: skip
    return cv2.transform(corners, matrix(p, size)).reshape(-1, 2)


def frames(seconds: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(BGR frame, true face polygon in it) for each frame."""
    porch = SyntheticScene(WIDTH, HEIGHT, seed=41)
    face = photo()
    size = (face.shape[1], face.shape[0])
    opaque = np.full(face.shape[:2], 255, np.uint8)
    for index in range(int(seconds * FPS)):
        t = index / FPS
        p = pose(t, seconds)
        m = matrix(p, size)
        image = porch.render(t)
        placed = cv2.warpAffine(face, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(opaque, m, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST)
        np.copyto(image, placed, where=mask[..., None] > 0)
        yield image, face_polygon(p, size)


def write_video(path: Path, seconds: float) -> list[np.ndarray]:
    """The clip as a doorbell would record it (libx264, 15 fps); the true polygons."""
    truths = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for index, (image, truth) in enumerate(frames(seconds)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
            truths.append(truth)
        for packet in stream.encode():
            out.mux(packet)
    return truths


def coverage(
    truths: list[np.ndarray], blurred: list[tuple[int, int, int, int, int]]
) -> list[float]:
    """Per frame, the fraction of the true face region inside the blurred boxes."""
    by_frame: dict[int, list[tuple[int, int, int, int]]] = {}
    for frame, *box in blurred:
        by_frame.setdefault(frame, []).append(tuple(box))  # type: ignore[arg-type]
    result = []
    for index, polygon in enumerate(truths):
        true = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.fillPoly(true, [np.round(polygon).astype(np.int32)], 1)
        covered = np.zeros_like(true)
        for x0, y0, x1, y1 in by_frame.get(index, []):
            covered[y0:y1, x0:x1] = 1
        area = int(true.sum())
        result.append(float((true & covered).sum()) / area if area else 1.0)
    return result
