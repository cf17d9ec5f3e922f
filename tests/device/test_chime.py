"""The chime rings whatever else is down: no broker at all, the presses kept for later."""

from __future__ import annotations

from porch.localbroker import LocalBroker
from tests.support.common import wait_for
from tests.support.device import chime_closings, device_config, run_agent


def test_chime_rings_with_no_broker_at_all(tmp_path, mock_pins):
    # Nothing listens on this port: the chime must not care.
    config = device_config(tmp_path, LocalBroker(tmp_path / "unused"))
    with run_agent(config) as agent:
        for _ in range(3):
            agent.doorbell.simulate_press(hold_s=0.01)
            wait_for(lambda: not agent.doorbell.chime.is_active, what="the chime to stop")
        assert chime_closings(mock_pins, config.gpio.chime_pin) == 3
        assert len(agent.outbox) == 3
