"""The hub's clip store: receives clips chunk by chunk, checks every hash, keeps them bounded.

Files live in ``<data_dir>/clips/``: ``ID.mp4`` and ``ID.jpg`` once whole, ``.ID.mp4.part``
and ``.ID.jpg.part`` while arriving. Which chunks arrived is kept in the database, so a hub
killed mid-transfer resumes where it was; a clip is listed (state ``stored``) only after
both files are fsync'd, renamed into place and the whole file's SHA-256 matched.

The store has a byte cap and a retention in days; the oldest clips go first, and a clip the
owner marked "keep" never goes, nor one held by a pending footage request. The cap covers
clips being received too: an offer reserves its size before a byte arrives (older clips
make room, or the offer is refused), so the store's files never exceed the cap however many
offers come. One device may send ``receiving_per_device`` clips at once and none larger
than ``max_clip_bytes``; a clip that goes quiet for ``abandon_after_s`` is abandoned. Runs
on the ingest's thread.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from pathlib import Path

from porch.core.config import HubClipSettings
from porch.core.fsutil import PARTIAL_SUFFIX, atomic_write, file_digests, publish_file
from porch.core.wire import THUMBNAIL, ClipAck, ClipChunk, ClipMeta
from porch.hub.clipopener import ClipOpener, ClipRefused
from porch.hub.consent import held_clip_ids
from porch.hub.db import Database

log = logging.getLogger(__name__)
ABANDON_MEMORY_S = 3600.0
"""A device that abandoned an upload this recently may not make room by eviction."""


class HubClipStore:
    def __init__(
        self,
        db: Database,
        root: Path,
        settings: HubClipSettings,
        opener: ClipOpener | None = None,
    ):
        self.db = db
        self.opener = opener or ClipOpener(None)
        self.refused = 0
        self.root = root
        self.settings = settings
        root.mkdir(parents=True, exist_ok=True)
        self.bad_chunks = 0
        self.evicted = 0
        self._abandoned: dict[str, float] = {}
        """When each device last left an upload unfinished."""
        self._recover()

    def video(self, clip_id: str) -> Path:
        return self.root / f"{clip_id}.mp4"

    def thumbnail(self, clip_id: str) -> Path:
        return self.root / f"{clip_id}.jpg"

    def gops(self, clip_id: str) -> Path:
        """The clip's GOP table, as its device signed it (absent for older doorbells)."""
        return self.root / f"{clip_id}.gops"

    def _partial(self, clip_id: str, index: int) -> Path:
        ext = "jpg" if index == THUMBNAIL else "mp4"
        return self.root / f".{clip_id}.{ext}{PARTIAL_SUFFIX}"

    def _recover(self) -> None:
        """Partial files of clips no longer being received go; chunks whose file went, too."""
        receiving = set(self.db.receiving_clips())
        for path in self.root.iterdir():
            if path.name.endswith(PARTIAL_SUFFIX) and path.name[1:33] not in receiving:
                path.unlink(missing_ok=True)
        for clip_id in receiving:
            for index, kind in ((0, "video"), (THUMBNAIL, "thumbnail")):
                if not self._partial(clip_id, index).exists():
                    got = self.db.received_chunks(clip_id)
                    lost = [i for i in got if (i == THUMBNAIL) == (kind == "thumbnail")]
                    self.db.mark_chunks(clip_id, lost, received=False)

    def admit(self, meta: ClipMeta, now: float | None = None) -> tuple[str, str] | None:
        """Whether a new offer may start arriving: None when its space is reserved (the
        caller then records it), else (kind, reason) of the refusal. A refused offer is
        not answered; the device offers it again later."""
        now = time.time() if now is None else now
        self.abandon_quiet(now)
        limit = self.settings.max_clip_bytes
        if meta.size_bytes > limit:
            return "too large", f"offers {meta.size_bytes} bytes, over clips.max_clip_bytes {limit}"
        if self.db.receiving_count(meta.device_id) >= self.settings.receiving_per_device:
            return "busy", "already sending as many clips as it may at once; this one waits"
        need = meta.size_bytes + meta.thumbnail_bytes
        abandoned = self._abandoned.get(meta.device_id, -math.inf)
        if now - abandoned >= ABANDON_MEMORY_S:
            self.enforce_limits(now, reserve=need)  # older clips make room
        # else: a device that left an upload unfinished lately gets free room only, so
        # offering and abandoning cannot flush other devices' clips.
        used = sum(size for _, size, _, _ in self.db.stored_clips()) + self.db.reserved_bytes()
        if used + need > self.settings.max_bytes:
            return "no room", "the clip store has no room for it now"
        return None

    def abandon_quiet(self, now: float) -> list[str]:
        """Drop clips being received that have had no chunk for ``abandon_after_s``."""
        quiet = self.db.quiet_receiving(now - self.settings.abandon_after_s)
        for clip_id in quiet:
            known = self.db.clip(clip_id)
            if known is not None:
                self._abandoned[known[1].device_id] = now
            for index in (0, THUMBNAIL):
                self._partial(clip_id, index).unlink(missing_ok=True)
            self.db.delete_clip(clip_id)
            log.warning(
                "clip %s abandoned: no chunk for %.0f s", clip_id, self.settings.abandon_after_s
            )
        return quiet

    def offer(self, meta: ClipMeta) -> ClipAck | None:
        """A device offers a clip (recorded with ``Database.record_clip`` first): say what is
        missing, or that it is stored."""
        known = self.db.clip(meta.clip_id)
        if known is None:
            return None
        state, stored_meta = known
        if stored_meta != meta:
            log.warning("clip %s offered again with different metadata: ignored", meta.clip_id)
            return None
        if state == "stored":
            return ClipAck(device_id=meta.device_id, clip_id=meta.clip_id, stored=True)
        return self._missing_or_done(meta)

    def chunk(self, chunk: ClipChunk) -> ClipAck | None:
        """One chunk arrived: check it against the offer's hash and write it in place."""
        known = self.db.clip(chunk.clip_id)
        if known is None or known[0] != "receiving" or known[1].device_id != chunk.device_id:
            return None  # unknown (the offer comes again), already stored, or not this device's
        meta = known[1]
        expected = self._expected(meta, chunk.index)
        if expected is None:
            log.warning("clip %s has no chunk %d", meta.clip_id, chunk.index)
            return None
        size, digest = expected
        if len(chunk.data) != size or hashlib.sha256(chunk.data).hexdigest() != digest:
            self.bad_chunks += 1
            log.warning("clip %s chunk %d failed its hash: asked again", meta.clip_id, chunk.index)
            return ClipAck(
                device_id=meta.device_id, clip_id=meta.clip_id, stored=False, missing=[chunk.index]
            )
        offset = 0 if chunk.index == THUMBNAIL else chunk.index * meta.chunk_bytes
        fd = os.open(self._partial(meta.clip_id, chunk.index), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, chunk.data, offset)
        finally:
            os.close(fd)
        if self.db.mark_chunks(
            meta.clip_id, [chunk.index]
        ):  # a chunk sent again is no sign of life
            self.db.touch_clip(meta.clip_id, time.time())
        if self.db.count_chunks(meta.clip_id) == meta.chunk_count + 1:
            return self._missing_or_done(meta)
        return None

    @staticmethod
    def _expected(meta: ClipMeta, index: int) -> tuple[int, str] | None:
        if index == THUMBNAIL:
            return meta.thumbnail_bytes, meta.thumbnail_sha256
        if not 0 <= index < meta.chunk_count:
            return None
        last = meta.size_bytes - (meta.chunk_count - 1) * meta.chunk_bytes
        size = last if index == meta.chunk_count - 1 else meta.chunk_bytes
        return size, meta.chunk_sha256[index]

    def _missing_or_done(self, meta: ClipMeta) -> ClipAck:
        wanted = set(range(meta.chunk_count)) | {THUMBNAIL}
        missing = sorted(wanted - self.db.received_chunks(meta.clip_id))
        if not missing and self._finish(meta):
            return ClipAck(device_id=meta.device_id, clip_id=meta.clip_id, stored=True)
        if not missing:  # the whole did not match: find the bad chunks again
            missing = sorted(wanted - self.db.received_chunks(meta.clip_id))
        return ClipAck(
            device_id=meta.device_id, clip_id=meta.clip_id, stored=False, missing=missing
        )

    def _finish(self, meta: ClipMeta) -> bool:
        """All chunks are in: verify the whole, fsync, rename, mark stored."""
        video = self._partial(meta.clip_id, 0)
        thumb = self._partial(meta.clip_id, THUMBNAIL)
        whole, chunks = file_digests(video, meta.chunk_bytes)
        thumb_ok = hashlib.sha256(thumb.read_bytes()).hexdigest() == meta.thumbnail_sha256
        if whole != meta.sha256 or not thumb_ok:
            pairs = zip(chunks, meta.chunk_sha256, strict=False)
            bad = [i for i, (got, want) in enumerate(pairs) if got != want]
            bad += list(range(len(chunks), meta.chunk_count))
            if not thumb_ok:
                bad.append(THUMBNAIL)
            if whole != meta.sha256 and not bad:  # longer than announced: start again
                video.unlink(missing_ok=True)
                bad = list(range(meta.chunk_count))
            log.warning("clip %s did not match its hash; asking again for %s", meta.clip_id, bad)
            self.db.mark_chunks(meta.clip_id, bad, received=False)
            return False
        try:
            opened = self.opener.open(meta, video, thumb)
        except ClipRefused as exc:
            self.refused += 1
            log.error("clip %s from %s refused: %s", meta.clip_id, meta.device_id, exc)
            return False
        if opened.gops is not None:
            atomic_write(self.gops(meta.clip_id), opened.gops)
        if opened.video is None:
            publish_file(thumb, self.thumbnail(meta.clip_id))
            publish_file(video, self.video(meta.clip_id))
        else:  # sealed or a journal: the received parts go (a crash now only means asking
            # again), the opened ones in
            thumb.unlink()
            video.unlink()
            atomic_write(self.thumbnail(meta.clip_id), opened.thumbnail or b"")
            atomic_write(self.video(meta.clip_id), opened.video)
        self.db.clip_stored(meta.clip_id)
        log.info("clip %s stored (%d bytes)", meta.clip_id, meta.size_bytes)
        self.enforce_limits()
        return True

    def enforce_limits(
        self, now: float | None = None, db: Database | None = None, reserve: int = 0
    ) -> list[str]:
        """Delete clips past the retention or over the byte cap, oldest first, never kept ones.
        The cap holds stored clips, clips being received, and ``reserve`` more bytes.

        ``db``: the connection of the calling thread (the ingest's by default)."""
        db = db or self.db
        now = time.time() if now is None else now
        oldest_allowed = now - self.settings.retention_days * 86400
        clips = db.stored_clips()
        held = held_clip_ids(db.conn)  # a pending footage request holds its window's clips
        active = now - self.settings.abandon_after_s  # a quiet upload holds no room
        total = sum(size for _, size, _, _ in clips) + db.reserved_bytes(active) + reserve
        removed = []
        for clip_id, size, stored_at, keep in clips:
            too_old = (stored_at or now) < oldest_allowed
            if keep or clip_id in held or not (too_old or total > self.settings.max_bytes):
                continue
            self.delete(clip_id, db)
            total -= size
            removed.append(clip_id)
            self.evicted += 1
        return removed

    def delete(self, clip_id: str, db: Database | None = None) -> None:
        (db or self.db).delete_clip(clip_id)
        for path in (self.video(clip_id), self.thumbnail(clip_id), self.gops(clip_id)):
            path.unlink(missing_ok=True)
