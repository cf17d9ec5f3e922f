"""The doorbell's footprint, before and after its install was cut down to its own part:
packages and installed megabytes of `porch[pi]`, the wheels a Pi downloads, and the agent's
resident memory at steady state (synthetic camera, 1280×720 at 15 fps, motion on, connected
to a Mosquitto on loopback).

    .venv/bin/python bench/device_footprint.py [--before COMMIT] [--seconds 60]

"Before" is COMMIT (default: the last commit before the layout change, whose `porch[pi]`
brought the hub's libraries too), installed the same way into a venv of its own in the same
run; the two are compared as ratios. Installed sizes are measured here (x86_64); a Pi's
aarch64 wheels are of similar size, and their download size is measured directly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "aa56498"
PI = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
      "--platform", "manylinux2014_aarch64",
      *[a for v in range(17, 37) for a in ("--platform", f"manylinux_2_{v}_aarch64")]]  # fmt: skip


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def install(source: Path, venv: Path) -> tuple[int, float]:
    """A fresh venv with ``source[pi]``: (packages besides pip and setuptools, site-packages MB)."""
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin/pip"), "install", "--quiet", f"{source}[pi]")
    listed = json.loads(run(str(venv / "bin/pip"), "list", "--format=json").stdout)
    packages = [p["name"] for p in listed if p["name"] not in ("pip", "setuptools")]
    site = next((venv / "lib").glob("python3*/site-packages"))
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())
    return len(packages), size / 1e6


def pi_download_mb(source: Path, tmp: Path) -> float:
    wheels = tmp / "wheels"
    run(sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", *PI,
        "--dest", str(wheels), f"{source}[pi]")  # fmt: skip
    return sum(f.stat().st_size for f in wheels.glob("*.whl")) / 1e6


def steady_rss(venv: Path, data: Path, port: int, seconds: float) -> tuple[float, float]:
    """The agent's resident memory, MB: median and maximum over ``seconds`` after a warm-up."""
    config = data / "device.toml"
    config.write_text(
        "device_id = 'front-door'\n"
        f"data_dir = '{data / 'device'}'\n"
        f"[mqtt]\nport = {port}\n"
        "[gpio]\npin_factory = 'mock'\nchime_active_high = false\n"
        "[camera]\nsource = 'synthetic'\nwidth = 1280\nheight = 720\nfps = 15.0\n"
    )
    agent = subprocess.Popen(
        [str(venv / "bin/porch"), "device", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples = []
    try:
        time.sleep(20)  # warm-up: pre-roll fills (5 s), the first clips come and go
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            status = Path(f"/proc/{agent.pid}/status").read_text()
            kb = next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("VmRSS:"))  # fmt: skip
            samples.append(kb / 1024)
            time.sleep(1)
    finally:
        agent.terminate()
        agent.wait(30)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from porch.localbroker import LocalBroker

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = tmp / "before-src"
        run("git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.before)
        try:
            rows = {}
            for label, source in (("before", old), ("after", ROOT)):
                venv = tmp / f"venv-{label}"
                packages, size = install(source, venv)
                download = pi_download_mb(source, tmp / label)
                with LocalBroker(tmp / f"broker-{label}") as broker:
                    rss = steady_rss(venv, tmp / label, broker.port, args.seconds)
                rows[label] = (packages, size, download, *rss)
        finally:
            run("git", "-C", str(ROOT), "worktree", "remove", "--force", str(old))
    print(f"Doorbell install (porch[pi]) and agent memory, {os.uname().machine}")
    print(f"{'':<7} {'packages':>8} {'installed MB':>12} {'Pi download MB':>14}"
          f" {'RSS median MB':>13} {'RSS max MB':>10}")  # fmt: skip
    for label, (packages, size, download, median, peak) in rows.items():
        print(f"{label:<7} {packages:>8} {size:>12.1f} {download:>14.1f} {median:>13.1f}"
              f" {peak:>10.1f}")  # fmt: skip
    (bp, bs, bd, bm, _), (ap, as_, ad, am, _) = rows["before"], rows["after"]
    print(
        f"after/before: packages {ap / bp:.2f}, installed {as_ / bs:.2f},"
        f" download {ad / bd:.2f}, RSS {am / bm:.2f}"
    )


if __name__ == "__main__":
    main()
