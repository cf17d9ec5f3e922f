"""One enrolled device floods the hub (offers worth ten times the store's cap, uploads it
never finishes, snapshots for events that never were, absurd timestamps) while another
doorbell rings and sends its clip: the other's ring and clip arrive, the store stays within
its cap plus one chunk, and nothing the flood sent is listed."""

from __future__ import annotations

import os
import threading
import time

import paho.mqtt.client as mqtt

from porch.core.config import ClipSettings, EncoderSettings, HubClipSettings, HubConfig, WebSettings
from porch.core.wire import (
    RingEvent,
    clip_chunk_topic,
    clip_meta_topic,
    new_id,
    ring_topic,
    snapshot_topic,
)
from porch.hub.service import HubService
from porch.localbroker import free_port
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import device_config, run_agent
from tests.support.footage import CHUNK, MiB, forged_clip

CAP = 4 * MiB


def disk_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_one_device_cannot_fill_the_hub_or_starve_another(tmp_path, broker, mock_pins, caplog):
    hub = HubService(
        HubConfig(
            data_dir=tmp_path / "hub",
            mqtt=broker.settings,
            web=WebSettings(port=free_port()),
            clips=HubClipSettings(max_bytes=CAP, max_clip_bytes=MiB + MiB // 2, abandon_after_s=10),
        )
    )
    hub.start()
    wait_for(hub.ingest.subscribed.is_set, what="the hub")
    clips_dir = hub.clips.root
    peak = [0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], disk_bytes(clips_dir))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    evil = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="evil",
                       protocol=mqtt.MQTTv5)  # fmt: skip
    evil.connect("127.0.0.1", broker.port)
    evil.loop_start()
    try:
        # Ten times the cap in offers of 1 MiB, each uploaded all but its last chunk.
        for _ in range(40):
            meta, data = forged_clip(MiB)
            evil.publish(clip_meta_topic("evil", meta.clip_id), meta.to_bytes(), qos=1)
            for index in range(meta.chunk_count - 1):
                chunk = data[index * CHUNK : (index + 1) * CHUNK]
                evil.publish(clip_chunk_topic("evil", meta.clip_id, index), chunk, qos=1)
        huge, _ = forged_clip(2 * MiB)  # over max_clip_bytes
        evil.publish(clip_meta_topic("evil", huge.clip_id), huge.to_bytes(), qos=1)
        for _ in range(50):  # snapshots for events that never were
            evil.publish(snapshot_topic("evil", new_id()), b"\xff\xd8" + os.urandom(50_000), qos=1)
        for ts in (1e300, time.time() + 86400, 1.0):
            ring = RingEvent(device_id="evil", event_id=new_id(), ts=ts)
            evil.publish(ring_topic("evil"), ring.to_bytes(), qos=1).wait_for_publish(TIMEOUT)

        # Meanwhile a real doorbell rings and sends its clip.
        config = device_config(
            tmp_path, broker,
            clips=ClipSettings(preroll_s=1, postroll_s=1, chunk_bytes=CHUNK, retry_s=0.5),
            encoder=EncoderSettings(keyframe_interval_s=1.0, bitrate_kbps=400),
        )  # fmt: skip
        with run_agent(config, realtime=False) as agent:
            wait_for(agent.link.connected.is_set, what="the good doorbell")
            wait_for(lambda: agent.media_time > 2, what="pre-roll")
            agent.doorbell.simulate_press()
            wait_for(lambda: agent.emitted["clip"] >= 1, what="its clip on the device")
            clip_id = agent.recorder.last_clip.meta.clip_id
            wait_for(lambda: agent.store.get(clip_id) is None, what="its clip stored at the hub")
        timeline = hub.web_db.timeline(20)
        assert [e["device_id"] for e in timeline] == ["front-door"], timeline
        assert timeline[0]["clip_id"] == clip_id
        ring_snapshot = hub.ingest.snapshot_path(timeline[0]["event_id"])
        wait_for(ring_snapshot.exists, what="the good doorbell's snapshot")
    finally:
        sampling.set()
        sampler.join(5)
        evil.loop_stop()
        evil.disconnect()
        hub.stop()
    assert peak[0] <= CAP + CHUNK, f"the clip store reached {peak[0]} bytes (cap {CAP})"
    assert list(hub.ingest.snapshots.iterdir()) == [ring_snapshot], "orphan snapshots written"
    refusals = {kind for (device, kind) in hub.ingest.refusals if device == "evil"}
    assert {"too large", "timestamp", "snapshot", "busy"} <= refusals, refusals
    warned = [r.getMessage() for r in caplog.records if "refused from evil" in r.getMessage()]
    assert len(warned) == len(refusals - {"busy"}), "each kind logged once, with the name"
