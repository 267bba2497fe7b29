"""`vram measure MODEL [workload]`: run the workload on the local GPU and print measured vs estimated memory."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_request_options, model_kind, print_json, train_from_args, workload_from_args

GIB = 1024**3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "measure",
        help="measure a workload on this machine's GPU next to the estimate",
        description="Build the model from its config with random weights on the local GPU, run the "
        "workload (generate, or 3 training steps with --train) and print measured vs estimated "
        "memory. Needs a CUDA GPU and the `measure` extra (torch, transformers).",
    )
    p.add_argument("model", help="catalog id or alias, config.json or model folder")
    add_request_options(p, gpu=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..measurement import measure

    if args.train:
        m = measure(args.model, None, train_from_args(args))
    else:
        m = measure(args.model, workload_from_args(args, kind=model_kind(args.model)), None)
    if args.json:
        print_json(m.to_dict())
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{m.model} · {m.kind} on {m.device} (torch {m.torch_version}, transformers {m.transformers_version})",
        title_justify="left",
    )
    for col in ("component", "measured GiB", "estimated GiB", "error"):
        t.add_column(col, justify="left" if col == "component" else "right")
    for r in m.rows:
        t.add_row(r.name, f"{r.measured_bytes / GIB:,.3f}", f"{r.estimated_bytes / GIB:,.3f}", f"{r.error:+.1%}")
    Console().print(t)
    return 0
