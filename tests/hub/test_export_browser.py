"""The consent workflow end to end in Debian's headless Chromium: a requester files a request,
the owner is told at once, narrows it to one clip and approves with face blur, the requester
downloads the bundle, and `porch verify` accepts it."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime

import av
from click.testing import CliRunner

from porch.cli import main
from tests.support.browser import needs_chromium, sign_in, wait_in_page
from tests.support.common import TIMEOUT
from tests.support.footage import record_two_clips
from tests.support.hub import PASSWORD

pytestmark = needs_chromium


def local(ts: float) -> str:
    """What a datetime-local input holds for ``ts`` (browser and hub share this clock)."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S")


def test_request_narrow_approve_with_blur_download_and_verify(home, mock_pins, browser, tmp_path):
    hub = home.hub
    hub.accounts.add_user("owner", PASSWORD, "owner")
    invite = hub.accounts.new_invite("requester", "owner")
    clips = record_two_clips(home)

    # The requester accepts the owner's invitation and signs in.
    requester = browser.new_context().new_page()
    requester.goto(f"{hub.url}/invite?token={invite}")
    requester.fill("input[name=username]", "dibble")
    requester.fill("input[name=password]", PASSWORD)
    requester.click("button[type=submit]")
    sign_in(requester, hub.url, "dibble")
    requester.wait_for_url(hub.url + "/requests")

    owner = browser.new_context().new_page()
    sign_in(owner, hub.url, "owner")
    wait_in_page(owner, "window.porch.events && window.porch.events.readyState === 1")

    requester.click("text=Ask for footage")
    requester.fill("input[name=name]", "Officer Dibble")
    requester.fill("input[name=organisation]", "Ankh Police")
    requester.fill("input[name=contact]", "dibble@example.org")
    requester.fill("textarea[name=reason]", "A parcel was taken from the step.")
    requester.select_option("select[name=legal_basis]", "warrant")
    requester.fill("input[name=legal_reference]", "W-2026-118")
    requester.fill("input[name=start]", local(clips[0]["start_ts"] - 60))
    requester.fill("input[name=end]", local(clips[-1]["end_ts"] + 60))
    requester.click("#request-form button[type=submit]")
    requester.wait_for_selector("#request-status:has-text('pending')")
    request_id = requester.url.rsplit("/", 1)[1]

    # The owner is told at once, without reloading.
    owner.wait_for_selector("#request-banner", state="visible", timeout=TIMEOUT * 1000)
    assert "Ankh Police" in owner.inner_text("#request-banner")
    owner.click("#request-open")
    owner.wait_for_selector("#matching input[name=clip_ids]")
    assert owner.locator("#matching input[name=clip_ids]").count() == 2
    # Nothing is ticked to begin with: nothing leaves by default. Approving so refuses.
    assert not any(
        box.is_checked() for box in owner.locator("#matching input[type=checkbox]").all()
    )
    owner.check(f"#matching input[value='{clips[0]['clip_id']}']")  # one clip of the two
    assert owner.is_checked("input[name=blur_faces]")
    owner.locator("#box-canvas img").scroll_into_view_if_needed()
    picture = owner.locator("#box-canvas img").bounding_box()  # draw a box over the bell
    left, top = picture["x"], picture["y"]
    owner.mouse.move(left + picture["width"] * 0.05, top + picture["height"] * 0.05)
    owner.mouse.down()
    owner.mouse.move(left + picture["width"] * 0.3, top + picture["height"] * 0.25, steps=5)
    owner.mouse.up()
    assert owner.input_value("#boxes").count(",") == 3
    owner.fill("input[name=password]", PASSWORD)
    owner.click("#approve")
    owner.wait_for_selector("#request-status:has-text('approved')")
    approved = owner.inner_text("#approved")
    assert "1:" in approved and "faces of bystanders blurred" in approved and "area(s)" in approved

    # Both see the bundle being built in the background, then the download, without reloading.
    owner.wait_for_selector("#bundle-ready", state="visible", timeout=TIMEOUT * 1000)
    requester.reload()
    requester.wait_for_selector("#bundle-ready", state="visible", timeout=TIMEOUT * 1000)
    assert home.hub.builds.builds == 1, "one build for the approval"
    # The requester downloads the bundle; it verifies offline.
    with requester.expect_download(timeout=TIMEOUT * 1000) as download:
        requester.click("#download")
    bundle = tmp_path / "bundle.zip"
    download.value.save_as(bundle)
    result = CliRunner().invoke(main, ["verify", str(bundle), "--ca", str(home.pki.path("ca.crt"))])
    assert result.exit_code == 0, result.output
    # The requester's page shows the fingerprint exactly as porch verify prints it.
    shown = requester.inner_text("#ca-fingerprint").strip()
    assert f"home CA SHA-256 {shown}" in result.output
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert [c["clip_id"] for c in manifest["clips"]] == [clips[0]["clip_id"]]
    assert manifest["clips"][0]["redaction"]["faces_blurred"] > 0
    assert manifest["approval"]["decided_by"] == "owner"
    (box,) = manifest["approval"]["redaction"]["boxes"]
    assert 0.03 < box["x"] < 0.07 and 0.2 < box["w"] < 0.3
    with zipfile.ZipFile(bundle) as archive:
        (tmp_path / "clip.mp4").write_bytes(archive.read(manifest["clips"][0]["file"]))
    with av.open(str(tmp_path / "clip.mp4")) as video:
        frame = next(video.decode(video=0)).to_ndarray(format="bgr24")
    h, w = frame.shape[:2]
    inside = frame[int((box["y"] + 0.02) * h) : int((box["y"] + box["h"] - 0.02) * h),
                   int((box["x"] + 0.02) * w) : int((box["x"] + box["w"] - 0.02) * w)]  # fmt: skip
    assert inside.mean() < 12, "the drawn box is black in the exported clip"
    actions = [e.action for e in hub.audit.entries(request_id)]
    assert actions == ["request", "approved", "export", "download"], actions
