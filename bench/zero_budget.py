"""The doorbell agent's own cost as a Pi runs it, for the Pi Zero 2 W's budget: resident
memory and CPU with the camera's part taken away (on a Pi, libcamera captures and the
hardware encoder encodes; here a replay hands the agent what picamera2 would: a 320×180
lores picture per frame and 1280×720 H.264 packets at about 2 Mbit/s).

    .venv/bin/python bench/zero_budget.py [--seconds 60]

The agent runs in a process of its own with the default settings (motion on, 5 s of
pre-roll, clips sealed and signed), connected to a Mosquitto on loopback; the synthetic
porch has a visitor every 45 s, so clips are recorded and finished meanwhile. Baseline in
the same run: a Python process that only imports what the agent maps in (numpy, OpenCV,
PyAV, paho-mqtt, cryptography, gpiozero): the difference is the agent's own. The replay's
own CPU (drawing the lores picture) is measured on its thread and taken off. The Zero's
figure is this CPU time times a stated factor (its Cortex-A53 at 1 GHz against this core).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZERO_FACTOR = 10.0
"""How much slower a Pi Zero 2 W's core (Cortex-A53, 1 GHz, no AES/SHA instructions) runs
this Python/numpy/OpenCV work than one core here: an estimate, from public single-thread
benchmarks (a Pi 4's A72 at 1.5-1.8 GHz is about 4-5× slower than a desktop core, an A53
at 1 GHz about twice slower again)."""
LIBRARIES = "import numpy, cv2, av, paho.mqtt.client, cryptography.hazmat.primitives, gpiozero"


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def child(seconds: float, port: int, data: Path) -> None:
    """Run the agent on a replay source; print one JSON line of its figures."""
    import os
    import threading

    import cv2
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    from porch.core.config import DeviceConfig, GpioSettings, MqttSettings
    from porch.device.agent import DoorbellAgent
    from porch.device.camera import Capture, EncodedPacket
    from porch.device.camera.synthetic import SyntheticScene

    # Two GOPs, encoded by the parent (an x264 encoder here would weigh on the figures).
    gop_loop = [
        EncodedPacket(bytes.fromhex(data_hex), 0.0, keyframe)
        for data_hex, keyframe in json.loads((data / "packets.json").read_text())
    ]
    key = data / "sign.key"
    from cryptography.hazmat.primitives import serialization

    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    hub = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    config = DeviceConfig.model_validate(
        {
            "device_id": "front-door",
            "data_dir": str(data / "device"),
            "mqtt": MqttSettings(port=port),
            "gpio": GpioSettings(pin_factory="mock", chime_active_high=False),
            "clips": {"seal_key": hub, "sign_key": str(key)},
        }
    )
    replay_cpu = [0.0]

    class Replay:
        """What picamera2 hands the agent: lores pictures and encoded packets, at 15 fps."""

        width, height = 1280, 720

        def __init__(self) -> None:
            self.scene = SyntheticScene.default(320, 180, 1)

        def captures(self):
            start = time.monotonic()
            index = 0
            while True:
                ts = index / 15
                delay = start + ts - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                began = time.thread_time()
                image = self.scene.render(ts)
                packet = gop_loop[index % len(gop_loop)]
                packets = [EncodedPacket(packet.data, ts, packet.keyframe)]
                replay_cpu[0] += time.thread_time() - began
                yield Capture(ts, image, packets, None)
                index += 1

        def request_keyframe(self) -> None: ...

        def set_night(self, night: bool) -> None: ...

        def close(self) -> None: ...

    cv2.setNumThreads(1)
    agent = DoorbellAgent(config, Replay())  # type: ignore[arg-type]
    agent.start_link()
    thread = threading.Thread(target=agent.run, name="capture", daemon=True)
    thread.start()
    time.sleep(20)  # warm-up: the pre-roll fills, the first visitor comes
    times, wall, replay = os.times(), time.monotonic(), replay_cpu[0]
    samples = []
    end = wall + seconds
    while time.monotonic() < end:
        samples.append(rss_mb(os.getpid())[0])
        time.sleep(1)
    after = os.times()
    cpu = after.user + after.system - times.user - times.system - (replay_cpu[0] - replay)
    elapsed = time.monotonic() - wall
    figures = {
        "rss_median": sorted(samples)[len(samples) // 2],
        "rss_peak": rss_mb(os.getpid())[1],
        "cpu_share": cpu / elapsed,
        "clips": agent.emitted["clip"],
        "frames": agent.frames,
    }
    agent.stop()
    thread.join(30)
    agent.close()
    print(json.dumps(figures), flush=True)


def baseline_rss() -> float:
    """RSS of a Python that imported the agent's libraries and nothing else, MB."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"{LIBRARIES}; import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        time.sleep(5)
        return rss_mb(process.pid)[0]
    finally:
        process.communicate(b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--child", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.seconds, int(args.child[0]), Path(args.child[1]))
        return
    sys.path.insert(0, str(ROOT))
    from porch.localbroker import LocalBroker

    sys.path.insert(0, str(ROOT / "bench"))
    from seal_cost import encoded

    base = baseline_rss()
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        packets = [(p.data.hex(), p.keyframe) for p in encoded(2.0, 2000)]
        (Path(tmp) / "packets.json").write_text(json.dumps(packets))
        run = subprocess.run(
            [sys.executable, __file__, "--seconds", str(args.seconds), "--child",
             str(broker.port), tmp],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    own = figures["rss_median"] - base
    print(f"Agent on a Pi-like replay, 1280×720 at 15 fps, {args.seconds:g} s after 20 s warm-up")
    print(f"  libraries alone (baseline)  RSS {base:6.1f} MB")
    print(
        f"  agent                       RSS {figures['rss_median']:6.1f} MB median,"
        f" {figures['rss_peak']:.1f} MB peak ({figures['rss_median'] / base:.2f}× the"
        f" baseline; its own {own:.1f} MB)"
    )
    print(
        f"  CPU: {figures['cpu_share'] * 100:.2f} % of one core here over"
        f" {figures['frames']} frames and {figures['clips']} clips; a Pi Zero 2 W at"
        f" {ZERO_FACTOR:g}× slower: about {figures['cpu_share'] * ZERO_FACTOR * 100:.0f} % of"
        " one of its four cores"
    )


if __name__ == "__main__":
    main()
