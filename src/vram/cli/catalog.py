"""`vram models [QUERY]` and `vram gpus [QUERY]`: the built-in catalogs."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import print_json


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list catalog models", description="List or search the model catalog.")
    p.add_argument("query", nargs="?", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_models)
    g = sub.add_parser("gpus", help="list catalog GPUs", description="List or search the GPU catalog.")
    g.add_argument("query", nargs="?", default="")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_gpus)


def run_models(args: argparse.Namespace) -> int:
    from ..catalog import search_models

    found = search_models(args.query)
    if args.json:
        print_json([m.summary() for m in found])
        return 0
    from rich.console import Console
    from rich.table import Table

    from ..units import fmt_count

    t = Table(title=f"{len(found)} models" + (f" matching {args.query!r}" if args.query else ""))
    for col in ("id", "name", "params", "context", "license", "hub repo"):
        t.add_column(col)
    for m in found:
        t.add_row(m.id, m.name, fmt_count(m.params) if m.params else "?", f"{m.context_length or '?':,}"
                  if m.context_length else "?", m.license, m.hf_repo)
    Console().print(t)
    return 0


def run_gpus(args: argparse.Namespace) -> int:
    from ..catalog import search_gpus

    found = search_gpus(args.query)
    if args.json:
        print_json([g.summary() for g in found])
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(found)} GPUs" + (f" matching {args.query!r}" if args.query else ""))
    for col in ("id", "name", "memory", "bandwidth", "bf16 TFLOPS", "interconnect", "$/h"):
        t.add_column(col)
    for g in found:
        t.add_row(g.id, g.name, f"{g.memory_gb:g} GB", f"{g.bandwidth_gb_per_s:,.0f} GB/s",
                  f"{g.fp16_tflops:g}" if g.fp16_tflops else "?", g.interconnect,
                  f"{g.price_per_hour_usd:.2f}" if g.price_per_hour_usd else "")
    Console().print(t)
    return 0
