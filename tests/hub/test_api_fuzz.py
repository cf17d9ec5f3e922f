"""Schemathesis over the hub's own OpenAPI schema, signed in as the owner: no 5xx anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from porch.hub.web.auth import CSRF_HEADER, SESSION_COOKIE
from tests.support.hub import start_hub

ST = Path(sys.executable).parent / "st"


def test_no_route_answers_with_a_server_error(tmp_path, broker):
    hub = start_hub(tmp_path / "hub", broker, simulated_press=lambda: None)
    try:
        hub.accounts.add_user("owner", "correct horse battery", "owner")
        token = hub.accounts.open_session("owner")
        csrf = hub.accounts.session(token).csrf
        result = subprocess.run(
            [
                str(ST),
                "run",
                f"{hub.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"Cookie: {SESSION_COOKIE}={token}",
                "--header",
                f"{CSRF_HEADER}: {csrf}",
                # An endless event stream and the end of the session are not for a fuzzer.
                "--exclude-path",
                "/events/stream",
                "--exclude-path",
                "/logout",
                "--max-examples",
                "40",
                "--request-timeout",
                "20",
                "--generation-deterministic",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "passed" in result.stdout.lower()
    finally:
        hub.stop()
