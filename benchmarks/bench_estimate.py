#!/usr/bin/env python3
"""Latency of one estimate, in-process, and the cold start of `vram estimate llama-3.1-8b --json`.

    .venv/bin/python benchmarks/bench_estimate.py [--iterations 20000] [--runs 20] [--json]

Goals (issues 2 and 18): one in-process estimate under 100 µs, by catalog name too (resolved models are cached);
the command's cold start at most 3× `python -c pass` (medians of 20 interleaved runs).

* warm path: `estimate(resolved, workload)` with the model resolved once (ResolvedModel) — what a web request or a
  solver loop pays per estimate;
* by name: `estimate("llama-3.1-8b", workload)` from a catalog id — what a library user writes; the resolved model
  is cached (vram.resolver.resolve_model), so this costs what the pre-resolved call does plus a lookup;
* instructions: when valgrind is installed, the user-space instructions each of those commands executes, as a
  ratio to `python -c pass`'s: a figure the machine's load does not move (the wall-time ratio is the goal's);
* cold start: wall time of the console script as a fresh process, as a ratio to `python -c pass` with the same
  interpreter, interleaved run by run so that machine noise hits both alike; medians reported. Three more
  commands show where the time goes: the standard modules the path imports, alone (argparse and json, with re,
  enum, functools, collections and gettext under them, and an argument parser made, which imports locale: a floor
  for any command built on them), `import vram.inference` and `vram --version`. Bytecode is
  cached as for an installed package (an environment with PYTHONDONTWRITEBYTECODE=1 recompiles vram's modules at
  every start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import machine

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
VRAM = PYTHON.parent / "vram"


def _quantiles(samples_s: list[float]) -> dict[str, float]:
    s = sorted(samples_s)
    return {
        "median_us": 1e6 * statistics.median(s),
        "p99_us": 1e6 * s[min(len(s) - 1, int(0.99 * len(s)))],
        "min_us": 1e6 * s[0],
        "n": len(s),
    }


def bench_in_process(iterations: int) -> dict[str, Any]:
    from vram.inference import estimate
    from vram.request import Workload
    from vram.resolver import resolve_model

    wl = Workload(batch=1, context=8192, new_tokens=256)
    resolved = resolve_model("llama-3.1-8b")
    out: dict[str, Any] = {}
    for label, ref, n in (
        ("warm: pre-resolved llama-3.1-8b", resolved, iterations),
        ("by name: catalog id 'llama-3.1-8b'", "llama-3.1-8b", iterations),
        ("warm: pre-resolved deepseek-v3 (61 layers, MoE)", resolve_model("deepseek-v3"), max(1, iterations // 4)),
    ):
        for _ in range(min(200, n)):  # warm caches and the interpreter
            estimate(ref, wl)
        samples = []
        clock = time.perf_counter
        for _ in range(n):
            t0 = clock()
            estimate(ref, wl)
            samples.append(clock() - t0)
        out[label] = _quantiles(samples)
    return out


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t0


# the standard modules the estimate path imports (argparse and json; making a parser imports locale through
# gettext), alone: a floor for any command built on them, shown so that the ratio below can be read against it.
# typing and dataclasses (with inspect) are no longer on the path (vram.records; typing for mypy only).
STDLIB_FLOOR = "import argparse, json; argparse.ArgumentParser()"
COLD_COMMANDS = {
    "python -c pass": [str(PYTHON), "-c", "pass"],
    f"python -c '{STDLIB_FLOOR}'": [str(PYTHON), "-c", STDLIB_FLOOR],
    "python -c 'import vram.inference'": [str(PYTHON), "-c", "import vram.inference"],
    "vram --version": [str(VRAM), "--version"],
    "vram estimate llama-3.1-8b --json": [str(VRAM), "estimate", "llama-3.1-8b", "--json"],
}


def bench_cold_start(runs: int) -> dict[str, Any]:
    """Median wall time of each command as a fresh process, interleaved run by run, with .pyc files written and
    used (what an installed package gets; PYTHONDONTWRITEBYTECODE is dropped for the runs)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(3):  # fill the OS page cache (and write .pyc when allowed)
        for cmd in COLD_COMMANDS.values():
            _wall(cmd, env)
    samples: dict[str, list[float]] = {k: [] for k in COLD_COMMANDS}
    for _ in range(runs):
        for k, cmd in COLD_COMMANDS.items():
            samples[k].append(_wall(cmd, env))
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["python -c pass"]
    return {
        "runs": runs,
        "median_ms": {k: 1e3 * v for k, v in med.items()},
        "ratio_to_python": {k: v / base for k, v in med.items()},
    }


def _instructions(cmd: list[str], env: dict[str, str]) -> int | None:
    """User-space instructions the command executes, counted by valgrind (cachegrind without its cache model):
    unlike time, the same on a loaded machine as on an idle one (hash seed fixed)."""
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONHASHSEED": "0"},
        check=True,
    )
    for line in out.stderr.splitlines():
        if "I" in line and "refs:" in line:
            return int(line.rsplit(":", 1)[1].strip().replace(",", ""))
    return None


def bench_instructions() -> dict[str, Any] | None:
    """The same commands' instruction counts, as ratios to `python -c pass` (None without valgrind)."""
    import shutil

    if shutil.which("valgrind") is None:
        return None
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    counts = {k: _instructions(cmd, env) for k, cmd in COLD_COMMANDS.items()}
    base = counts["python -c pass"]
    if not base or any(v is None for v in counts.values()):
        return None
    return {"counts": counts, "ratio_to_python": {k: v / base for k, v in counts.items() if v is not None}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    result = {
        "machine": machine(load=False),
        "in_process": bench_in_process(a.iterations),
        "cold_start": bench_cold_start(a.runs),
        "instructions": bench_instructions(),
    }
    if a.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"machine: {result['machine']}")
    print("in-process estimate() (transformers engine, batch 1, 8192 + 256 tokens); goal < 100 µs")
    for label, q in result["in_process"].items():
        print(f"  {label:50s} median {q['median_us']:8.1f} µs  p99 {q['p99_us']:8.1f} µs  (n={q['n']})")
    cs = result["cold_start"]
    print(f"cold start, medians of {cs['runs']} interleaved runs; goal < 3x python -c pass")
    for k, ms in cs["median_ms"].items():
        print(f"  {k:40s} {ms:7.1f} ms  {cs['ratio_to_python'][k]:5.2f}x")
    if result["instructions"]:
        print("instructions executed (valgrind), as a ratio to python -c pass")
        for k, r in result["instructions"]["ratio_to_python"].items():
            print(f"  {k:40s} {r:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
