"""Face blur for exports: speed on one core against the same decode + encode without blur,
and how much of a real face it covers in every frame.

    .venv/bin/python bench/face_blur.py [--seconds 20] [--before COMMIT]

The clip is tests/support/real_face.py's: a real photograph of a face (scikit-image's astronaut)
moved, scaled, tilted and turned across a 1280×720 porch at 15 fps, so every frame's true
face region is known. The process is pinned to one core. Baseline, in the same run:
`redact` with nothing to redact (decode, re-encode). With ``--before``, the redaction of
that commit (the Haar detector on every frame, boxes held for five frames) runs too.
Target (issue 11): ≥ 2× real time, and ≥ 95 % of the face blurred in every frame.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from porch.hub.export.redact import FaceFinder, redact  # noqa: E402
from tests.support import real_face  # noqa: E402

BEFORE = "aa56498"


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def old_redact(commit: str, folder: Path):
    """`redact` as it was at ``commit`` (its module needs only PyAV, OpenCV and numpy)."""
    source = subprocess.run(
        ["git", "-C", str(HERE.parent), "show", f"{commit}:porch/export/redact.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = folder / "redact_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("redact_before", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["redact_before"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.redact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--before", default=None, help=f"also time this commit's (e.g. {BEFORE})")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, every thread
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "face.mp4"
        truths = real_face.write_video(source, args.seconds)
        video_s = len(truths) / real_face.FPS
        base_s, _ = timed(redact, source, tmp / "plain.mp4", False, [])
        blur_s, report = timed(redact, source, tmp / "blurred.mp4", True, [])
        coverage = real_face.coverage(truths, report.face_boxes)
        below = [i for i, c in enumerate(coverage) if c < 0.95]
        print(f"{len(truths)} frames, {video_s:.0f} s of 1280×720 at {real_face.FPS} fps,"
              f" one core")  # fmt: skip
        print(f"decode + encode only:   {base_s:6.2f} s  {video_s / base_s:5.2f}× real time")
        print(f"face blur:              {blur_s:6.2f} s  {video_s / blur_s:5.2f}× real time"
              f"  ({base_s / blur_s:.2f}× the baseline's speed)")  # fmt: skip
        print(f"face covered: min {min(coverage):.3f}, mean {np.mean(coverage):.3f},"
              f" frames under 95 %: {len(below)} {below[:10]}; detector on"
              f" {report.detections} frames ({report.detector})")  # fmt: skip
        haar_s, haar = timed(redact, source, tmp / "haar.mp4", True, [], None, True)
        covered = real_face.coverage(truths, haar.face_boxes)
        print(f"with the Haar cascade:  {haar_s:6.2f} s  {video_s / haar_s:5.2f}× real time;"
              f" face covered min {min(covered):.3f}, mean {np.mean(covered):.3f}, frames"
              f" under 95 %: {sum(c < 0.95 for c in covered)}")  # fmt: skip
        # The detectors alone (no tracking), on every third frame: does a box hold the
        # face's centre?
        for name, finder in (("CenterFace", FaceFinder()), ("Haar", FaceFinder(haar=True))):
            hits = looked = 0
            spent = 0.0
            for index, (image, polygon) in enumerate(real_face.frames(args.seconds)):
                if index % 3:
                    continue
                cx, cy = polygon.mean(axis=0)
                took, boxes = timed(finder.find, image)
                spent += took
                looked += 1
                hits += any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in boxes)
            print(f"{name} alone: the face found in {hits} of {looked} frames,"
                  f" {spent / looked * 1000:.1f} ms a look")  # fmt: skip
        if args.before:
            old = old_redact(args.before, tmp)
            old_s, old_report = timed(old, source, tmp / "old.mp4", True, [])
            old_cover = real_face.coverage(truths, old_report.face_boxes)
            print(f"before ({args.before}):      {old_s:6.2f} s  {video_s / old_s:5.2f}× real"
                  f" time; face covered min {min(old_cover):.3f}, frames under 95 %:"
                  f" {sum(c < 0.95 for c in old_cover)}")  # fmt: skip


if __name__ == "__main__":
    main()
