"""Typed requests (issue 11): one declaration per option, checked when made; an option that does not apply is an
error; the CLI's `fit` takes every `estimate` option; the bugs the flat 25-field Workload let through."""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

import pytest

from test_web_support import client_for
from vram.catalog import find_gpu
from vram.cli import build_parser
from vram.devices import GpuChoice, device_of, torch_visible_bytes
from vram.errors import BadInput
from vram.fitting import Evaluator, EvaluatorCache, fit
from vram.fitting import evaluator as evaluator_module
from vram.inference import estimate
from vram.request import (
    ALL_OPTIONS,
    ENGINE_OPTIONS,
    LlamaCppOptions,
    TrainWorkload,
    VllmOptions,
    Workload,
    option_fields,
)
from vram.serving import llama_cpp_cache_types

GIB = 1024**3


def _one_line_error(res: Any, field: str) -> None:
    assert res.rc == 2, res.out
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vram: error:") and field in lines[0], res.err


# --- values out of range: one line, exit 2 (the old CLI reported negative activation bytes for --ubatch -5) --------


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--engine", "llama.cpp", "--ubatch", "-5"], "n_ubatch"),
        (["--engine", "llama.cpp", "--n-batch", "0"], "n_batch"),
        (["--engine", "vllm", "--gpu", "h100-sxm", "--max-num-seqs", "-3"], "max_num_seqs"),
        (["--engine", "vllm", "--gpu", "h100-sxm", "--block-size", "0"], "block_size"),
        (["--engine", "vllm", "--gpu", "h100-sxm", "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
        (["--engine", "llama.cpp", "--n-gpu-layers", "-2"], "n_gpu_layers"),
        (["--engine", "llama.cpp", "--tensor-split", "3,x"], "tensor_split"),
        (["--width", "0"], "width"),
    ],
)
def test_out_of_range_engine_options_are_one_line_exit_2(run_cli: Any, argv: list[str], field: str) -> None:
    _one_line_error(run_cli("estimate", "llama-3.1-8b", *argv), field)


def test_options_check_themselves_when_made() -> None:
    with pytest.raises(BadInput) as e:
        VllmOptions(block_size=0)  # the flat Workload divided by it: ZeroDivisionError
    assert e.value.field == "block_size"
    with pytest.raises(BadInput) as e:
        LlamaCppOptions(n_ubatch=-5)
    assert e.value.field == "n_ubatch"
    with pytest.raises(BadInput) as e:
        LlamaCppOptions(n_cpu_moe=3, cpu_moe=True)
    assert e.value.field == "n_cpu_moe"
    with pytest.raises(BadInput) as e:
        TrainWorkload(zero=3)  # ZeRO shards over GPUs: one GPU cannot
    assert e.value.field == "gpus"


def test_every_declared_number_is_range_checked() -> None:
    """Each declared whole-number option refuses the value below its range, naming itself."""
    checked = 0
    for cls in (*ALL_OPTIONS, TrainWorkload):
        for of in option_fields(cls):
            if of.kind is not int or of.lo is None:
                continue
            with pytest.raises(BadInput) as e:
                cls(**{of.name: int(of.lo) - 1})
            assert e.value.field == of.name
            checked += 1
    assert checked >= 20


# --- options that do not apply are errors, never ignored ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "argv", "field"),
    [
        ("llama-3.1-8b", ["--engine", "llama.cpp", "--attn", "eager"], "attn"),  # was silently ignored
        ("llama-3.1-8b", ["--engine", "llama.cpp", "--enforce-eager"], "enforce_eager"),
        ("llama-3.1-8b", ["--ubatch", "256"], "n_ubatch"),  # transformers has no ubatch
        ("llama-3.1-8b", ["--width", "512"], "width"),  # an image size for a text model
        ("flux.1-dev", ["--engine", "vllm"], "engine"),  # the answer said transformers
        ("flux.1-dev", ["--quant", "q4_k_m"], "quant"),
        ("flux.1-dev", ["--beams", "2"], "beams"),  # a speech option for an image model
        ("whisper-large-v3", ["--width", "512"], "width"),
        ("llama-3.1-8b", ["--method", "lora"], "method"),  # a training option without --train
        ("llama-3.1-8b", ["--train", "--engine", "vllm"], "engine"),
        ("llama-3.1-8b", ["--train", "--quant", "q4_k_m"], "quant"),
        ("llama-3.1-8b", ["--engine", "mlx", "--gpu", "h100-sxm"], "engine"),  # MLX is Apple silicon only
        ("llama-3.1-8b", ["--gpu", "2xh100-sxm"], "gpu"),  # one transformers estimate, one device
    ],
)
def test_options_that_do_not_apply_are_errors(run_cli: Any, model: str, argv: list[str], field: str) -> None:
    _one_line_error(run_cli("estimate", model, *argv), field)


