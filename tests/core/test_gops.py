"""The GOP proof format (porch-gops/1) and the clip journal, byte by byte: canonical access
units as the doorbell hashes them, strict tables, byte ranges, torn journals."""

from __future__ import annotations

import hashlib
import os

import pytest

from porch.core import journal
from porch.core.gops import (
    FORMAT,
    Gop,
    GopError,
    GopHasher,
    GopTable,
    check_ranges,
    nal_spans,
    parse_ranges,
    parse_table,
)
from porch.core.wire import ClipMeta, GopSeal, WireError, parse


def test_a_sample_that_is_not_length_prefixed_is_refused():
    for sample in (b"\x00\x00\x00\x09abc", b"\x00\x00\x00\x00", b"\x00\x00\x01\x65abc"):
        with pytest.raises(GopError):
            nal_spans(sample)
    hasher = GopHasher(GopTable("front-door", "ab" * 16, 0))
    with pytest.raises(GopError):
        hasher.add(0, b"\x00\x00\x00\x01\x65\x88\x84\x00", True)  # Annex B is not a sample


def table(count: int = 3, complete: bool = True) -> GopTable:
    hasher = GopHasher(GopTable("front-door", "ab" * 16, 1_764_500_000_123_456))
    for i in range(count * 3):
        hasher.add(i * 6000, b"\x00\x00\x00\x15\x41" + os.urandom(20), i % 3 == 0)
    made = hasher.finish()
    made.complete = complete
    return made


def test_a_table_reads_back_exactly_and_a_checkpoint_is_its_prefix():
    whole = table(4)
    assert parse_table(whole.text()).text() == whole.text()
    assert whole.text().endswith(b"\nend\n") and whole.text().startswith(FORMAT.encode())
    checkpoint = whole.text(2)
    assert not checkpoint.endswith(b"end\n") and parse_table(checkpoint).gops == whole.gops[:2]
    assert whole.sha256(2) == hashlib.sha256(checkpoint).hexdigest() != whole.sha256()


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace(b"porch-gops/1", b"porch-gops/2"),
        lambda t: t.replace(b"\n1 ", b"\n2 ", 1),  # an index out of order
        lambda t: t.replace(b"device front-door", b"device Front Door"),
        lambda t: t.replace(b"end\n", b"end\nmore\n"),
        lambda t: t.rstrip(b"\n"),
        lambda t: t.replace(b" 3 ", b"  3 ", 1),
        lambda t: t.upper(),
        lambda t: t.replace(b"\n0 0 12000", b"\n0 90000 12000"),  # ends before it starts
    ],
)
def test_a_malformed_table_is_refused(change):
    text = table().text()
    with pytest.raises(GopError):
        parse_table(change(text))


def test_ranges_must_hold_consecutive_gops_back_to_back_as_signed():
    gops = [os.urandom(100), os.urandom(80), os.urandom(120)]
    made = GopTable("front-door", "cd" * 16, 0, [
        Gop(i, i * 90000, i * 90000 + 84000, 15, hashlib.sha256(g).hexdigest(), "0" * 64)
        for i, g in enumerate(gops)
    ], complete=True)  # fmt: skip
    data = b"HEAD" + b"".join(gops) + b"TAIL"
    good = [(0, 4, 100), (1, 104, 80), (2, 184, 120)]
    assert check_ranges(made, good, data) == (0, 2)
    assert check_ranges(made, good[1:], data) == (1, 2)
    bad = {
        "gap": [(0, 4, 100), (2, 184, 120)],
        "order": [(1, 104, 80), (0, 4, 100)],
        "apart": [(0, 4, 100), (1, 105, 80)],
        "outside": [(2, 184, 1000)],
        "bytes": [(1, 4, 100)],
        "none": [],
    }
    for label, ranges in bad.items():
        with pytest.raises(GopError):
            check_ranges(made, ranges, data)
            pytest.fail(f"{label} passed")
    with pytest.raises(GopError):
        parse_ranges(b"0 4 100\n1 104\n")


def test_a_torn_journal_keeps_what_its_last_checkpoint_signed(tmp_path):
    path = tmp_path / ".x.journal"
    writer = journal.JournalWriter(path)
    writer.append_json(journal.HEADER, {"clip_id": "x"})
    assert journal.recoverable(path.read_bytes()) is None, "no checkpoint: nothing kept"
    writer.append(journal.THUMBNAIL, b"jpeg")
    writer.append(journal.GOP, journal.pack_gop([(0, b"\x00\x00\x00\x01\x65")]))
    writer.append_json(journal.CHECKPOINT, {"count": 1})
    kept = path.stat().st_size
    writer.append(journal.GOP, journal.pack_gop([(6000, b"\x00\x00\x00\x01\x65")]))
    writer.close()
    data = path.read_bytes()
    for cut in range(kept, len(data)):  # torn anywhere after the checkpoint
        _, thumbnail, checkpoint, end = journal.recoverable(data[:cut])
        assert (thumbnail, checkpoint, end) == (b"jpeg", {"count": 1}, kept)
    with pytest.raises(journal.JournalError):
        list(journal.records(b"not a journal"))
    damaged = data[:kept] + b"X" + data[kept + 1 :]
    assert journal.recoverable(damaged)[3] == kept


def test_a_journal_clip_carries_a_checkpoints_seal_and_nothing_else():
    seal = GopSeal(format=FORMAT, count=2, complete=False, table_sha256="a" * 64,
                   signature="b" * 128)  # fmt: skip
    base = dict(device_id="front-door", clip_id="c" * 32, event_ids=[], start_ts=1e9,
                trigger_ts=1e9, end_ts=1e9 + 2, size_bytes=2048, sha256="d" * 64,
                width=320, height=240, chunk_bytes=1024, chunk_sha256=["e" * 64] * 2,
                thumbnail_bytes=10, thumbnail_sha256="f" * 64)  # fmt: skip
    ok = ClipMeta(**base, container="journal", gops=seal)
    topic = f"porch/front-door/clip/{'c' * 32}/meta"
    assert parse(topic, ok.to_bytes()) == ok
    for bad in (
        {"container": "journal"},
        {"container": "journal", "gops": seal.model_copy(update={"complete": True})},
        {"container": "journal", "gops": seal, "signature": "b" * 128},
        {"container": "tar", "gops": seal},
    ):
        payload = ClipMeta.model_construct(**base, **bad).model_dump_json().encode()
        with pytest.raises(WireError):
            parse(topic, payload)
    older = ClipMeta(**base)  # a doorbell from before GOP proofs
    assert older.gops is None and older.container == "mp4"
