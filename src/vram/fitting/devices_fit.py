"""`fit` for llama.cpp on several GPUs of different kinds (`rtx-4090+rtx-3090`): one estimate with every device,
checked device by device.

* **The model** is the llama.cpp estimator's own multi-device layout (`--split-mode layer`): blocks in contiguous
  ranges, in proportion to `--tensor-split` (the output layer counted with the last range), token_embd on the CPU,
  each GPU with its own KV cells for its blocks, its own compute buffer and its own CUDA/HIP context; no NCCL.
* **The check** runs per device: each GPU's weights + KV + compute buffer + context against that GPU's usable
  memory; the verdict is the worst device's (the fits / tight / no rule of `vram.fitting` applied to each GPU with
  its own weights), and `per_gpu_bytes` / `usable_bytes_per_gpu` are that binding device's.
* **The split** tried first is llama.cpp's default (proportional to each GPU's memory; llama.cpp reads free memory
  at load time, the catalog's usable memory stands in for it), then, when that does not fit, the split that leaves
  every GPU the same share free (the estimate's `tensor_split` hint). The command carries the split that was
  checked, exactly as evaluated.
* **Speed**: a token passes the GPUs one after the other, so the decode step is the sum of each GPU's bytes read
  at its own bandwidth (vram.llama_offload.decode_speed_devices).
"""

from __future__ import annotations

from typing import Any

from ..catalog import GpuEntry
from ..components import Component
from ..devices import backend_for, device_of
from ..errors import BadInput
from ..inference import estimate
from ..records import replace
from ..request import Workload
from ..result import Estimate
from .evaluator import Evaluator
from .results import FitResult, RankUse
from .solvers import _largest_true, _verdict, context_limit, quant_candidates

GIB = 1024**3
_RANK = {"fits": 0, "tight": 1, "no": 2}


def estimate_on_devices(ev: Evaluator, gpus: list[GpuEntry], wl: Workload, split: tuple[float, ...] | None) -> Estimate:
    """The llama.cpp estimate of `wl` over these GPUs (a '+' list), at this tensor split (None: llama.cpp's own)."""
    devices = tuple(device_of(g) for g in gpus)
    w = replace(wl, devices=devices).with_options(backend=backend_for(list(gpus), wl.llama.backend), tensor_split=split)
    return estimate(ev.rm, w)


