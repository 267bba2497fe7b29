"""Two pages over the library: "paste your log" (`vram explain`) and "models that fit my GPU" (`vram models
--fits`). Server-rendered forms that work without JavaScript; each has a JSON twin (path + .json) with the same
object the CLI's --json prints. Costs: an explanation runs fits (the `fit` price), a ranking runs the catalog (the
`which` price); bad input costs nothing."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..catalog import all_gpus
from ..errors import BadInput, VramError
from ..logs import MAX_LOG_CHARS
from . import api
from .api import ApiError, services, subject
from .pages import _form, render
from .quota import OPERATION_COSTS

MAX_WEB_LOG_CHARS = 200_000  # a pasted log; longer ones are for the CLI
ENGINES = ("llama.cpp", "ollama", "vllm", "transformers")
USES = ("", "chat", "code", "vision", "embedding")


def _charge(request: Request, kind: str) -> int:
    svc, sub = services(request), subject(request)
    cost = OPERATION_COSTS[kind]
    state = svc.quota.state(sub)
    if state.remaining < cost:
        request.state.quota = state
        raise api.over_allowance(state, cost, sub.signed_in)
    ok, state = svc.quota.charge(sub, cost, kind)
    request.state.quota = state
    if not ok:
        raise api.over_allowance(state, cost, sub.signed_in)
    return cost


def _gpus() -> list[dict[str, Any]]:
    return [{"id": g.id, "name": g.name} for g in sorted(all_gpus(), key=lambda g: (g.vendor, g.memory_bytes))]


def _explain(request: Request, form: dict[str, str]) -> dict[str, Any]:
    from ..diagnosis import explain
    from ..units import parse_tokens

    log = form.get("log", "")
    if len(log) > min(MAX_WEB_LOG_CHARS, MAX_LOG_CHARS):
        raise BadInput(
            f"log: {len(log):,} characters; paste at most {MAX_WEB_LOG_CHARS:,} (the CLI reads more)", field="log"
        )
    options: dict[str, Any] = {}
    if form.get("context", "").strip():
        options["context"] = parse_tokens(form["context"].strip(), field="context")
    e = explain(log, model=form.get("model", "").strip() or None, gpu=form.get("gpu", "").strip() or None, **options)
    if e.kind is not None:  # an unrecognised paste costs nothing
        _charge(request, "fit")
    return e.to_dict()


def explain_page(request: Request) -> Response:
    return render(
        request,
        "explain.html",
        {
            "form": {"log": "", "model": "", "gpu": "", "context": ""},
            "gpus": _gpus(),
            "result": None,
            "error": None,
            "cost": OPERATION_COSTS["fit"],
        },
    )


async def explain_post(request: Request) -> Response:
    raw = await _form(request)
    form = {k: str(raw.get(k) or "") for k in ("log", "model", "gpu", "context")}
    status, result, error = 200, None, None
    try:
        result = await run_in_threadpool(_explain, request, form)
    except VramError as exc:
        status, error = 422, str(exc)
    except ApiError as exc:
        status, error = exc.status_code, str(exc.body["error"])
    return render(
        request,
        "explain.html",
        {"form": form, "gpus": _gpus(), "result": result, "error": error, "cost": OPERATION_COSTS["fit"]},
        status=status,
    )


async def explain_json(request: Request) -> Response:
    """POST /explain.json {log, model?, gpu?, context?} -> the `vram explain --json` object."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(422, "body: not valid JSON", field="body") from exc
    if not isinstance(body, dict) or not isinstance(body.get("log"), str):
        raise ApiError(422, "log: give the log text as a string", field="log")
    form = {k: str(body.get(k) or "") for k in ("log", "model", "gpu", "context")}
    try:
        return JSONResponse(await run_in_threadpool(_explain, request, form))
    except VramError as exc:
        raise ApiError(422, str(exc), field=exc.field or "log") from exc


def _fits(request: Request, q: dict[str, str]) -> dict[str, Any]:
    from ..hardware import models_for
    from ..schemas import schema_id
    from ..units import parse_tokens

    engine = q.get("engine") or "llama.cpp"
    if engine not in ENGINES:
        raise BadInput(f"engine: unknown engine {engine!r} (use {', '.join(ENGINES)})", field="engine")
    context = parse_tokens(q.get("context") or "8k", field="context")
    use = q.get("use") or None
    found = models_for(q["gpu"], engine=engine, context=context, use=use)
    _charge(request, "which")
    return {
        "schema": schema_id("models"),
        "gpu": q["gpu"],
        "engine": engine,
        "context": context,
        "use": use,
        "models": [m.to_dict() for m in found],
    }


def _fits_query(request: Request) -> dict[str, str]:
    return {k: str(request.query_params.get(k) or "")[:100] for k in ("gpu", "engine", "context", "use")}


async def fits_page(request: Request) -> Response:
    """/fits?gpu=rtx-4060-ti-16gb&engine=llama.cpp&context=8k — the ranking for a GPU (a form without ?gpu)."""
    q = _fits_query(request)
    status, result, error = 200, None, None
    if q["gpu"]:
        try:
            result = await run_in_threadpool(_fits, request, q)
        except VramError as exc:
            status, error = 422, str(exc)
        except ApiError as exc:
            status, error = exc.status_code, str(exc.body["error"])
    return render(
        request,
        "fits.html",
        {
            "form": {**q, "engine": q["engine"] or "llama.cpp", "context": q["context"] or "8k"},
            "gpus": _gpus(),
            "engines": ENGINES,
            "uses": USES,
            "result": result,
            "error": error,
            "cost": OPERATION_COSTS["which"],
        },
        status=status,
    )


async def fits_json(request: Request) -> Response:
    q = _fits_query(request)
    if not q["gpu"]:
        raise ApiError(422, "gpu: give ?gpu=SPEC (e.g. rtx-4060-ti-16gb)", field="gpu")
    try:
        return JSONResponse(await run_in_threadpool(_fits, request, q))
    except VramError as exc:
        raise ApiError(422, str(exc), field=exc.field or "gpu") from exc
