"""What the hub checks before it lists a clip that arrived whole: the device's signature
(for an enrolled device, required) and, for a sealed clip, that it opens with the hub's key
and that the plaintext is what the device signed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from porch.core.seal import SealError, unseal, verify_digest
from porch.core.wire import ClipMeta
from porch.provisioning.authority import HomeAuthority


class ClipRefused(Exception):
    """A clip the hub will not list; ``str()`` says why."""


class ClipOpener:
    def __init__(self, authority: HomeAuthority | None):
        self.authority = authority

    def open(self, meta: ClipMeta, video: Path, thumbnail: Path) -> tuple[bytes, bytes] | None:
        """The clear video and thumbnail of a sealed clip, or None for a clear one."""
        opened = None
        digest = meta.sha256
        if meta.sealed:
            if self.authority is None:
                raise ClipRefused("sealed, and this hub has no sealing key (provisioning)")
            key = self.authority.pki.seal_key()
            try:
                plain = unseal(video.read_bytes(), key)
                opened = (plain, unseal(thumbnail.read_bytes(), key))
            except SealError as exc:
                raise ClipRefused(str(exc)) from None
            digest = hashlib.sha256(plain).hexdigest()
            if digest != meta.plain_sha256:
                raise ClipRefused("the opened video is not the one the device described")
        signer = self.authority.registry.sign_key(meta.device_id) if self.authority else None
        if signer is not None and not (
            meta.signature and verify_digest(signer, digest, meta.signature)
        ):
            raise ClipRefused(f"missing or wrong signature of {meta.device_id}")
        return opened
