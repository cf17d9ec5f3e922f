"""Motion: masks hide motion, light changes raise nothing, a visitor at the lens is seen."""

from __future__ import annotations

from porch.config import MotionSettings
from porch.device.camera.scenes import approach, cloud, headlights, infrared_switch
from porch.device.camera.synthetic import Figure, SyntheticScene
from porch.device.motion import MotionDetector, MotionTracker
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
