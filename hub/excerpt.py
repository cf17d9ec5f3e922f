"""GOP proofs on the hub, with the MP4s they are about (:mod:`porch.core.gops`): the table of
a stored clip, excerpts of whole GOPs re-muxed without re-encoding, the check of an
excerpt's samples, and the MP4 of a journal left by a doorbell's crash."""

from __future__ import annotations

import contextlib
import io
import mmap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from porch.core import journal
from porch.core.gops import (
    TICKS_PER_S,
    GopError,
    GopHasher,
    GopTable,
    canonical,
    check_ranges,
    nal_spans,
    nal_units,
    times_digest,
)
from porch.core.seal import unseal, verify_digest
from porch.core.wire import ClipMeta, GopSeal

TIME_BASE = Fraction(1, TICKS_PER_S)


@dataclass(frozen=True)
class Frame:
    ticks: int
    data: bytes
    """Canonical bytes (4-byte length before each NAL unit): the MP4 sample."""
    keyframe: bool


def read_frames(source: Path | bytes) -> tuple[list[Frame], int, int]:
    """A clip's frames in canonical form and its frame size."""
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
        stream = container.streams.video[0]
        base = stream.time_base or TIME_BASE
        frames = [
            Frame(
                round(packet.pts * base * TICKS_PER_S),
                _sample(bytes(packet)),
                bool(packet.is_keyframe),
            )
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        ]
        context = stream.codec_context
        return frames, context.width, context.height


def _sample(data: bytes) -> bytes:
    """An MP4 sample, checked to be canonical already (4-byte lengths that add up)."""
    nal_spans(data, annex_b=False)
    return data


def table_from_mp4(
    source: Path | bytes, header: GopTable, complete: bool = True, max_gops: int | None = None
) -> GopTable:
    """The GOP table of an MP4's video, hashed as it is read (nothing is kept): what a
    doorbell signed, when the file is what it sent. Its samples must lie in the file one
    after the other, never overlapping or repeated (a sample table that points at one
    frame a million times costs nothing then), and at most ``max_gops`` GOPs are read."""
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    hasher = GopHasher(GopTable(header.device_id, header.clip_id, header.start_us),
                       keep_units=False)  # fmt: skip
    end, total = 0, 0
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as box:
            if len(box.streams) != 1 or not box.streams.video:
                raise GopError("the file holds other streams than one video")
            stream = box.streams.video[0]
            base = stream.time_base or TIME_BASE
            for packet in box.demux(stream):
                if packet.pts is None or not packet.size:
                    continue
                if packet.pos is None or packet.pos < end:
                    raise GopError("the file's samples overlap or repeat")
                end, total = packet.pos + packet.size, total + packet.size
                if end > size or total > size:
                    raise GopError("the file's samples lie outside it")
                ticks = round(packet.pts * base * TICKS_PER_S)
                hasher.add(ticks, _sample(bytes(packet)), bool(packet.is_keyframe))
                if max_gops is not None and len(hasher.table.gops) > max_gops:
                    raise GopError(f"the file holds more than {max_gops} GOPs")
    except (av.FFmpegError, OverflowError, ValueError) as exc:
        if isinstance(exc, GopError):
            raise
        raise GopError(f"not a readable MP4 ({exc})") from None
    table = hasher.finish()
    table.complete = complete
    return table


def header_of(meta: ClipMeta) -> GopTable:
    """An empty table with the header a clip's device wrote."""
    return GopTable(meta.device_id, meta.clip_id, round(meta.start_ts * 1e6))


def check_seal(table: GopTable, seal: GopSeal, signer) -> None:
    """``table`` is the one the device signed: same count, hash and (with a key) signature."""
    if len(table.gops) != seal.count:
        raise GopError(f"the video has {len(table.gops)} GOPs, the seal {seal.count}")
    if table.sha256() != seal.table_sha256:
        raise GopError("the video's GOP table is not the one the device signed")
    if signer is not None and not (
        seal.signature and verify_digest(signer, seal.table_sha256, seal.signature)
    ):
        raise GopError("the GOP table does not carry the device's signature")


