"""The hub's tests: its web app, consent, export, push, Home Assistant and area requests.
Where a hub needs footage a simulated doorbell makes it, so they need the whole install."""

from tests.support.browser import browser  # noqa: F401  (fixtures)
from tests.support.device import mock_pins  # noqa: F401
from tests.support.hub import furnished_site, home, hub, hub_service  # noqa: F401
