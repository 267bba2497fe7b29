"""The operations behind the API and the page: request bodies -> the same library calls the CLI makes.

Models are looked up in the built-in catalog only (never a path on the server's disk, never a download).
"""

from __future__ import annotations

from typing import Any, cast

from ..catalog import find_gpu, find_model
from ..devices import devices_for, split_count
from ..errors import BadInput
from ..fitting import EvaluatorCache, compare, fit, which
from ..fleet import parse_fleet, plan
from ..inference import estimate
from ..request import (
    ENGINE_OPTIONS,
    FAMILY_OPTIONS,
    EngineOptions,
    TrainWorkload,
    Workload,
    option_fields,
    options_from_mapping,
)
from ..training import estimate_training
from ..units import GIB, parse_tokens
from .quota import OPERATION_COSTS, plan_cost
from .schemas import CheckBody, CompareBody, EstimateBody, FitBody, PlanBody, TrainBody, WhichBody, WorkloadBody

KINDS = ("estimate", "fit", "which", "compare", "plan", "check")
BODIES: dict[str, type[Any]] = {
    "estimate": EstimateBody,
    "fit": FitBody,
    "which": WhichBody,
    "compare": CompareBody,
    "plan": PlanBody,
    "check": CheckBody,
}


def catalog_model_id(name: str) -> str:
    return find_model(name).id


def gpu_spec(text: str, count: int = 1) -> str:
    """A GPU spec for `vram fit`: "N x <catalog id>", or "N x local" (this machine's GPUs; the edge only lets that
    through when the tool is served on the machine it answers for, see `local_allowed`)."""
    if "+" in text:  # a list of possibly different GPUs (llama.cpp / Ollama), as `vram fit --gpu a+b` takes it
        if count != 1:
            raise BadInput(
                "gpu_count: a GPU list ('a+b') gives its own counts ('2xa+b'); leave gpu_count at 1", field="gpu_count"
            )
        parts = [p.strip() for p in text.split("+")]
        if any(not p for p in parts):
            raise BadInput(f"gpu: {text!r} has an empty part", field="gpu")
        return "+".join(gpu_spec(p) for p in parts)
    given, text = split_count(text)
    if given is not None:
        count = given
    if not 1 <= count <= 1024:
        raise BadInput(f"gpu: count must be between 1 and 1024, got {count}", field="gpu")
    name = "local" if text.strip().lower() == "local" else find_gpu(text.strip()).id
    return name if count == 1 else f"{count}x{name}"


def uses_local_gpu(body: Any) -> bool:
    specs = [getattr(body, "gpu", None) or "", *(getattr(body, "gpus", None) or [])]
    return any(str(s).strip().lower().split("x")[-1].strip() == "local" for s in specs)


def workload_of(body: WorkloadBody, gpu: str | None = None) -> Workload:
    """The Workload `vram estimate` would build: the engine's options (`options`, and `attn` for transformers),
    the image / speech inputs for models of that kind (an error for others, never ignored) and, for the estimate,
    the GPU the engine sizes itself from."""
    quant = body.quant if body.quant and body.quant.lower() != "none" else None
    engine = "llama.cpp" if body.engine == "llamacpp" else body.engine
    cls = ENGINE_OPTIONS[engine]
    values = dict(body.options or {})
    if body.attn is not None:
        if engine != "transformers":
            raise BadInput(f"attn: an option of transformers; it does not apply to engine {engine}", field="attn")
        values["attn"] = body.attn
    options = options_from_mapping(cls, values)
    kind = find_model(body.model).kind
    fam_cls = FAMILY_OPTIONS.get(kind)
    given = {
        of.name: getattr(body, of.name)
        for c in FAMILY_OPTIONS.values()
        for of in option_fields(c)
        if getattr(body, of.name, None) is not None
    }
    family = None
    if given:
        if fam_cls is None:
            name = next(iter(given))
            raise BadInput(
                f"{name}: only for image, vision or speech models; {body.model} is a {kind} model", field=name
            )
        family = options_from_mapping(fam_cls, given, "family")
    devices: tuple[Any, ...] = ()
    gpu = gpu if gpu is not None else getattr(body, "gpu", None) if isinstance(body, EstimateBody) else None
    if gpu:
        devices, _ = devices_for(gpu, engine)
    return Workload(
        options=cast("EngineOptions", options),
        batch=body.batch,
        context=parse_tokens(body.context, field="context"),
        new_tokens=parse_tokens(body.new_tokens, field="new_tokens"),
        dtype=body.dtype,
        quant=quant,
        kv_dtype=body.kv_dtype or None,
        family=family,
        devices=devices,
    )


