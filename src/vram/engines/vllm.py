"""vLLM (V1 engine, `vllm serve`): how it sizes itself on one GPU.

What vLLM documents and does at start-up (gpu worker, `determine_available_memory`):

1. After the CUDA context exists it takes a memory snapshot and sets ``requested_memory = gpu_memory_utilization ×
   total device memory``; it refuses to start when less than that is free. The CUDA context is therefore *outside*
   the budget.
2. It loads the weights, then runs a *profile run*: one forward pass over ``max_num_batched_tokens`` dummy tokens
   and a dummy sampler pass over ``max_num_seqs`` rows of logits, and records the torch peak (activations) and the
   memory allocated outside torch since the snapshot (NCCL buffers, cuBLAS/cuDNN handles: "non-torch memory").
3. ``KV cache = requested_memory − (weights + activation peak + non-torch memory)``, split into blocks of
   ``block_size`` (16) tokens × all layers' K and V. If that is ≤ 0 it fails with "No available memory for the cache
   blocks"; if one sequence of ``max_model_len`` tokens does not fit it refuses the max_model_len.
4. CUDA graphs are captured after the KV cache exists (unless ``--enforce-eager``); their pool comes on top of the
   budget (vLLM logs "Graph capturing finished ..., took X GiB"; 0.1-1 GiB in public H100 reports).

The scheduler then admits up to ``max_num_seqs`` sequences while their blocks fit: the concurrency a context allows
is ``kv_blocks // ceil(tokens / block_size)``.

Defaults for `vllm serve` (vLLM's engine-args defaults for the OpenAI server): ``max_num_batched_tokens`` 8192 and
``max_num_seqs`` 1024 on GPUs with ≥ 70 GiB, 2048 and 256 below.
"""

from __future__ import annotations

import math

from ..components import Component
from ..components.runtime import cuda_context
from ..dtypes import dtype_bytes
from ..estimate import Estimate, ResolvedModel, Workload, common_weights
from ..model import ModelSpec

GIB = 1024**3
MIB = 1024**2
DEFAULT_GPU_MEMORY_BYTES = 85_520_809_984  # an 80 GB H100 (nvidia-smi total), when no GPU is given
LARGE_GPU_BYTES = 70 * GIB
NON_TORCH_BYTES = 128 * MIB  # cuBLAS/cuDNN handles and other non-torch allocations on one GPU (0.13 GiB reported)
CUDA_GRAPH_BYTES = 512 * MIB  # CUDA graph pool captured after the KV cache (0.1-1 GiB in public H100 logs)
# Bytes per vocabulary entry per sequence in the dummy sampler run (top-k/top-p on): float32 logits (4), float32
# probabilities (4), sorted float32 values (4) and their int64 indices (8), float32 log-probabilities (4).
SAMPLER_BYTES_PER_LOGIT = 24


def default_max_num_batched_tokens(gpu_memory_bytes: int) -> int:
    return 8192 if gpu_memory_bytes >= LARGE_GPU_BYTES else 2048


def default_max_num_seqs(gpu_memory_bytes: int) -> int:
    return 1024 if gpu_memory_bytes >= LARGE_GPU_BYTES else 256


def kv_bytes_per_token(spec: ModelSpec, kv_elem_bytes: float) -> int:
    """K and V of one token over all attention layers (MLA: the latent and rope key)."""
    return int(sum(layer.attention.cache_elems_per_token() for layer in spec.layers if layer.attention)
               * kv_elem_bytes)


