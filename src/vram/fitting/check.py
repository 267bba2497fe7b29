"""`fit`: the verdict for a model on N × a GPU, the per-rank use, the solvers' limits, offload, speed and serving
settings."""

from __future__ import annotations

from typing import Any

from ..catalog import GpuEntry
from ..components.weights import weight_scheme
from ..components.weights import weights_bytes as _weights_component
from ..details import LlamaCppDetails
from ..devices import GpuChoice, canonical_arch, device_of, parse_gpu_spec, vllm_unsupported
from ..errors import BadInput
from ..inference import estimate
from ..model import ModelSpec
from ..records import replace
from ..request import MAX_BATCH, LlamaCppOptions, TrainWorkload, VllmOptions, Workload
from ..resolved import ResolvedModel
from ..result import Estimate
from ..sharding import pp_stage_layers
from ..speed import Speed
from .evaluator import Evaluator, EvaluatorCache, evaluator_for
from .results import FitResult, RankUse
from .solvers import (
    DEFAULT_HEADROOM,
    MIN_GPU_CANDIDATES,
    _largest_true,
    _verdict,
    best_quant,
    context_limit,
    max_batch,
    max_context,
    min_gpus,
)

MIB = 1024**2


def _cpu_build_speed(ev: Evaluator, wl: Workload, est: Estimate, gpu: GpuEntry, ram: Any, speed: Speed) -> Speed:
    """llama.cpp's CPU build: every weight and the cache are read from system RAM each step (at the RAM setup's
    bandwidth, `llama_offload.decode_speed`); its prompt rate is the host cores', which vram does not model."""
    from ..llama_offload import decode_speed, ram_setup

    setup = ram or ram_setup()
    d = decode_speed(ev.rm, wl, est, gpu, setup)
    per_seq = float(d["decode_tokens_per_s"] or 0.0)
    return replace(
        speed,
        decode_tokens_per_s=per_seq * wl.batch,
        decode_tokens_per_s_per_seq=per_seq,
        decode_bound="memory",
        bytes_read_per_step=int(d["host_bytes_per_token"]),
        prefill_tokens_per_s=None,
        ttft_s=None,
        cost_per_million_tokens_usd=None,
        decode_range_per_seq=None,
        prefill_range=None,
        calibrated=False,
        assumptions=(
            f"decode on llama.cpp's CPU build: {d['explanation']} (RAM: {setup.name}; --ram-type sets it)",
            "prefill: not estimated: the CPU build's prompt rate is set by the host's cores, which vram does not model",
            "llama.cpp/cpu: no public measurement here calibrates this build; the speed is a rough guide",
        ),
    )


# model kinds whose memory does not depend on a prompt length (a diffusion pipeline's text is its encoder's fixed
# 512/77 tokens; Whisper decodes a fixed 448-token window per 30 s of audio)
CONTEXT_FREE_KINDS = ("diffusion", "speech")


def _rank_uses(
    ev: Evaluator, ests: list[Estimate], split: str, count: int, comm: int, wl: Workload
) -> tuple[RankUse, ...]:
    out = []
    ranges = pp_stage_layers(ev.spec.num_layers, count) if split == "pp" else [range(0, ev.spec.num_layers)]
    repl = ev.replicated_weights(wl) if split == "tp" else 0
    n_ranks = count if split != "single" else 1
    for i in range(n_ranks):
        e = ests[i] if split == "pp" else ests[0]
        rng = ranges[i] if split == "pp" else ranges[0]
        ctx = e.component("cuda_context")
        role = {
            "single": "whole model",
            "dp": f"replica {i + 1}/{count}: the whole model, its own batch",
            "tp": f"TP rank {i + 1}/{count}: 1/{count} of each matrix, of the embedding/head (by "
            "vocabulary) and of the KV heads; norms whole",
            "pp": f"PP stage {i + 1}/{count}: layers {rng.start}-{rng.stop - 1}"
            + (", embedding" if i == 0 else "")
            + (", final norm + head" if i == count - 1 else ""),
        }[split]
        span = (rng.start, rng.stop - 1) if len(rng) else ()
        out.append(
            RankUse(
                rank=i,
                role=role,
                layers=span,
                weights_bytes=e.weights_bytes,
                weights_replicated_bytes=repl,
                kv_cache_bytes=e.kv_cache_bytes,
                activation_bytes=e.activation_bytes,
                comm_bytes=comm,
                cuda_context_bytes=ctx.bytes if ctx else 0,
                total_bytes=e.total_bytes + comm,
                breakdown=e.breakdown,
            )
        )
    return tuple(out)


