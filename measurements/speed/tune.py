"""Coordinate search over vram.speed's coefficient tables on the fitting half of the measurements (GPUs not held
out by fit_check.held_out), printing each table entry's best value. The committed coefficients were set from its
output and rounded; the held-out half is only reported, never searched.

    .venv/bin/python measurements/speed/tune.py [--rounds 2] [--only KEY ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any

import fit_check

from vram import speed


def objective(rows: list[dict[str, Any]]) -> float:
    errs = [abs(math.log(1 + r[k])) for r in rows for k in ("dec", "pre") if r.get(k) is not None and r["exact"]]
    errs.sort()
    return statistics.median(errs) + 0.5 * errs[int(0.9 * (len(errs) - 1))] + 0.2 * errs[-1]


def knobs() -> list[tuple[str, Any, Any]]:
    """(label, table or module, key) for every coefficient searched."""
    out: list[tuple[str, Any, Any]] = []
    for name in (
        "DECODE_EFFICIENCY",
        "LAYER_OVERHEAD_S",
        "MOE_LAYER_OVERHEAD_S",
        "PREFILL_MFU",
        "ATTENTION_MFU",
        "ARCH_PREFILL_MFU",
        "QUANT_PREFILL_SHARE",
        "GENERATION_SHARE",
        "HOST_LAYER_S",
    ):
        table = getattr(speed, name)
        out += [(f"{name}[{k}]", table, k) for k in table]
    for name, table in (
        ("STEP_OVERHEAD_S", speed.STEP_OVERHEAD_S),
        ("DECODE_KV_EFFICIENCY", speed.DECODE_KV_EFFICIENCY),
    ):
        for k in table:
            out += [(f"{name}[{k}][0]", _Pair(table, k, 0), None), (f"{name}[{k}][1]", _Pair(table, k, 1), None)]
    for name in (
        "INTERLEAVED_PREFILL_SHARE",
        "METAL_DEQUANT_FLOP_PER_BYTE",
        "STAGE_HOP_S",
        "KV_READ_EFFICIENCY",
    ):
        out.append((name, speed, name))
    return out


class _Pair:
    """One element of a tuple-valued table entry."""

    def __init__(self, table: dict[Any, tuple[float, float]], key: Any, i: int) -> None:
        self.table, self.key, self.i = table, key, i


def get(obj: Any, key: Any) -> float:
    if isinstance(obj, _Pair):
        return float(obj.table[obj.key][obj.i])
    return float(obj[key] if isinstance(obj, dict) else getattr(obj, key))


def put(obj: Any, key: Any, v: float) -> None:
    if isinstance(obj, _Pair):
        t = list(obj.table[obj.key])
        t[obj.i] = v
        obj.table[obj.key] = (t[0], t[1])
    elif isinstance(obj, dict):
        obj[key] = v
    else:
        setattr(obj, key, v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    cases = [
        c
        for c in fit_check.load([str(fit_check.SHARED), *sorted(str(p) for p in fit_check.HERE.glob("*.jsonl"))])
        if not fit_check.held_out(c)
    ]

    def score() -> float:
        return objective(fit_check.score(cases))

    best = score()
    print(f"start {best:.4f}")
    for _ in range(args.rounds):
        for label, obj, key in knobs():
            if args.only and not any(o in label for o in args.only):
                continue
            v0 = get(obj, key)
            for f in (0.6, 0.75, 0.85, 0.93, 1.07, 1.15, 1.3, 1.6):
                put(obj, key, v0 * f)
                s = score()
                if s < best - 1e-4:
                    best, v0 = s, v0 * f
            put(obj, key, v0)
            print(f"{label:60s} {v0:.4g}   objective {best:.4f}")


if __name__ == "__main__":
    main()
