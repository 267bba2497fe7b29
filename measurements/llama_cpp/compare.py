"""Recorded check of vram's llama.cpp profile against a real llama.cpp build (llama-cpp-python, CPU backend).

Writes small GGUF files of several architectures and tensor types (vram.sources.synth), loads each with
llama.cpp under several contexts / ubatch sizes / cache types / flash-attention settings, parses the buffer sizes
llama.cpp logs (model buffer, KV cache, compute buffer, output buffer) and prints them beside vram's numbers.

    python -m venv /tmp/llenv && /tmp/llenv/bin/pip install llama-cpp-python gguf numpy
    PYTHONPATH=src /tmp/llenv/bin/python measurements/llama_cpp/compare.py > measurements/llama_cpp/results.jsonl
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from vram.inference import estimate
from vram.request import Workload
from vram.sources.synth import TinyModel, write_gguf

MIB = 1024**2
CT = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml type ids for type_k / type_v

MODELS = {
    "llama-f16": TinyModel(),
    "llama-q8_0-vocab32k": TinyModel(weight_type="Q8_0", embed_type="Q8_0", n_vocab=32000),
    "qwen2-q4_0-tied": TinyModel(arch="qwen2", tied=True, weight_type="Q4_0", n_head=8, n_head_kv=2, head_dim=32),
    "qwen3-q4_k": TinyModel(arch="qwen3", weight_type="Q4_K", embed_type="Q6_K", n_ff=1024),
    "gemma2-swa-f16": TinyModel(arch="gemma2", tied=True, sliding_window=256, n_layer=6),
    "mixtral-moe-q8_0": TinyModel(weight_type="Q8_0", n_expert=8, n_expert_used=2, n_ff=512),
}
CASES = [
    dict(n_ctx=512, n_ubatch=512, fa=True, k="f16", v="f16"),
    dict(n_ctx=4096, n_ubatch=512, fa=True, k="f16", v="f16"),
    dict(n_ctx=4096, n_ubatch=512, fa=False, k="f16", v="f16"),
    dict(n_ctx=3000, n_ubatch=256, fa=True, k="q8_0", v="q8_0"),
    dict(n_ctx=8192, n_ubatch=1024, fa=True, k="q4_0", v="q4_0"),
    dict(n_ctx=8192, n_ubatch=512, fa=False, k="q8_0", v="f16"),
]


def parse(log: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, pat in (
        ("model", r"model buffer size\s*=\s*([\d.]+) MiB"),
        ("kv", r"KV buffer size\s*=\s*([\d.]+) MiB"),
        ("compute", r"compute buffer size\s*=\s*([\d.]+) MiB"),
        ("output", r"output buffer size\s*=\s*([\d.]+) MiB"),
    ):
        vals = [float(x) for x in re.findall(pat, log)]
        if vals:
            out[kind] = sum(vals)
    return out


def run_llama(path: Path, c: dict) -> str:
    import llama_cpp

    fd, logname = tempfile.mkstemp(suffix=".log")
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        llm = llama_cpp.Llama(
            str(path),
            n_ctx=c["n_ctx"],
            n_batch=max(2048, c["n_ubatch"]),
            n_ubatch=c["n_ubatch"],
            flash_attn=c["fa"],
            type_k=CT[c["k"]],
            type_v=CT[c["v"]],
            n_gpu_layers=0,
            verbose=True,
            n_threads=2,
            swa_full=False,
        )
        del llm
    finally:
        os.dup2(saved, 2)
        os.close(fd)
    return Path(logname).read_text(errors="replace")


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    for name, m in MODELS.items():
        path = tmp / f"{name}.gguf"
        write_gguf(path, m)
        for c in CASES:
            log = run_llama(path, c)
            got = parse(log)
            est = estimate(
                str(path),
                Workload.from_flat(
                    engine="llama.cpp",
                    context=c["n_ctx"],
                    n_ubatch=c["n_ubatch"],
                    flash_attn=c["fa"],
                    cache_type_k=c["k"],
                    cache_type_v=c["v"],
                    n_gpu_layers=0,
                ),
            )
            lc = est.llama_cpp
            ours = {
                "model": lc.weights_total_bytes / MIB,
                "kv": lc.kv_total_bytes / MIB,
                "compute": lc.compute_bytes / MIB,
                "output": lc.output_buffer_host_bytes / MIB,
            }
            ctx_line = next((ln for ln in log.splitlines() if "n_ctx" in ln and "=" in ln), "")
            print(
                json.dumps(
                    {
                        "model": name,
                        **c,
                        "llama_cpp_mib": got,
                        "vram_mib": {k: round(v, 3) for k, v in ours.items()},
                        "ctx_line": ctx_line.strip(),
                    }
                ),
                flush=True,
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
