"""GOP proofs: what signing each GOP costs the doorbell, what cutting an excerpt costs the
hub, and how many bytes the proofs add, each against a baseline in the same run.

    .venv/bin/python bench/gop_proofs.py [--seconds 60] [--repeat 15]

The video is the synthetic scene at 1280×720, 15 fps, encoded with libx264 as the agent
does (1 s between keyframes, 1500 kbit/s unless ``--bitrate`` says otherwise).

* Signing: per second of video, the device's path (canonical bytes of every access unit,
  the GOP's SHA-256, and a signed checkpoint of the GOP table at every GOP) against the
  SHA-256 of the same encoded bytes alone. The journal (sealing each GOP, fsync) is timed on
  its own: it is the price of keeping a clip through a crash, not of signing.
* Excerpt: :func:`porch.hub.excerpt.cut` of the middle third of the clip (demux, re-mux
  whole GOPs, check them against the table) against copying the excerpt's bytes from one
  file to another.
* Overhead: the GOP table and ranges an excerpt carries, in bytes per minute of video.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from seal_cost import make_clip
from seal_cost import timed as median_ms

from porch.core import journal
from porch.core.gops import TICKS_PER_S, GopHasher, GopTable, nal_units, ranges_text
from porch.core.seal import seal, sign_digest
from porch.core.wire import new_id
from porch.device.clips import CHECKPOINT_S
from porch.hub.excerpt import cut, read_frames, table_from_mp4


def timed(action, repeat: int) -> float:
    """Median seconds of ``repeat`` runs."""
    return median_ms(action, repeat) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--bitrate", type=int, default=None, help="kbit/s (default: the agent's)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="porch-gops-"))
    try:
        run(args.seconds, args.repeat, work, args.bitrate)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(seconds: float, repeat: int, work: Path, bitrate: int | None = None) -> None:
    clip = work / "clip.mp4"
    clip.write_bytes(make_clip(seconds, bitrate))
    frames, _, _ = read_frames(clip)
    # What the encoder handed the device: Annex B access units.
    units = [(f.ticks, annex_b(f.data), f.keyframe) for f in frames]
    video_bytes = sum(len(u) for _, u, _ in units)
    key = ed25519.Ed25519PrivateKey.generate()
    hub = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()

    def baseline() -> None:
        digest = hashlib.sha256()
        for _, unit, _ in units:
            digest.update(unit)
        digest.hexdigest()

    def signing() -> GopTable:
        table = GopTable("front-door", new_id(), 0)
        last = [-CHECKPOINT_S * TICKS_PER_S]

        def checkpoint(gop, _) -> None:  # as the recorder does, without the journal
            if gop.last - last[0] >= CHECKPOINT_S * TICKS_PER_S:
                last[0] = gop.last
                sign_digest(key, table.sha256())

        hasher = GopHasher(table, checkpoint, annex_b=True)
        for ticks, unit, keyframe in units:
            hasher.add(ticks, unit, keyframe)
        return hasher.finish()

    def journalled() -> None:
        writer = journal.JournalWriter(work / ".bench.journal")
        table = GopTable("front-door", new_id(), 0)

        def checkpoint(gop, gop_units) -> None:  # every GOP: the journal's worst case
            writer.append(journal.GOP, seal(journal.pack_gop(gop_units), hub))
            writer.append_json(journal.CHECKPOINT, {"count": len(table.gops),
                               "signature": sign_digest(key, table.sha256())})  # fmt: skip

        hasher = GopHasher(table, checkpoint, annex_b=True)
        for ticks, unit, keyframe in units:
            hasher.add(ticks, unit, keyframe)
        hasher.finish()
        writer.close()

    base = timed(baseline, repeat)
    signed = timed(signing, repeat)
    journal_s = timed(journalled, max(3, repeat // 3))
    table = signing()
    per_byte = signed / video_bytes * 1e9
    print(f"{seconds:.0f} s at 1280x720 15 fps: {video_bytes / 1e6:.2f} MB of H.264,"
          f" {len(table.gops)} GOPs; medians of {repeat}")  # fmt: skip
    print(f"  SHA-256 of the bytes (baseline)   {base / seconds * 1e3:7.3f} ms per s of video")
    print(f"  GOP signing (canonical, hash, a checkpoint every {CHECKPOINT_S:g} s)"
          f" {signed / seconds * 1e3:7.3f} ms per s of video  ({signed / base:.2f}x)")  # fmt: skip
    print(f"    per byte {per_byte:.2f} ns; SHA-256 alone {base / video_bytes * 1e9:.2f} ns")
    sign_us = timed(lambda: sign_digest(key, table.sha256()), 200) * 1e6
    print(f"    one checkpoint (table hash + Ed25519 signature) {sign_us:.0f} us")
    print(f"  journal (seal each GOP, fsync, checkpoint) {journal_s / seconds * 1e3:7.3f} ms"
          " per s of video")  # fmt: skip

    # The excerpt: the middle third, cut and checked, against copying as many bytes.
    header = table_from_mp4(clip, GopTable("front-door", "ab" * 16, 0))
    third = len(header.gops) // 3
    first, last = third, 2 * third - 1
    target = work / "excerpt.mp4"
    cut_s = timed(lambda: cut(clip, target, header, first, last), max(3, repeat // 3))
    excerpt_bytes = target.stat().st_size
    source = work / "same-bytes.bin"
    source.write_bytes(os.urandom(excerpt_bytes))
    copy_s = timed(lambda: shutil.copyfile(source, work / "copy.bin"), repeat)
    ranges = cut(clip, target, header, first, last)
    print(f"  excerpt of GOPs {first}-{last} ({excerpt_bytes / 1e6:.2f} MB): cut and checked"
          f" {cut_s * 1e3:.1f} ms; copying as many bytes {copy_s * 1e3:.1f} ms"
          f"  (speed {copy_s / cut_s:.2f}x of a copy)")  # fmt: skip
    minute = 60 / seconds
    table_bytes = len(header.text())
    ranges_bytes = len(ranges_text(ranges))
    overhead = (table_bytes + 64 + 32) * minute
    print(f"  proofs: GOP table {table_bytes} B + signature 64 B + digest 32 B for"
          f" {seconds:.0f} s = {overhead:.0f} B per minute of video"
          f" ({overhead / (video_bytes * minute) * 100:.3f} % of the video);"
          f" an excerpt's ranges {ranges_bytes} B for {last - first + 1} GOPs")  # fmt: skip


def annex_b(sample: bytes) -> bytes:
    """An MP4 sample as the encoder gave it: a start code before each NAL unit."""
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in nal_units(sample, annex_b=False))


if __name__ == "__main__":
    main()
