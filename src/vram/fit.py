"""Will it fit? Verdicts for a model on N × a GPU, per-GPU splits, and solvers (max context, max batch, min GPUs,
best quantization), with speed and serving settings.

Rules:

* **What must fit** is the estimate's ``total_bytes`` per GPU (weights, KV cache, activations, allocator reserve,
  CUDA context; the same numbers `vram estimate` prints for the workload on that GPU's architecture) plus, for
  multi-GPU splits, the NCCL communication buffers. It must fit the catalog's ``usable_memory_bytes`` (what
  nvidia-smi / rocm-smi report, or the macOS GPU wired limit). For vLLM the budget is what vLLM reserves:
  CUDA context + gpu_memory_utilization × device memory + CUDA graphs (capped at the usable memory).
* **Verdict**: ``no`` when the estimate does not fit; ``fits`` when it fits and the memory above the fullest GPU's
  weights (usable − weights) is at least ``headroom_fraction`` × those weights (the seed: "leave at least 20 %
  headroom above the model-weights footprint to absorb KV cache and activation peaks"); ``tight`` when it fits with
  less headroom than that. The KV cache and activation peaks themselves are in the estimate; the headroom rule
  keeps room for what an estimate cannot know (fragmentation, other processes, longer requests than planned).
* **Splits** over N GPUs: tensor parallel (``tp``, the default for multi-GPU inference, as vLLM's
  ``--tensor-parallel-size``) when N divides the attention heads and N and the KV heads divide one another; pipeline
  parallel (``pp``: contiguous layer ranges, embedding on the first stage, head on the last) otherwise and for
  llama.cpp (its default ``--split-mode layer``). Under TP the attention and MLP matrices (and experts) are sharded
  by heads / columns, the embedding and output head are vocab-parallel, the KV cache is sharded by KV heads —
  replicated when N > KV heads, each rank keeping one head (and replicated entirely for multi-head latent attention,
  whose latent is shared by all heads); norms, routers, the replicated hidden-state activations and the CUDA context
  are on every rank.
* **Solvers** search the estimator itself (binary search keeping "fits at lo, does not fit at hi"), so each answer is
  tight: the estimate at the answer fits and one step more does not. "Fits" for the solvers means fits in usable
  memory (verdict fits or tight).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .catalog import GpuEntry, find_gpu
from .components import Component
from .components.runtime import CUDA_CONTEXT_BYTES, DEFAULT_ARCH
from .components.weights import weights_bytes as _weights_component
from .dtypes import QUALITY_ORDER, quant_scheme
from .errors import BadInput
from .estimate import (
    MAX_BATCH,
    Estimate,
    ResolvedModel,
    Workload,
    common_weights,
    estimate,
    resolve_model,
    weight_scheme,
)
from .model import Layer, ModelSpec
from .speed import Speed, attention_flops_per_token, estimate_speed, weight_read_fraction
from .training import TrainWorkload

MIB = 1024**2
DEFAULT_HEADROOM = 0.2
MIN_GPU_CANDIDATES = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)
VERDICTS = ("fits", "tight", "no")
# model kinds whose memory does not depend on a prompt length (a diffusion pipeline's text is its encoder's fixed
# 512/77 tokens; Whisper decodes a fixed 448-token window per 30 s of audio)
CONTEXT_FREE_KINDS = ("diffusion", "speech")

# NCCL: per channel, send and receive buffers for the Simple (4 MiB, NCCL_BUFFSIZE), LL128 (~4.5 MiB) and LL
# (~0.25 MiB) protocols; ring/tree collectives use ~16 channels over NVLink / Infinity Fabric and ~4 over PCIe.
NCCL_BYTES_PER_CHANNEL = 2 * (4 * MIB + 4608 * 1024 + 256 * 1024)
NCCL_CHANNELS = {"nvlink": 16, "infinity-fabric": 16, "pcie": 4}
NCCL_P2P_CHANNELS = 2  # pipeline stages only send/receive activations to their neighbours


# ---------------------------------------------------------------------------------------------------------------
# GPU specs


@dataclass(frozen=True)
class GpuChoice:
    gpu: GpuEntry
    count: int
    local: bool = False


_COUNT_RE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(.+)$", re.IGNORECASE)


def parse_gpu_spec(spec: str | GpuChoice) -> GpuChoice:
    """"h100-sxm", "4090", "2xh100-sxm", "8xa100-80gb-sxm", "local" (this machine's GPUs, through NVML) or a GPU
    spec file "my-gpu.json" / "2xmy-gpu.json" (catalog.gpu_from_spec_file)."""
    if isinstance(spec, GpuChoice):
        return spec
    text = str(spec).strip()
    if not text:
        raise BadInput("gpu: empty GPU name", field="gpu")
    count = 1
    m = _COUNT_RE.match(text)
    if m:
        count = int(m.group(1))
        text = m.group(2).strip()
        if not 1 <= count <= 1024:
            raise BadInput(f"gpu: count must be between 1 and 1024, got {count}", field="gpu")
    if text.lower() == "local":
        from .local import local_gpu_choice

        return local_gpu_choice(count if m else None)
    if text.lower().endswith(".json"):
        from .catalog import gpu_from_spec_file

        return GpuChoice(gpu_from_spec_file(text), count)
    return GpuChoice(find_gpu(text), count)


def canonical_arch(gpu: GpuEntry) -> str:
    """The runtime-overhead family for the estimator; non-NVIDIA runtimes are assumed to cost what CUDA does.
    Blackwell is estimated as Hopper: the runtime components give identical bytes and text for both."""
    arch = gpu.cuda_arch
    if arch == "blackwell":
        return "hopper"
    return arch if arch in CUDA_CONTEXT_BYTES else DEFAULT_ARCH


def gpu_workload(wl: Workload, gpu: GpuEntry) -> Workload:
    """The workload as it runs on `gpu`: its architecture (runtime overheads) and, for vLLM, the memory torch sees
    and the device name (vLLM picks its batching defaults from both)."""
    wl = replace(wl, gpu_arch=canonical_arch(gpu))
    if wl.engine == "llama.cpp":
        from .llama_devices import backend_for

        wl = replace(wl, backend=backend_for([gpu], wl.backend))
    if wl.engine == "vllm":
        from .engines.vllm import visible_memory_bytes

        wl = replace(wl, gpu_memory_bytes=visible_memory_bytes(gpu), gpu_name=gpu.name)
    elif wl.engine == "mlx":
        wl = replace(wl, gpu_memory_bytes=gpu.usable_memory_bytes)
    return wl


# ---------------------------------------------------------------------------------------------------------------
# splitting a model over ranks


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def default_split(spec: ModelSpec, count: int, engine: str) -> str:
    if count <= 1:
        return "single"
    if engine == "llama.cpp":
        return "pp"
    att = next((layer.attention for layer in spec.layers if layer.attention), None)
    if att is None:
        return "tp"
    heads_ok = att.num_heads % count == 0
    kv = att.num_kv_heads
    kv_ok = att.kind == "mla" or kv % count == 0 or count % kv == 0
    return "tp" if heads_ok and kv_ok else "pp"


def _tp_layer(layer: Layer, h: int, t: int) -> Layer:
    a = layer.attention
    linear = layer.linear_params
    replicated = 0  # matrices every rank holds whole
    kv_proj = 0  # k/v projections, sharded by KV heads
    kv_rank = 0
    v_rank = _ceil(layer.v_proj_params, t)
    new_a = a
    if a is not None:
        if a.kind == "mla":
            # q_a / kv_a down-projections are replicated (vLLM ReplicatedLinear); the rest is column/row parallel
            replicated = _replicated_linear(layer, h)
            new_a = replace(a, num_heads=_ceil(a.num_heads, t), num_kv_heads=_ceil(a.num_kv_heads, t))
        else:
            kv_proj = h * a.num_kv_heads * (a.head_dim + a.v_head_dim)
            kv_heads_rank = max(1, _ceil(a.num_kv_heads, t))
            kv_rank = h * kv_heads_rank * (a.head_dim + a.v_head_dim)
            v_rank = h * kv_heads_rank * a.v_head_dim
            new_a = replace(a, num_heads=_ceil(a.num_heads, t), num_kv_heads=kv_heads_rank)
    sharded = max(0, linear - replicated - kv_proj)
    linear_rank = _ceil(sharded, t) + replicated + kv_rank
    m = layer.mlp
    new_m = m
    if m is not None:
        new_m = replace(m, intermediate_size=_ceil(m.intermediate_size, t),
                        shared_intermediate_size=_ceil(m.shared_intermediate_size, t))
    mixer = layer.mixer
    new_mixer = mixer
    if mixer is not None:
        new_mixer = replace(mixer, state_elems=_ceil(mixer.state_elems, t), inner_size=_ceil(mixer.inner_size, t))
    return replace(layer, attention=new_a, mlp=new_m, mixer=new_mixer, linear_params=linear_rank,
                   expert_params=_ceil(layer.expert_params, t), v_proj_params=v_rank,
                   expert_linear_params=_ceil(layer.expert_linear_params, t),
                   down_proj_params=_ceil(layer.down_proj_params, t),
                   params=linear_rank + layer.small_params + layer.router_params)


def tp_rank_spec(spec: ModelSpec, t: int) -> ModelSpec:
    """What one of `t` tensor-parallel ranks holds (all ranks hold the same shapes)."""
    if t <= 1:
        return spec
    h = spec.hidden_size
    # vocab_size stays whole: each rank holds 1/t of the embedding and head, but the logits are gathered
    ranked: dict[int, Layer] = {}  # equal (interned) layers stay one object per rank
    for la in spec.layers:
        if id(la) not in ranked:
            ranked[id(la)] = _tp_layer(la, h, t)
    layers = tuple(ranked[id(la)] for la in spec.layers)
    return replace(spec, name=f"{spec.name} [TP rank 1/{t}]", layers=layers,
                   embed_params=_ceil(spec.embed_params, t), head_params=_ceil(spec.head_params, t))


def pp_stage_layers(num_layers: int, stages: int) -> list[range]:
    """Contiguous layer ranges, as even as possible; the earlier stages take the remainder."""
    base, extra = divmod(num_layers, stages)
    out, start = [], 0
    for i in range(stages):
        n = base + (1 if i < extra else 0)
        out.append(range(start, start + n))
        start += n
    return out


def pp_stage_specs(spec: ModelSpec, p: int) -> list[ModelSpec]:
    """What each of `p` pipeline stages holds: its layers; the embedding on the first, final norm and output head
    on the last (a tied head becomes the last stage's own copy of the embedding)."""
    if p <= 1:
        return [spec]
    if p > spec.num_layers:
        raise BadInput(f"gpu: {p} pipeline stages for {spec.num_layers} layers", field="gpu")
    out = []
    for i, rng in enumerate(pp_stage_layers(spec.num_layers, p)):
        first, last = i == 0, i == p - 1
        head = (spec.head_params or (spec.embed_params if spec.tie_word_embeddings else 0)) if last else 0
        out.append(replace(
            spec, name=f"{spec.name} [PP stage of {len(rng)} layers" + (", embedding" if first else "")
            + (", head" if last else "") + "]",
            layers=spec.layers[rng.start:rng.stop], embed_params=spec.embed_params if first else 0,
            head_params=head, tie_word_embeddings=spec.tie_word_embeddings and p == 1,
            final_params=spec.final_params if last else 0, extra_params=spec.extra_params if first else 0))
    return out


def _replicated_linear(layer: Layer, h: int) -> int:
    """Matrices every TP rank holds whole: MLA's q_a / kv_a down-projections (vLLM ReplicatedLinear)."""
    a = layer.attention
    if a is not None and a.kind == "mla":
        return h * (a.q_lora_rank + a.kv_lora_rank + a.rope_head_dim)
    return 0


def replicated_weights_bytes(rm: ResolvedModel, wl: Workload) -> int:
    """Bytes of the weights every TP rank holds whole: norms, biases, routers, buffers, MLA down-projections (and a
    vision tower)."""
    spec = rm.spec
    h = spec.hidden_size
    layers = tuple(replace(la, linear_params=_replicated_linear(la, h), expert_params=0, expert_linear_params=0,
                           v_proj_params=0,
                           down_proj_params=0, params=_replicated_linear(la, h) + la.small_params + la.router_params)
                   for la in spec.layers)
    only = replace(spec, layers=layers, embed_params=0, head_params=0)
    return common_weights(ResolvedModel(only, rm.entry, rm.source, None, rm.buffers_bytes), wl).bytes


def comm_buffer_bytes(split: str, count: int, interconnect: str) -> int:
    """NCCL buffers per rank (approximation, see NCCL_BYTES_PER_CHANNEL)."""
    if count <= 1 or split in ("single", "dp"):
        return 0
    channels = NCCL_P2P_CHANNELS if split == "pp" else NCCL_CHANNELS.get(interconnect, 4)
    return channels * NCCL_BYTES_PER_CHANNEL


# ---------------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class RankUse:
    """One GPU's share."""

    rank: int
    role: str
    layers: tuple[int, ...]  # (first, last) layer, inclusive; empty for models without decoder layers
    weights_bytes: int
    weights_replicated_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    comm_bytes: int
    cuda_context_bytes: int
    total_bytes: int
    breakdown: tuple[Component, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "role": self.role, "layers": list(self.layers),
                "weights_bytes": self.weights_bytes, "weights_replicated_bytes": self.weights_replicated_bytes,
                "kv_cache_bytes": self.kv_cache_bytes, "activation_bytes": self.activation_bytes,
                "comm_bytes": self.comm_bytes, "cuda_context_bytes": self.cuda_context_bytes,
                "total_bytes": self.total_bytes, "breakdown": [c.to_dict() for c in self.breakdown]}


@dataclass(frozen=True)
class FitResult:
    model: str
    gpu: str
    gpu_name: str
    gpu_count: int
    split: str
    engine: str
    workload: Workload
    verdict: str
    per_gpu_bytes: int
    usable_bytes_per_gpu: int
    headroom_fraction: float
    headroom_bytes: int  # required free memory on the fullest GPU for "fits"
    free_bytes_per_gpu: int
    weights_bytes: int  # whole model
    kv_cache_bytes: int  # whole model (all ranks)
    ranks: tuple[RankUse, ...]
    estimate: Estimate  # the fullest GPU's estimate
    max_context: int | None = None
    context_limit: int | None = None  # the model's longest context (max_context never exceeds it)
    max_batch: int | None = None
    min_gpus: int | None = None
    recommended_quant: str | None = None
    speed: Speed | None = None
    serving: dict[str, Any] = field(default_factory=dict)
    offload: dict[str, Any] | None = None
    host_memory: dict[str, Any] | None = None  # llama.cpp: what stays in system RAM, against --ram
    reasons: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    gpu_entry: GpuEntry | None = field(default=None, repr=False, compare=False)

    @property
    def fits(self) -> bool:
        return self.verdict != "no"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "fits": self.fits, "verdict": self.verdict, "model": self.model, "gpu": self.gpu,
            "gpu_name": self.gpu_name, "gpu_count": self.gpu_count, "split": self.split, "engine": self.engine,
            "per_gpu_bytes": self.per_gpu_bytes, "usable_bytes_per_gpu": self.usable_bytes_per_gpu,
            "free_bytes_per_gpu": self.free_bytes_per_gpu, "headroom_fraction": self.headroom_fraction,
            "headroom_bytes": self.headroom_bytes, "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes, "max_context": self.max_context,
            "context_limit": self.context_limit, "max_batch": self.max_batch,
            "min_gpus": self.min_gpus, "recommended_quant": self.recommended_quant,
            "breakdown": [c.to_dict() for c in self.estimate.breakdown] + (
                [{"name": "nccl_buffers", "bytes": self.ranks[0].comm_bytes,
                  "explanation": "NCCL communication buffers per rank"}] if self.ranks and self.ranks[0].comm_bytes
                else []),
            "ranks": [r.to_dict() for r in self.ranks],
            "speed": self.speed.to_dict() if self.speed else None,
            "serving": self.serving, "offload": self.offload, "host_memory": self.host_memory,
            "reasons": list(self.reasons),
            "assumptions": list(self.assumptions), "workload": asdict(self.workload),
            "estimate": self.estimate.to_dict(),
        }


# ---------------------------------------------------------------------------------------------------------------
# the evaluator: one resolved model, cached rank specs and estimates


MAX_CACHED_ESTIMATES = 4096
_EVALUATORS: dict[str, Evaluator] = {}
MAX_CACHED_EVALUATORS = 32


def evaluator_for(model: str | ModelSpec | ResolvedModel | Evaluator) -> Evaluator:
    """An Evaluator, shared between calls for catalog models (their data never changes within a process, and every
    estimate is a pure function of the model and workload); files and specs get a fresh one each time."""
    if isinstance(model, Evaluator):
        return model
    if not isinstance(model, str):
        return Evaluator(model)
    key = model.strip().lower()
    ev = _EVALUATORS.get(key)
    if ev is None:
        ev = Evaluator(model)
        if ev.rm.entry is None or not ev.rm.source.startswith("catalog:"):
            return ev
        if len(_EVALUATORS) >= MAX_CACHED_EVALUATORS:
            _EVALUATORS.pop(next(iter(_EVALUATORS)))
        _EVALUATORS[key] = ev
    return ev


def _engine_estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    """The same dispatcher `vram estimate` uses (engines, and non-LLM families)."""
    return estimate(rm, wl)


class Evaluator:
    """Evaluates one model on GPUs. Rank specs and estimates are cached per (split, count, workload): `which` and
    the solvers ask for the same ones many times."""

    def __init__(self, model: str | ModelSpec | ResolvedModel) -> None:
        self.rm = resolve_model(model)
        self._ranks: dict[tuple[str, int], list[ResolvedModel]] = {}
        self._est: dict[tuple[str, int, Workload], list[Estimate]] = {}
        self._repl: dict[tuple[str, str], int] = {}
        self._gwl: dict[tuple[Workload, str, str], Workload] = {}
        self._est_by_id: dict[tuple[int, str, int], list[Estimate]] = {}
        self._rank_w: dict[tuple[str, int, str, str], int] = {}
        self._speed_in: dict[tuple[int, int], tuple[float, float]] = {}

    def gpu_workload(self, wl: Workload, gpu: GpuEntry) -> Workload:
        key = (wl, canonical_arch(gpu), gpu.id if wl.engine in ("vllm", "mlx") else "")
        if key not in self._gwl:
            self._gwl[key] = gpu_workload(wl, gpu)
        return self._gwl[key]

    def speed_inputs(self, batch: int, context: int) -> tuple[float, float]:
        """(share of the weights a decode step reads, FLOPs per prompt token), cached."""
        key = (batch, context)
        if key not in self._speed_in:
            self._speed_in[key] = (weight_read_fraction(self.spec, batch),
                                   2.0 * self.spec.active_params + attention_flops_per_token(self.spec, context))
        return self._speed_in[key]

    def speed(self, choice: GpuChoice, split: str, wl: Workload, weights_bytes: int, kv_cache_bytes: int,
              offloaded_bytes: int = 0) -> Speed:
        _, flops = self.speed_inputs(wl.batch, wl.context)  # the read share depends on the format: speed.py's
        return estimate_speed(self.spec, choice.gpu, count=choice.count, split=split, batch=wl.batch,
                              context=wl.context, weights_bytes=weights_bytes, kv_cache_bytes=kv_cache_bytes,
                              offloaded_bytes=offloaded_bytes, flops_per_token=flops,
                              engine=wl.engine, quant=weight_scheme(self.spec, wl),
                              new_tokens=wl.new_tokens, flash_attn=wl.flash_attn, n_ubatch=wl.n_ubatch)

    @property
    def spec(self) -> ModelSpec:
        return self.rm.spec

    @property
    def is_llm(self) -> bool:
        return self.rm.entry is None or self.rm.entry.kind == "llm"

    def default_split(self, count: int, engine: str) -> str:
        """`default_split` for this model; models that are not decoder LLMs (diffusion, speech, ...) run as
        data-parallel replicas ("dp": every GPU holds the whole model and serves its own batch)."""
        if count > 1 and not self.is_llm:
            return "dp"
        return default_split(self.spec, count, engine)

    def rank_models(self, split: str, count: int) -> list[ResolvedModel]:
        key = (split, count)
        if key not in self._ranks:
            rm = self.rm
            if split in ("single", "dp") or count <= 1:
                specs = [rm.spec]
            elif split == "tp":
                specs = [tp_rank_spec(rm.spec, count)]
            elif split == "pp":
                specs = pp_stage_specs(rm.spec, count)
            else:
                raise BadInput(f"split: unknown split {split!r} (use tp, pp or dp)", field="split")
            if len(specs) == 1 and specs[0] is rm.spec:
                self._ranks[key] = [rm]
            else:
                # header-exact weights describe the whole model; a rank's share is computed from its shapes.
                # Equal stage specs (middle stages of a uniform model) share one object, so one estimate.
                unique: dict[ModelSpec, ResolvedModel] = {}
                self._ranks[key] = [unique.setdefault(s, ResolvedModel(s, rm.entry, rm.source, None, rm.buffers_bytes))
                                    for s in specs]
        return self._ranks[key]

    def estimates(self, split: str, count: int, wl: Workload) -> list[Estimate]:
        key = (split, count, wl)
        if key not in self._est:
            if len(self._est) >= MAX_CACHED_ESTIMATES:  # bounded: a long-lived evaluator serves many workloads
                self._est.clear()
                self._gwl.clear()
                self._est_by_id.clear()
            done: dict[int, Estimate] = {}
            self._est[key] = [done[id(r)] if id(r) in done else done.setdefault(id(r), _engine_estimate(r, wl))
                              for r in self.rank_models(split, count)]
        return self._est[key]

    def replicated_weights(self, wl: Workload) -> int:
        key = (wl.quant or "", wl.dtype)
        if key not in self._repl:
            self._repl[key] = replicated_weights_bytes(self.rm, wl)
        return self._repl[key]

    # -- the core check, no solvers ------------------------------------------------------------------------------
    def rank_weights(self, split: str, count: int, wl: Workload) -> int:
        """The largest rank's weight bytes (no estimate needed): a quick lower bound on its total."""
        key = (split, count, wl.quant or "", wl.dtype)
        if key not in self._rank_w:
            self._rank_w[key] = max(common_weights(r, wl).bytes for r in self.rank_models(split, count))
        return self._rank_w[key]

    def _estimates_canonical(self, split: str, count: int, gwl: Workload) -> list[Estimate]:
        """Like `estimates`, for a workload instance from `gpu_workload`'s cache: keyed by its identity, which
        spares hashing the workload on the hot path of `which` and the solvers."""
        key = (id(gwl), split, count)
        got = self._est_by_id.get(key)
        if got is None:
            got = self.estimates(split, count, gwl)
            self._est_by_id[key] = got
        return got

    def per_gpu(self, choice: GpuChoice, wl: Workload, split: str,
                gwl: Workload | None = None) -> tuple[int, int, list[Estimate], int]:
        """(fullest GPU's bytes, usable bytes per GPU, rank estimates, comm bytes per rank)."""
        if gwl is None:
            gwl = self.gpu_workload(wl, choice.gpu)
        ests = self._estimates_canonical(split, choice.count, gwl)
        comm = comm_buffer_bytes(split, choice.count, choice.gpu.interconnect)
        worst = max(e.total_bytes for e in ests) + comm
        usable = choice.gpu.usable_memory_bytes
        if wl.engine == "vllm":
            usable = min(usable, max(int(e.extra.get("reserved_bytes", usable)) for e in ests))
        return worst, usable, ests, comm

    def fits_in_memory(self, choice: GpuChoice, wl: Workload, split: str | None = None) -> bool:
        sp = split or self.default_split(choice.count, wl.engine)
        worst, usable, _, _ = self.per_gpu(choice, wl, sp)
        return worst <= usable


def _verdict(per_gpu: int, usable: int, weights: int, headroom: int) -> str:
    """no: the estimate exceeds usable memory; fits: it fits and the memory above the weights is at least
    `headroom`; tight: it fits with less."""
    if per_gpu > usable:
        return "no"
    return "fits" if usable - weights >= headroom else "tight"


def _largest_true(pred: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """Largest x in [lo, hi] with pred(x), searching as if pred were monotone (true then false). Returns None when
    pred(lo) is false. The answer a satisfies pred(a) and (a == hi or not pred(a + 1))."""
    if not pred(lo):
        return None
    if pred(hi):
        return hi
    # invariant: pred(lo) true, pred(hi) false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo


def context_limit(spec: ModelSpec, entry_context: int | None) -> int:
    """Longest context the model supports (config max_position_embeddings / catalog), capped at 16M tokens."""
    from .estimate import MAX_TOKENS

    return min(MAX_TOKENS, spec.max_position_embeddings or entry_context or 131072)


# ---------------------------------------------------------------------------------------------------------------
# public API


def max_context(ev: Evaluator, choice: GpuChoice, wl: Workload, split: str | None = None) -> int | None:
    """Longest prompt (tokens per sequence, at wl.batch and wl.new_tokens) that fits; None if even 1 token does not.
    Capped at the model's maximum context."""
    wl = wl.validate()
    cap = context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None)
    cap = max(1, cap - wl.new_tokens)
    return _largest_true(lambda c: ev.fits_in_memory(choice, replace(wl, context=c), split), 1, cap)


def max_batch(ev: Evaluator, choice: GpuChoice, wl: Workload, split: str | None = None) -> int | None:
    """Most concurrent sequences of wl.context tokens that fit; None if not even one."""
    wl = wl.validate()
    return _largest_true(lambda b: ev.fits_in_memory(choice, replace(wl, batch=b), split), 1, MAX_BATCH)


def min_gpus(ev: Evaluator, gpu: GpuEntry, wl: Workload, candidates: tuple[int, ...] = MIN_GPU_CANDIDATES,
             local: bool = False) -> int | None:
    """Smallest count of `gpu` (from `candidates`) on which the workload fits in memory."""
    wl = wl.validate()
    for n in candidates:
        if n > 1 and ev.spec.num_layers < n and ev.default_split(n, wl.engine) == "pp":
            continue
        if ev.fits_in_memory(GpuChoice(gpu, n, local), wl):
            return n
    return None


def quant_candidates(engine: str) -> tuple[str, ...]:
    """The formats of QUALITY_ORDER an engine runs: llama.cpp reads GGUF (and 16-bit GGUF); vLLM and transformers
    load fp8 / int8 / AWQ / GPTQ / bitsandbytes checkpoints (transformers dequantizes GGUF on load, and vLLM's
    GGUF support is experimental, so GGUF mixes are not proposed for them)."""
    def is_gguf(q: str) -> bool:
        return quant_scheme(q).gguf_mix is not None

    if engine == "llama.cpp":
        return tuple(q for q in QUALITY_ORDER if q == "bfloat16" or is_gguf(q))
    if engine == "mlx":
        return ("bfloat16", "mlx-8bit", "mlx-6bit", "mlx-4bit", "mlx-3bit")
    return tuple(q for q in QUALITY_ORDER if not is_gguf(q))


def best_quant(ev: Evaluator, choice: GpuChoice, wl: Workload, headroom_fraction: float = DEFAULT_HEADROOM,
               split: str | None = None) -> str | None:
    """Highest-quality weight format that fits, trying `vram.dtypes.QUALITY_ORDER`:
    bfloat16 > fp8 > q8_0 > int8 > q6_k > q5_k_m > awq-4bit-g128 > q4_k_m > gptq-4bit-g128 > nf4 > q4_k_s > q3_k_l >
    q3_k_m > q2_k (8-bit formats first, then 6/5-bit K-quants, then 4-bit, then 3/2-bit; within a width, the ones
    published perplexity studies rank higher), restricted to the formats the workload's engine runs
    (`quant_candidates`). The first format whose verdict is ``fits`` (with headroom) wins; if none has headroom, the
    first that fits at all (``tight``); None if nothing fits."""
    wl = wl.validate()
    tight: str | None = None
    for q in quant_candidates(wl.engine):
        qwl = replace(wl, quant=None if q == "bfloat16" else q, dtype="bfloat16" if q == "bfloat16" else wl.dtype)
        sp = split or ev.default_split(choice.count, qwl.engine)
        worst, usable, ests, _ = ev.per_gpu(choice, qwl, sp)
        if worst > usable:
            continue
        w = max(e.weights_bytes for e in ests)
        if usable - w >= headroom_fraction * w:
            return q
        tight = tight or q
    return tight


def _rank_uses(ev: Evaluator, ests: list[Estimate], split: str, count: int, comm: int, wl: Workload) -> \
        tuple[RankUse, ...]:
    out = []
    ranges = pp_stage_layers(ev.spec.num_layers, count) if split == "pp" else [range(0, ev.spec.num_layers)]
    repl = ev.replicated_weights(wl) if split == "tp" else 0
    n_ranks = count if split != "single" else 1
    for i in range(n_ranks):
        e = ests[i] if split == "pp" else ests[0]
        rng = ranges[i] if split == "pp" else ranges[0]
        ctx = e.component("cuda_context")
        role = {"single": "whole model", "dp": f"replica {i + 1}/{count}: the whole model, its own batch",
                "tp": f"TP rank {i + 1}/{count}: 1/{count} of each matrix, of the embedding/head (by "
                "vocabulary) and of the KV heads; norms whole",
                "pp": f"PP stage {i + 1}/{count}: layers {rng.start}-{rng.stop - 1}"
                + (", embedding" if i == 0 else "") + (", final norm + head" if i == count - 1 else "")}[split]
        span = (rng.start, rng.stop - 1) if len(rng) else ()
        out.append(RankUse(rank=i, role=role, layers=span, weights_bytes=e.weights_bytes,
                           weights_replicated_bytes=repl, kv_cache_bytes=e.kv_cache_bytes,
                           activation_bytes=e.activation_bytes, comm_bytes=comm,
                           cuda_context_bytes=ctx.bytes if ctx else 0, total_bytes=e.total_bytes + comm,
                           breakdown=e.breakdown))
    return tuple(out)


def fit(model: str | ModelSpec | ResolvedModel | Evaluator, gpu_spec: str | GpuChoice, workload: Workload | None = None,
        *, headroom_fraction: float = DEFAULT_HEADROOM, train: TrainWorkload | None = None, split: str | None = None,
        solve: bool = True, with_speed: bool = True, ram: Any = None) -> FitResult:
    """Does `workload` of `model` fit on `gpu_spec` ("h100-sxm", "4090", "2xh100-sxm", "local")?

    With `solve` the result also carries max_context, max_batch, min_gpus and recommended_quant (each a search over
    the estimator) and the serving settings for the fit found.
    """
    if not 0 <= headroom_fraction <= 10:
        raise BadInput("headroom: must be between 0 and 10 (a fraction of the weights, 0.2 = 20 %)",
                       field="headroom")
    ev = evaluator_for(model)
    choice = parse_gpu_spec(gpu_spec)
    wl = (workload or Workload()).validate()
    if wl.engine == "mlx" and choice.gpu.vendor != "apple":
        raise BadInput(f"engine: MLX runs on Apple Silicon only, not on {choice.gpu.name}", field="engine")
    if train is not None:
        return _fit_training(ev, choice, train, headroom_fraction, solve)
    sp = split or ev.default_split(choice.count, wl.engine)
    if sp not in ("single", "tp", "pp", "dp"):
        raise BadInput(f"split: unknown split {sp!r} (use tp, pp or dp)", field="split")
    if sp in ("tp", "pp") and not ev.is_llm:
        raise BadInput(f"split: {ev.rm.entry.kind if ev.rm.entry else 'this'} models run as replicas (dp), not "
                       f"{sp}", field="split")
    if choice.count == 1:
        sp = "single"
    if sp == "tp" and split == "tp":
        att = next((la.attention for la in ev.spec.layers if la.attention), None)
        if att is not None and att.num_heads % choice.count:
            raise BadInput(f"split: tensor parallelism over {choice.count} GPUs needs the {att.num_heads} attention "
                           "heads to divide evenly (use --split pp)", field="split")
    if sp == "pp" and choice.count > ev.spec.num_layers:
        raise BadInput(f"gpu: {choice.count} pipeline stages for a {ev.spec.num_layers}-layer model", field="gpu")
    worst, usable, ests, comm = ev.per_gpu(choice, wl, sp)
    binding = max(ests, key=lambda e: e.total_bytes)
    binding_w = max(e.weights_bytes for e in ests)
    headroom = int(headroom_fraction * binding_w)
    verdict = _verdict(worst, usable, binding_w, headroom)
    ranks = _rank_uses(ev, ests, sp, choice.count, comm, wl)
    whole_weights = _whole_weights(ev, wl, choice.gpu)
    whole_kv = sum(r.kv_cache_bytes for r in ranks) if sp == "pp" else (
        ranks[0].kv_cache_bytes * (choice.count if sp == "tp" else 1))
    reasons = _reasons(verdict, worst, usable, binding_w, headroom, binding, choice)
    assumptions = [
        f"per GPU: the `vram estimate` total for the {'whole model' if sp == 'single' else 'fullest rank'} "
        f"({wl.engine}, {canonical_arch(choice.gpu)} runtime overheads)"
        + (" + NCCL buffers" if comm else ""),
        f"usable memory per GPU: {usable / 1024**3:,.2f} GiB"
        + (" (vLLM's reservation: CUDA context + gpu_memory_utilization × device + CUDA graphs)"
           if wl.engine == "vllm" else " (catalog usable_memory_bytes)" if not choice.local else " (free now)"),
        f"headroom: {headroom_fraction:g} × the fullest GPU's weights = {headroom / 1024**3:,.2f} GiB",
    ]
    if choice.gpu.vendor == "apple":
        assumptions.append(
            "Apple Silicon: usable = Metal's recommendedMaxWorkingSetSize, the share of unified memory macOS lets the "
            f"GPU wire ({choice.gpu.usable_memory_bytes / 1024**3:,.1f} of {choice.gpu.memory_bytes / 1024**3:,.0f} "
            "GiB; about 2/3 up to 36 GB, 3/4 above); raise it with `sudo sysctl iogpu.wired_limit_mb=<MiB>`; the "
            "rest of the unified memory holds macOS and the CPU side")
        if wl.engine == "transformers":
            assumptions.append("transformers on a Mac runs on MPS: the estimate keeps PyTorch's CUDA allocator "
                               "terms (not measured on MPS)")
        if wl.engine == "vllm":
            assumptions.append("vLLM does not run on Apple Silicon: these are its CUDA numbers; use --engine "
                               "llama.cpp for llama.cpp / Ollama / LM Studio on Metal")
    elif choice.gpu.vendor != "nvidia":
        assumptions.append(f"{choice.gpu.vendor} runtime overheads assumed equal to CUDA's")
    if sp == "tp":
        a0 = next((la.attention for la in ev.spec.layers if la.attention), None)
        if a0 is not None and a0.kind != "mla" and choice.count > a0.num_kv_heads:
            assumptions.append(f"TP {choice.count} > {a0.num_kv_heads} KV heads: KV heads (and their k/v weights) "
                               "replicated, one per rank")
        if a0 is not None and a0.kind == "mla":
            assumptions.append("multi-head latent attention: the latent KV cache is replicated on every TP rank")
    result = FitResult(
        model=ev.spec.name, gpu=choice.gpu.id, gpu_name=choice.gpu.name, gpu_count=choice.count, split=sp,
        engine=wl.engine, workload=wl, verdict=verdict, per_gpu_bytes=worst, usable_bytes_per_gpu=usable,
        headroom_fraction=headroom_fraction, headroom_bytes=headroom, free_bytes_per_gpu=usable - worst,
        weights_bytes=whole_weights, kv_cache_bytes=whole_kv, ranks=ranks, estimate=binding, reasons=reasons,
        assumptions=tuple(assumptions), gpu_entry=choice.gpu)
    if with_speed and ev.is_llm:  # tokens/s describe decoder LLMs, not diffusion or encoder models
        offloaded = 0
        offload = None
        experts = None
        if verdict == "no" and wl.engine == "llama.cpp" and choice.count == 1 and ev.spec.is_moe:
            from .llama_offload import expert_offload_plan, ram_setup

            experts = expert_offload_plan(ev.rm, ev.gpu_workload(wl, choice.gpu), choice.gpu.usable_memory_bytes,
                                          choice.gpu, ram or ram_setup())
        if experts is not None:
            offload = experts
            offloaded = int(experts["offloaded_bytes"])
        elif verdict == "no" and wl.engine != "vllm":
            offload = offload_plan(ev, choice, wl)
            offloaded = int(offload["offloaded_bytes"]) if offload else 0
        speed = ev.speed(choice, sp, wl, whole_weights, whole_kv, offloaded)
        if offload is not None and experts is None:
            offload["decode_tokens_per_s"] = round(speed.decode_tokens_per_s_per_seq, 2)
            full = ev.speed(choice, sp, wl, whole_weights, whole_kv)
            offload["decode_tokens_per_s_if_it_fit"] = round(full.decode_tokens_per_s_per_seq, 2)
        result = replace(result, speed=speed, offload=offload)
    if wl.engine == "llama.cpp" and ev.is_llm and choice.count == 1:
        from .llama_offload import host_memory_check, ram_setup

        est_for_host = binding
        if result.offload and result.offload.get("kind") == "experts":
            est_for_host = estimate(ev.rm, replace(ev.gpu_workload(wl, choice.gpu),
                                                   n_cpu_moe=int(result.offload["n_cpu_moe"])))
        result = replace(result, host_memory=host_memory_check(est_for_host, ram or ram_setup()))
    if solve:
        # diffusion pipelines and Whisper read no prompt of the user's length: no context to solve for
        uses_context = ev.rm.entry is None or ev.rm.entry.kind not in CONTEXT_FREE_KINDS
        multi = sp if choice.count > 1 else None
        result = replace(
            result, max_context=max_context(ev, choice, wl, multi) if uses_context else None,
            context_limit=context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None)
            if uses_context else None,
            max_batch=max_batch(ev, choice, wl, multi),
            min_gpus=1 if choice.local else min_gpus(ev, choice.gpu, wl),
            recommended_quant=best_quant(ev, choice, wl, headroom_fraction, multi) if ev.is_llm else None)
        limit = result.context_limit
        asked = wl.context + wl.new_tokens
        if limit and asked > limit:
            name = ev.rm.entry.name if ev.rm.entry else ev.spec.name
            result = replace(result, reasons=(*result.reasons, (
                f"{name} reads at most {limit:,} tokens (prompt + new): {asked:,} asked; the memory above is for "
                f"{asked:,}, the model itself stops at {limit:,}")))
        from .serving import serving_settings

        result = replace(result, serving=serving_settings(ev, result))
    return result


