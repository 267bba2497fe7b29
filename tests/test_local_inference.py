"""Issue 13's answers for people running models locally: MoE experts on the CPU (the smallest --n-cpu-moe N that
fits), host RAM, Macs (no CUDA term, no vLLM, the Metal working-set limit) and mixed GPUs (per-device bytes and the
tensor split)."""

from __future__ import annotations

import json
import math

import pytest

from cli_support import call_cli as _cli
from vram import MlxDetails
from vram.catalog import find_gpu
from vram.devices import device_of
from vram.errors import BadInput
from vram.fitting import fit, gpu_workload
from vram.inference import estimate
from vram.llama_offload import ram_setup
from vram.records import replace
from vram.request import Device, Workload
from vram.resolver import resolve_model
from vram.result import Estimate

GIB = 1024**3


def _total_with(model: str, gpu: str, wl: Workload, n_cpu_moe: int) -> int:
    return estimate(model, gpu_workload(wl, find_gpu(gpu)).with_options(n_cpu_moe=n_cpu_moe)).total_bytes


# -- expert offload -------------------------------------------------------------------------------------------------


def test_qwen3_30b_a3b_on_a_16gb_card_gets_the_smallest_n_cpu_moe_that_fits() -> None:
    wl = Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768)
    r = fit("qwen3-30b-a3b", "rtx-4060-ti-16gb", wl)
    o = r.offload
    assert r.verdict == "no" and o is not None and o["kind"] == "experts" and o["fits"]
    usable = find_gpu("rtx-4060-ti-16gb").usable_memory_bytes
    assert o["n_cpu_moe"] == 14 and o["usable_gpu_bytes"] == usable == 17_175_674_880
    assert o["gpu_bytes"] == _total_with("qwen3-30b-a3b", "rtx-4060-ti-16gb", wl, 14) == 17_055_275_520 <= usable
    assert _total_with("qwen3-30b-a3b", "rtx-4060-ti-16gb", wl, 13) == 17_395_014_400 > usable  # 13 does not fit
    assert o["host_bytes"] == 5_418_524_160 and o["flag"] == "--n-cpu-moe 14"
    assert o["decode_tokens_per_s"] == 38.37
    # the speed block says the same: experts computed on the CPU, not streamed over PCIe
    assert r.speed is not None and r.speed.decode_tokens_per_s_per_seq == 38.37
    assert r.speed.assumptions[0].startswith("decode with --n-cpu-moe 14")
    assert "--n-cpu-moe 14" in r.serving["llama_cpp"]["command"]


def test_gpt_oss_120b_on_a_24gb_card_is_priced_as_its_mxfp4_gguf_and_offloads_experts() -> None:
    wl = Workload.from_flat(engine="llama.cpp", context=32768)  # no --quant: the checkpoint's MXFP4 experts
    r = fit("gpt-oss-120b", "rtx-3090", wl)
    o = r.offload
    assert o is not None and o["kind"] == "experts" and o["n_cpu_moe"] == 24
    usable = find_gpu("rtx-3090").usable_memory_bytes
    assert o["gpu_bytes"] == 24_393_744_896 <= usable
    assert _total_with("gpt-oss-120b", "rtx-3090", wl, 23) == 26_085_802_880 > usable
    assert o["host_bytes"] == 41_300_102_144 and o["decode_tokens_per_s"] == 40.41
    assert "MXFP4_MOE" in r.estimate.breakdown[0].explanation
    assert "gpt-oss-120b-MXFP4.gguf" in r.serving["llama_cpp"]["command"]
    assert not any("dequantizes GGUF" in n for n in r.serving["transformers"]["notes"])
    bf16 = estimate("gpt-oss-120b", Workload.from_flat(engine="llama.cpp", quant="bf16", context=4096))
    assert bf16.llama_cpp.weights_total_bytes > 3 * r.estimate.llama_cpp.weights_total_bytes


