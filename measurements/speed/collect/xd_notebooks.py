"""Write measurements/speed/llama-cpp-xd-more.jsonl: the llama-bench runs of XiongjieDai/GPU-Benchmarks-on-LLM-
Inference (LLaMA 3 notebooks, May 2024 builds) on the boxes the shared set (../shared/speed) does not hold — RTX 3090
×1/2/4/6, RTX 4080, RTX 6000 Ada ×1/4, M2 Ultra — as the same pairs and mapping the shared set uses: ppN/tgN with
N = 512 and 4096 on one GPU, N = 512 on several (layer split).

    git clone https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference /tmp/xd  # commit aa72e0e
    .venv/bin/python measurements/speed/collect/xd_notebooks.py /tmp/xd
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

COMMIT = "aa72e0ec86c356c41f8281c9733e9a13c3675800"
OUT = Path(__file__).resolve().parents[1] / "llama-cpp-xd-more.jsonl"
# notebook -> (GPU as nvidia-smi / the notebook names it, vram's catalog id, vendor, backend, GPUs)
BOXES = {
    "LLaMA 3/Gaming GPUs/3090_v3.ipynb": ("NVIDIA GeForce RTX 3090", "rtx-3090", "nvidia", "CUDA", 1),
    "LLaMA 3/Gaming GPUs/3090_2_v3.ipynb": ("NVIDIA GeForce RTX 3090", "rtx-3090", "nvidia", "CUDA", 2),
    "LLaMA 3/Gaming GPUs/3090_4_v3.ipynb": ("NVIDIA GeForce RTX 3090", "rtx-3090", "nvidia", "CUDA", 4),
    "LLaMA 3/Gaming GPUs/3090_6_v3.ipynb": ("NVIDIA GeForce RTX 3090", "rtx-3090", "nvidia", "CUDA", 6),
    "LLaMA 3/Gaming GPUs/4080_v3.ipynb": ("NVIDIA GeForce RTX 4080", "rtx-4080", "nvidia", "CUDA", 1),
    "LLaMA 3/Professional GPUs/6000_Ada_v3.ipynb": (
        "NVIDIA RTX 6000 Ada Generation",
        "rtx-6000-ada",
        "nvidia",
        "CUDA",
        1,
    ),
    "LLaMA 3/Professional GPUs/6000_Ada_4_v3.ipynb": (
        "NVIDIA RTX 6000 Ada Generation",
        "rtx-6000-ada",
        "nvidia",
        "CUDA",
        4,
    ),
    "LLaMA 3/Mac/M2ultra_192GB.ipynb": ("Apple M2 Ultra (76-core GPU) 192GB", "m2-ultra-192gb", "apple", "Metal", 1),
}
ROW = re.compile(r"\|\s*llama (\d+B) ([^|]+?)\s*\|\s*([\d.]+ GiB)\s*\|.*\|\s*(pp|tg) (\d+)\s*\|\s*([\d.]+) ± ([\d.]+)")


def notebook_text(repo: Path, path: str) -> str:
    raw = subprocess.run(["git", "-C", str(repo), "show", f"{COMMIT}:{path}"], capture_output=True, check=True).stdout
    nb = json.loads(raw)
    return "\n".join("".join(o.get("text", [])) for c in nb["cells"] for o in c.get("outputs", []))


def cases_of(repo: Path, path: str) -> list[dict[str, Any]]:
    gpu, gid, vendor, backend, n = BOXES[path]
    text = notebook_text(repo, path)
    build = re.search(r"build: (\w+ \(\d+\))", text)
    runs: dict[tuple[str, str], dict[tuple[str, int], tuple[float, float, str]]] = {}
    for m in ROW.finditer(text):
        size, qtype, gib, kind, tokens, tps, sd = m.groups()
        runs.setdefault((size, qtype), {})[(kind, int(tokens))] = (float(tps), float(sd), gib)
    box = Path(path).stem.replace("_v3", "").lower()
    out = []
    for (size, qtype), tests in runs.items():
        quant = {"Q4_K - Medium": "Q4_K_M", "F16": "F16"}[qtype]
        file = f"{size}-v3/ggml-model-{'Q4_K_M' if quant == 'Q4_K_M' else 'f16'}.gguf"  # the notebooks' cells
        for tokens in (512, 4096) if n == 1 else (512,):
            if ("pp", tokens) not in tests or ("tg", tokens) not in tests:
                continue
            pp, tg = tests[("pp", tokens)], tests[("tg", tokens)]
            tokens_list = "512,1024,2048,4096,8192" if vendor == "apple" else "512,1024,4096,8192"
            out.append(
                {
                    "backend": backend,
                    "batch": 1,
                    "command": f"./llama-bench -p {tokens_list} -n {tokens_list} -m ./models/{file}",
                    "context_class": "short" if tokens == 512 else "long",
                    "decode_tokens": tokens,
                    "depth": 0,
                    "engine": "llama.cpp",
                    "engine_version": f"build {build.group(1)}" if build else "May 2024 build",
                    "flash_attention": False,
                    "gpu": gpu,
                    "gpu_count": n,
                    "gpu_vendor": vendor,
                    "id": f"llamacpp-xd-{box}-{size.lower()}-{quant.lower()}-pp{tokens}-tg{tokens}",
                    "measured": {
                        "decode_test": f"tg{tokens}",
                        "decode_tps_per_seq": tg[0],
                        "decode_tps_sd": tg[1],
                        "prefill_test": f"pp{tokens}",
                        "prefill_tps": pp[0],
                        "prefill_tps_sd": pp[1],
                    },
                    "model_class": "dense",
                    "model_file": f"./models/{file} (converted by the author; llama-bench reports 'llama {size} "
                    f"{qtype}', {pp[2]})",
                    "model_repo": f"meta-llama/Meta-Llama-3-{size}",
                    "n_batch": 2048,
                    "n_ctx": {"decode": tokens, "prefill": tokens},
                    "n_gpu_layers": 99,
                    "n_ubatch": 512,
                    "not_expressible": [],
                    "parallelism": "single GPU"
                    if n == 1
                    else f"{n} GPUs, llama.cpp default split mode 'layer' (pipeline of layer ranges)",
                    "prefill_tokens": tokens,
                    "quant": quant,
                    "settings_note": "llama-bench defaults of that build: n_batch 2048, n_ubatch 512, flash attention "
                    "off, f16 KV cache; each test runs 5 repetitions (mean ± sd shown)",
                    "source": f"https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference/blob/{COMMIT}/"
                    + quote(path),
                    "source_kind": "llama-bench output in a committed Jupyter notebook (RunPod / author's Macs, "
                    "May 2024)",
                    "vram": {
                        "batch": 1,
                        "decode_context": tokens // 2,
                        "engine": "llama.cpp",
                        "gpu": gid,
                        "gpu_count": n,
                        "mapping_notes": ["decode context = average KV length during tgN from an empty prompt (N/2)"],
                        "model": f"llama-3-{size.lower()}",
                        "new_tokens": 0,
                        "prefill_context": tokens,
                        "quant": quant.lower(),
                        "split": "pp" if n > 1 else None,
                    },
                }
            )
    return out


def main() -> None:
    repo = Path(sys.argv[1])
    rows = [c for path in BOXES for c in cases_of(repo, path)]
    OUT.write_text("".join(json.dumps(c, sort_keys=True, ensure_ascii=False) + "\n" for c in rows))
    print(f"{len(rows)} cases -> {OUT}")


if __name__ == "__main__":
    main()
