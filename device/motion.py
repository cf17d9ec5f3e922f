r"""Motion detection that tells a person from a change of light.

The frame is shrunk to about ``analysis_width`` pixels (each pixel then averages several of
the camera's, which tames sensor noise), cut into 4×4 blocks and compared with a
running-average background block by block:

* a *textured* block changed when its zero-mean normalised cross-correlation (ZNCC) with the
  background drops: gain and offset (a cloud, headlights, the IR switch, mains flicker) leave
  ZNCC near 1, while a person, even one who fills the frame, replaces the structure;
* a *flat* block changed when its mean differs from the background's by more than
  ``threshold`` after a local gain correction (the median brightness ratio of its neighbours),
  so a uniform coat against a uniform wall still counts, but a smooth light sweep does not.

A block counts when it changed in two consecutive frames and at least two of its neighbours
changed too: people are larger than a block and stay; raindrops and sensor noise don't.

When the whole picture changes in one frame but keeps its structure, nobody moved: the IR-cut
filter switched (every surface changes brightness by a factor of its own, some edges even
invert) or the doorbell was knocked (the view shifted a few pixels). A person changes the
picture over many frames and replaces its structure where they are. So a change that is
sudden (most changed blocks changed in this very frame) is checked against both
explanations: most blocks changed brightness at once while textured blocks kept their
structure (\|ZNCC\| high, sign-blind for inverted edges), or the background, shifted by the
global translation that phase correlation finds, matches the frame again. Either one
re-seeds the background from the frame (:meth:`MotionDetector.scene_changed` does the same
when the doorbell itself switched to night mode and says so), and nothing is reported.
The background learns only where nothing changed, so a visitor who stands still at the door
is not absorbed and leaves no ghost behind; a block that stays changed for ``ABSORB_S`` (a
parked car, a moved chair) is learned as the new background.

It is built to cost little per frame (a fraction of MOG2's, measured with the tuning in
bench/motion_bench.py against labelled hard cases, docs/performance.md): one copy and a
few resizes shrink the frame, one resize gives every block's sums of C, C² and B·C, the
background's own block sums are updated exactly instead of recomputed, and the background
learns a few times a second rather than on every frame.
Privacy masks are zeroed before any of this; blocks outside the detection zones are ignored.
All of it is numpy/OpenCV on the calling thread; nothing here keeps a frame beyond the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from porch.core.config import MotionSettings
from porch.device.regions import DetectionZones, PrivacyMask

BLOCK = 4  # block side, analysis pixels (_blocks_to_pixels assumes 4)
_TEXTURE_NOISE = 3.0  # a block is textured when its std exceeds this many noise sigmas
_TEXTURE_MIN_STD = 4.0  # ... and at least this many grey levels
_ZNCC_CHANGED = 0.5  # below this a textured block changed
_ZNCC_SAME = 0.8  # above this a textured block is certainly background and may be learned
_NEIGHBOURS = 3  # changed blocks in the 3×3 around a block (itself included) for it to count
_UNSURE_GAIN = 0.15  # a flat block whose local gain strays this far from the frame's
_LEARN_S = 0.7  # time constant of the background where nothing changed, seconds
_LEARN_EVERY_S = 0.15  # the background learns at most this often (it changes slowly), seconds
ABSORB_S = 10.0  # a block changed this long becomes background (a parked car), seconds
WARMUP_S = 2.0  # at start everything is learned: one frame is a poor background, seconds
# A change of the whole scene (IR switch, knock):
_SUDDEN_NEW = 0.6  # this share of the changed blocks changed in this very frame ...
_SUDDEN_MIN = 0.02  # ... and they are at least this share of the watched blocks
_RELIT_BLOCK = 0.08  # a block whose mean moved this much (relative) in one frame was relit
_RELIT_SHARE = 0.5  # a relighting reaches at least this share of the watched blocks
_KEPT_ZNCC = 0.5  # a textured block kept its structure when |ZNCC| is at least this ...
_KEPT_SHARE = 0.8  # ... and a scene change keeps it in at least this share of textured blocks
_KEPT_MIN_BLOCKS = 12  # fewer textured blocks than this to judge by: not a scene change
_COARSE_SIGMA = 1.0  # blur before judging a shift, analysis pixels
_SHIFT_MIN = 0.1  # a knock shifts the view by at least this many analysis pixels ...
_SHIFT_MAX = 0.05  # ... and at most this fraction of its width
_SETTLE_S = 0.2  # after a detected scene change the background follows the frame this long
_SETTLE_MAX_S = 2.0  # ... and on while the exposure still moves (every block by one gain) ...
_EXPOSURE_STEP = 0.015  # ... by at least this much (relative) from one frame to the next
# Where something was changed or moving at a scene change, what lies behind it is unknown
# in the new light: for ABSORB_S such a block is learned once it holds still this long.
_STALE_STILL_S = 0.5
# A relighting that rebuilt the structure (small surfaces each by its own factor, clipping):
_STILL_BLOCK = 0.04  # a block is still when its mean stays this close (relative) after a step
_STILL_SHARE = 0.6  # a relighting is confirmed when this share of the watched blocks is still
_RELIGHT_MAX_S = 1.0  # a relighting that goes on stepping longer than this is not confirmed


@dataclass(frozen=True)
class MotionResult:
    area: float
    """Fraction of the watched blocks that changed, 0..1."""
    moving: bool
    """``area`` reached the configured minimum."""


def _block_mean(image: np.ndarray, blocks: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, blocks, interpolation=cv2.INTER_AREA)


def _block_means(image: np.ndarray) -> np.ndarray:
    """Mean of every BLOCK×BLOCK block, as two halvings (each OpenCV's fast 2×2 path)."""
    height, width = image.shape
    half = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(half, (width // 4, height // 4), interpolation=cv2.INTER_AREA)


def _median(scratch: np.ndarray) -> float:
    """The median (upper, for an even count) of a 1-D array the call may reorder, without
    np.median's overhead."""
    scratch.sort()
    return float(scratch[len(scratch) // 2])


def _blocks_to_pixels(blocks: np.ndarray) -> np.ndarray:
    """A 0/1 uint8 block grid as a 0/1 uint8 pixel mask, each block BLOCK×BLOCK pixels."""
    # Repeat each byte four times across by multiplying it into a 32-bit word, then each
    # row four times down: a third of the cost of a nearest-neighbour resize.
    across = (blocks.astype(np.uint32) * 0x01010101).view(np.uint8)
    return np.repeat(across, BLOCK, axis=0)


class Shrinker:
    """Shrinks frames of one shape to about ``target`` pixels wide, cheaply.

    Up to a factor of four: INTER_AREA halvings, each averaging 2×2 pixels (OpenCV's fastest
    resize; the noise halves with each). Beyond: one INTER_LINEAR step, which averages 2×2
    pixels of every k×k, so only two rows in k are needed. Either way the pixels it needs
    are first copied out of the frame into a buffer: a fresh frame is not in the CPU's
    cache, a plain copy streams it in at full memory speed, and OpenCV's resize stalls on it
    (measured: copy then resize takes two thirds to three quarters of the time of the
    resize alone; docs/performance.md).
    """

    def __init__(self, shape: tuple[int, ...], target: int):
        height, width = shape[:2]
        halvings = 0
        while width >> (halvings + 1) >= target * 0.75 and width >> (halvings + 1) >= 4 * BLOCK:
            halvings += 1
        self._factor = 1 << halvings
        self._linear = halvings > 2
        if self._linear:
            rows = height // self._factor
            self._staging = np.empty((rows, 2, *shape[1:]), np.uint8)
            self._steps = [((width >> halvings, rows), cv2.INTER_LINEAR)]
        else:
            self._staging = np.empty(shape, np.uint8)
            self._steps = [
                ((width >> i, height >> i), cv2.INTER_AREA) for i in range(1, halvings + 1)
            ]
        self.size = self._steps[-1][0] if self._steps else (width, height)
        """(width, height) of what :meth:`shrink` returns."""

    def shrink(self, frame: np.ndarray) -> np.ndarray:
        """The frame (uint8, of the shape given) shrunk to :attr:`size`."""
        small: np.ndarray
        if self._linear:
            k, rows = self._factor, self._staging.shape[0]
            # INTER_LINEAR by k reads rows k·y + k/2 - 1 and k·y + k/2: copy just those.
            picked = frame[: rows * k].reshape(rows, k, *frame.shape[1:])[
                :, k // 2 - 1 : k // 2 + 1
            ]
            np.copyto(self._staging, picked)
            small = self._staging.reshape(2 * rows, *frame.shape[1:])
        elif self._steps:
            np.copyto(self._staging, frame)
            small = self._staging
        else:
            small = frame
        for size, interpolation in self._steps:
            small = cv2.resize(small, size, interpolation=interpolation)
        return small


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
        self._input_shape: tuple[int, ...] = ()
        self._shrinker: Shrinker | None = None
        self._size: tuple[int, int] = (0, 0)
        self._blocks: tuple[int, int] = (0, 0)
        self._keep: np.ndarray | None = None
        self._planes = np.zeros((4, 0, 0), np.float32)
        """Background B, current frame C, B·C and C², at the analysis size."""
        self._watched = np.zeros((0, 0), bool)
        self._watched_count = 0
        self._everything_watched = True
        self._gain_sample = np.zeros(0, np.intp)
        self._started = False
        self._frame_index = 0
        self._last_ts = self._start_ts = self._learnt_ts = 0.0
        self._mean_b = np.zeros(0, np.float32)
        self._square_b = np.zeros(0, np.float32)
        self._previous = np.zeros(0, bool)
        self._steady_at = np.zeros(0)
        """When each block was last seen unchanged, media time."""
        self._last_mean = np.zeros(0, np.float32)
        """The previous frame's block means."""
        self._settle_until = self._settle_max = -math.inf
        self._settle_s = 0.0
        self._settle_pending = False
        self._last_sudden = 0
        self._stale = np.zeros(0, bool)
        """Blocks whose background a scene change left unknown (something was there)."""
        self._stale_until = -math.inf
        self._moved_at = np.zeros(0)
        """When each stale block's mean last moved from one frame to the next, media time."""
        self._relighting: tuple[np.ndarray, float] | None = None
        """A relighting waiting to be confirmed: the block means just after it, and when it
        began (media time)."""
        self.scene_changes = 0
        """Whole-scene changes seen (signalled or detected), for logs and tests."""
        self.noise = 0.5
        """Estimated noise of the shrunk frame, grey levels."""

    def _setup(self, shape: tuple[int, ...]) -> None:
        self._input_shape = shape
        self._started = False
        self._shrinker = Shrinker(shape, self.settings.analysis_width)
        shrunk_w, shrunk_h = self._shrinker.size
        small_w = max(BLOCK * 4, shrunk_w // BLOCK * BLOCK)
        small_h = max(BLOCK * 3, shrunk_h // BLOCK * BLOCK)
        self._size = (small_w, small_h)
        self._blocks = (small_w // BLOCK, small_h // BLOCK)
        self._planes = np.zeros((4, small_h, small_w), np.float32)
        watched = self.zones.watched(small_w, small_h).astype(np.float32)
        self._keep = None
        if self.privacy:
            hidden = self.privacy.mask(small_w, small_h)
            watched[hidden != 0] = 0
            self._keep = cv2.bitwise_not(hidden)
        # A block is watched when most of it lies in a zone and outside every mask.
        self._watched = _block_mean(watched, self._blocks) > 127
        self._watched_count = int(self._watched.sum())
        self._everything_watched = self._watched_count == self._watched.size
        # The frame's gain: the median of the local gains of one watched block in nine (the
        # centres of a 3×3 tiling), as robust as the median of all at a tenth of the cost.
        sample = np.zeros_like(self._watched)
        sample[1::3, 1::3] = self._watched[1::3, 1::3]
        self._gain_sample = np.flatnonzero(sample if sample.any() else self._watched)

    def _prepare(self, frame: np.ndarray) -> None:
        """Shrink the frame (and mask it) into the current-frame plane."""
        if frame.shape != self._input_shape or self._shrinker is None:
            self._setup(frame.shape)
            assert self._shrinker is not None
        small = self._shrinker.shrink(frame)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        width, height = self._size
        if small.shape != (height, width):
            small = small[:height, :width]
        if self._keep is not None:
            small = cv2.bitwise_and(small, self._keep)
        self._planes[1] = small

    def detect(self, frame: np.ndarray, ts: float) -> MotionResult:
        """Compare one frame (BGR or grey, any size) taken at media time ``ts`` seconds with
        the background, and learn from it."""
        self._prepare(frame)
        planes = self._planes
        np.multiply(planes[:2], planes[1], out=planes[2:])  # B·C and C²
        rows = self._blocks[1]
        means = _block_means(planes[1:].reshape(-1, planes.shape[2]))
        mean_c, product, square_c = means[:rows], means[rows : 2 * rows], means[2 * rows :]
        if not self._started or ts <= self._last_ts:
            self._start(mean_c, square_c, ts)
            return MotionResult(0.0, False)
        if self._settle_pending:  # signalled: the settling time counts from this frame
            self._settle_pending = False
            self._mark_stale(self._previous, ts)
            # This frame is the switch: it is no movement (what moves is marked from the
            # next frame on, against this one).
            self._last_mean = mean_c
            self._settle_until = self._settle_max = ts + self._settle_s
        if ts <= self._settle_until or (ts <= self._settle_max and self._exposure_moving(mean_c)):
            # Whatever moves meanwhile is baked into the background: stale as well.
            self._mark_stale(~self._still(mean_c, self._last_mean), ts)
            self._rebase(mean_c, square_c, ts)
            return MotionResult(0.0, False)
        last_mean, self._last_mean = self._last_mean, mean_c
        self._last_ts = ts
        relighting = self._relighting is not None
        if relighting and self._confirm_relighting(mean_c, square_c, last_mean, ts):
            return MotionResult(0.0, False)
        mean_b, square_b = self._mean_b, self._square_b

        var_b = square_b - mean_b * mean_b
        var_c = square_c - mean_c * mean_c
        cov = product - mean_b * mean_c
        zncc = cov / np.sqrt(np.maximum(var_b * var_c, 1e-3))
        self._frame_index += 1
        if self._frame_index % 8 == 0:
            self._estimate_noise(var_c, zncc)
        texture = max(_TEXTURE_MIN_STD, _TEXTURE_NOISE * self.noise) ** 2
        textured = np.maximum(var_b, var_c) > texture
        # Ratio of brightness around each block: what a light change alone would explain.
        ratio = (mean_c + 1) / (mean_b + 1)
        local_gain = cv2.medianBlur(ratio, 3)
        flat_changed = np.abs(mean_c - mean_b * local_gain) > self.settings.threshold
        changed = np.where(textured, zncc < _ZNCC_CHANGED, flat_changed)
        if not self._everything_watched:
            changed &= self._watched

        changed_u8 = changed.view(np.uint8)
        sudden = cv2.countNonZero(changed_u8)
        last_sudden, self._last_sudden = self._last_sudden, sudden
        # Most changed blocks new in this frame: few changed in the last one (a cheap test
        # first, since a person in view keeps many blocks changed frame after frame).
        if sudden >= _SUDDEN_MIN * self._watched_count and last_sudden < sudden * (1 - _SUDDEN_NEW):
            fresh = cv2.countNonZero((changed & ~self._previous).view(np.uint8))
            if fresh >= _SUDDEN_NEW * sudden:
                judged = self._whole_scene_changed(changed, zncc, textured, mean_c, last_mean)
                if judged:
                    self._scene_changed_at(mean_c, square_c, ts)
                    return MotionResult(0.0, False)
                if judged is None:  # relit, structure not kept: wait for the next frame
                    self._relighting = (mean_c, ts)
                    return MotionResult(0.0, False)

        # People are bigger than a block and stay more than a frame; raindrops and noise don't.
        neighbours = cv2.boxFilter(changed_u8, -1, (3, 3), normalize=False)
        persistent = changed & self._previous & (neighbours >= _NEIGHBOURS)
        self._previous = changed
        if ts <= self._stale_until:
            self._learn_stale(changed, mean_c, square_c, last_mean, ts)
        count = cv2.countNonZero(persistent.view(np.uint8))
        area = count / self._watched_count if self._watched_count else 0.0

        warming_up = ts - self._start_ts < WARMUP_S
        if warming_up or ts - self._learnt_ts >= _LEARN_EVERY_S:
            # Learn only what is clearly background: not changed, not next to a change (a
            # person's edge may cover part of the block), clearly correlated where textured;
            # and whatever has stayed changed for ABSORB_S (a parked car).
            np.putmask(self._steady_at, ~changed, ts)
            learn = np.where(textured, zncc > _ZNCC_SAME, self._sure(local_gain))
            learn &= neighbours == 0
            learn |= self._steady_at <= ts - ABSORB_S
            if warming_up:
                learn[:] = True
            self._learn(learn.view(np.uint8), ts, mean_c, square_c, product)
        return MotionResult(area, area >= self.settings.min_area)

    def scene_changed(self, settle_s: float = 1.0) -> None:
        """The doorbell changed the whole picture itself (night mode on or off): from the next
        frame, for ``settle_s`` seconds while the camera settles, the background follows the
        frame and nothing counts as motion. Callable from the capture thread only."""
        self.scene_changes += 1
        self._settle_s = settle_s
        self._settle_pending = True

    def _whole_scene_changed(
        self,
        changed: np.ndarray,
        zncc: np.ndarray,
        textured: np.ndarray,
        mean_c: np.ndarray,
        last_mean: np.ndarray,
    ) -> bool | None:
        """Whether this frame's sudden change is the whole scene relit or shifted rather than
        something in it moving (see the module's docstring); None when it was relit but the
        structure was not kept, which the next frame decides (:meth:`_confirm_relighting`)."""
        watched = self._watched
        if self._relit(mean_c, last_mean):
            # Nobody relights half the frame in one frame; a person that big would also have
            # replaced the structure of most textured blocks.
            return self._kept(np.abs(zncc), textured & watched) or None
        # A shift: compared at a coarser scale (σ 1 px), where sampling and interpolation no
        # longer matter, after undoing the translation phase correlation finds; the blocks
        # that changed must match again there. A person's blocks don't.
        background = cv2.GaussianBlur(self._planes[0], (0, 0), _COARSE_SIGMA)
        current = cv2.GaussianBlur(self._planes[1], (0, 0), _COARSE_SIGMA)
        (dx, dy), response = cv2.phaseCorrelate(background, current)
        width = background.shape[1]
        if not _SHIFT_MIN <= math.hypot(dx, dy) <= _SHIFT_MAX * width or response < 0.1:
            return False
        moved = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        aligned = cv2.warpAffine(
            background, moved, background.shape[::-1], borderMode=cv2.BORDER_REFLECT_101
        )
        rows = self._blocks[1]
        means = _block_means(
            np.concatenate([aligned, current, aligned * aligned, current * current])
        )
        mean_a, mean_s = means[:rows], means[rows : 2 * rows]
        var_a = means[2 * rows : 3 * rows] - mean_a * mean_a
        var_s = means[3 * rows :] - mean_s * mean_s
        cov = _block_means(aligned * current) - mean_a * mean_s
        coarse_zncc = cov / np.sqrt(np.maximum(var_a * var_s, 1e-3))
        texture = max(_TEXTURE_MIN_STD, _TEXTURE_NOISE * self.noise) ** 2
        return self._kept(coarse_zncc, changed & (np.maximum(var_a, var_s) > texture))

    def _relit(self, mean_c: np.ndarray, last_mean: np.ndarray) -> bool:
        """Whether at least half the watched blocks changed brightness in this one frame."""
        if last_mean.shape != mean_c.shape:
            return False
        relit = np.abs(mean_c - last_mean) > _RELIT_BLOCK * (last_mean + 8)
        return bool(np.count_nonzero(relit & self._watched) >= _RELIT_SHARE * self._watched_count)

    def _confirm_relighting(
        self, mean_c: np.ndarray, square_c: np.ndarray, last_mean: np.ndarray, ts: float
    ) -> bool:
        """The frame after a relighting that rebuilt the picture's structure (small surfaces
        each by a factor of its own, some clipped at white, as an IR-cut filter does): it was
        the scene when the picture then holds still, where a person goes on moving. Relit
        again (the filter still moving, exposure stepping): wait for the next frame. True
        when this frame was taken as the new background and nothing is reported."""
        assert self._relighting is not None
        after, since = self._relighting
        if self._relit(mean_c, last_mean):
            if ts - since <= _RELIGHT_MAX_S:
                self._relighting = (mean_c, since)
                return True
            self._relighting = None
            return False
        self._relighting = None
        still = self._still(mean_c, after)
        if np.count_nonzero(still & self._watched) < _STILL_SHARE * self._watched_count:
            return False
        self._scene_changed_at(mean_c, square_c, ts, unsure=~still)
        return True

    def _scene_changed_at(
        self,
        mean_c: np.ndarray,
        square_c: np.ndarray,
        ts: float,
        unsure: np.ndarray | None = None,
    ) -> None:
        """A whole-scene change found in this frame: it becomes the background, which then
        follows the frame for ``_SETTLE_S`` and on while the exposure settles. What was
        changed before it (a person) and the ``unsure`` blocks become stale."""
        self._mark_stale(self._previous if unsure is None else self._previous | unsure, ts)
        self.scene_changes += 1
        self._settle_until = ts + _SETTLE_S
        self._settle_max = ts + _SETTLE_MAX_S
        self._rebase(mean_c, square_c, ts)

    def _still(self, mean_c: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Blocks whose mean stayed where it was in ``before`` after the frame's gain (the
        exposure may be settling): nothing moved there."""
        if before.shape != mean_c.shape:
            return np.zeros(mean_c.shape, bool)
        gain = _median(((mean_c + 8) / (before + 8)).take(self._gain_sample))
        expected = (before + 8) * gain
        return np.abs(mean_c + 8 - expected) <= _STILL_BLOCK * expected

    def _mark_stale(self, blocks: np.ndarray, ts: float) -> None:
        """These blocks (and their neighbours: a person's edge) hid the scene when it changed;
        their background is learned once they hold still (:meth:`_learn_stale`)."""
        if blocks.shape != self._blocks[::-1]:
            return
        blocks = blocks & self._watched
        if not blocks.any():
            return
        grown = cv2.dilate(blocks.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
        if ts > self._stale_until:
            self._stale = grown
            self._moved_at = np.full(blocks.shape, ts)
        else:
            self._stale |= grown
            np.putmask(self._moved_at, grown, ts)
        self._stale_until = ts + ABSORB_S

    def _learn_stale(
        self,
        changed: np.ndarray,
        mean_c: np.ndarray,
        square_c: np.ndarray,
        last_mean: np.ndarray,
        ts: float,
    ) -> None:
        """Take stale blocks that differ from the background but have held still for
        ``_STALE_STILL_S`` as background at once: the ghost of whoever stood there when the
        scene changed, not someone new (a person walks, and does so within half a second)."""
        if last_mean.shape == mean_c.shape:
            moved = np.abs(mean_c - last_mean) > _STILL_BLOCK * (last_mean + 8)
            np.putmask(self._moved_at, moved, ts)
        ready = self._stale & changed & (self._moved_at <= ts - _STALE_STILL_S)
        if not ready.any():
            return
        pixels = _blocks_to_pixels(ready.view(np.uint8)).view(bool)
        np.copyto(self._planes[0], self._planes[1], where=pixels)
        np.copyto(self._mean_b, mean_c, where=ready)
        np.copyto(self._square_b, square_c, where=ready)

    def _exposure_moving(self, mean_c: np.ndarray) -> bool:
        """Whether the whole picture changed brightness since the last frame (auto exposure
        still settling after a switch), by the median of the blocks' ratios."""
        if self._last_mean.shape != mean_c.shape:
            return False
        gain = _median(((mean_c + 8) / (self._last_mean + 8)).take(self._gain_sample))
        return abs(gain - 1) >= _EXPOSURE_STEP

    def _kept(self, similarity: np.ndarray, considered: np.ndarray) -> bool:
        """Whether the considered blocks (enough of them) kept their structure."""
        total = np.count_nonzero(considered)
        if total < _KEPT_MIN_BLOCKS:
            return False  # too little texture to tell a scene change from a flat object
        kept = np.count_nonzero(considered & (similarity >= _KEPT_ZNCC))
        return bool(kept >= _KEPT_SHARE * total)

    def _rebase(self, mean_c: np.ndarray, square_c: np.ndarray, ts: float) -> None:
        """Take this frame as the background at once, keeping the noise estimate."""
        self._planes[0] = self._planes[1]
        self._mean_b, self._square_b = mean_c.copy(), square_c.copy()
        self._last_mean = mean_c
        self._previous = np.zeros(self._blocks[::-1], bool)
        self._last_sudden = 0
        self._relighting = None
        self._steady_at = np.full(self._blocks[::-1], ts)
        self._last_ts = self._learnt_ts = ts

    def _start(self, mean_c: np.ndarray, square_c: np.ndarray, ts: float) -> None:
        """Take this frame (the first, or the first after a jump back in time) as the
        background."""
        self._rebase(mean_c, square_c, ts)
        self._start_ts = ts
        self._started = True
        self._stale_until = -math.inf

    def _estimate_noise(self, var_c: np.ndarray, zncc: np.ndarray) -> None:
        # Where the background holds, what of a block the background does not explain, even
        # after a change of light (the residual of C regressed on B, var(C)(1 - ZNCC^2)), is
        # noise; its median over those blocks is the noise variance. Noise changes slowly,
        # so this runs on one frame in eight.
        quiet = ~self._previous
        if np.count_nonzero(quiet) < quiet.size // 4:
            return
        residual = var_c * (1 - zncc * zncc)
        sigma = math.sqrt(max(_median(residual[quiet]), 0.0))
        self.noise += 0.3 * (sigma - self.noise)

    def _sure(self, local_gain: np.ndarray) -> np.ndarray:
        """Flat blocks whose neighbourhood changed brightness like the whole frame: the others
        may be inside a large uniform object (a coat) and are not learned."""
        if not self._watched_count:
            return np.ones_like(self._watched)
        global_gain = _median(local_gain.take(self._gain_sample))
        return np.abs(local_gain - global_gain) <= _UNSURE_GAIN * global_gain

    def _learn(
        self,
        learn: np.ndarray,
        ts: float,
        mean_c: np.ndarray,
        square_c: np.ndarray,
        product: np.ndarray,
    ) -> None:
        """Move the background towards the current frame in the blocks ``learn`` marks."""
        rate = 1 - math.exp(-(ts - self._learnt_ts) / _LEARN_S)
        self._learnt_ts = ts
        background, current = self._planes[0], self._planes[1]
        cv2.accumulateWeighted(current, background, rate, mask=_blocks_to_pixels(learn))
        # The background's block statistics follow exactly, since a block learns all or
        # nothing: B' = (1-r)B + rC gives mean(B') = (1-r)mean(B) + r mean(C) and
        # mean(B'^2) = (1-r)^2 mean(B^2) + 2r(1-r) mean(BC) + r^2 mean(C^2), the latter as
        # two such steps, through mean(BC) and then (1-r)mean(BC) + r mean(C^2).
        cv2.accumulateWeighted(mean_c, self._mean_b, rate, mask=learn)
        cv2.accumulateWeighted(product, self._square_b, rate, mask=learn)
        towards = cv2.addWeighted(product, 1 - rate, square_c, rate, 0)
        cv2.accumulateWeighted(towards, self._square_b, rate, mask=learn)


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
