"""Provisioning end to end against a real Mosquitto running the generated TLS config: the home
CA, one-time enrollment, per-device ACLs, revocation, and every way a token is refused."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from porch.cli import main
from porch.core.config import (
    HubConfig,
    WebSettings,
)
from porch.core.enrollment import Token
from porch.core.wire import LiveRequest
from porch.hub.service import HubService
from porch.localbroker import free_port
from porch.provisioning.pki import Pki
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import agent_from
from tests.support.hub import PASSWORD, Home, api, device_enroll

pytestmark = pytest.mark.skipif(
    not shutil.which("mosquitto_pub"), reason="mosquitto-clients is not installed"
)


def mosquitto(tool: str, home: Home, name: str | None, *args: str, pki: Pki | None = None):
    """mosquitto_pub or mosquitto_sub as device ``name`` (None: no client certificate)."""
    command = [tool, "-h", "127.0.0.1", "-p", str(home.broker.port), "-V", "mqttv5",
               "--cafile", str(home.pki.path("ca.crt"))]  # fmt: skip
    if name is not None:
        keys = home.root / name / "keys"
        command += ["--cert", str(keys / "device.crt"), "--key", str(keys / "device.key")]
    elif pki is not None:  # a certificate from another CA
        command += ["--cert", str(pki.path("hub.crt")), "--key", str(pki.path("hub.key"))]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=TIMEOUT)


def test_init_is_private_idempotent_and_refuses_to_overwrite(world):
    pki = Pki(world / "pki")
    written = pki.init(["hub.home.arpa"])
    assert "ca.key" in written and "seal.key" in written
    for name in ("ca.key", "hub.key", "seal.key", "export.key"):
        assert pki.path(name).stat().st_mode & 0o777 == 0o600, name
    fingerprint = pki.hub_fingerprint()
    assert pki.init(["hub.home.arpa"]) == []  # idempotent: nothing rewritten
    assert pki.hub_fingerprint() == fingerprint
    pki.path("seal.key").unlink()
    with pytest.raises(Exception, match="--force"):
        pki.init([])
    assert pki.init([], force=True) and pki.hub_fingerprint() != fingerprint
    # the C2PA certificate follows the new CA and export key
    c2pa_cert = pki.cert("c2pa.crt")
    c2pa_cert.verify_directly_issued_by(pki.cert("ca.crt"))
    assert c2pa_cert.public_key() == pki.export_key().public_key()


def test_enrolled_device_connects_with_its_certificate_and_rings(home, mock_pins, caplog):
    config_path = home.enroll("front-door")
    text = config_path.read_text()
    assert "tls_cert" in text and "seal_key" in text
    assert "chime_active_high = false" in text, "the relay's polarity is said, not defaulted"
    keys = home.root / "front-door" / "keys"
    assert (keys / "device.key").stat().st_mode & 0o777 == 0o600
    assert "front-door" in home.authority.registry.active_devices()
    agent = agent_from(config_path, home.root / "front-door" / "data")
    agent.start_link()
    try:
        wait_for(agent.link.connected.is_set, what="the device over mutual TLS")
        agent.doorbell.simulate_press()
        wait_for(lambda: home.hub.web_db.timeline(5), what="the ring at the hub")
        assert home.hub.web_db.timeline(5)[0]["device_id"] == "front-door"
        assert "refused" not in caplog.text, "status, discovery and ring all allowed by the ACL"
    finally:
        agent.close()


def test_a_device_cannot_speak_for_or_listen_to_another(home):
    home.enroll("front-door")
    home.enroll("back-door")
    stored = home.hub.ingest.stored
    forged = mosquitto(
        "mosquitto_pub", home, "front-door", "-q", "1", "-t", "porch/back-door/event/ring",
        "-m", json.dumps({"v": 1, "device_id": "back-door", "event_id": "a" * 32, "ts": 1.0}),
    )  # fmt: skip
    assert "not authorized" in (forged.stdout + forged.stderr).lower(), forged
    own = mosquitto("mosquitto_pub", home, "front-door", "-q", "1", "-t",
                    "porch/front-door/status", "-m", '{"v":1,"device_id":"front-door",'
                    '"state":"online"}')  # fmt: skip
    assert own.returncode == 0, own.stderr
    wait_for(lambda: home.hub.ingest.stored > stored, what="the allowed status")
    assert not home.hub.web_db.timeline(5), "the forged ring never reached the hub"

    # Reading: front-door subscribes to back-door's commands and hears nothing, while
    # back-door hears the same command.
    args = ["-t", "porch/back-door/cmd/#", "-C", "1", "-W", "10"]
    spy = subprocess.Popen(
        [*mosquitto_args(home, "front-door"), *args], stdout=subprocess.PIPE, text=True
    )
    owner = subprocess.Popen(
        [*mosquitto_args(home, "back-door"), *args], stdout=subprocess.PIPE, text=True
    )
    command = LiveRequest(device_id="back-door", viewers=1, lease_s=5)

    def delivered() -> bool:
        home.hub.ingest.publish(command)
        return owner.poll() is not None

    wait_for(delivered, what="back-door to receive its command")
    assert "lease_s" in owner.communicate(timeout=TIMEOUT)[0]
    assert spy.communicate(timeout=TIMEOUT)[0] == "", "front-door heard back-door's command"


def mosquitto_args(home: Home, name: str) -> list[str]:
    keys = home.root / name / "keys"
    return ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(home.broker.port), "-V", "mqttv5",
            "--cafile", str(home.pki.path("ca.crt")), "--cert", str(keys / "device.crt"),
            "--key", str(keys / "device.key")]  # fmt: skip


def test_no_certificate_another_ca_or_revoked_cannot_connect(home, world):
    home.enroll("front-door")
    ok = mosquitto("mosquitto_pub", home, "front-door", "-t", "porch/front-door/status", "-m", "x")
    assert ok.returncode == 0, ok.stderr
    bare = mosquitto("mosquitto_pub", home, None, "-t", "porch/front-door/status", "-m", "x")
    assert bare.returncode != 0
    other = Pki(world / "other")
    other.init(["127.0.0.1"])
    stranger = mosquitto(
        "mosquitto_pub", home, None, "-t", "porch/front-door/status", "-m", "x", pki=other
    )
    assert stranger.returncode != 0

    home.authority.revoke("front-door")
    assert "user front-door" not in home.pki.path("mosquitto.acl").read_text()
    wait_for(
        lambda: (
            mosquitto(
                "mosquitto_pub", home, "front-door", "-t", "porch/front-door/status", "-m", "x"
            ).returncode
            != 0
        ),
        what="the broker to refuse the revoked certificate",
    )


def refused(home: Home, token: str, directory: Path, message: str) -> None:
    before = home.authority.registry.devices()
    result = device_enroll(token, directory)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert not directory.exists(), "a refused enrollment writes nothing"
    assert home.authority.registry.devices() == before


def test_tokens_refused_for_reuse_expiry_tampering_and_a_wrong_hub(home, world):
    token = home.authority.new_token("front-door")
    assert device_enroll(token.encode(), home.root / "first").exit_code == 0
    refused(home, token.encode(), home.root / "again", "used already")

    expired = home.authority.registry.new_token("side-door", token.hub, ttl_s=-1)
    refused(home, expired.encode(), home.root / "late", "expired")

    fresh = home.authority.new_token("side-door").encode()
    prefix, body, check = fresh.split(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    refused(home, f"{prefix}.{flipped}.{check}", home.root / "typo", "damaged or was altered")
    renamed = replace(Token.decode(fresh), name="garage")  # re-encoded: a valid check value
    refused(home, renamed.encode(), home.root / "renamed", "altered")

    elsewhere = Pki(world / "impostor")
    elsewhere.init(["127.0.0.1"])
    pinned = replace(Token.decode(fresh), fingerprint=elsewhere.hub_fingerprint())
    refused(home, pinned.encode(), home.root / "pinned", "not the one this token names")
    # and the untouched token still works once
    assert device_enroll(fresh, home.root / "side").exit_code == 0


def test_sealed_clip_opens_only_at_the_hub_and_any_flipped_byte_fails(home, mock_pins):
    import threading

    import av
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519

    from porch.core.seal import MAGIC, STREAM_MAGIC, SealError, open_sealed, unseal, verify_digest

    config_path = home.enroll("front-door")
    agent = agent_from(config_path, home.root / "front-door" / "data")
    capture = threading.Thread(target=agent.run, daemon=True)
    capture.start()
    try:
        wait_for(lambda: agent.media_time > 1.5, what="pre-roll")
        agent.doorbell.simulate_press()  # the link is not started: the clip stays on the device
        wait_for(lambda: agent.recorder.last_clip is not None, what="the clip on the device")
        clip = agent.recorder.last_clip
        sealed, thumb = clip.video.read_bytes(), clip.thumbnail.read_bytes()
        # The video sealed a chunk at a time as it was written (no second copy in memory),
        # the thumbnail whole.
        assert clip.meta.sealed and sealed.startswith(STREAM_MAGIC) and thumb.startswith(MAGIC)
        with pytest.raises(av.error.InvalidDataError):
            av.open(str(clip.video))
        # The device's own keys open nothing (it has no X25519 key; try its keys' bytes anyway)
        keys = home.root / "front-door" / "keys"
        sign = serialization.load_pem_private_key((keys / "sign.key").read_bytes(), None)
        raw = sign.private_bytes_raw()
        for key in (x25519.X25519PrivateKey.from_private_bytes(raw),
                    x25519.X25519PrivateKey.generate()):  # fmt: skip
            with pytest.raises(SealError):
                open_sealed(sealed, key)
        hub_key = home.pki.seal_key()
        assert unseal(thumb, hub_key).startswith(b"\xff\xd8")
        for at in (0, len(STREAM_MAGIC) + 5, len(STREAM_MAGIC) + 40, len(STREAM_MAGIC) + 50,
                   len(sealed) // 2, len(sealed) - 1):  # fmt: skip
            flipped = bytearray(sealed)
            flipped[at] ^= 0x01
            with pytest.raises(SealError):
                open_sealed(bytes(flipped), hub_key)
        with pytest.raises(SealError):
            open_sealed(sealed[:-1], hub_key)  # cut short

        agent.start_link()  # now the hub gets it, opens it and checks the signature
        wait_for(lambda: home.hub.stored_clip(clip.meta.clip_id), what="the clip at the hub")
        stored = home.hub.clips.video(clip.meta.clip_id).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == clip.meta.plain_sha256
        device_key = home.authority.registry.sign_key("front-door")
        assert verify_digest(device_key, clip.meta.plain_sha256, clip.meta.signature)
        with av.open(str(home.hub.clips.video(clip.meta.clip_id))) as video:
            assert sum(1 for _ in video.decode(video=0)) > 10
        wait_for(lambda: not clip.video.exists(), what="the device to free its copy")
    finally:
        agent.stop()
        capture.join(timeout=TIMEOUT)
        agent.close()


def test_a_clip_with_a_forged_signature_is_not_listed(home, mock_pins):
    from porch.hub.clipopener import ClipRefused

    home.enroll("front-door")
    opener = home.hub.clips.opener
    meta = type("Meta", (), {"sealed": False, "sha256": "ab" * 32, "device_id": "front-door",
                             "signature": "00" * 64, "plain_sha256": None,
                             "container": "mp4", "gops": None})()  # fmt: skip
    with pytest.raises(ClipRefused, match="signature"):
        opener.open(meta, Path("/nonexistent"), Path("/nonexistent"))


def test_installer_enrolls_and_revokes_from_the_page_and_reaches_no_footage(home):
    from porch.hub.accounts import ROLES

    for role in ROLES:
        home.hub.accounts.add_user(role, PASSWORD, role)
    page = api(home.hub, "installer", "POST", "/devices/enroll", data={"name": "garden-cam"})
    assert page.status_code == 200, page.text
    assert "<svg" in page.text, "the QR code is on the page"
    token = re.search(r"porch device enroll (porch1\.\S+)</pre>", page.text).group(1)
    assert device_enroll(token, home.root / "garden-cam").exit_code == 0
    listing = api(home.hub, "installer", "GET", "/devices").text
    assert 'data-enrolled="garden-cam"' in listing

    for role in ("member", "requester"):
        assert api(home.hub, role, "POST", "/devices/enroll", data={"name": "x"}).status_code == 403
        assert api(home.hub, role, "POST", "/devices/garden-cam/revoke").status_code == 403
    assert api(home.hub, None, "POST", "/devices/garden-cam/revoke").status_code == 401

    revoked = api(
        home.hub, "installer", "POST", "/devices/garden-cam/revoke", follow_redirects=False
    )
    assert revoked.status_code == 303
    assert "garden-cam" not in home.authority.registry.active_devices()
    assert "user garden-cam" not in home.pki.path("mosquitto.acl").read_text()

    # and nothing with pictures in it, by any route, for the installer
    some = "a" * 32
    for path in ("/", "/api/events", "/events/stream", "/live/garden-cam",
                 "/api/devices/garden-cam/live", f"/clips/{some}/video.mp4",
                 f"/clips/{some}/thumbnail.jpg", f"/events/{some}/snapshot.jpg"):  # fmt: skip
        assert api(home.hub, "installer", "GET", path).status_code == 403, path
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    assert api(home.hub, "installer", "POST", "/api/devices/garden-cam/live",
               json=offer).status_code == 403  # fmt: skip


def test_web_app_over_https_with_the_home_ca(world, broker):
    import ssl

    import httpx

    pki = Pki(world / "pki")
    pki.init(["127.0.0.1"])
    web = WebSettings(
        port=free_port(), tls_cert=str(pki.path("hub.crt")), tls_key=str(pki.path("hub.key"))
    )
    hub = HubService(HubConfig(data_dir=world / "hub", mqtt=broker.settings, web=web))
    hub.start()
    try:
        assert hub.url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
        served = httpx.get(hub.url + "/login", verify=trusted, timeout=TIMEOUT)
        assert served.status_code == 200
        assert served.headers["strict-transport-security"].startswith("max-age="), "HSTS on TLS"
        with pytest.raises(httpx.ConnectError):  # a client without the home CA refuses it
            httpx.get(hub.url + "/login", timeout=TIMEOUT)
    finally:
        hub.stop()


def test_the_installers_commands_end_to_end(world):
    """provision init (twice), broker (a config Mosquitto runs), enroll (text and QR),
    revoke of an unknown name."""
    import socket
    import time

    port = free_port()
    hub_toml = world / "hub.toml"
    hub_toml.write_text(
        f'data_dir = "{world / "hub"}"\n[provisioning]\npki_dir = "{world / "pki"}"\n'
        f"broker_port = {port}\nenroll_port = {free_port()}\n"
    )
    runner = CliRunner()
    first = runner.invoke(main, ["provision", "init", "--config", str(hub_toml)])
    assert first.exit_code == 0 and "created" in first.output, first.output
    again = runner.invoke(main, ["provision", "init", "--config", str(hub_toml)])
    assert again.exit_code == 0 and "already set up" in again.output
    assert Pki(world / "pki").hub_fingerprint() in again.output

    conf = world / "porch.conf"
    made = runner.invoke(main, ["provision", "broker", "--config", str(hub_toml),
                                "--out", str(conf), "--bind", "127.0.0.1"])  # fmt: skip
    assert made.exit_code == 0, made.output
    text = conf.read_text()
    for line in ("require_certificate true", "use_identity_as_username true", "crlfile"):
        assert line in text
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert broker.poll() is None, broker.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pki = Pki(world / "pki")
        as_hub = subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile",
             str(pki.path("ca.crt")), "--cert", str(pki.path("hub.crt")), "--key",
             str(pki.path("hub.key")), "-t", "porch/x/cmd/live", "-m", "{}"],
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert as_hub.returncode == 0, as_hub.stderr
    finally:
        broker.kill()
        broker.wait()

    token = runner.invoke(main, ["provision", "enroll", "--config", str(hub_toml), "garden-cam"])
    assert token.exit_code == 0, token.output
    assert "porch device enroll porch1." in token.output
    assert "█" in token.output or "▀" in token.output, "a QR code in the terminal"
    unknown = runner.invoke(main, ["provision", "revoke", "--config", str(hub_toml), "nobody"])
    assert unknown.exit_code == 2 and "no enrolled device called nobody" in unknown.output


@pytest.mark.skipif(os.geteuid() != 0, reason="Mosquitto drops privileges only when root")
def test_a_home_runs_from_a_checkout_only_root_may_enter(tmp_path):
    """README's demo from a clone under /root or `mktemp -d`: Mosquitto, started as root,
    still reads its ACL and certificates and the hub connects over TLS."""
    assert not tmp_path.parent.stat().st_mode & 0o001, "the premise: others may not enter"
    home = Home(tmp_path / "home")  # waits for the hub on the TLS broker
    try:
        assert home.broker.running
    finally:
        home.close()


def as_user(user: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True,
                          text=True, timeout=TIMEOUT)  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="enrolls as root, as README says")
def test_enrolled_as_root_the_service_user_reads_its_keys_and_nobody_else(home):
    """README enrolls as root and the service runs as its own user: enrollment hands the
    keys and the config to that user, private (0700, 0600), and nobody else reads them."""
    token = home.authority.new_token("front-door").encode()
    directory = home.root / "front-door"
    args = ["device", "enroll", token, "--dir", str(directory / "keys"),
            "--config", str(directory / "device.toml"), "--user", "nobody"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    nobody = pwd.getpwnam("nobody").pw_uid
    for path, mode in ((directory / "keys", 0o700), (directory / "keys" / "device.key", 0o600),
                       (directory / "keys" / "sign.key", 0o600),
                       (directory / "device.toml", 0o600)):  # fmt: skip
        assert path.stat().st_uid == nobody, path
        assert path.stat().st_mode & 0o777 == mode, path
    for readable in (directory / "device.toml", directory / "keys" / "sign.key"):
        assert as_user("nobody", "cat", str(readable)).returncode == 0, "the service reads it"
        assert as_user("daemon", "cat", str(readable)).returncode != 0, "nobody else does"
