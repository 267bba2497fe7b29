"""How fast a fit runs: decode and prefill tokens/s, time to first token, cost per million tokens.

Roofline-style estimates, stated with their constants so they can be checked:

* **Decode** (one new token per sequence per step) reads every weight a token touches once per step plus the whole
  KV cache of the batch, so at low batch it is bound by memory bandwidth, not FLOPS (the seed: H100 SXM5 3.35 TB/s):
  ``step_s = max(bytes_read / (bandwidth × DECODE_BANDWIDTH_EFFICIENCY), flops / (tflops × MFU))``.
  Mixture-of-experts layers read only the experts the batch routes to: with ``k`` of ``E`` experts per token and a
  uniform router, a batch of ``b`` tokens touches ``E × (1 − (1 − k/E)^b)`` distinct experts per layer.
* **Prefill** is compute bound: ``2 × active_params`` FLOPs per token for the matrices plus ``4 × layers × q_width ×
  context/2`` for causal attention (QKᵀ and AV over on average half the prompt), divided by the dense BF16 tensor
  peak × ``PREFILL_MFU``.
* **Tensor parallelism** divides bytes and FLOPs by the ranks and adds two all-reduces per layer per step
  (``ALLREDUCE_LATENCY_S``); **pipeline parallelism** runs the stages one after another for a given token, so a
  sequence's step is the sum of the stages' times.
* **Offloading** (layers kept in host memory) streams those layers' bytes over the host link each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import GpuEntry
from .model import ModelSpec

# Share of the datasheet memory bandwidth that memory-bound decode kernels (GEMV / small-batch GEMM, paged attention)
# sustain. Published microbenchmarks of H100/A100 HBM reach ~80-90 % with streaming kernels; end-to-end decode in
# vLLM / llama.cpp lands nearer 60-80 %. 0.7 is used for every GPU.
DECODE_BANDWIDTH_EFFICIENCY = 0.7
# Model FLOPs utilisation of prefill (large GEMMs): 40-60 % of the dense BF16 peak is typical for serving engines.
PREFILL_MFU = 0.5
# Small-message all-reduce latency per call (NCCL, 2-8 GPUs), used twice per layer per decode step under TP.
ALLREDUCE_LATENCY_S = {"nvlink": 8e-6, "infinity-fabric": 12e-6, "pcie": 25e-6}
DEFAULT_ALLREDUCE_LATENCY_S = 25e-6
# Share of the host link's one-way bandwidth that streaming offloaded weights reaches.
HOST_LINK_EFFICIENCY = 0.8


@dataclass(frozen=True)
class Speed:
    decode_tokens_per_s: float  # all sequences of the batch together
    decode_tokens_per_s_per_seq: float
    decode_bound: str  # "memory" | "compute"
    bytes_read_per_step: int  # per GPU (the slowest rank / all stages)
    prefill_tokens_per_s: float | None  # None when the GPU's BF16 TFLOPS are not published (Apple)
    ttft_s: float | None  # prompt of `context` tokens, one request
    cost_per_million_tokens_usd: float | None  # decode tokens at this batch; None without a public price
    price_per_hour_usd: float | None
    offloaded_bytes: int = 0
    assumptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
            "decode_tokens_per_s_per_seq": round(self.decode_tokens_per_s_per_seq, 2),
            "decode_bound": self.decode_bound, "bytes_read_per_step": self.bytes_read_per_step,
            "prefill_tokens_per_s": None if self.prefill_tokens_per_s is None else round(self.prefill_tokens_per_s, 1),
            "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
            "cost_per_million_tokens_usd": None if self.cost_per_million_tokens_usd is None
            else round(self.cost_per_million_tokens_usd, 4),
            "price_per_hour_usd": self.price_per_hour_usd, "offloaded_bytes": self.offloaded_bytes,
            "assumptions": list(self.assumptions),
        }


def expert_coverage(num_experts: int, experts_per_token: int, tokens: int) -> float:
    """Expected share of a layer's experts that `tokens` routed tokens touch (uniform router): 1 − (1 − k/E)^tokens."""
    if num_experts <= 0:
        return 1.0
    return 1.0 - (1.0 - experts_per_token / num_experts) ** max(1, tokens)


def weight_read_fraction(spec: ModelSpec, batch: int) -> float:
    """Share of all parameters one decode step of `batch` sequences reads (1.0 for dense models)."""
    total = spec.params
    if total <= 0:
        return 1.0
    read = float(total)
    for layer in spec.layers:
        m = layer.mlp
        if m is not None and m.kind == "moe" and m.num_experts:
            read -= layer.expert_params * (1.0 - expert_coverage(m.num_experts, m.experts_per_token, batch))
    return max(0.0, min(1.0, read / total))


def attention_flops_per_token(spec: ModelSpec, context: int) -> float:
    """Causal attention FLOPs per prompt token: QKᵀ and AV against on average context/2 earlier tokens."""
    flops = 0.0
    for layer in spec.layers:
        a = layer.attention
        if a is None:
            continue
        span = min(context, a.sliding_window) if a.sliding_window else context
        flops += 2.0 * a.num_heads * (a.head_dim + a.v_head_dim) * span / 2
    return flops


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


