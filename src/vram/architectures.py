"""The 2025–2026 decoder families: each builder reads a config.json the way its transformers modeling code builds the
model, tensor by tensor, and returns the layers with exact parameter counts (tests/data/arch holds the counts
transformers gives for small configs of every variant; tests/test_arch_families.py compares them).

Families here: MoE decoders with shared experts (GLM-4.x MoE, ERNIE 4.5 MoE, Hunyuan MoE, MiniMax-M2), gated
DeltaNet hybrids (Qwen3-Next, Qwen3.5), Kimi delta attention (Kimi-Linear), Mamba-2 hybrids (Granite 4, Nemotron-H,
Falcon-H1), DeepSeek sparse attention (DeepSeek-V3.2, GLM-5), Llama 4 (chunked attention, interleaved MoE) and
Gemma 3n / Gemma 4 (per-layer embeddings, shared KV layers).
"""

from __future__ import annotations

from .errors import ConfigError
from .layers import (
    Attention,
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
from .traits import traits_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any

    from .layers import Config

Built = tuple[list[Layer], int, list[str]]


def _head_dim(cfg: Config, h: int, heads: int) -> int:
    hd = cfg.get("head_dim")
    return int(hd) if isinstance(hd, int) and not isinstance(hd, bool) and hd > 0 else h // heads


def _decoder_dims(cfg: Config) -> tuple[int, int, int, int, int]:
    """hidden size, layers, query heads, kv heads (default: as many as query heads) and head dim of a decoder."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    return h, n, heads, kv, _head_dim(cfg, h, heads)


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
    start = acc.linear
    acc.lin(h, heads * head_dim * (2 if gated_q else 1), bias_qkv)
    acc.lin(h, kv * head_dim, bias_qkv)
    acc.v_proj += acc.lin(h, kv * head_dim, bias_qkv)
    acc.attn_o += acc.lin(heads * head_dim, h, bias_o)
    acc.attn += acc.linear - start
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
    h, n, heads, kv, hd = _decoder_dims(cfg)
    inter = _int(cfg, "intermediate_size")
    moe_inter = _int(cfg, "moe_intermediate_size")
    n_exp = _int(cfg, "n_routed_experts")
    topk = _int(cfg, "num_experts_per_tok")
    shared = _int(cfg, "n_shared_experts", default=0) * moe_inter
    sparse = _mlp_layer_types(cfg, n, _int(cfg, "first_k_dense_replace", default=0))
    qk = traits_of(mt).qk_norm_params(cfg, heads, kv, hd)  # optional (use_qk_norm)
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
    h, n, heads, kv, hd = _decoder_dims(cfg)
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
    h, n, heads, kv, hd = _decoder_dims(cfg)
    inter = _int(cfg, "intermediate_size")
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        att = attention(
            acc, h, heads, kv, hd, bias_qkv=bias, bias_o=bias, qk_norm=traits_of(mt).qk_norm_params(cfg, heads, kv, hd)
        )
        n_exp = _per_layer(_get(cfg, "num_experts", default=1), i, "num_experts")
        topk = _per_layer(_get(cfg, "moe_topk", default=1), i, "moe_topk")
        mlp = moe(acc, h, inter, n_exp, topk, shared_inter=inter)
        acc.small += 2 * h
        layers.append(acc.layer(att, None, mlp))
    return layers, h, []


def minimax_m2(cfg: Config, mt: str) -> Built:
    """MiniMax-M2 / M2.1: full-width q/k norms, every layer a routed MoE (`intermediate_size` per expert), no
    shared expert; the routing correction bias is a buffer."""
    h, n, heads, kv, hd = _decoder_dims(cfg)
    inter = _int(cfg, "intermediate_size")
    n_exp = _int(cfg, "num_local_experts")
    topk = _int(cfg, "num_experts_per_tok")
    layers = []
    for _ in range(n):
        acc = _Acc()
        att = attention(acc, h, heads, kv, hd, qk_norm=traits_of(mt).qk_norm_params(cfg, heads, kv, hd))
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
    return StateMixer(
        kind="gated_deltanet", state_elems=conv_dim * kernel + v_heads * k_dim * v_dim, inner_size=conv_dim + value_dim
    )


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
    h, n, heads, kv, hd = _decoder_dims(cfg)
    types = _linear_layer_types(cfg, n)
    kh, vh = _positive(cfg, "linear_num_key_heads"), _positive(cfg, "linear_num_value_heads")
    kd, vd = _positive(cfg, "linear_key_head_dim"), _positive(cfg, "linear_value_head_dim")
    kernel = _positive(cfg, "linear_conv_kernel_dim", default=4)
    n_exp = _int(cfg, "num_experts", default=0) if traits_of(mt).experts else 0
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
            att = attention(
                acc,
                h,
                heads,
                kv,
                hd,
                bias_qkv=bias,
                bias_o=bias,
                gated_q=True,
                qk_norm=traits_of(mt).qk_norm_params(cfg, heads, kv, hd),
            )
            mixer = None
        if n_exp and i not in only and (i + 1) % step == 0:
            mlp = moe(acc, h, moe_inter, n_exp, topk, shared_inter=shared, shared_gate=bool(shared))
        else:
            mlp = _gated_mlp(acc, h, _int(cfg, "intermediate_size"))
        acc.small += 2 * h
        layers.append(acc.layer(att, mixer, mlp))
    n_lin = sum(t == "linear_attention" for t in types)
    return (
        layers,
        h,
        [
            f"{n_lin} of {n} layers are gated DeltaNet (linear attention): a fixed conv + "
            f"{vh}×{kd}×{vd} recurrent state per sequence, no KV cache"
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Mamba-2 hybrids (Granite 4, Nemotron-H, Falcon-H1)


def mamba2_mixer(
    acc: _Acc,
    h: int,
    inner: int,
    heads: int,
    head_dim: int,
    groups: int,
    state: int,
    kernel: int,
    *,
    in_bias: bool,
    out_bias: bool,
    conv_bias: bool,
    norm: bool = True,
) -> StateMixer:
    """A Mamba-2 block: in_proj to x, z, B, C and dt (2·inner + 2·groups·state + heads), a depthwise conv over x, B
    and C, dt_bias / A_log / D per head, a gated RMSNorm over inner (Falcon-H1 can leave it out), out_proj.
    State per sequence: the conv's last `kernel` inputs (conv_dim × kernel) and heads × head_dim × state."""
    conv_dim = inner + 2 * groups * state
    acc.lin(h, inner + conv_dim + heads, in_bias)
    acc.small += conv_dim * kernel + (conv_dim if conv_bias else 0) + 3 * heads + (inner if norm else 0)
    acc.lin(inner, h, out_bias)
    return StateMixer(kind="mamba2", state_elems=conv_dim * kernel + heads * head_dim * state, inner_size=inner)


_MAMBA_NAMES = {"mamba", "linear_attention", "M"}
_ATTENTION_NAMES = {"attention", "full_attention", "*"}


def granite_hybrid(cfg: Config, mt: str) -> Built:
    """Granite 4 (GraniteMoeHybridForCausalLM): each layer is Mamba-2 or attention (layer_types), followed by a
    routed MoE (when num_local_experts > 0) plus a gated shared MLP (input_linear h -> 2·shared, output_linear)."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = h // heads
    lt = cfg.get("layer_types") or cfg.get("layers_block_type") or ["mamba"] * n
    if not isinstance(lt, list) or len(lt) < n:
        raise ConfigError(f"config.json: layer_types must list the {n} layers", field="model")
    n_exp = _int(cfg, "num_local_experts", default=0)
    topk = _int(cfg, "num_experts_per_tok", default=0)
    inter = _int(cfg, "intermediate_size")
    shared = _int(cfg, "shared_intermediate_size", default=0)
    m_heads, m_hd = _positive(cfg, "mamba_n_heads"), _positive(cfg, "mamba_d_head")
    inner = int(float(_get(cfg, "mamba_expand", default=2)) * h)
    groups, state = _positive(cfg, "mamba_n_groups", default=1), _positive(cfg, "mamba_d_state")
    kernel = _positive(cfg, "mamba_d_conv", default=4)
    proj_bias, conv_bias = bool(cfg.get("mamba_proj_bias", False)), bool(cfg.get("mamba_conv_bias", True))
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        att: Attention | None = None
        mixer: StateMixer | None = None
        if str(lt[i]) in _MAMBA_NAMES:
            mixer = mamba2_mixer(
                acc,
                h,
                inner,
                m_heads,
                m_hd,
                groups,
                state,
                kernel,
                in_bias=proj_bias,
                out_bias=proj_bias,
                conv_bias=conv_bias,
            )
        elif str(lt[i]) in _ATTENTION_NAMES:
            att = attention(acc, h, heads, kv, hd, bias_qkv=bias, bias_o=bias)
        else:
            raise ConfigError(f"config.json: unknown layer type {lt[i]!r} in layer_types", field="model")
        mlp = moe(acc, h, inter, n_exp, topk, shared_inter=shared) if n_exp else _gated_mlp(acc, h, shared)
        acc.small += 2 * h
        layers.append(acc.layer(att, mixer, mlp))
    n_m = sum(layer.mixer is not None for layer in layers)
    return (
        layers,
        h,
        [
            f"{n_m} of {n} layers are Mamba-2: a fixed state of {m_heads} heads × {m_hd} × {state} per "
            "sequence, no KV cache"
        ],
    )


def _plain_mlp(acc: _Acc, h: int, inter: int, bias: bool = False) -> Mlp:
    acc.lin(h, inter, bias)
    acc.down += acc.lin(inter, h, bias)
    return Mlp(kind="plain", intermediate_size=inter)


def nemotron_h(cfg: Config, mt: str) -> Built:
    """Nemotron-H / Nemotron Nano 2 / Nemotron 3 (NemotronHForCausalLM): one block per layer after one RMSNorm,
    from hybrid_override_pattern (M Mamba-2, * attention, - MLP, E MoE) or layers_block_type. MLPs are plain
    (up, down; relu²); MoE experts are plain too, with plain shared experts and optional latent projections."""
    h = _int(cfg, "hidden_size")
    pattern = cfg.get("hybrid_override_pattern")
    lt = cfg.get("layers_block_type") or cfg.get("layer_types")
    if isinstance(pattern, str) and pattern:
        names = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
        if set(pattern) - set(names):
            raise ConfigError(f"config.json: hybrid_override_pattern has unknown letters {pattern!r}", field="model")
        kinds = [names[c] for c in pattern]
    elif isinstance(lt, list) and lt:
        kinds = [{"linear_attention": "mamba", "full_attention": "attention"}.get(str(x), str(x)) for x in lt]
    else:
        raise ConfigError("config.json: nemotron_h needs hybrid_override_pattern or layers_block_type", field="model")
    n = len(kinds)
    if n > 10_000:
        raise ConfigError("config.json: too many layers", field="model")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(cfg, h, heads)
    m_heads, m_hd = _positive(cfg, "mamba_num_heads"), _positive(cfg, "mamba_head_dim")
    groups, state = _positive(cfg, "n_groups", "mamba_n_groups", default=1), _positive(cfg, "ssm_state_size")
    kernel = _positive(cfg, "conv_kernel", "mamba_d_conv", default=4)
    use_bias, conv_bias = bool(cfg.get("use_bias", False)), bool(cfg.get("use_conv_bias", True))
    mlp_bias = bool(cfg.get("mlp_bias", False))
    latent = int(cfg.get("moe_latent_size") or 0)
    layers = []
    for kind in kinds:
        acc = _Acc()
        att: Attention | None = None
        mixer: StateMixer | None = None
        mlp: Mlp | None = None
        if kind == "mamba":
            mixer = mamba2_mixer(
                acc,
                h,
                m_heads * m_hd,
                m_heads,
                m_hd,
                groups,
                state,
                kernel,
                in_bias=use_bias,
                out_bias=use_bias,
                conv_bias=conv_bias,
            )
        elif kind == "attention":
            att = attention(acc, h, heads, kv, hd)
        elif kind == "mlp":
            mlp = _plain_mlp(acc, h, _int(cfg, "intermediate_size"), mlp_bias)
        elif kind == "moe":
            n_exp, e_inter = _int(cfg, "n_routed_experts"), _int(cfg, "moe_intermediate_size")
            width = latent or h
            acc.router += n_exp * h
            _experts(acc, width, e_inter, n_exp, gated=False)
            shared = _int(cfg, "moe_shared_expert_intermediate_size", default=0)  # built whatever n_shared_experts
            if shared:
                acc.lin(h, shared, mlp_bias)
                acc.down += acc.lin(shared, h, mlp_bias)
            if latent:
                acc.lin(h, latent, mlp_bias)
                acc.lin(latent, h, mlp_bias)
            mlp = Mlp(
                kind="moe",
                intermediate_size=e_inter,
                num_experts=n_exp,
                experts_per_token=_int(cfg, "num_experts_per_tok"),
                shared_intermediate_size=shared,
                expert_gated=False,
            )
        else:
            raise ConfigError(f"config.json: unknown Nemotron-H block {kind!r}", field="model")
        acc.small += h
        layers.append(acc.layer(att, mixer, mlp))
    n_m = kinds.count("mamba")
    return (
        layers,
        h,
        [
            f"{n_m} of {n} layers are Mamba-2 ({m_heads} heads × {m_hd} × {state} state per sequence), "
            f"{kinds.count('attention')} attention; the rest MLP / MoE"
        ],
    )


def falcon_h1(cfg: Config, mt: str) -> Built:
    """Falcon-H1: every layer runs attention and a Mamba-2 block side by side, then a gated MLP; so every layer
    keeps both a KV cache and a fixed SSM state. The Mamba width is mamba_d_ssm (or mamba_expand × hidden)."""
    h, n, heads, kv, hd = _decoder_dims(cfg)
    d_ssm = cfg.get("mamba_d_ssm")
    inner = int(d_ssm) if isinstance(d_ssm, int) and d_ssm > 0 else int(float(_get(cfg, "mamba_expand", default=2)) * h)
    m_heads, m_hd = _positive(cfg, "mamba_n_heads"), _positive(cfg, "mamba_d_head")
    groups, state = _positive(cfg, "mamba_n_groups", default=1), _positive(cfg, "mamba_d_state")
    kernel = _positive(cfg, "mamba_d_conv", default=4)
    inter = _int(cfg, "intermediate_size")
    att_bias, mlp_bias = bool(cfg.get("attention_bias", False)), bool(cfg.get("mlp_bias", False))
    layers = []
    for _ in range(n):
        acc = _Acc()
        att = attention(acc, h, heads, kv, hd, bias_qkv=att_bias, bias_o=att_bias)
        mixer = mamba2_mixer(
            acc,
            h,
            inner,
            m_heads,
            m_hd,
            groups,
            state,
            kernel,
            in_bias=bool(cfg.get("mamba_proj_bias", False)),
            out_bias=bool(cfg.get("projectors_bias", False)),
            conv_bias=bool(cfg.get("mamba_conv_bias", True)),
            norm=bool(cfg.get("mamba_rms_norm")),
        )
        mlp = _gated_mlp(acc, h, inter, mlp_bias)
        acc.small += 2 * h
        layers.append(acc.layer(att, mixer, mlp))
    return (
        layers,
        h,
        [
            f"every layer runs attention and Mamba-2 in parallel: a KV cache plus a fixed {m_heads} × "
            f"{m_hd} × {state} state per sequence"
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Llama 4


def llama4_text(cfg: Config, mt: str) -> Built:
    """Llama 4 Scout / Maverick text model: chunked attention (attention_chunk_size) on the layers that use RoPE,
    global NoPE attention on every `no_rope_layer_interval`-th; MoE layers (`moe_layers`, default every
    `interleave_moe_layer_step`-th) hold routed experts of `intermediate_size` plus one shared expert of the same
    width; dense layers an MLP of `intermediate_size_mlp`. The q/k norm is an L2 norm without weights."""
    h, n, heads, kv, hd = _decoder_dims(cfg)
    chunk = cfg.get("attention_chunk_size")
    chunk = int(chunk) if isinstance(chunk, int) and not isinstance(chunk, bool) and chunk > 0 else None
    every = _positive(cfg, "no_rope_layer_interval", default=4)
    lt = cfg.get("layer_types")
    if isinstance(lt, list) and len(lt) >= n:
        chunked = [str(x) == "chunked_attention" for x in lt[:n]]
    else:
        nope = cfg.get("no_rope_layers")
        uses_rope = (
            [bool(x) for x in nope[:n]]
            if isinstance(nope, list) and len(nope) >= n
            else [(i + 1) % every != 0 for i in range(n)]
        )
        chunked = [r and chunk is not None for r in uses_rope]
    step = _positive(cfg, "interleave_moe_layer_step", default=1)
    moe_layers = cfg.get("moe_layers")
    moe_set = {int(x) for x in moe_layers} if isinstance(moe_layers, list) else set(range(step - 1, n, step))
    n_exp = _int(cfg, "num_local_experts")
    topk = _int(cfg, "num_experts_per_tok", default=1)
    inter, inter_mlp = _int(cfg, "intermediate_size"), _int(cfg, "intermediate_size_mlp")
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        win = chunk if chunked[i] else None
        att = attention(acc, h, heads, kv, hd, bias_qkv=bias, bias_o=bias, window=win, chunk=win)
        mlp = moe(acc, h, inter, n_exp, topk, shared_inter=inter) if i in moe_set else _gated_mlp(acc, h, inter_mlp)
        acc.small += 2 * h
        layers.append(acc.layer(att, None, mlp))
    return (
        layers,
        h,
        [
            f"{sum(chunked)} of {n} layers use chunked attention ({chunk} tokens; their cache keeps "
            "at most one chunk), the rest global attention without RoPE"
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Kimi-Linear


def kimi_delta_attention(acc: _Acc, h: int, heads: int, hd: int, kernel: int) -> StateMixer:
    """Kimi delta attention: q, k, v projections (heads × hd each), a depthwise conv over them (no bias), the
    forget gate (dt_bias per channel, A_log per head, low-rank f_a h -> hd, f_b hd -> heads·hd), beta (h -> heads),
    the low-rank output gate (g_a, g_b), an RMSNorm of hd and o_proj. State: conv_dim × kernel and
    heads × hd × hd."""
    p = heads * hd
    for _ in range(3):
        acc.lin(h, p)
    acc.small += 3 * p * kernel + p + heads + hd
    acc.lin(h, hd)
    acc.lin(hd, p)
    acc.lin(h, heads)
    acc.lin(h, hd)
    acc.lin(hd, p)
    acc.lin(p, h)
    return StateMixer(kind="kimi_delta", state_elems=3 * p * kernel + heads * hd * hd, inner_size=3 * p)


def kimi_linear(cfg: Config, mt: str) -> Built:
    """Kimi-Linear (KimiLinearForCausalLM): Kimi delta attention layers (linear_attn_config.kda_layers, 1-indexed)
    and MLA full-attention layers (full_attn_layers), then a dense MLP (first_k_dense_replace) or a routed MoE with
    shared experts; the routing bias is a buffer."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    lac = cfg.get("linear_attn_config") if isinstance(cfg.get("linear_attn_config"), dict) else {}
    assert isinstance(lac, dict)
    lt = cfg.get("layer_types")
    if not (isinstance(lt, list) and len(lt) >= n):
        full = lac.get("full_attn_layers")
        if isinstance(full, list):
            fset = {int(x) - 1 for x in full}
            lt = ["full_attention" if i in fset else "linear_attention" for i in range(n)]
        else:
            lt = ["full_attention" if i and i % 4 == 0 else "linear_attention" for i in range(n)]
    lh = int(lac.get("num_heads") or _positive(cfg, "linear_num_heads"))
    lhd = int(lac.get("head_dim") or _positive(cfg, "linear_head_dim"))
    kernel = int(lac.get("short_conv_kernel_size") or _positive(cfg, "linear_conv_kernel_dim", default=4))
    mlp_types = cfg.get("mlp_layer_types")
    first_dense = _int(cfg, "first_k_dense_replace", default=1)
    sparse = (
        [str(x) == "sparse" for x in mlp_types[:n]]
        if isinstance(mlp_types, list) and len(mlp_types) >= n
        else [i >= first_dense for i in range(n)]
    )
    q_lora = int(cfg.get("q_lora_rank") or 0)
    kv_lora, rope = _int(cfg, "kv_lora_rank"), _int(cfg, "qk_rope_head_dim")
    nope, vdim = _int(cfg, "qk_nope_head_dim"), _int(cfg, "v_head_dim")
    n_exp, moe_inter = _int(cfg, "num_experts"), _int(cfg, "moe_intermediate_size")
    topk = _int(cfg, "num_experts_per_token", "num_experts_per_tok")
    shared = _int(cfg, "num_shared_experts", default=0) * moe_inter
    layers = []
    for i in range(n):
        acc = _Acc()
        att: Attention | None = None
        mixer: StateMixer | None = None
        if str(lt[i]) == "linear_attention":
            mixer = kimi_delta_attention(acc, h, lh, lhd, kernel)
        else:
            if q_lora:
                acc.lin(h, q_lora)
                acc.small += q_lora
                acc.lin(q_lora, heads * (nope + rope))
            else:
                acc.lin(h, heads * (nope + rope))
            acc.lin(h, kv_lora + rope)
            acc.small += kv_lora
            acc.v_proj += acc.lin(kv_lora, heads * (nope + vdim))
            acc.lin(heads * vdim, h)
            att = Attention(
                kind="mla",
                num_heads=heads,
                num_kv_heads=heads,
                head_dim=nope + rope,
                v_head_dim=vdim,
                kv_lora_rank=kv_lora,
                q_lora_rank=q_lora,
                rope_head_dim=rope,
            )
        mlp = (
            moe(acc, h, moe_inter, n_exp, topk, shared_inter=shared)
            if sparse[i]
            else _gated_mlp(acc, h, _int(cfg, "intermediate_size"))
        )
        acc.small += 2 * h
        layers.append(acc.layer(att, mixer, mlp))
    n_lin = sum(layer.mixer is not None for layer in layers)
    return (
        layers,
        h,
        [
            f"{n_lin} of {n} layers are Kimi delta attention (a fixed conv + {lh}×{lhd}×{lhd} state "
            f"per sequence); the others MLA with a {kv_lora}+{rope} latent cache"
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Gemma 3n / Gemma 4: per-layer embeddings and KV sharing


def _kv_shared(types: list[str], n_shared: int) -> list[int | None]:
    """For each layer, the earlier layer whose cache it reuses (None: it keeps its own). The last `n_shared` layers
    reuse the cache of the last non-shared layer of the same attention type, as transformers' kv_sharing_modes."""
    n = len(types)
    first = n - n_shared
    if n_shared <= 0:
        return [None] * n
    out: list[int | None] = [None] * first
    for i in range(first, n):
        donors = [j for j in range(first) if types[j] == types[i]]
        if not donors:
            raise ConfigError(
                f"config.json: layer {i} shares the KV cache of a {types[i]} layer, but none of the "
                f"first {first} layers is one",
                field="model",
            )
        out.append(donors[-1])
    return out


def per_layer_embedding_params(cfg: Config, h: int, n: int) -> tuple[int, int]:
    """(embedding, other) parameters of Gemma 3n / 4's per-layer inputs: embed_tokens_per_layer
    (vocab_size_per_layer_input × layers·p), per_layer_model_projection (h -> layers·p) and its RMSNorm of p."""
    p = _int(cfg, "hidden_size_per_layer_input", default=0)
    if not p:
        return 0, 0
    vocab_pl = _int(cfg, "vocab_size_per_layer_input", default=_int(cfg, "vocab_size"))
    return vocab_pl * n * p, h * n * p + p


def gemma_per_layer(cfg: Config, mt: str) -> Built:
    """Gemma 3n (text) and Gemma 4 (text): four norms per layer, q/k norms (v norm without weights), sliding and
    full layers; each layer adds its per-layer input (gate h -> p, projection p -> h, norm). The last
    `num_kv_shared_layers` layers have no k/v projections and reuse an earlier layer's cache.
    Gemma 3n adds AltUp (coefficients, router) and LAuReL (rank-r residual) per layer; Gemma 4 full layers use
    `global_head_dim` (and `num_global_key_value_heads` with k = v), optionally a MoE block beside the MLP and a
    double-wide MLP on KV-shared layers."""
    h, n, heads, kv, hd = _decoder_dims(cfg)
    window = _sliding_window_of(cfg)
    lt = cfg.get("layer_types")
    if isinstance(lt, list) and len(lt) >= n:
        types = [str(x) for x in lt[:n]]
    else:
        every = traits_of(mt).window_every
        types = ["sliding_attention" if (i + 1) % every else "full_attention" for i in range(n)]
    if mt == "gemma4_text":
        types[-1] = "full_attention"  # transformers forces the last layer to full attention
    shared = _kv_shared(types, _int(cfg, "num_kv_shared_layers", default=0))
    p = _int(cfg, "hidden_size_per_layer_input", default=0)
    inter = cfg.get("intermediate_size")
    bias = bool(cfg.get("attention_bias", False))
    k_eq_v = bool(cfg.get("attention_k_eq_v", False))
    plc = cfg.get("per_layer_config")
    g_hd = _int(cfg, "global_head_dim", default=512)
    g_kv = _int(cfg, "num_global_key_value_heads", default=0) if k_eq_v else 0
    layers = []
    for i in range(n):
        acc = _Acc()
        full = types[i] == "full_attention"
        l_hd, l_kv = hd, kv
        if mt == "gemma4_text":
            over: Any = None
            if isinstance(plc, dict):
                over = plc.get(str(i)) or plc.get(f"{i:02d}") or plc.get(i)
            elif full:
                over = {"head_dim": g_hd, **({"num_key_value_heads": g_kv} if g_kv else {})}
            if isinstance(over, dict):
                l_hd = int(over.get("head_dim", hd))
                l_kv = int(over.get("num_key_value_heads", kv))
        acc.lin(h, heads * l_hd, bias)  # q
        acc.small += l_hd  # q_norm
        if shared[i] is None:
            acc.lin(h, l_kv * l_hd, bias)  # k
            if not (mt == "gemma4_text" and k_eq_v and full):
                acc.v_proj += acc.lin(h, l_kv * l_hd, bias)
            acc.small += l_hd  # k_norm
        acc.lin(heads * l_hd, h, bias)
        att = Attention(
            kind="mha",
            num_heads=heads,
            num_kv_heads=l_kv,
            head_dim=l_hd,
            v_head_dim=l_hd,
            sliding_window=window if not full else None,
            shares_kv_of=shared[i],
        )
        width = _per_layer(inter, i, "intermediate_size") if isinstance(inter, list) else _int(cfg, "intermediate_size")
        if mt == "gemma4_text" and cfg.get("use_double_wide_mlp") and shared[i] is not None:
            width *= 2
        mlp = _gated_mlp(acc, h, width)
        acc.small += 4 * h
        if p:
            acc.lin(h, p)
            acc.lin(p, h)
            acc.small += h
        if mt == "gemma3n_text":
            a = _positive(cfg, "altup_num_inputs", default=4)
            acc.small += h + a * a + a * a * a + h  # correct_output_scale, correction/prediction coefs, router norm
            acc.lin(h, a)  # modality_router
            r = _int(cfg, "laurel_rank", default=64)
            acc.lin(h, r)
            acc.lin(r, h)
            acc.small += h
        if mt == "gemma4_text" and cfg.get("enable_moe_block"):
            e, e_inter = _positive(cfg, "num_experts"), _positive(cfg, "moe_intermediate_size")
            acc.router += e * h + h + e  # proj, scale, per_expert_scale
            _experts(acc, h, e_inter, e)
            acc.small += 3 * h  # post_feedforward_layernorm_1/_2, pre_feedforward_layernorm_2
            mlp = Mlp(
                kind="moe",
                intermediate_size=e_inter,
                num_experts=e,
                experts_per_token=_int(cfg, "top_k_experts", default=1),
                shared_intermediate_size=width,
            )
        layers.append(acc.layer(att, None, mlp))
    n_sh = sum(x is not None for x in shared)
    notes = [f"{sum(t == 'sliding_attention' for t in types)} of {n} layers use a sliding window of {window} tokens"]
    if n_sh:
        notes.append(f"the last {n_sh} layers reuse earlier layers' KV cache and keep none of their own")
    if p:
        notes.append(
            f"per-layer embeddings: {p} extra dims per layer and token, looked up in a "
            f"{_int(cfg, 'vocab_size_per_layer_input', default=0):,}-row table"
        )
    return layers, h, notes


def _sliding_window_of(cfg: Config) -> int | None:
    w = cfg.get("sliding_window")
    return int(w) if isinstance(w, int) and not isinstance(w, bool) and w > 0 else None


def model_level_params(cfg: Config, mt: str, h: int, n: int) -> tuple[int, int]:
    """(embedding-like, other) parameters outside the layers beyond embed/final norm/head: Gemma 3n / 4's per-layer
    embedding table and projection, Gemma 3n's AltUp projections ((altup_num_inputs - 1) × 2 matrices h × h)."""
    if mt not in ("gemma3n_text", "gemma4_text"):
        return 0, 0
    emb, other = per_layer_embedding_params(cfg, h, n)
    if mt == "gemma3n_text":
        other += 2 * (_positive(cfg, "altup_num_inputs", default=4) - 1) * h * h
    return emb, other


# ---------------------------------------------------------------------------------------------------------------
# vision towers of multimodal checkpoints (counted into ModelSpec.extra_params)

_QWEN_VISION_DEFAULTS: dict[str, Any] = {
    "depth": 27,
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "in_channels": 3,
    "patch_size": 16,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "out_hidden_size": 3584,
    "num_position_embeddings": 2304,
}


def qwen3_vl_vision_params(vc: Config, with_deepstack: bool) -> int:
    """Qwen3-VL / Qwen3.5 vision tower (transformers Qwen3VLVisionModel): a Conv3d patch embedding (bias), learned
    position embeddings, `depth` ViT blocks (two LayerNorms, fused qkv and proj with bias, a plain MLP with bias),
    the patch merger (LayerNorm over hidden, then two Linears over hidden × merge²) and, in Qwen3-VL, one
    "deepstack" merger per deepstack_visual_indexes entry (its LayerNorm over hidden × merge²). Defaults are the
    config class's (a published config.json spells them out)."""
    v = {**_QWEN_VISION_DEFAULTS, **{k: x for k, x in vc.items() if x is not None}}
    d, f, depth = _positive(v, "hidden_size"), _positive(v, "intermediate_size"), _int(v, "depth")
    p, t, c = _positive(v, "patch_size"), _positive(v, "temporal_patch_size"), _positive(v, "in_channels")
    m, out = _positive(v, "spatial_merge_size"), _positive(v, "out_hidden_size")
    npos = _int(v, "num_position_embeddings")
    big = d * m * m
    block = 4 * d + 3 * d * d + 3 * d + d * d + d + d * f + f + f * d + d
    merger = big * big + big + big * out + out
    deep = v.get("deepstack_visual_indexes", [8, 16, 24]) if with_deepstack else []
    n_deep = len(deep) if isinstance(deep, list) else 0
    return c * t * p * p * d + d + npos * d + depth * block + 2 * d + merger + n_deep * (2 * big + merger)


def llama4_vision_params(vc: Config, text_hidden: int) -> int:
    """Llama 4's vision encoder and projector (Llama4VisionModel + Llama4MultiModalProjector): a class embedding,
    (patches + 1) position embeddings, a bias-free linear patch embedding, LayerNorms before and after, ViT layers
    (q/k/v/o and a plain MLP, all with bias, two LayerNorms), the pixel-shuffle adapter (fc1 intermediate ->
    projector_input_dim, fc2 projector_output_dim², no bias) and the projector (vision_output_dim -> text hidden)."""
    d, f, n = _positive(vc, "hidden_size"), _positive(vc, "intermediate_size"), _int(vc, "num_hidden_layers")
    p, img, c = _positive(vc, "patch_size"), _positive(vc, "image_size"), _positive(vc, "num_channels", default=3)
    patches = (img // p) ** 2
    layer = 4 * (d * d + d) + d * f + f + f * d + d + 4 * d
    adapter = f * _positive(vc, "projector_input_dim") + _positive(vc, "projector_output_dim") ** 2
    return (
        d
        + (patches + 1) * d
        + c * p * p * d
        + 4 * d
        + n * layer
        + adapter
        + _positive(vc, "vision_output_dim") * text_hidden
    )


def kimi_k25_vision_params(vc: Config, outer: Config, text_hidden: int) -> int:
    """Kimi-K2.5's MoonViT tower and projector (transformers Kimi_K25VisionModel + Kimi_K25MultimodalProjection): a
    Conv2d patch embedding with bias, a learned pos_emb_height × pos_emb_width × hidden position grid (the time
    embedding is a fixed sinusoid buffer), ViT layers (two LayerNorms, q/k/v/o with bias, a plain MLP with bias), a
    final LayerNorm; the projector normalises each patch (LayerNorm over projection_hidden_size), then two Linears
    over the hidden × merge_kernel patches it concatenates (in_proj square, out_proj to the text width). The
    remote-code config.json spells the tower's sizes vt_* and init_pos_emb_*; transformers reads either."""
    d = _positive(vc, "hidden_size", "vt_hidden_size", default=1152)
    f = _positive(vc, "intermediate_size", "vt_intermediate_size", default=4304)
    n = _int(vc, "num_hidden_layers", "vt_num_hidden_layers", default=27)
    p = _positive(vc, "patch_size", default=14)
    grid = _int(vc, "pos_emb_height", "init_pos_emb_height", default=64) * _int(
        vc, "pos_emb_width", "init_pos_emb_width", default=64
    )
    mk = vc.get("merge_kernel_size") or [2, 2]
    if not (isinstance(mk, list) and len(mk) == 2 and all(isinstance(x, int) and x > 0 for x in mk)):
        raise ConfigError("config.json: vision_config.merge_kernel_size must be two positive integers", field="model")
    big = d * int(mk[0]) * int(mk[1])
    proj_in = _positive(outer, "projection_hidden_size", default=_int(vc, "mm_hidden_size", default=1152))
    layer = 4 * d + 4 * (d * d + d) + d * f + f + f * d + d
    tower = 3 * p * p * d + d + grid * d + n * layer + 2 * d
    return tower + 2 * proj_in + big * big + big + big * text_hidden + text_hidden


def gemma4_vision_params(vc: Config, text_hidden: int) -> int:
    """Gemma 4's vision encoder (transformers Gemma4VisionModel) and its embedder: a bias-free patch projection
    (3·patch² -> hidden), a (2, position_embedding_size, hidden) table of x and y position embeddings, layers of
    q/k/v/o without bias (q and k RMS-normed per head, v normed without weight), a gated MLP and four RMSNorms; the
    pooler and standardization hold no parameters. embed_vision: a weightless RMSNorm and one bias-free Linear to
    the text width."""
    d, f, n = _positive(vc, "hidden_size"), _positive(vc, "intermediate_size"), _int(vc, "num_hidden_layers")
    heads = _positive(vc, "num_attention_heads")
    kv = _int(vc, "num_key_value_heads", default=heads) or heads
    hd = _head_dim(vc, d, heads)
    p, pos = _positive(vc, "patch_size"), _positive(vc, "position_embedding_size")
    layer = d * heads * hd + 2 * d * kv * hd + heads * hd * d + 2 * hd + 3 * d * f + 4 * d
    return 3 * p * p * d + 2 * pos * d + n * layer + d * text_hidden


def gemma4_audio_params(ac: Config, text_hidden: int) -> int:
    """Gemma 4's audio encoder (transformers Gemma4AudioModel, E2B / E4B) and its embedder: two bias-free 3×3
    Conv2d subsampling layers with weight-only LayerNorms, a bias-free input projection from
    (channels₀ // 4) · channels₁; conformer layers of two feed-forward blocks (h -> 4h -> h, two RMSNorms each),
    attention (q/k/v/post and a relative-position k projection, bias-free, plus a per-dim scale of head_dim), a light
    convolution block (h -> 2h gate, a depthwise conv of conv_kernel_size, h -> h, two RMSNorms) and three RMSNorms;
    the output projection (with bias) to output_proj_dims; embed_audio a weightless norm and a bias-free Linear to
    the text width."""
    h, n = _positive(ac, "hidden_size", default=1024), _int(ac, "num_hidden_layers", default=12)
    heads = _positive(ac, "num_attention_heads", default=8)
    hd = h // heads
    ch = ac.get("subsampling_conv_channels") or [128, 32]
    if not (isinstance(ch, list) and len(ch) == 2 and all(isinstance(x, int) and x > 0 for x in ch)):
        raise ConfigError(
            "config.json: audio_config.subsampling_conv_channels must be two positive integers", field="model"
        )
    c0, c1 = int(ch[0]), int(ch[1])
    kernel = _positive(ac, "conv_kernel_size", default=5)
    out = _positive(ac, "output_proj_dims", default=1536)
    subsample = 9 * c0 + c0 + 9 * c0 * c1 + c1 + (c0 // 4) * c1 * h
    ffn = 2 * (8 * h * h + 2 * h)
    attn = 4 * h * heads * hd + h * h + hd  # q, k, v and relative_k_proj; post; per_dim_scale
    lconv = 2 * h * h + h * h + h * kernel + 2 * h
    return subsample + n * (ffn + attn + lconv + 3 * h) + h * out + out + out * text_hidden


def pixtral_params(vc: Config) -> int:
    """Pixtral's vision encoder (transformers PixtralVisionModel): a bias-free Conv2d patch embedding, ln_pre, and
    layers of q/k/v/o without bias, a gated MLP without bias and two RMSNorms (rotary positions, no table)."""
    d, f, n = _positive(vc, "hidden_size"), _positive(vc, "intermediate_size"), _int(vc, "num_hidden_layers")
    p, c = _positive(vc, "patch_size"), _positive(vc, "num_channels", default=3)
    return c * p * p * d + d + n * (4 * d * d + 3 * d * f + 2 * d)


def mistral3_projector_params(outer: Config, d: int, text_hidden: int) -> int:
    """Mistral3MultiModalProjector: an RMSNorm over the vision width, the patch merger (merge² patches -> one,
    bias-free), linear_1 (vision width × feature layers -> text) and linear_2 (text -> text), both with a bias when
    multimodal_projector_bias."""
    m = _positive(outer, "spatial_merge_size", default=2)
    layers = outer.get("vision_feature_layer", -1)
    n_feat = len(layers) if isinstance(layers, list) else 1
    bias = text_hidden if outer.get("multimodal_projector_bias", False) else 0
    return d + d * m * m * d + d * n_feat * text_hidden + bias + text_hidden * text_hidden + bias


def siglip2_params(vc: Config) -> int:
    """SigLIP 2 (NaFlex) vision tower (transformers Siglip2VisionModel): a Linear patch embedding with bias over
    channels·patch², num_patches learned positions, layers of two LayerNorms, q/k/v/out with bias and a plain MLP
    with bias, the post LayerNorm, and (vision_use_head) the attention-pooling head: a probe, nn.MultiheadAttention
    (packed in-projection with bias, out-projection with bias), a LayerNorm and an MLP."""
    d, f, n = _positive(vc, "hidden_size"), _positive(vc, "intermediate_size"), _int(vc, "num_hidden_layers")
    p, c = _positive(vc, "patch_size"), _positive(vc, "num_channels", default=3)
    mlp = d * f + f + f * d + d
    total = c * p * p * d + d + _positive(vc, "num_patches", default=256) * d
    total += n * (4 * d + 4 * (d * d + d) + mlp) + 2 * d
    if vc.get("vision_use_head", True):
        total += d + 3 * d * d + 3 * d + d * d + d + 2 * d + mlp
    return total


def lfm2_vl_projector_params(outer: Config, d: int, text_hidden: int) -> int:
    """Lfm2VlMultiModalProjector: pixel unshuffle by downsample_factor (d·factor² channels), an optional LayerNorm,
    linear_1 (-> projector_hidden_size) and linear_2 (-> text), with biases when projector_bias."""
    width = d * _positive(outer, "downsample_factor", default=2) ** 2
    hidden = _positive(outer, "projector_hidden_size", default=2560)
    bias = bool(outer.get("projector_bias", True))
    norm = 2 * width if outer.get("projector_use_layernorm", True) else 0
    return norm + width * hidden + (hidden if bias else 0) + hidden * text_hidden + (text_hidden if bias else 0)


def glm4v_vision_params(vc: Config) -> int:
    """GLM-4.5V / GLM-4.6V vision tower (transformers Glm4vMoeVisionModel): learned positions ((image/patch)²), a
    Conv3d patch embedding with bias, blocks of two RMSNorms, fused qkv (bias when attention_bias) and a bias-free
    proj, a gated bias-free MLP of out_hidden_size; post_layernorm, post_conv_layernorm, a Conv2d downsample
    (merge × merge, hidden -> out_hidden_size, bias) and the merger (square proj, LayerNorm, gated MLP of
    intermediate_size, all bias-free)."""
    d, depth = _positive(vc, "hidden_size", default=1536), _int(vc, "depth", default=24)
    out, f = _positive(vc, "out_hidden_size", default=4096), _positive(vc, "intermediate_size", default=13696)
    p, t = _positive(vc, "patch_size", default=14), _positive(vc, "temporal_patch_size", default=2)
    c, m = _positive(vc, "in_channels", default=3), _positive(vc, "spatial_merge_size", default=2)
    img = _positive(vc, "image_size", default=336)
    qkv_bias = 3 * d if vc.get("attention_bias", False) else 0
    block = 2 * d + 3 * d * d + qkv_bias + d * d + 3 * d * out
    merger = out * out + 2 * out + 3 * out * f
    return (img // p) ** 2 * d + c * t * p * p * d + d + depth * block + 2 * d + d * out * m * m + out + merger


VISION_TOWERS = {"qwen3_vl": True, "qwen3_vl_moe": True, "qwen3_5": False, "qwen3_5_moe": False}
COUNTED_AUDIO = {"gemma4"}  # wrappers whose audio encoder vision_params counts too
# multimodal wrappers whose towers vram does not count: what is missing, said in the notes
# multimodal wrappers whose towers config.json cannot describe: transformers and vLLM load them, so an estimate for
# those engines is refused without the checkpoint's tensor bytes (ResolvedModel.require_modelled). Gemma 3n's vision
# tower is timm's `mobilenetv5_300m_enc`, whose blocks are fixed in timm's code, not in vision_config; its audio
# encoder (Gemma3nAudioEncoder, a USM conformer) and the two multimodal embedders come with it.
UNCOUNTED_TOWERS = {
    "gemma3n": "the MobileNetV5 vision tower (timm mobilenetv5_300m_enc, defined in timm's code, not in config.json) "
    "and the USM audio encoder (Gemma3nAudioEncoder) with their multimodal embedders"
}


def vision_params(outer: Config) -> tuple[int, str]:
    """(parameters, description) of the vision tower + projector of a multimodal wrapper vram describes, else
    (0, ""). Remote-code configs may spell the model_type with hyphens (LFM2-VL's "lfm2-vl")."""
    mt = str(outer.get("model_type") or "").replace("-", "_")
    vc = outer.get("vision_config")
    if mt in VISION_TOWERS and isinstance(vc, dict):
        return qwen3_vl_vision_params(vc, VISION_TOWERS[mt]), f"{mt} vision tower and patch merger"
    tc = outer.get("text_config")
    if not (isinstance(vc, dict) and isinstance(tc, dict)):
        return 0, ""
    if mt == "llama4":
        return llama4_vision_params(vc, _int(tc, "hidden_size")), "Llama 4 vision encoder and projector"
    if mt == "kimi_k25":
        return kimi_k25_vision_params(vc, outer, _int(tc, "hidden_size")), "MoonViT vision tower and projector"
    if mt == "gemma4":
        text_h = _int(tc, "hidden_size")
        ac = outer.get("audio_config")
        if isinstance(ac, dict):
            return gemma4_vision_params(vc, text_h) + gemma4_audio_params(
                ac, text_h
            ), "Gemma 4 vision encoder, audio encoder and their embedders"
        return gemma4_vision_params(vc, text_h), "Gemma 4 vision encoder and embedder"
    if mt == "mistral3":
        d = _positive(vc, "hidden_size")
        return pixtral_params(vc) + mistral3_projector_params(
            outer, d, _int(tc, "hidden_size")
        ), "Pixtral vision encoder and projector"
    if mt == "lfm2_vl":
        d = _positive(vc, "hidden_size")
        return siglip2_params(vc) + lfm2_vl_projector_params(
            outer, d, _int(tc, "hidden_size")
        ), "SigLIP 2 vision tower and projector"
    if mt == "glm4v_moe":
        return glm4v_vision_params(vc), "GLM-4.5V vision tower and merger"
    return 0, ""


def uncounted_towers(outer: Config, counted: bool) -> str:
    """What of a multimodal checkpoint config.json alone does not count ("" when nothing is left out)."""
    mt = str(outer.get("model_type") or "").replace("-", "_")
    if mt in UNCOUNTED_TOWERS:
        return UNCOUNTED_TOWERS[mt]
    vision = isinstance(outer.get("vision_config"), dict) and not counted
    audio = isinstance(outer.get("audio_config"), dict) and not (counted and mt in COUNTED_AUDIO)
    if vision and audio:
        return "the vision tower and the audio encoder"
    if vision:
        return "the vision tower"
    return "the audio encoder" if audio else ""


FAMILIES: dict[str, Any] = {
    "glm4_moe": glm4_moe,
    "ernie4_5_moe": ernie4_5_moe,
    "hunyuan_v1_moe": hunyuan_moe,
    "minimax_m2": minimax_m2,
    "qwen3_next": qwen3_next,
    "qwen3_5_text": qwen3_next,
    "qwen3_5_moe_text": qwen3_next,
    "granitemoehybrid": granite_hybrid,
    "nemotron_h": nemotron_h,
    "falcon_h1": falcon_h1,
    "llama4_text": llama4_text,
    "kimi_linear": kimi_linear,
    "gemma3n_text": gemma_per_layer,
    "gemma4_text": gemma_per_layer,
    "glm4v_moe_text": glm4_moe,  # GLM-4.5V / 4.6V language model: GLM-4.5-Air's network, other config defaults
}

__all__ = ["FAMILIES", "attention", "model_level_params", "moe", "uncounted_towers", "vision_params"]
