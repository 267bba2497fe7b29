"""vLLM (V1 engine, `vllm serve`): what one GPU of a `vllm serve` start-up allocates, and the KV cache it is left with.

Every term follows vLLM's own start-up code (read in the 0.11.0, 0.20.0 and 0.33.0 wheels) and is checked against
real start-up logs in ``measurements/vllm/`` (``python measurements/vllm/score.py``).

Start-up, per GPU (``vllm/v1/worker/gpu_worker.py``):

1. ``init_device`` takes a ``MemorySnapshot`` after the CUDA context and NCCL exist and sets
   ``requested_memory = total_memory × gpu_memory_utilization``; ``total_memory`` is what
   ``torch.cuda.mem_get_info()`` reports, a little less than nvidia-smi's total (79.19 GiB on an H100 SXM, not
   79.65). The CUDA context is outside the budget; vLLM refuses to start when less than the request is free.
2. ``load_model``: "Model loading took X GiB" is the torch memory the weights took on this rank: every parameter of
   the rank's tensor-parallel shard plus the rotary cos/sin cache (``max_position_embeddings × rotary_dim`` in the
   model dtype, one table shared by all layers).
3. ``determine_available_memory`` runs ``gpu_model_runner.profile_run`` under ``memory_profiling``
   (``vllm/utils/mem_utils.py``): ``_dummy_run(max_num_batched_tokens)`` then ``_dummy_sampler_run`` over
   ``min(max_num_seqs, max_num_batched_tokens)`` rows. The torch peak increase is the activation peak
   (:func:`profile_activation_bytes`), the non-torch increase since the snapshot is ``non_torch_memory``
   (:func:`non_torch_bytes`).
4. From 0.20 (``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`` defaults to 1) ``profile_cudagraph_memory`` estimates the
   CUDA-graph pool and the estimate is taken out of the KV budget; before, graphs were captured after the KV cache,
   on top of the budget (:func:`cuda_graph_bytes`).
5. ``available KV = requested − weights − activation peak − non-torch (− graph estimate)``, logged as
   "Available KV cache memory".

KV cache layout (``vllm/v1/core/kv_cache_utils.py``, :func:`kv_layout`): one page per layer holds ``block_size``
(16) tokens of K and V for the rank's KV heads (MLA: the latent and rope key). Layers with one spec form one group:
``num_blocks = available // (page × layers)``. Models mixing full and sliding-window layers (Gemma 2/3, gpt-oss)
are grouped by ``_get_kv_cache_groups_uniform_page_size``: the group size is the smaller layer count (or the larger
when it is below 1.5 × the smaller), each type is split into ``ceil(n / group_size)`` groups (padding the last),
``num_blocks = available // page // group_size``; "GPU KV cache size" is ``num_blocks // groups × block_size``.
"Maximum concurrency" is ``num_blocks / Σ_groups blocks per request``: a full layer needs ``ceil(L / 16)`` blocks,
a sliding layer ``ceil(min(window − 1 + max_num_batched_tokens, L) / 16) + 1`` (``SlidingWindowSpec
.max_admission_blocks_per_request``).

Per-device facts besides memory: the SM count (the catalog's ``compute_units``) sizes the Triton top-k/top-p
sampler's buffer, one float32 vocabulary row per SM (:func:`triton_sampler_rows`); the GPUs' link decides the
tensor-parallel buffers: NVLink as measured on H100s, over PCIe only NCCL's own (:func:`non_torch_bytes`).

Defaults (``EngineArgs.get_batch_defaults``, OpenAI server): ``max_num_batched_tokens`` 8192 and ``max_num_seqs``
1024 on GPUs with ≥ 70 GiB whose name does not contain "A100"; 2048 and 256 otherwise; after 0.20, GPUs with
≥ 160 GiB (B200/B300) take 16384 and 1024. The memory compared is torch's total (the catalog's
``cuda_total_memory_bytes`` where measured), the name the CUDA device name. A defaulted token budget is capped at
``max_num_seqs × max_model_len`` and a defaulted ``max_num_seqs`` at the token budget (:func:`batch_limits`).
"""

from __future__ import annotations

import math
import re

from ..components import Component
from ..components.runtime import cuda_context
from ..components.weights import common_weights, weight_scheme
from ..details import VllmDetails
from ..dtypes import dtype_bytes
from ..errors import BadInput
from ..layers import Attention
from ..model import Layer, ModelSpec
from ..records import record, replace
from ..request import Workload
from ..resolved import ResolvedModel
from ..result import Estimate
from ..sharding import comm_buffer_bytes
from ..traits import traits_of

GIB = 1024**3
MIB = 1024**2
LARGE_GPU_BYTES = 70 * GIB
HUGE_GPU_BYTES = 160 * GIB
LATEST = (0, 33)  # the newest release whose code this profile follows
OLDEST = (0, 8)  # the first release with the V1 engine on by default

# Sampler bytes per logit beyond the model-dtype logits (``Sampler.forward``): a float32 copy (4), the
# probabilities (4) and the exponential noise ``random_sample`` divides them by (4). From 0.17 top-k/top-p run in a
# Triton kernel in place; before, ``apply_top_k_top_p_pytorch`` sorted the float32 logits: sorted values (4) and
# int64 indices (8), the sort's int64 iota input (8) and CUB's double buffers for keys and values (4 + 8).
SAMPLER_BYTES_PER_LOGIT = 12
SORT_BYTES_PER_LOGIT = 4 + 8 + 8 + 4 + 8
# Triton top-k/top-p (``apply_top_k_top_p_triton``, batches of 8 rows or more; smaller ones sort in PyTorch) caches one
# float32 row of the vocabulary per program: min(next power of 2 of min(SMs, rows), SMs) rows, the SM count from
# ``num_compute_units()``. GPUs whose catalog entry lists no SM count are taken to have an H100's 132.
TRITON_MIN_ROWS = 8
DEFAULT_COMPUTE_UNITS = 132

