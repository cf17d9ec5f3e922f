"""The household from the web: the owner invites members and installers, sees and removes
them; everyone changes their own password and ends their own sessions; doorbells get names."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.hub import PASSWORD, api, hub_with_a_ring, start_hub


@pytest.fixture
def site(tmp_path, broker, mock_pins):
    service = hub_with_a_ring(tmp_path, broker)
    yield service
    service.stop()


def signed_in(site, username: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=site.url, timeout=60)
    form = client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
    reply = client.post("/login", data={"username": username, "password": password,
                                        "nonce": nonce, "next": "/"})  # fmt: skip
    assert reply.status_code == 303, reply.text
    return client


def post(client: httpx.Client, site, path: str, **data) -> httpx.Response:
    csrf = site.accounts.session(client.cookies[SESSION_COOKIE]).csrf
    return client.post(path, data=data, headers={CSRF_HEADER: csrf})


@pytest.mark.parametrize("role", ["member", "installer"])
def test_the_owner_invites_and_removes_household_members(site, role):
    owner = signed_in(site, "owner")
    page = post(owner, site, "/household/invite", role=role)
    link = re.search(r"(http://[^\s<]+/invite\?token=[\w-]+)", page.text).group(1)
    assert ("an installer" if role == "installer" else "a member") in page.text
    with httpx.Client(timeout=60) as stranger:
        form = stranger.get(link)
        assert (form.status_code == 200 and "never sees footage" in form.text) or role == "member"
        token = link.rsplit("=", 1)[1]
        made = stranger.post(link.split("?")[0], data={"token": token, "username": "newbie",
                                                       "password": "a long walk home"})  # fmt: skip
        assert made.status_code == 303
    assert {u["username"]: u["role"] for u in site.accounts.users()}["newbie"] == role
    newbie = signed_in(site, "newbie", "a long walk home")
    assert newbie.get("/account").status_code == 200
    listing = owner.get("/account")
    assert 'data-user="newbie"' in listing.text
    removed = post(owner, site, "/household/newbie/remove")
    assert removed.status_code == 303
    assert newbie.get("/api/events").status_code == 401, "a removed account's session ends"
    assert "newbie" not in {u["username"] for u in site.accounts.users()}


def test_only_the_owner_manages_the_household_and_the_last_owner_stays(site):
    for role in ("member", "installer", "requester"):
        assert (
            api(site, role, "POST", "/household/invite", data={"role": "member"}).status_code == 403
        )
        assert api(site, role, "POST", "/household/member/remove").status_code == 403
    owner = signed_in(site, "owner")
    assert post(owner, site, "/household/invite", role="owner").status_code == 422
    kept = post(owner, site, "/household/owner/remove")
    assert kept.status_code == 409 and "last owner" in kept.text


def test_everyone_changes_their_own_password(site):
    member = signed_in(site, "member")
    elsewhere = signed_in(site, "member")  # the same person on another device
    wrong = post(member, site, "/account/password", current="not it at all",
                 new="a brand new phrase", again="a brand new phrase")  # fmt: skip
    assert wrong.status_code == 403 and "not your current password" in wrong.text
    differ = post(member, site, "/account/password", current=PASSWORD,
                  new="a brand new phrase", again="a brand new phrasE")  # fmt: skip
    assert differ.status_code == 400
    common = post(member, site, "/account/password", current=PASSWORD,
                  new="password123", again="password123")  # fmt: skip
    assert common.status_code == 400 and "common passwords" in common.text
    done = post(member, site, "/account/password", current=PASSWORD,
                new="a brand new phrase", again="a brand new phrase")  # fmt: skip
    assert done.status_code == 200 and "password-done" in done.text
    assert member.get("/account").status_code == 200, "this session goes on"
    assert elsewhere.get("/api/events").status_code == 401, "the other sessions end"
    assert signed_in(site, "member", "a brand new phrase").get("/").status_code == 200


def test_everyone_sees_and_ends_their_own_sessions(site):
    phone = signed_in(site, "member")
    laptop = signed_in(site, "member")
    page = laptop.get("/account")
    ids = re.findall(r'data-session="([0-9a-f]{16})"', page.text)
    assert len(ids) >= 2 and "(this browser)" in page.text
    others = [i for i in ids if f'data-session="{i}">Since' in page.text]
    current = site.accounts.sessions("member", laptop.cookies[SESSION_COOKIE])
    phone_id = next(s["id"] for s in current if not s["current"] and s["id"] in others)
    assert post(laptop, site, f"/account/sessions/{phone_id}/end").status_code == 303
    assert phone.get("/api/events").status_code == 401
    # nobody ends another person's session: the owner's id is not the member's to end
    owner_sessions = site.accounts.sessions("owner")
    if owner_sessions:
        post(laptop, site, f"/account/sessions/{owner_sessions[0]['id']}/end")
        assert len(site.accounts.sessions("owner")) == len(owner_sessions)


def test_the_owner_names_the_doorbells(site):
    named = {"device_id": "front-door", "name": "Front door"}
    assert api(site, "member", "POST", "/devices/name", data=named).status_code == 403
    owner = signed_in(site, "owner")
    renamed = post(owner, site, "/devices/name", device_id="front-door", name="  Front   door ")
    assert renamed.status_code == 303
    assert "Ring</strong> at Front door" in owner.get("/").text
    assert '<span class="device-name">Front door</span>' in owner.get("/devices").text
    too_long = post(owner, site, "/devices/name", device_id="front-door", name="x" * 65)
    assert too_long.status_code == 422
    unknown = post(owner, site, "/devices/name", device_id="no-such-door", name="Shed")
    assert unknown.status_code == 404
    reversed_ = post(owner, site, "/devices/name", device_id="front-door", name="Front\u202erood")
    assert reversed_.status_code == 400 and "U+202E" in reversed_.text
    assert '<span class="device-name">Front door</span>' in owner.get("/devices").text


def race(url: str, path: str, token: str, names: list[str]) -> list[int]:
    """The same one-time link sent at once by as many browsers as ``names``."""
    start = threading.Barrier(len(names))

    def submit(name: str) -> int:
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            data = {"token": token, "username": name, "password": PASSWORD}
            return client.post(path, data=data).status_code

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(submit, names))


def test_a_one_time_link_makes_one_account_however_many_use_it_at_once(tmp_path, broker):
    hub = start_hub(tmp_path / "hub", broker)
    try:
        setup = hub.accounts.new_setup_token()
        statuses = race(hub.url, "/setup", setup, [f"owner{n}" for n in range(4)])
        assert sorted(statuses) == [303, 404, 404, 404], statuses
        assert [u["role"] for u in hub.accounts.users()] == ["owner"]

        owner = hub.accounts.users()[0]["username"]
        invite = hub.accounts.new_invite("member", owner)
        statuses = race(hub.url, "/invite", invite, [f"member{n}" for n in range(6)])
        assert sorted(statuses) == [303] + [404] * 5, statuses
        assert len(hub.accounts.users()) == 2

        # A refused account gives the link back: a name taken, then a free one.
        again = hub.accounts.new_invite("installer", owner)
        assert race(hub.url, "/invite", again, [owner]) == [400]
        assert race(hub.url, "/invite", again, ["fitter"]) == [303]
        assert race(hub.url, "/invite", again, ["fitter2"]) == [404]
        assert {u["username"]: u["role"] for u in hub.accounts.users()}["fitter"] == "installer"
    finally:
        hub.stop()