def _whole_weights(ev: Evaluator, wl: Workload, gpu: GpuEntry) -> int:
    """The whole model's weights (what `vram estimate` reports as weights_bytes; no GPU dependence)."""
    del gpu
    return ev.rank_weights("single", 1, wl)


def _reasons(verdict: str, worst: int, usable: int, weights: int, headroom: int, e: Estimate,
             choice: GpuChoice) -> tuple[str, ...]:
    g = 1024**3
    if verdict == "no":
        big = max(e.breakdown, key=lambda c: c.bytes)
        return (f"needs {worst / g:,.2f} GiB per GPU, {usable / g:,.2f} GiB usable on {choice.gpu.name}: "
                f"{(worst - usable) / g:,.2f} GiB short (largest part: {big.name} {big.bytes / g:,.2f} GiB)",)
    if verdict == "tight":
        return (f"fits with {(usable - worst) / g:,.2f} GiB free per GPU, but only {(usable - weights) / g:,.2f} GiB "
                f"above the weights: less than the {headroom / g:,.2f} GiB headroom asked for",)
    return (f"fits with {(usable - worst) / g:,.2f} GiB free per GPU; {(usable - weights) / g:,.2f} GiB above the "
            f"weights (headroom asked: {headroom / g:,.2f} GiB)",)


