"""GOP proofs: the doorbell signs its video one group of pictures at a time, so that any run
of whole GOPs cut from a clip still proves that the doorbell recorded it.

A GOP is the access units from one keyframe up to the next. Its hash is the SHA-256 of its
*canonical bytes*: every NAL unit of every access unit, in order, each preceded by its length
as 4 bytes big-endian, as the doorbell's MP4 muxer (FFmpeg) wrote them (a NAL unit keeps
any zero bytes an encoder padded it with). That is exactly how an MP4 stores H.264 samples,
so the bytes survive re-muxing, and in an MP4 each GOP is one contiguous run of the file:
the doorbell hashes it there, in the MP4 it writes, and ``sha256sum`` can check it in an
excerpt (docs/verify.md).

The doorbell keeps a *GOP table* per clip, a small text file::

    porch-gops/1
    device front-door
    clip 0f2c…(32 hex)
    start_us 1764500000123456
    0 0 81000 10 9b1f…(64 hex) 52c0…(64 hex)
    1 90000 171000 10 4e07… 0d3a…
    end

one line per GOP: index, first and last frame's time in 1/90000 s from the clip's first
frame, frame count, SHA-256 of its bytes, and SHA-256 of its frames' times
(:func:`times_digest`), so that the frames between keyframes cannot be re-timed either.
``start_us`` is the wall-clock time of the first frame in microseconds. The device's
Ed25519 key signs the SHA-256 of the table (as it signs a whole clip's SHA-256): while
recording, a *checkpoint* signs the table of the GOPs finished so far (no ``end`` line);
when the clip is finished it signs the whole table, ``end`` included. The table is a flat
list, not a Merkle tree: an excerpt carries the whole table (about 150 bytes a GOP) and
nothing needs walking, only comparing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

Bytes: TypeAlias = bytes | bytearray | memoryview
"""What a clip's bytes arrive as: read into memory, or a view of a buffer."""
FORMAT: Final = "porch-gops/1"
"""The proof format, named in the table's first line and in :class:`~porch.core.wire.GopSeal`."""
TICKS_PER_S = 90000
MAX_GOPS = 100_000
_LINE = re.compile(rb"^(\d{1,9}) (\d{1,15}) (\d{1,15}) (\d{1,9}) ([0-9a-f]{64}) ([0-9a-f]{64})$")
MAX_FRAMES_PER_GOP = 3600
MAX_FRAMES = 200_000
"""Frames in one clip at most (ten minutes at over 300 frames a second)."""
MAX_TICKS = 10**15


class GopError(ValueError):
    """GOP proofs that do not hold; ``str()`` says which and why."""


def nal_spans(sample: bytes) -> list[tuple[int, int]]:
    """Where each NAL unit of an MP4 sample lies in it, (start, end): each NAL unit comes
    after its length, 4 bytes big-endian, and the lengths must add up to the sample."""
    spans, at = [], 0
    while at < len(sample):
        size = int.from_bytes(sample[at : at + 4], "big")
        if size == 0 or at + 4 + size > len(sample):
            raise GopError("an access unit is not a run of 4-byte length-prefixed NAL units")
        spans.append((at + 4, at + 4 + size))
        at += 4 + size
    return spans


def nal_units(sample: bytes) -> list[bytes]:
    """The NAL units of an MP4 sample (see :func:`nal_spans`)."""
    return [sample[start:end] for start, end in nal_spans(sample)]


@dataclass(frozen=True)
class Gop:
    index: int
    first: int
    """The first frame's time, 1/90000 s from the clip's first frame."""
    last: int
    frames: int
    sha256: str
    times: str
    """SHA-256 of the times of its frames (:func:`times_digest`): how it plays."""

    def line(self) -> str:
        return f"{self.index} {self.first} {self.last} {self.frames} {self.sha256} {self.times}"


def times_digest(ticks: list[int]) -> str:
    """SHA-256 of frame times (1/90000 s from the clip's first frame) written as decimal
    numbers, one space apart, with a newline after the last."""
    return hashlib.sha256((" ".join(map(str, ticks)) + "\n").encode()).hexdigest()


