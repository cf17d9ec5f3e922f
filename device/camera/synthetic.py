"""A deterministic synthetic porch: the camera for demos, tests and benchmarks off a Pi.

The scene is a textured wall and door with figures that walk up to the door, lighting that
changes (clouds, headlights, the switch to infrared at dusk, mains flicker) and sensor noise.
Everything is a pure function of the seed and the time, so a test can ask what the scene
holds at any moment (:meth:`SyntheticScene.truth`) and get the same pixels every run.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from porch.device.camera import Frame

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 as fractions of the frame."""


@dataclass(frozen=True)
class Figure:
    """A person: ``waypoints`` are (t seconds, x, y of the feet, height), fractions of the frame.

    The figure exists from the first waypoint's time to the last one's and moves linearly
    between them; a figure whose height nears 1 fills the frame, as a visitor at the lens does.
    """

    waypoints: Sequence[tuple[float, float, float, float]]
    colour: tuple[int, int, int] = (40, 60, 150)
    picture: np.ndarray | None = field(default=None, compare=False)
    """A photograph (BGR) drawn instead of the figure, its bottom centre at the feet and
    ``height`` tall: a real cat, a real person (tests of the hub's person detector)."""

    def at(self, t: float) -> tuple[float, float, float] | None:
        points = self.waypoints
        if not points or t < points[0][0] or t > points[-1][0]:
            return None
        for (t0, *a), (t1, *b) in itertools.pairwise(points):
            if t0 <= t <= t1:
                k = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                x, y, h = (p + (q - p) * k for p, q in zip(a, b, strict=True))
                return x, y, h
        _, x, y, h = points[-1]
        return x, y, h

    def box(self, t: float) -> Box | None:
        where = self.at(t)
        if where is None:
            return None
        x, y, h = where
        w = h * 0.4
        return (max(0.0, x - w / 2), max(0.0, y - h), min(1.0, x + w / 2), min(1.0, y))


@dataclass(frozen=True)
class LightChange:
    """Global gain multiplied in from ``start`` to ``end`` seconds (ramping in and out).

    ``sweep`` moves a bright band across the frame instead (headlights); ``infrared`` turns
    the picture grey for the duration (night mode); ``regional`` (with ``infrared``) also
    scales each surface by a factor of its own, as under IR light, where paint, brick and
    ground reflect differently from how they do in daylight (a dark door may turn brighter
    than the wall).
    """

    start: float
    end: float
    gain: float = 0.6
    ramp_s: float = 1.0
    sweep: bool = False
    infrared: bool = False
    regional: bool = False

    def strength(self, t: float) -> float:
        if t <= self.start or t >= self.end:
            return 0.0
        ramp = max(self.ramp_s, 1e-6)
        return min(1.0, (t - self.start) / ramp, (self.end - t) / ramp)


@dataclass(frozen=True)
class Knock:
    """From ``t`` seconds on, the whole view is shifted by ``dx``, ``dy`` pixels: the doorbell
    was knocked (or its mount settled) and looks at the porch a little askew."""

    t: float
    dx: float
    dy: float


# Factors under IR light by surface (wall, mortar, door, door panels, knob, ground, figures):
# a dark painted door reflects near-infrared far more than it reflects visible light.
MATERIALS = ("wall", "mortar", "door", "panel", "knob", "ground")
IR_FACTORS = {"wall": 1.15, "mortar": 0.8, "door": 3.4, "panel": 2.6, "knob": 0.6, "ground": 0.7}
IR_FIGURE_FACTOR = 1.5
SURFACE_FACTORS = (0.5, 1.6)
"""The range of one small surface's factor under IR light (``SyntheticScene.surfaces``)."""
IR_LED_LUX = 8.0
"""What the IR LEDs add to the camera's light measure at night, lux."""