def train_workload_of(body: WorkloadBody) -> TrainWorkload:
    """The TrainWorkload `vram estimate --train` would build from the same options."""
    t = body.train or TrainBody.model_validate({})
    values = t.model_dump()
    seq_text = values.pop("seq")
    if seq_text is not None:
        seq = parse_tokens(seq_text, field="train.seq")
    elif "context" in body.model_fields_set:
        seq = parse_tokens(body.context, field="context")
    else:
        seq = 2048
    return TrainWorkload(**values, batch=body.batch, seq=seq, attn=body.attn or "sdpa")


def _estimate_obj(body: WorkloadBody) -> Any:
    model = catalog_model_id(body.model)
    if body.train is not None:
        return estimate_training(model, train_workload_of(body))
    return estimate(model, workload_of(body))


def run_estimate(body: EstimateBody, cache: EvaluatorCache | None = None) -> dict[str, Any]:
    """Exactly `vram estimate --json` for the same options."""
    result: dict[str, Any] = _estimate_obj(body).to_dict()
    return result


def _fit_call(body: FitBody, cache: EvaluatorCache | None = None) -> Any:
    model = catalog_model_id(body.model)
    train = train_workload_of(body) if body.train is not None else None
    return fit(
        model,
        gpu_spec(body.gpu, body.gpu_count),
        workload_of(body),
        headroom_fraction=body.headroom_fraction,
        train=train,
        cache=cache,
    )


def run_fit(body: FitBody, cache: EvaluatorCache | None = None) -> dict[str, Any]:
    result: dict[str, Any] = _fit_call(body, cache).to_dict()
    return result


