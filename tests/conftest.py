"""Fixtures every part's tests may use; needs only the ``porch`` package itself, so that
tests/device runs where only a doorbell's install is (``porch[device]``)."""

from tests.support.common import broker, world  # noqa: F401  (fixtures)
