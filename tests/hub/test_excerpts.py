"""Excerpts that keep the doorbell's signature: a clip trimmed to whole GOPs, copied, its
GOP table signed at capture; checked by `porch verify` and by docs/verify.md's script, and
refused when any frame, GOP or stated span is not what the doorbell recorded."""

from __future__ import annotations

import io
import json
import shutil
import signal
import struct
import subprocess
import tomllib
import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
from cryptography.hazmat.primitives import hashes

from porch.core import journal
from porch.core.config import to_toml
from porch.core.gops import TICKS_PER_S, nal_units, parse_ranges, parse_table, ranges_text
from porch.core.mp4track import mp4_boxes, read_track
from porch.core.wire import ClipMeta
from porch.hub.consent import ConsentError
from porch.hub.excerpt import Frame, mux_annex_b, read_frames, samples
from porch.hub.export.bundle import ClipFile, build_bundle
from tests.support.browser import needs_chromium, sign_in
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import RunningAgent, agent_from, start_device
from tests.support.footage import (
    check_script,
    record_two_clips,
    run_check,
    run_verify,
    stored,
    visitor_scene,
)
from tests.support.hub import PASSWORD, Home, module_home

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="no mosquitto")
TRIM = (3.2, 5.5)


@pytest.fixture(scope="module")
def trimmed():
    """Two clips of about 8 s from an enrolled doorbell; the owner approves the first,
    trimmed to seconds 3.2-5.5, and its bundle is built."""
    with module_home("porch-excerpt-") as home:
        clips = record_two_clips(home, postroll_s=6.0, every_s=8.0)
        consent = home.hub.consent
        request = consent.file("requester", "Officer Dibble", "Ankh Police", "dibble@example",
                               "a parcel theft", "warrant", "W-2026-118", ["front-door"],
                               clips[0]["start_ts"] - 60, clips[-1]["end_ts"] + 60)  # fmt: skip
        first = clips[0]["clip_id"]
        consent.decide(request.request_id, "owner", approve=True, clip_ids=[first],
                       trims={first: TRIM})  # fmt: skip
        bundle = Path(home.hub.exporter.build(request.request_id, "requester")["path"])
        yield SimpleNamespace(home=home, clips=clips, request=request, bundle=bundle)


def fingerprint(home: Home) -> str:
    return home.pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex()


