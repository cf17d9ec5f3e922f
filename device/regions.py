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


def _rasterise(polygons: tuple[tuple[tuple[float, float], ...], ...], width: int, height: int):
    canvas = np.zeros((height, width), np.uint8)
    scale = np.array([width, height], np.float64)
    for polygon in polygons:
        points = np.round(np.asarray(polygon, np.float64) * scale).astype(np.int32)
        cv2.fillPoly(canvas, [points], 255)
    return canvas


def _frozen(polygons: Sequence[Polygon]) -> tuple[tuple[tuple[float, float], ...], ...]:
    return tuple(tuple((float(x), float(y)) for x, y in polygon) for polygon in polygons)


class Regions:
    """A set of polygons that yields a 0/255 uint8 mask for any frame size (cached)."""

    def __init__(self, polygons: Sequence[Polygon]):
        self._polygons = _frozen(polygons)
        self._cached = lru_cache(maxsize=8)(
            lambda width, height: _rasterise(self._polygons, width, height)
        )

    def __bool__(self) -> bool:
        return bool(self._polygons)

    def mask(self, width: int, height: int) -> np.ndarray:
        """255 inside any polygon, 0 elsewhere; shape (height, width). Do not modify."""
        return self._cached(width, height)


class PrivacyMask(Regions):
    """Regions that are never seen: :meth:`burn` blacks them out in place."""

    def burn(self, image: np.ndarray) -> np.ndarray:
        """Set every pixel under the mask to black (in place) and return the image."""
        if self:
            height, width = image.shape[:2]
            image[self.mask(width, height) != 0] = 0
        return image


class DetectionZones(Regions):
    """Where motion counts; no zones means the whole frame."""

    def watched(self, width: int, height: int) -> np.ndarray:
        """255 where motion counts, 0 elsewhere."""
        if not self:
            return np.full((height, width), 255, np.uint8)
        return self.mask(width, height)
