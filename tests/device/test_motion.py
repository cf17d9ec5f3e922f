"""Motion: masks hide motion, light changes raise nothing, a visitor at the lens is seen."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from porch.core.config import MotionSettings
from porch.device.camera.scenes import (
    HARD_CASES,
    SCENE_CHANGES,
    approach,
    cloud,
    headlights,
    infrared_switch,
)
from porch.device.camera.synthetic import Figure, LightChange, SyntheticScene
from porch.device.motion import MotionDetector, MotionTracker, Shrinker
from porch.device.regions import DetectionZones, PrivacyMask

FPS = 15
TOP_LEFT = [[0.0, 0.0], [0.45, 0.0], [0.45, 0.6], [0.0, 0.6]]


def changes(scene: SyntheticScene, seconds: float, masks=(), zones=()):
    """Run the scene through the pipeline's order: burn the mask, then detect."""
    privacy = PrivacyMask(list(masks))
    tracker = MotionTracker(
        MotionDetector(MotionSettings(end_after_s=1.0), privacy, DetectionZones(list(zones)))
    )
    found = []
    for i in range(int(seconds * FPS)):
        t = i / FPS
        change = tracker.update(privacy.burn(scene.render(t)), t)
        if change is not None:
            found.append(change)
    return found


def pacing_in_the_corner() -> SyntheticScene:
    """Someone walks back and forth inside the top-left region only."""
    walk = Figure([(3, 0.05, 0.5, 0.35), (6, 0.38, 0.5, 0.35), (9, 0.05, 0.5, 0.35)])
    return SyntheticScene(320, 240, seed=5, figures=[walk])


def test_motion_only_inside_a_privacy_mask_raises_nothing():
    assert changes(pacing_in_the_corner(), 10), "control: without a mask the walk is motion"
    assert changes(pacing_in_the_corner(), 10, masks=[TOP_LEFT]) == []


def test_motion_outside_the_detection_zones_is_ignored():
    bottom_right = [[0.5, 0.7], [1.0, 0.7], [1.0, 1.0], [0.5, 1.0]]
    assert changes(pacing_in_the_corner(), 10, zones=[bottom_right]) == []


def test_lighting_changes_are_not_motion():
    # Each scene's visitor comes later; before that only the light changes.
    assert changes(cloud(320, 240), 20) == []
    assert changes(headlights(320, 240), 20) == []
    assert changes(infrared_switch(320, 240), 15) == []


def test_a_visitor_filling_the_frame_is_motion_throughout():
    scene = approach(320, 240)
    privacy = PrivacyMask([])
    detector = MotionDetector(MotionSettings(), privacy)
    close_up = []
    for i in range(int(17 * FPS)):
        t = i / FPS
        result = detector.detect(scene.render(t), t)
        if 11 <= t <= 16:  # at the lens: the figure covers most of the frame
            close_up.append(result.moving)
    assert all(close_up)


