"""``porch verify BUNDLE.zip [--ca home-ca.pem]``: everything about a bundle, offline.

In order: the certificates chain to the home CA (the one given, or the bundle's own, whose
fingerprint is printed); the manifest's signature by the export key; every file's SHA-256;
every clip's capture signature by its device's key; every excerpt's GOPs against its
doorbell's signed GOP table, its frames playing exactly those bytes at the signed times, and
the span the manifest states; every clip inside the approved scope,
the approval inside the request; the zip holding exactly the manifest's members, in their
canonical order; and the zip byte for byte canonical. The first failure is the answer.

Without the home's CA (``--ca``), all of that is checked against the CA the bundle carries:
the bundle is then intact, but whether it comes from the home it claims is unproven, and the
result says so (:attr:`Verified.authenticated`; ``porch verify`` exits with 3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519

from porch.core.gops import GopError, parse_ranges, parse_table
from porch.hub.excerpt import check_excerpt
from porch.hub.export import credentials
from porch.hub.export.bundle import (
    FORMATS,
    SUMS,
    BundleError,
    canonical_names,
    check_canonical,
    member_bytes,
    open_bundle,
    sums_text,
)


@dataclass(frozen=True)
class Verified:
    bundle_id: str
    clips: int
    ca_fingerprint: str
    organisation: str
    credentials: int = 0
    """Clips whose C2PA Content Credentials were checked (bundles before them have none)."""
    authenticated: bool = False
    """The bundle's CA is the home CA given to the check: it comes from that home."""
    excerpts: int = 0
    """Clips that are excerpts of whole GOPs (porch-export/3)."""
    redacted: int = 0
    """Clips whose pictures the home redacted: the doorbell signed what they were made from."""


def _cert(data: bytes | memoryview, name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(bytes(data))
    except ValueError:
        raise BundleError(f"{name} is not a certificate") from None


def _issued_by(
    cert: x509.Certificate, ca: x509.Certificate, name: str, when: float, moment: str = "export"
) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise BundleError(f"{name} is not issued by the home CA") from None
    at = dt.datetime.fromtimestamp(when, dt.UTC)
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise BundleError(f"{name} was not valid at the time of {moment}")


def _ed25519(cert: x509.Certificate, name: str) -> ed25519.Ed25519PublicKey:
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BundleError(f"{name} does not hold an Ed25519 key")
    return key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key twice in one object")
    return dict(pairs)


def verify_bundle(path: Path, ca_pem: bytes | None = None) -> Verified:
    """Raises :class:`BundleError` with the first reason the bundle is not valid."""
    try:
        return _verify(path, ca_pem)
    except BundleError:
        raise
    except Exception as exc:  # a damaged zip can upset the zip reader in many ways
        raise BundleError(f"the bundle is damaged ({type(exc).__name__}: {exc})") from None


def _verify(path: Path, ca_pem: bytes | None) -> Verified:
    with open_bundle(path) as (archive, mapped):

        def read(name: str) -> memoryview:
            return member_bytes(archive, mapped, name)

        body = bytes(read("manifest.json"))
        try:
            manifest = json.loads(body, object_pairs_hook=_unique_keys)
        except ValueError as exc:
            raise BundleError(f"manifest.json is not JSON, or names a key twice ({exc})") from None
        if json.dumps(manifest, indent=1, sort_keys=True).encode() != body:
            raise BundleError("manifest.json is not laid out the one way Porch writes it")
        if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
            raise BundleError(f"manifest.json is not a {' or '.join(FORMATS)} manifest")
        try:
            return _check(manifest, body, read, archive, mapped, ca_pem)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"manifest.json is malformed ({type(exc).__name__}: {exc})") from None


