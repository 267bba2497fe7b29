"""Mamba / Mamba-2 / Falcon-Mamba: exact parameter counts and fixed-size state instead of a KV cache.

Expected counts come from transformers 5.17.0 (meta-device instantiation of MambaConfig / FalconMambaConfig /
Mamba2Config with these arguments), an implementation independent of vram's."""

from __future__ import annotations

import pytest

from vram import Workload, estimate, model_from_config
from vram.resolver import resolve_model

CASES = [
    (
        {"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 4, "vocab_size": 50280, "state_size": 16},
        53_702_400,
    ),
    (
        {
            "model_type": "mamba",
            "hidden_size": 2560,
            "num_hidden_layers": 3,
            "vocab_size": 50280,
            "use_bias": True,
            "use_conv_bias": False,
            "time_step_rank": 100,
        },
        250_631_680,
    ),
    ({"model_type": "falcon_mamba", "hidden_size": 1024, "num_hidden_layers": 3, "vocab_size": 65024}, 86_587_392),
    (
        {
            "model_type": "mamba2",
            "hidden_size": 768,
            "num_hidden_layers": 4,
            "vocab_size": 50280,
            "num_heads": 24,
            "head_dim": 64,
            "n_groups": 1,
            "state_size": 128,
        },
        92_292_128,
    ),
    (
        {
            "model_type": "mamba2",
            "hidden_size": 1024,
            "num_hidden_layers": 2,
            "vocab_size": 32000,
            "num_heads": 32,
            "head_dim": 64,
            "n_groups": 8,
            "state_size": 64,
            "use_bias": True,
            "tie_word_embeddings": True,
        },
        47_564_032,
    ),
]


@pytest.mark.parametrize(("config", "params"), CASES)
def test_exact_parameter_count(config: dict[str, object], params: int) -> None:
    assert model_from_config(config).params == params


def test_state_does_not_grow_with_context() -> None:
    cfg = CASES[0][0]
    spec = model_from_config(cfg)
    short = estimate(spec, Workload(context=1024))
    long = estimate(spec, Workload(context=16384))
    # conv (inner × kernel) + ssm (inner × state) per layer and sequence, in bf16: 1536 × (4 + 16) × 2 bytes × 4
    assert short.kv_cache_bytes == long.kv_cache_bytes == 1536 * (4 + 16) * 2 * 4
    assert long.activation_bytes > short.activation_bytes


def test_gated_deltanet_state_is_part_of_the_prefill_peak() -> None:
    """Qwen3.6-35B-A3B's gated-DeltaNet layers write their fixed recurrent state as they run: at a one-token prompt
    and batch 256 the state dominates, and it is in the peak, not taken out of the activations (they were negative)."""
    spec = resolve_model("qwen3.6-35b-a3b").spec
    est = estimate(spec, Workload(context=1, batch=256, new_tokens=0, quant="q8_0"))
    state = 256 * sum(layer.mixer.state_elems for layer in spec.layers if layer.mixer is not None) * 2
    assert state > 4 * 2**30
    assert est.activation_bytes >= 0
    assert est.kv_cache_bytes >= state
    assert est.peak_allocated_bytes >= est.weights_bytes + state
