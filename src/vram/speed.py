"""How fast a fit runs: decode and prefill tokens/s, time to first token, cost per million tokens.

A roofline per kernel, with the kernels' achievable rates and fixed costs taken from measurements of each GPU
*class* and engine (never of one GPU or one case); `measurements/speed/` holds the public measurements they were
checked against (`python measurements/speed/fit_check.py --holdout`).

**Decode** (one new token per sequence per step). A step streams every weight the batch touches and the batch's KV
cache once, and does ``2 × active parameters`` FLOPs per sequence::

    step = max(weights / (bandwidth × η_weights) + kv / (bandwidth × η_kv),  flops / (tensor rate × mfu))
           + layers × τ_layer + moe_layers × τ_moe + τ_step + batch × τ_seq + communication,
    and never less than the engine's CPU work per step (vLLM's loop: `STEP_FLOOR_S`; transformers' eager Python
    dispatch, per layer: `HOST_LAYER_S`)

* ``η_weights`` is the share of the datasheet bandwidth the engine's matrix-vector kernel sustains, by backend,
  memory technology and weight format (`DECODE_EFFICIENCY`); on Apple GPUs dequantizing GGUF blocks is bound by the
  GPU's ALUs (`METAL_DEQUANT_FLOP_PER_BYTE`).
* ``τ_layer`` is the per-layer fixed cost: the ~20 small kernels of a block (norms, rope, softmax, adds, copies)
  whose launch and tail latency do not shrink with the bytes (`LAYER_OVERHEAD_S`); ``τ_moe`` adds a mixture-of-experts
  layer's routing, top-k, gather/scatter and per-expert kernel launches (`MOE_LAYER_OVERHEAD_S`); ``τ_step`` and
  ``τ_seq`` are the engine's per-step host work (scheduler, sampler, detokenizer; `STEP_OVERHEAD_S`).
* MoE layers read only the experts the batch routes to: with ``k`` of ``E`` experts per token and a uniform router,
  ``b`` tokens touch ``E × (1 − (1 − k/E)^b)`` distinct experts per layer, and the skipped share is counted in
  bytes of each tensor's own format (gpt-oss: MXFP4 experts next to BF16 attention and head).
* **Layer split** (llama.cpp ``--split-mode layer``, vLLM pipeline parallel): a token passes the stages one after
  another, so the step is the whole model's time plus a hand-over per stage boundary (`STAGE_HOP_S`).
* **Tensor parallel** divides bytes and FLOPs by the ranks and adds two all-reduces per layer whose size grows with
  the batch: ``latency + 2 (n−1)/n × batch × hidden × 2 bytes / link bandwidth``.
* **Batched serving** (vLLM): each sequence also waits for the prefills of the requests that join while it decodes
  (continuous batching interleaves them): ``(batch − 1) × prompt / prefill rate`` spread over its new tokens.

**Prefill** is compute bound: ``2 × (active parameters − embedding − head)`` FLOPs per prompt token for the matrices
(the head runs for the last token only) at the tensor rate of the kernel the engine uses × `PREFILL_MFU` × the share
of the SMs the GEMMs' tiles keep busy at the ubatch's rows (`GEMM_WAVE_TILE`), plus causal attention (QKᵀ and AV over
on average half the prompt) at `ATTENTION_MFU` with flash attention, or the score matrix's memory traffic without it.
Apple GPUs multiply on their FP32 ALUs, which also unpack quantized weight tiles: a quantized prompt runs at
`QUANT_PREFILL_SHARE` of a 16-bit one's rate.
llama.cpp on CUDA also streams the activations through its separate f32 kernels between the GEMMs
(`activation_bytes_per_token`) and, in builds before MMQ, dequantizes quantized weights to an FP16 copy once per
ubatch, both at its small kernels' share of the bandwidth — except on GPUs only 2025 builds run (Blackwell), which
multiply the quantized blocks directly (MMQ). A routed expert's GEMM sees only the tokens routed to it (ubatch × k / E),
a fraction of the kernel's tile (`EXPERT_GEMM_TILE_TOKENS`), and runs at that share. A llama.cpp layer split pipelines
a call's ubatches through the GPUs (`layer_split_prefill_s`). A forward pass over a chunk of the prompt (vLLM's
max_num_batched_tokens, llama.cpp's ubatch) also reads every weight its tokens route to at least once and is never
faster than that read; under tensor parallelism each layer's two all-reduces carry the chunk's hidden states
(`tp_prefill_comm_s_per_token`).

**Offloading** (layers kept in host memory) streams those layers' bytes over the host link each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

from .catalog import GpuEntry
from .dtypes import QuantScheme, quant_scheme
from .model import ModelSpec
from .records import record

# --- achievable shares of the datasheet bandwidth for decode's weight streaming ------------------------------------
# Keyed by (backend, memory class, weight format). Backends: "cuda" (NVIDIA), "rocm" (AMD), "metal" (Apple),
# "other". Memory classes: "gddr" (GDDR6/6X/7 cards), "hbm" (HBM2/2e/3/3e), "lpddr" (Apple unified memory).
# Formats: "f16" (16-bit floats), "quant" (GGUF blocks / GPTQ / AWQ / FP8 / INT8: dequantized inside the kernel).
# llama.cpp's matrix-vector kernels (mmv for F16, mmvq for quantized blocks) stream GDDR cards at 0.8-0.9 of the
# datasheet rate, like a copy kernel (llama-bench tg512 of Llama 3 8B/70B on RTX 30/40, A6000, L40S, A40, RTX 4000/
# 5000 Ada once the per-layer cost below is separated); on HBM parts the same kernels reach about half: one warp
# per row keeps too few bytes in flight for HBM's latency × bandwidth product (A100 PCIe / SXM: 0.45 for Q4_K_M,
# 0.5 for F16; XiongjieDai/GPU-Benchmarks-on-LLM-Inference). vLLM (cuBLAS / CUTLASS GEMMs in CUDA graphs) streams
# BF16 Qwen2.5-7B/32B on an A100 at ~0.7 (dennislee22/vLLM-benchmarking, 1 to 200 sequences). Apple's unified
# LPDDR5 sustains ~0.86 of its rate in F16 on M3-generation GPUs (M3 Max tg512; M1 / M2 at their
# `GENERATION_SHARE` of it); GGUF blocks there are ALU bound (below).
DECODE_EFFICIENCY: dict[tuple[str, str, str], float] = {
    ("llama.cpp/cuda", "gddr", "f16"): 0.88,
    ("llama.cpp/cuda", "gddr", "quant"): 0.8,
    ("llama.cpp/cuda", "hbm", "f16"): 0.5,
    ("llama.cpp/cuda", "hbm", "quant"): 0.45,
    # LPDDR5X behind an NVIDIA GPU (DGX Spark's GB10, 273 GB/s): a small latency x bandwidth product like GDDR's, so
    # the mat-vec kernels keep enough bytes in flight and get GDDR's shares; Llama 3.2 3B and a Qwen 14B Q4_K_M
    # decode there within -1 ... -3 % of it (geerlingguy/ai-benchmarks README, tg128; build not stated) and 10-11 %
    # faster than the generic 0.7
    ("llama.cpp/cuda", "lpddr", "f16"): 0.88,
    ("llama.cpp/cuda", "lpddr", "quant"): 0.8,
    ("llama.cpp/metal", "lpddr", "f16"): 0.86,
    ("llama.cpp/metal", "lpddr", "quant"): 0.72,
    ("vllm/cuda", "hbm", "f16"): 0.7,
    ("vllm/cuda", "hbm", "quant"): 0.7,
    ("vllm/cuda", "gddr", "f16"): 0.85,
    ("vllm/cuda", "gddr", "quant"): 0.75,
    # llama.cpp's HIP backend on RDNA3 (RX 7900 XTX, GDDR6): 7-8B Q4_0 / Q4_K_M decode in builds from Jan 2024 to
    # Jun 2025 at 0.42-0.59 of the bandwidth once the per-layer cost is out (measurements/speed/llama-cpp-rocm.jsonl,
    # llama-cpp-more-builds.jsonl), against CUDA's 0.8 on GDDR
    ("llama.cpp/rocm", "gddr", "quant"): 0.52,
    # ... and on CDNA3 (MI300X, HBM3): 0.4 of the bandwidth with its per-layer cost (`ARCH_LAYER_OVERHEAD_S`), set
    # with it on the three MI300X sets: Llama 3.1 70B Q4_K_M at 36.5 t/s and DeepSeek-V3 Q4_K_M at 42.5 layer-split
    # over 8 MI300X (AMD ROCm blog, Dec 2025, build b6652; −9 % / +6 %), Llama 2 7B Q4_0 on one at 183 t/s (Oct 2024,
    # build 3891: 0 %; +16 % with flash attention). No F16 run was measured; it is taken at the same share.
    ("llama.cpp/rocm", "hbm", "quant"): 0.4,
    ("llama.cpp/rocm", "hbm", "f16"): 0.4,
    # MLX (mlx-lm) on Apple GPUs: its mat-vec kernels (qmv for the affine-quantized formats, gemv for bf16) stream
    # unified memory at ~0.92 of the datasheet rate whatever the bits: Qwen3-4B bf16 / 8 / 6 / 5 / 4-bit on an M4 Max
    # (mlx-lm BENCHMARKS.md, mlx-lm 0.28) lie on one line of step time against bytes, and Llama 3.3 70B 4-bit on an
    # M3 Max (mlx-examples#1029) reads its 39.7 GB per token at 0.93 of 400 GB/s once the fixed costs are out
    ("mlx/metal", "lpddr", "f16"): 0.92,
    ("mlx/metal", "lpddr", "quant"): 0.92,
    # llama.cpp's Vulkan build (the mat-vec shaders): LLaMA 2 7B Q4_0 tg128 on the #10879 scoreboard (2025 builds)
    # streams RTX 30 / 40 / 50, RX 7900 / 9070, R9700 and a Radeon 8060S at 0.8-0.9 of the bandwidth once ~30 µs
    # per layer is out (24 rows, 6 exact; the RX 7900 XT's 0.6 the exception); Intel's Arc cards below
    ("llama.cpp/vulkan", "gddr", "quant"): 0.85,
    ("llama.cpp/vulkan", "lpddr", "quant"): 0.85,
}
# ... and where a GPU generation's Vulkan driver streams at another share: Intel's Arc A770 (Alchemist) at ~0.4 of
# its 560 GB/s, the B580 / Pro B60 (Battlemage) at ~0.65 of 456 (the same scoreboard; the B580 row exact)
ARCH_DECODE_EFFICIENCY: dict[tuple[str, str], float] = {
    # RDNA2 on ROCm: 0.69-0.73 of the bandwidth in the #15021 scoreboard's 2025 builds (RX 6800 XT / 6900 XT), the only
    # RDNA2 runs
    ("llama.cpp/rocm", "rdna2"): 0.7,
    ("llama.cpp/vulkan", "xe-hpg"): 0.4,
    ("llama.cpp/vulkan", "xe2-hpg"): 0.65,
}
# Where a mat-vec kernel's share of the bandwidth depends on the rows' length (`row_length_share`): (the share a row
# of infinite length would reach, the row length in weights at which it reaches half of that). llama.cpp's
# quantized mat-vec on HBM parts keeps one warp on a row, and on HBM the latency × bandwidth product is large
# enough that a row's start-up shows: Llama 3 70B Q4_K_M (rows of 8192 and 28672) streams at 0.53-0.59 of an A100
# PCIe / SXM and H100 PCIe's bandwidth, 8B (4096 and 14336) at 0.41-0.47, once the per-layer cost is taken out
# (XiongjieDai/GPU-Benchmarks-on-LLM-Inference, May 2024 builds). Set on the A100 PCIe and H100 PCIe runs; the
# A100 SXM, held out, went from 14.6 % to 10.1 % median decode error with it. GDDR cards reach 0.8-0.88 whatever
# the rows (`DECODE_EFFICIENCY`).
ROW_BOUND_DECODE: dict[tuple[str, str, str], tuple[float, int]] = {("llama.cpp/cuda", "hbm", "quant"): (0.65, 3000)}
# The engine / backend pairs public measurements calibrate (measurements/speed), and pairs calibrated on some GPU
# generations only (llama.cpp on ROCm: RDNA3 cards, and CDNA3 in 2025 builds; not CDNA2 or CDNA4); the others get a
# note saying so.
# vLLM on ROCm: MI300X runs (CDNA3) only. A backend with decode coefficients (`DECODE_EFFICIENCY`) is calibrated on the
# memory technologies they were measured on only (vLLM on CUDA: HBM and GDDR, not a GB10's LPDDR5X).
CALIBRATED_BACKENDS = ("llama.cpp/cuda", "llama.cpp/metal", "vllm/cuda", "mlx/metal", "transformers/cuda")
CALIBRATED_ARCHITECTURES = {"llama.cpp/rocm": ("rdna3", "cdna3"), "vllm/rocm": ("cdna3",)}


# The engine builds the calibrating measurements ran (measurements/speed/*.jsonl `engine_version`): the version vram
# assumes, said next to the figure.
CALIBRATED_VERSIONS: dict[str, str] = {
    "llama.cpp/cuda": "llama.cpp builds of May 2024 - Sept 2025 (the per-layer cost is set between them: May 2024 "
    "builds decode small models slower than the figure, 2025 builds with CUDA graphs faster)",
    "llama.cpp/metal": "llama.cpp builds of May 2024 (2026 Metal builds decoded an 8B 15-20 % faster than the figure)",
    "llama.cpp/rocm": "llama.cpp builds of 2024-2025 on RDNA3, 2025 builds (MFMA kernels) on CDNA3",
    "vllm/cuda": "vLLM 0.7-0.10 of 2025 (V1 CPU loop ~4 ms per step; a 2026 build, 0.16, stepped a small model in "
    "2.9 ms)",
    "vllm/rocm": "vLLM ROCm builds of 2025",
    "mlx/metal": "mlx-lm 0.20-0.28 (2024-2025)",
    "transformers/cuda": "transformers 4.46-4.51, eager generate() with DynamicCache",
}


def is_calibrated(gpu: GpuEntry, be: str) -> bool:
    if be not in CALIBRATED_BACKENDS and gpu.architecture.lower() not in CALIBRATED_ARCHITECTURES.get(be, ()):
        return False
    measured = {mem for (b, mem, _fmt) in DECODE_EFFICIENCY if b == be}
    return not measured or memory_class(gpu) in measured


# Apple GPU generations before M3 reach a lower share of their datasheet bandwidth and ALU rate with the same kernels
# (M3's GPU added Dynamic Caching, which allocates registers and threadgroup memory per wave as it runs, and issues
# FP32, FP16 and integer work side by side): llama.cpp's May 2024 builds, same kernels on every Mac, decode F16 8B
# on an M1 Max at +7 / +16 % of the M3-calibrated rate and Q4_K_M at +11 ... +15 %, an M2 Ultra at -6 ... +8 % and
# +10 % (median), an M3 Max at -9 / -8 % and -16 ... +6 %; prompts the same way (XiongjieDai/GPU-Benchmarks-on-LLM-
# Inference). The share multiplies every rate of such a GPU (bandwidth, ALU) for every engine.
GENERATION_SHARE: dict[str, float] = {"apple-m1": 0.83, "apple-m2": 0.89}


def generation_share(gpu: GpuEntry) -> float:
    return GENERATION_SHARE.get(gpu.architecture.lower(), 1.0)


# Fallback for a backend / memory pair not listed (ROCm, Gaudi, transformers, ...): a plain streaming kernel.
DEFAULT_DECODE_EFFICIENCY = 0.7
# The KV cache is read by the attention kernel in long contiguous blocks: the share a copy kernel gets.
KV_READ_EFFICIENCY = 0.75
# llama.cpp's decode attention without flash attention (the May 2024 builds' default) is three kernels over the
# cache per layer (KQ as a batched mat-vec over the permuted f16 K, softmax, KQV): llama-bench tg4096 vs tg512 of the
# same model and GPU adds the cache's bytes at 0.16-0.44 of the datasheet bandwidth on CUDA cards (RTX 3070 ... 4090,
# A6000, L40S, A100; median ~0.3) and 0.1-0.26 on Apple GPUs (M1 Max, M2 Ultra, M3 Max; XiongjieDai/GPU-Benchmarks-on-
# LLM-Inference). With flash attention (the default since 2025 builds) one fused kernel streams it faster; no
# measurement here separates that, and `vram fit` has no build input, so the flash-attention figure is set between
# the fused kernels' ~0.75 and the measured one — nearer the builds the public measurements come from.
DECODE_KV_EFFICIENCY: dict[str, tuple[float, float]] = {
    "llama.cpp/cuda": (0.3, 0.4),
    "llama.cpp/metal": (0.15, 0.16),
    # MLX's fused scaled_dot_product_attention (one kernel; there is no unfused path): Llama 3.3 70B 4-bit on an M3 Max
    # loses 1.39 µs per token per extra token of context from 0.4 k to 24 k (mlx-examples#1029): 0.33 MB of f16 K and V
    # per token at ~0.6 of the bandwidth
    "mlx/metal": (0.65, 0.65),
}
# transformers' generate() (4.46-4.51, the releases calibrated; DynamicCache, a 2-D attention mask) moves the cache
# several times a step, not once: each layer's update appends the new token with torch.cat, which reads the old keys
# and values and writes them anew; with flash_attention_2 the mask sends every step through the unpadded path, whose
# gather copies the keys and values again before flash_attn_varlen_func reads them (`TRANSFORMERS_CACHE_COPIES`, at a
# copy kernel's share, `KV_READ_EFFICIENCY`). That kernel gives each query head its own thread block, which reads its
# group's keys and values (GQA: `query_group` reads of the cache) one query row at a time, at a small share of the
# bandwidth (`TRANSFORMERS_ATTENTION_KV_EFFICIENCY`). Set on the Qwen2.5 team's A100 runs (transformers 4.46,
# flash_attention_2; 7B, 14B, 32B BF16, groups of 7, 5, 5), which decode 1.0-3.2x slower at 6,144- and 30,720-token
# prompts than at a 1-token one: all six within -7 ... +18 % with them, scored end to end as the tables time them
# (+18 % where the host's Python sets the step), +20 ... +240 % without (measurements/speed/transformers-generate
# .jsonl).
# Collected after: the Qwen1.5 table (0.5B-72B, plain multi-head, an earlier release; 24 rows) within -21 ... +22 %,
# the Qwen2.5 table's other 15 rows within -10 ... +17 %. SDPA's path expands a GQA cache to every query head
# (repeat_kv) where flash_attention_2 gathers it: about the same bytes, taken the same, not measured here.
TRANSFORMERS_CACHE_COPIES = 4.0
TRANSFORMERS_ATTENTION_KV_EFFICIENCY = 0.18


def query_group(spec: ModelSpec) -> float:
    """Query heads per cached key/value head (GQA's group), averaged over the layers by their share of the cache; 1
    for latent attention (MLA) and plain multi-head."""

    def compute() -> float:
        total = grouped = 0.0
        for la in spec.layers:
            att = la.attention
            if att is None or att.shares_kv_of is not None:
                continue
            w = float(att.cache_elems_per_token())
            total += w
            grouped += w * (att.num_heads / att.num_kv_heads if att.kind == "mha" and att.num_kv_heads else 1.0)
        return grouped / total if total else 1.0

    return _memo(spec, ("query-group",), compute)


# Dequantizing GGUF blocks on Apple GPUs is ALU bound: bytes × this / the GPU's FP32 rate (× its generation's share).
# ~46 FLOP-equivalents per weight byte (unpack nibbles and 6-bit scales, scale, min, FMA, in 32-wide SIMD groups):
# M1 Max Q4_K_M decode runs at 0.44 of its bandwidth in May 2024 builds and 0.53 in 2026 ones, M3 Max at ~0.6
# (XiongjieDai/GPU-Benchmarks-on-LLM-Inference, brand-o/normiebench#40); the value is between the builds. The base M1
# (2.3 TFLOPS, 68 GB/s) and M4 (~4 TFLOPS, 120 GB/s) are bound by it too.
METAL_DEQUANT_FLOP_PER_BYTE = 46.0
# GGUF's legacy block formats (Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0: one scale, and for _1 a min, per 32 weights) unpack
# with a few integer ops per weight and no nested 6-bit scales, so Metal's mat-vec stays bound by the memory on every
# M-series GPU, at F16's share of it (`weight_format`): LLaMA 2 7B Q8_0 / Q4_0 tg128 on 15 M1-M4 chips (llama.cpp
# discussion #4167, build 8e672ef) read their weights at 0.8-0.9 of the bandwidth (once that build's per-layer cost is
# out) where the K-quants' ALU cost gave 0.4-0.6: that set's decode median went from 20.5 % to 12.5 %.
LEGACY_BLOCK_FORMATS = ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0")


def metal_dequant_flop_per_byte(q: QuantScheme) -> float:
    """ALU work per weight byte that bounds Metal's quantized mat-vec: the K / IQ formats'
    (`METAL_DEQUANT_FLOP_PER_BYTE`); none for the legacy block formats (`LEGACY_BLOCK_FORMATS`), bound by memory."""
    return 0.0 if q.name in LEGACY_BLOCK_FORMATS else METAL_DEQUANT_FLOP_PER_BYTE


# --- fixed costs -----------------------------------------------------------------------------------------------
# Per transformer block per decode step: the block's ~20 small kernels (norms, rope, KV copy, softmax, adds,
# activation) each cost a launch + tail of a few µs whatever their bytes. llama.cpp on CUDA: ~45 µs per block; it is
# what separates the 8B and 70B llama-bench tg rates on one GPU (32 vs 80 blocks) — ~70 µs in the May 2024 builds
# of the shared measurements, ~33 µs in a September 2025 build with CUDA graphs (RTX PRO 6000, Llama 2 7B / 3.3 70B).
# The CLI has no build input: the value is between them, nearer the builds people run today while the May 2024 set
# stays within its bounds (its decode median 6.6 %, max 38 % at 45 µs; 6.1 % / 32 % at 55 µs, 8.9 % / 46 % at 33 µs).
# Metal: each op is its own compute dispatch; with each generation's share of the rates (`GENERATION_SHARE`) the 8B /
# 70B tg512 / tg4096 pairs of the May 2024 builds on M1 Max, M2 Ultra and M3 Max fit ~32 µs per block (coordinate search
# with the weights' and ALU rates, tune.py), while a 2026 build decodes the same 8B on an M1 Max 6.4 ms per token
# faster (brand-o/normiebench#40: 46.2 vs 35.7 t/s) — from its kernels, not its fixed costs. vLLM replays decode as
# CUDA graphs: ~10 µs.
LAYER_OVERHEAD_S: dict[str, float] = {
    "llama.cpp/cuda": 45e-6,
    "llama.cpp/metal": 32e-6,
    "vllm/cuda": 10e-6,
    # MLX encodes a step's kernels into Metal command buffers ahead of the GPU (mlx-lm's async_eval overlaps the
    # Python graph build of step n + 1 with step n): ~25 µs per block, with ~1 ms per step on the host (below)
    "mlx/metal": 25e-6,
}
# A GPU generation runs only the llama.cpp builds that know it: Blackwell (sm_100 / sm_120) support arrived in 2025
# builds, which replay decode as CUDA graphs (default since mid-2024: ~33 µs per block, the RTX PRO 6000's build 6413)
# and multiply quantized weights with MMQ kernels on the tensor cores rather than dequantizing them to FP16 for
# cuBLAS (default on Turing and newer since mid-2024). On those architectures the coefficients of those builds apply.
LLAMA_CPP_2025_BUILD_ARCHITECTURES = ("blackwell", "blackwell-ultra")
# ... and on any GPU when such a build is asked for (`--llama-build`): from b6000 (July 2025), the builds the 2025
# measurements ran (RTX PRO 6000 at b6413; the CUDA scoreboard of llama.cpp discussion #15013, opened in August 2025,
# on 19 GPUs from Pascal to Blackwell). Without a build the default terms stay between the builds.
LLAMA_CPP_2025_BUILD = 6000
# The 2025 builds' quantized mat-vec (mmvq) streams GDDR at about F16's share: LLaMA 2 7B Q4_0 tg128 on RTX 30 / 40 /
# 50 cards and RTX A-series (#15013) and Llama 3.3 70B / Mistral Nemo 12B Q4_K_M on an RTX PRO 6000 (b6413) read their
# blocks at 0.86-0.93 of the bandwidth once the per-layer cost is out, where the May 2024 builds reached 0.8. Dense
# models only: MoE experts go through MUL_MAT_ID, one short call per routed expert, which the same RTX PRO 6000 build
# ran at ~0.8 (Qwen3-30B-A3B, gpt-oss-120b: −3 % / +12 % at 0.8, +5 % / +20 % at 0.9). Not on a DGX Spark's LPDDR5X,
# where a 2025 build decoded a 3B and a 14B Q4_K_M within −1 … −3 % of 0.8, nor on Pascal (the same scoreboard's Tesla
# P40 read its blocks at 0.61: its dp4a kernels).
LLAMA_CPP_2025_DECODE_EFFICIENCY: dict[tuple[str, str, str], float] = {
    ("llama.cpp/cuda", "gddr", "quant"): 0.9,
    # HBM: the scoreboard's A100 80 GB and H100 80 GB rows (not exact: SXM or PCIe not stated; at the SXM parts'
    # bandwidth) decode at 0.5 of it whatever the row length (−2 … +5 %), where the May 2024 builds' row-bound share
    # gave −13 … −17 %; its V100 at ~0.65 (Volta, not separated)
    ("llama.cpp/cuda", "hbm", "quant"): 0.5,
    # ROCm on GDDR cards: the #15021 scoreboard (LLaMA 2 7B Q4_0, 2025 builds) decodes RX 6800 XT / 6900 XT / 7800 XT /
    # 7900 XT / XTX at 0.64-0.83 of the bandwidth once ~30 µs per layer is out, where the 2024 - mid-2025 builds the
    # RDNA3 share was set on reached 0.52
    ("llama.cpp/rocm", "gddr", "quant"): 0.7,
}
# ... and their prompt GEMMs, against `tensor_tflops`'s rate: RDNA3's WMMA at 0.40-0.42 (RX 7800 XT / 7900 XT / XTX,
# against the older builds' 0.33)
LLAMA_CPP_2025_PREFILL_MFU: dict[tuple[str, str], float] = {("llama.cpp/rocm", "rdna3"): 0.41}
LLAMA_CPP_GRAPH_LAYER_OVERHEAD_S = 33e-6
# Apple's Ultra chips are two Max dies joined by UltraFusion: every compute dispatch spans both dies' GPU cores and
# drains across the bridge, so each of a block's small kernels costs more than on one die. Per extra die, per layer:
# llama.cpp ~60 µs — short steps of small models on M1 / M2 / M3 Ultra run 20-44 % faster than the single-die costs
# give in every build measured (LLaMA 2 7B Q4_0 / Q8_0 / F16 on M1 / M2 / M3 Ultra, discussion #4167, Nov 2023;
# Llama 3 8B Q4_K_M on an M2 Ultra, May 2024; Llama 3.2 3B on an M3 Ultra, build 7315), while 70B steps, where the
# bytes dominate, were within ±9 %: the exact Ultra runs go from 8.7 % / 44 % (median / max) to 5.7 % / 15 %. MLX
# ~30 µs, from the Rapid-MLX server runs on a 60-core M3 Ultra (not exact: a core count the catalog lacks; 14 % to 4 %
# median).
APPLE_DIE_LAYER_OVERHEAD_S: dict[str, float] = {"llama.cpp/metal": 60e-6, "mlx/metal": 30e-6}
DEFAULT_LAYER_OVERHEAD_S = 30e-6
# A GPU generation whose llama.cpp builds cost another time per layer: CDNA3 ~110 µs. The HIP builds run every
# kernel of a layer as its own launch (HIP graphs were off by default from their arrival, llama.cpp #11362, Jan 2025,
# until #22254, Apr 2026); on RDNA3 cards the same builds cost ~30 µs (the #15021 scoreboard), on an MI300X the 7B
# above spends 3.5 of its 5.5 ms per token outside its bytes. Set with the CDNA3 bandwidth share (above) over the
# 14 exact MI300X decode rows (before: 0.34 and 30 µs, the 7B +69 / +96 %, DeepSeek-V3 +22 … +42 %; after: −9 …
# +23 %). Why an MI300X launch costs more is not established here; no MI300X run with HIP graphs was found.
ARCH_LAYER_OVERHEAD_S: dict[tuple[str, str], float] = {("llama.cpp/rocm", "cdna3"): 110e-6}
# Per mixture-of-experts layer per step on top: router matmul, softmax/top-k, sorting tokens by expert, the
# gather/scatter and the per-expert kernels (llama.cpp MUL_MAT_ID, vLLM fused_moe). llama.cpp: ~20 µs with today's
# on-GPU dispatch (Qwen3-30B-A3B Q4_K_M tg128 on an RTX PRO 6000, build 6413); its earlier builds waited for the host at
# every expert product (`LLAMA_CPP_MMID_SYNC_S`, below). vLLM ~110 µs: the router GEMM, top-k softmax, the
# token-by-expert sort (moe_align_block_size), two grouped expert GEMMs with their gather/scatter, the activation and
# the weighted sum are ~8 Triton/CUDA kernels of a few µs each even inside a CUDA graph; gpt-oss-20b at concurrency 1 on
# H100 PCIe / H200 / B200 (sariekr/gpu_conc) takes 1.1-1.7 ms per step (24 MoE layers: 45-70 µs each) more than its
# bytes (the experts' MXFP4 and the BF16 rest weighted apart, `weight_read_fraction`) and vLLM's dense-model fixed costs
# account for.
MOE_LAYER_OVERHEAD_S: dict[str, float] = {
    "llama.cpp/cuda": 20e-6,
    "llama.cpp/metal": 120e-6,
    "vllm/cuda": 110e-6,
    # MLX's SwitchGLU (router, top-k, three gather_qmv calls, the weighted sum): Qwen3-30B-A3B 4-8 bit on an M4 Max
    # (mlx-lm BENCHMARKS.md) decodes 2.6-2.7 ms per token slower than its routed bytes and dense fixed costs allow:
    # ~55 µs per MoE layer
    "mlx/metal": 55e-6,
}
DEFAULT_MOE_LAYER_OVERHEAD_S = 60e-6
# llama.cpp's CUDA / HIP MUL_MAT_ID (a MoE layer's routed-expert product: ffn_gate_exps, ffn_up_exps, ffn_down_exps)
# once copied the routing ids to the host and waited for the stream (cudaStreamSynchronize), then launched one
# product per routed expert from a host loop. Its builds, by what they did (`--llama-build`; none given: today's):
# - before #6505 (`LLAMA_CPP_MMID_GROUPED_FROM`: b2694, 18 April 2024) one MUL_MAT_ID per expert slot and matrix,
#   each with its wait, and one product (plus row copies) per token row;
# - before #13014 (`LLAMA_CPP_MMID_DEVICE_DECODE_FROM`: b5170, 22 April 2025) one call per matrix, still a wait and
#   one product per routed expert at batch 1 (then the mat-vec kernel reads the ids on the GPU: no wait, one launch);
# - before #15525 (`LLAMA_CPP_MMID_DEVICE_PROMPT_FROM`: b6272, 25 August 2025) passes of more than one token (prompt
#   ubatches, parallel decode) still waited once per call while the host sorted the rows by expert. A wait empties
#   the GPU's queue, so a layer-split prompt's ubatches cannot overlap on the GPUs (`layer_split_prefill_s`): the
#   same 8 × MI300X box prefilled DeepSeek-V3 Q4_K_M at pp512 / pp4096 439 / 420 t/s with build 5997 and
#   514 / 1650 t/s with b6652 (AMD ROCm blogs, Sep / Dec 2025).
# Per wait (the ids' copy back, the sync, the host's loop) `LLAMA_CPP_MMID_SYNC_S`, per product launched beyond the
# one a matrix needs today `LLAMA_CPP_MMID_LAUNCH_S`: solved from Mixtral 8x7B Q5_K_M decoding on an A100 and an H100
# in December 2023 (6 waits and 6 products per layer: 6.7 / 7.0 ms per token over what today's dispatch gives,
# llama-cpp-python#1017) and #13014's Tesla P40 pair (DeepSeek-V2-Lite Q4_0 tg128: 47.78 t/s before, 62.87 with
# the ids read on the GPU but CUDA graphs still off: 5.0 ms per token for 3 waits and 15 extra products per layer).
# Checked on #6505's own pair (RTX 3090 Ti, Mixtral Q3_K_S; not used to set them): grouping the slots saved 3.4 ms per
# token at tg128 (43.07 -> 50.40 t/s), 3.1 here; at pp512 0.90 s per ubatch (387.6 -> 1226 t/s), 0.63 here — its
# row copies were memcpys, dearer than launches. In the 2025 builds before #15525 a prompt's MMQ product was one
# launch, but the host sorted the ubatch's rows by expert after each wait: that loop is taken at the launch cost of
# the experts it fills (DeepSeek-V3 on 8 × MI300X, b5997 pp512: −5 %; b6652, without it: +6 %). The PR's one HIP
# pair (an RX 6800: 27.26 -> 52.74 t/s) lost 3.5x as much per call: ROCm figures of such builds are optimistic.
LLAMA_CPP_MMID_GROUPED_FROM = 2694
LLAMA_CPP_MMID_DEVICE_DECODE_FROM = 5170
LLAMA_CPP_MMID_DEVICE_PROMPT_FROM = 6272
LLAMA_CPP_MMID_SYNC_S = 32e-6
LLAMA_CPP_MMID_LAUNCH_S = 6.4e-6
LLAMA_CPP_MMID_BACKENDS = ("llama.cpp/cuda", "llama.cpp/rocm")
# vLLM on AMD GPUs without FP4 matrix instructions (CDNA3 and older: MI300X / MI325X; CDNA4 has scaled-MFMA FP4) runs
# MXFP4 experts (gpt-oss) through triton_kernels' matmul_ogs (vllm mxfp4.py: the Triton backend on ROCm), which
# dequantizes every weight tile in vector ALUs inside the GEMM. It is latency bound, not bandwidth bound: a call
# takes waves × the depth each workgroup walks × the time per depth element, whatever its bytes. Its AMD defaults
# (triton_kernels matmul_ogs_details/opt_flags.py) set the waves: tiles of 32 routed rows (64 past 32 rows an expert)
# × 256 outputs; as many workgroups launched as the router can fill (the rows, up to the expert count, then one more
# per 32 rows); the depth split `CUs // launched` ways when that is 2 or more; 2 wavefronts a workgroup while the
# routed rows (tokens × experts per token) are at most 16, 8 past that. ROCm/triton#970 times the narrow form — the
# gpt-oss-20b gate/up call at one token (32 experts, 3072 deep, 6144 outputs, 4 routed: 96 workgroups, split 3, so
# 1,024 deep each, one wave on an MI300X) — at 82.3 µs with triton 3.6 (80.4 with 3.7.1 without the trackers flag;
# 121 with it, 135 with 3.8): 80 ns per depth element, ~0.45 TB/s against the 5.3 TB/s its bytes would allow. Each
# workgroup holds 25,600 bytes of LDS (same issue): two fit a CDNA3 CU's 64 KiB. Two wavefronts keep 2 of a CU's 4
# SIMDs busy, eight all 4: the wide form's time per depth element is taken at half the narrow one's
# (`ROCM_MXFP4_WIDE_SPEEDUP`, the SIMD count, not a fit). A prompt's rows go through the same kernel
# (`prefill_tokens_per_s`): gpt-oss-120b's 1,024-token prompt takes 35.6 ms of expert waves on an MI300X, where its
# FLOPs would take ~11, and the prompts continuous batching interleaves cost their share of every step. Checked on
# gpt-oss-120b TP 1 on one MI300X at 64-256 sequences (vLLM 0.17, triton 3.6 as #970; SemiAnalysisAI/InferenceX#1053):
# −31 … −6 % without the release, −26 … +13 % with it (one rate for every tile, no split, prompts by their FLOPs:
# −38 … −16 % and −34 … 0 %); and on sariekr/gpu_conc's gpt-oss-20b at 1-16 sequences (build not stated): −20 … +19 %.
# The split is why that run steps 5 ms slower at 4 sequences than at 1 (the 1-token calls split 3 and 6 ways; at 4
# the gate/up call fills the GPU unsplit). Depth and outputs are padded to 256 (vllm mxfp4_utils
# get_padding_alignment on ROCm).
ROCM_MXFP4_TILE = (32, 256)  # routed rows, outputs per workgroup
ROCM_MXFP4_PAD = 256
ROCM_MXFP4_DEPTH_BLOCK = 128
ROCM_MXFP4_S_PER_DEPTH = 82.3e-6 / 1024
ROCM_MXFP4_NARROW_ROWS = 16
ROCM_MXFP4_WIDE_SPEEDUP = 2.0  # 4 SIMDs busy, not 2
ROCM_MXFP4_WORKGROUPS_PER_CU = 2
ROCM_NATIVE_FP4_ARCHITECTURES = ("cdna4",)
# Per decode step on the host: (fixed, per sequence). vLLM's scheduler, sampler and detokenizer/streaming run every
# step: ~0.6 ms + 40 µs per sequence (the A100 Qwen2.5-7B runs from 1 to 200 sequences); llama.cpp's graph build
# and sampling ~0.15 ms.
STEP_OVERHEAD_S: dict[str, tuple[float, float]] = {
    "vllm": (0.6e-3, 40e-6),
    "llama.cpp": (0.15e-3, 5e-6),
    # mlx-lm's loop per token: sampling, the token's .item() sync and the detokenizer (~1 ms, from the same M4 Max
    # and M3 Max fits)
    "mlx": (1.0e-3, 5e-6),
}
DEFAULT_STEP_OVERHEAD_S = (0.5e-3, 20e-6)
# The engine's per-step CPU loop (schedule, build the inputs, sample, hand the tokens to the API server, which
# detokenizes and streams them) runs beside the GPU's forward pass; when the forward is shorter, the loop sets the
# step. vLLM (V1 engine, 2025): ~4 ms — Qwen3-0.6B decodes at a 4.2-4.4 ms TPOT on an A100 whose bandwidth allows
# ~1.1 ms (tenstorrent/tt-inference-server#340), and gpt-oss-20b at concurrency 1 takes 4.5 ms per token on an H200
# and a B200 alike, despite 1.7x the bandwidth (sariekr/gpu_conc). Larger models' steps are longer than the loop
# (Qwen2.5-7B on an A100: 11.8 ms), so it hides behind them.
STEP_FLOOR_S: dict[str, float] = {"vllm": 4.0e-3}
# vLLM from 0.14 (January 2026) schedules step n + 1 while step n runs on the GPU (async scheduling, on by default
# since vLLM PR #27614): the host's per-step work (`STEP_OVERHEAD_S`) no longer leaves the GPU idle but runs beside
# it, so a step takes the longer of the two. Its CPU loop is shorter too: Nemotron-3-Nano at one sequence on 2 × B200
# (vLLM 0.16) and gpt-oss-120b TP 8 at four on H100s (0.15.1) step in 2.9 and 3.7 ms, under the 2025 builds' 4 ms
# floor. Its MoE layers cost less beyond their bytes (fused routing and top-k, Marlin / FlashInfer expert GEMMs):
# gpt-oss-120b TP 2-8 at 4-64 sequences on H100s (0.15.1, SemiAnalysisAI/InferenceX#828) and Nemotron Nano on B200s
# (0.16) decoded 1.5-1.75× faster than the 2025 figures; ~60 µs per MoE layer where the 2025 builds took 110 (set on
# gpt-oss-120b TP 8 at four sequences, 3.72 ms per step, and Nemotron Nano at eight, 3.96 ms). These apply where a
# vLLM release of 0.14 or later is asked for (`--engine-version`); without one the speed stays that of the 2025
# builds the exact measurements calibrate. The 44 decode figures of 0.14-0.20 runs in measurements/speed (fit_check.py
# --versions) go from a 33 % median error to 6 % with them; most are TPOT figures whose statistic is not stated, so
# those releases get their own range, p10-p90 of measured / predicted over those runs (`VLLM_ASYNC_SPREAD`).
VLLM_ASYNC_FROM = (0, 14)
VLLM_ASYNC_STEP_FLOOR_S = 2.9e-3
VLLM_ASYNC_MOE_LAYER_OVERHEAD_S = 60e-6
VLLM_ASYNC_SPREAD = (0.88, 1.2)
# transformers' generate() runs the model eagerly: Python dispatches each of a decoder layer's ~40-60 PyTorch ops (norm,
# projections, rotary, cache update, sdpa, MLP, adds) one after another, and the host, not the GPU, sets the pace up
# to ~30 B parameters. Per layer per step: 0.89 ms on the Qwen2.5 team's A100 host (0.5B ... 32B, 24-64 layers, all
# within ±3 % of it; transformers 4.46), 0.60 ms on the Qwen3 team's H20 host (0.6B ... 32B; 4.51), 0.66 / 0.76 ms
# for Llama 3.1 8B on an RTX 4090 desktop / an H100 cloud host, ~1.1 ms on a T4's (bitsandbytes 0.45 benchmark,
# transformers 4.46; measurements/speed/transformers-generate.jsonl). The host's CPU is not an input, so the middle is
# used and the range shown is the hosts' spread (`HOST_BOUND_SPREAD`).
HOST_LAYER_S: dict[str, float] = {"transformers": 0.75e-3}
HOST_BOUND_SPREAD = (0.7, 1.25)
# transformers' MoE blocks (transformers 5: `Qwen3MoeExperts.forward` and its kin) find the routed experts with one
# nonzero() per layer, then loop in Python over each hit expert: a tensor comparison and a torch.where that each wait
# for the GPU, then the gather, gate-up product, activation, down product, weighting and index_add (~10 ops). 4.51
# looped over all 128 experts of Qwen3-30B-A3B with one such wait each, and took 0.53 s per token on an H20 (1.9 t/s):
# 86 µs per mostly empty iteration; a hit expert's iteration, with two waits and its kernels, is taken at 150 µs. Not
# measured in transformers 5, so MoE models on transformers are not calibrated and say so.
HOST_EXPERT_S: dict[str, float] = {"transformers": 0.15e-3}
# transformers releases before 4.53 (huggingface/transformers#38133 for Qwen3-MoE and its kin, June 2025) loop over
# every expert of a MoE block, hit or not, each iteration waiting once for the GPU (`HOST_EMPTY_EXPERT_S`); given
# `--transformers-version`, such a release is priced so. Set on the one run above (in-sample).
HF_HIT_EXPERTS_FROM = (4, 53)
HOST_EMPTY_EXPERT_S = 86e-6
# Model families an engine's measurements contradict rather than calibrate: DeepSeek-R1 (latent attention, 256
# routed experts, FP8 blocks) TP 8 on vLLM decoded 1.6-2.3x slower than modelled on 8 x H200 (vLLM 0.7.4) and 2-4x on
# 8 x MI300X (0.7.3; Aug 2025 ROCm builds 1.8-2.2x) at 4-256 sequences of 3,200-token prompts (dstackai/benchmarks,
# vllm-project/recipes), with a 1 s TTFT at 4 sequences that says its prompts ran at ~3 k tokens/s — a prefill path
# the FLOPs do not explain. Those models get no range and a note, not a claimed accuracy. What is known of the gap
# (at 4 sequences on the H200s the TPOT is a plain decode step: its spread is 0.09 ms): that nightly still kept the
# absorbed W_Q·W_UK and W_UV·W_O matrices in FP8 (vllm#14770 dropped them), ~3 GB more per GPU and step (~0.7 ms);
# block-FP8 GEMMs at one token row had a ~14-20 µs floor per call and streamed larger ones at 0.45-0.65 TB/s on an
# H100 (vllm#23280, sglang#5820), ~7 such calls per layer, ~5-6 ms per step over 61 layers; on the MI300X the
# kernels before AMD's AITER (which AMD puts at 3x for MoE, 17x for MLA decode) — SGLang decoded DeepSeek-V3 TP 8
# at batch 4 in 36-38 ms there too (sglang#3237). About half the H200 gap; not modelled, for want of the releases
# these floors held in.
UNCALIBRATED_ATTENTION: dict[str, tuple[str, ...]] = {"vllm": ("mla",)}
# Layer split: handing the activations to the next GPU (device-to-device copy, an event sync) per boundary and
# step: ~0.2 ms (llama-bench tg512 of the same model on 1, 2, 4 and 8 RTX 4090 / A6000 / L40S / A100 PCIe).
STAGE_HOP_S = 0.2e-3
# Small-message all-reduce latency per call (NCCL, 2-8 GPUs), used twice per layer per decode step under TP.
ALLREDUCE_LATENCY_S = {"nvlink": 8e-6, "infinity-fabric": 12e-6, "pcie": 25e-6}
DEFAULT_ALLREDUCE_LATENCY_S = 25e-6
# One-way bandwidth the all-reduce's payload sees (GB/s): NVLink about half the bidirectional figure; PCIe cards
# through the host bridge ~20 GB/s.
ALLREDUCE_BUS_GB_PER_S = {"nvlink": 0.5, "infinity-fabric": 0.5}
PCIE_ALLREDUCE_GB_PER_S = 20.0
# Continuous batching: the share of the other sequences' prompts prefilled while one sequence generates its tokens.
# 1 for a steady stream (each finished request replaced at once); ½ when all requests arrive together (request i
# decodes through the prefills of the requests after it). Set between the two from vLLM benchmark_serving runs at
# 10-200 concurrent requests on A100 (dennislee22/vLLM-benchmarking). A step adds at most its token budget
# (max_num_batched_tokens, less the batch's decode tokens) of those prompts: a burst of long prompts and short outputs
# (100 × 15,000 tokens, 128 out) is bound by it.
INTERLEAVED_PREFILL_SHARE = 0.4
# Prompt tokens per forward pass where the caller does not say (vLLM's default max_num_batched_tokens of the OpenAI
# server on GPUs of 70 GiB and more; `engines.vllm.default_max_num_batched_tokens` gives it per GPU).
DEFAULT_PREFILL_CHUNK = 8192
# Share of the host link's one-way bandwidth that streaming offloaded weights reaches.
HOST_LINK_EFFICIENCY = 0.8

# --- prefill -------------------------------------------------------------------------------------------------------
# Model FLOPs utilisation of prefill's GEMMs against the tensor rate of the kernel used, once the SMs are busy (the
# last partial wave of tiles, `GEMM_WAVE_TILE`, and the passes over the activations between the GEMMs,
# `activation_bytes_per_token`, are counted apart). llama.cpp on CUDA (cuBLAS FP16 at ubatch 512 in the May 2024
# builds, MMQ in 2025 ones): 0.75 — with the wave and activation terms, the Llama 3 8B and 70B F16 / Q4_K_M pp512 and
# pp4096 runs on RTX 3070 ... 4090, RTX 4000 / 5000 Ada, A6000, A40, A100 and L40S need one rate, not one per model
# size (XiongjieDai/GPU-Benchmarks-on-LLM-Inference; fit_check.py --holdout). vLLM's BF16 GEMMs at 2k+ tokens per
# chunk ~0.6 (its kernels are fused: no separate activation term). llama.cpp's Metal simdgroup-matrix kernels: ~0.82 of
# an M3-generation GPU's ALU rate for F16 (M1 Max, M2 Ultra, M3 Max pp512 with GENERATION_SHARE; quantized weights at
# QUANT_PREFILL_SHARE of it).
# llama.cpp on ROCm: ~0.33 of the WMMA FP16 rate on an RX 7900 XTX (pp512 of 7-8B Q4_K_M: 2,890-2,970 t/s in Nov 2024
# and Jun 2025 builds; pp3968 of Llama 2 7B Q4_0 2,420-2,580 in Jan-Feb 2024 ones).
PREFILL_MFU: dict[str, float] = {
    "llama.cpp/cuda": 0.75,
    "llama.cpp/metal": 0.82,
    "vllm/cuda": 0.6,
    "llama.cpp/rocm": 0.33,
    # MLX's steel GEMMs on the FP32 ALUs, prompt chunks of 2048 tokens (prefill_step_size): bf16 Qwen3-4B at 0.87 of
    # an M4 Max's rate, 4-bit Llama 3.3 70B at 0.83 of an M3 Max's (with QUANT_PREFILL_SHARE below)
    "mlx/metal": 0.9,
}
DEFAULT_PREFILL_MFU = 0.5
# A GPU generation whose kernels in that engine reach another share: llama.cpp's HIP MMQ on CDNA3 (int8 MFMA with
# stream-K, 2025 builds) at 0.15 of the MI300X's FP16 matrix rate — Llama 3.1 70B Q4_K_M pp512 1,341 t/s through 8
# layer-split MI300X, one ubatch passing the GPUs in turn, and pp4096 4,011 t/s with the ubatches pipelined (AMD ROCm
# blog, Dec 2025); its Oct 2024 build (dp4a MMQ, before MFMA) ran a 7B at ~1 % of the rate. On RDNA 3.5 (Radeon
# 8060S, Strix Halo) the one public run, build 6092 (Aug 2025), prefilled Llama 3.2 3B Q4_K_M at 573 t/s pp512: 0.055
# of the WMMA rate, a sixth of RDNA3's share (geerlingguy/ai-benchmarks#21) — one run, so the generation stays
# uncalibrated (no range), but its figure starts from what was measured rather than from RDNA3's.
# llama.cpp's Vulkan matrix shaders by vendor, against `tensor_tflops`'s rate, from the #10879 scoreboard's LLaMA 2 7B
# Q4_0 pp512 (2025 builds): on NVIDIA cards (cooperative matrices on the tensor cores) 0.7-1.0 of the FP32-accumulate
# figure the catalog holds (RTX 3070 ... 5090); on AMD RDNA3 / RDNA4 0.35-0.43 of the WMMA rate (RX 7900 XT / XTX,
# RX 9070 XT, R9700); on Intel Arc, whose XMX units these shaders do not use, 0.5-0.85 of the FP32 ALU rate (A770,
# B580, Pro B60).
VENDOR_PREFILL_MFU: dict[tuple[str, str], float] = {
    ("llama.cpp/vulkan", "nvidia"): 0.8,
    ("llama.cpp/vulkan", "amd"): 0.4,
    ("llama.cpp/vulkan", "intel"): 0.65,
}
ARCH_PREFILL_MFU: dict[tuple[str, str], float] = {
    ("llama.cpp/rocm", "cdna3"): 0.15,
    # RDNA2 (RX 6800 XT / 6900 XT) has no matrix units: its prompts run on the packed-FP16 vector rate, at 0.47-0.56
    # of it in the #15021 scoreboard's 2025 builds — the only RDNA2 runs, so they set its share for every build and the
    # generation stays uncalibrated (no range)
    ("llama.cpp/rocm", "rdna2"): 0.5,
    ("llama.cpp/rocm", "rdna3.5"): 0.055,
}
# ... and CDNA3 builds before those MFMA kernels (#14624, merged as b5997, July 2025): quantized prompts ran llama.cpp's
# dp4a-style MMQ (integer dot products on the vector ALUs; the matrix cores idle). The one such run, Llama 2 7B Q4_0
# pp512 on an MI300X with build 3891 (Oct 2024), prefilled 1,334 t/s: ~1.3 % of the FP16 matrix rate. One run, so it
# only sets what a build before b5997 (`--llama-build`) is priced at.
LLAMA_CPP_MFMA_MMQ_BUILD = 5997
PRE_MFMA_PREFILL_MFU: dict[tuple[str, str], float] = {("llama.cpp/rocm", "cdna3"): 0.0127}
# Apple GPUs have no matrix unit: Metal's matrix kernels (llama.cpp's kernel_mul_mm, MLX's quantized qmm) unpack
# each quantized weight tile into threadgroup memory on the same ALUs that then run the FMAs, once per tile of
# 32 token rows, so a quantized prompt runs at this share of a 16-bit one's rate. llama.cpp, May 2024 builds, pp512
# Q4_K_M / F16 of Llama 3 8B / 70B: 0.79 on an M1 Max, 0.90 on an M3 Max, 0.85 / 0.80 on an M2 Ultra (XiongjieDai/
# GPU-Benchmarks-on-LLM-Inference); MLX (mlx-lm 0.28, M4 Max, Qwen3-4B, prompt 2048): 4-8 bit 1,577-1,622 t/s,
# bf16 1,781 (mlx-lm BENCHMARKS.md).
QUANT_PREFILL_SHARE: dict[str, float] = {"llama.cpp/metal": 0.85, "mlx/metal": 0.9}
# cuBLAS and MMQ cut a GEMM of `ubatch` token rows into output tiles of about 128 × 128 and run one tile per SM at a
# time: a product with fewer tiles than SMs, or a last partial wave, leaves SMs idle (`gemm_wave_efficiency`). This
# is why small projections (Llama 3 8B's 1024-wide K and V: 32 tiles at ubatch 512) run far below peak on a 128-SM
# RTX 4090 but less so on a 46-SM RTX 3070, and why 70B's wider matrices run at a higher share than 8B's on the same
# GPU.
GEMM_WAVE_TILE: dict[str, int] = {"llama.cpp/cuda": 128}
# Attention at long prompts, against the same tensor rate. vLLM runs FlashAttention 2/3 (~0.35 of the GEMM peak).
# llama.cpp's figure is from llama-bench pp4096 vs pp512 (0.65-0.88) of builds whose default was no flash attention
# (the f32 score matrix, KQ / softmax / KQV as separate kernels); with -fa 1 newer builds lose less at long prompts.
ATTENTION_MFU: dict[str, float] = {
    "vllm/cuda": 0.35,
    "llama.cpp/cuda": 0.09,
    "llama.cpp/metal": 0.3,
    # MLX's flash-style sdpa: Llama 3.3 70B 4-bit prompts of 1 k to 24 k on an M3 Max slow from 83 to 61 t/s
    "mlx/metal": 0.45,
}
DEFAULT_ATTENTION_MFU = 0.3
# The 2025 builds' flash attention for CUDA (mma tensor-core kernels, on by default): taken at vLLM's FlashAttention
# share; LLaMA 2 7B pp512 with -fa 1 on the #15013 scoreboard ran 5-15 % faster than with -fa 0 on Ada and Blackwell
# cards (the prefill median of its rows 13.5 % at the older 0.09, 11.2 % at this).
LLAMA_CPP_2025_ATTENTION_MFU = 0.35
# Without flash attention llama.cpp materialises the score matrix per ubatch, per head and attended token: KQ's
# cuBLAS product writes it in f16 and a conversion rewrites it as f32 (2 + 2 + 4 bytes), the fused scale-mask-softmax
# reads it with the f16 mask and writes it (4 + 2 + 4), KQV's product converts it back to f16 and reads it (4 + 2 +
# 2): 26 bytes. At KV_READ_EFFICIENCY that is the pp4096 − pp512 time of the May 2024 runs on every card measured
# (Llama 3 8B Q4_K_M: +32 µs per token on an H100 PCIe, +34 on an A100, +50 on an RTX 4090, +131 on an RTX 3070 —
# 0.45-0.6 of the bandwidth at 16 bytes, one rate at 26).
SCORE_BYTES_PER_HEAD_TOKEN = 26
# A routed expert's GEMM gets only the ubatch's tokens routed to it (ubatch × k / E: 32 of 512 for Qwen3-30B-A3B,
# 16 for gpt-oss-120b) while the kernel's tile spans this many tokens, so its tensor cores run at that share:
# llama.cpp's CUDA MMQ / cuBLAS tiles are 128 tokens wide (mmq_x up to 128), Metal's mul_mm_id 32. The attention
# and other dense matrices keep the full rate. RTX PRO 6000, build 6413: Qwen3-30B-A3B pp512 7640 t/s (vram 6.5 k),
# gpt-oss-120b 2419 (vram 2.3 k); without it 18 k and 15 k.
EXPERT_GEMM_TILE_TOKENS: dict[str, float] = {"llama.cpp/cuda": 128, "llama.cpp/rocm": 128, "llama.cpp/metal": 32}
# llama.cpp on CUDA runs every op between the GEMMs as its own kernel over f32 activations (norms, rope, KV copy,
# silu, mul, adds, and the f16 / q8_1 conversions around each matrix product), and — in the builds before MMQ —
# dequantizes every quantized weight matrix to an FP16 copy once per ubatch (read the blocks, write 2 bytes per
# weight). Both are streaming passes of the same small kernels as decode, so they run at the share of the bandwidth
# decode's F16 kernels reach on that memory (`DECODE_EFFICIENCY`: ~0.88 GDDR, 0.5 HBM). They are what makes an 8B
# model's pp512 slower per FLOP than a 70B's (activations grow with the width, FLOPs with its square) and what the
# Q4_K_M / F16 pp512 ratio of the 8B (0.76-0.84 on RTX 4090, A100, A6000, A40, RTX 4000/5000 Ada) costs.
ACTIVATION_PASSES_BACKENDS = ("llama.cpp/cuda",)
# llama.cpp layer split (`--split-mode layer`) prefill: a call of up to n_batch tokens is cut into n_ubatch-token
# ubatches that flow through the GPUs as a pipeline (ggml_backend_sched with pipeline parallelism, llama.cpp #6017):
# k ubatches on n GPUs take (k + n − 1) stage times instead of k × n. pp512 at n_ubatch 512 is one ubatch (no
# overlap); pp4096 at n_batch 2048 runs two calls of four: 4 × RTX 4090, Llama 3 8B Q4_K_M pp512 / pp1024 / pp4096
# 6749 / 9609 / 12491 t/s where one GPU runs 7139 / 6899 / 5266 (XiongjieDai/GPU-Benchmarks-on-LLM-Inference).
# Between stages the ubatch's f32 activations cross the PCIe link (through the host on GeForce cards, which have no
# peer access), one per boundary, plus the hand-over's fixed cost (`STAGE_HOP_S`).
PIPELINED_PREFILL_ENGINES = ("llama.cpp",)


@record(frozen=True)
class Speed:
    decode_tokens_per_s: float  # all sequences of the batch together
    decode_tokens_per_s_per_seq: float
    decode_bound: str  # "memory" | "compute" | "host" (the engine's CPU work per step sets the pace)
    bytes_read_per_step: int  # per GPU (the slowest rank / all stages)
    prefill_tokens_per_s: float | None  # None when the GPU's TFLOPS are not known
    ttft_s: float | None  # prompt of `context` tokens, one request
    cost_per_million_tokens_usd: float | None  # decode tokens at this batch; None without a public price
    price_per_hour_usd: float | None
    offloaded_bytes: int = 0
    assumptions: tuple[str, ...] = ()
    # p10-p90 of the measured / predicted ratios of the public measurements (SPEED_SPREAD), applied to the figures
    decode_range_per_seq: tuple[float, float] | None = None
    prefill_range: tuple[float, float] | None = None
    # whether public measurements calibrate this engine on this backend (`CALIBRATED_BACKENDS`); if not, no range
    calibrated: bool = True

    @property
    def engine_build(self) -> str | None:
        """The engine release or build these figures assume, in words (an assumed fact, said next to the figures)."""
        return next((a for a in self.assumptions if a.startswith("engine version")), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibrated": self.calibrated,
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
            "decode_tokens_per_s_per_seq": round(self.decode_tokens_per_s_per_seq, 2),
            "decode_tokens_per_s_per_seq_range": None
            if self.decode_range_per_seq is None
            else [round(x, 2) for x in self.decode_range_per_seq],
            "decode_bound": self.decode_bound,
            "bytes_read_per_step": self.bytes_read_per_step,
            "prefill_tokens_per_s": None if self.prefill_tokens_per_s is None else round(self.prefill_tokens_per_s, 1),
            "prefill_tokens_per_s_range": None
            if self.prefill_range is None
            else [round(x, 1) for x in self.prefill_range],
            "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
            "cost_per_million_tokens_usd": None
            if self.cost_per_million_tokens_usd is None
            else round(self.cost_per_million_tokens_usd, 4),
            "price_per_hour_usd": self.price_per_hour_usd,
            "offloaded_bytes": self.offloaded_bytes,
            "assumptions": list(self.assumptions),
            "engine_build": self.engine_build,
        }


# p10 and p90 of measured / predicted over the public measurements of calibrated backends (measurements/speed/,
# fit_check.py --spread; 361 decode and 300 prefill figures; host-bound transformers steps have their own,
# `HOST_BOUND_SPREAD`), by quantity: the range shown next to a figure.
SPEED_SPREAD: dict[str, tuple[float, float]] = {"decode": (0.89, 1.20), "prefill": (0.83, 1.24)}
# ... and per engine / backend pair where it has 15 or more such figures of a quantity (fit_check.py --spread): MLX
# lands within a few % of its figures, llama.cpp's ROCm prompts spread from 0.27 (an October 2024 MI300X build, a
# 2025 one whose DeepSeek prompts did not pipeline) to 1.16 of them.
SPEED_SPREAD_BY_BACKEND: dict[str, dict[str, tuple[float, float]]] = {
    "llama.cpp/cuda": {"decode": (0.90, 1.13), "prefill": (0.81, 1.31)},
    "llama.cpp/metal": {"decode": (0.93, 1.22), "prefill": (0.89, 1.15)},
    "llama.cpp/rocm": {"decode": (0.81, 1.20), "prefill": (0.27, 1.16)},
    "mlx/metal": {"decode": (0.97, 1.03), "prefill": (0.88, 1.04)},
    "vllm/cuda": {"decode": (0.91, 1.10)},
}


def speed_spread(be: str, quantity: str) -> tuple[float, float]:
    """p10 / p90 of measured / predicted for `quantity` ("decode" / "prefill") on this backend: its own where it has
    enough figures (`SPEED_SPREAD_BY_BACKEND`), else the pooled one (`SPEED_SPREAD`)."""
    return SPEED_SPREAD_BY_BACKEND.get(be, {}).get(quantity) or SPEED_SPREAD[quantity]


# Per-model memo of the pure per-layer sums below (`which` asks for the same model on every catalog GPU and count):
# keyed by the spec's identity, holding the spec so that the id is not reused while the entry lives.
_MEMO: dict[int, tuple[ModelSpec, dict[tuple[Any, ...], Any]]] = {}
_MEMO_MODELS = 64
_T = TypeVar("_T")


def _memo(spec: ModelSpec, key: tuple[Any, ...], compute: Callable[[], _T]) -> _T:
    got = _MEMO.get(id(spec))
    if got is None or got[0] is not spec:
        if len(_MEMO) >= _MEMO_MODELS:
            _MEMO.clear()
        got = _MEMO[id(spec)] = (spec, {})
    values = got[1]
    if key not in values:
        values[key] = compute()
    return cast(_T, values[key])


def expert_coverage(num_experts: int, experts_per_token: int, tokens: int) -> float:
    """Expected share of a layer's experts that `tokens` routed tokens touch (uniform router): 1 − (1 − k/E)^tokens."""
    if num_experts <= 0:
        return 1.0
    return 1.0 - (1.0 - experts_per_token / num_experts) ** max(1, tokens)


def weight_read_fraction(spec: ModelSpec, batch: int, quant: QuantScheme | None = None) -> float:
    """Share of the weights a decode step streams (`streamed_weight_bytes`) that one step of `batch` sequences
    reads: all of them for dense models; for MoE layers only the experts the batch routes to (`expert_coverage`).

    Weighted by bytes under `quant` (None: by parameters): gpt-oss stores its routed experts in 4.25-bit MXFP4 and
    the rest (attention, head) in BF16, so the experts are 91 % of its parameters but only ~70 % of the bytes a step
    streams, and routing to 4 of 32 experts skips less of the bytes than of the parameters."""
    if not _moe_layers(spec):
        return 1.0
    return _memo(spec, ("read", batch, quant), lambda: _weight_read_fraction(spec, batch, quant))


def _weight_read_fraction(spec: ModelSpec, batch: int, quant: QuantScheme | None) -> float:
    q = quant
    expert_bits = 1.0 if q is None else (q.linear_bits if q.expert_bits is None else q.expert_bits)
    other_bits = 1.0 if q is None else q.linear_bits
    total = skipped = 0.0
    for layer in spec.layers:
        experts = layer.expert_linear_params or layer.expert_params
        total += experts * expert_bits + (layer.params - experts) * other_bits
        m = layer.mlp
        if m is not None and m.kind == "moe" and m.num_experts:
            skipped += experts * expert_bits * (1.0 - expert_coverage(m.num_experts, m.experts_per_token, batch))
    # the head is streamed every step; the input embedding only when it is the head too
    total += spec.head_params * (1.0 if q is None else q.head_bits)
    if spec.tie_word_embeddings:
        total += spec.embed_params * (1.0 if q is None else q.embed_bits)
    return max(0.0, min(1.0, 1.0 - skipped / total)) if total > 0 else 1.0


def rocm_mxfp4_expert_gemm_s(spec: ModelSpec, gpu: GpuEntry, batch: int, ranks: int) -> float:
    """Seconds of the routed experts' two GEMMs (gate/up, down) of every MoE layer for `batch` tokens (a decode
    step's sequences or a prompt chunk's tokens) under vLLM's Triton MXFP4 path on an AMD GPU without FP4 matrix
    units (`ROCM_MXFP4_S_PER_DEPTH`): per call, the workgroups over the experts the tokens touch (`expert_coverage`),
    their row and output tiles, split in depth where the launch leaves CUs idle, in waves of
    `ROCM_MXFP4_WORKGROUPS_PER_CU` a CU."""
    cus = int(gpu.data.get("compute_units") or 0) or 304
    row_tile, out_tile = ROCM_MXFP4_TILE
    total = 0.0
    h = spec.hidden_size
    for layer in spec.layers:
        m = layer.mlp
        if m is None or m.kind != "moe" or not m.num_experts:
            continue
        rows = batch * m.experts_per_token
        per_depth = ROCM_MXFP4_S_PER_DEPTH
        if rows > ROCM_MXFP4_NARROW_ROWS:  # 8 wavefronts a workgroup, not 2
            per_depth /= ROCM_MXFP4_WIDE_SPEEDUP
        block_m = row_tile if rows // m.num_experts <= row_tile else 2 * row_tile
        launched_m = rows  # one workgroup row per routed row up to the expert count, then one per block_m more
        if rows > m.num_experts:
            launched_m = math.ceil((rows - m.num_experts + 1) / block_m) + m.num_experts - 1
        experts = m.num_experts * expert_coverage(m.num_experts, m.experts_per_token, batch)
        row_tiles = experts * math.ceil(rows / max(1.0, experts) / block_m - 1e-9)  # the mean rows an expert gets
        inter = math.ceil(m.intermediate_size / max(1, ranks))
        ups = 2 if m.expert_gated else 1
        for depth, outputs in ((h, ups * inter), (inter, h)):
            d = math.ceil(depth / ROCM_MXFP4_PAD) * ROCM_MXFP4_PAD
            out_tiles = math.ceil(outputs / ROCM_MXFP4_PAD) * ROCM_MXFP4_PAD / out_tile
            split = max(1, cus // math.ceil(launched_m * out_tiles))
            walked = math.ceil(d / split / ROCM_MXFP4_DEPTH_BLOCK) * ROCM_MXFP4_DEPTH_BLOCK
            waves = math.ceil(row_tiles * out_tiles * split / (cus * ROCM_MXFP4_WORKGROUPS_PER_CU))
            total += waves * walked * per_depth
    return total


def uses_rocm_mxfp4_triton(gpu: GpuEntry, engine: str, q: QuantScheme) -> bool:
    """vLLM's MXFP4 experts through Triton's VALU-dequantizing GEMM: an AMD GPU without FP4 matrix instructions."""
    return (
        engine == "vllm"
        and gpu.vendor == "amd"
        and q.expert_bits is not None
        and q.name.startswith("mxfp4")
        and gpu.architecture.lower() not in ROCM_NATIVE_FP4_ARCHITECTURES
    )


def expert_streamed_bytes(spec: ModelSpec, batch: int, q: QuantScheme) -> float:
    """Bytes of the routed experts one decode step of `batch` sequences reads (`expert_coverage` of each layer)."""
    bits = q.linear_bits if q.expert_bits is None else q.expert_bits
    total = 0.0
    for layer in spec.layers:
        m = layer.mlp
        if m is not None and m.kind == "moe" and m.num_experts:
            experts = layer.expert_linear_params or layer.expert_params
            total += experts * bits / 8 * expert_coverage(m.num_experts, m.experts_per_token, batch)
    return total


def attention_flops_per_token(spec: ModelSpec, context: int) -> float:
    """Causal attention FLOPs per prompt token: QKᵀ and AV against on average context/2 earlier tokens."""
    return _memo(spec, ("attn", context), lambda: _attention_flops_per_token(spec, context))


def _attention_flops_per_token(spec: ModelSpec, context: int) -> float:
    flops = 0.0
    for layer in spec.layers:
        a = layer.attention
        if a is None:
            continue
        span = min(context, a.sliding_window) if a.sliding_window else context
        flops += 2.0 * a.num_heads * (a.head_dim + a.v_head_dim) * span / 2
    return flops


def score_bytes_per_token(spec: ModelSpec, context: int) -> float:
    """Bytes of f32 attention scores one prompt token moves without flash attention (KQ, softmax, KQV passes)."""
    total = 0.0
    for layer in spec.layers:
        a = layer.attention
        if a is None:
            continue
        span = min(context, a.sliding_window) if a.sliding_window else context
        total += SCORE_BYTES_PER_HEAD_TOKEN * a.num_heads * span / 2
    return total


def activation_bytes_per_token(spec: ModelSpec, *, mmq: bool = False) -> float:
    """Bytes of activations one prompt token moves through llama.cpp's CUDA graph outside the GEMMs' own operands.

    Each op of a block is its own kernel over f32 activations (rms_norm, the norm weight's mul, rope, the KV copy into
    the f16 cache, silu, the gate × up mul, the residual adds: 4 bytes per element read and written). Around each
    matrix product: the cuBLAS path (`mmq=False`) converts the f32 input to f16 (read 4, write 2 bytes per input
    element) and the f16 output back to f32 (written 2, read 2, written 4 per output element); MMQ quantizes the
    input to q8_1 (read 4, write ~1.1) and writes f32 (4 per output element)."""
    lin_in, lin_out = (5.1, 4.0) if mmq else (6.0, 8.0)
    total = 0.0
    h = spec.hidden_size
    for layer in spec.layers:
        a, m = layer.attention, layer.mlp
        b = float(2 * 2 * 4 * h + 2 * 3 * 4 * h)  # two norms (rms_norm + mul by the weight), two residual adds
        if a is not None:
            q, kv = a.q_width, a.kv_width
            vw = a.num_kv_heads * a.v_head_dim
            b += 3 * lin_in * h + lin_out * (q + kv + vw)  # q, k, v projections
            b += lin_in * a.num_heads * a.v_head_dim + lin_out * h  # output projection
            b += 8 * (q + kv) + 6 * (kv + vw)  # rope on q and k; k and v copied into the f16 cache
        if m is not None:
            width = m.intermediate_size
            if m.kind == "moe":
                width = m.intermediate_size * m.experts_per_token + m.shared_intermediate_size
            gated = m.kind == "gated" or (m.kind == "moe" and m.expert_gated)
            ups = 2 if gated else 1
            b += ups * (lin_in * h + lin_out * width) + lin_in * width + lin_out * h  # up (and gate), down
            b += 8 * width + (12 * width if gated else 0)  # activation; gate × up
        total += b
    return total


def dense_matrices(spec: ModelSpec) -> list[tuple[int, int]]:
    """(input features, output features) of every dense projection of every block: attention's q, k, v and output,
    the MLP's up (and gate) and down (routed experts excluded)."""
    h = spec.hidden_size
    mats: list[tuple[int, int]] = []
    for layer in spec.layers:
        a, m = layer.attention, layer.mlp
        if a is not None:
            mats += [
                (h, a.q_width),
                (h, a.kv_width),
                (h, a.num_kv_heads * a.v_head_dim),
                (a.num_heads * a.v_head_dim, h),
            ]
        if m is not None and m.kind != "moe":
            mats += [(h, m.intermediate_size)] * (2 if m.kind == "gated" else 1) + [(m.intermediate_size, h)]
    return mats


def gemm_wave_efficiency(spec: ModelSpec, sms: int, tokens: int, tile: int = 128) -> float:
    """Share of the SMs a prompt's dense GEMMs keep busy: each matrix product of `tokens` rows is cut into
    tile × tile output blocks, one per SM at a time, and its last wave leaves SMs idle (FLOP-weighted)."""
    if sms <= 0:
        return 1.0
    work = busy = 0.0
    row_tiles = math.ceil(max(1, tokens) / tile)
    for k, n in dense_matrices(spec):
        t = row_tiles * math.ceil(n / tile)
        waves = math.ceil(t / sms)
        f = float(k * n)
        work += f
        busy += f * waves * sms / t
    return work / busy if busy else 1.0


def row_length_share(spec: ModelSpec, half_row: int) -> float:
    """The share of its peak a mat-vec kernel that works along each weight row reaches on this model: a row of k
    weights streams at k / (k + half_row) of it (byte-weighted over the dense matrices), so long rows (70B's 8192
    and 28672) run nearer the peak than short ones (8B's 4096)."""
    num = den = 0.0
    for k, n in dense_matrices(spec):
        num += k * n
        den += k * n * (k + half_row) / k
    return num / den if den else 1.0


def allreduce_link(gpu: GpuEntry) -> tuple[float, float]:
    """(latency in s of one small all-reduce, GB/s its payload sees) between this GPU's tensor-parallel ranks."""
    lat = ALLREDUCE_LATENCY_S.get(gpu.interconnect, DEFAULT_ALLREDUCE_LATENCY_S)
    link = (
        float(gpu.interconnect_gb_per_s or 0) * ALLREDUCE_BUS_GB_PER_S[gpu.interconnect]
        if gpu.interconnect in ALLREDUCE_BUS_GB_PER_S and gpu.interconnect_gb_per_s
        else PCIE_ALLREDUCE_GB_PER_S
    )
    return lat, link


def tp_prefill_comm_s_per_token(spec: ModelSpec, gpu: GpuEntry, ranks: int, chunk: int) -> float:
    """Seconds per prompt token of tensor parallel's two all-reduces per layer: each carries the chunk's hidden
    states (2 (n−1)/n × hidden × 2 bytes per token), plus the call's latency spread over the chunk's tokens."""
    lat, link = allreduce_link(gpu)
    per_token = 2 * (ranks - 1) / ranks * spec.hidden_size * 2 / (link * 1e9) + lat / max(1, chunk)
    return 2 * spec.num_layers * per_token


def host_link_gb_per_s(gpu: GpuEntry) -> float | None:
    """One-way host (PCIe) bandwidth. The catalog states PCIe links bidirectionally; SXM/OAM parts get the PCIe
    generation of their platform (Gen5 x16 for Hopper/Blackwell/CDNA3, Gen4 x16 before). None for unified memory."""
    if gpu.interconnect == "unified":
        return None
    if gpu.interconnect == "pcie" and gpu.interconnect_gb_per_s:
        return float(gpu.interconnect_gb_per_s) / 2
    arch = gpu.architecture.lower()
    if any(k in arch for k in ("hopper", "blackwell", "cdna3", "cdna4", "gaudi3")):
        return 64.0
    return 32.0


def backend(gpu: GpuEntry, engine: str, llama_backend: str | None = None) -> str:
    """The engine and the GPU backend it runs on: "llama.cpp/cuda", "llama.cpp/metal", "vllm/cuda", ...; a llama.cpp
    build asked for (`--backend vulkan`) replaces the vendor's own."""
    be = {"nvidia": "cuda", "amd": "rocm", "apple": "metal"}.get(gpu.vendor, gpu.vendor)
    eng = "vllm" if engine == "vllm" else "llama.cpp" if engine in ("llama.cpp", "llamacpp", "ollama") else engine
    if eng == "llama.cpp" and (llama_backend or gpu.vendor == "intel"):
        be = llama_backend or "vulkan"  # llama.cpp's build for Intel GPUs, as `devices` picks it
    return f"{eng}/{be}"


def memory_class(gpu: GpuEntry) -> str:
    """ "hbm", "gddr" or "lpddr" (Apple unified memory), from the catalog's memory type."""
    mt = str(gpu.data.get("memory_type", "")).upper()
    if "HBM" in mt:
        return "hbm"
    if "LPDDR" in mt or gpu.interconnect == "unified":
        return "lpddr"
    return "gddr"


def weight_format(q: QuantScheme, be: str = "") -> str:
    """ "f16" for 16/32-bit float weights, "quant" for everything a kernel dequantizes — except GGUF's legacy block
    formats on Metal, which stream at F16's share (`metal_dequant_flop_per_byte`)."""
    if be == "llama.cpp/metal" and q.name in LEGACY_BLOCK_FORMATS:
        return "f16"
    return "quant" if q.is_quantized else "f16"


# llama.cpp's CUDA matrix kernels (cuBLAS FP16 at its ubatch shapes, MMQ, its flash attention) are written with the
# warp-level mma.sync instructions of Ampere; Hopper reaches its datasheet rate only with the warpgroup wgmma
# instructions, and runs mma.sync at about two thirds of it (microbenchmarks of H800: Luo et al. 2024, "Benchmarking
# and Dissecting the Nvidia Hopper GPU Architecture"). The May 2024 llama-bench runs on an H100 PCIe agree: prompt
# rates 1.36-1.40x an A100 PCIe's where the datasheets differ 2.4x.
LEGACY_MMA_SHARE: dict[str, float] = {"hopper": 0.67}


# llama.cpp's MMQ kernels on GPUs without tensor cores (Pascal: dp4a, four int8 products per instruction) reach this
# share of the card's INT8 peak at ubatch 512 once PREFILL_MFU and the activation passes are applied: a Tesla P40
# prefilled LLaMA 7B Q4_0 / Q4_1 / Q4_K_S / Q5_0 at 850-935 t/s pp512 (llama.cpp#4766, Jan 2024: within −2 … +8 % at
# this share; Q3_K_S ran 583 t/s, that build's 3-bit kernel). The box's GPU count is not stated (not an exact case)
# and it is the one source, so such prompts get no range.
DP4A_MMQ_SHARE = 0.45


def no_tensor_cores(gpu: GpuEntry) -> bool:
    """An NVIDIA GPU without tensor cores (Pascal and older: the catalog has no FP16 matrix rate for it)."""
    return gpu.vendor == "nvidia" and gpu.cuda_arch == "pascal" and not gpu.fp16_tflops


def tensor_tflops(
    gpu: GpuEntry, engine: str, q: QuantScheme, llama_backend: str | None = None
) -> tuple[float | None, str]:
    """Dense matrix rate the engine's prefill GEMMs run at, and which figure it is.

    llama.cpp on CUDA multiplies in FP16 with FP16 accumulation (cuBLAS CUBLAS_COMPUTE_16F after dequantizing), which
    GeForce cards run at twice their FP32-accumulate rate; PyTorch / vLLM accumulate BF16 in FP32 (`fp16_tflops`),
    FP8 checkpoints in vLLM use the FP8 rate. Apple GPUs have no matrix unit: Metal runs on the FP32 ALUs.
    """
    be = backend(gpu, engine, llama_backend)
    if gpu.vendor == "apple":
        v = gpu.data.get("fp32_tflops")
        gen = generation_share(gpu)
        if v and gen != 1.0:
            return float(v) * gen, f"FP32 ALU ({gen:g} of the {float(v):g} TFLOPS of this GPU generation)"
        return (float(v), "FP32 ALU") if v else (None, "FP32 ALU")
    if be == "llama.cpp/cuda" and no_tensor_cores(gpu):
        # Pascal: no tensor cores and FP16 at 1/64 of FP32, so llama.cpp multiplies quantized weights with its
        # int8 dot-product (dp4a) MMQ kernels and 16-bit ones through cuBLAS in FP32
        if q.is_quantized and gpu.int8_tops:
            rate = float(gpu.int8_tops) * DP4A_MMQ_SHARE
            return rate, f"INT8 dp4a through MMQ ({DP4A_MMQ_SHARE:g} of the {float(gpu.int8_tops):g} TOPS peak)"
        fp32 = gpu.data.get("fp32_tflops")
        return (float(fp32), "FP32 (cuBLAS SGEMM; no fast FP16)") if fp32 else (None, "")
    if be == "llama.cpp/vulkan" and gpu.vendor == "intel":
        # the Vulkan build's matrix shaders run on Arc's vector ALUs, not its XMX matrix units
        fp32 = gpu.data.get("fp32_tflops")
        return (float(fp32), "FP32 ALU (Vulkan shaders; XMX unused)") if fp32 else (None, "")
    if be == "llama.cpp/cuda":
        v = gpu.data.get("fp16_tflops_fp16_accumulate") or gpu.fp16_tflops
        share = LEGACY_MMA_SHARE.get(gpu.architecture.lower())
        if v and share:
            return float(v) * share, f"FP16 tensor through mma.sync ({share:g} of the {float(v):g} TFLOPS peak)"
        return (float(v), "FP16 tensor, FP16 accumulate") if v else (None, "")
    if q.name.startswith("fp8") and gpu.fp8_tflops:
        return float(gpu.fp8_tflops), "FP8 tensor"
    return (float(gpu.fp16_tflops), "dense BF16 tensor") if gpu.fp16_tflops else (None, "")


def llama_cpp_2025_builds_only(gpu: GpuEntry) -> bool:
    """Whether every llama.cpp build that runs on this GPU is a 2025 one (`LLAMA_CPP_2025_BUILD_ARCHITECTURES`)."""
    return gpu.architecture.lower() in LLAMA_CPP_2025_BUILD_ARCHITECTURES


def llama_cpp_2025_kernels(gpu: GpuEntry, llama_build: int | None = None) -> bool:
    """Whether the llama.cpp build modelled is a 2025 one: asked for (`LLAMA_CPP_2025_BUILD` or later), or the only
    kind this GPU runs."""
    return llama_cpp_2025_builds_only(gpu) or (llama_build is not None and llama_build >= LLAMA_CPP_2025_BUILD)


def llama_cpp_mmq_prompts(gpu: GpuEntry, llama_build: int | None = None) -> bool:
    """Whether llama.cpp's 2025 builds multiply a quantized prompt's blocks directly (MMQ) on this GPU rather than
    through an FP16 copy and cuBLAS: on the GDDR cards of the #15013 scoreboard they do (its Ada / Ampere / Blackwell
    pp512 rates); its A100 80 GB and H100 80 GB rows prefill at about the cuBLAS path's rate (+24 ... +44 % against it,
    +71 ... +124 % against MMQ's), so HBM parts keep that path unless they run 2025 builds only (B200)."""
    if llama_cpp_2025_builds_only(gpu):
        return True
    return llama_cpp_2025_kernels(gpu, llama_build) and memory_class(gpu) != "hbm"


def _dequantizes_for_cublas(
    gpu: GpuEntry, engine: str, q: QuantScheme, llama_backend: str | None = None, llama_build: int | None = None
) -> bool:
    """llama.cpp on CUDA prefilling quantized weights through an FP16 copy and cuBLAS (the builds before MMQ)."""
    return (
        engine == "llama.cpp"
        and q.is_quantized
        and backend(gpu, engine, llama_backend).endswith("cuda")
        and not llama_cpp_mmq_prompts(gpu, llama_build)
        and not no_tensor_cores(gpu)  # MMQ multiplies the blocks directly there
    )


def decode_efficiency(
    gpu: GpuEntry,
    engine: str,
    q: QuantScheme,
    spec: ModelSpec | None = None,
    llama_backend: str | None = None,
    llama_build: int | None = None,
) -> float:
    be = backend(gpu, engine, llama_backend)
    key = (be, memory_class(gpu), weight_format(q, be))
    if (
        key in LLAMA_CPP_2025_DECODE_EFFICIENCY
        and llama_cpp_2025_kernels(gpu, llama_build)
        and not no_tensor_cores(gpu)
        and (spec is None or not _moe_layers(spec))  # MoE experts go through MUL_MAT_ID's per-expert calls
    ):
        return LLAMA_CPP_2025_DECODE_EFFICIENCY[key]
    arch_share = ARCH_DECODE_EFFICIENCY.get((be, gpu.architecture.lower())) if q.is_quantized else None
    if arch_share is not None:
        return arch_share
    row_bound = ROW_BOUND_DECODE.get(key)
    if row_bound is not None and spec is not None:
        peak, half_row = row_bound
        return peak * row_length_share(spec, half_row) * generation_share(gpu)
    return DECODE_EFFICIENCY.get(key, DEFAULT_DECODE_EFFICIENCY) * generation_share(gpu)


def streamed_weight_bytes(spec: ModelSpec, weights_bytes: int, q: QuantScheme) -> int:
    """Weights a decode step streams: all but the input embedding table (a step gathers one row per token), unless
    the head shares it."""
    if spec.tie_word_embeddings or spec.embed_params <= 0:
        return weights_bytes
    return max(0, weights_bytes - int(spec.embed_params * q.embed_bits / 8))


def matmul_flops_per_token(spec: ModelSpec) -> float:
    """Prefill matmul FLOPs per prompt token: 2 × the active parameters outside the embedding and the head."""
    head = spec.head_params if not spec.tie_word_embeddings else 0
    return 2.0 * max(0, spec.active_params - spec.embed_params - head)


def _moe_layers(spec: ModelSpec) -> int:
    return _memo(spec, ("moe",), lambda: sum(1 for la in spec.layers if la.mlp is not None and la.mlp.kind == "moe"))


def llama_cpp_mmid_waits(be: str, tokens: int, llama_build: int | None) -> bool:
    """Whether a llama.cpp build's MUL_MAT_ID waits for the host on a pass of `tokens` tokens
    (`LLAMA_CPP_MMID_DEVICE_DECODE_FROM`, `LLAMA_CPP_MMID_DEVICE_PROMPT_FROM`); no build given: today's, which do
    not."""
    if llama_build is None or be not in LLAMA_CPP_MMID_BACKENDS:
        return False
    return llama_build < (LLAMA_CPP_MMID_DEVICE_DECODE_FROM if tokens <= 1 else LLAMA_CPP_MMID_DEVICE_PROMPT_FROM)


def pipelines_prompt(spec: ModelSpec, be: str, engine: str, ubatch: int, llama_build: int | None) -> bool:
    """Whether a layer split overlaps a prompt's ubatches on its GPUs (`PIPELINED_PREFILL_ENGINES`): not where a
    MoE layer's MUL_MAT_ID waits for the host, which empties the queue (`LLAMA_CPP_MMID_DEVICE_PROMPT_FROM`)."""
    return engine in PIPELINED_PREFILL_ENGINES and not (
        _moe_layers(spec) and llama_cpp_mmid_waits(be, ubatch, llama_build)
    )


def llama_cpp_mmid_sync_s(spec: ModelSpec, be: str, tokens: int, llama_build: int | None) -> float:
    """Seconds a forward pass of `tokens` tokens spends in MUL_MAT_ID's host waits and per-expert launches beyond
    today's dispatch (`LLAMA_CPP_MMID_SYNC_S`): 0 unless the build asked for waits."""
    if llama_build is None or not llama_cpp_mmid_waits(be, tokens, llama_build):
        return 0.0
    waits, extra = 0.0, 0.0
    for la in spec.layers:
        m = la.mlp
        if m is None or m.kind != "moe" or not m.num_experts:
            continue
        if llama_build < LLAMA_CPP_MMID_GROUPED_FROM:  # a call per expert slot and matrix, a product per token row
            waits += 3 * m.experts_per_token
            extra += 3 * m.experts_per_token * tokens - 3
        else:  # a call per matrix, a product per expert the pass routes to
            waits += 3
            extra += 3 * (m.num_experts * expert_coverage(m.num_experts, m.experts_per_token, tokens) - 1)
    return waits * LLAMA_CPP_MMID_SYNC_S + max(0.0, extra) * LLAMA_CPP_MMID_LAUNCH_S


def estimate_speed(
    spec: ModelSpec,
    gpu: GpuEntry,
    *,
    count: int,
    split: str,
    batch: int,
    context: int,
    weights_bytes: int,
    kv_cache_bytes: int,
    offloaded_bytes: int = 0,
    kv_read_bytes: int | None = None,
    read_fraction: float | None = None,
    flops_per_token: float | None = None,
    engine: str = "transformers",
    quant: QuantScheme | str | None = None,
    new_tokens: int = 0,
    flash_attn: bool = True,
    n_ubatch: int = 512,
    n_batch: int = 2048,
    llama_backend: str | None = None,
    prefill_chunk: int | None = None,
    engine_version: tuple[int, int] | None = None,
    llama_build: int | None = None,
    explain: bool = True,
) -> Speed:
    """Speed of `spec` on `count` × `gpu` with `engine`.

    `weights_bytes` and `kv_cache_bytes` are the whole model's (all ranks together) for `batch` sequences at
    `context` tokens (for ``split="dp"``: one replica's); `kv_read_bytes`, where given, the part of that cache a
    decode step reads (sliding-window layers: their window, `Estimate.kv_read_bytes`); `offloaded_bytes` of the
    weights live in host memory and are streamed each step. `quant` is the weight format (a scheme or its name;
    None: 16-bit).
    `read_fraction` / `flops_per_token` may be passed precomputed (`weight_read_fraction`, 2 × active params +
    `attention_flops_per_token`). `engine_version`: the vLLM or transformers release asked for (None: the builds the
    exact measurements ran, `CALIBRATED_VERSIONS`; vLLM 0.14 and later: async scheduling, `VLLM_ASYNC_FROM`;
    transformers before 4.53: MoE blocks that loop over every expert, `HF_HIT_EXPERTS_FROM`); `llama_build`: the
    llama.cpp build asked for (`LLAMA_CPP_2025_BUILD` and later: the 2025 builds' kernels on every GPU). `explain`
    False leaves out the lines that only spell out the arithmetic (the decode and prefill breakdowns, the TP,
    layer-split and batching terms) for callers that rank many options (`which`); the facts assumed (engine build,
    calibration, offload, host-bound) stay.
    """
    kv_read = kv_cache_bytes if kv_read_bytes is None else kv_read_bytes  # what a decode step's attention reads
    q = quant if isinstance(quant, QuantScheme) else quant_scheme(quant)
    eng = "llama.cpp" if engine in ("llama.cpp", "llamacpp", "ollama") else engine
    be = backend(gpu, eng, llama_backend)
    gpus = max(1, count)
    replicas = gpus if split == "dp" else 1  # data-parallel replicas: each runs the whole model on its own batch
    ranks = 1 if split == "dp" else gpus
    frac = weight_read_fraction(spec, batch, q) if read_fraction is None else read_fraction
    bw_gb = gpu.bandwidth_gb_per_s
    eta = decode_efficiency(gpu, eng, q, spec, llama_backend, llama_build)
    tflops, rate_name = tensor_tflops(gpu, eng, q, llama_backend)
    on_gpu_weights = max(0, weights_bytes - offloaded_bytes)
    streamed = int(streamed_weight_bytes(spec, on_gpu_weights, q) * frac)
    bytes_total = streamed + kv_read
    triton_mxfp4 = uses_rocm_mxfp4_triton(gpu, eng, q) and split != "pp" and not offloaded_bytes
    if triton_mxfp4:  # the experts' time is their GEMM's, not their bytes' (rocm_mxfp4_expert_gemm_s)
        streamed = max(0, streamed - int(expert_streamed_bytes(spec, batch, q)))
    n_layers = spec.num_layers
    moe_layers = _moe_layers(spec)

    # --- decode: memory side (per GPU for TP, the whole model for a layer split) ---
    weight_bw = bw_gb * 1e9 * eta
    dequant = metal_dequant_flop_per_byte(q) if be == "llama.cpp/metal" and q.is_quantized else 0.0
    if dequant and tflops:  # the ALU rate, at its generation's share
        weight_bw = min(weight_bw, tflops * 1e12 / dequant)
    shard = 1 if split == "pp" else ranks
    kv_eta = KV_READ_EFFICIENCY
    if be in DECODE_KV_EFFICIENCY:
        kv_eta = DECODE_KV_EFFICIENCY[be][1 if flash_attn else 0]
    kv_eta *= generation_share(gpu)
    kv_moves = 1.0 / kv_eta  # the attention reads the cache once
    if eng == "transformers":  # DynamicCache's cat and the attention's gather copy the cache again each step
        kv_moves = TRANSFORMERS_CACHE_COPIES / kv_eta + query_group(spec) / (
            TRANSFORMERS_ATTENTION_KV_EFFICIENCY * generation_share(gpu)
        )
    kv_s = (kv_read / shard) / (bw_gb * 1e9) * kv_moves
    mem_s = (streamed / shard) / weight_bw + kv_s
    # --- decode: compute side ---
    dec_flops = batch * (
        matmul_flops_per_token(spec) + 2.0 * spec.head_params + attention_flops_per_token(spec, 2 * context)
    )
    comp_s = dec_flops / shard / (tflops * 1e12 * _mfu(be, gpu)) if tflops else 0.0
    # --- fixed costs ---
    tau_layer = ARCH_LAYER_OVERHEAD_S.get((be, gpu.architecture.lower())) or LAYER_OVERHEAD_S.get(
        be, DEFAULT_LAYER_OVERHEAD_S
    )
    if be == "llama.cpp/cuda" and llama_cpp_2025_kernels(gpu, llama_build):
        tau_layer = LLAMA_CPP_GRAPH_LAYER_OVERHEAD_S
    tau_moe = MOE_LAYER_OVERHEAD_S.get(be, DEFAULT_MOE_LAYER_OVERHEAD_S)
    step_fixed, step_per_seq = STEP_OVERHEAD_S.get(eng, DEFAULT_STEP_OVERHEAD_S)
    host_s = step_fixed + batch * step_per_seq
    async_sched = eng == "vllm" and engine_version is not None and engine_version >= VLLM_ASYNC_FROM
    if async_sched:  # the host's work runs beside the GPU's (the floor below), MoE layers at the 2026 kernels' cost
        tau_moe = min(tau_moe, VLLM_ASYNC_MOE_LAYER_OVERHEAD_S)
    dies = int(gpu.data.get("gpu_dies") or 1)
    if dies > 1:  # an Ultra's kernels drain across its dies (`APPLE_DIE_LAYER_OVERHEAD_S`)
        tau_layer += (dies - 1) * APPLE_DIE_LAYER_OVERHEAD_S.get(be, 0.0)
    mmid_s = llama_cpp_mmid_sync_s(spec, be, batch, llama_build) if moe_layers else 0.0
    fixed_s = n_layers * tau_layer + moe_layers * tau_moe + mmid_s + (0.0 if async_sched else host_s)
    expert_gemm_s = rocm_mxfp4_expert_gemm_s(spec, gpu, batch, ranks) if triton_mxfp4 else 0.0
    assumptions: list[str] = []
    if explain:
        assumptions.append(
            f"decode: weights {streamed / 1e9:,.2f} GB / ({bw_gb:,.0f} GB/s × {eta:g}, {be} "
            f"{memory_class(gpu).upper()} {weight_format(q)} kernels) + KV {kv_read / 1e9:,.2f} GB "
            + (
                f"(of the {kv_cache_bytes / 1e9:,.2f} GB held: sliding-window layers read their window) "
                if kv_read < kv_cache_bytes
                else ""
            )
            + "/ "
            + (
                f"(× {kv_eta:g})"
                if eng != "transformers"
                else f"(moved {TRANSFORMERS_CACHE_COPIES:g}× by DynamicCache's cat and the attention's gather, × "
                f"{kv_eta:g}; read {query_group(spec):g}× by the attention, × {TRANSFORMERS_ATTENTION_KV_EFFICIENCY:g})"
            )
            + f"; fixed {fixed_s * 1e3:,.2f} ms per step ({n_layers} layers × "
            f"{tau_layer * 1e6:g} µs"
            + (f" + {moe_layers} MoE layers × {tau_moe * 1e6:g} µs" if moe_layers else "")
            + (f" + {mmid_s * 1e3:,.2f} ms of MUL_MAT_ID host waits (b{llama_build})" if mmid_s else "")
            + (
                f"; the host's {step_fixed * 1e3:g} ms + {batch} × {step_per_seq * 1e6:g} µs run beside the GPU "
                "(async scheduling)"
                if async_sched
                else f" + host {step_fixed * 1e3:g} ms + {batch} × {step_per_seq * 1e6:g} µs"
            )
            + ")"
        )
    calibrated = is_calibrated(gpu, be)
    if not calibrated and be == "llama.cpp/vulkan":
        assumptions.append(
            f"{be} on {gpu.architecture.upper()} ({memory_class(gpu).upper()}): the Vulkan build's shares are set on "
            "one scoreboard (llama.cpp discussion #10879, LLaMA 2 7B Q4_0: 24 rows of NVIDIA, AMD and Intel cards, 6 "
            "exact; decode within about ±20 %, prompts ±30 % there) with nothing held out to check them, so no range "
            "is claimed"
        )
    elif not calibrated:
        assumptions.append(
            f"{be} on {gpu.architecture.upper()} ({memory_class(gpu).upper()}): no public measurement here calibrates "
            "this engine on this backend and GPU generation; its kernels are taken at generic shares of the datasheet "
            "(bandwidth, tensor rate), so the speed is a rough guide"
            + (
                " (llama.cpp's HIP kernels differ by generation: they decode at 0.4 of the bandwidth on CDNA3, "
                "0.52 on RDNA3; one RDNA 3.5 run prefilled at 0.055 of the WMMA rate)"
                if be == "llama.cpp/rocm"
                else " (the CPU build's speed is the host's: its cores and RAM bandwidth, which this GPU model does "
                "not give)"
                if be == "llama.cpp/cpu"
                else ""
            )
        )
    elif async_sched and engine_version is not None:
        assumptions.append(
            f"engine version: vLLM {engine_version[0]}.{engine_version[1]} (0.14 and later: async scheduling, "
            f"{VLLM_ASYNC_MOE_LAYER_OVERHEAD_S * 1e6:g} µs per MoE layer, a {VLLM_ASYNC_STEP_FLOOR_S * 1e3:g} ms "
            "CPU loop; set on 2026 runs of 0.15-0.20, most of them TPOT figures of an unstated statistic)"
        )
    elif llama_build is not None and be.startswith("llama.cpp/"):
        assumptions.append(
            f"engine version: llama.cpp b{llama_build}"
            + (
                " (2025 builds: CUDA graphs at ~33 µs per layer"
                + (
                    ", quantized prompts through MMQ without an FP16 copy)"
                    if llama_cpp_mmq_prompts(gpu, llama_build)
                    else "; on HBM parts quantized prompts still through an FP16 copy and cuBLAS)"
                )
                if be == "llama.cpp/cuda" and llama_cpp_2025_kernels(gpu, llama_build)
                else f" (this backend's terms are set between the builds measured: {CALIBRATED_VERSIONS.get(be, '')})"
            )
        )
    elif eng == "transformers" and engine_version is not None:
        assumptions.append(
            f"engine version: transformers {engine_version[0]}.{engine_version[1]} (its MoE blocks loop over "
            + ("every expert" if engine_version < HF_HIT_EXPERTS_FROM else "the routed experts only")
            + f"; the other terms are set on runs of {CALIBRATED_VERSIONS.get(be, 'transformers 4.46-4.51')})"
        )
    elif be in CALIBRATED_VERSIONS:
        assumptions.append(
            f"engine version assumed: {CALIBRATED_VERSIONS[be]}, the builds the public measurements ran"
            + (
                " (given no --engine-version; vLLM 0.14 and later decoded 5-70 % faster in public 2026 runs, "
                "MoE models most: give --engine-version to size such a release)"
                if eng == "vllm" and engine_version is None
                else ""
            )
        )
    if calibrated and be == "llama.cpp/rocm" and gpu.architecture.lower() == "cdna3":
        assumptions.append(
            "llama.cpp on CDNA3: prompts at the MFMA matrix kernels' share (b5997, July 2025, and later); an "
            "October 2024 build prefilled at ~1.3 % of the tensor rate (give --llama-build to price such a build)"
        )
    kinds = _memo(
        spec, ("kinds",), lambda: frozenset(la.attention.kind for la in spec.layers if la.attention is not None)
    )
    contradicted = kinds & set(UNCALIBRATED_ATTENTION.get(eng, ()))
    if contradicted and calibrated:
        calibrated = False
        assumptions.append(
            f"{eng} with {'/'.join(sorted(k.upper() for k in contradicted))} attention models: the public runs "
            "(DeepSeek-R1 TP 8 on 8 × H200 / MI300X, 2025 builds) decoded 1.6-4× slower than this model gives, "
            "so the speed is an upper bound, not a calibrated figure"
        )
    if triton_mxfp4:
        routed = batch * max((la.mlp.experts_per_token for la in spec.layers if la.mlp), default=1)
        wide = routed > ROCM_MXFP4_NARROW_ROWS
        assumptions.append(
            f"MXFP4 experts through vLLM's Triton GEMM on {gpu.architecture.upper()} (no FP4 matrix units: weights "
            f"dequantized in the vector ALUs, latency bound): {expert_gemm_s * 1e3:,.2f} ms per step in "
            f"{ROCM_MXFP4_TILE[0]}x{ROCM_MXFP4_TILE[1]} tiles, {ROCM_MXFP4_WORKGROUPS_PER_CU} per CU of "
            f"{int(gpu.data.get('compute_units') or 304)} a wave, split in depth where the launch leaves CUs idle; "
            f"{routed:,} routed rows: {8 if wide else 2} wavefronts a tile, "
            f"{ROCM_MXFP4_S_PER_DEPTH / (ROCM_MXFP4_WIDE_SPEEDUP if wide else 1.0) * 1e9:.1f} ns per depth element "
            "(triton 3.6; 3.7.1 with the trackers flag and 3.8 are 1.5-1.6x slower, ROCm/triton#970); prompts "
            "through the same kernel"
        )
    comm_s = 0.0
    if split == "pp" and ranks > 1:
        comm_s = (ranks - 1) * STAGE_HOP_S
        if explain:
            assumptions.append(
                f"layer split over {ranks} GPUs: a token passes the stages in turn, {STAGE_HOP_S * 1e3:g} ms per "
                "hand-over"
            )
    elif ranks > 1:
        lat, link = allreduce_link(gpu)
        payload = 2 * (ranks - 1) / ranks * batch * spec.hidden_size * 2
        comm_s = 2 * n_layers * (lat + payload / (link * 1e9))
        if explain:
            assumptions.append(
                f"tensor parallel over {ranks} GPUs: 2 all-reduces per layer × ({lat * 1e6:g} µs + "
                f"{payload / 1e3:,.0f} kB over {link:g} GB/s)"
            )
    offload_s = 0.0
    if offloaded_bytes and gpu.interconnect == "unified":
        # unified memory: what does not fit the GPU's working set still lives in the same memory, read at its rate
        # (macOS wires Metal buffers past recommendedMaxWorkingSetSize; a CPU layer reads the same LPDDR): LLaMA 2 7B
        # F16, 12.4 GiB, decoded on a 16 GB M2 at 0.9 of the bandwidth (llama.cpp discussion #4167)
        offload_s = offloaded_bytes * frac / weight_bw
        assumptions.append(
            f"{offloaded_bytes / 1024**3:,.2f} GiB of weights beyond the GPU's working-set limit: on unified memory "
            "they are read from the same memory at the same rate (macOS lets Metal wire past the limit, at the risk of "
            "paging if the machine runs short)"
        )
    elif offloaded_bytes:
        link_h = host_link_gb_per_s(gpu) or 32.0
        offload_s = offloaded_bytes * frac / (link_h * 1e9 * HOST_LINK_EFFICIENCY)
        assumptions.append(
            f"{offloaded_bytes / 1024**3:,.2f} GiB of weights offloaded: streamed over a "
            f"{link_h:g} GB/s host link × {HOST_LINK_EFFICIENCY:g} each step"
        )

    # --- prefill ---
    prefill: float | None = None
    ttft: float | None = None
    # the prompt rate with `weights` bytes read per forward pass (a lone prompt: the GPU's weights)
    prompt_rate = partial(
        prefill_tokens_per_s,
        spec,
        gpu,
        eng,
        q,
        context=context,
        ranks=ranks,
        split=split,
        flash_attn=flash_attn,
        n_ubatch=n_ubatch,
        n_batch=n_batch,
        llama_backend=llama_backend,
        prefill_chunk=prefill_chunk,
        llama_build=llama_build,
    )
    if tflops:
        prefill = prompt_rate(weights_bytes=on_gpu_weights)
    if tflops and explain:
        assumptions.append(
            f"prefill rate: {matmul_flops_per_token(spec) / 1e9:,.1f} GFLOPs of matmuls per token / "
            f"({rate_name} {tflops:g} TFLOPS × "
            f"{prefill_mfu(be, gpu, spec, min(n_ubatch, n_batch, context), llama_build, q.is_quantized):.3g} MFU)"
            + (" + activation passes" if be in ACTIVATION_PASSES_BACKENDS else "")
            + " + attention"
            + (" (flash attention)" if flash_attn or eng != "llama.cpp" else " (f32 score matrix)")
            + (
                f"; quantized weights dequantized to FP16 per {n_ubatch}-token ubatch"
                if _dequantizes_for_cublas(gpu, eng, q, llama_backend, llama_build)
                else ""
            )
        )
        if split == "pp" and ranks > 1:
            ub = min(n_ubatch, n_batch, context)
            pipelined = pipelines_prompt(spec, be, eng, ub, llama_build)
            assumptions.append(
                f"layer-split prefill: {ub}-token ubatches "
                + (
                    f"pipelined through the {ranks} GPUs (k + {ranks - 1} stage times per call of up to {n_batch:,} "
                    "tokens)"
                    if pipelined
                    else f"through the {ranks} stages one after another"
                    + (
                        f" (b{llama_build}'s MUL_MAT_ID waits for the host in every MoE layer, so they cannot overlap)"
                        if eng in PIPELINED_PREFILL_ENGINES
                        else ""
                    )
                )
                + ", activations handed over between stages"
            )
    elif not tflops:
        assumptions.append(
            f"prefill: not estimated: the catalog has no dense FP16 matrix rate for the {gpu.name} (not published, "
            "or no matrix unit: see `vram gpus`); give one with --gpu-tflops or a GPU spec file"
        )
    if explain:  # the scorer's line: FLOPs the prefill figure stands for
        gflops = (
            flops_per_token
            if flops_per_token is not None
            else 2.0 * spec.active_params + attention_flops_per_token(spec, context)
        ) / 1e9
        assumptions.append(f"prefill: {gflops:,.1f} GFLOPs per token (2 × active params + attention)")

    # continuous batching: the prompts of the requests that join while a sequence decodes
    interleave_s = 0.0
    if eng == "vllm" and batch > 1 and prefill and not new_tokens:
        assumptions.append(
            f"continuous batching: no other prompts counted in the step (--new-tokens 0 gives no output to spread "
            f"them over): a decode step of {batch} sequences at {context:,} tokens"
        )
    elif eng == "vllm" and batch > 1 and prefill:
        # chunked prefill runs the joining prompts in the decode steps' own forward passes, whose weight read the
        # step already counts: their FLOPs (and all-reduces), not the read floor of a prompt alone
        joined = prompt_rate(weights_bytes=0)
        per_step = INTERLEAVED_PREFILL_SHARE * (batch - 1) * context / new_tokens
        # a step schedules at most max_num_batched_tokens, its decode tokens first: the prompt tokens it can add
        budget = max(0, prefill_chunk - batch) if prefill_chunk else None
        capped = budget is not None and per_step > budget
        per_step = min(per_step, budget) if budget is not None else per_step
        interleave_s = per_step / (joined or prefill)
        if explain:
            assumptions.append(
                f"continuous batching: {batch - 1} other prompts of {context:,} tokens prefilled during a "
                f"sequence's {new_tokens:,} new tokens"
                + (
                    f", at most {per_step:,.0f} prompt tokens a step (max_num_batched_tokens {prefill_chunk:,} less "
                    f"the {batch} decode tokens)"
                    if capped
                    else ""
                )
            )

    step_s = max(mem_s, comp_s) + expert_gemm_s + fixed_s + comm_s + offload_s + interleave_s
    bound = "compute" if comp_s > mem_s else "memory"
    floor_s = VLLM_ASYNC_STEP_FLOOR_S + batch * step_per_seq if async_sched else STEP_FLOOR_S.get(eng, 0.0)
    host_layer = HOST_LAYER_S.get(eng, 0.0)
    host_bound = False
    if host_layer:
        hit = _memo(
            spec,
            ("hit", batch),
            lambda: sum(
                la.mlp.num_experts * expert_coverage(la.mlp.num_experts, la.mlp.experts_per_token, batch)
                for la in spec.layers
                if la.mlp is not None and la.mlp.kind == "moe" and la.mlp.num_experts
            ),
        )
        every_expert = eng == "transformers" and engine_version is not None and engine_version < HF_HIT_EXPERTS_FROM
        idle = 0.0
        if every_expert and hit:  # the loop also visits each expert no token was routed to
            experts = sum(la.mlp.num_experts for la in spec.layers if la.mlp is not None and la.mlp.kind == "moe")
            idle = max(0.0, experts - hit)
        floor_s = (
            n_layers * host_layer
            + hit * HOST_EXPERT_S.get(eng, 0.0)
            + idle * HOST_EMPTY_EXPERT_S
            + step_fixed
            + batch * step_per_seq
        )
        if step_s < floor_s:
            host_bound = True
            assumptions.append(
                f"host-bound: {eng} dispatches each op from Python, {n_layers} layers × {host_layer * 1e3:g} ms"
                + (f" + {hit:,.0f} routed experts looped × {HOST_EXPERT_S.get(eng, 0.0) * 1e3:g} ms" if hit else "")
                + (
                    f" + {idle:,.0f} experts no token was routed to, visited by the loop of releases before "
                    f"{HF_HIT_EXPERTS_FROM[0]}.{HF_HIT_EXPERTS_FROM[1]} × {HOST_EMPTY_EXPERT_S * 1e6:g} µs"
                    if idle
                    else ""
                )
                + f" per step on the CPU, longer than the GPU's {step_s * 1e3:,.2f} ms; that CPU time depends on "
                "the host (0.6-1.1 ms per layer measured), hence the wider range"
            )
            step_s = floor_s
            bound = "host"
        if moe_layers and calibrated:
            calibrated = False
            assumptions.append(
                f"{eng}'s MoE blocks loop over the experts in Python; "
                + (
                    "one public run (Qwen3-30B-A3B on an H20, 4.51) set that loop's cost, so no range is claimed"
                    if every_expert
                    else "no measurement here times that loop over the routed experts only (4.53 and later), so the "
                    "speed is a rough guide"
                )
            )
    elif step_s < floor_s:
        assumptions.append(
            f"host-bound: the GPU's {step_s * 1e3:,.2f} ms per step is shorter than {eng}'s CPU loop "
            f"({floor_s * 1e3:g} ms per step), which sets the pace"
        )
        step_s = floor_s
        bound = "host"
    per_seq = 1.0 / step_s if step_s > 0 else 0.0
    agg = batch * per_seq * replicas
    if replicas > 1:
        assumptions.append(f"{replicas} data-parallel replicas, each with its own batch of {batch}")
    if prefill:
        # a prompt at least reads the weights once
        ttft = max(context / prefill, on_gpu_weights / (bw_gb * 1e9 * eta * (ranks if split != "pp" else 1))) + step_s
    price = gpu.price_per_hour_usd
    cost = price * gpus / 3600.0 / agg * 1e6 if price and agg > 0 else None
    lo_d, hi_d = VLLM_ASYNC_SPREAD if async_sched else speed_spread(be, "decode")
    lo_p, hi_p = speed_spread(be, "prefill")
    return Speed(
        decode_tokens_per_s=agg,
        decode_tokens_per_s_per_seq=per_seq,
        decode_bound=bound,
        bytes_read_per_step=int(bytes_total / (1 if split == "pp" else ranks)) + offloaded_bytes,
        prefill_tokens_per_s=prefill,
        ttft_s=ttft,
        cost_per_million_tokens_usd=cost,
        price_per_hour_usd=price,
        offloaded_bytes=offloaded_bytes,
        assumptions=tuple(assumptions),
        decode_range_per_seq=None
        if not calibrated
        else (per_seq * HOST_BOUND_SPREAD[0], per_seq * HOST_BOUND_SPREAD[1])
        if host_bound
        else (per_seq * lo_d, per_seq * hi_d),
        prefill_range=None
        if prefill is None or not calibrated or (be == "llama.cpp/cuda" and no_tensor_cores(gpu))
        else (prefill * lo_p, prefill * hi_p),
        calibrated=calibrated,
    )


def _mfu(be: str, gpu: GpuEntry, llama_build: int | None = None) -> float:
    if llama_build is not None and llama_cpp_2025_kernels(gpu, llama_build):
        built = LLAMA_CPP_2025_PREFILL_MFU.get((be, gpu.architecture.lower()))
        if built is not None:
            return built
    arch = ARCH_PREFILL_MFU.get((be, gpu.architecture.lower()))
    if arch is not None:
        return arch
    vendor = VENDOR_PREFILL_MFU.get((be, gpu.vendor))
    return vendor if vendor is not None else PREFILL_MFU.get(be, DEFAULT_PREFILL_MFU)


def prefill_mfu(
    be: str, gpu: GpuEntry, spec: ModelSpec, tokens: int, llama_build: int | None = None, quantized: bool = False
) -> float:
    """The GEMM efficiency of `be` for this model's matrices at `tokens` rows per product on `gpu`: the kernel's
    share of the tensor rate (`PREFILL_MFU`; a 2025 llama.cpp build's where it differs, `LLAMA_CPP_2025_PREFILL_MFU`;
    quantized prompts of a build before the MFMA kernels, `PRE_MFMA_PREFILL_MFU`) × the share of the SMs its tiles
    keep busy (`GEMM_WAVE_TILE`)."""
    pre_mfma = PRE_MFMA_PREFILL_MFU.get((be, gpu.architecture.lower()))
    if quantized and pre_mfma is not None and llama_build is not None and llama_build < LLAMA_CPP_MFMA_MMQ_BUILD:
        return pre_mfma
    tile = GEMM_WAVE_TILE.get(be)
    sms = int(gpu.data.get("compute_units") or 0)
    return _mfu(be, gpu, llama_build) * (gemm_wave_efficiency(spec, sms, tokens, tile) if tile and sms else 1.0)


def _small_kernel_bandwidth(gpu: GpuEntry, be: str) -> float:
    """Bytes/s the engine's streaming kernels reach on this GPU's memory (decode's F16 share, `DECODE_EFFICIENCY`)."""
    eta = DECODE_EFFICIENCY.get((be, memory_class(gpu), "f16"), DEFAULT_DECODE_EFFICIENCY)
    return gpu.bandwidth_gb_per_s * 1e9 * eta


def prefill_tokens_per_s(
    spec: ModelSpec,
    gpu: GpuEntry,
    engine: str,
    q: QuantScheme,
    *,
    context: int,
    ranks: int,
    split: str,
    weights_bytes: int,
    flash_attn: bool = True,
    n_ubatch: int = 512,
    n_batch: int = 2048,
    llama_backend: str | None = None,
    prefill_chunk: int | None = None,
    llama_build: int | None = None,
) -> float | None:
    """Prompt tokens per second for a prompt of `context` tokens (one sequence), in forward passes of
    `prefill_chunk` tokens (vLLM's max_num_batched_tokens; None: llama.cpp's ubatch, else `DEFAULT_PREFILL_CHUNK`)."""
    be = backend(gpu, engine, llama_backend)
    tflops, _ = tensor_tflops(gpu, engine, q, llama_backend)
    if not tflops:
        return None
    ubatch = max(1, min(n_ubatch, n_batch, context))
    rate = tflops * 1e12 * prefill_mfu(be, gpu, spec, ubatch, llama_build, q.is_quantized)
    if q.is_quantized:
        rate *= QUANT_PREFILL_SHARE.get(be, 1.0)
    tile = EXPERT_GEMM_TILE_TOKENS.get(be)
    chunk = max(1, min(context, prefill_chunk or (ubatch if engine == "llama.cpp" else DEFAULT_PREFILL_CHUNK)))
    triton_mxfp4 = uses_rocm_mxfp4_triton(gpu, engine, q) and split != "pp"
    expert_flops, expert_time = 0.0, 0.0
    if tile or triton_mxfp4:
        for layer in spec.layers:
            m = layer.mlp
            if m is None or m.kind != "moe" or not m.num_experts:
                continue
            flops = 2.0 * (layer.expert_linear_params or layer.expert_params) * m.experts_per_token / m.num_experts
            expert_flops += flops
            if tile:
                expert_time += flops / (rate * min(1.0, ubatch * m.experts_per_token / m.num_experts / tile))
    if triton_mxfp4:
        # the prompt's routed rows go through the decode step's VALU-dequantizing GEMM: its waves price the experts
        # (per rank; the TP division below takes the ranks' share back out)
        per_rank = max(1, ranks)
        expert_time = rocm_mxfp4_expert_gemm_s(spec, gpu, chunk, per_rank) * per_rank / chunk
    per_token = (matmul_flops_per_token(spec) - expert_flops) / rate + expert_time
    if flash_attn or engine != "llama.cpp":
        per_token += attention_flops_per_token(spec, context) / (
            tflops
            * 1e12
            * (
                LLAMA_CPP_2025_ATTENTION_MFU
                if be == "llama.cpp/cuda" and llama_cpp_2025_kernels(gpu, llama_build)
                else ATTENTION_MFU.get(be, DEFAULT_ATTENTION_MFU)
            )
        )
    else:
        per_token += score_bytes_per_token(spec, context) / (gpu.bandwidth_gb_per_s * 1e9 * KV_READ_EFFICIENCY)
    if be in ACTIVATION_PASSES_BACKENDS:
        mmq = q.is_quantized and llama_cpp_mmq_prompts(gpu, llama_build)
        per_token += activation_bytes_per_token(spec, mmq=mmq) / _small_kernel_bandwidth(gpu, be)
    if _dequantizes_for_cublas(gpu, engine, q, llama_backend, llama_build):
        linear = sum(la.linear_params for la in spec.layers)
        dequant_bytes = weights_bytes + 2 * linear  # read the blocks, write them as FP16 (cuBLAS reads overlap)
        per_token += dequant_bytes / ubatch / _small_kernel_bandwidth(gpu, be)
    if _moe_layers(spec):
        per_token += llama_cpp_mmid_sync_s(spec, be, ubatch, llama_build) / ubatch
    if math.isclose(per_token, 0.0):
        return None
    # one forward pass over a chunk (vLLM's max_num_batched_tokens, llama.cpp's ubatch) streams every weight its
    # tokens route to at least once: a short prompt of a large (MoE) model is bound by that read, not its FLOPs
    if weights_bytes:
        read = streamed_weight_bytes(spec, weights_bytes, q) * weight_read_fraction(spec, chunk, q)
        per_token = max(
            per_token,
            read
            / (gpu.bandwidth_gb_per_s * 1e9 * decode_efficiency(gpu, engine, q, spec, llama_backend, llama_build))
            / chunk,
        )
    if split == "pp" and ranks > 1:
        pipelined = pipelines_prompt(spec, be, engine, ubatch, llama_build)
        return context / layer_split_prefill_s(spec, gpu, per_token, context, ranks, ubatch, n_batch, pipelined)
    if split == "dp" or ranks <= 1:
        return 1 / per_token
    # tensor parallel: every rank does 1/n of the work, then the ranks all-reduce each layer's output, per chunk
    return 1 / (per_token / ranks + tp_prefill_comm_s_per_token(spec, gpu, ranks, chunk))


def layer_split_prefill_s(
    spec: ModelSpec,
    gpu: GpuEntry,
    per_token: float,
    context: int,
    ranks: int,
    ubatch: int,
    n_batch: int,
    pipelined: bool,
) -> float:
    """Seconds to prefill `context` tokens through `ranks` pipeline stages: `pipelined` (`PIPELINED_PREFILL_ENGINES`),
    per call of up to n_batch tokens k ubatches take (k + n − 1) stage times of ubatch × per_token / n plus a
    hand-over each; otherwise the stages run one after another."""
    p2p = gpu.interconnect in ALLREDUCE_BUS_GB_PER_S and gpu.interconnect_gb_per_s
    link = float(gpu.interconnect_gb_per_s or 0) * 0.5 if p2p else (host_link_gb_per_s(gpu) or 32.0)
    copies = 1 if p2p else 2  # GPU → host → GPU without peer access
    total, left = 0.0, max(1, context)
    while left > 0:
        call = min(left, max(ubatch, n_batch))
        k = math.ceil(call / ubatch)
        u = call / k
        hop = STAGE_HOP_S + copies * u * spec.hidden_size * 4 / (link * 1e9 * HOST_LINK_EFFICIENCY)
        if pipelined:
            total += (k + ranks - 1) * (u * per_token / ranks + hop)
        else:
            total += k * (u * per_token + (ranks - 1) * hop)
        left -= call
    return total
