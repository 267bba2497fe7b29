"""The 2025–2026 decoder families: each builder reads a config.json the way its transformers modeling code builds the
model, tensor by tensor, and returns the layers with exact parameter counts (tests/data/arch holds the counts
transformers gives for small configs of every variant; tests/test_arch_families.py compares them).

Families here: MoE decoders with shared experts (GLM-4.x MoE, ERNIE 4.5 MoE, Hunyuan MoE, MiniMax-M2), gated
DeltaNet hybrids (Qwen3-Next, Qwen3.5), Kimi delta attention (Kimi-Linear), Mamba-2 hybrids (Granite 4, Nemotron-H,
Falcon-H1), DeepSeek sparse attention (DeepSeek-V3.2, GLM-5), Llama 4 (chunked attention, interleaved MoE) and
Gemma 3n / Gemma 4 (per-layer embeddings, shared KV layers).
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .model import (
    Attention,
    Config,
    Layer,
    Mlp,
    StateMixer,
    _Acc,
    _experts,
    _gated_mlp,
    _get,
    _int,
    _layers,
    _positive,
)

Built = tuple[list[Layer], int, list[str]]


def _head_dim(cfg: Config, h: int, heads: int) -> int:
    hd = cfg.get("head_dim")
    return int(hd) if isinstance(hd, int) and not isinstance(hd, bool) and hd > 0 else h // heads


def _per_layer(value: Any, i: int, name: str) -> int:
    """A setting that is one int or a list with one entry per layer (Hunyuan's moe_topk / num_experts)."""
    if isinstance(value, list):
        if i >= len(value):
            raise ConfigError(f"config.json: {name} has {len(value)} entries, fewer than the layers", field="model")
        value = value[i]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"config.json field {name} must be a non-negative integer, got {value!r}", field="model")
    return value


def attention(
    acc: _Acc,
    h: int,
    heads: int,
    kv: int,
    head_dim: int,
    *,
    bias_qkv: bool = False,
    bias_o: bool = False,
    qk_norm: int = 0,
    window: int | None = None,
    gated_q: bool = False,
    chunk: int | None = None,
) -> Attention:
    """q/k/v/o projections (q twice as wide when its second half gates the output, as in Qwen3-Next), plus
    `qk_norm` norm weights."""
    acc.lin(h, heads * head_dim * (2 if gated_q else 1), bias_qkv)
    acc.lin(h, kv * head_dim, bias_qkv)
    acc.v_proj += acc.lin(h, kv * head_dim, bias_qkv)
    acc.lin(heads * head_dim, h, bias_o)
    acc.small += qk_norm
    return Attention(
        kind="mha",
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        v_head_dim=head_dim,
        sliding_window=window,
        chunk_size=chunk,
    )


def moe(
    acc: _Acc,
    h: int,
    inter: int,
    n: int,
    topk: int,
    *,
    shared_inter: int = 0,
    shared_gate: bool = False,
    router_bias: int = 0,
) -> Mlp:
    """Router (n × h, plus `router_bias` correction-bias parameters), n stacked gated experts and an optional
    always-on shared expert of width `shared_inter` (with a sigmoid gate Linear(h, 1) when `shared_gate`)."""
    acc.router += n * h + router_bias
    _experts(acc, h, inter, n)
    if shared_inter:
        acc.lin(h, shared_inter)
        acc.lin(h, shared_inter)
        acc.down += acc.lin(shared_inter, h)
        if shared_gate:
            acc.router += h
    return Mlp(
        kind="moe",
        intermediate_size=inter,
        num_experts=n,
        experts_per_token=topk,
        shared_intermediate_size=shared_inter,
    )


