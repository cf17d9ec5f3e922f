"""Builds an export bundle from a recorded, unexpired approval: there is no other way.

Every clip must carry its device's capture signature and still hash to what the device
signed; redaction (face blur, owner's boxes) makes a new file whose manifest entry keeps the
original's SHA-256 and says what was done. A trimmed clip (and a clip a doorbell's crash cut
short, which has no whole-clip signature) leaves as an excerpt of whole GOPs, copied
without re-muxing or re-encoding, with the doorbell's signed GOP table and where each GOP
lies in the file (:mod:`porch.core.gops`). The manifest is signed with the hub's export key and the
bundle is recorded and audited.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from porch.core.fsutil import sha256_file
from porch.core.gops import GopError, parse_table, ranges_text
from porch.core.wire import ClipMeta
from porch.hub.clipstore import HubClipStore
from porch.hub.consent import Consent, ConsentError
from porch.hub.excerpt import check_seal, cut, header_of, table_from_mp4
from porch.hub.export import credentials
from porch.hub.export.bundle import FORMAT, ClipFile, build_bundle
from porch.hub.export.redact import Box, redact
from porch.provisioning.authority import HomeAuthority

REDACT_WEIGHT = 8
"""Redacting a byte of footage (decode, find faces, blur, encode) against zipping it."""
T = TypeVar("T")
IN_MEMORY_BYTES = 64 * 1024 * 1024
MAX_WORKERS = 4
"""Clips prepared at once (checked, redacted or credentialed), at most one per core."""


def credential_clip(
    path: Path,
    original: str,
    signature: bytes,
    story: credentials.ClipStory,
    chain: bytes,
    key: bytes,
) -> ClipFile:
    """An original clip for a bundle: checked against the SHA-256 its device signed, and
    given its Content Credentials as a sidecar. A clip of up to IN_MEMORY_BYTES is read
    once for both (C2PA reads from memory faster than through a file)."""
    small = path.stat().st_size <= IN_MEMORY_BYTES
    source: Path | bytes = path.read_bytes() if small else path
    digest = hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else sha256_file(path)
    if digest != original:
        raise ConsentError(f"clip {story.clip_id} changed on the hub's disk", 500)
    sidecar = credentials.sidecar(source, story, chain, key)
    return ClipFile(story.clip_id, path, signature, sidecar, original)


def excerpt_of(
    meta: ClipMeta, path: Path, gops: Path, target: Path, trim: list[float] | None, signer
) -> tuple[dict, bytes, bytes]:
    """The whole GOPs of a stored clip that show seconds ``trim`` (None: all of them),
    written to ``target`` without re-encoding. ``gops``: the table the hub kept when the
    clip arrived (made again from the video when it is missing). Returns the manifest's
    ``excerpt`` entry (without member names), the signed GOP table and the excerpt's ranges
    file. The excerpt's bytes are checked against the signed table."""
    seal = meta.gops
    if seal is None or not seal.signature:
        raise ConsentError(
            f"clip {meta.clip_id} carries no signed GOP table: it cannot be trimmed", 409
        )
    try:
        if gops.exists():
            table = parse_table(gops.read_bytes())
        else:
            table = table_from_mp4(path, header_of(meta), seal.complete, seal.count)
        if (table.device_id, table.clip_id) != (meta.device_id, meta.clip_id):
            raise GopError("the kept GOP table is another clip's")
        check_seal(table, seal, signer)
        first, last = table.covering(*trim) if trim else (0, len(table.gops) - 1)
        ranges = cut(path, target, table, first, last, (meta.width, meta.height))
    except GopError as exc:
        raise ConsentError(f"clip {meta.clip_id} cannot be excerpted: {exc}", 500) from None
    start, end = table.span_s(first, last)
    entry = {
        "first_gop": first,
        "last_gop": last,
        "gops": len(table.gops),
        "complete": table.complete,
        "span_s": [start, end],
        "requested_s": trim,
        "gops_sha256": table.sha256(),
        "clip_sha256": meta.plain_sha256 or (meta.sha256 if meta.container == "mp4" else None),
    }
    return entry, table.text(), ranges_text(ranges)


def signing_key(cert_pem: str | None):
    """A device's capture-signing key from its certificate (valid for clips signed before
    a revocation too)."""
    return x509.load_pem_x509_certificate(cert_pem.encode()).public_key() if cert_pem else None


def in_parallel(function: Callable[..., T], *columns: list) -> list[T]:
    """``function`` over the rows of ``columns`` on up to MAX_WORKERS threads, in order (the
    work releases the GIL: hashing, C2PA, decoding and encoding), the first error raised."""
    workers = max(1, min(len(columns[0]), os.cpu_count() or 1, MAX_WORKERS))
    with ThreadPoolExecutor(workers, thread_name_prefix="export") as pool:
        return list(pool.map(function, *columns))


