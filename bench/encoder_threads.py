"""How many frames a software H.264 encoder holds back before its first packet, by its
number of frame threads: what a Pi 5 (picamera2's libav encoder, default: as many threads
as cores) adds to live view's latency. libx264 through PyAV on the synthetic porch at
1280×720, 15 fps, zerolatency, as the doorbell's own encoder and picamera2's run it; the
baseline in the same run is the encoder's default (0: it chooses, one per core).

Prints, per thread count: frames before the first packet, that as milliseconds at 15 fps,
and the encode time per frame (relative to the default's)."""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from porch.device.camera.synthetic import SyntheticScene

WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 15, 90


def run(threads: int, pictures: list[av.VideoFrame]) -> tuple[int, float]:
    """(frames encoded before the first packet came out, seconds of encoding per frame)."""
    stream = av.open("/dev/null", "w", format="h264").add_stream("libx264", rate=Fraction(FPS))
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.codec_context.thread_count = threads
    stream.codec_context.thread_type = av.codec.context.ThreadType.FRAME
    stream.codec_context.options = {"tune": "zerolatency", "profile": "baseline"}
    first, spent = None, 0.0
    for index, picture in enumerate(pictures):
        picture.pts = index
        started = time.perf_counter()
        packets = stream.encode(picture)
        spent += time.perf_counter() - started
        if packets and first is None:
            first = index
    return (first if first is not None else FRAMES), spent / FRAMES


def main() -> None:
    scene = SyntheticScene.default(WIDTH, HEIGHT, 1)
    pictures = [
        av.VideoFrame.from_ndarray(scene.render(i / FPS), format="bgr24").reformat(format="yuv420p")
        for i in range(FRAMES)
    ]
    base_delay, base_time = run(0, pictures)
    print(f"{WIDTH}x{HEIGHT} at {FPS} fps, libx264 zerolatency, {FRAMES} synthetic frames")
    print("threads  frames held  = ms at 15 fps  encode ms/frame  vs default")
    for threads in (0, 4, 2, 1):
        delay, spent = (base_delay, base_time) if threads == 0 else run(threads, pictures)
        print(f"{threads or 'auto':>7}  {delay:>11}  {delay * 1000 / FPS:>14.0f}"
              f"  {spent * 1000:>15.1f}  {spent / base_time:>9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
