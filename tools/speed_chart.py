"""Draw docs/speed-accuracy.png: vram's predicted decode and prefill tokens/s against every measured one in
../shared/speed and measurements/speed (exact figures), log-log, with the ±10 % / ±25 % bands.

    .venv/bin/pip install -e '.[bench]'    # matplotlib, outside the core package
    .venv/bin/python tools/speed_chart.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "measurements" / "speed"))
import fit_check  # noqa: E402

STYLE = {
    "cases.jsonl": ("shared llama-bench (May 2024)", "o", "#1f77b4"),
    "shared-new-gpus.jsonl": ("shared, GPUs added to the catalog", "s", "#17becf"),
    "llama-cpp-xd-more.jsonl": ("same notebooks, boxes not in the shared set", "h", "#7f7f7f"),
    "vllm-serving.jsonl": ("vLLM serving, 1-200 sequences (incl. gpt-oss)", "^", "#d62728"),
    "llama-cpp-rtx-pro-6000.jsonl": ("llama.cpp 2025 + FA, RTX PRO 6000", "D", "#2ca02c"),
    "llama-cpp-moe.jsonl": ("MoE, llama.cpp Dec 2023", "v", "#9467bd"),
    "llama-cpp-issues.jsonl": ("llama-bench in issues (M4, M1 Max, 3080)", "P", "#ff7f0e"),
    "vllm-tt-inference-server.jsonl": ("vLLM, Qwen3 on A100 (tt-inference-server)", "X", "#8c564b"),
    "vllm-serving-more.jsonl": ("vLLM serving, RTX 4090 / 5090", "<", "#e377c2"),
    "llama-cpp-more-builds.jsonl": ("llama-bench, more builds (incl. ROCm)", ">", "#bcbd22"),
    "llama-cpp-rocm.jsonl": ("llama.cpp on ROCm, RX 7900 XTX", "*", "#c49c94"),
    "mlx.jsonl": ("MLX (mlx-lm), M4 Max / M3 Max", "d", "#000000"),
    "mlx-more.jsonl": ("MLX, collected after the fit", "8", "#ff9896"),
    "llama-cpp-rocm-more.jsonl": ("llama.cpp 2025, 8 x MI300X", "p", "#9edae5"),
    "transformers-generate.jsonl": ("transformers generate()", "H", "#393b79"),
    "vllm-concurrency.jsonl": ("vLLM, DeepSeek-R1 / Nemotron, 4-1024 seqs", "v", "#e7969c"),
    "llama-cpp-prs.jsonl": ("llama-bench in llama.cpp PRs, after the fit", "o", "#637939"),
    "geerling.jsonl": ("Geerling's llama-bench runs, after the fit", "s", "#843c39"),
    "vllm-prefill.jsonl": ("vLLM prompt / TTFT, after the fit", "^", "#e6550d"),
    "vllm-concurrency-dense.jsonl": ("vLLM dense models, 1-512 seqs, after the fit", "v", "#3182bd"),
    "vllm-inferencex.jsonl": ("vLLM 0.17 gpt-oss-120b, MI300X (InferenceX), after the fit", "D", "#a55194"),
    "llama-cpp-scoreboards.jsonl": ("llama.cpp scoreboards #15013 / #4167, after the fit", "h", "#fd8d3c"),
    "llama-cpp-vulkan-scoreboard.jsonl": ("llama.cpp Vulkan scoreboard #10879 (set its shares)", "P", "#31a354"),
    "llama-cpp-rocm-scoreboard.jsonl": ("llama.cpp ROCm scoreboard #15021 (set 2025 ROCm)", "X", "#d6616b"),
    "llama-cpp-amd-more.jsonl": ("llama.cpp, W7900 / RX 6700 XT, after the fit", "d", "#7b4173"),
}
OTHER = ("other collected measurements", ".", "#999999")


def main() -> None:
    paths = [str(fit_check.SHARED), *sorted(str(p) for p in fit_check.HERE.glob("*.jsonl"))]
    rows = [r for r in fit_check.score(fit_check.load(paths)) if r["exact"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 7.4))
    groups = [(lambda r, f=f: r["file"] == f, style) for f, style in STYLE.items()]
    groups.append((lambda r: r["file"] not in STYLE, OTHER))
    counts: dict[str, list[int]] = {style[0]: [0, 0] for _, style in groups}
    for i, (ax, key, title) in enumerate(
        ((axes[0], "dec", "decode tokens/s per sequence"), (axes[1], "pre", "prefill tokens/s"))
    ):
        pts = [r for r in rows if r.get(key) is not None]
        lo = min(min(r[f"{key}_meas"], r[f"{key}_pred"]) for r in pts) * 0.7
        hi = max(max(r[f"{key}_meas"], r[f"{key}_pred"]) for r in pts) * 1.4
        ax.plot([lo, hi], [lo, hi], color="black", lw=1)
        for f, c in ((1.1, "#bbbbbb"), (1.25, "#dddddd")):
            ax.fill_between([lo, hi], [lo / f, hi / f], [lo * f, hi * f], color=c, alpha=0.35, lw=0)
        for belongs, (label, marker, color) in groups:
            sel = [r for r in pts if belongs(r)]
            counts[label][i] = len(sel)
            if sel:
                ax.scatter(
                    [r[f"{key}_meas"] for r in sel],
                    [r[f"{key}_pred"] for r in sel],
                    s=22,
                    marker=marker,
                    color=color,
                    alpha=0.85,
                    edgecolors="none",
                )
        errs = sorted(abs(r[key]) for r in pts)
        ax.set_title(f"{title}: median |error| {statistics.median(errs) * 100:.1f} %, n={len(errs)}", fontsize=10)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured")
        ax.set_ylabel("vram")
        ax.grid(True, which="both", alpha=0.2)
    # one legend for both panels, under them (decode / prefill cases per group), so that it hides no point
    handles = [
        plt.Line2D([], [], ls="", marker=m, color=c, label=f"{label} ({counts[label][0]} / {counts[label][1]})")
        for _, (label, m, c) in groups
        if any(counts[label])
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False, title="cases: decode / prefill")
    fig.suptitle("vram speed vs public measurements (bands: ±10 %, ±25 %)", fontsize=11)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    out = ROOT / "docs" / "speed-accuracy.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
