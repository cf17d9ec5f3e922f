"""In a real headless Chromium (Debian's): sign in, a press on the mock pin shows the banner
without a reload, and the resulting clip plays."""

from __future__ import annotations

from porch.core.config import ClipSettings
from tests.support.browser import needs_chromium, sign_in, wait_in_page
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent
from tests.support.hub import PASSWORD, start_hub

pytestmark = needs_chromium


def test_press_shows_the_banner_and_the_clip_plays(tmp_path, broker, mock_pins, browser):
    hub = start_hub(tmp_path / "hub", broker)
    hub.accounts.add_user("owner", PASSWORD, "owner")
    config = device_config(tmp_path, broker, clips=ClipSettings(preroll_s=2, postroll_s=2))
    try:
        with run_agent(config) as agent:
            wait_for(agent.link.connected.is_set, what="the device")
            page = browser.new_page()
            sign_in(page, hub.url, "owner")
            page.wait_for_url(hub.url + "/")
            wait_in_page(
                page, "window.porch && window.porch.events && window.porch.events.readyState === 1"
            )
            wait_for(lambda: agent.media_time > 2.5, what="pre-roll")
            loads = page.evaluate("performance.getEntriesByType('navigation').length")
            assert not page.is_visible("#ring-banner"), "no banner before a ring"

            agent.doorbell.simulate_press()  # the pin, not the page
            page.wait_for_selector("#ring-banner", state="visible", timeout=15_000)
            page.wait_for_selector("#ring-snapshot", state="visible", timeout=15_000)
            assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
            assert "front-door" in page.inner_text("#ring-where")

            page.wait_for_selector("#timeline a.watch", timeout=60_000)  # the clip arrived
            page.click("#timeline a.watch")
            page.wait_for_selector("video#clip")
            assert not page.is_visible("#ring-banner"), "a new page starts without the banner"
            wait_in_page(page, "document.querySelector('video#clip').currentTime > 1", timeout=30)
            assert page.evaluate("document.querySelector('video#clip').videoWidth") == 320
    finally:
        hub.stop()


def test_installer_sees_devices_and_no_footage(tmp_path, broker, mock_pins, browser):
    hub = start_hub(tmp_path / "hub", broker)
    hub.accounts.add_user("ivan", PASSWORD, "installer")
    config = device_config(tmp_path, broker)
    try:
        with run_agent(config) as agent:
            wait_for(agent.link.connected.is_set, what="the device")
            page = browser.new_page()
            sign_in(page, hub.url, "ivan")
            page.wait_for_url(hub.url + "/devices")
            page.wait_for_selector("tr[data-device='front-door'] .state.online")
            assert page.locator("img, video").count() == 0
            page.goto(hub.url + "/")
            assert "may not use this page" in page.inner_text("main")
    finally:
        hub.stop()
