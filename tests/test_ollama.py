"""`--engine ollama`: the llama.cpp settings Ollama (v0.33, llama-server; earlier releases their own runner) starts
for a request, from its code: num_ctx by total VRAM, OLLAMA_NUM_PARALLEL slots, the automatic num_batch, the KV
type and flash attention, and what `ollama ps` would show."""

from __future__ import annotations

import json

import pytest

from cli_support import call_cli as _cli
from vram.devices import device_of
from vram.engines.ollama import automatic_num_batch, default_num_ctx, human_bytes
from vram.errors import BadInput
from vram.fitting import fit
from vram.inference import estimate
from vram.request import OllamaOptions, Workload, version_tuple

GIB = 1024**3
MIB = 1024**2


def test_default_num_ctx_follows_ollamas_vram_tiers() -> None:
    """server/routes.go: >= 47 GiB 262144, >= 23 GiB 32768, else 4096; before v0.15 always 4096."""
    got = [default_num_ctx(int(g * GIB)) for g in (8, 16, 22.9, 23, 24, 46.9, 47, 48, 96)]
    assert got == [4096, 4096, 4096, 32768, 32768, 32768, 262144, 262144, 262144]
    assert default_num_ctx(None) == 4096 and default_num_ctx(48 * GIB, (0, 14, 0)) == 4096


def test_automatic_num_batch_steps_down_with_ollamas_prediction() -> None:
    """server/sched.go automaticGenerationBatch: 512 / 1024 / 2048 by cells, lowered when the prediction leaves
    too little of the free memory; 512 (256 on an 8 GiB card above 4096 cells) with flash attention off on CUDA."""

    def nb(cells: int, pred: float, free: float, fa: bool = True, cuda: bool = True) -> int:
        return automatic_num_batch(
            cells, int(pred * GIB), int(free * GIB), flash_attn=fa, cuda=cuda, smallest_gpu_bytes=int(free * GIB)
        )

    assert [nb(4096, 5, 24), nb(8192, 5, 24), nb(65536, 5, 24)] == [512, 1024, 2048]
    assert nb(65536, 16, 24) == 1024  # above 60 % of free: not 2048; within 75 % with 768 MiB to spare: 1024
    assert nb(65536, 19, 24) == 512  # above 75 %
    assert nb(8192, 1, 8, fa=False) == 256 and nb(8192, 1, 24, fa=False) == 512
    assert nb(8192, 1, 8, fa=False, cuda=False) == 1024
    assert automatic_num_batch(65536, 5 * GIB, 0, flash_attn=True, cuda=True, smallest_gpu_bytes=None) == 2048


def test_ollama_ps_sizes_are_decimal() -> None:
    assert [human_bytes(n) for n in (999, 4_900_000_000, 12_345_678_901, 9_000_000_000)] == [
        "999 B",
        "4.9 GB",
        "12 GB",
        "9 GB",
    ]


def test_llama_server_runner_keeps_one_stream_per_slot_and_no_full_swa_cache() -> None:
    """The same Gemma 2 request as the May 2026 log, on v0.33's llama-server: sliding-window layers keep their
    window (+ ubatch) only and one logits row per slot, so KV and compute buffers shrink."""
    wl = Workload(
        context=8192,
        batch=2,
        new_tokens=0,
        quant="q4_0",
        options=OllamaOptions(num_batch=256, flash_attn=False, backend="rocm"),
    )
    est = estimate("gemma-2-2b", wl)
    lc, o = est.llama_cpp, est.extra["ollama"]
    assert (lc.kv_gpu_bytes, lc.compute_gpu_bytes) == (1274 * MIB, int(84.75 * MIB))
    assert (lc.kv_streams, lc.n_outputs, lc.n_ubatch) == (2, 2, 256)
    # Ollama's estimate keeps the llama.cpp details it is built on; the JSON answer has both objects
    d = est.to_dict()
    assert d["llama_cpp"] == lc.to_dict() and d["ollama"]["runner"] == "llama-server" and "llama_cpp" not in est.extra
    assert o["runner"] == "llama-server" and o["ps"] == {
        "size_bytes": 3_048_249_088,
        "vram_bytes": 3_048_249_088,
        "size": "3.0 GB",
        "processor": "100% GPU",
    }
    assert est.engine == "ollama"
    assert any(a.startswith("Ollama 0.33: llama-server -c 16384 -np 2 -b 256 -ub 256") for a in est.assumptions)