def _mlp_layer_types(cfg: Config, n: int, first_dense: int) -> list[bool]:
    """Which layers are MoE: `mlp_layer_types` ("dense"/"sparse") when given, else the first `first_dense` dense."""
    mt = cfg.get("mlp_layer_types")
    if isinstance(mt, list) and len(mt) >= n:
        return [str(x) == "sparse" for x in mt[:n]]
    return [i >= first_dense for i in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# MoE decoders with standard attention


def glm4_moe(cfg: Config, mt: str) -> Built:
    """GLM-4.5 / 4.6 / 4.7 (Glm4MoeForCausalLM): dense first layers, then routed experts + shared experts; the
    routing correction bias is a buffer. Optional q/k norms; q/k/v bias without o bias."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(cfg, h, heads)
    inter = _int(cfg, "intermediate_size")
    moe_inter = _int(cfg, "moe_intermediate_size")
    n_exp = _int(cfg, "n_routed_experts")
    topk = _int(cfg, "num_experts_per_tok")
    shared = _int(cfg, "n_shared_experts", default=0) * moe_inter
    sparse = _mlp_layer_types(cfg, n, _int(cfg, "first_k_dense_replace", default=0))
    qk = 2 * hd if cfg.get("use_qk_norm") else 0
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        att = attention(acc, h, heads, kv, hd, bias_qkv=bias, qk_norm=qk)
        mlp = moe(acc, h, moe_inter, n_exp, topk, shared_inter=shared) if sparse[i] else _gated_mlp(acc, h, inter)
        acc.small += 2 * h
        layers.append(acc.layer(att, None, mlp))
    return layers, h, []


def ernie4_5_moe(cfg: Config, mt: str) -> Built:
    """ERNIE 4.5 MoE: experts on layers start..end every `moe_layer_interval`, shared experts, and an
    e_score_correction_bias that is a parameter (moe_statics)."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(cfg, h, heads)
    inter = _int(cfg, "intermediate_size")
    moe_inter = _int(cfg, "moe_intermediate_size")
    n_exp = _int(cfg, "moe_num_experts")
    topk = _int(cfg, "moe_k")
    shared = _int(cfg, "moe_num_shared_experts", default=0) * moe_inter
    start = _int(cfg, "moe_layer_start_index", default=0)
    end = _int(cfg, "moe_layer_end_index", default=n - 1)
    every = _positive(cfg, "moe_layer_interval", default=1)
    bias = bool(cfg.get("use_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        att = attention(acc, h, heads, kv, hd, bias_qkv=bias, bias_o=bias)
        if (i + 1) % every == 0 and start <= i <= end:
            mlp = moe(acc, h, moe_inter, n_exp, topk, shared_inter=shared, router_bias=n_exp)
        else:
            mlp = _gated_mlp(acc, h, inter, bias)
        acc.small += 2 * h
        layers.append(acc.layer(att, None, mlp))
    return layers, h, []


def hunyuan_moe(cfg: Config, mt: str) -> Built:
    """Hunyuan-A13B (HunYuanMoEV1ForCausalLM): q/k norms, every layer MoE with experts and one shared MLP of
    `intermediate_size`; num_experts / moe_topk may be per-layer lists."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(cfg, h, heads)
    inter = _int(cfg, "intermediate_size")
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        att = attention(acc, h, heads, kv, hd, bias_qkv=bias, bias_o=bias, qk_norm=2 * hd)
        n_exp = _per_layer(_get(cfg, "num_experts", default=1), i, "num_experts")
        topk = _per_layer(_get(cfg, "moe_topk", default=1), i, "moe_topk")
        mlp = moe(acc, h, inter, n_exp, topk, shared_inter=inter)
        acc.small += 2 * h
        layers.append(acc.layer(att, None, mlp))
    return layers, h, []


def minimax_m2(cfg: Config, mt: str) -> Built:
    """MiniMax-M2 / M2.1: full-width q/k norms, every layer a routed MoE (`intermediate_size` per expert), no
    shared expert; the routing correction bias is a buffer."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(cfg, h, heads)
    inter = _int(cfg, "intermediate_size")
    n_exp = _int(cfg, "num_local_experts")
    topk = _int(cfg, "num_experts_per_tok")
    layers = []
    for _ in range(n):
        acc = _Acc()
        att = attention(acc, h, heads, kv, hd, qk_norm=heads * hd + kv * hd)
        mlp = moe(acc, h, inter, n_exp, topk)
        acc.small += 2 * h
        layers.append(acc.layer(att, None, mlp))
    return layers, h, []


# ---------------------------------------------------------------------------------------------------------------
# gated DeltaNet hybrids (Qwen3-Next, Qwen3.5)


def gated_deltanet(acc: _Acc, h: int, k_heads: int, v_heads: int, k_dim: int, v_dim: int, kernel: int) -> StateMixer:
    """A gated DeltaNet token mixer: projections to q, k, v (k_heads × k_dim, k_heads × k_dim, v_heads × v_dim), the
    output gate z (v_heads × v_dim) and the per-head beta and decay a (v_heads each); a depthwise causal conv over
    q/k/v without bias; dt_bias and A_log per value head; a gated RMSNorm of v_dim; out_proj.

    Its state per sequence is fixed: the conv keeps the last `kernel` inputs of its channels (transformers'
    LinearAttentionLayer holds conv_dim × kernel) and the delta rule one v_heads × k_dim × v_dim matrix."""
    key_dim, value_dim = k_heads * k_dim, v_heads * v_dim
    conv_dim = 2 * key_dim + value_dim
    acc.lin(h, conv_dim)  # in_proj_qkv (Qwen3-Next fuses it with z as in_proj_qkvz: same count)
    acc.lin(h, value_dim)  # z
    acc.lin(h, 2 * v_heads)  # b and a
    acc.small += conv_dim * kernel + 2 * v_heads + v_dim
    acc.lin(value_dim, h)
    return StateMixer(kind="gated_deltanet", state_elems=conv_dim * kernel + v_heads * k_dim * v_dim,
                      inner_size=conv_dim + value_dim)


def _linear_layer_types(cfg: Config, n: int, interval_key: str = "full_attention_interval") -> list[str]:
    lt = cfg.get("layer_types")
    if isinstance(lt, list):
        if len(lt) < n:
            raise ConfigError(f"config.json: layer_types has {len(lt)} entries for {n} layers", field="model")
        return [str(x) for x in lt[:n]]
    every = _positive(cfg, interval_key, default=4)
    return ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(n)]


def qwen3_next(cfg: Config, mt: str) -> Built:
    """Qwen3-Next and Qwen3.5 (dense and MoE text models): three gated DeltaNet layers to one full-attention layer
    (layer_types, default every 4th full); full attention has q/k norms and a q projection twice as wide (its
    second half gates the output). MLPs: a routed MoE with a sigmoid-gated shared expert (Qwen3-Next, Qwen3.5 MoE)
    or dense (Qwen3.5)."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(cfg, h, heads)
    types = _linear_layer_types(cfg, n)
    kh, vh = _positive(cfg, "linear_num_key_heads"), _positive(cfg, "linear_num_value_heads")
    kd, vd = _positive(cfg, "linear_key_head_dim"), _positive(cfg, "linear_value_head_dim")
    kernel = _positive(cfg, "linear_conv_kernel_dim", default=4)
    dense = mt == "qwen3_5_text"
    n_exp = 0 if dense else _int(cfg, "num_experts", default=0)
    topk = _int(cfg, "num_experts_per_tok", default=0)
    moe_inter = _int(cfg, "moe_intermediate_size", default=0)
    shared = _int(cfg, "shared_expert_intermediate_size", default=0)
    step = _positive(cfg, "decoder_sparse_step", default=1)
    only = set(cfg.get("mlp_only_layers") or []) if mt == "qwen3_next" else set()
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        if types[i] == "linear_attention":
            att, mixer = None, gated_deltanet(acc, h, kh, vh, kd, vd, kernel)
        else:
            att = attention(acc, h, heads, kv, hd, bias_qkv=bias, bias_o=bias, qk_norm=2 * hd, gated_q=True)
            mixer = None
        if n_exp and i not in only and (i + 1) % step == 0:
            mlp = moe(acc, h, moe_inter, n_exp, topk, shared_inter=shared, shared_gate=bool(shared))
        else:
            mlp = _gated_mlp(acc, h, _int(cfg, "intermediate_size"))
        acc.small += 2 * h
        layers.append(acc.layer(att, mixer, mlp))
    n_lin = sum(t == "linear_attention" for t in types)
    return layers, h, [f"{n_lin} of {n} layers are gated DeltaNet (linear attention): a fixed conv + "
                       f"{vh}×{kd}×{vd} recurrent state per sequence, no KV cache"]


FAMILIES: dict[str, Any] = {
    "glm4_moe": glm4_moe,
    "ernie4_5_moe": ernie4_5_moe,
    "hunyuan_v1_moe": hunyuan_moe,
    "minimax_m2": minimax_m2,
    "qwen3_next": qwen3_next,
    "qwen3_5_text": qwen3_next,
    "qwen3_5_moe_text": qwen3_next,
}

__all__ = ["FAMILIES", "attention", "moe"]
