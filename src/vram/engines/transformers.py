"""PyTorch + transformers (`model.generate()` with a DynamicCache): how its peak memory is made up.

The peak of `generate()` is the prefill forward pass at the last layer (all layers' cache written), unless decoding
is heavier (huge batches, MoE expert gathering). Within a layer the live tensors are, per prompt token:

* for the whole forward: the token embeddings (`inputs_embeds` stays referenced), the running hidden state, the
  rotary cos/sin tables, int64 ids/positions/attention mask, and any materialised attention mask (b × L × L bools
  when a sliding window is shorter than the prompt; eager attention always needs an additive mask);
* attention: normed input, q/k/v, rotary temporaries, expanded k/v for grouped-query heads when a mask forces
  the non-GQA path, the output and its contiguous copy; eager attention also materialises the scores: matmul,
  scaling, mask add, then `softmax(dtype=float32)` which for bf16 inputs converts a copy before the softmax, so
  5 score-sized bf16 buffers at once (4 for fp16 on CUDA, which has a half-to-float kernel);
* SDPA in float32 with grouped-query heads and no mask: transformers then passes `enable_gqa=True`, which only the
  flash kernel (16-bit only) accepts besides the math fallback in PyTorch 2.11, so the math kernel runs
  (`_scaled_dot_product_attention_math`): q scaled, k and v `repeat_interleave`d to every head, k scaled again, a
  float32 L × L causal mask, the float32 scores and their softmax — two score matrices at once. Without a mask and
  with as many kv heads as query heads, or with a mask (transformers then repeats k/v itself), the memory-efficient
  kernel takes float32 and keeps no score matrix;
* MLP: the residual, the normed input and three intermediate-sized tensors (act(gate), up, their product); fused
  gate_up (Phi-3) holds four; MoE with grouped matmuls holds top_k copies of the routed tokens, the gathered
  outputs, their weighted copy and its re-ordered copy (float32 when the router weights are float32).

Everything here was checked against `torch.cuda.max_memory_allocated()` on an H200 (PyTorch 2.11, transformers
5.17) with memory snapshots; see measurements/ in the repository.
"""

from __future__ import annotations

from ..components import Component
from ..components.kv_cache import kv_cache_bytes, layer_kv_bytes, state_bytes, total_kv_bytes
from ..components.runtime import DEFAULT_ARCH, allocator_reserve, cublas_workspace, cuda_context
from ..components.weights import common_weights, weight_blocks, weight_scheme
from ..dtypes import dtype_bytes
from ..model import Layer, ModelSpec, linear_shapes
from ..records import record
from ..request import Workload
from ..resolved import ResolvedModel
from ..result import Estimate
from ..traits import traits_of

# int64 tensors alive during generate's prefill, per token: input_ids, attention_mask, position_ids, cache_position
IDS_BYTES_PER_TOKEN = 32

# Which temporaries exist depends on the model_type's traits (vram.traits): fused gate_up, float32 router weights,
# gelu_new's elementwise steps (0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))), post-norms only, two rope tables, and
# eager attention with attention sinks (gpt-oss): the sink logits are concatenated to the scores, the row maximum is
# subtracted and the softmax runs in the input dtype, so the masked scores, the concatenated logits and their
# max-subtracted copy and the probabilities make 3 score-sized buffers at once, whatever the dtype.


@record(frozen=True)
class Phase:
    name: str
    bytes: int
    detail: str


def _mlp_temp_per_token(model: ModelSpec, layer: Layer, e: int) -> tuple[int, str]:
    """Peak temporary bytes per token inside the MLP (beyond its input), and how it arises."""
    m = layer.mlp
    h = model.hidden_size
    if m is None:
        return 0, "no MLP"
    if m.kind == "moe":
        k = m.experts_per_token
    inter = m.intermediate_size
    if m.kind == "gated":
        if traits_of(model.model_type).fused_gate_up:
            return 4 * inter * e, f"fused gate_up (2×{inter}) + act + product"
        return 3 * inter * e, f"act(gate), up and their product (3 × {inter})"
    if m.kind == "plain":
        if traits_of(model.model_type).gelu_temporaries:
            return 4 * inter * e, f"up and the elementwise GELU temporaries (4 × {inter})"
        return 2 * inter * e, f"up and activation (2 × {inter})"
    # MoE, grouped_mm experts (transformers' default on CUDA): see module docstring
    w = 4 if traits_of(model.model_type).router_fp32 else e
    routed = k * max(e * (h + 4 * inter), e * (3 * h + inter), h * (2 * e + 2 * w))
    router = m.num_experts * (e + 4) + k * 24
    shared = 0
    if m.shared_intermediate_size:
        shared = h * e + 3 * m.shared_intermediate_size * e  # experts' output alive while shared MLP runs
    return max(
        routed + router, shared
    ), f"{k} of {m.num_experts} experts: routed copies of the tokens, gathered outputs, weighted and re-ordered copies"