@dataclass
class SyntheticScene:
    """The porch as a function of time. ``render(t)`` draws it; ``truth(t)`` says who is there."""

    width: int = 640
    height: int = 360
    seed: int = 1
    figures: list[Figure] = field(default_factory=list)
    lights: list[LightChange] = field(default_factory=list)
    noise_sigma: float = 2.5
    flicker: float = 0.0
    """Amplitude of a 100 Hz mains flicker aliased to the frame rate (0.05 = ±5 %)."""
    rain: int = 0
    """Rain streaks drawn per frame (each a short, faint, slanted line)."""
    knocks: list[Knock] = field(default_factory=list)
    daylight: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 400.0)])
    """The scene's light, (t seconds, lux) points joined linearly: what the camera measures."""
    surfaces: float = 0.0
    """Side of the small surfaces the IR switch relights each by a factor of its own, in pixels
    of a 640 px wide frame (bricks, planks, leaves, the mat); 0 relights whole materials
    (``IR_FACTORS``). Each surface's factor is drawn between ``SURFACE_FACTORS``."""
    ir_gain: float = 1.0
    """The IR picture's exposure against the day's: above 1 the brightest surfaces clip at
    white, as an auto-exposure that meters the dark door clips the wall."""
    switches_below_lux: float | None = None
    """A camera module that moves its IR-cut filter itself, from its own light sensor: the
    porch is drawn as under IR light while the daylight is below this, whatever the agent
    does (it is not told)."""
    night: bool = False
    """Night mode switched on from outside (:meth:`SyntheticCamera.set_night`): the picture
    is drawn as under IR light with per-surface factors, as a ``regional`` infrared change."""
    _background: np.ndarray = field(init=False, repr=False)
    _materials: np.ndarray = field(init=False, repr=False)
    _background_ir: np.ndarray | None = field(init=False, repr=False, default=None)
    _noise: list[tuple[np.ndarray, np.ndarray]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._background = self._draw_porch(rng)
        self._noise = []
        for _ in range(8):
            noise = rng.normal(0, self.noise_sigma, (self.height, self.width, 3))
            self._noise.append(
                (np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8))
            )

    @classmethod
    def default(cls, width: int, height: int, seed: int = 1) -> SyntheticScene:
        """The demo porch: a visitor every 45 s, a cloud now and then, a little flicker."""
        rng = np.random.default_rng(seed)
        figures = []
        for k in range(200):
            t0 = 10 + 45 * k + float(rng.uniform(0, 10))
            x0 = float(rng.choice([-0.1, 1.1]))
            red, green, blue = (int(c) for c in rng.integers(20, 200, 3))
            colour = (red, green, blue)
            figures.append(
                Figure(
                    [
                        (t0, x0, 0.75, 0.35),
                        (t0 + 5, 0.5, 0.9, 0.7),
                        (t0 + 7, 0.5, 1.0, 0.95),
                        (t0 + 12, 0.5, 1.0, 0.95),
                        (t0 + 17, 1.0 - x0, 0.75, 0.35),
                    ],
                    colour,
                )
            )
        lights = [LightChange(30 + 60 * k, 36 + 60 * k, 0.55, 2.0) for k in range(150)]
        return cls(width, height, seed, figures, lights, flicker=0.01)

    def _draw_porch(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.width, self.height
        materials = np.zeros((h, w), np.uint8)
        self._materials = materials
        label = {name: index for index, name in enumerate(MATERIALS)}
        wall: np.ndarray = rng.normal(150, 18, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
        wall = cv2.resize(cv2.GaussianBlur(wall, (3, 3), 0), (w, h))
        image = np.dstack([wall * 0.85, wall * 0.9, wall]).clip(0, 255).astype(np.uint8)
        brick_h = max(4, h // 24)
        for row, y in enumerate(range(0, h, brick_h)):
            for target, value in ((image, (95, 100, 110)), (materials, label["mortar"])):
                cv2.line(target, (0, y), (w, y), value, 1)
                offset = (row % 2) * brick_h
                for x in range(offset, w, brick_h * 2):
                    cv2.line(target, (x, y), (x, y + brick_h), value, 1)
        door = (int(w * 0.38), int(h * 0.12), int(w * 0.62), int(h * 0.92))
        knob = ((door[2] - w // 30, (door[1] + door[3]) // 2), max(2, h // 80))
        for target, door_value, panel_value, knob_value in (
            (image, (30, 50, 90), (45, 70, 115), (0, 190, 220)),
            (materials, label["door"], label["panel"], label["knob"]),
        ):
            cv2.rectangle(target, door[:2], door[2:], door_value, -1)
            for k in range(3):
                y0 = door[1] + (door[3] - door[1]) * k // 3 + h // 40
                y1 = door[1] + (door[3] - door[1]) * (k + 1) // 3 - h // 40
                cv2.rectangle(
                    target, (door[0] + w // 40, y0), (door[2] - w // 40, y1), panel_value, 2
                )
            cv2.circle(target, *knob, knob_value, -1)
        ground: np.ndarray = rng.normal(110, 12, (h // 10 + 1, w // 8 + 1)).astype(np.float32)
        ground = cv2.resize(ground, (w, h - int(h * 0.92)))
        image[int(h * 0.92) :] = np.dstack([ground] * 3).clip(0, 255).astype(np.uint8)
        materials[int(h * 0.92) :] = label["ground"]
        return image

    def _infrared_porch(self) -> np.ndarray:
        """The porch under IR light: each surface scaled by its own factor (cached)."""
        if self._background_ir is None:
            if self.surfaces > 0:
                factor = self._surface_factors()
            else:
                factors = np.array([IR_FACTORS[name] for name in MATERIALS], np.float32)
                factor = factors[self._materials]
            scaled = self._background * (factor * self.ir_gain)[..., None]
            self._background_ir = np.clip(scaled, 0, 255).astype(np.uint8)
        return self._background_ir

    def _surface_factors(self) -> np.ndarray:
        """A factor per pixel: the porch cut into small surfaces (each brick, door panel or
        patch of ground, further cut into cells about ``surfaces`` px across), each surface
        with a factor of its own drawn from ``SURFACE_FACTORS``."""
        rng = np.random.default_rng((self.seed, 7))
        h, w = self._materials.shape
        mortar = MATERIALS.index("mortar")
        # Bricks are what the mortar lines enclose; the door, its panels and the ground are
        # surfaces of their own.
        pieces = (self._materials != mortar).astype(np.uint8)
        _, parts = cv2.connectedComponents(pieces, connectivity=4)
        # Cells: the Voronoi regions of jittered grid points, about ``surfaces`` px apart.
        side = max(4.0, self.surfaces * w / 640)
        seeds = np.ones((h, w), np.uint8)
        for y in np.arange(side / 2, h, side):
            for x in np.arange(side / 2, w, side):
                sx, sy = rng.uniform(-side / 3, side / 3, 2)
                seeds[min(h - 1, max(0, int(y + sy))), min(w - 1, max(0, int(x + sx)))] = 0
        _, cells = cv2.distanceTransformWithLabels(
            seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_CCOMP
        )
        key = (parts.astype(np.int64) * (int(cells.max()) + 1) + cells) * len(MATERIALS)
        key += self._materials
        _, surface = np.unique(key, return_inverse=True)
        low, high = SURFACE_FACTORS
        factors = rng.uniform(low, high, int(surface.max()) + 1).astype(np.float32)
        return factors[surface.reshape(h, w)]

    def lux(self, t: float) -> float:
        """The light the camera would measure at ``t``, lux (IR LEDs add their own at night)."""
        return self._daylight(t) + (IR_LED_LUX if self.night else 0.0)

    def _daylight(self, t: float) -> float:
        times = [p[0] for p in self.daylight]
        return float(np.interp(t, times, [p[1] for p in self.daylight]))

    def truth(self, t: float) -> list[Box]:
        """Boxes of the figures in view at ``t`` (fractions of the frame)."""
        boxes = []
        for figure in self.figures:
            box = figure.box(t)
            if box and box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
        return boxes

    def render(self, t: float) -> np.ndarray:
        """The BGR picture at media time ``t`` seconds."""
        gain = 1.0 + self.flicker * math.sin(2 * math.pi * 7.3 * t)
        sweeps, infrared, regional = [], self.night, self.night
        if self.switches_below_lux is not None:
            regional = regional or self._daylight(t) < self.switches_below_lux
        for light in self.lights:
            s = light.strength(t)
            if s <= 0:
                continue
            if light.sweep:
                sweeps.append((light, s))
            elif light.infrared:
                infrared = True
                regional = regional or light.regional
                gain *= 1 + (light.gain - 1) * s
            else:
                gain *= 1 + (light.gain - 1) * s
        image = (self._infrared_porch() if regional else self._background).copy()
        for figure in self.figures:
            self._draw_figure(image, figure, t, IR_FIGURE_FACTOR if regional else 1.0)
        image = cv2.convertScaleAbs(image, alpha=gain)
        for light, s in sweeps:
            self._draw_sweep(image, light, t, s)
        if self.rain:
            self._draw_rain(image, t)
        if infrared:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            image = cv2.merge([grey, grey, grey])
        shift = [(k.dx, k.dy) for k in self.knocks if t >= k.t]
        if shift:
            dx, dy = (sum(axis) for axis in zip(*shift, strict=True))
            matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            image = cv2.warpAffine(
                image, matrix, (self.width, self.height), borderMode=cv2.BORDER_REFLECT_101
            )
        # Noise patterns are reused, shifted by a frame-dependent offset: uncorrelated from one
        # frame to the next, as a sensor's is, without drawing random numbers per frame.
        frame = round(t * 1000)
        plus, minus = self._noise[frame % len(self._noise)]
        dy, dx = (frame * 7919) % self.height, (frame * 104729) % self.width
        if dy or dx:
            plus, minus = (np.roll(n, (dy, dx), axis=(0, 1)) for n in (plus, minus))
        cv2.add(image, plus, dst=image)
        cv2.subtract(image, minus, dst=image)
        return image

    def _draw_figure(
        self, image: np.ndarray, figure: Figure, t: float, factor: float = 1.0
    ) -> None:
        where = figure.at(t)
        if where is None:
            return
        colour = tuple(min(255, int(c * factor)) for c in figure.colour)
        x, y, h = where
        w_px, h_px = self.width, self.height
        fh = h * h_px
        cx, feet = int(x * w_px), int(y * h_px)
        if figure.picture is not None:
            self._draw_picture(image, figure.picture, cx, feet, max(2, int(fh)), factor)
            return
        body_w = max(2, int(fh * 0.2))
        body = (cx, int(feet - fh * 0.38))
        cv2.ellipse(image, body, (body_w, max(2, int(fh * 0.38))), 0, 0, 360, colour, -1)
        stripe = tuple(min(255, c + 60) for c in colour)
        for k in (-1, 0, 1):
            yy = int(body[1] + k * fh * 0.12)
            cv2.line(
                image,
                (cx - body_w // 2, yy),
                (cx + body_w // 2, yy),
                stripe,
                max(1, int(fh * 0.02)),
            )
        draw_face(image, cx, int(feet - fh * 0.86), max(3, int(fh * 0.11)))

    def _draw_picture(
        self, image: np.ndarray, picture: np.ndarray, cx: int, feet: int, height: int, factor
    ) -> None:
        width = max(2, round(picture.shape[1] * height / picture.shape[0]))
        small = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
        if factor != 1.0:
            small = cv2.convertScaleAbs(small, alpha=factor)
        x0, y0 = cx - width // 2, feet - height
        a0, b0 = max(0, x0), max(0, y0)
        a1, b1 = min(self.width, x0 + width), min(self.height, y0 + height)
        if a1 > a0 and b1 > b0:
            image[b0:b1, a0:a1] = small[b0 - y0 : b1 - y0, a0 - x0 : a1 - x0]

    def _draw_rain(self, image: np.ndarray, t: float) -> None:
        rng = np.random.default_rng((self.seed, round(t * 1000)))
        xs = rng.integers(0, self.width, self.rain)
        ys = rng.integers(0, self.height, self.rain)
        length = max(3, self.height // 25)
        overlay = image.copy()
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            cv2.line(overlay, (x, y), (x + length // 4, y + length), (200, 200, 200), 1)
        cv2.addWeighted(overlay, 0.35, image, 0.65, 0, dst=image)

    def _draw_sweep(self, image: np.ndarray, light: LightChange, t: float, s: float) -> None:
        k = (t - light.start) / max(light.end - light.start, 1e-6)
        centre = int((k * 1.6 - 0.3) * self.width)
        half = self.width // 5
        x0, x1 = max(0, centre - half), min(self.width, centre + half)
        if x1 <= x0:
            return
        ramp = np.abs(np.arange(x0, x1) - centre) / half
        factor = (1 + (light.gain - 1) * s * (1 - ramp) ** 2).astype(np.float32)
        band = image[:, x0:x1].astype(np.float32) * factor[None, :, None]
        image[:, x0:x1] = np.clip(band, 0, 255).astype(np.uint8)


def draw_face(image: np.ndarray, cx: int, cy: int, r: int) -> None:
    """A frontal face of radius ``r``: hair, skin, brows, eyes, nose and mouth, shaded the way
    real faces are (dark eyes over lighter cheeks), so that a face detector finds it: the
    export's face blur is tested on this scene."""

    def at(fx: float, fy: float) -> tuple[int, int]:
        return cx + int(r * fx), cy + int(r * fy)

    def size(fx: float, fy: float) -> tuple[int, int]:
        return max(1, int(r * fx)), max(1, int(r * fy))

    cv2.ellipse(image, at(0, -0.25), size(0.95, 1.05), 0, 180, 360, (40, 50, 70), -1)
    cv2.ellipse(image, (cx, cy), size(0.8, 1.0), 0, 0, 360, (140, 170, 215), -1)
    for side in (-1, 1):
        ex = 0.33 * side
        cv2.ellipse(image, at(ex, -0.38), size(0.2, 0.05), 0, 0, 360, (50, 60, 80), -1)
        cv2.ellipse(image, at(ex, -0.2), size(0.16, 0.08), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(image, at(ex, -0.2), max(1, int(r * 0.07)), (40, 30, 30), -1)
        cv2.ellipse(image, at(ex, -0.08), size(0.18, 0.07), 0, 0, 180, (110, 135, 180), -1)
    nose = np.array([at(0, -0.1), at(-0.1, 0.25), at(0.1, 0.25)], dtype=np.int32)
    cv2.fillConvexPoly(image, nose, (120, 150, 195))
    cv2.ellipse(image, at(0, 0.5), size(0.3, 0.08), 0, 0, 360, (70, 70, 150), -1)


CLOCK_BITS = 24
"""The clock code: wall-clock milliseconds modulo 2**24 (4.6 hours), most significant first."""


def clock_block(width: int) -> int:
    """Side of one bit's square in the clock code, pixels (the code spans the frame's width)."""
    return width // CLOCK_BITS


def draw_clock(image: np.ndarray, wall_s: float) -> None:
    """Draw the wall clock as a row of black and white squares along the top edge, big enough
    to survive H.264: a page reads it back from the decoded video (glass-to-glass latency)."""
    value = round(wall_s * 1000) % (1 << CLOCK_BITS)
    side = clock_block(image.shape[1])
    for bit in range(CLOCK_BITS):
        on = (value >> (CLOCK_BITS - 1 - bit)) & 1
        image[:side, bit * side : (bit + 1) * side] = 255 if on else 0


class SyntheticCamera:
    """Frames of a :class:`SyntheticScene` at ``fps``; ``realtime=False`` runs flat out.
    ``clock``: stamp each frame with :func:`draw_clock` as it is taken."""

    def __init__(
        self, scene: SyntheticScene, fps: float, realtime: bool = True, clock: bool = False
    ):
        self.scene = scene
        self.width, self.height, self.fps = scene.width, scene.height, fps
        self.realtime = realtime
        self.clock = clock

    def frames(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while True:
            ts = index / self.fps
            if self.realtime:
                delay = start + ts - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            image = self.scene.render(ts)
            if self.clock:
                draw_clock(image, time.time())
            yield Frame(image, ts, self.scene.lux(ts))
            index += 1

    def set_night(self, night: bool) -> None:
        """The scene is drawn as under IR light from the next frame (see ``regional``)."""
        self.scene.night = night

    def close(self) -> None:
        pass
