"""What the page shows for a result: verdict, stacked bar per GPU, memory-vs-context chart (inline SVG drawn here,
no script needed), serving command, Markdown and CSV. Built from stored JSON, so shared pages look the same."""

from __future__ import annotations

import csv
import io
import itertools
import math
from typing import Any

from ..units import GIB

BAR_W = 600
CHART_W, CHART_H = 480, 270
PAD_L, PAD_R, PAD_T, PAD_B = 44, 12, 18, 44
COLORS = ("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7")


def _g(n: float) -> str:
    return f"{n / GIB:,.2f}"


def _workload_view(shown: dict[str, Any], est: dict[str, Any]) -> dict[str, Any]:
    """What was asked, as the page shows it: an inference workload's fields, or a training step's sequence (as
    its context) and micro-batch."""
    for d in (shown, est):
        if isinstance(d.get("workload"), dict):
            return dict(d["workload"])
        if isinstance(d.get("train"), dict):
            t = d["train"]
            return {"context": t.get("seq"), "batch": t.get("batch"), "dtype": t.get("precision"), "quant": None}
    return {}


def check_result(
    est: dict[str, Any],
    fit: dict[str, Any] | None,
    gpu: dict[str, Any] | None,
    gpu_count: int,
    headroom: float,
    curve: list[tuple[int, int]],
) -> dict[str, Any]:
    return {
        "estimate": est,
        "fit": fit,
        "gpu": gpu,
        "gpu_count": gpu_count,
        "headroom_fraction": headroom,
        "curve": [list(p) for p in curve],
        "vram_version": est.get("vram_version"),
    }


LABELS = {"fits": ("ok", "Fits"), "tight": ("tight", "Tight"), "no": ("no", "Does not fit")}


def verdict(fit: dict[str, Any]) -> dict[str, str] | None:
    """`vram fit`'s verdict and reasons, labelled for the page (the page decides nothing itself)."""
    if fit.get("verdict") not in LABELS:
        return None
    cls, label = LABELS[str(fit["verdict"])]
    reasons = fit.get("reasons") or []
    text = (
        "; ".join(str(r) for r in reasons)
        if reasons
        else f"needs {_g(int(fit.get('per_gpu_bytes', 0)))} GiB per GPU of "
        f"{_g(int(fit.get('usable_bytes_per_gpu', 0)))} GiB"
    )
    return {"cls": cls, "label": label, "text": text}


def _bar(components: list[tuple[str, int, str]], usable: int, mark: int) -> dict[str, Any]:
    """Stacked components of one GPU against its usable memory; `mark` = weights + required headroom."""
    total = sum(b for _, b, _ in components)
    scale_max = max(total, usable, 1)
    x = 0.0
    segs = []
    for i, (name, b, why) in enumerate(components):
        w = BAR_W * b / scale_max
        segs.append(
            {
                "name": name,
                "bytes": b,
                "gib": _g(b),
                "x": round(x, 2),
                "w": round(max(w, 0), 2),
                "cls": COLORS[i % len(COLORS)],
                "why": why,
            }
        )
        x += w
    return {
        "segments": segs,
        "width": BAR_W,
        "total_gib": _g(total),
        "cap_x": round(BAR_W * usable / scale_max, 2) if usable else None,
        "usable_gib": _g(usable) if usable else None,
        "mark_x": round(BAR_W * mark / scale_max, 2) if usable and mark else None,
        "mark_gib": _g(mark),
    }


def _fmt_ctx(c: float) -> str:
    c = int(c)
    if c >= 1024 and c % 1024 == 0:
        return f"{c // 1024}k"
    if c >= 1024:
        return f"{c / 1024:.1f}k"
    return str(c)


