"""HTML pages (server-rendered, working without JavaScript) and their JSON twins (same data, path + .json)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from .. import __version__
from ..catalog import all_gpus, all_models, find_gpu
from ..dtypes import known_quants
from ..errors import BadInput, VramError
from . import api
from .api import ApiError, services, subject
from .auth import CSRF_FIELD, SESSION_COOKIE, csrf_ok, sign_result
from .labels import form_error, label_of
from .ops import memory_curve, precheck, run_estimate, run_fit_with_advice
from .quota import OPERATION_COSTS, TOKEN_PACKS
from .schemas import CheckBody, EstimateBody, FitBody
from .view import build_view, check_result, to_csv

ENGINES = ("transformers", "vllm", "llama.cpp", "ollama")
DTYPES = ("bfloat16", "float16", "float32")
KV_DTYPES = ("", "bfloat16", "float16", "fp8", "int8", "int4")
COMMON_QUANTS = ("", "fp8", "int8", "awq", "gptq", "nf4", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k")
FORM_DEFAULTS: dict[str, Any] = {
    "model": "llama-3.1-8b",
    "context": "8k",
    "batch": "1",
    "new_tokens": "256",
    "engine": "transformers",
    "dtype": "bfloat16",
    "quant": "",
    "kv_dtype": "",
    "attn": "sdpa",
    "gpu": "rtx-4090",
    "gpu_count": "1",
    "headroom": "20",
    "release": "",
    "mode": "inference",
    "method": "lora",
    "precision": "bf16",
    "optimizer": "adamw",
    "seq": "",
    "grad_checkpointing": "",
    "lora_rank": "16",
    "question": "",
    "width": "1024",
    "height": "1024",
    "images": "1",
    "steps": "28",
    "offload_text_encoders": "",
    "beams": "1",
    "audio_minutes": "",
}
CHECKBOXES = ("grad_checkpointing", "offload_text_encoders")
VENDORS = {"nvidia": "NVIDIA", "amd": "AMD", "apple": "Apple", "intel": "Intel"}


def make_templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(resources.files("vram.web").joinpath("templates")))
    t.env.globals["version"] = __version__
    t.env.filters["tokens"] = lambda n: f"{int(n):,}"
    t.env.filters["component"] = component_label
    t.env.filters["field_label"] = lambda f: label_of(str(f))[0]
    return t


COMPONENT_LABELS = {
    "weights": "Weights",
    "kv_cache": "KV cache",
    "activations": "Activations",
    "cuda_context": "CUDA context",
    "allocator_reserve": "Allocator reserve",
    "cublas_workspace": "cuBLAS workspace",
    "weight_blocks": "Weight blocks (allocator rounding)",
    "retained_prefill_cache": "Earlier forward's cache",
    "nccl_buffers": "NCCL buffers",
    "cuda_graphs": "CUDA graphs",
    "non_torch_memory": "Outside PyTorch",
    "gradients": "Gradients",
    "optimizer_states": "Optimizer states",
    "master_weights": "FP32 master weights",
    "lora_weights": "LoRA weights",
    "compute_buffers": "Compute buffers",
    "output_buffer": "Output buffer",
    "logits": "Logits",
}


def component_label(name: str) -> str:
    """A breakdown component's name as the page shows it (the JSON keeps the library's names)."""
    return COMPONENT_LABELS.get(str(name), str(name).replace("_", " ").capitalize())


def _base(request: Request) -> dict[str, Any]:
    sub = subject(request)
    svc = services(request)
    state = request.state.quota or svc.quota.state(sub)
    request.state.quota = state
    return {
        "request": request,
        "signed_in": sub.signed_in,
        "email": sub.email,
        "csrf": request.state.csrf,
        "quota": state.to_dict(),
        "purchases_enabled": svc.settings.purchases_enabled,
    }


def render(
    request: Request, name: str, data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, {**_base(request), **data}, status_code=status, headers=headers)


def error_page(request: Request, status: int, message: str, headers: Any = None) -> Response:
    try:
        return render(
            request, "error.html", {"status": status, "message": message}, status=status, headers=dict(headers or {})
        )
    except Exception:  # pragma: no cover - never fail while reporting a failure
        return HTMLResponse(f"<h1>{status}</h1>", status_code=status)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def _form(request: Request) -> FormData:
    form = await request.form()
    if not csrf_ok(request.cookies.get("vram_csrf"), str(form.get(CSRF_FIELD) or "")):
        raise ApiError(
            403, "the form expired or came from another site; reload the page and try again", field=CSRF_FIELD
        )
    return form


def gpu_groups() -> list[tuple[str, list[dict[str, Any]]]]:
    """The catalog's GPUs by vendor (NVIDIA, AMD, Apple, Intel), each group by memory then name."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for g in all_gpus():
        groups.setdefault(g.vendor, []).append({"id": g.id, "name": g.name, "memory_gb": g.memory_gb})
    order = sorted(groups, key=lambda v: (list(VENDORS).index(v) if v in VENDORS else 99, v))
    return [
        (VENDORS.get(v, v.upper()), sorted(groups[v], key=lambda g: (float(g["memory_gb"] or 0), g["name"])))
        for v in order
    ]


