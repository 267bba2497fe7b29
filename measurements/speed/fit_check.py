"""In-process twin of ../shared/speed/score_speed.py: the same mapping of a case onto `vram fit`, called through the
library (no subprocess per case), for developing the speed model quickly. The shared scorer stays the reference.

    .venv/bin/python measurements/speed/fit_check.py [--cases FILE ...] [--holdout] [--list]

`--holdout` splits the cases by GPU model (every GPU whose name hashes into the last fifth is held out) and prints
the summaries for the two halves apart: coefficients are chosen by looking at the first half only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from vram import speed
from vram.errors import VramError
from vram.fitting import fit
from vram.request import Workload

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / ".." / "shared" / "speed" / "cases.jsonl"


def load(paths: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if line.strip():
                out.append({**json.loads(line), "_file": Path(p).name})
    return out


# GPUs that hash into the held-out fifth but are the only measurements of a coefficient, so they set it and are not
# held out: the RX 7900 XTX (llama.cpp on ROCm, RDNA3).
SETS_A_COEFFICIENT = ("rx-7900-xtx",)


def held_out(c: dict[str, Any]) -> bool:
    if (c.get("vram") or {}).get("gpu") in SETS_A_COEFFICIENT:
        return False
    return int(hashlib.sha256(c["gpu"].encode()).hexdigest(), 16) % 5 == 4


def old_rule(sp: dict[str, Any], v: dict[str, Any], kind: str) -> float | None:
    """The rule vram used before issue 16, from the same bytes and FLOPs: decode = bytes read per step /
    (datasheet bandwidth × 0.7); prefill = FLOPs per token / (dense BF16 TFLOPS × 0.5)."""
    from vram.catalog import find_gpu

    g = find_gpu(v["gpu"])
    n = int(v.get("gpu_count") or 1)
    if kind == "dec":
        return g.bandwidth_gb_per_s * 1e9 * 0.7 / sp["bytes_read_per_step"] if sp["bytes_read_per_step"] else None
    gf = next(
        (
            float(a.split("prefill: ")[1].split(" GFLOPs")[0].replace(",", ""))
            for a in sp["assumptions"]
            if a.startswith("prefill: ") and "GFLOPs per token" in a
        ),
        None,
    )
    if not gf or not g.fp16_tflops:
        return None
    return g.fp16_tflops * 1e12 * 0.5 * (n if n > 1 and v.get("split") != "pp" else 1) / (gf * 1e9)


# --versions: pass each vLLM case's release (`engine_version` "0.15.1 (...)" -> "0.15") as `--engine-version`, each
# llama.cpp case's build as `--llama-build` and each transformers case's release as `--transformers-version`
VERSIONS = False


def release_tuple(c: dict[str, Any]) -> tuple[int, int]:
    """A vLLM case's release as (X, Y) from its `engine_version` ("0.15.1 (docker image ...)"); (0, 0) if none."""
    m = re.match(r"v?(\d+)\.(\d+)", str(c.get("engine_version") or ""))
    return (int(m.group(1)), int(m.group(2))) if c.get("engine") == "vllm" and m else (0, 0)


def release(c: dict[str, Any]) -> str | None:
    """The case's vLLM release under --versions; V0 releases (before 0.8), which vram does not model, go without."""
    v = release_tuple(c)
    return f"{v[0]}.{v[1]}" if VERSIONS and v >= (0, 8) else None


def transformers_release(c: dict[str, Any]) -> str | None:
    """A transformers case's release under --versions ("4.51.3" -> "4.51"), given as --transformers-version."""
    m = re.match(r"v?(\d+)\.(\d+)", str(c.get("engine_version") or ""))
    return f"{m.group(1)}.{m.group(2)}" if VERSIONS and c.get("engine") == "transformers" and m else None


def llama_build(c: dict[str, Any]) -> int | None:
    """The case's llama.cpp build under --versions: "build 4426e298 (2824)" -> 2824, else the mapping's
    `llama_build_at_least` (a scoreboard whose rows give commits only), else None."""
    if not VERSIONS or c.get("engine") != "llama.cpp":
        return None
    m = re.search(r"\((\d{3,5})\)", str(c.get("engine_version") or ""))
    if m:
        return int(m.group(1))
    at_least = (c.get("vram") or {}).get("llama_build_at_least")
    return int(at_least) if at_least else None