def run_fit_with_advice(
    body: FitBody, cache: EvaluatorCache | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`vram fit` for the page, and when it does not fit, the cheapest changes that do (vram.advice)."""
    r = _fit_call(body, cache)
    way: list[dict[str, Any]] = []
    if r.verdict == "no":
        from ..advice import ways_to_fit

        train = train_workload_of(body) if body.train is not None else None
        way = [
            c.to_dict()
            for c in ways_to_fit(
                catalog_model_id(body.model),
                gpu_spec(body.gpu, body.gpu_count),
                workload_of(body),
                train=train,
                headroom_fraction=body.headroom_fraction,
                base=r,
            )
        ]
    out: dict[str, Any] = r.to_dict()
    return out, way


def precheck(body: Any) -> None:
    """Names that must resolve before anything is charged (an unknown model is a 422 even with no tokens left)."""
    if isinstance(getattr(body, "model", None), str):
        catalog_model_id(body.model)
    gpu = getattr(body, "gpu", None)
    if isinstance(gpu, str) and gpu.strip() and gpu.strip().lower() != "local":
        gpu_spec(gpu)
    for g in getattr(body, "gpus", None) or []:
        if isinstance(g, str) and g.strip().lower().split("x")[-1].strip() != "local":
            gpu_spec(g)


def run_which(body: WhichBody, cache: EvaluatorCache | None = None) -> dict[str, Any]:
    out = which(
        catalog_model_id(body.model),
        workload_of(body),
        counts=tuple(body.counts),
        headroom_fraction=body.headroom_fraction,
        cache=cache,
    )
    return {"model": catalog_model_id(body.model), "options": [o.to_dict() for o in out]}


def run_compare(body: CompareBody, cache: EvaluatorCache | None = None) -> dict[str, Any]:
    specs = [gpu_spec(g) for g in body.gpus]
    results = compare(
        catalog_model_id(body.model), specs, workload_of(body), headroom_fraction=body.headroom_fraction, cache=cache
    )
    return {"results": [r.to_dict() for r in results]}


def run_plan(body: PlanBody, cache: EvaluatorCache | None = None) -> dict[str, Any]:
    fleet = body.fleet
    for m in fleet.get("models", []) if isinstance(fleet.get("models"), list) else []:
        name = m.get("model") if isinstance(m, dict) else m
        if isinstance(name, str):
            catalog_model_id(name)  # catalog only: never a path on this server
    return _to_jsonable(plan(parse_fleet(fleet)))


def _to_jsonable(out: Any) -> dict[str, Any]:
    if hasattr(out, "to_dict"):
        d: dict[str, Any] = out.to_dict()
        return d
    if isinstance(out, dict):
        return out
    if isinstance(out, list | tuple):
        return {"results": [x.to_dict() if hasattr(x, "to_dict") else x for x in out]}
    raise TypeError(f"cannot serialise {type(out).__name__}")


RUNNERS: dict[str, Any] = {
    "estimate": run_estimate,
    "fit": run_fit,
    "which": run_which,
    "compare": run_compare,
    "plan": run_plan,
}


def cost_of(kind: str, body: Any) -> int:
    if kind == "plan":
        fleet = body.fleet if isinstance(body, PlanBody) else {}
        models = fleet.get("models") or []
        return plan_cost(len(models) if isinstance(models, list) else 1)
    return OPERATION_COSTS[kind]


VERDICT_WORDS = {"fits": "fits", "tight": "tight", "no": "does not fit"}


def title_of(kind: str, request: dict[str, Any], result: dict[str, Any] | None = None) -> str:
    """A history / share title: model, GPU × count, engine, context, mode and the verdict."""
    model = str(request.get("model", ""))[:80]
    ctx = request.get("context", 4096)
    mode = "training" if request.get("train") else "inference"
    fit = (result or {}).get("fit") if kind == "check" else result if kind == "fit" else None
    if kind == "check" and request.get("gpu") and isinstance(fit, dict):
        verdict = VERDICT_WORDS.get(str(fit.get("verdict")), "")
        engine = "training" if request.get("train") else str(request.get("engine", "transformers"))
        return (
            f"{model} on {request.get('gpu_count', 1)}× {request.get('gpu', '')} · {engine} · context {ctx} · {verdict}"
        )[:300]
    if kind == "fit":
        return f"{model} on {request.get('gpu_count', 1)}× {request.get('gpu', '')} · context {ctx} · {mode}"[:300]
    if kind == "plan":
        return "fleet plan"
    return f"{model} · context {ctx} · batch {request.get('batch', 1)} · {mode}"[:300]


def curve_contexts(asked: int, model_context: int | None, points: int = 9) -> list[int]:
    """Log-spaced contexts from 512 to the model's context (or twice the one asked when the model's is unknown),
    including the one asked when the model reads that many; never past the model's limit."""
    top = min(model_context or max(asked * 2, 8192), 1 << 20)
    contexts: list[int] = []
    c = min(512, top)
    while c < top:
        contexts.append(c)
        c *= 2
    contexts = sorted({*contexts, top, *([asked] if asked <= top else [])})
    if len(contexts) > points + 1:
        step = len(contexts) / points
        contexts = sorted(
            {contexts[int(i * step)] for i in range(points)} | {contexts[-1]} | ({asked} if asked <= top else set())
        )
    return contexts


def memory_curve(
    body: WorkloadBody,
    gpu: str | None = None,
    gpu_count: int = 1,
    headroom_fraction: float = 0.2,
    cache: EvaluatorCache | None = None,
) -> list[tuple[int, int]]:
    """The chart's line: (context, bytes) where bytes is the estimate's total, or with a GPU the fullest GPU's
    memory as `vram fit` splits the model (no solvers), so the curve crosses the usable line at the max context."""
    entry = find_model(body.model)
    if entry.kind in ("diffusion", "speech"):
        return []  # their memory does not depend on a prompt length
    asked = parse_tokens(body.context, field="context")
    fit_fn = fit if gpu else None
    out = []
    limit = entry.context_length
    if limit and body.train is None:  # inference: prompt + new tokens stay within the model's context
        limit = max(1, limit - parse_tokens(body.new_tokens, field="new_tokens"))
    for ctx in curve_contexts(asked, limit):
        data = body.model_dump()
        data["context"] = ctx
        if body.train is not None:
            data["train"] = {**(data.get("train") or {}), "seq": ctx}
        b = type(body).model_validate(data)
        try:
            if fit_fn is not None and gpu:
                r = fit_fn(
                    entry.id,
                    gpu_spec(gpu, gpu_count),
                    workload_of(b, gpu=""),
                    headroom_fraction=headroom_fraction,
                    train=train_workload_of(b) if b.train is not None else None,
                    solve=False,
                    with_speed=False,
                    cache=cache,
                )
                out.append((ctx, int(r.per_gpu_bytes)))
            else:
                out.append((ctx, int(_estimate_obj(b).total_bytes)))
        except BadInput:
            continue
    return out


def gib(n: int | float) -> float:
    return n / GIB
