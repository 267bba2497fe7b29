"""Which attention kernel transformers + PyTorch run, and the score matrices it keeps (vram.engines.transformers)."""

from __future__ import annotations

from vram import Workload, estimate
from vram.engines.transformers import math_sdpa_peak_bytes, sdpa_runs_math_kernel
from vram.resolver import resolve_model


def _activations(model: str, **kw: object) -> int:
    return estimate(model, Workload.from_flat(new_tokens=0, **kw)).activation_bytes  # type: ignore[arg-type]


def test_float32_grouped_query_sdpa_holds_two_float32_score_matrices() -> None:
    """Llama 3.2 3B (24 query heads, 8 kv heads) in float32 at 8K: the math kernel's scores and softmax, 2 × 6 GiB."""
    spec = resolve_model("llama-3.2-3b").spec
    layer = spec.layers[-1]
    assert sdpa_runs_math_kernel(spec, layer, 4, "sdpa", masked=False)
    heads, head_dim, tokens = 24, 128, 8192
    scores = heads * tokens * tokens * 4
    expanded = tokens * heads * 4 * (4 * head_dim)  # scaled q, k and its scaled copy, v: all at 24 heads
    assert math_sdpa_peak_bytes(layer, 1, tokens) == 2 * scores + tokens * tokens * 4 + expanded
    fp32 = _activations("llama-3.2-3b", context=tokens, dtype="float32")
    bf16 = _activations("llama-3.2-3b", context=tokens, dtype="bfloat16")
    assert fp32 > 2 * scores > 10 * bf16


def test_float32_without_grouped_heads_or_with_a_mask_keeps_no_score_matrix() -> None:
    llama2 = resolve_model("llama-2-7b").spec  # 32 query and 32 kv heads: the memory-efficient kernel takes fp32
    assert not sdpa_runs_math_kernel(llama2, llama2.layers[0], 4, "sdpa", masked=False)
    llama3 = resolve_model("llama-3.1-8b").spec
    assert not sdpa_runs_math_kernel(llama3, llama3.layers[0], 4, "sdpa", masked=True)  # repeat_kv + mask
    assert not sdpa_runs_math_kernel(llama3, llama3.layers[0], 2, "sdpa", masked=False)  # bf16: flash
    tokens = 8192
    fp32 = _activations("llama-2-7b", context=tokens, dtype="float32")
    assert fp32 < 32 * tokens * tokens * 4  # less than one float32 score matrix


def test_gpt_oss_eager_softmax_in_bf16_holds_three_score_buffers() -> None:
    """gpt-oss concatenates the sink logits, subtracts the row max and takes the softmax in bf16: 3 buffers; Llama's
    eager path upcasts to float32 for the softmax: 5 bf16-sized buffers. Checked at the attention phase's share."""
    spec = resolve_model("gpt-oss-20b").spec
    heads, tokens = 64, 4096
    score = heads * tokens * tokens * 2
    est = estimate(spec, Workload.from_flat(context=tokens, new_tokens=0, attn="eager"))
    other = estimate(spec, Workload.from_flat(context=tokens // 2, new_tokens=0, attn="eager"))
    # the attention phase binds at long prompts; going from L/2 to L adds 3 × (score(L) - score(L/2)) of scores
    grown = est.activation_bytes - other.activation_bytes
    assert 3 * (score - score // 4) <= grown < 4 * (score - score // 4)