def fit(
    model: str | ModelSpec | ResolvedModel | Evaluator,
    gpu_spec: str | GpuChoice,
    workload: Workload | None = None,
    *,
    headroom_fraction: float = DEFAULT_HEADROOM,
    train: TrainWorkload | None = None,
    split: str | None = None,
    solve: bool = True,
    with_speed: bool = True,
    ram: Any = None,
    cache: EvaluatorCache | None = None,
) -> FitResult:
    """Does `workload` of `model` fit on `gpu_spec` ("h100-sxm", "4090", "2xh100-sxm", "local")?

    With `solve` the result also carries max_context, max_batch, min_gpus and recommended_quant (each a search over
    the estimator) and the serving settings for the fit found. `cache`: the caller's evaluators, kept between calls
    (a long-lived process asking about the same models again).
    """
    if not 0 <= headroom_fraction <= 10:
        raise BadInput("headroom: must be between 0 and 10 (a fraction of the weights, 0.2 = 20 %)", field="headroom")
    ev = evaluator_for(model, cache)
    if workload is not None and workload.engine == "ollama" and train is None:
        return _fit_ollama(ev, gpu_spec, workload, headroom_fraction, split, solve, with_speed, ram, cache)
    if isinstance(gpu_spec, str) and "+" in gpu_spec:
        return _fit_device_list(ev, gpu_spec, workload, train, headroom_fraction, ram, solve)
    choice = parse_gpu_spec(gpu_spec)
    wl = (workload or Workload()).validate()
    if wl.engine == "mlx" and choice.gpu.vendor != "apple":
        raise BadInput(f"engine: MLX runs on Apple Silicon only, not on {choice.gpu.name}", field="engine")
    why = vllm_unsupported(choice.gpu) if wl.engine == "vllm" else None
    if why:
        raise BadInput(why, field="engine")
    if train is not None:
        return _fit_training(ev, choice, train, headroom_fraction, solve)
    if isinstance(wl.options, VllmOptions) and wl.options.tensor_parallel_size != 1:
        tp = wl.options.tensor_parallel_size
        if tp != choice.count or split not in (None, "tp"):
            raise BadInput(
                f"tensor_parallel_size: vram fit splits the model over the GPUs of --gpu "
                f"({choice.count} here); give --gpu {tp}x{choice.gpu.id} instead",
                field="tensor_parallel_size",
            )
        wl, split = wl.with_options(tensor_parallel_size=1), "tp"
    if wl.devices:
        raise BadInput(
            "gpu: vram fit places the workload on the GPU it is given; leave the workload's devices empty", field="gpu"
        )
    sp = split or ev.default_split(choice.count, wl.engine)
    if sp not in ("single", "tp", "pp", "dp"):
        raise BadInput(f"split: unknown split {sp!r} (use tp, pp or dp)", field="split")
    if sp in ("tp", "pp") and not ev.is_llm:
        raise BadInput(
            f"split: {ev.rm.entry.kind if ev.rm.entry else 'this'} models run as replicas (dp), not {sp}", field="split"
        )
    if choice.count == 1:
        sp = "single"
    if sp == "tp" and split == "tp":
        att = next((la.attention for la in ev.spec.layers if la.attention), None)
        if att is not None and att.num_heads % choice.count:
            raise BadInput(
                f"split: tensor parallelism over {choice.count} GPUs needs the {att.num_heads} attention "
                "heads to divide evenly (use --split pp)",
                field="split",
            )
    if sp == "pp" and choice.count > ev.spec.num_layers:
        raise BadInput(f"gpu: {choice.count} pipeline stages for a {ev.spec.num_layers}-layer model", field="gpu")
    worst, usable, ests, comm = ev.per_gpu(choice, wl, sp)
    binding = max(ests, key=lambda e: e.total_bytes)
    binding_w = max(e.weights_bytes for e in ests)
    headroom = int(headroom_fraction * binding_w)
    verdict = _verdict(worst, usable, binding_w, headroom)
    ranks = _rank_uses(ev, ests, sp, choice.count, comm, wl)
    whole_weights = _whole_weights(ev, wl, choice.gpu)
    whole_kv = _whole_kv(ests, sp, choice.count)
    kv_read = _whole_kv(ests, sp, choice.count, read=True)
    reasons = _reasons(verdict, worst, usable, binding_w, headroom, binding, choice)
    assumptions = [
        f"per GPU: the `vram estimate` total for the {'whole model' if sp == 'single' else 'fullest rank'} "
        f"({wl.engine}, {canonical_arch(choice.gpu)} runtime overheads)" + (" + NCCL buffers" if comm else ""),
        f"usable memory per GPU: {usable / 1024**3:,.2f} GiB"
        + (
            " (vLLM's reservation: CUDA context + gpu_memory_utilization × device + CUDA graphs)"
            if wl.engine == "vllm"
            else " (catalog usable_memory_bytes)"
            if not choice.local
            else " (free now)"
        ),
        f"headroom: {headroom_fraction:g} × the fullest GPU's weights = {headroom / 1024**3:,.2f} GiB",
    ]
    if choice.gpu.vendor == "apple":
        assumptions.append(
            "Apple Silicon: usable = Metal's recommendedMaxWorkingSetSize, the share of unified memory macOS lets the "
            f"GPU wire ({choice.gpu.usable_memory_bytes / 1024**3:,.1f} of {choice.gpu.memory_bytes / 1024**3:,.0f} "
            "GiB; about 2/3 up to 36 GB, 3/4 above); raise it with `sudo sysctl iogpu.wired_limit_mb=<MiB>`; the "
            "rest of the unified memory holds macOS and the CPU side"
        )
    elif choice.gpu.vendor != "nvidia":
        assumptions.append(f"{choice.gpu.vendor} runtime overheads assumed equal to CUDA's")
    if sp == "tp":
        a0 = next((la.attention for la in ev.spec.layers if la.attention), None)
        if a0 is not None and a0.kind != "mla" and choice.count > a0.num_kv_heads:
            assumptions.append(
                f"TP {choice.count} > {a0.num_kv_heads} KV heads: KV heads (and their k/v weights) "
                "replicated, one per rank"
            )
        if a0 is not None and a0.kind == "mla":
            assumptions.append("multi-head latent attention: the latent KV cache is replicated on every TP rank")
    result = FitResult(
        model=ev.spec.name,
        gpu=choice.gpu.id,
        gpu_name=choice.gpu.name,
        gpu_count=choice.count,
        split=sp,
        engine=wl.engine,
        workload=wl,
        verdict=verdict,
        per_gpu_bytes=worst,
        usable_bytes_per_gpu=usable,
        headroom_fraction=headroom_fraction,
        headroom_bytes=headroom,
        free_bytes_per_gpu=usable - worst,
        weights_bytes=whole_weights,
        kv_cache_bytes=whole_kv,
        ranks=ranks,
        estimate=binding,
        reasons=reasons,
        assumptions=tuple(assumptions),
        gpu_entry=choice.gpu,
    )
    if with_speed and ev.is_llm:  # tokens/s describe decoder LLMs, not diffusion or encoder models
        offloaded = 0
        offload = None
        experts = None
        if verdict == "no" and wl.engine == "llama.cpp" and choice.count == 1 and ev.spec.is_moe:
            from ..llama_offload import expert_offload_plan, ram_setup

            experts = expert_offload_plan(
                ev.rm, ev.gpu_workload(wl, choice.gpu), choice.gpu.usable_memory_bytes, choice.gpu, ram or ram_setup()
            )
        if experts is not None:
            offload = experts
            offloaded = int(experts["offloaded_bytes"])
        elif verdict == "no" and wl.engine != "vllm":
            offload = offload_plan(ev, choice, wl)
            if offload is not None and wl.engine == "llama.cpp" and choice.count == 1:
                offload = _llama_layers_that_fit(ev, choice, wl, offload)
            offloaded = int(offload["offloaded_bytes"]) if offload else 0
        speed = ev.speed(choice, sp, wl, whole_weights, whole_kv, offloaded, kv_read_bytes=kv_read)
        if isinstance(wl.options, LlamaCppOptions) and wl.options.backend == "cpu":
            speed = _cpu_build_speed(ev, wl, binding, choice.gpu, ram, speed)
        if experts is not None and experts.get("decode_tokens_per_s"):
            # decoding with the experts on the CPU: they are computed there, not streamed over the host link (the
            # streaming figure still prices prefill, where llama.cpp copies host weights to the GPU per ubatch)
            per_seq = float(experts["decode_tokens_per_s"])
            cost = speed.cost_per_million_tokens_usd
            speed = replace(
                speed,
                cost_per_million_tokens_usd=None
                if cost is None
                else cost * speed.decode_tokens_per_s / (per_seq * wl.batch),
                decode_tokens_per_s=per_seq * wl.batch,
                decode_tokens_per_s_per_seq=per_seq,
                decode_bound="memory",
                bytes_read_per_step=int(experts["gpu_bytes_per_token"]) + int(experts["host_bytes_per_token"]),
                decode_range_per_seq=None,
                assumptions=(
                    f"decode with {experts['flag']}: {experts['explanation']}",
                    *(a for a in speed.assumptions if not a.startswith("decode")),
                ),
            )
        if offload is not None and experts is None:
            offload["decode_tokens_per_s"] = round(speed.decode_tokens_per_s_per_seq, 2)
            full = ev.speed(choice, sp, wl, whole_weights, whole_kv, kv_read_bytes=kv_read)
            offload["decode_tokens_per_s_if_it_fit"] = round(full.decode_tokens_per_s_per_seq, 2)
        result = replace(result, speed=speed, offload=offload)
    if wl.engine == "llama.cpp" and ev.is_llm and choice.count == 1:
        from ..llama_offload import host_memory_check, ram_setup

        est_for_host = offloaded_estimate(ev, wl, [choice.gpu], result.offload) if result.offload else binding
        result = replace(result, host_memory=host_memory_check(est_for_host, ram or ram_setup()))
    if solve:
        # diffusion pipelines and Whisper read no prompt of the user's length: no context to solve for
        uses_context = ev.rm.entry is None or ev.rm.entry.kind not in CONTEXT_FREE_KINDS
        multi = sp if choice.count > 1 else None
        result = replace(
            result,
            max_context=max_context(ev, choice, wl, multi) if uses_context else None,
            context_limit=context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None)
            if uses_context
            else None,
            max_batch=max_batch(ev, choice, wl, multi),
            min_gpus=1 if choice.local else min_gpus(ev, choice.gpu, wl),
            recommended_quant=best_quant(ev, choice, wl, headroom_fraction, multi) if ev.is_llm else None,
        )
        limit = result.context_limit
        asked = wl.context + wl.new_tokens
        if limit and asked > limit:
            name = ev.rm.entry.name if ev.rm.entry else ev.spec.name
            result = replace(
                result,
                reasons=(
                    *result.reasons,
                    (
                        f"{name} reads at most {limit:,} tokens (prompt + new): {asked:,} asked; the memory above "
                        f"is for {asked:,}, the model itself stops at {limit:,}"
                    ),
                ),
            )
        from ..serving import serving_settings

        result = replace(result, serving=serving_settings(ev, result))
    return result


