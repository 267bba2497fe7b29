"""Weights: parameters times bytes per parameter, per tensor class, under a storage format (dtype or quantization)."""

from __future__ import annotations

import math
from _thread import allocate_lock

from ..dtypes import QuantScheme, quant_scheme
from ..model import Layer, ModelSpec, linear_shapes
from ..request import Workload
from ..resolved import ResolvedModel
from . import Component
from .allocator import CachingAllocator


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule for which layers of attn_v / ffn_down get the higher type in *_M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _layer_linear_bits(scheme: QuantScheme, i: int, n: int, layer_linear: int, v: int, down: int) -> float:
    """Bits for one layer's matrices; GGUF mixes raise attn_v and ffn_down on some layers."""
    if scheme.gguf_mix is None or layer_linear == 0:
        return scheme.linear_bits * layer_linear
    mix = scheme.gguf_mix
    hi = {
        "Q4_K_M": 6.5625,
        "Q5_K_M": 6.5625,
        "Q3_K_M": 5.5,
        "Q3_K_L": 5.5,
        "Q2_K": 3.4375,
        "Q4_K_S": 5.5,
        "Q3_K_S": 3.4375,
    }.get(mix)
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
            o = layer.attention_o_params if scheme.attention_o_bits is not None else 0
            qkv = layer.attention_linear_params - layer.attention_o_params if scheme.attention_bits is not None else 0
            linear_bits += count * (
                scheme.linear_bits * (layer.linear_params - experts - qkv - o)
                + expert_bits * experts
                + (scheme.attention_bits or 0) * qkv
                + (scheme.attention_o_bits or 0) * o
            )
            small += count * layer.small_params
            router += count * layer.router_params
    else:
        for i, layer in enumerate(model.layers):
            experts = layer.expert_linear_params if scheme.expert_bits is not None else 0  # MXFP4_MOE
            linear_bits += (
                _layer_linear_bits(
                    scheme, i, n, layer.linear_params - experts, layer.v_proj_params, layer.down_proj_params
                )
                + experts * expert_bits
            )
            small += layer.small_params
            router += layer.router_params
    total_bits = (
        linear_bits
        + model.embed_params * scheme.embed_bits
        + model.head_params * scheme.head_bits
        + (small + model.final_params) * scheme.small_bits
        + router * scheme.router_bits
        + model.extra_params * max(16.0, scheme.small_bits if scheme.small_bits <= 16 else 16.0)
    )
    b = math.ceil(total_bits / 8) + buffers_bytes
    avg = 8 * b / max(1, model.params)
    return Component(
        "weights",
        b,
        f"{model.params:,} parameters as {scheme.name} ({avg:.3g} bits/param on average); {scheme.description}",
    )


def _rope_buffer_bytes(spec: ModelSpec) -> int:
    # rotary inv_freq buffers: head_dim/2 float32 values per rotary embedding module
    return 2 * spec.rope_dim if spec.rope_dim else 0


def weight_scheme(spec: ModelSpec, wl: Workload) -> QuantScheme:
    """How the weights are stored for this run: --quant when given; else the checkpoint's own quantization_config
    (an FP8 / INT4 / MXFP4 checkpoint priced as stored) unless --dtype asks for another dtype than bf16; else
    --dtype. `--quant bf16` prices a quantized checkpoint dequantized."""
    if wl.quant is None and spec.stored_scheme is not None and wl.dtype == "bfloat16":
        return spec.stored_scheme
    return quant_scheme(wl.quant, dtype=wl.dtype)


def common_weights(rm: ResolvedModel, wl: Workload) -> Component:
    scheme = weight_scheme(rm.spec, wl)
    if rm.weights_override_bytes is not None and wl.quant is None:
        return Component(
            "weights",
            rm.weights_override_bytes + rm.buffers_bytes,
            f"{rm.spec.params:,} parameters; exact tensor bytes from {rm.source}",
        )
    c = weights_bytes(rm.spec, scheme, buffers_bytes=rm.buffers_bytes or _rope_buffer_bytes(rm.spec))
    if rm.spec.mtp_params:
        mtp_bytes = round(c.bytes * rm.spec.mtp_params / max(1, rm.spec.params))
        c = Component(
            c.name,
            c.bytes,
            f"{c.explanation}; the checkpoint also stores {rm.spec.mtp_params:,} "
            f"multi-token-prediction parameters (≈ {mtp_bytes / 2**30:.1f} GiB at this format), not loaded",
        )
    return c