# Memory outside torch that the profile run adds on one GPU (cuBLAS/cuBLASLt and attention-backend workspaces):
# 0.24-0.27 GiB in every single-GPU vLLM 0.18/0.19 log on H100 (30 runs, 25 models), 0.13 GiB in 0.11-0.17 logs.
NON_TORCH_BYTES = round(0.25 * GIB)
NON_TORCH_BYTES_OLD = round(0.13 * GIB)
# Tensor parallelism: NCCL communicators, the custom all-reduce IPC buffers and symmetric-memory workspaces the
# first collectives of the profile run allocate. H100 NVLink, vLLM 0.19: 1.81-1.86 GiB more than TP 1 at TP 2,
# 1.88-1.96 GiB at TP 4 (10 runs); vLLM 0.11: 0.41-0.42 GiB at TP 2.
TP_COMM_BYTES = round(1.83 * GIB)
TP_COMM_BYTES_PER_EXTRA_RANK = round(0.04 * GIB)
TP_COMM_BYTES_OLD = round(0.42 * GIB)
# Without NVLink (PCIe cards: L4, L40S, A10G, GeForce) vLLM turns its custom all-reduce off (more than two PCIe-only
# GPUs, or no peer-to-peer access) and symmetric-memory all-reduce needs NVLink too: only NCCL's own buffers are left,
# counted as the other engines count them (``sharding.comm_buffer_bytes`` over PCIe). A two-L40S log shows 0.3 GiB of
# non-torch memory in all at TP 2 (tests/data/explain, vLLM issue 15815).
# CUDA graphs (``profile_cudagraph_memory``; logged "Estimated CUDA graph memory"): FULL_AND_PIECEWISE captures each
# size twice, each graph keeps a few MiB of private pool (6 MiB per graph in the 0.19 logs), and the first capture of
# the largest size holds every piecewise layer's output: layers × largest size × hidden × 2 (input and output).
PER_GRAPH_BYTES = 6 * MIB
MAX_CAPTURE_SIZE = 512
# The first release seen keeping the fused-MoE scratch in the worker's WorkspaceManager (0.19 logs: Mixtral,
# Qwen3-30B-A3B and DeepSeek-V2-Lite peaks are the sampler's plus that scratch; 0.11 logs of gpt-oss show none).
MOE_WORKSPACE_VERSION = (0, 19)


def parse_version(text: str | None) -> tuple[int, int]:
    """``X.Y`` (a patch level and a leading "v" are accepted) -> (X, Y); None -> the latest modelled release."""
    if text is None:
        return LATEST
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+(?:\.post\d+)?)?", str(text).strip())
    if not m:
        raise BadInput(
            f"engine_version: expected a vLLM release like 0.19 or 0.11.0, got {text!r}", field="engine_version"
        )
    v = (int(m.group(1)), int(m.group(2)))
    if v < OLDEST:
        raise BadInput(
            f"engine_version: vLLM {v[0]}.{v[1]} ran the V0 engine by default; only V1 releases "
            f"({OLDEST[0]}.{OLDEST[1]} and later) are modelled",
            field="engine_version",
        )
    return v


def default_max_num_batched_tokens(gpu_memory_bytes: int, gpu_name: str = "", version: tuple[int, int] = LATEST) -> int:
    if version > (0, 20) and gpu_memory_bytes >= HUGE_GPU_BYTES:
        return 16384
    return 8192 if gpu_memory_bytes >= LARGE_GPU_BYTES and "a100" not in gpu_name.lower() else 2048


def default_max_num_seqs(gpu_memory_bytes: int, gpu_name: str = "", version: tuple[int, int] = LATEST) -> int:
    if version > (0, 20) and gpu_memory_bytes >= HUGE_GPU_BYTES:
        return 1024
    return 1024 if gpu_memory_bytes >= LARGE_GPU_BYTES and "a100" not in gpu_name.lower() else 256


def batch_limits(
    batched_tokens: int | None,
    max_seqs: int | None,
    max_model_len: int,
    gpu_memory_bytes: int,
    gpu_name: str = "",
    version: tuple[int, int] = LATEST,
) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) as ``EngineArgs._set_default_max_num_seqs_and_batched_tokens_args``
    settles them: a value given is kept; a defaulted token budget is capped at ``max_num_seqs × max_model_len`` and
    a defaulted ``max_num_seqs`` at the token budget (chunked prefill on, as for every V1 decoder)."""
    seqs = max_seqs or default_max_num_seqs(gpu_memory_bytes, gpu_name, version)
    tokens = batched_tokens or min(
        default_max_num_batched_tokens(gpu_memory_bytes, gpu_name, version), seqs * max_model_len
    )
    if max_seqs is None:
        seqs = min(seqs, tokens)
    return tokens, seqs


def check_tensor_parallel(spec: ModelSpec, tp: int) -> None:
    """vLLM shards attention heads over the ranks: the query heads must divide, the KV heads divide or be
    replicated (``tp % kv_heads == 0``)."""
    if tp < 1:
        raise BadInput(f"tensor_parallel_size: must be at least 1, got {tp}", field="tensor_parallel_size")
    if tp == 1:
        return
    for layer in spec.layers:
        a = layer.attention
        if a is None:
            continue
        if a.num_heads % tp:
            raise BadInput(
                f"tensor_parallel_size: {tp} does not divide the {a.num_heads} attention heads of "
                f"{spec.name} (vLLM requires it)",
                field="tensor_parallel_size",
            )
        if a.kind != "mla" and a.num_kv_heads % tp and tp % a.num_kv_heads:
            raise BadInput(
                f"tensor_parallel_size: {tp} neither divides nor is a multiple of the {a.num_kv_heads} "
                f"KV heads of {spec.name}",
                field="tensor_parallel_size",
            )


# MXFP4 MoE kernels pad the experts' hidden and intermediate sizes (``mxfp4_round_up_hidden_size_and_intermediate_
# size``, ``Mxfp4MoEMethod.create_weights``): Marlin (GPUs before Hopper) to 256 and 128, the Triton kernels (Hopper)
# the intermediate to 64, FlashInfer TRT-LLM (Blackwell) both to 256. (multiple of hidden, of intermediate)
MXFP4_PADDING: dict[str, tuple[int, int, str]] = {
    "ampere": (256, 128, "Marlin"),
    "ada": (256, 128, "Marlin"),
    "turing": (256, 128, "Marlin"),
    "hopper": (1, 64, "Triton"),
    "blackwell": (256, 256, "FlashInfer TRT-LLM"),
}


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def mxfp4_padding_bytes(spec: ModelSpec, scheme_name: str, family: str | None) -> tuple[int, str]:
    """Bytes the MXFP4 expert kernels' padding adds on one rank (``spec`` is the rank's shard): every routed
    expert's w13 (2 × intermediate × hidden) and w2 (hidden × intermediate) at 4.25 bits, their bf16 biases."""
    pad = MXFP4_PADDING.get(family or "")
    if pad is None or scheme_name != "mxfp4-experts":
        return 0, ""
    hm, im, kernel = pad
    h = spec.hidden_size
    extra = 0.0
    for layer in spec.layers:
        m = layer.mlp
        if m is None or m.kind != "moe":
            continue
        i = m.intermediate_size
        hp, ip = _round_up(h, hm), _round_up(i, im)
        n = m.num_experts
        extra += n * 3 * (hp * ip - h * i) * 4.25 / 8 + n * (2 * (ip - i) + (hp - h)) * 2
    if extra <= 0:
        return 0, ""
    return round(extra), (
        f"MXFP4 experts padded for the {kernel} MoE kernel (hidden to a multiple of {hm}, intermediate of {im})"
    )


def rope_cache_bytes(spec: ModelSpec, e: int) -> int:
    """The rotary cos/sin cache vLLM's ``get_rope`` builds once: max positions × rotary dim in the model dtype."""
    return (spec.max_position_embeddings or 0) * spec.rope_dim * e


