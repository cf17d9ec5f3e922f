"""``porch demo``: a Mosquitto of its own, the hub with its web app, and one simulated
doorbell, all on loopback, provisioned as a real home is.

On first run the demo makes the home CA, then enrolls the simulated doorbell through the
real one-time token and the pinned enrollment endpoint; the broker runs the generated TLS
listener and ACL, clips are sealed and signed, so live view, exports and `porch verify`
work as they do at home. The doorbell has a synthetic camera and gpiozero's mock pins. The
demo creates an owner account and prints the address and the login; the timeline page's
"Press the doorbell" button (or Enter in the terminal) presses the button through the mock
pin, exactly as a wire to GND would. Ctrl-C stops everything.
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

from porch.core.config import (
    CameraSettings,
    ConfigError,
    DeviceConfig,
    GpioSettings,
    HubConfig,
    MqttSettings,
    ProvisioningSettings,
    SpeakerSettings,
    WebSettings,
    load,
    to_toml,
)
from porch.device.agent import DoorbellAgent
from porch.device.enroll import enroll
from porch.hub.accounts import AccountError
from porch.hub.daemon import describe
from porch.hub.service import HubService
from porch.localbroker import BrokerError, LocalBroker, free_port, port_is_free
from porch.provisioning.broker import listener_lines, write_acl
from porch.provisioning.enrollment import Registry
from porch.provisioning.pki import Pki

DEMO_USER = "owner"


def run_demo(data_dir: Path, width: int, height: int, port: int, open_browser: bool) -> int:
    data_dir = data_dir.resolve()
    logging.getLogger().setLevel(logging.WARNING)  # the demo prints its own story
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # Mosquitto (its own user, when started as root) reads the CA here
    pki = Pki(data_dir / "pki")
    pki.init(["127.0.0.1"])
    registry = Registry(pki)
    write_acl(pki, registry.active_devices(), registry.active_integrations())
    broker_port = free_port()
    broker = LocalBroker(
        data_dir / "broker", broker_port, listener_lines(pki, broker_port, "127.0.0.1")
    )
    try:
        broker.start()
    except BrokerError as exc:
        click.echo(f"porch demo: {exc}", err=True)
        return 1
    stop = threading.Event()
    hub = agent = None
    try:
        if port and not port_is_free(port):
            click.echo(f"Port {port} is taken; the demo uses a free one instead.")
            port = 0
        presses: list[DoorbellAgent] = []
        hub_config = _with_owners_settings(data_dir, HubConfig(
            data_dir=data_dir / "hub",
            mqtt=MqttSettings(
                port=broker_port,
                tls_ca=str(pki.path("ca.crt")),
                tls_cert=str(pki.path("hub.crt")),
                tls_key=str(pki.path("hub.key")),
            ),
            web=WebSettings(port=port or free_port()),
            provisioning=ProvisioningSettings(
                pki_dir=str(pki.root),
                enroll_port=free_port(),
                broker_port=broker_port,
                # the command line (another process) has this run's broker re-read its ACL
                reload_command=["kill", "-HUP", str(broker.pid)],
            ),
        ))  # fmt: skip
        hub_toml = _write_hub_toml(hub_config, data_dir)
        hub = HubService(
            hub_config,
            on_message=lambda m: click.echo(describe(m)),
            simulated_press=lambda: presses[0].doorbell.simulate_press(),
            reload_broker=broker.reload,
        )
        password = _demo_owner(hub, data_dir)
        hub.start()
        device = _enrolled_doorbell(hub, data_dir, broker_port, width, height)
        agent = DoorbellAgent(device)
        presses.append(agent)
        agent.start_link()
        capture = threading.Thread(target=agent.run, name="capture", daemon=True)
        capture.start()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before saying it is ready
            signal.signal(sig, lambda *_: stop.set())
        click.echo(
            f"\nPorch demo: open {hub.url}  and sign in as '{DEMO_USER}', password '{password}'.\n"
            f"Broker (mutual TLS) on 127.0.0.1:{broker_port}; data in {data_dir}.\n"
            f"The hub's config: {hub_toml} (for 'porch hub adduser', 'porch audit verify',\n"
            f"'porch provision home-assistant' … --config {hub_toml}); the home CA, for\n"
            f"'porch verify BUNDLE.zip --ca …': {pki.path('ca.crt')}\n"
            "A visitor walks up every 45 s. Press the doorbell on the page, or Enter here.\n"
            "Requests → Invite a requester, to try a footage request and a signed export.\n"
            "Ctrl-C stops.\n"
        )
        if open_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            webbrowser.open(hub.url)
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


RUN_SPECIFIC = ("data_dir", "mqtt", "provisioning")
"""What each demo run sets in hub.toml (its ports and files); the rest is the owner's."""


