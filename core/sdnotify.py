"""systemd's notify protocol (``Type=notify`` with ``WatchdogSec=``): READY=1 once serving,
WATCHDOG=1 from the main loop, STOPPING=1 on the way out. A no-op outside systemd.

The protocol is one datagram to the socket named in ``$NOTIFY_SOCKET``; this is all of it.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import suppress


class Notifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        self._address = address
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.interval_s = usec / 2e6 if usec else 0.0
        """How often to ping: half the watchdog timeout (0: no watchdog)."""
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, state: str) -> None:
        if not self._address:
            return
        # systemd gone away: nothing to tell
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, suppress(OSError):
            sock.sendto(state.encode(), self._address)

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """Ping if half the watchdog interval has passed; cheap enough to call every frame."""
        if not self.interval_s:
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self.send("WATCHDOG=1")
