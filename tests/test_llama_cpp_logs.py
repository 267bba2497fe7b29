"""llama.cpp as people run it: the recorded public load logs (measurements/llama_cpp/logs.jsonl) through the CLI
contract of issue 13, the expert-offload solver, mixed GPUs, host RAM and Apple Silicon."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import call_cli as _cli
from vram.errors import BadInput
from vram.fitting import fit
from vram.inference import estimate
from vram.llama_offload import ram_setup
from vram.request import Workload
from vram.resolver import resolve_model

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "measurements" / "llama_cpp" / "logs.jsonl"
MIB = 1024**2
GIB = 1024**3


# the first 20 cases were recorded before the exact log lines were kept beside the sizes
OLDER_CASES = {json.loads(line)["id"] for line in LOGS.read_text().splitlines()[:20]}


def _scorer() -> Any:
    spec = importlib.util.spec_from_file_location("score_logs", ROOT / "measurements/llama_cpp/score_logs.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _estimate_json(args: list[str]) -> dict[str, Any]:
    rc, out, err = _cli(["estimate", *args])
    assert rc == 0, err
    return dict(json.loads(out))


def test_recorded_logs_meet_the_bounds() -> None:
    """Every recorded log runs through the contract; weights and KV within 0.5 % in >= 90 % of the printed sizes,
    GPU compute buffers median <= 3 % and max <= 10 %."""
    score = _scorer()
    cases = score.load_cases(LOGS)
    assert len(cases) >= 40
    assert {c["backend"] for c in cases} >= {"cuda", "rocm", "vulkan", "metal", "cpu"}
    assert all(c["source"] and (c.get("log") or c["id"] in OLDER_CASES) for c in cases)
    s = score.score(cases, _estimate_json)
    assert not s["failed"], s["failed"]
    assert s["weights"]["within_0.5%"] >= 0.9 and s["weights"]["n"] >= 60
    assert s["kv"]["within_0.5%"] >= 0.9 and s["kv"]["n"] >= 40
    assert s["compute_gpu"]["median"] <= 0.03 and s["compute_gpu"]["max"] <= 0.10
    assert s["bounds_met"]


def test_contract_fields_are_integers_and_devices_sum() -> None:
    d = _estimate_json(
        [
            "llama-3.1-70b",
            "--engine",
            "llama.cpp",
            "--quant",
            "q4_k_m",
            "--context",
            "8192",
            "--batch",
            "2",
            "--new-tokens",
            "0",
            "--gpu",
            "rtx-4090+rtx-3090",
            "--json",
        ]
    )
    lc = d["llama_cpp"]
    for k in (
        "weights_gpu_bytes",
        "weights_host_bytes",
        "kv_gpu_bytes",
        "kv_host_bytes",
        "compute_gpu_bytes",
        "compute_host_bytes",
    ):
        assert isinstance(lc[k], int) and lc[k] >= 0, k
    assert len(lc["devices"]) == 2
    for k in ("weights_gpu_bytes", "kv_gpu_bytes", "compute_gpu_bytes"):
        assert sum(dev[k] for dev in lc["devices"]) == lc[k]
    # n_ctx = context × slots, one stream per slot
    assert lc["n_ctx"] == 16384 and lc["kv_streams"] == 2 and lc["n_ctx_seq"] == 8192
    assert lc["kv_gpu_bytes"] == 80 * 16384 * 1024 * 2 * 2


@pytest.mark.parametrize(
    "args, field",
    [
        (["--n-cpu-moe", "-1"], "n_cpu_moe"),
        (["--ubatch", "0"], "n_ubatch"),
        (["--n-gpu-layers", "-5"], "n_gpu_layers"),
        (["--cache-type-v", "q4_0", "--no-flash-attn"], "cache_type_v"),
        (["--cache-type-k", "q3_k"], "cache_type_k"),
        (["--gpu", "rtx-4090", "--backend", "metal"], "backend"),
        (["--tensor-split", "1,1"], "tensor_split"),
        (["--quant", "gptq-4bit"], "quant"),
    ],
)
def test_bad_llama_cpp_values_are_one_line_exit_2(args: list[str], field: str) -> None:
    rc, out, err = _cli(["estimate", "qwen3-30b-a3b", "--engine", "llama.cpp", "--context", "4096", *args])
    assert rc == 2 and not out
    assert err.count("\n") == 1 and field in err


def test_llama_cpp_options_with_another_engine_are_errors() -> None:
    rc, _, err = _cli(["estimate", "llama-3.1-8b", "--n-gpu-layers", "10"])
    assert rc == 2 and "n_gpu_layers" in err and "llama.cpp" in err
    rc, _, err = _cli(["estimate", "llama-3.1-8b", "--engine", "vllm", "--cpu-moe"])
    assert rc == 2 and "cpu_moe" in err


def test_ngl_counts_the_output_layer_first_and_ngl0_still_reserves_gpu_compute() -> None:
    rm = resolve_model("llama-3.1-8b")
    full = estimate(rm, Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096)).llama_cpp
    part = estimate(rm, Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096, n_gpu_layers=15)).llama_cpp
    assert part.output_on_gpu and part.blocks_on_gpu == 14
    assert part.kv_gpu_bytes * 32 == full.kv_gpu_bytes * 14
    zero = estimate(rm, Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096, n_gpu_layers=0)).llama_cpp
    assert zero.weights_gpu_bytes == 0 and zero.kv_gpu_bytes == 0
    # op offload copies the host-resident output matrix (Q6_K, 128256 × 4096) beside the logits
    out_q6k = 128256 * 4096 // 256 * 210
    assert zero.compute_gpu_bytes >= out_q6k + 128256 * 512 * 4


def test_cpu_moe_moves_exactly_the_expert_tensors() -> None:
    rm = resolve_model("qwen3-30b-a3b")
    base = estimate(rm, Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096)).llama_cpp
    allx = estimate(rm, Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096, cpu_moe=True)).llama_cpp
    half = estimate(rm, Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096, n_cpu_moe=24)).llama_cpp
    moved = allx.weights_host_bytes - base.weights_host_bytes
    assert moved > 15 * GIB  # the 128 experts × 48 blocks dominate the 17.3 GiB file
    assert abs((half.weights_host_bytes - base.weights_host_bytes) * 2 - moved) < 0.01 * moved
    assert allx.kv_gpu_bytes == base.kv_gpu_bytes  # attention stays on the GPU
    # op offload copies a host-resident expert tensor into the GPU compute buffer; gpt-oss-120b's (128 × 2880 × 2880
    # MXFP4, 540 MiB) outgrow its logits, so the buffer grows by about that much
    oss = resolve_model("gpt-oss-120b")
    b = estimate(oss, Workload.from_flat(engine="llama.cpp", quant="mxfp4", context=4096)).llama_cpp
    c = estimate(oss, Workload.from_flat(engine="llama.cpp", quant="mxfp4", context=4096, cpu_moe=True)).llama_cpp
    assert c.compute_gpu_bytes - b.compute_gpu_bytes > 128 * 2880 * 2880 // 32 * 17 - b.compute_gpu_bytes
    assert c.compute_gpu_bytes > b.compute_gpu_bytes


def test_expert_offload_solver_picks_the_smallest_n() -> None:
    r = fit(
        "qwen3-30b-a3b",
        "rtx-4060-ti-16gb",
        Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768),
        solve=False,
        ram=ram_setup("ddr5-5600-2ch", 64 * GIB),
    )
    assert r.verdict == "no" and r.offload is not None and r.offload["kind"] == "experts"
    n = r.offload["n_cpu_moe"]
    assert 0 < n < 48 and r.offload["fits"] and r.offload["host_fits"]
    usable = r.offload["usable_gpu_bytes"]
    rm = resolve_model("qwen3-30b-a3b")
    wl = Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768, backend="cuda")
    assert estimate(rm, wl.with_options(n_cpu_moe=n)).total_bytes <= usable
    assert estimate(rm, wl.with_options(n_cpu_moe=n - 1)).total_bytes > usable
    assert r.offload["host_bytes"] > 4 * GIB and 5 < r.offload["decode_tokens_per_s"] < 200
    from vram.fitting import evaluator_for
    from vram.serving import serving_settings

    cmd = serving_settings(evaluator_for("qwen3-30b-a3b"), r)["llama_cpp"]["command"]
    assert f"--n-cpu-moe {n}" in cmd and "-ngl 49" in cmd
    # faster RAM, faster decode; the GPU side is the same
    r2 = fit(
        "qwen3-30b-a3b",
        "rtx-4060-ti-16gb",
        Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768),
        solve=False,
        ram=ram_setup("ddr4-3200-2ch"),
    )
    assert r2.offload is not None and r2.offload["n_cpu_moe"] == n
    assert r2.offload["decode_tokens_per_s"] < r.offload["decode_tokens_per_s"]


def test_gpt_oss_120b_on_a_24gb_card() -> None:
    r = fit(
        "gpt-oss-120b",
        "rtx-4090",
        Workload.from_flat(engine="llama.cpp", quant="mxfp4", context=32768),
        solve=False,
        ram=ram_setup(None, 64 * GIB),
    )
    o = r.offload
    assert o is not None and o["kind"] == "experts" and o["fits"]
    assert 0 < o["n_cpu_moe"] < 36 and o["gpu_bytes"] <= o["usable_gpu_bytes"]
    assert 30 * GIB < o["host_bytes"] < 64 * GIB


def test_host_ram_short_is_said() -> None:
    r = fit(
        "qwen3-30b-a3b",
        "rtx-4060-ti-16gb",
        Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768),
        solve=False,
        ram=ram_setup(None, 2 * GIB),
    )
    assert r.offload is not None and not r.offload["host_fits"]
    assert r.host_memory is not None and not r.host_memory["fits"]
    assert "does not fit system RAM" in r.host_memory["explanation"]
    rc, out, _ = _cli(
        [
            "fit",
            "qwen3-30b-a3b",
            "--gpu",
            "rtx-4060-ti-16gb",
            "--engine",
            "llama.cpp",
            "--quant",
            "q4_k_m",
            "--context",
            "32k",
            "--ram",
            "2GiB",
        ]
    )
    assert rc == 0 and "host memory short" in out.replace("\n", " ")


def test_mixed_gpus_get_per_device_bytes_and_a_balancing_split() -> None:
    d = _estimate_json(
        [
            "qwen2.5-32b",
            "--engine",
            "llama.cpp",
            "--quant",
            "q4_k_m",
            "--context",
            "16384",
            "--batch",
            "1",
            "--new-tokens",
            "0",
            "--gpu",
            "rtx-4090+rtx-3060-12gb",
            "--json",
        ]
    )
    lc = d["llama_cpp"]
    dev = lc["devices"]
    assert len(dev) == 2 and dev[0]["weights_gpu_bytes"] > dev[1]["weights_gpu_bytes"]  # split by memory (24:12)
    share = dev[0]["weights_gpu_bytes"] / (dev[0]["weights_gpu_bytes"] + dev[1]["weights_gpu_bytes"])
    assert 0.6 < share < 0.72
    assert lc["tensor_split"] and len(lc["tensor_split"]) == 2


def test_mac_gets_metal_no_cuda_and_no_vllm() -> None:
    r = fit("llama-3.1-8b", "m3-max-128gb", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768))
    assert all("cuda" not in c.name for c in r.estimate.breakdown)
    assert r.estimate.llama_cpp.backend == "metal"
    assert not r.serving["vllm"]["command"]
    assert any("recommendedMaxWorkingSetSize" in a for a in r.assumptions)
    with pytest.raises(BadInput, match="vLLM does not run on Apple Silicon"):
        fit("llama-3.1-8b", "m3-max-128gb", Workload.from_flat(engine="vllm", context=4096), solve=False)


def test_mxfp4_gguf_file_reads_and_places_experts(tmp_path: Path) -> None:
    """A GGUF with MXFP4 expert tensors (gpt-oss's type: 32 values in 17 bytes) reads; --cpu-moe moves exactly them."""
    from vram.sources.synth import TinyModel, tensor_nbytes, write_gguf

    p = tmp_path / "moe-mxfp4.gguf"
    m = TinyModel(n_expert=4, n_expert_used=2, weight_type="MXFP4", embed_type="Q8_0")
    write_gguf(p, m)
    wl = Workload.from_flat(engine="llama.cpp", context=1024)
    base = estimate(str(p), wl).llama_cpp
    moved = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=1024, cpu_moe=True)).llama_cpp
    expert = tensor_nbytes((m.n_expert, m.n_ff, m.n_embd), "MXFP4")
    assert moved.weights_host_bytes - base.weights_host_bytes == 3 * m.n_layer * expert


