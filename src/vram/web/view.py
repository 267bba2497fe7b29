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


def check_result(est: dict[str, Any], fit: dict[str, Any] | None, gpu: dict[str, Any] | None, gpu_count: int,
                 headroom: float, curve: list[tuple[int, int]]) -> dict[str, Any]:
    return {"estimate": est, "fit": fit, "gpu": gpu, "gpu_count": gpu_count, "headroom_fraction": headroom,
            "curve": [list(p) for p in curve], "vram_version": est.get("vram_version")}


def _per_gpu_components(est: dict[str, Any], n: int) -> list[tuple[str, int, str]]:
    """Components on one of n GPUs: an even tensor-parallel split, except the CUDA context (one per GPU)."""
    out = []
    for c in est.get("breakdown", []):
        b = int(c["bytes"]) if c["name"] == "cuda_context" or n == 1 else math.ceil(int(c["bytes"]) / n)
        out.append((str(c["name"]), b, str(c.get("explanation", ""))))
    return out


LABELS = {"fits": ("ok", "Fits"), "tight": ("tight", "Tight"), "no": ("no", "Does not fit")}


def verdict(per_gpu: int, usable: int, weights_bytes: int, headroom_bytes: int,
            fit: dict[str, Any] | None) -> dict[str, str]:
    """As `vram fit` decides: no: more than the usable memory; fits: it fits and the memory above the weights is at
    least `headroom_bytes`; tight: it fits with less.
    With a `vram fit` result its verdict and reasons are used as they are."""
    if fit is not None and fit.get("verdict") in LABELS:
        cls, label = LABELS[str(fit["verdict"])]
        reasons = fit.get("reasons") or []
        text = "; ".join(str(r) for r in reasons) if reasons else \
            f"needs {_g(per_gpu)} GiB per GPU of {_g(usable)} GiB usable"
        return {"cls": cls, "label": label, "text": text}
    if per_gpu > usable:
        key, text = "no", f"needs {_g(per_gpu)} GiB per GPU, more than the {_g(usable)} GiB usable"
    elif usable - weights_bytes >= headroom_bytes:
        key, text = "fits", f"needs {_g(per_gpu)} GiB per GPU of {_g(usable)} GiB usable, with headroom to spare"
    else:
        key, text = "tight", (f"needs {_g(per_gpu)} GiB per GPU of {_g(usable)} GiB: less than {_g(headroom_bytes)} "
                              "GiB above the weights for peaks (long prompts or batch spikes may run out of memory)")
    cls, label = LABELS[key]
    return {"cls": cls, "label": label, "text": text}


def _bar(components: list[tuple[str, int, str]], usable: int, mark: int) -> dict[str, Any]:
    """Stacked components of one GPU against its usable memory; `mark` = weights + required headroom."""
    total = sum(b for _, b, _ in components)
    scale_max = max(total, usable, 1)
    x = 0.0
    segs = []
    for i, (name, b, why) in enumerate(components):
        w = BAR_W * b / scale_max
        segs.append({"name": name, "bytes": b, "gib": _g(b), "x": round(x, 2), "w": round(max(w, 0), 2),
                     "cls": COLORS[i % len(COLORS)], "why": why})
        x += w
    return {"segments": segs, "width": BAR_W, "total_gib": _g(total),
            "cap_x": round(BAR_W * usable / scale_max, 2) if usable else None,
            "usable_gib": _g(usable) if usable else None,
            "mark_x": round(BAR_W * mark / scale_max, 2) if usable and mark else None, "mark_gib": _g(mark)}


def _fmt_ctx(c: float) -> str:
    c = int(c)
    if c >= 1024 and c % 1024 == 0:
        return f"{c // 1024}k"
    if c >= 1024:
        return f"{c / 1024:.1f}k"
    return str(c)


def chart(curve: list[list[int]] | list[tuple[int, int]], capacity: int | None, per_gpu: bool,
          max_context: int | None = None) -> dict[str, Any] | None:
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
    xticks = [{"x": sx(c), "label": _fmt_ctx(c)} for c, _ in pts]
    step = max(1, int(ymax / GIB / 5))
    nice = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10**4, 10**5)
                if s >= step)
    yticks = [{"y": sy(v * GIB), "label": f"{v:g}"} for v in range(0, int(ymax / GIB) + 1, nice)]
    cross = None
    if capacity:
        for (c0, b0), (c1, b1) in itertools.pairwise(pts):
            if b0 <= capacity < b1:
                t = (capacity - b0) / (b1 - b0)
                cc = 2 ** (math.log2(c0) + t * (math.log2(c1) - math.log2(c0)))
                label_ctx = max_context if max_context else int(cc)
                cross = {"x": sx(cc), "y": sy(capacity), "label": f"max ≈ {_fmt_ctx(label_ctx)} tokens",
                         "context": label_ctx}
                break
    return {"w": CHART_W, "h": CHART_H, "poly": poly, "points": [{"x": sx(c), "y": sy(b), "ctx": _fmt_ctx(c),
                                                                   "gib": _g(b)} for c, b in pts],
            "xticks": xticks, "yticks": yticks, "x_left": PAD_L, "x_right": CHART_W - PAD_R, "y_top": PAD_T,
            "y_bottom": CHART_H - PAD_B, "cap_y": sy(capacity) if capacity else None,
            "cross": cross, "per_gpu": per_gpu, "all_fit": bool(capacity) and pts[-1][1] <= (capacity or 0),
            "none_fit": bool(capacity) and pts[0][1] > (capacity or 0)}


