#!/usr/bin/env python3
"""Score an estimator against the buffer sizes real llama.cpp builds printed while loading (logs.jsonl).

Each case is one published load log (its source is in the case): the model (a catalog id, or a config.json under
configs/ with the model's figures), the settings the log shows, the sizes it printed in MiB and (since the 21st
case) the exact lines it printed (`log`). The estimator is asked through the command-line contract of issue 13:

    vram estimate MODEL --engine llama.cpp [--quant Q] --context N --batch SLOTS --new-tokens 0 [--n-gpu-layers N]
         [--ubatch U] [--n-batch B] [--no-flash-attn] [--cache-type-k T --cache-type-v T] [--n-cpu-moe N]
         [--kv-unified] [--backend B] [--gpu SPEC] [--tensor-split S] [--swa-full] [--n-outputs-max N]
         [--llama-build B] --json

(`build`, `swa_full` and `n_outputs_max` in a case become the last three.)

and its `llama_cpp` object (weights/kv/compute × gpu/host bytes, `devices`) is compared with what the log printed.
Bounds (issue 13): weights and KV within 0.5 % in at least 90 % of the sizes printed; GPU compute buffers median
|error| <= 3 %, max <= 10 %. Host compute buffers (CUDA_Host / ROCm_Host ...) are reported beside them, not bounded:
they hold the graph inputs, whose KQ mask changed type between llama.cpp builds.

    python3 measurements/llama_cpp/score_logs.py --cmd .venv/bin/vram [--cases logs.jsonl] [--json]

Standard library only; exit status 0 unless the estimator could not be run at all.
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
MIB = 2**20
EXACT = 0.005  # weights and KV: within 0.5 %
EXACT_SHARE = 0.90
COMPUTE_MEDIAN = 0.03
COMPUTE_MAX = 0.10
# what the log prints -> the estimator's field
FIELDS = {
    "weights_gpu": "weights_gpu_bytes",
    "weights_host": "weights_host_bytes",
    "kv_gpu": "kv_gpu_bytes",
    "kv_host": "kv_host_bytes",
    "compute_gpu": "compute_gpu_bytes",
    "compute_host": "compute_host_bytes",
}


def load_cases(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip() and not line.startswith("//")]


def case_args(c: dict[str, Any], base: Path = HERE) -> list[str]:
    model = str(base / c["config"]) if c.get("config") else c["model"]
    a = [
        model,
        "--engine",
        "llama.cpp",
        "--context",
        str(c["context"]),
        "--batch",
        str(c.get("slots", 1)),
        "--new-tokens",
        "0",
        "--json",
    ]
    if c.get("quant"):
        a += ["--quant", c["quant"]]
    for key, opt in (
        ("n_gpu_layers", "--n-gpu-layers"),
        ("ubatch", "--ubatch"),
        ("n_batch", "--n-batch"),
        ("cache_type_k", "--cache-type-k"),
        ("cache_type_v", "--cache-type-v"),
        ("n_cpu_moe", "--n-cpu-moe"),
        ("backend", "--backend"),
        ("gpu", "--gpu"),
        ("tensor_split", "--tensor-split"),
        ("n_outputs_max", "--n-outputs-max"),
        ("build", "--llama-build"),
    ):
        if c.get(key) is not None:
            a += [opt, str(c[key])]
    if not c.get("flash_attn", True):
        a.append("--no-flash-attn")
    if c.get("kv_unified"):
        a.append("--kv-unified")
    if c.get("swa_full"):
        a.append("--swa-full")
    return a


def subprocess_runner(cmd: str) -> Callable[[list[str]], dict[str, Any]]:
    def run(args: list[str]) -> dict[str, Any]:
        out = subprocess.run([*shlex.split(cmd), "estimate", *args], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip() or f"exit {out.returncode}")
        return dict(json.loads(out.stdout))

    return run


def compare(c: dict[str, Any], got: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per printed size: (case, field, measured MiB, estimated MiB, relative error)."""
    lc = got["llama_cpp"]
    rows = []
    m = c["measured_mib"]
    for key, field in FIELDS.items():
        if key in m:
            rows.append({"case": c["id"], "field": key, "measured": m[key], "estimated": lc[field] / MIB})
    for i, dev in enumerate(m.get("devices", [])):
        est = lc["devices"][i] if i < len(lc["devices"]) else {}
        for key in ("weights_gpu", "kv_gpu", "compute_gpu"):
            if key in dev:
                rows.append(
                    {
                        "case": f"{c['id']}#dev{i}",
                        "field": key,
                        "measured": dev[key],
                        "estimated": est.get(FIELDS[key], 0) / MIB,
                    }
                )
    for r in rows:
        r["error"] = r["estimated"] / r["measured"] - 1 if r["measured"] else (0.0 if not r["estimated"] else 1.0)
    return rows


def score(cases: list[dict[str, Any]], run: Callable[[list[str]], dict[str, Any]], base: Path = HERE) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    failed = []
    for c in cases:
        try:
            got = run(case_args(c, base))
        except Exception as exc:  # a case the estimator refuses counts as failed
            failed.append({"case": c["id"], "error": str(exc)})
            continue
        rows += compare(c, got)
    summary: dict[str, Any] = {"cases": len(cases), "failed": failed, "rows": rows}
    for kind in ("weights", "kv", "compute_gpu", "compute_host"):
        errs = sorted(abs(r["error"]) for r in rows if r["field"].startswith(kind))
        if not errs:
            continue
        summary[kind] = {
            "n": len(errs),
            "median": statistics.median(errs),
            "max": errs[-1],
            "within_0.5%": sum(e <= EXACT for e in errs) / len(errs),
        }
    w, k, cp = summary.get("weights"), summary.get("kv"), summary.get("compute_gpu")
    summary["bounds_met"] = bool(
        (w is None or w["within_0.5%"] >= EXACT_SHARE)
        and (k is None or k["within_0.5%"] >= EXACT_SHARE)
        and (cp is None or (cp["median"] <= COMPUTE_MEDIAN and cp["max"] <= COMPUTE_MAX))
        and not failed
    )
    return summary


def report(s: dict[str, Any]) -> str:
    lines = []
    for kind in ("weights", "kv", "compute_gpu", "compute_host"):
        if kind in s:
            v = s[kind]
            lines.append(
                f"{kind:12s}: n={v['n']:3d}  median {100 * v['median']:5.2f} %  max {100 * v['max']:6.2f} %  "
                f"within 0.5 %: {100 * v['within_0.5%']:5.1f} %"
            )
    lines.append(f"cases: {s['cases']}, failed: {len(s['failed'])}; bounds met: {s['bounds_met']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cmd", default="vram", help="the estimator's command (default: vram)")
    p.add_argument("--cases", type=Path, default=HERE / "logs.jsonl")
    p.add_argument("--json", action="store_true", help="print every row as JSON")
    p.add_argument("--rows", action="store_true", help="print every compared size")
    a = p.parse_args(argv)
    cases = load_cases(a.cases)
    s = score(cases, subprocess_runner(a.cmd), a.cases.parent)
    if a.json:
        print(json.dumps(s, indent=1))
        return 0
    if a.rows:
        for r in s["rows"]:
            print(
                f"{r['case']:44s} {r['field']:13s} {r['measured']:10.2f} {r['estimated']:10.2f} "
                f"{100 * r['error']:+7.2f} %"
            )
        for f in s["failed"]:
            print(f"FAILED {f['case']}: {f['error']}")
    print(report(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