def _with_owners_settings(data_dir: Path, run: HubConfig) -> HubConfig:
    """This run's settings over what the owner put in the demo's hub.toml before (say
    ``[home_assistant] snapshots = true``): an edit survives the next ``make demo``."""
    path = data_dir / "hub.toml"
    if not path.exists():
        return run
    try:
        saved = load(HubConfig, path)
    except ConfigError as exc:
        click.echo(f"porch demo: {path} is not valid ({exc}): written anew")
        return run
    update = {key: getattr(run, key) for key in RUN_SPECIFIC}
    update["web"] = saved.web.model_copy(update={"port": run.web.port})
    return saved.model_copy(update=update)


def _write_hub_toml(config: HubConfig, data_dir: Path) -> Path:
    """The demo hub's configuration as a file, so the command line works against the demo
    (its ports are this run's; what else the owner changed in it stays)."""
    path = data_dir / "hub.toml"
    heading = (
        "# Written by 'porch demo' at each run: its ports and files change; your other\n"
        "# settings (e.g. [home_assistant] snapshots) are kept.\n"
    )
    path.write_text(heading + to_toml(config.model_dump(mode="json")))
    return path


def _enrolled_doorbell(
    hub: HubService, data_dir: Path, broker_port: int, width: int, height: int
) -> DeviceConfig:
    """The simulated doorbell, enrolled once through the real token and endpoint."""
    config_path = data_dir / "device.toml"
    assert hub.authority is not None
    if not config_path.exists() or "front-door" not in hub.authority.registry.active_devices():
        token = hub.authority.new_token("front-door")
        enroll(token.encode(), data_dir / "device-keys", config_path, force=True)
        click.echo("Enrolled the simulated doorbell 'front-door' with the home CA.")
    enrolled = load(DeviceConfig, config_path)
    return enrolled.model_copy(
        update={
            "name": "Front door",
            "data_dir": data_dir / "device",
            "mqtt": enrolled.mqtt.model_copy(update={"port": broker_port}),
            "gpio": GpioSettings(pin_factory="mock", chime_active_high=False),
            "camera": CameraSettings(source="synthetic", width=width, height=height, fps=15),
            # No loudspeaker here: what the live page's Talk sends is written to talk.wav.
            "speaker": SpeakerSettings(output="wav"),
        }
    )


def _demo_owner(hub: HubService, data_dir: Path) -> str:
    """The demo's owner: created once, its password kept beside the demo's data."""
    saved = data_dir / "demo-password.txt"
    if saved.exists():
        return saved.read_text().strip()
    password = secrets.token_urlsafe(9)
    try:
        hub.accounts.add_user(DEMO_USER, password, "owner")
    except AccountError:  # an old demo database without its password file: a new password
        hub.accounts.change_password(DEMO_USER, password)
    saved.write_text(password + "\n")
    saved.chmod(0o600)
    return password


def _presses(agent: DoorbellAgent, stop: threading.Event) -> None:
    for _ in sys.stdin:
        if stop.is_set():
            return
        agent.doorbell.simulate_press()


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo keeps its broker state, database and clips.",
)
@click.option("--width", default=640, show_default=True, help="Simulated camera width, px.")
@click.option("--height", default=360, show_default=True, help="Simulated camera height, px.")
@click.option("--port", default=8080, show_default=True, help="Web app port (0: any free one).")
@click.option("--browser/--no-browser", default=True, help="Open the page in a browser.")
def demo(data_dir: Path, width: int, height: int, port: int, browser: bool) -> None:
    """The hub and one simulated doorbell with a Mosquitto of their own, on this machine."""
    sys.exit(run_demo(data_dir, width, height, port, browser))