def test_mlx_profile_on_a_mac() -> None:
    rm = resolve_model("llama-3.1-8b")
    est = estimate(rm, Workload.from_flat(engine="mlx", quant="mlx-4bit", context=8192))
    spec = rm.spec
    quantizable = sum(la.linear_params for la in spec.layers) + spec.embed_params + spec.head_params
    small = sum(la.small_params for la in spec.layers) + spec.final_params
    assert est.weights_bytes == -(-quantizable * 9 // 16) + 2 * small  # 4 + 32/64 bits per weight
    assert est.kv_cache_bytes == 32 * (8192 + 256) * 2 * 1024 * 2  # 8192 + 16 tokens grown in steps of 256
    assert all("cuda" not in c.name for c in est.breakdown)
    r = fit(
        "llama-3.1-8b", "m3-max-128gb", Workload.from_flat(engine="mlx", quant="mlx-4bit", context=8192), solve=False
    )
    assert r.verdict == "fits" and any("recommendedMaxWorkingSetSize" in a for a in r.estimate.assumptions)
    assert "96.0 GiB" in " ".join(r.estimate.assumptions)
    rc, _, err = _cli(["fit", "llama-3.1-8b", "--gpu", "rtx-4090", "--engine", "mlx"])
    assert rc == 2 and "Apple Silicon" in err
    rc, _, err = _cli(["estimate", "llama-3.1-8b", "--quant", "mlx-4bit"])
    assert rc == 2 and "--engine mlx" in err
    rc, _, err = _cli(["estimate", "llama-3.1-8b", "--engine", "mlx", "--quant", "q4_k_m"])
    assert rc == 2 and "quant" in err


def test_server_output_rows_shrink_the_compute_buffer_to_the_feed_forward() -> None:
    """A recent llama-server reserves one logits row per slot (n_outputs_max): Qwen3-4B, 4 slots of 2048 in one
    stream, flash attention, an Oct 2026 build, logs CUDA0 85.01 MiB: the layer-0 feed-forward (gate, up and their
    product, 3 × 19 MiB) above the f16 KQ mask, not 512 rows of logits (301 MiB)."""
    rm = resolve_model("qwen3-4b")
    base = dict(engine="llama.cpp", quant="q4_k_m", context=2048, batch=4, new_tokens=0, kv_unified=True)
    all_rows = estimate(rm, Workload.from_flat(**base, llama_build=9410)).llama_cpp  # type: ignore[arg-type]
    four = estimate(rm, Workload.from_flat(**base, n_outputs_max=4, llama_build=9410)).llama_cpp  # type: ignore[arg-type]
    assert all_rows.compute_gpu_bytes == 151936 * 512 * 4 + 512 * 2560 * 4
    assert four.compute_gpu_bytes < 90 * MIB
    assert abs(four.compute_gpu_bytes / (85.01 * MIB) - 1) < 0.03  # the replay: 83.01 MiB
    assert four.compute_gpu_bytes >= 3 * 512 * 9728 * 4 + 8192 * 512 * 2  # at least gate, up, product + mask
    assert four.devices[0].compute_phase.startswith("ggml-alloc replay")


def test_the_f32_mask_copy_leaves_a_hole_the_logits_do_not_fit() -> None:
    """Builds before b9410 copy an f32 KQ mask to the GPU and cast it to f16 in layer 0; the freed copy is a hole at
    the bottom of the buffer. Qwen2.5-7B with flash attention logs 304.00 MiB at 4096 cells and 382.01 at 32768
    (7 + 0.01 + 64 + 7 + 7 + 297); a build with an f16 mask from the start reserves 304.00 at 32768 too."""
    rm = resolve_model("qwen2.5-7b")

    def compute(context: int, build: int | None = None) -> float:
        wl = Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=context, new_tokens=0, llama_build=build)
        return estimate(rm, wl).llama_cpp.compute_gpu_bytes / MIB

    assert compute(4096) == 304.0
    assert round(compute(32768), 2) == 382.01
    assert compute(32768, build=9410) == 304.0
    assert compute(32768, build=9409) == compute(32768)


