"""Sealed clips: what a device stores can be opened by the hub alone.

Each file gets a fresh AES-256-GCM key; that key is wrapped to the hub's X25519 public key
(an ephemeral X25519 exchange, HKDF-SHA256, AES-GCM). The device keeps no private key that
opens it, so a stolen doorbell holds nothing readable. The header is authenticated with the
content: flipping any byte anywhere makes opening fail.

Layout: ``MAGIC | ephemeral public key (32) | key nonce (12) | wrapped key (48) | nonce (12) |
ciphertext with tag``.

Signatures are separate: the device signs the SHA-256 of each clip's plaintext with its
Ed25519 key at capture, the first link of the chain of custody.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, TypeVar

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"PORCHSEAL1"
_INFO = b"porch clip key wrap v1"
_HEADER = len(MAGIC) + 32 + 12 + 48 + 12


Key = TypeVar("Key")


def load_private_key(path: Path, kind: type[Key]) -> Key:
    """The unencrypted PEM private key at ``path``; ValueError unless it is a ``kind``."""
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, kind):
        raise ValueError(f"{path} is not a {kind.__name__} private key")
    return key


class SealError(Exception):
    """A sealed file that cannot be opened: not sealed, for another hub, or altered."""


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_INFO).derive(shared)


def seal(data: bytes, recipient: bytes) -> bytes:
    """Encrypt ``data`` to the X25519 public key ``recipient`` (32 raw bytes)."""
    ephemeral = x25519.X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(recipient))
    key = AESGCM.generate_key(bit_length=256)
    key_nonce, nonce = os.urandom(12), os.urandom(12)
    wrapped = AESGCM(_kek(shared, ephemeral_public, recipient)).encrypt(key_nonce, key, MAGIC)
    header = MAGIC + ephemeral_public + key_nonce + wrapped + nonce
    return header + AESGCM(key).encrypt(nonce, data, header)


def unseal(blob: bytes, private: x25519.X25519PrivateKey) -> bytes:
    """Open a sealed file; raises :class:`SealError` when it is not ours or was altered."""
    if len(blob) < _HEADER + 16 or not blob.startswith(MAGIC):
        raise SealError("not a sealed Porch file")
    at = len(MAGIC)
    ephemeral = blob[at : at + 32]
    key_nonce = blob[at + 32 : at + 44]
    wrapped = blob[at + 44 : at + 92]
    nonce = blob[at + 92 : at + 104]
    recipient = private.public_key().public_bytes_raw()
    try:
        shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(ephemeral))
        kek = _kek(shared, ephemeral, recipient)
        key = AESGCM(kek).decrypt(key_nonce, wrapped, MAGIC)
        return AESGCM(key).decrypt(nonce, blob[_HEADER:], blob[:_HEADER])
    except (InvalidTag, ValueError):
        raise SealError("the sealed file is for another key or was altered") from None


def sign_digest(key: ed25519.Ed25519PrivateKey, sha256_hex: str) -> str:
    """The device's signature over a clip's SHA-256 (hex in, hex out)."""
    return key.sign(bytes.fromhex(sha256_hex)).hex()


def verify_digest(key: ed25519.Ed25519PublicKey, sha256_hex: str, signature_hex: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), bytes.fromhex(sha256_hex))
    except (InvalidSignature, ValueError):
        return False
    return True


STREAM_MAGIC = b"PORCHSTREAM1"
_STREAM_INFO = b"porch stream v1"
STREAM_CHUNK = 1024 * 1024


def seal_stream(source: BinaryIO, target: BinaryIO, recipient: bytes) -> int:
    """Encrypt everything ``source`` holds to the X25519 public key ``recipient``, chunk by
    chunk (a bundle may not fit in memory): X25519 with an ephemeral key, HKDF-SHA256, then
    AES-256-GCM over 1 MiB chunks whose nonces count them and mark the last (the STREAM
    construction), so that a chunk cut, dropped, repeated or moved fails. Returns the bytes
    written."""
    ephemeral = x25519.X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(recipient))
    prefix = os.urandom(7)
    header = STREAM_MAGIC + ephemeral_public + prefix + STREAM_CHUNK.to_bytes(4, "big")
    aead = AESGCM(_stream_key(shared, ephemeral_public, recipient))
    written = target.write(header)
    chunk, index = source.read(STREAM_CHUNK), 0
    while True:
        following = source.read(STREAM_CHUNK)
        nonce = prefix + index.to_bytes(4, "big") + (b"\x00" if following else b"\x01")
        written += target.write(aead.encrypt(nonce, chunk, header))
        if not following:
            return written
        chunk, index = following, index + 1


def open_stream(source: BinaryIO, target: BinaryIO, private: x25519.X25519PrivateKey) -> int:
    """Decrypt what :func:`seal_stream` wrote; raises :class:`SealError` when it is for
    another key, altered, cut short or extended. Returns the clear bytes written."""
    size = len(STREAM_MAGIC) + 32 + 7 + 4
    header = source.read(size)
    if len(header) != size or not header.startswith(STREAM_MAGIC):
        raise SealError("not a sealed Porch stream")
    at = len(STREAM_MAGIC)
    ephemeral, prefix = header[at : at + 32], header[at + 32 : at + 39]
    chunk_size = int.from_bytes(header[at + 39 : at + 43], "big")
    if not 1024 <= chunk_size <= 64 * STREAM_CHUNK:
        raise SealError("a sealed stream with an impossible chunk size")
    recipient = private.public_key().public_bytes_raw()
    try:
        shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(ephemeral))
    except ValueError:
        raise SealError("the sealed stream's key is damaged") from None
    aead = AESGCM(_stream_key(shared, ephemeral, recipient))
    written, index = 0, 0
    block = source.read(chunk_size + 16)
    while True:
        following = source.read(chunk_size + 16)
        nonce = prefix + index.to_bytes(4, "big") + (b"\x00" if following else b"\x01")
        try:
            written += target.write(aead.decrypt(nonce, block, header))
        except InvalidTag:
            raise SealError("the sealed stream is for another key, altered or cut short") from None
        if not following:
            return written
        block, index = following, index + 1


def open_sealed(blob: bytes, private: x25519.X25519PrivateKey) -> bytes:
    """Open a sealed clip in memory, whichever way it was sealed: whole (:func:`seal`, small
    files and older doorbells) or in chunks (:func:`seal_stream`, the clips of doorbells
    that seal as they write); raises :class:`SealError` as those do."""
    if blob.startswith(STREAM_MAGIC):
        clear = io.BytesIO()
        open_stream(io.BytesIO(blob), clear, private)
        return clear.getvalue()
    return unseal(blob, private)


def _stream_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_STREAM_INFO).derive(shared)
