"""Motion detection that tells a person from a change of light.

The frame is shrunk to ``analysis_width`` pixels, cut into 8×8 blocks and compared with a
running-average background block by block:

* a *textured* block changed when its zero-mean normalised cross-correlation (ZNCC) with the
  background drops: gain and offset (a cloud, headlights, the IR switch, mains flicker) leave
  ZNCC near 1, while a person, even one who fills the frame, replaces the structure;
* a *flat* block changed when its mean differs from the background's by more than
  ``threshold`` after a local gain correction (the median brightness ratio of its neighbours),
  so a uniform coat against a uniform wall still counts, but a smooth light sweep does not.

A block must change in two consecutive frames to count (rain and sensor noise do not persist).
The background learns only where nothing changed, so a visitor who stands still at the door
is not absorbed and leaves no ghost behind; a block that stays changed for ``ABSORB_S`` (a
parked car, a moved chair) is learned as the new background.
Privacy masks are zeroed before any of this; blocks outside the detection zones are ignored.
All of it is numpy/OpenCV on the calling thread; nothing here keeps a frame beyond the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from porch.config import MotionSettings
from porch.device.regions import DetectionZones, PrivacyMask

BLOCK = 8
_TEXTURE_NOISE = 3.0  # a block is textured when its std exceeds this many noise sigmas
_TEXTURE_MIN_STD = 4.0  # ... and at least this many grey levels
_ZNCC_CHANGED = 0.5
_UNSURE_GAIN = 0.15
_LEARN_S = 0.7  # time constant of the background where nothing changed, seconds
ABSORB_S = 10.0  # a block changed this long becomes background, seconds


@dataclass(frozen=True)
class MotionResult:
    area: float
    """Fraction of the watched blocks that changed, 0..1."""
    moving: bool
    """``area`` reached the configured minimum."""


def _block_mean(image: np.ndarray, blocks: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, blocks, interpolation=cv2.INTER_AREA)


class MotionDetector:
    """Frame-by-frame motion detector; one per camera, called from the capture thread."""

    def __init__(
        self,
        settings: MotionSettings,
        privacy: PrivacyMask | None = None,
        zones: DetectionZones | None = None,
    ):
        self.settings = settings
        self.privacy = privacy or PrivacyMask([])
        self.zones = zones or DetectionZones([])
        self._size: tuple[int, int] | None = None
        self._background: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._watched: np.ndarray | None = None
        self._changed_since: np.ndarray | None = None
        self._last_ts: float | None = None
        self._last_frame: np.ndarray | None = None
        self.noise = 2.0
        """Estimated sensor noise, grey levels (a running median of frame differences)."""

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        if self._size is None:
            small_w = max(BLOCK * 4, self.settings.analysis_width // BLOCK * BLOCK)
            small_h = max(BLOCK * 3, round(small_w * height / width / BLOCK) * BLOCK)
            self._size = (small_w, small_h)
            blocks = (small_w // BLOCK, small_h // BLOCK)
            hidden = self.privacy.mask(small_w, small_h) if self.privacy else None
            watched = self.zones.watched(small_w, small_h).astype(np.float32)
            if hidden is not None:
                watched[hidden != 0] = 0
            # A block is watched when most of it lies in a zone and outside every mask.
            self._watched = _block_mean(watched, blocks) > 127
        small = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self.privacy:
            small = small.copy()
            small[self.privacy.mask(*self._size) != 0] = 0
        return small.astype(np.float32)

    def _estimate_noise(self, current: np.ndarray, blocks: tuple[int, int]) -> None:
        # Most blocks of two successive frames differ by noise alone: the median block std of
        # the difference, over sqrt(2), is the per-frame noise.
        last, self._last_frame = self._last_frame, current
        if last is None:
            return
        diff = current - last
        var = _block_mean(diff * diff, blocks) - _block_mean(diff, blocks) ** 2
        sigma = float(np.sqrt(max(np.median(var), 0.0) / 2))
        self.noise += 0.1 * (sigma - self.noise)

    def detect(self, frame: np.ndarray, ts: float) -> MotionResult:
        """Compare one frame (BGR or grey, any size) taken at media time ``ts`` seconds with
        the background, and learn from it."""
        current = self._prepare(frame)
        assert self._size is not None and self._watched is not None
        blocks = (self._size[0] // BLOCK, self._size[1] // BLOCK)
        if self._background is None or self._last_ts is None or ts <= self._last_ts:
            self._background = current
            self._previous = np.zeros(blocks[::-1], bool)
            self._changed_since = np.full(blocks[::-1], np.inf)
            self._last_ts = ts
            return MotionResult(0.0, False)
        background = self._background
        dt, self._last_ts = ts - self._last_ts, ts

        mean_b = _block_mean(background, blocks)
        mean_c = _block_mean(current, blocks)
        var_b = np.maximum(_block_mean(background * background, blocks) - mean_b * mean_b, 0)
        var_c = np.maximum(_block_mean(current * current, blocks) - mean_c * mean_c, 0)
        cov = _block_mean(background * current, blocks) - mean_b * mean_c

        self._estimate_noise(current, blocks)
        texture = max(_TEXTURE_MIN_STD, _TEXTURE_NOISE * self.noise) ** 2
        textured = (var_b > texture) | (var_c > texture)
        zncc = cov / np.sqrt(var_b * var_c + 1e-3)
        # Ratio of brightness around each block: what a light change alone would explain.
        ratio = np.clip((mean_c + 1) / (mean_b + 1), 0.2, 5).astype(np.float32)
        local_gain = cv2.medianBlur(ratio, 5)
        flat_changed = np.abs(mean_c - mean_b * local_gain) > self.settings.threshold
        changed = np.where(textured, zncc < _ZNCC_CHANGED, flat_changed) & self._watched
        # A flat block whose neighbourhood changed brightness unlike the whole frame may be
        # inside a large uniform object (a coat): not counted, and not learned either.
        global_gain = float(np.median(ratio[self._watched])) if self._watched.any() else 1.0
        unsure = ~textured & (np.abs(local_gain / global_gain - 1) > _UNSURE_GAIN)

        persistent = changed & self._previous
        self._previous = changed
        watched = int(self._watched.sum())
        area = float(persistent.sum()) / watched if watched else 0.0

        since = np.where(changed, np.minimum(self._changed_since, ts), np.inf)
        self._changed_since = since
        learn = 1 - np.exp(-dt / _LEARN_S)
        still = ~changed & ~unsure
        rate = np.where(still | (ts - since >= ABSORB_S), learn, 0).astype(np.float32)
        rate = cv2.resize(rate, self._size, interpolation=cv2.INTER_NEAREST)
        background += rate * (current - background)
        return MotionResult(area, area >= self.settings.min_area)


@dataclass(frozen=True)
class MotionChange:
    active: bool
    area: float
    ts: float
    """Media time of the frame that started or ended the motion, seconds."""


class MotionTracker:
    """Turns per-frame results into start and end events (ended after ``end_after_s`` quiet)."""

    def __init__(self, detector: MotionDetector):
        self.detector = detector
        self.active = False
        self._last_motion = 0.0
        self._peak = 0.0

    def update(self, frame: np.ndarray, ts: float) -> MotionChange | None:
        result = self.detector.detect(frame, ts)
        if result.moving:
            self._last_motion = ts
            self._peak = max(self._peak, result.area)
            if not self.active:
                self.active = True
                return MotionChange(True, result.area, ts)
        elif self.active and ts - self._last_motion >= self.detector.settings.end_after_s:
            self.active = False
            peak, self._peak = self._peak, 0.0
            return MotionChange(False, peak, ts)
        return None
