"""The clip store's limits against a device that offers and abandons, the approved clips
held until their bundle exists, and ring snapshots that age and stay bounded."""

from __future__ import annotations

import os
import time

from porch.core.config import HubClipSettings
from porch.core.wire import THUMBNAIL, ClipChunk
from porch.hub.clipstore import HubClipStore
from porch.hub.db import Database
from tests.support.footage import CHUNK, MiB, forged_clip


def stored_clip(db: Database, store: HubClipStore, device: str, size: int) -> str:
    meta, data = forged_clip(size)
    meta = meta.model_copy(update={"device_id": device})
    db.record_clip(meta)
    store.video(meta.clip_id).write_bytes(data)
    store.thumbnail(meta.clip_id).write_bytes(b"x" * meta.thumbnail_bytes)
    db.clip_stored(meta.clip_id)
    return meta.clip_id


def test_a_device_that_abandons_uploads_cannot_flush_the_others(tmp_path):
    db = Database(tmp_path / "hub.sqlite")
    settings = HubClipSettings(max_bytes=4 * MiB, abandon_after_s=10)
    store = HubClipStore(db, tmp_path / "clips", settings)
    good = [stored_clip(db, store, "front-door", MiB) for _ in range(3)]
    now = time.time()
    first, _ = forged_clip(MiB)  # room is made for it, as for any new clip
    assert store.admit(first, now) is None
    db.record_clip(first)
    assert len([c for c in good if store.video(c).exists()]) == 2
    # It never sends a byte; later it is abandoned, and the device offers a larger one, for
    # which the others' clips would have to go.
    second, _ = forged_clip(MiB * 5 // 2)
    refusal = store.admit(second, now + 60)
    assert refusal is not None and refusal[0] == "no room", refusal
    assert len([c for c in good if store.video(c).exists()]) == 2, "no more of theirs went"


def test_a_chunk_sent_again_does_not_keep_an_upload_alive(tmp_path):
    db = Database(tmp_path / "hub.sqlite")
    store = HubClipStore(db, tmp_path / "clips", HubClipSettings(abandon_after_s=10))
    meta, data = forged_clip(4 * CHUNK)
    assert store.admit(meta) is None
    db.record_clip(meta)
    chunk = ClipChunk(device_id=meta.device_id, clip_id=meta.clip_id, index=0, data=data[:CHUNK])
    store.chunk(chunk)
    touched = db.conn.execute("SELECT touched FROM clips").fetchone()[0]
    time.sleep(0.05)
    store.chunk(chunk)  # the same chunk again, and again
    store.chunk(chunk)
    assert db.conn.execute("SELECT touched FROM clips").fetchone()[0] == touched
    assert store.abandon_quiet(touched + 11) == [meta.clip_id]
    assert not any(p.name.endswith(".part") for p in store.root.iterdir())
    assert THUMBNAIL not in db.received_chunks(meta.clip_id)


def test_snapshots_age_with_the_clips_and_stay_bounded(tmp_path, broker):
    from tests.support.hub import start_hub

    hub = start_hub(tmp_path / "hub", broker)
    try:
        folder = hub.ingest.snapshots
        now = time.time()
        for index in range(10):
            path = folder / f"{index:032x}.jpg"
            path.write_bytes(b"\xff\xd8" + b"x" * 10_000)
            os.utime(path, (now - index * 86400, now - index * 86400))
        assert hub.ingest.prune_snapshots(5.5 * 86400, 10**9, now) == 4  # older than 5.5 days
        assert hub.ingest.prune_snapshots(10**9, 30_100, now) == 3  # over the cap: oldest go
        assert sorted(p.name for p in folder.iterdir()) == [f"{i:032x}.jpg" for i in range(3)]
    finally:
        hub.stop()


def test_approved_clips_are_held_until_their_bundle_is_built(tmp_path):
    # Retention (or a new clip making room) must not delete what the owner approved while
    # its bundle waits to be built: the build would fail for good.
    from porch.hub.audit import AuditLog
    from porch.hub.consent import Consent

    db = Database(tmp_path / "hub.sqlite")
    store = HubClipStore(db, tmp_path / "clips", HubClipSettings())
    clip_id = stored_clip(db, store, "front-door", 64 * 1024)
    start, end = db.conn.execute(
        "SELECT start_ts, end_ts FROM clips WHERE clip_id = ?", (clip_id,)
    ).fetchone()
    consent = Consent(db.conn, AuditLog(db.conn, None))
    request = consent.file("requester", "A", "B", "c", "d", "voluntary", "", ["front-door"],
                           start - 60, end + 60)  # fmt: skip
    assert clip_id in consent.held_clip_ids(), "pending: held"
    consent.decide(request.request_id, "owner", approve=True, clip_ids=[clip_id])
    assert clip_id in consent.held_clip_ids(), "approved, not built yet: still held"
    store.settings = store.settings.model_copy(update={"retention_days": 1e-9})
    assert store.enforce_limits(time.time() + 10) == []
    consent.record_bundle(request.request_id, "b" * 16, "/nowhere.zip", "0" * 64, 1)
    assert clip_id not in consent.held_clip_ids(), "built: the hold ends"