@pytest.mark.parametrize(
    ("gpu", "num_ctx", "num_batch", "size"),
    [
        ("rtx-4060-ti-16gb", 4096, 512, "5.4 GB"),
        ("rtx-4090", 32768, 1024, "9.8 GB"),
        ("m4-max-128gb", 40960, 2048, "11 GB"),
    ],
)
def test_no_context_given_takes_ollamas_default_for_the_gpu(gpu: str, num_ctx: int, num_batch: int, size: str) -> None:
    """Qwen3-8B Q4_K_M with no num_ctx: 4k on 16 GB, 32k on 24 GB, 256k on a 128 GB Mac (96 GiB working set)
    lowered to the model's 40,960 tokens; num_batch by the cells."""
    rc, out, _ = _cli(["estimate", "qwen3-8b", "--engine", "ollama", "--quant", "q4_k_m", "--gpu", gpu, "--json"])
    assert rc == 0
    d = json.loads(out)
    o = d["ollama"]
    assert (o["num_ctx"], o["num_batch"], o["ps"]["size"], o["ps"]["processor"]) == (
        num_ctx,
        num_batch,
        size,
        "100% GPU",
    )
    assert d["llama_cpp"]["n_ctx"] == num_ctx and d["engine"] == "ollama"
    if gpu.startswith("m4"):
        assert d["llama_cpp"]["backend"] == "metal" and "lowered to the model's trained context 40,960" in out
        assert not [c for c in d["breakdown"] if c["name"] == "cuda_context"]


def test_partial_offload_shows_ollamas_cpu_gpu_split() -> None:
    wl = Workload(quant="q4_k_m", context=32768, new_tokens=0, options=OllamaOptions(num_gpu=30))
    est = estimate("qwen3-30b-a3b", Workload(**{**wl.__dict__, "devices": (device_of("rtx-4060-ti-16gb"),)}))
    ps = est.extra["ollama"]["ps"]
    assert (ps["size_bytes"], ps["vram_bytes"], ps["size"], ps["processor"]) == (
        22_097_621_760,
        13_376_850_176,
        "22 GB",
        "39%/61% CPU/GPU",
    )
    assert est.extra["ollama"]["num_batch"] == 512  # Ollama's prediction is above 80 % of the 16 GB card


def test_fit_with_ollama_names_it_and_leaves_expert_placement_to_llama_server() -> None:
    wl = Workload(quant="q4_k_m", context=32768, new_tokens=0, options=OllamaOptions())
    r = fit("qwen3-30b-a3b", "rtx-4060-ti-16gb", wl)
    assert r.engine == "ollama" and r.serving["primary"] == "ollama"
    assert r.offload is not None and r.offload["n_cpu_moe"] == 14
    assert r.ollama is not None and r.ollama["num_ctx"] == 32768 and r.ollama["ps"]["processor"] == "25%/75% CPU/GPU"
    o = r.serving["ollama"]
    assert o["num_gpu"] is None and not any("num_gpu" in line for line in o["modelfile"])
    assert "PARAMETER num_ctx 32768" in o["modelfile"]
    rc, out, _ = _cli(["fit", "qwen3-30b-a3b", "--gpu", "rtx-4060-ti-16gb", "--engine", "ollama", "--quant", "q4_k_m"])
    text = " ".join(out.split())
    assert rc == 0 and "Ollama 0.33 (llama-server)" in text and "context 4,096" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--n-cpu-moe", "4"],
            "n_cpu_moe: --n-cpu-moe is an option of llama.cpp (--engine llama.cpp); it does not apply",
        ),
        (["--tensor-split", "1,1"], "tensor_split"),
        (
            ["--kv-cache-type", "q8_0", "--no-flash-attn"],
            "kv_cache_type: OLLAMA_KV_CACHE_TYPE=q8_0 needs flash attention",
        ),
        (["--ollama-version", "new"], "ollama_version: expected a release like 0.33"),
    ],
)
def test_options_that_do_not_apply_to_ollama_are_errors(argv: list[str], message: str) -> None:
    rc, _, err = _cli(["estimate", "qwen3-8b", "--engine", "ollama", "--quant", "q4_k_m", *argv])
    assert rc == 2 and message in err


def test_ollama_options_are_errors_for_llama_cpp() -> None:
    rc, _, err = _cli(["estimate", "qwen3-8b", "--engine", "llama.cpp", "--num-batch", "512"])
    assert rc == 2 and "num_batch: --num-batch is an option of Ollama (--engine ollama)" in err