def serving_commands(req: dict[str, Any], est: dict[str, Any], fit: dict[str, Any] | None, repo: str,
                     n: int) -> list[dict[str, str]]:
    """[{engine, command}], the chosen engine first: `vram fit`'s serving settings when there are any, else a
    plain command built from the workload."""
    engine = "llama.cpp" if req.get("engine") in ("llama.cpp", "llamacpp") else str(req.get("engine") or "")
    out: list[dict[str, str]] = []
    serving = fit.get("serving") if fit else None
    if isinstance(serving, dict) and serving:
        for name, spec in serving.items():
            if not isinstance(spec, dict):
                continue
            text = spec.get("command") or spec.get("code")
            if spec.get("modelfile") and isinstance(spec["modelfile"], list):
                text = f"{text}\n# Modelfile:\n" + "\n".join(str(x) for x in spec["modelfile"])
            if text:
                out.append({"engine": str(name).replace("_", "."), "command": str(text)})
        out.sort(key=lambda c: c["engine"] != engine)
        if out:
            return out
    wl = est.get("workload", {})
    ctx = int(wl.get("context", 4096)) + int(wl.get("new_tokens", 0))
    quant = req.get("quant")
    if req.get("train"):
        return [{"engine": "training", "command": f"# {req['train'].get('method', 'full')} fine-tune of {repo}: "
                 f"sequence {ctx}, micro-batch {req.get('batch', 1)}"}]
    vllm = [f"vllm serve {repo}", f"--max-model-len {ctx}"]
    if n > 1:
        vllm.append(f"--tensor-parallel-size {n}")
    if int(req.get("batch", 1)) > 1:
        vllm.append(f"--max-num-seqs {req['batch']}")
    if req.get("kv_dtype") in ("fp8", "float8"):
        vllm.append("--kv-cache-dtype fp8")
    q = (quant or "Q4_K_M").upper()
    dt = {"bfloat16": "torch.bfloat16", "float16": "torch.float16", "float32": "torch.float32"}.get(
        str(wl.get("dtype")), "'auto'")
    out = [{"engine": "vllm", "command": " ".join(vllm)},
           {"engine": "llama.cpp", "command": f"llama-server -m {repo.split('/')[-1]}-{q}.gguf -c {ctx} -ngl 99"},
           {"engine": "transformers", "command": f"AutoModelForCausalLM.from_pretrained('{repo}', dtype={dt}, "
            "device_map='auto')"}]
    out.sort(key=lambda c: c["engine"] != engine)
    return out


