"""The speed accuracy table of the README: vram's decode / prefill tokens/s against every measurement in
../shared/speed and measurements/speed (exact figures), median / max |error|, next to the rule vram used before
(bytes / (bandwidth × 0.7), FLOPs / (BF16 TFLOPS × 0.5)).

    .venv/bin/python measurements/speed/accuracy.py
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_check

Row = dict[str, Any]


def in_file(name: str) -> Callable[[Row], bool]:
    """The rows of one measurements file."""
    return lambda r: bool(r["file"] == name)


def cell(rows: list[Row], key: str) -> str:
    e = [abs(r[key]) for r in rows if r.get(key) is not None]
    return f"{statistics.median(e) * 100:.1f} % / {max(e) * 100:.0f} %" if e else "–"


def main() -> None:
    paths = [str(fit_check.SHARED), *sorted(str(p) for p in fit_check.HERE.glob("*.jsonl"))]
    rows = [r for r in fit_check.score(fit_check.load(paths)) if r["exact"]]
    groups: list[tuple[str, Callable[[Row], bool]]] = [
        (
            "shared llama-bench set (../shared/speed; llama.cpp May 2024, 1-8 GPUs)",
            in_file("cases.jsonl"),
        ),
        (
            "the shared set's GPUs added to the catalog (A40, RTX 4000/5000 Ada, M1)",
            in_file("shared-new-gpus.jsonl"),
        ),
        (
            "the same notebooks' boxes the shared set lacks (RTX 3090 x1-6, 4080, 6000 Ada x1/4, M2 Ultra)",
            in_file("llama-cpp-xd-more.jsonl"),
        ),
        (
            "vLLM serving (A100, 1-200 sequences; gpt-oss-20b on H100 PCIe / H200 / B200 / MI300X, 1-16)",
            in_file("vllm-serving.jsonl"),
        ),
        (
            "vLLM, Qwen3-30B-A3B and Qwen3-0.6B on A100 at 1 sequence (tt-inference-server#340)",
            in_file("vllm-tt-inference-server.jsonl"),
        ),
        (
            "vLLM serving on more GPUs (RTX 4090 / 5090 at 1 sequence; the rest of the file is not exact)",
            in_file("vllm-serving-more.jsonl"),
        ),
        ("llama.cpp Sept 2025 + flash attention, RTX PRO 6000", lambda r: r["file"] == "llama-cpp-rtx-pro-6000.jsonl"),
        (
            "llama-bench, more builds and boxes (H100 PCIe, RTX 3090 / 3090 Ti, M3 Max; MI300X, RX 7900 XTX on ROCm)",
            in_file("llama-cpp-more-builds.jsonl"),
        ),
        (
            "... the same without the MI300X's Oct 2024 build (before llama.cpp's MFMA kernels for CDNA3)",
            lambda r: r["file"] == "llama-cpp-more-builds.jsonl" and not r["gpu"].startswith("mi"),
        ),
        (
            "llama.cpp on ROCm, RX 7900 XTX (Nov 2024 - Jun 2025 builds)",
            in_file("llama-cpp-rocm.jsonl"),
        ),
        (
            "llama.cpp on CDNA3, 2025 builds: 8 x MI300X layer split, Llama 3.1 70B and DeepSeek-V3 Q4_K_M (AMD ROCm "
            "blogs; set the CDNA3 coefficients)",
            in_file("llama-cpp-rocm-more.jsonl"),
        ),
        (
            "llama-bench results posted in issues (M4, M1 Max 2026 Metal; RTX 3080)",
            in_file("llama-cpp-issues.jsonl"),
        ),
        (
            "MLX on Apple GPUs (mlx-lm: Qwen3-4B bf16 ... 4-bit, Qwen3-30B-A3B on an M4 Max; Llama 3.3 70B 4-bit, "
            "0.3-24 k prompts, on an M3 Max)",
            in_file("mlx.jsonl"),
        ),
        (
            "MLX, collected after its coefficients were set (Qwen2.5-72B 6-bit on an M4 Max; the rest is not exact)",
            in_file("mlx-more.jsonl"),
        ),
        (
            "transformers generate(), 1 sequence: Qwen2.5 0.5B-72B on A100, Qwen3 0.6B-32B on H20 (eager, host-bound)",
            lambda r: r["file"] == "transformers-generate.jsonl" and not r["moe"],
        ),
        (
            "vLLM at 4-1024 sequences: DeepSeek-R1 on 8 x H200 / 8 x MI300X (vLLM 0.7, Aug 2025 ROCm), Nemotron Nano",
            in_file("vllm-concurrency.jsonl"),
        ),
        (
            "llama-bench tables in llama.cpp PRs (#4766, #6505, #13014, #15451, #26284) and dmatora's benchmarks, "
            "collected after the fit",
            in_file("llama-cpp-prs.jsonl"),
        ),
        (
            "Jeff Geerling's llama-bench runs (M3 Ultra Metal, Radeon 8060S ROCm, Vulkan cards), collected after the "
            "fit (the 8060S prompt then set RDNA 3.5's share)",
            in_file("geerling.jsonl"),
        ),
        (
            "vLLM time to first token at one request (prompt / TTFT), collected after the fit (RTX 5090; Qwen3-235B "
            "FP8 TP 4 on RTX PRO 6000 over PCIe)",
            in_file("vllm-prefill.jsonl"),
        ),
        (
            "vLLM serving of dense models at 1-512 sequences, collected after the fit (the exact one: Llama 3.3 70B "
            "FP8 on an MI355X at 64)",
            in_file("vllm-concurrency-dense.jsonl"),
        ),
        (
            "gpt-oss-120b on vLLM 0.15 / 0.17 (SemiAnalysisAI/InferenceX; the exact ones: one MI300X at 64-256 "
            "sequences), collected after the fit",
            in_file("vllm-inferencex.jsonl"),
        ),
        (
            "llama.cpp's community scoreboards, collected after the fit: #15013 (LLaMA 2 7B Q4_0 on 19 NVIDIA GPUs, "
            "2025 builds, flash attention off / on) and #4167 (7B F16 / Q8_0 / Q4_0 on 15 M1-M4 chips, Nov 2023 build)",
            in_file("llama-cpp-scoreboards.jsonl"),
        ),
        (
            "llama.cpp's Vulkan scoreboard (#10879: LLaMA 2 7B Q4_0 on RTX 30 / 40 cards, Arc B580, Radeon 8060S; set "
            "the Vulkan build's shares, in-sample)",
            in_file("llama-cpp-vulkan-scoreboard.jsonl"),
        ),
        (
            "llama.cpp's ROCm scoreboard (#15021: LLaMA 2 7B Q4_0 on RX 6800 XT ... 7900 XTX, 2025 builds; set the "
            "2025 ROCm and RDNA2 shares, in-sample)",
            in_file("llama-cpp-rocm-scoreboard.jsonl"),
        ),
        (
            "llama.cpp on AMD cards added to the catalog on 2026-12-07 (Radeon PRO W7900 on ROCm / Vulkan; RX 6700 XT "
            "on Vulkan), collected after the fit",
            in_file("llama-cpp-amd-more.jsonl"),
        ),
        (
            "cases on GPUs added to the catalog after the fit (M2 Max, M3 Pro, Radeon 8060S; more, not exact: RTX 2080 "
            "Ti, Tesla P40, RTX A4000 / A5000, M1 Ultra, DGX Spark, RX 7900 XT / 9070 XT, R9700)",
            lambda r: r["gpu_added"],
        ),
        (
            "MoE models (gpt-oss, Qwen3-30B-A3B, DeepSeek on vLLM, llama.cpp, MLX, transformers; Mixtral Dec 2023)",
            lambda r: r["moe"],
        ),
        ("more than 16 concurrent sequences", lambda r: r["b"] > 16),
        (
            "... of them, the pairings vram calibrates (not DeepSeek-R1 on vLLM, which it marks uncalibrated)",
            lambda r: r["b"] > 16 and r.get("calibrated", True),
        ),
        ("MoE models, the pairings vram calibrates", lambda r: r["moe"] and r.get("calibrated", True)),
        ("held-out GPUs (not used to set coefficients)", lambda r: r["held"]),
        ("all", lambda r: True),
        ("all, the pairings vram calibrates (shown with a range)", lambda r: r.get("calibrated", True)),
    ]
    print(
        "| measurements | cases (decode / prefill) | decode: vram | decode: old rule | prefill: vram | "
        "prefill: old rule |"
    )
    print("|---|---|---|---|---|---|")
    # vLLM's 2026 releases, every figure (most are not exact: a TPOT of unstated statistic), without and with the
    # release each ran given to vram (--engine-version: 0.14+ overlaps the host loop, `speed.VLLM_ASYNC_FROM`)
    cases = fit_check.load(paths)
    # the 0.14-0.20 runs the async terms were set on; the files collected after them get their own rows
    after = (
        "vllm-concurrency-more.jsonl",
        "vllm-pr-benchmarks.jsonl",
        "vllm-serving-sweeps.jsonl",
        "vllm-gptoss-cdna3.jsonl",
    )
    newer = [
        c for c in cases if fit_check.release_tuple(c) >= fit_check.speed.VLLM_ASYNC_FROM and c["_file"] not in after
    ]
    later = [c for c in cases if c["_file"] in after[1:]]
    boards = [c for c in cases if c["_file"] in ("llama-cpp-scoreboards.jsonl", "llama-cpp-rocm-scoreboard.jsonl")]
    fit_check.VERSIONS = True
    with_release = fit_check.score(newer)
    later_built = fit_check.score(later)
    boards_built = [r for r in fit_check.score(boards) if r["exact"]]
    # every exact figure with the release or build its run states (vLLM 0.8+, transformers, llama.cpp builds)
    all_built = [r for r in fit_check.score(cases) if r["exact"]]
    fit_check.VERSIONS = False
    # transformers' generate() at long prompts: end-to-end figures (prompt included), so none is exact
    scored_all = fit_check.score(cases)
    hf_long = [r for r in scored_all if r["file"] == "transformers-generate.jsonl" and r["id"].startswith("hf-qwen25")]
    hf_long = [r for r in hf_long if "-in1-" not in r["id"]]
    hf15 = [r for r in scored_all if r["file"] == "transformers-qwen15.jsonl"]
    q25 = [r for r in scored_all if r["file"] == "qwen25-speed-benchmark.jsonl"]
    burst = [r for r in scored_all if r["file"] == "vllm-concurrency-more.jsonl"]
    tables: list[tuple[str, list[Row]]] = [(name, [r for r in rows if pred(r)]) for name, pred in groups]
    tables += [
        (
            f"vLLM 0.14-0.20 runs of 2026, all {len(newer)} figures (exact or not), no release given: the 2025 builds' "
            "terms",
            fit_check.score(newer),
        ),
        ("... the same, each run's release given (--engine-version: async scheduling, 60 µs MoE layers)", with_release),
        (
            "vLLM serving figures collected 2026-12-08 after the fit (ai.wmx.dev's L4 sweep at 1-32 sequences, "
            "cloudrift-ai/emmy's stock-vLLM lanes, figures posted in vLLM issues, gpt-oss-120b TP 8 on MI300X; "
            "releases 0.9-0.29)",
            fit_check.score(later),
        ),
        ("... the same, each run's release given", later_built),
        (
            "llama.cpp's scoreboards (exact), each row's build given (--llama-build; the #15013 / #15021 rows as "
            "b6000+: the 2025 CUDA and ROCm kernels)",
            boards_built,
        ),
        ("all, each run's release or build given (fit_check.py --versions)", all_built),
        ("... MoE models", [r for r in all_built if r["moe"]]),
        ("... more than 16 concurrent sequences", [r for r in all_built if r["b"] > 16]),
        (
            "transformers generate() at 6,144- and 30,720-token prompts, Qwen2.5 7B / 14B / 32B on A100 (end-to-end, "
            "not exact; set the cache-traffic term)",
            hf_long,
        ),
        (
            "transformers generate() at 1-30,720-token prompts, Qwen1.5 0.5B-72B (no GQA) on 1-5 A100s (end-to-end, "
            "not exact), collected after the fit",
            hf15,
        ),
        (
            "transformers generate(), the Qwen2.5 table's other rows: 0.5B-3B at 6-30 k, 7B-32B at 14 k, 72B on 2-3 "
            "A100s (end-to-end, not exact), collected after the fit",
            [r for r in q25 if r["engine"] == "transformers"],
        ),
        (
            "vLLM 0.6.3 at one sequence, 1-129,024-token prompts: Qwen2.5 0.5B-72B on 1-4 A100s (end-to-end, not "
            "exact), collected after the fit",
            [r for r in q25 if r["engine"] == "vllm"],
        ),
        (
            "vLLM at 50-100 sequences, 100 prompts of 1-15 k tokens at once, 128 out (Qwen3-32B / gpt-oss-120b on 8 x "
            "H100 / H200 / B200, release not logged; Qwen3-235B FP8 on 4 x RTX PRO 6000), all figures, collected "
            "after the fit",
            burst,
        ),
    ]
    for name, g in tables:
        nd = sum(r.get("dec") is not None for r in g)
        npf = sum(r.get("pre") is not None for r in g)
        print(
            f"| {name} | {nd} / {npf} | {cell(g, 'dec')} | {cell(g, 'dec_old')} | {cell(g, 'pre')} | "
            f"{cell(g, 'pre_old')} |"
        )


if __name__ == "__main__":
    main()
