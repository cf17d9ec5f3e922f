"""Consent and signed export: a bundle built only from an approval, checked offline by
`porch verify` and by openssl alone; tampering of any byte, refusals, the audit chain, and
face blur measured on the synthetic scene."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization

from porch.cli import main
from porch.hub.audit import AuditLog
from porch.hub.consent import ConsentError
from porch.hub.export import credentials
from porch.hub.export.bundle import BundleError, ClipFile, Member, build_bundle, write_zip
from porch.hub.export.redact import FaceFinder
from porch.hub.export.verify import verify_bundle
from tests.support.common import TIMEOUT
from tests.support.footage import check_script, record_two_clips, run_check, run_verify
from tests.support.hub import PASSWORD, api, module_home

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="no mosquitto")


@pytest.fixture(scope="module")
def exported():
    """Two clips from an enrolled doorbell; a request for both; the owner approves one, with
    face blur; its bundle is built."""
    with module_home("porch-export-") as home:
        home.hub.accounts.add_user("other-requester", PASSWORD, "requester")
        clips = record_two_clips(home)
        consent, exporter = home.hub.consent, home.hub.exporter
        request = consent.file("requester", "Officer Dibble", "Ankh Police", "dibble@example",
                               "a parcel theft", "warrant", "W-2026-118", ["front-door"],
                               clips[0]["start_ts"] - 60, clips[-1]["end_ts"] + 60)  # fmt: skip
        consent.decide(request.request_id, "owner", approve=True, clip_ids=[clips[0]["clip_id"]],
                       blur_faces=True)  # fmt: skip
        bundle = exporter.build(request.request_id, "requester")
        yield SimpleNamespace(home=home, clips=clips, request=request,
                              bundle=Path(bundle["path"]))  # fmt: skip


def test_bundle_verifies_offline_and_carries_the_approval(exported):
    home = exported.home
    result = run_verify(exported.bundle, home.pki.path("ca.crt"))
    assert result.exit_code == 0, result.output
    assert "VALID" in result.output and "1 clip(s) for Ankh Police" in result.output
    assert "Content Credentials of 1 clip(s) trusted" in result.output
    with zipfile.ZipFile(exported.bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["request"]["legal_basis"] == "warrant"
    assert manifest["approval"]["decided_by"] == "owner"
    assert manifest["approval"]["scope"]["clip_ids"] == [exported.clips[0]["clip_id"]]
    other = tempfile.mkdtemp()
    from porch.provisioning.pki import Pki

    stranger = Pki(Path(other) / "pki")
    stranger.init([])
    wrong_ca = run_verify(exported.bundle, stranger.path("ca.crt"))
    assert wrong_ca.exit_code == 1 and "not the home CA" in wrong_ca.output


def rezip(source: Path, target: Path, names: list[str], extra: dict[str, bytes] | None = None):
    """The bundle's members in the order ``names``, plus ``extra``, as a new zip."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for name in names:
            out.writestr(archive.getinfo(name), archive.read(name))
        for name, data in (extra or {}).items():
            out.writestr(name, data)


