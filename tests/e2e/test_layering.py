"""The parts stay apart: the import contract (import-linter) holds and catches a breach, the
doorbell's code runs with none of the hub's libraries installed, and the `porch` command says
which part to install instead of a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.common import ROOT

HUB_LIBRARIES = ["fastapi", "starlette", "uvicorn", "aiortc", "c2pa", "jinja2", "argon2",
                 "qrcode", "multipart"]  # fmt: skip
# Runs before anything else in a child Python: the hub's libraries cannot be imported, as on
# a doorbell that installed porch[pi].
WITHOUT_HUB = f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HUB_LIBRARIES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
"""


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "lint-imports")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_the_contract_catches_a_doorbell_module_that_imports_the_hub(tmp_path):
    for part in ("agency", "core", "device", "hub", "provisioning", "src", "scripts"):
        shutil.copytree(
            ROOT / part,
            tmp_path / part,
            symlinks=True,  # src/porch/<part> stays a link to the copy's own part
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "device" / "shortcut.py").write_text(
        '"""A careless shortcut."""\n\nfrom porch.hub.db import Database\n'
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "porch.device.shortcut -> porch.hub.db" in result.stdout
    assert "BROKEN" in result.stdout


def run_without_hub(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_HUB + code], capture_output=True, text=True, timeout=120
    )


def test_the_doorbell_runs_without_the_hubs_libraries():
    code = (
        "import porch.device.agent, porch.device.cli, porch.device.enroll\n"
        "from porch.cli import main\n"
        "main(['device', '--help'])\n"
    )
    result = run_without_hub(code)
    assert result.returncode == 0, result.stderr
    assert "Run the doorbell" in result.stdout


def test_a_hub_command_on_a_doorbell_names_the_part_to_install():
    result = run_without_hub("from porch.cli import main\nmain(['hub', 'run'])\n")
    assert result.returncode == 2
    assert "pip install 'porch[hub]'" in result.stderr
    assert "Traceback" not in result.stderr
    listing = run_without_hub("from porch.cli import main\nmain(['--help'])\n")
    assert listing.returncode == 0 and "hub" in listing.stdout and "device" in listing.stdout