def predict(
    v: dict[str, Any],
    context: int,
    new_tokens: int,
    version: str | None = None,
    build: int | None = None,
    hf_version: str | None = None,
) -> dict[str, Any]:
    n = int(v.get("gpu_count") or 1)
    gpu = v["gpu"] if n == 1 else f"{n}x{v['gpu']}"
    b = int(v.get("batch") or 1)
    wl = Workload.from_flat(
        engine=v["engine"],
        batch=b,
        context=max(1, int(context)),
        new_tokens=int(new_tokens),
        quant=v.get("quant"),
        max_num_seqs=b if v["engine"] == "vllm" and b > 1 else None,
        engine_version=version,
        llama_build=build,
        transformers_version=hf_version,
        # a llama.cpp build other than the GPU's default one (e.g. Vulkan on an AMD or NVIDIA card), where the case
        # says so; the shared scorer does not pass it
        backend=v.get("backend") if v["engine"] in ("llama.cpp", "ollama") else None,
    )
    r = fit(v["model"], gpu, wl, split=v.get("split") if n > 1 else None, solve=False)
    assert r.speed is not None
    return r.speed.to_dict()


def score(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for c in cases:
        v = c.get("vram") or {}
        if not v.get("gpu"):
            continue
        m = c.get("measured", {})
        r: dict[str, Any] = {
            "id": c["id"],
            "file": c.get("_file", ""),
            "gpu": v["gpu"],
            "n": v.get("gpu_count") or 1,
            "b": c.get("batch", 1),
            "moe": c.get("model_class") != "dense",
            "held": held_out(c),
            "exact": c.get("measurement_quality", "exact") == "exact" and not c.get("quant_substitute"),
            "engine": c["engine"],
            # the case's GPU joined the catalog after the case was collected (and after the coefficients were set)
            "gpu_added": bool(v.get("catalog_gpu_added")),
            # the engine / backend pair vram prices the case with (`vram.speed.backend`)
            "backend": backend_of(v),
        }
        try:
            if m.get("decode_tps_per_seq") is not None:
                d = predict(
                    v,
                    v.get("decode_context") or 1,
                    v.get("new_tokens") or 0,
                    release(c),
                    llama_build(c),
                    transformers_release(c),
                )
                pred = d["decode_tokens_per_s_per_seq"]
                base = old_rule(d, v, "dec")
                e2e = v.get("end_to_end")
                if e2e:  # the figure is new tokens / the whole call: the prompt's prefill, then the decode
                    first = predict(v, e2e["prompt"], 0, release(c), llama_build(c), transformers_release(c))
                    new = e2e["new_tokens"]
                    pred = new / ((first["ttft_s"] or 0.0) + new / pred)
                    base_pre = old_rule(first, v, "pre")
                    if base is not None and base_pre:
                        base = new / (e2e["prompt"] / base_pre + new / base)
                r["dec"] = (pred - m["decode_tps_per_seq"]) / m["decode_tps_per_seq"]
                r["dec_pred"], r["dec_meas"] = pred, m["decode_tps_per_seq"]
                r["calibrated"] = d.get("calibrated", True)
                # transformers paced by its Python dispatch: its range is the hosts' spread (HOST_BOUND_SPREAD)
                r["host_bound"] = d["decode_bound"] == "host" and v["engine"] in speed.HOST_LAYER_S
                r["dec_old"] = None if base is None else (base - m["decode_tps_per_seq"]) / m["decode_tps_per_seq"]
            if m.get("prefill_tps") is not None and v.get("prefill_context") and not c.get("prefill_excluded_reason"):
                p = predict(v, v["prefill_context"], 0, release(c), llama_build(c))
                if p["prefill_tokens_per_s"] is not None:
                    r["pre"] = (p["prefill_tokens_per_s"] - m["prefill_tps"]) / m["prefill_tps"]
                    r["pre_pred"], r["pre_meas"] = p["prefill_tokens_per_s"], m["prefill_tps"]
                    r["calibrated"] = p.get("calibrated", True)
                base = old_rule(p, v, "pre")
                r["pre_old"] = None if base is None else (base - m["prefill_tps"]) / m["prefill_tps"]
        except VramError as e:
            r["error"] = str(e)
        rows.append(r)
    return rows


def summary(rows: list[dict[str, Any]], key: str, label: str) -> str:
    e = [r[key] for r in rows if r.get(key) is not None and r["exact"]]
    if not e:
        return f"  {label:28s} (none)"
    a = sorted(abs(x) for x in e)
    return (
        f"  {label:28s} n={len(e):3d}  median {statistics.median(a) * 100:5.1f}%  p90 "
        f"{a[int(0.9 * (len(a) - 1))] * 100:5.1f}%  max {a[-1] * 100:5.1f}%  signed median "
        f"{statistics.median(e) * 100:+5.1f}%"
    )


def report(rows: list[dict[str, Any]], title: str) -> None:
    print(f"== {title}")
    print(summary(rows, "dec", "decode"))
    print(summary([r for r in rows if r["moe"]], "dec", "decode MoE"))
    print(summary([r for r in rows if r["b"] > 16], "dec", "decode > 16 sequences"))
    print(summary(rows, "pre", "prefill"))


def backend_of(v: dict[str, Any]) -> str:
    from vram.catalog import find_gpu

    eng = "llama.cpp" if v["engine"] in ("llama.cpp", "ollama") else v["engine"]
    try:
        return speed.backend(find_gpu(v["gpu"]), eng, v.get("backend"))
    except VramError:
        return ""


# a backend's own range needs this many exact figures of a quantity; the others get the global one
MIN_SPREAD_FIGURES = 15


def spread_by_backend(rows: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """`spread` per engine / backend pair with enough figures (`vram.speed.SPEED_SPREAD_BY_BACKEND`)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for be in sorted({r["backend"] for r in rows if r["backend"]}):
        mine = [r for r in rows if r["backend"] == be]
        for key, name in (("dec", "decode"), ("pre", "prefill")):
            if len(_ratios(mine, key)) >= MIN_SPREAD_FIGURES:
                p10, p90, _ = spread(mine, key)
                out.setdefault(be, {})[name] = (p10, p90)
    return out


def _ratios(rows: list[dict[str, Any]], key: str) -> list[float]:
    """Measured / predicted, sorted, over the figures a range is drawn from: exact ones of the backends a measurement
    calibrates (the others get no range), and decode steps the GPU sets (not host-bound ones)."""
    return sorted(
        1 / (1 + r[key])
        for r in rows
        if r.get(key) is not None
        and r["exact"]
        and r.get("calibrated", True)
        and not (key == "dec" and r.get("host_bound"))
    )


def spread(rows: list[dict[str, Any]], key: str) -> tuple[float, float, int]:
    """p10 and p90 of measured / predicted — the range vram shows (`vram.speed.SPEED_SPREAD`) — and how many figures."""
    ratios = _ratios(rows, key)
    return ratios[int(0.1 * (len(ratios) - 1))], ratios[int(0.9 * (len(ratios) - 1))], len(ratios)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="*", default=None)
    ap.add_argument("--holdout", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--spread", action="store_true", help="p10 / p90 of measured / predicted (vram.speed.SPEED_SPREAD)")
    ap.add_argument(
        "--versions",
        action="store_true",
        help="give vLLM cases their release (--engine-version; 0.14 and later: vram.speed.VLLM_ASYNC_FROM) and "
        "llama.cpp cases their build (--llama-build; 6000 and later: vram.speed.LLAMA_CPP_2025_BUILD)",
    )
    args = ap.parse_args()
    global VERSIONS
    VERSIONS = args.versions
    paths = args.cases or [str(SHARED), *sorted(str(p) for p in HERE.glob("*.jsonl"))]
    rows = score(load(paths))
    if args.list:
        for r in rows:
            d = f"{r['dec'] * 100:+6.1f}% ({r['dec_meas']:8.1f})" if "dec" in r else " " * 18
            p = f"{r['pre'] * 100:+6.1f}% ({r['pre_meas']:8.1f})" if "pre" in r else ""
            print(f"{r['id'][:60]:60s} {r['gpu'][:14]:14s} {r['n']} {r['b']:3d} {d}  {p} {r.get('error', '')[:60]}")
    report(rows, "all")
    report([r for r in rows if r.get("calibrated", True)], "calibrated (with a range; the rest say why not)")
    if args.holdout:
        report([r for r in rows if not r["held"]], "fitting half (GPUs not held out)")
        report([r for r in rows if r["held"]], "held out (GPUs hashed into the last fifth)")
    if args.spread:
        for key, name in (("dec", "decode"), ("pre", "prefill")):
            p10, p90, n = spread(rows, key)
            print(f"  {name}: measured / predicted p10 {p10:.3f}  p90 {p90:.3f}  (n={n})")
        for be, by in spread_by_backend(rows).items():
            print(f"  {be}: " + ", ".join(f"{k} p10 {lo:.3f} p90 {hi:.3f}" for k, (lo, hi) in by.items()))
    errs = [r for r in rows if r.get("error")]
    if errs:
        print(f"{len(errs)} errors: " + ", ".join(r["id"] for r in errs), file=sys.stderr)


if __name__ == "__main__":
    main()
