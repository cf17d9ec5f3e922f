"""A session that ends takes its open pages' event streams with it: signed out, ended from
the account page, a password changed elsewhere or the account removed, the stream of ring
events closes within a second, and the page in Chromium hears no later ring."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from porch.hub.accounts import ROLES
from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.browser import needs_chromium, sign_in, wait_in_page
from tests.support.common import TIMEOUT, wait_for
from tests.support.hub import ENDINGS, PASSWORD, end_session, start_hub


@pytest.fixture
def hub(tmp_path, broker):
    service = start_hub(tmp_path / "hub", broker)
    for role in ROLES:
        service.accounts.add_user(role, PASSWORD, role)
    yield service
    service.stop()


@pytest.mark.parametrize("how", ENDINGS)
def test_the_event_stream_of_a_session_that_ends_closes_within_a_second(hub, how):
    cookie = hub.accounts.open_session("member")
    opened, closed = threading.Event(), threading.Event()
    lines: list[str] = []

    def read() -> None:
        with httpx.stream("GET", hub.url + "/events/stream", cookies={SESSION_COOKIE: cookie},
                          timeout=TIMEOUT) as stream:  # fmt: skip
            for line in stream.iter_lines():
                lines.append(line)
                opened.set()
        closed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(TIMEOUT)
    hub.broadcaster.publish("ring", {"event_id": "a" * 32})
    wait_for(lambda: any("a" * 32 in line for line in lines), what="a ring on the stream")
    end_session(hub, how, cookie)
    asked = time.monotonic()
    assert closed.wait(5), "the stream stayed open"
    assert time.monotonic() - asked < 1.0
    again = httpx.get(hub.url + "/events/stream", cookies={SESSION_COOKIE: cookie}, timeout=TIMEOUT)
    assert again.status_code == 401


@needs_chromium
@pytest.mark.parametrize("how", ["removed", "ended"])
def test_an_open_page_hears_no_ring_after_its_session_ended(hub, browser, how):
    page = browser.new_page()
    sign_in(page, hub.url, "member")
    wait_in_page(page, "window.porch.events && window.porch.events.readyState === 1")
    hub.broadcaster.publish("ring", {"event_id": "b" * 32, "device_id": "front-door",
                                     "name": "front-door", "ts": time.time()})  # fmt: skip
    wait_in_page(page, f"document.getElementById('ring-banner').dataset.event === '{'b' * 32}'")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    end_session(hub, how, cookie)
    wait_in_page(page, "window.porch.events.readyState === 2")  # CLOSED: refused, not retrying
    wait_for(lambda: hub.broadcaster.listeners == 0, what="no stream left open")
    hub.broadcaster.publish("ring", {"event_id": "c" * 32, "device_id": "front-door",
                                     "name": "front-door", "ts": time.time()})  # fmt: skip
    page.wait_for_timeout(1000)
    assert page.evaluate("document.getElementById('ring-banner').dataset.event") == "b" * 32


def test_a_phone_whose_session_is_ended_is_notified_no_more(tmp_path, broker):
    from porch.core.config import PushSettings
    from tests.support.push_service import PushService

    service = PushService()
    hub = start_hub(tmp_path / "pushing", broker, push=PushSettings(allow_loopback=True))
    try:
        hub.accounts.add_user("member", PASSWORD, "member")
        lost, kept = hub.accounts.open_session("member"), hub.accounts.open_session("member")
        for token, path in ((lost, "/push/lost-phone"), (kept, "/push/laptop")):
            sent = httpx.post(hub.url + "/api/push/subscriptions",
                              json=service.subscription(path).json(),
                              cookies={SESSION_COOKIE: token},
                              headers={CSRF_HEADER: hub.accounts.session(token).csrf},
                              timeout=TIMEOUT)  # fmt: skip
            assert sent.status_code == 200, sent.text
        end_session(hub, "ended", lost)  # "End" beside the lost phone's session
        assert hub.push.subscriptions("member") == 1
        hub.push.ring("front-door", "e" * 32, time.time())
        wait_for(lambda: service.received, what="the laptop's notification")
        hub.push.close()
        assert [r.path for r in service.received] == ["/push/laptop"]
    finally:
        hub.stop()
        service.close()
