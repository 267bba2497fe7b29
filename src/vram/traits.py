"""Architecture traits: what each model_type's transformers implementation does beyond its tensor shapes.

One row per model_type a builder in vram.model / vram.architectures supports. The builders read the rows to count
parameters (how many norms a layer has and of what kind, q/k norms, which layers slide), and the estimators read
them to know which temporaries and saved tensors exist (vram.engines.transformers: fused projections, rope tables,
float32 routers, the in-dtype softmax of attention sinks, eager-only attention; vram.training: norms kept for
backward). A model_type without a row (the non-decoder families, GGUF-only architectures) has the
default traits: pre-norm Llama-style RMSNorm, separate projections, one rope table.

Every row was read from transformers 5.24's modeling_<model_type>.py:

* `norm` — what a norm module computes, which decides what autograd keeps:
  "rms"   Llama's RMSNorm, `weight * x.to(dtype)` (the product in the input dtype);
  "rms_fp32"  the weight is multiplied in float32 before the cast back (Gemma's `x * (1 + w.float())`, OLMo 2/3's
          and gpt-oss's `(weight * x).to(dtype)`, Qwen3-Next / Qwen3.5's and Nemotron-H's float32 weight);
  "layernorm_fp32"  Cohere's LayerNorm: mean-centred, weight only, product in float32;
  "layernorm"  nn.LayerNorm with weight and bias (keeps its input for backward);
  "layernorm_no_affine"  OLMo's LayerNorm without parameters.
* `norm_layout` — "pre" (a norm before attention and before the MLP), "sandwich" (Gemma: also after each), "post"
  (OLMo 2/3: only after each sublayer, none before).
* `parallel_block` — attention and MLP run side by side on one norm's output, so a layer has a single norm (Cohere,
  Phi-1/2; GPT-NeoX's and Falcon's parallel residuals keep a norm for each, or depend on the config).
* `qk_norm` — "head" (one head_dim-wide weight each for q and k) or "full" (heads × head_dim wide), or "" (none);
  `qk_norm_flag` names the config key that turns it on when it is optional.
* `experts` — the family routes tokens to experts (its config's expert count is read; dense families ignore one).
* `windows` / `window_every` / `window_pattern_key` — which layers use `sliding_window` when config.json has no
  `layer_types`: "all", "every" (every `window_every`-th layer is full, the others slide; `window_pattern_key`
  means `sliding_window_pattern` in the config overrides it), "qwen" (`use_sliding_window` above
  `max_window_layers`), or "" (none).
* `indexer` — DeepSeek sparse attention: a lightning indexer per layer whose keys are cached per token.
* `mtp` — format of the multi-token-prediction layers the checkpoint stores: "deepseek" or "qwen" (vram.model).
* `fused_qkv` / `fused_gate_up` — one nn.Linear for q/k/v (and for gate/up): LoRA targets and MLP temporaries.
* `rope_tables` — cos/sin tables computed per forward (Gemma 3: local and global rope).
* `eager_only` — the transformers class refuses SDPA (`_supports_sdpa = False`).
* `router_fp32` — the router's linear runs in float32 (`F.linear(x.float(), weight.float())`), so the routing
  weights and the weighted expert outputs are float32.
* `sink_softmax_in_dtype` — eager attention with sinks concatenates the sink logits and takes the softmax in the
  input dtype.
* `gelu_temporaries` — gelu_new evaluated in several elementwise steps (Phi-1/2).
"""

from __future__ import annotations

from collections.abc import Mapping

from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any


@record(frozen=True)
class Traits:
    norm: str = "rms"
    norm_layout: str = "pre"
    parallel_block: bool = False
    qk_norm: str = ""
    qk_norm_flag: str = ""
    experts: bool = False
    windows: str = ""
    window_every: int = 0
    window_pattern_key: bool = False
    indexer: bool = False
    mtp: str = ""
    fused_qkv: bool = False
    fused_gate_up: bool = False
    rope_tables: int = 1
    eager_only: bool = False
    router_fp32: bool = False
    sink_softmax_in_dtype: bool = False
    gelu_temporaries: bool = False

    @property
    def layer_norm_kind(self) -> bool:
        """nn.LayerNorm-style (keeps its input for backward) rather than an RMSNorm."""
        return self.norm in ("layernorm", "layernorm_no_affine")

    @property
    def fp32_norm_product(self) -> bool:
        return self.norm in ("rms_fp32", "layernorm_fp32")

    @property
    def post_norms(self) -> bool:
        """Norms after the attention and after the MLP (Gemma's sandwich, OLMo 2's post-norms)."""
        return self.norm_layout in ("sandwich", "post")

    @property
    def pre_norms(self) -> bool:
        return self.norm_layout != "post"

    def norm_params(self, width: int) -> int:
        """Parameters of one norm over `width` features."""
        if self.norm == "layernorm":
            return 2 * width
        if self.norm == "layernorm_no_affine":
            return 0
        return width

    @property
    def norms_per_layer(self) -> int:
        if self.parallel_block:
            return 1
        return 4 if self.norm_layout == "sandwich" else 2

    def qk_norm_params(self, cfg: Mapping[str, Any], heads: int, kv_heads: int, head_dim: int) -> int:
        """Parameters of a layer's q and k norms under this config (0 when the family or the config has none)."""
        if not self.qk_norm or (self.qk_norm_flag and not cfg.get(self.qk_norm_flag)):
            return 0
        return 2 * head_dim if self.qk_norm == "head" else (heads + kv_heads) * head_dim