def _check(manifest, body, read, archive, mapped, ca_pem) -> Verified:
    exported = float(manifest["exported_at"])
    if bytes(read("certs/ca.pem")).count(b"-----BEGIN CERTIFICATE-----") != 1:
        raise BundleError("certs/ca.pem must hold exactly one certificate")
    ca = _cert(read("certs/ca.pem"), "certs/ca.pem")
    if ca_pem is not None and _cert(ca_pem, "the given CA") != ca:
        raise BundleError("the bundle's CA is not the home CA given with --ca")
    try:
        ca.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise BundleError("certs/ca.pem is not a self-signed CA") from None

    export = _cert(read("certs/export.pem"), "certs/export.pem")
    _issued_by(export, ca, "certs/export.pem", exported)
    try:
        _ed25519(export, "certs/export.pem").verify(bytes(read("manifest.sig")), body)
    except InvalidSignature:
        raise BundleError(
            "manifest.sig is not the export key's signature of manifest.json"
        ) from None

    listed = {"manifest.json", "manifest.sig"}
    for name, digest in manifest["files"].items():
        if hashlib.sha256(read(name)).hexdigest() != digest:
            raise BundleError(f"{name} does not match its SHA-256 in the manifest")
        listed.add(name)

    request, approval = manifest["request"], manifest["approval"]
    scope = approval["scope"]
    if approval["decision"] != "approved":
        raise BundleError("the manifest records no approval")
    if not request["start_ts"] <= scope["start_ts"] <= scope["end_ts"] <= request["end_ts"]:
        raise BundleError("the approved window is not inside the requested one")
    if not set(scope["devices"]) <= set(request["devices"]):
        raise BundleError("the approval covers devices the request did not name")
    if not approval["decided_at"] <= exported <= approval["expires"]:
        raise BundleError("the bundle was exported outside the approval's lifetime")
    clips = manifest["clips"]
    if sorted(c["clip_id"] for c in clips) != sorted(scope["clip_ids"]):
        raise BundleError("the clips are not exactly the approved ones")

    redaction = approval.get("redaction") or {}
    redacting = bool(redaction.get("blur_faces") or redaction.get("boxes"))
    c2pa_serial = None
    if any("credentials" in clip for clip in clips):
        c2pa_cert = _cert(read("certs/c2pa.pem"), "certs/c2pa.pem")
        _issued_by(c2pa_cert, ca, "certs/c2pa.pem", exported)
        c2pa_serial = str(c2pa_cert.serial_number)
        listed.add("certs/c2pa.pem")
    device_keys: dict[str, ed25519.Ed25519PublicKey] = {}
    for clip in clips:
        clip_id, device = clip["clip_id"], clip["device_id"]
        if device not in scope["devices"]:
            raise BundleError(f"clip {clip_id} is from {device}, outside the approval")
        if not scope["start_ts"] <= clip["start_ts"] <= clip["end_ts"] <= scope["end_ts"]:
            raise BundleError(f"clip {clip_id} lies outside the approved window")
        if hashlib.sha256(read(clip["file"])).hexdigest() != clip["sha256"]:
            raise BundleError(f"{clip['file']} does not match its SHA-256 in the manifest")
        if clip.get("redaction") and not redacting:
            raise BundleError(f"clip {clip_id} says it was redacted; the approval asked for none")
        if (
            "excerpt" not in clip
            and not clip.get("redaction")
            and clip["sha256"] != clip["original_sha256"]
        ):
            raise BundleError(f"clip {clip_id} is not the original and says no redaction")
        if device not in device_keys:
            name = f"certs/device-{device}.pem"
            cert = _cert(read(name), name)
            _issued_by(cert, ca, name, float(clip["start_ts"]), "capture")
            common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            if not common or common[0].value != device:
                raise BundleError(f"{name} is not {device}'s certificate")
            device_keys[device] = _ed25519(cert, name)
            listed.add(name)
        signature = bytes(read(clip["signature_file"]))
        if signature.hex() != clip["device_signature"]:
            raise BundleError(f"{clip['signature_file']} is not the signature in the manifest")
        try:
            device_keys[device].verify(signature, bytes.fromhex(clip["original_sha256"]))
        except InvalidSignature:
            raise BundleError(
                f"clip {clip_id} does not carry {device}'s capture signature"
            ) from None
        if bytes(read(clip["digest_file"])).hex() != clip["original_sha256"]:
            raise BundleError(f"{clip['digest_file']} is not the original's SHA-256")
        listed |= {clip["file"], clip["signature_file"], clip["digest_file"]}
        if "excerpt" in clip:
            listed |= _check_excerpt(clip, read)
        if manifest["format"] != "porch-export/1":
            if bytes(read(clip["device_file"])) != device.encode():
                raise BundleError(f"{clip['device_file']} does not name {device}")
            listed.add(clip["device_file"])
        if "credentials" in clip:
            listed |= _check_credentials(clip, read, bytes(read("certs/ca.pem")), c2pa_serial)

    extra = sorted(set(archive.namelist()) - listed)
    if extra:
        raise BundleError(f"{extra[0]} is in the zip but not in the manifest")
    if len(archive.namelist()) != len(set(archive.namelist())):
        raise BundleError("the zip holds a file twice")
    _check_layout(manifest, archive.namelist())
    if manifest["format"] != "porch-export/1":
        _check_sums(manifest, read)
    check_canonical(archive, mapped)
    return Verified(
        bundle_id=manifest["bundle_id"],
        clips=len(clips),
        ca_fingerprint=ca.fingerprint(hashes.SHA256()).hex(),
        organisation=request.get("organisation", ""),
        credentials=sum("credentials" in clip for clip in clips),
        authenticated=ca_pem is not None,
        excerpts=sum("excerpt" in clip and not clip.get("redaction") for clip in clips),
        redacted=sum(bool(clip.get("redaction")) for clip in clips),
    )