def device_uses(est: Estimate, gpus: list[GpuEntry]) -> list[dict[str, Any]]:
    """Each GPU's bytes in `est` (a llama.cpp estimate over `gpus`), against its usable memory."""
    lc = est.llama_cpp
    ctx = est.component("cuda_context")
    ctx_each = (ctx.bytes // len(gpus)) if ctx else 0
    out = []
    for d, (du, g) in enumerate(zip(lc.devices, gpus, strict=True)):
        blocks = [i for i, x in enumerate(lc.layer_devices) if x == d]
        total = du.weights_gpu_bytes + du.kv_gpu_bytes + du.compute_gpu_bytes + ctx_each
        usable = int(g.usable_memory_bytes)
        out.append(
            {
                "device": d,
                "gpu": g.id,
                "gpu_name": g.name,
                "blocks": [blocks[0], blocks[-1]] if blocks else [],
                "n_blocks": len(blocks),
                "output_layer": d == len(gpus) - 1 and lc.output_on_gpu,
                "weights_bytes": du.weights_gpu_bytes,
                "kv_cache_bytes": du.kv_gpu_bytes,
                "compute_bytes": du.compute_gpu_bytes,
                "context_bytes": ctx_each,
                "total_bytes": total,
                "usable_bytes": usable,
                "free_bytes": usable - total,
                "fits": total <= usable,
            }
        )
    return out


def _all_fit(est: Estimate, gpus: list[GpuEntry]) -> bool:
    return all(u["fits"] for u in device_uses(est, gpus))


def _split_text(split: tuple[float, ...]) -> str:
    return ",".join(f"{x:g}" for x in split)


def fit_llama_devices(
    ev: Evaluator,
    gpus: list[GpuEntry],
    wl: Workload,
    *,
    headroom_fraction: float,
    ram: Any = None,
    solve: bool = True,
) -> FitResult:
    """The verdict for a llama.cpp workload on the GPUs listed (in order, GPU 0 first)."""
    from ..llama_offload import decode_speed_devices, host_memory_check, ram_setup

    if wl.engine != "llama.cpp":  # pragma: no cover - fit() checks this first
        raise BadInput("gpu: only llama.cpp splits one model over different GPUs", field="gpu")
    if len(gpus) < 2:
        raise BadInput("gpu: a device list needs at least two GPUs", field="gpu")
    if wl.llama.tensor_split is not None and len(wl.llama.tensor_split) != len(gpus):
        raise BadInput(
            f"tensor_split: {len(wl.llama.tensor_split)} proportions for {len(gpus)} GPUs", field="tensor_split"
        )
    memory_split = tuple(round(g.usable_memory_bytes / GIB, 2) for g in gpus)
    if wl.llama.tensor_split is not None:
        split = tuple(wl.llama.tensor_split)
        est = estimate_on_devices(ev, gpus, wl, split)
        how = "the --tensor-split given"
    else:
        split, how = memory_split, "llama.cpp's default: in proportion to each GPU's memory"
        est = estimate_on_devices(ev, gpus, wl, split)
        hint = est.llama_cpp.tensor_split
        if not _all_fit(est, gpus) and hint and hint != split:
            alt = estimate_on_devices(ev, gpus, wl, hint)
            if _all_fit(alt, gpus):
                split, est, how = hint, alt, "blocks per GPU that leave each the same share of its memory free"
    uses = device_uses(est, gpus)
    verdicts = []
    for u in uses:
        head = int(headroom_fraction * u["weights_bytes"])
        verdicts.append(_verdict(u["total_bytes"], u["usable_bytes"], u["weights_bytes"], head))
    worst_i = max(
        range(len(uses)), key=lambda i: (_RANK[verdicts[i]], -uses[i]["free_bytes"] / uses[i]["usable_bytes"])
    )
    verdict = verdicts[worst_i]
    b = uses[worst_i]
    headroom = int(headroom_fraction * b["weights_bytes"])
    lc = est.llama_cpp
    reasons = tuple(
        f"GPU {u['device']} ({u['gpu_name']}): {u['total_bytes'] / GIB:,.2f} of {u['usable_bytes'] / GIB:,.2f} GiB"
        + (f", {u['free_bytes'] / GIB:,.2f} GiB free" if u["fits"] else f": {-u['free_bytes'] / GIB:,.2f} GiB short")
        + f" ({u['n_blocks']} blocks"
        + (" + output layer)" if u["output_layer"] else ")")
        for u in uses
    )
    ranks = tuple(
        RankUse(
            rank=u["device"],
            role=f"GPU {u['device']}: {u['gpu_name']}, {u['n_blocks']} blocks"
            + (f" ({u['blocks'][0]}-{u['blocks'][1]})" if u["blocks"] else "")
            + (" + output layer" if u["output_layer"] else ""),
            layers=tuple(u["blocks"]),
            weights_bytes=u["weights_bytes"],
            weights_replicated_bytes=0,
            kv_cache_bytes=u["kv_cache_bytes"],
            activation_bytes=u["compute_bytes"],
            comm_bytes=0,
            cuda_context_bytes=u["context_bytes"],
            total_bytes=u["total_bytes"],
            breakdown=(
                Component(
                    "weights",
                    u["weights_bytes"],
                    "this GPU's blocks" + (" and the output layer" if u["output_layer"] else ""),
                ),
                Component("kv_cache", u["kv_cache_bytes"], "the KV cells of this GPU's attention layers"),
                Component("compute_buffer", u["compute_bytes"], "this GPU's ggml graph reserve"),
                *(
                    [Component("cuda_context", u["context_bytes"], "CUDA/HIP context on this GPU (assumed)")]
                    if u["context_bytes"]
                    else []
                ),
            ),
        )
        for u in uses
    )
    ram_setup_ = ram or ram_setup()
    ewl = est.workload
    assert isinstance(ewl, Workload)  # the llama.cpp workload with its devices, as estimated
    speed = decode_speed_devices(ev.rm, ewl, est, gpus, ram_setup_)
    offload, host_est = None, est
    if verdict == "no" and wl.llama.n_gpu_layers is None and not wl.llama.n_cpu_moe and not wl.llama.cpu_moe:
        offload, off_est = _offload_plan(ev, gpus, wl, split, ram_setup_)
        host_est = off_est or est
    device_split = {
        "split_mode": "layer",
        "tensor_split": list(split),
        "tensor_split_flag": f"--split-mode layer --tensor-split {_split_text(split)}",
        "why": how,
        "devices": uses,
        **speed,
    }
    assumptions = (
        "llama.cpp --split-mode layer over "
        + " + ".join(g.name for g in gpus)
        + ": one estimate with every device, checked GPU by GPU against its usable memory; split "
        + f"{_split_text(split)} ({how})",
        f"headroom: {headroom_fraction:g} × each GPU's weights; the verdict is the worst GPU's",
        *est.assumptions,
    )
    name = "+".join(g.id for g in gpus)
    result = FitResult(
        model=ev.spec.name,
        gpu=name,
        gpu_name=" + ".join(g.name for g in gpus),
        gpu_count=len(gpus),
        split="pp",
        engine=wl.engine,
        workload=wl,
        verdict=verdict,
        per_gpu_bytes=b["total_bytes"],
        usable_bytes_per_gpu=b["usable_bytes"],
        headroom_fraction=headroom_fraction,
        headroom_bytes=headroom,
        free_bytes_per_gpu=b["free_bytes"],
        weights_bytes=lc.weights_total_bytes,
        kv_cache_bytes=lc.kv_total_bytes,
        ranks=ranks,
        estimate=est,
        reasons=reasons,
        assumptions=assumptions,
        gpu_entry=gpus[0],
        host_memory=host_memory_check(host_est, ram_setup_),
        device_split=device_split,
        offload=offload,
    )
    if solve:
        cap = max(1, context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None) - wl.new_tokens)
        result = replace(
            result,
            context_limit=context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None),
            max_context=_largest_true(
                lambda c: _all_fit(estimate_on_devices(ev, gpus, replace(wl, context=c), split), gpus), 1, cap
            ),
            max_batch=_largest_true(
                lambda n: _all_fit(estimate_on_devices(ev, gpus, replace(wl, batch=n), split), gpus), 1, 256
            ),
            recommended_quant=_best_quant(ev, gpus, wl, split, headroom_fraction),
            serving=serving(ev, result, split),
        )
    return result