def unpack(bundle: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(members["manifest.json"]), members


def test_a_trimmed_clip_leaves_as_whole_gops_that_verify_and_play(trimmed, tmp_path):
    home = trimmed.home
    result = run_verify(trimmed.bundle, home.pki.path("ca.crt"))
    assert result.exit_code == 0, result.output
    assert "1 excerpt(s) of whole GOPs" in result.output
    assert "Content Credentials of 1 clip(s) trusted" in result.output

    manifest, members = unpack(trimmed.bundle)
    [clip] = manifest["clips"]
    excerpt = clip["excerpt"]
    table = parse_table(members[excerpt["gops_file"]])
    first, last = excerpt["first_gop"], excerpt["last_gop"]
    start, end = excerpt["span_s"]
    assert 0 < first <= last < len(table.gops) - 1, "a part from the middle of the clip"
    assert start <= TRIM[0] and end >= TRIM[1] - 1 / 15, "the excerpt shows all that was asked"
    assert table.gops[first + 1].first / TICKS_PER_S > TRIM[0], "no GOP more than needed"
    assert table.gops[last].first / TICKS_PER_S < TRIM[1]
    assert excerpt["requested_s"] == list(TRIM)

    # The excerpt plays for its span: PyAV reads its duration and decodes every frame.
    video = tmp_path / "excerpt.mp4"
    video.write_bytes(members[clip["file"]])
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [frame for packet in container.demux(stream) for frame in packet.decode()]
        duration = float(stream.duration * stream.time_base)
    expected = sum(g.frames for g in table.gops[first : last + 1])
    assert len(frames) == expected and frames[0].key_frame
    assert abs(duration - (end - start + 1 / 15)) < 0.1, (duration, start, end)
    whole = home.hub.clips.video(clip["clip_id"]).stat().st_size
    assert len(members[clip["file"]]) < whole * 0.6, "only the seconds that matter leave"

    done = run_check(check_script(tmp_path), trimmed.bundle, fingerprint(home))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"excerpt: GOPs {first}-{last}" in done.stdout, done.stdout
    assert "played as it recorded them" in done.stdout and "checks out" in done.stdout
    blind = run_check(check_script(tmp_path), trimmed.bundle, fingerprint(home), ("ffprobe",))
    assert blind.returncode == 3 and "NOT FULLY CHECKED" in blind.stdout, blind.stdout

    # Content Credentials: the trim is an edit of the original, its parent ingredient.
    from porch.hub.export import credentials

    found = credentials.read(
        members[clip["file"]], members["certs/ca.pem"], members[clip["credentials"]]
    )
    assert found.actions == ["c2pa.opened", "c2pa.edited", "c2pa.published"]


def resigned(trimmed, tmp_path: Path, name: str, change) -> Path:
    """The bundle with its excerpt changed by ``change(clip entry, excerpt path, members)``
    (which returns the new ranges file, or None for the old one), then signed again with the
    home's own export key: what a hub that wants to lie could make."""
    manifest, members = unpack(trimmed.bundle)
    [clip] = manifest["clips"]
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(members[clip["file"]])
    ranges = change(clip, path, members) or members[clip["excerpt"]["ranges_file"]]
    for key in ("members", "files"):
        manifest.pop(key)
    clip.pop("credentials_sha256", None)
    certs = {n: data for n, data in members.items() if n.startswith("certs/")}
    out = tmp_path / f"{name}.zip"
    pki = trimmed.home.pki
    clip_file = ClipFile(clip["clip_id"], path, members[clip["signature_file"]],
                         members[clip["credentials"]], None, members[clip["excerpt"]["gops_file"]],
                         ranges)  # fmt: skip
    build_bundle(out, manifest, certs, [clip_file], pki.export_key().sign)
    return out


def gop_frames(frames: list[Frame]) -> list[list[Frame]]:
    """Frames grouped into GOPs, each from a keyframe."""
    gops: list[list[Frame]] = []
    for frame in frames:
        if frame.keyframe or not gops:
            gops.append([])
        gops[-1].append(frame)
    return gops


def rebuilt(clip: dict, path: Path, members: dict, order: list[int], swap=None) -> bytes:
    """Write the excerpt's GOPs in ``order`` (``swap``: another GOP's frames in the second
    place), frames re-timed to play smoothly, each labelled as the GOP it is (a swapped one
    as the GOP whose place it takes); returns the ranges file."""
    excerpt = clip["excerpt"]
    frames, width, height = read_frames(members[clip["file"]])
    gops = dict(zip(range(excerpt["first_gop"], excerpt["last_gop"] + 1), gop_frames(frames),
                    strict=True))  # fmt: skip
    chosen = [swap if swap is not None and at == 1 else gops[i] for at, i in enumerate(order)]
    flat = [f for gop in chosen for f in gop]
    annex_b = [  # as an encoder gives them, for FFmpeg's muxer
        replace(
            f, ticks=k * 6000, data=b"".join(b"\x00\x00\x00\x01" + u for u in nal_units(f.data))
        )
        for k, f in enumerate(flat)
    ]
    path.write_bytes(mux_annex_b(annex_b, width, height))
    placed, ranges, at = samples(path), [], 0
    for index, gop in zip(order, chosen, strict=True):
        runs = placed[at : at + len(gop)]
        ranges.append((index, runs[0][0], sum(r[1] for r in runs)))
        at += len(gop)
    return ranges_text(ranges)


def flip_a_frame_byte(clip, path, members):
    ranges = parse_ranges(members[clip["excerpt"]["ranges_file"]])
    _, offset, length = ranges[len(ranges) // 2]
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x01  # inside a frame of a middle GOP
    path.write_bytes(bytes(data))


def drop_a_gop(clip, path, members):
    first, last = clip["excerpt"]["first_gop"], clip["excerpt"]["last_gop"]
    return rebuilt(clip, path, members, [first, *range(first + 2, last + 1)])


def duplicate_a_gop(clip, path, members):
    first, last = clip["excerpt"]["first_gop"], clip["excerpt"]["last_gop"]
    return rebuilt(clip, path, members, [first, first, *range(first + 1, last + 1)])


def reorder_gops(clip, path, members):
    first, last = clip["excerpt"]["first_gop"], clip["excerpt"]["last_gop"]
    return rebuilt(clip, path, members, [first + 1, first, *range(first + 2, last + 1)])


def misstate_the_span(clip, path, members):
    clip["excerpt"]["span_s"][1] += 2.0  # "it shows two seconds more"
    clip["end_ts"] += 2.0


@pytest.mark.parametrize(
    ("change", "reason", "script_says"),
    [
        (flip_a_frame_byte, "is not the GOP the doorbell signed", "is not the GOP"),
        (drop_a_gop, "not consecutive", "does not follow"),
        (duplicate_a_gop, "not consecutive", "does not follow"),
        (reorder_gops, "not consecutive", "does not follow"),
        (misstate_the_span, "other seconds than its GOPs", "other seconds"),
    ],
)
def test_an_altered_excerpt_is_refused_by_verify_and_the_script(
    trimmed, tmp_path, change, reason, script_says
):
    forged = resigned(trimmed, tmp_path, change.__name__, change)
    result = run_verify(forged, trimmed.home.pki.path("ca.crt"))
    assert result.exit_code == 1 and reason in result.output, result.output
    done = run_check(check_script(tmp_path), forged, fingerprint(trimmed.home))
    assert done.returncode != 0 and script_says in done.stdout, done.stdout + done.stderr


def test_a_gop_of_another_clip_of_the_same_doorbell_is_refused(trimmed, tmp_path):
    other = trimmed.home.hub.clips.video(trimmed.clips[1]["clip_id"])
    frames, _, _ = read_frames(other)
    foreign = gop_frames(frames)[3]  # a real GOP, signed by the same doorbell, another clip

    def splice(clip, path, members):
        first, last = clip["excerpt"]["first_gop"], clip["excerpt"]["last_gop"]
        return rebuilt(clip, path, members, list(range(first, last + 1)), swap=foreign)

    forged = resigned(trimmed, tmp_path, "spliced", splice)
    result = run_verify(forged, trimmed.home.pki.path("ca.crt"))
    assert result.exit_code == 1 and "not the GOP the doorbell signed" in result.output
    done = run_check(check_script(tmp_path), forged, fingerprint(trimmed.home))
    assert done.returncode != 0 and "is not the GOP" in done.stdout, done.stdout


def test_a_trim_needs_gop_proofs_and_must_lie_inside_the_clip(trimmed):
    consent = trimmed.home.hub.consent
    clips = trimmed.clips
    request = consent.file("requester", "Officer Dibble", "Ankh Police", "dibble@example",
                           "another look", "voluntary", "", ["front-door"],
                           clips[0]["start_ts"] - 60, clips[-1]["end_ts"] + 60)  # fmt: skip
    clip_id = clips[1]["clip_id"]
    length = clips[1]["end_ts"] - clips[1]["start_ts"]
    for bad in [(-1.0, 2.0), (3.0, 2.0), (1.0, length + 5), (2.0, 2.05), (float("nan"), 2.0)]:
        with pytest.raises(ConsentError, match="trim must lie within"):
            consent.decide(request.request_id, "owner", approve=True, clip_ids=[clip_id],
                           trims={clip_id: bad})  # fmt: skip
    with pytest.raises(ConsentError, match=r"end after it starts \(3 to 2 s given\)"):
        consent.decide(request.request_id, "owner", approve=True, clip_ids=[clip_id],
                       trims={clip_id: (3.0, 2.0)})  # fmt: skip
    with pytest.raises(ConsentError, match="not among the approved"):
        consent.decide(request.request_id, "owner", approve=True, clip_ids=[clip_id],
                       trims={clips[0]["clip_id"]: (1.0, 2.0)})  # fmt: skip
    assert consent.get(request.request_id).state == "pending", "nothing was recorded"


@needs_chromium
def test_the_owner_trims_by_keyboard_and_the_requester_downloads_the_excerpt(
    trimmed, browser, tmp_path
):
    home, clip = trimmed.home, trimmed.clips[1]
    request = home.hub.consent.file("requester", "Officer Dibble", "Ankh Police", "dibble@x",
                                    "the second visit", "voluntary", "", ["front-door"],
                                    clip["start_ts"] - 60, clip["end_ts"] + 60)  # fmt: skip
    owner = browser.new_context().new_page()
    sign_in(owner, home.hub.url, "owner")
    owner.goto(f"{home.hub.url}/requests/{request.request_id}")
    # Keyboard only: tick the clip, then Tab to its trim fields and type the seconds.
    owner.focus(f"#matching input[value='{clip['clip_id']}']")
    owner.keyboard.press("Space")
    for _ in range(4):
        if owner.evaluate("document.activeElement.name") == "trim_from":
            break
        owner.keyboard.press("Tab")
    assert owner.evaluate("document.activeElement.dataset.clip") == clip["clip_id"]
    owner.keyboard.type("2.5")
    owner.keyboard.press("Tab")
    owner.keyboard.type("4")
    owner.fill("input[name=password]", PASSWORD)
    owner.uncheck("input[name=blur_faces]")
    owner.click("#approve")
    owner.wait_for_selector("#request-status:has-text('approved')")
    assert "seconds 2.5 to 4.0" in owner.inner_text("#approved-trims")

    requester = browser.new_context().new_page()
    sign_in(requester, home.hub.url, "requester")
    requester.goto(f"{home.hub.url}/requests/{request.request_id}")
    requester.wait_for_selector("#bundle-ready", state="visible", timeout=TIMEOUT * 1000)
    with requester.expect_download(timeout=TIMEOUT * 1000) as download:
        requester.click("#download")
    bundle = tmp_path / "bundle.zip"
    download.value.save_as(bundle)
    result = run_verify(bundle, home.pki.path("ca.crt"))
    assert result.exit_code == 0 and "1 excerpt(s)" in result.output, result.output

    manifest, members = unpack(bundle)
    [entry] = manifest["clips"]
    start, end = entry["excerpt"]["span_s"]
    assert start <= 2.5 and 4.0 - 1 / 15 <= end < 4.0 + 1.1, (start, end)
    (tmp_path / "excerpt.mp4").write_bytes(members[entry["file"]])
    with av.open(str(tmp_path / "excerpt.mp4")) as container:
        stream = container.streams.video[0]
        decoded = [f for packet in container.demux(stream) for f in packet.decode()]
        duration = float(stream.duration * stream.time_base)
    assert abs(duration - (end - start + 1 / 15)) < 0.1
    assert len(decoded) == round((end - start) * 15) + 1, "every frame of the span decodes"


def killed_mid_recording(home: Home, tmp_path: Path) -> tuple[Path, Path]:
    """Enroll front-door, run it as a process until a clip records with checkpoints, kill
    -9 it; returns its device.toml and clip store."""
    config = home.enroll("front-door")
    settings = tomllib.loads(config.read_text())
    data = tmp_path / "device"
    settings.update(data_dir=str(data), gpio={"pin_factory": "mock"},
                    camera={"source": "synthetic", "width": 320, "height": 240,
                            "realtime": False},
                    clips={**settings["clips"], "preroll_s": 2, "postroll_s": 120})  # fmt: skip
    config.write_text(to_toml(settings))
    clips = data / "clips"

    def proven() -> int:
        """GOPs the recording's last checkpoint signed so far."""
        journals = list(clips.glob(".*.journal")) if clips.exists() else []
        found = journal.recoverable(journals[0].read_bytes()) if journals else None
        return found[2]["count"] if found else 0

    agent = start_device(config, stderr=subprocess.PIPE)
    try:  # the synthetic visitor arrives after ~10 s of video: a clip starts, keeps going
        wait_for(lambda: proven() >= 2, what="a recording with checkpoints")
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(TIMEOUT)
    return config, clips


def test_the_proven_part_of_a_clip_cut_by_kill_9_reaches_the_hub_and_verifies(home, tmp_path):
    """The agent is killed mid-recording: the GOPs its last checkpoint signed come back as a
    clip of their own after the restart, sealed all the way, and export as a verified
    excerpt; nothing unproven is kept."""
    home.hub.accounts.add_user("owner", PASSWORD, "owner")
    config, clips = killed_mid_recording(home, tmp_path)
    [left] = clips.glob(".*.journal")
    found = journal.recoverable(left.read_bytes())
    assert found is not None
    proven = found[2]["count"]
    assert proven >= 2 and not list(clips.glob("*.json")), "no clip was whole before"

    agent = start_device(config, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: stored(home), what="the recovered clip at the hub")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(TIMEOUT)
    [row] = stored(home)
    db_meta = home.hub.web_db.conn.execute(
        "SELECT meta FROM clips WHERE clip_id = ?", (row["clip_id"],)
    ).fetchone()[0]
    meta = ClipMeta.model_validate_json(db_meta)
    assert meta.container == "journal" and meta.sealed and meta.gops.count == proven
    assert not meta.gops.complete and meta.signature is None
    frames, _, _ = read_frames(home.hub.clips.video(row["clip_id"]))
    assert len(gop_frames(frames)) == proven
    with av.open(str(home.hub.clips.video(row["clip_id"]))) as video:
        assert sum(1 for _ in video.decode(video=0)) == len(frames), "every frame decodes"

    consent = home.hub.consent
    request = consent.file("owner", "Jo Owner", "Home", "jo@example", "the cut clip",
                           "voluntary", "", ["front-door"], row["start_ts"] - 60,
                           row["end_ts"] + 60)  # fmt: skip
    consent.decide(request.request_id, "owner", approve=True, clip_ids=[row["clip_id"]])
    bundle = Path(home.hub.exporter.build(request.request_id, "owner")["path"])
    result = run_verify(bundle, home.pki.path("ca.crt"))
    assert result.exit_code == 0 and "1 excerpt(s)" in result.output, result.output
    manifest, _ = unpack(bundle)
    excerpt = manifest["clips"][0]["excerpt"]
    assert (excerpt["first_gop"], excerpt["last_gop"], excerpt["complete"]) == (
        0, proven - 1, False,
    )  # fmt: skip
    done = run_check(check_script(tmp_path), bundle, fingerprint(home))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_journal_whose_checkpoint_is_not_the_devices_is_refused(home, tmp_path):
    """A doorbell (or whoever holds its disk) alters the last checkpoint's signature after
    a crash: the hub does not list what it cannot prove; the device's copy stays."""
    config, clips = killed_mid_recording(home, tmp_path)
    [left] = clips.glob(".*.journal")
    data = bytearray(left.read_bytes())
    *_, (_, payload, end) = [r for r in journal.records(bytes(data)) if r[0] == journal.CHECKPOINT]
    at = end - len(payload) + payload.index(b'"signature": "') + len(b'"signature": "')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    left.write_bytes(bytes(data))

    agent = start_device(config, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: home.hub.ingest.clips.refused >= 1, what="the refusal")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(TIMEOUT)
    assert not stored(home)
    assert len(list(clips.glob("*.json"))) == 1, "the device keeps its copy"


def record_one(home: Home, tmp_path: Path) -> None:
    """Enroll front-door and record one clip with it (in this process) until the hub has it
    or refused it."""
    config = home.enroll("front-door")
    agent = agent_from(config, tmp_path / "device", visitor_scene(), postroll_s=2.0)
    with RunningAgent(agent):
        wait_for(agent.link.connected.is_set, what="the device")
        wait_for(lambda: agent.media_time > 1.5, what="pre-roll")
        agent.doorbell.simulate_press()
        clips = home.hub.ingest.clips
        wait_for(lambda: stored(home) or clips.refused, what="the clip at the hub")


def test_a_gop_table_that_is_not_the_video_is_refused(home, tmp_path, monkeypatch):
    """A doorbell signs a GOP table that is not its video's: the hub refuses the clip."""
    import porch.device.clips as device_clips

    real = device_clips.GopSeal
    lie = lambda **seal: real(**{**seal, "count": seal["count"] + 1})  # noqa: E731
    monkeypatch.setattr(device_clips, "GopSeal", lie)
    record_one(home, tmp_path)
    assert not stored(home) and home.hub.ingest.clips.refused >= 1


def test_an_older_doorbells_clips_are_kept_and_shared_whole(home, tmp_path, monkeypatch):
    """A doorbell from before GOP proofs (no ``gops`` in its clip's metadata): its clips
    are stored and exported whole as before; a trim is refused with the reason."""
    import porch.device.clips as device_clips

    home.hub.accounts.add_user("owner", PASSWORD, "owner")
    monkeypatch.setattr(device_clips, "GopSeal", lambda **seal: None)
    record_one(home, tmp_path)
    [row] = stored(home)
    consent = home.hub.consent
    request = consent.file("owner", "Jo Owner", "Home", "jo@example", "an older clip",
                           "voluntary", "", ["front-door"], row["start_ts"] - 60,
                           row["end_ts"] + 60)  # fmt: skip
    with pytest.raises(ConsentError, match="can only be shared whole"):
        consent.decide(request.request_id, "owner", approve=True, clip_ids=[row["clip_id"]],
                       trims={row["clip_id"]: (0.5, 1.5)})  # fmt: skip
    consent.decide(request.request_id, "owner", approve=True, clip_ids=[row["clip_id"]])
    bundle = Path(home.hub.exporter.build(request.request_id, "owner")["path"])
    result = run_verify(bundle, home.pki.path("ca.crt"))
    assert result.exit_code == 0 and "excerpt" not in result.output, result.output
    [clip] = unpack(bundle)[0]["clips"]
    assert "excerpt" not in clip and clip["sha256"] == clip["original_sha256"]


def test_a_clip_altered_on_the_hubs_disk_cannot_be_excerpted(trimmed):
    """The hub keeps each clip's signed GOP table beside it; a GOP changed on its disk
    afterwards (one byte) makes the export fail with the reason, not hand out a lie."""
    home, clip = trimmed.home, trimmed.clips[1]
    path = home.hub.clips.video(clip["clip_id"])
    assert home.hub.clips.gops(clip["clip_id"]).read_bytes().startswith(b"porch-gops/1\n")
    consent = home.hub.consent
    request = consent.file("requester", "Officer Dibble", "Ankh Police", "dibble@x",
                           "again", "voluntary", "", ["front-door"], clip["start_ts"] - 60,
                           clip["end_ts"] + 60)  # fmt: skip
    consent.decide(request.request_id, "owner", approve=True, clip_ids=[clip["clip_id"]],
                   trims={clip["clip_id"]: (2.0, 5.0)})  # fmt: skip
    original = path.read_bytes()
    frames = samples(original)
    altered = bytearray(original)
    offset, length, _ = frames[len(frames) // 2]  # a frame in the middle: inside the excerpt
    altered[offset + length // 2] ^= 0x04
    try:
        path.write_bytes(bytes(altered))
        with pytest.raises(ConsentError, match="is not the GOP the doorbell signed"):
            home.hub.exporter.build(request.request_id, "requester")
    finally:
        path.write_bytes(original)


def movie_path(data: bytes, *path: bytes) -> list[tuple[int, int]]:
    """(content start, end) of each box from moov down ``path``; the sample description's
    entries and the avc1 entry's boxes start after their fixed fields."""
    found = [next((s, e) for k, s, e in mp4_boxes(data) if k == b"moov")]
    for kind in path:
        start, end = found[-1]
        skip = {b"stsd": 8, b"avc1": 78}.get(data[start - 4 : start], 0)
        found.append(next((s, e) for k, s, e in mp4_boxes(data, start + skip, end) if k == kind))
    return found


def inserted(data: bytes, path: tuple[bytes, ...], box: bytes) -> bytes:
    """``box`` appended inside the last box of ``path`` (the moov follows the media data,
    so no sample moves), every enclosing box's size grown to match."""
    boxes = movie_path(data, *path)
    out = bytearray(data[: boxes[-1][1]] + box + data[boxes[-1][1] :])
    for start, _ in boxes:
        size = int.from_bytes(out[start - 8 : start - 4], "big")
        out[start - 8 : start - 4] = (size + len(box)).to_bytes(4, "big")
    return bytes(out)


AVC1 = (b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"avc1")


def stretch(what: str):
    def change(clip, path, members):
        data = bytearray(path.read_bytes())
        if what == "pasp 3:1":
            data = bytearray(inserted(bytes(data), AVC1, struct.pack(">I4sII", 16, b"pasp", 3, 1)))
        elif what == "clap":
            crop = struct.pack(">I4s8I", 40, b"clap", 320, 1, 180, 1, 0, 1, 0, 1)
            data = bytearray(inserted(bytes(data), AVC1, crop))
        elif what == "tkhd width x3":
            _, end = movie_path(bytes(data), b"trak", b"tkhd")[-1]
            width = int.from_bytes(data[end - 8 : end - 4], "big")
            data[end - 8 : end - 4] = (width * 3).to_bytes(4, "big")
        elif what == "avc1 size":
            start, _ = movie_path(bytes(data), *AVC1)[-1]
            data[start + 24 : start + 28] = struct.pack(">HH", 1920, 360)
        elif what == "mirrored":
            start, _ = movie_path(bytes(data), b"trak", b"tkhd")[-1]
            at = start + (52 if data[start] == 1 else 40)
            data[at : at + 4] = (-0x10000 & 0xFFFFFFFF).to_bytes(4, "big")
        path.write_bytes(bytes(data))

    change.__name__ = what
    return change


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        ("pasp 3:1", "carries [b'pasp']"),
        ("clap", "carries [b'clap']"),
        ("tkhd width x3", "is shown at 1920x360"),
        ("avc1 size", "says its picture is 1920x360"),
        ("mirrored", "turned or mirrored"),
    ],
)
def test_an_excerpt_stretched_or_squashed_in_its_movie_box_is_refused(trimmed, tmp_path, what,
                                                                       reason):  # fmt: skip
    """Only the moov rewritten, re-signed with the export key: the picture still decodes as
    the doorbell's 640x360, but a player would show it otherwise; porch verify refuses."""
    forged = resigned(trimmed, tmp_path, what.replace(" ", "-"), stretch(what))
    manifest, members = unpack(forged)
    with av.open(io.BytesIO(members[manifest["clips"][0]["file"]])) as shown:
        assert shown.streams.video[0].codec_context.width == 640, "the pictures are unchanged"
    result = run_verify(forged, trimmed.home.pki.path("ca.crt"))
    assert result.exit_code == 1 and reason in result.output, result.output
    done = run_check(check_script(tmp_path), forged, fingerprint(trimmed.home))
    # FFmpeg, like browsers, takes the size from the SPS and does not crop to a clap box:
    # they play those two as recorded; porch verify refuses any box Porch does not write.
    if what not in ("avc1 size", "clap"):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "not shown as the doorbell recorded it" in done.stdout, done.stdout


def box(kind: bytes, *parts: bytes) -> bytes:
    content = b"".join(parts)
    return struct.pack(">I4s", 8 + len(content), kind) + content


def replaced(data: bytes, path: tuple[bytes, ...], content: bytes) -> bytes:
    """The last box of ``path`` with new ``content``, every enclosing box resized."""
    boxes = movie_path(data, *path)
    start, end = boxes[-1]
    out = bytearray(data[:start] + content + data[end:])
    grown = len(content) - (end - start)
    for begin, _ in boxes:
        size = int.from_bytes(out[begin - 8 : begin - 4], "big")
        out[begin - 8 : begin - 4] = (size + grown).to_bytes(4, "big")
    return bytes(out)


def replay(plan: str):
    """Only the moov's sample table rewritten (the media data and its ranges untouched), so
    that the excerpt plays otherwise: a GOP left out, two GOPs swapped, one repeated, all
    at half speed; or a second track, a disabled track, a one-frame edit list."""

    def change(clip, path, members):
        data = path.read_bytes()
        track = read_track(data)
        table = parse_table(members[clip["excerpt"]["gops_file"]])
        span = range(clip["excerpt"]["first_gop"], clip["excerpt"]["last_gop"] + 1)
        counts = [table.gops[i].frames for i in span]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        gops = [list(range(s, s + n)) for s, n in zip(starts, counts, strict=True)]
        order = {"drop": [gops[0], *gops[2:]], "swap": [gops[1], gops[0], *gops[2:]],
                 "repeat": [gops[0], gops[0], *gops[1:]]}.get(plan, gops)  # fmt: skip
        picked = [i for gop in order for i in gop]
        step = 2 if plan == "slow" else 1
        keys = [at + 1 for at, i in enumerate(picked) if i in starts]
        stsd = next(data[s - 8 : e] for k, s, e in mp4_boxes(data, *movie_path(data, *AVC1[:4])[-1])
                    if k == b"stsd")  # fmt: skip
        n = len(picked)
        sizes, offsets = [track.sizes[i] for i in picked], [track.offsets[i] for i in picked]
        stbl = stsd + b"".join([
            box(b"stts", bytes(4), struct.pack(">III", 1, n, 6000 * step)),
            box(b"stss", bytes(4), struct.pack(f">I{len(keys)}I", len(keys), *keys)),
            box(b"stsc", bytes(4), struct.pack(">IIII", 1, 1, 1, 1)),
            box(b"stsz", bytes(4), struct.pack(f">II{n}I", 0, n, *sizes)),
            box(b"stco", bytes(4), struct.pack(f">I{n}I", n, *offsets)),
        ])  # fmt: skip
        if plan in ("drop", "swap", "repeat", "slow"):
            data = replaced(data, AVC1[:4], stbl)
        elif plan == "second track":
            trak = next(data[s - 8 : e] for k, s, e in mp4_boxes(data, *movie_path(data)[-1])
                        if k == b"trak")  # fmt: skip
            data = inserted(data, (), trak)
        elif plan == "disabled":
            start, _ = movie_path(data, b"trak", b"tkhd")[-1]
            data = data[: start + 3] + b"\x00" + data[start + 4 :]
        elif plan == "one-frame edit":
            elst = box(b"elst", bytes(4), struct.pack(">IIiI", 1, 67, 0, 0x10000))
            data = inserted(data, (b"trak",), box(b"edts", elst))
        path.write_bytes(data)

    change.__name__ = plan
    return change


@pytest.mark.parametrize(
    ("plan", "reason", "script_says"),
    [
        ("drop", "plays", "does not play GOP"),
        ("swap", "not in order", "does not play GOP"),
        ("repeat", "not in order", "does not play GOP"),
        ("slow", "other times than the doorbell recorded", "at other times"),
        ("second track", "other than one track", "not shown as the doorbell recorded"),
        ("disabled", "not enabled", "not shown as the doorbell recorded"),
        ("one-frame edit", "plays 16 frames", "does not play GOP"),
    ],
)
def test_an_excerpt_that_plays_otherwise_is_refused_by_verify_and_the_script(
    trimmed, tmp_path, plan, reason, script_says
):
    """Only the moov rewritten (the signed bytes where the ranges say) and re-signed with
    the export key: porch verify refuses it, and so does docs/verify.md's script, which
    reads how it plays with ffprobe; without ffprobe the script never says it checks out."""
    forged = resigned(trimmed, tmp_path, plan.replace(" ", "-"), replay(plan))
    result = run_verify(forged, trimmed.home.pki.path("ca.crt"))
    assert result.exit_code == 1 and reason in result.output, result.output
    script = check_script(tmp_path)
    done = run_check(script, forged, fingerprint(trimmed.home))
    assert done.returncode == 1 and script_says in done.stdout, done.stdout + done.stderr
    blind = run_check(script, forged, fingerprint(trimmed.home), without=("ffprobe",))
    assert blind.returncode == 3 and "checks out" not in blind.stdout, blind.stdout
    assert "NOT checked" in blind.stdout and "porch verify" in blind.stdout


def test_a_track_header_grown_to_hide_its_real_size_is_refused(trimmed, tmp_path):
    """The width tripled where players read it, and the true size appended after it, where
    a reader of 'the last eight bytes' would look: refused."""

    def grow(clip, path, members):
        data = path.read_bytes()
        start, end = movie_path(data, b"trak", b"tkhd")[-1]
        at = start + (88 if data[start] == 1 else 76)
        width = int.from_bytes(data[at : at + 4], "big")
        changed = data[:at] + (width * 3).to_bytes(4, "big") + data[at + 4 : end]
        path.write_bytes(replaced(data, (b"trak", b"tkhd"), changed[start:] + data[end - 8 : end]))

    forged = resigned(trimmed, tmp_path, "grown", grow)
    result = run_verify(forged, trimmed.home.pki.path("ca.crt"))
    assert result.exit_code == 1 and "track header" in result.output, result.output