def _attention_temp_per_token(model: ModelSpec, layer: Layer, e: int, expand_kv: bool) -> int:
    """Peak temporary bytes per token inside attention (beyond the layer input), excluding score matrices."""
    a = layer.attention
    h = model.hidden_size
    if a is None:
        mixer = layer.mixer
        if mixer is None:
            return h * e
        if mixer.kind in ("mamba", "mamba2"):
            # transformers' pure-PyTorch scan (no mamba-ssm kernels): discretized A and B·u materialised in float32
            state = mixer.state_elems // max(1, mixer.inner_size)
            return h * e + 6 * mixer.inner_size * e + 2 * mixer.inner_size * min(state, 256) * 4
        return h * e + 3 * mixer.inner_size * e
    if a.kind == "mla":
        q = a.num_heads * a.head_dim * e
        kvb = a.num_heads * (a.head_dim - a.rope_head_dim + a.v_head_dim) * e
        out = a.num_heads * a.v_head_dim * e
        return h * e + 2 * q + kvb + q + 2 * out + (a.kv_lora_rank + a.rope_head_dim) * e
    q = a.num_heads * a.head_dim * e
    kv = a.num_kv_heads * a.head_dim * e
    rope = 4 * q + 2 * kv  # q, q*cos, rotate_half(q)*sin, q_embed with k and v alive
    after = 3 * q + 2 * kv + (2 * q if expand_kv and a.num_kv_heads != a.num_heads else 0)
    return h * e + max(rope, after)


def sdpa_runs_math_kernel(model: ModelSpec, layer: Layer, e: int, attn: str, masked: bool) -> bool:
    """Whether PyTorch's SDPA falls back to its math kernel for this layer (see the module docstring)."""
    a = layer.attention
    return (
        attn == "sdpa" and e == 4 and a is not None and a.kind != "mla" and not masked and a.num_kv_heads < a.num_heads
    )


def math_sdpa_peak_bytes(layer: Layer, batch: int, tokens: int) -> int:
    """Bytes the float32 math kernel holds at its softmax, beyond the attention module's own q/k/v: scores and
    softmax output (batch × heads × L × L each), the L × L float32 causal mask, the scaled q, the head-expanded k
    (and its scaled copy) and v."""
    a = layer.attention
    assert a is not None
    scores = batch * a.num_heads * tokens * tokens * 4
    per_head = batch * tokens * a.num_heads * 4
    return 2 * scores + tokens * tokens * 4 + per_head * (a.head_dim + 2 * a.head_dim + a.v_head_dim)


def _norm_temp_per_token(h: int) -> int:
    """RMSNorm in float32: the upcast copy and x * rsqrt(var) alive together."""
    return 8 * h


@record(frozen=True)
class ForwardProfile:
    peak_bytes: int
    kv_bytes: int
    persistent_bytes: int
    phase: Phase


