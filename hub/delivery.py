"""Approved area-request bundles go to the agency's drop box: sealed to the agency's
X25519 key (:func:`porch.core.seal.seal_stream`), uploaded in chunks that resume where the
drop box says it stands (a cut connection, a restart of either side), each once, on a
thread of their own. Declined, ignored or unmatched requests never get here: this is the
only code that connects to an agency.

The drop box protocol (:mod:`porch.core.area`): ``POST /v1/uploads`` with the request id,
size and SHA-256 of the sealed bundle opens an upload (or finds the one already under way);
``PATCH`` sends bytes at ``Upload-Offset``; ``HEAD`` tells the offset; the last chunk's
answer says whether the drop box received and verified the bundle.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from porch.core.area import CHUNK_TYPE, OFFSET_HEADER, UPLOADS_PATH
from porch.core.fsutil import sha256_file
from porch.core.seal import seal_stream
from porch.hub.consent import Consent
from porch.hub.outbound import OutboundRefused, check_addresses, parse_target, public_session

log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS area_deliveries (
    request_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,         -- queued | sending | delivered | failed | withdrawn
    sent INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL
);
"""
CHUNK = 1024 * 1024
ATTEMPTS = 8
TIMEOUT_S = 30.0


def delivery_status(conn: sqlite3.Connection, request_id: str) -> dict:
    """Where a delivery stands: none, queued, sending (percent), delivered, failed or
    withdrawn (on the caller's connection: the web app reads it with its own)."""
    row = conn.execute(
        "SELECT state, sent, total, error FROM area_deliveries WHERE request_id = ?",
        (request_id,),
    ).fetchone()
    if row is None:
        return {"state": "none", "percent": 0, "error": ""}
    percent = int(100 * row[1] / row[2]) if row[2] else 0
    return {"state": row[0], "percent": percent, "error": row[3]}


class DeliveryError(Exception):
    """The drop box did not take the bundle (yet: it is tried again); ``str()`` says why."""


class DeliveryRefused(DeliveryError):
    """The drop box will not take this bundle: not tried again."""


