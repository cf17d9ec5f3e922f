"""Content Credentials (C2PA) on exported clips, so that standard C2PA tools show where a
clip comes from, who approved its export and what was done to it.

Signed with the hub's export key under a certificate from the home CA (see
:meth:`~porch.provisioning.pki.Pki.content_credentials`); no time-stamp authority is asked
(that would be a request to another host), so the signing time is the claim's own.

* An original clip keeps its bytes: they are what the doorbell signed at capture, and
  embedding a manifest rewrites the MP4's chunk offsets. Its credentials go beside it, as a
  C2PA sidecar (``clips/ID.c2pa``): created by the doorbell (a digital capture), published
  by the home with the owner's approval.
* A redacted clip is a new file anyway: its credentials are embedded, with the original as
  its parent ingredient and the redaction as a filter action.
* An excerpt (whole GOPs of a clip, copied byte for byte) keeps the bytes the doorbell
  signed GOP by GOP: its credentials go beside it, with the original clip as its parent
  ingredient and the trim as an edit action.

Both carry an ``org.porch.export`` assertion: the request, the approval, and the
original's capture hash and signature.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path

import c2pa

from porch.core import __version__

MIME = "video/mp4"
DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
PORCH_ASSERTION = "org.porch.export"
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


class CredentialsError(Exception):
    """Content Credentials that are missing, damaged or not the home's."""


@dataclass(frozen=True)
class ClipStory:
    """What the credentials of one exported clip say."""

    clip_id: str
    device_id: str
    start_ts: float
    original_sha256: str
    device_signature: str
    exported_at: float
    request: dict
    approved_by: str
    approved_at: float
    redaction: str | None
    """What was done (the redaction summary), or None for the original."""
    trim: str | None = None
    """Which part of the original an excerpt is, or None for the whole clip."""

    def _actions(self) -> list[dict]:
        published = {
            "action": "c2pa.published",
            "when": _iso(self.exported_at),
            "description": f"exported from a Porch home with its owner's approval, for"
            f" {self.request.get('organisation') or 'a requester'}",
        }
        if self.redaction is None and self.trim is None:
            created = {
                "action": "c2pa.created",
                "digitalSourceType": DIGITAL_CAPTURE,
                "when": _iso(self.start_ts),
                "softwareAgent": {"name": "Porch doorbell", "version": __version__},
                "description": f"recorded by the doorbell {self.device_id}",
            }
            return [created, published]
        opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["original"]}}
        actions = [opened]
        if self.trim is not None:
            actions.append({"action": "c2pa.edited", "when": _iso(self.exported_at),
                            "description": self.trim})  # fmt: skip
        if self.redaction is not None:
            actions.append({"action": "c2pa.filtered", "when": _iso(self.exported_at),
                            "description": self.redaction})  # fmt: skip
        return [*actions, published]

    def manifest(self) -> dict:
        export = {
            "clip_id": self.clip_id,
            "device_id": self.device_id,
            "original_sha256": self.original_sha256,
            "device_signature": self.device_signature,
            "request_id": self.request.get("request_id"),
            "organisation": self.request.get("organisation"),
            "legal_basis": self.request.get("legal_basis"),
            "reference": self.request.get("reference"),
            "approved_by": self.approved_by,
            "approved_at": _iso(self.approved_at),
        }
        return {
            "claim_generator_info": [{"name": "Porch", "version": __version__}],
            "title": f"{self.clip_id}.mp4",
            "format": MIME,
            "assertions": [
                {"label": "c2pa.actions.v2", "data": {"actions": self._actions()}},
                {"label": PORCH_ASSERTION, "data": export},
            ],
        }


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _offline(**more) -> c2pa.Context:
    """C2PA settings that never fetch anything (remote manifests, OCSP)."""
    return c2pa.Context.from_dict({**_OFFLINE, **more})


def _signer(chain: bytes, key: bytes) -> c2pa.Signer:
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"ed25519", chain, key, None))


def sidecar(
    original: Path | bytes, story: ClipStory, chain: bytes, key: bytes, parent: Path | None = None
) -> bytes:
    """The C2PA manifest store for an original clip or an excerpt (its file, or its bytes
    already read), to keep beside it (the clip is not touched). ``parent``: the clip an
    excerpt was cut from."""
    with (
        _offline() as context,
        c2pa.Builder(story.manifest(), context=context) as builder,
        _signer(chain, key) as signer,
        io.BytesIO(original) if isinstance(original, bytes) else open(original, "rb") as source,
    ):
        if parent is not None:
            _add_parent(builder, parent, story)
        builder.set_no_embed()
        manifest = builder.sign(signer, MIME, source, io.BytesIO())
    if not manifest:
        raise CredentialsError(f"C2PA gave no sidecar for clip {story.clip_id}")
    return bytes(manifest)


def embed(redacted: Path, original: Path, story: ClipStory, chain: bytes, key: bytes) -> None:
    """Embed credentials in a redacted clip (in place), the original as its parent."""
    signed = redacted.with_name(redacted.name + ".c2pa.partial")
    with (
        _offline() as context,
        c2pa.Builder(story.manifest(), context=context) as builder,
        _signer(chain, key) as signer,
    ):
        _add_parent(builder, original, story)
        with open(redacted, "rb") as source, open(signed, "w+b") as dest:
            builder.sign(signer, MIME, source, dest)
    os.replace(signed, redacted)


def _add_parent(builder: c2pa.Builder, original: Path, story: ClipStory) -> None:
    with open(original, "rb") as parent:
        builder.add_ingredient(
            {"title": f"{story.clip_id} (original).mp4", "relationship": "parentOf",
             "label": "original"}, MIME, parent)  # fmt: skip


@dataclass(frozen=True)
class Credentials:
    state: str
    """C2PA's verdict: 'Trusted' when signed under the given CA."""
    signer: str
    serial: str
    """The signing certificate's serial number, decimal."""
    export: dict
    """The ``org.porch.export`` assertion."""
    actions: list[str]


def read(clip: bytes | memoryview, ca_pem: bytes, manifest: bytes | None = None) -> Credentials:
    """Validate a clip's credentials (embedded, or the given sidecar) against the home CA."""
    try:
        with (
            _offline(trust={"trust_anchors": ca_pem.decode()}) as context,
            c2pa.Reader(MIME, io.BytesIO(clip), manifest_data=manifest, context=context) as reader,
        ):
            state = reader.get_validation_state() or ""
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        raise CredentialsError(f"no readable Content Credentials ({exc})") from None
    failures = results.get("activeManifest", {}).get("failure", [])
    if failures:
        raise CredentialsError(f"Content Credentials fail: {failures[0].get('explanation')}")
    assertions = {a["label"]: a["data"] for a in active.get("assertions", [])}
    if PORCH_ASSERTION not in assertions:
        raise CredentialsError("Content Credentials without Porch's export assertion")
    actions = assertions.get("c2pa.actions.v2", {}).get("actions", [])
    info = active.get("signature_info", {})
    return Credentials(
        state,
        info.get("common_name", ""),
        str(info.get("cert_serial_number", "")),
        assertions[PORCH_ASSERTION],
        [a["action"] for a in actions],
    )
