"""Serving settings: the command lines carry the fit's numbers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vram.fitting import fit
from vram.request import SpeechOptions, Workload
from vram.serving import llama_cpp_command, vllm_command

Run = Callable[..., Any]


def test_vllm_command_for_tensor_parallel_70b() -> None:
    # bf16 70B on two H100s: 65.7 GiB of weights per GPU, and vLLM takes its TP buffers (~1.8 GiB) and the CUDA
    # graph estimate out of the budget, so 0.9 leaves no room for a 4k sequence; 0.95 does
    wl = Workload.from_flat(context=4096, new_tokens=128, engine="vllm", gpu_memory_utilization=0.95)
    r = fit("llama-3.1-70b", "2xh100-sxm", wl)
    v = r.serving["vllm"]
    assert v["tensor_parallel_size"] == 2 and v["max_model_len"] == 4224
    cmd = v["command"]
    assert cmd.startswith("vllm serve meta-llama/Llama-3.1-70B --tensor-parallel-size 2 --max-model-len 4224 ")
    assert "--gpu-memory-utilization 0.95" in cmd and "--kv-cache-dtype auto" in cmd
    at_default = fit("llama-3.1-70b", "2xh100-sxm", Workload.from_flat(context=4096, new_tokens=128, engine="vllm"))
    assert at_default.serving["vllm"]["sequences_that_fit"] == 0
    assert any("vLLM would not start" in n for n in at_default.serving["vllm"]["notes"])
    # max-num-seqs: the sequences of this length vLLM's KV blocks hold (capped at its default), the fit's max batch
    assert v["max_num_seqs"] == min(1024, v["sequences_that_fit"])
    assert f"--max-num-seqs {v['max_num_seqs']}" in cmd
    assert r.max_batch == v["sequences_that_fit"]


def test_pipeline_and_quantization_flags() -> None:
    cmd, notes = vllm_command(
        "org/m",
        tp=1,
        pp=3,
        max_model_len=8192,
        gpu_memory_utilization=0.85,
        kv_dtype="float8",
        max_num_seqs=12,
        quant="awq-4bit-g128",
    )
    assert "--pipeline-parallel-size 3" in cmd and "--tensor-parallel-size" not in cmd
    assert "--kv-cache-dtype fp8" in cmd and "--quantization awq" in cmd and "--max-num-seqs 12" in cmd
    assert notes == []
    _, notes = vllm_command(
        "org/m", tp=1, pp=1, max_model_len=1, gpu_memory_utilization=0.9, kv_dtype=None, max_num_seqs=1, quant="q4_k_m"
    )
    assert any("GGUF" in n for n in notes)


def test_llama_cpp_and_ollama_when_everything_fits() -> None:
    r = fit("llama-2-13b", "rtx-4090", Workload(quant="q4_k_m", context=4096, kv_dtype="int8", batch=2))
    lc = r.serving["llama_cpp"]
    assert lc["n_gpu_layers"] == 41  # 40 layers + the output layer
    # 4096 + 16 asked, but Llama 2 reads 4,096 tokens: the servers start with the model's limit and say so
    assert lc["ctx_size"] == 2 * 4096 and lc["parallel"] == 2
    assert any("at most 4,096 tokens" in n for n in lc["notes"])
    assert "--cache-type-k q8_0 --cache-type-v q8_0" in lc["command"] and "-m llama-2-13b-Q4_K_M.gguf" in lc["command"]
    o = r.serving["ollama"]
    assert o["num_ctx"] == 4096 and "OLLAMA_KV_CACHE_TYPE=q8_0" in o["command"]
    assert "PARAMETER num_ctx 4096" in o["modelfile"]


def test_offload_keeps_some_layers_on_the_gpu() -> None:
    r = fit("llama-3.1-70b", "rtx-4090", Workload(quant="q4_k_m", context=4096))
    assert r.verdict == "no" and r.offload is not None
    n = r.offload["layers_on_gpu"]
    assert 0 < n < 80
    # llama.cpp's -ngl counts the output layer first (the plan keeps the head on the GPU): n blocks + output = n + 1
    assert r.serving["llama_cpp"]["n_gpu_layers"] == n + 1 and f"-ngl {n + 1} " in r.serving["llama_cpp"]["command"]
    assert r.serving["ollama"]["num_gpu"] == n + 1
    tf = r.serving["transformers"]
    assert tf["device_map"] == "auto" and "cpu" in tf["max_memory"]
    # offloading costs: slower than if it fit, by the host link's bandwidth
    assert r.offload["decode_tokens_per_s"] < r.offload["decode_tokens_per_s_if_it_fit"] / 5


def test_transformers_max_memory_leaves_room_for_the_rest() -> None:
    r = fit("llama-3.1-70b", "2xh100-sxm", Workload(context=4096))
    mm = r.serving["transformers"]["max_memory"]
    assert set(mm) == {"0", "1"}
    gib = int(mm["0"].removesuffix("GiB"))
    rank = r.ranks[0]
    assert gib * 1024**3 <= r.usable_bytes_per_gpu - (rank.total_bytes - rank.weights_bytes)
    assert "device_map='auto'" in r.serving["transformers"]["code"]


def test_llama_cpp_multi_gpu_split() -> None:
    cmd = llama_cpp_command("m.gguf", ngl=81, context=8192, parallel=1, cache=("f16", "f16"), gpus=2)
    assert "--split-mode layer --tensor-split 1,1" in cmd and "-c 8192" in cmd and "--cache-type-k f16" in cmd


def test_cli_prints_the_commands(run_cli: Run) -> None:
    res = run_cli("fit", "qwen2.5-7b", "--gpu", "l4", "--context", "8k", "--json")
    d = json.loads(res.out)
    assert set(d["serving"]) >= {"vllm", "llama_cpp", "ollama", "transformers"}
    res = run_cli("fit", "qwen2.5-7b", "--gpu", "l4", "--context", "8k")
    assert d["serving"]["vllm"]["command"] in res.out.replace("\n", "")


def test_commands_never_exceed_the_models_context_or_what_fits() -> None:
    # Llama 3 8B reads 8,192 tokens; 32k asked on a 4090 with vLLM
    r = fit("llama-3-8b", "rtx-4090", Workload.from_flat(context=32768, new_tokens=256, engine="vllm"))
    v = r.serving["vllm"]
    assert r.context_limit == 8192 and v["max_model_len"] == 8192 and "--max-model-len 8192 " in v["command"]
    assert any("reads at most 8,192 tokens" in n for n in v["notes"])
    assert any("reads at most 8,192" in x for x in r.reasons)
    assert r.serving["primary"] == "vllm"
    # Qwen2.5 7B at 128k does not fit a 4090 with vLLM: the command uses the longest context that does
    r = fit("qwen2.5-7b", "rtx-4090", Workload.from_flat(context=131072, new_tokens=256, engine="vllm"))
    assert r.verdict == "no" and r.max_context is not None and r.max_context < 131072
    v = r.serving["vllm"]
    assert v["max_model_len"] == r.max_context + 256
    assert any("do not fit" in n for n in v["notes"])
    ok = fit(
        "qwen2.5-7b", "rtx-4090", Workload.from_flat(context=r.max_context, new_tokens=256, engine="vllm"), solve=False
    )
    assert ok.verdict != "no"


def test_commands_per_family() -> None:
    flux = fit("flux.1-dev", "h100-sxm", Workload())
    assert set(flux.serving) == {"diffusers", "primary"}
    code = flux.serving["diffusers"]["code"]
    assert "DiffusionPipeline.from_pretrained('black-forest-labs/FLUX.1-dev'" in code and "height=1024" in code
    assert "vllm" not in code and "AutoModelForCausalLM" not in code
    w = fit("whisper-large-v3", "rtx-3060", Workload(family=SpeechOptions(beams=4)))
    assert set(w.serving) == {"transformers", "primary"}
    assert (
        "pipeline('automatic-speech-recognition', model='openai/whisper-large-v3'" in w.serving["transformers"]["code"]
    )
    assert "'num_beams': 4" in w.serving["transformers"]["code"]
    assert w.max_context is None and w.context_limit is None  # Whisper reads 30 s windows, not a prompt
    e = fit("bge-reranker-v2-m3", "l4", Workload(context=512, batch=32))
    assert "CrossEncoder('BAAI/bge-reranker-v2-m3'" in e.serving["sentence_transformers"]["code"]
    t = fit(
        "llama-3.1-8b",
        "rtx-4090",
        Workload(),
        train=__import__("vram.training").training.TrainWorkload(method="qlora", grad_checkpointing=True, seq=4096),
    )
    code = t.serving["training"]["code"]
    assert "load_in_4bit=True" in code and "LoraConfig(r=16" in code and "gradient_checkpointing=True" in code


def test_options_a_family_does_not_model_are_errors() -> None:
    import pytest

    from vram.errors import BadInput

    with pytest.raises(BadInput) as e:
        fit("flux.1-dev", "rtx-4090", Workload(quant="fp8"))
    assert e.value.field == "quant"
    with pytest.raises(BadInput) as e:
        fit("whisper-large-v3", "rtx-4090", Workload.from_flat(engine="vllm"))
    assert e.value.field == "engine"
