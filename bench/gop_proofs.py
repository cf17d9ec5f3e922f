"""GOP proofs: what signing each GOP costs the doorbell, what cutting an excerpt costs the
hub, and how many bytes the proofs add, each against a baseline in the same run.

    .venv/bin/python bench/gop_proofs.py [--seconds 60] [--repeat 15]

The video is the synthetic scene at 1280×720, 15 fps, encoded with libx264 as the agent
does (1 s between keyframes, 1500 kbit/s unless ``--bitrate`` says otherwise).

* Signing: per second of video, what the device's recording costs with GOP signing (each
  GOP hashed where FFmpeg's muxer wrote it, a signed checkpoint of the GOP table every
  ``CHECKPOINT_S``) minus what muxing alone costs, as the device muxed before GOP proofs,
  against the SHA-256 of the same bytes alone; runs interleaved, for a clip muxed in memory
  (sealed clips: the default once a doorbell is enrolled) and one written to a file. The
  journal (sealing each GOP, fsync) is timed on its own: it is the price of keeping a clip
  through a crash, not of signing.
* Excerpt: :func:`porch.hub.excerpt.cut` of the middle third of the clip (read its sample
  table, write the excerpt's, copy the samples, check them against the table) against
  copying the excerpt's bytes from one file to another.
* Overhead: the GOP table and ranges an excerpt carries, in bytes per minute of video.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import av
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from seal_cost import encoded
from seal_cost import timed as median_ms

from porch.core import journal
from porch.core.gops import TICKS_PER_S, GopHasher, GopTable, parameter_sets, ranges_text
from porch.core.seal import seal, sign_digest
from porch.core.wire import new_id
from porch.device.clips import CHECKPOINT_S, TIME_BASE, Mp4Writer
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
    packets = encoded(seconds, bitrate)
    clip = work / "clip.mp4"
    clip.write_bytes(mux(None, packets))
    video = [f.data for f in read_frames(clip)[0]]  # the samples: what the device hashes
    video_bytes = sum(len(sample) for sample in video)
    key = ed25519.Ed25519PrivateKey.generate()
    hub = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()

    def baseline() -> None:
        digest = hashlib.sha256()
        for sample in video:
            digest.update(sample)
        digest.hexdigest()

    def journalled() -> None:
        writer = journal.JournalWriter(work / ".bench.journal")
        table = GopTable("front-door", new_id(), 0)

        def checkpoint(gop, gop_units) -> None:  # every GOP: the journal's worst case
            writer.append(journal.GOP, seal(journal.pack_gop(gop_units), hub))
            writer.append_json(journal.CHECKPOINT, {"count": len(table.gops),
                               "signature": sign_digest(key, table.sha256())})  # fmt: skip

        hasher = GopHasher(table, checkpoint, placed=lambda: "0" * 64)  # hashing: timed above
        for packet in packets:
            hasher.add(round(packet.pts * TICKS_PER_S), packet.data, packet.keyframe)
        hasher.finish()
        writer.close()

    runs: dict[str, list[float]] = {name: [] for name in ("sha", "old", "mux", "signed")}
    for _ in range(repeat):  # interleaved, so that the machine's drift hits all alike
        runs["sha"].append(timed(baseline, 1))
        runs["old"].append(timed(lambda: mux(None, packets), 1))
        runs["mux"].append(timed(lambda: signed(packets, None), 1))
        runs["signed"].append(timed(lambda: signed(packets, key), 1))
    base, old, muxed, with_proofs = (statistics.median(runs[name]) for name in runs)
    journal_s = timed(journalled, max(3, repeat // 3))
    table = signed(packets, key)
    per_s = 1e3 / seconds
    print(f"{seconds:.0f} s at 1280x720 15 fps: {video_bytes / 1e6:.2f} MB of H.264,"
          f" {len(table.gops)} GOPs; medians of {repeat}, ms per second of video")  # fmt: skip
    print(f"  SHA-256 of the bytes (baseline)         {base * per_s:7.3f}"
          f"   ({base / video_bytes * 1e9:.2f} ns a byte)")  # fmt: skip
    cost = with_proofs - muxed
    print(f"  muxing alone (the device's MP4 writer)  {muxed * per_s:7.3f}"
          f"   (as before GOP proofs, no flush per packet: {old * per_s:.3f})")  # fmt: skip
    print(f"  muxing with GOP signing                 {with_proofs * per_s:7.3f}")
    print(f"  GOP signing: the difference             {cost * per_s:7.3f}"
          f"   ({cost / base:.2f}x the SHA-256)")  # fmt: skip
    digest = table.sha256()  # the device keeps it up to date as GOPs close
    sign_us = timed(lambda: sign_digest(key, digest), 200) * 1e6
    print(f"    one checkpoint: an Ed25519 signature, {sign_us:.0f} us, every {CHECKPOINT_S:g} s"
          " of video")  # fmt: skip
    print(f"  journal (seal each GOP, fsync, checkpoint) {journal_s * per_s:7.3f}")

    # The excerpt: the middle third, cut and checked, against copying as many bytes.
    header = table_from_mp4(clip, GopTable("front-door", "ab" * 16, 0))
    third = len(header.gops) // 3
    first, last = third, 2 * third - 1
    target = work / "excerpt.mp4"
    cut(clip, target, header, first, last)
    excerpt_bytes = target.stat().st_size
    source = work / "same-bytes.bin"
    source.write_bytes(os.urandom(excerpt_bytes))
    cuts, copies = [], []
    for _ in range(repeat):  # interleaved
        cuts.append(timed(lambda: cut(clip, target, header, first, last), 1))
        copies.append(timed(lambda: shutil.copyfile(source, work / "copy.bin"), 1))
    cut_s, copy_s = statistics.median(cuts), statistics.median(copies)
    cpu = time.process_time()
    for _ in range(repeat):
        cut(clip, target, header, first, last)
    cpu_s = (time.process_time() - cpu) / repeat
    ranges = cut(clip, target, header, first, last)
    print(f"  excerpt of GOPs {first}-{last} ({excerpt_bytes / 1e6:.2f} MB): cut and checked"
          f" {cut_s * 1e3:.1f} ms; copying as many bytes {copy_s * 1e3:.1f} ms"
          f"  (speed {copy_s / cut_s:.2f}x of a copy); CPU time of a cut {cpu_s * 1e3:.1f} ms"
          " (the check hashes on a second core while the kernel copies)")  # fmt: skip
    minute = 60 / seconds
    table_bytes = len(header.text())
    ranges_bytes = len(ranges_text(ranges))
    overhead = (table_bytes + 64 + 32) * minute
    print(f"  proofs: GOP table {table_bytes} B + signature 64 B + digest 32 B for"
          f" {seconds:.0f} s = {overhead:.0f} B per minute of video"
          f" ({overhead / (video_bytes * minute) * 100:.3f} % of the video);"
          f" an excerpt's ranges {ranges_bytes} B for {last - first + 1} GOPs")  # fmt: skip


def mux(target: Path | None, packets: list) -> bytes:
    """The clip muxed as the device muxed it before GOP proofs: no flush per packet."""
    buffer = io.BytesIO() if target is None else None
    with av.open(buffer or str(target), "w", format="mp4") as container:
        stream = container.add_stream("h264")
        stream.width, stream.height = 1280, 720
        stream.time_base = TIME_BASE
        stream.codec_context.extradata = parameter_sets(packets[0].data)
        for packet in packets:
            out = av.Packet(packet.data)
            out.pts = out.dts = round((packet.pts - packets[0].pts) / TIME_BASE)
            out.time_base = TIME_BASE
            out.is_keyframe = packet.keyframe
            out.stream = stream
            container.mux(out)
    return buffer.getvalue() if buffer is not None else b""


def signed(packets: list, key) -> GopTable:
    """The device's recording without the journal: the MP4, its GOPs hashed where they lie,
    a signed checkpoint at the end of the first GOP :data:`CHECKPOINT_S` after the last
    (``key`` None: the same MP4 writer with neither, the baseline)."""
    writer = Mp4Writer(1280, 720, packets[0])
    if key is None:
        for packet in packets:
            writer.write(packet)
        writer.close()
        return GopTable("front-door", new_id(), 0)
    last = [-CHECKPOINT_S * TICKS_PER_S]

    def checkpoint(gop, _) -> None:
        if gop.last - last[0] >= CHECKPOINT_S * TICKS_PER_S:
            last[0] = gop.last
            sign_digest(key, hasher.table_sha256())

    hasher = GopHasher(GopTable("front-door", new_id(), 0), checkpoint, placed=writer.gop_sha256)
    for packet in packets:
        hasher.add(writer.write(packet), packet.data, packet.keyframe)
    writer.close()
    table = hasher.finish()
    sign_digest(key, hasher.table_sha256())
    return table


if __name__ == "__main__":
    main()
