"""The one H.264 video track of an MP4, read from its boxes and written back as a new file
(ISO/IEC 14496-12 and 14496-15): what the doorbell needs to check the MP4 it wrote, and
what cutting an excerpt needs, and nothing more.

A clip's samples are already canonical (:mod:`porch.core.gops`), so an excerpt is the same
samples with a new sample table: :func:`write_mp4` writes the boxes FFmpeg writes for a
video track (ftyp, free, mdat, moov, in that order) around bytes the caller copies, and no
sample goes through a muxer. What a file's boxes say is bounded before it is used: at most
:data:`MAX_BOXES` boxes in a row and :data:`~porch.core.gops.MAX_FRAMES` samples, samples
in order, none overlapping the one before, all inside the file. A file is read with
``pread`` (:func:`read_track_file`), never mapped: one cut short meanwhile is an error,
not a bus error.
"""

from __future__ import annotations

import operator
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import BinaryIO

from porch.core.gops import MAX_FRAMES, Bytes, GopError

MOVIE_TIMESCALE = 1000
MAX_BOXES = 1000
"""Boxes side by side at one level at most (a clip has fewer than twenty)."""
PAGE = 4096
"""A page of the page cache: an excerpt's first sample keeps its offset within one."""
MAX_MOVIE_BYTES = 64 * 1024 * 1024
"""The movie box at most: the sample table of MAX_FRAMES samples is a few MB."""
IDENTITY = (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
"""An MP4 transformation matrix that shows the picture as it is (ISO/IEC 14496-12)."""
FTYP = struct.pack(">I4s4sI4s4s4s4s", 32, b"ftyp", b"isom", 512, b"isom", b"iso2", b"avc1", b"mp41")
_SAMPLE_TABLE = (b"stsd", b"stts", b"stsz", b"stsc", b"stco", b"co64", b"stss", b"ctts")


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


def mp4_boxes(data: Bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
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
        if len(found) > MAX_BOXES:
            raise GopError(f"the MP4 has more than {MAX_BOXES} boxes side by side")
        at += size
    return found


def mdat_offset(data: Bytes) -> int:
    """Where the media data of an MP4 with one mdat box begins: the first sample, in an MP4
    as FFmpeg writes one (``data`` may end inside the box, whose size is not written yet)."""
    at = 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), bytes(data[at + 4 : at + 8])
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        if kind == b"mdat":
            return at + header
        if size < header:
            break
        at += size
    raise GopError("the MP4 has no media data box")


def child_box(data: Bytes, start: int, end: int, *path: bytes) -> tuple[int, int]:
    """The content of the box at ``path`` below (start, end): exactly one at each step."""
    for kind in path:
        matches = [(s, e) for k, s, e in mp4_boxes(data, start, end) if k == kind]
        if len(matches) != 1:
            raise GopError(f"the MP4 has {len(matches)} {kind.decode()} boxes where one belongs")
        start, end = matches[0]
    return start, end


def _table(data: Bytes, start: int, end: int, skip: int, fields: int, fmt: str = "I") -> list[int]:
    """The entries of a full box's table: ``skip`` bytes, a 4-byte count, then entries of
    ``fields`` numbers each."""
    count = int.from_bytes(data[start + skip : start + skip + 4], "big")
    width = struct.calcsize(">" + fmt) * fields
    if count > MAX_FRAMES or start + skip + 4 + count * width > end:
        raise GopError("a sample table of the MP4 is longer than its box")
    return list(struct.unpack_from(f">{count * fields}{fmt}", data, start + skip + 4))


def read_track(data: Bytes) -> Track:
    """The one video track of an MP4 held in memory, with its samples resolved;
    :class:`GopError` for anything but one H.264 track of samples inside the file, in
    decode order."""
    moovs = [(s, e) for k, s, e in mp4_boxes(data) if k == b"moov"]
    if len(moovs) != 1:
        raise GopError("the MP4 has no movie box, or more than one")
    return _parse(data, *moovs[0], len(data))


def read_track_file(fd: int) -> Track:
    """:func:`read_track` of an open MP4 file: its top-level boxes' headers and its movie
    box are read, nothing else."""
    size, at, moov, boxes = os.fstat(fd).st_size, 0, None, 0
    while at < size:
        head = os.pread(fd, 16, at)
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        header = 16 if length == 1 else 8
        length = int.from_bytes(head[8:16], "big") if length == 1 else length or size - at
        if len(head) < header or length < header or at + length > size:
            raise GopError(f"the MP4's {bytes(kind)!r} box has an impossible size")
        if kind == b"moov":
            if moov is not None or length > MAX_MOVIE_BYTES:
                raise GopError("the MP4 has more than one movie box, or one too big")
            moov = (at + header, at + length)
        at, boxes = at + length, boxes + 1
        if boxes > MAX_BOXES:
            raise GopError(f"the MP4 has more than {MAX_BOXES} boxes side by side")
    if moov is None:
        raise GopError("the MP4 has no movie box")
    data = os.pread(fd, moov[1] - moov[0], moov[0])
    if len(data) != moov[1] - moov[0]:
        raise GopError("the MP4 was cut short while it was read")
    return _parse(data, 0, len(data), size)


def _parse(data: Bytes, start: int, end: int, file_size: int) -> Track:
    """The track of the movie box that lies at ``start``..``end`` of ``data``."""
    try:
        return _track(data, start, end, file_size)
    except (struct.error, IndexError):
        raise GopError("the MP4's boxes are cut short") from None


def _track(data: Bytes, start: int, end: int, file_size: int) -> Track:
    traks = [(s, e) for k, s, e in mp4_boxes(data, start, end) if k == b"trak"]
    if len(traks) != 1:
        raise GopError("the MP4 holds other than one track")
    trak = traks[0]
    mdhd = child_box(data, *trak, b"mdia", b"mdhd")
    timescale = int.from_bytes(data[mdhd[0] + 20 : mdhd[0] + 24], "big") if data[
        mdhd[0]] == 1 else int.from_bytes(data[mdhd[0] + 12 : mdhd[0] + 16], "big")  # fmt: skip
    stbl = child_box(data, *trak, b"mdia", b"minf", b"stbl")
    boxes = {k: (s, e) for k, s, e in mp4_boxes(data, *stbl) if k in _SAMPLE_TABLE}
    if b"stsd" not in boxes or timescale == 0:
        raise GopError("the MP4's track is not video")
    # The stsd box: 8 bytes (version, count), then one avc1 sample entry: 78 bytes, boxes.
    avc1 = child_box(data, boxes[b"stsd"][0] + 8, boxes[b"stsd"][1], b"avc1")
    if avc1[0] + 78 > avc1[1]:
        raise GopError("the MP4's H.264 sample entry is cut short")
    width, height = struct.unpack_from(">HH", data, avc1[0] + 24)
    avcc = child_box(data, avc1[0] + 78, avc1[1], b"avcC")
    if b"ctts" in boxes and any(_table(data, *boxes[b"ctts"], 4, 2)[1::2]):
        raise GopError("the MP4's frames are shown in another order than they are stored")
    sizes = _sizes(data, *boxes[b"stsz"]) if b"stsz" in boxes else []
    offsets = _offsets(data, boxes, sizes)
    durations = _durations(data, *boxes[b"stts"], len(sizes)) if b"stts" in boxes else []
    if len(durations) != len(sizes):
        raise GopError("the MP4's sample table times fewer or more samples than it has")
    sync = set(_table(data, *boxes[b"stss"], 4, 1)) if b"stss" in boxes else None
    ends = list(map(operator.add, offsets, sizes))
    if ends and max(ends) > file_size:
        raise GopError("a sample of the MP4 lies outside it")
    if any(map(operator.lt, offsets[1:], ends)):
        raise GopError("the MP4's samples overlap, or are not in order")
    times = list(accumulate(durations[:-1], initial=0)) if durations else []
    avcc_bytes = bytes(data[avcc[0] : avcc[1]])
    return Track(width, height, timescale, avcc_bytes, offsets, sizes, times, durations, sync)


def _sizes(data: Bytes, start: int, end: int) -> list[int]:
    fixed, count = struct.unpack_from(">II", data, start + 4)
    if fixed:
        if count > MAX_FRAMES:
            raise GopError("the MP4 has more samples than a clip can")
        return [fixed] * count
    return _table(data, start, end, 8, 1)


def _offsets(data: Bytes, boxes: dict[bytes, tuple[int, int]], sizes: list[int]) -> list[int]:
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


def _durations(data: Bytes, start: int, end: int, count: int) -> list[int]:
    runs = _table(data, start, end, 4, 2)
    if sum(runs[0::2]) > count:
        raise GopError("the MP4's sample table times more samples than it has")
    return [delta for at in range(0, len(runs), 2) for delta in [runs[at + 1]] * runs[at]]


def write_mp4(handle: BinaryIO, track: Track, copy: Callable[[], None], page: int = 0) -> int:
    """Write an MP4 of ``track`` (its samples' offsets are where ``copy`` reads them; its
    times start at 0) to the open file ``handle``: the header, then ``copy()``, which must
    append the samples' bytes to the file in order, then the sample table. The free box
    before the media data is as long as it takes for the first sample to lie ``page``
    bytes into a 4 KiB page, as it does in the file it is copied from: the kernel then
    copies whole pages. Returns where the first sample lies."""
    payload = sum(track.sizes)
    if payload + 8 > 0xFFFFFFFF or sum(track.durations) > 0xFFFFFFFF:
        raise GopError("an excerpt of 4 GiB or more, or longer than 32 bits of ticks")
    free = 8 + (page - len(FTYP) - 16) % PAGE
    head = FTYP + struct.pack(">I4s", free, b"free") + bytes(free - 8)
    head += struct.pack(">I4s", payload + 8, b"mdat")
    handle.write(head)
    handle.flush()
    copy()
    handle.seek(0, os.SEEK_END)
    handle.write(_moov(track, len(head)))
    return len(head)


def runs(offsets: list[int], sizes: list[int]) -> list[tuple[int, int]]:
    """Samples' bytes as few runs of the file as they lie in: (offset, length)."""
    found: list[tuple[int, int]] = []
    for offset, size in zip(offsets, sizes, strict=True):
        if found and found[-1][0] + found[-1][1] == offset:
            found[-1] = (found[-1][0], found[-1][1] + size)
        else:
            found.append((offset, size))
    return found


def _box(kind: bytes, *parts: bytes) -> bytes:
    content = b"".join(parts)
    return struct.pack(">I4s", 8 + len(content), kind) + content


def _full(kind: bytes, flags: int, *parts: bytes) -> bytes:
    return _box(kind, flags.to_bytes(4, "big"), *parts)


def _moov(track: Track, first: int) -> bytes:
    """The movie box of one video track whose samples lie back to back from ``first``,
    all in one chunk."""
    matrix = struct.pack(">9I", *IDENTITY)
    ticks = sum(track.durations)
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
    for duration in track.durations:
        if deltas and deltas[-1] == duration:
            deltas[-2] += 1
        else:
            deltas += [1, duration]
    count = len(track.sizes)
    keys = list(range(1, count + 1)) if track.sync is None else sorted(track.sync)
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, struct.pack(f">I{len(deltas)}I", len(deltas) // 2, *deltas)),
        _full(b"stss", 0, struct.pack(f">I{len(keys)}I", len(keys), *keys)),
        _full(b"stsc", 0, struct.pack(">IIII", 1, 1, count, 1)),
        _full(b"stsz", 0, struct.pack(f">II{count}I", 0, count, *track.sizes)),
        _full(b"stco", 0, struct.pack(">II", 1, first)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1), _full(b"url ", 1)))
    minf = _box(b"minf", _full(b"vmhd", 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak)