def offload_plan(ev: Evaluator, choice: GpuChoice, wl: Workload) -> dict[str, Any] | None:
    """When the whole model does not fit: how many layers to keep on the GPU(s) (llama.cpp `-ngl`, transformers
    device_map), the rest in host memory.

    Per layer: its weights and its KV cache (both follow the layer, as llama.cpp's default offload_kqv does). The
    embedding stays in host memory; the output head, activations, allocator reserve and CUDA context stay on the
    GPU. Layers on GPU = floor((usable × count − fixed) / per-layer bytes)."""
    e = ev.estimates("single", 1, ev.gpu_workload(wl, choice.gpu))[0]
    spec = ev.spec
    n = spec.num_layers
    if n == 0:
        return None
    no_layers = replace(spec, layers=())
    fixed_weights = _weights_component(no_layers, weight_scheme(spec, wl)).bytes
    layer_weights = max(0, e.weights_bytes - fixed_weights)
    per_layer = (layer_weights + e.kv_cache_bytes) / n
    embed_share = fixed_weights * (spec.embed_params / max(1, spec.embed_params + spec.head_params))
    gpu_fixed = e.total_bytes - e.weights_bytes - e.kv_cache_bytes + (fixed_weights - int(embed_share))
    room = choice.gpu.usable_memory_bytes * choice.count - gpu_fixed * choice.count
    on_gpu = max(0, min(n, int(room // per_layer))) if per_layer > 0 else n
    offloaded = int(layer_weights * (n - on_gpu) / n + embed_share)
    return {"layers_total": n, "layers_on_gpu": on_gpu, "layers_offloaded": n - on_gpu,
            "offloaded_bytes": offloaded, "host_memory_bytes": offloaded + int(e.kv_cache_bytes * (n - on_gpu) / n),
            "note": "offloaded layers are streamed over the host link every token (PCIe bandwidth); llama.cpp runs "
                    "them on the CPU instead, at system-RAM bandwidth — similar order of magnitude"}


def _fit_training(ev: Evaluator, choice: GpuChoice, tw: TrainWorkload, headroom_fraction: float,
                  solve: bool = True) -> FitResult:
    """Training: the training estimate per GPU (data-parallel over `count` GPUs; ZeRO/FSDP as given)."""
    try:
        from .training import estimate_training
    except ImportError as exc:  # pragma: no cover - training estimator not in this build
        raise BadInput("train: training estimates are not available in this build", field="train") from exc
    tw = replace(tw, gpus=max(tw.gpus, choice.count), gpu_arch=canonical_arch(choice.gpu))

    def total(t: TrainWorkload) -> tuple[int, Estimate]:
        est: Estimate = estimate_training(ev.rm, t)
        return est.total_bytes, est

    worst, est = total(tw)
    usable = choice.gpu.usable_memory_bytes
    headroom = int(headroom_fraction * est.weights_bytes)
    verdict = _verdict(worst, usable, est.weights_bytes, headroom)
    limit = context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None)
    mx_seq = _largest_true(lambda s: total(replace(tw, seq=s))[0] <= usable, 1, limit) if solve else None
    mx_batch = _largest_true(lambda b: total(replace(tw, batch=b))[0] <= usable, 1, MAX_BATCH) if solve else None
    def fits_on(n: int) -> bool:
        try:
            return total(replace(tw, gpus=n))[0] <= usable
        except BadInput:  # e.g. ZeRO / FSDP sharding over a single GPU
            return False

    mn = next((n for n in MIN_GPU_CANDIDATES if fits_on(n)), None) if solve else None
    ctx = est.component("cuda_context")
    from .serving import training_settings

    entry = ev.rm.entry
    repo = entry.hf_repo if entry is not None and entry.hf_repo else ev.rm.source
    serving = {"training": training_settings(repo, tw, choice.count), "primary": "training"}
    rank = RankUse(0, f"data-parallel rank of {tw.gpus}", (0, ev.spec.num_layers - 1), est.weights_bytes, 0,
                   est.kv_cache_bytes, est.activation_bytes, 0, ctx.bytes if ctx else 0, worst, est.breakdown)
    wl = Workload(batch=tw.batch, context=tw.seq, new_tokens=0).validate()
    return FitResult(model=ev.spec.name, gpu=choice.gpu.id, gpu_name=choice.gpu.name, gpu_count=choice.count,
                     split="dp", engine="training", workload=wl, verdict=verdict, per_gpu_bytes=worst,
                     usable_bytes_per_gpu=usable, headroom_fraction=headroom_fraction, headroom_bytes=headroom,
                     free_bytes_per_gpu=usable - worst, weights_bytes=est.weights_bytes, kv_cache_bytes=0,
                     ranks=(rank,), estimate=est, max_context=mx_seq, max_batch=mx_batch, min_gpus=mn,
                     context_limit=context_limit(ev.spec, entry.context_length if entry else None), serving=serving,
                     reasons=_reasons(verdict, worst, usable, est.weights_bytes, headroom, est, choice),
                     assumptions=("training step: the training estimate per GPU", *est.assumptions))


# ---------------------------------------------------------------------------------------------------------------
# which / compare


@dataclass(frozen=True)
class Option:
    """One GPU × count that holds the workload, with its speed."""

    gpu: str
    gpu_name: str
    vendor: str
    category: str
    gpu_count: int
    split: str
    verdict: str
    per_gpu_bytes: int
    usable_bytes_per_gpu: int
    free_bytes_per_gpu: int
    speed: Speed | None  # None for models that are not decoder LLMs
    price_per_hour_usd: float | None = None  # per GPU

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "gpu_name": self.gpu_name, "vendor": self.vendor, "category": self.category,
                "gpu_count": self.gpu_count, "split": self.split, "verdict": self.verdict, "fits": True,
                "per_gpu_bytes": self.per_gpu_bytes, "usable_bytes_per_gpu": self.usable_bytes_per_gpu,
                "free_bytes_per_gpu": self.free_bytes_per_gpu, "price_per_hour_usd": self.price_per_hour_usd,
                **(self.speed.to_dict() if self.speed else {})}


SORT_KEYS = ("cost", "speed", "gpus", "memory")


def _sort_key(sort: str) -> Callable[[Option], tuple[Any, ...]]:
    def tps(o: Option) -> float:
        return o.speed.decode_tokens_per_s if o.speed else 0.0

    def cost(o: Option) -> tuple[Any, ...]:
        c = o.speed.cost_per_million_tokens_usd if o.speed else None
        if o.speed is None and o.price_per_hour_usd:
            c = o.price_per_hour_usd * o.gpu_count  # no token rate (not an LLM): cheapest per hour first
        return (c is None, c if c is not None else 0.0, -tps(o), o.gpu_count)

    keys: dict[str, Callable[[Option], tuple[Any, ...]]] = {
        "cost": cost,
        "speed": lambda o: (-tps(o), o.gpu_count),
        "gpus": lambda o: (o.gpu_count, -tps(o)),
        "memory": lambda o: (o.usable_bytes_per_gpu * o.gpu_count, -tps(o)),
    }
    if sort not in keys:
        raise BadInput(f"sort: unknown order {sort!r} (use {', '.join(SORT_KEYS)})", field="sort")
    return keys[sort]


def evaluate_option(ev: Evaluator, choice: GpuChoice, wl: Workload, headroom_fraction: float = DEFAULT_HEADROOM,
                    split: str | None = None, gwl: Workload | None = None) -> Option | None:
    """The option if the workload fits on `choice` (verdict fits or tight), else None. No solvers.
    `gwl`: the workload as `ev.gpu_workload(wl, choice.gpu)` returns it, when the caller has it already."""
    sp = "single" if choice.count == 1 else (split or ev.default_split(choice.count, wl.engine))
    if sp == "pp" and choice.count > ev.spec.num_layers:
        return None
    if ev.rank_weights(sp, choice.count, wl) > choice.gpu.usable_memory_bytes:
        return None  # the weights alone do not fit: no estimate needed
    worst, usable, ests, _ = ev.per_gpu(choice, wl, sp, gwl)
    if worst > usable:
        return None
    w = max(e.weights_bytes for e in ests)
    headroom = int(headroom_fraction * w)
    whole_w = _whole_weights(ev, wl, choice.gpu)
    kv = sum(e.kv_cache_bytes for e in ests) if sp == "pp" else ests[0].kv_cache_bytes * (
        choice.count if sp == "tp" else 1)
    sp_speed = ev.speed(choice, sp, wl, whole_w, kv) if ev.is_llm else None
    g = choice.gpu
    return Option(gpu=g.id, gpu_name=g.name, vendor=g.vendor, category=g.category, gpu_count=choice.count, split=sp,
                  verdict=_verdict(worst, usable, w, headroom), per_gpu_bytes=worst, usable_bytes_per_gpu=usable,
                  free_bytes_per_gpu=usable - worst, speed=sp_speed, price_per_hour_usd=g.price_per_hour_usd)


def which(model: str | ModelSpec | ResolvedModel | Evaluator, workload: Workload | None = None,
          counts: tuple[int, ...] = (1, 2, 4, 8), *, sort: str = "cost", headroom_fraction: float = DEFAULT_HEADROOM,
          gpus: list[GpuEntry] | None = None) -> list[Option]:
    """Every catalog GPU × count in `counts` on which the workload fits, fastest-cheapest first.

    Default order (`sort="cost"`): cost per million decode tokens where a price is known (cheapest first), then the
    rest by decode tokens/s; "speed", "gpus" and "memory" sort by decode speed, GPU count, total memory."""
    from .catalog import all_gpus

    ev = evaluator_for(model)
    wl = (workload or Workload()).validate()
    key = _sort_key(sort)
    out = []
    for g in gpus if gpus is not None else all_gpus():
        gwl = ev.gpu_workload(wl, g)
        for n in counts:
            opt = evaluate_option(ev, GpuChoice(g, n), wl, headroom_fraction, gwl=gwl)
            if opt is not None:
                out.append(opt)
    out.sort(key=key)
    return out


def compare(model: str | ModelSpec | ResolvedModel | Evaluator, gpu_specs: list[str], workload: Workload | None = None,
            *, headroom_fraction: float = DEFAULT_HEADROOM) -> list[FitResult]:
    """Side by side: the full fit (verdict, solvers, speed) on each GPU spec, in the order given."""
    if not gpu_specs:
        raise BadInput("gpu: give at least one GPU to compare", field="gpu")
    ev = evaluator_for(model)
    return [fit(ev, s, workload, headroom_fraction=headroom_fraction) for s in gpu_specs]