def chart(
    curve: list[list[int]] | list[tuple[int, int]], capacity: int | None, per_gpu: bool, max_context: int | None = None
) -> dict[str, Any] | None:
    """Memory against context: a polyline and the GPU's usable memory as a horizontal line; where they cross is
    the longest context that fits (labelled with `vram fit`'s max_context when there is one)."""
    pts = [(int(c), int(b)) for c, b in curve if int(c) > 0]
    if len(pts) < 2:
        return None
    x0, x1 = math.log2(pts[0][0]), math.log2(pts[-1][0])
    ymax = max(max(b for _, b in pts), capacity or 0) * 1.1
    iw, ih = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B

    def sx(c: float) -> float:
        return round(PAD_L + iw * (math.log2(c) - x0) / max(x1 - x0, 1e-9), 1)

    def sy(b: float) -> float:
        return round(PAD_T + ih * (1 - b / ymax), 1)

    poly = " ".join(f"{sx(c)},{sy(b)}" for c, b in pts)
    xticks: list[dict[str, Any]] = []
    for i, (c, _) in enumerate(pts):  # labels at least 34 px apart; the last (the model's limit) always shown
        x = sx(c)
        if i == len(pts) - 1:
            while xticks and x - xticks[-1]["x"] < 34:
                xticks.pop()
        elif xticks and x - xticks[-1]["x"] < 34:
            continue
        xticks.append({"x": x, "label": _fmt_ctx(c)})
    step = max(1, int(ymax / GIB / 5))
    nice = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10**4, 10**5) if s >= step)
    yticks = [{"y": sy(v * GIB), "label": f"{v:g}"} for v in range(0, int(ymax / GIB) + 1, nice)]
    cross = None
    if capacity:
        for (c0, b0), (c1, b1) in itertools.pairwise(pts):
            if b0 <= capacity < b1:
                t = (capacity - b0) / (b1 - b0)
                cc = 2 ** (math.log2(c0) + t * (math.log2(c1) - math.log2(c0)))
                label_ctx = max_context if max_context else int(cc)
                cross = {
                    "x": sx(cc),
                    "y": sy(capacity),
                    "label": f"max ≈ {_fmt_ctx(label_ctx)} tokens",
                    "context": label_ctx,
                }
                break
    return {
        "w": CHART_W,
        "h": CHART_H,
        "poly": poly,
        "points": [{"x": sx(c), "y": sy(b), "ctx": _fmt_ctx(c), "gib": _g(b)} for c, b in pts],
        "xticks": xticks,
        "yticks": yticks,
        "x_left": PAD_L,
        "x_right": CHART_W - PAD_R,
        "y_top": PAD_T,
        "y_bottom": CHART_H - PAD_B,
        "cap_y": sy(capacity) if capacity else None,
        "cross": cross,
        "per_gpu": per_gpu,
        "all_fit": bool(capacity) and pts[-1][1] <= (capacity or 0),
        "none_fit": bool(capacity) and pts[0][1] > (capacity or 0),
    }


def serving_commands(fit: dict[str, Any] | None) -> list[dict[str, Any]]:
    """[{engine, label, command, notes}] from `vram fit`'s serving settings (the library's, per family and engine),
    the workload's own engine first. Nothing without a GPU: commands are sized for one."""
    serving = fit.get("serving") if fit else None
    if not isinstance(serving, dict):
        return []
    primary = str(serving.get("primary") or "")
    out: list[dict[str, Any]] = []
    for name, spec in serving.items():
        if not isinstance(spec, dict):
            continue
        text = spec.get("command") or spec.get("code")
        if spec.get("modelfile") and isinstance(spec["modelfile"], list):
            text = f"{text}\n# Modelfile:\n" + "\n".join(str(x) for x in spec["modelfile"])
        if text:
            out.append(
                {
                    "engine": str(name),
                    "label": str(spec.get("label") or name),
                    "command": str(text),
                    "notes": [str(n) for n in spec.get("notes") or []],
                }
            )
    out.sort(key=lambda c: c["engine"] != primary)
    return out


RUNTIMES = {"diffusion": "diffusers", "speech": "transformers (Whisper)", "embedding": "sentence-transformers"}
KIND_LABELS = {
    "llm": "text model",
    "diffusion": "image model",
    "speech": "speech model",
    "vlm": "vision-language model",
    "embedding": "embedding model",
}


def _gb_text(n: int) -> str:
    return f"{n / GIB:,.2f} GiB"


