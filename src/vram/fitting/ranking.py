"""`which` (every catalog GPU that holds a workload, ranked) and `compare` (one model on several GPUs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..catalog import GpuEntry
from ..devices import GpuChoice, vllm_unsupported
from ..errors import BadInput
from ..model import ModelSpec
from ..request import Workload
from ..resolved import ResolvedModel
from .check import _whole_kv, _whole_weights, fit, ollama_workload_on
from .evaluator import Evaluator, EvaluatorCache, evaluator_for
from .results import FitResult, Option
from .solvers import DEFAULT_HEADROOM, _verdict

MIB = 1024**2


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


def evaluate_option(
    ev: Evaluator,
    choice: GpuChoice,
    wl: Workload,
    headroom_fraction: float = DEFAULT_HEADROOM,
    split: str | None = None,
    gwl: Workload | None = None,
) -> Option | None:
    """The option if the workload fits on `choice` (verdict fits or tight), else None. No solvers.
    `gwl`: the workload as `ev.gpu_workload(wl, choice.gpu)` returns it, when the caller has it already. An Ollama
    workload is sized as Ollama would start it on these GPUs (its num_ctx tier and num_batch depend on them)."""
    if wl.engine == "ollama":
        wl, gwl = ollama_workload_on(ev, wl, [choice.gpu] * choice.count), None
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
    kv = _whole_kv(ests, sp, choice.count)
    # a ranked option carries the facts its speed assumes, not the arithmetic lines (`vram fit` spells those out)
    sp_speed = (
        ev.speed(choice, sp, wl, whole_w, kv, explain=False, kv_read_bytes=_whole_kv(ests, sp, choice.count, read=True))
        if ev.is_llm
        else None
    )
    g = choice.gpu
    return Option(
        gpu=g.id,
        gpu_name=g.name,
        vendor=g.vendor,
        category=g.category,
        gpu_count=choice.count,
        split=sp,
        verdict=_verdict(worst, usable, w, headroom),
        per_gpu_bytes=worst,
        usable_bytes_per_gpu=usable,
        free_bytes_per_gpu=usable - worst,
        speed=sp_speed,
        price_per_hour_usd=g.price_per_hour_usd,
    )


def which(
    model: str | ModelSpec | ResolvedModel | Evaluator,
    workload: Workload | None = None,
    counts: tuple[int, ...] = (1, 2, 4, 8),
    *,
    sort: str = "cost",
    headroom_fraction: float = DEFAULT_HEADROOM,
    gpus: list[GpuEntry] | None = None,
    cache: EvaluatorCache | None = None,
) -> list[Option]:
    """Every catalog GPU × count in `counts` on which the workload fits, fastest-cheapest first.

    Default order (`sort="cost"`): cost per million decode tokens where a price is known (cheapest first), then the
    rest by decode tokens/s; "speed", "gpus" and "memory" sort by decode speed, GPU count, total memory."""
    from ..catalog import all_gpus

    ev = evaluator_for(model, cache)
    wl = (workload or Workload()).validate()
    key = _sort_key(sort)
    out = []
    for g in gpus if gpus is not None else all_gpus():
        if (g.vendor == "apple") != (wl.engine == "mlx") and wl.engine in ("mlx", "vllm"):
            continue  # MLX runs only on Apple Silicon, vLLM never does
        if wl.engine == "vllm" and vllm_unsupported(g):
            continue  # nor on GPUs older than Volta
        gwl = ev.gpu_workload(wl, g) if wl.engine != "ollama" else None
        for n in counts:
            opt = evaluate_option(ev, GpuChoice(g, n), wl, headroom_fraction, gwl=gwl)
            if opt is not None:
                out.append(opt)
    out.sort(key=key)
    return out


def compare(
    model: str | ModelSpec | ResolvedModel | Evaluator,
    gpu_specs: list[str],
    workload: Workload | None = None,
    *,
    headroom_fraction: float = DEFAULT_HEADROOM,
    cache: EvaluatorCache | None = None,
) -> list[FitResult]:
    """Side by side: the full fit (verdict, solvers, speed) on each GPU spec, in the order given."""
    if not gpu_specs:
        raise BadInput("gpu: give at least one GPU to compare", field="gpu")
    ev = evaluator_for(model, cache)
    return [fit(ev, s, workload, headroom_fraction=headroom_fraction) for s in gpu_specs]
