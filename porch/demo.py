"""``porch demo``: a Mosquitto of its own, the hub and one simulated doorbell, on loopback.

The doorbell has a synthetic camera and gpiozero's mock pins; pressing Enter presses its
button (through the mock pin, exactly as a wire to GND would). Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

from porch.config import CameraSettings, DeviceConfig, GpioSettings, HubConfig
from porch.device.agent import DoorbellAgent
from porch.hub.daemon import describe, start_hub
from porch.localbroker import BrokerError, LocalBroker


def run_demo(data_dir: Path, width: int, height: int) -> int:
    data_dir = data_dir.resolve()
    logging.getLogger().setLevel(logging.WARNING)  # the demo prints its own story
    broker = LocalBroker(data_dir / "broker")
    try:
        broker.start()
    except BrokerError as exc:
        click.echo(f"porch demo: {exc}", err=True)
        return 1
    stop = threading.Event()
    ingest = agent = None
    try:
        ingest = start_hub(
            HubConfig(data_dir=data_dir / "hub", mqtt=broker.settings),
            on_message=lambda m: click.echo(describe(m)),
        )
        device = DeviceConfig(
            device_id="front-door",
            name="Front door",
            data_dir=data_dir / "device",
            mqtt=broker.settings,
            gpio=GpioSettings(pin_factory="mock"),
            camera=CameraSettings(source="synthetic", width=width, height=height, fps=15),
        )
        agent = DoorbellAgent(device)
        agent.start_link()
        capture = threading.Thread(target=agent.run, name="capture", daemon=True)
        capture.start()
        click.echo(
            f"Porch demo: broker on 127.0.0.1:{broker.port}, hub database in {data_dir / 'hub'},"
            f" clips in {data_dir / 'device' / 'clips'}.\n"
            "A visitor walks up every 45 s. Press Enter to ring the doorbell; Ctrl-C to stop.\n"
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=_presses, args=(agent, stop), daemon=True).start()
        stop.wait()
        click.echo("\nStopping…")
        agent.stop()
        capture.join(timeout=10)
        return 0
    finally:
        if agent is not None:
            agent.close()
        if ingest is not None:
            ingest.stop()
        broker.stop()


def _presses(agent: DoorbellAgent, stop: threading.Event) -> None:
    for _ in sys.stdin:
        if stop.is_set():
            return
        agent.doorbell.simulate_press()
