"""`vram explain [FILE|-]`: why a run ran out of memory, and the smallest change that makes it fit."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BadInput
from ._common import positive_int, print_json, tokens_arg


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="explain an out-of-memory from its log (vLLM, llama.cpp, Ollama, PyTorch, nvidia-smi)",
        description="Read what a run printed — a vLLM start-up log, a llama.cpp or Ollama load log, `ollama ps`, a "
        "PyTorch CUDA out-of-memory message or nvidia-smi — rebuild the workload, put vram's estimate next to each "
        "figure the log states, name the term that differs most, and give the smallest change that fits.",
    )
    p.add_argument("file", nargs="?", default="-", help="the log file, or - (default) for standard input")
    p.add_argument(
        "--model", "-m", default=None, help="the model, when the log does not name it (a PyTorch message never does)"
    )
    p.add_argument("--gpu", "-g", default=None, help="the GPU, when the log does not state it (e.g. for ollama ps)")
    g = p.add_argument_group("workload (for logs that do not state it)")
    g.add_argument("--context", "-c", type=tokens_arg("context"), default=None)
    g.add_argument("--batch", "-b", type=positive_int("batch"), default=None)
    g.add_argument("--new-tokens", "-n", type=tokens_arg("new_tokens"), default=None)
    g.add_argument("--dtype", default=None)
    g.add_argument("--quant", "-q", default=None)
    g.add_argument("--kv-dtype", default=None)
    t = p.add_argument_group("training (a PyTorch message from a training step)")
    t.add_argument("--train", action="store_true", help="the run was a training step")
    t.add_argument("--method", default="full", choices=["full", "lora", "qlora"])
    t.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16", "mixed"])
    t.add_argument(
        "--optimizer",
        default="adamw",
        choices=["adamw", "adamw-fused", "adamw-8bit", "sgd", "sgd-momentum", "adafactor", "lion"],
    )
    t.add_argument("--seq", type=tokens_arg("seq"), default=None, help="training sequence length")
    t.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object (schema: explain.v1.json)")
    p.set_defaults(func=run)


def read_log(path: str) -> str:
    from ..logs import MAX_LOG_CHARS

    if path == "-":
        text = sys.stdin.read(MAX_LOG_CHARS + 1)
    else:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(MAX_LOG_CHARS + 1)
        except OSError as exc:
            raise BadInput(f"file: cannot read {path!r}: {exc.strerror}", field="file") from exc
    return text


def run(args: argparse.Namespace) -> int:
    from ..diagnosis import explain

    options = {
        k: getattr(args, k)
        for k in ("context", "batch", "new_tokens", "dtype", "quant", "kv_dtype")
        if getattr(args, k) is not None
    }
    train = None
    if args.train:
        from ..request import TrainWorkload

        train = TrainWorkload(
            method=args.method,
            precision=args.precision,
            optimizer=args.optimizer,
            batch=options.pop("batch", 1),
            seq=args.seq or options.pop("context", 2048),
            grad_checkpointing=args.grad_checkpointing,
        )
    else:
        given = [
            f
            for f, v in (
                ("--seq", args.seq),
                ("--grad-checkpointing", args.grad_checkpointing),
                ("--method", args.method != "full"),
                ("--precision", args.precision != "bf16"),
                ("--optimizer", args.optimizer != "adamw"),
            )
            if v
        ]
        if given:
            raise BadInput(f"{', '.join(given)}: only with --train", field=given[0].lstrip("-"))
    e = explain(read_log(args.file), model=args.model, gpu=args.gpu, train=train, **options)
    if args.json:
        print_json(e.to_dict())
        return 0
    print_explanation(e)
    return 0


def print_explanation(e: Any, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..units import fmt_auto

    console = console or Console()
    if e.kind is None:
        console.print("not recognised: " + "; ".join(e.missing))
        return
    oom = {True: "[red]ran out of memory[/]", False: "did not run out of memory", None: "outcome not in the log"}
    head = f"[bold]{e.kind}[/] log · {oom[e.out_of_memory]}"
    if e.model or e.resolved:
        head += f" · model {e.model or '?'}" + (f" → {e.resolved}" if e.resolved and e.resolved != e.model else "")
    if e.gpu:
        g = e.gpu
        head += f" · {g.get('count', 1)} × {g.get('name') or g.get('catalog_id') or 'GPU'}" + (
            f" ({fmt_auto(g['memory_bytes'])})" if g.get("memory_bytes") else ""
        )
    console.print(head, highlight=False)
    wl = ", ".join(f"{k} {v}" for k, v in e.workload.items())
    if wl:
        console.print(f"  workload: {wl}", highlight=False)
    if e.terms:
        t = Table(title="the log next to vram", title_justify="left")
        for col in ("term", "log", "vram", "difference", "note"):
            t.add_column(col, justify="right" if col in ("log", "vram", "difference") else "left")
        for term in e.terms:
            d = term.difference_bytes
            t.add_row(
                term.name,
                fmt_auto(term.logged_bytes) if term.logged_bytes is not None else "-",
                fmt_auto(term.estimated_bytes) if term.estimated_bytes is not None else "-",
                (("+" if d > 0 else "") + fmt_auto(d)) if d is not None else "",
                term.note,
            )
        console.print(t)
    if e.why:
        console.print(f"[bold]differs most:[/] {e.why}", highlight=False)
    if e.verdict:
        console.print(f"vram's verdict for the logged workload: {e.verdict}")
    if e.fix:
        console.print("[bold]smallest change that fits:[/]")
        console.print(f"  {e.fix}", soft_wrap=True, highlight=False)
        for alt in e.alternatives:
            console.print(f"  or: {alt}", soft_wrap=True, highlight=False)
    for a in e.assumptions:
        console.print(f"  [dim]assumed: {a}[/]", highlight=False)
    console.print("  recognised: " + ("; ".join(e.recognised) or "nothing"), highlight=False)
    if e.missing:
        console.print("  [yellow]missing:[/] " + "; ".join(e.missing), highlight=False)
