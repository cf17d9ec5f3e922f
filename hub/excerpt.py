"""GOP proofs on the hub, with the MP4s they are about (:mod:`porch.core.gops`): the table of
a stored clip, excerpts of whole GOPs copied without re-encoding or re-muxing, the check of
an excerpt's samples, and the MP4 of a journal left by a doorbell's crash."""

from __future__ import annotations

import io
import mmap
import operator
import os
import struct
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from porch.core import journal
from porch.core.gops import (
    MAX_FRAMES,
    TICKS_PER_S,
    GopError,
    GopHasher,
    GopTable,
    check_ranges,
    nal_spans,
    times_digest,
)
from porch.core.mp4track import (
    IDENTITY,
    PAGE,
    Track,
    child_box,
    mp4_boxes,
    read_track,
    read_track_file,
    runs,
    write_mp4,
)
from porch.core.seal import open_sealed, verify_digest
from porch.core.wire import ClipMeta, GopSeal

TIME_BASE = Fraction(1, TICKS_PER_S)


@dataclass(frozen=True)
class Frame:
    ticks: int
    data: bytes
    """The access unit: canonical bytes (a 4-byte length before each NAL unit, the MP4
    sample), or Annex B where a function says so (:func:`mux_annex_b`)."""
    keyframe: bool


def read_frames(source: Path | bytes) -> tuple[list[Frame], int, int]:
    """A clip's frames in canonical form and its frame size."""
    with av.open(
        io.BytesIO(source) if isinstance(source, bytes) else str(source), "r"
    ) as container:
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
    nal_spans(data)
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
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "r") as box:
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


def mux_annex_b(frames: list[Frame], width: int, height: int) -> bytes:
    """An MP4 of access units in Annex B (``Frame.data`` as an encoder gives it; times from
    the first frame's), muxed by FFmpeg as the doorbell muxes them: each becomes the
    canonical sample the doorbell's GOP hashes were taken of (callers check)."""
    out = io.BytesIO()
    try:
        with av.open(out, "w", format="mp4") as container:
            stream = container.add_mux_stream("h264", width=width, height=height)
            stream.time_base = TIME_BASE
            for before, frame in zip([frames[0], *frames], frames, strict=False):
                packet = av.Packet(frame.data)
                packet.pts = packet.dts = frame.ticks - frames[0].ticks
                packet.duration = frame.ticks - before.ticks  # the last one's is kept
                packet.time_base = TIME_BASE
                packet.is_keyframe = frame.keyframe
                packet.stream = stream
                container.mux(packet)
    except (av.FFmpegError, ValueError, OverflowError) as exc:
        raise GopError(f"the access units cannot be muxed ({exc})") from None
    return out.getvalue()


def samples(path: Path | bytes) -> list[tuple[int, int, int]]:
    """(offset, length, ticks) of every sample of an MP4's one video stream, in order."""
    with av.open(io.BytesIO(path) if isinstance(path, bytes) else str(path), "r") as container:
        if len(container.streams) != 1 or not container.streams.video:
            raise GopError("the file holds other streams than one video")
        stream = container.streams.video[0]
        base = stream.time_base or TIME_BASE
        found = []
        for packet in container.demux(stream):
            if not packet.size or packet.pts is None:
                continue  # the demuxer's empty packet at the end
            if packet.pos is None:
                raise GopError("a sample of the file has no place in it")
            found.append((packet.pos, packet.size, round(packet.pts * base * TICKS_PER_S)))
        return found


def cut(
    source: Path,
    dest: Path,
    table: GopTable,
    first: int,
    last: int,
    size: tuple[int, int] | None = None,
) -> list[tuple[int, int, int]]:
    """Write GOPs ``first``..``last`` of ``source`` to ``dest`` without re-muxing: the
    samples' bytes are copied as they lie (by the kernel) into a new MP4 whose sample table
    is written from what the doorbell signed (:func:`~porch.core.mp4track.write_mp4`):
    frame times and keyframes from ``table``, the decoder's configuration only if it is the
    one the first keyframe carries, the picture ``size`` (width, height) if given. Each
    GOP's bytes are read back from ``dest`` (mapped: the excerpt's own new file, unlike
    the clip, which is only ever read with pread) and matched against ``table`` on a
    second thread while the kernel copies the next. Returns the excerpt's ranges: (GOP
    index, offset, length), each GOP one run of the file. A failed cut leaves no file."""
    if not 0 <= first <= last < len(table.gops):
        raise GopError("the excerpt's GOPs are not in the clip")
    try:
        return _write_excerpt(source, dest, table, first, last, size)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _write_excerpt(source: Path, dest: Path, table: GopTable, first: int, last: int, size):
    with open(source, "rb") as src:
        clip = read_track_file(src.fileno())
        if size is not None and (clip.width, clip.height) != size:
            raise GopError(f"the clip says its picture is {clip.width}x{clip.height}")
        excerpt, bounds = excerpt_track(clip, table, first, last)
        key = os.pread(src.fileno(), excerpt.sizes[0], excerpt.offsets[0])
        _check_configuration(clip.avcc, key)
        placed: list[tuple[int, int, int]] = []
        with open(dest, "w+b") as out, ThreadPoolExecutor(1, "excerpt-check") as pool:

            def copy() -> None:
                at = out.tell()
                end = at + sum(excerpt.sizes)
                os.ftruncate(out.fileno(), end)  # the excerpt's own file, mapped to be read
                with (
                    mmap.mmap(out.fileno(), end, access=mmap.ACCESS_READ) as written,
                    memoryview(written) as view,
                ):
                    checks = []
                    for index, (a, b) in enumerate(bounds, first):
                        start = at
                        for offset, length in runs(excerpt.offsets[a:b], excerpt.sizes[a:b]):
                            _send(out.fileno(), src.fileno(), offset, length)
                            at += length
                        placed.append((index, start, at - start))
                        checks.append(pool.submit(check_ranges, table, placed[-1:], view))
                    wait(checks)  # all done with the map before the first failure is raised
                    for check in checks:
                        check.result()

            write_mp4(out, excerpt, copy, excerpt.offsets[0] % PAGE)
    return placed


