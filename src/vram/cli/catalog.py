"""`vram models [QUERY]` and `vram gpus [QUERY]`: the built-in catalogs."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadInput
from ._common import add_id_column, positive_int, print_json, tokens_arg


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list catalog models", description="List or search the model catalog.")
    p.add_argument("query", nargs="?", default="")
    f = p.add_argument_group("models for my hardware (--fits)")
    f.add_argument(
        "--fits",
        metavar="SPEC",
        default=None,
        help="rank the models that run on this GPU (rtx-4060-ti-16gb, m4-pro-48gb, 2x3090): the largest "
        "that fits at the best weight format first, with speed",
    )
    f.add_argument(
        "--engine",
        default=None,
        choices=["llama.cpp", "llamacpp", "ollama", "vllm", "transformers"],
        help="with --fits: the engine (default llama.cpp)",
    )
    f.add_argument(
        "--context",
        "-c",
        type=tokens_arg("context"),
        default=None,
        help="with --fits: tokens per sequence (default 8192)",
    )
    f.add_argument(
        "--use",
        default=None,
        choices=["chat", "code", "vision", "embedding"],
        help="with --fits: only models for this use (default chat, code and vision)",
    )
    f.add_argument("--limit", type=positive_int("limit"), default=None, help="with --fits: the first N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_models)
    g = sub.add_parser("gpus", help="list catalog GPUs", description="List or search the GPU catalog.")
    g.add_argument("query", nargs="?", default="")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_gpus)


def run_models(args: argparse.Namespace) -> int:
    if args.fits is not None:
        return run_fits(args)
    given = [f"--{k}" for k in ("engine", "context", "use", "limit") if getattr(args, k) is not None]
    if given:
        raise BadInput(f"{', '.join(given)}: only with --fits SPEC", field=given[0].lstrip("-"))
    from ..catalog import catalog_order, search_models

    found = sorted(search_models(args.query), key=catalog_order)
    if args.json:
        print_json([m.summary() for m in found])
        return 0
    from rich.console import Console
    from rich.table import Table

    from ..units import fmt_count

    t = Table(title=f"{len(found)} models" + (f" matching {args.query!r}" if args.query else ""))
    for col in ("family", "id", "name", "released", "params", "context", "license", "hub repo"):
        if col == "id":
            add_id_column(t, col, (m.id for m in found))
        else:
            t.add_column(col)
    previous = None
    for m in sorted(found, key=catalog_order):
        if previous is not None and m.family != previous:
            t.add_section()
        t.add_row(
            m.family if m.family != previous else "",
            m.id,
            m.name,
            m.released or "?",
            fmt_count(m.params) if m.params else "?",
            f"{m.context_length or '?':,}" if m.context_length else "?",
            m.license,
            m.hf_repo,
        )
        previous = m.family
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
    add_id_column(t, "id", (g.id for g in found))
    for col in ("name", "memory", "bandwidth", "bf16 TFLOPS", "interconnect", "$/h"):
        t.add_column(col)
    for g in found:
        t.add_row(
            g.id,
            g.name,
            f"{g.memory_gb:g} GB",
            f"{g.bandwidth_gb_per_s:,.0f} GB/s",
            f"{g.fp16_tflops:g}" if g.fp16_tflops else "?",
            g.interconnect,
            f"{g.price_per_hour_usd:.2f}" if g.price_per_hour_usd else "",
        )
    Console().print(t)
    return 0


def run_fits(args: argparse.Namespace) -> int:
    from ..hardware import models_for

    if args.query:
        raise BadInput("query: --fits ranks the whole catalog; give no search words with it", field="query")
    engine = "llama.cpp" if args.engine in (None, "llamacpp") else args.engine
    context = args.context or 8192
    if args.limit is not None and args.limit < 1:
        raise BadInput("limit: must be at least 1", field="limit")
    found = models_for(args.fits, engine=engine, context=context, use=args.use)
    rows = found[: args.limit] if args.limit else found
    if args.json:
        from ..schemas import schema_id

        print_json(
            {
                "schema": schema_id("models"),
                "gpu": args.fits,
                "engine": engine,
                "context": context,
                "use": args.use,
                "models": [m.to_dict() for m in rows],
            }
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    from ..units import fmt_count

    t = Table(
        title=f"{len(rows)} of {len(found)} models that run on {args.fits} · {engine} · {context:,} tokens"
        + (f" · {args.use}" if args.use else ""),
        title_justify="left",
    )
    for col in ("#", "model", "params", "weights", "GiB/GPU", "verdict", "decode tok/s"):
        if col == "model":
            add_id_column(t, col, (m.model for m in rows))
        else:
            t.add_column(col, justify="right" if col in ("#", "params", "GiB/GPU", "decode tok/s") else "left")
    for i, m in enumerate(rows, 1):
        o = m.option
        t.add_row(
            str(i),
            m.model,
            fmt_count(m.params),
            m.quant + (" (low-bit)" if m.low_bit else ""),
            f"{o.per_gpu_bytes / 2**30:,.2f}/{o.usable_bytes_per_gpu / 2**30:,.2f}",
            o.verdict,
            f"{o.speed.decode_tokens_per_s:,.1f}" if o.speed else "-",
        )
    Console().print(t)
    return 0
