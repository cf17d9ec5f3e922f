"""Export bundles: build and `porch verify` throughput for about 1 GB of clips, against
`sha256sum` over the same clip files in the same run.

    .venv/bin/python bench/export_throughput.py [--megabytes 1024]

The clips are copies of one real clip (synthetic scene, 1280×720, 15 fps, libx264 as the
agent encodes it), each signed by an enrolled device's key; the bundle is built with the
hub's export key from a home CA made for the run, each clip with its C2PA sidecar (signed
as part of the build, and validated as part of the verification). The build is what
Exporter.build does for originals, with its functions: every clip checked against the hash
its device signed and given its sidecar, on up to one thread per core (four at most), then
the zip written and its SHA-256 taken. Files are read from the
page cache in every case (each is read once before timing), so the figures compare the
work, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric import ed25519
from seal_cost import make_clip

from porch.hub.export import credentials
from porch.hub.export.bundle import FORMAT, ClipFile, build_bundle
from porch.hub.export.verify import verify_bundle
from porch.hub.exporter import credential_clip, in_parallel
from porch.provisioning.enrollment import pem
from porch.provisioning.pki import Pki


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pki = Pki(tmp / "pki")
        pki.init([])
        device = ed25519.Ed25519PrivateKey.generate()
        device_cert = pki.issue(device.public_key(), "front-door", [])
        clip = make_clip(15)
        digest = hashlib.sha256(clip).hexdigest()
        signature = device.sign(bytes.fromhex(digest))
        count = max(1, args.megabytes * 1024 * 1024 // len(clip))
        clips_dir = tmp / "clips"
        clips_dir.mkdir()
        entries, files = [], []
        now = time.time()
        for index in range(count):
            clip_id = f"{index:032x}"
            path = clips_dir / f"{clip_id}.mp4"
            path.write_bytes(clip)
            start = now - 250 + index * 0.5  # captured after the device's enrollment
            entries.append({"clip_id": clip_id, "device_id": "front-door", "start_ts": start,
                            "end_ts": start + 0.5, "original_sha256": digest,
                            "device_signature": signature.hex(), "redaction": None})  # fmt: skip
            files.append((clip_id, path, signature))
        manifest = {
            "format": FORMAT,
            "bundle_id": "bench",
            "exported_at": now,
            "request": {
                "organisation": "Bench",
                "devices": ["front-door"],
                "start_ts": now - 7200,
                "end_ts": now,
            },
            "approval": {
                "decision": "approved",
                "decided_by": "owner",
                "decided_at": now - 60,
                "expires": now + 3600,
                "scope": {
                    "devices": ["front-door"],
                    "start_ts": now - 7200,
                    "end_ts": now,
                    "clip_ids": [e["clip_id"] for e in entries],
                },
                "redaction": {"blur_faces": False, "boxes": []},
            },
            "clips": entries,
        }
        certs = {
            "certs/ca.pem": pki.path("ca.crt").read_bytes(),
            "certs/export.pem": pki.path("export.crt").read_bytes(),
            "certs/device-front-door.pem": pem(device_cert).encode(),
        }
        chain, key = pki.content_credentials()
        certs["certs/c2pa.pem"] = pki.path("c2pa.crt").read_bytes()
        total = count * len(clip)
        subprocess.run(["cat", *map(str, clips_dir.iterdir())], stdout=subprocess.DEVNULL)

        start = time.perf_counter()
        paths = sorted(str(p) for p in clips_dir.iterdir())
        subprocess.run(["sha256sum", *paths], stdout=subprocess.DEVNULL, check=True)
        sha256sum_s = time.perf_counter() - start

        bundle = tmp / "bundle.zip"
        start = time.perf_counter()

        def prepare(entry: dict, clip: tuple) -> ClipFile:
            clip_id, path, signature = clip
            story = credentials.ClipStory(
                clip_id=clip_id, device_id="front-door", start_ts=entry["start_ts"],
                original_sha256=digest, device_signature=signature.hex(), exported_at=now,
                request=manifest["request"], approved_by="owner", approved_at=now - 60,
                redaction=None)  # fmt: skip
            return credential_clip(path, digest, signature, story, chain, key)

        # What Exporter.build does for originals, with its own functions: each clip checked
        # against the hash its device signed and given its C2PA sidecar (in parallel), then
        # the zip written and hashed.
        prepared = in_parallel(prepare, entries, files)
        build_bundle(bundle, manifest, certs, prepared, pki.export_key().sign)
        build_s = time.perf_counter() - start
        subprocess.run(["cat", str(bundle)], stdout=subprocess.DEVNULL)

        start = time.perf_counter()
        result = verify_bundle(bundle, pki.path("ca.crt").read_bytes())
        verify_s = time.perf_counter() - start
        assert result.clips == count

        mb = total / 1e6
        print(f"{count} clips, {mb:.0f} MB; one machine, files in the page cache")
        print(f"  sha256sum over the clips (baseline) {mb / sha256sum_s:7.0f} MB/s")
        print(f"  build the bundle                    {mb / build_s:7.0f} MB/s"
              f"  ({sha256sum_s / build_s:.2f}x sha256sum)")  # fmt: skip
        print(f"  porch verify                        {mb / verify_s:7.0f} MB/s"
              f"  ({sha256sum_s / verify_s:.2f}x sha256sum)")  # fmt: skip
        shutil.rmtree(clips_dir)


if __name__ == "__main__":
    main()
