"""Security headers on every response, and every page, opened by every role in Chromium,
without a single Content-Security-Policy violation."""

from __future__ import annotations

import httpx
import pytest

from porch.hub.accounts import ROLES
from porch.hub.web.auth import SESSION_COOKIE
from porch.hub.web.headers import CSP
from tests.support.browser import needs_chromium, sign_in
from tests.support.hub import PASSWORD, site_pages

WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e =>
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture(scope="module")
def site(furnished_site):
    return furnished_site


def test_every_kind_of_response_carries_the_headers(site):
    row = site.web_db.timeline(1)[0]
    token = site.accounts.open_session("owner")
    paths = ["/login", "/", "/static/porch.js", f"/clips/{row['clip_id']}/video.mp4",
             "/api/events", "/no-such-page", f"/live/{row['device_id']}"]  # fmt: skip
    with httpx.Client(base_url=site.url, cookies={SESSION_COOKIE: token}) as client:
        for path in paths:
            response = client.get(path)
            headers = response.headers
            assert headers["content-security-policy"] == CSP, path
            assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            permissions = headers["permissions-policy"]
            assert "camera=()" in permissions
            talk = path.startswith("/live/")
            assert ("microphone=(self)" if talk else "microphone=()") in permissions, path
            assert "strict-transport-security" not in headers, "plain HTTP: no HSTS"
        with client.stream("GET", "/events/stream") as stream:
            assert stream.headers["content-security-policy"] == CSP


def pages(site) -> list[str]:
    return list(site_pages(site))


@needs_chromium
@pytest.mark.parametrize("role", ROLES)
def test_every_page_as_every_role_has_no_csp_violation(site, browser, role):
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    console = []
    page.on("console", lambda m: console.append(m.text))
    try:
        for path in ["/login", *pages(site)]:
            if path == "/login":
                page.goto(site.url + path)
                page.wait_for_load_state("networkidle")
                sign_in(page, site.url, role)
                continue
            page.goto(site.url + path)
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)  # scripts run on load; the live page starts its stream
            violations = page.evaluate("window.__csp")
            assert violations == [], f"{role} on {path}: {violations}"
    finally:
        context.close()
    refused = [text for text in console if "Content Security Policy" in text]
    assert refused == [], refused


@needs_chromium
def test_the_enrollment_page_and_its_qr_code_keep_the_policy(home, browser):
    home.hub.accounts.add_user("installer", PASSWORD, "installer")
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    try:
        sign_in(page, home.hub.url, "installer")
        page.goto(home.hub.url + "/devices")
        page.fill("#enroll-form input[name=name]", "side-door")
        page.click("#enroll-form button[type=submit]")
        page.wait_for_load_state("load")
        assert page.locator("#enroll-qr svg").count() == 1
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


def test_even_an_internal_error_carries_the_headers(site, monkeypatch):
    def broken() -> list:
        raise RuntimeError("a bug")

    monkeypatch.setattr(site, "devices", broken)
    token = site.accounts.open_session("owner")
    with httpx.Client(base_url=site.url, cookies={SESSION_COOKIE: token}) as client:
        response = client.get("/api/devices")
    assert response.status_code == 500
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