def write_mp4(dest: Path | io.BytesIO, frames: list[Frame], width: int, height: int) -> None:
    """Mux canonical frames into an MP4 (their times from the first frame's). They go in as
    Annex B, the way FFmpeg's MP4 muxer takes a camera's H.264, and it stores each as the
    canonical bytes it came from (callers check: :func:`check_excerpt`)."""
    first = nal_units(frames[0].data, annex_b=False)
    parameter_sets = [u for u in first if u[0] & 0x1F in (7, 8)]
    if len(parameter_sets) < 2:
        raise GopError("the first keyframe carries no SPS and PPS")
    origin = frames[0].ticks
    target = dest if isinstance(dest, io.BytesIO) else str(dest)
    with av.open(target, "w", format="mp4") as container:
        stream = container.add_stream("h264")
        stream.width, stream.height = width, height
        stream.time_base = TIME_BASE
        stream.codec_context.extradata = _annex_b(parameter_sets)
        for frame in frames:
            packet = av.Packet(_annex_b(nal_units(frame.data, annex_b=False)))
            packet.pts = packet.dts = frame.ticks - origin
            packet.time_base = TIME_BASE
            packet.is_keyframe = frame.keyframe
            packet.stream = stream
            container.mux(packet)


def _annex_b(units: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in units)


def samples(path: Path | bytes) -> list[tuple[int, int, int]]:
    """(offset, length, ticks) of every sample of an MP4's one video stream, in order."""
    with av.open(io.BytesIO(path) if isinstance(path, bytes) else str(path)) as container:
        if len(container.streams) != 1 or not container.streams.video:
            raise GopError("the file holds other streams than one video")
        stream = container.streams.video[0]
        base = stream.time_base or TIME_BASE
        return [
            (packet.pos, packet.size, round(packet.pts * base * TICKS_PER_S))
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        ]


def gop_frames(frames: list[Frame]) -> list[list[Frame]]:
    gops: list[list[Frame]] = []
    for frame in frames:
        if frame.keyframe or not gops:
            gops.append([])
        gops[-1].append(frame)
    return gops


def cut(source: Path, dest: Path, table: GopTable, first: int, last: int):
    """Write GOPs ``first``..``last`` of ``source`` to ``dest`` without re-encoding (the
    samples are copied as they are, from a seek to the first GOP's keyframe), check the
    result against ``table``, and return its ranges: (GOP index, offset, length), each GOP
    one contiguous run of the file."""
    if not 0 <= first <= last < len(table.gops):
        raise GopError("the excerpt's GOPs are not in the clip")
    try:
        return _cut(source, dest, table, first, last, seek=True)
    except GopError:  # a file whose index made the seek land late: from the start, then
        return _cut(source, dest, table, first, last, seek=False)