def test_ollama_context_length_applies_only_without_num_ctx() -> None:
    est = estimate("qwen3-8b", Workload(quant="q4_k_m", options=OllamaOptions(auto_context=True, context_length=16384)))
    assert est.extra["ollama"]["num_ctx"] == 16384 and "num_ctx 16,384 from OLLAMA_CONTEXT_LENGTH" in est.assumptions
    est = estimate("qwen3-8b", Workload(quant="q4_k_m", context=8192, options=OllamaOptions(context_length=16384)))
    assert est.extra["ollama"]["num_ctx"] == 8208  # num_ctx set: the prompt and the 16 new tokens
    assert "num_ctx 8,208 = 8,192 prompt + 16 new tokens" in est.assumptions
    with pytest.raises(BadInput, match="kv_dtype: Ollama sets its cache type with OLLAMA_KV_CACHE_TYPE"):
        estimate("qwen3-8b", Workload(kv_dtype="fp8", options=OllamaOptions()))


def test_legacy_runner_keeps_f16_without_flash_attention() -> None:
    opts = OllamaOptions(ollama_version="0.12", kv_cache_type="q8_0", flash_attn=False)
    est = estimate("qwen3-8b", Workload(quant="q4_k_m", options=opts))
    assert est.llama_cpp.cache_type_k == "f16" and est.llama_cpp.cache_type_v == "f16"
    with pytest.raises(BadInput, match="kv_cache_type"):
        OllamaOptions(kv_cache_type="q5_1")  # type: ignore[arg-type]


def test_which_with_ollama_sizes_each_gpu_as_ollama_would_start_there() -> None:
    """No num_ctx: each GPU gets Ollama's tier (4k on 16 GB, 32k on 24 GB, the model's 40,960 on a 192 GB MI300X),
    priced as llama.cpp on that GPU; the table says so."""
    from vram.fitting import which

    opts = which("qwen3-8b", Workload(quant="q4_k_m", options=OllamaOptions(auto_context=True)), counts=(1,), gpus=None)
    by_gpu = {o.gpu: o for o in opts}
    assert by_gpu["rtx-4060-ti-16gb"].per_gpu_bytes == 5_695_187_072  # = `vram estimate ... --engine ollama`
    assert by_gpu["rtx-4090"].per_gpu_bytes == 10_136_965_248
    assert by_gpu["rtx-4090"].speed is not None and by_gpu["rtx-4090"].speed.decode_tokens_per_s > 0
    rc, out, _ = _cli(["which", "qwen3-8b", "--engine", "ollama", "--quant", "q4_k_m", "--limit", "3"])
    assert rc == 0 and "num_ctx is Ollama's default for each GPU's memory" in " ".join(out.split())


def test_compare_names_the_macs_working_set_limit() -> None:
    rc, out, _ = _cli(["compare", "qwen3-8b", "--engine", "llama.cpp", "--gpu", "rtx-4090,m4-max-128gb"])
    text = " ".join(out.split())
    assert rc == 0 and "96.00" in text and "Apple GPUs: usable = Metal's GPU working-set limit" in text


def test_models_for_a_gpu_with_ollama_try_gguf_formats() -> None:
    from vram.fitting.solvers import quant_candidates
    from vram.hardware import models_for

    got = models_for("rtx-4060-ti-16gb", engine="ollama", context=8192)
    assert quant_candidates("ollama") == quant_candidates("llama.cpp")
    assert got and all(m.quant in quant_candidates("llama.cpp") for m in got)
    assert (got[0].model, got[0].quant, got[0].option.per_gpu_bytes) == (
        "mistral-small-3.1-24b",
        "q4_k_m",
        15_842_277_504,
    )


def test_ollama_puts_a_model_on_one_gpu_when_one_holds_it() -> None:
    """server/sched.go selectLlamaServerPlacement: Qwen3-8B Q4_K_M at Ollama's 32k (4090 + 3060: 36 GiB) is
    predicted at 9.18 GiB, within 80 % of the 4090: Ollama loads it there alone; OLLAMA_SCHED_SPREAD spreads it."""
    wl = Workload(quant="q4_k_m", options=OllamaOptions(auto_context=True))
    r = fit("qwen3-8b", "rtx-4090+rtx-3060", wl)
    assert r.ollama is not None and r.ollama["gpu_index"] == 0 and r.ollama["num_ctx"] == 32768
    assert (r.gpu, r.gpu_count, r.device_split) == ("rtx-4090", 1, None)
    assert r.per_gpu_bytes == 10_136_965_248  # = the single-4090 answer
    spread = fit("qwen3-8b", "rtx-4090+rtx-3060", Workload(quant="q4_k_m", options=OllamaOptions(sched_spread=True)))
    assert spread.gpu_count == 2 and spread.device_split is not None
    est = estimate(
        "qwen3-8b",
        Workload(
            quant="q4_k_m",
            options=OllamaOptions(auto_context=True),
            devices=(device_of("rtx-3060-12gb"), device_of("rtx-4090")),
        ),
    )
    assert est.extra["ollama"]["gpu_index"] == 1 and len(est.workload.devices) == 1  # type: ignore[union-attr]