def test_a_training_estimate_says_its_training_step_not_an_invented_inference_workload(run_cli: Any) -> None:
    res = run_cli("estimate", "llama-3.1-8b", "--train", "--seq", "1024", "--method", "lora", "--json")
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    assert "workload" not in d
    assert d["train"]["seq"] == 1024 and d["train"]["method"] == "lora" and d["train"]["batch"] == 1


# --- vram fit takes every vram estimate option ----------------------------------------------------------------------


def _options(command: str) -> set[str]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_fit_accepts_every_option_estimate_accepts() -> None:
    est, fit_opts = _options("estimate"), _options("fit")
    assert len(est) > 60
    assert est - fit_opts == set()
    declared = {of.flag for cls in ENGINE_OPTIONS.values() for of in option_fields(cls) if of.kind is not bool}
    assert declared <= est  # every declared engine option is a flag of both


@pytest.mark.parametrize(
    "argv",
    [
        ["--train", "--offload-optimizer"],
        ["--train", "--method", "lora", "--lora-targets", "q_proj,v_proj"],
        ["--train", "--gpus", "2"],
        ["--train", "--grad-accum", "4"],
    ],
)
def test_fit_takes_the_training_options(run_cli: Any, argv: list[str]) -> None:
    res = run_cli("fit", "llama-3.2-1b", "--gpu", "rtx-4090", *argv, "--json")
    assert res.rc == 0, res.err  # "unrecognized arguments" before
    d = json.loads(res.out)
    assert d["engine"] == "training"
    for flag, key, value in (
        ("--offload-optimizer", "offload_optimizer", True),
        ("--gpus", "gpus", 2),
        ("--grad-accum", "grad_accum", 4),
        ("--lora-targets", "lora_targets", "q_proj,v_proj"),
    ):
        if flag in argv:
            assert d["train"][key] == value


def test_fit_takes_llama_cpp_layers(run_cli: Any) -> None:
    res = run_cli(
        "fit",
        "llama-3.1-8b",
        "--gpu",
        "rtx-4090",
        "--engine",
        "llama.cpp",
        "--quant",
        "q4_k_m",
        "--n-gpu-layers",
        "10",
        "--json",
    )
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    lc = d["estimate"]["llama_cpp"]
    assert lc["n_gpu_layers"] == 10 and lc["blocks_on_gpu"] == 9  # -ngl counts the output layer first
    assert d["workload"]["options"]["n_gpu_layers"] == 10


# --- devices: never an invisible default ----------------------------------------------------------------------------


def test_vllm_needs_a_gpu_and_says_which_one_it_sized_for(run_cli: Any) -> None:
    _one_line_error(run_cli("estimate", "llama-3.1-8b", "--engine", "vllm"), "gpu")  # sized for 80 GB before
    with pytest.raises(BadInput) as e:
        estimate("llama-3.1-8b", Workload(options=VllmOptions()))
    assert e.value.field == "gpu"
    g = find_gpu("rtx-4090")
    est = estimate("llama-3.1-8b", Workload(options=VllmOptions(), devices=(device_of(g),)))
    assert est.vllm.gpu_memory_bytes == torch_visible_bytes(g) < 24 * GIB
    assert any(a.startswith(f"GPU: {g.name}, {torch_visible_bytes(g) / GIB:,.2f} GiB") for a in est.assumptions)


