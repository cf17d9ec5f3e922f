"""Face blur measured as a person would see it: a real face (tests/real_face.py) moved,
scaled, tilted and turned across a 1280×720 clip at known positions; in every frame at
least 95 % of its true face region is blurred, and what is left there has lost its detail."""

from __future__ import annotations

import av
import cv2
import numpy as np

from porch.hub.export.redact import redact
from tests.support import real_face
from tests.support.real_face import HEIGHT, WIDTH

SECONDS = 8.0
SMALL = 40
"""A small head and shoulders (pixels wide at the tracking size): its face about 16 px, found
at 640×480 and 360×640 only when the detector works at the frame's own shape."""


def detail(path, polygons) -> list[float]:
    """Per frame, the Laplacian variance inside the true face region: a face a person can
    read has edges (eyes, mouth); a blurred one has almost none."""
    values = []
    with av.open(str(path)) as video:
        for image, polygon in zip(
            (f.to_ndarray(format="bgr24") for f in video.decode(video=0)), polygons, strict=True
        ):
            mask = np.zeros((HEIGHT, WIDTH), np.uint8)
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
            edges = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
            values.append(float(edges[mask > 0].var()))
    return values


def test_a_real_face_is_blurred_whole_in_every_frame(tmp_path):
    source, target = tmp_path / "face.mp4", tmp_path / "redacted.mp4"
    truths = real_face.write_video(source, SECONDS)
    report = redact(source, target, blur_faces=True, boxes=[])
    coverage = real_face.coverage(truths, report.face_boxes)
    below = [(index, round(value, 3)) for index, value in enumerate(coverage) if value < 0.95]
    print(f"coverage: min {min(coverage):.3f}, mean {np.mean(coverage):.3f}, frames below"
          f" 95 %: {below}; detector on {report.detections} of {len(coverage)} frames")  # fmt: skip
    assert len(coverage) == int(SECONDS * real_face.FPS)
    assert below == [], f"frames where less than 95 % of the face is blurred: {below}"

    before, after = detail(source, truths), detail(target, truths)
    kept = [a / b for a, b in zip(after, before, strict=True)]
    assert max(kept) < 0.15, f"face detail left after blurring: up to {max(kept):.0%}"


def test_without_tracking_the_detector_alone_would_miss_frames(tmp_path):
    # The control: the same clip with the detector's boxes only (no following, no holding
    # back) leaves frames uncovered, so the test above measures the tracking, not luck.
    from porch.hub.export import redact as module

    source = tmp_path / "face.mp4"
    truths = real_face.write_video(source, SECONDS)
    finder = module.FaceFinder()
    boxes = []
    with av.open(str(source)) as video:
        for index, frame in enumerate(video.decode(video=0)):
            if index % module.DETECT_EVERY:
                continue
            for box in finder.find(frame.to_ndarray(format="bgr24")):
                boxes.append((index, *box))
    coverage = real_face.coverage(truths, boxes)
    assert sum(value < 0.95 for value in coverage) > len(coverage) / 2


def test_the_export_says_which_detector_found_the_faces_and_falls_back_to_haar(tmp_path):
    from porch.hub.export import redact as module

    source = tmp_path / "face.mp4"
    truths = real_face.write_video(source, 4.0)
    report = redact(source, tmp_path / "centerface.mp4", blur_faces=True, boxes=[])
    assert report.summary()["detector"] == module.CENTERFACE
    assert module.CENTERFACE in report.description()
    # A hub whose models were never installed still blurs, with the cascade, and says so.
    assert module.FaceFinder(models=tmp_path).name == module.HAAR
    haar = redact(source, tmp_path / "haar.mp4", blur_faces=True, boxes=[], haar=True)
    assert haar.summary()["detector"] == module.HAAR
    assert min(real_face.coverage(truths, haar.face_boxes)) >= 0.95


def test_faces_are_searched_at_their_frames_own_shape(tmp_path):
    # A 4:3 and a portrait camera: the detector's input follows the frame (rounded up to 32
    # pixels), so a small face is not shrunk by letterboxing into a 16:9 input first.
    from porch.hub.export import redact as module

    face = real_face.photo()  # head and shoulders, the face about 40 % of its width
    finder = module.FaceFinder()
    small = cv2.cvtColor(cv2.resize(face, (SMALL, SMALL * 9 // 8), interpolation=cv2.INTER_AREA),
                         cv2.COLOR_BGR2GRAY)  # fmt: skip
    h, w = small.shape
    x, y = (real_face.FACE[0] + real_face.FACE[2]) / 2, (real_face.FACE[1] + real_face.FACE[3]) / 2
    cx = 100 + (x - real_face.PHOTO_CROP[0]) * w / face.shape[1]
    cy = 100 + (y - real_face.PHOTO_CROP[1]) * h / face.shape[0]
    for size in ((640, 480), (360, 640), (640, 360)):
        grey = np.full((size[1], size[0]), 120, np.uint8)
        grey[100 : 100 + h, 100 : 100 + w] = small
        found = finder.find_grey(grey)
        assert any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in found), (size, found)