def _options() -> dict[str, Any]:
    return {
        "models": [{"id": m.id, "name": m.name} for m in all_models()],
        "gpus": [{"id": g.id, "name": g.name, "memory_gb": g.memory_gb} for g in all_gpus()],
        "gpu_groups": gpu_groups(),
        "engines": ENGINES,
        "dtypes": DTYPES,
        "kv_dtypes": KV_DTYPES,
        "quants": COMMON_QUANTS,
        "all_quants": known_quants(),
        "costs": dict(OPERATION_COSTS),
    }


def _local_entry(count: int) -> Any:
    """This machine's GPUs as a catalog-like entry (usable = free memory now), through `vram fit`'s own reader."""
    from ..fitting import parse_gpu_spec

    return parse_gpu_spec(f"{count}xlocal").gpu


def local_option(request: Request) -> dict[str, Any] | None:
    """The picker's "this machine" entry, when served locally to a local client and NVML sees GPUs."""
    if not api.local_allowed(request):
        return None
    try:
        from ..local import local_gpus

        found = local_gpus()
    except Exception:  # no NVML, no driver, no GPU: just no entry
        return None
    if not found:
        return None
    free = min(g.free_bytes for g in found) / 1024**3
    return {"count": len(found), "label": f"This machine: {len(found)} × {found[0].name} ({free:,.1f} GiB free)"}


def _index_data(request: Request, form: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "form": form,
        "options": _options(),
        "local": local_option(request),
        "result": None,
        "error": None,
        "error_field": None,
        "question": form.get("question") or "",
        **extra,
    }


def _prefill(params: Any) -> dict[str, Any]:
    form = dict(FORM_DEFAULTS)
    for k in FORM_DEFAULTS:
        if k in params and len(str(params[k])) <= 200:
            form[k] = str(params[k])
    return form


def index(request: Request) -> Response:
    """The calculator. Query parameters prefill the form (e.g. /?model=llama-3.1-70b&gpu=h100-sxm&gpu_count=2);
    with `question` (from /ask) the page says what it understood of it and what not."""
    form = _prefill(request.query_params)
    understood = None
    if form.get("question"):
        from .question import understand

        understood = understand(form["question"])
    return render(request, "index.html", _index_data(request, form, understood=understood))


def index_json(request: Request) -> dict[str, Any]:
    return {"form": FORM_DEFAULTS, "options": _options(), "costs": api.costs_table()}


def ask(request: Request, q: str = "") -> Response:
    """The free-text box without JavaScript: parse the question and prefill the form."""
    from .question import parse_question

    parsed = parse_question(q[:500])
    params = {k: str(v) for k, v in parsed.items() if k in FORM_DEFAULTS}
    params["question"] = q[:500]
    return RedirectResponse("/?" + urlencode(params), status_code=303)


def _digits(value: str) -> str:
    """32,768 or 32 768 -> 32768 (thousands separators as people type them)."""
    import re

    return re.sub(r"(?<=\d)[,\s_](?=\d{3}\b)", "", value)


def _model_kind(name: str) -> str | None:
    try:
        from ..catalog import find_model

        return find_model(name).kind
    except VramError:
        return None