def moe_workspace_elems(spec: ModelSpec, version: tuple[int, int]) -> int:
    """Elements per token of the fused-MoE scratch (largest MoE layer of the rank).

    From 0.19 the modular kernel takes its scratch from the worker's ``WorkspaceManager``
    (``fused_moe/modular_kernel.py``, ``v1/worker/workspace.py``): one buffer of max(top_k × max(inter, hidden),
    hidden) shared by the first and third cache and the output, one of top_k × max(2 × inter, hidden), kept for the
    life of the worker. Before, ``fused_experts`` allocated per call: top_k × max(2 × inter, hidden) for the first
    and third cache and top_k × inter for the second."""
    h = spec.hidden_size
    out = 0
    for layer, _ in spec.distinct_layers:
        m = layer.mlp
        if m is None or m.kind != "moe":
            continue
        k, i = m.experts_per_token, m.intermediate_size
        if version >= MOE_WORKSPACE_VERSION:
            elems = max(k * max(i, h), h) + k * max(2 * i, h)
        else:
            elems = k * (max(2 * i, h) + i)
        out = max(out, elems)
    return out


def forward_peak_bytes(spec: ModelSpec, tokens: int, e: int, version: tuple[int, int] = LATEST) -> tuple[int, str]:
    """Torch peak of ``_dummy_run(tokens)`` on one rank (``spec`` is the rank's shard).

    Tokens are flattened. Alive throughout: the embedding output, the residual stream, the normalised input and the
    layer output (4 × hidden); plus the largest block's temporaries: attention q, k, v and output, or the MLP's
    fused gate_up output and the activation (3 × intermediate; 2 × for plain MLPs), or the fused-MoE scratch
    (:func:`moe_workspace_elems`) and the shared experts' gate_up and activation.
    """
    h = spec.hidden_size
    per_token = 0
    how = ""
    moe_ws = moe_workspace_elems(spec, version)
    for layer, _ in spec.distinct_layers:
        a = layer.attention
        att = (
            a.num_heads * (a.head_dim + a.v_head_dim) + a.num_kv_heads * (a.head_dim + a.v_head_dim)
            if a is not None
            else (layer.mixer.inner_size * 3 if layer.mixer else 0)
        )
        m = layer.mlp
        mlp = 0
        kind = ""
        if m is not None:
            if m.kind == "moe":
                mlp, kind = moe_ws + 3 * m.shared_intermediate_size, "fused-MoE scratch"
            elif m.kind == "gated":
                mlp, kind = 3 * m.intermediate_size, "gate_up + activation"
            else:
                mlp, kind = 2 * m.intermediate_size, "up + activation"
        if max(att, mlp) > per_token:
            per_token = max(att, mlp)
            how = kind if mlp >= att else "attention q, k, v, output"
    return tokens * (4 * h + per_token) * e, how


def triton_sampler_rows(num_reqs: int, compute_units: int) -> int:
    """Rows of the per-program buffer ``apply_top_k_top_p_triton`` caches: one program per SM, at most one per
    row, the buffer rounded up to a power of two but never past the SM count."""
    programs = min(compute_units, num_reqs)
    return min(1 << max(0, programs - 1).bit_length(), compute_units)


# Up to 0.11 the V1 sampler ran FlashInfer's top-k/top-p whenever flashinfer was importable
# (``VLLM_USE_FLASHINFER_SAMPLER`` unset meant yes): vLLM's Docker image ships it, a plain ``pip install vllm`` does
# not (an extra). 0.12-0.20 made it opt-in; from 0.21 it is on again, but the dummy sampler run also warms the
# native path, which then sets the peak.
FLASHINFER_DEFAULT_UNTIL = (0, 11)


def sampler_kind(num_reqs: int, version: tuple[int, int], flashinfer: bool = True) -> str:
    """Which top-k/top-p implementation sets the dummy sampler run's peak: "flashinfer" (0.11 and before with
    FlashInfer installed), "sort" (``apply_top_k_top_p_pytorch``: before 0.17, and for batches under 8 rows) or
    "triton" (``apply_top_k_top_p_triton``)."""
    if version <= FLASHINFER_DEFAULT_UNTIL and flashinfer:
        return "flashinfer"
    if version < (0, 17) or num_reqs < TRITON_MIN_ROWS:
        return "sort"
    return "triton"


def sampler_peak_bytes(
    spec: ModelSpec,
    tokens: int,
    num_reqs: int,
    e: int,
    version: tuple[int, int],
    compute_units: int = DEFAULT_COMPUTE_UNITS,
    flashinfer: bool = True,
) -> int:
    """Torch peak of ``_dummy_sampler_run`` (top-k and top-p on, no logprobs): the logits of every request in the
    model dtype, what the sampler derives from them per logit, the forward's hidden states still referenced, and
    (from 0.19) the fused-MoE workspace the forward left allocated. FlashInfer's
    ``top_k_top_p_sampling_from_logits`` keeps the float32 logits, the top-k masked logits and their softmax (12
    bytes per logit beyond the model-dtype logits, as the Triton path does, without its per-SM rows)."""
    v = spec.vocab_size
    kind = sampler_kind(num_reqs, version, flashinfer)
    per_logit = e + SAMPLER_BYTES_PER_LOGIT
    triton = triton_sampler_rows(num_reqs, compute_units) * v * 4 if kind == "triton" else 0
    if kind == "sort":
        # the peak is the sort itself: the float32 copy and the sort's buffers (probabilities come later)
        per_logit = e + 4 + SORT_BYTES_PER_LOGIT
    h = spec.hidden_size
    persistent = tokens * moe_workspace_elems(spec, version) * e if version >= MOE_WORKSPACE_VERSION else 0
    return num_reqs * v * per_logit + triton + tokens * h * e + 2 * num_reqs * h * e + persistent


def profile_activation_bytes(
    spec: ModelSpec,
    tokens: int,
    num_reqs: int,
    e: int,
    version: tuple[int, int] = LATEST,
    compute_units: int = DEFAULT_COMPUTE_UNITS,
    flashinfer: bool = True,
) -> tuple[int, str]:
    """Torch peak increase of ``profile_run``: the larger of the dummy forward and the dummy sampler run."""
    fwd, how = forward_peak_bytes(spec, tokens, e, version)
    smp = sampler_peak_bytes(spec, tokens, num_reqs, e, version, compute_units, flashinfer)
    kind = sampler_kind(num_reqs, version, flashinfer)
    if smp >= fwd:
        sort = {
            "sort": "sorted",
            "flashinfer": "FlashInfer top-k/top-p",
            "triton": f"Triton top-k/top-p, {triton_sampler_rows(num_reqs, compute_units)} per-SM vocabulary rows",
        }[kind]
        return smp, (
            f"dummy sampler run binds: {num_reqs:,} requests × {spec.vocab_size:,} logits ({sort}; "
            f"{e + (4 + SORT_BYTES_PER_LOGIT if kind == 'sort' else SAMPLER_BYTES_PER_LOGIT)} bytes "
            f"each) over {tokens:,} dummy tokens' hidden states"
        )
    return fwd, f"dummy forward binds: {tokens:,} tokens × (4 × hidden + {how})"