def prefill_profile(
    model: ModelSpec,
    batch: int,
    tokens: int,
    e: int,
    kv_bytes: float,
    attn: str,
    masked_from_generate: bool = True,
    with_cache: bool = True,
    fp16: bool = False,
) -> ForwardProfile:
    """Peak of one full forward over `batch` × `tokens` prompt tokens with a cache being filled (or none)."""
    t = batch * tokens
    h = model.hidden_size
    rope_tables = traits_of(model.model_type).rope_tables * 2 * model.rope_dim * e
    persistent = t * (2 * h * e + rope_tables + IDS_BYTES_PER_TOKEN)
    # attention masks built once per forward
    mask_bytes = 0
    windows = model.sliding_windows
    # hybrid models (convolution / state-space layers beside attention) with a cache build a full causal mask
    hybrid_mask = with_cache and model.has_state_mixers
    need_full_mask = attn == "eager"
    sliding_masks = {w for w in windows if tokens > w}
    mask_batch = batch if masked_from_generate else 1
    if need_full_mask:
        mask_bytes += mask_batch * tokens * tokens * e * (1 + len(sliding_masks))
    else:
        mask_bytes += mask_batch * tokens * tokens * (len(sliding_masks) + (1 if hybrid_mask else 0))
    persistent += mask_bytes
    per_layer: dict[int, tuple[int, Phase]] = {}  # models repeat 1-3 distinct (interned) layers: evaluate once

    def evaluate(layer: Layer) -> tuple[int, Phase]:
        kv_layer = layer_kv_bytes(layer, batch, tokens, kv_bytes, trim_window=False) if with_cache else 0
        if with_cache and layer.mixer is not None:
            kv_layer += batch * layer.mixer.state_elems * e  # its fixed conv / recurrent state, written as it runs
        a = layer.attention
        masked = a is not None and (
            attn == "eager" or hybrid_mask or (a.sliding_window is not None and tokens > a.sliding_window)
        )
        att = t * _attention_temp_per_token(model, layer, e, expand_kv=masked)
        scores = 0
        if sdpa_runs_math_kernel(model, layer, e, attn, masked):
            scores = math_sdpa_peak_bytes(layer, batch, tokens)
        elif a is not None and attn == "eager":
            s = batch * a.num_heads * tokens * tokens * e
            # bf16: scores, scaled, masked, a float32 converted copy and the float32 softmax (5 bf16-sized units);
            # fp16 has CUDA's half-to-float softmax (no converted copy, 4); float32: scaled + softmax output (2)
            units = (4 if fp16 else 5) if e == 2 else 2
            scores = (3 if traits_of(model.model_type).sink_softmax_in_dtype else units) * s
        mlp_temp, mlp_how = _mlp_temp_per_token(model, layer, e)
        kept = 2 * h * e if traits_of(model.model_type).pre_norms else h * e  # residual (+ normed input)
        phases = (
            Phase(
                "attention",
                att + scores,
                "attention: q/k/v, rotary temporaries"
                + (
                    (
                        ", score matrices (eager)"
                        if attn == "eager"
                        else ", float32 score matrices of SDPA's math kernel (grouped-query heads in float32)"
                    )
                    if scores
                    else ""
                ),
            ),
            Phase("mlp", t * (kept + mlp_temp), f"MLP: residual, normed input, {mlp_how}"),
            Phase("norm", t * (h * e + _norm_temp_per_token(h)), "RMSNorm float32 temporaries"),
        )
        return kv_layer, max(phases, key=lambda p: p.bytes)

    best_i, best_phase, best_total = 0, Phase("", 0, ""), -1
    kv_so_far = 0
    for i, layer in enumerate(model.layers):
        key = id(layer)
        if key not in per_layer:
            per_layer[key] = evaluate(layer)
        kv_layer, ph = per_layer[key]
        kv_so_far += kv_layer
        if kv_so_far + ph.bytes > best_total:
            best_i, best_phase, best_total = i, ph, kv_so_far + ph.bytes
    best = Phase(f"prefill layer {best_i} {best_phase.name}", best_phase.bytes, best_phase.detail)
    kv_total = kv_so_far if with_cache else 0  # attention caches and the mixers' fixed state
    return ForwardProfile(
        peak_bytes=persistent + best_total, kv_bytes=kv_total, persistent_bytes=persistent, phase=best
    )


def decode_peak_bytes(model: ModelSpec, batch: int, tokens: int, e: int, kv_bytes: float) -> tuple[int, str]:
    """Peak while decoding at `tokens` cached tokens: the cache, one layer's cat() copy, logits, MoE gathers."""
    kv = total_kv_bytes(model, batch, tokens, kv_bytes) + state_bytes(model, batch, e)
    biggest_layer = max(
        (layer_kv_bytes(layer, batch, tokens, kv_bytes) for layer, _ in model.distinct_layers), default=0
    )
    logits = batch * model.vocab_size * (e + 4 + 4)
    moe = 0
    for layer, _ in model.distinct_layers:
        m = layer.mlp
        if m is not None and m.kind == "moe":
            moe = max(moe, batch * m.experts_per_token * 3 * m.intermediate_size * model.hidden_size * e)
    acts = batch * 16 * model.hidden_size * e
    return kv + biggest_layer + logits + moe + acts, "decode step: cache + one layer's grown copy + logits" + (
        " + gathered expert weights (batched_mm)" if moe else ""
    )


