"""Export bundles: a zip anyone can check offline, without trusting Porch.

Members, in this order::

    manifest.json          the request, the approval, every clip and every other file's SHA-256
    manifest.sig           Ed25519 signature of manifest.json by the hub's export key (raw)
    VERIFY.txt             how to check it
    certs/ca.pem           the home CA
    certs/export.pem       the export key's certificate, issued by the CA
    certs/c2pa.pem         the export key's certificate for Content Credentials (C2PA)
    certs/device-ID.pem    each device's capture-signing key, issued by the CA
    clips/CLIP.mp4         the clips (originals, excerpts, or redacted versions with C2PA
                           embedded)
    clips/CLIP.c2pa        an original's or excerpt's Content Credentials, beside it (sidecar)
    clips/CLIP.sig         the device's capture-time signature of CLIP.digest (raw)
    clips/CLIP.digest      what the device signed, raw: the original's SHA-256, or for an
                           excerpt the SHA-256 of its GOP table
    clips/CLIP.device      the device's name
    clips/CLIP.gops        an excerpt's GOP table, as the device signed it (porch.core.gops)
    clips/CLIP.ranges      where each GOP of an unredacted excerpt lies in CLIP.mp4

The zip itself is canonical: stored (no compression), fixed timestamps and attributes, no
extra fields, so it is a pure function of its members. :func:`verify_bundle` checks every
member and then that the zip is byte for byte the canonical zip of those members: a flipped
byte anywhere, in a member or in the zip's own structure, fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

FORMAT = "porch-export/3"
"""/3 may hold excerpts (a clip's entry has ``excerpt``; members CLIP.gops, CLIP.ranges);
/2 lists every member of the zip, in order, in the signed manifest ("members");
/1 bundles (without it) still verify, their order derived the same way."""
FORMATS = ("porch-export/1", "porch-export/2", FORMAT)
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
COPY_BYTES = 1024 * 1024

VERIFY_TEXT = """This is an export from a Porch video doorbell, made with its owner's approval.

Check it offline, with Porch:   porch verify THIS.zip --ca home-ca.pem
or with openssl, sha256sum and unzip alone (check-bundle.sh in docs/verify.md of Porch's
source), given the home CA's SHA-256 fingerprint, which the home gives you by another way:
  1. certs/ca.pem's SHA-256 fingerprint is the home's; every other certs/*.pem is issued
     by it.
  2. manifest.sig is the Ed25519 signature of manifest.json by certs/export.pem's key.
  3. The zip holds exactly the files manifest.json lists under "members", in that order;
     SHA256SUMS is the file manifest.json names, and `sha256sum -c SHA256SUMS` passes.
  4. Each clips/ID.sig is the Ed25519 signature, made when the clip was captured by the
     device clips/ID.device names (certs/device-NAME.pem), of clips/ID.digest: the original
     clip's SHA-256 (a redacted clip says what was done), or for an excerpt the SHA-256 of
     clips/ID.gops, the doorbell's table of every GOP (group of pictures) of the clip.
  5. An excerpt holds whole GOPs of the clip: clips/ID.ranges gives each one's index, byte
     offset and length in clips/ID.mp4, and the SHA-256 of those bytes is the one the
     table lists for that index: tail -c +N clips/ID.mp4 | head -c LENGTH | sha256sum,
     where N is OFFSET + 1. The manifest says which seconds it shows; that the MP4
     plays only those bytes, porch verify checks.
Each clip also carries C2PA Content Credentials, signed under the same CA: beside an
original or excerpt (clips/ID.c2pa, so that the clip stays the bytes the doorbell signed),
embedded in a redacted copy. Any C2PA tool shows them (c2patool clips/ID.c2pa, or the
redacted .mp4).
"""


class BundleError(Exception):
    """A bundle that does not verify; ``str()`` is the first reason."""


def zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info.file_size = size
    return info


@dataclass(frozen=True)
class Member:
    """One file to put in a bundle: bytes, or a file copied in chunks."""

    name: str
    data: bytes | None = None
    path: Path | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size  # type: ignore[union-attr]


@dataclass(frozen=True)
class ClipFile:
    """A clip for a bundle: its file, the device's capture signature, its C2PA sidecar (None
    when the credentials are embedded) and, when the caller has just checked it, the file's
    SHA-256 (else it is computed)."""

    clip_id: str
    path: Path
    signature: bytes
    sidecar: bytes | None
    sha256: str | None = None
    gops: bytes | None = None
    """An excerpt's GOP table, as the device signed it."""
    ranges: bytes | None = None
    """An unredacted excerpt's ranges file: where each GOP lies in ``path``."""


def sha256_member(member: Member) -> str:
    if member.data is not None:
        return hashlib.sha256(member.data).hexdigest()
    digest = hashlib.sha256()
    with open(member.path, "rb") as handle:  # type: ignore[arg-type]
        while block := handle.read(COPY_BYTES):
            digest.update(block)
    return digest.hexdigest()


def write_zip(out: Path, members: list[Member], progress: Callable[[int], None] | None = None):
    """The canonical zip of ``members``, written to ``out`` (atomically by the caller)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for member in members:
            with archive.open(zip_info(member.name, member.size), "w") as dest:
                if member.data is not None:
                    dest.write(member.data)
                    if progress:
                        progress(len(member.data))
                    continue
                with open(member.path, "rb") as source:  # type: ignore[arg-type]
                    while block := source.read(COPY_BYTES):
                        dest.write(block)
                        if progress:
                            progress(len(block))


SUMS = "SHA256SUMS"
"""A member in ``sha256sum`` format: every other member but the manifest and its signature,
with its SHA-256, so ``sha256sum -c`` checks each file against its own line. Its own hash is
in the signed manifest."""


def canonical_names(manifest: dict) -> list[str]:
    """The members of a bundle, in the one order they are written: the manifest and its
    signature, the listed files (sorted), then each clip in the manifest's order: video,
    signature, digest, the device's name (from porch-export/2) and, beside an original, its
    Content Credentials."""
    names = ["manifest.json", "manifest.sig", *sorted(manifest["files"])]
    for clip in manifest["clips"]:
        names += [clip["file"], clip["signature_file"], clip["digest_file"]]
        if "device_file" in clip:
            names.append(clip["device_file"])
        excerpt = clip.get("excerpt") or {}
        names += [excerpt[key] for key in ("gops_file", "ranges_file") if excerpt.get(key)]
        if clip.get("credentials", "embedded") != "embedded":
            names.append(clip["credentials"])
    return names


def sums_text(lines: list[tuple[str, str]]) -> bytes:
    """(SHA-256, name) pairs in ``sha256sum``'s format."""
    return "".join(f"{digest}  {name}\n" for digest, name in lines).encode()


def build_bundle(
    out: Path,
    manifest: dict,
    certs: dict[str, bytes],
    clips: list[ClipFile],
    sign: Callable[[bytes], bytes],
    progress: Callable[[int], None] | None = None,
) -> str:
    """Write a bundle: ``certs`` by member name, and ``clips``. Fills in
    ``manifest["files"]`` and each clip's ``sha256``; returns the zip's SHA-256."""
    extra = [Member("VERIFY.txt", VERIFY_TEXT.encode())]
    extra += [Member(name, data) for name, data in sorted(certs.items())]
    clip_members = []
    by_id = {clip["clip_id"]: clip for clip in manifest["clips"]}
    for clip in clips:
        clip_id, sidecar = clip.clip_id, clip.sidecar
        video = Member(f"clips/{clip_id}.mp4", path=clip.path)
        sig = Member(f"clips/{clip_id}.sig", clip.signature)
        digest = Member(f"clips/{clip_id}.digest", bytes.fromhex(by_id[clip_id]["original_sha256"]))
        device = Member(f"clips/{clip_id}.device", by_id[clip_id]["device_id"].encode())
        by_id[clip_id].update(
            file=video.name,
            sha256=clip.sha256 or sha256_member(video),
            signature_file=sig.name,
            digest_file=digest.name,
            device_file=device.name,
            credentials="embedded",
        )
        clip_members += [video, sig, digest, device]
        if clip.gops is not None:
            gops = Member(f"clips/{clip_id}.gops", clip.gops)
            by_id[clip_id]["excerpt"]["gops_file"] = gops.name
            clip_members.append(gops)
        if clip.ranges is not None:
            ranges = Member(f"clips/{clip_id}.ranges", clip.ranges)
            by_id[clip_id]["excerpt"]["ranges_file"] = ranges.name
            clip_members.append(ranges)
        if sidecar is not None:
            credentials = Member(f"clips/{clip_id}.c2pa", sidecar)
            by_id[clip_id].update(credentials=credentials.name,
                                  credentials_sha256=sha256_member(credentials))  # fmt: skip
            clip_members.append(credentials)
    hashes = {m.name: sha256_member(m) for m in extra + clip_members if m.data is not None}
    hashes.update({f"clips/{c.clip_id}.mp4": by_id[c.clip_id]["sha256"] for c in clips})
    manifest["files"] = {m.name: hashes[m.name] for m in extra}
    listed = canonical_names(manifest)[2:]  # without SHA256SUMS yet: it lists all the others
    sums = Member(SUMS, sums_text([(hashes[name], name) for name in listed]))
    extra.append(sums)
    manifest["files"][SUMS] = sha256_member(sums)
    manifest["members"] = canonical_names(manifest)
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    members = [Member("manifest.json", body), Member("manifest.sig", sign(body))]
    by_name = {m.name: m for m in extra + clip_members}
    write_zip(out, members + [by_name[name] for name in manifest["members"][2:]], progress)
    whole = hashlib.sha256()
    with open(out, "rb") as handle:
        while block := handle.read(COPY_BYTES):
            whole.update(block)
    return whole.hexdigest()


@contextmanager
def open_bundle(path: Path) -> Iterator[tuple[zipfile.ZipFile, mmap.mmap]]:
    with open(path, "rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise BundleError("the bundle is empty") from None
        try:
            try:
                archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise BundleError(f"not a zip bundle: {exc}") from None
            with archive:
                yield archive, mapped
        finally:
            # Views of the map may outlive an error's traceback; the map then closes with them.
            with contextlib.suppress(BufferError):
                mapped.close()


def member_bytes(archive: zipfile.ZipFile, mapped: mmap.mmap, name: str) -> memoryview:
    """A member's stored bytes, straight from the file (the canonical check covers CRCs)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise BundleError(f"{name} is missing") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise BundleError(f"{name} is compressed: not a Porch bundle")
    start = data_offset(mapped, info)
    if start + info.compress_size > len(mapped):
        raise BundleError(f"{name} runs past the end of the file")
    return memoryview(mapped)[start : start + info.compress_size]


class _CompareSink:
    """A write-only file for zipfile that compares, instead of storing, what it is given with
    the bundle's bytes. A member's data, handed over as a view of the bundle at the same
    offset, is the same bytes by construction and is not compared again."""

    def __init__(self, mapped: mmap.mmap):
        self._mapped = mapped
        self._pos = 0
        self._data_at: int | None = None
        self._written: dict[int, bytes] = {}  # offset -> last bytes written there (headers)
        self.end = 0

    def expect_data(self, offset: int) -> None:
        self._data_at = offset

    def write(self, data) -> int:
        size = len(data)
        if self._data_at is not None:
            if self._data_at != self._pos:
                self._written[self._pos] = bytes(data)
            self._data_at = None
        else:
            self._written[self._pos] = bytes(data)
        self._pos += size
        self.end = max(self.end, self._pos)
        return size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else self._pos + offset if whence == 1 else self.end
        return self._pos

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def first_difference(self) -> int | None:
        for offset, data in sorted(self._written.items()):
            theirs = self._mapped[offset : offset + len(data)]
            if theirs != data:
                return offset + next(
                    (i for i, (a, b) in enumerate(zip(data, theirs, strict=False)) if a != b),
                    min(len(data), len(theirs)),
                )
        return None if self.end == len(self._mapped) else min(self.end, len(self._mapped))


def data_offset(mapped: mmap.mmap, info: zipfile.ZipInfo) -> int:
    header = info.header_offset
    if mapped[header : header + 4] != b"PK\x03\x04":
        raise BundleError(f"{info.filename}'s local header is damaged")
    name_len = int.from_bytes(mapped[header + 26 : header + 28], "little")
    extra_len = int.from_bytes(mapped[header + 28 : header + 30], "little")
    return header + 30 + name_len + extra_len


def check_canonical(archive: zipfile.ZipFile, mapped: mmap.mmap) -> None:
    """The zip must be exactly the canonical zip of its members, byte for byte: rebuilt
    through zipfile (which recomputes every CRC) and compared without copying the data."""
    sink = _CompareSink(mapped)
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as canonical:  # type: ignore[call-overload]
        for info in archive.infolist():
            data = member_bytes(archive, mapped, info.filename)
            start = data_offset(mapped, info)
            with canonical.open(zip_info(info.filename, len(data)), "w") as dest:
                sink.expect_data(start)
                dest.write(data)
            data.release()
    differ = sink.first_difference()
    if differ is not None:
        raise BundleError(f"the zip was altered outside its files (at byte {differ})")