def layer_param_sizes(model: ModelSpec, layer: Layer, elem: float) -> list[int]:
    """Bytes of each parameter tensor of a layer, in the order transformers builds them: its linears (attention,
    then the dense MLP), stacked experts, the router and other matrices, then norms/biases."""
    h = model.hidden_size
    a, m = layer.attention, layer.mlp
    sizes: list[int] = []
    if a is not None and a.kind == "mla":  # q (or q_a, q_b), kv_a_proj_with_mqa, kv_b_proj, o_proj
        q_out = a.num_heads * a.head_dim
        sizes += [h * a.q_lora_rank, a.q_lora_rank * q_out] if a.q_lora_rank else [h * q_out]
        kv_b = a.kv_lora_rank * a.num_heads * (a.head_dim - a.rope_head_dim + a.v_head_dim)
        sizes += [h * (a.kv_lora_rank + a.rope_head_dim), kv_b, a.num_heads * a.v_head_dim * h]
    sizes += [i * o for i, o in linear_shapes(model, layer).values()]
    if layer.expert_params:
        gated = m is not None and m.kind == "moe"
        sizes += [layer.expert_params * 2 // 3, layer.expert_params // 3] if gated else [layer.expert_params]
        if m is not None and m.shared_intermediate_size:  # the router, then the shared experts' gated MLP
            sizes += [layer.router_params] + [h * m.shared_intermediate_size] * 3
    rest = layer.params - sum(sizes) - layer.small_params
    if rest > 0:
        sizes.append(rest)  # router, convolution / state-space weights ...
    small = layer.small_params
    sizes += [h] * (small // h) + ([small % h] if small % h else [])
    return [int(x * elem) for x in sizes if x > 0]


def parameter_sizes(model: ModelSpec, elem: float) -> tuple[tuple[int, ...], ...]:
    """Every parameter tensor's bytes in build order: the embedding, each layer, the final norm and an untied head."""
    tail = [int(model.final_params * elem)] if model.final_params else []
    head = [int(model.head_params * elem)] if model.head_params else []
    return (
        (int(model.embed_params * elem),),
        *(tuple(layer_param_sizes(model, layer, elem)) for layer in model.layers),
        tuple(tail + head),
    )


# weight_blocks replays a few hundred allocations per model: kept per model object (the resolver keeps resolved
# models, so an estimate by name or of a pre-resolved model finds it), checked by identity (the entry holds the
# model, so its id cannot be reused while kept), bounded, oldest out first
MAX_KEPT_BLOCKS = 256
_BLOCKS: dict[tuple[int, float], tuple[ModelSpec, int]] = {}
_BLOCKS_LOCK = allocate_lock()


def weight_blocks(model: ModelSpec, elem: float) -> Component:
    """What `memory_allocated()` counts for the parameters beyond their bytes, in a fresh process.

    `from_config` / `from_pretrained` on CUDA allocate one block per parameter, in build order, from PyTorch's
    caching allocator (vram.components.allocator), whose statistics count whole blocks: a request of 10 MiB or
    more gets a segment rounded up to 2 MiB and keeps all of it when 1 MiB or less would be left over (an
    intermediate-sized matrix of 15.19 MiB holds a 16 MiB block), and a request that a cached free block fits
    takes that block whole under the same rule. Measured on an H200 in the first model of a process, beyond the
    parameters and buffers: Qwen2.5-0.5B 8,257,024 bytes (this replay: 8,243,456; its biases are not replayed one
    by one), a StarCoder2-3B layout 4,195,328 (4,194,304). Replaying transformers 5.17's own build order (a meta
    build's parameters) gives Gemma-3-1B 52,849,406 and DeepSeek-V2-Lite 81,789,696 (here 52,848,896 and
    81,788,928). A vision tower's tensors are not replayed.
    """
    key = (id(model), elem)
    kept = _BLOCKS.get(key)
    if kept is not None and kept[0] is model:
        extra = kept[1]
    else:
        sizes = [b for group in parameter_sizes(model, elem) for b in group if b > 0]
        al = CachingAllocator()
        for b in sizes:
            al.allocate(b)
        extra = max(0, al.allocated - sum(sizes))
        with _BLOCKS_LOCK:
            if len(_BLOCKS) >= MAX_KEPT_BLOCKS:
                _BLOCKS.pop(next(iter(_BLOCKS)), None)  # the oldest first
            _BLOCKS[key] = (model, extra)
    return Component(
        "weight_blocks",
        extra,
        "caching-allocator blocks the parameters hold beyond their bytes (a tensor keeps its whole block when "
        "≤ 1 MiB of it would be left over)",
    )
