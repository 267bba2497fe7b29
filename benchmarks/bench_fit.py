#!/usr/bin/env python3
"""Latency of `fit` (verdict + solvers: max context, max batch, min GPUs, best quantization, serving settings),
`compare` and `plan`, in process. (`which` over the whole catalog has its own benchmark, bench_which.py.)

    .venv/bin/python benchmarks/bench_fit.py [--runs 20] [--json]

* cold: a fresh Evaluator each run (every rank spec and estimate computed again; the model resolved once outside
  the timing, catalog files already read by the process, as in a long-lived server);
* warm: the same call again with a catalog id, so the shared evaluator's cached estimates are reused — what the web
  tool sees for popular models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _machine import machine

CASES = (  # model, GPU spec, context
    ("llama-3.1-8b", "rtx-4090", 8192),
    ("qwen2.5-7b", "l4", 32768),
    ("llama-3.1-70b", "2xh100-sxm", 8192),
    ("mixtral-8x7b", "4xa100-80gb-sxm", 4096),
    ("deepseek-v3", "8xh200", 4096),
)


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "median_ms": 1e3 * statistics.median(s),
        "p90_ms": 1e3 * s[min(len(s) - 1, int(0.9 * len(s)))],
        "min_ms": 1e3 * s[0],
        "n": len(s),
    }


def _time(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench(runs: int) -> dict[str, Any]:
    from vram.fitting import Evaluator, compare, fit
    from vram.fleet import parse_fleet, plan
    from vram.request import TrainWorkload, Workload
    from vram.resolver import resolve_model

    rows = []
    for model, gpu, ctx in CASES:
        wl = Workload(context=ctx, new_tokens=256)
        rm = resolve_model(model)
        first = fit(Evaluator(rm), gpu, wl)  # imports, catalog reads
        cold = _time(lambda: fit(Evaluator(rm), gpu, wl), runs)  # noqa: B023
        fit(model, gpu, wl)
        warm = _time(lambda: fit(model, gpu, wl), runs)  # noqa: B023
        no_solve = _time(lambda: fit(Evaluator(rm), gpu, wl, solve=False), runs)  # noqa: B023
        rows.append(
            {
                "case": f"fit {model} on {gpu}, context {ctx:,}",
                "verdict": first.verdict,
                "max_context": first.max_context,
                "max_batch": first.max_batch,
                "cold": _stats(cold),
                "warm": _stats(warm),
                "verdict_only": _stats(no_solve),
            }
        )
    tw = TrainWorkload(method="lora", seq=4096)
    rm = resolve_model("llama-3.1-8b")
    fit(Evaluator(rm), "rtx-4090", train=tw)
    rows.append(
        {
            "case": "fit --train lora llama-3.1-8b on rtx-4090, seq 4,096",
            "cold": _stats(_time(lambda: fit(Evaluator(rm), "rtx-4090", train=tw), runs)),
        }
    )
    gpus = ["rtx-4090", "2xrtx-4090", "l40s", "a100-80gb-sxm", "h100-sxm", "mi300x"]
    wl = Workload(context=8192)
    rows.append(
        {
            "case": f"compare llama-3.1-8b on {len(gpus)} GPU specs",
            "cold": _stats(_time(lambda: compare(Evaluator(rm), gpus, wl), runs)),
        }
    )
    fleet = parse_fleet(
        {
            "pools": [{"gpu": "h100-sxm", "count": 16}, {"gpu": "rtx-4090", "count": 8}, {"gpu": "l4", "count": 8}],
            "models": [
                {"model": m, "context": 8192}
                for m in ("llama-3.1-8b", "qwen2.5-7b", "llama-3.1-70b", "mixtral-8x7b", "gemma-2-9b")
            ],
        }
    )
    plan(fleet)
    rows.append({"case": "plan: 5 models over 3 pools", "cold": _stats(_time(lambda: plan(fleet), max(5, runs // 2)))})
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = bench(args.runs)
    res["machine"] = machine(load=True)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"# {res['machine']}")
    print("| case | cold median | cold p90 | warm median | verdict only | answer |")
    print("|---|---:|---:|---:|---:|---|")
    for r in res["rows"]:
        warm = f"{r['warm']['median_ms']:.1f} ms" if "warm" in r else ""
        only = f"{r['verdict_only']['median_ms']:.1f} ms" if "verdict_only" in r else ""
        ans = r.get("verdict", "")
        if "max_context" in r:

            def n(x: int | None) -> str:
                return "none" if x is None else f"{x:,}"

            ans += f", max context {n(r['max_context'])}, max batch {n(r['max_batch'])}"
        print(
            f"| {r['case']} | {r['cold']['median_ms']:.1f} ms | {r['cold']['p90_ms']:.1f} ms | {warm} | {only} | "
            f"{ans} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
