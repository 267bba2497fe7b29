"""llama.cpp: what `llama_model_load` and `llama_init_from_model` allocate on the GPU.

* **Weights.** The tensors of the layers offloaded with `--n-gpu-layers` (the *last* N blocks), plus the output
  layer (final norm + output matrix) when N exceeds the block count (`-ngl 999`). The input layer (token
  embeddings) always stays on the CPU; a model with tied embeddings loads a second copy of `token_embd` for the
  output layer on the GPU. With a GGUF file the bytes are its tensors' own; otherwise they come from the quant mix.
* **KV cache.** Per attention layer: `kv_size × (n_embd_k_gqa × bytes(type_k) + n_embd_v_gqa × bytes(type_v))`,
  on the device of that layer. `kv_size` is n_ctx padded up to a multiple of 256. Cache types f16 (default), bf16,
  f32, q8_0 (34 bytes per 32 values), q4_0 (18/32), q4_1, q5_0, q5_1, iq4_nl; a quantized V cache needs flash
  attention. Sliding-window layers (Gemma 2/3, gpt-oss) get their own cache of `min(kv_size, pad(n_swa × n_seq +
  n_ubatch, 256))` cells.
* **Compute buffer.** ggml's graph allocator reserves the worst-case graph: n_ubatch tokens (at most n_ctx) attending
  to the whole cache, every token producing logits. Its size is the largest set of f32 tensors alive at one point of
  that graph: the output (logits n_vocab × n_ubatch plus the normed hidden state), the FFN (gate, up and their
  product), or attention, which without flash attention holds the score matrix n_kv × n_ubatch × n_head.
* **Output buffer.** Host memory (pinned), not on the GPU: logits of n_seq_max rows × n_vocab f32.
* **CUDA context.** The driver context and cuBLAS handle: measured typical values, not part of llama.cpp's log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..components import Component
from ..components.weights import weights_bytes
from ..dtypes import quant_scheme
from ..errors import BadInput

if TYPE_CHECKING:
    from ..estimate import Estimate, ResolvedModel, Workload
    from ..model import ModelSpec

KV_PAD = 256
MIB = 1024**2
# bytes per value of each cache type (ggml block size / bytes per block)
CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18), "q4_1": (32, 20),
    "q5_0": (32, 22), "q5_1": (32, 24), "iq4_nl": (32, 18),
}
_FROM_KV_DTYPE = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "int8": "q8_0", "int4": "q4_0",
                  "float8": "q8_0"}
# llama.cpp's CUDA backend without PyTorch: driver context + cuBLAS handle. An assumed typical value (reports range
# ~250-400 MiB on recent GPUs); not yet measured by this project, unlike the buffers llama.cpp logs.
LLAMA_CUDA_CONTEXT_BYTES = 300 * MIB


def pad(n: int, to: int = KV_PAD) -> int:
    return -(-n // to) * to


def cache_type(name: str | None, kv_dtype: str | None, which: str) -> str:
    """The llama.cpp cache type for --cache-type-k/-v (or the workload's kv dtype)."""
    if name:
        key = name.strip().lower()
        if key not in CACHE_TYPES:
            raise BadInput(f"cache_type_{which}: unknown llama.cpp cache type {name!r} "
                           f"(use {', '.join(CACHE_TYPES)})", field=f"cache_type_{which}")
        return key
    if kv_dtype:
        return _FROM_KV_DTYPE.get(kv_dtype, "f16")
    return "f16"


def cache_row_bytes(type_name: str, n: int) -> int:
    block, size = CACHE_TYPES[type_name]
    return -(-n // block) * size


@dataclass(frozen=True)
class LayerPlacement:
    n_layer: int
    n_gpu_layers: int  # blocks on the GPU (the last ones)
    output_on_gpu: bool

    def on_gpu(self, i: int) -> bool:
        return i >= self.n_layer - self.n_gpu_layers


def placement(n_layer: int, ngl: int | None) -> LayerPlacement:
    """llama.cpp: i_gpu_start = max(n_layer - ngl, 0); the output layer counts as block n_layer."""
    if ngl is None or ngl < 0:
        ngl = n_layer + 1
    return LayerPlacement(n_layer, min(ngl, n_layer), ngl > n_layer)


def kv_layer_bytes(spec: ModelSpec, i: int, kv_cells: int, swa_cells: int, tk: str, tv: str) -> int:
    layer = spec.layers[i]
    a = layer.attention
    if a is None:
        return 0
    if a.kind == "mla":
        k_elems, v_elems = a.kv_lora_rank + a.rope_head_dim, a.kv_lora_rank
    else:
        k_elems, v_elems = a.num_kv_heads * a.head_dim, a.num_kv_heads * a.v_head_dim
    cells = swa_cells if a.sliding_window else kv_cells
    return cells * (cache_row_bytes(tk, k_elems) + cache_row_bytes(tv, v_elems))


def compute_buffer_bytes(spec: ModelSpec, n_tokens: int, n_kv: int, flash_attn: bool, n_outputs: int,
                         n_kv_swa: int | None = None) -> tuple[int, str]:
    """Peak f32 working set of the reserved worst-case graph (one backend holding every layer)."""
    h = spec.hidden_size
    f32 = 4
    out = n_outputs * spec.vocab_size * f32 + 2 * n_tokens * h * f32  # logits, normed and un-normed hidden state
    ffn = att = 0
    for layer in spec.layers:
        m = layer.mlp
        if m is not None:
            inter = m.intermediate_size
            if m.kind == "moe":
                k = m.experts_per_token
                # routed: per selected expert gate/up/product rows, plus the router logits and weights
                ffn = max(ffn, n_tokens * (k * 3 * inter + 2 * m.num_experts + 4 * h) * f32)
            else:
                ffn = max(ffn, n_tokens * (3 * inter + 4 * h) * f32)
        a = layer.attention
        if a is not None:
            q = a.num_heads * a.head_dim
            kvw = a.num_kv_heads * (a.head_dim + a.v_head_dim)
            base = n_tokens * (2 * h + 2 * q + kvw) * f32
            if flash_attn:
                att = max(att, base + n_tokens * a.num_heads * a.v_head_dim * f32)
            else:
                kv_here = (n_kv_swa or n_kv) if a.sliding_window else n_kv
                # the score matrix (softmax in place) and the merged attention output beside it
                att = max(att, base + n_tokens * kv_here * a.num_heads * f32 + n_tokens * q * f32)
    # the KQ mask is a graph input alive through every layer (f16 for flash attention, f32 otherwise; one per cache
    # when sliding-window layers have their own), freed before the output layer
    has_swa = any(la.attention and la.attention.sliding_window for la in spec.layers)
    mask = (n_kv + ((n_kv_swa or n_kv) if has_swa else 0)) * n_tokens * (2 if flash_attn else 4)
    phases = {"output (logits)": out, "feed-forward + KQ mask": ffn + mask, "attention + KQ mask": att + mask}
    name = max(phases, key=lambda k: phases[k])
    return phases[name], name


def _weights_split(rm: ResolvedModel, wl: Workload, pl: LayerPlacement) -> tuple[int, int, str]:
    """(bytes on the GPU, total bytes, explanation)."""
    from ..sources.gguf import GgufWeights

    spec = rm.spec
    w = rm.weights_info
    if isinstance(w, GgufWeights) and wl.quant is None:
        layers = sum(b for i, b in w.layer_bytes.items() if pl.on_gpu(i))
        out = w.output_bytes if pl.output_on_gpu else 0
        dup = w.input_bytes if pl.output_on_gpu and spec.tie_word_embeddings else 0
        how = f"GGUF tensors: {pl.n_gpu_layers}/{pl.n_layer} blocks" + (
            " + output layer" if pl.output_on_gpu else "") + (" (tied: token_embd copied for the output)"
                                                             if dup else "") + "; token_embd stays on the CPU"
        return layers + out + dup, w.bytes, how
    scheme = quant_scheme(wl.quant, dtype="float16" if wl.quant is None else wl.dtype)
    total = weights_bytes(spec, scheme).bytes
    embed_b = math.ceil(spec.embed_params * scheme.embed_bits / 8)
    head_b = math.ceil(spec.head_params * scheme.head_bits / 8) + spec.final_params * 4
    per_layer = [0] * spec.num_layers
    rest = max(0, total - embed_b - head_b)
    layer_params = [layer.params for layer in spec.layers]
    lp_total = max(1, sum(layer_params))
    for i, p in enumerate(layer_params):
        per_layer[i] = rest * p // lp_total
    gpu = sum(b for i, b in enumerate(per_layer) if pl.on_gpu(i))
    if pl.output_on_gpu:
        gpu += head_b + (embed_b if spec.tie_word_embeddings else 0)
    return gpu, total, f"{scheme.name}: {pl.n_gpu_layers}/{pl.n_layer} blocks" + (
        " + output layer" if pl.output_on_gpu else "") + "; token_embd stays on the CPU"


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    from ..estimate import Estimate

    spec = rm.spec
    tk = cache_type(wl.cache_type_k, wl.kv_dtype, "k")
    tv = cache_type(wl.cache_type_v, wl.kv_dtype, "v")
    if tv not in ("f16", "bf16", "f32") and not wl.flash_attn:
        raise BadInput("llama.cpp needs flash attention (-fa) for a quantized V cache", field="cache_type_v")
    n_seq = wl.batch
    n_ctx = pad(wl.context * n_seq)
    n_ubatch = min(wl.n_ubatch, wl.n_batch, n_ctx)
    windows = [layer.attention.sliding_window for layer in spec.layers if layer.attention and
               layer.attention.sliding_window]
    swa_cells = min(n_ctx, pad(max(windows) * n_seq + n_ubatch)) if windows else n_ctx
    pl = placement(spec.num_layers, wl.n_gpu_layers)

    w_gpu, w_total, w_how = _weights_split(rm, wl, pl)
    kv_gpu = kv_cpu = 0
    for i in range(spec.num_layers):
        b = kv_layer_bytes(spec, i, n_ctx, swa_cells, tk, tv)
        if pl.on_gpu(i):
            kv_gpu += b
        else:
            kv_cpu += b
    state = sum(layer.mixer.state_elems for layer in spec.layers if layer.mixer) * 4 * n_seq
    comp, phase = compute_buffer_bytes(spec, n_ubatch, n_ctx, wl.flash_attn, n_ubatch, swa_cells)
    any_gpu = pl.n_gpu_layers > 0 or pl.output_on_gpu
    comp_gpu = comp if any_gpu else 0
    out_host = n_seq * spec.vocab_size * 4
    ctx_bytes = LLAMA_CUDA_CONTEXT_BYTES if any_gpu else 0

    att_layers = len(spec.attention_layers)
    breakdown = (
        Component("weights", w_gpu, f"{w_how}; {w_total:,} bytes in all, {w_total - w_gpu:,} on the CPU"),
        Component("kv_cache", kv_gpu + (state if any_gpu else 0),
                  f"{att_layers} attention layers × {n_ctx:,} cells (n_ctx {wl.context:,} × {n_seq} seq padded to "
                  f"{KV_PAD}) × K {tk} + V {tv}" + (f"; sliding-window layers {swa_cells:,} cells" if windows else "")
                  + (f"; {kv_cpu:,} bytes on the CPU for CPU layers" if kv_cpu else "")),
        Component("compute_buffer", comp_gpu,
                  f"ggml graph reserve for n_ubatch {n_ubatch} × n_kv {n_ctx:,}, flash attention "
                  f"{'on' if wl.flash_attn else 'off'}; largest phase: {phase}"),
        Component("cuda_context", ctx_bytes, "CUDA driver context and cuBLAS handle (assumed typical value, not "
                  "measured; not in llama.cpp's log)"),
    )
    allocated = w_gpu + kv_gpu + (state if any_gpu else 0) + comp_gpu
    assumptions = [
        "engine: llama.cpp (llama-server / llama-cli), CUDA backend, one GPU, memory-mapped GGUF",
        f"n_gpu_layers {pl.n_gpu_layers if not pl.output_on_gpu else 'all'} of {pl.n_layer} blocks"
        + ("" if pl.output_on_gpu else " (output layer on the CPU)") + "; token embeddings stay on the CPU",
        f"n_ctx {n_ctx:,} = context {wl.context:,} × {n_seq} sequence(s), padded to a multiple of {KV_PAD}; "
        f"n_batch {wl.n_batch}, n_ubatch {n_ubatch}",
        f"KV cache types: K {tk}, V {tv}" + (" (a quantized V cache requires -fa)" if tv not in ("f16", "bf16", "f32")
                                             else ""),
        f"host memory, not counted: output buffer {out_host:,} bytes (logits of {n_seq} sequence(s)), the CPU "
        f"share of weights ({w_total - w_gpu:,} bytes) and of the KV cache ({kv_cpu:,} bytes)",
        "compute buffer as ggml's allocator sizes it for the worst-case graph (checked against llama.cpp's own "
        "log on the CPU backend: measurements/llama_cpp/RESULTS.md)",
        *(["partial offload: the GPU compute buffer is taken as the whole worst-case graph; llama.cpp also "
           "reserves a host compute buffer for the CPU layers, and with op offload (default) large batches may "
           "copy a CPU-resident weight matrix to the GPU while they run (not modelled)"]
          if 0 < pl.n_gpu_layers < pl.n_layer or (pl.n_gpu_layers and not pl.output_on_gpu) else []),
        *spec.notes,
    ]
    return Estimate(
        model=spec.name, params=spec.params, active_params=spec.active_params, engine="llama.cpp", workload=wl,
        weights_bytes=w_gpu, kv_cache_bytes=kv_gpu, activation_bytes=comp_gpu, peak_allocated_bytes=allocated,
        total_bytes=allocated + ctx_bytes, breakdown=breakdown, assumptions=tuple(assumptions),
        binding_phase=phase,
        extra={"llama_cpp": {"n_ctx": n_ctx, "n_ubatch": n_ubatch, "cache_type_k": tk, "cache_type_v": tv,
                             "n_gpu_layers": pl.n_gpu_layers, "output_on_gpu": pl.output_on_gpu,
                             "weights_total_bytes": w_total, "weights_cpu_bytes": w_total - w_gpu,
                             "kv_cpu_bytes": kv_cpu, "kv_total_bytes": kv_gpu + kv_cpu, "compute_bytes": comp,
                             "output_buffer_host_bytes": out_host, "swa_cells": swa_cells if windows else None}},
    )
