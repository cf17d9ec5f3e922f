"""Press (mock pin) → the Web Push message at a push service on loopback, over many presses;
baseline in the same run: the same hub's own push of a message it is handed directly
(encryption, VAPID and the HTTP POST alone, without the doorbell, MQTT and ingest).

    .venv/bin/python bench/push_latency.py [--presses 200]

The push service is tests/support/push_service.py's (it records when each message arrives); a real
one adds its own delivery to the phone, which no benchmark here can see. Target (issue 12):
p99 < 300 ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import loopback_home
from press_latency import summary

from porch.core.config import ClipSettings, MotionSettings, PushSettings
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent
from tests.support.push_service import PushService


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=200)
    args = parser.parse_args()
    service = PushService()
    with loopback_home(push=PushSettings(allow_loopback=True)) as (tmp, broker, hub):
        try:
            phone = service.subscription("/push/owner-phone")
            keys = phone.json()["keys"]
            hub.push.subscribe("owner", phone.endpoint, keys["p256dh"], keys["auth"])

            base = []
            for index in range(args.presses):
                count, started = len(service.received), time.monotonic()
                hub.push.ring("front-door", f"{index:032x}", time.time())
                wait_for(lambda c=count: len(service.received) > c, what="the push")
                base.append((service.received[-1].at - started) * 1000)

            config = device_config(tmp, broker, motion=MotionSettings(enabled=False),
                                   clips=ClipSettings(preroll_s=1, postroll_s=1))  # fmt: skip
            with run_agent(config, realtime=False) as agent:
                wait_for(agent.link.connected.is_set, what="the doorbell")
                pressed = []
                for _ in range(args.presses):
                    count, started = len(service.received), time.monotonic()
                    agent.doorbell.simulate_press(hold_s=0)
                    wait_for(lambda c=count: len(service.received) > c, what="the push")
                    pressed.append((service.received[-1].at - started) * 1000)
                    time.sleep(0.02)
        finally:
            service.close()
    print(f"{args.presses} presses, one machine, push service on loopback")
    print(summary("push of a given message", base, 30))
    print(summary("press -> push service", pressed, 30))


if __name__ == "__main__":
    main()
