"""Weights: parameters times bytes per parameter, per tensor class, under a storage format (dtype or quantization)."""

from __future__ import annotations

import math

from ..dtypes import QuantScheme
from ..model import ModelSpec
from . import Component


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule for which layers of attn_v / ffn_down get the higher type in *_M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _layer_linear_bits(scheme: QuantScheme, i: int, n: int, layer_linear: int, v: int, down: int) -> float:
    """Bits for one layer's matrices; GGUF mixes raise attn_v and ffn_down on some layers."""
    if scheme.gguf_mix is None or layer_linear == 0:
        return scheme.linear_bits * layer_linear
    mix = scheme.gguf_mix
    hi = {"Q4_K_M": 6.5625, "Q5_K_M": 6.5625, "Q3_K_M": 5.5, "Q3_K_L": 5.5, "Q2_K": 3.4375, "Q4_K_S": 5.5,
          "Q3_K_S": 3.4375}.get(mix)
    if hi is None:
        return scheme.linear_bits * layer_linear
    if mix in ("Q4_K_M", "Q5_K_M"):
        boosted = (v + down) if _use_more_bits(i, n) else 0
    elif mix in ("Q3_K_M", "Q3_K_L"):
        boosted = v + (down if i < n // 16 or mix == "Q3_K_L" else 0)
    elif mix == "Q4_K_S":
        boosted = v if i < n // 8 else 0
    else:  # Q2_K, Q3_K_S: attn_v one step up
        boosted = v
    return scheme.linear_bits * (layer_linear - boosted) + hi * boosted


def weights_bytes(model: ModelSpec, scheme: QuantScheme, *, buffers_bytes: int = 0) -> Component:
    """Bytes of all parameters as stored: 2-D layer matrices at the format's bits/weight, embeddings, output head,
    norms/biases and routers at theirs (exact per tensor class, rounded up to whole bytes per class)."""
    n = model.num_layers
    linear_bits = 0.0
    small = router = 0
    expert_bits = scheme.linear_bits if scheme.expert_bits is None else scheme.expert_bits
    if scheme.gguf_mix is None:  # same bits for every layer: count each distinct layer once
        for layer, count in model.distinct_layers:
            experts = layer.expert_linear_params
            linear_bits += count * (scheme.linear_bits * (layer.linear_params - experts) + expert_bits * experts)
            small += count * layer.small_params
            router += count * layer.router_params
    else:
        for i, layer in enumerate(model.layers):
            experts = layer.expert_linear_params if scheme.expert_bits is not None else 0  # MXFP4_MOE
            linear_bits += _layer_linear_bits(scheme, i, n, layer.linear_params - experts, layer.v_proj_params,
                                              layer.down_proj_params) + experts * expert_bits
            small += layer.small_params
            router += layer.router_params
    total_bits = (linear_bits + model.embed_params * scheme.embed_bits + model.head_params * scheme.head_bits
                  + (small + model.final_params) * scheme.small_bits + router * scheme.router_bits
                  + model.extra_params * max(16.0, scheme.small_bits if scheme.small_bits <= 16 else 16.0))
    b = math.ceil(total_bits / 8) + buffers_bytes
    avg = 8 * b / max(1, model.params)
    return Component("weights", b, f"{model.params:,} parameters as {scheme.name} ({avg:.3g} bits/param on average); "
                     f"{scheme.description}")
