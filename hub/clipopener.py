"""What the hub checks before it lists a clip that arrived whole: the device's signature
(for an enrolled device, required), for a sealed clip that it opens with the hub's key and
that the plaintext is what the device signed, and that the video's GOPs are the ones the
device's GOP table lists (:mod:`porch.core.gops`). A journal clip (a recording a crash cut
short) is opened into an MP4 of the GOPs its checkpoint signed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import av
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from porch.core.gops import GopError
from porch.core.journal import JournalError
from porch.core.seal import SealError, open_sealed, verify_digest
from porch.core.wire import ClipMeta
from porch.hub.excerpt import check_seal, header_of, open_journal, table_from_mp4
from porch.provisioning.authority import HomeAuthority


class ClipRefused(Exception):
    """A clip the hub will not list; ``str()`` says why."""


@dataclass(frozen=True)
class Opened:
    """What opening gave: the clear video and thumbnail (None: the received files are
    clear already) and the clip's GOP table, checked against the device's signature (None:
    an older doorbell's clip, without one)."""

    video: bytes | None = None
    thumbnail: bytes | None = None
    gops: bytes | None = None


class ClipOpener:
    def __init__(self, authority: HomeAuthority | None):
        self.authority = authority

    def open(self, meta: ClipMeta, video: Path, thumbnail: Path) -> Opened:
        """Check a clip that arrived whole and open it (see :class:`Opened`)."""
        signer = self.authority.registry.sign_key(meta.device_id) if self.authority else None
        if meta.container == "journal":
            return self._journal(meta, video, signer)
        plain, thumb = self._open(meta, video, thumbnail, signer) or (None, None)
        if meta.gops is None:
            return Opened(plain, thumb)
        try:
            table = table_from_mp4(plain or video, header_of(meta), max_gops=meta.gops.count)
            check_seal(table, meta.gops, signer)
        except GopError as exc:
            raise ClipRefused(f"its GOP proofs do not hold: {exc}") from None
        return Opened(plain, thumb, table.text())

    def _journal(self, meta: ClipMeta, video: Path, signer: Ed25519PublicKey | None) -> Opened:
        assert meta.gops is not None
        if meta.sealed and self.authority is None:
            raise ClipRefused("sealed, and this hub has no sealing key (provisioning)")
        key = self.authority.pki.seal_key() if meta.sealed and self.authority else None
        try:
            return Opened(*open_journal(meta, video.read_bytes(), key, signer))
        except (GopError, JournalError, SealError, av.FFmpegError, ValueError,
                ArithmeticError) as exc:  # fmt: skip
            raise ClipRefused(f"its journal does not hold what it claims: {exc}") from None

    def _open(
        self, meta: ClipMeta, video: Path, thumbnail: Path, signer: Ed25519PublicKey | None
    ) -> tuple[bytes, bytes] | None:
        """The clip's video and thumbnail opened (None: they arrived clear), its signature
        checked."""
        opened = None
        digest = meta.sha256
        if meta.sealed:
            if self.authority is None:
                raise ClipRefused("sealed, and this hub has no sealing key (provisioning)")
            key = self.authority.pki.seal_key()
            try:
                plain = open_sealed(video.read_bytes(), key)
                opened = (plain, open_sealed(thumbnail.read_bytes(), key))
            except SealError as exc:
                raise ClipRefused(str(exc)) from None
            digest = hashlib.sha256(plain).hexdigest()
            if digest != meta.plain_sha256:
                raise ClipRefused("the opened video is not the one the device described")
        if signer is not None and not (
            meta.signature and verify_digest(signer, digest, meta.signature)
        ):
            raise ClipRefused(f"missing or wrong signature of {meta.device_id}")
        return opened
