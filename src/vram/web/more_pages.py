"""The tool's other pages, server-rendered like the calculator (and working without JavaScript): which GPUs run a
model (ranked, with price and speed), compare GPUs side by side, plan a fleet from pasted YAML, and the model
catalog (the models that fit a GPU are on /fits). Each operation is priced as on /costs and charged only when it
answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..catalog import all_models
from ..errors import VramError
from ..units import GIB
from . import api
from .api import ApiError, services, subject
from .labels import form_error
from .ops import precheck, run_compare, run_plan, run_which
from .pages import _digits, _form, gpu_groups, render
from .quota import OPERATION_COSTS
from .schemas import CompareBody, PlanBody, WhichBody

KINDS = {"llm": "Text", "vlm": "Vision-language", "diffusion": "Image", "speech": "Speech", "embedding": "Embedding"}
WHICH_DEFAULTS = {"model": "llama-3.1-8b", "context": "8k", "batch": "1", "engine": "vllm", "quant": "", "sort": "cost"}
COMPARE_DEFAULTS = {
    "model": "llama-3.1-70b",
    "context": "8k",
    "batch": "1",
    "engine": "vllm",
    "quant": "",
    "gpus": "h100-sxm, 2x a100-80gb-sxm, 4x rtx-4090, 2x l40s",
}
FLEET_EXAMPLE = """headroom: 0.2
pools:
  - name: h100
    gpu: h100-sxm
    gpus_per_node: 8
    nodes: 1
  - name: rtx4090
    gpu: rtx-4090
    gpus_per_node: 2
    nodes: 2
models:
  - model: llama-3.1-70b
    context: 8k
    concurrency: 16
  - model: llama-3.1-8b
    context: 16k
    concurrency: 32
"""


def _g(n: float) -> str:
    return f"{n / GIB:,.2f}"


def _charged(request: Request, kind: str, body: Any, cost: int, run: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Check the allowance, run, charge (as the API does); bad input costs nothing."""
    svc, sub = services(request), subject(request)
    precheck(body)
    state = svc.quota.state(sub)
    if state.remaining < cost:
        request.state.quota = state
        raise api.over_allowance(state, cost, sub.signed_in)
    result = run(body)
    ok, state = svc.quota.charge(sub, cost, kind)
    request.state.quota = state
    if not ok:
        raise api.over_allowance(state, cost, sub.signed_in)
    return result


async def _answer(
    request: Request,
    template: str,
    form: dict[str, Any],
    kind: str,
    build: Callable[[], Any],
    cost: Callable[[Any], int],
    run: Callable[[Any], dict[str, Any]],
    view: Callable[[dict[str, Any], Any], dict[str, Any]],
) -> Response:
    base = {
        "form": form,
        "gpu_groups": gpu_groups(),
        "cost": None,
        "error": None,
        "error_field": None,
        "price": OPERATION_COSTS.get(kind),
        "costs": api.costs_table(),
    }
    try:
        body = build()
        result = await run_in_threadpool(_charged, request, kind, body, cost(body), run)
    except (ValidationError, VramError) as exc:
        message, input_id = form_error(exc)
        return render(request, template, {**base, "error": message, "error_field": input_id}, status=422)
    except ApiError as exc:
        return render(
            request,
            template,
            {**base, "error": exc.body["error"], "over": True},
            status=exc.status_code,
            headers=dict(exc.headers or {}),
        )
    return render(request, template, {**base, "cost": cost(body), "answer": view(result, body)})