def test_openssl_sha256sum_and_unzip_alone_as_docs_verify_md_says(exported, tmp_path):
    script = check_script(tmp_path)
    ca = exported.home.pki.cert("ca.crt")
    fingerprint = ca.fingerprint(hashes.SHA256()).hex()
    colons = ":".join(f"{b:02X}" for b in ca.fingerprint(hashes.SHA256()))  # openssl's form
    for given in (fingerprint, colons):
        done = run_check(script, exported.bundle, given)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "bundle checks out" in done.stdout and "redacted by the home" in done.stdout

    wrong = run_check(script, exported.bundle, "ab" * 32)
    assert wrong.returncode != 0 and "FAIL: the bundle's CA is" in wrong.stdout

    with zipfile.ZipFile(exported.bundle) as archive:
        names = archive.namelist()
    layouts = {
        "extra": (names, {"notes.txt": b"nothing to see"}),
        "reordered": ([*names[:2], *reversed(names[2:])], None),
        "dropped": (names[:-1], None),
    }
    for label, (order, extra) in layouts.items():
        target = tmp_path / f"{label}.zip"
        rezip(exported.bundle, target, order, extra)
        failed = run_check(script, target, fingerprint)
        assert failed.returncode != 0, label
        assert "FAIL:" in failed.stdout, (label, failed.stdout, failed.stderr)
        result = run_verify(target, exported.home.pki.path("ca.crt"))
        assert result.exit_code == 1 and "INVALID" in result.output, (label, result.output)

    # One flipped byte inside a clip: the script says the bundle is damaged (unzip's checksum).
    data = bytearray(exported.bundle.read_bytes())
    with zipfile.ZipFile(exported.bundle) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(".mp4"))
    data[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0x01
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(data)
    damaged = run_check(script, flipped, fingerprint)
    assert damaged.returncode != 0
    assert "FAIL: the bundle is damaged" in damaged.stdout, damaged.stdout + damaged.stderr
    assert "Could not open" not in damaged.stdout + damaged.stderr


def test_without_the_home_ca_verify_says_the_origin_is_unproven(exported):
    result = run_verify(exported.bundle)
    assert result.exit_code == 3, result.output
    assert "ORIGIN UNPROVEN" in result.output and "VALID:" not in result.output
    fingerprint = exported.home.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()
    assert fingerprint in result.output


def positions(data: bytes, archive: zipfile.ZipFile) -> list[int]:
    """Bytes to flip: the first, middle and last of every member and of its local header,
    the central directory and its end record, and 40 more anywhere."""
    picks = {0, len(data) - 1, len(data) // 2}
    for info in archive.infolist():
        header = info.header_offset
        start = header + 30 + len(info.filename)
        picks |= {header, header + 10, header + 14, header + 29, start,
                  start + info.file_size // 2, start + max(0, info.file_size - 1)}  # fmt: skip
    central = data.rfind(b"PK\x01\x02")
    end = data.rfind(b"PK\x05\x06")
    picks |= {central, central + 16, end, end + 12, end + 16}
    rng = random.Random(7)
    picks |= {rng.randrange(len(data)) for _ in range(40)}
    return sorted(p for p in picks if 0 <= p < len(data))


def test_any_flipped_byte_fails_verification(exported, tmp_path):
    data = exported.bundle.read_bytes()
    with zipfile.ZipFile(exported.bundle) as archive:
        spots = positions(data, archive)
    assert len(spots) > 60
    target = tmp_path / "flipped.zip"
    for at in spots:
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        target.write_bytes(flipped)
        with pytest.raises(BundleError):
            verify_bundle(target)
    assert run_verify(target).exit_code == 1  # the command says so too


def test_another_real_clip_from_the_same_device_fails(exported, tmp_path):
    home = exported.home
    other = home.hub.clips.video(exported.clips[1]["clip_id"])
    with zipfile.ZipFile(exported.bundle) as archive:
        members = []
        for info in archive.infolist():
            data = archive.read(info.filename)
            if info.filename.endswith(".mp4"):
                data = other.read_bytes()
            members.append(Member(info.filename, data))
    swapped = tmp_path / "swapped.zip"
    write_zip(swapped, members)  # a canonical zip: only the clip differs
    result = run_verify(swapped)
    assert result.exit_code == 1 and "does not match its SHA-256" in result.output
    fingerprint = home.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()
    by_script = run_check(check_script(tmp_path), swapped, fingerprint)
    assert by_script.returncode != 0 and "FAIL: a file does not match SHA256SUMS" in (
        by_script.stdout
    ), by_script.stdout + by_script.stderr


def forged_bundle(exported, tmp_path: Path) -> Path:
    """A forgery with the home CA's certificate first in certs/ca.pem and the forger's own CA
    after it; export key, device key, manifest and its signature all the forger's."""
    from cryptography.hazmat.primitives.asymmetric import ed25519 as ed

    from porch.provisioning.pki import Pki

    forger = Pki(tmp_path / "forger")
    forger.init([])
    export_key = ed.Ed25519PrivateKey.generate()
    device_key = ed.Ed25519PrivateKey.generate()
    export_cert = forger.issue(export_key.public_key(), "porch-hub-export", [])
    device_cert = forger.issue(device_key.public_key(), "front-door", [])
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    with zipfile.ZipFile(exported.bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    clip = manifest["clips"][0]
    fake = b"\x00\x00\x00\x18ftypisom" + os.urandom(5000)  # footage that never was
    digest = hashlib.sha256(fake).hexdigest()
    signature = device_key.sign(bytes.fromhex(digest))
    clip.update(original_sha256=digest, device_signature=signature.hex(), redaction=None)
    clip.pop("credentials_sha256", None)
    manifest["clips"] = [clip]
    for entry in ("members", "files"):
        manifest.pop(entry, None)
    path = tmp_path / "forged-clip.mp4"
    path.write_bytes(fake)
    certs = {
        "certs/ca.pem": exported.home.pki.path("ca.crt").read_bytes() + pem(forger.cert("ca.crt")),
        "certs/export.pem": pem(export_cert),
        "certs/device-front-door.pem": pem(device_cert),
    }
    forged = tmp_path / "forged.zip"
    build_bundle(forged, manifest, certs, [ClipFile(clip["clip_id"], path, signature, None)],
                 export_key.sign)  # fmt: skip
    return forged


def test_a_forgery_behind_the_home_cas_certificate_is_refused(exported, tmp_path):
    forged = forged_bundle(exported, tmp_path)
    fingerprint = exported.home.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()
    by_script = run_check(check_script(tmp_path), forged, fingerprint)
    assert by_script.returncode != 0
    assert "FAIL: certs/ca.pem must hold exactly one certificate" in by_script.stdout
    result = run_verify(forged, exported.home.pki.path("ca.crt"))
    assert result.exit_code == 1 and "exactly one certificate" in result.output


def test_a_bundle_with_a_link_in_it_is_refused_before_unpacking(exported, tmp_path):
    with zipfile.ZipFile(exported.bundle) as archive:
        names = archive.namelist()
    target = tmp_path / "linked.zip"
    with zipfile.ZipFile(exported.bundle) as archive, zipfile.ZipFile(target, "w") as out:
        for name in names:
            info = archive.getinfo(name)
            if name == "VERIFY.txt":  # the same name, now a link to the user's files
                link = zipfile.ZipInfo(name, date_time=info.date_time)
                link.create_system = 3
                link.external_attr = 0o120777 << 16
                out.writestr(link, "/etc/passwd")
            else:
                out.writestr(info, archive.read(name))
    fingerprint = exported.home.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()
    by_script = run_check(check_script(tmp_path), target, fingerprint)
    assert by_script.returncode != 0 and "FAIL: the bundle holds a link" in by_script.stdout


def test_no_bundle_without_a_live_approval_and_only_for_its_requester(exported):
    home = exported.home
    consent, exporter = home.hub.consent, home.hub.exporter
    window = (exported.clips[0]["start_ts"] - 60, exported.clips[-1]["end_ts"] + 60)
    before = sorted(p.name for p in exporter.root.iterdir())

    def ask(by: str = "requester"):
        return consent.file(by, "A. Neighbour", "Next door", "+44 1234", "my bike",
                            "voluntary", "", ["front-door"], *window)  # fmt: skip

    pending = ask()
    with pytest.raises(ConsentError, match="pending"):
        exporter.build(pending.request_id, "requester")
    declined = ask()
    consent.decide(declined.request_id, "owner", approve=False, message="no")
    with pytest.raises(ConsentError, match="declined"):
        exporter.build(declined.request_id, "requester")
    lapsing = ask()
    consent.decide(lapsing.request_id, "owner", approve=True, approval_days=1e-6)
    time.sleep(0.2)
    with pytest.raises(ConsentError, match="expired"):
        exporter.build(lapsing.request_id, "requester")
    assert sorted(p.name for p in exporter.root.iterdir()) == before, "no bundle was built"

    # over the web: another requester gets nothing; members and installers cannot decide
    path = f"/requests/{exported.request.request_id}/bundle.zip"
    assert api(home.hub, "other-requester", "GET", path).status_code == 404
    assert api(home.hub, "member", "GET", path).status_code == 403
    fresh = ask()
    for role in ("member", "installer", "requester"):
        got = api(home.hub, role, "POST", f"/requests/{fresh.request_id}/decision",
                  data={"action": "approve", "password": PASSWORD})  # fmt: skip
        assert got.status_code == 403, role
    wrong_password = api(home.hub, "owner", "POST", f"/requests/{fresh.request_id}/decision",
                         data={"action": "approve", "password": "guess"})  # fmt: skip
    assert wrong_password.status_code == 403
    assert consent.get(fresh.request_id).state == "pending"
    download = api(home.hub, "requester", "GET", path)
    assert download.status_code == 200 and download.content == exported.bundle.read_bytes()
    assert any(e.action == "download" for e in home.hub.audit.entries(exported.request.request_id))


def test_a_pending_request_holds_its_clips_against_retention(exported):
    home = exported.home
    held = home.hub.consent.held_clip_ids()
    assert {c["clip_id"] for c in exported.clips} <= held  # the pending requests above


def audit_copy(exported, tmp_path: Path) -> Path:
    copy = tmp_path / "hub.sqlite"
    source = sqlite3.connect(exported.home.hub.web_db.path)
    with sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    return copy


@pytest.mark.parametrize("tamper", ["edit", "insert", "delete-middle", "delete-last"])
def test_audit_log_detects_tampering(exported, tmp_path, tamper):
    public = exported.home.pki.export_key().public_key()
    path = audit_copy(exported, tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    count, problem = AuditLog(conn, None).verify(public)
    assert problem is None and count >= 4
    if tamper == "edit":
        conn.execute("UPDATE audit SET data = replace(data, 'warrant', 'voluntary') WHERE seq=1")
        where = "entry 1 was edited"
    elif tamper == "insert":
        conn.execute("UPDATE audit SET seq = -seq WHERE seq >= 3")  # make room at 3 ...
        conn.execute("UPDATE audit SET seq = 1 - seq WHERE seq < 0")  # ... (3 -> 4, ...)
        conn.execute("INSERT INTO audit SELECT 3, ts, actor, action, subject, data, prev, hash"
                     " FROM audit WHERE seq = 2")  # fmt: skip
        where = "entry 3"
    elif tamper == "delete-middle":
        conn.execute("DELETE FROM audit WHERE seq = 2")
        where = "entry 2 is missing"
    else:
        conn.execute("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)")
        where = "signed head"
    _, problem = AuditLog(conn, None).verify(public)
    assert problem is not None and where in problem, problem
    conn.close()


def test_audit_verify_command(exported, tmp_path):
    home = exported.home
    hub_toml = tmp_path / "hub.toml"
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(audit_copy(exported, tmp_path), data / "hub.sqlite")
    hub_toml.write_text(f'data_dir = "{data}"\n[provisioning]\npki_dir = "{home.pki.root}"\n')
    ok = CliRunner().invoke(main, ["audit", "verify", "--config", str(hub_toml)])
    assert ok.exit_code == 0 and "intact" in ok.output, ok.output
    conn = sqlite3.connect(data / "hub.sqlite", isolation_level=None)
    conn.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 2")
    conn.close()
    broken = CliRunner().invoke(main, ["audit", "verify", "--config", str(hub_toml)])
    assert broken.exit_code == 1 and "entry 2 was edited" in broken.output


def faces_and_sharpness(path: Path, boxes=None) -> tuple[int, int, list, float]:
    """Frames, frames with a detected face, the face boxes, mean Laplacian variance in them
    (or in ``boxes``: the original's boxes, to measure the same places in the redaction)."""
    finder = FaceFinder()
    frames = with_faces = 0
    found, sharpness = [], []
    with av.open(str(path)) as video:
        for index, frame in enumerate(video.decode(video=0)):
            image = frame.to_ndarray(format="bgr24")
            here = finder.find(image)
            frames += 1
            with_faces += bool(here)
            found.append(here)
            for x0, y0, x1, y1 in boxes[index] if boxes and index < len(boxes) else here:
                gray = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
                sharpness.append(cv2.Laplacian(gray, cv2.CV_64F).var())
    return frames, with_faces, found, float(np.mean(sharpness)) if sharpness else 0.0


def test_faces_are_blurred_and_tied_to_the_original(exported, tmp_path):
    home = exported.home
    clip_id = exported.clips[0]["clip_id"]
    original = home.hub.clips.video(clip_id)
    with zipfile.ZipFile(exported.bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        (tmp_path / "redacted.mp4").write_bytes(archive.read(f"clips/{clip_id}.mp4"))
    entry = manifest["clips"][0]
    assert entry["original_sha256"] == hashlib.sha256(original.read_bytes()).hexdigest()
    assert entry["sha256"] != entry["original_sha256"]
    assert entry["redaction"]["blur_faces"] and entry["redaction"]["frames_with_faces"] > 0

    frames, with_faces, boxes, sharp_before = faces_and_sharpness(original)
    assert with_faces >= frames * 0.8, "the visitor's face is found in the original"
    r_frames, r_faces, _, sharp_after = faces_and_sharpness(tmp_path / "redacted.mp4", boxes)
    assert r_frames == frames
    assert r_faces <= frames * 0.05, f"faces still found in {r_faces} of {frames} frames"
    assert sharp_after < sharp_before * 0.1, (sharp_before, sharp_after)
    print(f"faces found: original {with_faces}/{frames} frames, redacted {r_faces}/{frames};"
          f" detail in face boxes {sharp_before:.0f} -> {sharp_after:.1f}")  # fmt: skip


def test_export_build_command_refuses_without_approval(exported, tmp_path):
    home = exported.home
    pending = home.hub.consent.file("requester", "B", "Insurer Ltd", "b@example", "claim",
                                    "voluntary", "", ["front-door"], 1.0, 2.0)  # fmt: skip
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text(f'data_dir = "{home.config.data_dir}"\n[provisioning]\n'
                        f'pki_dir = "{home.pki.root}"\n')  # fmt: skip
    result = CliRunner().invoke(main, ["export", "build", "--config", str(hub_toml),
                                       pending.request_id])  # fmt: skip
    assert result.exit_code == 2 and "pending" in result.output


def test_a_bad_request_form_comes_back_filled_with_its_reason(exported):
    hub = exported.home.hub
    before = len(hub.consent.all())
    form = {"name": "Officer Dibble", "organisation": "Ankh Police", "contact": "d@example",
            "reason": "theft", "legal_basis": "warrant", "legal_reference": "",
            "start": "2026-11-25T05:00:00", "end": "2026-11-25T06:00:00"}  # fmt: skip
    page = api(hub, "requester", "POST", "/requests", data=form)
    assert page.status_code == 400
    assert "a warrant needs its reference" in page.text and 'value="Ankh Police"' in page.text
    backwards = dict(form, legal_reference="W-1", end="2026-11-25T04:00:00")
    assert "time window must be positive" in api(hub, "requester", "POST", "/requests",
                                                 data=backwards).text  # fmt: skip
    assert len(hub.consent.all()) == before, "nothing was filed"


def test_clips_carry_content_credentials_any_c2pa_tool_can_read(exported, tmp_path):
    """The redacted clip has C2PA embedded (the original as its parent); an unredacted one
    keeps its bytes and has its credentials beside it. Both are trusted under the home CA
    only, and say who asked, who approved and what was done."""
    home = exported.home
    ca = home.pki.path("ca.crt").read_bytes()
    redacted_id = exported.clips[0]["clip_id"]
    with zipfile.ZipFile(exported.bundle) as archive:
        video = archive.read(f"clips/{redacted_id}.mp4")
        assert f"clips/{redacted_id}.c2pa" not in archive.namelist()
    found = credentials.read(video, ca)
    assert found.state == "Trusted" and found.signer == "porch-hub-export"
    assert found.actions == ["c2pa.opened", "c2pa.filtered", "c2pa.published"]
    assert found.export["approved_by"] == "owner"
    assert found.export["organisation"] == "Ankh Police"
    assert found.export["original_sha256"] == hashlib.sha256(
        home.hub.clips.video(redacted_id).read_bytes()).hexdigest()  # fmt: skip

    consent = home.hub.consent
    plain_id = exported.clips[1]["clip_id"]
    window = (exported.clips[0]["start_ts"] - 60, exported.clips[-1]["end_ts"] + 60)
    request = consent.file("requester", "A. Adjuster", "Insurer", "claims@example",
                           "a broken window", "voluntary", "", ["front-door"],
                           *window)  # fmt: skip
    consent.decide(request.request_id, "owner", approve=True, clip_ids=[plain_id])
    bundle = Path(home.hub.exporter.build(request.request_id, "requester")["path"])
    assert run_verify(bundle, home.pki.path("ca.crt")).exit_code == 0
    with zipfile.ZipFile(bundle) as archive:
        video = archive.read(f"clips/{plain_id}.mp4")
        sidecar = archive.read(f"clips/{plain_id}.c2pa")
    assert video == home.hub.clips.video(plain_id).read_bytes(), "the original, untouched"
    found = credentials.read(video, ca, sidecar)
    assert found.state == "Trusted"
    assert found.actions == ["c2pa.created", "c2pa.published"]
    assert found.export["legal_basis"] == "voluntary"

    from porch.provisioning.pki import Pki

    stranger = Pki(tmp_path / "pki")
    stranger.init([])
    with pytest.raises(credentials.CredentialsError, match="untrusted"):
        credentials.read(video, stranger.path("ca.crt").read_bytes(), sidecar)
    with pytest.raises(credentials.CredentialsError):
        credentials.read(video[:-1] + bytes([video[-1] ^ 1]), ca, sidecar)


def test_a_bundle_is_built_once_in_the_background_and_served_when_ready(exported, monkeypatch):
    home = exported.home
    builds_of = home.hub.builds
    looked = threading.Event()  # the builder holds at its first percent until the page saw it
    reporter = builds_of._reporter

    def held(request_id):
        report = reporter(request_id)

        def progress(fraction: float) -> None:
            report(fraction)
            if 0.01 <= fraction < 1 and not looked.is_set():
                looked.wait(TIMEOUT)

        return progress

    monkeypatch.setattr(builds_of, "_reporter", held)
    request = home.hub.consent.file("requester", "Officer Dibble", "Ankh Police", "d@example",
                                    "the same theft", "warrant", "W-9", ["front-door"],
                                    exported.clips[0]["start_ts"] - 60,
                                    exported.clips[-1]["end_ts"] + 60)  # fmt: skip
    builds = home.hub.builds.builds
    approved = api(home.hub, "owner", "POST", f"/requests/{request.request_id}/decision",
                   data={"action": "approve", "password": PASSWORD, "blur_faces": "true",
                         "clip_ids": [c["clip_id"] for c in exported.clips]},
                   follow_redirects=False)  # fmt: skip
    assert approved.status_code == 303
    path, status = (
        f"/requests/{request.request_id}/bundle.zip",
        f"/api/requests/{request.request_id}/bundle",
    )
    seen, early = [], []
    while True:  # a requester clicking download again and again while it is being built
        state = api(home.hub, "requester", "GET", status).json()
        seen.append(state)
        if state["state"] == "ready":
            break
        assert state["state"] in ("queued", "building"), state
        code = api(home.hub, "requester", "GET", path).status_code
        after = api(home.hub, "requester", "GET", status).json()["state"]
        early.append(code)
        assert code == 409 or after == "ready", "a download before the bundle was ready"
        if state["state"] == "building" and 0 < state["percent"] < 100:
            looked.set()
        time.sleep(0.05)
    assert 409 in early, "asked while it was being built, and told to wait"
    assert any(s["state"] == "building" and 0 < s["percent"] < 100 for s in seen), seen
    download = api(home.hub, "requester", "GET", path)
    assert download.status_code == 200 and download.content[:2] == b"PK"
    assert home.hub.builds.builds == builds + 1, "exactly one build for the approval"
    exports = [e for e in home.hub.audit.entries(request.request_id) if e.action == "export"]
    assert len(exports) == 1


def test_approving_with_nothing_ticked_hands_over_nothing(exported):
    home = exported.home
    request = home.hub.consent.file("requester", "A. Neighbour", "Next door", "n@example",
                                    "my bike", "voluntary", "", ["front-door"],
                                    exported.clips[0]["start_ts"] - 60,
                                    exported.clips[-1]["end_ts"] + 60)  # fmt: skip
    refused = api(home.hub, "owner", "POST", f"/requests/{request.request_id}/decision",
                  data={"action": "approve", "password": PASSWORD})  # fmt: skip
    assert refused.status_code == 400 and "no clip to approve" in refused.text
    assert home.hub.consent.get(request.request_id).state == "pending"