@pytest.mark.web
@pytest.mark.anyio
async def test_the_page_sizes_vllm_for_the_gpu_it_checks(app: Any) -> None:
    async with client_for(app) as c:
        await c.get("/")
        r = await c.post(
            "/",
            data={
                "model": "qwen2.5-0.5b",
                "engine": "vllm",
                "gpu": "rtx-4090",
                "context": "4096",
                "gpu_count": "1",
                "csrf_token": c.cookies["vram_csrf"],
            },
        )
    assert r.status_code == 200, r.text[:400]
    g = find_gpu("rtx-4090")
    assert f"× {torch_visible_bytes(g) / GIB:,.2f} GiB" in r.text  # the 4090's memory in the budget line
    assert "79.19" not in r.text and "79.65" not in r.text


@pytest.mark.web
@pytest.mark.anyio
async def test_api_refuses_an_option_of_another_engine_with_a_422_naming_it(app: Any) -> None:
    async with client_for(app) as c:
        r = await c.post(
            "/api/v1/estimate", json={"model": "llama-3.1-8b", "engine": "llama.cpp", "options": {"max_num_seqs": 8}}
        )
        assert r.status_code == 422 and r.json()["field"] == "max_num_seqs"
        r = await c.post(
            "/api/v1/estimate", json={"model": "llama-3.1-8b", "engine": "llama.cpp", "options": {"n_ubatch": -5}}
        )
        assert r.status_code == 422 and r.json()["field"] == "n_ubatch"
        r = await c.post(
            "/api/v1/estimate",
            json={"model": "llama-3.1-8b", "engine": "vllm", "gpu": "l4", "options": {"max_num_seqs": 8}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["vllm"]["max_num_seqs"] == 8
        r = await c.post("/api/v1/estimate", json={"model": "llama-3.1-8b", "engine": "llama.cpp", "attn": "eager"})
        assert r.status_code == 422 and r.json()["field"] == "attn"


# --- serving commands are the estimate's settings -------------------------------------------------------------------


def test_llama_cpp_serving_keeps_a_bf16_cache_bf16() -> None:
    wl = Workload(kv_dtype="bf16", options=LlamaCppOptions()).validate()
    assert llama_cpp_cache_types(wl) == ("bf16", "bf16")  # mapped to f16 before, while the estimate used bf16
    r = fit("llama-3.1-8b", "rtx-4090", Workload(quant="q4_k_m", kv_dtype="bf16", options=LlamaCppOptions()))
    cmd = r.serving["llama_cpp"]["command"]
    assert "--cache-type-k bf16 --cache-type-v bf16" in cmd
    assert r.estimate.llama_cpp.cache_type_k == "bf16"


def test_flux_is_served_with_diffusers_never_an_llm_server() -> None:
    r = fit("flux.1-dev", "h100-sxm", Workload())
    assert set(r.serving) - {"primary"} == {"diffusers"}
    assert "DiffusionPipeline" in r.serving["diffusers"]["code"]
    assert "vllm" not in json.dumps(r.serving) and "AutoModelForCausalLM" not in json.dumps(r.serving)


# --- the evaluator cache: owned by its caller, bounded, safe between threads ----------------------------------------


def test_evaluator_cache_is_bounded_and_shared_safely_between_threads() -> None:
    cache = EvaluatorCache(size=1)
    models = ["qwen2.5-0.5b", "smollm2-135m", "qwen3-0.6b"]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(150):
                ev = cache.get(models[(i + j) % 3])
                assert ev.rm.entry is not None and ev.rm.entry.id == models[(i + j) % 3]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 1
    assert cache.get("qwen3-0.6b") is cache.get("qwen3-0.6b")
    assert cache.get(str(models[0])) is not None


def test_a_shared_evaluator_survives_its_own_cache_clearing_under_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluator_module, "MAX_CACHED_ESTIMATES", 2)  # clear almost every call
    ev = Evaluator("smollm2-135m")
    g = find_gpu("rtx-4090")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(60):
                wl = Workload(context=256 * (1 + (i + j) % 5))
                got = ev.per_gpu(GpuChoice(g, 1), wl, "single")
                assert got[0] > 0
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_fit_with_a_callers_cache_reuses_its_evaluator() -> None:
    cache = EvaluatorCache(size=4)
    a = fit("qwen2.5-0.5b", "rtx-4090", Workload(), solve=False, cache=cache)
    b = fit("qwen2.5-0.5b", "rtx-4090", Workload(), solve=False, cache=cache)
    assert len(cache) == 1 and a.per_gpu_bytes == b.per_gpu_bytes
