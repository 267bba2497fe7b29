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


The package, by job: `sharding` (vram.sharding: TP / PP rank specs, replicated weights, NCCL buffers), `evaluator`
(one model's cached rank specs and estimates; `EvaluatorCache`, bounded and thread-safe, owned by its caller),
`solvers`, `check` (`fit`), `results`, `ranking` (`which`, `compare`).
"""

from __future__ import annotations

from ..devices import GpuChoice, canonical_arch, device_of, parse_gpu_spec
from ..sharding import (
    comm_buffer_bytes,
    default_split,
    pp_stage_layers,
    pp_stage_specs,
    replicated_weights_bytes,
    tp_rank_spec,
)
from .check import CONTEXT_FREE_KINDS, fit, offload_plan
from .evaluator import MAX_CACHED_ESTIMATES, Evaluator, EvaluatorCache, evaluator_for, gpu_workload
from .ranking import SORT_KEYS, compare, evaluate_option, which
from .results import VERDICTS, FitResult, Option, RankUse
from .solvers import (
    DEFAULT_HEADROOM,
    MIN_GPU_CANDIDATES,
    best_quant,
    context_limit,
    max_batch,
    max_context,
    min_gpus,
    quant_candidates,
)

__all__ = [
    "CONTEXT_FREE_KINDS",
    "DEFAULT_HEADROOM",
    "MAX_CACHED_ESTIMATES",
    "MIN_GPU_CANDIDATES",
    "SORT_KEYS",
    "VERDICTS",
    "Evaluator",
    "EvaluatorCache",
    "FitResult",
    "GpuChoice",
    "Option",
    "RankUse",
    "best_quant",
    "canonical_arch",
    "comm_buffer_bytes",
    "compare",
    "context_limit",
    "default_split",
    "device_of",
    "evaluate_option",
    "evaluator_for",
    "fit",
    "gpu_workload",
    "max_batch",
    "max_context",
    "min_gpus",
    "offload_plan",
    "parse_gpu_spec",
    "pp_stage_layers",
    "pp_stage_specs",
    "quant_candidates",
    "replicated_weights_bytes",
    "tp_rank_spec",
    "which",
]
