"""A real Home Assistant Core for the tests: the one scripts/home-assistant-root installs in a
Debian 13 root, started with bubblewrap (that root read-only, its configuration in the test's
folder), onboarded and given Porch's identity through its own REST API, step by step as its
pages do. The test runs it in a network namespace that has only loopback
(scripts/loopback-only), so whatever Home Assistant tries to reach, it reaches nothing else.

Also Home Assistant's view of the broker without Home Assistant: the identity the owner
downloads for it, and mosquitto_sub with that identity (:class:`Listener`)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from websockets.sync.client import connect as websocket

from porch.localbroker import free_port
from tests.support.common import TIMEOUT, wait_for

if TYPE_CHECKING:
    from tests.support.hub import Home

STARTUP_S = 180.0
"""Home Assistant's first start (its database, the frontend) on 2 busy cores."""

CONFIGURATION = """\
homeassistant:
  name: Porch test home
  unit_system: metric
  time_zone: UTC
  country: DE
  language: en
# No default_config: no zeroconf, ssdp, dhcp, cloud or analytics. The frontend brings what a
# person's browser uses: onboarding, config flows, file uploads, the websocket API.
frontend:
config:
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: debug
"""


def home_assistant_root() -> Path:
    """The root scripts/home-assistant-root made (``make test`` passes it on)."""
    root = os.environ.get("PORCH_HA_ROOT")
    assert root and (Path(root) / ".complete").exists(), (
        "PORCH_HA_ROOT must name the root scripts/home-assistant-root makes "
        "(make test-home-assistant does both)"
    )
    return Path(root)


def only_loopback() -> bool:
    """This process's network namespace has no interface but ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


class RealHomeAssistant:
    """One Home Assistant Core process with its configuration in ``folder``."""

    def __init__(self, root: Path, folder: Path):
        self.root = root
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))

    @property
    def log(self) -> str:
        path = self.folder / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        command = ["bwrap", "--ro-bind", str(self.root), "/", "--proc", "/proc", "--dev", "/dev",
                   "--tmpfs", "/tmp", "--bind", str(self.folder), "/config",
                   "--die-with-parent", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                   "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
                   "/opt/ha/bin/hass", "--config", "/config"]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "stderr.log", "ab"),  # noqa: SIM115 (the child keeps it)
            start_new_session=True,
        )
        wait_for(self._answers, timeout=STARTUP_S, what="Home Assistant to answer")

    def _answers(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"Home Assistant exited:\n{self.log[-3000:]}"
        try:
            return httpx.get(self.url + "/api/onboarding", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # Home Assistant shuts down cleanly
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    # Onboarding and the REST API, as Home Assistant's own pages use them.

    def onboard(self, username: str = "owner", password: str = "correct horse battery") -> None:
        """Make the first user (the onboarding page's first step) and sign in as it."""
        client_id = self.url + "/"
        made = httpx.post(self.url + "/api/onboarding/users", timeout=60, json={
            "client_id": client_id, "name": "Owner", "username": username,
            "password": password, "language": "en"})  # fmt: skip
        made.raise_for_status()
        token = httpx.post(self.url + "/auth/token", timeout=60, data={
            "grant_type": "authorization_code", "code": made.json()["auth_code"],
            "client_id": client_id})  # fmt: skip
        token.raise_for_status()
        self.token = token.json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        answer = httpx.request(method, self.url + path, headers=self.headers, timeout=60, **kw)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def upload(self, path: Path) -> str:
        """A file given to a config flow's upload field; its id."""
        with path.open("rb") as file:
            return self.request("POST", "/api/file_upload",
                                files={"file": (path.name, file)})["file_id"]  # fmt: skip

    def state(self, entity_id: str) -> dict | None:
        answer = httpx.get(f"{self.url}/api/states/{entity_id}", headers=self.headers, timeout=30)
        return answer.json() if answer.status_code == 200 else None

    def states(self) -> dict[str, dict]:
        return {state["entity_id"]: state for state in self.request("GET", "/api/states")}

    def websocket(self, command: dict) -> Any:
        """One command on the websocket API (the device registry is only there)."""
        with websocket(self.url.replace("http", "ws") + "/api/websocket", open_timeout=30) as ws:
            assert json.loads(ws.recv(30))["type"] == "auth_required"
            ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            assert json.loads(ws.recv(30))["type"] == "auth_ok"
            ws.send(json.dumps({"id": 1, **command}))
            answer = json.loads(ws.recv(60))
        assert answer["success"], answer
        return answer["result"]

    def devices(self) -> list[dict]:
        return self.websocket({"type": "config/device_registry/list"})

    def add_mqtt(self, broker: str, port: int, identity: Path) -> dict:
        """Settings → Devices & services → Add integration → MQTT, as docs/home-assistant.md
        says, with the files of the zip the owner downloaded (``identity``, unpacked)."""
        flow = self.request("POST", "/api/config/config_entries/flow",
                            json={"handler": "mqtt", "show_advanced_options": True})  # fmt: skip
        assert flow["step_id"] == "broker", flow
        fields = [field["name"] for field in flow["data_schema"]]
        assert "advanced_options" in fields, fields  # profile's Advanced mode is on

        def step(answers: dict) -> dict:
            return self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                                json=answers)  # fmt: skip

        # 1. Broker and port; "Advanced options" switched on, Submit.
        flow = step({"broker": broker, "port": port, "advanced_options": True})
        fields = [field["name"] for field in flow["data_schema"]]
        assert {"set_client_cert", "set_ca_cert", "protocol"} <= set(fields), flow
        # 2. "Use a client certificate" on, "Broker certificate validation" Custom, MQTT 5; Next.
        basics = {"broker": broker, "port": port, "set_client_cert": True,
                  "set_ca_cert": "custom", "protocol": "5"}  # fmt: skip
        flow = step(basics)
        fields = [field["name"] for field in flow["data_schema"]]
        assert {"certificate", "client_cert", "client_key"} <= set(fields), flow
        # 3. The three files; Submit.
        flow = step({**basics, "certificate": self.upload(identity / "ca.crt"),
                     "client_cert": self.upload(identity / "client.crt"),
                     "client_key": self.upload(identity / "client.key")})  # fmt: skip
        assert flow["type"] == "create_entry", flow
        return flow


def ha_identity(home: Home) -> Path:
    """The zip the owner downloads for Home Assistant, unpacked."""
    folder = home.root / "home-assistant"
    with zipfile.ZipFile(io.BytesIO(home.authority.new_home_assistant())) as archive:
        archive.extractall(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt", "ca.crt", "client.crt", "client.key"]  # fmt: skip
    return folder


def client_args(home: Home, keys: Path, cert: str = "client.crt", key: str = "client.key"):
    return ["-h", "127.0.0.1", "-p", str(home.broker.port), "-V", "mqttv5",
            "--cafile", str(home.pki.path("ca.crt")), "--cert", str(keys / cert),
            "--key", str(keys / key)]  # fmt: skip


class Listener:
    """mosquitto_sub as Home Assistant, collecting (topic, payload) lines on a thread."""

    def __init__(self, home: Home, keys: Path, *topics: str):
        command = ["mosquitto_sub", *client_args(home, keys), "-v", "-F", "%t\t%p"]
        for topic in topics:
            command += ["-t", topic]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                        errors="replace")  # fmt: skip
        self.lines: list[tuple[str, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            topic, _, payload = line.rstrip("\n").partition("\t")
            self.lines.append((topic, payload))

    def on(self, topic: str) -> list[str]:
        return [payload for t, payload in self.lines if t == topic]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(TIMEOUT)
