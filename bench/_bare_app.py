"""The baseline of bench/kbs_handshake.py: a bare FastAPI app with the three RCAR routes answering fixed JSON,
served by uvicorn exactly like `kbs serve` (same server, same loop, no database, no crypto).

    python bench/_bare_app.py PORT [WORKERS]
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/kbs/v0/auth")
async def auth() -> JSONResponse:
    response = JSONResponse({"nonce": "AAAA", "extra-params": ""})
    response.set_cookie("kbs-session-id", "x", httponly=True, samesite="strict")
    return response


@app.post("/kbs/v0/attest")
async def attest() -> JSONResponse:
    return JSONResponse({"token": "x.eyJleHAiOjQxMDI0NDQ4MDB9.x"})


@app.get("/kbs/v0/resource/{path:path}")
async def resource(path: str) -> JSONResponse:
    return JSONResponse({"protected": "", "encrypted_key": "", "iv": "", "ciphertext": path, "tag": ""})


@app.get("/readyz")
async def ready() -> JSONResponse:
    return JSONResponse({"status": "ready"})


if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run(
        "_bare_app:app" if workers > 1 else app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # as `kbs serve` runs uvicorn: no proxy-headers middleware in front of either app
    )
