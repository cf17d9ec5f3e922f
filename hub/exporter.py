"""Builds an export bundle from a recorded, unexpired approval: there is no other way.

Every clip must carry its device's capture signature and still hash to what the device
signed; redaction (face blur, owner's boxes) makes a new file whose manifest entry keeps the
original's SHA-256 and says what was done. The manifest is signed with the hub's export key
and the bundle is recorded and audited.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from porch.core.wire import ClipMeta
from porch.hub.clipstore import HubClipStore
from porch.hub.consent import Consent, ConsentError
from porch.hub.export import credentials
from porch.hub.export.bundle import FORMAT, build_bundle
from porch.hub.export.redact import Box, redact
from porch.provisioning.authority import HomeAuthority

REDACT_WEIGHT = 8
"""Redacting a byte of footage (decode, find faces, blur, encode) against zipping it."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class Exporter:
    def __init__(
        self, consent: Consent, clips: HubClipStore, authority: HomeAuthority | None, root: Path
    ):
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
        pki, registry = self.authority.pki, self.authority.registry
        chain, key = pki.content_credentials()
        work = self.root / f".{bundle_id}"
        work.mkdir(mode=0o700)
        try:
            entries, files, device_ids = [], [], set()
            rows = self.consent.matching_clips(request, scope["start_ts"], scope["end_ts"])
            chosen = [row for row in rows if row["clip_id"] in set(scope["clip_ids"])]
            if len(chosen) != len(scope["clip_ids"]):
                raise ConsentError("an approved clip is no longer on the hub", 410)
            # Progress by bytes of footage: redacting one costs about REDACT_WEIGHT times
            # writing it into the zip.
            sizes = [self.clips.video(row["clip_id"]).stat().st_size for row in chosen]
            total = sum(sizes) * ((REDACT_WEIGHT if redacting else 0) + 1) or 1
            done = 0.0
            for row, size in zip(chosen, sizes, strict=True):
                meta = ClipMeta.model_validate_json(row["meta"])
                original = meta.plain_sha256 or meta.sha256
                if not meta.signature:
                    raise ConsentError(
                        f"clip {meta.clip_id} carries no capture signature (its device was not"
                        " enrolled): it cannot be exported verifiably", 409)  # fmt: skip
                path = self.clips.video(meta.clip_id)
                if file_sha256(path) != original:
                    raise ConsentError(f"clip {meta.clip_id} changed on the hub's disk", 500)
                entry = {"clip_id": meta.clip_id, "device_id": meta.device_id,
                         "start_ts": meta.start_ts, "end_ts": meta.end_ts,
                         "original_sha256": original, "device_signature": meta.signature,
                         "redaction": None}  # fmt: skip
                story = credentials.ClipStory(
                    clip_id=meta.clip_id, device_id=meta.device_id, start_ts=meta.start_ts,
                    original_sha256=original, device_signature=meta.signature,
                    exported_at=exported_at, request=request.public(),
                    approved_by=decision["decided_by"], approved_at=decision["decided_at"],
                    redaction=None)  # fmt: skip
                sidecar = None
                if redacting:
                    target = work / f"{meta.clip_id}.mp4"
                    base = done
                    report = redact(path, target, redaction["blur_faces"], boxes,
                                    lambda f, b=base, s=size: progress((b + f * s * REDACT_WEIGHT)
                                                                       / total))  # fmt: skip
                    done += size * REDACT_WEIGHT
                    entry["redaction"] = report.summary()
                    story = replace(story, redaction=report.description())
                    credentials.embed(target, path, story, chain, key)
                    path = target
                else:
                    sidecar = credentials.sidecar(path, story, chain, key)
                entries.append(entry)
                files.append((meta.clip_id, path, bytes.fromhex(meta.signature), sidecar))
                device_ids.add(meta.device_id)
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
                "request": request.public(),
                "approval": {
                    k: decision[k]
                    for k in (
                        "decision",
                        "decided_by",
                        "decided_at",
                        "expires",
                        "scope",
                        "redaction",
                    )
                },
                "clips": entries,
            }
            partial = work / "bundle.zip"
            written = [done]

            def wrote(count: int) -> None:
                written[0] += count
                progress(min(1.0, written[0] / total))

            digest = build_bundle(partial, manifest, certs, files, pki.export_key().sign, wrote)
            final = self.root / f"{bundle_id}.zip"
            os.replace(partial, final)
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