def _fit_ollama(
    ev: Evaluator,
    gpu_spec: str | GpuChoice,
    workload: Workload,
    headroom_fraction: float,
    split: str | None,
    solve: bool,
    with_speed: bool,
    ram: Any,
    cache: EvaluatorCache | None,
) -> FitResult:
    """Ollama on these GPUs: the llama.cpp workload Ollama starts for them (its num_ctx tier and num_batch depend
    on the GPUs' memory), fitted as llama.cpp, with Ollama's choices and what `ollama ps` would show added."""
    from ..devices import parse_gpu_list
    from ..engines.ollama import ps_view

    wl = workload.validate()
    if wl.devices:
        raise BadInput(
            "gpu: vram fit places the workload on the GPU it is given; leave the workload's devices empty", field="gpu"
        )
    if isinstance(gpu_spec, str) and "+" in gpu_spec:
        gpus = parse_gpu_list(gpu_spec)
    else:
        choice = parse_gpu_spec(gpu_spec)
        gpus = [choice.gpu] * choice.count
    lwl, settings = ollama_on(ev, wl, gpus)
    if settings["gpu_index"] is not None:  # Ollama loads it on one of the GPUs given
        gpus = [gpus[int(settings["gpu_index"])]]
        gpu_spec = GpuChoice(gpus[0], 1)
    r = fit(
        ev,
        gpu_spec,
        lwl,
        headroom_fraction=headroom_fraction,
        split=split,
        solve=solve,
        with_speed=with_speed,
        ram=ram,
        cache=cache,
    )
    est = offloaded_estimate(ev, lwl, gpus, r.offload) if r.offload else r.estimate
    ps = ps_view(est.details, ev.spec.num_layers) if isinstance(est.details, LlamaCppDetails) else None
    notes = list(settings["notes"])
    if ps is not None:
        notes.append(
            f"`ollama ps` would show SIZE {ps['size']}, PROCESSOR {ps['processor']}, CONTEXT {settings['num_ctx']:,}"
        )
    serving = {**r.serving, "primary": "ollama"} if "ollama" in r.serving else r.serving
    return replace(
        r, engine="ollama", serving=serving, ollama={**settings, "ps": ps}, assumptions=(*notes, *r.assumptions)
    )


