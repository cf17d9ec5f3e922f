"""Excerpts cut by copying: the clip's sample table read from its boxes, the excerpt's MP4
written around the copied samples; and a clip whose boxes lie is refused with a reason,
leaving no excerpt behind."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from porch.core.config import EncoderSettings
from porch.core.gops import GopError, GopTable
from porch.core.mp4track import mp4_boxes, read_track
from porch.device.camera.synthetic import SyntheticScene
from porch.device.clips import Mp4Writer
from porch.device.encoder import H264Encoder
from porch.hub import excerpt
from porch.hub.excerpt import check_excerpt, cut, read_frames, samples, table_from_mp4

WIDTH, HEIGHT = 320, 180


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, GopTable]:
    """Six seconds, a keyframe a second, as the doorbell writes it; its table as the hub
    makes it at ingest."""
    scene = SyntheticScene.default(WIDTH, HEIGHT, 1)
    encoder = H264Encoder(WIDTH, HEIGHT, 15, EncoderSettings(keyframe_interval_s=1))
    packets = [p for i in range(90) for p in encoder.encode(scene.render(i / 15), i / 15)]
    writer = Mp4Writer(WIDTH, HEIGHT, packets[0])
    for packet in packets:
        writer.write(packet)
    writer.close()
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    path.write_bytes(writer.buffer.getvalue())
    return path, table_from_mp4(path, GopTable("front-door", "ab" * 16, 0))


def test_an_excerpt_is_the_clips_own_samples_and_plays_its_span(clip, tmp_path):
    path, table = clip
    assert len(table.gops) == 6
    dest = tmp_path / "excerpt.mp4"
    ranges = cut(path, dest, table, 2, 4)
    data = dest.read_bytes()
    check_excerpt(data, table, ranges)  # FFmpeg's reading of it: every frame where signed
    assert [kind for kind, _, _ in mp4_boxes(data)] == [b"ftyp", b"free", b"mdat", b"moov"]
    source = read_frames(path)[0]
    kept = read_frames(dest)[0]
    assert [f.data for f in kept] == [f.data for f in source[30:75]]
    with av.open(str(dest)) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == 45
        assert container.duration / 1e6 == pytest.approx(3.0, abs=0.01)
        assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
    # The hand-written sample table says what FFmpeg reads, sample for sample.
    track = read_track(data)
    placed = list(zip(track.offsets, track.sizes, strict=True))
    assert [(s[0], s[1]) for s in samples(dest)] == placed


def box(data: bytearray, *path: bytes) -> tuple[int, int]:
    start, end = 0, len(data)
    for kind in path:
        ((start, end),) = [(s, e) for k, s, e in mp4_boxes(data, start, end) if k == kind]
    return start, end


STBL = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def put(data: bytearray, at: int, value: int) -> None:
    data[at : at + 4] = struct.pack(">I", value)


def one_sample_resized(by: int) -> Callable[[bytearray], None]:
    def alter(data: bytearray) -> None:
        start, _ = box(data, *STBL, b"stsz")
        size = struct.unpack_from(">I", data, start + 12 + 4 * 40)[0]
        put(data, start + 12 + 4 * 40, size + by)

    return alter


def all_samples_at_the_start(data: bytearray) -> None:
    """Every chunk at the first: each frame copied many times over from one place."""
    start, _ = box(data, *STBL, b"stco")
    for at in range(struct.unpack_from(">I", data, start + 4)[0]):
        put(data, start + 8 + 4 * at, 48)


def chunk_outside(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stco")
    put(data, start + 8, len(data) - 10)


def billions_of_samples(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stts")
    put(data, start + 8, 0xFFFFFFFF)  # the first run's sample count


def table_longer_than_its_box(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stsz")
    put(data, start + 8, 0x00FFFFFF)


def frames_reordered(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stss")
    data[start - 4 : start] = b"ctts"  # its 6 keyframes read as 3 (count, time offset) pairs
    put(data, start + 4, 3)


def no_decoder_configuration(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stsd")
    at = bytes(data).index(b"avcC", start)
    data[at : at + 4] = b"zzzz"


def moov_cut_short(data: bytearray) -> None:
    _, end = box(data, b"moov")
    del data[end - 40 :]


def keyframes_moved(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stss")
    put(data, start + 8, 2)  # the first keyframe said to be the second frame


@pytest.mark.parametrize(
    ("alter", "reason"),
    [
        (one_sample_resized(-1), "not the GOP the doorbell signed"),
        (one_sample_resized(+1), "overlap"),
        (all_samples_at_the_start, "overlap"),
        (chunk_outside, "outside"),
        (billions_of_samples, "more samples"),
        (table_longer_than_its_box, "longer than its box"),
        (frames_reordered, "another order"),
        (no_decoder_configuration, "avcC"),
        (moov_cut_short, "impossible size"),
        (keyframes_moved, "not where"),
    ],
)
def test_a_clip_whose_boxes_lie_is_refused_and_leaves_no_excerpt(
    clip, tmp_path, alter: Callable[[bytearray], None], reason: str
):
    path, table = clip
    data = bytearray(path.read_bytes())
    alter(data)
    lying = tmp_path / "lying.mp4"
    lying.write_bytes(data)
    dest = tmp_path / "excerpt.mp4"
    with pytest.raises(GopError, match=reason):
        cut(lying, dest, table, 0 if alter is keyframes_moved else 2, 4)
    assert not dest.exists()


def extra_keyframes(data: bytearray) -> None:
    """A sync-sample table that calls every frame a keyframe (no stss box: all are)."""
    start, _ = box(data, *STBL, b"stss")
    data[start - 4 : start] = b"free"


def other_configuration(data: bytearray) -> None:
    start, _ = box(data, *STBL, b"stsd")
    at = bytes(data).index(b"avcC", start) + 4
    data[at + 12] ^= 0x01  # inside the SPS the decoder would be configured with


def test_what_the_excerpt_says_of_its_frames_comes_from_the_signed_table(clip, tmp_path):
    """Keyframes, durations and the decoder's configuration are not taken on the clip's
    word: a clip whose sample table says every frame is a keyframe still gives an excerpt
    whose keyframes are its GOPs' first frames, and the last frame lasts until the next
    GOP the doorbell signed."""
    path, table = clip
    data = bytearray(path.read_bytes())
    extra_keyframes(data)
    lying = tmp_path / "lying.mp4"
    lying.write_bytes(data)
    assert read_track(lying.read_bytes()).sync is None  # every frame, the clip says
    dest = tmp_path / "excerpt.mp4"
    cut(lying, dest, table, 2, 4, (WIDTH, HEIGHT))
    track = read_track(dest.read_bytes())
    assert sorted(track.sync or ()) == [1, 16, 31]
    assert track.times[-1] + track.durations[-1] == table.gops[5].first - table.gops[2].first
    with pytest.raises(GopError, match="picture"):
        cut(path, dest, table, 2, 4, (WIDTH, HEIGHT * 2))
    data = bytearray(path.read_bytes())
    other_configuration(data)
    lying.write_bytes(data)
    with pytest.raises(GopError, match="decoder configuration"):
        cut(lying, dest, table, 2, 4)
    assert not dest.exists()


def test_a_clip_cut_short_or_changed_while_it_is_cut_gives_an_error(clip, tmp_path, monkeypatch):
    """The clip is read with pread, never mapped: truncated under the cut, it is an error
    (not a bus error that kills the hub); and the bytes checked are those written to the
    excerpt, read back, not those the clip held a moment before."""
    path, table = clip
    dest = tmp_path / "excerpt.mp4"
    racing = tmp_path / "racing.mp4"
    racing.write_bytes(path.read_bytes())

    checked = excerpt._check_configuration

    def truncated_meanwhile(avcc: bytes, keyframe: bytes) -> None:
        checked(avcc, keyframe)
        os.truncate(racing, 1000)

    monkeypatch.setattr(excerpt, "_check_configuration", truncated_meanwhile)
    with pytest.raises(GopError, match="ends before"):
        cut(racing, dest, table, 2, 4)
    assert not dest.exists()
    monkeypatch.undo()

    sent = excerpt._send

    def then_changed(out: int, source: int, offset: int, length: int) -> None:
        sent(out, source, offset, length)
        os.pwrite(out, b"\x00", os.lseek(out, 0, os.SEEK_CUR) - length // 2)

    monkeypatch.setattr(excerpt, "_send", then_changed)
    with pytest.raises(GopError, match="not the GOP the doorbell signed"):
        cut(path, dest, table, 2, 4)
    assert not dest.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "no movie box"),
        (struct.pack(">I4s", 8, b"free") * 5000, "boxes side by side"),
        (struct.pack(">I4s", 100, b"moov"), "impossible size"),
    ],
)
def test_a_file_that_is_no_clip_is_refused(clip, tmp_path, content: bytes, reason: str):
    _, table = clip
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(GopError, match=reason):
        cut(bad, tmp_path / "excerpt.mp4", table, 0, 0)
    with pytest.raises(GopError, match=reason):
        read_track(content)
