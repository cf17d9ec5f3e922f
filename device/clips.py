"""Event clips: pre-roll + event + post-roll, muxed to MP4 in memory, kept in a bounded
store on disk.

A clip is whole only when its metadata file exists. It is written last, after the MP4 and
the JPEG thumbnail have been fsync'd and renamed into place, so a kill -9 or a power cut at
any moment leaves either a whole clip or leftovers that :meth:`ClipStore.recover` removes.

While a clip records, each finished GOP goes to its journal on disk, and every
:data:`CHECKPOINT_S` a signed checkpoint of the GOP table so far (:mod:`porch.core.journal`,
:mod:`porch.core.gops`); the finished clip carries
the signature of its whole GOP table. After a crash, :func:`recover_journals` turns what a
journal proves into a clip of its own, which the hub opens.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric import ed25519

from porch.core import journal
from porch.core.config import ClipSettings
from porch.core.fsutil import (
    PARTIAL_SUFFIX,
    atomic_write,
    atomic_writer,
    file_digests,
    publish_file,
)
from porch.core.gops import FORMAT, TICKS_PER_S, Gop, GopHasher, GopTable
from porch.core.mp4track import mdat_offset, read_track
from porch.core.seal import load_private_key, seal, seal_stream, sign_digest
from porch.core.wire import MAX_CHUNKS, ClipMeta, GopSeal, new_id
from porch.device.camera import EncodedPacket
from porch.device.preroll import PrerollBuffer

log = logging.getLogger(__name__)
TIME_BASE = Fraction(1, 90000)
CHECKPOINT_S = 3.0
"""A recording's GOP table is signed at the end of the first GOP that ends at least this long
after the last checkpoint (so: every GOP when keyframes are 3 s apart or more). A crash
loses at most this much of a recording, and the GOP being recorded; each checkpoint costs
an Ed25519 signature (docs/performance.md)."""


class Mp4Writer:
    """Muxes Annex B packets into an MP4 in memory (:attr:`buffer`: a clip to be sealed
    never touches the disk in the clear); timestamps start at the first packet.

    FFmpeg's muxer turns each access unit into its canonical form (:mod:`porch.core.gops`:
    a 4-byte length before each NAL unit) and writes it out before :meth:`write` returns,
    right after the one before. So each GOP lies in one run of the buffer, and
    :meth:`gop_sha256` hashes the GOP that the last keyframe (or :meth:`close`) finished
    there: no second pass over the encoder's bytes to find their NAL units.
    """

    def __init__(self, width: int, height: int, first: EncodedPacket):
        if not first.keyframe:
            raise ValueError("a clip must start on a keyframe")
        self.buffer = io.BytesIO()
        self._origin = first.pts
        # flush_packets: every sample reaches the buffer as it is muxed.
        self._container = av.open(self.buffer, "w", format="mp4", options={"flush_packets": "1"})
        # A stream for encoded packets: its decoder configuration (avcC) comes from the SPS
        # and PPS the first keyframe carries, as it must (no encoder is opened to make one).
        self._stream = self._container.add_mux_stream("h264", width=width, height=height)
        self._stream.time_base = TIME_BASE
        self._last_pts = -1
        self._gop_start = 0
        self._finished: list[tuple[int, int]] = []
        """The byte range of each GOP that a keyframe (or close) finished."""

    def write(self, packet: EncodedPacket) -> int:
        """Mux one access unit; returns its time in the file (1/90000 s from the start)."""
        pts = round((packet.pts - self._origin) / TIME_BASE)
        if pts <= self._last_pts:  # a camera clock that stalls must not break the file
            pts = self._last_pts + 1
        out = av.Packet(packet.data)
        out.pts = out.dts = pts
        # Only the last frame's duration reaches the file: as long as the one before it
        # (with none, players drop the last frame, which would end at its own start).
        out.duration = pts - self._last_pts if self._last_pts >= 0 else 0
        self._last_pts = pts
        out.time_base = TIME_BASE
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        start = self.buffer.tell()
        self._container.mux(out)
        if self.buffer.tell() - start < 5:  # not even one length and one byte: held back
            raise ValueError("the MP4 muxer held an access unit back; GOPs cannot be hashed")
        if start == 0:
            with self.buffer.getbuffer() as view:
                self._gop_start = mdat_offset(view[:4096])
        elif packet.keyframe:
            self._finished.append((self._gop_start, start))
            self._gop_start = start
        return pts

    def gop_sha256(self) -> str:
        """SHA-256 of the GOP that the last keyframe, or :meth:`close`, finished."""
        start, end = self._finished[-1]
        with self.buffer.getbuffer() as view:
            return hashlib.sha256(view[start:end]).hexdigest()

    def close(self) -> None:
        """Finish the MP4, and :meth:`check_placement`."""
        self._finished.append((self._gop_start, self.buffer.tell()))
        self._container.close()
        self.check_placement()

    def check_placement(self) -> None:
        """The finished MP4's sample table puts each GOP where it was hashed: a muxer that
        held a sample back or moved one would otherwise cost the whole clip at the hub,
        which checks the same."""
        with self.buffer.getbuffer() as view:
            track = read_track(view)
        count = len(track.sizes)
        keys = list(range(count)) if track.sync is None else sorted(n - 1 for n in track.sync)
        ends = [*keys[1:], count]
        placed = [(track.offsets[a], track.offsets[b - 1] + track.sizes[b - 1])
                  for a, b in zip(keys, ends, strict=True)]  # fmt: skip
        if placed != self._finished:
            raise ValueError("the MP4's GOPs are not where they were hashed")


@dataclass
class StoredClip:
    meta: ClipMeta
    video: Path
    thumbnail: Path

    @property
    def size(self) -> int:
        return self.video.stat().st_size + self.thumbnail.stat().st_size


class ClipStore:
    """A directory of whole clips (``ID.mp4``, ``ID.jpg``, ``ID.json``), capped in bytes.

    When a new clip pushes the total over ``max_bytes``, the oldest clips are evicted until it
    fits again (the newest is always kept). Thread-safe: the capture thread commits and evicts
    while the transfer removes what the hub has confirmed.
    """

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)
        self.evicted = 0
        self._lock = threading.RLock()

    def partial_path(self, clip_id: str) -> Path:
        return self.root / f".{clip_id}.mp4{PARTIAL_SUFFIX}"

    def journal_path(self, clip_id: str) -> Path:
        """The journal of a clip being recorded (see :mod:`porch.core.journal`)."""
        return self.root / f".{clip_id}.journal"

    def recover(self) -> list[str]:
        """Remove what a crash left behind: partial files and clips without metadata."""
        removed = []
        names = {p.name for p in self.root.iterdir()}
        for name in sorted(names):
            path = self.root / name
            stem, _, ext = name.partition(".")
            partial = name.endswith(PARTIAL_SUFFIX)
            orphan = ext in ("mp4", "jpg", "journal") and f"{stem}.json" not in names
            video = f"{stem}.mp4" in names or f"{stem}.journal" in names
            broken = ext == "json" and not (video and f"{stem}.jpg" in names)
            if partial or orphan or broken:
                path.unlink(missing_ok=True)
                removed.append(name)
        if removed:
            log.warning("clip store: removed leftovers of an interrupted write: %s", removed)
        return removed

    def clips(self) -> list[StoredClip]:
        """Whole clips, oldest first."""
        with self._lock:
            return self._clips()

    def get(self, clip_id: str) -> StoredClip | None:
        with self._lock:
            return next((c for c in self._clips() if c.meta.clip_id == clip_id), None)

    def _clips(self) -> list[StoredClip]:
        found = []
        for meta_path in self.root.glob("*.json"):
            try:
                meta = ClipMeta.model_validate_json(meta_path.read_bytes())
            except (OSError, ValueError):
                log.error("clip store: unreadable metadata %s", meta_path.name)
                continue
            stem = meta_path.stem
            video = self.root / f"{stem}.{meta.container}"
            found.append(StoredClip(meta, video, self.root / f"{stem}.jpg"))
        return sorted(found, key=lambda c: (c.meta.start_ts, c.meta.clip_id))

    def used_bytes(self) -> int:
        with self._lock:
            return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    def commit(self, partial: Path, thumbnail: bytes, meta: ClipMeta) -> StoredClip:
        """Move a finished MP4 into place with its thumbnail and metadata, then evict."""
        clip_id = meta.clip_id
        video = self.root / f"{clip_id}.{meta.container}"
        thumb = self.root / f"{clip_id}.jpg"
        with self._lock:
            atomic_write(thumb, thumbnail)
            publish_file(partial, video)
            atomic_write(self.root / f"{clip_id}.json", meta.model_dump_json(indent=1).encode())
            self._evict(keep=clip_id)
        return StoredClip(meta, video, thumb)

    def remove(self, clip_id: str) -> None:
        # Metadata first: from then on the clip is not whole, whatever else a crash leaves.
        with self._lock:
            for ext in ("json", "mp4", "journal", "jpg"):
                (self.root / f"{clip_id}.{ext}").unlink(missing_ok=True)

    def _evict(self, keep: str) -> None:
        clips = self._clips()
        total = self.used_bytes()
        for clip in clips:
            if total <= self.max_bytes:
                break
            if clip.meta.clip_id == keep:
                continue
            size = clip.size
            self.remove(clip.meta.clip_id)
            total -= size
            self.evicted += 1
            log.info(
                "clip store: evicted %s (%d bytes) to stay under the cap", clip.meta.clip_id, size
            )


@dataclass(frozen=True)
class ClipProtection:
    """What enrollment gives a device: the hub's public key to seal clips to, and its own
    key to sign them with. Neither: clips stay in the clear, unsigned (the demo)."""

    seal_to: bytes | None = None
    sign_key: ed25519.Ed25519PrivateKey | None = None

    @classmethod
    def from_settings(cls, settings: ClipSettings) -> ClipProtection:
        sign_key = None
        if settings.sign_key:
            sign_key = load_private_key(Path(settings.sign_key), ed25519.Ed25519PrivateKey)
        seal_to = bytes.fromhex(settings.seal_key) if settings.seal_key else None
        return cls(seal_to, sign_key)

    @property
    def sealing(self) -> bool:
        return self.seal_to is not None

    def seal(self, data: bytes) -> bytes:
        assert self.seal_to is not None
        return seal(data, self.seal_to)

    def seal_stream(self, source: BinaryIO, target: BinaryIO) -> None:
        """Seal what ``source`` holds into ``target`` a chunk at a time."""
        assert self.seal_to is not None
        seal_stream(source, target, self.seal_to)

    def protect(self, data: bytes) -> bytes:
        """Sealed when clips are sealed, else as it is."""
        return self.seal(data) if self.sealing else data

    def sign(self, sha256_hex: str) -> str | None:
        return sign_digest(self.sign_key, sha256_hex) if self.sign_key else None


def thumbnail_jpeg(image: np.ndarray, width: int) -> bytes:
    height = max(2, round(image.shape[0] * width / image.shape[1]))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


@dataclass
class _Recording:
    clip_id: str
    writer: Mp4Writer
    start_media: float
    trigger_media: float
    trigger_wall: float
    until_media: float
    thumbnail: bytes
    journal: journal.JournalWriter
    hasher: GopHasher
    event_ids: list[str] = field(default_factory=list)
    last_media: float = 0.0

    def write(self, packet: EncodedPacket) -> None:
        """Into the MP4 and the GOP table (a keyframe closes a GOP: its checkpoint)."""
        ticks = self.writer.write(packet)
        self.hasher.add(ticks, packet.data, packet.keyframe)
        self.last_media = packet.pts


class ClipRecorder:
    """Starts a clip on an event, extends it while events continue, finishes it after post-roll.

    Call :meth:`feed` for every capture (capture thread); :meth:`trigger` when a press or motion
    starts and :meth:`extend` while motion goes on. ``on_clip`` receives each whole clip.
    """

    def __init__(
        self,
        settings: ClipSettings,
        store: ClipStore,
        preroll: PrerollBuffer,
        width: int,
        height: int,
        device_id: str,
        on_clip: Callable[[StoredClip], None],
        protection: ClipProtection | None = None,
    ):
        self.settings = settings
        self.protection = protection or ClipProtection()
        self.store = store
        self.preroll = preroll
        self.width, self.height = width, height
        self.device_id = device_id
        self.on_clip = on_clip
        self._active: _Recording | None = None
        self.failed = 0
        self.last_clip: StoredClip | None = None
        # Clips are finished (muxed, hashed, sealed, written) on a thread of their own: on a
        # Pi Zero 2 W, without AES or SHA instructions, that takes seconds the capture thread
        # (and with it live view and the next clip's first frames) cannot wait.
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="clip-finish")
        self._finishing: list[Future[StoredClip | None]] = []
        self._lock = threading.Lock()

    @property
    def recording(self) -> bool:
        """A clip is being recorded, or being finished (sealed, committed, announced)."""
        with self._lock:
            return self._active is not None or any(not f.done() for f in self._finishing)

    def trigger(self, event_id: str, media_ts: float, wall_ts: float, image: np.ndarray) -> None:
        """An event at media time ``media_ts``: start a clip, or join the one being recorded."""
        if self._active is not None:
            self._active.event_ids.append(event_id)
            self.extend(media_ts)
            return
        packets = self.preroll.packets()
        if not packets:
            log.warning("no video yet: event %s has no clip", event_id)
            return
        clip_id = new_id()
        writer = record = None
        start_wall = wall_ts - (media_ts - packets[0].pts)
        table = GopTable(self.device_id, clip_id, round(start_wall * 1e6))
        try:
            writer = Mp4Writer(self.width, self.height, packets[0])
            thumb = thumbnail_jpeg(image, self.settings.thumbnail_width)
            record = journal.JournalWriter(self.store.journal_path(clip_id))
            record.append_json(journal.HEADER, {
                "clip_id": clip_id, "device_id": self.device_id, "width": self.width,
                "height": self.height, "start_ts": start_wall, "trigger_ts": wall_ts,
                "event_ids": [event_id], "sealed": self.protection.sealing,
            })  # fmt: skip
            record.append(journal.THUMBNAIL, self.protection.protect(thumb))
            active = _Recording(
                clip_id,
                writer,
                start_media=packets[0].pts,
                trigger_media=media_ts,
                trigger_wall=wall_ts,
                until_media=media_ts + self.settings.postroll_s,
                thumbnail=thumb,
                journal=record,
                hasher=GopHasher(table, placed=writer.gop_sha256),
                event_ids=[event_id],
            )
            active.hasher.on_gop = partial_checkpoint(self.protection, active)
            for packet in packets:
                active.write(packet)
        except (OSError, av.FFmpegError, ValueError) as exc:
            self._fail(clip_id, exc, writer, record)
            return
        self._active = active

    def extend(self, media_ts: float) -> None:
        """Keep recording until ``postroll_s`` after ``media_ts``."""
        if self._active is not None:
            self._active.until_media = max(
                self._active.until_media, media_ts + self.settings.postroll_s
            )

    def feed(self, packets: list[EncodedPacket], media_ts: float) -> None:
        """Append the capture's packets to the clip being recorded; finish it when due."""
        active = self._active
        if active is None:
            return
        try:
            for packet in packets:
                active.write(packet)
        except (OSError, av.FFmpegError, ValueError) as exc:
            self._active = None
            self._fail(active.clip_id, exc, active.writer, active.journal)
            return
        too_long = media_ts - active.start_media >= self.settings.max_clip_s
        if media_ts >= active.until_media or too_long:
            self._hand_over()

    def _hand_over(self) -> Future[StoredClip | None] | None:
        """The clip being recorded goes to the finishing thread; the next may start at once."""
        with self._lock:  # never seen as neither recording nor finishing
            active, self._active = self._active, None
            if active is None:
                return None
            future = self._finisher.submit(self._finish, active)
            self._finishing = [f for f in self._finishing if not f.done()] + [future]
        return future

    def finish(self) -> StoredClip | None:
        """Close the clip being recorded, wait until every clip handed over is committed to
        the store, and return the one closed now (None when there was none or it failed)."""
        future = self._hand_over()
        with self._lock:
            waiting = list(self._finishing)
        for pending in waiting:
            pending.exception()  # wait; _finish logs its own failures
        return future.result() if future is not None else None

    def close(self) -> None:
        """Finish what is recorded and stop the finishing thread."""
        self.finish()
        self._finisher.shutdown(wait=True)

    def _finish(self, active: _Recording) -> StoredClip | None:
        """Mux, hash, seal and commit one clip (the finishing thread). The clear MP4 is only
        ever in memory, once: hashed in place, sealed a chunk at a time straight to disk."""
        protection = self.protection
        partial = self.store.partial_path(active.clip_id)
        try:
            active.writer.close()
            table = active.hasher.finish()
            table_sha256 = active.hasher.table_sha256()
            active.journal.close()
            thumbnail = active.thumbnail
            plain_sha256 = None
            plain = active.writer.buffer
            with atomic_writer(partial) as target:
                if protection.sealing:  # the clear text exists only here, in memory
                    with plain.getbuffer() as view:
                        plain_sha256 = hashlib.sha256(view).hexdigest()
                    plain.seek(0)
                    protection.seal_stream(plain, target)
                    thumbnail = protection.seal(thumbnail)
                else:
                    with plain.getbuffer() as view:
                        target.write(view)
            active.writer.buffer = io.BytesIO()  # the clear MP4 goes with ``plain`` below
            del plain
            whole = offered(partial, self.settings.chunk_bytes, thumbnail)
            meta = ClipMeta(
                **whole,
                device_id=self.device_id,
                clip_id=active.clip_id,
                event_ids=active.event_ids,
                start_ts=active.trigger_wall - (active.trigger_media - active.start_media),
                trigger_ts=active.trigger_wall,
                end_ts=active.trigger_wall + (active.last_media - active.trigger_media),
                width=self.width,
                height=self.height,
                sealed=plain_sha256 is not None,
                plain_sha256=plain_sha256,
                signature=protection.sign(plain_sha256 or whole["sha256"]),
                gops=GopSeal(
                    format=FORMAT,
                    count=len(table.gops),
                    complete=True,
                    table_sha256=table_sha256,
                    signature=protection.sign(table_sha256),
                ),
            )
            clip = self.store.commit(partial, thumbnail, meta)
            self.store.journal_path(active.clip_id).unlink(missing_ok=True)
        except (OSError, av.FFmpegError, ValueError) as exc:
            self._fail(active.clip_id, exc, None, active.journal)
            return None
        except Exception:  # a bug must not silently stop every later clip
            log.exception("clip %s not finished", active.clip_id)
            self._fail(active.clip_id, RuntimeError("not finished"), None, active.journal)
            return None
        self.last_clip = clip
        try:
            self.on_clip(clip)
        except Exception:  # the clip is stored and will be offered; say what failed
            log.exception("clip %s stored, but announcing it failed", active.clip_id)
        return clip

    def _fail(
        self,
        clip_id: str,
        exc: Exception,
        writer: Mp4Writer | None = None,
        record: journal.JournalWriter | None = None,
    ) -> None:
        """Give up on a clip (a full disk, say): remove every piece of it, keep running."""
        self.failed += 1
        log.error("clip %s not recorded: %s", clip_id, exc)
        if record is not None:
            record.close()
        if writer is not None:
            with contextlib.suppress(OSError, ValueError, av.FFmpegError):
                writer.close()
        with contextlib.suppress(OSError):
            self.store.partial_path(clip_id).unlink(missing_ok=True)
            self.store.journal_path(clip_id).unlink(missing_ok=True)
            self.store.remove(clip_id)


