"""The agency's drop box: where hubs upload the bundles their owners approved.

Hubs come without names, so anyone may upload, but only for a request this agency issued
and has not withdrawn, up to a size, in chunks that resume (``porch.core.area``'s
protocol: POST opens an upload, PATCH appends at ``Upload-Offset``, HEAD tells it). When the
last byte is in, the sealed bundle must hash to what was announced, open with the agency's
key and verify as ``porch verify`` does (intact, under the CA it carries, whose fingerprint
is recorded: the agency can ask the home to confirm it), and answer this very request.
Only then is it kept. The agency learns how many bundles came per request, nothing more.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import threading
import time
import zipfile

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from porch.agency.desk import Desk
from porch.core.area import MAX_UPLOAD_BYTES, OFFSET_HEADER, UPLOADS_PATH
from porch.core.fsutil import sha256_file
from porch.core.seal import SealError, open_stream
from porch.hub.export.bundle import BundleError
from porch.hub.export.verify import verify_bundle

MAX_CHUNK_BYTES = 8 * 1024 * 1024
STALE_S = 24 * 3600
"""An unfinished upload untouched this long is deleted (its hub starts again if it lives)."""
OPEN_PER_REQUEST = 200
"""Unfinished uploads one request may have (hubs are anonymous: anyone may start one)."""
FREE_RESERVE_BYTES = 1024**3
"""An upload is refused when it would leave less than this free on the drop box's disk."""


