"""Labelled porch scenes: the hard cases a doorbell camera meets, as synthetic scenes.

Each scene says, for every moment, whether a person is in view (:func:`person_in_view`),
so a motion detector can be scored frame by frame. Lighting changes are the classic false
alarm; a visitor walking up until they fill the frame is the doorbell's main event, and a
detector that treats every huge change as a flash of light misses exactly that.
"""

from __future__ import annotations

from collections.abc import Callable

from porch.device.camera.synthetic import Figure, Knock, LightChange, SyntheticScene

MIN_VISIBLE = 0.005
"""A person counts as in view when this fraction of the frame shows them."""


def person_in_view(scene: SyntheticScene, t: float) -> bool:
    return any((x1 - x0) * (y1 - y0) >= MIN_VISIBLE for x0, y0, x1, y1 in scene.truth(t))


def _walk_past(t0: float, colour=(40, 60, 150)) -> Figure:
    return Figure([(t0, -0.15, 0.85, 0.45), (t0 + 6, 1.15, 0.85, 0.45)], colour)


def _visit(t0: float, colour=(150, 60, 40), close: float = 0.95) -> Figure:
    """Walks up to the door, stands (still, for 4 s), leaves."""
    return Figure(
        [
            (t0, -0.15, 0.75, 0.35),
            (t0 + 4, 0.5, 0.95, 0.7),
            (t0 + 6, 0.5, 1.0, close),
            (t0 + 10, 0.5, 1.0, close),
            (t0 + 14, 1.15, 0.75, 0.35),
        ],
        colour,
    )


def approach(width: int, height: int) -> SyntheticScene:
    """A visitor walks right up to the lens until they fill most of the frame."""
    lens = Figure(
        [
            (6, 0.2, 0.8, 0.4),
            (10, 0.5, 1.6, 1.6),
            (13, 0.5, 2.2, 2.3),
            (16, 0.5, 2.2, 2.3),
            (19, 0.5, 1.0, 0.6),
            (22, 1.2, 0.8, 0.4),
        ],
        (90, 50, 30),
    )
    return SyntheticScene(width, height, seed=11, figures=[lens])


def cloud(width: int, height: int) -> SyntheticScene:
    """A cloud dims the whole porch to half and back; later a visitor."""
    return SyntheticScene(
        width,
        height,
        seed=12,
        figures=[_visit(22)],
        lights=[LightChange(5, 15, gain=0.5, ramp_s=3)],
    )


def headlights(width: int, height: int) -> SyntheticScene:
    """Headlights sweep across the whole frame twice; later a visitor."""
    return SyntheticScene(
        width,
        height,
        seed=13,
        figures=[_walk_past(24)],
        lights=[
            LightChange(4, 8, gain=1.9, ramp_s=0.5, sweep=True),
            LightChange(12, 15, gain=1.6, ramp_s=0.5, sweep=True),
        ],
    )


def infrared_switch(width: int, height: int) -> SyntheticScene:
    """Dusk: the camera switches to IR night mode (grey, brighter); a visitor at night."""
    return SyntheticScene(
        width,
        height,
        seed=14,
        figures=[_visit(16)],
        lights=[LightChange(6, 60, gain=1.4, ramp_s=0.1, infrared=True)],
    )


def rain(width: int, height: int) -> SyntheticScene:
    """Steady rain; a visitor walks up through it."""
    return SyntheticScene(width, height, seed=15, figures=[_visit(12)], rain=120)


def night_noise(width: int, height: int) -> SyntheticScene:
    """High-gain night picture: heavy sensor noise; someone walks past."""
    return SyntheticScene(
        width,
        height,
        seed=16,
        figures=[_walk_past(12)],
        noise_sigma=9.0,
        lights=[LightChange(0, 60, gain=0.6, ramp_s=0.1)],
    )


def flicker(width: int, height: int) -> SyntheticScene:
    """A porch lamp on mains power beating against the frame rate (±12 %); a visitor."""
    return SyntheticScene(width, height, seed=17, figures=[_visit(14)], flicker=0.12)


def infrared_regions(width: int, height: int) -> SyntheticScene:
    """Dusk: the IR-cut filter switches in one frame and every surface changes brightness by
    its own factor (the door turns brighter than the wall); quiet, then a visitor."""
    return SyntheticScene(
        width,
        height,
        seed=18,
        figures=[_visit(16)],
        lights=[LightChange(6, 60, gain=1.0, ramp_s=1e-3, infrared=True, regional=True)],
    )


def _surfaces_switch(seed: int, surfaces: float, ir_gain: float, to_day: bool = False):
    def factory(width: int, height: int) -> SyntheticScene:
        # Dusk (or dawn, from IR back to colour) in one frame at t=6 with every small
        # surface by its own factor, grey and noisier under IR; quiet, then a visitor.
        window = (0.0, 6.0) if to_day else (6.0, 60.0)
        return SyntheticScene(
            width,
            height,
            seed=seed,
            figures=[_visit(16)],
            noise_sigma=4.0,
            surfaces=surfaces,
            ir_gain=ir_gain,
            lights=[LightChange(*window, gain=1.0, ramp_s=1e-3, infrared=True, regional=True)],
        )

    return factory


def knock_small(width: int, height: int) -> SyntheticScene:
    """The doorbell is knocked: the view shifts by 2 px in one frame; quiet, then a visitor."""
    return SyntheticScene(width, height, seed=19, figures=[_visit(16)], knocks=[Knock(6, 2, 1)])


def knock_large(width: int, height: int) -> SyntheticScene:
    """A harder knock: the view shifts by 6 px; quiet, then a visitor."""
    return SyntheticScene(width, height, seed=20, figures=[_visit(16)], knocks=[Knock(6, -6, 3)])


SCENE_CHANGES: dict[str, float] = {
    "ir regions": 6.0,
    "ir surfaces": 6.0,
    "ir clipped": 6.0,
    "ir fine": 6.0,
    "ir to day": 6.0,
    "knock 2 px": 6.0,
    "knock 6 px": 6.0,
}
"""Scenes whose whole picture changes at once without anyone moving: the moment, seconds."""

HARD_CASES: dict[str, tuple[Callable[[int, int], SyntheticScene], float]] = {
    "approach": (approach, 28.0),
    "cloud": (cloud, 40.0),
    "headlights": (headlights, 34.0),
    "infrared": (infrared_switch, 34.0),
    "rain": (rain, 30.0),
    "night noise": (night_noise, 24.0),
    "flicker": (flicker, 30.0),
    "ir regions": (infrared_regions, 32.0),
    "ir surfaces": (_surfaces_switch(24, 24, 1.0), 32.0),
    "ir clipped": (_surfaces_switch(25, 24, 1.5), 32.0),
    "ir fine": (_surfaces_switch(26, 12, 1.3), 32.0),
    "ir to day": (_surfaces_switch(27, 24, 1.5, to_day=True), 32.0),
    "knock 2 px": (knock_small, 32.0),
    "knock 6 px": (knock_large, 32.0),
}
"""Scene factory and its length in seconds, by name."""