def offered(video: Path, chunk_bytes: int, thumbnail: bytes) -> dict:
    """What a clip's offer says of its files: sizes and hashes, the video's in chunks (a
    very long clip gets bigger chunks, so that its offer stays within MAX_CHUNKS)."""
    size = video.stat().st_size
    chunk_bytes = max(chunk_bytes, -(-size // MAX_CHUNKS))
    whole, chunks = file_digests(video, chunk_bytes)
    return {"size_bytes": size, "sha256": whole, "chunk_bytes": chunk_bytes,
            "chunk_sha256": chunks, "thumbnail_bytes": len(thumbnail),
            "thumbnail_sha256": hashlib.sha256(thumbnail).hexdigest()}  # fmt: skip


def partial_checkpoint(
    protection: ClipProtection, active: _Recording
) -> Callable[[Gop, list[tuple[int, bytes]]], None]:
    """What happens when a GOP of a recording is finished: the GOP goes to the journal
    (sealed), and when :data:`CHECKPOINT_S` of video have passed since the last checkpoint,
    a checkpoint signs the GOP table so far. A crash loses at most what came after it."""
    last = [-CHECKPOINT_S * TICKS_PER_S]

    def checkpoint(gop: Gop, units: list[tuple[int, bytes]]) -> None:
        table = active.hasher.table
        active.journal.append(journal.GOP, protection.protect(journal.pack_gop(units)))
        if gop.last - last[0] < CHECKPOINT_S * TICKS_PER_S:
            return
        last[0] = gop.last
        digest = active.hasher.table_sha256()
        active.journal.append_json(journal.CHECKPOINT, {
            "count": len(table.gops), "table_sha256": digest,
            "signature": protection.sign(digest), "event_ids": active.event_ids,
            "last_ts": table.start_us / 1e6 + gop.last / 90000,
        })  # fmt: skip

    return checkpoint


def recover_journals(store: ClipStore, chunk_bytes: int) -> list[StoredClip]:
    """Clips whose recording a crash cut short: each journal with a checkpoint becomes a
    clip of the GOPs that checkpoint signed (the file stays the journal, cut after it; the
    hub opens it). A journal without one is removed: nothing of it can be proven."""
    recovered = []
    for path in sorted(store.root.glob(".*.journal")):
        clip_id = path.name[1:].partition(".")[0]
        try:
            data = path.read_bytes()
            found = journal.recoverable(data)
            if found is None:
                log.warning("clip %s: cut before its first checkpoint; nothing kept", clip_id)
                path.unlink()
                continue
            header, thumbnail, checkpoint, end = found
            partial = store.partial_path(clip_id)
            atomic_write(partial, data[:end])
            meta = ClipMeta(
                **offered(partial, chunk_bytes, thumbnail),
                device_id=header["device_id"],
                clip_id=header["clip_id"],
                event_ids=checkpoint["event_ids"],
                start_ts=header["start_ts"],
                trigger_ts=header["trigger_ts"],
                end_ts=max(header["trigger_ts"], checkpoint["last_ts"]),
                width=header["width"],
                height=header["height"],
                sealed=bool(header["sealed"]),
                container="journal",
                gops=GopSeal(
                    format=FORMAT,
                    count=checkpoint["count"],
                    complete=False,
                    table_sha256=checkpoint["table_sha256"],
                    signature=checkpoint["signature"],
                ),
            )
            recovered.append(store.commit(partial, thumbnail, meta))
            path.unlink()
            log.warning(
                "clip %s: recording was cut short; its first %d GOPs are kept and proven",
                clip_id, checkpoint["count"],
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("clip %s: its journal cannot be recovered (%s); removed", clip_id, exc)
            path.unlink(missing_ok=True)
            store.partial_path(clip_id).unlink(missing_ok=True)
    return recovered
