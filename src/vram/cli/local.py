"""`vram local`: this machine's GPUs (NVML), total and free memory."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import print_json

GIB = 1024**3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "local",
        help="this machine's GPUs (through NVML) with total and free memory",
        description="List the local NVIDIA GPUs with total and free memory; `--gpu local` in `vram "
        "fit` uses them. Needs the `local` extra (nvidia-ml-py).",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import NeedsExtra
    from ..local import NoLocalGpu, local_gpus

    try:
        gpus = local_gpus()
        message = "" if gpus else "NVML sees no GPU on this machine"
    except (NeedsExtra, NoLocalGpu) as exc:
        gpus, message = [], f"no local GPU: {exc}"
    if args.json:
        print_json({"gpus": [g.to_dict() for g in gpus], "message": message})
        return 0
    if not gpus:
        print(f"{message}. Estimates need no GPU: try `vram fit MODEL --gpu h100-sxm` or `vram which MODEL`.")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{len(gpus)} local GPU{'s' if len(gpus) > 1 else ''} (driver {gpus[0].driver})", title_justify="left"
    )
    for col in ("#", "name", "total GiB", "free GiB", "used GiB", "catalog id"):
        t.add_column(col, justify="right" if "GiB" in col or col == "#" else "left")
    for g in gpus:
        t.add_row(
            str(g.index),
            g.name,
            f"{g.total_bytes / GIB:,.2f}",
            f"{g.free_bytes / GIB:,.2f}",
            f"{g.used_bytes / GIB:,.2f}",
            g.catalog_id or "?",
        )
    Console().print(t)
    return 0
