"""`vram measure MODEL [workload]`: run the workload on the local GPU and print measured vs estimated memory."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_workload_options, positive_int, print_json, tokens_arg, workload_kwargs

GIB = 1024**3


def register(sub: Any) -> None:
    p = sub.add_parser("measure", help="measure a workload on this machine's GPU next to the estimate",
                       description="Build the model from its config with random weights on the local GPU, run the "
                       "workload (generate, or 3 training steps with --train) and print measured vs estimated "
                       "memory. Needs a CUDA GPU and the `measure` extra (torch, transformers).")
    p.add_argument("model", help="catalog id or alias, config.json or model folder")
    add_workload_options(p)
    p.add_argument("--train", action="store_true", help="measure 3 training steps (full fine-tuning) instead")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16", "mixed"])
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adamw-fused", "sgd", "sgd-momentum",
                                                            "adafactor"])
    p.add_argument("--seq", type=tokens_arg("seq"), default=None, help="training sequence length (default 2048)")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--micro-batch", type=positive_int("batch"), default=None, help="training micro-batch")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..estimate import Workload
    from ..measure import measure
    from ..training import TrainWorkload

    train = None
    if args.train:
        train = TrainWorkload(precision=args.precision, optimizer=args.optimizer,
                              batch=args.micro_batch or args.batch,
                              seq=args.seq if args.seq is not None else (args.context or 2048), attn=args.attn,
                              grad_checkpointing=args.grad_checkpointing).validate()
    m = measure(args.model, Workload(**workload_kwargs(args)), train)
    if args.json:
        print_json(m.to_dict())
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{m.model} · {m.kind} on {m.device} (torch {m.torch_version}, transformers "
              f"{m.transformers_version})", title_justify="left")
    for col in ("component", "measured GiB", "estimated GiB", "error"):
        t.add_column(col, justify="left" if col == "component" else "right")
    for r in m.rows:
        t.add_row(r.name, f"{r.measured_bytes / GIB:,.3f}", f"{r.estimated_bytes / GIB:,.3f}", f"{r.error:+.1%}")
    Console().print(t)
    return 0