def _cut(source: Path, dest: Path, table: GopTable, first: int, last: int, seek: bool):
    start, end = table.gops[first].first, table.gops[last].last
    sizes = []
    with av.open(str(source)) as inp:
        stream = inp.streams.video[0]
        base = stream.time_base or TIME_BASE
        num, den = base.numerator * TICKS_PER_S, base.denominator  # ticks = pts * num / den
        offset = start * den // num  # the first GOP's time in the stream's units
        if seek:
            inp.seek(offset, stream=stream, backward=True, any_frame=False)
        with av.open(str(dest), "w", format="mp4") as out:
            copy = out.add_stream_from_template(stream)
            for packet in inp.demux(stream):
                if packet.pts is None or not packet.size:
                    continue
                ticks = packet.pts * num // den
                if ticks > end:
                    break
                if ticks < start:
                    continue
                packet.pts -= offset
                packet.dts = packet.pts
                packet.time_base = base
                packet.stream = copy
                sizes.append(packet.size)
                out.mux(packet)
    # The muxer writes the samples back to back into the file's one mdat box, in order;
    # their bytes are checked against the table where they lie (which checks the source).
    failure = None
    with open(dest, "rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            ranges = _placed(table, first, last, sizes, data)
        except GopError as exc:  # raised again once its views of the map are gone
            failure = str(exc)
        with contextlib.suppress(BufferError):
            data.close()
    if failure is not None:
        raise GopError(failure)
    return ranges


def _placed(table: GopTable, first: int, last: int, sizes: list[int], data) -> list:
    at, ranges = mdat_offset(data), []
    for index in range(first, last + 1):
        count = table.gops[index].frames
        length = sum(sizes[:count])
        if len(sizes) < count:
            raise GopError(f"GOP {index} did not reach the excerpt")
        ranges.append((index, at, length))
        at, sizes = at + length, sizes[count:]
    if sizes:
        raise GopError("the excerpt holds more frames than its GOPs")
    check_ranges(table, ranges, memoryview(data))  # porch verify checks the sample table too
    return ranges


def mdat_offset(data: bytes) -> int:
    """Where the media data of an MP4 with one mdat box begins (ISO/IEC 14496-12 boxes)."""
    at = 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        if kind == b"mdat":
            return at + header
        if size < header:
            break
        at += size
    raise GopError("the excerpt has no media data box")


def check_excerpt(
    data: bytes,
    table: GopTable,
    ranges: list[tuple[int, int, int]],
    played: list[tuple[int, int, int]] | None = None,
) -> None:
    """An excerpt file against the doorbell's table: every GOP's bytes as signed, and the
    file's own sample table playing exactly those bytes, frame for frame, at the signed
    times (``played``: its samples, when the caller has just read them). Raises
    :class:`GopError` with the first reason."""
    first, last = check_ranges(table, ranges, data)
    check_layout(data, ranges)
    try:
        played = samples(data) if played is None else played
    except (av.FFmpegError, IndexError) as exc:
        raise GopError(f"the excerpt is not a playable MP4 ({exc})") from None
    expected = sum(table.gops[i].frames for i in range(first, last + 1))
    if len(played) != expected:
        raise GopError(f"the excerpt plays {len(played)} frames; its GOPs hold {expected}")
    origin, at = table.gops[first].first, 0
    for index, offset, length in ranges:
        gop = table.gops[index]
        runs = played[at : at + gop.frames]
        at += gop.frames
        end = offset
        for pos, size, _ in runs:
            if pos != end:
                raise GopError(f"GOP {index}'s frames are not the bytes its range holds")
            end += size
        if end != offset + length:
            raise GopError(f"GOP {index}'s frames do not fill its range")
        if times_digest([run[2] + origin for run in runs]) != gop.times:
            raise GopError(f"GOP {index} plays at other times than the doorbell recorded")


IDENTITY = (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
"""An MP4 transformation matrix that shows the picture as it is (ISO/IEC 14496-12)."""
TOP = {b"ftyp", b"free", b"skip", b"mdat", b"moov"}
IN_MOOV = {b"mvhd", b"trak", b"udta", b"free", b"skip"}
IN_TRAK = {b"tkhd", b"edts", b"mdia", b"udta", b"free", b"skip"}


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
        if size < header or at + size > end:
            raise GopError(f"the MP4's {kind!r} box has an impossible size")
        found.append((kind, at + header, at + size))
        at += size
    return found


def check_layout(data, ranges: list[tuple[int, int, int]]) -> None:
    """The excerpt is laid out as Porch writes one, so that what it plays is what the
    ranges hold: one media data box holding exactly the ranges; one movie with one
    enabled video track, shown as recorded (identity matrices), and an edit list (if any)
    that plays it from its start at normal speed. Anything else is refused (a second
    track, a picture turned or mirrored, bytes played from elsewhere)."""
    top = mp4_boxes(data)
    kinds = [kind for kind, _, _ in top]
    if not set(kinds) <= TOP or kinds.count(b"mdat") != 1 or kinds.count(b"moov") != 1:
        raise GopError(f"the excerpt's boxes are not those of a Porch excerpt: {kinds}")
    ((_, media, media_end),) = [box for box in top if box[0] == b"mdat"]
    if (media, media_end) != (ranges[0][1], ranges[-1][1] + ranges[-1][2]):
        raise GopError("the excerpt's media data holds more or less than its GOPs")
    ((_, moov, moov_end),) = [box for box in top if box[0] == b"moov"]
    inside = mp4_boxes(data, moov, moov_end)
    if (
        not {kind for kind, _, _ in inside} <= IN_MOOV
        or [k for k, _, _ in inside].count(b"trak") != 1
    ):
        raise GopError("the excerpt's movie holds other than one track")
    for kind, start, end in inside:
        if kind == b"mvhd":
            _identity(data, start, end, 36, 48, "movie")
        elif kind == b"trak":
            _check_track(data, start, end)


def _identity(data, start: int, end: int, at_v0: int, at_v1: int, what: str) -> None:
    at = start + (at_v1 if data[start] == 1 else at_v0)
    if at + 36 > end:
        raise GopError(f"the excerpt's {what} header is cut short")
    matrix = tuple(int.from_bytes(data[at + 4 * i : at + 4 * i + 4], "big") for i in range(9))
    if matrix != IDENTITY:
        raise GopError(f"the excerpt's {what} is turned or mirrored, not shown as recorded")


def _check_track(data, start: int, end: int) -> None:
    boxes = mp4_boxes(data, start, end)
    if not {kind for kind, _, _ in boxes} <= IN_TRAK:
        raise GopError("the excerpt's track holds boxes a Porch excerpt has not")
    for kind, begin, stop in boxes:
        if kind == b"tkhd":
            if not int.from_bytes(data[begin + 1 : begin + 4], "big") & 1:
                raise GopError("the excerpt's track is not enabled")
            _identity(data, begin, stop, 40, 52, "track")
        elif kind == b"edts":
            for edit, at, edit_end in mp4_boxes(data, begin, stop):
                if edit == b"elst":
                    _check_edits(data, at, edit_end)


def _check_edits(data, at: int, end: int) -> None:
    """One edit that plays the track from its start at normal speed, or none."""
    version, count = data[at], int.from_bytes(data[at + 4 : at + 8], "big")
    width = 8 if version == 1 else 4
    entry = at + 8
    if count != 1 or entry + 2 * width + 4 > end:
        raise GopError("the excerpt's edit list is not the single plain edit Porch writes")
    media_time = int.from_bytes(data[entry + width : entry + 2 * width], "big", signed=True)
    rate = int.from_bytes(data[entry + 2 * width : entry + 2 * width + 4], "big")
    if media_time != 0 or rate != 0x10000:
        raise GopError("the excerpt's edit list skips or speeds up frames")


def open_journal(meta: ClipMeta, data: bytes, seal_key, signer) -> tuple[bytes, bytes, bytes]:
    """The MP4, thumbnail and GOP table of a journal clip (a recording a crash cut short):
    the GOPs its checkpoint signed, checked against that signature, re-muxed. ``seal_key``:
    the hub's key when the clip is sealed."""
    assert meta.gops is not None

    def opened(payload: bytes) -> bytes:
        return unseal(payload, seal_key) if meta.sealed else payload

    thumbnail, units = None, []
    hasher = GopHasher(header_of(meta),
                       annex_b=True, keep_units=False)  # fmt: skip
    for tag, payload, _ in journal.records(data):
        if tag == journal.THUMBNAIL:
            thumbnail = opened(payload)
        elif tag == journal.GOP and len(units) < meta.gops.count:
            gop = journal.unpack_gop(opened(payload))
            for at, (ticks, unit) in enumerate(gop):  # checked as it comes: times, sizes
                hasher.add(ticks, unit, at == 0)
            units.append(gop)
    if thumbnail is None or len(units) != meta.gops.count:
        raise GopError("the journal lacks the GOPs its checkpoint signed")
    table = hasher.finish()
    table.complete = False
    check_seal(table, meta.gops, signer)
    frames = [
        Frame(ticks, canonical(unit, annex_b=True), at == 0)
        for gop in units
        for at, (ticks, unit) in enumerate(gop)
    ]
    out = io.BytesIO()
    write_mp4(out, frames, meta.width, meta.height)
    video = out.getvalue()
    if table_from_mp4(video, table, False).sha256() != table.sha256():
        raise GopError("the journal's GOPs did not survive muxing")
    return video, thumbnail, table.text()
