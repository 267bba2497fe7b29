"""KV cache: the seed's formula 2 × layers × kv_heads × head_dim × tokens × bytes, generalized per layer.

Per attention layer and token: num_kv_heads × (head_dim_k + head_dim_v) elements; multi-head latent attention keeps
kv_lora_rank + rope dims instead (one shared latent, not per head). Sliding-window layers keep at most `window`
tokens once the engine trims them; state-space / convolution layers keep a fixed state per sequence instead.
"""

from __future__ import annotations

from ..model import Layer, ModelSpec
from . import Component


def layer_kv_bytes(layer: Layer, batch: int, tokens: int, kv_bytes: float, *, trim_window: bool = True) -> int:
    """One layer's cache for `batch` sequences of `tokens` tokens."""
    att = layer.attention
    if att is None:
        return 0
    kept = min(tokens, att.sliding_window) if (trim_window and att.sliding_window) else tokens
    return int(batch * kept * att.cache_elems_per_token() * kv_bytes)


def total_kv_bytes(model: ModelSpec, batch: int, tokens: int, kv_bytes: float, *, trim_window: bool = True) -> int:
    """All layers' cache, evaluating each distinct layer once."""
    return sum(
        n * layer_kv_bytes(layer, batch, tokens, kv_bytes, trim_window=trim_window)
        for layer, n in model.distinct_layers
    )


def state_bytes(model: ModelSpec, batch: int, elem_bytes: float) -> int:
    """Fixed-size recurrent state of convolution / state-space layers."""
    return int(batch * sum(layer.mixer.state_elems for layer in model.layers if layer.mixer) * elem_bytes)


def kv_cache_bytes(
    model: ModelSpec, batch: int, tokens: int, kv_bytes: float, *, trim_window: bool = True, kv_dtype_name: str = "bf16"
) -> Component:
    """Whole-model KV cache for `batch` sequences of `tokens` tokens."""
    total = total_kv_bytes(model, batch, tokens, kv_bytes, trim_window=trim_window)
    state = state_bytes(model, batch, kv_bytes if kv_bytes >= 2 else 2)
    total += state
    mixers = [layer.mixer for layer in model.layers if layer.mixer is not None]
    fixed = (
        (
            f"; plus the fixed state of {len(mixers)} {mixers[0].kind} layers ({state / 2**20:,.1f} MiB for batch "
            f"{batch}, whatever the context)"
        )
        if mixers
        else ""
    )
    shared = sum(1 for layer in model.attention_layers if layer.attention and layer.attention.shares_kv_of is not None)
    if shared:
        fixed += f"; {shared} layers reuse an earlier layer's cache"
    atts = model.attention_layers
    if not atts:
        return Component("kv_cache", total, "no attention layers: fixed recurrent state only")
    a = atts[0].attention
    assert a is not None
    if a.kind == "mla":
        index = f" + indexer keys {a.index_elems}" if a.index_elems else ""
        per = f"{len(atts)} layers × (latent {a.kv_lora_rank} + rope {a.rope_head_dim}{index})"
    else:
        per = f"2 × {len(atts)} layers × {a.num_kv_heads} kv heads × {a.head_dim} head dim"
    windows = sorted(
        {layer.attention.sliding_window for layer in atts if layer.attention and layer.attention.sliding_window}
    )
    win = f"; sliding layers keep ≤ {windows[0]} tokens" if windows and trim_window else ""
    return Component(
        "kv_cache",
        total,
        f"{per} × {tokens:,} tokens × batch {batch} × {kv_bytes:g} bytes ({kv_dtype_name}){win}{fixed}",
    )