def body_from_form(form: dict[str, Any]) -> dict[str, Any]:
    """Form fields -> a CheckBody dict (strings are converted and checked by pydantic, naming the field). The image
    and speech inputs are sent only for models of that kind, and a context only for models that read one."""
    body: dict[str, Any] = {}
    kind = _model_kind(str(form.get("model", "")).strip())
    for key in (
        "model",
        "context",
        "batch",
        "new_tokens",
        "engine",
        "dtype",
        "quant",
        "kv_dtype",
        "attn",
        "gpu",
        "gpu_count",
    ):
        value = str(form.get(key, "")).strip()
        if key in ("context", "batch", "new_tokens", "gpu_count"):
            value = _digits(value)
        if value:
            body[key] = value
    if body.get("engine", "transformers") != "transformers":
        body.pop("attn", None)  # the form's attention choice is transformers' own (shown only for it)
    release = str(form.get("release", "")).strip()
    if release:  # the engine's release: a vLLM, Ollama or transformers X.Y, a llama.cpp build (speed, vLLM's memory)
        engine = body.get("engine", "transformers")
        if engine == "vllm":
            body["options"] = {"engine_version": release}
        elif engine in ("llama.cpp", "llamacpp"):
            build = _digits(release.removeprefix("b"))
            body["options"] = {"llama_build": int(build) if build.isdigit() else release}
        elif engine == "ollama":
            body["options"] = {"ollama_version": release}
        elif engine == "transformers":
            body["options"] = {"transformers_version": release}
        else:
            raise BadInput(
                f"release: only vLLM (a release such as 0.20), llama.cpp (a build such as 6500), Ollama (0.33) and "
                f"transformers (4.51) take one; {engine} does not",
                field="release",
            )
    if kind == "diffusion":
        for key in ("width", "height", "images", "steps"):
            if str(form.get(key, "")).strip():
                body[key] = _digits(str(form[key]).strip())
        body["offload_text_encoders"] = bool(form.get("offload_text_encoders"))
    if kind == "speech":
        if str(form.get("beams", "")).strip():
            body["beams"] = str(form["beams"]).strip()
        minutes = str(form.get("audio_minutes", "")).strip()
        if minutes:
            try:
                body["audio_s"] = float(minutes) * 60
            except ValueError:
                body["audio_s"] = minutes
    if str(form.get("headroom", "")).strip():
        try:
            body["headroom_fraction"] = float(str(form["headroom"])) / 100
        except ValueError:
            body["headroom_fraction"] = str(form["headroom"])
    if form.get("mode") == "train":
        train: dict[str, Any] = {}
        for key in ("method", "precision", "optimizer", "seq", "lora_rank"):
            value = _digits(str(form.get(key, "")).strip())
            if value:
                train[key] = value
        train["grad_checkpointing"] = bool(form.get("grad_checkpointing"))
        body["train"] = train
    return body


def compute_check(request: Request, body: CheckBody) -> tuple[dict[str, Any], dict[str, Any], str, int]:
    """The page's operation: an estimate (100 tokens), checked against the chosen GPUs with `vram fit` when this
    build has it (250 tokens), plus the memory-vs-context curve for the chart."""
    svc, sub = services(request), subject(request)
    api.check_local(request, body)
    kind = "fit" if body.gpu else "estimate"
    cost = OPERATION_COSTS[kind]
    precheck(body)
    state = svc.quota.state(sub)
    if state.remaining < cost:
        request.state.quota = state
        raise api.over_allowance(state, cost, sub.signed_in)
    fields = body.model_dump(exclude={"gpu", "gpu_count", "headroom_fraction"}, exclude_unset=True)
    local = (body.gpu or "").strip().lower() == "local"
    gpu = _local_entry(body.gpu_count) if local else find_gpu(body.gpu) if body.gpu else None
    gpu_id = "local" if local else gpu.id if gpu is not None else None
    # the estimate on the chosen GPU: engines that size themselves from the device (vLLM) see this one
    est_body = EstimateBody.model_validate({**fields, **({"gpu": gpu_id} if gpu_id and not local else {})})
    est = run_estimate(est_body)
    fit_d: dict[str, Any] | None = None
    way: list[dict[str, Any]] = []
    if gpu is not None:
        fit_d, way = run_fit_with_advice(
            FitBody.model_validate(
                {**fields, "gpu": gpu_id, "gpu_count": body.gpu_count, "headroom_fraction": body.headroom_fraction}
            ),
            svc.evaluators,
        )
    curve = memory_curve(
        est_body, gpu_id if gpu is not None else None, body.gpu_count, body.headroom_fraction, svc.evaluators
    )
    ok, state = svc.quota.charge(sub, cost, kind)
    request.state.quota = state
    if not ok:
        raise api.over_allowance(state, cost, sub.signed_in)
    result = check_result(est, fit_d, gpu.summary() if gpu else None, body.gpu_count, body.headroom_fraction, curve)
    if way:
        result["way_forward"] = [{**w, "query": _changed_query(body, w.get("fields") or {})} for w in way]
    req = body.model_dump(mode="json")
    return req, result, sign_result(svc.secret, "check", req, result), cost