def test_swa_full_caches_sliding_window_layers_at_full_size() -> None:
    """Ollama's runner sets swa_full: Gemma 2 2B, 2 slots of 8192, logs two 832.00 MiB KV buffers on ROCm0."""
    rm = resolve_model("gemma-2-2b")
    base = dict(engine="llama.cpp", quant="q4_0", context=8192, batch=2, new_tokens=0, backend="rocm")
    full = estimate(rm, Workload.from_flat(**base, swa_full=True)).llama_cpp  # type: ignore[arg-type]
    window = estimate(rm, Workload.from_flat(**base)).llama_cpp  # type: ignore[arg-type]
    assert full.kv_gpu_bytes == 2 * 832 * MIB
    assert full.swa_cells == 8192 and window.swa_cells == 4608
    assert window.kv_gpu_bytes < full.kv_gpu_bytes


def test_builds_before_the_glu_ops_keep_a_smaller_feed_forward() -> None:
    """Build 2459 (March 2024) ran silu and the gate multiply in place: OpenLLaMA 7B (the Llama-2-7B geometry) at
    n_ctx 512 logs 70.50 MiB, its logits plus one hidden state; the fused-GLU graph of today peaks in the
    feed-forward instead."""
    rm = resolve_model("llama-2-7b")
    base = dict(engine="llama.cpp", quant="q8_0", context=512, new_tokens=0, n_batch=512, flash_attn=False)
    old = estimate(rm, Workload.from_flat(**base, llama_build=2459)).llama_cpp  # type: ignore[arg-type]
    new = estimate(rm, Workload.from_flat(**base)).llama_cpp  # type: ignore[arg-type]
    assert old.compute_gpu_bytes == 32000 * 512 * 4 + 512 * 4096 * 4 == int(70.5 * MIB)
    ffn = 3 * 512 * 11008 * 4  # gate, up and the fused product, each a tensor of its own
    assert new.compute_gpu_bytes > old.compute_gpu_bytes
    assert ffn + 512 * 512 * 4 < new.compute_gpu_bytes < ffn + 512 * 512 * 4 + 4 * 512 * 4096 * 4
    assert new.devices[0].compute_phase.startswith("ggml-alloc replay")


