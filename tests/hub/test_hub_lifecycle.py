"""A stopped hub lets go of its files: a restart, or a test run that starts hundreds of
hubs in one process, must not pile up open descriptors (paho's select() fails past 1024)."""

import os
from pathlib import Path

from tests.support.hub import start_hub


def open_files_under(directory: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed since
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def test_a_stopped_hub_holds_no_open_files(tmp_path, broker):
    data = tmp_path / "hub"
    for _ in range(2):  # a restart on the same data, as systemd would do it
        service = start_hub(data, broker)
        assert open_files_under(data), "a running hub holds its database open"
        service.stop()
        assert open_files_under(data) == []
