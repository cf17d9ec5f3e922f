"""The one H.264 video track of an MP4, read from its boxes and written back as a new file
(ISO/IEC 14496-12 and 14496-15): what cutting an excerpt needs, and nothing more.

A clip's samples are already canonical (:mod:`porch.core.gops`), so an excerpt is the same
samples with a new sample table: :func:`write_mp4` writes the boxes FFmpeg writes for a
video track (ftyp, free, mdat, moov, in that order) around bytes copied from the clip, and
never re-muxes a sample. Whatever the file's boxes say is checked against the file's size
and :data:`~porch.core.gops.MAX_FRAMES` before anything is read at the offsets they give.
"""

from __future__ import annotations

import operator
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate, count
from typing import NamedTuple

from porch.core.gops import MAX_FRAMES, GopError

MOVIE_TIMESCALE = 1000
IDENTITY = (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
"""An MP4 transformation matrix that shows the picture as it is (ISO/IEC 14496-12)."""
FTYP = struct.pack(">I4s4sI4s4s4s4s", 32, b"ftyp", b"isom", 512, b"isom", b"iso2", b"avc1", b"mp41")
_SAMPLE_TABLE = (b"stsd", b"stts", b"stsz", b"stsc", b"stco", b"co64", b"stss", b"ctts")


class Sample(NamedTuple):
    offset: int
    size: int
    time: int
    """Decode (= presentation) time in the track's timescale."""
    duration: int
    keyframe: bool


@dataclass(frozen=True)
class Track:
    width: int
    height: int
    timescale: int
    avcc: bytes
    """The avcC box's content: the decoder's configuration (SPS and PPS)."""
    offsets: list[int]
    sizes: list[int]
    times: list[int]
    """Each sample's decode (= presentation) time in the track's timescale."""
    durations: list[int]
    sync: set[int] | None
    """The numbers (from 1) of the keyframes; None: every sample is one."""

    def samples(self, start: int, stop: int) -> list[Sample]:
        """Samples ``start`` to ``stop`` (from 0, ``stop`` left out)."""
        sync, span = self.sync, slice(start, stop)
        return [
            Sample(offset, size, time, duration, sync is None or number in sync)
            for number, offset, size, time, duration in zip(
                count(start + 1), self.offsets[span], self.sizes[span], self.times[span],
                self.durations[span],
            )
        ]  # fmt: skip


def mp4_boxes(data, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, start of its content, end) of each box between ``start`` and ``end``."""
    end = len(data) if end is None else end
    found, at = [], start
    while at < end:
        if at + 8 > end:
            raise GopError("a box of the MP4 is cut short")
        size, kind, header = (
            int.from_bytes(data[at : at + 4], "big"),
            bytes(data[at + 4 : at + 8]),
            8,
        )
        if size == 1 and at + 16 <= end:
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        elif size == 0:  # to the end of the file
            size = end - at
        if size < header or at + size > end:
            raise GopError(f"the MP4's {kind!r} box has an impossible size")
        found.append((kind, at + header, at + size))
        at += size
    return found


def _child(data, start: int, end: int, *path: bytes) -> tuple[int, int]:
    """The content of the box at ``path`` below (start, end): exactly one at each step."""
    for kind in path:
        matches = [(s, e) for k, s, e in mp4_boxes(data, start, end) if k == kind]
        if len(matches) != 1:
            raise GopError(f"the MP4 has {len(matches)} {kind.decode()} boxes where one belongs")
        start, end = matches[0]
    return start, end


def _table(data, start: int, end: int, skip: int, fields: int, fmt: str = "I") -> list:
    """The entries of a full box's table: ``skip`` bytes, a 4-byte count, then entries of
    ``fields`` numbers each."""
    count = int.from_bytes(data[start + skip : start + skip + 4], "big")
    width = struct.calcsize(">" + fmt) * fields
    if count > MAX_FRAMES or start + skip + 4 + count * width > end:
        raise GopError("a sample table of the MP4 is longer than its box")
    return list(struct.unpack_from(f">{count * fields}{fmt}", data, start + skip + 4))


def read_track(data) -> Track:
    """The MP4's one video track with its samples resolved; :class:`GopError` for any file
    that is not one H.264 track of samples inside the file, in decode order."""
    try:
        return _read_track(data)
    except (struct.error, IndexError):
        raise GopError("the MP4's boxes are cut short") from None


def _read_track(data) -> Track:
    top = mp4_boxes(data)
    moovs = [(s, e) for k, s, e in top if k == b"moov"]
    if len(moovs) != 1:
        raise GopError("the MP4 has no movie box, or more than one")
    traks = [(s, e) for k, s, e in mp4_boxes(data, *moovs[0]) if k == b"trak"]
    if len(traks) != 1:
        raise GopError("the MP4 holds other than one track")
    trak = traks[0]
    mdhd = _child(data, *trak, b"mdia", b"mdhd")
    timescale = int.from_bytes(data[mdhd[0] + 20 : mdhd[0] + 24], "big") if data[
        mdhd[0]] == 1 else int.from_bytes(data[mdhd[0] + 12 : mdhd[0] + 16], "big")  # fmt: skip
    stbl = _child(data, *trak, b"mdia", b"minf", b"stbl")
    boxes = {k: (s, e) for k, s, e in mp4_boxes(data, *stbl) if k in _SAMPLE_TABLE}
    if b"stsd" not in boxes or timescale == 0:
        raise GopError("the MP4's track is not video")
    # The stsd box: 8 bytes (version, count), then one avc1 sample entry: 78 bytes, boxes.
    avc1 = _child(data, boxes[b"stsd"][0] + 8, boxes[b"stsd"][1], b"avc1")
    if avc1[0] + 78 > avc1[1]:
        raise GopError("the MP4's H.264 sample entry is cut short")
    width, height = struct.unpack_from(">HH", data, avc1[0] + 24)
    avcc = _child(data, avc1[0] + 78, avc1[1], b"avcC")
    if b"ctts" in boxes and any(_table(data, *boxes[b"ctts"], 4, 2)[1::2]):
        raise GopError("the MP4's frames are shown in another order than they are stored")
    sizes = _sizes(data, *boxes[b"stsz"]) if b"stsz" in boxes else []
    offsets = _offsets(data, boxes, sizes)
    durations = _durations(data, *boxes[b"stts"], len(sizes)) if b"stts" in boxes else []
    if len(durations) != len(sizes):
        raise GopError("the MP4's sample table times fewer or more samples than it has")
    sync = set(_table(data, *boxes[b"stss"], 4, 1)) if b"stss" in boxes else None
    if sizes and max(map(operator.add, offsets, sizes)) > len(data):
        raise GopError("a sample of the MP4 lies outside it")
    times = list(accumulate(durations[:-1], initial=0)) if durations else []
    avcc_bytes = bytes(data[avcc[0] : avcc[1]])
    return Track(width, height, timescale, avcc_bytes, offsets, sizes, times, durations, sync)


def _sizes(data, start: int, end: int) -> list[int]:
    fixed, count = struct.unpack_from(">II", data, start + 4)
    if fixed:
        if count > MAX_FRAMES:
            raise GopError("the MP4 has more samples than a clip can")
        return [fixed] * count
    return _table(data, start, end, 8, 1)


def _offsets(data, boxes: dict, sizes: list[int]) -> list[int]:
    """Each sample's offset, from its chunk's (stco or co64) and the chunks' runs (stsc)."""
    if b"stco" in boxes:
        chunks = _table(data, *boxes[b"stco"], 4, 1)
    elif b"co64" in boxes:
        chunks = _table(data, *boxes[b"co64"], 4, 1, "Q")
    else:
        raise GopError("the MP4 does not say where its samples are")
    stsc = _table(data, *boxes[b"stsc"], 4, 3) if b"stsc" in boxes else []
    offsets: list[int] = []
    sample = 0
    for at in range(0, len(stsc), 3):
        first, per_chunk = stsc[at], stsc[at + 1]
        until = stsc[at + 3] if at + 3 < len(stsc) else len(chunks) + 1
        if not 1 <= first < until <= len(chunks) + 1 or not 0 < per_chunk <= MAX_FRAMES:
            raise GopError("the MP4's chunk table is out of order")
        for chunk in range(first - 1, until - 1):
            if sample + per_chunk > len(sizes):
                raise GopError("the MP4's chunks hold more samples than it has")
            offsets += accumulate(sizes[sample : sample + per_chunk - 1], initial=chunks[chunk])
            sample += per_chunk
    if sample != len(sizes):
        raise GopError("the MP4's chunks hold fewer samples than it has")
    return offsets


def _durations(data, start: int, end: int, count: int) -> list[int]:
    runs = _table(data, start, end, 4, 2)
    if sum(runs[0::2]) > count:
        raise GopError("the MP4's sample table times more samples than it has")
    return [delta for at in range(0, len(runs), 2) for delta in [runs[at + 1]] * runs[at]]


def write_mp4(
    handle,
    track: Track,
    samples: list[Sample],
    copy: Callable[[Iterable[tuple[int, int]]], None],
) -> int:
    """Write an MP4 of ``samples`` of ``track`` to the open file ``handle``: the header,
    then ``copy`` of the samples' byte runs (offset, length) in order, which must append
    their bytes to the file, then the sample table. Returns where the first sample lies."""
    payload = sum(s.size for s in samples)
    if payload + 8 > 0xFFFFFFFF:  # a clip is at most ten minutes: far below
        raise GopError("an excerpt of 4 GiB or more")
    head = FTYP + struct.pack(">I4sI4s", 8, b"free", payload + 8, b"mdat")
    handle.write(head)
    handle.flush()
    copy(runs(samples))
    handle.seek(0, os.SEEK_END)
    handle.write(_moov(track, samples, len(head)))
    return len(head)


def runs(samples: list[Sample]) -> list[tuple[int, int]]:
    """The samples' bytes as few runs of the source as they lie in: (offset, length)."""
    runs: list[tuple[int, int]] = []
    for sample in samples:
        if runs and runs[-1][0] + runs[-1][1] == sample.offset:
            runs[-1] = (runs[-1][0], runs[-1][1] + sample.size)
        else:
            runs.append((sample.offset, sample.size))
    return runs


def _box(kind: bytes, *parts: bytes) -> bytes:
    content = b"".join(parts)
    return struct.pack(">I4s", 8 + len(content), kind) + content


def _full(kind: bytes, flags: int, *parts: bytes) -> bytes:
    return _box(kind, flags.to_bytes(4, "big"), *parts)


def _moov(track: Track, samples: list[Sample], first: int) -> bytes:
    """The movie box of one video track whose samples lie back to back from ``first``,
    all in one chunk; times in ticks of the track's timescale from the first sample."""
    matrix = struct.pack(">9I", *IDENTITY)
    ticks = sum(s.duration for s in samples)
    shown = ticks * MOVIE_TIMESCALE // track.timescale
    mvhd = _full(b"mvhd", 0, struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, shown),
                 struct.pack(">IH10x", 0x10000, 0x100), matrix, bytes(24),
                 struct.pack(">I", 2))  # fmt: skip
    tkhd = _full(b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, shown), bytes(8),
                 struct.pack(">HHHH", 0, 0, 0, 0), matrix,
                 struct.pack(">II", track.width << 16, track.height << 16))  # fmt: skip
    mdhd = _full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, track.timescale, ticks, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    avc1 = _box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16),
                struct.pack(">HHIIIH", track.width, track.height, 0x480000, 0x480000, 0, 1),
                bytes(32), struct.pack(">Hh", 0x18, -1),
                _box(b"avcC", track.avcc))  # fmt: skip
    deltas: list[int] = []  # runs of equal durations: count, duration, count, ...
    for sample in samples:
        if deltas and deltas[-1] == sample.duration:
            deltas[-2] += 1
        else:
            deltas += [1, sample.duration]
    keys = [at + 1 for at, s in enumerate(samples) if s.keyframe]
    count = len(samples)
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, struct.pack(f">I{len(deltas)}I", len(deltas) // 2, *deltas)),
        _full(b"stss", 0, struct.pack(f">I{len(keys)}I", len(keys), *keys)),
        _full(b"stsc", 0, struct.pack(">IIII", 1, 1, count, 1)),
        _full(b"stsz", 0, struct.pack(f">II{count}I", 0, count, *(s.size for s in samples))),
        _full(b"stco", 0, struct.pack(">II", 1, first)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1), _full(b"url ", 1)))
    minf = _box(b"minf", _full(b"vmhd", 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak)
