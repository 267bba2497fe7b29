"""The server-rendered pages: the calculator works without JavaScript, forms need the CSRF token, output is escaped,
every page has a JSON twin, the schema matches the migrations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from test_web_support import app_for, client_for, hidden_fields, settings_for
from vram import speed

pytestmark = pytest.mark.anyio
FORM = {
    "model": "llama-3.1-8b",
    "context": "8k",
    "batch": "1",
    "new_tokens": "256",
    "gpu": "rtx-4090",
    "gpu_count": "1",
    "mode": "inference",
    "engine": "transformers",
    "dtype": "bfloat16",
    "headroom": "20",
}


async def _csrf(c: Any) -> str:
    await c.get("/")
    return str(c.cookies["vram_csrf"])


async def test_calculator_without_javascript(app: Any) -> None:
    from vram.fitting import fit
    from vram.request import Workload
    from vram.units import GIB

    async with client_for(app) as c:
        page = await c.get("/")
        assert page.status_code == 200
        assert '<form method="post" action="/#result" id="calc"' in page.text
        for label in ('for="model"', 'for="gpu"', 'for="context"', 'for="batch"', 'for="quant"'):
            assert label in page.text
        assert '<main id="main"' in page.text and "<nav" in page.text
        r = await c.post("/", data={**FORM, "csrf_token": c.cookies["vram_csrf"]})
        moe = await c.post(
            "/", data={**FORM, "model": "qwen3-30b-a3b", "gpu": "h100-sxm", "csrf_token": c.cookies["vram_csrf"]}
        )
    assert r.status_code == 200, r.text[:500]
    lib = fit("llama-3.1-8b", "rtx-4090", Workload(context=8192, new_tokens=256))
    assert lib.verdict == "fits"
    assert re.search(r'id="verdict".*?<strong>Fits</strong> on 1× NVIDIA GeForce RTX 4090', r.text, re.S)
    assert f"{lib.per_gpu_bytes / GIB:,.2f}" in r.text or f"{lib.estimate.total_bytes / GIB:,.2f}" in r.text
    assert '<svg id="bar-chart"' in r.text and '<svg id="context-chart"' in r.text
    # at 8 k tokens transformers' cache moves (cat, the attention's gather, 4 reads per GQA group) outlast its Python
    # dispatch on a 4090: the step is the memory's, and the range is the decode spread, not the hosts'
    assert lib.speed is not None and lib.speed.calibrated and lib.speed.decode_range_per_seq is not None
    assert lib.speed.decode_bound == "memory"
    lo, hi = speed.speed_spread("transformers/cuda", "decode")
    assert lib.speed.decode_range_per_seq == pytest.approx(
        (lib.speed.decode_tokens_per_s_per_seq * lo, lib.speed.decode_tokens_per_s_per_seq * hi)
    )
    assert 'id="decode-range"' in r.text and 'id="speed-uncalibrated"' not in r.text
    # ... but its MoE blocks' expert loop is not measured: the page says so instead of showing a range
    assert moe.status_code == 200, moe.text[:500]
    assert 'id="speed-uncalibrated"' in moe.text and 'id="decode-range"' not in moe.text
    assert "polyline" in r.text and "vllm serve meta-llama/Llama-3.1-8B" in r.text
    assert r.headers["ratelimit-remaining"] == "2250"  # a check against a GPU is a fit: 250 tokens
    fields = hidden_fields(r.text)
    assert fields["kind"] == "check" and len(fields["signature"]) == 64


async def test_estimate_only_and_training_from_the_form(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post("/", data={**FORM, "gpu": "", "csrf_token": csrf})
        assert r.status_code == 200 and 'id="verdict"' not in r.text and "Breakdown" in r.text
        assert r.headers["ratelimit-remaining"] == "2400"
        r = await c.post(
            "/",
            data={
                **FORM,
                "mode": "train",
                "method": "lora",
                "precision": "bf16",
                "optimizer": "adamw",
                "lora_rank": "16",
                "csrf_token": csrf,
            },
        )
        assert r.status_code == 200, r.text[:300]
        assert "· training" in r.text and "optimizer" in r.text


async def test_form_errors_are_shown_and_cost_nothing(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post("/", data={**FORM, "context": "lots", "csrf_token": csrf})
        assert r.status_code == 422
        assert 'role="alert"' in r.text and "context" in r.text
        assert 'id="context" name="context" type="text" value="lots"' in r.text
        assert 'aria-invalid="true"' in r.text
        r = await c.post("/", data={**FORM, "model": "<script>alert(1)</script>", "csrf_token": csrf})
        assert r.status_code == 422
        assert "<script>alert(1)</script>" not in r.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
        assert r.headers["ratelimit-remaining"] == "2500"


async def test_forms_need_the_csrf_token(app: Any) -> None:
    async with client_for(app) as c:
        await _csrf(c)
        r = await c.post("/", data=FORM, headers={"accept": "text/html"})
        assert r.status_code == 403 and "reload the page" in r.text
        r = await c.post("/", data={**FORM, "csrf_token": "forged"})
        assert r.status_code == 403
        r = await c.post("/signup", data={"email": "x@example.com", "password": "long enough pw"})
        assert r.status_code == 403
        assert (await c.get("/api/v1/quota")).json()["remaining"] == 2500


async def test_share_and_save_from_the_page(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post("/", data={**FORM, "csrf_token": csrf})
        fields = hidden_fields(r.text)
        r = await c.post("/share", data=fields)
        assert r.status_code == 201
        url = re.search(r'id="share-link" href="http://testserver(/s/[A-Za-z0-9_-]{22,})"', r.text)
        assert url, r.text[:2000]
        assert "Revoke link" in r.text
        delete_token = hidden_fields(r.text)["delete_token"]
        # saving signed out: the sign-in page carries the signed result, to save it once signed in
        r = await c.post("/save", data=fields)
        assert r.status_code == 200 and 'id="pending-save"' in r.text
        assert hidden_fields(r.text)["signature"] == fields["signature"]
        r = await c.post(
            "/signup", data={**hidden_fields(r.text), "email": "later@example.com", "password": "correct horse battery"}
        )
        assert r.status_code == 303 and re.fullmatch(r"/history/[A-Za-z0-9_-]+\?saved=1", r.headers["location"])
        saved = await c.get(r.headers["location"])
        assert "Saved to your history" in saved.text and 'id="verdict"' in saved.text
        hist = await c.get("/history")
        assert "llama-3.1-8b on 1× rtx-4090 · transformers · context 8k · fits" in hist.text
    async with client_for(app, address="192.0.2.1") as stranger:
        page = await stranger.get(url.group(1))
        assert page.status_code == 200 and 'id="verdict"' in page.text and "Revoke" not in page.text
        assert '<svg id="context-chart"' in page.text
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post(f"{url.group(1)}/revoke", data={"csrf_token": csrf, "delete_token": delete_token})
        assert r.status_code == 200 and "Share revoked" in r.text
    async with client_for(app, address="192.0.2.1") as stranger:
        assert (await stranger.get(url.group(1))).status_code == 404


async def test_sign_up_save_history_and_delete_account_with_forms(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post(
            "/signup",
            data={"email": "page@example.com", "password": "long enough pw", "next": "/history", "csrf_token": csrf},
        )
        assert r.status_code == 303 and r.headers["location"] == "/history"
        assert "Nothing saved yet" in (await c.get("/history")).text
        r = await c.post("/", data={**FORM, "csrf_token": csrf})
        assert r.headers["ratelimit-limit"] == "5000"
        r = await c.post("/save", data=hidden_fields(r.text))
        assert r.status_code == 303 and r.headers["location"].startswith("/history/")
        item = await c.get(r.headers["location"])
        assert item.status_code == 200 and "Llama 3.1 8B" in item.text
        listing = (await c.get("/history.json")).json()["items"]
        assert len(listing) == 1 and "llama-3.1-8b" in listing[0]["title"]
        account = await c.get("/account")
        assert "page@example.com" in account.text
        assert (await c.get("/account.json")).json()["quota"]["limit"] == 5000
        r = await c.post("/account/delete", data={"csrf_token": csrf, "confirm": "nope"})
        assert r.status_code == 422
        r = await c.post("/account/delete", data={"csrf_token": csrf, "confirm": "delete"})
        assert r.status_code == 200 and "Account deleted" in r.text
        assert (await c.get("/history")).status_code == 303
        r = await c.post(
            "/signin", data={"email": "page@example.com", "password": "long enough pw", "csrf_token": csrf}
        )
        assert r.status_code == 401 and "wrong email or password" in r.text


async def test_open_redirects_are_refused(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post(
            "/signup",
            data={
                "email": "nx@example.com",
                "password": "long enough pw",
                "next": "//evil.example/",
                "csrf_token": csrf,
            },
        )
        assert r.headers["location"] == "/"


async def test_ask_prefills_the_form(app: Any) -> None:
    async with client_for(app) as c:
        r = await c.get("/ask", params={"q": "can I run llama 3 70b on two 4090s at 32k?"})
        assert r.status_code == 303
        page = await c.get(r.headers["location"])
    assert 'value="llama-3-70b"' in page.text and 'value="32k"' in page.text
    assert '<option value="rtx-4090" selected>' in page.text
    assert 'id="gpu_count" name="gpu_count" type="number" min="1" max="1024" inputmode="numeric" value="2"' in page.text


async def test_export_downloads(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        fields = hidden_fields((await c.post("/", data={**FORM, "csrf_token": csrf})).text)
        csv = await c.post("/export", data={**fields, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.splitlines()
        assert lines[0] == "model,gpu,gpu_count,engine,context,batch,verdict,component,bytes,GiB,explanation"
        assert lines[1].startswith("llama-3.1-8b,rtx-4090,1,transformers,8192,1,fits,weights,16060522752,")
        assert lines[-1].startswith("llama-3.1-8b,rtx-4090,1,transformers,8192,1,fits,total,")
        md = await c.post("/export", data={**fields, "format": "md"})
        assert "| weights | 14.96 |" in md.text and "**Fits**" in md.text
        js = await c.post("/export", data={**fields, "format": "json"})
        assert js.json()["result"]["estimate"]["weights_bytes"] == 16060522752
        assert js.headers["content-disposition"] == 'attachment; filename="vram-llama-3.1-8b.json"'


async def test_pages_and_json_twins(app: Any) -> None:
    async with client_for(app) as c:
        for path in ("/pricing", "/costs", "/signin", "/signup"):
            r = await c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        costs = (await c.get("/costs.json")).json()
        assert costs["operations"] == {"estimate": 100, "fit": 250, "which": 1000, "compare": 1000}
        assert costs["plan"] == {"per_model": 1000, "max": 5000}
        assert (await c.get("/pricing.json")).json()["packs"][0] == {
            "id": "starter",
            "tokens": 200000,
            "price_usd": "5.00",
            "per_estimate": 2000,
        }
        index = (await c.get("/index.json")).json()
        assert any(g["id"] == "rtx-4090" for g in index["options"]["gpus"])
        assert (await c.get("/history")).status_code == 303
        r = await c.get("/s/nonexistent", headers={"accept": "text/html"})
        assert r.status_code == 404 and "<h1>404</h1>" in r.text


def test_migrations_match_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from vram.web.storage import Base, Database, migrate

    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        migrate(db.engine)
        migrate(db.engine)  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    finally:
        db.close()
    assert diff == []
    assert mode == "wal"


def _fake_local_gpus() -> list[Any]:
    from vram.local import LocalGpu

    gib = 1024**3
    return [LocalGpu(i, "NVIDIA GeForce RTX 4090", 24 * gib, 22 * gib, 2 * gib, "555.42", "rtx-4090") for i in (0, 1)]


async def test_this_machines_gpus_only_for_local_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vram.local

    monkeypatch.setattr(vram.local, "local_gpus", _fake_local_gpus)
    body = {"model": "llama-3.1-8b", "gpu": "local", "gpu_count": 2, "context": "8k"}
    with app_for(settings_for(tmp_path, local_gpus=True)) as app:
        async with client_for(app, address="127.0.0.1") as c:
            page = await c.get("/")
            assert (
                '<option value="local" >This machine: 2 × NVIDIA GeForce RTX 4090 (22.0 GiB free)</option>' in page.text
            )
            r = await c.post("/api/v1/fit", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["usable_bytes_per_gpu"] == 22 * 1024**3 and r.json()["gpu_count"] == 2
            r = await c.post("/", data={**FORM, "gpu": "local", "gpu_count": "2", "csrf_token": c.cookies["vram_csrf"]})
            assert r.status_code == 200 and "on 2× NVIDIA GeForce RTX 4090" in r.text
        async with client_for(app, address="203.0.113.5") as remote:
            assert 'value="local"' not in (await remote.get("/")).text
            r = await remote.post("/api/v1/fit", json=body)
            assert r.status_code == 422 and r.json()["field"] == "gpu"
            assert r.headers["ratelimit-remaining"] == "2500"
    with app_for(settings_for(tmp_path / "off")) as app:  # not served locally: never offered
        async with client_for(app, address="127.0.0.1") as c:
            assert 'value="local"' not in (await c.get("/")).text
            assert (await c.post("/api/v1/fit", json=body)).status_code == 422


async def test_a_share_reopens_in_the_calculator(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        r = await c.post("/", data={**FORM, "context": "32k", "gpu_count": "2", "quant": "awq", "csrf_token": csrf})
        shared = await c.post("/share", data=hidden_fields(r.text))
        href = re.search(r'href="(/\?[^"]+)" id="open-calc"', shared.text)
        assert href
        page = await c.get(href.group(1).replace("&amp;", "&"))
    assert 'id="context" name="context" type="text" value="32k"' in page.text
    assert '<option value="awq" selected>' in page.text and 'inputmode="numeric" value="2"' in page.text


async def test_the_form_runs_ollama_and_says_what_ollama_ps_will_show(app: Any) -> None:
    async with client_for(app) as c:
        csrf = await _csrf(c)
        form = {**FORM, "model": "qwen3-8b", "engine": "ollama", "quant": "q4_k_m", "new_tokens": "16"}
        r = await c.post("/", data={**form, "csrf_token": csrf})
    assert r.status_code == 200, r.text[:500]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r.text))
    assert "num_ctx 8,208 = 8,192 prompt + 16 new tokens" in text
    assert "Ollama 0.33: llama-server -c 8208 -np 1 -b 1024 -ub 1024" in text
    assert "would show SIZE 6.1 GB, PROCESSOR 100% GPU, CONTEXT 8,208" in text
    assert "OLLAMA_FLASH_ATTENTION=1 ollama serve" in text


async def test_a_calibrated_engines_speed_shows_its_measured_range(app: Any) -> None:
    from vram.fitting import fit
    from vram.request import Workload

    form = {**FORM, "engine": "llama.cpp", "quant": "q4_k_m", "dtype": ""}
    async with client_for(app) as c:
        r = await c.post("/", data={**form, "csrf_token": await _csrf(c)})
    assert r.status_code == 200, r.text[:500]
    lib = fit(
        "llama-3.1-8b", "rtx-4090", Workload.from_flat(engine="llama.cpp", context=8192, new_tokens=256, quant="q4_k_m")
    )
    assert lib.speed is not None and lib.speed.calibrated and lib.speed.decode_range_per_seq is not None
    lo, hi = lib.speed.to_dict()["decode_tokens_per_s_per_seq_range"]  # the page formats the API's rounded pair
    assert lo < lib.speed.decode_tokens_per_s_per_seq < hi
    title = "p10–p90 of measured ÷ predicted over public benchmarks"
    assert f'id="decode-range" title="{title}">({lo:.1f}–{hi:.1f})' in r.text
    assert lib.speed.prefill_range is not None and 'id="prefill-range"' in r.text
    assert 'id="speed-uncalibrated"' not in r.text


async def test_the_form_takes_the_engines_release(app: Any) -> None:
    """A vLLM release or a llama.cpp build on the form reaches the speed as --engine-version / --llama-build do; a
    release for an engine that has none is an error on that field, costing nothing; a saved request refills it."""
    from vram.fitting import fit
    from vram.request import Workload
    from vram.web.view import calculator_query

    async with client_for(app) as c:
        csrf = await _csrf(c)
        vllm = {**FORM, "model": "gpt-oss-20b", "engine": "vllm", "gpu": "h200", "batch": "4", "new_tokens": "256"}
        r = await c.post("/", data={**vllm, "release": "0.16", "csrf_token": csrf})
        llama = {**FORM, "model": "llama-2-7b", "engine": "llama.cpp", "quant": "q4_0", "dtype": ""}
        b = await c.post("/", data={**llama, "release": "b6500", "csrf_token": csrf})
        bad = await c.post("/", data={**FORM, "release": "0.16", "csrf_token": csrf})
        mlx = {**FORM, "model": "qwen3-8b", "engine": "mlx", "gpu": "m3-max-128gb", "quant": "mlx-4bit", "dtype": ""}
        no_release = await c.post("/", data={**mlx, "release": "0.28", "csrf_token": csrf})
        moe = {**FORM, "model": "qwen3-30b-a3b", "gpu": "h200", "context": "1k", "new_tokens": "16"}
        hf = await c.post("/", data={**moe, "release": "4.51", "csrf_token": csrf})
        word = await c.post("/", data={**llama, "release": "latest", "csrf_token": csrf})
        ollama = {**FORM, "model": "qwen3-8b", "engine": "ollama", "quant": "q4_k_m", "new_tokens": "16"}
        old_ollama = await c.post("/", data={**ollama, "release": "0.30", "csrf_token": csrf})
        after = (await c.get("/api/v1/quota")).json()["remaining"]
    assert r.status_code == 200, r.text[:500]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r.text))
    assert "engine version: vLLM 0.16 (0.14 and later: async scheduling" in text
    lib = fit(
        "gpt-oss-20b",
        "h200",
        Workload.from_flat(engine="vllm", batch=4, context=8192, new_tokens=256, engine_version="0.16"),
    )
    assert lib.speed is not None and f"{lib.speed.decode_tokens_per_s_per_seq:,.1f}" in text
    assert b.status_code == 200, b.text[:500]
    assert "engine version: llama.cpp b6500 (2025 builds" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", b.text))
    # transformers takes its release (4.0 and later) ...
    assert bad.status_code == 422 and "a transformers release (4.0 or later)" in bad.text
    assert re.search(r'id="release"[^>]*aria-invalid="true"', bad.text)
    assert hf.status_code == 200, hf.text[:500]
    hf_text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", hf.text))
    assert "engine version: transformers 4.51 (its MoE blocks loop over every expert" in hf_text
    old_loop = fit(
        "qwen3-30b-a3b", "h200", Workload.from_flat(context=1024, new_tokens=16, transformers_version="4.51")
    )
    new_loop = fit("qwen3-30b-a3b", "h200", Workload.from_flat(context=1024, new_tokens=16))
    assert old_loop.speed is not None and new_loop.speed is not None
    assert f"{old_loop.speed.decode_tokens_per_s_per_seq:,.1f}" in hf_text
    assert old_loop.speed.decode_tokens_per_s_per_seq < new_loop.speed.decode_tokens_per_s_per_seq / 4
    # ... MLX has none to give
    assert no_release.status_code == 422
    assert "Engine release: only vLLM" in no_release.text and 'id="release" name="release"' in no_release.text
    assert "mlx does not" in no_release.text
    assert re.search(r'id="release"[^>]*aria-invalid="true"', no_release.text)
    assert word.status_code == 422 and re.search(r'id="release"[^>]*aria-invalid="true"', word.text)
    assert "Engine release:" in word.text
    assert old_ollama.status_code == 200, old_ollama.text[:500]
    assert "Ollama 0.30" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", old_ollama.text))
    assert after == 2500 - 4 * 250  # the four checks against a GPU; the refused ones cost nothing
    q = calculator_query({"model": "gpt-oss-20b", "engine": "vllm", "options": {"engine_version": "0.16"}})
    assert "release=0.16" in q
    hf_q = calculator_query({"model": "qwen3-30b-a3b", "options": {"transformers_version": "4.51"}})
    assert "release=4.51" in hf_q