def _workload_fields(form: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("model", "context", "batch", "engine", "quant"):
        value = (
            _digits(str(form.get(key, "")).strip()) if key in ("context", "batch") else str(form.get(key, "")).strip()
        )
        if value:
            out[key] = value
    return out


# --- which GPUs ------------------------------------------------------------------------------------------------


def _which_view(result: dict[str, Any], body: Any) -> dict[str, Any]:
    rows = []
    for o in result.get("options", []):
        rows.append(
            {
                **o,
                "per_gpu_gib": _g(o["per_gpu_bytes"]),
                "usable_gib": _g(o["usable_bytes_per_gpu"]),
                "free_gib": _g(o["free_bytes_per_gpu"]),
                "price": f"${o['price_per_hour_usd'] * o['gpu_count']:,.2f}/h"
                if o.get("price_per_hour_usd")
                else "no public price",
                "tps": f"{o['decode_tokens_per_s']:,.1f}" if o.get("decode_tokens_per_s") is not None else "—",
                "per_m": f"${o['cost_per_million_tokens_usd']:,.2f}"
                if o.get("cost_per_million_tokens_usd") is not None
                else "—",
            }
        )
    best = rows[0] if rows else None
    if best:
        sentence = (
            f"Cheapest that runs it: {best['gpu_count']}× {best['gpu_name']} ({best['price']}, "
            f"{best['tps']} tokens/s); {len(rows)} options in all."
        )
    else:
        sentence = "No catalog GPU runs this with up to 8 GPUs; try a quantization or a shorter context."
    return {"rows": rows, "sentence": sentence, "model": result.get("model")}


def which_page(request: Request) -> Response:
    form = {**WHICH_DEFAULTS, **{k: str(v)[:200] for k, v in request.query_params.items() if k in WHICH_DEFAULTS}}
    return render(
        request,
        "which.html",
        {
            "form": form,
            "gpu_groups": gpu_groups(),
            "cost": None,
            "error": None,
            "error_field": None,
            "price": OPERATION_COSTS["which"],
        },
    )


async def which_post(request: Request) -> Response:
    raw = await _form(request)
    form = {**WHICH_DEFAULTS, **{k: str(v) for k, v in raw.items() if k in WHICH_DEFAULTS}}

    def build() -> WhichBody:
        return WhichBody.model_validate(_workload_fields(form))

    return await _answer(
        request, "which.html", form, "which", build, lambda b: OPERATION_COSTS["which"], run_which, _which_view
    )


# --- compare ---------------------------------------------------------------------------------------------------


def _compare_view(result: dict[str, Any], body: Any) -> dict[str, Any]:
    cols = []
    for r in result.get("results", []):
        sp = r.get("speed") or {}
        cols.append(
            {
                "label": f"{r['gpu_count']}× {r['gpu_name']}",
                "verdict": r["verdict"],
                "per_gpu_gib": _g(r["per_gpu_bytes"]),
                "usable_gib": _g(r["usable_bytes_per_gpu"]),
                "free_gib": _g(r["free_bytes_per_gpu"]),
                "max_context": r.get("max_context"),
                "max_batch": r.get("max_batch"),
                "quant": r.get("recommended_quant"),
                "tps": sp.get("decode_tokens_per_s_per_seq"),
                "ttft": sp.get("ttft_s"),
                "per_m": sp.get("cost_per_million_tokens_usd"),
                "split": r.get("split"),
            }
        )
    fitting = [c for c in cols if c["verdict"] != "no"]
    if fitting:
        best = max(fitting, key=lambda c: c["tps"] or 0)
        sentence = f"{len(fitting)} of {len(cols)} run it; fastest: {best['label']}."
    else:
        sentence = "None of these run it as asked."
    return {"cols": cols, "sentence": sentence}


def compare_page(request: Request) -> Response:
    form = {**COMPARE_DEFAULTS, **{k: str(v)[:300] for k, v in request.query_params.items() if k in COMPARE_DEFAULTS}}
    return render(
        request,
        "compare.html",
        {"form": form, "cost": None, "error": None, "error_field": None, "price": OPERATION_COSTS["compare"]},
    )


async def compare_post(request: Request) -> Response:
    raw = await _form(request)
    form = {**COMPARE_DEFAULTS, **{k: str(v) for k, v in raw.items() if k in COMPARE_DEFAULTS}}

    def build() -> CompareBody:
        specs = [s.strip() for s in str(form.get("gpus", "")).replace("\n", ",").split(",") if s.strip()]
        return CompareBody.model_validate({**_workload_fields(form), "gpus": specs})

    return await _answer(
        request,
        "compare.html",
        form,
        "compare",
        build,
        lambda b: OPERATION_COSTS["compare"],
        run_compare,
        _compare_view,
    )


# --- fleet plan ------------------------------------------------------------------------------------------------


def _plan_view(result: dict[str, Any], body: Any) -> dict[str, Any]:
    rows = [
        {
            **a,
            "per_gpu_gib": _g(a["per_gpu_bytes"]),
            "usable_gib": _g(a["usable_bytes_per_gpu"]),
            "command": ((a.get("serving") or {}).get("vllm") or {}).get("command", ""),
        }
        for a in result.get("assignments", [])
    ]
    n = len(rows)
    un = result.get("unplaced", [])
    sentence = f"{n} model(s) placed" + (f", {len(un)} not placed" if un else "") + "."
    return {"rows": rows, "unplaced": un, "leftover": result.get("leftover", []), "sentence": sentence}


def plan_page(request: Request) -> Response:
    return render(
        request,
        "plan.html",
        {
            "form": {"fleet": FLEET_EXAMPLE},
            "cost": None,
            "error": None,
            "error_field": None,
            "costs": api.costs_table(),
        },
    )


async def plan_post(request: Request) -> Response:
    raw = await _form(request)
    text = str(raw.get("fleet") or "")[:100_000]
    form = {"fleet": text}

    def build() -> PlanBody:
        import yaml

        from ..errors import BadInput

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise BadInput(f"fleet: not valid YAML{where}", field="fleet") from exc
        if not isinstance(data, dict):
            raise BadInput("fleet: expected a mapping with pools: and models:", field="fleet")
        return PlanBody.model_validate({"fleet": data})

    from .ops import cost_of

    return await _answer(
        request,
        "plan.html",
        {**form, "costs": api.costs_table()},
        "plan",
        build,
        lambda b: cost_of("plan", b),
        run_plan,
        _plan_view,
    )


# --- the model catalog, and the models that fit a GPU ----------------------------------------------------------


def _catalog_rows(q: str, kind: str) -> list[dict[str, Any]]:
    from ..catalog import search_models

    models = search_models(q) if q else all_models()
    rows = []
    for m in models:
        if kind and m.kind != kind:
            continue
        params = m.params or 0
        rows.append(
            {
                "id": m.id,
                "name": m.name,
                "kind": KINDS.get(m.kind, m.kind),
                "family": m.family,
                "params": f"{params / 1e9:,.1f}B" if params >= 1e9 else f"{params / 1e6:,.0f}M",
                "params_n": params,
                "context": m.context_length,
                "license": m.license,
                "repo": m.hf_repo,
            }
        )
    rows.sort(key=lambda r: (r["kind"], r["family"], r["params_n"]))
    return rows


def models_page(request: Request) -> Response:
    """The catalog, readable: parameters, context, licence; filter by words or kind; each row opens the check."""
    q = str(request.query_params.get("q", ""))[:100]
    kind = str(request.query_params.get("kind", ""))
    kind = kind if kind in KINDS else ""
    return render(request, "models.html", {"rows": _catalog_rows(q, kind), "q": q, "kind": kind, "kinds": KINDS})
