"""Finishing a long clip on the doorbell: how long capture is held, and the Python heap it
takes, now (handed to the finishing thread; hashed in place and sealed a MiB at a time into
the file) against the way it was in the same run (on the capture thread: the MP4 copied out
of its buffer, hashed, sealed whole in memory, then written).

    .venv/bin/python bench/clip_finish.py [--seconds 120] [--kbps 2000]

The clip: 1280×720 at 15 fps, two GOPs of the synthetic porch encoded by libx264 at about
``--kbps`` and repeated for ``--seconds`` (the muxer and the seal only see bytes), as the
recorder would have them at the end of its post-roll. Heap: tracemalloc's peak above what
the recorded clip already holds. A Pi Zero 2 W has no AES or SHA instructions: its seal and
hash run about 10-20× slower than here (see seal_cost.py), which is what capture would wait.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seal_cost import encoded

from porch.core.config import ClipSettings
from porch.core.fsutil import atomic_write
from porch.core.seal import seal
from porch.device.camera import EncodedPacket
from porch.device.clips import ClipProtection, ClipRecorder, ClipStore
from porch.device.preroll import PrerollBuffer


def packets_for(seconds: float, kbps: int) -> list[EncodedPacket]:
    """``seconds`` of video: two real GOPs repeated, timestamps continued."""
    gops = encoded(2.0, kbps)
    out = []
    for index in range(round(seconds * 15)):
        packet = gops[index % len(gops)]
        out.append(EncodedPacket(packet.data, index / 15, packet.keyframe))
    return out


def recorded(packets: list[EncodedPacket], root: Path, protection: ClipProtection):
    """A recorder whose clip holds ``packets`` and is due to finish at the next feed."""
    settings = ClipSettings(preroll_s=1, postroll_s=1, max_clip_s=600)
    store = ClipStore(root, 1 << 34)
    preroll = PrerollBuffer(1, 1 << 26)
    preroll.add(packets[0])
    recorder = ClipRecorder(
        settings, store, preroll, 1280, 720, "front-door", lambda clip: None, protection
    )
    import numpy as np

    recorder.trigger("e" * 32, 0.0, time.time(), np.zeros((180, 320, 3), np.uint8))
    recorder.extend(packets[-1].pts)
    recorder.feed(packets[1:-1], packets[-2].pts)
    return recorder


def old_finish(recorder: ClipRecorder) -> None:
    """What finishing did before, on the capture thread (its memory steps, as they were)."""
    active = recorder._active
    assert active is not None
    recorder._active = None
    active.writer.close()
    active.hasher.finish()
    active.journal.close()
    plain = active.writer.buffer.getvalue()
    digest = hashlib.sha256(plain).hexdigest()
    atomic_write(recorder.store.partial_path(active.clip_id), recorder.protection.seal(plain))
    recorder.protection.sign(digest)


def measure(packets, protection, old: bool) -> tuple[float, float, float]:
    """(capture held ms, finishing ms, heap peak MB above the recorded clip)."""
    with tempfile.TemporaryDirectory() as tmp:
        recorder = recorded(packets, Path(tmp), protection)
        size = recorder._active.writer.buffer.tell()  # type: ignore[union-attr]
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        if old:
            old_finish(recorder)
            held = time.perf_counter() - start
        else:
            recorder.feed([packets[-1]], packets[-1].pts + 1)  # due: handed over
            held = time.perf_counter() - start
            recorder.finish()  # waits for the finishing thread
        total = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        recorder.close()
        return held * 1000, total * 1000, peak / 1e6, size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--kbps", type=int, default=2000)
    args = parser.parse_args()
    packets = packets_for(args.seconds, args.kbps)
    hub = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    protection = ClipProtection(hub, ed25519.Ed25519PrivateKey.generate())
    seal(b"warm", hub)
    rows = {}
    for name, old in (("before: on the capture thread", True), ("now: finishing thread", False)):
        runs = [measure(packets, protection, old) for _ in range(3)]
        held, total, peak, size = (min(r[i] for r in runs) for i in range(4))
        rows[name] = (held, total, peak)
        print(
            f"{name:31} capture held {held:8.1f} ms   finishing {total:7.1f} ms"
            f"   heap peak +{peak:6.1f} MB ({peak / size:.2f}× the {size:.1f} MB clip)"
        )
    (held_old, _, peak_old), (held_new, _, peak_new) = rows.values()
    print(
        f"capture held {held_new / held_old:.4f} of before; heap peak {peak_new / peak_old:.2f}"
        " of before"
    )


if __name__ == "__main__":
    main()
