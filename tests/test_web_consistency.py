"""For every catalog model on five GPUs, the page says what `vram fit --json` says: the verdict, the longest context
and the bytes on the fullest GPU (the page computes nothing of its own)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from test_web_support import app_for, client_for, settings_for
from vram.catalog import all_models

pytestmark = pytest.mark.anyio
GPUS = ("rtx-3060-12gb", "rtx-4090", "l4", "a100-80gb-sxm", "h100-sxm")
LABELS = {"fits": "Fits", "tight": "Tight", "no": "Does not fit"}


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One app for all the models (building one, and compiling its templates, takes longer than a check)."""
    with app_for(settings_for(tmp_path_factory.mktemp("consistency"), anon_daily_tokens=10**9)) as app:
        yield app


@pytest.mark.parametrize("model", [m.id for m in all_models()])
async def test_the_page_says_what_vram_fit_says(model: str, shared_app: Any, run_cli: Any) -> None:
    async with client_for(shared_app) as c:
        await c.get("/")
        for gpu in GPUS:
            cli = run_cli("fit", model, "--gpu", gpu, "--context", "8192", "--new-tokens", "256", "--json")
            assert cli.rc == 0, cli.err
            want = json.loads(cli.out)
            r = await c.post(
                "/",
                data={
                    "model": model,
                    "gpu": gpu,
                    "gpu_count": "1",
                    "context": "8k",
                    "new_tokens": "256",
                    "batch": "1",
                    "mode": "inference",
                    "engine": "transformers",
                    "dtype": "bfloat16",
                    "headroom": "20",
                    "csrf_token": c.cookies["vram_csrf"],
                },
            )
            assert r.status_code == 200, (gpu, r.text[-500:])
            page = r.text
            label = re.search(r'id="verdict"[^>]*>\s*<strong>([^<]+)</strong>', page)
            assert label and label.group(1) == LABELS[want["verdict"]], (gpu, want["verdict"])
            shown = re.search(r'id="total-gib" data-bytes="(\d+)"', page)
            assert shown and int(shown.group(1)) == want["per_gpu_bytes"], gpu
            ctx = re.search(r'id="max-context">([^<]+)<', page)
            if want["max_context"] is None:
                assert ctx is None or ctx.group(1) == "none fits", gpu
            else:
                assert ctx and ctx.group(1) == f"{want['max_context']:,}", gpu
