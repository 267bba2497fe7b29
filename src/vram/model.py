"""ModelSpec: what a Hugging Face config.json says about a decoder-only model's shapes, with exact parameter counts.

Every architecture is reduced to the same description: an embedding, a list of layers (each with a token mixer —
attention, multi-head latent attention, a short convolution or a state-space block — and an MLP that is dense or a
mixture of experts), a final norm and an output head. Parameter counts are computed tensor by tensor, the way the
transformers implementation builds the model, and are exact to the unit (tests check them against counts of the
real modules).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache, cached_property

from .architectures import FAMILIES as _NEW_FAMILIES
from .architectures import UNCOUNTED_TOWERS as UNSUPPORTED_TOWERS
from .architectures import model_level_params, uncounted_towers, vision_params
from .dtypes import QuantScheme, stored_scheme, with_hf_quant_config
from .errors import ConfigError, UnsupportedArchitecture
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
from .records import field, record
from .traits import traits_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from pathlib import Path
    from typing import Any

    from .layers import Config


@record(frozen=True)
class ModelSpec:
    name: str
    model_type: str
    architecture: str
    hidden_size: int
    vocab_size: int
    layers: tuple[Layer, ...]
    embed_params: int
    head_params: int  # 0 when tied to the embedding
    final_params: int  # final norm(s) and other model-level small tensors
    tie_word_embeddings: bool
    max_position_embeddings: int | None
    torch_dtype: str
    rope_dim: int  # width of the cos/sin tables computed per token
    extra_params: int = 0  # vision tower / projector of a multimodal checkpoint
    use_cache: bool = True  # config.use_cache: generate() keeps a cache (False: it re-runs the whole sequence)
    logit_softcap: bool = False  # final_logit_softcapping (Gemma 2): tanh over the logits
    extra_description: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    mtp_params: int = 0  # multi-token-prediction layers the checkpoint stores but transformers does not build
    stored_scheme: QuantScheme | None = None  # the checkpoint's own quantization (config.json quantization_config)
    # parts of the checkpoint config.json cannot describe (Gemma 3n's timm vision tower and audio encoder): the
    # engines that load them refuse to estimate without the checkpoint's tensor bytes (ResolvedModel.require_modelled)
    unmodelled: str = ""

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @cached_property
    def params(self) -> int:
        return (
            self.embed_params
            + self.head_params
            + self.final_params
            + self.extra_params
            + sum(layer.params for layer in self.layers)
        )

    @property
    def checkpoint_params(self) -> int:
        """What the published checkpoint stores: the model plus its multi-token-prediction layers."""
        return self.params + self.mtp_params

    @property
    def text_params(self) -> int:
        return self.params - self.extra_params

    @cached_property
    def active_params(self) -> int:
        """Parameters one token touches: routed experts count only `experts_per_token` of `num_experts`."""
        total = self.params
        for layer in self.layers:
            m = layer.mlp
            if m is not None and m.kind == "moe" and m.num_experts:
                total -= layer.expert_params - layer.expert_params * m.experts_per_token // m.num_experts
        return total

    @property
    def is_moe(self) -> bool:
        return any(layer.mlp is not None and layer.mlp.kind == "moe" for layer in self.layers)

    @cached_property
    def distinct_layers(self) -> tuple[tuple[Layer, int], ...]:
        """Each distinct layer once, with how many times it occurs (equal layers are interned when parsing)."""
        first: dict[int, Layer] = {}
        counts: dict[int, int] = {}
        for layer in self.layers:
            first.setdefault(id(layer), layer)
            counts[id(layer)] = counts.get(id(layer), 0) + 1
        return tuple((first[k], n) for k, n in counts.items())

    @cached_property
    def has_state_mixers(self) -> bool:
        return any(layer.mixer is not None for layer, _ in self.distinct_layers)

    @cached_property
    def sliding_windows(self) -> frozenset[int]:
        return frozenset(
            layer.attention.sliding_window
            for layer, _ in self.distinct_layers
            if layer.attention is not None and layer.attention.sliding_window
        )

    @cached_property
    def attention_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.attention is not None)


# Alternative spellings of one setting: when a config uses any of them, defaults for the others must not apply.
KEY_ALIASES: tuple[frozenset[str], ...] = tuple(
    frozenset(g)
    for g in (
        ("num_local_experts", "num_experts", "n_routed_experts"),
        ("num_attention_heads", "n_head", "num_heads"),
        ("num_hidden_layers", "n_layer", "num_layers"),
        ("hidden_size", "n_embd", "d_model"),
        ("intermediate_size", "ffn_hidden_size", "n_inner", "block_ff_dim"),
        ("num_key_value_heads", "num_kv_heads"),
        ("num_experts_per_tok", "moe_topk", "experts_per_token"),
        ("max_position_embeddings", "n_positions"),
    )
)


def _with_defaults(mt: str, cfg: Config) -> dict[str, Any]:
    defaults = dict(_defaults().get(mt, {}))
    for group in KEY_ALIASES:
        if any(k in cfg and cfg[k] is not None for k in group):
            for k in group:
                defaults.pop(k, None)
    return {**defaults, **cfg}


def _dtype(cfg: Config) -> str:
    d = _get(cfg, "dtype", "torch_dtype", default="bfloat16")
    return str(d).removeprefix("torch.") if isinstance(d, str) else "bfloat16"


def _layer_types(cfg: Config, n: int, model_type: str) -> list[str]:
    """Per-layer attention kind: "full_attention", "sliding_attention", "conv", "mamba", ... as transformers does."""
    lt = cfg.get("layer_types")
    if isinstance(lt, list) and len(lt) >= n:
        return [str(x) for x in lt[:n]]
    if isinstance(lt, list):
        raise ConfigError(f"config.json: layer_types has {len(lt)} entries for {n} layers", field="model")
    t = traits_of(model_type)
    if t.windows == "every":
        pattern = t.window_every
        if t.window_pattern_key:
            pattern = int(cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or pattern)
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    window = cfg.get("sliding_window")
    if t.windows == "qwen" and cfg.get("use_sliding_window") and window:
        limit = _int(cfg, "max_window_layers", default=0)
        return ["sliding_attention" if i >= limit else "full_attention" for i in range(n)]
    if t.windows == "all" and window:
        return ["sliding_attention"] * n
    return ["full_attention"] * n


def _sliding_window(cfg: Config) -> int | None:
    w = cfg.get("sliding_window")
    return int(w) if isinstance(w, int | float) and not isinstance(w, bool) and w > 0 else None


def _std_attention(
    acc: _Acc, cfg: Config, h: int, *, bias_qkv: bool, bias_o: bool, window: int | None, fused_qkv: bool = False
) -> Attention:
    heads = _positive(cfg, "num_attention_heads", "n_head", "num_heads")
    kv = _int(cfg, "num_key_value_heads", "num_kv_heads", default=heads)
    if kv == 0:
        kv = heads
    hd = _get(cfg, "head_dim", default=None)
    head_dim = int(hd) if isinstance(hd, int) and hd > 0 else h // heads
    if head_dim == 0:
        raise ConfigError(f"config.json: hidden_size {h} is smaller than num_attention_heads {heads}", field="model")
    start = acc.linear
    acc.lin(h, heads * head_dim, bias_qkv)
    acc.lin(h, kv * head_dim, bias_qkv)
    acc.v_proj += acc.lin(h, kv * head_dim, bias_qkv)
    acc.attn_o += acc.lin(heads * head_dim, h, bias_o)
    acc.attn += acc.linear - start
    del fused_qkv  # same parameter count whether q/k/v are one matrix or three
    return Attention(
        kind="mha", num_heads=heads, num_kv_heads=kv, head_dim=head_dim, v_head_dim=head_dim, sliding_window=window
    )


# ---------------------------------------------------------------------------------------------------------------
# families


def _llama_like(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    """Llama, Mistral, Qwen2/3, Yi, Falcon3, SmolLM, Gemma 2/3, Phi-3, OLMo 2, Cohere, MoE variants."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    inter = _int(cfg, "intermediate_size", default=4 * h)
    types = _layer_types(cfg, n, mt)
    window = _sliding_window(cfg)
    notes: list[str] = []
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd_cfg = cfg.get("head_dim")
    head_dim = int(hd_cfg) if isinstance(hd_cfg, int) and hd_cfg > 0 else h // heads

    if mt in ("qwen2", "qwen2_moe"):
        bias_qkv, bias_o = True, False
    elif mt == "seed_oss":
        bias_qkv, bias_o = bool(cfg.get("attention_bias", True)), bool(cfg.get("attention_out_bias", False))
    elif mt == "ernie4_5":
        bias_qkv = bias_o = bool(cfg.get("use_bias", False))
    elif mt == "stablelm":
        bias_qkv, bias_o = bool(cfg.get("use_qkv_bias", False)), False
    elif mt in ("phimoe",):
        bias_qkv = bias_o = bool(cfg.get("attention_bias", True))
    else:
        bias_qkv = bias_o = bool(cfg.get("attention_bias", False))
    mlp_bias = bool(cfg.get("use_bias", False)) if mt == "ernie4_5" else bool(cfg.get("mlp_bias", False))
    t = traits_of(mt)
    layer_norms = t.norms_per_layer * t.norm_params(h)
    qk_norm = t.qk_norm_params(cfg, heads, kv, head_dim)

    # MoE layout
    n_experts = int(_get(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    if not t.experts:
        n_experts = 0
    topk = int(_get(cfg, "num_experts_per_tok", "moe_topk", default=0) or 0)
    moe_inter = int(_get(cfg, "moe_intermediate_size", default=inter) or inter)
    if mt == "olmoe":
        moe_inter = inter
    sparse_step = int(cfg.get("decoder_sparse_step", 1) or 1)
    mlp_only = set(cfg.get("mlp_only_layers") or [])
    shared_inter = int(cfg.get("shared_expert_intermediate_size") or 0) if mt == "qwen2_moe" else 0

    layers: list[Layer] = []
    for i in range(n):
        acc = _Acc()
        lt = types[i]
        win = window if lt == "sliding_attention" else None
        att = _std_attention(acc, cfg, h, bias_qkv=bias_qkv, bias_o=bias_o, window=win)
        if t.norm_layout == "sandwich":  # Gemma 2 / 3: attention logits soft-capped when configured
            att = Attention(**{**att.__dict__, "softcap": bool(cfg.get("attn_logit_softcapping"))})
        acc.small += layer_norms + qk_norm
        is_moe = n_experts > 0 and i not in mlp_only and (i + 1) % sparse_step == 0
        if is_moe:
            acc.router += n_experts * h
            _experts(acc, h, moe_inter, n_experts)
            mlp = Mlp(
                kind="moe",
                intermediate_size=moe_inter,
                num_experts=n_experts,
                experts_per_token=topk,
                shared_intermediate_size=shared_inter,
            )
            if shared_inter:
                acc.lin(h, shared_inter)
                acc.lin(h, shared_inter)
                acc.down += acc.lin(shared_inter, h)
                acc.router += h  # shared_expert_gate: Linear(h, 1)
        elif mt == "apertus":  # up/down with a learned xIELU activation (alpha_p, alpha_n)
            acc.lin(h, inter, mlp_bias)
            acc.down += acc.lin(inter, h, mlp_bias)
            acc.small += 2 if str(cfg.get("hidden_act", "xielu")) == "xielu" else 0
            mlp = Mlp(kind="plain", intermediate_size=inter)
        else:
            mlp = _gated_mlp(acc, h, inter, mlp_bias)
        layers.append(acc.layer(att, None, mlp))
    if any(t == "sliding_attention" for t in types):
        notes.append(
            f"{sum(t == 'sliding_attention' for t in types)} of {n} layers use a sliding window of {window} tokens"
        )
    return layers, h, notes


def _deepseek(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    inter = _int(cfg, "intermediate_size")
    moe_inter = _int(cfg, "moe_intermediate_size")
    n_routed = _int(cfg, "n_routed_experts", default=0)
    n_shared = _int(cfg, "n_shared_experts", default=0)
    topk = _int(cfg, "num_experts_per_tok", default=0)
    first_dense = _int(cfg, "first_k_dense_replace", default=0)
    freq = _int(cfg, "moe_layer_freq", default=1) or 1
    mlp_types = cfg.get("mlp_layer_types")  # "dense" / "sparse" per layer (GLM-4.7-Flash, DeepSeek-V3.2, GLM-5)
    if isinstance(mlp_types, list) and len(mlp_types) < n:
        raise ConfigError(f"config.json: mlp_layer_types has {len(mlp_types)} entries for {n} layers", field="model")
    # DeepSeek sparse attention (V3.2, GLM-5): a lightning indexer per layer, whose keys are cached per token
    indexed = traits_of(mt).indexer
    index_heads = _int(cfg, "index_n_heads", default=0) if indexed else 0
    index_dim = _int(cfg, "index_head_dim", default=0) if indexed else 0
    q_lora = int(cfg.get("q_lora_rank") or 0)
    kv_lora = _int(cfg, "kv_lora_rank")
    rope = _int(cfg, "qk_rope_head_dim")
    nope = _int(cfg, "qk_nope_head_dim")
    vdim = _int(cfg, "v_head_dim")
    bias = bool(cfg.get("attention_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        qk = nope + rope
        start = acc.linear
        if q_lora:
            acc.lin(h, q_lora, bias)
            acc.small += q_lora
            acc.lin(q_lora, heads * qk)
        else:
            acc.lin(h, heads * qk)
        acc.lin(h, kv_lora + rope, bias)
        acc.small += kv_lora
        acc.v_proj += acc.lin(kv_lora, heads * (nope + vdim))
        acc.attn_o += acc.lin(heads * vdim, h, bias)
        acc.small += 2 * h
        if indexed:  # wq_b (q latent -> index heads), wk, k_norm (LayerNorm), weights_proj (per-head weights)
            if not q_lora:
                raise ConfigError(
                    f"{mt}: the sparse-attention indexer reads the q latent; q_lora_rank is missing", field="model"
                )
            acc.lin(q_lora, index_heads * index_dim)
            acc.lin(h, index_dim)
            acc.small += 2 * index_dim
            acc.lin(h, index_heads)
        acc.attn += acc.linear - start
        att = Attention(
            kind="mla",
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=qk,
            v_head_dim=vdim,
            kv_lora_rank=kv_lora,
            q_lora_rank=q_lora,
            rope_head_dim=rope,
            index_elems=index_dim,
        )
        sparse = str(mlp_types[i]) == "sparse" if isinstance(mlp_types, list) else (i >= first_dense and i % freq == 0)
        if n_routed and sparse:
            acc.router += n_routed * h  # the noaux_tc correction bias is a buffer, not a parameter
            _experts(acc, h, moe_inter, n_routed)
            if n_shared:
                si = moe_inter * n_shared
                acc.lin(h, si)
                acc.lin(h, si)
                acc.down += acc.lin(si, h)
            mlp = Mlp(
                kind="moe",
                intermediate_size=moe_inter,
                num_experts=n_routed,
                experts_per_token=topk,
                shared_intermediate_size=moe_inter * n_shared,
            )
        else:
            mlp = _gated_mlp(acc, h, inter)
        layers.append(acc.layer(att, None, mlp))
    notes = [f"multi-head latent attention: the cache keeps a {kv_lora}-wide latent plus {rope} rope dims per token"]
    if indexed:
        notes.append(
            f"DeepSeek sparse attention: the indexer caches a {index_dim}-wide key per token beside the "
            f"latent and picks the top {_int(cfg, 'index_topk', default=2048):,} tokens per query"
        )
    return layers, h, notes


def _gpt_oss(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    inter = _int(cfg, "intermediate_size")
    n_exp = _int(cfg, "num_local_experts", "num_experts")
    topk = _int(cfg, "num_experts_per_tok", "experts_per_token")
    types = _layer_types(cfg, n, mt)
    window = _sliding_window(cfg)
    layers = []
    for i in range(n):
        acc = _Acc()
        att = _std_attention(
            acc, cfg, h, bias_qkv=True, bias_o=True, window=window if types[i] == "sliding_attention" else None
        )
        acc.small += att.num_heads + 2 * h  # attention sinks + 2 norms
        acc.router += n_exp * h + n_exp
        _experts(acc, h, inter, n_exp, gated=True, bias=True)
        layers.append(
            acc.layer(att, None, Mlp(kind="moe", intermediate_size=inter, num_experts=n_exp, experts_per_token=topk))
        )
    return layers, h, [f"alternating sliding-window ({window}) and full attention; attention sinks"]


def _lfm2(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    ff = _int(cfg, "block_ff_dim", "intermediate_size")
    if cfg.get("block_auto_adjust_ff_dim"):
        ff = int(2 * ff / 3)
        mult = cfg.get("block_ffn_dim_multiplier")
        if mult is not None:
            ff = int(float(mult) * ff)
        m = int(cfg.get("block_multiple_of") or 256)
        ff = m * ((ff + m - 1) // m)
    lt = cfg.get("layer_types")
    if not isinstance(lt, list):
        idx = set(cfg.get("full_attn_idxs") or range(n))
        lt = ["full_attention" if i in idx else "conv" for i in range(n)]
    if len(lt) < n:
        raise ConfigError(f"config.json: layer_types has {len(lt)} entries for {n} layers", field="model")
    kernel = _int(cfg, "conv_L_cache", default=3)
    conv_bias = bool(cfg.get("conv_bias", False))
    layers = []
    for i in range(n):
        acc = _Acc()
        if lt[i] == "full_attention":
            att: Attention | None = _std_attention(acc, cfg, h, bias_qkv=False, bias_o=False, window=None)
            assert att is not None
            acc.small += 2 * att.head_dim
            mixer = None
        else:
            att = None
            acc.lin(h, 3 * h, conv_bias)
            acc.small += h * kernel + (h if conv_bias else 0)
            acc.lin(h, h, conv_bias)
            mixer = StateMixer(kind="conv", state_elems=h * kernel, inner_size=3 * h)
        acc.small += 2 * h
        mlp = _gated_mlp(acc, h, ff)
        layers.append(acc.layer(att, mixer, mlp))
    n_conv = sum(1 for x in layers if x.mixer)
    notes = (
        [f"{n_conv} of {n} layers are short convolutions with a fixed {kernel}-token state (no KV cache)"]
        if n_conv
        else []
    )
    return layers, h, notes


def _falcon(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers", "n_layer")
    heads = _positive(cfg, "num_attention_heads", "n_head")
    new_arch = bool(cfg.get("new_decoder_architecture", False))
    if new_arch:
        kv = _int(cfg, "num_kv_heads", default=heads)
    elif cfg.get("multi_query", True):
        kv = 1
    else:
        kv = heads
    hd = h // heads
    bias = bool(cfg.get("bias", False))
    ffn = int(cfg.get("ffn_hidden_size") or 4 * h)
    layers = []
    for _ in range(n):
        acc = _Acc()
        acc.lin(h, (heads + 2 * kv) * hd, bias)
        acc.v_proj += kv * hd * h
        acc.lin(heads * hd, h, bias)
        acc.lin(h, ffn, bias)
        acc.down += acc.lin(ffn, h, bias)
        n_ln = int(cfg.get("num_ln_in_parallel_attn") or (2 if new_arch else 1))
        if not new_arch and not cfg.get("parallel_attn", True):
            n_ln = 2
        acc.small += n_ln * 2 * h
        # transformers' Falcon broadcasts grouped k/v to every head before caching (new decoder architecture)
        cached_kv = heads if new_arch else kv
        att = Attention(kind="mha", num_heads=heads, num_kv_heads=cached_kv, head_dim=hd, v_head_dim=hd)
        layers.append(acc.layer(att, None, Mlp(kind="plain", intermediate_size=ffn)))
    return layers, h, []


def _gpt_style(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    """LayerNorm-with-bias models with a plain (non-gated) GELU MLP: StarCoder2, Phi-1/2, GPT-NeoX (Pythia)."""
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads) or heads
    hd = h // heads
    inter = _int(cfg, "intermediate_size", default=4 * h)
    bias = bool(cfg.get("use_bias", True)) if mt == "starcoder2" else True
    attn_bias = bool(cfg.get("attention_bias", True)) if mt == "gpt_neox" else bias
    layers = []
    for _ in range(n):
        acc = _Acc()
        acc.lin(h, heads * hd, attn_bias)
        acc.lin(h, kv * hd, attn_bias)
        acc.v_proj += acc.lin(h, kv * hd, attn_bias)
        acc.lin(heads * hd, h, attn_bias)
        acc.small += traits_of(mt).norms_per_layer * traits_of(mt).norm_params(h)  # Phi: one, attention ∥ MLP
        if mt == "phi" and cfg.get("qk_layernorm"):
            acc.small += 2 * 2 * hd
        acc.lin(h, inter, bias)
        acc.down += acc.lin(inter, h, bias)
        att = Attention(
            kind="mha",
            num_heads=heads,
            num_kv_heads=kv,
            head_dim=hd,
            v_head_dim=hd,
            sliding_window=_sliding_window(cfg) if mt == "starcoder2" else None,
        )
        layers.append(acc.layer(att, None, Mlp(kind="plain", intermediate_size=inter)))
    return layers, h, []


def _mamba(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    """Mamba (v1) and Falcon-Mamba: selective state-space blocks, no attention, no MLP."""
    h = _int(cfg, "hidden_size", "d_model")
    n = _layers(cfg, "num_hidden_layers", "n_layer")
    expand = _int(cfg, "expand", default=2)
    inner = _int(cfg, "intermediate_size", default=expand * h)
    state = _int(cfg, "state_size", "d_state", default=16)
    kernel = _int(cfg, "conv_kernel", "d_conv", default=4)
    rank_cfg = cfg.get("time_step_rank", "auto")
    rank = -(-h // 16) if rank_cfg in (None, "auto") else int(rank_cfg)
    bias = bool(cfg.get("use_bias", False))
    conv_bias = bool(cfg.get("use_conv_bias", True))
    layers = []
    for _ in range(n):
        acc = _Acc()
        acc.lin(h, 2 * inner, bias)
        acc.lin(inner, rank + 2 * state)
        acc.lin(rank, inner, True)
        acc.lin(inner, h, bias)
        acc.small += inner * kernel + (inner if conv_bias else 0) + inner * state + inner + h
        layers.append(
            acc.layer(None, StateMixer(kind="mamba", state_elems=inner * (kernel + state), inner_size=inner), None)
        )
    return layers, h, [f"state-space layers: a fixed {inner}×({kernel}+{state}) state per sequence, no KV cache"]


def _mamba2(cfg: Config, mt: str) -> tuple[list[Layer], int, list[str]]:
    h = _int(cfg, "hidden_size")
    n = _layers(cfg, "num_hidden_layers")
    heads = _positive(cfg, "num_heads")
    head_dim = _positive(cfg, "head_dim")
    expand = _int(cfg, "expand", default=2)
    inner = int(expand * h)
    groups = _int(cfg, "n_groups", default=1)
    state = _int(cfg, "state_size", default=128)
    kernel = _int(cfg, "conv_kernel", default=4)
    bias = bool(cfg.get("use_bias", False))
    conv_bias = bool(cfg.get("use_conv_bias", True))
    conv_dim = inner + 2 * groups * state
    layers = []
    for _ in range(n):
        acc = _Acc()
        acc.lin(h, 2 * inner + 2 * groups * state + heads, bias)
        acc.lin(inner, h, bias)
        acc.small += conv_dim * kernel + (conv_dim if conv_bias else 0) + 3 * heads + inner + h
        layers.append(
            acc.layer(
                None,
                StateMixer(kind="mamba2", state_elems=conv_dim * kernel + heads * head_dim * state, inner_size=inner),
                None,
            )
        )
    return layers, h, [f"Mamba-2 layers: a fixed state of {heads} heads × {head_dim} × {state} per sequence"]


FAMILIES = {
    "llama": _llama_like,
    "mistral": _llama_like,
    "qwen2": _llama_like,
    "qwen3": _llama_like,
    "gemma2": _llama_like,
    "gemma3_text": _llama_like,
    "phi3": _llama_like,
    "olmo2": _llama_like,
    "cohere": _llama_like,
    "mixtral": _llama_like,
    "qwen2_moe": _llama_like,
    "qwen3_moe": _llama_like,
    "phimoe": _llama_like,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "gpt_oss": _gpt_oss,
    "lfm2": _lfm2,
    "falcon": _falcon,
    "mamba": _mamba,
    "falcon_mamba": _mamba,
    "mamba2": _mamba2,
    "smollm3": _llama_like,
    "olmo": _llama_like,
    "olmoe": _llama_like,
    "stablelm": _llama_like,
    "starcoder2": _gpt_style,
    "phi": _gpt_style,
    "gpt_neox": _gpt_style,
    "apertus": _llama_like,
    "seed_oss": _llama_like,
    "ernie4_5": _llama_like,
    "hunyuan_v1_dense": _llama_like,
    "olmo3": _llama_like,
    "glm4_moe_lite": _deepseek,
    "deepseek_v32": _deepseek,
    "glm_moe_dsa": _deepseek,
    **_NEW_FAMILIES,
}
# model_type aliases that share an implementation
_ALIASES = {
    "kimi_k2": "deepseek_v3",  # Kimi-K2's remote code is DeepSeek-V3's network
    "qwen3_vl_text": "qwen3",
    "qwen3_vl_moe_text": "qwen3_moe",  # Qwen3-VL's language models
    "gemma3": "gemma3_text",
    "yi": "llama",
    "falcon3": "llama",
    "smollm": "llama",
    "granite": "llama",
}


def supported_model_types() -> list[str]:
    return sorted(FAMILIES)


@cache
def _defaults() -> dict[str, dict[str, Any]]:
    """Defaults of each architecture's transformers config class, for keys a config.json leaves out."""
    with open(os.path.join(os.path.dirname(os.path.realpath(__file__)), "model_defaults.json"), encoding="utf-8") as f:
        data: dict[str, dict[str, Any]] = json.load(f)
    return data


def _text_config(cfg: Config) -> tuple[Config, Config | None]:
    tc = cfg.get("text_config")
    if isinstance(tc, Mapping):
        merged = dict(tc)
        merged.setdefault("model_type", str(cfg.get("model_type", "")) + "_text")
        return merged, cfg
    return cfg, None


def _siglip_params(vc: Config, text_hidden: int) -> int:
    """Gemma 3's SigLIP vision tower and projector."""
    h = _int(vc, "hidden_size")
    n = _int(vc, "num_hidden_layers")
    inter = _int(vc, "intermediate_size")
    patch = _int(vc, "patch_size")
    image = _int(vc, "image_size")
    chans = _int(vc, "num_channels", default=3)
    positions = (image // patch) ** 2
    embed = chans * patch * patch * h + h + positions * h
    layer = 4 * (h * h + h) + 2 * 2 * h + (h * inter + inter) + (inter * h + h)
    return embed + n * layer + 2 * h + h * text_hidden + h


def _mtp_params(cfg: Config, mt: str, layers: list[Layer], h: int, vocab: int) -> tuple[int, str]:
    """Multi-token-prediction layers the checkpoint stores and transformers does not build (vLLM loads them for
    speculative decoding). DeepSeek-V3 format (also GLM-4.x, GLM-5): per MTP layer `model.layers.{n}` holds a full
    decoder layer like the last one, eh_proj (2h -> h), enorm, hnorm, shared_head.norm, and its own copies of
    embed_tokens and shared_head.head (vocab × h each; DeepSeek-V3's 671B + 14B MTP = 685B counts them).
    Qwen3-Next / Qwen3.5 format: `mtp.fc` (2h -> h), two pre-fc norms, `mtp.layers.{i}` (a full-attention layer)
    and `mtp.norm`; embedding and head are shared with the main model."""
    fmt = traits_of(mt).mtp
    if fmt == "deepseek":
        k = _int(cfg, "num_nextn_predict_layers", default=0)
        per = layers[-1].params + 2 * h * h + 3 * h + 2 * vocab * h
    elif fmt == "qwen":
        k = _int(cfg, "mtp_num_hidden_layers", default=0)
        full = [layer for layer in layers if layer.attention is not None]
        per = (full[-1].params if full else layers[-1].params) + 2 * h * h + 3 * h
    else:
        return 0, ""
    if not k:
        return 0, ""
    return k * per, (
        f"the checkpoint also stores {k} multi-token-prediction layer{'s' if k > 1 else ''} "
        f"({k * per:,} parameters) that transformers does not load; vLLM loads them only for "
        "speculative decoding"
    )


def model_from_config(config: Config, name: str | None = None) -> ModelSpec:
    """Describe a model from its config.json contents. Raises UnsupportedArchitecture or ConfigError."""
    try:
        return _model_from_config(config, name)
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError) as exc:
        # a config whose values contradict each other in a way no check above names
        raise ConfigError(f"config.json could not be interpreted: {type(exc).__name__}: {exc}", field="model") from exc


def _model_from_config(config: Config, name: str | None = None) -> ModelSpec:
    if not isinstance(config, Mapping):
        raise ConfigError("config.json must hold a JSON object", field="model")
    text_cfg, outer = _text_config(config)
    mt = str(text_cfg.get("model_type") or "").lower()
    archs = config.get("architectures") or []
    arch = str(archs[0]) if isinstance(archs, list) and archs else mt
    mt = _ALIASES.get(mt, mt)
    if mt == "gemma3_text_text":
        mt = "gemma3_text"
    if not mt:
        raise ConfigError("config.json has no model_type", field="model")
    if mt not in FAMILIES:
        raise UnsupportedArchitecture(mt, f"supported: {', '.join(supported_model_types())}")
    text_cfg = _with_defaults(mt, text_cfg)
    layers, h, notes = FAMILIES[mt](text_cfg, mt)
    interned: dict[Layer, Layer] = {}
    layers = [interned.setdefault(layer, layer) for layer in layers]  # equal layers share one object
    if not layers:
        raise ConfigError("config.json describes a model with no layers", field="model")
    vocab = _int(text_cfg, "vocab_size")
    if vocab == 0 or h == 0:
        raise ConfigError("config.json: vocab_size and hidden_size must be positive", field="model")
    tie = text_cfg.get("tie_word_embeddings", outer.get("tie_word_embeddings") if outer else None)
    tie = bool(tie) if tie is not None else False
    embed = vocab * h
    head = 0 if tie else vocab * h
    final = traits_of(mt).norm_params(h)  # final norm
    extra_embed, extra_other = model_level_params(text_cfg, mt, h, len(layers))
    embed += extra_embed
    final += extra_other
    if (mt == "phimoe" and bool(text_cfg.get("lm_head_bias", False))) or mt == "phi":
        head += vocab
    extra = 0
    extra_desc = ""
    if outer is not None and isinstance(outer.get("vision_config"), Mapping) and mt == "gemma3_text":
        extra = _siglip_params(outer["vision_config"], h)
        extra_desc = "SigLIP vision tower and projector"
    elif outer is not None:
        extra, extra_desc = vision_params(outer)
    mtp, mtp_note = _mtp_params(text_cfg, mt, layers, h, vocab)
    if mtp_note:
        notes.append(mtp_note)
    qc = config.get("quantization_config", text_cfg.get("quantization_config"))
    scheme = stored_scheme(qc, is_moe=any(layer.expert_params for layer in layers)) if qc is not None else None
    missing = uncounted_towers(outer, counted=bool(extra)) if outer is not None else ""
    outer_mt = str(outer.get("model_type") or "").replace("-", "_") if outer is not None else ""
    unmodelled = f"{outer_mt}: {missing}" if outer_mt in UNSUPPORTED_TOWERS and missing else ""
    if missing:
        notes.append(
            f"{outer.get('model_type') if outer else mt}: {missing} not counted from config.json (the "
            "safetensors headers give the whole checkpoint's exact count)"
        )
    rope_dim = 0
    atts = [layer.attention for layer in layers if layer.attention is not None]
    if atts:
        a0 = atts[0]
        rope_dim = a0.rope_head_dim if a0.kind == "mla" else a0.head_dim
        prf = text_cfg.get("partial_rotary_factor")
        if isinstance(prf, int | float) and 0 < prf < 1 and a0.kind != "mla":
            rope_dim = int(a0.head_dim * prf)
    return ModelSpec(
        name=name or str(config.get("_name_or_path") or arch),
        model_type=mt,
        architecture=arch,
        hidden_size=h,
        vocab_size=vocab,
        layers=tuple(layers),
        embed_params=embed,
        head_params=head,
        final_params=final,
        tie_word_embeddings=tie,
        max_position_embeddings=_get(text_cfg, "max_position_embeddings", "n_positions", default=None),
        torch_dtype=_dtype(text_cfg if "torch_dtype" in text_cfg or "dtype" in text_cfg else config),
        rope_dim=rope_dim,
        extra_params=extra,
        extra_description=extra_desc,
        notes=tuple(notes),
        mtp_params=mtp,
        stored_scheme=scheme,
        unmodelled=unmodelled,
        use_cache=bool(text_cfg.get("use_cache", True)),
        logit_softcap=bool(text_cfg.get("final_logit_softcapping")),
    )


def linear_shapes(model: ModelSpec, layer: Layer) -> dict[str, tuple[int, int]]:
    """(in, out) of each nn.Linear in a layer's attention and dense MLP, by peft-style name (MoE experts are
    stacked parameters, not nn.Linear)."""
    h = model.hidden_size
    out: dict[str, tuple[int, int]] = {}
    a = layer.attention
    t = traits_of(model.model_type)
    fused = t.fused_gate_up
    if a is not None and a.kind == "mha" and t.fused_qkv:
        out["qkv_proj"] = (h, (a.num_heads + 2 * a.num_kv_heads) * a.head_dim)
        out["o_proj"] = (a.num_heads * a.v_head_dim, h)
    elif a is not None and a.kind == "mha":
        out["q_proj"] = (h, a.num_heads * a.head_dim)
        out["k_proj"] = (h, a.num_kv_heads * a.head_dim)
        out["v_proj"] = (h, a.num_kv_heads * a.v_head_dim)
        out["o_proj"] = (a.num_heads * a.v_head_dim, h)
    m = layer.mlp
    if m is not None and m.kind in ("gated", "plain"):
        if m.kind == "gated" and fused:
            out["gate_up_proj"] = (h, 2 * m.intermediate_size)
        elif m.kind == "gated":
            out["gate_proj"] = (h, m.intermediate_size)
        if not (m.kind == "gated" and fused):
            out["up_proj"] = (h, m.intermediate_size)
        out["down_proj"] = (m.intermediate_size, h)
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config.json (or a folder holding one). Raises ConfigError with the reason."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        if p.stat().st_size > 8 * 1024 * 1024:
            raise ConfigError(f"{p}: too large for a config.json", field="model")
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such file", field="model") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read ({exc.__class__.__name__})", field="model") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON (line {exc.lineno})", field="model") from exc
    except RecursionError as exc:  # json.loads of absurdly deep nesting
        raise ConfigError(f"{p}: JSON nested too deeply", field="model") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: config.json must hold a JSON object", field="model")
    config: dict[str, Any] = data
    quant = p.parent / "hf_quant_config.json"  # a ModelOpt export's folder states its quantization there
    if p.name == "config.json" and quant.is_file() and quant.stat().st_size <= 8 * 1024 * 1024:
        try:
            config = with_hf_quant_config(config, json.loads(quant.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"{quant}: cannot read ({exc.__class__.__name__})", field="model") from exc
    return config


__all__ = ["Attention", "Layer", "Mlp", "ModelSpec", "StateMixer", "load_config_file", "model_from_config"]
