"""``porch demo``: a Mosquitto of its own, the hub with its web app, and one simulated
doorbell, all on loopback.

The doorbell has a synthetic camera and gpiozero's mock pins. The demo creates an owner
account and prints the address and the login; the timeline page's "Press the doorbell"
button (or Enter in the terminal) presses the button through the mock pin, exactly as a
wire to GND would. Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
import webbrowser
from pathlib import Path

import click

from porch.config import CameraSettings, DeviceConfig, GpioSettings, HubConfig, WebSettings
from porch.device.agent import DoorbellAgent
from porch.hub.accounts import AccountError
from porch.hub.daemon import describe
from porch.hub.service import HubService
from porch.localbroker import BrokerError, LocalBroker, free_port, port_is_free

DEMO_USER = "owner"


def run_demo(data_dir: Path, width: int, height: int, port: int, open_browser: bool) -> int:
    data_dir = data_dir.resolve()
    logging.getLogger().setLevel(logging.WARNING)  # the demo prints its own story
    broker = LocalBroker(data_dir / "broker")
    try:
        broker.start()
    except BrokerError as exc:
        click.echo(f"porch demo: {exc}", err=True)
        return 1
    stop = threading.Event()
    hub = agent = None
    try:
        device = DeviceConfig(
            device_id="front-door",
            name="Front door",
            data_dir=data_dir / "device",
            mqtt=broker.settings,
            gpio=GpioSettings(pin_factory="mock"),
            camera=CameraSettings(source="synthetic", width=width, height=height, fps=15),
        )
        agent = DoorbellAgent(device)
        if port and not port_is_free(port):
            click.echo(f"Port {port} is taken; the demo uses a free one instead.")
            port = 0
        hub = HubService(
            HubConfig(
                data_dir=data_dir / "hub",
                mqtt=broker.settings,
                web=WebSettings(port=port or free_port()),
            ),
            on_message=lambda m: click.echo(describe(m)),
            simulated_press=agent.doorbell.simulate_press,
        )
        password = _demo_owner(hub, data_dir)
        hub.start()
        agent.start_link()
        capture = threading.Thread(target=agent.run, name="capture", daemon=True)
        capture.start()
        click.echo(
            f"\nPorch demo: open {hub.url}  and sign in as '{DEMO_USER}', password '{password}'.\n"
            f"Broker on 127.0.0.1:{broker.port}; data in {data_dir}.\n"
            "A visitor walks up every 45 s. Press the doorbell on the page, or Enter here;"
            " Ctrl-C stops.\n"
        )
        if open_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            webbrowser.open(hub.url)
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
        if hub is not None:
            hub.stop()
        broker.stop()


def _demo_owner(hub: HubService, data_dir: Path) -> str:
    """The demo's owner: created once, its password kept beside the demo's data."""
    saved = data_dir / "demo-password.txt"
    if saved.exists():
        return saved.read_text().strip()
    password = secrets.token_urlsafe(9)
    try:
        hub.accounts.add_user(DEMO_USER, password, "owner")
    except AccountError:  # an old demo database without its password file: start afresh
        hub.accounts.remove_user(DEMO_USER)
        hub.accounts.add_user(DEMO_USER, password, "owner")
    saved.write_text(password + "\n")
    saved.chmod(0o600)
    return password


def _presses(agent: DoorbellAgent, stop: threading.Event) -> None:
    for _ in sys.stdin:
        if stop.is_set():
            return
        agent.doorbell.simulate_press()
