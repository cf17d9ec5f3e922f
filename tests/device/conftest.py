"""The doorbell's tests: they need a doorbell's install (``porch[device]``) and nothing of
the hub's, so they also run on a Pi or in the arm64 userland."""

from tests.support.device import mock_pins  # noqa: F401  (fixtures)