@pytest.mark.parametrize("flag", [["--swa-full"], ["--n-outputs-max", "4"], ["--llama-build", "5466"]])
def test_new_llama_cpp_options_with_another_engine_are_errors(flag: list[str]) -> None:
    rc, _, err = _cli(["estimate", "llama-3.1-8b", "--engine", "vllm", *flag])
    assert rc == 2 and "llama.cpp" in err


def test_builds_before_output_first_offload_count_blocks_only() -> None:
    """b5466 logged 'offloading 30 repeating layers to GPU' for -ngl 30 with the output layer on the CPU; today's
    tree (ggml-org/llama.cpp#18148) puts the output layer first and 29 blocks beside it."""
    rm = resolve_model("qwen3-30b-a3b")
    base = dict(engine="llama.cpp", quant="q4_k_m", context=4096, new_tokens=0, n_gpu_layers=30)
    old = estimate(rm, Workload.from_flat(**base, llama_build=5466)).llama_cpp  # type: ignore[arg-type]
    new = estimate(rm, Workload.from_flat(**base)).llama_cpp  # type: ignore[arg-type]
    assert (old.blocks_on_gpu, old.output_on_gpu) == (30, False)
    assert (new.blocks_on_gpu, new.output_on_gpu) == (29, True)
    assert old.layer_devices[:18] == (-1,) * 18 and old.layer_devices[18:] == (0,) * 30


def test_the_ollama_log_comes_out_exact_through_its_runner_of_the_time() -> None:
    """The Gemma 2 2B Ollama log of May 2026 (before v0.30's llama-server: its own runner, sliding-window layers at
    full size; 2 slots of 8192, num_batch 256, no flash attention, ROCm) through `--engine ollama`."""
    from vram.request import OllamaOptions

    opts = OllamaOptions(ollama_version="0.29", num_batch=256, flash_attn=False, backend="rocm")
    est = estimate(
        resolve_model("gemma-2-2b"), Workload(context=8192, batch=2, new_tokens=0, quant="q4_0", options=opts)
    )
    lc = est.llama_cpp
    assert lc.kv_gpu_bytes == 1664 * MIB
    assert lc.compute_gpu_bytes == int(252.25 * MIB)
    assert est.engine == "ollama" and est.extra["ollama"]["runner"] == "ollama runner"
