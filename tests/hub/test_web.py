"""The web app over real HTTP: every route × every role, sessions, CSRF, rate limits, media."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from porch.hub.accounts import ROLES
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.hub import PASSWORD, hub_with_a_ring, start_hub

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/setup"), ("POST", "/setup"),
          ("GET", "/invite"), ("POST", "/invite"), ("GET", "/manifest.webmanifest"),
          ("GET", "/sw.js")}  # fmt: skip


@pytest.fixture
def site(tmp_path, broker, mock_pins):
    """A hub with one account per role and one stored clip from a real (simulated) doorbell."""
    pressed = []
    service = hub_with_a_ring(tmp_path, broker, simulated_press=lambda: pressed.append(1))
    service.pressed = pressed
    yield service
    service.stop()


def session_for(service, role: str) -> tuple[str, str]:
    """(cookie, csrf) of a fresh session of ``role``."""
    token = service.accounts.open_session(role)
    return token, service.accounts.session(token).csrf


def status(service, method: str, path: str, role: str | None, csrf: bool = True, **kw) -> int:
    cookies, headers = {}, {"accept": "application/json"}
    if role is not None:
        token, token_csrf = session_for(service, role)
        cookies[SESSION_COOKIE] = token
        if csrf:
            headers[CSRF_HEADER] = token_csrf
    headers.update(kw.pop("headers", {}))
    with httpx.Client(base_url=service.url, cookies=cookies, timeout=30) as client:  # noqa: SIM117
        with client.stream(method, path, headers=headers, **kw) as response:
            return response.status_code


def api_routes(routes) -> list[APIRoute]:
    """Every route of the app, the routers it includes opened up (FastAPI keeps an included
    router as one entry that holds its own routes; none is included with a prefix)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


def route_roles(route: APIRoute):
    for dependency in route.dependant.dependencies:
        call = dependency.call
        if hasattr(call, "roles"):
            return call.roles, call.page
    return None, None


def test_every_route_admits_exactly_its_roles(site):
    timeline = site.web_db.timeline(1)[0]
    ids = {
        "clip_id": timeline["clip_id"],
        "event_id": timeline["event_id"],
        "device_id": "front-door",
        "live_id": "a" * 22,
        "request_id": "0" * 16,
        "session_id": "0" * 16,
        "username": "nobody",
    }
    checked = 0
    routes = api_routes(site.app.routes)
    assert len(routes) >= 56, "every audience's router is walked"
    for route in routes:
        for method in route.methods:
            roles, page = route_roles(route)
            if (method, route.path) in PUBLIC:
                assert roles is None
                continue
            assert roles is not None, f"{method} {route.path} declares no roles"
            path = route.path.format(**ids)
            anonymous = status(site, method, path, None)
            assert anonymous == (302 if page else 401), f"anonymous {method} {path}"
            for role in ROLES:
                got = status(site, method, path, role)
                if role in roles:
                    assert got not in (401, 403), f"{role} refused {method} {path}"
                else:
                    assert got == 403, f"{role} got {got} for {method} {path}"
                checked += 1
    assert checked >= 4 * 12


def test_installer_and_requester_reach_no_footage_by_any_url(site):
    row = site.web_db.timeline(1)[0]
    clip, event = row["clip_id"], row["event_id"]
    urls = [
        f"/clips/{clip}",
        f"/clips/{clip}/video.mp4",
        f"/clips/{clip}/thumbnail.jpg",
        f"/events/{event}/snapshot.jpg",
        f"/events/{event}/before.jpg",
        "/devices/front-door/doorstep",  # drawn on the doorbell's picture: the owner's only
        "/events/stream",
        "/api/events",
        "/",
        f"/clips/{clip}/video.mp4?download=1",
        f"/clips/{clip.upper()}/video.mp4",
        f"/static/../clips/{clip}/video.mp4",
        f"/static/%2e%2e/clips/{clip}/thumbnail.jpg",
        "/live/front-door",
        "/api/devices/front-door/live",
    ]
    for role in ("installer", "requester"):
        for url in urls:
            got = status(site, "GET", url, role)
            assert got in (403, 404, 422), f"{role} got {got} for {url}"
    # and the pages an installer may see name no clip or snapshot
    token, _ = session_for(site, "installer")
    for page in ("/devices", "/account"):
        html = httpx.get(site.url + page, cookies={SESSION_COOKIE: token}).text
        assert clip not in html and event not in html and "/clips/" not in html


