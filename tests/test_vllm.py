"""The vLLM engine profile: budget = gpu_memory_utilization × device, KV blocks, concurrency."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from vram.catalog import find_gpu
from vram.engines import vllm
from vram.estimate import Workload, resolve_model
from vram.fit import Evaluator, GpuChoice, fit, max_batch

GIB = 1024**3


def _est(model: str = "llama-3.1-8b", **kw: object) -> vllm.Estimate:
    return vllm.estimate(resolve_model(model), Workload(engine="vllm", **kw).validate())  # type: ignore[arg-type]


def test_kv_blocks_fill_the_budget() -> None:
    e = _est(context=8192, new_tokens=0)
    x = e.extra
    assert x["gpu_memory_bytes"] == vllm.DEFAULT_GPU_MEMORY_BYTES  # no GPU given: an 80 GB H100
    budget = int(0.9 * vllm.DEFAULT_GPU_MEMORY_BYTES)
    assert x["budget_bytes"] == budget
    cap = budget - e.weights_bytes - e.activation_bytes - vllm.NON_TORCH_BYTES
    assert x["kv_cache_capacity_bytes"] == cap
    # Llama 3.1 8B: 32 layers × 8 KV heads × (128 + 128) × 2 bytes = 128 KiB per token, 2 MiB per 16-token block
    assert x["kv_bytes_per_token"] == 32 * 8 * 256 * 2
    assert x["block_bytes"] == 16 * 131072
    assert x["kv_blocks"] == cap // x["block_bytes"]
    assert x["max_concurrent_sequences"] == x["kv_blocks"] // (8192 // 16)
    assert x["max_num_batched_tokens"] == 8192
    assert e.total_bytes == sum(c.bytes for c in e.breakdown)
    assert x["reserved_bytes"] == budget + e.component("cuda_context").bytes + vllm.CUDA_GRAPH_BYTES  # type: ignore[union-attr]


def test_smaller_gpus_get_smaller_defaults_and_utilization_matters() -> None:
    small = _est(gpu_memory_bytes=24 * GIB)
    assert small.extra["max_num_batched_tokens"] == 2048
    lo = _est(gpu_memory_utilization=0.5)
    hi = _est(gpu_memory_utilization=0.95)
    assert lo.extra["kv_blocks"] < hi.extra["kv_blocks"]
    assert lo.total_bytes == hi.total_bytes  # what the workload needs does not depend on the budget


def test_fp8_kv_cache_halves_the_block() -> None:
    assert _est(kv_dtype="fp8").extra["block_bytes"] * 2 == _est().extra["block_bytes"]


def test_kv_needed_is_whole_blocks_per_sequence() -> None:
    e = _est(context=1000, new_tokens=10, batch=3)
    assert e.kv_cache_bytes == 3 * math.ceil(1010 / 16) * e.extra["block_bytes"]


def test_no_room_for_blocks_is_said() -> None:
    e = _est("llama-3.1-70b", gpu_memory_bytes=80 * GIB)  # 131 GiB of bf16 weights
    assert e.extra["kv_blocks"] == 0 and e.extra["max_concurrent_sequences"] == 0
    assert any("No available memory for the cache blocks" in a for a in e.assumptions)


def test_fit_max_batch_is_vllms_concurrency() -> None:
    ev = Evaluator("llama-3.1-8b")
    g = find_gpu("h100-sxm")
    wl = Workload(engine="vllm", context=8192, new_tokens=0).validate()
    b = max_batch(ev, GpuChoice(g, 1), wl)
    e = vllm.estimate(ev.rm, replace(wl, gpu_memory_bytes=g.usable_memory_bytes))
    assert b == e.extra["max_concurrent_sequences"] > 1


def test_tensor_parallel_vllm_has_more_room_per_gpu() -> None:
    one = fit("llama-3.1-70b", "2xh100-sxm", Workload(engine="vllm", quant="fp8", context=8192), solve=False)
    two = fit("llama-3.1-70b", "4xh100-sxm", Workload(engine="vllm", quant="fp8", context=8192), solve=False)
    assert two.per_gpu_bytes < one.per_gpu_bytes
    assert two.estimate.extra["kv_blocks"] > one.estimate.extra["kv_blocks"]
    assert fit("llama-3.1-70b", "h100-sxm", Workload(engine="vllm"), solve=False).verdict == "no"


@pytest.mark.parametrize("model", ["mixtral-8x7b", "deepseek-v2-lite", "gemma-2-9b"])
def test_other_architectures(model: str) -> None:
    e = _est(model)
    assert e.activation_bytes > 0 and e.extra["kv_bytes_per_token"] > 0


@pytest.mark.parametrize(("model", "gpus", "quant", "reported_gib"), [
    ("llama-3.3-70b", "2xh100-sxm", "fp8", 4.84),  # public vLLM V1 profile on H100, TP 2
    ("gpt-oss-20b", "h100-sxm", None, 7.38),
])
def test_profile_run_activations_near_published_profiles(model: str, gpus: str, quant: str | None,
                                                         reported_gib: float) -> None:
    r = fit(model, gpus, Workload(engine="vllm", quant=quant, context=16000, new_tokens=0), solve=False)
    act = r.estimate.activation_bytes / GIB
    # torch.compile buffers are not modelled: the estimate may be low, by at most 30 %
    assert 0.7 * reported_gib <= act <= 1.1 * reported_gib


def test_tp_ranks_sample_the_whole_vocabulary() -> None:
    from vram.fit import tp_rank_spec

    spec = resolve_model("llama-3.1-70b").spec
    rank = tp_rank_spec(spec, 4)
    assert rank.vocab_size == spec.vocab_size and rank.embed_params * 4 == spec.embed_params
