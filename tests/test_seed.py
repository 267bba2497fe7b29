"""The seed's statements about VRAM, checked by the tool (and corrected where they only hold under conditions).

Expected values are computed here from the published architecture numbers (layers, kv heads, head dim) with the
seed's own formula, 2 × layers × kv_heads × head_dim × tokens × bytes, never taken from the tool's output.
"""

from __future__ import annotations

import json

import pytest

from vram.cli import main
from vram.components.kv_cache import kv_cache_bytes
from vram.inference import estimate
from vram.request import Workload
from vram.resolver import resolve_model

GB = 10**9
GIB = 2**30


def seed_kv_bytes(layers: int, kv_heads: int, head_dim: int, tokens: int, elem_bytes: float) -> int:
    """The seed's formula, as written: 2 × n_layers × n_kv_heads × head_dim × context_length × bytes."""
    return int(2 * layers * kv_heads * head_dim * tokens * elem_bytes)


def kv_only(model: str, tokens: int, dtype: str = "float16", kv_dtype: str | None = None) -> int:
    """KV cache bytes from the public estimate API: one sequence, the prompt only (no generated tokens)."""
    est = estimate(model, Workload(context=tokens, new_tokens=0, dtype=dtype, kv_dtype=kv_dtype))
    return est.kv_cache_bytes


# --- "7B FP16 needs ~14 GB weights" ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,params", [("llama-2-7b", 6_738_415_616), ("mistral-7b-v0.1", 7_241_732_096), ("qwen2.5-7b", 7_615_616_512)]
)
def test_7b_fp16_weights_about_14_gb(model: str, params: int) -> None:
    est = estimate(model, Workload(dtype="float16", context=16, new_tokens=0))
    assert est.params == params  # published parameter counts of these checkpoints
    # two bytes per parameter, plus the rotary inv_freq buffers (a few hundred bytes)
    assert 2 * params <= est.weights_bytes < 2 * params + 2**20
    assert 13 * GB < est.weights_bytes < 15.5 * GB


def test_fp32_weights_are_twice_fp16() -> None:
    fp16 = estimate("llama-2-7b", Workload(dtype="float16", context=16, new_tokens=0)).weights_bytes
    fp32 = estimate("llama-2-7b", Workload(dtype="float32", context=16, new_tokens=0)).weights_bytes
    assert fp32 - 2 * fp16 < 2**20  # buffers are float32 in both


# --- the KV formula ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,layers,kv_heads,head_dim",
    [
        ("llama-2-7b", 32, 32, 128),
        ("llama-3.1-8b", 32, 8, 128),
        ("qwen2.5-7b", 28, 4, 128),
        ("llama-3.3-70b", 80, 8, 128),
        ("mistral-nemo-12b", 40, 8, 128),  # head_dim 128 although hidden/heads = 160
        ("qwen3-8b", 36, 8, 128),
    ],
)
@pytest.mark.parametrize("tokens", [1, 4096, 32768])
def test_kv_formula(model: str, layers: int, kv_heads: int, head_dim: int, tokens: int) -> None:
    expected = seed_kv_bytes(layers, kv_heads, head_dim, tokens, 2)
    spec = resolve_model(model).spec
    assert kv_cache_bytes(spec, 1, tokens, 2).bytes == expected
    assert kv_only(model, tokens) == expected
    # batch multiplies it, the element size scales it
    assert kv_cache_bytes(spec, 3, tokens, 2).bytes == 3 * expected
    assert kv_cache_bytes(spec, 1, tokens, 1).bytes == expected // 2


# --- "a 70B model at 200K tokens needs ~32 GB of KV cache" -----------------------------------------------------


def test_70b_at_200k_fp16_needs_65_5_gb_not_32() -> None:
    expected = 80 * 8 * 128 * 2 * 2 * 200_000  # Llama-3.x-70B: 80 layers, 8 kv heads, head dim 128, fp16
    assert expected == 65_536_000_000
    for model in ("llama-3.3-70b", "llama-3.1-70b", "llama-3-70b"):
        assert kv_only(model, 200_000) == expected
    assert kv_only("llama-3.3-70b", 200_000) / GB == pytest.approx(65.5, abs=0.1)


@pytest.mark.parametrize("kv_dtype", ["fp8", "int8"])
def test_70b_at_200k_is_about_32_gb_only_with_an_8_bit_cache(kv_dtype: str) -> None:
    got = kv_only("llama-3.3-70b", 200_000, kv_dtype=kv_dtype)
    assert got == 80 * 8 * 128 * 2 * 1 * 200_000
    assert 30 * GB < got < 34 * GB


def test_the_estimate_states_kv_dtype_and_tokens() -> None:
    """Whoever reads the output can see why 65.5 GB and not 32: the cache's dtype and token count are printed."""
    fp16 = estimate("llama-3.3-70b", Workload(context=200_000, new_tokens=0, dtype="float16"))
    kv = fp16.component("kv_cache")
    assert kv is not None and kv.bytes == 65_536_000_000
    assert "float16" in kv.explanation and "200,000" in kv.explanation
    fp8 = estimate("llama-3.3-70b", Workload(context=200_000, new_tokens=0, dtype="float16", kv_dtype="fp8"))
    kv8 = fp8.component("kv_cache")
    assert kv8 is not None and kv8.bytes == 32_768_000_000
    assert "float8" in kv8.explanation and "200,000" in kv8.explanation
    assert any("KV cache in float8" in a for a in fp8.assumptions)
    # the standalone component says the formula itself
    comp = kv_cache_bytes(resolve_model("llama-3.3-70b").spec, 1, 200_000, 2, kv_dtype_name="float16")
    assert "80 layers" in comp.explanation and "8 kv heads" in comp.explanation and "128 head dim" in comp.explanation
    assert "200,000 tokens" in comp.explanation and "float16" in comp.explanation


def test_cli_shows_kv_dtype_and_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["estimate", "llama-3.3-70b", "--context", "200000", "--new-tokens", "0", "--dtype", "fp16", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    kv = next(c for c in out["breakdown"] if c["name"] == "kv_cache")
    assert out["kv_cache_bytes"] == kv["bytes"] == 65_536_000_000
    assert "float16" in kv["explanation"] and "200,000" in kv["explanation"]


# --- "~2 GB per 32K tokens" for a 7B -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,layers,kv_heads,head_dim,gib",
    [
        ("qwen2.5-7b", 28, 4, 128, 1.75),  # the seed's rule holds (≈ 2 GB)
        ("llama-3.1-8b", 32, 8, 128, 4.0),  # twice the rule
        ("llama-2-7b", 32, 32, 128, 16.0),  # eight times: no grouped-query attention
    ],
)
def test_kv_per_32k_tokens_depends_on_the_architecture(
    model: str, layers: int, kv_heads: int, head_dim: int, gib: float
) -> None:
    expected = seed_kv_bytes(layers, kv_heads, head_dim, 32 * 1024, 2)
    assert expected == gib * GIB
    assert kv_only(model, 32 * 1024) == expected


def test_two_gb_rule_holds_only_for_qwen() -> None:
    per_32k = {m: kv_only(m, 32 * 1024) / GB for m in ("qwen2.5-7b", "llama-3.1-8b", "llama-2-7b")}
    assert 1.5 < per_32k["qwen2.5-7b"] < 2.5
    assert per_32k["llama-3.1-8b"] > 4
    assert per_32k["llama-2-7b"] > 17
