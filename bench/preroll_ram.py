"""Peak RAM of the pre-roll buffer: 10 s of 1280×720 H.264 at 15 fps from the synthetic porch,
against the raw frames the same 10 s would take (the baseline a frame buffer would need).

    .venv/bin/python bench/preroll_ram.py [--seconds 10] [--bitrate 1500]

The encoder is PyAV's libx264 with Porch's settings (the Pi's hardware encoder gives
similar sizes at the same bitrate). The buffer is measured twice: the payload bytes it counts,
and the Python heap at its peak (tracemalloc), which includes every object's overhead.
"""

from __future__ import annotations

import argparse
import tracemalloc

from porch.core.config import EncoderSettings
from porch.device.camera.synthetic import SyntheticScene
from porch.device.encoder import H264Encoder
from porch.device.preroll import PrerollBuffer

WIDTH, HEIGHT, FPS = 1280, 720, 15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bitrate", type=int, default=EncoderSettings().bitrate_kbps)
    args = parser.parse_args()
    scene = SyntheticScene.default(WIDTH, HEIGHT, seed=1)
    encoder = H264Encoder(WIDTH, HEIGHT, FPS, EncoderSettings(bitrate_kbps=args.bitrate))
    buffer = PrerollBuffer(args.seconds, max_bytes=64 * 1024 * 1024)
    frames = [scene.render(i / FPS) for i in range(int(3 * args.seconds * FPS))]
    # Through the first visitor (10-27 s), the busiest stretch of the scene.
    tracemalloc.start()
    peak_bytes = 0
    peak_duration = 0.0
    for i, image in enumerate(frames):
        for packet in encoder.encode(image, i / FPS):
            buffer.add(packet)
        if buffer.bytes > peak_bytes:
            peak_bytes, peak_duration = buffer.bytes, buffer.duration()
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    raw = WIDTH * HEIGHT * 3 // 2 * FPS * args.seconds  # YUV 4:2:0 frames
    print(f"pre-roll of {args.seconds:g} s at {WIDTH}×{HEIGHT}, {FPS} fps, {args.bitrate} kbit/s")
    print(f"peak payload {peak_bytes / 1e6:6.2f} MB (holding {peak_duration:.2f} s, whole GOPs)")
    print(f"peak Python heap during the run {heap_peak / 1e6:6.2f} MB (buffer + encoder output)")
    print(
        f"raw YUV frames for the same time {raw / 1e6:6.1f} MB;"
        f" ratio {raw / peak_bytes:.0f}× smaller"
    )


if __name__ == "__main__":
    main()