def _offload_plan(
    ev: Evaluator, gpus: list[GpuEntry], wl: Workload, split: tuple[float, ...], ram: Any
) -> tuple[dict[str, Any] | None, Estimate | None]:
    """What to keep in host memory when the GPUs listed do not hold everything, at the split checked: for a MoE
    model the smallest `--n-cpu-moe N` with which every GPU fits, else the most layers (`-ngl`) every GPU holds;
    each GPU's bytes, the host part and the decode speed (GPUs one after the other, the host part at RAM bandwidth)."""
    from ..llama_offload import decode_speed_devices, host_bytes

    n_layers = ev.spec.num_layers

    def run(**opts: Any) -> tuple[Estimate, tuple[float, ...]]:
        # the split checked, else the one that leaves each GPU the same share free: --n-cpu-moe empties the first
        # blocks, which sit on GPU 0, so the blocks must move towards it
        w = wl.with_options(**opts)
        first = estimate_on_devices(ev, gpus, w, split)
        hint = first.llama_cpp.tensor_split
        if _all_fit(first, gpus) or not hint or hint == split:
            return first, split
        alt = estimate_on_devices(ev, gpus, w, hint)
        return (alt, hint) if _all_fit(alt, gpus) else (first, split)

    def fits(**opts: Any) -> bool:
        return _all_fit(run(**opts)[0], gpus)

    if ev.spec.is_moe and fits(n_cpu_moe=n_layers):
        lo, hi = 0, n_layers  # lo does not fit (the verdict was no), hi fits
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(n_cpu_moe=mid):
                hi = mid
            else:
                lo = mid
        (est, used), kind, value = run(n_cpu_moe=hi), "experts", hi
        flag = f"--n-cpu-moe {hi}" if hi < n_layers else "--cpu-moe"
    else:
        ngl = _largest_true(lambda n: fits(n_gpu_layers=n), 1, n_layers)
        if ngl is None:
            return None, None
        (est, used), kind, value, flag = run(n_gpu_layers=ngl), "layers", ngl, f"-ngl {ngl}"
    ewl = est.workload
    assert isinstance(ewl, Workload)
    speed = decode_speed_devices(ev.rm, ewl, est, gpus, ram)
    lc = est.llama_cpp
    host = host_bytes(est)
    plan: dict[str, Any] = {
        "kind": kind,
        "fits": True,
        "flag": flag,
        "tensor_split": list(used),
        "layers_total": n_layers,
        "devices": device_uses(est, gpus),
        "host_bytes": host,
        "offloaded_bytes": lc.weights_host_bytes,
        "ram": ram.to_dict(),
        "host_fits": ram.size_bytes is None or host <= ram.size_bytes,
        **speed,
    }
    if kind == "experts":
        plan["n_cpu_moe"] = value
    else:
        # -ngl counts the output layer first: N = the output layer and the last N-1 blocks
        plan["n_gpu_layers"] = value
        plan["layers_on_gpu"] = lc.blocks_on_gpu
    return plan, est


