"""MLX (mlx-lm, LM Studio's MLX engine) on Apple Silicon: what one generation holds in unified memory.

* **Weights.** mlx-lm's affine quantization (`mlx_lm.convert -q`, `mx.quantize`): every Linear and the embedding in
  groups of 64 values, each group with a scale and a bias in the model's 16-bit dtype, so `bits + 32/64` bits per
  weight (4-bit: 4.5); norms and biases stay 16-bit. Unquantized: the checkpoint's bf16/fp16.
* **KV cache.** mlx-lm's `KVCache` grows its keys and values in steps of 256 tokens (`KVCache.step`): per attention
  layer `2 × kv_heads × head_dim × ceil(tokens / 256) × 256 × batch` values in the 16-bit dtype; sliding-window layers
  use a `RotatingKVCache` of the window.
* **Activations.** The prompt is processed in chunks of `prefill_step_size` = 2048 tokens (mlx_lm.generate); the
  peak is one chunk's feed-forward (gate, up and their product; the routed experts' for MoE) beside the residual
  stream, attention through `mx.fast.scaled_dot_product_attention` (no score matrix), and float32 logits of the last
  token only.
* **The limit.** Metal lets the GPU wire at most `recommendedMaxWorkingSetSize` (about 2/3 of unified memory up to
  36 GB, 3/4 above; `sudo sysctl iogpu.wired_limit_mb=<MiB>` raises it); mlx-lm raises MLX's wired limit to that
  size for large models. There is no CUDA context or allocator reserve term.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..components import Component
from ..details import MlxDetails
from ..errors import BadInput

if TYPE_CHECKING:
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate

GROUP = 64
KV_STEP = 256
PREFILL_STEP = 2048
MLX_BITS = {"mlx-2bit": 2, "mlx-3bit": 3, "mlx-4bit": 4, "mlx-5bit": 5, "mlx-6bit": 6, "mlx-8bit": 8}
# 16-bit weights named as a format (mlx-community's "-bf16" folders): the same as no --quant
MLX_16BIT = ("bf16", "bfloat16", "fp16", "f16", "float16")


def validate_options(wl: Workload) -> None:
    dev = wl.device
    if dev is not None and dev.vendor != "apple":
        raise BadInput(f"engine: MLX runs on Apple silicon only, not on {dev.name}", field="engine")
    if wl.quant is not None and wl.quant not in MLX_BITS and wl.quant.lower() not in MLX_16BIT:
        raise BadInput(
            f"quant: MLX runs its own quantized weights ({', '.join(MLX_BITS)}) or 16-bit ones (bf16, fp16, or no "
            f"--quant), not {wl.quant!r}",
            field="quant",
        )
    if wl.quant is not None and wl.quant.lower() in MLX_16BIT and wl.dtype == "float32":
        raise BadInput(f"quant: {wl.quant} weights are 16-bit; --dtype float32 says otherwise", field="quant")


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    from ..result import Estimate

    validate_options(wl)
    spec = rm.spec
    e = 4 if wl.dtype == "float32" else 2
    quant_bits = MLX_BITS.get(wl.quant or "")
    bits = quant_bits + 32 / GROUP if quant_bits else 8.0 * e
    quantizable = sum(la.linear_params + la.router_params for la in spec.layers) + spec.embed_params + spec.head_params
    small = sum(la.small_params for la in spec.layers) + spec.final_params + spec.extra_params
    weights = math.ceil(quantizable * bits / 8) + small * e

    tokens = wl.context + wl.new_tokens
    cells = math.ceil(tokens / KV_STEP) * KV_STEP
    kv = 0
    for la in spec.layers:
        a = la.attention
        if a is None:
            if la.mixer is not None:
                kv += la.mixer.state_elems * e * wl.batch
            continue
        n = min(cells, a.sliding_window) if a.sliding_window else cells
        kv += n * a.cache_elems_per_token() * e * wl.batch

    chunk = min(wl.context, PREFILL_STEP)
    h = spec.hidden_size
    ffn = 0
    for la in spec.layers:
        m = la.mlp
        if m is None:
            continue
        width = m.experts_per_token * m.intermediate_size if m.kind == "moe" else m.intermediate_size
        ffn = max(ffn, 3 * width + (m.shared_intermediate_size or 0) * 3)
    att = max((la.attention.q_width + 2 * la.attention.kv_width for la in spec.layers if la.attention), default=0)
    acts = wl.batch * chunk * (4 * h + max(ffn, att)) * e + wl.batch * spec.vocab_size * 4

    total = weights + kv + acts
    gb = 1024**3
    limit = f"{wl.device.memory_bytes / gb:,.1f} GiB" if wl.device else "about 2/3 (≤ 36 GB) or 3/4 of RAM"
    breakdown = (
        Component(
            "weights",
            weights,
            (
                f"MLX {quant_bits}-bit affine, group {GROUP} (+ 16-bit scale and bias per "
                f"group = {bits:g} bits/weight); norms and biases 16-bit"
            )
            if quant_bits
            else f"{spec.params:,} parameters in {wl.dtype}",
        ),
        Component(
            "kv_cache",
            kv,
            f"KVCache grown in steps of {KV_STEP}: {cells:,} slots × batch {wl.batch} × "
            f"{e} bytes (sliding-window layers keep their window)",
        ),
        Component(
            "activations",
            acts,
            f"prefill chunk of {chunk:,} tokens (prefill_step_size {PREFILL_STEP}): "
            "residual stream and the widest feed-forward or q/k/v, fused SDPA (no scores); float32 logits of "
            "the last token",
        ),
    )
    return Estimate(
        model=spec.name,
        params=spec.params,
        active_params=spec.active_params,
        engine="mlx",
        workload=wl,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        activation_bytes=acts,
        peak_allocated_bytes=total,
        total_bytes=total,
        breakdown=breakdown,
        binding_phase="prefill chunk",
        assumptions=(
            "engine: MLX (mlx-lm generate/server, LM Studio's MLX engine) on an Apple GPU, unified memory",
            f"GPU working-set limit (Metal recommendedMaxWorkingSetSize): {limit}; raise it with "
            "`sudo sysctl iogpu.wired_limit_mb=<MiB>`; no CUDA context",
            *spec.notes,
        ),
        details=MlxDetails(kv_slots=cells, prefill_chunk=chunk, bits_per_weight=bits),
    )
