"""Hub ingest with 100 simulated devices publishing ring and motion events through Mosquitto:
sustained events per second with nothing lost, against a bare subscriber that only counts
the same messages (no validation, no database) in the same run.

    .venv/bin/python bench/ingest_throughput.py [--devices 100] [--events 200]

The devices are 100 paho clients (each its own MQTT connection and client id) in a separate
process, publishing at QoS 1 as fast as the broker takes them. The clock runs from the first
publish to the moment the hub's database holds every event. Target (issue 3): ≥ 1000/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from porch.core.config import MqttSettings
from porch.core.mqtt_client import make_client
from porch.core.wire import HUB_SUBSCRIPTION, MotionEvent, RingEvent, new_id, topic_for
from porch.localbroker import LocalBroker
from tests.support.common import wait_for
from tests.support.hub import start_hub


def devices(port: int, count: int, events: int, started: multiprocessing.Event) -> None:
    """Runs in its own process: ``count`` devices, ``events`` each, QoS 1."""
    settings = MqttSettings(port=port)
    clients = []
    for n in range(count):
        client = make_client(f"bench-device-{n}", settings)
        client.connect(settings.host, settings.port)
        client.loop_start()
        clients.append(client)
    messages = []
    for n in range(count):
        device = f"bench-{n:03d}"
        for i in range(events):
            ts = time.time()
            if i % 2:
                m = MotionEvent(device_id=device, event_id=new_id(), ts=ts, active=True, area=0.1)
            else:
                m = RingEvent(device_id=device, event_id=new_id(), ts=ts)
            messages.append((clients[n], topic_for(m), m.to_bytes()))
    started.set()
    infos = [client.publish(topic, payload, qos=1) for client, topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    for client in clients:
        client.disconnect()
        client.loop_stop()


def run_devices(port: int, count: int, events: int) -> tuple[multiprocessing.Process, float]:
    started = multiprocessing.Event()
    process = multiprocessing.Process(target=devices, args=(port, count, events, started))
    process.start()
    started.wait(120)
    return process, time.monotonic()


def bare_subscriber(broker: LocalBroker, total: int, count: int, events: int) -> float:
    received = 0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(*_):
        nonlocal received
        received += 1
        if received == total:
            done.set()

    client = make_client("bench-bare", broker.settings)
    client.on_connect = lambda c, *a: c.subscribe(HUB_SUBSCRIPTION, qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    client.connect(broker.settings.host, broker.settings.port)
    client.loop_start()
    subscribed.wait(30)
    process, start = run_devices(broker.port, count, events)
    done.wait(600)
    elapsed = time.monotonic() - start
    process.join()
    client.disconnect()
    client.loop_stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--events", type=int, default=200, help="events per device")
    args = parser.parse_args()
    total = args.devices * args.events
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        bare = bare_subscriber(broker, total, args.devices, args.events)
        hub = start_hub(Path(tmp) / "hub", broker)
        process, start = run_devices(broker.port, args.devices, args.events)
        wait_for(lambda: hub.ingest.db.count_events() >= total, timeout=600)
        elapsed = time.monotonic() - start
        process.join()
        stored = hub.ingest.db.count_events()
        devices_seen = len(hub.web_db.devices())
        hub.stop()
    print(f"{args.devices} devices × {args.events} events = {total} QoS 1 messages via Mosquitto")
    print(f"bare subscriber (count only)  {total / bare:8.0f} events/s")
    print(
        f"hub ingest (validate + store) {total / elapsed:8.0f} events/s;"
        f" stored {stored} of {total}, from {devices_seen} devices, rejected"
        f" {hub.ingest.rejected}"
    )
    print(f"ratio {bare / elapsed:.2f}× the bare subscriber's rate")


if __name__ == "__main__":
    main()
