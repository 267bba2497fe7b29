#!/usr/bin/env python3
"""Latency of `which` over the whole GPU catalog at counts 1-8, in process.

    .venv/bin/python benchmarks/bench_which.py [--runs 30] [--json]

Goal (issue 4): under 50 ms.

* cold: `which(resolved_model, workload, counts=1..8)` with a fresh Evaluator each run — every rank spec and
  estimate computed again (the catalog files are read once per process, as in any long-lived server); the model is
  resolved once outside the timing, and separately timed as "resolve";
* warm: `which("<catalog id>", ...)` a second time in the same process: the shared evaluator has the estimates
  cached, so only the per-GPU verdicts and speeds are recomputed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

MODELS = ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "deepseek-v3")
COUNTS = tuple(range(1, 9))


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "median_ms": 1e3 * statistics.median(s),
        "p90_ms": 1e3 * s[min(len(s) - 1, int(0.9 * len(s)))],
        "min_ms": 1e3 * s[0],
        "n": len(s),
    }


def bench(runs: int) -> dict[str, Any]:
    from vram.catalog import all_gpus
    from vram.fitting import Evaluator, which
    from vram.request import Workload
    from vram.resolver import resolve_model

    wl = Workload(context=4096, new_tokens=256)
    n_gpus = len(all_gpus())
    out: dict[str, Any] = {"gpus": n_gpus, "counts": list(COUNTS), "workload": "context 4096, 256 new tokens, bf16"}
    for model in MODELS:
        resolve = []
        for _ in range(max(3, runs // 3)):
            t0 = time.perf_counter()
            rm = resolve_model(model)
            resolve.append(time.perf_counter() - t0)
        which(Evaluator(rm), wl, counts=COUNTS)  # warm the interpreter and catalog reads
        cold, options = [], 0
        for _ in range(runs):
            ev = Evaluator(rm)
            t0 = time.perf_counter()
            options = len(which(ev, wl, counts=COUNTS))
            cold.append(time.perf_counter() - t0)
        which(model, wl, counts=COUNTS)
        warm = []
        for _ in range(runs):
            t0 = time.perf_counter()
            which(model, wl, counts=COUNTS)
            warm.append(time.perf_counter() - t0)
        out[model] = {
            "options_that_fit": options,
            "configurations": n_gpus * len(COUNTS),
            "resolve": _stats(resolve),
            "cold": _stats(cold),
            "warm": _stats(warm),
        }
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = bench(args.runs)
    res["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(
        f"which over {res['gpus']} GPUs × counts 1-8 ({res['gpus'] * 8} configurations), {res['workload']}; "
        f"python {res['machine']['python']}, {res['machine']['cpus']} CPUs"
    )
    print(f"{'model':<16}{'fit':>5}{'resolve ms':>12}{'cold median':>13}{'cold p90':>10}{'warm median':>13}")
    worst = 0.0
    for model in MODELS:
        r = res[model]
        worst = max(worst, r["cold"]["median_ms"])
        print(
            f"{model:<16}{r['options_that_fit']:>5}{r['resolve']['median_ms']:>12.2f}{r['cold']['median_ms']:>13.2f}"
            f"{r['cold']['p90_ms']:>10.2f}{r['warm']['median_ms']:>13.2f}"
        )
    print(f"goal: cold median under 50 ms -> {'met' if worst < 50 else 'NOT met'} (worst {worst:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