def non_torch_bytes(tp: int, version: tuple[int, int], interconnect: str | None = "nvlink") -> tuple[int, str]:
    """Non-torch memory the profile run adds: cuBLAS and attention workspaces, and with tensor parallelism the
    communication buffers, which depend on the GPUs' link (``interconnect``; None: not known, taken as NVLink)."""
    old = version < (0, 18)
    base = NON_TORCH_BYTES_OLD if old else NON_TORCH_BYTES
    comm = 0
    nvlink = interconnect in (None, "nvlink")
    if tp > 1:
        if not nvlink:
            comm = comm_buffer_bytes("tp", tp, "pcie")
        else:
            comm = TP_COMM_BYTES_OLD if old else TP_COMM_BYTES + TP_COMM_BYTES_PER_EXTRA_RANK * (tp - 2)
    how = "cuBLAS and attention workspaces outside torch"
    if comm and nvlink:
        how += f" + {comm / GIB:.2f} GiB NCCL / custom all-reduce buffers at TP {tp}"
    elif comm:
        how += f" + {comm / MIB:,.0f} MiB of NCCL buffers at TP {tp} (no NVLink: no custom all-reduce)"
    return base + comm, how


def capture_sizes(max_num_seqs: int) -> list[int]:
    """``cudagraph_capture_sizes``: 1, 2, 4, then every 8 up to 256, every 16 above, up to
    ``min(2 × max_num_seqs, 512)``."""
    top = min(MAX_CAPTURE_SIZE, 2 * max_num_seqs)
    sizes = [s for s in [1, 2, 4, *range(8, 256, 8), *range(256, MAX_CAPTURE_SIZE + 1, 16)] if s <= top]
    return sizes or [1]


# From 0.12 ``cudagraph_specialize_lora`` (on by default) captures every size once without and once with LoRA
# active (``CudagraphDispatcher._get_lora_cases``: [0, max_loras + 1]).
LORA_GRAPH_VERSION = (0, 12)


def cuda_graph_bytes(spec: ModelSpec, max_num_seqs: int, e: int, lora_cases: int = 1) -> tuple[int, str]:
    sizes = capture_sizes(max_num_seqs)
    # FULL_AND_PIECEWISE: each size captured as a piecewise and as a full graph, for each LoRA case
    graphs = 2 * len(sizes) * lora_cases
    first = spec.num_layers * max(sizes) * spec.hidden_size * e * 2
    return first + graphs * PER_GRAPH_BYTES, (
        f"{graphs} CUDA graphs ({len(sizes)} sizes up to {max(sizes)}, "
        "piecewise and full" + (", without and with LoRA" if lora_cases > 1 else "") + f") × "
        f"{PER_GRAPH_BYTES // MIB} MiB + the largest capture's layer outputs"
    )


@record(frozen=True)
class KvGroup:
    window: int | None  # None: full attention
    layers: int


@record(frozen=True)
class KvLayout:
    page_bytes: int  # one block of one layer
    group_size: int  # layers sharing one block table
    groups: tuple[KvGroup, ...]
    num_blocks: int
    tokens: int
    max_concurrency: float
    request_bytes: int = 0  # KV bytes one max_model_len request holds in this layout


def _attentions(spec: ModelSpec, extra_layers: tuple[Layer, ...] = ()) -> list[Attention]:
    return [layer.attention for layer in (*spec.layers, *extra_layers) if layer.attention is not None]


def decode_read_per_token_bytes(spec: ModelSpec, attentions: list[Attention], tokens: int, kv_elem_bytes: float) -> int:
    """Bytes of cache one sequence of ``tokens`` tokens has read per decode step: every token of a full-attention
    layer, the last ``sliding_window`` of a sliding one (FlashAttention's window skips the blocks before it); a layer
    that reuses an earlier layer's cache (Gemma 3n / 4) reads that one's. `attentions`: the rank's and any draft
    model's attention layers (`_attentions`)."""
    elems = 0
    for a in attentions:
        src = a
        if a.shares_kv_of is not None and 0 <= a.shares_kv_of < len(spec.layers):
            src = spec.layers[a.shares_kv_of].attention or a
        elems += src.cache_elems_per_token() * (min(tokens, a.sliding_window) if a.sliding_window else tokens)
    return int(elems * kv_elem_bytes)