def test_host_part_above_the_ram_given_is_said() -> None:
    wl = Workload.from_flat(engine="llama.cpp", context=32768)
    r = fit("gpt-oss-120b", "rtx-4090", wl, ram=ram_setup(None, 32 * GIB))
    assert r.host_memory is not None and not r.host_memory["fits"]
    assert r.host_memory["host_bytes"] == 41_300_102_144 and r.host_memory["ram_bytes"] == 32 * GIB
    assert r.offload is not None and not r.offload["host_fits"]
    rc, out, _ = _cli(
        ["fit", "gpt-oss-120b", "--gpu", "rtx-4090", "--engine", "llama.cpp", "--context", "32k", "--ram", "32GiB"]
    )
    assert rc == 0 and "does not fit system RAM" in out and "host memory: host memory" not in out
    ok = fit("gpt-oss-120b", "rtx-4090", wl, ram=ram_setup(None, 64 * GIB))
    assert ok.host_memory is not None and ok.host_memory["fits"]


# -- Macs -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["transformers", "llama.cpp", "mlx"])
def test_a_mac_gets_no_cuda_term_no_vllm_command_and_its_working_set_limit(engine: str) -> None:
    r = fit("llama-3.1-8b", "m4-pro-48gb", Workload.from_flat(engine=engine, context=4096))
    names = [c.name for c in r.estimate.breakdown]
    assert not any("cuda" in n or "cublas" in n for n in names), names
    assert r.usable_bytes_per_gpu == 36 * GIB  # recommendedMaxWorkingSetSize of a 48 GB M4 Pro
    assert not r.serving["vllm"]["command"]
    assert r.serving["mlx"]["working_set_limit_bytes"] == 36 * GIB
    assert any("recommendedMaxWorkingSetSize" in a for a in r.assumptions)
    rc, out, _ = _cli(["fit", "llama-3.1-8b", "--gpu", "m4-pro-48gb", "--engine", engine])
    assert rc == 0 and "Metal working-set limit" in out and "vllm serve" not in out and "cuda" not in out.lower()
    rc, out, _ = _cli(["fit", "llama-3.1-8b", "--gpu", "m4-pro-48gb", "--engine", engine, "--json"])
    d = json.loads(out)
    assert rc == 0 and not any("cuda" in c["name"] for c in d["breakdown"])
    assert d["serving"]["primary"] == {"llama.cpp": "llama_cpp"}.get(engine, engine)


def test_transformers_on_mps_is_weights_cache_activations_and_the_allocator_reserve() -> None:
    mac = estimate("llama-3.1-8b", gpu_workload(Workload(context=4096), find_gpu("m4-pro-48gb")))
    cuda = estimate("llama-3.1-8b", gpu_workload(Workload(context=4096), find_gpu("h100-sxm")))
    assert [c.name for c in mac.breakdown] == ["weights", "kv_cache", "activations", "allocator_reserve"]
    assert mac.total_bytes == sum(c.bytes for c in mac.breakdown)
    dropped = cuda.component("cuda_context").bytes + cuda.component("cublas_workspace").bytes  # type: ignore[union-attr]
    assert cuda.total_bytes - mac.total_bytes == dropped


def test_mlx_answers_on_a_mac_carry_mlx_lm_commands() -> None:
    r = fit("llama-3.1-8b", "m3-max-128gb", Workload.from_flat(engine="mlx", quant="mlx-4bit", context=8192))
    m = r.serving["mlx"]
    assert r.serving["primary"] == "mlx"
    assert m["convert"] == (
        "mlx_lm.convert --hf-path meta-llama/Llama-3.1-8B -q --q-bits 4 --mlx-path llama-3.1-8b-mlx-4bit"
    )
    assert m["command"] == "mlx_lm.server --model llama-3.1-8b-mlx-4bit"
    assert m["working_set_limit_bytes"] == 96 * GIB


def test_mlx_details_are_typed_and_the_json_answers_mlx_object() -> None:
    wl = replace(Workload.from_flat(engine="mlx", quant="mlx-4bit", context=4096), devices=(device_of("m4-max-128gb"),))
    est = estimate("qwen2.5-7b", wl)
    m = est.mlx
    assert isinstance(est.details, MlxDetails) and m is est.details and "mlx" not in est.extra
    # 4096 + 256 new tokens in KVCache steps of 256; 4-bit weights with a 16-bit scale and bias per 64 values
    assert (m.kv_slots, m.prefill_chunk, m.bits_per_weight) == (4352, 2048, 4.5)
    assert est.to_dict()["mlx"] == {"kv_slots": 4352, "prefill_chunk": 2048, "bits_per_weight": 4.5}
    with pytest.raises(TypeError, match="no llama"):
        _ = est.llama_cpp


