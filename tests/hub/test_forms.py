"""Forms as a person fills them: the same length limits in the page as on the server, any
refusal coming back as the page filled in with the reason (never a JSON 422 page), and long
unbroken words that wrap instead of widening the page on a phone."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from porch.hub.accounts import ROLES
from porch.hub.consent import FIELD_LIMITS
from tests.support.browser import needs_chromium, sign_in
from tests.support.hub import PASSWORD, api, start_hub

HTML = {"accept": "text/html,application/xhtml+xml"}


def local(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def hub(tmp_path, broker):
    service = start_hub(tmp_path / "hub", broker)
    for role in ROLES:
        service.accounts.add_user(role, PASSWORD, role)
    service.db.record_status(
        __import__("porch.core.wire", fromlist=["Status"]).Status(
            device_id="front-door", state="online"
        )
    )
    yield service
    service.stop()


def form(**changes) -> dict:
    now = time.time()
    base = {"name": "Officer Dibble", "organisation": "Ankh Police", "contact": "d@example",
            "reason": "a parcel theft", "legal_basis": "warrant", "legal_reference": "W-7",
            "start": local(now - 3600), "end": local(now - 60), "devices": "all"}  # fmt: skip
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"reason": "x" * (FIELD_LIMITS["reason"] + 1)}, "Why is too long: at most 4000"),
        ({"organisation": "y" * 201}, "Organisation is too long: at most 200"),
        ({"start": local(time.time() + 3600), "end": local(time.time() + 7200)},
         "the window starts in the future"),
        ({"expires_days": "900"}, "The request lapses after"),
        ({"organisation": "Ankh\x1b[31m Police"},
         "Organisation holds an invisible or control character (U+001B)"),
        ({"reason": "a parcel\u202e theft"}, "Why holds an invisible or control character"),
    ],
)  # fmt: skip
def test_a_refused_request_comes_back_as_the_page_filled_in(hub, changes, reason):
    sent = form(**changes)
    page = api(hub, "requester", "POST", "/requests", data=sent, headers=HTML)
    assert page.status_code == 400, page.text[:300]
    assert page.headers["content-type"].startswith("text/html"), "never a JSON 422 page"
    assert reason in page.text
    assert 'value="Officer Dibble"' in page.text and "W-7" in page.text, "the form, filled in"
    assert hub.consent.all() == [], "nothing was filed"


def test_an_api_client_still_gets_the_errors_as_json(hub):
    sent = form(reason="x" * 5000)
    response = api(hub, "requester", "POST", "/requests", data=sent,
                   headers={"accept": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "reason"


@needs_chromium
def test_the_form_limits_match_the_servers_and_long_words_wrap_on_a_phone(hub, browser):
    word = "A" * 3000  # a pasted hash, a URL, or someone leaning on a key
    filed = hub.consent.file("requester", "Officer Dibble", "Ankh Police", word[:200], word,
                             "warrant", "W-7", ["front-door"], time.time() - 3600,
                             time.time() - 60)  # fmt: skip
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, hub.url, "requester")
        page.goto(hub.url + "/requests/new")
        for field, limit in FIELD_LIMITS.items():
            if field == "message":
                continue
            found = page.get_attribute(f"#request-form [name={field}]", "maxlength")
            assert found == str(limit), f"{field}: {found} in the page, {limit} on the server"
        for role in ("requester", "owner"):
            if role == "owner":
                sign_in(page, hub.url, "owner")
            page.goto(f"{hub.url}/requests/{filed.request_id}")
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 390, f"{role}: the page is {wide} px wide on a 390 px screen"
    finally:
        context.close()
