"""Password checks throttled as OWASP advises, over real HTTP from several loopback
addresses: counted before the hash, per address, slowed per account but never locked."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest

from porch.hub.accounts import ROLES
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.hub import PASSWORD, start_hub


@pytest.fixture
def hub(tmp_path, broker):
    service = start_hub(tmp_path / "hub", broker)
    for role in ROLES:
        service.accounts.add_user(role, PASSWORD, role)
    checks = []
    real = service.accounts.check_password
    lock = threading.Lock()

    def counted(username: str, password: str):
        with lock:
            checks.append(username)
        return real(username, password)

    service.accounts.check_password = counted  # what reaches Argon2
    service.checks = checks
    yield service
    service.stop()


def client_from(hub, address: str, **kw):
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=hub.url, transport=transport, timeout=120, **kw)


def login(client, username: str, password: str) -> httpx.Response:
    form = client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
    return client.post("/login", data={"username": username, "password": password,
                                       "nonce": nonce, "next": "/"})  # fmt: skip


def test_parallel_guesses_from_one_address_do_not_all_reach_argon2(hub):
    # 40 wrong passwords at once: each is counted before its hash, so at most the per-address
    # allowance is ever hashed; the rest are refused at once.
    with client_from(hub, "127.0.0.2") as client:
        form = client.get("/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
        cookies = dict(client.cookies)

    async def guess(client: httpx.AsyncClient, i: int) -> int:
        data = {"username": "owner", "password": f"guess number {i}", "nonce": nonce}
        return (await client.post("/login", data=data)).status_code

    async def burst() -> list[int]:
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(
            base_url=hub.url, transport=transport, cookies=cookies, timeout=120,
            limits=httpx.Limits(max_connections=40),
        ) as client:  # fmt: skip
            return await asyncio.gather(*(guess(client, i) for i in range(40)))

    codes = asyncio.run(burst())
    assert codes.count(401) + codes.count(429) == 40, codes
    assert len(hub.checks) <= hub.throttle.per_address, f"{len(hub.checks)} reached Argon2"
    assert codes.count(429) >= 40 - hub.throttle.per_address


def test_strangers_cannot_keep_the_owner_out(hub):
    # Five addresses, five wrong passwords each, all for "owner": each address is stopped,
    # and the account's checks are spaced out; the owner, from a browser that has signed in
    # before, goes straight in, and from a new browser after a short wait.
    hub.throttle.max_delay_s = 2.0  # the real cap is 15 s; the rule is the same
    with client_from(hub, "127.0.0.9") as owner:
        assert login(owner, "owner", PASSWORD).status_code == 303  # this browser is known now
    for n in range(2, 7):
        with client_from(hub, f"127.0.0.{n}") as stranger:
            for _ in range(5):
                assert login(stranger, "owner", "not the password").status_code == 401
            assert login(stranger, "owner", "not the password").status_code == 429
    with client_from(hub, "127.0.0.9", cookies=owner.cookies) as known:
        started = time.monotonic()
        assert login(known, "owner", PASSWORD).status_code == 303
        assert time.monotonic() - started < 2.0, "a known browser is not slowed down"
    with client_from(hub, "127.0.0.10") as new_browser:
        response = login(new_browser, "owner", PASSWORD)
    assert response.status_code == 303, response.text
    assert SESSION_COOKIE in response.headers["set-cookie"]


def test_guesses_from_many_addresses_at_once_are_spaced_out(hub):
    # The account is already being guessed at; then 30 guesses arrive at once from 15
    # addresses. Only a few may wait for their turn, one after another; the rest are refused
    # before hashing. The owner's known browser is not held up by any of it.
    hub.throttle.max_delay_s = 1.0
    with client_from(hub, "127.0.0.9") as owner:
        assert login(owner, "owner", PASSWORD).status_code == 303
        cookies = dict(owner.cookies)
    with client_from(hub, "127.0.0.2") as first:
        for _ in range(5):
            assert login(first, "owner", "wrong wrong wrong").status_code == 401
        form = first.get("/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
        login_cookies = dict(first.cookies)
    before = len(hub.checks)

    async def guess(n: int) -> int:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.1.{n % 15 + 1}")
        async with httpx.AsyncClient(base_url=hub.url, transport=transport,
                                     cookies=login_cookies, timeout=120) as client:  # fmt: skip
            data = {"username": "owner", "password": f"guess {n}", "nonce": nonce}
            return (await client.post("/login", data=data)).status_code

    async def flood_and_owner() -> tuple[list[int], int, float]:
        flood = asyncio.gather(*(guess(n) for n in range(30)))
        await asyncio.sleep(0.2)
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.9")
        async with httpx.AsyncClient(base_url=hub.url, transport=transport, cookies=cookies,
                                     timeout=120) as client:  # fmt: skip
            form = await client.get("/login")
            owner_nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
            started = time.monotonic()
            reply = await client.post("/login", data={"username": "owner", "password": PASSWORD,
                                                      "nonce": owner_nonce})  # fmt: skip
            took = time.monotonic() - started
        return await flood, reply.status_code, took

    codes, owner_code, took = asyncio.run(flood_and_owner())
    assert codes.count(429) >= 30 - hub.throttle.max_waiting, codes
    assert len(hub.checks) - before <= hub.throttle.max_waiting + 1, "guesses reached Argon2"
    assert owner_code == 303 and took < 5, f"the owner waited {took:.1f} s"


def test_an_address_that_guesses_many_accounts_is_stopped(hub):
    with client_from(hub, "127.0.0.3") as client:
        names = ("owner", "member", "installer", "requester", "nobody") * 2
        codes = [login(client, name, "wrong wrong wrong").status_code for name in names]
        assert codes == [401] * 10
        assert login(client, "member", PASSWORD).status_code == 429
    with client_from(hub, "127.0.0.4") as elsewhere:
        assert login(elsewhere, "member", PASSWORD).status_code == 303


def test_the_password_retyped_to_confirm_a_decision_counts_too(hub):
    token = hub.accounts.open_session("owner")
    csrf = hub.accounts.session(token).csrf
    headers = {CSRF_HEADER: csrf, "accept": "application/json"}
    request_id = "0" * 16
    with client_from(hub, "127.0.0.5", cookies={SESSION_COOKIE: token}) as client:
        for _ in range(5):
            wrong = client.post(f"/requests/{request_id}/decision", headers=headers,
                                data={"action": "decline", "password": "not mine!"})  # fmt: skip
            assert wrong.status_code == 403, wrong.text
        throttled = client.post(f"/requests/{request_id}/decision", headers=headers,
                                data={"action": "decline", "password": PASSWORD})  # fmt: skip
        assert throttled.status_code == 429
        assert "try again" in throttled.json()["detail"]
        assert login(client, "owner", PASSWORD).status_code == 429, "the same allowance"


@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "iloveyou123", "1234567890"])
def test_common_passwords_are_refused_with_the_rule_shown_first(hub, password):
    link = hub.accounts.new_invite("requester", "owner")
    with client_from(hub, "127.0.0.6") as client:
        form = client.get("/invite", params={"token": link})
        assert "common passwords" in form.text, "the rule is on the form before any attempt"
        refused = client.post("/invite", data={"token": link, "username": "officer",
                                               "password": password})  # fmt: skip
        assert refused.status_code == 400 and "common passwords" in refused.text
        assert f'value="{link}"' in refused.text, "the same form, still usable"
        accepted = client.post("/invite", data={"token": link, "username": "officer",
                                                "password": "a sunny porch in may"})  # fmt: skip
        assert accepted.status_code == 303


def test_the_command_line_refuses_common_passwords_too(hub):
    from porch.hub.accounts import AccountError

    with pytest.raises(AccountError, match="common passwords"):
        hub.accounts.add_user("neighbour", "password123", "member")


def test_an_ipv6_household_is_one_address():
    from porch.hub.throttle import address_key

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7" == address_key("192.0.2.7")