def test_vllm_on_a_mac_is_an_error() -> None:
    with pytest.raises(BadInput, match="vLLM does not run on Apple Silicon"):
        fit("llama-3.1-8b", "m3-max-128gb", Workload.from_flat(engine="vllm", context=4096))
    rc, _, err = _cli(["estimate", "llama-3.1-8b", "--engine", "vllm", "--gpu", "m4-pro-48gb"])
    assert rc == 2 and "Apple Silicon" in err
    from vram.fitting import which

    assert all(o.vendor != "apple" for o in which("llama-3.2-1b", Workload.from_flat(engine="vllm"), counts=(1,)))


# -- mixed GPUs -----------------------------------------------------------------------------------------------------


def test_a_mixed_pair_is_checked_gpu_by_gpu_with_the_tensor_split_it_uses() -> None:
    wl = Workload.from_flat(engine="llama.cpp", quant="q4_k_m")
    r = fit("llama-3.1-70b", "rtx-4090+rtx-3090", wl)
    ds = r.device_split
    assert ds is not None and r.gpu == "rtx-4090+rtx-3090" and r.gpu_count == 2
    d0, d1 = ds["devices"]
    # llama.cpp's default split, by memory: 23.99 : 24 GiB over 81 layers (the output layer is the last one)
    assert ds["tensor_split"] == [23.99, 24.0]
    assert (d0["blocks"], d0["output_layer"], d1["blocks"], d1["output_layer"]) == ([0, 40], False, [41, 79], True)
    assert d0["total_bytes"] == 22_341_812_224 and d1["total_bytes"] == 22_205_349_888
    assert d0["total_bytes"] == (d0["weights_bytes"] + d0["kv_cache_bytes"] + d0["compute_bytes"] + d0["context_bytes"])
    assert d0["usable_bytes"] == find_gpu("rtx-4090").usable_memory_bytes
    lc = r.estimate.llama_cpp
    assert d0["weights_bytes"] + d1["weights_bytes"] == lc.weights_gpu_bytes == 41_921_527_808
    assert r.verdict == "fits" and r.per_gpu_bytes == d0["total_bytes"]  # the 4090 has less room left
    assert "--split-mode layer --tensor-split 23.99,24" in r.serving["llama_cpp"]["command"]
    assert not r.serving["vllm"]["command"]
    # decode passes the GPUs one after the other: the sum of each one's time at its own bandwidth
    assert ds["decode_tokens_per_s"] == round(1 / sum(ds["gpu_seconds_per_token"]), 2) == 17.95
    # the solvers use the same per-device check
    assert r.max_context == 23_808 and r.max_batch == 5 and r.recommended_quant == "q4_k_m"


def test_a_mixed_pair_runs_from_the_cli_and_says_when_host_memory_is_short() -> None:
    rc, out, _ = _cli(
        [
            "fit",
            "llama-3.1-70b",
            "--engine",
            "llama.cpp",
            "--quant",
            "q4_k_m",
            "--gpu",
            "rtx-4090+rtx-3090",
            "--ram",
            "0.5GiB",
            "--json",
        ]
    )
    d = json.loads(out)
    assert rc == 0 and d["device_split"]["tensor_split"] == [23.99, 24.0]
    assert d["host_memory"]["host_bytes"] == 641_872_896 and not d["host_memory"]["fits"]
    rc, out, _ = _cli(
        ["fit", "llama-3.1-70b", "--engine", "llama.cpp", "--quant", "q4_k_m", "--gpu", "rtx-4090+rtx-3090"]
    )
    assert rc == 0 and "per GPU (GiB), --split-mode layer --tensor-split 23.99,24" in out
    rc, out, _ = _cli(
        [
            "estimate",
            "llama-3.1-70b",
            "--engine",
            "llama.cpp",
            "--quant",
            "q4_k_m",
            "--gpu",
            "rtx-4090+rtx-3090",
            "--ram",
            "0.5GiB",
        ]
    )
    assert rc == 0 and "--tensor-split 23.99,24 (by memory" in out and "does not fit system RAM" in out
    assert "--tensor-split 41,40 (layers per GPU" in out  # 80 blocks + the output layer: 41 | 39 + output