def profile_activation_bytes(spec: ModelSpec, tokens: int, max_num_seqs: int, e: int) -> tuple[int, str]:
    """Torch peak of vLLM's profile run beyond the weights.

    Tokens are flattened (no padding). Per token: the hidden state and residual (2 × hidden), plus the larger of the
    attention block (fused qkv output and attention output) and the MLP (fused gate_up output and the activation;
    MoE: fused_moe's intermediate caches of top_k × (2·inter + inter + hidden)). The sampler pass holds
    `max_num_seqs` × vocab logits and what sampling derives from them (SAMPLER_BYTES_PER_LOGIT), for the full
    vocabulary on every rank (tensor-parallel logits are gathered before sampling).

    Checked against public H100 profiles (vLLM V1, 8,192 batched tokens, 1,024 sequences): Llama-3.3-70B FP8 TP2
    reported 4.84 GiB of activations where this gives 3.84 GiB; gpt-oss-20b reported 7.38 GiB where this gives
    5.39 GiB. torch.compile's buffers are not modelled, so this errs low by 1-2 GiB.
    """
    h = spec.hidden_size
    per_token = 0
    how = ""
    for layer in spec.layers:
        a = layer.attention
        att = ((a.num_heads * a.head_dim + a.num_kv_heads * (a.head_dim + a.v_head_dim)) + a.num_heads * a.v_head_dim
               if a is not None else (layer.mixer.inner_size * 3 if layer.mixer else 0))
        m = layer.mlp
        mlp = 0
        if m is not None:
            if m.kind == "moe":
                mlp = m.experts_per_token * (3 * m.intermediate_size + h) + 3 * m.shared_intermediate_size
            elif m.kind == "gated":
                mlp = 3 * m.intermediate_size
            else:
                mlp = 2 * m.intermediate_size
        if max(att, mlp) > per_token:
            per_token = max(att, mlp)
            how = "MoE intermediate caches" if m is not None and m.kind == "moe" and mlp >= att else \
                ("attention qkv/output" if att >= mlp else "MLP gate_up + activation")
    forward = tokens * (2 * h + per_token) * e
    sampler = max_num_seqs * spec.vocab_size * SAMPLER_BYTES_PER_LOGIT
    return forward + sampler, (f"profile run: {tokens:,} tokens × (hidden state + residual + {how}) + sampler "
                               f"{max_num_seqs} × {spec.vocab_size:,} logits × {SAMPLER_BYTES_PER_LOGIT} bytes "
                               "(logits, probabilities, sorted values and indices, log-probabilities)")


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    """Memory vLLM needs on one GPU for `wl.batch` concurrent sequences of `wl.context + wl.new_tokens` tokens.

    ``total_bytes`` is what the workload needs (CUDA context + weights + profile peak + non-torch memory + the KV
    blocks of those sequences + CUDA graphs); ``extra`` carries what vLLM itself will reserve at
    ``gpu_memory_utilization`` (``reserved_bytes``), the KV cache it will create (``kv_cache_capacity_bytes``,
    ``kv_blocks``) and how many sequences of this length fit (``max_concurrent_sequences``).
    """
    spec = rm.spec
    device = wl.gpu_memory_bytes or DEFAULT_GPU_MEMORY_BYTES
    e = int(dtype_bytes(wl.dtype))
    kv_name = wl.kv_dtype or wl.dtype
    kv_elem = dtype_bytes(kv_name)
    weights = common_weights(rm, wl)
    batched_tokens = default_max_num_batched_tokens(device)
    max_seqs = wl.max_num_seqs or default_max_num_seqs(device)
    act_bytes, act_how = profile_activation_bytes(spec, batched_tokens, max_seqs, e)
    activations = Component("activations", act_bytes, act_how)
    non_torch = Component("non_torch_memory", NON_TORCH_BYTES, "allocations outside torch during the profile run "
                          "(cuBLAS/cuDNN handles; NCCL buffers are added per rank for multi-GPU splits)")
    ctx = cuda_context(wl.gpu_arch)
    graphs = Component("cuda_graphs", CUDA_GRAPH_BYTES, "CUDA graph pool captured after the KV cache is allocated, "
                       "outside gpu_memory_utilization (--enforce-eager drops it)")
    budget = int(wl.gpu_memory_utilization * device)
    per_token = kv_bytes_per_token(spec, kv_elem)
    block_bytes = max(1, per_token * wl.block_size)
    capacity = budget - weights.bytes - act_bytes - non_torch.bytes
    blocks = max(0, capacity // block_bytes)
    tokens = wl.context + wl.new_tokens
    blocks_per_seq = math.ceil(tokens / wl.block_size)
    max_concurrent = blocks // blocks_per_seq if per_token else max_seqs
    state = sum(layer.mixer.state_elems for layer in spec.layers if layer.mixer) * max(2.0, kv_elem)
    kv_needed = wl.batch * (blocks_per_seq * block_bytes + int(state))
    kv = Component("kv_cache", kv_needed, f"{wl.batch} sequences × {blocks_per_seq:,} blocks of {wl.block_size} "
                   f"tokens × {per_token:,} bytes/token ({kv_name}); vLLM fills its budget with {blocks:,} blocks "
                   f"({max(0, capacity) / GIB:,.2f} GiB), room for {max_concurrent:,} such sequences")
    breakdown = (weights, activations, non_torch, kv, graphs, ctx)
    allocated = weights.bytes + act_bytes + kv_needed
    total = allocated + non_torch.bytes + graphs.bytes + ctx.bytes
    reserved = ctx.bytes + budget + graphs.bytes
    assumptions = [
        "engine: vLLM V1 (`vllm serve`), PagedAttention KV blocks, CUDA graphs on",
        f"budget = gpu_memory_utilization {wl.gpu_memory_utilization:g} × {device / GIB:,.2f} GiB device memory "
        f"= {budget / GIB:,.2f} GiB for weights, profile peak, non-torch memory and KV cache; the CUDA context and "
        "the CUDA graph pool come on top",
        f"profile run over max_num_batched_tokens = {batched_tokens:,} (chunked prefill) and max_num_seqs = "
        f"{max_seqs:,}",
        f"KV cache in {kv_name}, blocks of {wl.block_size} tokens; total_bytes counts only the blocks this workload "
        f"needs ({wl.batch} × {tokens:,} tokens), vLLM itself keeps the whole budget (reserved_bytes)",
    ]
    if capacity <= 0:
        assumptions.append("no memory left for KV blocks: vLLM would stop with 'No available memory for the cache "
                           "blocks'")
    elif max_concurrent < 1:
        assumptions.append(f"one sequence of {tokens:,} tokens needs more KV blocks than fit: vLLM would refuse this "
                           "max_model_len")
    assumptions.extend(spec.notes)
    return Estimate(
        model=spec.name, params=spec.params, active_params=spec.active_params, engine="vllm", workload=wl,
        weights_bytes=weights.bytes, kv_cache_bytes=kv_needed, activation_bytes=act_bytes,
        peak_allocated_bytes=allocated, total_bytes=total, breakdown=breakdown, assumptions=tuple(assumptions),
        binding_phase="profile run",
        extra={"gpu_memory_bytes": device, "budget_bytes": budget, "reserved_bytes": reserved,
               "kv_cache_capacity_bytes": max(0, capacity), "kv_blocks": blocks, "block_bytes": block_bytes,
               "kv_bytes_per_token": per_token, "max_concurrent_sequences": max_concurrent,
               "max_num_seqs": min(max_seqs, max_concurrent) if max_concurrent else 0,
               "max_num_batched_tokens": batched_tokens},
    )
