"""What sealing and signing a clip costs, on the device and on the hub.

    .venv/bin/python bench/seal_cost.py [--seconds 15] [--repeat 20]

A real clip: the synthetic scene at 1280×720, 15 fps, encoded with libx264 as the agent
does, muxed to MP4 in memory. Baseline in the same run: the SHA-256 of the same bytes, which
the device computes for every clip anyway (the offer's hashes).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from porch.core.config import EncoderSettings
from porch.core.seal import seal, sign_digest, unseal, verify_digest
from porch.device.camera import EncodedPacket
from porch.device.camera.synthetic import SyntheticScene
from porch.device.clips import Mp4Writer
from porch.device.encoder import H264Encoder


def encoded(seconds: float, bitrate_kbps: int | None = None) -> list[EncodedPacket]:
    """The synthetic scene's access units as the agent's encoder gives them (Annex B)."""
    scene = SyntheticScene.default(1280, 720, 1)
    settings = (
        EncoderSettings() if bitrate_kbps is None else EncoderSettings(bitrate_kbps=bitrate_kbps)
    )
    encoder = H264Encoder(1280, 720, 15, settings)
    return [
        packet
        for index in range(round(seconds * 15))
        for packet in encoder.encode(scene.render(index / 15), index / 15)
    ]


def make_clip(seconds: float, bitrate_kbps: int | None = None) -> bytes:
    return mp4_of(encoded(seconds, bitrate_kbps))


def mp4_of(packets: list[EncodedPacket]) -> bytes:
    """The packets muxed as the device muxes a clip."""
    writer = Mp4Writer(1280, 720, packets[0])
    for packet in packets:
        writer.write(packet)
    writer.close()
    return writer.buffer.getvalue()


def timed(action, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    clip = make_clip(args.seconds)
    hub = x25519.X25519PrivateKey.generate()
    recipient = hub.public_key().public_bytes_raw()
    device = ed25519.Ed25519PrivateKey.generate()
    digest = hashlib.sha256(clip).hexdigest()
    sealed = seal(clip, recipient)
    signature = sign_digest(device, digest)

    base = timed(lambda: hashlib.sha256(clip).hexdigest(), args.repeat)
    on_device = timed(
        lambda: (seal(clip, recipient), sign_digest(device, hashlib.sha256(clip).hexdigest())),
        args.repeat,
    )
    on_hub = timed(
        lambda: verify_digest(
            device.public_key(), hashlib.sha256(unseal(sealed, hub)).hexdigest(), signature
        ),
        args.repeat,
    )
    print(
        f"{args.seconds:.0f} s clip at 1280x720, {len(clip) / 1e6:.2f} MB, median of {args.repeat}"
    )
    print(f"  SHA-256 (baseline)            {base:7.2f} ms")
    print(f"  device: seal + hash + sign    {on_device:7.2f} ms  ({on_device / base:.1f}x)")
    print(f"  hub: open + hash + verify     {on_hub:7.2f} ms  ({on_hub / base:.1f}x)")
    print(f"  size overhead: {len(sealed) - len(clip)} bytes")


if __name__ == "__main__":
    main()