def answer_sentence(view: dict[str, Any]) -> str:
    """The result in one sentence a person can act on."""
    v = view.get("verdict")
    model = view.get("model", "")
    if not v:
        return f"{model} needs {view['total_gib']} GiB in all ({view['engine']}); pick a GPU to see whether it fits."
    fit = view.get("fit") or {}
    where = view.get("gpu_label") or ""
    wl = view.get("workload") or {}
    ctx = "" if view.get("context_free") else f" at {int(wl.get('context', 0)):,} tokens of context"
    if view.get("training"):
        ctx = f" (training, sequence {int(wl.get('context', 0)):,})"
    free = int(fit.get("free_bytes_per_gpu") or 0)
    limit = fit.get("context_limit")
    asked = int(wl.get("context", 0)) + int(wl.get("new_tokens", 0))
    way = view.get("way_forward") or []
    best = next((w for w in way if w.get("fits")), None)
    tail = f" Cheapest change that fits: {best['change']}." if best else ""
    if limit and asked > int(limit) and not view.get("training"):
        longest = fit.get("max_context")
        head = f"Not at {int(wl.get('context', 0)):,} tokens: {model} reads at most {int(limit):,} (prompt + new)"
        if longest:
            return f"{head}; up to {int(longest):,} prompt tokens it fits on {where}."
        return f"{head}, and it does not fit on {where} at any context.{tail}"
    if v["cls"] == "ok":
        return f"Yes: {model} fits on {where}{ctx}, with {_gb_text(free)} free per GPU."
    if v["cls"] == "tight":
        return (
            f"Only just: {model} fits on {where}{ctx} with {_gb_text(free)} free per GPU, less headroom than "
            "asked, so long prompts or bursts may run out of memory."
        )
    return f"No: {model} needs {view['per_gpu_gib']} GiB per GPU{ctx}, {_gb_text(-free)} more than {where} has.{tail}"


def _rows(comps: list[tuple[str, int, str]], total: int) -> list[dict[str, str]]:
    return [
        {"name": name, "gib": _g(b), "share": f"{100 * b / total:.1f}%" if total else "", "why": why}
        for name, b, why in comps
    ]