class _Progress:
    """Progress of a build from several threads, as the fraction of ``total`` units done."""

    def __init__(self, report: Callable[[float], None], total: float):
        self._report, self._total, self._done = report, total, 0.0
        self._lock = threading.Lock()

    def add(self, units: float) -> None:
        with self._lock:
            self._done += units
            fraction = min(1.0, self._done / self._total)
        self._report(fraction)

    def share(self, units: float) -> Callable[[float], None]:
        """A callback for one part of ``units``, taking the fraction of that part done."""
        last = [0.0]

        def done(fraction: float) -> None:
            self.add((fraction - last[0]) * units)
            last[0] = fraction

        return done


def told_of(request, decision: dict) -> tuple[dict, dict]:
    """What a bundle says of the request and the approval. For an area request, nothing
    of the home beyond what the owner sends: not who approved (a login name), not the
    doorbells left out, not the hub's own ids; the request is named by the agency's id."""
    keys = ("decision", "decided_by", "decided_at", "expires", "scope", "redaction")
    approval = {key: decision[key] for key in keys}
    public = request.public()
    if request.from_area:
        public.pop("filed_by")
        public["request_id"] = request.origin["area_request_id"]
        public["devices"] = list(decision["scope"]["devices"])
        approval["decided_by"] = "the owner"
    return public, approval


