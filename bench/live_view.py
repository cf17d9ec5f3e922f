"""Live view in headless Chromium: time to first frame, glass-to-glass latency, and the
doorbell's CPU with 0, 1 and 3 viewers.

    .venv/bin/python bench/live_view.py [--runs 20] [--window 20]

The doorbell runs as its own process (``porch device run``, synthetic camera at 1280×720,
15 fps, with the wall clock drawn into each frame as a code); the hub, the broker and
Chromium run beside it on this machine, all on its own addresses.

* Time to first frame: from the click on "Watch live" to the first frame presented
  (``requestVideoFrameCallback``), p50 over ``--runs`` runs, each starting with the doorbell
  idle. Baseline: the same click to the live page's DOMContentLoaded (navigation alone).
* Glass-to-glass: the page reads the clock code back from each presented frame and compares
  it with its own clock. Baseline: capture to the hub's receipt of the same frame (encode +
  MQTT), read by decoding the stream beside the hub with PyAV.
* Device CPU seconds per minute of streaming (utime + stime from /proc), with 0 (the
  pre-roll encoder alone), 1 and 3 viewers.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

import av
from playwright.sync_api import sync_playwright
from press_latency import percentile

from porch.core.wire import LivePacket
from porch.device.camera.synthetic import CLOCK_BITS, clock_block
from porch.localbroker import LocalBroker
from tests.support.browser import launch_chromium, sign_in, wait_in_page
from tests.support.common import wait_for
from tests.support.device import start_device, write_device_toml
from tests.support.hub import PASSWORD, start_hub

WIDTH, HEIGHT, FPS = 1280, 720, 15
MODULO = 1 << CLOCK_BITS
READ_CLOCK = """(bits) => {
  const v = document.querySelector('video#live');
  const side = Math.floor(v.videoWidth / bits);
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth; canvas.height = side;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  window.g2g = [];
  const tick = (now, meta) => {
    ctx.drawImage(v, 0, 0, v.videoWidth, side, 0, 0, v.videoWidth, side);
    const px = ctx.getImageData(0, 0, canvas.width, side).data;
    let code = 0;
    for (let b = 0; b < bits; b++) {
      const i = (Math.floor(side / 2) * canvas.width + Math.floor(b * side + side / 2)) * 4;
      code = code * 2 + (px[i] > 128 ? 1 : 0);
    }
    const shown = Math.round(performance.timeOrigin + (meta.expectedDisplayTime || now));
    const m = 2 ** bits;
    window.g2g.push((((shown % m) - code) % m + m) % m);
    v.requestVideoFrameCallback(tick);
  };
  v.requestVideoFrameCallback(tick);
}"""


def read_clock(gray) -> int:
    side = clock_block(gray.shape[1])
    code = 0
    for bit in range(CLOCK_BITS):
        code = code * 2 + int(gray[side // 2, bit * side + side // 2] > 128)
    return code


class HubSideClock:
    """Decodes the relayed stream beside the hub and reads each frame's clock at arrival."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self._queue: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        self._decoder = av.CodecContext.create("h264", "r")
        threading.Thread(target=self._run, daemon=True).start()

    def feed(self, packet: LivePacket) -> None:
        self._queue.put((time.time(), packet.data))

    def _run(self) -> None:
        while True:
            arrived, data = self._queue.get()
            try:
                frames = self._decoder.decode(av.Packet(data))
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                code = read_clock(frame.to_ndarray(format="gray"))
                self.latencies.append((round(arrived * 1000) % MODULO - code) % MODULO)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--window", type=float, default=20.0, help="CPU window per case, s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, LocalBroker(Path(tmp_name) / "b") as broker:
        tmp = Path(tmp_name)
        hub = start_hub(tmp / "hub", broker)
        hub.accounts.add_user("owner", PASSWORD, "owner")
        hub_clock = HubSideClock()
        relay_feed = hub.live.feed
        hub.ingest.on_live = lambda p: (relay_feed(p), hub_clock.feed(p))
        config = tmp / "device.toml"
        camera = {"width": WIDTH, "height": HEIGHT, "fps": FPS, "clock": True}
        write_device_toml(config, tmp / "device", broker.port, camera=camera,
                          motion={"enabled": False})  # fmt: skip
        device = start_device(config)
        try:
            wait_for(lambda: [d for d in hub.devices() if d["state"] == "online"])
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                report(hub, device.pid, browser, args)
                browser.close()
        finally:
            device.kill()
            device.wait()
            hub.stop()
        print_latency("capture → hub (baseline)", hub_clock.latencies[FPS:])


def report(hub, pid: int, browser, args) -> None:
    page = browser.new_page()
    sign_in(page, hub.url, "owner")
    first, navigation = [], []
    for _ in range(args.runs):
        page.goto(hub.url + "/devices")
        wait_for(lambda: not hub.live.viewers("front-door"), what="the last viewer to leave")
        time.sleep(0.5)  # the device is idle again
        clicked = time.time() * 1000
        page.click("a.watch")
        wait_in_page(page, "window.porchLive && window.porchLive.firstFrameAt", timeout=30)
        first.append(page.evaluate("porchLive.firstFrameAt") - clicked)
        loaded = page.evaluate(
            "performance.timeOrigin"
            " + performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
        )
        navigation.append(loaded - clicked)
    print(f"{args.runs} runs, 1280x720 at {FPS} fps, hub, broker, device and Chromium here")
    f50, n50 = percentile(first, 50), percentile(navigation, 50)
    print(f"  click → first frame      p50 {f50:7.1f} ms  max {max(first):7.1f} ms")
    print(f"  click → page loaded      p50 {n50:7.1f} ms  (baseline)")
    print(f"  ratio first frame / page load: {f50 / n50:.1f}x")

    page.evaluate(READ_CLOCK, CLOCK_BITS)
    page.wait_for_timeout(10_000)
    print_latency("glass-to-glass", page.evaluate("window.g2g")[FPS:])
    page.goto(hub.url + "/devices")
    wait_for(lambda: not hub.live.viewers("front-door"))

    idle = cpu_per_minute(pid, args.window)
    print(f"  device CPU, 0 viewers    {idle:6.1f} s/min (baseline: pre-roll encoder alone)")
    for viewers in (1, 3):
        pages = [browser.new_page() for _ in range(viewers)]
        for p in pages:
            sign_in(p, hub.url, "owner")
            p.goto(hub.url + "/live/front-door")
            wait_in_page(p, "window.porchLive && window.porchLive.firstFrameAt")
        busy = cpu_per_minute(pid, args.window)
        print(f"  device CPU, {viewers} viewer(s)  {busy:6.1f} s/min  ({busy / idle:.2f}x idle)")
        for p in pages:
            p.close()
        wait_for(lambda: not hub.live.viewers("front-door"))


def cpu_per_minute(pid: int, window: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(window)
    return (cpu_seconds(pid) - before) * 60 / window


def print_latency(label: str, samples: list[float]) -> None:
    samples = [s for s in samples if s < 10_000]
    if not samples:
        print(f"  {label}: no samples")
        return
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    print(f"  {label:24s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  ({len(samples)} frames)")


if __name__ == "__main__":
    main()
