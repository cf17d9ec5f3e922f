"""A parcel left or taken: a lasting change in the doorstep zone the owner marked, between
the first glance of a visit (before the visitor reached the door) and its last (sent when
the doorbell's motion ended: the porch quiet for ``motion.end_after_s``).

No model: the zone is cut into blocks and each block of the two pictures compared by
zero-mean normalised cross-correlation (so a change of light, which scales and shifts the
grey levels, changes nothing) or, in a block too flat to correlate, by its level after
fitting the light around the zone. A visit that changed a quarter of the zone's blocks
changed something. Whether it was left or taken: the zone as it was before the parcel now
on it came is kept (the hub's database keeps it over a restart); a visit after which the
zone looks like that again took it. Without it (or in the other light: left by day, taken at
night), much less in the zone than before the visit is "taken", otherwise "left". A night
switch between the visit's two glances (one in colour, one grey) is no comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from porch.hub.people.detector import decode_glance

Zone = list[tuple[float, float, float, float]]
"""Rectangles (x, y, w, h) as fractions of the picture."""
BLOCK = 8
"""Block side in pixels of the zone at the glance's size (320 px wide)."""
CHANGED = 0.25
"""The fraction of the zone's blocks that must change."""


def grey(jpeg: bytes) -> tuple[np.ndarray, bool]:
    """A glance as grey levels, and whether it was in colour (day) or grey (infrared)."""
    image = decode_glance(jpeg)
    b, g, r = (image[..., i].astype(np.int16) for i in range(3))
    colour = float(np.mean(np.abs(b - g) + np.abs(g - r))) > 4.0
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32), colour


def _blocks(image: np.ndarray, zone: Zone) -> list[np.ndarray]:
    h, w = image.shape
    out = []
    for x, y, zw, zh in zone:
        x0, y0 = int(x * w), int(y * h)
        x1, y1 = min(w, int((x + zw) * w)), min(h, int((y + zh) * h))
        for by in range(y0, y1 - BLOCK + 1, BLOCK):
            for bx in range(x0, x1 - BLOCK + 1, BLOCK):
                out.append(image[by : by + BLOCK, bx : bx + BLOCK])
    return out


def _fitted(before: np.ndarray, after: np.ndarray, zone: Zone) -> np.ndarray:
    """``before`` in ``after``'s light: per box, a gain and an offset fitted over the box and
    as much again around it (sun on the floor but not under the roof changes the light of a
    region, not of the whole picture)."""
    h, w = before.shape
    fitted = before.copy()
    for x, y, zw, zh in zone:
        x0, y0 = max(0, int((x - zw) * w)), max(0, int((y - zh) * h))
        x1, y1 = min(w, int((x + 2 * zw) * w)), min(h, int((y + 2 * zh) * h))
        a, b = before[y0:y1, x0:x1], after[y0:y1, x0:x1]
        if a.size == 0:
            continue
        gain = (float(b.std()) + 1e-3) / (float(a.std()) + 1e-3)
        fitted[y0:y1, x0:x1] = (a - a.mean()) * gain + b.mean()
    return fitted


def changed(before: np.ndarray, after: np.ndarray, zone: Zone) -> float:
    """The fraction of the zone's blocks that differ between two grey pictures, whatever the
    light did around the zone."""
    if before.shape != after.shape:
        after = cv2.resize(after, (before.shape[1], before.shape[0]))
    a_blocks, b_blocks = _blocks(_fitted(before, after, zone), zone), _blocks(after, zone)
    if not a_blocks:
        return 0.0
    differ = 0
    for a, b in zip(a_blocks, b_blocks, strict=True):
        sa, sb = a.std(), b.std()
        if sa > 6 and sb > 6:  # texture on both sides: correlate
            ncc = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
            differ += ncc < 0.5
        elif max(sa, sb) > 12:  # texture appeared or went
            differ += 1
        else:  # both flat: their level, after the light's fit
            differ += abs(float(a.mean() - b.mean())) > 25
    return differ / len(a_blocks)


@dataclass
class Doorstep:
    """One doorbell's doorstep: what it looked like before the parcel now on it came (and
    in which light: colour by day, grey at night), and whether one is there."""

    empty: np.ndarray | None = None
    empty_colour: bool = True
    empty_jpeg: bytes | None = None
    """The glance :attr:`empty` was read from, as it came: what the hub stores."""
    parcel: bool = False

    @classmethod
    def restore(cls, parcel: bool, empty_jpeg: bytes | None) -> Doorstep:
        """The doorstep as the hub stored it (a stored picture that no longer decodes is
        forgotten: the visit alone decides then)."""
        doorstep = cls(parcel=parcel)
        if empty_jpeg is not None:
            try:
                doorstep.empty, doorstep.empty_colour = grey(empty_jpeg)
                doorstep.empty_jpeg = empty_jpeg
            except ValueError:
                pass
        return doorstep

    def visit(self, before: bytes, after: bytes, zone: Zone) -> Literal["left", "taken"] | None:
        """A visit with a person ended: what it did to the zone, if anything."""
        first, first_colour = grey(before)
        last, last_colour = grey(after)
        if first_colour != last_colour or not zone:
            return None  # the night switch (or no zone): nothing to compare
        if changed(first, last, zone) < CHANGED:
            return None
        if self.parcel:
            if self.empty is not None and self.empty_colour == last_colour:
                if changed(self.empty, last, zone) < CHANGED:  # as it was before the parcel
                    self.parcel = False
                    return "taken"
                return "left"  # another one
            # Left by day, this visit at night (or the other way): the visit alone says it.
            if texture(last, zone) < texture(first, zone) * 0.8:
                self.parcel = False
                return "taken"
            return "left"
        if texture(last, zone) < texture(first, zone) * 0.5:
            return "taken"  # much less there than before: one the hub did not see come
        self.empty, self.empty_colour, self.parcel = first, first_colour, True
        self.empty_jpeg = before
        return "left"


def texture(image: np.ndarray, zone: Zone) -> float:
    """How much there is in the zone: its blocks' mean standard deviation."""
    blocks = _blocks(image, zone)
    return float(np.mean([b.std() for b in blocks])) if blocks else 0.0