def kv_layout(
    spec: ModelSpec,
    available: int,
    kv_elem_bytes: float,
    max_model_len: int,
    batched_tokens: int,
    block_size: int = 16,
    extra_layers: tuple[Layer, ...] = (),
) -> KvLayout:
    """vLLM's KV cache config for ``available`` bytes on one rank (``spec`` is the rank's shard)."""
    types: dict[int | None, int] = {}
    pages: list[int] = []
    for layer in [*spec.layers, *extra_layers]:
        a = layer.attention
        if a is None:
            continue
        pages.append(int(block_size * a.cache_elems_per_token() * kv_elem_bytes))
        w = a.sliding_window if a.sliding_window and a.sliding_window < max_model_len else None
        types[w] = types.get(w, 0) + 1
    if not types or not pages:
        return KvLayout(0, 0, (), 0, 0, 0.0)
    page = max(pages)
    if list(types) == [None] and len(set(pages)) > 1:
        # one attention type, different page sizes (a draft model's layers): one group, one block table
        num_blocks = max(0, available // sum(pages))
        per_req = math.ceil(max_model_len / block_size)
        return KvLayout(
            page,
            len(pages),
            (KvGroup(None, len(pages)),),
            num_blocks,
            num_blocks * block_size,
            num_blocks / per_req,
            per_req * sum(pages),
        )
    counts = list(types.values())
    group_size = min(counts)
    if max(counts) < 1.5 * min(counts):
        group_size = max(counts)
    groups: list[KvGroup] = []
    for w, n in types.items():
        groups.extend(KvGroup(w, group_size) for _ in range(math.ceil(n / group_size)))
    num_blocks = max(0, available // page // group_size)
    tokens = num_blocks // len(groups) * block_size
    per_request = 0
    for g in groups:
        if g.window is None:
            per_request += math.ceil(max_model_len / block_size)
        else:
            per_request += math.ceil(min(g.window - 1 + batched_tokens, max_model_len) / block_size) + 1
    return KvLayout(
        page, group_size, tuple(groups), num_blocks, tokens, num_blocks / per_request, per_request * page * group_size
    )


# Model types whose vLLM class declares ``embedding_modules`` (vLLM 0.34 ``model_executor/models``): LoRA then also
# wraps the input embedding (``VocabParallelEmbeddingWithLoRA``) and, unless marked "embed", the output head
# (``LogitsProcessorWithLoRA``). Other classes (Qwen 2/2.5, Mistral, Gemma, Phi-3, DeepSeek, gpt-oss) wrap neither.
EMBEDDING_LORA_MODEL_TYPES: dict[str, str] = {
    **dict.fromkeys(
        (
            "llama",
            "mixtral",
            "qwen3",
            "qwen3_moe",
            "nemotron_h",
            "nemotron",
            "lfm2",
            "lfm2_moe",
            "granite",
            "granitemoe",
            "granitemoehybrid",
            "granitemoeshared",
            "exaone4",
            "minicpm",
            "phimoe",
            "jamba",
            "falcon_h1",
            "solar",
            "apertus",
        ),
        "embed+head",
    ),
    "cohere": "embed",
}
# The first release whose LoRA wraps the routed experts (``FusedMoEWithLoRA``, vLLM 0.11.1); 0.11.0 has none.
MOE_LORA_VERSION = (0, 12)


@record(frozen=True)
class LoraSlots:
    """What ``--enable-lora`` preallocates on one rank, in bytes: all of it, the routed experts' part, the
    embedding and head's part."""

    bytes: int
    expert_bytes: int
    embedding_bytes: int


def lora_slot_bytes(spec: ModelSpec, max_loras: int, rank: int, e: int, version: tuple[int, int] = LATEST) -> LoraSlots:
    """``--enable-lora``: every LoRA-wrapped layer of the rank preallocates ``lora_a_stacked`` (max_loras × slices
    × rank × input) and ``lora_b_stacked`` (max_loras × outputs × rank) in the model dtype (``vllm/lora/layers``;
    ``get_supported_lora_modules`` wraps every linear layer, every fused MoE and the embedding modules the model
    class declares). Column-parallel layers (qkv with 3 slices, gate_up with 2) keep the whole input and their
    output shard; row-parallel ones (o, down) their input shard and the whole output; replicated ones (MLA's
    down-projections, the router) both whole. Routed experts (``FusedMoEWithLoRA``, from 0.11.1) hold w13 and w2
    slots for every local expert: experts × rank × (slices × (hidden + intermediate shard) + intermediate shard +
    hidden). The embedding: vocab × rank + hidden × rank; the head: hidden × rank + vocab × rank, both unsharded."""
    h = spec.hidden_size
    per_slot = 0
    experts = 0
    for layer in spec.layers:
        a = layer.attention
        if a is not None and a.kind == "mla":
            qk, heads = a.head_dim, a.num_heads
            latent = a.kv_lora_rank + a.rope_head_dim
            if a.q_lora_rank:
                per_slot += 2 * h + a.q_lora_rank + latent  # fused_qkv_a_proj: 2 slices over the hidden state
                per_slot += a.q_lora_rank + heads * qk  # q_b_proj
            else:
                per_slot += h + heads * qk  # q_proj
                per_slot += h + latent  # kv_a_proj_with_mqa
            per_slot += a.kv_lora_rank + heads * (qk - a.rope_head_dim + a.v_head_dim)  # kv_b_proj
            per_slot += heads * a.v_head_dim + h  # o_proj
        elif a is not None:
            q, kv = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim
            o_in = a.num_heads * a.v_head_dim
            per_slot += 3 * h + q + kv + a.num_kv_heads * a.v_head_dim  # qkv_proj
            per_slot += o_in + h  # o_proj
        m = layer.mlp
        if m is None:
            continue
        if m.kind == "moe":
            per_slot += h + m.num_experts  # the router (a replicated linear)
            if version >= MOE_LORA_VERSION:
                slices = 2 if m.expert_gated else 1
                experts += m.num_experts * (slices * (h + m.intermediate_size) + m.intermediate_size + h)
            inter, slices = m.shared_intermediate_size, 2
        else:
            inter, slices = m.intermediate_size, (2 if m.kind == "gated" else 1)
        if inter:
            per_slot += slices * h + slices * inter + inter + h  # gate_up (or up) and down
    embedding = 0
    wrapped = EMBEDDING_LORA_MODEL_TYPES.get(spec.model_type.removesuffix("_text"), "")
    if wrapped:
        embedding = (spec.vocab_size + h) * (2 if wrapped == "embed+head" else 1)
    unit = max_loras * rank * e
    return LoraSlots((per_slot + experts + embedding) * unit, experts * unit, embedding * unit)


@record(frozen=True)
class EncoderCache:
    """The dummy multimodal batch of the profile run: items encoded, tokens each, bytes kept."""

    items: int
    tokens_per_item: int | None  # None: not known from config.json (the budget is taken as one item's worth)
    bytes: int


def _is_multimodal(rm: ResolvedModel) -> bool:
    """A model whose config.json has a vision tower (what the encoder cache is for)."""
    cfg = rm.entry.config if rm.entry is not None else {}
    return isinstance(cfg, dict) and "vision_config" in cfg


def encoder_cache(
    rm: ResolvedModel,
    hidden: int,
    batched_tokens: int,
    max_num_seqs: int,
    max_model_len: int,
    e: int,
    limit_per_prompt: int | None = None,
) -> EncoderCache:
    """Multimodal models: ``profile_run`` first encodes a dummy batch of the modality with the most tokens per item
    and keeps its embeddings in the encoder cache until the text forward and the sampler run are over
    (``multimodal/encoder_budget.py``). The budget is ``max(max_num_batched_tokens, tokens per item)`` (compute
    budget and cache size alike); the batch is ``max(1, min(budget // tokens per item, max_num_seqs × items per
    prompt))`` items, items per prompt ``max(1, min(--limit-mm-per-prompt, max_model_len // tokens per item))``;
    each item keeps tokens × hidden in the model dtype. ``--limit-mm-per-prompt 0`` turns the encoder off: no
    dummy batch. Tokens per image are read from config.json where it states them (``mm_tokens_per_image``);
    otherwise the whole budget is taken as the batch."""
    if not _is_multimodal(rm) or limit_per_prompt == 0:
        return EncoderCache(0, None, 0)
    cfg = rm.entry.config if rm.entry is not None else {}
    assert isinstance(cfg, dict)
    raw = cfg.get("mm_tokens_per_image")
    per_item = raw if isinstance(raw, int) and raw > 0 else None
    if per_item is None:
        budget = batched_tokens
        return EncoderCache(1, None, budget * hidden * e)
    budget = max(batched_tokens, per_item)
    per_prompt = max(1, min(limit_per_prompt if limit_per_prompt is not None else 1 << 30, max_model_len // per_item))
    items = max(1, min(budget // per_item, max_num_seqs * per_prompt))
    return EncoderCache(items, per_item, items * per_item * hidden * e)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


@record(frozen=True)
class Draft:
    """What speculative decoding adds on one rank: the drafter's weights (in "Model loading took", which times
    the drafter's load too) and its attention layers, whose KV shares the target's block pool."""

    weights_bytes: int
    layers: tuple[Layer, ...]
    label: str
    note: str


def mtp_layers(rm: ResolvedModel, rank: ModelSpec) -> tuple[int, ModelSpec] | None:
    """The checkpoint's multi-token-prediction layers as vLLM loads them for ``method: mtp`` on one rank: k
    decoder layers like the model's last (DeepSeek format; the last full-attention layer in the Qwen format), each
    with its 2h -> h input projection and norms. Their embedding and head copies are not kept: the proposer's
    ``load_model`` points the drafter at the target's own (``maybe_share_target_embed``, ``share_target_lm_head``),
    and the rotary cache is the target's (``get_rope`` caches one per configuration)."""
    full = rm.spec
    fmt = traits_of(full.model_type).mtp
    if not full.mtp_params or not fmt:
        return None
    h = full.hidden_size

    def pick(s: ModelSpec) -> Layer:
        attn = [la for la in s.layers if la.attention is not None]
        return attn[-1] if fmt == "qwen" and attn else s.layers[-1]

    per = pick(full).params + 2 * h * h + 3 * h + (2 * full.vocab_size * h if fmt == "deepseek" else 0)
    k = max(1, round(full.mtp_params / per))
    layer = pick(rank)
    spec = replace(
        rank,
        name=f"{full.name} MTP",
        layers=(layer,) * k,
        embed_params=0,
        head_params=0,
        tie_word_embeddings=False,
        final_params=k * 3 * h,
        extra_params=k * 2 * h * h,  # eh_proj / fc, kept in bf16 by the quantized checkpoints
        mtp_params=0,
    )
    return k, spec


def draft_config(drm: ResolvedModel, ref: str | None) -> dict[str, object]:
    """The drafter's config.json where vram has it (a catalog entry or a local file / folder); {} for a Hub id."""
    if drm.entry is not None and isinstance(drm.entry.config, dict):
        return dict(drm.entry.config)
    if ref:
        from pathlib import Path

        p = Path(ref).expanduser()
        if p.exists() and p.suffix != ".gguf":
            from ..model import load_config_file

            return dict(load_config_file(p))
    return {}


def speculative_draft(rm: ResolvedModel, rank: ModelSpec, wl: Workload, tp: int, e: int) -> Draft | None:
    """``--speculative-config``: a draft model (its own weights, unquantized, and every attention layer), an EAGLE
    head (its layers and input projection; embedding and head shared with the target, as ``load_eagle_model``
    does when the vocabularies match) or the checkpoint's MTP layers (:func:`mtp_layers`)."""
    o = wl.vllm
    method = o.speculative_method or ("draft_model" if o.speculative_model else None)
    if method is None:
        return None
    k = o.num_speculative_tokens
    if method == "mtp":
        got = mtp_layers(rm, rank)
        if got is None:
            raise BadInput(
                f"speculative_method: {rm.spec.name} has no multi-token-prediction layers in its checkpoint "
                "(num_nextn_predict_layers / mtp_num_hidden_layers)",
                field="speculative_method",
            )
        n, mspec = got
        dw = common_weights(ResolvedModel(mspec, None, rm.source), wl).bytes
        layers = tuple(la for la in mspec.layers if la.attention is not None)
        return Draft(
            dw,
            layers,
            f"{_n(n, 'MTP layer')} {dw / GIB:,.2f} GiB",
            f"speculative decoding with the checkpoint's {_n(n, 'multi-token-prediction layer')} "
            f"({_n(k or n, 'token')} per step): {dw / GIB:,.2f} GiB per GPU (embedding and head shared with the "
            f"target), and the KV of its {_n(len(layers), 'attention layer')} in the same block pool",
        )
    from ..resolver import resolve_model

    assert o.speculative_model is not None
    drm_full = resolve_model(o.speculative_model)
    check_tensor_parallel(drm_full.spec, tp)
    drm = rank_model(drm_full, tp)
    dspec = drm.spec
    layers = tuple(la for la in dspec.layers if la.attention is not None)
    if method in ("eagle", "eagle3"):
        h = dspec.hidden_size
        extra = 2 * h * h  # EAGLE: fc [embedding; target hidden] -> hidden
        draft_vocab = dspec.vocab_size
        buffers = 0
        if method == "eagle3":
            cfg = draft_config(drm_full, o.speculative_model)
            dv, th = cfg.get("draft_vocab_size"), cfg.get("target_hidden_size")
            draft_vocab = dv if isinstance(dv, int) and dv > 0 else dspec.vocab_size
            target_h = th if isinstance(th, int) and th > 0 else rm.spec.hidden_size
            a = next((la.attention for la in dspec.layers if la.attention is not None), None)
            qkv = a.num_heads * a.head_dim + a.num_kv_heads * (a.head_dim + a.v_head_dim) if a is not None else 0
            # fc over three of the target's hidden states, the first layer's qkv over [embedding; hidden] (h more
            # inputs) and its hidden_norm; the draft-to-target token map (int64 per draft token)
            extra = 3 * target_h * h + h * qkv + h
            buffers = 8 * draft_vocab if draft_vocab != rm.spec.vocab_size else 0
        shared = draft_vocab == rm.spec.vocab_size
        head = replace(
            dspec,
            embed_params=0,
            head_params=0 if shared else -(-draft_vocab * h // tp),
            tie_word_embeddings=False,
            extra_params=dspec.extra_params + extra,
        )
        dw = common_weights(ResolvedModel(head, None, drm.source), replace(wl, quant=None)).bytes + buffers
        what = "EAGLE-3 head" if method == "eagle3" else "EAGLE head"
        proj = "3h -> h fc over the target's hidden states" if method == "eagle3" else "2h -> h input projection"
        return Draft(
            dw,
            layers,
            f"{what} {drm_full.spec.name} {dw / GIB:,.2f} GiB",
            f"speculative decoding with {what} {drm_full.spec.name} ({_n(k or 1, 'token')} per step): its "
            f"{_n(len(dspec.layers), 'layer')} and {proj} ({dw / GIB:,.2f} GiB per GPU, in {wl.dtype}; "
            + (
                "embedding and head shared with the target"
                if shared
                else f"embedding shared, its own head over {draft_vocab:,} draft tokens kept"
            )
            + f"), and the KV of its {_n(len(layers), 'attention layer')} in the same block pool",
        )
    dw = common_weights(drm, replace(wl, quant=None)).bytes + rope_cache_bytes(drm_full.spec, e)
    return Draft(
        dw,
        layers,
        f"draft model {drm_full.spec.name} {dw / GIB:,.2f} GiB",
        f"speculative decoding with draft model {drm_full.spec.name} ({_n(k or 1, 'token')} per step): its weights "
        f"({dw / GIB:,.2f} GiB per GPU, in {wl.dtype}) and the KV of its {_n(len(layers), 'attention layer')} share "
        "the budget and the block pool",
    )


def rank_model(rm: ResolvedModel, tp: int) -> ResolvedModel:
    """What one of `tp` tensor-parallel ranks holds."""
    if tp <= 1:
        return rm
    from ..sharding import tp_rank_spec

    return ResolvedModel(tp_rank_spec(rm.spec, tp), rm.entry, rm.source, None, rm.buffers_bytes)


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    """Memory vLLM allocates on each GPU, and the KV cache and concurrency it ends up with.

    ``details`` (:class:`~vram.details.VllmDetails`, written as the JSON answer's ``vllm`` object) holds the
    start-up figures vLLM logs, per GPU: ``weights_bytes`` ("Model loading took"),
    ``activation_peak_bytes`` ("torch peak memory increase"), ``non_torch_bytes``, ``cuda_graph_bytes``,
    ``kv_cache_bytes`` ("Available KV cache memory"), ``kv_cache_tokens`` ("GPU KV cache size") and
    ``max_concurrency`` ("Maximum concurrency for L tokens per request"). ``total_bytes`` is what the workload needs
    (CUDA context + weights + profile peak + non-torch memory + the KV blocks of its sequences + CUDA graphs).
    """
    o = wl.vllm
    version = parse_version(o.engine_version)
    tp = o.tensor_parallel_size
    check_tensor_parallel(rm.spec, tp)
    dev = wl.device
    if dev is None:
        raise BadInput("gpu: vLLM sizes its KV cache from the GPU's memory; name the GPU (--gpu h100-sxm)", field="gpu")
    rank = rank_model(rm, tp)
    spec = rank.spec
    device = dev.usable_bytes
    gpu_name = dev.name
    e = int(dtype_bytes(wl.dtype))
    kv_name = wl.kv_dtype or wl.dtype
    kv_elem = dtype_bytes(kv_name)
    w = common_weights(rank, wl)
    rope = rope_cache_bytes(rm.spec, e)
    pad, pad_how = mxfp4_padding_bytes(spec, weight_scheme(spec, wl).name, dev.family)
    weights = Component(
        "weights",
        w.bytes + rope + pad,
        w.explanation
        + (f" + rotary cos/sin cache {rope / MIB:,.0f} MiB" if rope else "")
        + (f" + {pad / MIB:,.0f} MiB of {pad_how}" if pad else "")
        + (f"; TP rank 1/{tp}" if tp > 1 else ""),
    )
    notes: list[str] = []
    if o.cpu_offload_gb:
        off = min(weights.bytes, int(o.cpu_offload_gb * GIB))
        weights = Component(
            "weights",
            weights.bytes - off,
            f"{weights.explanation}; {off / GIB:,.2f} GiB of it "
            "offloaded to CPU memory (--cpu-offload-gb) and streamed in for every forward",
        )
        notes.append(
            f"--cpu-offload-gb {o.cpu_offload_gb:g}: {off / GIB:,.2f} GiB of weights per GPU live in "
            "pinned CPU memory; every forward copies them in (slow)"
        )
    if o.enable_lora:
        slots = lora_slot_bytes(spec, o.max_loras, o.max_lora_rank, e, version)
        lora = slots.bytes
        weights = Component(
            "weights",
            weights.bytes + lora,
            f"{weights.explanation} + {lora / MIB:,.0f} MiB of LoRA slots ({o.max_loras} × rank {o.max_lora_rank})",
        )
        parts = ["every layer's attention and dense-MLP projections"]
        moe = any(layer.mlp is not None and layer.mlp.kind == "moe" for layer in spec.layers)
        if moe:
            parts.append(
                f"the routed experts ({slots.expert_bytes / MIB:,.0f} MiB: every expert's w13 and w2)"
                if slots.expert_bytes
                else "the router (routed experts unadapted before vLLM 0.11.1)"
            )
        if slots.embedding_bytes:
            parts.append(f"the embedding and head ({slots.embedding_bytes / MIB:,.0f} MiB)")
        notes.append(
            f"LoRA: {o.max_loras} adapter slot(s) of rank {o.max_lora_rank} preallocated in {wl.dtype} on "
            + ", ".join(parts)
            + f" ({lora / MIB:,.0f} MiB per GPU, counted in the weights as vLLM's 'Model loading took' does)"
            + ("; state-space mixers' projections not counted" if any(layer.mixer for layer in spec.layers) else "")
        )
    draft = speculative_draft(rm, spec, wl, tp, e)
    draft_layers: tuple[Layer, ...] = ()
    if draft is not None:
        draft_layers = draft.layers
        weights = Component("weights", weights.bytes + draft.weights_bytes, f"{weights.explanation} + {draft.label}")
        notes.append(draft.note)
    tokens = wl.context + wl.new_tokens
    batched_tokens, max_seqs = batch_limits(o.max_num_batched_tokens, o.max_num_seqs, tokens, device, gpu_name, version)
    num_reqs = min(max_seqs, batched_tokens)
    sms = dev.compute_units or DEFAULT_COMPUTE_UNITS
    if not o.flashinfer_sampler and version > FLASHINFER_DEFAULT_UNTIL:
        raise BadInput(
            "flashinfer_sampler: only vLLM 0.11 and earlier pick their sampler by whether FlashInfer is installed "
            f"(modelled: {version[0]}.{version[1]})",
            field="flashinfer_sampler",
        )
    act_bytes, act_how = profile_activation_bytes(spec, batched_tokens, num_reqs, e, version, sms, o.flashinfer_sampler)
    if version <= FLASHINFER_DEFAULT_UNTIL:
        notes.append(
            "sampler: FlashInfer's top-k/top-p, as vLLM 0.11 and earlier use when flashinfer is installed (vLLM's "
            "Docker image); --no-flashinfer-sampler for a pip install without it (sorted logits, more memory)"
            if o.flashinfer_sampler
            else "sampler: no FlashInfer installed, so vLLM 0.11 and earlier sort the logits for top-k/top-p"
        )
    if dev.compute_units is None:
        notes.append(
            f"the GPU's SM count is not in the catalog: the sampler's per-SM buffer assumes {DEFAULT_COMPUTE_UNITS}"
        )
    if o.limit_mm_per_prompt is not None and not _is_multimodal(rm):
        raise BadInput(
            f"limit_mm_per_prompt: {rm.spec.name} takes text only (no vision_config in its config.json); "
            "--limit-mm-per-prompt applies to multimodal models",
            field="limit_mm_per_prompt",
        )
    mm = encoder_cache(rm, spec.hidden_size, batched_tokens, max_seqs, tokens, e, o.limit_mm_per_prompt)
    enc = mm.bytes
    if enc:
        act_bytes += enc
        act_how += f" + the encoder cache of the multimodal profile ({enc / MIB:,.0f} MiB of image embeddings)"
        batch = (
            f"{mm.items:,} dummy image(s) of {mm.tokens_per_item:,} tokens"
            if mm.tokens_per_item
            else f"dummy images filling the encoder budget of {batched_tokens:,} tokens (tokens per image not "
            "in config.json)"
        )
        notes.append(
            f"multimodal: the profile run encodes {batch} and keeps {enc / MIB:,.0f} MiB of their embeddings "
            f"({spec.hidden_size:,} wide, {wl.dtype}) while the text forward and sampler run; "
            "--limit-mm-per-prompt 0 would leave them out; the vision tower's own activations are not counted"
        )
    elif o.limit_mm_per_prompt == 0:
        notes.append("multimodal: --limit-mm-per-prompt 0: text only, no encoder cache in the profile run")
    activations = Component("activations", act_bytes, "profile run: " + act_how)
    nt_bytes, nt_how = non_torch_bytes(tp, version, dev.interconnect)
    non_torch = Component("non_torch_memory", nt_bytes, nt_how)
    graph_bytes, graph_how = (
        (0, "--enforce-eager: no CUDA graphs")
        if o.enforce_eager
        else cuda_graph_bytes(spec, max_seqs, e, 2 if o.enable_lora and version >= LORA_GRAPH_VERSION else 1)
    )
    graphs_in_budget = version >= (0, 20) and not o.enforce_eager
    graphs = Component(
        "cuda_graphs",
        graph_bytes,
        graph_how
        + (
            "; estimated before the KV cache and taken out of its budget"
            if graphs_in_budget
            else "; captured after the KV cache, on top of gpu_memory_utilization"
        ),
    )
    ctx = cuda_context(dev.arch)
    budget = int(o.gpu_memory_utilization * device)
    capacity = budget - weights.bytes - act_bytes - nt_bytes - (graph_bytes if graphs_in_budget else 0)
    if o.kv_cache_memory_bytes is not None:
        capacity = o.kv_cache_memory_bytes
        notes.append(
            f"--kv-cache-memory {capacity:,}: the KV cache is that size whatever gpu_memory_utilization; "
            "vLLM still runs the profile but does not check that the rest fits"
        )
    layout = kv_layout(spec, max(0, capacity), kv_elem, tokens, batched_tokens, o.block_size, draft_layers)
    attentions = _attentions(spec, draft_layers)
    per_token = int(sum(a.cache_elems_per_token() for a in attentions) * kv_elem)
    block_bytes = max(1, per_token * o.block_size)
    blocks_per_seq = math.ceil(tokens / o.block_size)
    max_concurrent = int(layout.max_concurrency) if per_token else max_seqs
    state = sum(layer.mixer.state_elems for layer in spec.layers if layer.mixer) * max(2.0, kv_elem)
    # what one request holds in vLLM's layout: sliding-window groups only their window (+ a chunk), padded groups
    # their padding; without sliding layers, every block of every layer
    request_bytes = layout.request_bytes or blocks_per_seq * block_bytes
    kv_needed = wl.batch * (request_bytes + int(state))
    windowed = request_bytes < blocks_per_seq * block_bytes
    # a decode step's attention reads a sliding layer's window, not the window + chunk its group holds
    kv_read = (
        wl.batch * (decode_read_per_token_bytes(spec, attentions, tokens, kv_elem) + int(state))
        if any(a.sliding_window for a in attentions)
        else None
    )
    kv = Component(
        "kv_cache",
        kv_needed,
        f"{wl.batch} sequences × {blocks_per_seq:,} blocks of {o.block_size} "
        f"tokens × {per_token:,} bytes/token ({kv_name})"
        + (f", sliding-window layers holding only their window: {request_bytes / MIB:,.0f} MiB each" * windowed)
        + "; vLLM fills its budget with "
        f"{max(0, capacity) / GIB:,.2f} GiB: {layout.tokens:,} tokens, {layout.max_concurrency:,.2f} "
        f"sequences of {tokens:,} tokens",
    )
    breakdown = (weights, activations, non_torch, kv, graphs, ctx)
    allocated = weights.bytes + act_bytes + kv_needed
    total = allocated + nt_bytes + graph_bytes + ctx.bytes
    reserved = ctx.bytes + budget + (0 if graphs_in_budget else graph_bytes)
    vtext = f"{version[0]}.{version[1]}" + (
        " (the latest modelled; --engine-version X.Y for another)" if o.engine_version is None else ""
    )
    assumptions = [
        f"engine: vLLM {vtext} V1 (`vllm serve`), PagedAttention blocks of {o.block_size} tokens, "
        + ("--enforce-eager" if o.enforce_eager else "torch.compile + CUDA graphs"),
        f"GPU: {gpu_name}, {device / GIB:,.2f} GiB as torch sees it"
        + (f"; tensor parallel {tp}, figures per GPU" if tp > 1 else ""),
        f"budget = gpu_memory_utilization {o.gpu_memory_utilization:g} × {device / GIB:,.2f} GiB = "
        f"{budget / GIB:,.2f} GiB for weights, profile peak, non-torch memory"
        + (", CUDA graphs" if graphs_in_budget else "")
        + " and KV cache; the CUDA context comes on top"
        + ("" if graphs_in_budget else ", and so does the CUDA graph pool"),
        f"profile run over max_num_batched_tokens = {batched_tokens:,} and max_num_seqs = {max_seqs:,}"
        + (" (vLLM's defaults for this GPU)" if not (o.max_num_batched_tokens and o.max_num_seqs) else ""),
        f"KV cache in {kv_name}; total_bytes counts only the blocks this workload needs ({wl.batch} × {tokens:,} "
        "tokens), vLLM itself keeps the whole budget (reserved_bytes)",
    ]
    if len(layout.groups) > 1:
        assumptions.append(
            f"hybrid KV cache manager: {len(layout.groups)} groups of {layout.group_size} layers "
            "(full and sliding-window layers share one block pool; sliding layers hold only their "
            "window)"
        )
    if capacity <= 0:
        assumptions.append(
            "no memory left for KV blocks: vLLM would stop with 'No available memory for the cache blocks'"
        )
    elif layout.max_concurrency < 1 and per_token:
        assumptions.append(
            f"one sequence of {tokens:,} tokens needs more KV blocks than fit: vLLM would refuse this max_model_len"
        )
    if any(layer.mixer for layer in spec.layers):
        assumptions.append(
            "convolution / Mamba state is counted per sequence; vLLM's page-size unification for "
            "these layers is not modelled"
        )
    assumptions.extend(notes)
    assumptions.extend(rm.spec.notes)
    details = VllmDetails(
        weights_bytes=weights.bytes,
        activation_peak_bytes=act_bytes,
        non_torch_bytes=nt_bytes,
        cuda_graph_bytes=graph_bytes,
        kv_cache_bytes=max(0, capacity),
        kv_cache_tokens=layout.tokens,
        max_concurrency=round(layout.max_concurrency, 4),
        kv_cache_blocks=layout.num_blocks,
        kv_cache_groups=len(layout.groups),
        tensor_parallel_size=tp,
        max_model_len=tokens,
        max_num_batched_tokens=batched_tokens,
        max_num_seqs=max_seqs,
        gpu_memory_bytes=device,
        gpu_memory_utilization=o.gpu_memory_utilization,
        requested_memory_bytes=budget,
        engine_version=f"{version[0]}.{version[1]}",
    )
    return Estimate(
        model=rm.spec.name,
        params=rm.spec.params,
        active_params=rm.spec.active_params,
        engine="vllm",
        workload=wl,
        weights_bytes=weights.bytes,
        kv_cache_bytes=kv_needed,
        kv_read_bytes=kv_read,
        activation_bytes=act_bytes,
        peak_allocated_bytes=allocated,
        total_bytes=total,
        breakdown=breakdown,
        assumptions=tuple(assumptions),
        binding_phase="profile run",
        extra={
            "gpu_memory_bytes": device,
            "budget_bytes": budget,
            "reserved_bytes": reserved,
            "kv_cache_capacity_bytes": max(0, capacity),
            "kv_blocks": layout.num_blocks,
            "block_bytes": block_bytes,
            "kv_bytes_per_token": per_token,
            "max_concurrent_sequences": max_concurrent,
            "max_num_seqs": min(max_seqs, max_concurrent) if max_concurrent else 0,
            "max_num_batched_tokens": batched_tokens,
        },
        details=details,
    )