def _changed_query(body: CheckBody, fields: dict[str, str]) -> str:
    """The calculator's query for the same check with `fields` changed (a way-forward link)."""
    from urllib.parse import parse_qsl

    from .view import calculator_query

    params = dict(parse_qsl(calculator_query(body.model_dump(mode="json"))))
    params.update(fields)
    return urlencode(params)


def _result_context(kind: str, req: dict[str, Any], result: dict[str, Any], signature: str | None) -> dict[str, Any]:
    return {
        "view": build_view(kind, req, result),
        "payload": {
            "kind": kind,
            "request": json.dumps(req, separators=(",", ":")),
            "result": json.dumps(result, separators=(",", ":")),
            "signature": signature or "",
        },
    }


async def index_post(request: Request) -> Response:
    """The calculator's form post: works without JavaScript."""
    raw = await _form(request)
    form = {**FORM_DEFAULTS, **{k: str(v) for k, v in raw.items() if k in FORM_DEFAULTS}}
    for box in CHECKBOXES:
        if box not in raw:
            form[box] = ""
    try:
        body = CheckBody.model_validate(body_from_form(form))
        req, result, sig, cost = await run_in_threadpool(compute_check, request, body)
    except (ValidationError, VramError) as exc:
        message, input_id = form_error(exc)
        return render(
            request, "index.html", _index_data(request, form, error=message, error_field=input_id), status=422
        )
    except ApiError as exc:
        return render(
            request,
            "index.html",
            _index_data(request, form, error=exc.body["error"], over=True),
            status=exc.status_code,
            headers=dict(exc.headers or {}),
        )
    data = _index_data(request, form, cost=cost, **_result_context("check", req, result, sig))
    return render(request, "index.html", data)


def _payload_from_form(raw: FormData) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    try:
        kind = str(raw.get("kind") or "check")
        req = json.loads(str(raw.get("request") or "{}"))
        result = json.loads(str(raw.get("result") or "{}"))
    except json.JSONDecodeError as exc:
        raise ApiError(422, "result: not valid JSON", field="result") from exc
    if (
        kind not in ("estimate", "fit", "which", "plan", "check")
        or not isinstance(req, dict)
        or not isinstance(result, dict)
    ):
        raise ApiError(422, "kind: unknown result kind", field="kind")
    return kind, req, result, str(raw.get("signature") or "")