@dataclass
class GopTable:
    device_id: str
    clip_id: str
    start_us: int
    gops: list[Gop] = field(default_factory=list)
    complete: bool = False

    def text(self, count: int | None = None) -> bytes:
        """The table (of its first ``count`` GOPs: a checkpoint's, without ``end``)."""
        count = len(self.gops) if count is None else count
        lines = [FORMAT, f"device {self.device_id}", f"clip {self.clip_id}",
                 f"start_us {self.start_us}", *(g.line() for g in self.gops[:count])]  # fmt: skip
        if self.complete and count == len(self.gops):
            lines.append("end")
        return ("\n".join(lines) + "\n").encode()

    def sha256(self, count: int | None = None) -> str:
        return hashlib.sha256(self.text(count)).hexdigest()

    def span_s(self, first: int, last: int) -> tuple[float, float]:
        """Seconds from the clip's start of GOP ``first``'s first frame and GOP ``last``'s
        last frame: what an excerpt of those GOPs shows."""
        return self.gops[first].first / TICKS_PER_S, self.gops[last].last / TICKS_PER_S

    def covering(self, from_s: float, to_s: float) -> tuple[int, int]:
        """The first and last GOP of the shortest run of whole GOPs that shows seconds
        ``from_s`` to ``to_s`` of the clip."""
        if not self.gops or from_s >= to_s:
            raise GopError("an excerpt needs a positive span of a clip with GOPs")
        starts = [g.first / TICKS_PER_S for g in self.gops]
        first = max([i for i, s in enumerate(starts) if s <= from_s], default=0)
        last = max([i for i, s in enumerate(starts) if s < to_s], default=0)
        return first, max(first, last)


def parse_table(text: bytes) -> GopTable:
    """A GOP table, strictly: anything but the exact format is refused."""
    lines = text.split(b"\n")
    if len(lines) < 6 or lines[-1] != b"" or lines[0] != FORMAT.encode():
        raise GopError(f"not a {FORMAT} table")
    head = {}
    for name, line in zip((b"device", b"clip", b"start_us"), lines[1:4], strict=True):
        key, _, value = line.partition(b" ")
        if key != name or not re.fullmatch(rb"[a-z0-9-]{1,64}", value):
            raise GopError(f"the table's {name.decode()} line is malformed")
        head[name] = value.decode()
    body = lines[4:-1]
    complete = body[-1:] == [b"end"]
    if complete:
        body = body[:-1]
    if not body or len(body) > MAX_GOPS:
        raise GopError("the table lists no GOP, or too many")
    if not head[b"start_us"].isdigit():
        raise GopError("the table's start_us is not a number")
    gops: list[Gop] = []
    for at, line in enumerate(body):
        match = _LINE.match(line)
        if match is None:
            raise GopError(f"line {at + 5} of the table is malformed")
        index, first, last, frames = (int(match[i]) for i in range(1, 5))
        if index != at or not first <= last or frames < 1:
            raise GopError(f"GOP {at} of the table is out of order or empty")
        if gops and first <= gops[-1].last:
            raise GopError(f"GOP {at} starts before GOP {at - 1} ends")
        gops.append(Gop(index, first, last, frames, match[5].decode(), match[6].decode()))
    return GopTable(head[b"device"], head[b"clip"], int(head[b"start_us"]), gops, complete)


