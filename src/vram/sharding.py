"""Splitting a model over GPUs: what one tensor-parallel rank or pipeline stage holds, what stays replicated,
and the NCCL buffers a split adds. Used by the engines (vLLM shards itself) and by vram.fitting."""

from __future__ import annotations

from .components.weights import common_weights
from .errors import BadInput
from .model import Layer, ModelSpec
from .records import replace
from .request import Workload
from .resolved import ResolvedModel

MIB = 1024**2


# NCCL: per channel, send and receive buffers for the Simple (4 MiB, NCCL_BUFFSIZE), LL128 (~4.5 MiB) and LL
# (~0.25 MiB) protocols; ring/tree collectives use ~16 channels over NVLink / Infinity Fabric and ~4 over PCIe.
NCCL_BYTES_PER_CHANNEL = 2 * (4 * MIB + 4608 * 1024 + 256 * 1024)
NCCL_CHANNELS = {"nvlink": 16, "infinity-fabric": 16, "pcie": 4}
NCCL_P2P_CHANNELS = 2  # pipeline stages only send/receive activations to their neighbours


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def default_split(spec: ModelSpec, count: int, engine: str) -> str:
    if count <= 1:
        return "single"
    if engine == "llama.cpp":
        return "pp"
    att = next((layer.attention for layer in spec.layers if layer.attention), None)
    if att is None:
        return "tp"
    heads_ok = att.num_heads % count == 0
    kv = att.num_kv_heads
    kv_ok = att.kind == "mla" or kv % count == 0 or count % kv == 0
    return "tp" if heads_ok and kv_ok else "pp"


def _tp_layer(layer: Layer, h: int, t: int) -> Layer:
    a = layer.attention
    linear = layer.linear_params
    replicated = 0  # matrices every rank holds whole
    kv_proj = 0  # k/v projections, sharded by KV heads
    kv_rank = 0
    v_rank = _ceil(layer.v_proj_params, t)
    new_a = a
    if a is not None:
        if a.kind == "mla":
            # q_a / kv_a down-projections are replicated (vLLM ReplicatedLinear); the rest is column/row parallel
            replicated = _replicated_linear(layer, h)
            new_a = replace(a, num_heads=_ceil(a.num_heads, t), num_kv_heads=_ceil(a.num_kv_heads, t))
        else:
            kv_proj = h * a.num_kv_heads * (a.head_dim + a.v_head_dim)
            kv_heads_rank = max(1, _ceil(a.num_kv_heads, t))
            kv_rank = h * kv_heads_rank * (a.head_dim + a.v_head_dim)
            v_rank = h * kv_heads_rank * a.v_head_dim
            new_a = replace(a, num_heads=_ceil(a.num_heads, t), num_kv_heads=kv_heads_rank)
    sharded = max(0, linear - replicated - kv_proj)
    linear_rank = _ceil(sharded, t) + replicated + kv_rank
    m = layer.mlp
    new_m = m
    if m is not None:
        new_m = replace(
            m,
            intermediate_size=_ceil(m.intermediate_size, t),
            shared_intermediate_size=_ceil(m.shared_intermediate_size, t),
        )
    mixer = layer.mixer
    new_mixer = mixer
    if mixer is not None:
        new_mixer = replace(mixer, state_elems=_ceil(mixer.state_elems, t), inner_size=_ceil(mixer.inner_size, t))
    return replace(
        layer,
        attention=new_a,
        mlp=new_m,
        mixer=new_mixer,
        linear_params=linear_rank,
        expert_params=_ceil(layer.expert_params, t),
        v_proj_params=v_rank,
        expert_linear_params=_ceil(layer.expert_linear_params, t),
        down_proj_params=_ceil(layer.down_proj_params, t),
        params=linear_rank + layer.small_params + layer.router_params,
    )


