"""Bundles are built in the background, as soon as the owner approves: once per approval,
whatever the clicks, one at a time on a thread of their own, with their progress for the
owner's and the requester's pages (which ask for it). A face-blurred export takes minutes;
nobody's download request waits on it, and a second click never starts a second build.

The builder has its own database connection (the audit log appends in an IMMEDIATE
transaction, so its chain stays one chain). At start the hub schedules every live approval
that has no bundle yet, so a restart resumes what was under way.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from porch.hub.consent import ConsentError
from porch.hub.exporter import Exporter

log = logging.getLogger(__name__)


@dataclass
class BuildStatus:
    state: str
    """none (nothing approved), queued, building, ready or failed."""
    percent: int = 0
    error: str = ""

    def public(self) -> dict:
        return asdict(self)


class BundleBuilds:
    def __init__(self, exporter: Exporter, on_change: Callable[[str, BuildStatus], None]):
        self.exporter = exporter
        self._on_change = on_change
        self._status: dict[str, BuildStatus] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="bundles", daemon=True)
        self.builds = 0
        """Builds started (tests count them)."""

    def start(self) -> None:
        self._thread.start()
        for request in self.exporter.consent.all(None):
            if request.approval_live and not self._built(request.request_id):
                self.schedule(request.request_id, "hub")

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def schedule(self, request_id: str, actor: str) -> BuildStatus:
        """Queue the build of an approved request's bundle, unless it is queued, being
        built or built already."""
        with self._lock:
            current = self._status.get(request_id)
            if current is not None and current.state in ("queued", "building", "ready"):
                return current
            status = BuildStatus("queued")
            self._status[request_id] = status
        self._queue.put((request_id, actor))
        self._on_change(request_id, status)
        return status

    def status(self, request_id: str) -> BuildStatus:
        with self._lock:
            known = self._status.get(request_id)
        if known is not None and (known.state != "ready" or self._built(request_id)):
            return known
        return BuildStatus("ready", 100) if self._built(request_id) else BuildStatus("none")

    def _built(self, request_id: str) -> bool:
        bundle = self.exporter.consent.bundle(request_id)
        return bundle is not None and Path(bundle["path"]).exists()

    def _set(self, request_id: str, status: BuildStatus) -> None:
        with self._lock:
            self._status[request_id] = status
        self._on_change(request_id, status)

    def _reporter(self, request_id: str) -> Callable[[float], None]:
        """A progress callback that passes on each whole percent once."""
        last = [0]

        def progress(fraction: float) -> None:
            percent = min(99, int(fraction * 100))
            if percent != last[0]:
                last[0] = percent
                self._set(request_id, BuildStatus("building", percent))

        return progress

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            request_id, actor = job
            self.builds += 1
            self._set(request_id, BuildStatus("building"))
            try:
                self.exporter.build(request_id, actor, progress=self._reporter(request_id))
            except ConsentError as exc:
                log.warning("bundle of request %s not built: %s", request_id, exc)
                self._set(request_id, BuildStatus("failed", error=str(exc)))
            except Exception as exc:  # a bug costs this bundle, never the builder
                log.exception("bundle of request %s failed", request_id)
                self._set(request_id, BuildStatus("failed", error=f"{type(exc).__name__}: {exc}"))
            else:
                self._set(request_id, BuildStatus("ready", 100))
