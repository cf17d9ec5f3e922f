"""``porch hub run``: the hub process (for now the ingest; the web app joins it later)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from porch.config import HubConfig
from porch.hub.clipstore import HubClipStore
from porch.hub.db import Database
from porch.hub.ingest import Ingest
from porch.wire import ClipAck, ClipMeta, Message, MotionEvent, RingEvent, Status

log = logging.getLogger(__name__)


def describe(message: Message) -> str:
    """One line for a person reading the hub's log."""
    when = time.strftime("%H:%M:%S", time.localtime(getattr(message, "ts", None) or time.time()))
    who = message.device_id
    match message:
        case RingEvent():
            return f"{when}  {who}  RING  (event {message.event_id[:8]})"
        case MotionEvent(active=True):
            return f"{when}  {who}  motion started"
        case MotionEvent():
            return f"{when}  {who}  motion ended (at most {message.area:.0%} of the view)"
        case ClipMeta():
            seconds = message.end_ts - message.start_ts
            return (
                f"{when}  {who}  clip {message.clip_id[:8]} ready on the device: {seconds:.1f} s,"
                f" {message.size_bytes / 1e6:.1f} MB, {len(message.event_ids)} event(s)"
            )
        case ClipAck():
            return f"{when}  {who}  clip {message.clip_id[:8]} is safe on the hub"
        case Status():
            return f"{when}  {who}  is {message.state}"
    return f"{when}  {who}  {message!r}"


def start_hub(config: HubConfig, on_message: Callable[[Message], None] | None = None) -> Ingest:
    """Open the database and start ingesting; returns the running :class:`Ingest`."""
    data = Path(config.data_dir)
    db = Database(data / "hub.sqlite")
    clips = HubClipStore(db, data / "clips", config.clips)
    ingest = Ingest(db, config.mqtt, clips, on_message=on_message)
    ingest.start()
    return ingest
