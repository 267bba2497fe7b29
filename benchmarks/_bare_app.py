"""The comparison app of benchmarks/load_test.py: one FastAPI endpoint returning a constant JSON object, served by
uvicorn with exactly the options `vram serve` uses (vram.cli.serve.uvicorn_options).

    .venv/bin/python benchmarks/_bare_app.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

from fastapi import FastAPI

app = FastAPI()
ANSWER = {"model": "llama-3.1-8b", "fits": True, "total_bytes": 17_869_635_584}


@app.post("/api/v1/estimate")
async def estimate() -> dict[str, Any]:
    return ANSWER


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"ok": True}


if __name__ == "__main__":
    import uvicorn

    from vram.cli.serve import uvicorn_options

    uvicorn.run(app, **uvicorn_options("127.0.0.1", int(sys.argv[1]), 1))
