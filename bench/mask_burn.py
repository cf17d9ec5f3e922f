"""The privacy mask burned into picamera2's main stream on its own thread (under its lock,
before the encoder sees the frame): per 1280×720 XBGR8888 frame, the polygons filled straight
into the array (what the doorbell does) against the baseline in the same run, indexing the
array with the rasterised boolean mask (what it did). Two polygons, a neighbour's window and
the pavement; the figure a Pi Zero 2 W would show is about ten times this machine's.

Prints milliseconds per frame for each and their ratio, then the same for the YUV420 main
stream the doorbell now asks for (Y filled, each colour plane set where it touches the mask)."""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from porch.device.camera.picamera2 import MaskBurner
from porch.device.regions import PrivacyMask

POLYGONS = [
    [[0.0, 0.0], [0.3, 0.0], [0.3, 0.4], [0.0, 0.4]],
    [[0.0, 0.85], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]],
]
FRAMES = 300


def main() -> None:
    privacy = PrivacyMask(POLYGONS)
    frame = np.full((720, 1280, 4), 200, np.uint8)
    covered = privacy.mask(1280, 720) != 0

    def indexed() -> None:
        frame[covered] = 0

    def filled() -> None:
        privacy.burn(frame)

    times = {}
    for name, burn in (("boolean index (baseline)", indexed), ("fillPoly into the array", filled)):
        times[name] = timeit.timeit(burn, number=FRAMES) / FRAMES * 1000
        print(f"{name:26} {times[name]:7.3f} ms a frame")
    baseline, now = times.values()
    print(f"fillPoly: {now / baseline:.3f} of the baseline's time ({baseline / now:.0f}x less)")
    yuv = np.full((720 * 3 // 2, 1280), 200, np.uint8)
    burner = MaskBurner(privacy, "YUV420", 1280)
    burner(yuv)  # the colour planes' mask is made once per size
    planar = timeit.timeit(lambda: burner(yuv), number=FRAMES) / FRAMES * 1000
    print(f"{'YUV420, Y and colour':26} {planar:7.3f} ms a frame ({planar / now:.2f}x XBGR's fill)")


if __name__ == "__main__":
    main()
