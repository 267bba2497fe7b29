"""`vram plan FLEET.yaml`: assign models to GPU pools (table or --json)."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import print_json

GIB = 1024**3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="assign models to GPU pools from a fleet file (YAML or JSON)",
        description="Each model goes to the smallest pool that holds it with headroom; prints "
        "assignments, serving settings, leftover capacity and models that fit nowhere.",
    )
    p.add_argument("fleet", help="fleet file: pools (gpu, gpus_per_node, nodes) and models (context, concurrency)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fleet import load_fleet, plan

    result = plan(load_fleet(args.fleet))
    if args.json:
        print_json(result.to_dict())
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="assignments", title_justify="left")
    for col in ("model", "pool", "GPUs × replicas", "nodes", "context × seqs", "GiB/GPU", "verdict", "decode tok/s"):
        t.add_column(col, justify="right" if col in ("GiB/GPU", "decode tok/s") else "left")
    for a in result.assignments:
        f = a.fit
        t.add_row(
            a.model,
            a.pool,
            f"{a.gpus_per_replica} × {a.replicas}",
            ",".join(map(str, a.nodes)),
            f"{f.context:,} × {f.batch}",
            f"{f.per_gpu_bytes / GIB:,.1f}/{f.usable_bytes_per_gpu / GIB:,.1f}",
            f.verdict,
            f"{f.speed.decode_tokens_per_s:,.0f}" if f.speed else "?",
        )
    console.print(t)
    for a in result.assignments:
        if a.fit.serving.get("vllm"):
            console.print(
                f"  [bold]{a.model}[/] → {a.pool}: {a.fit.serving['vllm']['command']}", soft_wrap=True, highlight=False
            )
    lt = Table(title="leftover capacity", title_justify="left")
    for col in ("pool", "GPU", "free GPUs", "free per node", "idle $/h"):
        lt.add_column(col)
    for left in result.leftover:
        lt.add_row(
            left["pool"],
            left["gpu"],
            f"{left['gpus_free']} of {left['gpus_total']}",
            ",".join(map(str, left["free_per_node"])),
            f"{left['idle_cost_per_hour_usd']:,.2f}" if left["idle_cost_per_hour_usd"] is not None else "",
        )
    console.print(lt)
    if result.unplaced:
        console.print("[bold red]fits nowhere[/]")
        for u in result.unplaced:
            console.print(f"  [bold]{u['model']}[/] ({u['context']:,} tokens × {u['concurrency']}):")
            for pool, why in u["reasons"].items():
                console.print(f"    {pool}: {why}", highlight=False)
    return 0