def build_view(kind: str, req: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The template's view of a stored result ('check' from the page, 'estimate' from the API, others raw)."""
    if kind == "check":
        est, fit, gpu = result.get("estimate") or {}, result.get("fit"), result.get("gpu")
        n = int(result.get("gpu_count") or 1)
        headroom = float(result.get("headroom_fraction", 0.2))
        curve = result.get("curve") or []
    elif kind == "estimate":
        est, fit, gpu, n, headroom, curve = result, None, None, 1, 0.2, []
    else:
        return {"kind": kind, "raw": True}
    comps = _per_gpu_components(est, n)
    if fit and isinstance(fit.get("breakdown"), list) and fit["breakdown"]:  # the fullest GPU, as `vram fit` splits
        comps = [(str(c["name"]), int(c["bytes"]), str(c.get("explanation", ""))) for c in fit["breakdown"]]
    per_gpu = sum(b for _, b, _ in comps)
    if fit and isinstance(fit.get("per_gpu_bytes"), int):
        per_gpu = int(fit["per_gpu_bytes"])
    usable = int(gpu["usable_memory_bytes"]) if gpu else 0
    if fit and isinstance(fit.get("usable_bytes_per_gpu"), int):
        usable = int(fit["usable_bytes_per_gpu"])
    weights_per_gpu = next((b for name, b, _ in comps if name == "weights"), 0)
    headroom_bytes = int(fit["headroom_bytes"]) if fit and isinstance(fit.get("headroom_bytes"), int) else \
        int(headroom * weights_per_gpu)
    v = verdict(per_gpu, usable, weights_per_gpu, headroom_bytes, fit) if gpu else None
    from ..catalog import find_model
    from ..errors import VramError

    try:
        entry = find_model(str(req.get("model", est.get("model", ""))))
        repo, model_name = entry.hf_repo or entry.id, entry.name
    except VramError:
        repo, model_name = str(est.get("model", "")), str(est.get("model", ""))
    total = int(est.get("total_bytes", 0))
    rows = [{"name": c["name"], "gib": _g(int(c["bytes"])), "share": f"{100 * int(c['bytes']) / total:.1f}%"
             if total else "", "why": c.get("explanation", "")} for c in est.get("breakdown", [])]
    gpu_label = f"{n}× {gpu['name']}" if gpu else None
    view = {
        "kind": kind, "raw": False, "model": model_name, "model_id": est.get("model"), "repo": repo,
        "params": est.get("params"), "engine": est.get("engine"), "workload": est.get("workload", {}),
        "total_gib": _g(total), "peak_gib": _g(int(est.get("peak_allocated_bytes", 0))),
        "weights_gib": _g(int(est.get("weights_bytes", 0))), "kv_gib": _g(int(est.get("kv_cache_bytes", 0))),
        "per_gpu_gib": _g(per_gpu), "gpu": gpu, "gpu_count": n, "gpu_label": gpu_label, "verdict": v,
        "headroom": headroom, "rows": rows, "assumptions": est.get("assumptions", []),
        "bar": _bar(comps, usable, weights_per_gpu + headroom_bytes if usable else 0) if comps else None,
        "split_note": "the fullest GPU, as `vram fit` splits the model" if fit and n > 1 else
        f"even split over {n}" if n > 1 else "",
        "chart": chart(curve, usable or None, bool(gpu) and fit is not None,
                       fit.get("max_context") if fit else None),
        "commands": serving_commands(req, est, fit, repo, n), "fit": fit,
        "training": bool(req.get("train")), "version": result.get("vram_version") or est.get("vram_version"),
    }
    view["command"] = view["commands"][0]["command"] if view["commands"] else ""
    view["calc_query"] = calculator_query(req)
    if fit:
        view["limits"] = {k: fit.get(k) for k in ("max_context", "max_batch", "min_gpus", "recommended_quant")}
    view["markdown"] = markdown(view)
    return view


def calculator_query(req: dict[str, Any]) -> str:
    """The calculator's form prefilled with a stored request (/?model=...&gpu=...)."""
    from urllib.parse import urlencode

    keys = ("model", "context", "batch", "new_tokens", "engine", "dtype", "quant", "kv_dtype", "attn", "gpu",
            "gpu_count")
    params = {k: str(req[k]) for k in keys if req.get(k) not in (None, "")}
    if req.get("headroom_fraction") is not None:
        params["headroom"] = f"{float(req['headroom_fraction']) * 100:g}"
    train = req.get("train")
    if isinstance(train, dict):
        params["mode"] = "train"
        params.update({k: str(train[k]) for k in ("method", "precision", "optimizer", "seq", "lora_rank")
                       if train.get(k) not in (None, "")})
        if train.get("grad_checkpointing"):
            params["grad_checkpointing"] = "1"
    return urlencode(params)


def markdown(view: dict[str, Any]) -> str:
    lines = [f"### {view['model']} · {view['engine']}", ""]
    if view.get("verdict"):
        lines += [f"**{view['verdict']['label']}** on {view['gpu_label']}: {view['verdict']['text']}", ""]
    wl = view.get("workload", {})
    lines += [f"Context {wl.get('context')} · batch {wl.get('batch')} · {wl.get('dtype')}"
              + (f" · {wl.get('quant')}" if wl.get("quant") else ""), "",
              "| component | GiB | share |", "|---|---:|---:|"]
    lines += [f"| {r['name']} | {r['gib']} | {r['share']} |" for r in view["rows"]]
    lines += [f"| **total** | **{view['total_gib']}** | |", "", f"`{view['command']}`", "",
              f"_vram {view.get('version') or ''}_"]
    return "\n".join(lines)


def to_csv(kind: str, result: dict[str, Any]) -> str:
    est = result.get("estimate") if kind == "check" else result
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["component", "bytes", "GiB", "explanation"])
    if isinstance(est, dict):
        for c in est.get("breakdown", []):
            w.writerow([c["name"], c["bytes"], _g(int(c["bytes"])), c.get("explanation", "")])
        w.writerow(["total", est.get("total_bytes", ""), _g(int(est.get("total_bytes", 0))), "device total"])
    return buf.getvalue()