def test_engines_that_cannot_mix_gpus_say_so() -> None:
    for engine in ("vllm", "transformers"):
        with pytest.raises(BadInput, match=r"only llama\.cpp splits one model over different GPUs"):
            fit("llama-3.1-8b", "rtx-4090+rtx-3090", Workload.from_flat(engine=engine))
    rc, _, err = _cli(["fit", "llama-3.1-8b", "--gpu", "rtx-4090+rtx-3090"])
    assert rc == 2 and "only llama.cpp" in err
    with pytest.raises(BadInput, match="tensor_split"):
        fit("llama-3.1-8b", "rtx-4090+rtx-3090", Workload.from_flat(engine="llama.cpp", tensor_split=(1.0, 2.0, 3.0)))


def test_a_mixed_pair_that_cannot_hold_a_dense_model_gets_the_most_layers_every_gpu_holds() -> None:
    """Llama 3.1 70B Q4_K_M on a 4090 + a 3060 at 8k: 66 of 80 blocks (-ngl 67) at --tensor-split 46,21, each GPU
    under its memory, 7.94 GiB of weights in RAM; decode passes both GPUs and RAM."""
    wl = Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=8192)
    r = fit("llama-3.1-70b", "rtx-4090+rtx-3060", wl)
    o = r.offload
    assert r.verdict == "no" and o is not None and o["kind"] == "layers"
    assert (o["flag"], o["tensor_split"], o["layers_on_gpu"]) == ("-ngl 67", [46.0, 21.0], 66)
    assert [(u["total_bytes"], u["usable_bytes"]) for u in o["devices"]] == [
        (25_418_334_208, 25_757_220_864),
        (12_638_601_216, 12_884_901_888),
    ]
    assert o["host_bytes"] == r.host_memory["host_bytes"] == 8_526_949_376 and o["decode_tokens_per_s"] == 5.04
    assert (
        "-ngl 67" in r.serving["llama_cpp"]["command"] and "--tensor-split 46,21" in r.serving["llama_cpp"]["command"]
    )
    # one layer more does not fit, at the split used or at the balanced one
    from vram.devices import devices_for

    devices, _ = devices_for("rtx-4090+rtx-3060", "llama.cpp")
    for split in ((46.0, 21.0), (47.0, 21.0), (46.0, 22.0)):
        est = estimate("llama-3.1-70b", _replace_devices(wl, devices).with_options(n_gpu_layers=68, tensor_split=split))
        assert not _every_gpu_holds(est, devices)


def test_a_mixed_pair_that_cannot_hold_a_moe_model_gets_the_smallest_n_cpu_moe_with_a_rebalanced_split() -> None:
    """gpt-oss-120b on a 4090 + a 3060 at 32k: --n-cpu-moe empties the first blocks (GPU 0's), so the split moves
    blocks to GPU 0: --n-cpu-moe 17 at 30,7 (positions: 30 blocks | 6 blocks + output)."""
    wl = Workload.from_flat(engine="llama.cpp", context=32768)
    r = fit("gpt-oss-120b", "rtx-4090+rtx-3060", wl, ram=ram_setup(None, 64 * GIB))
    o = r.offload
    assert o is not None and (o["kind"], o["flag"], o["tensor_split"]) == ("experts", "--n-cpu-moe 17", [30.0, 7.0])
    assert o["host_bytes"] == 29_455_698_944 and o["host_fits"] and o["decode_tokens_per_s"] == 46.16
    cmd = r.serving["llama_cpp"]["command"]
    assert "gpt-oss-120b-MXFP4.gguf" in cmd and "--n-cpu-moe 17" in cmd and "--tensor-split 30,7" in cmd
    assert r.serving["ollama"]["num_gpu"] is None
    from vram.devices import devices_for

    devices, _ = devices_for("rtx-4090+rtx-3060", "llama.cpp")
    base = _replace_devices(wl, devices)
    est = estimate("gpt-oss-120b", base.with_options(n_cpu_moe=17, tensor_split=(30.0, 7.0)))
    assert _every_gpu_holds(est, devices)
    est16 = estimate("gpt-oss-120b", base.with_options(n_cpu_moe=16, tensor_split=(23.99, 12.0)))
    hint = est16.llama_cpp.tensor_split
    assert not _every_gpu_holds(est16, devices)
    assert not _every_gpu_holds(estimate("gpt-oss-120b", base.with_options(n_cpu_moe=16, tensor_split=hint)), devices)


