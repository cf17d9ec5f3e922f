"""Debian's headless Chromium through Playwright (never a downloaded browser), and what a
test does in it: sign in, wait for the page."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.common import TIMEOUT
from tests.support.hub import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    # Plain host candidates instead of mDNS names: deterministic, and still this machine only.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
needs_chromium = pytest.mark.skipif(
    not shutil.which("chromium"),
    reason="Debian's chromium is not installed (make test installs it)",
)


def launch_chromium(playwright: Any) -> Any:
    """Debian's headless Chromium through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def sign_in(page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def wait_in_page(page, expression: str, timeout: float = TIMEOUT) -> None:
    """Wait until a JavaScript expression is truthy in the page. Playwright's own
    wait_for_function compiles its predicate inside the page, which the hub's
    Content-Security-Policy (no eval) rightly refuses; evaluate() is not subject to it."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} still false after {timeout:.0f} s")
        page.wait_for_timeout(20)
