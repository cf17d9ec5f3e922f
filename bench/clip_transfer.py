"""A 15 s 720p clip off the device: seconds from the clip's end (committed in the device's
store) to the hub's confirmation (the device frees its copy), against the same bytes sent
as bare QoS 1 chunks to a subscriber that only collects them, in the same run.

    .venv/bin/python bench/clip_transfer.py [--clips 2]

The device is the real agent on the synthetic camera at 1280×720, 15 fps, real time, with
5 s of pre-roll and 10 s of post-roll; hub and broker on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from harness import loopback_home

from porch.core.config import CameraSettings, ClipSettings, EncoderSettings
from porch.core.mqtt_client import make_client
from porch.localbroker import LocalBroker
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent


def bare_transfer(broker: LocalBroker, data: bytes, chunk: int) -> float:
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    got = []
    done, subscribed = threading.Event(), threading.Event()

    def on_message(client, userdata, msg):
        got.append(len(msg.payload))
        if len(got) == len(pieces):
            done.set()

    sub = make_client("bare-hub", broker.settings)
    sub.on_connect = lambda c, *a: c.subscribe("bare/#", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = on_message
    sub.connect(broker.settings.host, broker.settings.port)
    sub.loop_start()
    pub = make_client("bare-device", broker.settings)
    pub.connect(broker.settings.host, broker.settings.port)
    pub.loop_start()
    subscribed.wait(30)
    start = time.monotonic()
    for n, piece in enumerate(pieces):
        pub.publish(f"bare/{n}", piece, qos=1)
    done.wait(120)
    elapsed = time.monotonic() - start
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2)
    args = parser.parse_args()
    timings, sizes, bare = [], [], []
    with loopback_home(owner=False) as (tmp, broker, _hub):
        clips = ClipSettings(preroll_s=5, postroll_s=10)
        config = device_config(
            tmp,
            broker,
            clips=clips,
            camera=CameraSettings(source="synthetic", width=1280, height=720, fps=15),
            encoder=EncoderSettings(keyframe_interval_s=1.0),
        )
        with run_agent(config) as agent:
            wait_for(agent.link.connected.is_set)
            for n in range(args.clips):
                wait_for(lambda n=n: agent.media_time > 6 + 16 * n, timeout=120)
                agent.doorbell.simulate_press()
                wait_for(lambda n=n: agent.emitted["clip"] > n, timeout=120, what="the clip")
                ended = time.monotonic()
                clip = agent.recorder.last_clip
                data = clip.video.read_bytes()
                wait_for(lambda c=clip: agent.store.get(c.meta.clip_id) is None, timeout=120)
                timings.append(time.monotonic() - ended)
                sizes.append(clip.meta.size_bytes)
                bare.append(bare_transfer(broker, data, clip.meta.chunk_bytes))
                seconds = clip.meta.end_ts - clip.meta.start_ts
    print(
        f"{args.clips} clips of ~{seconds:.0f} s at 1280×720 15 fps,"
        f" {statistics.fmean(sizes) / 1e6:.1f} MB each, 256 KiB chunks"
    )
    print(f"bare QoS 1 chunks to a subscriber  {statistics.fmean(bare):6.3f} s")
    print(
        f"clip end → confirmed on the hub    {statistics.fmean(timings):6.3f} s"
        f"   (each: {', '.join(f'{t:.3f}' for t in timings)})"
    )
    print(f"ratio {statistics.fmean(timings) / statistics.fmean(bare):.1f}× the bare transfer")


if __name__ == "__main__":
    main()
