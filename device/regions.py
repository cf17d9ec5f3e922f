"""Privacy masks and detection zones: polygons in normalised coordinates, rasterised per size.

A privacy mask (a neighbour's window, the public pavement) is blacked out in every frame
before anything else sees it: the motion detector, the encoder, the recording, the live view.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

Polygon = Sequence[Sequence[float]]


Frozen = tuple[tuple[tuple[float, float], ...], ...]


def _pixels(polygons: Frozen, width: int, height: int) -> list[np.ndarray]:
    scale = np.array([width, height], np.float64)
    return [np.round(np.asarray(p, np.float64) * scale).astype(np.int32) for p in polygons]


def _frozen(polygons: Sequence[Polygon]) -> Frozen:
    return tuple(tuple((float(x), float(y)) for x, y in polygon) for polygon in polygons)


class Regions:
    """A set of polygons that yields their pixel outlines and a 0/255 uint8 mask for any
    frame size (both cached)."""

    def __init__(self, polygons: Sequence[Polygon]):
        self._polygons = _frozen(polygons)
        self._points = lru_cache(maxsize=8)(
            lambda width, height: _pixels(self._polygons, width, height)
        )
        self._cached = lru_cache(maxsize=8)(self._rasterise)

    def __bool__(self) -> bool:
        return bool(self._polygons)

    def _rasterise(self, width: int, height: int) -> np.ndarray:
        canvas = np.zeros((height, width), np.uint8)
        for points in self._points(width, height):  # one by one: overlaps stay filled
            cv2.fillPoly(canvas, [points], 255)
        return canvas

    def mask(self, width: int, height: int) -> np.ndarray:
        """255 inside any polygon, 0 elsewhere; shape (height, width). Do not modify."""
        return self._cached(width, height)


class PrivacyMask(Regions):
    """Regions that are never seen: :meth:`burn` blacks them out in place."""

    def __init__(self, polygons: Sequence[Polygon]):
        super().__init__(polygons)
        self._halved = lru_cache(maxsize=4)(self._touching_halves)

    def burn(self, image: np.ndarray, value: int = 0) -> np.ndarray:
        """Set every pixel under the mask to ``value`` (black; in place) and return the image:
        the polygons filled straight into it, the same pixels as :meth:`mask` covers (0.05 ms
        at 1280×720 XBGR, where indexing with the mask took 5.6 ms on picamera2's thread)."""
        if self:
            height, width = image.shape[:2]
            fill = (value,) * (image.shape[2] if image.ndim == 3 else 1)
            for points in self._points(width, height):
                cv2.fillPoly(image, [points], fill)
        return image

    def burn_halved(self, plane: np.ndarray, value: int) -> None:
        """Set ``value`` in a half-size plane (the colour of a YUV 4:2:0 picture twice its
        size) wherever a sample colours a masked pixel: any of its 2×2."""
        if self:
            height, width = plane.shape
            np.copyto(plane, value, where=self._halved(width, height))

    def _touching_halves(self, width: int, height: int) -> np.ndarray:
        covered = self.mask(width * 2, height * 2) != 0
        return covered.reshape(height, 2, width, 2).any(axis=(1, 3))


class DetectionZones(Regions):
    """Where motion counts; no zones means the whole frame."""

    def watched(self, width: int, height: int) -> np.ndarray:
        """255 where motion counts, 0 elsewhere."""
        if not self:
            return np.full((height, width), 255, np.uint8)
        return self.mask(width, height)
