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

from dataclasses import replace
from typing import Any

from ..catalog import GpuEntry
from ..components import Component
from ..devices import backend_for, device_of
from ..errors import BadInput
from ..inference import estimate
from ..request import Workload
from ..result import Estimate
from .evaluator import Evaluator
from .results import FitResult, RankUse
from .solvers import _largest_true, _verdict, context_limit, quant_candidates

GIB = 1024**3
_RANK = {"fits": 0, "tight": 1, "no": 2}


def _run(ev: Evaluator, gpus: list[GpuEntry], wl: Workload, split: tuple[float, ...] | None) -> Estimate:
    devices = tuple(device_of(g) for g in gpus)
    w = replace(wl, devices=devices).with_options(backend=backend_for(list(gpus), wl.llama.backend), tensor_split=split)
    return estimate(ev.rm, w)


def device_uses(est: Estimate, gpus: list[GpuEntry]) -> list[dict[str, Any]]:
    """Each GPU's bytes in `est` (a llama.cpp estimate over `gpus`), against its usable memory."""
    lc = est.extra["llama_cpp"]
    ctx = est.component("cuda_context")
    ctx_each = (ctx.bytes // len(gpus)) if ctx else 0
    out = []
    for d, (du, g) in enumerate(zip(lc["devices"], gpus, strict=True)):
        blocks = [i for i, x in enumerate(lc["layer_devices"]) if x == d]
        total = du["weights_gpu_bytes"] + du["kv_gpu_bytes"] + du["compute_gpu_bytes"] + ctx_each
        usable = int(g.usable_memory_bytes)
        out.append(
            {
                "device": d,
                "gpu": g.id,
                "gpu_name": g.name,
                "blocks": [blocks[0], blocks[-1]] if blocks else [],
                "n_blocks": len(blocks),
                "output_layer": d == len(gpus) - 1 and bool(lc["output_on_gpu"]),
                "weights_bytes": du["weights_gpu_bytes"],
                "kv_cache_bytes": du["kv_gpu_bytes"],
                "compute_bytes": du["compute_gpu_bytes"],
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
        est = _run(ev, gpus, wl, split)
        how = "the --tensor-split given"
    else:
        split, how = memory_split, "llama.cpp's default: in proportion to each GPU's memory"
        est = _run(ev, gpus, wl, split)
        hint = tuple(est.extra["llama_cpp"]["tensor_split"])
        if not _all_fit(est, gpus) and hint and hint != split:
            alt = _run(ev, gpus, wl, hint)
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
    lc = est.extra["llama_cpp"]
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
        weights_bytes=int(lc["weights_total_bytes"]),
        kv_cache_bytes=int(lc["kv_total_bytes"]),
        ranks=ranks,
        estimate=est,
        reasons=reasons,
        assumptions=assumptions,
        gpu_entry=gpus[0],
        host_memory=host_memory_check(est, ram_setup_),
        device_split=device_split,
    )
    if solve:
        cap = max(1, context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None) - wl.new_tokens)
        result = replace(
            result,
            context_limit=context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None),
            max_context=_largest_true(lambda c: _all_fit(_run(ev, gpus, replace(wl, context=c), split), gpus), 1, cap),
            max_batch=_largest_true(lambda n: _all_fit(_run(ev, gpus, replace(wl, batch=n), split), gpus), 1, 256),
            recommended_quant=_best_quant(ev, gpus, wl, split, headroom_fraction),
            serving=serving(ev, result, split),
        )
    return result


def _best_quant(
    ev: Evaluator, gpus: list[GpuEntry], wl: Workload, split: tuple[float, ...], headroom_fraction: float
) -> str | None:
    """solvers.best_quant on these GPUs: the first llama.cpp format (best first) every GPU holds with headroom, else
    the first that fits at all."""
    tight = None
    for q in quant_candidates("llama.cpp"):
        qwl = replace(wl, quant=None if q == "bfloat16" else q, dtype="bfloat16" if q == "bfloat16" else wl.dtype)
        uses = device_uses(_run(ev, gpus, qwl, split), gpus)
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
    quant = (wl.quant or "").upper() if wl.quant else ("F16" if wl.dtype == "float16" else "BF16")
    gguf = f"{name}-{quant}.gguf"
    cache = llama_cpp_cache_types(wl)
    ngl = ev.spec.num_layers + 1
    parts = ["llama-server", "-m", gguf, f"-ngl {ngl}", f"-c {tokens * wl.batch}"]
    if wl.batch > 1:
        parts.append(f"-np {wl.batch}")
    parts += [
        "-fa on" if wl.llama.flash_attn else "-fa off",
        f"--cache-type-k {cache[0]}",
        f"--cache-type-v {cache[1]}",
    ]
    parts += ["--split-mode layer", f"--tensor-split {_split_text(split)}"]
    env = ["OLLAMA_FLASH_ATTENTION=1"] + ([f"OLLAMA_KV_CACHE_TYPE={cache[0]}"] if cache[0] != "f16" else [])
    return {
        "llama_cpp": {
            "command": " ".join(parts),
            "n_gpu_layers": ngl,
            "ctx_size": tokens * wl.batch,
            "parallel": wl.batch,
            "cache_type_k": cache[0],
            "cache_type_v": cache[1],
            "tensor_split": list(split),
            "label": "llama.cpp",
            "notes": [
                *notes,
                f"{gguf}: a GGUF conversion of {repo}; GPU 0 is the first GPU listed (CUDA_VISIBLE_DEVICES order)",
            ],
        },
        "ollama": {
            "env": env,
            "command": " ".join([*env, "ollama serve"]),
            "modelfile": [f"FROM ./{gguf}", f"PARAMETER num_ctx {tokens}", f"PARAMETER num_gpu {ngl}"],
            "num_ctx": tokens,
            "num_gpu": ngl,
            "label": "Ollama",
            "notes": [
                "Ollama spreads the layers over the GPUs itself, by their free memory; it has no tensor-split setting"
            ],
        },
        "vllm": {
            "command": "",
            "label": "vLLM",
            "notes": ["vLLM's tensor / pipeline parallel ranks need identical GPUs: not for a mixed set"],
        },
        "primary": "llama_cpp",
    }