async def export(request: Request) -> Response:
    """Download a result as JSON or CSV, or as Markdown (no charge: it reformats what the page already has)."""
    raw = await _form(request)
    kind, req, result, _sig = _payload_from_form(raw)
    fmt = str(raw.get("format") or "json")
    name = "vram-" + "".join(ch for ch in str(req.get("model", "result")) if ch.isalnum() or ch in "-._")[:60]
    if fmt == "csv":
        return Response(
            to_csv(kind, result, req),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "md":
        md = build_view(kind, req, result).get("markdown", "")
        return Response(
            md,
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.md"'},
        )
    body = json.dumps({"kind": kind, "request": req, "result": result}, indent=1)
    return Response(
        body, media_type="application/json", headers={"Content-Disposition": f'attachment; filename="{name}.json"'}
    )


async def share_post(request: Request) -> Response:
    """Share the result on the page: creates /s/{id} and shows it with its revoke control."""
    raw = await _form(request)
    svc, sub = services(request), subject(request)
    if raw.get("history_id"):
        if sub.user_id is None:
            return RedirectResponse("/signin?next=/history", status_code=303)
        row = await run_in_threadpool(api.history_row, svc, sub.user_id, str(raw["history_id"]))
        kind, req, result = row["kind"], row["request"], row["result"]
    else:
        kind, req0, result0, sig = _payload_from_form(raw)
        req, result = api.verified_payload(svc, kind, req0, result0, sig)
    sid, delete_token = await run_in_threadpool(api.create_share, svc, sub.user_id, kind, req, result, None)
    row = await run_in_threadpool(api.share_row, svc, sid)
    return _share_response(request, row, created=True, delete_token=delete_token, status=201)


def _pending(raw: Any) -> dict[str, str] | None:
    """A signed result carried through sign-in / sign-up so it can be saved once the account exists."""
    if not raw.get("signature") or not raw.get("result"):
        return None
    return {k: str(raw.get(k) or "") for k in ("kind", "request", "result", "signature")}


async def save_post(request: Request) -> Response:
    """Save the result to the history. Signed out: the sign-in page keeps the (signed) result and saves it once
    signed in, so nothing is lost on the way."""
    raw = await _form(request)
    sub = subject(request)
    svc = services(request)
    kind, req0, result0, sig = _payload_from_form(raw)
    req, result = api.verified_payload(svc, kind, req0, result0, sig)
    if sub.user_id is None:
        return render(
            request, "signin.html", {"next": "/history", "error": None, "email_value": "", "pending": _pending(raw)}
        )
    hid = await run_in_threadpool(api.save_history, svc, sub.user_id, kind, req, result, None)
    return RedirectResponse(f"/history/{hid}?saved=1", status_code=303)


def _save_pending(svc: Any, uid: int, raw: Any) -> str | None:
    pending = _pending(raw)
    if pending is None:
        return None
    kind, req0, result0, sig = _payload_from_form(raw)
    req, result = api.verified_payload(svc, kind, req0, result0, sig)
    return api.save_history(svc, uid, kind, req, result, None)


def _share_response(
    request: Request, row: dict[str, Any], *, created: bool = False, delete_token: str | None = None, status: int = 200
) -> Response:
    sub = subject(request)
    is_owner = sub.user_id is not None and row.get("owner_user_id") == sub.user_id
    return render(
        request,
        "share.html",
        {
            "share": {k: v for k, v in row.items() if k != "owner_user_id"},
            "url": api.share_url(request, row["id"]),
            "created": created,
            "delete_token": delete_token,
            "revoke_url": f"{api.share_url(request, row['id'])}/revoke?" + urlencode({"token": delete_token or ""}),
            "is_owner": is_owner,
            **_result_context(row["kind"], row["request"], row["result"], None),
        },
        status=status,
    )


def share_page(sid: str, request: Request) -> Response:
    """A shared result: read-only, no sign-in needed."""
    row = api.share_row(services(request), sid)
    return _share_response(request, row)


def share_json(sid: str, request: Request) -> dict[str, Any]:
    return api.shares_get(sid, request)


async def share_revoke(sid: str, request: Request) -> Response:
    raw = await _form(request)
    sub = subject(request)
    await run_in_threadpool(
        api.revoke_share, services(request), sid, sub.user_id, str(raw.get("delete_token") or "") or None
    )
    return render(
        request,
        "message.html",
        {"title": "Share revoked", "message": "The link no longer works. Nothing of it is kept."},
    )


def pricing_data() -> dict[str, Any]:
    return {
        "packs": [
            {"id": k, "tokens": t, "price_usd": f"{c / 100:.2f}", "per_estimate": t // 100}
            for k, (t, c) in TOKEN_PACKS.items()
        ],
        "costs": api.costs_table(),
    }


def pricing(request: Request) -> Response:
    return render(request, "pricing.html", pricing_data())


def pricing_json(request: Request) -> dict[str, Any]:
    return {**pricing_data(), "purchases_enabled": services(request).settings.purchases_enabled}


async def buy(request: Request) -> Response:
    raw = await _form(request)
    if not subject(request).signed_in:
        return RedirectResponse("/signin?next=/pricing", status_code=303)
    url = await run_in_threadpool(api.checkout_url, request, str(raw.get("pack") or ""))
    return RedirectResponse(url, status_code=303)


def costs(request: Request) -> Response:
    return render(request, "costs.html", {"costs": api.costs_table()})


def costs_json(request: Request) -> dict[str, Any]:
    return api.costs_table()


def signin(request: Request, next: str = "/") -> Response:
    return render(request, "signin.html", {"next": _safe_next(next), "error": None, "email_value": "", "pending": None})


def signup(request: Request, next: str = "/") -> Response:
    return render(request, "signup.html", {"next": _safe_next(next), "error": None, "email_value": "", "pending": None})


def share_revoke_page(sid: str, request: Request, token: str = "") -> Response:
    """The revoke link given to whoever shared without an account: a confirmation form (revoking is a POST)."""
    row = api.share_row(services(request), sid)
    return render(
        request,
        "revoke.html",
        {"sid": row["id"], "url": api.share_url(request, row["id"]), "token": token[:100], "error": None},
    )


def _signed_in_redirect(request: Request, uid: int, target: str) -> Response:
    svc = services(request)
    token = svc.sessions.create(uid, svc.settings.clock())
    resp = RedirectResponse(target, status_code=303)
    api.set_session_cookie(resp, svc, token, request)
    return resp


async def signin_post(request: Request) -> Response:
    raw = await _form(request)
    email, password = str(raw.get("email") or ""), str(raw.get("password") or "")
    target = _safe_next(str(raw.get("next") or "/"))
    try:
        uid = await run_in_threadpool(api.login_user, services(request), subject(request).key, email, password)
    except ApiError as exc:
        return render(
            request,
            "signin.html",
            {"next": target, "error": exc.body["error"], "email_value": email, "pending": _pending(raw)},
            status=exc.status_code,
        )
    hid = await run_in_threadpool(_save_pending, services(request), uid, raw)
    return await run_in_threadpool(_signed_in_redirect, request, uid, f"/history/{hid}?saved=1" if hid else target)


async def signup_post(request: Request) -> Response:
    raw = await _form(request)
    email, password = str(raw.get("email") or ""), str(raw.get("password") or "")
    target = _safe_next(str(raw.get("next") or "/"))
    try:
        uid = await run_in_threadpool(api.signup_user, services(request), email, password, subject(request).key)
    except ApiError as exc:
        return render(
            request,
            "signup.html",
            {"next": target, "error": exc.body["error"], "email_value": email, "pending": _pending(raw)},
            status=exc.status_code,
        )
    hid = await run_in_threadpool(_save_pending, services(request), uid, raw)
    return await run_in_threadpool(_signed_in_redirect, request, uid, f"/history/{hid}?saved=1" if hid else target)


async def signout_post(request: Request) -> Response:
    await _form(request)
    token = request.state.session_token
    if token:
        await run_in_threadpool(services(request).sessions.delete, token)
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


def _need_user(request: Request, here: str) -> int | Response:
    sub = subject(request)
    if sub.user_id is None:
        return RedirectResponse(f"/signin?next={here}", status_code=303)
    return sub.user_id


def history(request: Request) -> Response:
    uid = _need_user(request, "/history")
    if isinstance(uid, Response):
        return uid
    return render(request, "history.html", {"items": api.history_rows(services(request), uid)})


def history_json(request: Request) -> dict[str, Any]:
    return api.history_list(request)


def history_item(hid: str, request: Request) -> Response:
    uid = _need_user(request, "/history")
    if isinstance(uid, Response):
        return uid
    row = api.history_row(services(request), uid, hid)
    return render(
        request,
        "history_item.html",
        {
            "item": row,
            "saved": request.query_params.get("saved") == "1",
            **_result_context(row["kind"], row["request"], row["result"], None),
        },
    )


async def history_item_delete(hid: str, request: Request) -> Response:
    await _form(request)
    uid = _need_user(request, "/history")
    if isinstance(uid, Response):
        return uid
    svc = services(request)

    def _delete() -> None:
        from sqlalchemy import delete

        from .storage import HistoryRow

        with svc.db.tx() as conn:
            conn.execute(delete(HistoryRow).where(HistoryRow.id == hid, HistoryRow.user_id == uid))

    await run_in_threadpool(_delete)
    return RedirectResponse("/history", status_code=303)


def account(request: Request) -> Response:
    uid = _need_user(request, "/account")
    if isinstance(uid, Response):
        return uid
    return render(request, "account.html", {"account": api.account(request)})


def account_json(request: Request) -> dict[str, Any]:
    return api.account(request)


async def account_delete(request: Request) -> Response:
    raw = await _form(request)
    sub = subject(request)
    if sub.user_id is None:
        return RedirectResponse("/signin?next=/account", status_code=303)
    if str(raw.get("confirm") or "").strip().lower() != "delete":
        return render(
            request,
            "account.html",
            {"account": api.account_data(request, sub), "error": "type delete to confirm"},
            status=422,
        )
    await run_in_threadpool(api.delete_user_data, services(request), sub.user_id)

    # the page that says so is a signed-out page: no History / Account links, the anonymous allowance
    svc = services(request)
    request.state.subject = svc.anonymous(api.client_address(request, svc.settings))
    request.state.quota = None
    request.state.session_token = None
    resp = render(
        request,
        "message.html",
        {"title": "Account deleted", "message": "Your account, history, shares and ledger are gone."},
    )
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


def healthz() -> JSONResponse:
    return JSONResponse({"ok": True, "version": __version__})