def login(site, username: str, password: str, client: httpx.Client) -> httpx.Response:
    form = client.get("/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
    return client.post(
        "/login", data={"username": username, "password": password, "nonce": nonce, "next": "/"}
    )


def test_login_sets_a_strict_http_only_cookie_and_lands_by_role(site):
    for role, home in (("owner", "/"), ("installer", "/devices"), ("requester", "/requests")):
        with httpx.Client(base_url=site.url) as client:
            response = login(site, role, PASSWORD, client)
            assert response.status_code == 303 and response.headers["location"] == home
            cookie = response.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
            assert client.get(home).status_code == 200


def test_wrong_passwords_hit_the_rate_limit_even_for_the_right_one(site):
    with httpx.Client(base_url=site.url) as client:
        for _ in range(5):
            assert login(site, "member", "wrong password!", client).status_code == 401
        blocked = login(site, "member", PASSWORD, client)
        assert blocked.status_code == 429
        assert SESSION_COOKIE not in blocked.headers.get("set-cookie", "")


def test_login_without_the_forms_nonce_is_refused(site):
    response = httpx.post(
        site.url + "/login",
        data={"username": "owner", "password": PASSWORD, "nonce": "forged"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 403


def test_forged_and_expired_sessions_are_strangers(site):
    forged = {SESSION_COOKIE: "x" * 43}
    assert httpx.get(site.url + "/api/events", cookies=forged).status_code == 401
    page = httpx.get(site.url + "/", cookies=forged, follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"].startswith("/login")
    token, _ = session_for(site, "owner")
    site.web_db.conn.execute("UPDATE sessions SET expires = 0")
    assert httpx.get(site.url + "/api/events", cookies={SESSION_COOKIE: token}).status_code == 401


def test_state_changes_need_the_csrf_token(site):
    clip = site.web_db.timeline(1)[0]["clip_id"]
    before = site.web_db.stored_clip(clip)["keep"]
    assert status(site, "POST", f"/clips/{clip}/keep", "owner", csrf=False) == 403
    wrong = {"headers": {CSRF_HEADER: "not-the-token"}}
    assert status(site, "POST", f"/clips/{clip}/keep", "owner", csrf=False, **wrong) == 403
    assert status(site, "POST", "/demo/press", "owner", csrf=False) == 403
    assert site.web_db.stored_clip(clip)["keep"] == before
    assert site.pressed == []
    assert status(site, "POST", f"/clips/{clip}/keep", "owner") == 303
    assert site.web_db.stored_clip(clip)["keep"] == 1
    assert status(site, "POST", "/demo/press", "member") == 200
    assert site.pressed == [1]


@pytest.mark.parametrize(
    "path",
    [
        "/clips/..%2F..%2F..%2Fetc%2Fpasswd/video.mp4",
        "/clips/%2e%2e%2f%2e%2e%2fhub.sqlite/video.mp4",
        "/clips/../hub.sqlite",
        "/events/..%2Fhub/snapshot.jpg",
        "/clips/0123456789abcdef0123456789abcdef/video.mp4",
    ],
)
def test_path_traversal_and_unknown_ids_get_4xx(site, path):
    assert status(site, "GET", path, "owner") in (404, 422)


def test_range_requests(site):
    clip = site.web_db.timeline(1)[0]["clip_id"]
    token, _ = session_for(site, "member")
    url = f"{site.url}/clips/{clip}/video.mp4"
    cookies = {SESSION_COOKIE: token}
    size = site.web_db.stored_clip(clip)["size_bytes"]
    part = httpx.get(url, cookies=cookies, headers={"range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 0-99/{size}"
    beyond = httpx.get(url, cookies=cookies, headers={"range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416
    assert httpx.get(url, cookies=cookies).content[4:8] == b"ftyp"


def test_setup_link_creates_the_owner_once(tmp_path, broker):
    service = start_hub(tmp_path / "fresh-hub", broker)
    try:
        token = service.accounts.new_setup_token()
        form = {"token": token, "username": "alice", "password": "a long passphrase"}
        with httpx.Client(base_url=service.url) as client:
            assert client.get(f"/setup?token={token}").status_code == 200
            assert client.post("/setup", data=form).status_code == 303
            again = client.post("/setup", data=dict(form, username="mallory"))
            assert again.status_code == 404
            assert client.get(f"/setup?token={token}").status_code == 404
        assert service.accounts.check_password("alice", "a long passphrase") == "owner"
        assert service.accounts.check_password("mallory", "a long passphrase") is None
    finally:
        service.stop()


def test_open_redirect_after_login_is_refused(site):
    with httpx.Client(base_url=site.url) as client:
        form = client.get("/login?next=//evil.example/")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
        assert 'value="/"' in form.text
        response = client.post(
            "/login",
            data={
                "username": "owner",
                "password": PASSWORD,
                "nonce": nonce,
                "next": "//evil.example/",
            },
        )
        assert response.headers["location"] == "/"
