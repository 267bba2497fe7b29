"""Speed: decode bound by bandwidth, prefill by FLOPs, MoE expert coverage, TP/PP, offload, cost."""

from __future__ import annotations

import math

import pytest

from vram.catalog import find_gpu
from vram.estimate import resolve_model
from vram.speed import (
    DECODE_BANDWIDTH_EFFICIENCY,
    PREFILL_MFU,
    attention_flops_per_token,
    estimate_speed,
    expert_coverage,
    host_link_gb_per_s,
    weight_read_fraction,
)

GB = 1e9


def test_decode_is_bytes_over_bandwidth_at_batch_one() -> None:
    spec = resolve_model("llama-3.1-8b").spec
    h100 = find_gpu("h100-sxm")
    w, kv = 16 * 10**9, 1 * 10**9
    s = estimate_speed(spec, h100, count=1, split="single", batch=1, context=4096, weights_bytes=w, kv_cache_bytes=kv)
    assert s.decode_bound == "memory"
    assert s.decode_tokens_per_s == pytest.approx(3350 * GB * DECODE_BANDWIDTH_EFFICIENCY / (w + kv))
    # the seed: bandwidth, not FLOPS, bounds decode at low batch -> a faster-memory GPU decodes faster
    a100 = find_gpu("a100-80gb-sxm")
    s2 = estimate_speed(spec, a100, count=1, split="single", batch=1, context=4096, weights_bytes=w, kv_cache_bytes=kv)
    assert s.decode_tokens_per_s / s2.decode_tokens_per_s == pytest.approx(3350 / a100.bandwidth_gb_per_s)


def test_prefill_is_compute_bound_and_ttft_follows() -> None:
    spec = resolve_model("llama-3.1-8b").spec
    h100 = find_gpu("h100-sxm")
    s = estimate_speed(spec, h100, count=1, split="single", batch=1, context=8192, weights_bytes=16 * 10**9,
                       kv_cache_bytes=10**9)
    flops = 2 * spec.active_params + attention_flops_per_token(spec, 8192)
    assert s.prefill_tokens_per_s == pytest.approx(989.4e12 * PREFILL_MFU / flops)
    assert s.ttft_s is not None and s.ttft_s == pytest.approx(8192 / s.prefill_tokens_per_s + 1 / s.decode_tokens_per_s)
    # attention: 32 layers × 32 heads × (128 + 128) × context/2
    assert attention_flops_per_token(spec, 1000) == 32 * 2 * 32 * 256 * 500


def test_large_batches_become_compute_bound() -> None:
    spec = resolve_model("llama-3.1-8b").spec
    g = find_gpu("h100-sxm")
    s = estimate_speed(spec, g, count=1, split="single", batch=4096, context=128, weights_bytes=16 * 10**9,
                       kv_cache_bytes=10**9)
    assert s.decode_bound == "compute"


def test_moe_reads_only_the_routed_experts() -> None:
    assert expert_coverage(8, 2, 1) == pytest.approx(0.25)
    assert expert_coverage(8, 2, 2) == pytest.approx(1 - 0.75**2)
    assert expert_coverage(8, 2, 1000) == pytest.approx(1.0)
    mix = resolve_model("mixtral-8x7b").spec
    one = weight_read_fraction(mix, 1)
    assert one == pytest.approx(mix.active_params / mix.params, rel=1e-6)
    assert weight_read_fraction(mix, 64) > 0.99
    assert weight_read_fraction(resolve_model("llama-3.1-8b").spec, 1) == 1.0


def test_tensor_parallel_splits_bytes_and_pays_all_reduces() -> None:
    spec = resolve_model("llama-3.1-70b").spec
    g = find_gpu("h100-sxm")
    kw = dict(batch=1, context=4096, weights_bytes=140 * 10**9, kv_cache_bytes=10**9)
    one = estimate_speed(spec, g, count=1, split="single", **kw)  # type: ignore[arg-type]
    tp = estimate_speed(spec, g, count=4, split="tp", **kw)  # type: ignore[arg-type]
    pp = estimate_speed(spec, g, count=4, split="pp", **kw)  # type: ignore[arg-type]
    assert one.decode_tokens_per_s < tp.decode_tokens_per_s < 4 * one.decode_tokens_per_s
    assert pp.decode_tokens_per_s == pytest.approx(one.decode_tokens_per_s)
    assert tp.cost_per_million_tokens_usd is not None
    assert tp.cost_per_million_tokens_usd == pytest.approx(4 * 2.99 / 3600 / tp.decode_tokens_per_s * 1e6)


def test_offload_streams_over_the_host_link() -> None:
    spec = resolve_model("llama-3.1-70b").spec
    g = find_gpu("rtx-4090")
    assert host_link_gb_per_s(g) == 32  # PCIe 4.0 x16, one way
    assert host_link_gb_per_s(find_gpu("h100-sxm")) == 64
    assert host_link_gb_per_s(find_gpu("m3-max-128gb")) is None
    kw = dict(count=1, split="single", batch=1, context=4096, weights_bytes=40 * 10**9, kv_cache_bytes=10**9)
    full = estimate_speed(spec, g, **kw)  # type: ignore[arg-type]
    off = estimate_speed(spec, g, offloaded_bytes=20 * 10**9, **kw)  # type: ignore[arg-type]
    expected = 1 / (21e9 / (1008e9 * DECODE_BANDWIDTH_EFFICIENCY) + 20e9 / (32e9 * 0.8))
    assert off.decode_tokens_per_s == pytest.approx(expected)
    assert off.decode_tokens_per_s < full.decode_tokens_per_s / 10


def test_unknown_tflops_and_price_stay_unknown() -> None:
    spec = resolve_model("llama-3.1-8b").spec
    mac = find_gpu("m3-max-128gb")
    s = estimate_speed(spec, mac, count=1, split="single", batch=1, context=4096, weights_bytes=16 * 10**9,
                       kv_cache_bytes=10**9)
    assert s.prefill_tokens_per_s is None and s.ttft_s is None and s.cost_per_million_tokens_usd is None
    assert math.isfinite(s.decode_tokens_per_s) and s.decode_tokens_per_s > 0