def tp_rank_spec(spec: ModelSpec, t: int) -> ModelSpec:
    """What one of `t` tensor-parallel ranks holds (all ranks hold the same shapes)."""
    if t <= 1:
        return spec
    h = spec.hidden_size
    # vocab_size stays whole: each rank holds 1/t of the embedding and head, but the logits are gathered
    ranked: dict[int, Layer] = {}  # equal (interned) layers stay one object per rank
    for la in spec.layers:
        if id(la) not in ranked:
            ranked[id(la)] = _tp_layer(la, h, t)
    layers = tuple(ranked[id(la)] for la in spec.layers)
    return replace(
        spec,
        name=f"{spec.name} [TP rank 1/{t}]",
        layers=layers,
        embed_params=_ceil(spec.embed_params, t),
        head_params=_ceil(spec.head_params, t),
    )


def pp_stage_layers(num_layers: int, stages: int) -> list[range]:
    """Contiguous layer ranges, as even as possible; the earlier stages take the remainder."""
    base, extra = divmod(num_layers, stages)
    out, start = [], 0
    for i in range(stages):
        n = base + (1 if i < extra else 0)
        out.append(range(start, start + n))
        start += n
    return out


def pp_stage_specs(spec: ModelSpec, p: int) -> list[ModelSpec]:
    """What each of `p` pipeline stages holds: its layers; the embedding on the first, final norm and output head
    on the last (a tied head becomes the last stage's own copy of the embedding)."""
    if p <= 1:
        return [spec]
    if p > spec.num_layers:
        raise BadInput(f"gpu: {p} pipeline stages for {spec.num_layers} layers", field="gpu")
    out = []
    for i, rng in enumerate(pp_stage_layers(spec.num_layers, p)):
        first, last = i == 0, i == p - 1
        head = (spec.head_params or (spec.embed_params if spec.tie_word_embeddings else 0)) if last else 0
        out.append(
            replace(
                spec,
                name=f"{spec.name} [PP stage of {len(rng)} layers"
                + (", embedding" if first else "")
                + (", head" if last else "")
                + "]",
                layers=spec.layers[rng.start : rng.stop],
                embed_params=spec.embed_params if first else 0,
                head_params=head,
                tie_word_embeddings=spec.tie_word_embeddings and p == 1,
                final_params=spec.final_params if last else 0,
                extra_params=spec.extra_params if first else 0,
            )
        )
    return out


def _replicated_linear(layer: Layer, h: int) -> int:
    """Matrices every TP rank holds whole: MLA's q_a / kv_a down-projections (vLLM ReplicatedLinear)."""
    a = layer.attention
    if a is not None and a.kind == "mla":
        return h * (a.q_lora_rank + a.kv_lora_rank + a.rope_head_dim)
    return 0


def replicated_weights_bytes(rm: ResolvedModel, wl: Workload) -> int:
    """Bytes of the weights every TP rank holds whole: norms, biases, routers, buffers, MLA down-projections (and a
    vision tower)."""
    spec = rm.spec
    h = spec.hidden_size
    layers = tuple(
        replace(
            la,
            linear_params=_replicated_linear(la, h),
            expert_params=0,
            expert_linear_params=0,
            v_proj_params=0,
            down_proj_params=0,
            params=_replicated_linear(la, h) + la.small_params + la.router_params,
        )
        for la in spec.layers
    )
    only = replace(spec, layers=layers, embed_params=0, head_params=0)
    return common_weights(ResolvedModel(only, rm.entry, rm.source, None, rm.buffers_bytes), wl).bytes


def comm_buffer_bytes(split: str, count: int, interconnect: str) -> int:
    """NCCL buffers per rank (approximation, see NCCL_BYTES_PER_CHANNEL)."""
    if count <= 1 or split in ("single", "dp"):
        return 0
    channels = NCCL_P2P_CHANNELS if split == "pp" else NCCL_CHANNELS.get(interconnect, 4)
    return channels * NCCL_BYTES_PER_CHANNEL
