"""Serving settings for a fit, as ready command lines: vLLM, llama.cpp (llama-server), Ollama and transformers.

Every number comes from the fit: the split (tensor / pipeline parallel size), the context (max-model-len, -c,
num_ctx), the KV cache dtype, the concurrency that fits (vLLM's --max-num-seqs from its KV blocks), and — when the
model does not fit entirely — the layers to keep on the GPU (llama.cpp -ngl, Ollama num_gpu, transformers
max_memory with a "cpu" entry).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fit import Evaluator, FitResult

GIB = 1024**3

# vLLM --quantization for our weight formats; None: the checkpoint carries its quantization config
VLLM_QUANT = {"awq": "awq", "gptq": "gptq", "fp8": "fp8", "nf4": "bitsandbytes", "bnb-int8": "bitsandbytes"}
# llama.cpp cache types for a KV dtype (llama.cpp has no fp8 cache: q8_0 is the 8-bit one)
LLAMA_CPP_CACHE = {"bfloat16": "f16", "float16": "f16", "float32": "f32", "float8": "q8_0", "int8": "q8_0",
                   "int4": "q4_0"}
VLLM_KV = {"float8": "fp8", "int8": "fp8"}


def _vllm_quant_flag(quant: str | None) -> tuple[str | None, str | None]:
    if not quant:
        return None, None
    q = quant.lower()
    if (q.startswith("q") and "_" in q) or q.startswith("iq"):
        return "gguf", ("vLLM reads GGUF experimentally: pass the .gguf file instead of the repo and "
                        "--tokenizer REPO")
    for prefix, flag in VLLM_QUANT.items():
        if q.startswith(prefix):
            return flag, None
    return None, f"{quant}: serve a checkpoint already quantized this way (vLLM reads its quantization_config)"


def vllm_command(repo: str, *, tp: int, pp: int, max_model_len: int, gpu_memory_utilization: float,
                 kv_dtype: str | None, max_num_seqs: int, quant: str | None) -> tuple[str, list[str]]:
    notes = []
    kv = "auto"
    if kv_dtype and kv_dtype in VLLM_KV:
        kv = VLLM_KV[kv_dtype]
        if kv_dtype == "int8":
            notes.append("vLLM has no int8 KV cache: fp8 (same size) instead")
    elif kv_dtype == "int4":
        notes.append("vLLM has no 4-bit KV cache: auto (model dtype) instead")
    parts = ["vllm serve", repo]
    if tp > 1:
        parts.append(f"--tensor-parallel-size {tp}")
    if pp > 1:
        parts.append(f"--pipeline-parallel-size {pp}")
    parts += [f"--max-model-len {max_model_len}", f"--gpu-memory-utilization {gpu_memory_utilization:g}",
              f"--kv-cache-dtype {kv}", f"--max-num-seqs {max_num_seqs}"]
    flag, note = _vllm_quant_flag(quant)
    if flag and flag != "gguf":
        parts.append(f"--quantization {flag}")
    if note:
        notes.append(note)
    return " ".join(parts), notes


def llama_cpp_command(model_file: str, *, ngl: int, context: int, parallel: int, kv_dtype: str | None,
                      gpus: int) -> str:
    cache = LLAMA_CPP_CACHE.get(kv_dtype or "float16", "f16")
    parts = ["llama-server", "-m", model_file, f"-ngl {ngl}", f"-c {context * parallel}"]
    if parallel > 1:
        parts.append(f"-np {parallel}")
    parts += ["-fa on", f"--cache-type-k {cache}", f"--cache-type-v {cache}"]
    if gpus > 1:
        parts += ["--split-mode layer", "--tensor-split " + ",".join(["1"] * gpus)]
    return " ".join(parts)


def serving_settings(ev: Evaluator, result: FitResult) -> dict[str, Any]:
    """Command lines for the fit in `result` (its GPU, count, split and workload)."""
    from .fit import GpuChoice

    wl = result.workload
    spec = ev.spec
    entry = ev.rm.entry
    repo = entry.hf_repo if entry and entry.hf_repo else ev.rm.source
    name = entry.id if entry else spec.name
    tokens = wl.context + wl.new_tokens
    tp = result.gpu_count if result.split == "tp" else 1
    pp = result.gpu_count if result.split == "pp" else 1
    n_layers = spec.num_layers
    offload = result.offload
    layers_on_gpu = int(offload["layers_on_gpu"]) if offload else n_layers

    # vLLM: concurrency from its own KV-block arithmetic on this GPU and split
    assert result.gpu_entry is not None
    choice = GpuChoice(result.gpu_entry, result.gpu_count)
    vwl = replace(wl, engine="vllm")
    split = result.split if result.split in ("tp", "pp") else "single"
    _, _, vests, comm = ev.per_gpu(choice, vwl, split)
    seqs = []
    for e in vests:
        block_bytes = int(e.extra["block_bytes"])
        blocks = max(0, int(e.extra["kv_cache_capacity_bytes"]) - comm) // block_bytes
        seqs.append(blocks // math.ceil(tokens / wl.block_size))
    fit_seqs = min(seqs) if seqs else 0
    default_seqs = int(vests[0].extra["max_num_seqs"]) if vests else 256
    cap = wl.max_num_seqs or (1024 if choice.gpu.usable_memory_bytes >= 70 * GIB else 256)
    max_num_seqs = max(1, min(cap, fit_seqs)) if fit_seqs else max(1, default_seqs)
    vllm_cmd, vllm_notes = vllm_command(repo, tp=tp, pp=pp, max_model_len=tokens,
                                        gpu_memory_utilization=wl.gpu_memory_utilization, kv_dtype=wl.kv_dtype,
                                        max_num_seqs=max_num_seqs, quant=wl.quant)
    if fit_seqs < 1:
        vllm_notes.append(f"vLLM would not start: one {tokens:,}-token sequence needs more KV blocks than "
                          f"gpu_memory_utilization {wl.gpu_memory_utilization:g} leaves")
    elif fit_seqs < wl.batch:
        vllm_notes.append(f"only {fit_seqs} sequences of {tokens:,} tokens fit vLLM's KV cache (batch {wl.batch} "
                          "asked); the rest wait")

    # llama.cpp / Ollama
    quant = (wl.quant or "").upper() if wl.quant and wl.quant.lower().startswith(("q", "iq")) else None
    gguf = f"{name}-{quant or ('F16' if wl.dtype == 'float16' else 'BF16')}.gguf"
    ngl = n_layers + 1 if layers_on_gpu >= n_layers else layers_on_gpu  # +1: the output layer too
    llama_cmd = llama_cpp_command(gguf, ngl=ngl, context=tokens, parallel=wl.batch, kv_dtype=wl.kv_dtype,
                                  gpus=result.gpu_count)
    cache = LLAMA_CPP_CACHE.get(wl.kv_dtype or "float16", "f16")
    env = ["OLLAMA_FLASH_ATTENTION=1"] + ([f"OLLAMA_KV_CACHE_TYPE={cache}"] if cache != "f16" else [])
    if wl.batch > 1:
        env.append(f"OLLAMA_NUM_PARALLEL={wl.batch}")
    ollama: dict[str, Any] = {
        "env": env,
        "command": " ".join([*env, "ollama serve"]),
        "modelfile": [f"FROM ./{gguf}", f"PARAMETER num_ctx {tokens}", f"PARAMETER num_gpu {ngl}"],
        "num_ctx": tokens, "num_gpu": ngl,
    }

    # transformers: weights per GPU may use what the rest of the estimate leaves
    rank = max(result.ranks, key=lambda r: r.total_bytes)
    non_weight = rank.total_bytes - rank.weights_bytes
    per_gpu_weights_gib = max(0, (result.usable_bytes_per_gpu - non_weight) // GIB)
    max_memory: dict[str, str] = {str(i): f"{per_gpu_weights_gib}GiB" for i in range(result.gpu_count)}
    device_map = "auto" if result.gpu_count > 1 or offload else "cuda:0"
    if offload:
        max_memory["cpu"] = f"{math.ceil(int(offload['host_memory_bytes']) / GIB) + 2}GiB"
    dtype = "torch.float16" if wl.dtype == "float16" else "torch.float32" if wl.dtype == "float32" \
        else "torch.bfloat16"
    qc = ""
    tf_notes: list[str] = []
    q = (wl.quant or "").lower()
    if q.startswith("nf4"):
        qc = (", quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4', "
              "bnb_4bit_use_double_quant=True)")
    elif q in ("bnb-int8", "llm-int8", "bnb-8bit"):
        qc = ", quantization_config=BitsAndBytesConfig(load_in_8bit=True)"
    elif quant:
        tf_notes.append(f"transformers dequantizes GGUF ({gguf}, via gguf_file=) to {wl.dtype} on load: the "
                        f"{wl.quant} sizes above hold for llama.cpp / Ollama, not for transformers")
    elif q.startswith(("awq", "gptq", "fp8", "int8", "int4", "w4a16", "w8a16")):
        tf_notes.append(f"load a checkpoint already quantized as {wl.quant}: its quantization_config is read "
                        "from the repo")
    mm = "{" + ", ".join(f"{k if k == 'cpu' else int(k)!r}: {v!r}" for k, v in max_memory.items()) + "}"
    tf_code = (f"AutoModelForCausalLM.from_pretrained({repo!r}, dtype={dtype}, device_map={device_map!r}"
               + (f", max_memory={mm}" if device_map == "auto" else "") + f"{qc})")
    out: dict[str, Any] = {
        "vllm": {"command": vllm_cmd, "tensor_parallel_size": tp, "pipeline_parallel_size": pp,
                 "max_model_len": tokens, "gpu_memory_utilization": wl.gpu_memory_utilization,
                 "kv_cache_dtype": VLLM_KV.get(wl.kv_dtype or "", "auto"), "max_num_seqs": max_num_seqs,
                 "sequences_that_fit": fit_seqs, "notes": vllm_notes},
        "llama_cpp": {"command": llama_cmd, "n_gpu_layers": ngl, "ctx_size": tokens * wl.batch,
                      "parallel": wl.batch, "cache_type_k": cache, "cache_type_v": cache},
        "ollama": ollama,
        "transformers": {"code": tf_code, "device_map": device_map, "max_memory": max_memory, "notes": tf_notes},
    }
    if offload:
        out["offload"] = offload
    return out