def inference_components(
    model: ModelSpec,
    batch: int,
    context: int,
    new_tokens: int,
    e: int,
    kv_bytes: float,
    attn: str,
    kv_name: str,
    fp16: bool = False,
) -> tuple[list[Component], int, int, str]:
    """Components of generate()'s peak (allocated bytes, excluding weights/workspace), the KV cache bytes at the
    peak and the bytes the allocator re-allocates while decoding; plus which phase binds."""
    comps: list[Component] = []
    if not model.use_cache:
        # config.use_cache = False: generate() keeps no cache and re-runs the whole sequence at every step; the
        # last step (context + new_tokens - 1 tokens) is the largest forward
        last = context + max(0, new_tokens - 1)
        full = prefill_profile(model, batch, last, e, kv_bytes, attn, with_cache=False, fp16=fp16)
        comps.append(Component("kv_cache", 0, "config.use_cache is false: generate() keeps no cache"))
        comps.append(
            Component(
                "activations",
                full.peak_bytes,
                f"{full.phase.name} over {last:,} tokens (the last "
                f"step re-runs the whole sequence): {full.phase.detail}",
            )
        )
        return comps, 0, 0, f"full re-forward at {last:,} tokens"
    pre = prefill_profile(model, batch, context, e, kv_bytes, attn, fp16=fp16)
    dec, dec_how = decode_peak_bytes(model, batch, context + new_tokens, e, kv_bytes) if new_tokens else (0, "")
    if dec > pre.peak_bytes:
        grown = total_kv_bytes(model, batch, context + new_tokens, kv_bytes)  # re-allocated at every step
        kv_peak = grown + state_bytes(model, batch, e)  # the mixers' fixed state stays where it is
        formula = kv_cache_bytes(model, batch, context + new_tokens, kv_bytes, kv_dtype_name=kv_name).explanation
        comps.append(Component("kv_cache", kv_peak, f"DynamicCache while decoding: {formula}"))
        comps.append(Component("activations", dec - kv_peak, dec_how))
        return comps, kv_peak, grown, "decode"
    formula = kv_cache_bytes(model, batch, context, kv_bytes, trim_window=False, kv_dtype_name=kv_name).explanation
    sliding = bool(model.sliding_windows)
    comps.append(
        Component(
            "kv_cache",
            pre.kv_bytes,
            f"DynamicCache after prefill: {formula}"
            + ("; sliding-window layers still hold the whole prompt until the first decode step" if sliding else ""),
        )
    )
    comps.append(
        Component(
            "activations",
            pre.peak_bytes - pre.kv_bytes,
            f"{pre.phase.name}: {pre.phase.detail}; plus embeddings, hidden state, rotary tables, "
            "ids and masks kept for the whole forward",
        )
    )
    return comps, pre.kv_bytes, pre.kv_bytes, pre.phase.name


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    """Memory of `model.generate()` in PyTorch + transformers: weights, the cache, the peak temporaries of the
    binding phase, the cuBLAS workspace, the caching allocator's idle reserve and the CUDA context."""
    spec = rm.spec
    fallback_note = None
    if wl.attn != "eager" and traits_of(spec.model_type).eager_only:
        # transformers refuses SDPA / flash for these (attention sinks): the model runs eager attention
        fallback_note = f"{spec.model_type} supports only eager attention in transformers: estimated with eager"
        wl = wl.with_options(attn="eager")
    e = int(dtype_bytes(wl.dtype))
    kv_name = wl.kv_dtype or wl.dtype
    kv_b = dtype_bytes(kv_name)
    weights = common_weights(rm, wl)
    # PyTorch on a Mac runs on MPS: no CUDA context and no cuBLAS workspace (its caching allocator still keeps freed
    # blocks, so the reserve stays)
    mps = wl.device is not None and wl.device.vendor == "apple"
    ws = Component("cublas_workspace", 0, "") if mps else cublas_workspace(wl.arch)
    comps, kv_peak, kv_churn, phase = inference_components(
        spec, wl.batch, wl.context, wl.new_tokens, e, kv_b, wl.attn, kv_name, fp16=wl.dtype == "float16"
    )
    scheme = weight_scheme(spec, wl)
    if scheme.name in ("nf4", "nf4-nodq", "bnb-int8"):
        # bitsandbytes dequantizes a whole matrix to 16 bit for prompt-sized matmuls, one matrix at a time
        largest = max(
            (i * o for layer, _ in spec.distinct_layers for i, o in linear_shapes(spec, layer).values()), default=0
        )
        comps.append(
            Component(
                "dequantized_weight",
                2 * largest,
                "bitsandbytes dequantizes one weight matrix to "
                "16 bit at a time for prompt-sized matmuls (the largest shown)",
            )
        )
    elif scheme.is_quantized and scheme.gguf_mix is None:
        notes_q = "GPTQ/AWQ/FP8 kernels multiply the packed weights directly (no full dequantized copy)"
        comps.append(Component("dequantized_weight", 0, notes_q))
    if not scheme.is_quantized and not mps:
        # CUDA's caching allocator counts whole blocks; quantized formats and MPS allocate otherwise (not modelled)
        comps.insert(0, weight_blocks(spec, e))
    allocated = weights.bytes + ws.bytes + sum(c.bytes for c in comps)
    acts = next(c.bytes for c in comps if c.name == "activations")
    stranded = 0
    if wl.attn == "eager" and spec.attention_layers:
        a = spec.attention_layers[-1].attention
        assert a is not None
        stranded = wl.batch * a.num_heads * wl.context * wl.context * e
    reserve = allocator_reserve(kv_churn if wl.new_tokens else 0, acts, stranded)
    ctx = Component("cuda_context", 0, "") if mps else cuda_context(wl.arch)
    breakdown = (weights, *comps, reserve) if mps else (weights, *comps, ws, reserve, ctx)
    assumptions = [
        "engine: PyTorch + transformers generate() with a DynamicCache, greedy decoding, no padding",
        f"weights and activations in {wl.dtype}; KV cache in {kv_name}",
        f"attention: {wl.attn}"
        + (
            " (scores materialised per layer)"
            if wl.attn == "eager"
            else " (no score matrix; a bool mask only where a sliding window is shorter than the prompt)"
        ),
        f"peak binds in: {phase}",
        "peak_allocated_bytes = the tensors at the peak (torch.mps.current_allocated_memory()); total_bytes adds the "
        "caching allocator's idle reserve. MPS (Apple GPU): no CUDA context or cuBLAS workspace; Metal's own driver "
        "memory is not modelled (not measured); the limit is the GPU working set (recommendedMaxWorkingSetSize)"
        if mps
        else "peak_allocated_bytes = torch.cuda.max_memory_allocated() over the run; total_bytes adds the CUDA "
        "context and the caching allocator's idle reserve (what nvidia-smi would show)",
    ]
    assumptions.extend(spec.notes)
    if fallback_note:
        assumptions.append(fallback_note)
    assumptions.extend(rm.context_warnings(wl.context + wl.new_tokens))
    if wl.device is None:
        assumptions.append(f"device: none given; CUDA context and cuBLAS workspace of a {DEFAULT_ARCH} GPU (H100/H200)")
    return Estimate(
        model=spec.name,
        params=spec.params,
        active_params=spec.active_params,
        engine="transformers",
        workload=wl,
        weights_bytes=weights.bytes,
        kv_cache_bytes=kv_peak,
        # decoding, a sliding layer's cache is its window (DynamicSlidingWindowLayer), whatever prefill left
        kv_read_bytes=total_kv_bytes(spec, wl.batch, wl.context + wl.new_tokens, kv_b) + state_bytes(spec, wl.batch, e)
        if spec.sliding_windows and spec.use_cache
        else None,
        activation_bytes=acts,
        peak_allocated_bytes=allocated,
        total_bytes=allocated + reserve.bytes + ctx.bytes,
        breakdown=breakdown,
        assumptions=tuple(assumptions),
        binding_phase=phase,
    )