def offloaded_estimate(ev: Evaluator, wl: Workload, gpus: list[GpuEntry], offload: dict[str, Any]) -> Estimate:
    """The llama.cpp estimate of `wl` on `gpus` with a fit's offload applied: experts on the CPU (`--n-cpu-moe`)
    or only some layers on the GPUs (`-ngl`, which counts the output layer and the last blocks), over the fit's
    tensor split when there are several GPUs."""
    if offload.get("kind") == "experts":
        opts: dict[str, Any] = {"n_cpu_moe": int(offload["n_cpu_moe"])}
    elif offload.get("n_gpu_layers") is not None:
        opts = {"n_gpu_layers": int(offload["n_gpu_layers"])}
    else:  # offload_plan's answer for one GPU kind: blocks on the GPU, the output layer with them
        on_gpu = int(offload["layers_on_gpu"])
        opts = {"n_gpu_layers": on_gpu + 1 if on_gpu else 0}
    if len(gpus) == 1:
        return estimate(ev.rm, ev.gpu_workload(wl, gpus[0]).with_options(**opts))
    from .devices_fit import estimate_on_devices

    split = tuple(float(x) for x in offload.get("tensor_split") or ()) or None
    return estimate_on_devices(ev, gpus, wl.with_options(**opts), split)


def ollama_on(ev: Evaluator, wl: Workload, gpus: list[GpuEntry]) -> tuple[Workload, dict[str, Any]]:
    """The llama.cpp workload (no devices: the fit places it) Ollama starts on these GPUs, and its choices."""
    from ..engines.ollama import as_llama_cpp

    lwl, settings = as_llama_cpp(ev.rm, replace(wl, devices=tuple(device_of(g) for g in gpus)))
    return replace(lwl, devices=()), settings


