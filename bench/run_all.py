"""Runs every benchmark in turn and prints their figures (`make bench`); copy them into
docs/performance.md with the date and the machine."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "motion_bench.py",
    "press_latency.py",
    "preroll_ram.py",
    "ring_to_banner.py",
    "ingest_throughput.py",
    "clip_transfer.py",
    "live_view.py",
    "talk_latency.py",
    "encoder_threads.py",
    "mask_burn.py",
    "clip_finish.py",
    "zero_budget.py",
    "seal_cost.py",
    "gop_proofs.py",
    "export_throughput.py",
    "face_blur.py",
    "push_latency.py",
    "people_accuracy.py",
    "people_latency.py",
    "area_fanout.py",
    "device_footprint.py",
]


def main() -> int:
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()},"
        f" {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores"
    )
    failed = 0
    for name in BENCHMARKS:
        print(f"\n## {name}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / name)]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