def build_view(kind: str, req: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The template's view of a stored result ('check' from the page, 'estimate' from the API, others raw).

    With a GPU every number is `vram fit`'s, computed once: the verdict and its reasons, the fullest GPU's
    components (the estimate on that GPU, so the engine is sized by it), the per-GPU total, the limits, the speed
    and the serving commands. Without a GPU the numbers are `vram estimate`'s."""
    if kind == "check":
        est, fit, gpu = result.get("estimate") or {}, result.get("fit"), result.get("gpu")
        n = int(result.get("gpu_count") or 1)
        headroom = float(result.get("headroom_fraction", 0.2))
        curve = result.get("curve") or []
    elif kind == "estimate":
        est, fit, gpu, n, headroom, curve = result, None, None, 1, 0.2, []
    else:
        return {"kind": kind, "raw": True}
    from ..catalog import find_model
    from ..errors import VramError

    try:
        entry = find_model(str(req.get("model", est.get("model", ""))))
        repo, model_name, model_kind = entry.hf_repo or entry.id, entry.name, entry.kind
    except VramError:
        repo, model_name, model_kind = str(est.get("model", "")), str(est.get("model", "")), "llm"
    shown = est
    if fit and isinstance(fit.get("estimate"), dict):
        shown = fit["estimate"]  # the fullest GPU's estimate, on that GPU (vLLM sized by its memory)
    # the numbers are the library's: the fullest GPU's breakdown from `vram fit`, else the estimate's own
    source = (
        fit["breakdown"]
        if fit and isinstance(fit.get("breakdown"), list) and fit["breakdown"]
        else est.get("breakdown", [])
    )
    comps = [(str(c["name"]), int(c["bytes"]), str(c.get("explanation", ""))) for c in source]
    per_gpu = (
        int(fit["per_gpu_bytes"]) if fit and isinstance(fit.get("per_gpu_bytes"), int) else sum(b for _, b, _ in comps)
    )
    usable = int(gpu["usable_memory_bytes"]) if gpu else 0
    if fit and isinstance(fit.get("usable_bytes_per_gpu"), int):
        usable = int(fit["usable_bytes_per_gpu"])
    weights_per_gpu = next((b for name, b, _ in comps if name == "weights"), 0)
    headroom_bytes = int(fit["headroom_bytes"]) if fit and isinstance(fit.get("headroom_bytes"), int) else 0
    v = verdict(fit) if fit else None
    total = per_gpu if fit else int(est.get("total_bytes", 0))
    if fit:
        rows = _rows(comps, total)
    else:
        rows = _rows(
            [(str(c["name"]), int(c["bytes"]), str(c.get("explanation", ""))) for c in est.get("breakdown", [])], total
        )
    gpu_label = f"{n}× {gpu['name']}" if gpu else None
    weights_all = (
        int(fit["weights_bytes"])
        if fit and isinstance(fit.get("weights_bytes"), int)
        else int(est.get("weights_bytes", 0))
    )
    kv_all = (
        int(fit["kv_cache_bytes"])
        if fit and isinstance(fit.get("kv_cache_bytes"), int)
        else int(est.get("kv_cache_bytes", 0))
    )
    context_free = model_kind in ("diffusion", "speech")
    assumptions = [str(a) for a in shown.get("assumptions", [])]
    if fit:
        assumptions += [str(a) for a in fit.get("assumptions", []) if str(a) not in assumptions]
    speed = fit.get("speed") if fit and isinstance(fit.get("speed"), dict) else None
    view: dict[str, Any] = {
        "kind": kind,
        "raw": False,
        "model": model_name,
        "model_id": est.get("model"),
        "repo": repo,
        "model_kind": model_kind,
        "kind_label": KIND_LABELS.get(model_kind, model_kind),
        "context_free": context_free,
        "params": est.get("params"),
        "engine": RUNTIMES.get(model_kind) or shown.get("engine", est.get("engine")),
        "workload": _workload_view(shown, est),
        "total_gib": _g(total),
        "peak_gib": _g(int(shown.get("peak_allocated_bytes", 0))),
        "weights_gib": _g(weights_all),
        "kv_gib": _g(kv_all),
        "show_kv": kv_all > 0,
        "per_gpu_gib": _g(per_gpu),
        "free_gib": _g(int(fit["free_bytes_per_gpu"])) if fit else None,
        "usable_gib": _g(usable) if usable else None,
        "gpu": gpu,
        "gpu_count": n,
        "gpu_label": gpu_label,
        "verdict": v,
        "headroom": headroom,
        "rows": rows,
        "assumptions": assumptions,
        "speed": speed,
        # the engine build the speed assumes (an assumed fact, said next to the number; `Speed.engine_build`)
        "speed_build": (speed or {}).get("engine_build"),
        "bar": _bar(comps, usable, weights_per_gpu + headroom_bytes if usable else 0) if comps else None,
        "split_note": "the fullest GPU, as `vram fit` splits the model" if fit and n > 1 else "",
        "chart": None
        if context_free
        else chart(curve, usable or None, bool(gpu) and fit is not None, fit.get("max_context") if fit else None),
        "commands": serving_commands(fit),
        "fit": fit,
        "training": bool(req.get("train")),
        "version": result.get("vram_version") or est.get("vram_version"),
        "way_forward": result.get("way_forward") or [],
    }
    view["command"] = view["commands"][0]["command"] if view["commands"] else ""
    view["calc_query"] = calculator_query(req)
    if fit:
        view["limits"] = {
            k: fit.get(k) for k in ("max_context", "context_limit", "max_batch", "min_gpus", "recommended_quant")
        }
    view["answer"] = answer_sentence(view)
    view["markdown"] = markdown(view)
    return view


def calculator_query(req: dict[str, Any]) -> str:
    """The calculator's form prefilled with a stored request (/?model=...&gpu=...)."""
    from urllib.parse import urlencode

    keys = (
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
        "width",
        "height",
        "images",
        "steps",
        "beams",
    )
    params = {k: str(req[k]) for k in keys if req.get(k) not in (None, "")}
    if req.get("offload_text_encoders"):
        params["offload_text_encoders"] = "1"
    if req.get("audio_s"):
        params["audio_minutes"] = f"{float(req['audio_s']) / 60:g}"
    if req.get("question"):
        params["question"] = str(req["question"])
    if req.get("headroom_fraction") is not None:
        params["headroom"] = f"{float(req['headroom_fraction']) * 100:g}"
    given = req.get("options")
    opts: dict[str, Any] = given if isinstance(given, dict) else {}
    release = next(
        (opts[k] for k in ("engine_version", "llama_build", "ollama_version", "transformers_version") if opts.get(k)),
        None,
    )
    if release:  # the form's "Engine release"
        params["release"] = str(release)
    train = req.get("train")
    if isinstance(train, dict):
        params["mode"] = "train"
        params.update(
            {
                k: str(train[k])
                for k in ("method", "precision", "optimizer", "seq", "lora_rank")
                if train.get(k) not in (None, "")
            }
        )
        if train.get("grad_checkpointing"):
            params["grad_checkpointing"] = "1"
    return urlencode(params)


def markdown(view: dict[str, Any]) -> str:
    lines = [f"### {view['model']} · {view['engine']}", "", view.get("answer", ""), ""]
    if view.get("verdict"):
        lines += [f"**{view['verdict']['label']}** on {view['gpu_label']}: {view['verdict']['text']}", ""]
    wl = view.get("workload", {})
    lines += [
        f"Context {wl.get('context')} · batch {wl.get('batch')} · {wl.get('dtype')}"
        + (f" · {wl.get('quant')}" if wl.get("quant") else ""),
        "",
        "| component | GiB | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r['name']} | {r['gib']} | {r['share']} |" for r in view["rows"]]
    lines += [f"| **total{' per GPU' if view.get('fit') else ''}** | **{view['total_gib']}** | |", ""]
    if view["command"]:
        lines += ["```", view["command"], "```", ""]
    lines += [f"_vram {view.get('version') or ''}_"]
    return "\n".join(lines)


def to_csv(kind: str, result: dict[str, Any], req: dict[str, Any] | None = None) -> str:
    """The result as one tidy CSV table: every row names the model, GPU, count, engine, context, batch and verdict,
    then a component of the fullest GPU (with a GPU) or of the estimate; the last row is the total."""
    buf = io.StringIO()
    w = csv.writer(buf)
    est = result.get("estimate") if kind == "check" else result
    fit = result.get("fit") if kind == "check" else None
    view = build_view(kind, req or {}, result) if kind in ("check", "estimate") else {}
    wl = view.get("workload") or {}
    gpu = view.get("gpu") or {}
    head = [
        view.get("model_id") or (req or {}).get("model", ""),
        gpu.get("id", "") if gpu else "",
        view.get("gpu_count", "") if gpu else "",
        view.get("engine") or "",
        wl.get("context", ""),
        wl.get("batch", ""),
        fit.get("verdict", "") if isinstance(fit, dict) else "",
    ]
    w.writerow(
        [
            "model",
            "gpu",
            "gpu_count",
            "engine",
            "context",
            "batch",
            "verdict",
            "component",
            "bytes",
            "GiB",
            "explanation",
        ]
    )
    comps = fit.get("breakdown") if isinstance(fit, dict) else None
    if not comps and isinstance(est, dict):
        comps = est.get("breakdown", [])
    for c in comps or []:
        w.writerow([*head, c["name"], c["bytes"], _g(int(c["bytes"])), c.get("explanation", "")])
    if isinstance(fit, dict) and isinstance(fit.get("per_gpu_bytes"), int):
        w.writerow([*head, "total", fit["per_gpu_bytes"], _g(int(fit["per_gpu_bytes"])), "on the fullest GPU"])
    elif isinstance(est, dict):
        w.writerow([*head, "total", est.get("total_bytes", ""), _g(int(est.get("total_bytes", 0))), "device total"])
    return buf.getvalue()