def excerpt_track(clip: Track, table: GopTable, first: int, last: int):
    """The excerpt's track (its samples where they lie in the clip) and each GOP's samples
    in it (from, to), once they are checked to be GOPs ``first``..``last`` of ``table``:
    each starts on a keyframe, has the table's frame count and the frame times the doorbell
    signed. What the excerpt says of them comes from the table: times in ticks from its
    first frame, the last frame lasting until the next GOP the doorbell signed (or as long
    as the one before it), keyframes where its GOPs start."""
    start = sum(gop.frames for gop in table.gops[:first])
    stop = start + sum(gop.frames for gop in table.gops[first : last + 1])
    if stop > len(clip.sizes):
        raise GopError("the clip's sample table holds fewer frames than its GOPs")
    times = clip.times[start:stop]
    ticks = times if clip.timescale == TICKS_PER_S else [_ticks(t, clip.timescale) for t in times]
    bounds, at = [], 0
    for gop in table.gops[first : last + 1]:
        frames = ticks[at : at + gop.frames]
        keyframe = clip.sync is None or start + at + 1 in clip.sync
        if not keyframe or frames[0] != gop.first:
            raise GopError(f"GOP {gop.index} is not where the clip's sample table puts it")
        if times_digest(frames) != gop.times or frames[-1] != gop.last:
            raise GopError(f"GOP {gop.index} plays at other times than the doorbell recorded")
        bounds.append((at, at + gop.frames))
        at += gop.frames
    if last + 1 < len(table.gops):
        after = table.gops[last + 1].first
    else:  # the clip's last frame: shown as long as the one before it
        after = ticks[-1] + (ticks[-1] - ticks[-2] if len(ticks) > 1 else TICKS_PER_S // 30)
    excerpt = Track(
        clip.width, clip.height, TICKS_PER_S, clip.avcc,
        clip.offsets[start:stop], clip.sizes[start:stop], [t - ticks[0] for t in ticks],
        list(map(operator.sub, [*ticks[1:], after], ticks)), {a + 1 for a, _ in bounds},
    )  # fmt: skip
    return excerpt, bounds


def _check_configuration(avcc: bytes, keyframe: bytes, what: str = "clip") -> None:
    """The ``what``'s decoder configuration (avcC) says samples carry 4-byte lengths and
    holds exactly the SPS and PPS the excerpt's first keyframe carries, which the doorbell
    signed with it (ISO/IEC 14496-15, 5.3.3.1)."""
    sets, at = [], 6
    try:
        if avcc[0] != 1 or avcc[4] & 0x03 != 3:
            raise GopError(f"the {what}'s decoder configuration is not for 4-byte lengths")
        for count in (avcc[5] & 0x1F, None):
            if count is None:  # the PPS follow the SPS, with a count of their own
                count, at = avcc[at], at + 1
            for _ in range(count):
                length = int.from_bytes(avcc[at : at + 2], "big")
                sets.append(avcc[at + 2 : at + 2 + length])
                at += 2 + length
    except IndexError:
        raise GopError(f"the {what}'s decoder configuration is cut short") from None
    carried = [keyframe[a:b] for a, b in nal_spans(keyframe) if keyframe[a] & 0x1F in (7, 8)]
    if not carried or sorted(sets) != sorted(carried):
        raise GopError(f"the {what}'s decoder configuration is not the one its keyframe carries")


def _ticks(time: int, timescale: int) -> int:
    """A time in a track's timescale in ticks, rounded as FFmpeg's readers round it."""
    if timescale == TICKS_PER_S:
        return time
    return round(Fraction(time * TICKS_PER_S, timescale))


def _send(dest: int, source: int, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``source`` from ``offset`` to ``dest``, in the kernel."""
    while length:
        done = os.sendfile(dest, source, offset, length)
        if done <= 0:
            raise GopError("the clip ends before its samples do")
        offset, length = offset + done, length - done


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
    check_picture(data)
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


TOP = {b"ftyp", b"free", b"skip", b"mdat", b"moov"}
IN_MOOV = {b"mvhd", b"trak", b"udta", b"free", b"skip"}
IN_TRAK = {b"tkhd", b"edts", b"mdia", b"udta", b"free", b"skip"}


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


def check_picture(data: bytes) -> None:
    """What the excerpt says of its picture is what the doorbell's signed first keyframe
    decodes to: the decoder's configuration holds that keyframe's SPS and PPS, the sample
    entry names the decoded size and nothing beside its configuration (no pixel aspect, no
    clean aperture), and the track is shown at that size (times the SPS's own sample
    aspect, if it has one). A movie box rewritten to stretch, squash or crop the picture is
    refused, as one that turns or mirrors it is (:func:`check_layout`)."""
    track = read_track(data)
    keyframe = bytes(data[track.offsets[0] : track.offsets[0] + track.sizes[0]])
    _check_configuration(track.avcc, keyframe, "excerpt")
    width, height, aspect = picture_of(keyframe)
    if (track.width, track.height) != (width, height):
        raise GopError(
            f"the excerpt says its picture is {track.width}x{track.height};"
            f" the doorbell's keyframe is {width}x{height}"
        )
    moov = next((s, e) for kind, s, e in mp4_boxes(data) if kind == b"moov")
    trak = child_box(data, *moov, b"trak")
    tkhd = child_box(data, *trak, b"tkhd")
    version = data[tkhd[0]]
    if tkhd[1] - tkhd[0] != (96 if version == 1 else 84):  # where players read the size
        raise GopError("the excerpt's track header is not of its standard size")
    shown = struct.unpack_from(">II", data, tkhd[0] + (88 if version == 1 else 76))
    expected = (round(width * aspect * 0x10000), height << 16)
    if shown != expected:
        raise GopError(
            f"the excerpt is shown at {shown[0] / 0x10000:g}x{shown[1] / 0x10000:g};"
            f" the doorbell's picture is {expected[0] / 0x10000:g}x{height}"
        )
    stsd = child_box(data, *trak, b"mdia", b"minf", b"stbl", b"stsd")
    avc1 = child_box(data, stsd[0] + 8, stsd[1], b"avc1")
    extra = [kind for kind, _, _ in mp4_boxes(data, avc1[0] + 78, avc1[1]) if kind != b"avcC"]
    if extra:
        raise GopError(f"the excerpt's picture carries {extra}: it is not shown as recorded")


def picture_of(keyframe: bytes) -> tuple[int, int, Fraction]:
    """Width, height and sample aspect (1 when the SPS names none) of the picture a
    keyframe (an MP4 sample carrying its SPS and PPS) decodes to, by FFmpeg's decoder."""
    annex_b = b"".join(b"\x00\x00\x00\x01" + keyframe[a:b] for a, b in nal_spans(keyframe))
    codec = av.CodecContext.create("h264", "r")
    try:
        frames = codec.decode(av.Packet(annex_b)) + codec.decode(None)
    except av.FFmpegError as exc:
        raise GopError(f"the excerpt's first keyframe does not decode ({exc})") from None
    if not frames:
        raise GopError("the excerpt's first keyframe does not decode")
    aspect = codec.sample_aspect_ratio
    return frames[0].width, frames[0].height, Fraction(aspect) if aspect else Fraction(1)


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
    the GOPs its checkpoint signed, muxed as the doorbell would have muxed them, and
    checked against that signature. ``seal_key``: the hub's key when the clip is sealed."""
    assert meta.gops is not None

    def opened(payload: bytes) -> bytes:
        return open_sealed(payload, seal_key) if meta.sealed else payload

    thumbnail, frames, gops = None, [], 0
    for tag, payload, _ in journal.records(data):
        if tag == journal.THUMBNAIL:
            thumbnail = opened(payload)
        elif tag == journal.GOP and gops < meta.gops.count:
            units = journal.unpack_gop(opened(payload))
            frames += [Frame(ticks, unit, at == 0) for at, (ticks, unit) in enumerate(units)]
            gops += 1
            if len(frames) > MAX_FRAMES:
                raise GopError(f"the journal holds more than {MAX_FRAMES} frames")
    if thumbnail is None or gops != meta.gops.count or not frames:
        raise GopError("the journal lacks the GOPs its checkpoint signed")
    if frames[0].ticks != 0:
        raise GopError("the journal's first frame is not the clip's start")
    video = mux_annex_b(frames, meta.width, meta.height)
    table = table_from_mp4(video, header_of(meta), False, meta.gops.count)
    check_seal(table, meta.gops, signer)
    return video, thumbnail, table.text()
