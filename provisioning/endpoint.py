"""The enrollment endpoint: HTTPS with the hub's certificate (which the token pins), one
route. A refused request gets 403 with the reason; nothing is written for it."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from porch.core.enrollment import EnrollError, EnrollRequest
from porch.core.wire import DEVICE_ID_PATTERN
from porch.provisioning.authority import HomeAuthority


class EnrollBody(BaseModel):
    secret: str = Field(min_length=16, max_length=128)
    name: str = Field(pattern=DEVICE_ID_PATTERN)
    expires: int = Field(ge=0)
    csr: str = Field(min_length=1, max_length=16 * 1024)
    sign_key: str = Field(pattern=r"^[0-9a-f]{64}$")


def create_enroll_app(authority: HomeAuthority) -> FastAPI:
    app = FastAPI(title="Porch enrollment", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/enroll")
    async def enroll(body: EnrollBody) -> JSONResponse:
        try:
            answer = await asyncio.to_thread(authority.enroll, EnrollRequest(**body.model_dump()))
        except EnrollError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return JSONResponse(answer)

    return app
