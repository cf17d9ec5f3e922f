"""Motion detection that tells a person from a change of light.

The frame is shrunk to ``analysis_width`` pixels, cut into 8×8 blocks and compared with a
running-average background block by block:

* a *textured* block changed when its zero-mean normalised cross-correlation (ZNCC) with the
  background drops: gain and offset (a cloud, headlights, the IR switch, mains flicker) leave
  ZNCC near 1, while a person, even one who fills the frame, replaces the structure;
* a *flat* block changed when its mean differs from the background's by more than
  ``threshold`` after a local gain correction (the median brightness ratio of its neighbours),
  so a uniform coat against a uniform wall still counts, but a smooth light sweep does not.

A block counts when it changed in two consecutive frames and at least two of its neighbours
changed too: people are larger than a block and stay; raindrops and sensor noise don't.
The background learns only where nothing changed, so a visitor who stands still at the door
is not absorbed and leaves no ghost behind; a block that stays changed for ``ABSORB_S`` (a
parked car, a moved chair) is learned as the new background. The tuning is measured in
bench/motion_bench.py against labelled hard cases (docs/performance.md).
Privacy masks are zeroed before any of this; blocks outside the detection zones are ignored.
All of it is numpy/OpenCV on the calling thread; nothing here keeps a frame beyond the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from porch.config import MotionSettings
from porch.device.regions import DetectionZones, PrivacyMask

BLOCK = 8
_TEXTURE_NOISE = 3.0  # a block is textured when its std exceeds this many noise sigmas
_TEXTURE_MIN_STD = 4.0  # ... and at least this many grey levels
_ZNCC_CHANGED = 0.5  # below this a textured block changed
_ZNCC_SAME = 0.8  # above this a textured block is certainly background and may be learned
_KERNEL = np.ones((3, 3), np.uint8)
_NEIGHBOURS = 3  # changed blocks in the 3×3 around a block (itself included) for it to count
_UNSURE_GAIN = 0.15  # a flat block whose local gain strays this far from the frame's
_LEARN_S = 0.7  # time constant of the background where nothing changed, seconds
ABSORB_S = 10.0  # a block changed this long becomes background (a parked car), seconds
WARMUP_S = 2.0  # at start everything is learned: one frame is a poor background, seconds


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
        self._blocks: tuple[int, int] = (0, 0)
        self._keep: np.ndarray | None = None
        self._watched_count = 0
        self._frame_index = 0
        self._background: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._watched: np.ndarray | None = None
        self._changed_since: np.ndarray | None = None
        self._last_ts: float | None = None
        self._start_ts = 0.0
        self._last_frame: np.ndarray | None = None
        self.noise = 2.0
        """Estimated sensor noise, grey levels (a running median of frame differences)."""

    def _setup(self, width: int, height: int) -> None:
        # Shrink by a whole factor: INTER_LINEAR then averages 2×2 pixels of every k×k, which
        # costs a sixth of INTER_AREA on a 720p frame and halves the sensor noise.
        factor = max(1, round(width / self.settings.analysis_width))
        small_w = max(BLOCK * 4, width // factor // BLOCK * BLOCK)
        small_h = max(BLOCK * 3, height // factor // BLOCK * BLOCK)
        self._size = (small_w, small_h)
        self._blocks = (small_w // BLOCK, small_h // BLOCK)
        watched = self.zones.watched(small_w, small_h).astype(np.float32)
        self._keep = None
        if self.privacy:
            hidden = self.privacy.mask(small_w, small_h)
            watched[hidden != 0] = 0
            self._keep = cv2.bitwise_not(hidden)
        # A block is watched when most of it lies in a zone and outside every mask.
        self._watched = _block_mean(watched, self._blocks) > 127
        self._watched_count = int(self._watched.sum())

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        if self._size is None:
            self._setup(frame.shape[1], frame.shape[0])
        small = cv2.resize(frame, self._size, interpolation=cv2.INTER_LINEAR)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self._keep is not None:
            cv2.bitwise_and(small, self._keep, dst=small)
        return small.astype(np.float32)

    def _estimate_noise(self, current: np.ndarray) -> None:
        # Most blocks of two successive frames differ by noise alone: the median block std of
        # the difference, over sqrt(2), is the per-frame noise. Noise changes slowly: one pair
        # of frames in eight is enough.
        self._frame_index += 1
        if self._frame_index % 8 == 7:
            self._last_frame = current
            return
        last, self._last_frame = self._last_frame, None
        if last is None:
            return
        diff = cv2.subtract(current, last)
        mean = _block_mean(diff, self._blocks)
        var = _block_mean(cv2.multiply(diff, diff), self._blocks) - mean * mean
        sigma = float(np.sqrt(max(np.median(var), 0.0) / 2))
        self.noise += 0.3 * (sigma - self.noise)

    def detect(self, frame: np.ndarray, ts: float) -> MotionResult:
        """Compare one frame (BGR or grey, any size) taken at media time ``ts`` seconds with
        the background, and learn from it."""
        current = self._prepare(frame)
        blocks = self._blocks
        if self._background is None or self._last_ts is None or ts <= self._last_ts:
            self._background = current
            self._previous = np.zeros(blocks[::-1], bool)
            self._changed_since = np.full(blocks[::-1], np.inf)
            self._last_ts = self._start_ts = ts
            return MotionResult(0.0, False)
        background = self._background
        dt, self._last_ts = ts - self._last_ts, ts

        mean_b = _block_mean(background, blocks)
        mean_c = _block_mean(current, blocks)
        var_b = _block_mean(cv2.multiply(background, background), blocks) - mean_b * mean_b
        var_c = _block_mean(cv2.multiply(current, current), blocks) - mean_c * mean_c
        cov = _block_mean(cv2.multiply(background, current), blocks) - mean_b * mean_c

        self._estimate_noise(current)
        texture = max(_TEXTURE_MIN_STD, _TEXTURE_NOISE * self.noise) ** 2
        textured = (var_b > texture) | (var_c > texture)
        zncc = cov / np.sqrt(np.maximum(var_b * var_c, 1e-3))
        # Ratio of brightness around each block: what a light change alone would explain.
        ratio = np.clip((mean_c + 1) / (mean_b + 1), 0.2, 5)
        local_gain = cv2.medianBlur(ratio, 5)
        flat_changed = np.abs(mean_c - mean_b * local_gain) > self.settings.threshold
        changed = np.where(textured, zncc < _ZNCC_CHANGED, flat_changed)
        changed &= self._watched
        # A flat block whose neighbourhood changed brightness unlike the whole frame may be
        # inside a large uniform object (a coat): not counted, and not learned either.
        global_gain = float(np.median(ratio[self._watched])) if self._watched_count else 1.0
        unsure = ~textured & (np.abs(local_gain - global_gain) > _UNSURE_GAIN * global_gain)

        # People are bigger than a block and stay more than a frame; raindrops and noise don't.
        changed_u8 = changed.view(np.uint8)
        neighbours = cv2.boxFilter(changed_u8, -1, (3, 3), normalize=False)
        persistent = changed & self._previous & (neighbours >= _NEIGHBOURS)
        self._previous = changed
        count = int(np.count_nonzero(persistent))
        area = count / self._watched_count if self._watched_count else 0.0

        since = np.where(changed, np.minimum(self._changed_since, ts), np.inf)
        self._changed_since = since
        # Learn only what is clearly background: not changed, not next to a change (a person's
        # edge may cover part of the block), and clearly correlated where textured; and all of
        # it at the start, and whatever has stayed changed for ABSORB_S (a parked car).
        near = cv2.dilate(changed_u8, _KERNEL)
        clear = ~textured | (zncc > _ZNCC_SAME)
        learn = (near == 0) & ~unsure & clear
        learn |= ts - since >= ABSORB_S
        if ts - self._start_ts < WARMUP_S:
            learn[:] = True
        mask = cv2.resize(learn.view(np.uint8), self._size, interpolation=cv2.INTER_NEAREST)
        cv2.accumulateWeighted(current, background, 1 - math.exp(-dt / _LEARN_S), mask=mask)
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
