"""Commands that read the hub's state refuse when it is not there, naming the path, and
create nothing (issue 11: `porch audit verify` without --config made a database and said
"intact: 0 entries")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def porch(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "porch.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, input=stdin,
        env={**os.environ, "HOME": str(cwd)},
    )  # fmt: skip


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")} if path.exists() else set()


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "verify"],
        ["export", "build", "0123456789abcdef"],
        ["hub", "adduser", "alice"],
        ["provision", "enroll", "front-door"],
        ["provision", "revoke", "front-door"],
        ["provision", "broker", "--out", "porch.conf"],
    ],
)
def test_commands_refuse_missing_hub_state_and_create_nothing(tmp_path, args):
    data, pki = tmp_path / "no-hub-here", tmp_path / "no-pki-here"
    config = tmp_path / "hub.toml"
    config.write_text(f'data_dir = "{data}"\n[provisioning]\npki_dir = "{pki}"\n')
    before = files_under(tmp_path)
    result = porch(*args[:2], "--config", str(config), *args[2:], cwd=tmp_path,
                   stdin="a long passphrase\na long passphrase\n")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(data / "hub.sqlite") in result.stderr or str(pki) in result.stderr, result.stderr
    assert files_under(tmp_path) == before, "the refused command created something"


def test_audit_verify_without_config_does_not_touch_the_default_path(tmp_path):
    default = Path("/var/lib/porch-hub/hub.sqlite")
    existed = default.exists()
    result = porch("audit", "verify", cwd=tmp_path)
    if existed:
        pytest.skip("a real hub lives on this machine")
    assert result.returncode == 2
    assert "no hub database at /var/lib/porch-hub/hub.sqlite" in result.stderr
    assert "intact" not in result.stdout
    assert not default.exists()
