"""GOP proofs on the hub, with the MP4s they are about (:mod:`porch.core.gops`): the table of
a stored clip, excerpts of whole GOPs re-muxed without re-encoding, the check of an
excerpt's samples, and the MP4 of a journal left by a doorbell's crash."""

from __future__ import annotations

import io
import itertools
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
    nal_units,
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
                canonical(bytes(packet), annex_b=False),
                bool(packet.is_keyframe),
            )
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None
        ]
        context = stream.codec_context
        return frames, context.width, context.height


def header_of(meta: ClipMeta) -> GopTable:
    """An empty table with the header a clip's device wrote."""
    return GopTable(meta.device_id, meta.clip_id, round(meta.start_ts * 1e6))


def table_of(frames: list[Frame], header: GopTable, complete: bool = True) -> GopTable:
    """The GOP table of ``frames``, as the doorbell computed it while recording."""
    hasher = GopHasher(GopTable(header.device_id, header.clip_id, header.start_us))
    for frame in frames:
        hasher.add(frame.ticks, frame.data, frame.keyframe)
    table = hasher.finish()
    table.complete = complete
    return table


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


def start_us_of(meta: ClipMeta) -> int:
    return round(meta.start_ts * 1e6)


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
    """(offset, length, ticks) of every sample of an MP4's video, in order."""
    with av.open(io.BytesIO(path) if isinstance(path, bytes) else str(path)) as container:
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
    """Write GOPs ``first``..``last`` of ``source`` to ``dest`` without re-encoding; returns
    the excerpt's ranges: (GOP index, offset, length), each GOP one contiguous run."""
    frames, width, height = read_frames(source)
    gops = gop_frames(frames)
    if len(gops) != len(table.gops) or not 0 <= first <= last < len(gops):
        raise GopError("the excerpt's GOPs are not in the clip")
    chosen = [frame for gop in gops[first : last + 1] for frame in gop]
    write_mp4(dest, chosen, width, height)
    placed = samples(dest)
    ranges, at = [], 0
    for index in range(first, last + 1):
        count = len(gops[index])
        runs = placed[at : at + count]
        ranges.append((index, runs[0][0], sum(length for _, length, _ in runs)))
        at += count
    check_excerpt(dest.read_bytes(), table, ranges)
    return ranges


def check_excerpt(data: bytes, table: GopTable, ranges: list[tuple[int, int, int]]) -> None:
    """An excerpt file against the doorbell's table: every GOP's bytes as signed, and the
    file's own sample table playing exactly those bytes, frame for frame, at the signed
    times. Raises :class:`GopError` with the first reason."""
    first, last = check_ranges(table, ranges, data)
    try:
        played = samples(data)
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
        if (runs[0][2] + origin, runs[-1][2] + origin) != (gop.first, gop.last):
            raise GopError(f"GOP {index} plays at other times than the doorbell recorded")
        if any(b[2] <= a[2] for a, b in itertools.pairwise(runs)):
            raise GopError(f"GOP {index}'s frames are out of order")


def open_journal(meta: ClipMeta, data: bytes, seal_key, signer) -> tuple[bytes, bytes]:
    """The MP4 and thumbnail of a journal clip (a recording a crash cut short): the GOPs its
    checkpoint signed, checked against that signature, re-muxed. ``seal_key``: the hub's
    key when the clip is sealed."""
    assert meta.gops is not None

    def opened(payload: bytes) -> bytes:
        return unseal(payload, seal_key) if meta.sealed else payload

    thumbnail, units = None, []
    for tag, payload, _ in journal.records(data):
        if tag == journal.THUMBNAIL:
            thumbnail = opened(payload)
        elif tag == journal.GOP and len(units) < meta.gops.count:
            units.append(journal.unpack_gop(opened(payload)))
    if thumbnail is None or len(units) != meta.gops.count:
        raise GopError("the journal lacks the GOPs its checkpoint signed")
    frames = [
        Frame(ticks, canonical(unit, annex_b=False), at == 0)
        for gop in units
        for at, (ticks, unit) in enumerate(gop)
    ]
    table = table_of(frames, GopTable(meta.device_id, meta.clip_id, start_us_of(meta)), False)
    check_seal(table, meta.gops, signer)
    out = io.BytesIO()
    write_mp4(out, frames, meta.width, meta.height)
    video = out.getvalue()
    if table_of(read_frames(video)[0], table, False).sha256() != table.sha256():
        raise GopError("the journal's GOPs did not survive muxing")
    return video, thumbnail
