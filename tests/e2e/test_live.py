"""Live view in Debian's headless Chromium: WebRTC from the hub, relaying the doorbell's own
H.264 (nothing re-encoded), to owners and members only."""

from __future__ import annotations

import os
import signal
import time
from itertools import pairwise

import httpx
import pytest

from porch.hub.accounts import ROLES
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.browser import needs_chromium, sign_in, wait_in_page
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import device_config, run_agent, start_device, write_device_toml
from tests.support.hub import ENDINGS, PASSWORD, api, end_session, start_hub

PLAYING = "document.querySelector('video#live').videoWidth > 0"
FRAMES = "document.querySelector('video#live').getVideoPlaybackQuality().totalVideoFrames"


@pytest.fixture
def site(tmp_path, broker, mock_pins):
    """A hub with one account per role and a simulated doorbell streaming to it on demand."""
    service = start_hub(tmp_path / "hub", broker)
    for role in ROLES:
        service.accounts.add_user(role, PASSWORD, role)
    with run_agent(device_config(tmp_path, broker)) as agent:
        wait_for(agent.link.connected.is_set, what="the device")
        wait_for(lambda: service.devices(), what="the hub to know the device")
        service.agent = agent
        yield service
    service.stop()


def open_live(browser, url: str, username: str):
    page = browser.new_page()
    sign_in(page, url, username)
    page.goto(url + "/live/front-door")
    return page


def frames_keep_rising(page, seconds: int = 5) -> list[int]:
    counts = [page.evaluate(FRAMES)]
    for _ in range(seconds):
        page.wait_for_timeout(1000)
        counts.append(page.evaluate(FRAMES))
    assert all(b > a for a, b in pairwise(counts)), counts
    return counts


@needs_chromium
def test_live_view_plays_within_two_seconds_and_keeps_playing(site, browser):
    agent = site.agent
    assert agent.live.sent == 0, "nobody watches: the doorbell streams nothing"
    page = browser.new_page()
    sign_in(page, site.url, "member")
    started = time.monotonic()
    page.goto(site.url + "/live/front-door")
    wait_in_page(page, PLAYING, timeout=TIMEOUT)
    first_picture = time.monotonic() - started
    assert first_picture < 2.0, f"first picture after {first_picture:.2f} s"
    assert page.evaluate("document.querySelector('video#live').videoWidth") == 320
    frames_keep_rising(page)
    page.wait_for_selector("#live-state:text('live')")
    assert agent.live.keyframes_requested >= 1, "the viewer started on a fresh keyframe"

    page.close()  # the viewer leaves: the hub ends the session and the device stops
    wait_for(lambda: not site.live.viewers("front-door"), what="the session to end")
    wait_for(lambda: not agent.live.active, what="the device to stop streaming")
    sent = agent.live.sent
    time.sleep(1)
    assert agent.live.sent == sent


@needs_chromium
def test_two_viewers_share_one_encoded_stream(site, browser):
    agent = site.agent
    owner = open_live(browser, site.url, "owner")
    member = open_live(browser, site.url, "member")
    for page in (owner, member):
        wait_in_page(page, PLAYING, timeout=TIMEOUT)
    owner.wait_for_selector("#live-viewers:text('member')", timeout=TIMEOUT * 1000)
    assert "owner" in owner.inner_text("#live-viewers")
    assert member.locator("#live-viewers").count() == 0, "only owners see who watches"

    sessions = site.live.viewers("front-door")
    assert len(sessions) == 2
    before = (agent.frames, agent._source.encoder.frames_encoded, agent.live.sent)
    forwarded = [s.track.forwarded for s in sessions]
    frames_keep_rising(owner, 3)
    frames_keep_rising(member, 1)
    captured = agent.frames - before[0]
    encoded = agent._source.encoder.frames_encoded - before[1]
    sent = agent.live.sent - before[2]
    relayed = [s.track.forwarded - f for s, f in zip(sessions, forwarded, strict=True)]
    # One encode per captured frame and one packet on the wire per frame, for two viewers;
    # the hub hands the same packets to both.
    assert abs(encoded - captured) <= 1, (encoded, captured)
    assert abs(sent - captured) <= 2, (sent, captured)
    assert all(r >= sent * 0.8 for r in relayed), (relayed, sent)


