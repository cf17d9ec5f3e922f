"""Press → hub database latency through a real Mosquitto on loopback, with a bare MQTT round
trip through the same broker in the same run as the baseline.

    .venv/bin/python bench/press_latency.py [--presses 1000]

Porch's path: the mock pin goes low → gpiozero callback → chime → RingEvent fsync'd into the
outbox → QoS 1 publish → broker → hub ingest validates → SQLite insert. The clock stops when
the hub's ingest has committed the row. Baseline: a paho client publishes QoS 1 and another
receives it, nothing else. Target (issue 2): p99 < 20 ms on one machine.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from porch.core.config import CameraSettings, GpioSettings
from porch.core.mqtt_client import make_client
from porch.core.wire import RingEvent
from porch.localbroker import LocalBroker
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent
from tests.support.hub import start_hub


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, ms: list[float], width: int = 28) -> str:
    return (
        f"{name:<{width}} p50 {percentile(ms, 50):6.2f} ms   p99 {percentile(ms, 99):6.2f} ms"
        f"   max {max(ms):6.2f} ms   mean {statistics.fmean(ms):6.2f} ms"
    )


def porch_presses(tmp: Path, broker: LocalBroker, presses: int) -> list[float]:
    arrived: queue.SimpleQueue[float] = queue.SimpleQueue()

    def on_message(message) -> None:
        if isinstance(message, RingEvent):
            arrived.put(time.perf_counter())

    service = start_hub(tmp / "hub", broker, on_message=on_message)
    Device.pin_factory = MockFactory()
    config = device_config(
        tmp,
        broker,
        gpio=GpioSettings(pin_factory="mock", bounce_s=0, chime_s=0.001, chime_active_high=False),
        camera=CameraSettings(source="synthetic", width=160, height=120, fps=5),
    )
    latencies = []
    with run_agent(config) as agent:
        wait_for(agent.link.connected.is_set)
        pin = agent.doorbell.button.pin
        for _ in range(presses):
            start = time.perf_counter()
            pin.drive_low()
            end = arrived.get(timeout=30)
            latencies.append((end - start) * 1000)
            pin.drive_high()
    service.stop()
    return latencies


def bare_round_trips(broker: LocalBroker, count: int) -> list[float]:
    received: queue.SimpleQueue[float] = queue.SimpleQueue()
    subscribed = threading.Event()
    sub = make_client("bench-sub", broker.settings)
    sub.on_connect = lambda c, *a: c.subscribe("bench/x", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda *a: received.put(time.perf_counter())
    sub.connect(broker.settings.host, broker.settings.port)
    sub.loop_start()
    pub = make_client("bench-pub", broker.settings)
    pub.connect(broker.settings.host, broker.settings.port)
    pub.loop_start()
    wait_for(subscribed.is_set)
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        pub.publish("bench/x", b"x" * 120, qos=1)
        latencies.append((received.get(timeout=30) - start) * 1000)
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        bare = bare_round_trips(broker, args.presses)
        porch = porch_presses(Path(tmp), broker, args.presses)
    print(f"{args.presses} presses through Mosquitto on 127.0.0.1")
    print(summary("bare MQTT QoS 1 round trip", bare))
    print(summary("press → hub database", porch))
    print(
        f"ratio p50 {percentile(porch, 50) / percentile(bare, 50):.1f}×,"
        f" p99 {percentile(porch, 99) / percentile(bare, 99):.1f}× the bare round trip"
    )


if __name__ == "__main__":
    main()
