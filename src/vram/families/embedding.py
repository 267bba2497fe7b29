"""Embedding and reranker models (BERT / XLM-RoBERTa encoders): one forward pass, no KV cache.

Parameters as transformers builds BertModel / XLMRobertaModel: word, position and token-type embeddings and their
LayerNorm; per layer q/k/v/o with bias, two LayerNorms, the intermediate and output projections; the pooler
(dense + tanh) for embedding models; rerankers (…ForSequenceClassification) replace the pooler with a classifier
(dense + out_proj to `num_labels`).

Memory: weights plus one layer's activations over batch × sequence tokens (hidden state, normed copy, q/k/v,
attention output, the intermediate activation and its GELU), the embeddings output and, with eager attention, the
score matrix batch × heads × seq² — never a cache, which calculators built for generation wrongly add.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..components import Component
from ..errors import ConfigError
from . import opaque_spec
from ._common import elem_bytes, finish

if TYPE_CHECKING:
    from ..model import ModelSpec
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate


def _i(c: Mapping[str, Any], k: str, default: int | None = None) -> int:
    v = c.get(k, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ConfigError(f"encoder config is missing {k}", field="model")
    return v


def encoder_params(c: Mapping[str, Any]) -> int:
    h, inter, n = _i(c, "hidden_size"), _i(c, "intermediate_size"), _i(c, "num_hidden_layers")
    emb = (_i(c, "vocab_size") + _i(c, "max_position_embeddings") + _i(c, "type_vocab_size", 2)) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * inter + inter) + (inter * h + h) + 2 * h
    head = 0
    if c.get("head") == "classifier":
        head = (h * h + h) + (h * _i(c, "num_labels", 1) + _i(c, "num_labels", 1))
    elif c.get("add_pooling_layer", True):
        head = h * h + h
    return emb + n * layer + head


def encoder_spec(c: Mapping[str, Any], name: str) -> ModelSpec:
    return opaque_spec(name, str(c.get("model_type", "bert")), encoder_params(c), "encoder")


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    assert rm.entry is not None
    c = rm.entry.config
    p = encoder_params(c)
    e = elem_bytes(wl)
    h, inter, heads = _i(c, "hidden_size"), _i(c, "intermediate_size"), _i(c, "num_attention_heads")
    max_pos = _i(c, "max_position_embeddings") - (2 if c.get("model_type") == "xlm-roberta" else 0)
    seq = min(wl.context, max_pos)
    t = wl.batch * seq
    weights = Component("weights", p * e, f"{p:,} parameters × {e} bytes ({wl.dtype})")
    layer = t * (5 * h + 2 * inter) * e
    scores = wl.batch * heads * seq * seq * e * 3 if wl.attn == "eager" else 0
    ids = t * 8 * 3
    acts = Component(
        "activations",
        layer + scores + t * h * e + ids,
        f"batch {wl.batch} × {seq:,} tokens: one layer's hidden/q/k/v/attention output and its "
        f"{inter}-wide intermediate + GELU"
        + (", score matrices (eager)" if scores else "")
        + "; embeddings output, ids and masks",
    )
    assumptions = [
        "engine: PyTorch + transformers (or sentence-transformers) forward pass under no_grad, SDPA attention",
        f"batch {wl.batch} × {seq:,} tokens (capped at the model's {max_pos:,} positions); no KV cache: an encoder "
        "reads the whole input once",
        f"weights and activations in {wl.dtype}",
    ]
    return finish(
        model=rm.entry.id,
        params=p,
        wl=wl,
        weights=weights,
        kv=None,
        activations=acts,
        assumptions=assumptions,
        phase="forward",
        extra={"family": {"kind": "embedding", "tokens": t}},
    )