def test_the_shrinker_gives_what_a_plain_resize_gives():
    # Copying only the rows a resize needs before resizing must not change a single pixel.
    scene = pacing_in_the_corner()
    colour = cv2.resize(scene.render(4.0), (1280, 720))
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    for frame in (grey, colour):
        linear = Shrinker(frame.shape, 160)
        assert linear.size == (160, 90)
        plain = cv2.resize(frame, (160, 90), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(linear.shrink(frame), plain)
    small = cv2.resize(grey, (640, 480))
    halving = Shrinker(small.shape, 160)
    assert halving.size == (160, 120)
    half = cv2.resize(small, (320, 240), interpolation=cv2.INTER_AREA)
    plain = cv2.resize(half, (160, 120), interpolation=cv2.INTER_AREA)
    assert np.array_equal(halving.shrink(small), plain)


def test_a_walk_in_720p_colour_is_motion():
    # 1280×720 BGR takes the other shrinking path (rows picked, then INTER_LINEAR).
    scene = pacing_in_the_corner()
    tracker = MotionTracker(MotionDetector(MotionSettings(end_after_s=1.0)))
    found = [
        tracker.update(cv2.resize(scene.render(i / FPS), (1280, 720)), i / FPS)
        for i in range(int(10 * FPS))
    ]
    assert any(change is not None and change.active for change in found)


def _moving_frames(scene: SyntheticScene, start: float, end: float, size=None, hook=None):
    """Media times in [start, end) at which the detector says motion; ``hook(t, detector)``
    runs before each frame."""
    detector = MotionDetector(MotionSettings())
    moving = []
    for i in range(int(end * FPS)):
        t = i / FPS
        if hook is not None:
            hook(t, detector)
        image = scene.render(t)
        if size is not None:
            image = cv2.resize(image, size)
        if detector.detect(image, t).moving and t >= start:
            moving.append(t)
    return moving


@pytest.mark.parametrize("case", list(SCENE_CHANGES))
@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_a_whole_scene_change_is_learned_within_a_second(case, size):
    # The IR-cut switch (every surface by its own factor) or a knock (the view shifts 2 or
    # 6 px) in one frame at t=6, nobody there until the visitor walks up at t=16.
    factory, _ = HARD_CASES[case]
    scene = factory(*size)
    at = SCENE_CHANGES[case]
    false = _moving_frames(scene, at, 15.9)
    assert len(false) / FPS <= 1.0, f"{case}: {len(false) / FPS:.2f} s of false motion"
    visitor = _moving_frames(scene, 17, 26)
    assert len(visitor) / FPS >= 7, "the visitor after the change is motion"


def _ir_porch(figures=(), lights=()) -> SyntheticScene:
    """The porch as an IR switch rebuilds it: small surfaces each by its own factor, the
    brightest clipped at white, grey and noisy; the switch (unsignalled) at t=6."""
    switch = LightChange(6, 60, gain=1.0, ramp_s=1e-3, infrared=True, regional=True)
    return SyntheticScene(
        640,
        480,
        seed=30,
        figures=list(figures),
        lights=[switch, *lights],
        noise_sigma=4.0,
        surfaces=24,
        ir_gain=1.3,
    )


@pytest.mark.parametrize(
    "settling",
    [
        LightChange(6.07, 60, gain=0.7, ramp_s=1e-3),  # the exposure steps a frame later
        LightChange(6, 60, gain=1.5, ramp_s=0.8),  # it brightens for 0.8 s, clipping more
        LightChange(6, 60, gain=0.6, ramp_s=0.5),  # it darkens for 0.5 s
    ],
    ids=["second step", "brightening", "darkening"],
)
def test_an_ir_switch_with_exposure_still_settling_is_no_motion(settling):
    moving = _moving_frames(_ir_porch(lights=[settling]), 1, 20)
    assert moving == []


def test_someone_at_the_door_through_an_unsignalled_switch_leaves_no_ghost():
    # A visitor stands at the door when the module switches itself to IR; what the porch
    # behind them looks like under IR is unknown until they leave. They are motion walking
    # up; once they are gone (t ≈ 11.7), the place they stood is learned within a second.
    path = [(2, -0.15, 0.75, 0.35), (5, 0.5, 0.95, 0.7), (9, 0.5, 0.95, 0.7)]
    visitor = Figure([*path, (12, 1.15, 0.75, 0.35)])
    scene = _ir_porch([visitor])
    moving = _moving_frames(scene, 0, 25)
    assert [t for t in moving if 2.5 <= t < 5], "walking up is motion"
    assert [t for t in moving if 9.5 <= t < 11.5], "walking away is motion"
    gone = min(t for t in np.arange(9, 25, 1 / FPS) if not scene.truth(t))
    after = [t for t in moving if t >= gone]
    assert len(after) / FPS <= 1.0, f"{len(after) / FPS:.2f} s of false motion after they left"


def test_someone_walking_past_through_an_unsignalled_switch_leaves_no_ghost():
    scene = _ir_porch([Figure([(4, -0.15, 0.75, 0.35), (8, 1.15, 0.75, 0.35)])])
    moving = _moving_frames(scene, 0, 25)
    assert [t for t in moving if 6.5 <= t < 7.5], "still walking after the switch is motion"
    assert len([t for t in moving if t >= 8]) / FPS <= 1.0


def test_a_walk_up_right_after_an_ir_switch_is_motion():
    # The visitor steps in half a second after the switch: the re-learning must not swallow
    # them (they change the picture over many frames and replace its structure).
    switch = LightChange(6, 60, gain=1.0, ramp_s=1e-3, infrared=True, regional=True)
    visit = Figure([(6.5, -0.15, 0.75, 0.35), (10.5, 0.5, 0.95, 0.7), (14, 0.5, 1.0, 0.95)])
    scene = SyntheticScene(640, 480, seed=21, figures=[visit], lights=[switch])
    moving = _moving_frames(scene, 6, 14)
    assert [t for t in moving if t >= 8], "the visitor walking up is motion"
    assert len([t for t in moving if t >= 8]) >= 0.9 * 6 * FPS


def test_a_person_stepping_into_view_at_once_is_motion():
    # Someone appears in one frame (from behind a pillar, or a camera that dropped frames):
    # sudden, but a person replaces the structure where they stand, so it is no scene change.
    pop = Figure([(6, 0.5, 0.95, 0.6), (12, 0.55, 0.95, 0.6)])
    scene = SyntheticScene(640, 480, seed=22, figures=[pop])
    moving = _moving_frames(scene, 6, 12)
    assert len(moving) >= 5 * FPS


def test_a_switch_the_doorbell_signals_never_counts():
    # The agent switched night mode itself and told the detector at that moment.
    scene = SyntheticScene(640, 480, seed=23, figures=[_late_visit()])

    def dusk(t: float, detector: MotionDetector) -> None:
        if abs(t - 6) < 1e-9:
            scene.night = True
            detector.scene_changed(settle_s=1.0)

    moving = _moving_frames(scene, 0, 20, hook=dusk)
    assert [t for t in moving if t < 16] == []
    assert [t for t in moving if t >= 17], "the visitor at night is motion"


def test_a_visitor_who_stops_at_the_door_after_a_signalled_switch_stays_motion():
    # The doorbell switches night mode itself at t=6 (and tells the detector); a visitor
    # walks up from 8 s and stands at the door from 10.5 s to 15 s: motion all along (the
    # switch is not "someone moving", whose place would be learned once still).
    scene = SyntheticScene(640, 480, seed=33, figures=[
        Figure([(8, -0.15, 0.75, 0.35), (10.5, 0.5, 0.95, 0.7), (15, 0.5, 0.95, 0.7),
                (18, 1.15, 0.75, 0.35)])])  # fmt: skip

    def dusk(t: float, detector: MotionDetector) -> None:
        if abs(t - 6) < 1e-9:
            scene.night = True
            detector.scene_changed(settle_s=1.0)

    moving = _moving_frames(scene, 0, 16, hook=dusk)
    standing = [t for t in moving if 12 <= t < 15]
    assert len(standing) >= 0.9 * 3 * FPS, f"{len(standing)} of {3 * FPS} frames"


def _late_visit() -> Figure:
    return Figure([(16, -0.15, 0.75, 0.35), (20, 0.5, 0.95, 0.7), (30, 0.5, 1.0, 0.95)])