def ollama_workload_on(ev: Evaluator, wl: Workload, gpus: list[GpuEntry]) -> Workload:
    return ollama_on(ev, wl, gpus)[0]


def _fit_device_list(
    ev: Evaluator,
    spec: str,
    workload: Workload | None,
    train: TrainWorkload | None,
    headroom_fraction: float,
    ram: Any,
    solve: bool,
) -> FitResult:
    """A '+' list of GPUs (`rtx-4090+rtx-3090`): only llama.cpp (and what runs on it) splits one model over GPUs of
    different kinds, by layers."""
    from ..devices import parse_gpu_list
    from .devices_fit import fit_llama_devices

    wl = (workload or Workload()).validate()
    if train is not None or wl.engine != "llama.cpp":
        what = "training" if train is not None else wl.engine
        raise BadInput(
            f"gpu: {spec!r} mixes GPUs; only llama.cpp splits one model over different GPUs (--engine llama.cpp, "
            f"--tensor-split); {what} needs N × one GPU, e.g. 2x{spec.split('+')[0].strip()}",
            field="gpu",
        )
    if wl.devices:
        raise BadInput(
            "gpu: vram fit places the workload on the GPUs it is given; leave the workload's devices empty", field="gpu"
        )
    return fit_llama_devices(ev, parse_gpu_list(spec), wl, headroom_fraction=headroom_fraction, ram=ram, solve=solve)


def _whole_kv(ests: list[Estimate], split: str, count: int, *, read: bool = False) -> int:
    """The whole model's KV cache from the per-GPU estimates (a layer split's stages add up; TP ranks each hold
    their share); `read`: the part a decode step reads (`Estimate.kv_read_bytes`)."""
    per = [e.kv_read_bytes if read and e.kv_read_bytes is not None else e.kv_cache_bytes for e in ests]
    return sum(per) if split == "pp" else per[0] * (count if split == "tp" else 1)


def _whole_weights(ev: Evaluator, wl: Workload, gpu: GpuEntry) -> int:
    """The whole model's weights (what `vram estimate` reports as weights_bytes; no GPU dependence)."""
    del gpu
    return ev.rank_weights("single", 1, wl)


