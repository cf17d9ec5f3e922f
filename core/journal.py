"""A clip's journal: what the doorbell writes to disk while it records, so that a kill -9 or
a power cut keeps the clip up to its last checkpoint.

The journal is a run of records, each ``tag (1 byte) | length (4 bytes, big-endian) |
payload``, after :data:`MAGIC`, appended and fsync'd one at a time:

``H``  header (JSON): clip and device id, frame size, start and trigger time, first event
``T``  the thumbnail (sealed to the hub like the video, when clips are sealed)
``G``  one GOP: its access units, each ``time in ticks (8) | length (4) | Annex B bytes``
       (as the encoder gave them), sealed as a whole when clips are sealed
``C``  a checkpoint (JSON): how many GOPs, the SHA-256 of the GOP table up to them and the
       device's signature of it (:mod:`porch.core.gops`), the events so far

A clip that finishes normally becomes an MP4 and its journal is deleted. A journal left by
a crash is cut after its last checkpoint and sent to the hub as it is (the device cannot
open sealed GOPs: it has no key for them); the hub opens it, muxes its GOPs through FFmpeg
as the device would have, and checks the checkpoint's signature against the GOPs of that
MP4 (``ClipMeta.container == "journal"``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAGIC = b"PORCHJOURNAL1\n"
HEADER, THUMBNAIL, GOP, CHECKPOINT = b"H", b"T", b"G", b"C"
_RECORD = struct.Struct(">cI")
_FRAME = struct.Struct(">qI")
MAX_RECORD_BYTES = 256 * 1024 * 1024


class JournalError(ValueError):
    """A journal that cannot be read; ``str()`` says why."""


def records(data: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """(tag, payload, end offset) of each whole record; a torn last record is left out."""
    if not data.startswith(MAGIC):
        raise JournalError("not a Porch clip journal")
    at = len(MAGIC)
    while at + _RECORD.size <= len(data):
        tag, size = _RECORD.unpack_from(data, at)
        end = at + _RECORD.size + size
        if tag not in (HEADER, THUMBNAIL, GOP, CHECKPOINT) or size > MAX_RECORD_BYTES:
            raise JournalError(f"a damaged record at byte {at}")
        if end > len(data):
            return
        yield tag, data[at + _RECORD.size : end], end
        at = end


def pack_gop(units: list[tuple[int, bytes]]) -> bytes:
    """A GOP's record payload (before sealing): its access units with their times."""
    return b"".join(_FRAME.pack(ticks, len(unit)) + unit for ticks, unit in units)


def unpack_gop(payload: bytes) -> list[tuple[int, bytes]]:
    units, at = [], 0
    while at < len(payload):
        if at + _FRAME.size > len(payload):
            raise JournalError("a GOP record is cut short")
        ticks, size = _FRAME.unpack_from(payload, at)
        at += _FRAME.size
        if size == 0 or at + size > len(payload):
            raise JournalError("a GOP record is cut short")
        units.append((ticks, payload[at : at + size]))
        at += size
    if not units:
        raise JournalError("an empty GOP record")
    return units


class JournalWriter:
    """Appends records to a journal file, each one on the disk before ``append`` returns."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._write(MAGIC)

    def append(self, tag: bytes, payload: bytes) -> None:
        self._write(_RECORD.pack(tag, len(payload)) + payload)

    def append_json(self, tag: bytes, value: dict[str, Any]) -> None:
        self.append(tag, json.dumps(value, sort_keys=True).encode())

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def recoverable(data: bytes) -> tuple[dict[str, Any], bytes, dict[str, Any], int] | None:
    """What a journal left by a crash still holds: (header, thumbnail record payload, last
    checkpoint, bytes up to the end of that checkpoint), or None when no checkpoint was
    made (nothing of the clip can be proven, so nothing is kept)."""
    header = thumbnail = checkpoint = None
    end = 0
    try:
        for tag, payload, at in records(data):
            if tag == HEADER:
                header = json.loads(payload)
            elif tag == THUMBNAIL:
                thumbnail = payload
            elif tag == CHECKPOINT:
                checkpoint, end = json.loads(payload), at
    except (JournalError, ValueError):
        pass  # keep what came before the damage
    if header is None or thumbnail is None or checkpoint is None:
        return None
    return header, thumbnail, checkpoint, end
