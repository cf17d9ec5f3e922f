"""Clips off the device: offer each stored clip to the hub until it confirms it has it whole.

A thief who takes the doorbell must not take the evidence, so clips leave soon after they
are finalised; the device's copy is deleted only when the hub's ack says ``stored`` (the hub
has the whole file fsync'd and its SHA-256 checked). The hub pulls: every offer (the clip's
:class:`~porch.core.wire.ClipMeta`) is answered by an ack listing the chunks it lacks, and this
side sends exactly those. See :mod:`porch.core.wire` for the topics.

Threads: acks arrive on paho's network thread; offers go out from this module's thread.
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt

from porch.core.fsutil import read_chunk
from porch.core.wire import THUMBNAIL, ClipAck, clip_chunk_topic, clip_meta_topic
from porch.device.clips import ClipStore

log = logging.getLogger(__name__)


class ClipSender:
    """Offers unconfirmed clips every ``retry_s`` and answers the hub's acks."""

    def __init__(self, device_id: str, store: ClipStore, client: mqtt.Client, retry_s: float):
        self.device_id = device_id
        self.store = store
        self.client = client
        self.retry_s = retry_s
        self.confirmed = 0
        self.chunks_sent = 0
        self._sending: dict[str, dict[int, mqtt.MQTTMessageInfo]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._offers, name="clip-offers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def connected(self, up: bool) -> None:
        """The link's connection changed; offer everything again when it comes back."""
        if up:
            self._connected.set()
            self._wake.set()
        else:
            self._connected.clear()

    def offer_soon(self) -> None:
        self._wake.set()

    def on_ack(self, ack: ClipAck) -> None:
        """The hub's answer (paho's network thread): free the clip, or send what it lacks."""
        clip = self.store.get(ack.clip_id)
        if clip is None:
            return  # already confirmed and freed, or evicted
        if ack.stored:
            self.store.remove(ack.clip_id)
            with self._lock:
                self._sending.pop(ack.clip_id, None)
            self.confirmed += 1
            log.info("clip %s is safe on the hub; local copy freed", ack.clip_id)
            return
        meta = clip.meta
        with self._lock:
            sending = self._sending.setdefault(meta.clip_id, {})
            # A chunk still on its way is not sent twice when two acks cross it.
            wanted = [i for i in ack.missing if i not in sending or sending[i].is_published()]
        try:
            for index in wanted:
                if index == THUMBNAIL:
                    data = clip.thumbnail.read_bytes()
                elif 0 <= index < meta.chunk_count:
                    data = read_chunk(clip.video, index, meta.chunk_bytes)
                else:
                    log.warning("hub asked for chunk %d of %s, which has none", index, meta.clip_id)
                    continue
                topic = clip_chunk_topic(self.device_id, meta.clip_id, index)
                info = self.client.publish(topic, data, qos=1)
                with self._lock:
                    sending[index] = info
                self.chunks_sent += 1
        except FileNotFoundError:
            return  # evicted meanwhile

    def _busy(self, clip_id: str) -> bool:
        """Chunks of this clip are still on their way: no new offer yet."""
        with self._lock:
            infos = self._sending.get(clip_id, {})
            return not all(info.is_published() for info in infos.values())

    def _offers(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.retry_s)
            self._wake.clear()
            if not self._connected.is_set():
                continue
            for clip in self.store.clips():
                if not self._busy(clip.meta.clip_id):
                    topic = clip_meta_topic(self.device_id, clip.meta.clip_id)
                    self.client.publish(topic, clip.meta.to_bytes(), qos=1)
            time.sleep(0)  # let paho's thread run between rounds