def _reasons(
    verdict: str, worst: int, usable: int, weights: int, headroom: int, e: Estimate, choice: GpuChoice
) -> tuple[str, ...]:
    g = 1024**3
    if verdict == "no":
        big = max(e.breakdown, key=lambda c: c.bytes)
        return (
            f"needs {worst / g:,.2f} GiB per GPU, {usable / g:,.2f} GiB usable on {choice.gpu.name}: "
            f"{(worst - usable) / g:,.2f} GiB short (largest part: {big.name} {big.bytes / g:,.2f} GiB)",
        )
    if verdict == "tight":
        return (
            f"fits with {(usable - worst) / g:,.2f} GiB free per GPU, but only {(usable - weights) / g:,.2f} GiB "
            f"above the weights: less than the {headroom / g:,.2f} GiB headroom asked for",
        )
    return (
        f"fits with {(usable - worst) / g:,.2f} GiB free per GPU; {(usable - weights) / g:,.2f} GiB above the "
        f"weights (headroom asked: {headroom / g:,.2f} GiB)",
    )


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
    return {
        "layers_total": n,
        "layers_on_gpu": on_gpu,
        "layers_offloaded": n - on_gpu,
        "offloaded_bytes": offloaded,
        "host_memory_bytes": offloaded + int(e.kv_cache_bytes * (n - on_gpu) / n),
        "note": "offloaded layers are streamed over the host link every token (PCIe bandwidth); llama.cpp runs "
        "them on the CPU instead, at system-RAM bandwidth — similar order of magnitude",
    }


def _llama_layers_that_fit(ev: Evaluator, choice: GpuChoice, wl: Workload, plan: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp on one GPU: offload_plan's per-layer share as the starting point, checked against the estimate of
    that `-ngl` and moved a block at a time to the most blocks whose estimate fits (with weights on the host the
    compute buffer grows: the prompt's batches copy them to the GPU), and the host bytes read from that estimate."""
    from ..llama_offload import host_bytes

    usable = choice.gpu.usable_memory_bytes
    n = int(plan["layers_total"])

    def with_blocks(on: int) -> Estimate:
        return offloaded_estimate(ev, wl, [choice.gpu], {**plan, "layers_on_gpu": on})

    on = int(plan["layers_on_gpu"])
    est = with_blocks(on)
    while on > 0 and est.total_bytes > usable:
        on -= 1
        est = with_blocks(on)
    while on + 1 < n:
        more = with_blocks(on + 1)
        if more.total_bytes > usable:
            break
        on, est = on + 1, more
    return {
        **plan,
        "layers_on_gpu": on,
        "layers_offloaded": n - on,
        "offloaded_bytes": est.llama_cpp.weights_host_bytes,
        "host_memory_bytes": host_bytes(est),
    }


def _fit_training(
    ev: Evaluator, choice: GpuChoice, tw: TrainWorkload, headroom_fraction: float, solve: bool = True
) -> FitResult:
    """Training: the training estimate per GPU (data-parallel over `count` GPUs; ZeRO/FSDP as given)."""
    try:
        from ..training import estimate_training
    except ImportError as exc:  # pragma: no cover - training estimator not in this build
        raise BadInput("train: training estimates are not available in this build", field="train") from exc
    tw = replace(tw, gpus=max(tw.gpus, choice.count), device=device_of(choice.gpu))

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
    from ..serving import training_settings

    entry = ev.rm.entry
    repo = entry.hf_repo if entry is not None and entry.hf_repo else ev.rm.source
    serving = {"training": training_settings(repo, tw, choice.count), "primary": "training"}
    rank = RankUse(
        0,
        f"data-parallel rank of {tw.gpus}",
        (0, ev.spec.num_layers - 1),
        est.weights_bytes,
        0,
        est.kv_cache_bytes,
        est.activation_bytes,
        0,
        ctx.bytes if ctx else 0,
        worst,
        est.breakdown,
    )
    return FitResult(
        model=ev.spec.name,
        gpu=choice.gpu.id,
        gpu_name=choice.gpu.name,
        gpu_count=choice.count,
        split="dp",
        engine="training",
        workload=tw,
        verdict=verdict,
        per_gpu_bytes=worst,
        usable_bytes_per_gpu=usable,
        headroom_fraction=headroom_fraction,
        headroom_bytes=headroom,
        free_bytes_per_gpu=usable - worst,
        weights_bytes=est.weights_bytes,
        kv_cache_bytes=0,
        ranks=(rank,),
        estimate=est,
        max_context=mx_seq,
        max_batch=mx_batch,
        min_gpus=mn,
        context_limit=context_limit(ev.spec, entry.context_length if entry else None),
        serving=serving,
        reasons=_reasons(verdict, worst, usable, est.weights_bytes, headroom, est, choice),
        assumptions=("training step: the training estimate per GPU", *est.assumptions),
    )