def _best_quant(
    ev: Evaluator, gpus: list[GpuEntry], wl: Workload, split: tuple[float, ...], headroom_fraction: float
) -> str | None:
    """solvers.best_quant on these GPUs: the first llama.cpp format (best first) every GPU holds with headroom, else
    the first that fits at all."""
    tight = None
    for q in quant_candidates("llama.cpp"):
        qwl = replace(wl, quant=None if q == "bfloat16" else q, dtype="bfloat16" if q == "bfloat16" else wl.dtype)
        uses = device_uses(estimate_on_devices(ev, gpus, qwl, split), gpus)
        if not all(u["fits"] for u in uses):
            continue
        if all(u["usable_bytes"] - u["weights_bytes"] >= headroom_fraction * u["weights_bytes"] for u in uses):
            return q
        tight = tight or q
    return tight


def serving(ev: Evaluator, result: FitResult, split: tuple[float, ...]) -> dict[str, Any]:
    """llama-server and Ollama for the split checked; vLLM and transformers are not offered (vLLM needs identical
    GPUs for its parallel ranks; the workload is a llama.cpp one)."""
    from ..serving import llama_cpp_cache_types, serving_length

    wl = result.workload
    assert isinstance(wl, Workload)
    entry = ev.rm.entry
    repo = entry.hf_repo if entry and entry.hf_repo else ev.rm.source
    name = entry.id if entry else ev.spec.name
    tokens, notes = serving_length(result)
    from ..engines.llama_cpp import stored_mix

    stored = "MXFP4" if stored_mix(ev.spec, wl) else None  # the checkpoint's own format, kept by the conversion
    quant = (wl.quant or "").upper() if wl.quant else (stored or ("F16" if wl.dtype == "float16" else "BF16"))
    gguf = f"{name}-{quant}.gguf"
    cache = llama_cpp_cache_types(wl)
    off = result.offload or {}
    ngl = int(off.get("n_gpu_layers") or ev.spec.num_layers + 1)
    parts = ["llama-server", "-m", gguf, f"-ngl {ngl}", f"-c {tokens * wl.batch}"]
    if off.get("kind") == "experts":
        parts.append(str(off["flag"]))
    if wl.batch > 1:
        parts.append(f"-np {wl.batch}")
    parts += [
        "-fa on" if wl.llama.flash_attn else "-fa off",
        f"--cache-type-k {cache[0]}",
        f"--cache-type-v {cache[1]}",
    ]
    used = tuple(off.get("tensor_split") or split)
    parts += ["--split-mode layer", f"--tensor-split {_split_text(used)}"]
    env = ["OLLAMA_FLASH_ATTENTION=1"] + ([f"OLLAMA_KV_CACHE_TYPE={cache[0]}"] if cache[0] != "f16" else [])
    return {
        "llama_cpp": {
            "command": " ".join(parts),
            "n_gpu_layers": ngl,
            "ctx_size": tokens * wl.batch,
            "parallel": wl.batch,
            "cache_type_k": cache[0],
            "cache_type_v": cache[1],
            "tensor_split": list(used),
            "label": "llama.cpp",
            "notes": [
                *notes,
                f"{gguf}: a GGUF conversion of {repo}; GPU 0 is the first GPU listed (CUDA_VISIBLE_DEVICES order)",
            ],
        },
        "ollama": {
            "env": env,
            "command": " ".join([*env, "ollama serve"]),
            "modelfile": [f"FROM ./{gguf}", f"PARAMETER num_ctx {tokens}"]
            + ([] if off.get("kind") == "experts" else [f"PARAMETER num_gpu {ngl}"]),
            "num_ctx": tokens,
            "num_gpu": None if off.get("kind") == "experts" else ngl,
            "label": "Ollama",
            "notes": [
                "Ollama spreads the layers over the GPUs itself, by their free memory; it has no tensor-split setting"
            ]
            + (
                [
                    "Ollama has no setting for experts on the CPU: with num_gpu unset, Ollama 0.30+ leaves "
                    "placement to llama-server's automatic fit"
                ]
                if off.get("kind") == "experts"
                else []
            ),
        },
        "vllm": {
            "command": "",
            "label": "vLLM",
            "notes": ["vLLM's tensor / pipeline parallel ranks need identical GPUs: not for a mixed set"],
        },
        "primary": "llama_cpp",
    }
