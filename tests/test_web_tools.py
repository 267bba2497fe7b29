"""The "paste your log" and "models that fit my GPU" pages: the same answers as `vram explain` and `vram models
--fits`, without JavaScript, priced, with JSON twins; bad input costs nothing."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from test_web_support import client_for

pytestmark = pytest.mark.anyio
LOG = (Path(__file__).resolve().parent / "data" / "explain" / "vllm-10517-29k.log").read_text()


async def test_paste_a_log(app: Any) -> None:
    from vram.diagnosis import explain

    lib = explain(LOG, model="llama-3.1-8b").to_dict()
    async with client_for(app) as c:
        page = await c.get("/explain")
        assert page.status_code == 200 and '<form method="post" action="/explain"' in page.text
        r = await c.post("/explain", data={"log": LOG, "model": "llama-3.1-8b", "csrf_token": c.cookies["vram_csrf"]})
        assert r.status_code == 200, r.text[:400]
        text = html.unescape(r.text)
        assert "vllm log · ran out of memory" in text and lib["fix"] in text
        assert f"Differs most:</strong> {lib['why']}" in text
        assert r.headers["ratelimit-remaining"] == "2250"  # an explanation costs what a fit does
        j = await c.post("/explain.json", json={"log": LOG, "model": "llama-3.1-8b"})
        assert j.status_code == 200 and j.json() == lib


async def test_paste_errors_cost_nothing(app: Any) -> None:
    async with client_for(app) as c:
        await c.get("/explain")
        csrf = c.cookies["vram_csrf"]
        r = await c.post("/explain", data={"log": LOG, "model": "no-such-model-xyz", "csrf_token": csrf})
        assert r.status_code == 422 and "unknown model" in r.text
        r = await c.post("/explain", data={"log": "nothing to see here", "csrf_token": csrf})
        assert r.status_code == 200 and "a recognisable log" in r.text
        assert r.headers["ratelimit-remaining"] == "2500"
        r = await c.post("/explain", data={"log": LOG})  # no CSRF token
        assert r.status_code == 403
        j = await c.post("/explain.json", json={"model": "x"})
        assert j.status_code == 422 and j.json()["field"] == "log"


async def test_models_that_fit_my_gpu(app: Any) -> None:
    from vram.hardware import models_for

    lib = [m.model for m in models_for("rtx-4060-ti-16gb", engine="llama.cpp", context=8192)]
    async with client_for(app) as c:
        page = await c.get("/fits")
        assert page.status_code == 200 and 'id="fits-form"' in page.text and 'id="fits-table"' not in page.text
        r = await c.get("/fits", params={"gpu": "rtx-4060-ti-16gb", "engine": "llama.cpp", "context": "8k"})
        assert r.status_code == 200
        rows = [line.split(">")[-1] for line in r.text.split("</a></th>")[:-1]]
        assert rows == lib  # the page shows the library's ranking, in order
        assert r.headers["ratelimit-remaining"] == "1500"  # the which price
        j = await c.get("/fits.json", params={"gpu": "m4-pro-48gb"})
        top = models_for("m4-pro-48gb", engine="llama.cpp", context=8192)[0].model
        assert j.status_code == 200 and j.json()["models"][0]["model"] == top
        bad = await c.get("/fits.json", params={"gpu": "no-such-gpu"})
        assert bad.status_code == 422 and bad.json()["field"] == "gpu"
        assert json.loads(bad.text)["error"].startswith("unknown GPU")
