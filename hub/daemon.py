"""How the hub tells a person reading its log what happened."""

from __future__ import annotations

import logging
import time

from porch.core.wire import (
    ClipAck,
    ClipMeta,
    Message,
    MotionEvent,
    PersonEvent,
    RingEvent,
    Snapshot,
    Status,
)

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
        case PersonEvent():
            return f"{when}  {who}  someone at the door (the detector: {message.score:.0%})"
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
        case Snapshot():
            size = len(message.data) // 1024
            return f"{when}  {who}  snapshot of ring {message.event_id[:8]} ({size} KB)"
        case Status():
            return f"{when}  {who}  is {message.state}"
    return f"{when}  {who}  {message!r}"