DEFAULT = Traits()
_MOE = Traits(experts=True)
_MOE_FP32_ROUTER = Traits(experts=True, router_fp32=True)
_MLA = Traits(experts=True, router_fp32=True, mtp="deepseek")
_DSA = Traits(experts=True, router_fp32=True, mtp="deepseek", indexer=True)
_QWEN_HYBRID = Traits(norm="rms_fp32", qk_norm="head", experts=True, mtp="qwen")

TRAITS: dict[str, Traits] = {
    # dense decoders built by vram.model._llama_like
    "llama": DEFAULT,
    "mistral": Traits(windows="all"),
    "qwen2": Traits(windows="qwen"),
    "qwen3": Traits(qk_norm="head", windows="qwen"),
    "gemma2": Traits(norm="rms_fp32", norm_layout="sandwich", windows="every", window_every=2),
    "gemma3_text": Traits(
        norm="rms_fp32",
        norm_layout="sandwich",
        qk_norm="head",
        windows="every",
        window_every=6,
        window_pattern_key=True,
        rope_tables=2,
    ),
    "phi3": Traits(windows="all", fused_qkv=True, fused_gate_up=True),
    "olmo2": Traits(norm="rms_fp32", norm_layout="post", qk_norm="full"),
    "olmo3": Traits(norm="rms_fp32", norm_layout="post", qk_norm="full", windows="every", window_every=4),
    "cohere": Traits(norm="layernorm_fp32", parallel_block=True, qk_norm="full", qk_norm_flag="use_qk_norm"),
    "smollm3": DEFAULT,
    "olmo": Traits(norm="layernorm_no_affine"),
    "stablelm": Traits(norm="layernorm"),
    "apertus": Traits(qk_norm="head"),
    "seed_oss": DEFAULT,
    "ernie4_5": DEFAULT,
    "hunyuan_v1_dense": Traits(qk_norm="head"),
    # MoE decoders built by vram.model._llama_like
    "mixtral": Traits(experts=True, windows="all"),
    "qwen2_moe": Traits(experts=True, windows="qwen"),
    "qwen3_moe": Traits(qk_norm="head", experts=True, windows="qwen"),
    "phimoe": Traits(norm="layernorm", experts=True, windows="all"),
    "olmoe": Traits(qk_norm="full", experts=True),
    # multi-head latent attention (vram.model._deepseek)
    "deepseek_v2": Traits(experts=True, router_fp32=True),
    "deepseek_v3": _MLA,
    "deepseek_v32": _DSA,
    "glm4_moe_lite": _MLA,
    "glm_moe_dsa": _DSA,
    # others in vram.model
    "gpt_oss": Traits(
        norm="rms_fp32", experts=True, windows="every", window_every=2, eager_only=True, sink_softmax_in_dtype=True
    ),
    "lfm2": Traits(qk_norm="head"),
    "falcon": Traits(norm="layernorm"),
    "mamba": DEFAULT,
    "falcon_mamba": DEFAULT,
    "mamba2": DEFAULT,
    "starcoder2": Traits(norm="layernorm", windows="all"),
    "phi": Traits(norm="layernorm", parallel_block=True, gelu_temporaries=True),
    "gpt_neox": Traits(norm="layernorm", fused_qkv=True),
    # vram.architectures
    "glm4_moe": Traits(qk_norm="head", qk_norm_flag="use_qk_norm", experts=True, router_fp32=True, mtp="deepseek"),
    "glm4v_moe_text": Traits(experts=True, router_fp32=True, mtp="deepseek"),
    "ernie4_5_moe": _MOE_FP32_ROUTER,
    "hunyuan_v1_moe": Traits(qk_norm="head", experts=True),
    "minimax_m2": Traits(qk_norm="full", experts=True),
    "qwen3_next": _QWEN_HYBRID,
    "qwen3_5_text": Traits(norm="rms_fp32", qk_norm="head", mtp="qwen"),
    "qwen3_5_moe_text": _QWEN_HYBRID,
    "granitemoehybrid": _MOE,
    "nemotron_h": Traits(norm="rms_fp32", experts=True, router_fp32=True),
    "falcon_h1": DEFAULT,
    "llama4_text": _MOE,
    "kimi_linear": _MOE_FP32_ROUTER,
    "gemma3n_text": Traits(norm="rms_fp32", norm_layout="sandwich", qk_norm="head", windows="every", window_every=5),
    "gemma4_text": Traits(
        norm="rms_fp32", norm_layout="sandwich", qk_norm="head", experts=True, windows="every", window_every=6
    ),
}


def traits_of(model_type: str) -> Traits:
    """The traits of a model_type (the defaults for one without a row)."""
    return TRAITS.get(model_type, DEFAULT)


__all__ = ["DEFAULT", "TRAITS", "Traits", "traits_of"]
