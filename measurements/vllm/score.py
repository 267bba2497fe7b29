#!/usr/bin/env python3
"""Score vram's vLLM profile against real vLLM start-up logs (measurements/vllm/cases.jsonl).

Each case is one `vllm serve` start-up as its log reports it, with the settings it ran under. The scorer runs the
command-line contract of the vLLM profile for each case:

    vram estimate MODEL --engine vllm --gpu GPU --tensor-parallel-size N --context L --new-tokens 0
        --gpu-memory-utilization U --kv-dtype auto|fp8 --dtype D [--quant Q] [--block-size B]
        [--no-flashinfer-sampler] --engine-version X.Y --json

and compares the `vllm` object of the answer with the logged figures: weights ("Model loading took"), the profile
run's torch peak increase, non-torch memory, "Available KV cache memory", "GPU KV cache size", "Maximum concurrency"
(and the CUDA graph pool, reported but not bounded). Nothing is fitted per case: run it on logs it has not seen.

    python measurements/vllm/score.py --cmd ./.venv/bin/vram [--cases FILE] [--check] [--json]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GIB = 1024**3
# field of the `vllm` object -> (logged key, scale from the logged unit to the field's unit)
FIELDS: dict[str, tuple[str, float]] = {
    "weights_bytes": ("weights_gib", GIB),
    "activation_peak_bytes": ("activation_gib", GIB),
    "non_torch_bytes": ("non_torch_gib", GIB),
    "cuda_graph_bytes": ("cuda_graph_gib", GIB),
    "kv_cache_bytes": ("kv_cache_gib", GIB),
    "kv_cache_tokens": ("kv_cache_tokens", 1),
    "max_concurrency": ("max_concurrency", 1),
}
# Issue 12's done-when bounds: field -> (median bound, max bound) in percent
BOUNDS: dict[str, tuple[float, float | None]] = {
    "kv_cache_tokens": (2.0, 6.0),
    "weights_bytes": (1.0, None),
    "activation_peak_bytes": (15.0, None),
    "non_torch_bytes": (15.0, None),
    "max_concurrency": (3.0, None),
}


def contract_args(case: dict[str, Any]) -> list[str]:
    a = case["args"]
    argv = [
        case["model"] if not case["model"].startswith("measurements/") else str(ROOT / case["model"]),
        "--engine",
        "vllm",
        "--gpu",
        case["gpu"],
        "--tensor-parallel-size",
        str(a["tensor_parallel_size"]),
        "--context",
        str(a["context"]),
        "--new-tokens",
        "0",
        "--gpu-memory-utilization",
        str(a["gpu_memory_utilization"]),
        "--kv-dtype",
        a.get("kv_dtype") or "auto",
        "--dtype",
        a.get("dtype") or "bfloat16",
        "--engine-version",
        case["vllm_version"],
        "--json",
    ]
    if a.get("quant"):
        argv += ["--quant", a["quant"]]
    if a.get("block_size"):
        argv += ["--block-size", str(a["block_size"])]
    for opt in ("max_num_seqs", "max_num_batched_tokens"):
        if a.get(opt):
            argv += [f"--{opt.replace('_', '-')}", str(a[opt])]
    if a.get("enforce_eager"):
        argv.append("--enforce-eager")
    if a.get("flashinfer_sampler") is False:  # the log says FlashInfer was not installed (vLLM <= 0.11 then sorts)
        argv.append("--no-flashinfer-sampler")
    return argv


def subprocess_runner(cmd: str) -> Callable[[list[str]], dict[str, Any]]:
    def run(argv: list[str]) -> dict[str, Any]:
        out = subprocess.run([*shlex.split(cmd), "estimate", *argv], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip() or f"exit {out.returncode}")
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    return run


def load_cases(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(cases: list[dict[str, Any]], run: Callable[[list[str]], dict[str, Any]]) -> dict[str, Any]:
    """Per case and per field: (estimate - logged) / logged in percent; failures listed."""
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for case in cases:
        try:
            got = run(contract_args(case))["vllm"]
        except Exception as exc:
            failed.append({"id": case["id"], "error": str(exc)})
            continue
        errs: dict[str, float] = {}
        for field, (key, scale) in FIELDS.items():
            want = case["logged"].get(key)
            if want is None or want <= 0:
                continue
            errs[field] = 100.0 * (float(got[field]) - want * scale) / (want * scale)
        rows.append({"id": case["id"], "errors": errs, "estimate": got})
    summary: dict[str, Any] = {}
    for field in FIELDS:
        vals = sorted(abs(r["errors"][field]) for r in rows if field in r["errors"])
        if not vals:
            continue
        summary[field] = {
            "n": len(vals),
            "median": statistics.median(vals),
            "p90": vals[min(len(vals) - 1, int(0.9 * len(vals)))],
            "max": vals[-1],
        }
    return {"cases": len(cases), "rows": rows, "failed": failed, "summary": summary}


def violations(result: dict[str, Any]) -> list[str]:
    out = []
    for field, (med, mx) in BOUNDS.items():
        s = result["summary"].get(field)
        if s is None:
            out.append(f"{field}: no case")
            continue
        if s["median"] > med:
            out.append(f"{field}: median {s['median']:.2f} % > {med} %")
        if mx is not None and s["max"] > mx:
            out.append(f"{field}: max {s['max']:.2f} % > {mx} %")
    if result["failed"]:
        out.append(
            f"{len(result['failed'])} cases failed: " + "; ".join(f"{f['id']}: {f['error']}" for f in result["failed"])
        )
    return out


def report(result: dict[str, Any]) -> str:
    lines = []
    for field, s in result["summary"].items():
        bound = BOUNDS.get(field)
        b = (
            f"   bound: median ≤ {bound[0]:g} %" + (f", max ≤ {bound[1]:g} %" if bound and bound[1] else "")
            if bound
            else "   (reported only)"
        )
        lines.append(
            f"{field:22s}: median {s['median']:5.1f}%  p90 {s['p90']:5.1f}%  max {s['max']:5.1f}%  (n={s['n']}){b}"
        )
    lines.append(f"cases: {result['cases']}, failed: {len(result['failed'])}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmd", default="vram", help="the vram command (default: vram on PATH)")
    ap.add_argument("--cases", type=Path, default=HERE / "cases.jsonl")
    ap.add_argument("--check", action="store_true", help="exit 1 when a done-when bound is not met")
    ap.add_argument("--json", action="store_true", help="print every case's errors as JSON")
    ap.add_argument("--worst", type=int, default=0, help="list the N worst cases per bounded field")
    args = ap.parse_args()
    result = score(load_cases(args.cases), subprocess_runner(args.cmd))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(report(result))
        for field in BOUNDS if args.worst else ():
            worst = sorted((r for r in result["rows"] if field in r["errors"]), key=lambda r: -abs(r["errors"][field]))[
                : args.worst
            ]
            print(f"  worst {field}: " + ", ".join(f"{r['id']} {r['errors'][field]:+.1f}%" for r in worst))
    bad = violations(result)
    for line in bad:
        print("FAIL " + line, file=sys.stderr)
    return 1 if bad and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
