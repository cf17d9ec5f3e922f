"""A visitor walks up and does not ring: from the first frame they are in view to the person
event on the hub, and to the Web Push message at a push service on loopback, over many
walk-ups on the synthetic porch (a real-time camera, the whole path: motion on the doorbell,
glances over MQTT, the detector, the push). Baseline in the same run: a press of the same
doorbell to its push.

    .venv/bin/python bench/people_latency.py [--walkups 50]

Target (issue 23): p99 < 1 s from the first frame in view to the push.
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
from porch.device.camera.synthetic import Figure, SyntheticScene
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent
from tests.support.push_service import PushService

EVERY_S = 9.0
"""A walk-up every 9 media seconds: in view 7 s, then quiet for the motion to end."""


def walkup(t: float, side: float) -> Figure:
    return Figure([(t, side, 0.75, 0.35), (t + 2, 0.5, 0.95, 0.8), (t + 4, 0.5, 1.0, 0.95),
                   (t + 5, 0.5, 1.0, 0.95), (t + 7, 1.0 - side, 0.75, 0.35)])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walkups", type=int, default=50)
    args = parser.parse_args()
    service = PushService()
    settings = PushSettings(allow_loopback=True, motion_cooldown_s=0)
    with loopback_home(push=settings) as (tmp, broker, hub):
        try:
            phone = service.subscription("/push/owner-phone")
            keys = phone.json()["keys"]
            hub.push.subscribe("owner", phone.endpoint, keys["p256dh"], keys["auth"])
            people: list[float] = []
            person = hub.push.person

            def told(*a, **k) -> None:  # the moment the hub makes the person event
                people.append(time.monotonic())
                person(*a, **k)

            hub.push.person = told  # type: ignore[method-assign]
            first = 3.0
            scene = SyntheticScene(640, 360, 1, [walkup(first + EVERY_S * k, (-0.1, 1.1)[k % 2])
                                                 for k in range(args.walkups)])  # fmt: skip
            config = device_config(tmp, broker, motion=MotionSettings(end_after_s=1.0),
                                   clips=ClipSettings(preroll_s=1, postroll_s=1))  # fmt: skip
            config.camera.width, config.camera.height = 640, 360
            to_event, to_push, pressed = [], [], []
            with run_agent(config, scene) as agent:
                wait_for(agent.link.connected.is_set, what="the doorbell")
                for k in range(args.walkups):
                    t = first + EVERY_S * k
                    in_view = next(s for s in (t + i / 100 for i in range(200)) if scene.truth(s))
                    while agent.media_time < in_view:
                        time.sleep(0.002)
                    seen, pushes, events = time.monotonic(), len(service.received), len(people)
                    wait_for(lambda n=events: len(people) > n, timeout=10,
                             what=f"walk-up {k} as a person")  # fmt: skip
                    wait_for(lambda n=pushes: len(service.received) > n, what="its push")
                    to_event.append((people[-1] - seen) * 1000)
                    to_push.append((service.received[-1].at - seen) * 1000)
                    wait_for(lambda k=k: agent.media_time > first + EVERY_S * (k + 1) - 1.5,
                             timeout=30, what="the porch quiet again")  # fmt: skip
                    count, started = len(service.received), time.monotonic()
                    agent.doorbell.simulate_press(hold_s=0)  # the baseline, between visits
                    wait_for(lambda c=count: len(service.received) > c, what="the ring's push")
                    pressed.append((service.received[-1].at - started) * 1000)
        finally:
            service.close()
    print(f"{args.walkups} walk-ups without a ring, 640x360 at 15 fps, one machine")
    print(summary("press -> push (baseline)", pressed, 30))
    print(summary("in view -> person event", to_event, 30))
    print(summary("in view -> push service", to_push, 30))


if __name__ == "__main__":
    main()
