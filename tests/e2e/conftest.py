"""End-to-end: a whole path across the parts (a press to a page, enrollment, a crash and
recovery, the demo, the packaging). They need everything installed."""

from tests.support.browser import browser  # noqa: F401  (fixtures)
from tests.support.device import mock_pins  # noqa: F401
from tests.support.hub import furnished_site, home, hub, hub_service  # noqa: F401
