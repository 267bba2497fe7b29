"""Solvers over the estimator: the largest context and batch that fit, the fewest GPUs, the best weight format."""

from __future__ import annotations

from collections.abc import Callable

from ..catalog import GpuEntry
from ..devices import GpuChoice
from ..dtypes import QUALITY_ORDER, quant_scheme
from ..model import ModelSpec
from ..records import replace
from ..request import MAX_BATCH, Workload
from .evaluator import Evaluator

MIB = 1024**2


DEFAULT_HEADROOM = 0.2
MIN_GPU_CANDIDATES = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)


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
    from ..request import MAX_TOKENS

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


def min_gpus(
    ev: Evaluator, gpu: GpuEntry, wl: Workload, candidates: tuple[int, ...] = MIN_GPU_CANDIDATES, local: bool = False
) -> int | None:
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

    if engine in ("llama.cpp", "ollama"):  # Ollama runs GGUF files on llama.cpp
        return tuple(q for q in QUALITY_ORDER if q == "bfloat16" or is_gguf(q))
    if engine == "mlx":  # MLX's own formats, most bits first; 2-bit is not proposed
        from ..engines.mlx import MLX_BITS

        return ("bfloat16", *(q for q, bits in sorted(MLX_BITS.items(), key=lambda kv: -kv[1]) if bits >= 3))
    return tuple(q for q in QUALITY_ORDER if not is_gguf(q))


def best_quant(
    ev: Evaluator,
    choice: GpuChoice,
    wl: Workload,
    headroom_fraction: float = DEFAULT_HEADROOM,
    split: str | None = None,
) -> str | None:
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