class Deliveries:
    """One thread sends approved area bundles, one at a time, with their progress."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        consent: Consent,
        root: Path,
        allow_loopback_http: bool = False,
        backoff_s: Callable[[int], float] = lambda attempt: min(60.0, 0.5 * 2**attempt),
    ):
        self.conn = conn
        self.allow_loopback_http = allow_loopback_http
        self.consent = consent
        self.root = root
        self.backoff_s = backoff_s
        self.conn.executescript(SCHEMA)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="deliveries", daemon=True)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        """The connection is shared by this thread and the builder's (which schedules)."""
        self._schedule = threading.Lock()

    def start(self) -> None:
        self._thread.start()
        with self._lock:
            rows = self.conn.execute(
                "SELECT request_id FROM area_deliveries WHERE state IN ('queued', 'sending')"
            ).fetchall()
        for (request_id,) in rows:  # a restart resumes what was under way
            self._queue.put(request_id)

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=TIMEOUT_S)

    def schedule(self, request_id: str) -> None:
        """Send an approved area request's bundle (built already), unless it is on its way
        or delivered."""
        with self._schedule:
            state = self.status(request_id)["state"]
            if state in ("queued", "sending", "delivered"):
                return
            self._set(request_id, "queued", 0, 0, "")
        self._queue.put(request_id)

    def status(self, request_id: str) -> dict:
        with self._lock:
            return delivery_status(self.conn, request_id)

    def _set(self, request_id: str, state: str, sent: int, total: int, error: str) -> None:
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT INTO area_deliveries (request_id, state, sent, total, error, updated)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET"
                " state = excluded.state, sent = excluded.sent, total = excluded.total,"
                " error = excluded.error, updated = excluded.updated",
                (request_id, state, sent, total, error[:500], time.time()),
            )

    def _run(self) -> None:
        while (request_id := self._queue.get()) is not None:
            try:
                self._deliver(request_id)
            except Exception as exc:  # one delivery's failure is recorded, the thread goes on
                log.exception("delivery of request %s failed", request_id)
                self._set(request_id, "failed", 0, 0, f"{type(exc).__name__}: {exc}")

    def _deliver(self, request_id: str) -> None:
        request = self.consent.get(request_id)
        bundle = self.consent.bundle(request_id)
        if request is None or not request.from_area or bundle is None:
            self._set(request_id, "failed", 0, 0, "no built bundle of an area request")
            return
        if "withdrawn_at" in request.decision:
            self._set(request_id, "withdrawn", 0, 0, "the agency withdrew the request")
            return
        origin = request.origin
        try:  # the address as parsed, rebuilt; resolved now, as the connection will be
            dropbox = parse_target(origin["dropbox"], "the drop box",
                                   allow_loopback_http=self.allow_loopback_http)  # fmt: skip
            check_addresses(dropbox, "the drop box")
        except OutboundRefused as exc:
            self._set(request_id, "failed", 0, 0, str(exc))
            return
        sealed = self.root / f".{bundle['bundle_id']}.sealed"
        if not sealed.exists():
            partial = sealed.with_suffix(".partial")
            with open(bundle["path"], "rb") as source, open(partial, "wb") as target:
                seal_stream(source, target, bytes.fromhex(origin["encryption_key"]))
                target.flush()
                os.fsync(target.fileno())
            os.replace(partial, sealed)
        size = sealed.stat().st_size
        digest = sha256_file(sealed)
        error = ""
        for attempt in range(ATTEMPTS):
            if self._stopping.is_set():
                return
            try:
                answer = self._upload(request_id, dropbox.url, origin, sealed, size, digest)
            except (DeliveryRefused, OutboundRefused) as exc:
                self._set(request_id, "failed", 0, size, str(exc))
                return
            except (requests.RequestException, DeliveryError, ValueError) as exc:
                error = str(exc)[:300]
                log.warning("delivery of request %s, attempt %d: %s", request_id, attempt + 1,
                            error)  # fmt: skip
                self._set(request_id, "sending", 0, size, f"retrying: {error}")
                self._stopping.wait(self.backoff_s(attempt))
                continue
            self._set(request_id, "delivered", size, size, "")
            self.consent.audit.append("hub", "delivered", request_id, {
                "dropbox": origin["dropbox"], "bytes": size, "sealed_sha256": digest,
                "answer": answer,
            })  # fmt: skip
            sealed.unlink(missing_ok=True)
            return
        self._set(request_id, "failed", 0, size, error)

    def _upload(
        self, request_id: str, dropbox: str, origin: dict, sealed: Path, size: int, digest: str
    ) -> dict:
        """Open (or find) the upload and send what the drop box lacks; DeliveryRefused when
        it has all and will not take it (no retry: the same bytes would be refused again)."""
        base = dropbox.rstrip("/") + UPLOADS_PATH
        with public_session(self.allow_loopback_http) as session:  # checked as it connects
            session.max_redirects = 0
            opened = session.post(base, json={"request_id": origin["area_request_id"],
                                              "size": size, "sha256": digest},
                                  timeout=TIMEOUT_S, allow_redirects=False)  # fmt: skip
            if opened.status_code not in (200, 201):
                raise DeliveryError(f"the drop box refused the upload: {_said(opened)}")
            reply = opened.json()
            url, offset = f"{base}/{reply['upload']}", _offset(reply.get("offset"), size)
            if reply.get("state") == "received":
                return reply
            if reply.get("state") == "refused" or offset == size:
                raise DeliveryRefused(f"the drop box has it and refused it: {reply}"[:300])
            with open(sealed, "rb") as source:
                while True:
                    source.seek(offset)
                    chunk = source.read(CHUNK)
                    headers = {OFFSET_HEADER: str(offset), "Content-Type": CHUNK_TYPE}
                    sent = session.patch(url, data=chunk, timeout=TIMEOUT_S, headers=headers,
                                         allow_redirects=False)  # fmt: skip
                    if sent.status_code == 409:  # out of step: the drop box says where it is
                        said = _offset(sent.headers.get(OFFSET_HEADER), size)
                        if said == offset:
                            raise DeliveryError("the drop box takes no more of it")
                        offset = said
                        if offset == size:
                            raise DeliveryRefused("the drop box has it all and did not take it")
                        continue
                    if sent.status_code == 422:
                        raise DeliveryRefused(f"the drop box refused the bundle: {_said(sent)}")
                    if sent.status_code not in (200, 201, 204):
                        raise DeliveryError(f"the drop box refused a chunk: {_said(sent)}")
                    said = _offset(sent.headers.get(OFFSET_HEADER, offset + len(chunk)), size)
                    if said <= offset:
                        raise DeliveryError("the drop box took a chunk without moving on")
                    offset = said
                    self._set(request_id, "sending", offset, size, "")
                    if offset == size:
                        return sent.json() if sent.content else {}


def _offset(value, size: int) -> int:
    """An offset the drop box gave: a whole number within the upload."""
    try:
        offset = int(value)
    except (TypeError, ValueError):
        raise DeliveryError(f"the drop box gave no usable offset ({value!r})") from None
    if not 0 <= offset <= size:
        raise DeliveryError(f"the drop box gave an offset outside the upload ({offset})")
    return offset


def _said(response: requests.Response) -> str:
    return f"{response.status_code} {response.text[:200]}"