def _replace_devices(wl: Workload, devices: tuple) -> Workload:  # type: ignore[type-arg]
    from vram.records import replace

    return replace(wl, devices=devices)


def _every_gpu_holds(est: Estimate, devices: tuple[Device, ...]) -> bool:
    lc = est.llama_cpp
    ctx = est.component("cuda_context")
    each = ctx.bytes // len(devices) if ctx else 0
    return all(
        du.weights_gpu_bytes + du.kv_gpu_bytes + du.compute_gpu_bytes + each <= d.memory_bytes
        for du, d in zip(lc.devices, devices, strict=True)
    )


@pytest.mark.parametrize(("model", "gpu"), [("llama-3.1-70b", "rtx-4090"), ("qwen2.5-32b", "rtx-4060-ti-16gb")])
def test_layer_offload_on_one_gpu_keeps_the_most_blocks_that_fit(model: str, gpu: str) -> None:
    """The proposed -ngl is checked with the llama.cpp estimate of that layout: it fits, one more block does not."""
    from vram.fitting.check import offloaded_estimate
    from vram.fitting.evaluator import Evaluator

    wl = Workload.from_flat(quant="q4_k_m", engine="llama.cpp", context=8192)
    r = fit(model, gpu, wl)
    assert r.offload is not None and 0 < r.offload["layers_on_gpu"] < r.offload["layers_total"]
    ev, entry = Evaluator(model), find_gpu(gpu)
    on = int(r.offload["layers_on_gpu"])
    fits = offloaded_estimate(ev, wl, [entry], r.offload)
    more = offloaded_estimate(ev, wl, [entry], {**r.offload, "layers_on_gpu": on + 1})
    assert fits.total_bytes <= entry.usable_memory_bytes < more.total_bytes
    assert r.offload["host_memory_bytes"] > r.offload["offloaded_bytes"] > GIB  # the blocks left in RAM


def test_mlx_five_bit_weights_are_five_and_a_half_bits() -> None:
    """mlx-lm converts to 2, 3, 4, 5, 6 or 8 bits (`--q-bits`); each group of 64 adds a 16-bit scale and bias."""
    rm = resolve_model("qwen3-4b")
    spec = rm.spec
    quantizable = sum(la.linear_params + la.router_params for la in spec.layers) + spec.embed_params + spec.head_params
    small = sum(la.small_params for la in spec.layers) + spec.final_params + spec.extra_params
    est = estimate(rm, Workload.from_flat(engine="mlx", quant="mlx-5bit", context=2048))
    assert est.weights_bytes == math.ceil(quantizable * 5.5 / 8) + 2 * small
    assert est.mlx.bits_per_weight == 5.5
    r = fit("qwen3-4b", "m4-max-128gb", Workload.from_flat(engine="mlx", quant="mlx-5bit", context=2048))
    assert r.serving["mlx"]["convert"].endswith("-q --q-bits 5 --mlx-path qwen3-4b-mlx-5bit")


def test_mlx_takes_16_bit_weights_by_name() -> None:
    """mlx-community's "-bf16" folders are 16-bit weights: --quant bf16 / fp16 is the same as no --quant; a GGUF or
    GPU format is an error naming what MLX runs, and a 16-bit format with --dtype float32 contradicts itself."""
    plain = fit("qwen3-8b", "m3-max-128gb", Workload.from_flat(engine="mlx", context=2048), solve=False)
    for q in ("bf16", "fp16"):
        named = fit("qwen3-8b", "m3-max-128gb", Workload.from_flat(engine="mlx", quant=q, context=2048), solve=False)
        assert named.weights_bytes == plain.weights_bytes and named.per_gpu_bytes == plain.per_gpu_bytes
    with pytest.raises(BadInput, match=r"16-bit ones \(bf16, fp16, or no --quant\), not 'q4_k_m'"):
        fit("qwen3-8b", "m3-max-128gb", Workload.from_flat(engine="mlx", quant="q4_k_m", context=2048), solve=False)
    with pytest.raises(BadInput, match="--dtype float32 says otherwise"):
        fit(
            "qwen3-8b",
            "m3-max-128gb",
            Workload.from_flat(engine="mlx", quant="bf16", dtype="float32", context=2048),
            solve=False,
        )
