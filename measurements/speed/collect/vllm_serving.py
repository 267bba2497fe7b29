"""Turn two public vLLM serving benchmarks into speed cases (the shared scorer's format).

* dennislee22/vLLM-benchmarking (README.md at commit b474d1e): `benchmark_serving.py --dataset-name random`, all
  requests sent at once (`--num-prompts` = concurrency), vLLM 0.10.1.1 on NVIDIA A100 80GB, Qwen2-7B-Instruct,
  Qwen2.5-32B, Qwen2-72B in BF16, 1 GPU or tensor parallel 2 on one node (the startup log of test 2 shows
  tensor_parallel_size=2; the two-pod runs are kept with a non-exact measurement_quality: at 50+ sequences they
  are no faster than one GPU, which says more about the pods' transport than about TP). Kept: the runs whose
  requests all fit in the logged KV cache at once and are at most
  vLLM's default max_num_seqs (256); test 1 (two nodes), test 3 (parallel layout not logged) and test 9 (gpt-oss-120b
  over two nodes, erratic) are left out. Measured: median TPOT -> 1000 / TPOT tokens/s per sequence.
* sariekr/gpu_conc (commit c848ef1): gpt-oss-20b on vLLM, 1000-token prompts, up to 1000 new tokens, a Python
  streaming client at fixed concurrency on H100 PCIe, H200, B200 and MI300X; `median_output_speed_per_query`.
  Kept: concurrency <= 16 (above it the single client process saturates at ~2,400 tokens/s on every GPU, so the
  figure measures the client). gpt-oss ships MXFP4 experts, which vram reads as stored (quantization_config
  mxfp4: 4.25-bit experts, the rest BF16), so no quant is substituted.

    python measurements/speed/collect/vllm_serving.py DENNISLEE_README SARIEKR_REPO_DIR \
        > measurements/speed/vllm-serving.jsonl
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

DL_COMMIT = "b474d1e"
GPU_NOTE = (
    "GPU: 'A100 80GB' in Kubernetes pods (form factor not stated; pods of one GPU each: PCIe cards "
    "assumed) -> a100-80gb-pcie"
)
DL_URL = "https://github.com/dennislee22/vLLM-benchmarking/blob/{c}/README.md"
SK_URL = "https://github.com/sariekr/gpu_conc/blob/{c}/{p}"

# (section number) -> (GPUs, KV cache GiB per GPU from the section title)
DL_TESTS = {2: (2, 12.02), 4: (1, 5.01), 5: (1, 24.83), 6: (2, 8.22), 7: (1, 9.70), 8: (2, 6.77)}
# model -> (vram catalog id, KV bytes per token for the whole model, note)
DL_MODELS = {
    "Qwen2-7B-Instruct": ("qwen2.5-7b", 28 * 2 * 4 * 128 * 2, "Qwen2-7B has the shapes of Qwen2.5-7B"),
    "Qwen2.5-32B": ("qwen2.5-32b", 64 * 2 * 8 * 128 * 2, ""),
    "Qwen2-72B": ("qwen2.5-72b", 80 * 2 * 8 * 128 * 2, "Qwen2-72B has the shapes of Qwen2.5-72B"),
}


def dennislee(readme: str) -> list[dict]:
    text = Path(readme).read_text()
    out = []
    parts = re.split(r"\n#{3,4} <a name=\"toc_\d+\"></a>✍️ Test (\d+):[^\n]*", text)
    for i in range(1, len(parts), 2):
        test = int(parts[i])
        if test not in DL_TESTS:
            continue
        n, kv_gib = DL_TESTS[test]
        for k, m in enumerate(re.finditer(r"```\n(python[^`]*?)```", parts[i + 1], re.S)):
            b = m.group(1)

            def g(pat: str, b: str = b) -> str | None:
                mm = re.search(pat, b)
                return mm.group(1) if mm else None

            model, np_, inp, outp, tpot = (
                g(r"--model (\S+)"),
                g(r"--num-prompts (\d+)"),
                g(r"--random-input-len (\d+)"),
                g(r"--random-output-len (\d+)"),
                g(r"Median TPOT \(ms\):\s+([\d.]+)"),
            )
            if not (model in DL_MODELS and np_ and inp and outp and tpot):
                continue
            vid, kv_tok, note = DL_MODELS[model]
            conc, pin, pout = int(np_), int(inp), int(outp)
            capacity = kv_gib * 2**30 * n / (kv_tok * (pin + pout))
            if conc > capacity or conc > 256:
                continue
            notes = [
                "batch = --num-prompts (all requests sent at once, request rate inf)",
                "decode context = the prompt; --new-tokens = half the output (average KV length)",
            ]
            if note:
                notes.append(note)
            out.append(
                {
                    "id": f"vllm-dennislee22-t{test}-{k}-{vid}-{n}xa100-c{conc}-in{pin}-out{pout}",
                    "engine": "vllm",
                    "engine_version": "0.10.1.1",
                    "backend": "CUDA",
                    "model_repo": f"Qwen/{model}",
                    "model_file": f"Qwen/{model} (BF16)",
                    "quant": "BF16",
                    "model_class": "dense",
                    "gpu": "NVIDIA A100 80GB",
                    "gpu_vendor": "nvidia",
                    "gpu_count": n,
                    "parallelism": "single GPU" if n == 1 else f"tensor parallel {n}",
                    "batch": conc,
                    "prefill_tokens": pin,
                    "decode_tokens": pout,
                    "flash_attention": True,
                    "context_class": "long" if pin + pout > 4096 else "short",
                    "command": " ".join(b.split("\n\n")[0].split()),
                    "measured": {"decode_tps_per_seq": round(1000 / float(tpot), 3), "median_tpot_ms": float(tpot)},
                    "measurement_quality": "exact"
                    if n == 1
                    else "tensor parallel between two Kubernetes pods (NCCL "
                    "transport not logged; TP 2 is no faster than 1 GPU from 50 sequences on)",
                    "not_expressible": [],
                    "source": DL_URL.format(c=DL_COMMIT) + f" (test {test}, run {k + 1})",
                    "source_kind": "vLLM benchmark_serving.py output in a README",
                    "vram": {
                        "model": vid,
                        "gpu": "a100-80gb-pcie",
                        "gpu_count": n,
                        "engine": "vllm",
                        "quant": None,
                        "split": "tp" if n > 1 else None,
                        "batch": conc,
                        "decode_context": pin,
                        "new_tokens": pout // 2,
                        "prefill_context": None,
                        "mapping_notes": [*notes, GPU_NOTE],
                    },
                }
            )
    return out


SK_GPUS = {
    "H100": ("h100-pcie", "NVIDIA H100 PCIe", "nvidia"),
    "H200": ("h200", "NVIDIA H200", "nvidia"),
    "b200": ("b200", "NVIDIA B200", "nvidia"),
    "MI300X": ("mi300x", "AMD Instinct MI300X", "amd"),
}


def sariekr(repo: str) -> list[dict]:
    commit = subprocess.run(
        ["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = []
    for folder, (gid, gname, vendor) in SK_GPUS.items():
        files = subprocess.run(
            ["git", "-C", repo, "ls-tree", "--name-only", "HEAD", folder + "/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for f in files:
            if "benchmark_concurrency_" not in f:
                continue
            d = json.loads(
                subprocess.run(
                    ["git", "-C", repo, "show", f"HEAD:{f}"], capture_output=True, text=True, check=True
                ).stdout
            )
            conc = int(d["concurrency"])
            if conc > 16:
                continue
            pin, pout = d["test_config"]["input_tokens"], d["test_config"]["output_tokens"]
            out.append(
                {
                    "id": f"vllm-sariekr-{gid}-gpt-oss-20b-c{conc}",
                    "engine": "vllm",
                    "engine_version": "unknown",
                    "backend": "ROCm" if vendor == "amd" else "CUDA",
                    "model_repo": "openai/gpt-oss-20b",
                    "model_file": "openai/gpt-oss-20b (MXFP4 experts)",
                    "quant": "MXFP4",
                    "model_class": "moe",
                    "gpu": gname,
                    "gpu_vendor": vendor,
                    "gpu_count": 1,
                    "parallelism": "single GPU",
                    "batch": conc,
                    "prefill_tokens": pin,
                    "decode_tokens": pout,
                    "flash_attention": True,
                    "context_class": "short",
                    "command": "concurrency.py (AsyncOpenAI streaming chat completions, max_tokens 1000)",
                    "measured": {
                        "decode_tps_per_seq": round(d["median_output_speed_per_query"], 3),
                        "median_ttft_ms": round(d["median_ttft"], 2),
                        "system_output_tps": round(d["system_output_throughput"], 1),
                    },
                    "measurement_quality": "exact",
                    "quant_substitute": False,
                    "not_expressible": [],
                    "source": SK_URL.format(c=commit, p=f),
                    "source_kind": "benchmark result JSON committed by the author",
                    "vram": {
                        "model": "gpt-oss-20b",
                        "gpu": gid,
                        "gpu_count": 1,
                        "engine": "vllm",
                        "quant": None,
                        "split": None,
                        "batch": conc,
                        "decode_context": pin,
                        "new_tokens": pout // 2,
                        "prefill_context": None,
                        "mapping_notes": [
                            "batch = the client's fixed concurrency",
                            "decode context = the prompt; --new-tokens = half the output",
                        ],
                    },
                }
            )
    return out


if __name__ == "__main__":
    rows = dennislee(sys.argv[1]) + sariekr(sys.argv[2])
    for r in rows:
        print(json.dumps(r, sort_keys=True, ensure_ascii=False))