def _check_excerpt(clip: dict, read) -> set[str]:
    """An excerpt: its GOP table is the one the device signed (clips/ID.digest, checked
    above), about this clip; the span the manifest states is the one its GOPs show; and,
    unless redacted, its file holds exactly those GOPs' signed bytes, played at the signed
    times. Returns the members it used."""
    clip_id, excerpt = clip["clip_id"], clip["excerpt"]
    text = bytes(read(excerpt["gops_file"]))
    if hashlib.sha256(text).hexdigest() != clip["original_sha256"]:
        raise BundleError(f"clip {clip_id}'s GOP table is not the one its device signed")
    try:
        table = parse_table(text)
    except GopError as exc:
        raise BundleError(f"clip {clip_id}'s GOP table: {exc}") from None
    if (table.device_id, table.clip_id) != (clip["device_id"], clip_id):
        raise BundleError(f"clip {clip_id}'s GOP table is about another clip")
    first, last = excerpt["first_gop"], excerpt["last_gop"]
    if not 0 <= first <= last < len(table.gops) or excerpt["gops"] != len(table.gops):
        raise BundleError(f"clip {clip_id}'s excerpt names GOPs its table does not list")
    if excerpt["complete"] != table.complete:
        raise BundleError(f"clip {clip_id}'s excerpt misstates whether the clip was whole")
    start, end = table.span_s(first, last)
    origin = table.start_us / 1e6
    stated = (clip["start_ts"] - origin, clip["end_ts"] - origin)
    if (
        excerpt["span_s"] != [start, end]
        or max(abs(stated[0] - start), abs(stated[1] - end)) > 1e-3
    ):
        raise BundleError(
            f"clip {clip_id}'s excerpt is said to show other seconds than its GOPs do"
        )
    used = {excerpt["gops_file"]}
    if "ranges_file" not in excerpt:
        if not clip.get("redaction"):
            raise BundleError(f"clip {clip_id} is an excerpt without its GOPs' places")
        return used
    try:
        ranges = parse_ranges(bytes(read(excerpt["ranges_file"])))
        check_excerpt(bytes(read(clip["file"])), table, ranges)
        if [r[0] for r in ranges] != list(range(first, last + 1)):
            raise GopError("its GOPs are not the ones the manifest names")
    except GopError as exc:
        raise BundleError(f"clip {clip_id}'s excerpt: {exc}") from None
    return used | {excerpt["ranges_file"]}


def _check_sums(manifest: dict, read) -> None:
    """SHA256SUMS lists every member after it with its own SHA-256 (the files' hashes were
    checked against the manifest above; the small ones are hashed here)."""
    clips = {clip["file"]: clip["sha256"] for clip in manifest["clips"]}
    expected = []
    for name in canonical_names(manifest)[2:]:
        if name == SUMS:
            continue
        digest = manifest["files"].get(name) or clips.get(name)
        expected.append((digest or hashlib.sha256(read(name)).hexdigest(), name))
    if bytes(read(SUMS)) != sums_text(expected):
        raise BundleError(f"{SUMS} does not list every file with its own SHA-256")


def _check_layout(manifest: dict, names: list[str]) -> None:
    """The zip holds exactly the manifest's members, in the canonical order."""
    expected = canonical_names(manifest)
    if "members" in manifest and manifest["members"] != expected:
        raise BundleError("the manifest's member list is not the canonical one")
    if names != expected:
        pairs = zip(names, expected, strict=False)
        at = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(names), len(expected)))
        found = names[at] if at < len(names) else "the end"
        wanted = expected[at] if at < len(expected) else "the end"
        raise BundleError(
            f"the zip's members are not in the canonical order: member {at + 1} is {found},"
            f" where {wanted} belongs"
        )


def _check_credentials(clip: dict, read, ca_pem: bytes, serial: str | None) -> set[str]:
    """A clip's Content Credentials: valid C2PA, signed with certs/c2pa.pem under the home
    CA, about this clip. Returns the members they used."""
    clip_id, sidecar, used = clip["clip_id"], None, set()
    if clip["credentials"] != "embedded":
        name = clip["credentials"]
        sidecar = bytes(read(name))
        if hashlib.sha256(sidecar).hexdigest() != clip["credentials_sha256"]:
            raise BundleError(f"{name} does not match its SHA-256 in the manifest")
        used.add(name)
    elif not clip.get("redaction"):
        raise BundleError(f"clip {clip_id} is an original with credentials embedded in it")
    try:
        found = credentials.read(read(clip["file"]), ca_pem, sidecar)
    except credentials.CredentialsError as exc:
        raise BundleError(f"clip {clip_id}: {exc}") from None
    if found.state != "Trusted" or found.serial != serial:
        raise BundleError(f"clip {clip_id}'s Content Credentials are not signed by certs/c2pa.pem")
    export = found.export
    if export.get("clip_id") != clip_id or export.get("original_sha256") != clip["original_sha256"]:
        raise BundleError(f"clip {clip_id}'s Content Credentials are about another clip")
    return used
