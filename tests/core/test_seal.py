"""Sealed clips open at the hub whichever way a doorbell sealed them, and only there."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from porch.core.seal import STREAM_CHUNK, SealError, open_sealed, seal, seal_stream


@pytest.mark.parametrize("size", [0, 1, STREAM_CHUNK - 1, STREAM_CHUNK, 2 * STREAM_CHUNK + 7])
def test_whole_and_streamed_seals_both_open(size):
    # Doorbells before 2026-12 sealed each clip whole; now they seal as they write, a MiB
    # at a time. The hub opens both, and only with its own key.
    hub = x25519.X25519PrivateKey.generate()
    recipient = hub.public_key().public_bytes_raw()
    clear = os.urandom(size)
    streamed = io.BytesIO()
    seal_stream(io.BytesIO(clear), streamed, recipient)
    for sealed in (seal(clear, recipient), streamed.getvalue()):
        assert open_sealed(sealed, hub) == clear
        with pytest.raises(SealError):
            open_sealed(sealed, x25519.X25519PrivateKey.generate())


def test_a_streamed_seal_cut_or_spliced_fails():
    hub = x25519.X25519PrivateKey.generate()
    recipient = hub.public_key().public_bytes_raw()
    target = io.BytesIO()
    seal_stream(io.BytesIO(os.urandom(3 * STREAM_CHUNK)), target, recipient)
    sealed = target.getvalue()
    header, chunk = len(sealed) - 3 * (STREAM_CHUNK + 16), STREAM_CHUNK + 16
    for broken in (
        sealed[: header + 2 * chunk],  # the last chunk dropped
        sealed[: header + chunk] + sealed[header + 2 * chunk :],  # the middle one dropped
        sealed[:header] + sealed[header + chunk : header + 2 * chunk] + sealed[header:],  # moved
        sealed + sealed[-chunk:],  # one repeated
    ):
        with pytest.raises(SealError):
            open_sealed(broken, hub)