def test_ollama_ps_of_a_fit_that_offloads_layers_counts_the_layers_on_the_cpu() -> None:
    """`ollama ps` of a model that keeps only some layers on the GPU shows a CPU/GPU split, sized by the layout the
    fit proposes (the output layer and the last blocks on the GPU), never 100% GPU."""
    r = fit("llama-3.1-70b", "rtx-4090", Workload.from_flat(quant="q4_k_m", engine="ollama", context=8192))
    assert r.verdict == "no" and r.offload is not None
    on_gpu, total = int(r.offload["layers_on_gpu"]), int(r.offload["layers_total"])
    assert 0 < on_gpu < total
    ps = r.ollama["ps"]
    cpu_pct = int(ps["processor"].split("%")[0])
    assert ps["processor"].endswith("CPU/GPU")
    # the CPU share is the blocks left in RAM, give or take the output layer and the GPU's own buffers
    assert abs(cpu_pct - 100 * (total - on_gpu) / total) < 8
    assert ps["vram_bytes"] < ps["size_bytes"]


def test_ollama_ps_of_a_mixed_pair_that_offloads_is_not_all_gpu() -> None:
    r = fit(
        "llama-3.1-70b", "rtx-4090+rtx-3060-12gb", Workload.from_flat(quant="q4_k_m", engine="ollama", context=8192)
    )
    assert r.offload is not None and r.offload["kind"] == "layers"
    ps = r.ollama["ps"]
    assert ps["processor"].endswith("CPU/GPU")
    assert ps["size_bytes"] - ps["vram_bytes"] > 4 * GIB  # the blocks in RAM


def test_ollama_estimate_that_does_not_fit_the_gpu_shows_no_ps_line() -> None:
    """With num_gpu unset, a model bigger than the GPU is loaded partly (llama-server's automatic fit): the estimate,
    which sizes every layer on the GPU, says so instead of an `ollama ps` line of 100% GPU."""
    wl = Workload(options=OllamaOptions(), devices=(device_of("rtx-4090"),))
    big = estimate("qwen3-30b-a3b", wl)
    assert big.extra["ollama"]["ps"] is None
    assert any(a.startswith("every layer on the GPU does not fit") for a in big.assumptions)
    assert not any("would show SIZE" in a for a in big.assumptions)
    small = estimate("llama-3.1-8b", wl)
    assert small.extra["ollama"]["ps"]["processor"] == "100% GPU"


def test_llama_cpp_fit_host_memory_counts_the_offloaded_layers() -> None:
    r = fit("llama-3.1-70b", "rtx-4090", Workload.from_flat(quant="q4_k_m", engine="llama.cpp", context=8192))
    assert r.offload is not None and r.host_memory is not None
    # the layers left in RAM (weights and their KV), not the all-on-GPU layout's small host buffers
    assert abs(r.host_memory["host_bytes"] - r.offload["host_memory_bytes"]) < 0.05 * r.offload["host_memory_bytes"]


def test_ollama_release_patch_numbers_count() -> None:
    """The context tiers came with v0.15.5: 0.15.2 still starts at 4,096 whatever the GPU."""
    assert default_num_ctx(48 * GIB, version_tuple("0.15.2")) == 4096
    assert default_num_ctx(48 * GIB, version_tuple("v0.15.5")) == 262144
    assert version_tuple("0.33") == (0, 33, 0)


@pytest.mark.parametrize("version", ["1.0", "0.34", "abc", "0.1.2.3"])
def test_ollama_release_outside_what_is_modelled_is_an_error(version: str) -> None:
    rc, _, err = _cli(
        ["estimate", "llama-3.1-8b", "--engine", "ollama", "--gpu", "rtx-4090", "--ollama-version", version]
    )
    assert rc == 2 and err.startswith("vram: error: ollama_version: ") and err.count("\n") == 1
