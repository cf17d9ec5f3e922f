"""Porch as pip installs it from a wheel, not the editable checkout: every part's modules
and the web app's files are in it under ``porch/``, nothing else is put at the top of
site-packages, and every module imports from the installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.common import ROOT, TIMEOUT, build_wheel

PARTS = ("agency", "core", "device", "hub", "provisioning")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def source_files() -> set[str]:
    """The files a wheel must hold, as ``porch/...`` paths: src/porch's own and each
    part's (through the symlinks), without caches."""
    found = set()
    for folder, dirs, files in os.walk(ROOT / "src" / "porch", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        here = Path(folder).relative_to(ROOT / "src")
        found |= {(here / name).as_posix() for name in files if not name.endswith(".pyc")}
    return found


def test_the_wheel_holds_every_part_and_nothing_beside_porch(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = source_files()
    assert {f"porch/{part}/__init__.py" for part in PARTS} <= expected, "a part is not linked"
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)[:10]}"
    assert {n.split("/")[0] for n in names} == {
        "porch",
        wheel.name.split("-")[0] + "-0.1.0.dist-info",
    }
    assert "porch/hub/web/templates/base.html" in names and "porch/py.typed" in names


def test_every_module_imports_from_the_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(wheel)],
        check=True, timeout=10 * TIMEOUT,
    )  # fmt: skip
    code = (
        "import importlib, pkgutil, porch\n"
        f"assert porch.__file__.startswith({str(target)!r}), porch.__file__\n"
        "names = [m.name for m in pkgutil.walk_packages(porch.__path__, 'porch.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # before the editable checkout's path
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=10 * TIMEOUT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 80