def test_roles_without_footage_get_no_stream_and_no_answer(site):
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    assert api(site, None, "POST", "/api/devices/front-door/live", json=offer).status_code == 401
    for role in ("installer", "requester"):
        refused = api(site, role, "POST", "/api/devices/front-door/live", json=offer)
        assert refused.status_code == 403, role
        assert "sdp" not in refused.text
        assert api(site, role, "GET", "/live/front-door").status_code == 403
        assert api(site, role, "GET", "/api/devices/front-door/live").status_code == 403
    page = api(site, None, "GET", "/live/front-door", follow_redirects=False)
    assert page.status_code == 302 and "/login" in page.headers["location"]
    assert not site.live.viewers("front-door")
    assert site.agent.live.sent == 0 and site.agent.live.keyframes_requested == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "offer", "sdp": "this is not SDP"}, 400),
        ({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}, 400),
        ({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 20000}, 422),
        ({"type": "answer", "sdp": "v=0\r\n"}, 422),
        ({"sdp": "v=0\r\n"}, 422),
        ([1, 2, 3], 422),
    ],
)
def test_malformed_or_oversized_offers_get_4xx_and_the_hub_keeps_running(site, body, status):
    got = api(site, "owner", "POST", "/api/devices/front-door/live", json=body)
    assert got.status_code == status, got.text
    assert "detail" in got.json()
    assert not site.live.viewers("front-door")
    state = api(site, "owner", "GET", "/api/devices/front-door/live")
    assert state.status_code == 200 and state.json()["online"] is True


def test_offers_for_unknown_devices_and_sessions_are_refused(site):
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    assert api(site, "owner", "POST", "/api/devices/back-door/live", json=offer).status_code == 404
    candidate = {"candidate": "candidate:1 1 udp 1 192.0.2.9 9 typ host", "sdpMid": "0"}
    missing = api(site, "owner", "POST", "/api/live/" + "a" * 22 + "/candidates", json=candidate)
    assert missing.status_code == 404
    assert api(site, "owner", "DELETE", "/api/live/" + "a" * 22).status_code == 404


@needs_chromium
def test_killed_doorbell_shows_offline_and_recovers(tmp_path, broker, browser):
    hub = start_hub(tmp_path / "hub", broker)
    hub.accounts.add_user("owner", PASSWORD, "owner")
    config = tmp_path / "device.toml"
    write_device_toml(config, tmp_path / "device", broker.port, motion={"enabled": False})
    agent = start_device(config)
    try:
        wait_for(lambda: [d for d in hub.devices() if d["state"] == "online"], what="the device")
        page = open_live(browser, hub.url, "owner")
        wait_in_page(page, PLAYING, timeout=TIMEOUT)
        page.wait_for_selector("#live-state:text('live')", timeout=TIMEOUT * 1000)

        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=TIMEOUT)
        killed = time.monotonic()
        page.wait_for_selector("#live-state:text('offline')", timeout=5_000)
        assert time.monotonic() - killed < 5
        assert hub.ingest.connected.is_set()
        assert httpx.get(hub.url + "/login", timeout=TIMEOUT).status_code == 200

        agent = start_device(config)
        page.wait_for_selector("#live-state:text('live')", timeout=TIMEOUT * 1000)
        # Playing again: two seconds' worth of new frames (a freshly started agent on a busy
        # machine may pause for a moment, so this waits on progress, not on every second).
        seen = page.evaluate(FRAMES)
        wait_in_page(page, f"{FRAMES} >= {seen + 30}", timeout=TIMEOUT)
    finally:
        agent.kill()
        agent.wait(timeout=TIMEOUT)
        hub.stop()


def aiortc_offer(audio: bool = False) -> str:
    """A viewer's offer made by aiortc (no browser needed): receive video (and with
    ``audio``, send sound, as the page does for talk)."""
    import asyncio

    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    async def make():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        if audio:
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


def candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_answer_offers_host_candidates_only_and_no_stun(site):
    assert site.live.ice_servers == []
    answer = api(site, "owner", "POST", "/api/devices/front-door/live", json={
        "type": "offer", "sdp": aiortc_offer()})  # fmt: skip
    assert answer.status_code == 201, answer.text
    lines = candidates(answer.json()["sdp"])
    assert lines and all(" typ host" in line for line in lines), lines
    assert "H264" in answer.json()["sdp"] and "VP8" not in answer.json()["sdp"]
    assert api(site, "owner", "DELETE", f"/api/live/{answer.json()['session']}").status_code == 204
    wait_for(lambda: not site.live.viewers("front-door"), what="the session to end")


