"""Password checks throttled as OWASP advises, over real HTTP from several loopback
addresses: counted before the hash, per address, slowed per account but never locked."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest
from conftest import PASSWORD, start_hub

from porch.hub.accounts import ROLES
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE


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
    # and the account is slowed down, but the owner at home signs in with the right one.
    hub.throttle.max_delay_s = 2.0  # the real cap is 15 s; the rule is the same
    for n in range(2, 7):
        with client_from(hub, f"127.0.0.{n}") as stranger:
            for _ in range(5):
                assert login(stranger, "owner", "not the password").status_code == 401
            assert login(stranger, "owner", "not the password").status_code == 429
    before = len(hub.checks)
    with client_from(hub, "127.0.0.9") as owner:
        started = time.monotonic()
        response = login(owner, "owner", PASSWORD)
        took = time.monotonic() - started
    assert response.status_code == 303, response.text
    assert SESSION_COOKIE in response.headers["set-cookie"]
    assert took >= 2.0, "the account's checks are slowed after many failures"
    assert len(hub.checks) == before + 1


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
