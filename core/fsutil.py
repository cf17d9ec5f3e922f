"""Crash-safe file writes: temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PARTIAL_SUFFIX = ".part"
"""Files being written carry this suffix until they are renamed into place."""


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def publish_file(partial: Path, final: Path) -> None:
    """fsync ``partial`` and rename it to ``final`` atomically (same directory)."""
    fsync_file(partial)
    os.replace(partial, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A file to write ``path`` through, so that a crash leaves either the old file or the new
    one, and a failure (a full disk, an exception in the block) no half-written file."""
    partial = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    try:
        with open(partial, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:  # a full disk, say: nothing half-written stays behind
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as :func:`atomic_writer` does."""
    with atomic_writer(path) as handle:
        handle.write(data)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_digests(path: Path, chunk_bytes: int) -> tuple[str, list[str]]:
    """SHA-256 of the whole file and of each ``chunk_bytes`` piece, in one read."""
    whole = hashlib.sha256()
    chunks = []
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            whole.update(block)
            chunks.append(hashlib.sha256(block).hexdigest())
    return whole.hexdigest(), chunks


def read_chunk(path: Path, index: int, chunk_bytes: int) -> bytes:
    """Chunk ``index`` of a file (the thumbnail is read whole by the caller)."""
    with open(path, "rb") as handle:
        handle.seek(index * chunk_bytes)
        return handle.read(chunk_bytes)


def hand_over(path: Path, username: str) -> bool:
    """chown ``path`` to ``username`` (and its group) when running as root and that user
    exists: a file root writes for a service that runs as that user. True when done."""
    if os.geteuid() != 0:
        return False
    try:
        user = pwd.getpwnam(username)
    except KeyError:
        return False
    os.chown(path, user.pw_uid, user.pw_gid)
    return True
