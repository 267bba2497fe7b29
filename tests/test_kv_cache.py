"""KV cache: the seed's formula generalized — grouped-query heads, sliding windows trimmed, multi-head latent
attention's compressed cache, and the fixed-size state of hybrid convolution layers. Expected numbers come from the
published architecture (written out below) or from what the cache measurably held on an H200."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vram.components.kv_cache import kv_cache_bytes, layer_kv_bytes, state_bytes
from vram.inference import estimate
from vram.model import ModelSpec
from vram.request import Workload
from vram.resolver import resolve_model

REPO_ROOT = Path(__file__).resolve().parent.parent
GROUNDTRUTH = REPO_ROOT.parent / "shared" / "groundtruth"
PROBES = sorted((REPO_ROOT / "measurements").glob("h200-probe*.jsonl"))
MIB = 2**20


def spec(model: str) -> ModelSpec:
    return resolve_model(model).spec


def per_token(kv_heads: int, head_dim: int, elem_bytes: int = 2) -> int:
    """Bytes one token adds to one layer: keys and values."""
    return 2 * kv_heads * head_dim * elem_bytes


# --- sliding windows -------------------------------------------------------------------------------------------


def test_mistral_every_layer_slides() -> None:
    """Mistral 7B v0.1: 32 layers, 8 kv heads × 128, window 4096 on every layer."""
    s = spec("mistral-7b-v0.1")
    t = 32 * 1024
    assert kv_cache_bytes(s, 1, t, 2).bytes == 32 * 4096 * per_token(8, 128)
    assert kv_cache_bytes(s, 1, t, 2, trim_window=False).bytes == 32 * t * per_token(8, 128)
    assert kv_cache_bytes(s, 1, 1000, 2).bytes == 32 * 1000 * per_token(8, 128)  # below the window: untouched
    assert "4096" in kv_cache_bytes(s, 1, t, 2).explanation


def test_gemma2_alternates_local_and_global() -> None:
    """Gemma 2 9B: 42 layers, even-numbered ones local (window 4096), 8 kv heads × 256."""
    s = spec("gemma-2-9b")
    t = 32 * 1024
    assert kv_cache_bytes(s, 1, t, 2).bytes == (21 * t + 21 * 4096) * per_token(8, 256)
    windows = [layer.attention.sliding_window for layer in s.layers if layer.attention]
    assert windows == [4096 if i % 2 == 0 else None for i in range(42)]


def test_gemma3_five_local_to_one_global() -> None:
    """Gemma 3 27B: 62 layers, every sixth global, the rest local with a 1024-token window; 16 kv heads × 128."""
    s = spec("gemma-3-27b")
    t = 128 * 1024
    n_global = sum(1 for i in range(62) if (i + 1) % 6 == 0)
    assert n_global == 10
    assert kv_cache_bytes(s, 1, t, 2).bytes == (n_global * t + (62 - n_global) * 1024) * per_token(16, 128)
    # versus the seed's formula applied blindly to all 62 layers: over five times more
    assert 62 * t * per_token(16, 128) > 5 * kv_cache_bytes(s, 1, t, 2).bytes


def test_gpt_oss_alternating_128_token_window() -> None:
    """gpt-oss-20b: 24 layers, half with a 128-token window; 8 kv heads × 64."""
    s = spec("gpt-oss-20b")
    t = 8192
    assert kv_cache_bytes(s, 1, t, 2).bytes == (12 * t + 12 * 128) * per_token(8, 64)


def test_layer_kv_bytes_trims_only_sliding_layers() -> None:
    s = spec("gemma-2-9b")
    local, glob = s.layers[0], s.layers[1]
    assert layer_kv_bytes(local, 2, 10_000, 2) == 2 * 4096 * per_token(8, 256)
    assert layer_kv_bytes(local, 2, 10_000, 2, trim_window=False) == 2 * 10_000 * per_token(8, 256)
    assert layer_kv_bytes(glob, 2, 10_000, 2) == 2 * 10_000 * per_token(8, 256)


# --- multi-head latent attention -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,layers,heads", [("deepseek-v3", 61, 128), ("deepseek-r1", 61, 128), ("deepseek-v2-lite", 27, 16)]
)
def test_mla_caches_the_latent(model: str, layers: int, heads: int) -> None:
    """DeepSeek MLA keeps kv_lora_rank (512) + qk_rope_head_dim (64) per token and layer, shared by all heads."""
    s = spec(model)
    t = 4096
    expected = layers * t * (512 + 64) * 2
    assert kv_cache_bytes(s, 1, t, 2).bytes == expected
    # decompressed per-head keys (128 nope + 64 rope) and values (128) would be `heads` × larger per token
    naive = layers * t * heads * (192 + 128) * 2
    assert naive / expected == pytest.approx(heads * 320 / 576)
    assert "latent 512" in kv_cache_bytes(s, 1, t, 2).explanation


# --- hybrid models: fixed-size state ---------------------------------------------------------------------------


def test_lfm2_conv_layers_hold_a_fixed_state() -> None:
    """LFM2 1.2B: 16 layers, attention at 2, 5, 8, 10, 12, 14 (8 kv heads × 64); the 10 others are short
    convolutions keeping `conv_L_cache` (3) columns of the 2048-wide hidden state per sequence."""
    s = spec("lfm2-1.2b")
    attn = [i for i, layer in enumerate(s.layers) if layer.attention]
    assert attn == [2, 5, 8, 10, 12, 14]
    state = 10 * 2048 * 3 * 2
    assert state_bytes(s, 1, 2) == state
    assert state_bytes(s, 4, 2) == 4 * state
    for t in (1, 1000, 100_000):
        assert kv_cache_bytes(s, 1, t, 2).bytes == 6 * t * per_token(8, 64) + state
    # the state does not grow with the context
    grow = kv_cache_bytes(s, 1, 20_000, 2).bytes - kv_cache_bytes(s, 1, 10_000, 2).bytes
    assert grow == 6 * 10_000 * per_token(8, 64)


def test_state_is_never_stored_below_16_bit() -> None:
    s = spec("lfm2-1.2b")
    fp8 = kv_cache_bytes(s, 1, 1000, 1).bytes
    assert fp8 == 6 * 1000 * per_token(8, 64, 1) + 10 * 2048 * 3 * 2


def test_dense_models_have_no_state() -> None:
    assert state_bytes(spec("llama-3.1-8b"), 8, 2) == 0


# --- scaling laws of the formula -------------------------------------------------------------------------------

MODELS = ["llama-3.1-8b", "gemma-2-9b", "deepseek-v2-lite", "lfm2-1.2b", "qwen3-30b-a3b", "gpt-oss-20b"]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS), batch=st.integers(1, 64), tokens=st.integers(0, 300_000), more=st.integers(0, 10_000)
)
def test_linear_in_batch_and_monotone_in_tokens(model: str, batch: int, tokens: int, more: int) -> None:
    s = spec(model)
    one = kv_cache_bytes(s, 1, tokens, 2).bytes
    assert kv_cache_bytes(s, batch, tokens, 2).bytes == batch * one
    assert kv_cache_bytes(s, 1, tokens + more, 2).bytes >= one
    # 8-bit halves the attention part exactly (the convolution state stays 16-bit)
    half = kv_cache_bytes(s, 1, tokens, 1).bytes
    assert 2 * (half - state_bytes(s, 1, 2)) == one - state_bytes(s, 1, 2)


def test_zero_tokens_leaves_only_state() -> None:
    assert kv_cache_bytes(spec("llama-3.1-8b"), 4, 0, 2).bytes == 0
    assert kv_cache_bytes(spec("lfm2-1.2b"), 1, 0, 2).bytes == 10 * 2048 * 3 * 2


# --- against the memory the cache held on a real GPU -----------------------------------------------------------


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    sources = [(GROUNDTRUTH / "h200-transformers.jsonl", GROUNDTRUTH)] + [(p, p.parent) for p in PROBES]
    for path, base in sources:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            c = json.loads(line) if line.strip() else {}
            if c.get("kind") == "infer" and "kv_cache_bytes_alloc" in c:
                out.append((str(base / c["config_file"]), c))
    return out


CASES = _cases()


@pytest.mark.parametrize(
    "config,case", CASES, ids=[f"{c['model']}-b{c['batch']}-L{c['context']}-{c['attn']}" for _, c in CASES]
)
def test_cache_after_prefill_matches_the_h200(config: str, case: dict[str, Any]) -> None:
    """After one forward pass over the prompt, transformers' DynamicCache holds every prompt token on every layer —
    sliding layers too (their trimmed tensors are views of the full prompt) — plus the convolution state. What the
    allocator still held (`kv_cache_bytes_alloc`) differs from the formula only by allocator rounding; the bytes of
    the tensors reachable from the cache (`kv_cache_bytes_walk`), where recorded for caches without sliding layers,
    are exactly the formula."""
    s = resolve_model(config).spec
    expected = kv_cache_bytes(s, case["batch"], case["context"], 2, trim_window=False).bytes
    assert abs(case["kv_cache_bytes_alloc"] - expected) <= 10 * MIB
    if "kv_cache_bytes_walk" in case and case["cache_layer_classes"] == ["DynamicLayer"]:
        assert case["kv_cache_bytes_walk"] == expected


def test_measured_cases_cover_sliding_mla_and_hybrid() -> None:
    if not CASES:
        pytest.skip("no measurements found")
    classes = {cls for _, c in CASES for cls in c["cache_layer_classes"]}
    assert {"DynamicLayer", "DynamicSlidingWindowLayer", "LinearAttentionLayer"} <= classes
    assert any(c["model"].startswith("DeepSeek") for _, c in CASES)


def test_transformers_estimate_reports_the_prompt_cache_and_kv_dtype() -> None:
    est = estimate("gemma-2-9b", Workload(context=16_384, new_tokens=0))
    full = kv_cache_bytes(spec("gemma-2-9b"), 1, 16_384, 2, trim_window=False).bytes
    assert est.kv_cache_bytes == full == 42 * 16_384 * per_token(8, 256)
    fp8 = estimate("gemma-2-9b", Workload(context=16_384, new_tokens=0, kv_dtype="fp8"))
    assert fp8.kv_cache_bytes == full // 2