def estimate_speed(spec: ModelSpec, gpu: GpuEntry, *, count: int, split: str, batch: int, context: int,
                   weights_bytes: int, kv_cache_bytes: int, offloaded_bytes: int = 0,
                   read_fraction: float | None = None, flops_per_token: float | None = None) -> Speed:
    """Speed of `spec` on `count` × `gpu`.

    `weights_bytes` and `kv_cache_bytes` are the whole model's (all ranks together) for `batch` sequences at
    `context` tokens (for ``split="dp"``: one replica's); `offloaded_bytes` of the weights live in host memory
    and are streamed each step.
    `read_fraction` / `flops_per_token` may be passed precomputed (`weight_read_fraction`, 2 × active params +
    `attention_flops_per_token`).
    """
    bw = gpu.bandwidth_gb_per_s * 1e9 * DECODE_BANDWIDTH_EFFICIENCY
    gpus = max(1, count)
    # data-parallel replicas: each GPU runs the whole model on its own batch; speeds add up
    replicas = gpus if split == "dp" else 1
    ranks = 1 if split == "dp" else gpus
    frac = weight_read_fraction(spec, batch) if read_fraction is None else read_fraction
    on_gpu_weights = max(0, weights_bytes - offloaded_bytes)
    bytes_total = int(on_gpu_weights * frac) + kv_cache_bytes
    if flops_per_token is None:
        flops_per_token = 2.0 * spec.active_params + attention_flops_per_token(spec, context)
    tflops = gpu.fp16_tflops
    assumptions = [f"decode: bytes read per step / ({gpu.bandwidth_gb_per_s:,.0f} GB/s × "
                   f"{DECODE_BANDWIDTH_EFFICIENCY:g} efficiency)",
                   f"prefill: {flops_per_token / 1e9:,.1f} GFLOPs per token / (dense BF16 "
                   f"{tflops if tflops else '?'} TFLOPS × {PREFILL_MFU:g} MFU)"]
    if split == "pp" and ranks > 1:
        # stages run one after another for a token: the whole model's bytes at one GPU's bandwidth
        mem_s = bytes_total / bw
        comp_s = batch * flops_per_token / (tflops * 1e12 * PREFILL_MFU) if tflops else 0.0
        comm_s = 0.0
        assumptions.append(f"pipeline parallel over {ranks} GPUs: a token passes the stages in turn")
        prefill_scale = 1.0
    else:
        mem_s = bytes_total / ranks / bw
        comp_s = batch * flops_per_token / ranks / (tflops * 1e12 * PREFILL_MFU) if tflops else 0.0
        n_layers = spec.num_layers
        lat = ALLREDUCE_LATENCY_S.get(gpu.interconnect, DEFAULT_ALLREDUCE_LATENCY_S)
        comm_s = 2 * n_layers * lat if ranks > 1 else 0.0
        if ranks > 1:
            assumptions.append(f"tensor parallel over {ranks} GPUs: 2 all-reduces per layer × {lat * 1e6:g} µs")
        prefill_scale = float(ranks)
    offload_s = 0.0
    if offloaded_bytes:
        link = host_link_gb_per_s(gpu) or 32.0
        offload_s = offloaded_bytes * frac / (link * 1e9 * HOST_LINK_EFFICIENCY)
        assumptions.append(f"{offloaded_bytes / 1024**3:,.2f} GiB of weights offloaded: streamed over a "
                           f"{link:g} GB/s host link × {HOST_LINK_EFFICIENCY:g} each step")
    step_s = max(mem_s, comp_s) + comm_s + offload_s
    bound = "compute" if comp_s > mem_s else "memory"
    per_seq = 1.0 / step_s if step_s > 0 else 0.0
    agg = batch * per_seq * replicas
    if replicas > 1:
        assumptions.append(f"{replicas} data-parallel replicas, each with its own batch of {batch}")
    prefill: float | None = None
    ttft: float | None = None
    if tflops:
        prefill = tflops * 1e12 * PREFILL_MFU * prefill_scale / flops_per_token
        # a prompt at least reads the weights once
        ttft = max(context / prefill, (on_gpu_weights / (bw * (ranks if split != "pp" else 1)))) + step_s
    price = gpu.price_per_hour_usd
    cost = price * gpus / 3600.0 / agg * 1e6 if price and agg > 0 else None
    return Speed(decode_tokens_per_s=agg, decode_tokens_per_s_per_seq=per_seq, decode_bound=bound,
                 bytes_read_per_step=int(bytes_total / (1 if split == "pp" else ranks)) + offloaded_bytes,
                 prefill_tokens_per_s=prefill, ttft_s=ttft, cost_per_million_tokens_usd=cost,
                 price_per_hour_usd=price, offloaded_bytes=offloaded_bytes, assumptions=tuple(assumptions))
