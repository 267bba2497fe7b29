"""Serving settings: the command lines carry the fit's numbers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vram.estimate import Workload
from vram.fit import fit
from vram.serving import llama_cpp_command, vllm_command

Run = Callable[..., Any]


def test_vllm_command_for_tensor_parallel_70b() -> None:
    r = fit("llama-3.1-70b", "2xh100-sxm", Workload(context=4096, new_tokens=128, engine="vllm"))
    v = r.serving["vllm"]
    assert v["tensor_parallel_size"] == 2 and v["max_model_len"] == 4224
    cmd = v["command"]
    assert cmd.startswith("vllm serve meta-llama/Llama-3.1-70B --tensor-parallel-size 2 --max-model-len 4224 ")
    assert "--gpu-memory-utilization 0.9" in cmd and "--kv-cache-dtype auto" in cmd
    # max-num-seqs: the sequences of this length vLLM's KV blocks hold (capped at its default), the fit's max batch
    assert v["max_num_seqs"] == min(1024, v["sequences_that_fit"])
    assert f"--max-num-seqs {v['max_num_seqs']}" in cmd
    assert r.max_batch == v["sequences_that_fit"]


def test_pipeline_and_quantization_flags() -> None:
    cmd, notes = vllm_command("org/m", tp=1, pp=3, max_model_len=8192, gpu_memory_utilization=0.85,
                              kv_dtype="float8", max_num_seqs=12, quant="awq-4bit-g128")
    assert "--pipeline-parallel-size 3" in cmd and "--tensor-parallel-size" not in cmd
    assert "--kv-cache-dtype fp8" in cmd and "--quantization awq" in cmd and "--max-num-seqs 12" in cmd
    assert notes == []
    _, notes = vllm_command("org/m", tp=1, pp=1, max_model_len=1, gpu_memory_utilization=0.9, kv_dtype=None,
                            max_num_seqs=1, quant="q4_k_m")
    assert any("GGUF" in n for n in notes)


def test_llama_cpp_and_ollama_when_everything_fits() -> None:
    r = fit("llama-2-13b", "rtx-4090", Workload(quant="q4_k_m", context=4096, kv_dtype="int8", batch=2))
    lc = r.serving["llama_cpp"]
    assert lc["n_gpu_layers"] == 41  # 40 layers + the output layer
    assert lc["ctx_size"] == 2 * (4096 + 16) and lc["parallel"] == 2
    assert "--cache-type-k q8_0 --cache-type-v q8_0" in lc["command"] and "-m llama-2-13b-Q4_K_M.gguf" in lc["command"]
    o = r.serving["ollama"]
    assert o["num_ctx"] == 4112 and "OLLAMA_KV_CACHE_TYPE=q8_0" in o["command"]
    assert "PARAMETER num_ctx 4112" in o["modelfile"]


def test_offload_keeps_some_layers_on_the_gpu() -> None:
    r = fit("llama-3.1-70b", "rtx-4090", Workload(quant="q4_k_m", context=4096))
    assert r.verdict == "no" and r.offload is not None
    n = r.offload["layers_on_gpu"]
    assert 0 < n < 80
    assert r.serving["llama_cpp"]["n_gpu_layers"] == n and f"-ngl {n} " in r.serving["llama_cpp"]["command"]
    assert r.serving["ollama"]["num_gpu"] == n
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
    cmd = llama_cpp_command("m.gguf", ngl=81, context=8192, parallel=1, kv_dtype=None, gpus=2)
    assert "--split-mode layer --tensor-split 1,1" in cmd and "-c 8192" in cmd and "--cache-type-k f16" in cmd


def test_cli_prints_the_commands(run_cli: Run) -> None:
    res = run_cli("fit", "qwen2.5-7b", "--gpu", "l4", "--context", "8k", "--json")
    d = json.loads(res.out)
    assert set(d["serving"]) >= {"vllm", "llama_cpp", "ollama", "transformers"}
    res = run_cli("fit", "qwen2.5-7b", "--gpu", "l4", "--context", "8k")
    assert d["serving"]["vllm"]["command"] in res.out.replace("\n", "")