class GopHasher:
    """Builds a clip's GOP table from its access units as they are written.

    ``add`` each access unit (its time in ticks from the clip's first frame; whether it is a
    keyframe): a keyframe closes the GOP before it, and ``on_gop`` then receives the closed
    GOP and its access units as they were given (the recorder's checkpoint). ``finish``
    closes the last one and marks the table complete.

    Each access unit is an MP4 sample, checked (its NAL unit lengths add up) and hashed as
    it is added; unless ``placed`` is given: then the caller has the bytes of each GOP in
    one run of the MP4 it is writing, and ``placed()`` returns the SHA-256 of the GOP just
    closed. The doorbell (:class:`porch.device.clips.Mp4Writer`, which must have written
    each access unit before it is added here) hands over its encoder's Annex B units,
    which are only kept, unchecked, for its journal.
    """

    def __init__(
        self,
        table: GopTable,
        on_gop: Callable[[Gop, list[tuple[int, bytes]]], None] | None = None,
        keep_units: bool = True,
        placed: Callable[[], str] | None = None,
    ):
        self.table = table
        self.on_gop = on_gop
        self.keep_units = keep_units
        """Keep each GOP's access units for ``on_gop`` (the recorder's journal)."""
        self.placed = placed
        self._units: list[tuple[int, bytes]] = []
        self._ticks: list[int] = []
        self._digest = hashlib.sha256()
        self._table_digest = hashlib.sha256(table.text())
        self._table_count = len(table.gops)
        self._last = table.gops[-1].last if table.gops else -1
        self.frames = 0

    def add(self, ticks: int, unit: bytes, keyframe: bool) -> None:
        """Add one access unit; GopError when it cannot be part of a clip (not after the
        one before, a GOP of too many frames; without ``placed``, a sample whose NAL unit
        lengths do not add up)."""
        if keyframe and self._ticks:
            self._close()
        pending = self._ticks
        if not pending and not keyframe:
            raise GopError("a GOP must start on a keyframe")
        if not self._last < ticks <= MAX_TICKS:
            raise GopError(f"a frame's time ({ticks}) does not follow the one before")
        if len(pending) >= MAX_FRAMES_PER_GOP:
            raise GopError(f"a GOP of more than {MAX_FRAMES_PER_GOP} frames")
        self.frames += 1
        if self.frames > MAX_FRAMES:
            raise GopError(f"a clip of more than {MAX_FRAMES} frames")
        if self.placed is None:
            if not nal_spans(unit):
                raise GopError("an access unit without NAL units")
            self._digest.update(unit)
        pending.append(ticks)
        self._last = ticks
        if self.keep_units:
            self._units.append((ticks, unit))

    def finish(self) -> GopTable:
        if self._ticks:
            self._close()
        self.table.complete = True
        return self.table

    def table_sha256(self) -> str:
        """``self.table.sha256()``, kept up to date as GOPs close: a checkpoint of a long
        clip costs the same as one of a short clip."""
        if self._table_count != len(self.table.gops):  # the table was changed by others
            return self.table.sha256()
        digest = self._table_digest.copy()
        if self.table.complete:
            digest.update(b"end\n")
        return digest.hexdigest()

    def _close(self) -> None:
        units, ticks = self._units, self._ticks
        sha256 = self._digest.hexdigest() if self.placed is None else self.placed()
        gop = Gop(len(self.table.gops), ticks[0], ticks[-1], len(ticks), sha256,
                  times_digest(ticks))  # fmt: skip
        self.table.gops.append(gop)
        if self._table_count == len(self.table.gops) - 1:
            self._table_digest.update(gop.line().encode() + b"\n")
            self._table_count += 1
        self._units, self._ticks, self._digest = [], [], hashlib.sha256()
        if self.on_gop is not None:
            self.on_gop(gop, units)


def check_ranges(
    table: GopTable, ranges: list[tuple[int, int, int]], data: Bytes
) -> tuple[int, int]:
    """An excerpt's bytes against the table: ``ranges`` are (GOP index, offset, length) in
    the excerpt's file ``data`` (bytes or a memory view), consecutive GOPs in contiguous
    runs. Returns the first and last GOP. Raises :class:`GopError` with the first reason."""
    if not ranges:
        raise GopError("the excerpt lists no GOP")
    first = ranges[0][0]
    for at, (index, offset, length) in enumerate(ranges):
        if index != first + at or index >= len(table.gops):
            raise GopError(f"the excerpt's GOPs are not consecutive GOPs of the clip (at {index})")
        if at and offset != ranges[at - 1][1] + ranges[at - 1][2]:
            raise GopError(f"GOP {index} does not follow GOP {index - 1} in the file")
        if offset < 0 or length < 1 or offset + length > len(data):
            raise GopError(f"GOP {index} lies outside the file")
        if hashlib.sha256(data[offset : offset + length]).hexdigest() != table.gops[index].sha256:
            raise GopError(f"GOP {index} is not the GOP the doorbell signed")
    return first, ranges[-1][0]


def parse_ranges(text: bytes) -> list[tuple[int, int, int]]:
    """An excerpt's ranges file: one 'INDEX OFFSET LENGTH' line per GOP."""
    ranges = []
    for line in text.decode("ascii", "replace").splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise GopError("the ranges file is malformed")
        ranges.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return ranges


def ranges_text(ranges: list[tuple[int, int, int]]) -> bytes:
    return "".join(f"{i} {offset} {length}\n" for i, offset, length in ranges).encode()
