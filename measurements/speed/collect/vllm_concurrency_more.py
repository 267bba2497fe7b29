"""Write measurements/speed/vllm-concurrency-more.jsonl: vLLM decode speed (TPOT) at high concurrency (32-100
sequences) from two public sources, as validation data for the speed model (not for tuning).

    .venv/bin/python measurements/speed/collect/vllm_concurrency_more.py

1. Scicom-AI-Enterprise-Organization/llm-benchmaxxing, benchmarks/runpod_{b200,h100sxm,h200sxm}: `vllm bench serve`
   result JSONs (and their .txt logs) of 8-GPU RunPod nodes, Qwen3-32B (BF16) and gpt-oss-120b (MXFP4), random
   prompts of 1024-15000 tokens, 128 output tokens with --ignore-eos, 100 prompts at --max-concurrency 100, served
   as TP8 or as TP4 x DP2. The figures below are the JSONs' (rounded to 0.01).
2. kubesimplify/website, the 'running a big LLM across multiple GPUs' post: Qwen3-235B-A22B-Instruct-2507-FP8 on 4x
   RTX PRO 6000 Blackwell Server Edition (no NVLink), vLLM 0.27.1, TP4, 1024 in / 256 out, concurrency 1 and 32.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "vllm-concurrency-more.jsonl"

SCICOM_REPO = "https://github.com/Scicom-AI-Enterprise-Organization/llm-benchmaxxing"
SCICOM_COMMIT = "36be1ae1d87bb6a39f496aaac42b0544186f798e"  # HEAD; results added in 7367420 / c776cb0 (2026-01-29)
SCICOM_GPUS = {
    # folder tag -> (GPU as named, catalog id, folder)
    "b200": ("NVIDIA B200 (RunPod 8x B200 pod)", "b200", "runpod_b200"),
    "h100sxm": ("NVIDIA H100 80GB HBM3 (RunPod 8x H100 SXM pod)", "h100-sxm", "runpod_h100sxm"),
    "h200sxm": ("NVIDIA H200 SXM (RunPod 8x H200 SXM pod)", "h200", "runpod_h200sxm"),
}
SCICOM_MODELS = {
    # folder -> (catalog id, model_repo, model_file, model_class, quant, vram quant)
    "Qwen3-32B": ("qwen3-32b", "Qwen/Qwen3-32B", "Qwen/Qwen3-32B (BF16)", "dense", "BF16", None),
    "gpt-oss-120b": (
        "gpt-oss-120b",
        "openai/gpt-oss-120b",
        "openai/gpt-oss-120b (MXFP4 experts, BF16 attention; H200 runs: the fine-tune "
        "Scicom-intl/gpt-oss-120b-Malaysian-Reasoning-SFT-v0.1, same shapes)",
        "moe",
        "MXFP4",
        None,
    ),
}
SCICOM_OUT = 128
SCICOM_CONC = 100
# (gpu tag, model folder, TP, DP, input length, result date, median TPOT, mean TPOT, median TTFT, mean TTFT,
#  median ITL, output tok/s)
# fmt: off
SCICOM_ROWS = [
    ("b200", "Qwen3-32B", 4, 2, 1024, "20260129-002801", 11.13, 11.0, 851.41, 867.85, 8.29, 5190.3),
    ("b200", "Qwen3-32B", 4, 2, 15000, "20260129-002914", 55.92, 53.46, 5301.08, 5596.52, 14.61, 1007.04),
    ("b200", "Qwen3-32B", 4, 2, 2048, "20260129-002812", 13.0, 13.3, 1071.72, 1029.3, 8.79, 4634.41),
    ("b200", "Qwen3-32B", 4, 2, 4096, "20260129-002826", 17.32, 17.68, 1524.46, 1469.41, 9.74, 3383.5),
    ("b200", "Qwen3-32B", 4, 2, 8192, "20260129-002845", 29.11, 28.97, 2819.71, 2835.66, 11.56, 1913.14),
    ("b200", "Qwen3-32B", 8, 1, 1024, "20260129-002451", 11.65, 11.67, 855.31, 855.32, 7.46, 5368.23),
    ("b200", "Qwen3-32B", 8, 1, 15000, "20260129-002604", 48.96, 48.84, 5373.39, 5341.59, 13.91, 1071.49),
    ("b200", "Qwen3-32B", 8, 1, 2048, "20260129-002503", 12.34, 12.33, 854.72, 858.69, 7.95, 5165.61),
    ("b200", "Qwen3-32B", 8, 1, 4096, "20260129-002517", 18.33, 18.28, 1561.63, 1570.56, 8.93, 3207.35),
    ("b200", "Qwen3-32B", 8, 1, 8192, "20260129-002536", 30.16, 30.05, 3019.8, 3021.05, 10.79, 1816.02),
    ("b200", "gpt-oss-120b", 8, 1, 1024, "20260129-011055", 15.29, 15.11, 807.37, 828.08, 12.5, 4564.88),
    ("b200", "gpt-oss-120b", 8, 1, 15000, "20260129-011201", 35.74, 35.22, 3657.11, 3713.88, 13.6, 1491.57),
    ("b200", "gpt-oss-120b", 8, 1, 2048, "20260129-011106", 15.34, 15.3, 716.87, 719.36, 12.62, 4691.51),
    ("b200", "gpt-oss-120b", 8, 1, 4096, "20260129-011120", 18.56, 18.48, 1208.46, 1217.16, 12.57, 3472.92),
    ("b200", "gpt-oss-120b", 8, 1, 8192, "20260129-011137", 25.61, 25.41, 2214.99, 2233.52, 13.05, 2247.5),
    ("h100sxm", "Qwen3-32B", 4, 2, 1024, "20260129-041254", 15.94, 16.62, 1497.78, 1411.3, 11.36, 3341.86),
    ("h100sxm", "Qwen3-32B", 4, 2, 15000, "20260129-041425", 106.24, 104.67, 10619.28, 10763.06, 26.51, 520.1),
    ("h100sxm", "Qwen3-32B", 4, 2, 2048, "20260129-041306", 20.58, 20.73, 1585.32, 1566.72, 12.47, 2994.61),
    ("h100sxm", "Qwen3-32B", 4, 2, 4096, "20260129-041322", 31.08, 30.87, 2763.96, 2790.13, 14.58, 1873.61),
    ("h100sxm", "Qwen3-32B", 4, 2, 8192, "20260129-041346", 55.84, 56.53, 6059.5, 5966.08, 18.95, 946.88),
    ("h100sxm", "Qwen3-32B", 8, 1, 1024, "20260129-040949", 16.2, 16.54, 1340.18, 1296.47, 9.62, 3710.63),
    ("h100sxm", "Qwen3-32B", 8, 1, 15000, "20260129-041112", 85.67, 84.33, 9140.6, 9238.35, 24.61, 623.97),
    ("h100sxm", "Qwen3-32B", 8, 1, 2048, "20260129-041001", 17.18, 17.66, 1375.08, 1313.94, 10.64, 3539.69),
    ("h100sxm", "Qwen3-32B", 8, 1, 4096, "20260129-041015", 27.44, 27.71, 2512.55, 2479.73, 12.76, 2091.59),
    ("h100sxm", "Qwen3-32B", 8, 1, 8192, "20260129-041038", 49.35, 49.07, 5022.65, 5037.25, 17.01, 1109.25),
    ("h100sxm", "gpt-oss-120b", 4, 2, 1024, "20260129-035150", 18.84, 18.68, 1146.6, 1168.74, 15.4, 3575.02),
    ("h100sxm", "gpt-oss-120b", 4, 2, 15000, "20260129-035304", 52.91, 53.41, 6292.02, 6224.74, 17.98, 956.77),
    ("h100sxm", "gpt-oss-120b", 4, 2, 2048, "20260129-035202", 20.48, 20.72, 1141.38, 1108.03, 15.92, 3364.37),
    ("h100sxm", "gpt-oss-120b", 4, 2, 4096, "20260129-035216", 26.97, 26.77, 1818.45, 1850.86, 16.23, 2385.52),
    ("h100sxm", "gpt-oss-120b", 4, 2, 8192, "20260129-035236", 37.17, 37.55, 3520.98, 3467.67, 16.94, 1513.83),
    ("h100sxm", "gpt-oss-120b", 8, 1, 1024, "20260129-034729", 18.05, 18.05, 1412.9, 1412.83, 14.45, 3386.19),
    ("h100sxm", "gpt-oss-120b", 8, 1, 15000, "20260129-034837", 45.31, 45.06, 4736.9, 4748.55, 17.17, 1167.15),
    ("h100sxm", "gpt-oss-120b", 8, 1, 2048, "20260129-034741", 18.44, 18.16, 837.32, 873.87, 14.79, 3926.67),
    ("h100sxm", "gpt-oss-120b", 8, 1, 4096, "20260129-034754", 22.89, 22.64, 1477.08, 1511.23, 15.05, 2824.88),
    ("h100sxm", "gpt-oss-120b", 8, 1, 8192, "20260129-034812", 32.04, 31.78, 2803.49, 2834.18, 15.9, 1791.26),
    ("h200sxm", "Qwen3-32B", 4, 2, 1024, "20260128-051453", 15.4, 14.94, 1054.54, 1127.07, 9.7, 4166.23),
    ("h200sxm", "Qwen3-32B", 4, 2, 15000, "20260128-051621", 93.71, 94.11, 10685.85, 10585.32, 20.84, 547.73),
    ("h200sxm", "Qwen3-32B", 4, 2, 2048, "20260128-051505", 17.94, 19.09, 1773.99, 1623.84, 10.49, 3123.48),
    ("h200sxm", "Qwen3-32B", 4, 2, 4096, "20260128-051519", 26.69, 26.35, 2522.54, 2536.94, 12.06, 2138.41),
    ("h200sxm", "Qwen3-32B", 4, 2, 8192, "20260128-051543", 55.14, 54.14, 5357.09, 5503.78, 15.31, 1006.21),
    ("h200sxm", "Qwen3-32B", 8, 1, 1024, "20260128-051150", 15.65, 15.65, 1230.81, 1228.85, 8.58, 3918.62),
    ("h200sxm", "Qwen3-32B", 8, 1, 15000, "20260128-051312", 81.77, 81.55, 9062.07, 9024.22, 19.54, 644.24),
    ("h200sxm", "Qwen3-32B", 8, 1, 2048, "20260128-051201", 16.42, 16.42, 1228.86, 1226.08, 9.39, 3805.06),
    ("h200sxm", "Qwen3-32B", 8, 1, 4096, "20260128-051216", 26.0, 25.95, 2347.3, 2346.69, 10.95, 2226.81),
    ("h200sxm", "Qwen3-32B", 8, 1, 8192, "20260128-051238", 46.99, 46.73, 4822.26, 4841.29, 14.14, 1162.45),
    ("h200sxm", "gpt-oss-120b", 4, 2, 1024, "20260128-044337", 16.84, 17.43, 1154.8, 1071.57, 14.41, 3849.05),
    ("h200sxm", "gpt-oss-120b", 4, 2, 15000, "20260128-044526", 54.36, 55.07, 5908.66, 5782.48, 16.51, 972.34),
    ("h200sxm", "gpt-oss-120b", 4, 2, 2048, "20260128-044422", 19.02, 19.06, 1045.8, 1033.82, 14.64, 3642.43),
    ("h200sxm", "gpt-oss-120b", 4, 2, 4096, "20260128-044437", 23.62, 23.72, 1607.04, 1588.37, 14.74, 2723.64),
    ("h200sxm", "gpt-oss-120b", 4, 2, 8192, "20260128-044457", 36.41, 36.03, 3087.86, 3139.42, 15.48, 1614.16),
    ("h200sxm", "gpt-oss-120b", 8, 1, 1024, "20260128-043905", 17.12, 17.12, 1264.59, 1257.55, 13.67, 3656.62),
    ("h200sxm", "gpt-oss-120b", 8, 1, 15000, "20260128-044019", 42.16, 41.93, 4378.95, 4364.82, 15.71, 1261.73),
    ("h200sxm", "gpt-oss-120b", 8, 1, 2048, "20260128-043918", 16.88, 17.0, 821.61, 795.34, 13.83, 4226.57),
    ("h200sxm", "gpt-oss-120b", 8, 1, 4096, "20260128-043934", 21.07, 20.99, 1409.74, 1406.98, 13.97, 3043.24),
    ("h200sxm", "gpt-oss-120b", 8, 1, 8192, "20260128-043953", 29.75, 29.53, 2586.94, 2584.1, 14.61, 1939.09),
]
# fmt: on

KUBE_SOURCE = (
    "https://github.com/kubesimplify/website/blob/08b151ee1aa38188fb118b99104567117a2ca6d4/content/blog/"
    "running-a-big-llm-across-multiple-gpus-with-vllm.md"
)
# (concurrency, prompts, median TPOT, mean TPOT, median TTFT, mean TTFT, median ITL, output tok/s)
KUBE_ROWS = [
    (1, 12, 17.14, 17.10, 251.60, 255.31, 17.13, 55.47),
    (32, 640, 51.16, 50.88, 3211.10, 3176.38, 37.35, 507.09),
]


def scicom_case(row: tuple) -> dict[str, object]:
    tag, folder, tp, dp, prompt, date, med_tpot, mean_tpot, med_ttft, mean_ttft, med_itl, out_tps = row
    gpu_name, gpu_id, gpu_dir = SCICOM_GPUS[tag]
    model_id, repo, mfile, mclass, quant, vquant = SCICOM_MODELS[folder]
    batch = SCICOM_CONC // dp
    fname = f"run_1_TP{tp}_DP{dp}_CTX{prompt}_C{SCICOM_CONC}_P{SCICOM_CONC}_O{SCICOM_OUT}.json"
    if tag == "h200sxm":  # the H200 files carry a prefix
        fname = f"benchmark_{folder.lower().replace('-', '_')}_h200sxm_{fname}"
    path = f"benchmarks/{gpu_dir}/{folder}/{fname}"
    par = f"tensor parallel {tp}" if dp == 1 else f"tensor parallel {tp} x data parallel {dp} (8 GPUs, two engines)"
    notes = [
        f"batch = --max-concurrency {SCICOM_CONC} with {SCICOM_CONC} prompts at request rate inf: one wave, every "
        "request arrives at t=0 (the log's 'Peak concurrent requests' is 100)",
        f"decode context = the prompt ({prompt}); --new-tokens = half the output ({SCICOM_OUT // 2})",
        "measured = 1000 / median TPOT of the result JSON",
        f"GPU: RunPod '{gpu_dir}' pod -> {gpu_id}",
        "one wave of 100 requests with 128-token outputs: each sequence's TPOT includes the steps spent on the "
        f"other requests' chunked prefills (median TTFT {med_ttft:.0f} ms against {med_tpot * 127:.0f} ms of decode)",
    ]
    if dp > 1:
        notes.append(
            f"data parallel {dp}: two TP{tp} engines share the 100 requests (vLLM's internal load balancing), "
            f"mapped as one TP{tp} engine of {tp} GPUs holding {batch} sequences"
        )
    if model_id == "gpt-oss-120b":
        notes.append("gpt-oss-120b is scored in its native format (MXFP4 experts): quant null")
    if tag == "h200sxm" and folder == "gpt-oss-120b":
        notes.append("the H200 runs served a fine-tune of gpt-oss-120b (same shapes)")
    quality = (
        "vLLM release not logged (the benchmark harness pip-installs an unpinned `vllm`; results of 2026-01-28/29, "
        "so 0.14 or 0.15); server flags other than TP/DP not logged"
    )
    if dp > 1:
        quality += "; per-engine batch of the DP2 runs assumed 50"
    return {
        "id": f"vllm-scicom-{gpu_id}-{model_id}-tp{tp}"
        + (f"dp{dp}" if dp > 1 else "")
        + f"-c{SCICOM_CONC}-in{prompt}-out{SCICOM_OUT}",
        "engine": "vllm",
        "engine_version": "not logged (an unpinned pip install of vllm on 2026-01-28/29: 0.14-0.15 by date)",
        "backend": "CUDA",
        "gpu": gpu_name,
        "gpu_vendor": "nvidia",
        "gpu_count": tp * dp,
        "batch": batch,
        "model_class": mclass,
        "model_repo": repo,
        "model_file": mfile,
        "quant": quant,
        "flash_attention": True,
        "prefill_tokens": prompt,
        "decode_tokens": SCICOM_OUT,
        "context_class": "long" if prompt > 4096 else "short",
        "parallelism": par,
        "command": (
            f"vllm serve <model> --tensor-parallel-size {tp}"
            + (f" --data-parallel-size {dp}" if dp > 1 else "")
            + " (other flags not logged); vllm bench serve --backend vllm --endpoint /v1/completions "
            f"--dataset-name random --random-input-len {prompt} --random-output-len {SCICOM_OUT} "
            f"--random-range-ratio 0.0 --num-prompts {SCICOM_CONC} --max-concurrency {SCICOM_CONC} "
            "--request-rate inf --ignore-eos --percentile-metrics ttft,tpot,itl,e2el --seed 0 "
            f"(log: 'Sampling input_len from [{prompt}, {prompt}] and output_len from [128, 128]')"
        ),
        "measured": measured(med_tpot, mean_tpot, med_ttft, mean_ttft, med_itl, out_tps),
        "measurement_quality": quality,
        "not_expressible": [],
        "source": f"{SCICOM_REPO}/blob/{SCICOM_COMMIT[:7]}/{path} (result date {date}; log: the .txt beside it)",
        "source_kind": "vllm bench serve result JSON committed to a benchmark repository",
        "vram": {
            "model": model_id,
            "gpu": gpu_id,
            "gpu_count": tp,
            "engine": "vllm",
            "batch": batch,
            "decode_context": prompt,
            "new_tokens": SCICOM_OUT // 2,
            "prefill_context": None,
            "quant": vquant,
            "split": "tp",
            "mapping_notes": notes,
        },
    }


def measured(
    med_tpot: float, mean_tpot: float, med_ttft: float, mean_ttft: float, med_itl: float, out_tps: float
) -> dict[str, float]:
    """The record's `measured`: decode = 1000 / median TPOT, beside the benchmark's own figures."""
    return {
        "decode_tps_per_seq": round(1000 / med_tpot, 3),
        "median_tpot_ms": med_tpot,
        "mean_tpot_ms": mean_tpot,
        "median_ttft_ms": med_ttft,
        "mean_ttft_ms": mean_ttft,
        "median_itl_ms": med_itl,
        "output_tps": out_tps,
    }


def kube_case(row: tuple) -> dict[str, object]:
    conc, prompts, med_tpot, mean_tpot, med_ttft, mean_ttft, med_itl, out_tps = row
    notes = [
        f"batch = --max-concurrency {conc} ({prompts} prompts, request rate inf"
        + (", server --max-num-seqs 32)" if conc > 1 else ")"),
        "decode context = the prompt (1024); --new-tokens = half the output (128)",
        "measured = 1000 / median TPOT",
        "GPU: 'RTX PRO 6000 Blackwell Server Edition' -> rtx-pro-6000 (catalog entry is the Workstation Edition: "
        "same GB202 chip and 96 GB)",
        "Qwen3-235B-A22B-Instruct-2507-FP8 has the shapes of the catalog's qwen3-235b-a22b-fp8",
        "tensor parallel all-reduces cross PCIe and the CPU-socket link (no NVLink)",
        "VLLM_USE_DEEP_GEMM=0: vLLM's own block-FP8 kernels instead of DeepGEMM (sm_120)",
    ]
    if conc > 1:
        notes.append(
            "same --seed 42 as the concurrency-1 run on the same server: the first 12 of 640 prompts can hit the "
            "prefix cache (default on); later edits of the post report other c=32 runs (TPOT 40.53 ms with 640 "
            "prompts; 503.68 tok/s with 128 prompts), this record is the commit the c=1 TTFT record cites"
        )
    return {
        "id": f"vllm-kubesimplify-rtx-pro-6000-qwen3-235b-a22b-fp8-tp4-c{conc}-in1024-out256",
        "engine": "vllm",
        "engine_version": "0.27.1",
        "backend": "CUDA",
        "gpu": "NVIDIA RTX PRO 6000 Blackwell Server Edition (96 GB, no NVLink; GPU pairs report SYS)",
        "gpu_vendor": "nvidia",
        "gpu_count": 4,
        "batch": conc,
        "model_class": "moe",
        "model_repo": "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8",
        "model_file": "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 (block FP8 weights, BF16 KV cache)",
        "quant": "FP8",
        "flash_attention": True,
        "prefill_tokens": 1024,
        "decode_tokens": 256,
        "context_class": "short",
        "parallelism": "tensor parallel 4 (--tensor-parallel-size 4)",
        "command": (
            "docker run ... -e VLLM_USE_DEEP_GEMM=0 vllm/vllm-openai:latest Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 "
            "--tensor-parallel-size 4 --gpu-memory-utilization 0.90 --max-model-len 32768 --max-num-seqs 32; "
            "vllm bench serve --dataset-name random --random-input-len 1024 --random-output-len 256 "
            f"--max-concurrency {conc} --num-prompts {prompts} --seed 42 --ignore-eos"
        ),
        "measured": measured(med_tpot, mean_tpot, med_ttft, mean_ttft, med_itl, out_tps),
        "measurement_quality": "exact",
        "not_expressible": [],
        "source": f"{KUBE_SOURCE} (Step 7: Benchmark it, TP=4 run at concurrency {conc}; vLLM 0.27.1 is stated in "
        "the post's later commit a6ed090)",
        "source_kind": "vllm bench serve output in a blog post (git repository of the site)",
        "vram": {
            "model": "qwen3-235b-a22b-fp8",
            "gpu": "rtx-pro-6000",
            "gpu_count": 4,
            "engine": "vllm",
            "batch": conc,
            "decode_context": 1024,
            "new_tokens": 128,
            "prefill_context": None,
            "quant": "fp8",
            "split": "tp",
            "mapping_notes": notes,
        },
    }


def main() -> None:
    rows = [scicom_case(r) for r in SCICOM_ROWS] + [kube_case(r) for r in KUBE_ROWS]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    OUT.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} cases -> {OUT}")


if __name__ == "__main__":
    main()
