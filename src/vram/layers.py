"""Layer descriptions and the helpers every model builder counts parameters with (a leaf: vram.model and
vram.architectures both build on it, and it imports neither).

A layer is a token mixer (attention, multi-head latent attention, or a fixed-state mixer: short convolution,
state-space block, linear attention) and an MLP (dense or a mixture of experts); `_Acc` adds up its tensors the way
the transformers module builds them, split into the groups weight formats price differently.
"""

from __future__ import annotations

import math

from .errors import ConfigError
from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from collections.abc import Mapping
    from typing import Any

    Config = Mapping[str, Any]


@record(frozen=True)
class Attention:
    """Self-attention of one layer. `kind` is "mha" (covers GQA/MQA) or "mla" (DeepSeek latent attention)."""

    kind: str
    num_heads: int
    num_kv_heads: int
    head_dim: int  # query/key head size
    v_head_dim: int
    sliding_window: int | None = None
    kv_lora_rank: int = 0  # MLA: latent size the cache keeps
    q_lora_rank: int = 0
    rope_head_dim: int = 0  # MLA: decoupled rope part, cached beside the latent
    softcap: bool = False
    chunk_size: int | None = None  # chunked attention (Llama 4): a token attends only within its chunk
    index_elems: int = 0  # DeepSeek sparse attention: the indexer's key cache per token (index_head_dim)
    shares_kv_of: int | None = None  # Gemma 3n / 4: reuses an earlier layer's cache and holds none itself

    @property
    def q_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    def cache_elems_per_token(self) -> int:
        """Elements one token adds to this layer's KV cache (keys + values)."""
        if self.shares_kv_of is not None:
            return 0
        if self.kind == "mla":
            return self.kv_lora_rank + self.rope_head_dim + self.index_elems
        return self.num_kv_heads * (self.head_dim + self.v_head_dim) + self.index_elems


@record(frozen=True)
class Mlp:
    """Feed-forward of one layer: "gated" (SwiGLU/GeGLU: gate, up, down), "plain" (up, down) or "moe"."""

    kind: str
    intermediate_size: int
    num_experts: int = 0
    experts_per_token: int = 0
    shared_intermediate_size: int = 0  # total width of always-on shared experts (0 if none)
    expert_gated: bool = True


@record(frozen=True)
class StateMixer:
    """A token mixer with a fixed-size per-sequence state instead of a growing cache (short conv, Mamba)."""

    kind: str  # "conv" (LFM2) or "mamba2" / "mamba"
    state_elems: int  # elements of recurrent state per sequence
    inner_size: int  # width of the mixer's main activations


@record(frozen=True)
class Layer:
    attention: Attention | None
    mixer: StateMixer | None
    mlp: Mlp | None
    params: int
    linear_params: int  # 2-D weight matrices (quantizable), experts included
    expert_params: int  # of which inside routed experts
    router_params: int
    small_params: int  # 1-D: norms, biases, convolution kernels, sinks
    v_proj_params: int = 0  # for llama.cpp's per-tensor quant mixes
    down_proj_params: int = 0
    expert_linear_params: int = 0  # the routed experts' matrices (expert_params less their biases)
    attention_linear_params: int = 0  # of linear_params, the attention projections (where the builder counts them)
    attention_o_params: int = 0  # of those, the output projection


# ---------------------------------------------------------------------------------------------------------------
# config helpers


def _get(cfg: Config, *names: str, default: Any = None, required: bool = False) -> Any:
    for n in names:
        if n in cfg and cfg[n] is not None:
            return cfg[n]
    if required:
        raise ConfigError(f"config.json is missing {' / '.join(names)}", field="model")
    return default


MAX_DIM = 1 << 40  # no real model dimension comes near this


def _int(cfg: Config, *names: str, default: int | None = None, required: bool = True) -> int:
    v = _get(cfg, *names, default=default, required=required and default is None)
    if v is None:
        raise ConfigError(f"config.json is missing {' / '.join(names)}", field="model")
    ok = (
        not isinstance(v, bool)
        and isinstance(v, int | float)
        and math.isfinite(v)
        and v == int(v)
        and 0 <= v <= MAX_DIM
    )
    if not ok:
        raise ConfigError(f"config.json field {names[0]} must be a non-negative integer, got {v!r}", field="model")
    return int(v)


MAX_LAYERS = 10_000  # the deepest published models have a few hundred layers


def _layers(cfg: Config, *names: str) -> int:
    """The layer count, bounded: every layer is described, so an absurd count must be refused before the loop."""
    n = _positive(cfg, *names)
    if n > MAX_LAYERS:
        raise ConfigError(
            f"config.json field {names[0]}: {n:,} layers is beyond any real model (max {MAX_LAYERS:,})", field="model"
        )
    return n


def _positive(cfg: Config, *names: str, default: int | None = None) -> int:
    v = _int(cfg, *names, default=default)
    if v == 0:
        raise ConfigError(f"config.json field {names[0]} must be positive", field="model")
    return v


# ---------------------------------------------------------------------------------------------------------------
# layer builders: each returns (Layer) with its exact parameter count


def _linear(n_in: int, n_out: int, bias: bool) -> tuple[int, int]:
    """(matrix params, bias params)"""
    return n_in * n_out, (n_out if bias else 0)


@record()
class _Acc:
    linear: int = 0
    small: int = 0
    expert: int = 0
    router: int = 0
    v_proj: int = 0
    down: int = 0
    expert_linear: int = 0
    attn: int = 0  # the attention projections' matrices, counted by the builders that mark them
    attn_o: int = 0  # of which the output projection

    def lin(self, n_in: int, n_out: int, bias: bool = False) -> int:
        w, b = _linear(n_in, n_out, bias)
        self.linear += w
        self.small += b
        return w

    @property
    def total(self) -> int:
        return self.linear + self.small + self.router

    def layer(self, attention: Attention | None, mixer: StateMixer | None, mlp: Mlp | None) -> Layer:
        return Layer(
            attention=attention,
            mixer=mixer,
            mlp=mlp,
            params=self.total,
            linear_params=self.linear,
            expert_params=self.expert,
            router_params=self.router,
            small_params=self.small,
            v_proj_params=self.v_proj,
            down_proj_params=self.down,
            expert_linear_params=self.expert_linear,
            attention_linear_params=self.attn,
            attention_o_params=self.attn_o,
        )


def _gated_mlp(acc: _Acc, h: int, inter: int, bias: bool = False) -> Mlp:
    acc.lin(h, inter, bias)
    acc.lin(h, inter, bias)
    acc.down += acc.lin(inter, h, bias)
    return Mlp(kind="gated", intermediate_size=inter)


def _experts(acc: _Acc, h: int, inter: int, n: int, *, gated: bool = True, bias: bool = False) -> int:
    per = (3 if gated else 2) * h * inter
    b = ((2 * inter if gated else inter) + h) * n if bias else 0
    acc.linear += per * n
    acc.expert += per * n
    acc.expert_linear += per * n
    acc.down += inter * h * n
    acc.small += b
    acc.expert += b
    return per * n + b