class Exporter:
    def __init__(
        self,
        consent: Consent,
        clips: HubClipStore,
        authority: HomeAuthority | None,
        root: Path,
        models: Path | None = None,
    ):
        self.models = models
        """Where CenterFace's model is (``people.models_dir``), for the face blur."""
        self.consent = consent
        self.clips = clips
        self.authority = authority
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)

    def build(
        self, request_id: str, actor: str, progress: Callable[[float], None] | None = None
    ) -> dict:
        """The bundle of an approved request (built once; later calls return it). One lock
        file makes builds one at a time and once, across processes too (the hub's builder,
        ``porch export build``). ``progress`` gets the fraction done, 0 to 1."""
        with open(self.root / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._build(request_id, actor, progress or (lambda _: None))

    def _build(self, request_id: str, actor: str, progress: Callable[[float], None]) -> dict:
        request = self.consent.get(request_id)
        if request is None:
            raise ConsentError("no such request", 404)
        if request.state != "approved":
            raise ConsentError(f"nothing to export: the request is {request.status}", 409)
        if not request.approval_live:
            raise ConsentError("the approval has expired: nothing is exported", 410)
        existing = self.consent.bundle(request_id)
        if existing and Path(existing["path"]).exists():
            return existing
        if self.authority is None:
            raise ConsentError("exports need the home CA: run 'porch provision init'", 409)
        decision = request.decision
        scope, redaction = decision["scope"], decision["redaction"]
        boxes = [Box(**b) for b in redaction["boxes"]]
        redacting = redaction["blur_faces"] or bool(boxes)
        bundle_id = secrets.token_hex(8)
        exported_at = time.time()
        public, approval = told_of(request, decision)
        pki, registry = self.authority.pki, self.authority.registry
        chain, key = pki.content_credentials()
        work = self.root / f".{bundle_id}"
        work.mkdir(mode=0o700)
        try:
            rows = self.consent.matching_clips(request, scope["start_ts"], scope["end_ts"])
            chosen = [row for row in rows if row["clip_id"] in set(scope["clip_ids"])]
            if len(chosen) != len(scope["clip_ids"]):
                raise ConsentError("an approved clip is no longer on the hub", 410)
            # Progress by bytes of footage: redacting one costs about REDACT_WEIGHT times
            # writing it into the zip.
            sizes = [self.clips.video(row["clip_id"]).stat().st_size for row in chosen]
            total = sum(sizes) * ((REDACT_WEIGHT if redacting else 0) + 1) or 1
            counted = _Progress(progress, total)
            story = partial(
                credentials.ClipStory, exported_at=exported_at, request=public,
                approved_by=approval["decided_by"], approved_at=decision["decided_at"],
                redaction=None,
            )  # fmt: skip

            trims = decision.get("trims") or {}

            def prepare(row: dict, size: int) -> tuple[dict, ClipFile]:
                """One clip: checked against its signature's hash, excerpted, redacted or
                given its Content Credentials (one worker thread each; hashing, C2PA and
                coding release the GIL, so clips are prepared in parallel)."""
                meta = ClipMeta.model_validate_json(row["meta"])
                trim = trims.get(meta.clip_id)
                if trim is not None or not meta.signature:
                    return prepare_excerpt(meta, trim, size)
                original = meta.plain_sha256 or meta.sha256
                path = self.clips.video(meta.clip_id)
                entry = {"clip_id": meta.clip_id, "device_id": meta.device_id,
                         "start_ts": meta.start_ts, "end_ts": meta.end_ts,
                         "original_sha256": original, "device_signature": meta.signature,
                         "redaction": None}  # fmt: skip
                told = story(clip_id=meta.clip_id, device_id=meta.device_id,
                             start_ts=meta.start_ts, original_sha256=original,
                             device_signature=meta.signature)  # fmt: skip
                signature = bytes.fromhex(meta.signature)
                if not redacting:
                    return entry, credential_clip(path, original, signature, told, chain, key)
                if sha256_file(path) != original:
                    raise ConsentError(f"clip {meta.clip_id} changed on the hub's disk", 500)
                return entry, redacted(path, path, entry, told, signature, size)

            def redacted(source: Path, original: Path, entry: dict, told, signature: bytes,
                         size: int, table: bytes | None = None) -> ClipFile:  # fmt: skip
                """A redacted copy of ``source`` (the clip, or an excerpt of ``original``),
                its credentials embedded; ``entry`` says what was done."""
                target = work / f"{entry['clip_id']}.mp4"
                done = counted.share(size * REDACT_WEIGHT)
                report = redact(source, target, redaction["blur_faces"], boxes, done,
                                models=self.models)  # fmt: skip
                entry["redaction"] = report.summary()
                told = replace(told, redaction=report.description())
                credentials.embed(target, original, told, chain, key)
                return ClipFile(entry["clip_id"], target, signature, None, None, table)

            def prepare_excerpt(
                meta: ClipMeta, trim: list[float] | None, size: int
            ) -> tuple[dict, ClipFile]:
                """A trimmed clip, or one with only GOP proofs: an excerpt of whole GOPs,
                then redacted or given its Content Credentials like an original."""
                path = self.clips.video(meta.clip_id)
                signer = signing_key(registry.sign_cert(meta.device_id))
                target = work / f"{meta.clip_id}.excerpt.mp4"
                gops = self.clips.gops(meta.clip_id)
                excerpt, table, ranges = excerpt_of(meta, path, gops, target, trim, signer)
                assert meta.gops is not None and meta.gops.signature
                start, end = excerpt["span_s"]
                entry = {"clip_id": meta.clip_id, "device_id": meta.device_id,
                         "start_ts": meta.start_ts + start, "end_ts": meta.start_ts + end,
                         "original_sha256": excerpt["gops_sha256"],
                         "device_signature": meta.gops.signature, "redaction": None,
                         "excerpt": excerpt}  # fmt: skip
                trimmed = (
                    f"trimmed to seconds {start:.2f}-{end:.2f} of the clip (whole GOPs"
                    f" {excerpt['first_gop']}-{excerpt['last_gop']} of {excerpt['gops']},"
                    " copied, not re-muxed or re-encoded)"
                )
                told = story(clip_id=meta.clip_id, device_id=meta.device_id,
                             start_ts=meta.start_ts + start,
                             original_sha256=excerpt["gops_sha256"],
                             device_signature=meta.gops.signature, trim=trimmed)  # fmt: skip
                signature = bytes.fromhex(meta.gops.signature)
                if not redacting:
                    sidecar = credentials.sidecar(target, told, chain, key, parent=path)
                    clip = ClipFile(meta.clip_id, target, signature, sidecar, None, table, ranges)
                    return entry, clip
                return entry, redacted(target, path, entry, told, signature, size, table)

            prepared = in_parallel(prepare, chosen, sizes)
            entries = [entry for entry, _ in prepared]
            files = [clip for _, clip in prepared]
            device_ids = {entry["device_id"] for entry in entries}
            certs = {
                "certs/ca.pem": pki.path("ca.crt").read_bytes(),
                "certs/export.pem": pki.path("export.crt").read_bytes(),
                "certs/c2pa.pem": pki.path("c2pa.crt").read_bytes(),
            }
            for device in sorted(device_ids):
                cert = registry.sign_cert(device)
                if cert is None:
                    raise ConsentError(f"{device} has no signing certificate", 409)
                certs[f"certs/device-{device}.pem"] = cert.encode()
            manifest = {
                "format": FORMAT,
                "bundle_id": bundle_id,
                "exported_at": exported_at,
                "home_ca_sha256": pki.cert("ca.crt").fingerprint(hashes.SHA256()).hex(),
                "request": public,
                "approval": approval,
                "clips": entries,
            }
            partial_zip = work / "bundle.zip"
            digest = build_bundle(
                partial_zip, manifest, certs, files, pki.export_key().sign, counted.add
            )
            final = self.root / f"{bundle_id}.zip"
            os.replace(partial_zip, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        size = final.stat().st_size
        self.consent.record_bundle(request_id, bundle_id, str(final), digest, size)
        self.consent.audit.append(actor, "export", request_id,
                                  {"bundle_id": bundle_id, "sha256": digest, "bytes": size,
                                   "clips": scope["clip_ids"]})  # fmt: skip
        bundle = self.consent.bundle(request_id)
        assert bundle is not None
        return bundle
