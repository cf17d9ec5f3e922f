"""GOP proofs across the parts: the table the doorbell makes while muxing a clip is the
one the hub reads back from that MP4, sample by sample, whatever start codes and padding
the encoder used."""

from __future__ import annotations

from dataclasses import replace

import pytest

from porch.core.config import EncoderSettings
from porch.core.gops import GopHasher, GopTable, nal_units
from porch.device.camera import EncodedPacket
from porch.device.camera.synthetic import SyntheticScene
from porch.device.clips import Mp4Writer
from porch.device.encoder import H264Encoder
from porch.hub.excerpt import read_frames, table_from_mp4


def annex_b(sample: bytes, start: int, padding: int) -> bytes:
    """An MP4 sample as an encoder might give it: start codes of ``start`` bytes, and
    ``padding`` zero bytes after each NAL unit."""
    return b"".join(b"\x00" * (start - 1) + b"\x01" + unit + b"\x00" * padding
                    for unit in nal_units(sample))  # fmt: skip


@pytest.fixture(scope="module")
def encoded() -> list[EncodedPacket]:
    """Four seconds of the synthetic scene as the agent's encoder gives them."""
    scene = SyntheticScene.default(320, 180, 1)
    encoder = H264Encoder(320, 180, 15, EncoderSettings(keyframe_interval_s=1))
    return [p for i in range(60) for p in encoder.encode(scene.render(i / 15), i / 15)]


@pytest.mark.parametrize(("start", "padding"), [(4, 0), (3, 0), (3, 1), (4, 2)])
def test_the_doorbell_hashes_each_gop_where_its_muxer_wrote_it(encoded, start, padding):
    """FFmpeg's muxer makes each access unit canonical; the doorbell hashes the GOP in the
    MP4 it writes, and the hub, reading that file sample by sample, gets the same table,
    whatever start codes and padding the encoder used."""
    first = Mp4Writer(320, 180, encoded[0])
    for packet in encoded:
        first.write(packet)
    first.close()
    samples = read_frames(first.buffer.getvalue())[0]
    pairs = zip(encoded, samples, strict=True)
    packets = [replace(p, data=annex_b(s.data, start, padding)) for p, s in pairs]
    writer = Mp4Writer(320, 180, packets[0])
    hasher = GopHasher(GopTable("front-door", "ab" * 16, 0), placed=writer.gop_sha256)
    for packet in packets:
        hasher.add(writer.write(packet), packet.data, packet.keyframe)
    writer.close()
    table = hasher.finish()
    assert len(table.gops) == 4
    assert hasher.table_sha256() == table.sha256()
    from_file = table_from_mp4(writer.buffer.getvalue(), GopTable("front-door", "ab" * 16, 0))
    assert from_file.text() == table.text()
    if padding == 0:  # the same samples, whatever the start codes
        assert read_frames(writer.buffer.getvalue())[0] == samples
