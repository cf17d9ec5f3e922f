"""GOP proofs: what signing each GOP costs the doorbell, what cutting an excerpt costs the
hub, and how many bytes the proofs add, each against a baseline in the same run.

    .venv/bin/python bench/gop_proofs.py [--seconds 60] [--repeat 31]

The video is the synthetic scene at 1280×720, 15 fps, encoded with libx264 as the agent
does (1 s between keyframes, 1500 kbit/s unless ``--bitrate`` says otherwise).

* Signing: per second of video, the time the device's recording spends on GOP signing
  (each GOP hashed where FFmpeg's muxer wrote it in memory, a signed checkpoint of the GOP
  table every ``CHECKPOINT_S``, the check that the MP4 puts each GOP where it was
  hashed), timed around those calls, against the SHA-256 of the same bytes; runs
  interleaved. The journal (sealing each GOP, fsync) is timed on
  its own: it is the price of keeping a clip through a crash, not of signing.
* Excerpt: :func:`porch.hub.excerpt.cut` of the middle third of the clip (read its sample
  table, write the excerpt's, copy the samples, check them against the table) against
  copying the excerpt's bytes from one file to another, both into new files; and the cut
  without its check, and the SHA-256 of as many bytes, to show where the time goes.
* Overhead: the GOP table and ranges an excerpt carries, in bytes per minute of video.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from seal_cost import encoded, mp4_of
from seal_cost import timed as median_ms

from porch.core import journal
from porch.core.gops import TICKS_PER_S, GopHasher, GopTable, ranges_text
from porch.core.mp4track import PAGE, read_track_file, runs, write_mp4
from porch.core.seal import seal, sign_digest
from porch.core.wire import new_id
from porch.device.clips import CHECKPOINT_S, Mp4Writer
from porch.hub.excerpt import cut, excerpt_track, read_frames, table_from_mp4


def timed(action, repeat: int) -> float:
    """Median seconds of ``repeat`` runs."""
    return median_ms(action, repeat) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeat", type=int, default=31)
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
    clip.write_bytes(mp4_of(packets))
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

    runs: dict[str, list[float]] = {name: [] for name in ("sha", "mux", "signing")}
    for _ in range(repeat):  # interleaved, so that the machine's drift hits all alike
        runs["sha"].append(timed(baseline, 1))
        runs["mux"].append(timed(lambda: muxing(packets), 1))
        runs["signing"].append(signing(packets, key)[0])
    base, muxed, cost = (statistics.median(runs[name]) for name in runs)
    journal_s = timed(journalled, max(3, repeat // 3))
    table = signing(packets, key)[1]
    per_s = 1e3 / seconds
    print(f"{seconds:.0f} s at 1280x720 15 fps: {video_bytes / 1e6:.2f} MB of H.264,"
          f" {len(table.gops)} GOPs; medians of {repeat}, ms per second of video")  # fmt: skip
    print(f"  SHA-256 of the bytes (baseline)         {base * per_s:7.3f}"
          f"   ({base / video_bytes * 1e9:.2f} ns a byte)")  # fmt: skip
    print(f"  muxing (the device's MP4 writer alone)  {muxed * per_s:7.3f}")
    print(f"  GOP signing, timed around its calls     {cost * per_s:7.3f}"
          f"   ({cost / base:.2f}x the SHA-256)")  # fmt: skip
    digest = table.sha256()  # the device keeps it up to date as GOPs close
    sign_us = timed(lambda: sign_digest(key, digest), 200) * 1e6
    print(f"    one checkpoint: an Ed25519 signature, {sign_us:.0f} us, every {CHECKPOINT_S:g} s"
          " of video")  # fmt: skip
    print("  journal, worst case (seal each GOP, fsync, a checkpoint at every GOP)"
          f" {journal_s * per_s:.3f}")  # fmt: skip

    # The excerpt: the middle third, cut and checked, against copying as many bytes; each
    # into a new file, as an export makes one (a file written over is emptied first, which
    # costs as much as the copy and would hide the difference).
    header = table_from_mp4(clip, GopTable("front-door", "ab" * 16, 0))
    third = len(header.gops) // 3
    first, last = third, 2 * third - 1
    target = work / "excerpt.mp4"
    ranges = cut(clip, target, header, first, last)
    excerpt_bytes = target.stat().st_size
    source = work / "same-bytes.bin"
    source.write_bytes(os.urandom(excerpt_bytes))
    runs_of: dict[str, list[float]] = {"cut": [], "built": [], "copy": []}
    for _ in range(repeat):  # interleaved
        for name, action, out in (
            ("cut", lambda: cut(clip, target, header, first, last), target),
            ("built", lambda: built(clip, target, header, first, last), target),
            ("copy", lambda: shutil.copyfile(source, work / "copy.bin"), work / "copy.bin"),
        ):
            out.unlink(missing_ok=True)
            runs_of[name].append(timed(action, 1))
    cut_s, built_s, copy_s = (statistics.median(runs_of[name]) for name in runs_of)
    data = source.read_bytes()
    digest_s = timed(lambda: hashlib.sha256(data).digest(), repeat)  # in memory: no read
    print(f"  excerpt of GOPs {first}-{last} ({excerpt_bytes / 1e6:.2f} MB) into a new file:"
          f" cut and checked {cut_s * 1e3:.2f} ms; copying as many bytes {copy_s * 1e3:.2f} ms"
          f"  (speed {copy_s / cut_s:.2f}x of a copy)")  # fmt: skip
    print(f"    of which the copy and the new sample table alone {built_s * 1e3:.2f} ms"
          f" ({copy_s / built_s:.2f}x of a copy); SHA-256 of as many bytes"
          f" {digest_s * 1e3:.2f} ms ({copy_s / digest_s:.2f}x of a copy)")  # fmt: skip
    minute = 60 / seconds
    table_bytes = len(header.text())
    ranges_bytes = len(ranges_text(ranges))
    overhead = (table_bytes + 64 + 32) * minute
    print(f"  proofs: GOP table {table_bytes} B + signature 64 B + digest 32 B for"
          f" {seconds:.0f} s = {overhead:.0f} B per minute of video"
          f" ({overhead / (video_bytes * minute) * 100:.3f} % of the video);"
          f" an excerpt's ranges {ranges_bytes} B for {last - first + 1} GOPs")  # fmt: skip


def signing(packets: list, key) -> tuple[float, GopTable]:
    """The device's recording without the journal, and the seconds of it spent on GOP
    signing, timed around each call (the MP4 writer's own work left out): each access unit
    added to the GOP table (at a keyframe the GOP before it is hashed where it lies, and a
    checkpoint signed when due), then the last GOP, the whole table's signature, and the
    check that the finished MP4 puts each GOP where it was hashed."""
    writer = Mp4Writer(1280, 720, packets[0])
    last = [-CHECKPOINT_S * TICKS_PER_S]

    def checkpoint(gop, _) -> None:
        if gop.last - last[0] >= CHECKPOINT_S * TICKS_PER_S:
            last[0] = gop.last
            sign_digest(key, hasher.table_sha256())

    hasher = GopHasher(GopTable("front-door", new_id(), 0), checkpoint, placed=writer.gop_sha256)
    spent, clock = 0.0, time.perf_counter
    for packet in packets:
        ticks = writer.write(packet)
        start = clock()
        hasher.add(ticks, packet.data, packet.keyframe)
        spent += clock() - start
    writer.close()  # which checks the placement; timed again below
    start = clock()
    table = hasher.finish()
    sign_digest(key, hasher.table_sha256())
    writer.check_placement()
    return spent + clock() - start, table


def muxing(packets: list) -> None:
    """The device's MP4 writer alone."""
    writer = Mp4Writer(1280, 720, packets[0])
    for packet in packets:
        writer.write(packet)
    writer.close()


def built(clip: Path, target: Path, table: GopTable, first: int, last: int) -> None:
    """The cut without its check of every GOP's bytes: the copy and the sample table."""
    with open(clip, "rb") as src, open(target, "wb") as out:
        track, _ = excerpt_track(read_track_file(src.fileno()), table, first, last)

        def copy() -> None:
            for offset, length in runs(track.offsets, track.sizes):
                while length:
                    done = os.sendfile(out.fileno(), src.fileno(), offset, length)
                    offset, length = offset + done, length - done

        write_mp4(out, track, copy, track.offsets[0] % PAGE)


if __name__ == "__main__":
    main()