class Opening(BaseModel):
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    size: int = Field(gt=0, le=MAX_UPLOAD_BYTES)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def create_dropbox(desk: Desk) -> FastAPI:
    root = desk.agency.root
    uploads, bundles = root / "uploads", root / "bundles"
    for folder in (uploads, bundles):
        folder.mkdir(mode=0o700, exist_ok=True)
    app = FastAPI(title="Porch agency drop box", docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    lock = threading.Lock()

    def row(upload_id: str) -> tuple | None:
        return desk.conn.execute(
            "SELECT request_id, size, sha256, received, finished, bundle FROM received"
            " WHERE upload_id = ?",
            (upload_id,),
        ).fetchone()

    def forget_stale(now: float) -> None:
        stale = desk.conn.execute(
            "SELECT upload_id FROM received WHERE finished IS NULL AND started < ?",
            (now - STALE_S,),
        ).fetchall()
        for (upload_id,) in stale:
            (uploads / f"{upload_id}.part").unlink(missing_ok=True)
            desk.conn.execute("DELETE FROM received WHERE upload_id = ?", (upload_id,))

    @app.post(UPLOADS_PATH, status_code=201)
    def open_upload(opening: Opening) -> dict:
        if not desk.active(opening.request_id):
            raise HTTPException(404, "no open request of this agency has that id")
        with lock, desk.conn:
            forget_stale(time.time())
            found = desk.conn.execute(
                "SELECT upload_id, received, bundle, finished, verified FROM received"
                " WHERE request_id = ? AND sha256 = ? AND size = ?",
                (opening.request_id, opening.sha256, opening.size),
            ).fetchone()
            if found is not None:  # the same bundle again: resume (or it is in already)
                upload_id, received, bundle, finished, verified = found
                if bundle:
                    return {"upload": upload_id, "offset": received, "state": "received"}
                if finished is not None:
                    return {"upload": upload_id, "offset": received, "state": "refused",
                            "reason": verified}  # fmt: skip
                return {"upload": upload_id, "offset": received, "state": "receiving"}
            (unfinished,) = desk.conn.execute(
                "SELECT COUNT(*) FROM received WHERE request_id = ? AND finished IS NULL",
                (opening.request_id,),
            ).fetchone()
            if unfinished >= OPEN_PER_REQUEST:
                raise HTTPException(429, "too many unfinished uploads for this request")
            if shutil.disk_usage(uploads).free < opening.size * 2 + FREE_RESERVE_BYTES:
                raise HTTPException(507, "no room for that upload now")
            upload_id = secrets.token_hex(16)
            desk.conn.execute(
                "INSERT INTO received (upload_id, request_id, size, sha256, started)"
                " VALUES (?, ?, ?, ?, ?)",
                (upload_id, opening.request_id, opening.size, opening.sha256, time.time()),
            )
        (uploads / f"{upload_id}.part").touch(mode=0o600)
        return {"upload": upload_id, "offset": 0, "state": "receiving"}

    @app.head(UPLOADS_PATH + "/{upload_id}")
    def where(upload_id: str) -> Response:
        found = row(upload_id)
        if found is None:
            raise HTTPException(404, "no such upload")
        return Response(headers={OFFSET_HEADER: str(found[3])})

    @app.patch(UPLOADS_PATH + "/{upload_id}")
    async def append(upload_id: str, request: Request) -> Response:
        found = row(upload_id)
        if found is None:
            raise HTTPException(404, "no such upload")
        request_id, size, digest, received, finished, _ = found
        try:
            offset = int(request.headers.get(OFFSET_HEADER, ""))
        except ValueError:
            raise HTTPException(400, f"{OFFSET_HEADER} is missing") from None
        if finished is not None or offset != received:
            return Response(status_code=409, headers={OFFSET_HEADER: str(received)})
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_CHUNK_BYTES or offset + len(body) > size:
                raise HTTPException(413, "more than the chunk or the upload may hold")
        with lock:
            now = row(upload_id)
            if now is None:  # expired meanwhile
                raise HTTPException(404, "no such upload")
            if now[3] != offset:  # another request appended meanwhile
                return Response(status_code=409, headers={OFFSET_HEADER: str(now[3])})
            with open(uploads / f"{upload_id}.part", "r+b") as handle:
                handle.seek(offset)
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            with desk.conn:
                desk.conn.execute("UPDATE received SET received = ? WHERE upload_id = ?",
                                  (offset + len(body), upload_id))  # fmt: skip
        offset += len(body)
        if offset < size:
            return Response(status_code=204, headers={OFFSET_HEADER: str(offset)})
        answer = await asyncio.to_thread(finish, upload_id, request_id, digest)
        status = 201 if answer["state"] == "received" else 422
        return Response(json.dumps(answer), status, {OFFSET_HEADER: str(offset)},
                        media_type="application/json")  # fmt: skip

    def finish(upload_id: str, request_id: str, digest: str) -> dict:
        part = uploads / f"{upload_id}.part"
        bundle = bundles / f"{upload_id}.zip"
        try:
            if sha256_file(part) != digest:
                raise BundleError("the upload is not the one announced (SHA-256)")
            with open(part, "rb") as source, open(bundle, "wb") as target:
                open_stream(source, target, desk.agency.encrypt_key())
            result = verify_bundle(bundle)
            with zipfile.ZipFile(bundle) as archive:
                manifest = json.loads(archive.read("manifest.json"))
            origin = manifest["request"].get("origin") or {}
            if origin.get("area_request_id") != request_id:
                raise BundleError("the bundle answers another request")
        except (BundleError, SealError, OSError, KeyError, ValueError) as exc:
            bundle.unlink(missing_ok=True)
            with desk.conn:
                desk.conn.execute(
                    "UPDATE received SET finished = ?, verified = ? WHERE upload_id = ?",
                    (time.time(), f"refused: {exc}", upload_id),
                )
            return {"state": "refused", "reason": str(exc)}
        finally:
            part.unlink(missing_ok=True)
        verified = {"bundle_id": result.bundle_id, "clips": result.clips,
                    "excerpts": result.excerpts, "credentials": result.credentials}  # fmt: skip
        with desk.conn:
            desk.conn.execute(
                "UPDATE received SET finished = ?, bundle = ?, verified = ?, home_ca = ?"
                " WHERE upload_id = ?",
                (time.time(), str(bundle), json.dumps(verified), result.ca_fingerprint,
                 upload_id),
            )  # fmt: skip
        return {"state": "received", "verified": True, "bundle_id": result.bundle_id}

    return app


class DropBox:
    """The drop box served by uvicorn on a thread (``porch agency dropbox`` runs it in the
    foreground; tests and benchmarks start and stop it)."""

    def __init__(self, desk: Desk, host: str, port: int):
        config = uvicorn.Config(create_dropbox(desk), host=host, port=port, log_level="warning",
                                access_log=False)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.url = f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        self.server.run()

    def start(self, timeout_s: float = 30) -> None:
        self._thread = threading.Thread(target=self.run, name="dropbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the drop box did not start at {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