def test_ice_addresses_narrow_what_the_hub_offers(tmp_path, broker, mock_pins):
    import aioice.ice

    from porch.core.config import LiveSettings

    original = aioice.ice.get_host_addresses
    hub = start_hub(tmp_path / "hub", broker, live=LiveSettings(ice_addresses=["127.0.0.1"]))
    try:
        hub.accounts.add_user("owner", PASSWORD, "owner")
        with run_agent(device_config(tmp_path, broker)) as agent:
            wait_for(agent.link.connected.is_set, what="the device")
            wait_for(lambda: hub.devices(), what="the hub to know the device")
            answer = api(hub, "owner", "POST", "/api/devices/front-door/live", json={
                "type": "offer", "sdp": aiortc_offer()})  # fmt: skip
            assert answer.status_code == 201, answer.text
            lines = candidates(answer.json()["sdp"])
            assert lines and all(" 127.0.0.1 " in line for line in lines), lines
    finally:
        hub.stop()
        aioice.ice.get_host_addresses = original


@needs_chromium
@pytest.mark.parametrize("how", ENDINGS)
def test_a_session_that_ends_ends_its_live_view_within_a_second(site, browser, how):
    page = open_live(browser, site.url, "member")
    wait_in_page(page, PLAYING, timeout=TIMEOUT)
    frames_keep_rising(page, 1)
    assert len(site.live.viewers("front-door")) == 1

    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    end_session(site, how, cookie)
    asked = time.monotonic()
    wait_for(lambda: not site.live.viewers("front-door"), timeout=5, what="the view to end")
    assert time.monotonic() - asked < 1.0, "the hub ended the view within a second"
    page.wait_for_timeout(500)
    seen = page.evaluate(FRAMES)
    page.wait_for_timeout(2000)
    assert page.evaluate(FRAMES) <= seen, "the page decodes nothing more (0: the page let go)"
    page.wait_for_selector("#live-state:text('ended')", timeout=TIMEOUT * 1000)
    assert "sign in again" in page.inner_text("#live-note")
    wait_for(lambda: not site.agent.live.active, what="the doorbell to stop streaming")
    assert not site.live.viewers("front-door"), "the page did not come back"


def test_a_view_nobody_renews_lapses_and_only_its_session_renews_it(tmp_path, broker, mock_pins):
    from porch.core.config import LiveSettings

    hub = start_hub(tmp_path / "hub", broker, live=LiveSettings(viewer_lease_s=5))
    try:
        hub.accounts.add_user("member", PASSWORD, "member")
        with run_agent(device_config(tmp_path, broker)) as agent:
            wait_for(agent.link.connected.is_set, what="the device")
            wait_for(lambda: hub.devices(), what="the hub to know the device")
            token = hub.accounts.open_session("member")
            headers = {CSRF_HEADER: hub.accounts.session(token).csrf}
            client = httpx.Client(base_url=hub.url, cookies={SESSION_COOKIE: token},
                                  headers=headers, timeout=TIMEOUT)  # fmt: skip
            kept = client.post("/api/devices/front-door/live",
                               json={"type": "offer", "sdp": aiortc_offer()}).json()  # fmt: skip
            lapsing = client.post("/api/devices/front-door/live",
                                  json={"type": "offer", "sdp": aiortc_offer()}).json()  # fmt: skip
            assert kept["lease_s"] == lapsing["lease_s"] == 5
            other = api(hub, "member", "POST", f"/api/live/{kept['session']}/lease")
            assert other.status_code == 404, "another session of the same person cannot renew it"
            started = time.monotonic()
            while time.monotonic() - started < 9:
                assert client.post(f"/api/live/{kept['session']}/lease").status_code == 200
                time.sleep(1)
            live = {s.session_id for s in hub.live.viewers("front-door")}
            assert live == {kept["session"]}, "the unrenewed view lapsed, the renewed one holds"
            client.close()
    finally:
        hub.stop()


def test_a_view_answered_while_its_session_ends_is_not_kept(site, monkeypatch):
    """The member is removed while the hub is still answering their offer (after the role
    check, before the view is listed): the view is ended there and then, not at its lease."""
    token = site.accounts.open_session("member")
    answer = site.live.open

    async def removed_meanwhile(*args, **kwargs):
        opened = await answer(*args, **kwargs)
        site.accounts.remove_user("member")
        return opened

    monkeypatch.setattr(site.live, "open", removed_meanwhile)
    reply = httpx.post(site.url + "/api/devices/front-door/live",
                       json={"type": "offer", "sdp": aiortc_offer()},
                       cookies={SESSION_COOKIE: token},
                       headers={CSRF_HEADER: site.accounts.session(token).csrf},
                       timeout=TIMEOUT)  # fmt: skip
    assert reply.status_code == 401, reply.text
    assert not site.live.viewers("front-door")
