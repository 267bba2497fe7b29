"""`vram fit`, `vram which`, `vram compare`: will it fit on these GPUs, which GPUs hold it, side by side."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BadInput
from ..request import TrainWorkload
from ..units import fmt_auto
from ._common import (
    add_id_column,
    add_request_options,
    engine_name,
    model_kind,
    print_json,
    train_from_args,
    workload_from_args,
)

GIB = 1024**3


def _headroom(text: str) -> float:
    try:
        v = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"headroom: expected a fraction like 0.2, got {text!r}") from exc
    return v


def _counts(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"counts: expected numbers like 1,2,4,8, got {text!r}") from exc
    if not out or any(n < 1 or n > 64 for n in out):
        raise argparse.ArgumentTypeError("counts: each between 1 and 64")
    return out


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fit",
        help="will a model fit on a GPU (or N of them)?",
        description="Verdict (fits / tight / no), per-GPU use, max context, max batch, smallest GPU "
        "count, best quantization, speed and serving settings.",
    )
    p.add_argument("model", help="catalog id or alias, Hub repo id, config.json or model folder")
    add_request_options(p, gpu="required")
    p.add_argument(
        "--headroom",
        type=_headroom,
        default=0.2,
        help="headroom above the weights for a 'fits' verdict, as a fraction of them (default 0.2)",
    )
    p.add_argument(
        "--split",
        choices=["tp", "pp"],
        default=None,
        help="multi-GPU split: tensor or pipeline parallel (default: tp where the heads divide)",
    )
    add_gpu_rate_options(p)
    h = p.add_argument_group("host memory (llama.cpp)")
    h.add_argument("--ram", default=None, help="system RAM, e.g. 64GiB: checks what llama.cpp keeps in host memory")
    h.add_argument(
        "--ram-type",
        default=None,
        help="RAM setup for expert-offload speed: ddr4-3200-2ch, ddr5-5600-2ch (default), ddr5-6000-2ch, "
        "ddr5-4800-8ch, ddr5-4800-12ch ...",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--check",
        action="store_true",
        help="for scripts: exit 0 when it fits, 1 when tight, 3 when not (2 stays bad input); prints "
        "one line (or --json) as usual",
    )
    p.set_defaults(func=run_fit)

    w = sub.add_parser(
        "which",
        help="every catalog GPU (× 1/2/4/8) that holds the workload, with speed and cost",
        description="Every GPU in the catalog, at each count, on which the workload fits; decode and "
        "prefill tokens/s, time to first token, cost per million tokens.",
    )
    w.add_argument("model")
    add_request_options(w, gpu=None, training=False)
    w.add_argument("--counts", type=_counts, default=(1, 2, 4, 8), help="GPU counts to try (default 1,2,4,8)")
    w.add_argument(
        "--sort",
        choices=["cost", "speed", "gpus", "memory"],
        default="cost",
        help="order: cost per million tokens (default), decode speed, GPU count, total memory",
    )
    w.add_argument("--all-counts", action="store_true", help="table: every count that fits, not only the smallest")
    w.add_argument("--headroom", type=_headroom, default=0.2)
    w.add_argument("--limit", type=int, default=None, help="table: show only the first N rows")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=run_which)

    c = sub.add_parser(
        "compare",
        help="one model on several GPUs, side by side",
        description="The fit on each GPU spec given, side by side.",
    )
    c.add_argument("model")
    c.add_argument("--gpu", "-g", required=True, help="comma-separated GPU specs: h100-sxm,2xa100-80gb-sxm,4090")
    add_request_options(c, gpu=None, training=False)
    c.add_argument("--headroom", type=_headroom, default=0.2)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_compare)


def _rate(field: str) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{field}: expected a number, got {text!r}") from exc
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{field}: must be positive, got {text!r}")
        return v

    return parse


def add_gpu_rate_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hardware not in the catalog (or a GPU spec file: --gpu my-gpu.json)")
    g.add_argument(
        "--gpu-bandwidth",
        type=_rate("gpu_bandwidth"),
        default=None,
        metavar="GB/S",
        help="memory bandwidth of the GPU, replacing the catalog's figure (decode speed)",
    )
    g.add_argument(
        "--gpu-tflops",
        type=_rate("gpu_tflops"),
        default=None,
        metavar="TFLOPS",
        help="dense FP16/BF16 tensor TFLOPS, replacing the catalog's figures (prefill speed)",
    )


def gpu_choice(spec: str, args: argparse.Namespace) -> Any:
    """--gpu with --gpu-bandwidth / --gpu-tflops applied."""
    from ..catalog import with_rates
    from ..fitting import GpuChoice, parse_gpu_spec

    choice = parse_gpu_spec(spec)
    bw, tf = getattr(args, "gpu_bandwidth", None), getattr(args, "gpu_tflops", None)
    if bw is None and tf is None:
        return choice
    return GpuChoice(with_rates(choice.gpu, bandwidth_gb_per_s=bw, tflops=tf), choice.count)


def _g(n: int | float) -> str:
    return f"{n / GIB:,.2f}"


def _tok(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n:,.0f}" if n >= 100 else f"{n:,.1f}"


def _verdict_style(v: str) -> str:
    return {"fits": "[bold green]fits[/]", "tight": "[bold yellow]tight[/]", "no": "[bold red]no[/]"}[v]


def run_fit(args: argparse.Namespace) -> int:
    from ..fitting import fit

    mixed = "+" in args.gpu  # a list of GPUs (llama.cpp): fit() reads it itself
    if mixed and (args.gpu_bandwidth is not None or args.gpu_tflops is not None):
        raise BadInput(
            "gpu_bandwidth: --gpu-bandwidth / --gpu-tflops describe one kind of GPU, not a list", field="gpu_bandwidth"
        )
    choice = args.gpu if mixed else gpu_choice(args.gpu, args)
    train = train_from_args(args, gpus=1 if mixed else choice.count) if args.train else None
    wl = None if args.train else workload_from_args(args, kind=model_kind(args.model))
    ram = None
    if args.ram is not None or args.ram_type is not None:
        from ..llama_offload import ram_setup
        from ..units import parse_bytes

        if args.engine not in ("llama.cpp", "llamacpp", "ollama"):
            raise BadInput(
                "ram: --ram and --ram-type describe llama.cpp's host memory (add --engine llama.cpp or ollama)",
                field="ram",
            )
        ram = ram_setup(args.ram_type, parse_bytes(args.ram, field="ram") if args.ram is not None else None)
    local = str(args.gpu).strip().lower().split("x")[-1] == "local"
    if args.ram is None and local and args.engine in ("llama.cpp", "llamacpp", "ollama"):
        from ..llama_offload import machine_ram_bytes, ram_setup
        from ..records import replace as _replace

        size = machine_ram_bytes()
        if size is not None:  # `local`: this machine's RAM is llama.cpp's host memory (no other engine keeps any)
            ram = _replace(ram or ram_setup(args.ram_type), size_bytes=size, source="this machine's /proc/meminfo")
    r = fit(args.model, choice, wl, headroom_fraction=args.headroom, split=args.split, train=train, ram=ram)
    if args.json:
        print_json(r.to_dict())
    elif args.check:
        print(f"{r.verdict}: {r.reasons[0] if r.reasons else r.model}")
    else:
        print_fit(r)
    return check_exit_code(r.verdict) if args.check else 0


# `vram fit --check` exit codes: a download or a CI job can be guarded on them. 2 is argparse's and vram's exit
# status for bad input, so "does not fit" is 3.
CHECK_EXIT_CODES = {"fits": 0, "tight": 1, "no": 3}


def check_exit_code(verdict: str) -> int:
    return CHECK_EXIT_CODES[verdict]


def _engine_label(r: Any) -> str:
    """The engine as the header names it: Ollama with its release, else the workload's engine."""
    if r.ollama:
        return f"Ollama {r.ollama['ollama_version']} ({r.ollama['runner']})"
    return str(r.workload.engine)


def _weights_label(r: Any) -> str:
    """The weight format asked, else the one the estimate used where it is not --dtype (gpt-oss's MXFP4 on
    llama.cpp)."""
    wl = r.workload
    if wl.quant:
        return str(wl.quant)
    from ..details import LlamaCppDetails

    lc = r.estimate.details
    ft = lc.file_type if isinstance(lc, LlamaCppDetails) else None
    return f"{ft.lower()} (as stored)" if ft and ft.startswith("MXFP4") else str(wl.dtype)


def print_fit(r: Any, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    wl = r.workload
    ds = r.device_split
    gpus = r.gpu_name if ds or r.gpu_count == 1 else f"{r.gpu_count} × {r.gpu_name}"
    console.print(
        f"{_verdict_style(r.verdict)}  [bold]{r.model}[/] on {gpus}"
        + (" (layer split)" if ds else f" ({r.split.upper()})" if r.gpu_count > 1 else "")
        + (
            f" · training step · sequence {wl.seq:,} · micro-batch {wl.batch}"
            if isinstance(wl, TrainWorkload)
            else f" · {_engine_label(r)} · {_weights_label(r)} · context {wl.context:,} + {wl.new_tokens} new · "
            f"batch {wl.batch}"
        )
    )
    for reason in r.reasons:
        console.print(f"  {reason}")
    if r.ollama:
        for note in r.ollama["notes"]:
            console.print(f"  [dim]• {note}[/dim]")
        if r.ollama["ps"]:
            ps = r.ollama["ps"]
            console.print(
                f"  `ollama ps` would show: SIZE {ps['size']}  PROCESSOR {ps['processor']}  "
                f"CONTEXT {r.ollama['num_ctx']}"
            )
    t = Table(title="all GPUs together" if ds else "per GPU" if r.gpu_count > 1 else "memory", title_justify="left")
    t.add_column("component")
    t.add_column("GiB", justify="right")
    t.add_column("why", overflow="fold")
    for c in r.estimate.breakdown:
        t.add_row(c.name, _g(c.bytes), c.explanation)
    if r.ranks and r.ranks[0].comm_bytes:
        t.add_row("nccl_buffers", _g(r.ranks[0].comm_bytes), "NCCL communication buffers per rank (approximate)")
    if ds:
        t.add_row(
            "[bold]total[/]",
            f"[bold]{_g(r.estimate.total_bytes)}[/]",
            f"usable {_g(sum(u['usable_bytes'] for u in ds['devices']))} GiB over {r.gpu_count} GPUs",
        )
    else:
        t.add_row(
            "[bold]total[/]",
            f"[bold]{_g(r.per_gpu_bytes)}[/]",
            f"usable {_g(r.usable_bytes_per_gpu)} GiB "
            + ("(Metal working-set limit)" if r.gpu_entry is not None and r.gpu_entry.vendor == "apple" else "per GPU"),
        )
    console.print(t)
    if ds:
        dt = Table(title=f"per GPU (GiB), {ds['tensor_split_flag']}: {ds['why']}", title_justify="left")
        for col in ("GPU", "blocks", "weights", "KV", "compute", "ctx", "total", "usable", "free"):
            dt.add_column(col, justify="left" if col in ("GPU", "blocks") else "right")
        for u in ds["devices"]:
            blocks = (f"{u['blocks'][0]}-{u['blocks'][1]}" if u["blocks"] else "none") + (
                "+out" if u["output_layer"] else ""
            )
            dt.add_row(
                f"{u['device']} {u['gpu']}",
                blocks,
                _g(u["weights_bytes"]),
                _g(u["kv_cache_bytes"]),
                _g(u["compute_bytes"]),
                _g(u["context_bytes"]),
                _g(u["total_bytes"]),
                _g(u["usable_bytes"]),
                _g(u["free_bytes"]) if u["fits"] else f"[red]{_g(u['free_bytes'])}[/]",
            )
        console.print(dt)
    elif r.gpu_count > 1:
        rt = Table(title=f"{r.split.upper()} ranks (GiB)", title_justify="left")
        for col in ("rank", "holds", "weights", "replicated", "KV cache", "activations", "NCCL", "total"):
            rt.add_column(
                col, justify="right" if col not in ("holds",) else "left", min_width=26 if col == "holds" else None
            )
        shown = r.ranks if r.split == "pp" else r.ranks[:1]
        for u in shown:
            rt.add_row(
                str(u.rank) if r.split == "pp" else f"each of {r.gpu_count}",
                u.role,
                _g(u.weights_bytes),
                fmt_auto(u.weights_replicated_bytes),
                _g(u.kv_cache_bytes),
                _g(u.activation_bytes),
                _g(u.comm_bytes),
                _g(u.total_bytes),
            )
        console.print(rt)
    s = Table(title="limits on this hardware", title_justify="left", show_header=False)
    s.add_column("what")
    s.add_column("value")
    new = 0 if isinstance(wl, TrainWorkload) else wl.new_tokens
    capped = r.max_context is not None and r.context_limit is not None and r.max_context + new >= r.context_limit
    ctx_label = "max sequence (this micro-batch)" if r.engine == "training" else "max context (this batch)"
    s.add_row(
        ctx_label,
        (f"{r.max_context:,} tokens" + (f" (the model's limit: {r.context_limit:,} with {new} new)" if capped else ""))
        if r.max_context
        else "none fits",
    )
    s.add_row(
        "max batch (this sequence)" if r.engine == "training" else "max batch (this context)",
        f"{r.max_batch:,} sequences" if r.max_batch else "none fits",
    )
    if not ds:
        s.add_row(
            "fewest GPUs of this kind",
            str(r.min_gpus)
            if r.min_gpus
            else (
                "none: each replica needs the whole model on one GPU"
                if r.split == "dp" or (r.gpu_count == 1 and not r.serving)
                else "none up to 64"
            ),
        )
    if ds and ds.get("decode_tokens_per_s"):
        s.add_row(
            "decode (layer split)", f"{_tok(ds['decode_tokens_per_s'])} tokens/s per sequence ({ds['explanation']})"
        )
    if r.engine != "training":
        s.add_row("best quantization that fits", r.recommended_quant or "none")
    if r.speed:
        sp = r.speed
        if r.offload and r.offload.get("kind") == "experts":
            s.add_row(
                "decode (experts on the CPU)",
                f"{_tok(r.offload['decode_tokens_per_s'])} tokens/s per sequence "
                "(GPU part at GPU bandwidth, CPU experts at RAM bandwidth)",
            )
        else:
            dr = (
                f" ({_tok(sp.decode_range_per_seq[0])}–{_tok(sp.decode_range_per_seq[1])})"
                if sp.decode_range_per_seq
                else ""
            )
            s.add_row(
                "decode" + (" (offloaded)" if r.offload else ""),
                f"{_tok(sp.decode_tokens_per_s_per_seq)}{dr} tokens/s per sequence, "
                f"{_tok(sp.decode_tokens_per_s)} total ({sp.decode_bound} bound)",
            )
        pr = f" ({_tok(sp.prefill_range[0])}–{_tok(sp.prefill_range[1])})" if sp.prefill_range else ""
        s.add_row(
            "prefill",
            f"{_tok(sp.prefill_tokens_per_s)}{pr} tokens/s; time to first token "
            + (f"{sp.ttft_s:.2f} s" if sp.ttft_s is not None else "?"),
        )
        if sp.decode_range_per_seq:
            s.add_row(
                "speed range", "p10–p90 of measured / predicted over the public measurements (measurements/speed/)"
            )
        elif not sp.calibrated:
            s.add_row("speed range", "none: no public measurement calibrates this engine on this GPU's backend (rough)")
        if sp.engine_build:
            s.add_row("engine build", sp.engine_build)
        if sp.cost_per_million_tokens_usd is not None:
            s.add_row(
                "cost",
                f"${sp.cost_per_million_tokens_usd:,.2f} per million tokens at ${sp.price_per_hour_usd:g}/GPU-hour",
            )
    console.print(s)
    if ds and r.offload:
        o = r.offload
        what = (
            f"keeps the experts of {o['n_cpu_moe']} of {o['layers_total']} blocks in host memory"
            if o["kind"] == "experts"
            else f"keeps {o['layers_on_gpu']} of {o['layers_total']} blocks on the GPUs"
        )
        per = ", ".join(
            f"GPU {u['device']} {_g(u['total_bytes'])} of {_g(u['usable_bytes'])} GiB" for u in o["devices"]
        )
        split = ",".join(f"{x:g}" for x in o["tensor_split"])
        console.print(
            f"[yellow]does not fit entirely:[/] {o['flag']} --tensor-split {split} {what}: {per}, "
            f"{_g(o['host_bytes'])} GiB in RAM → ≈ {o['decode_tokens_per_s']} tokens/s ({o['explanation']})"
        )
        if not o["host_fits"]:
            console.print(
                f"  [red]host memory short:[/] {_g(o['host_bytes'])} GiB must stay in RAM, "
                f"{_g(o['ram']['size_bytes'])} GiB given"
            )
    elif r.offload and r.offload.get("kind") == "experts":
        o = r.offload
        head = "[yellow]does not fit entirely:[/]" if o["fits"] else "[yellow]does not fit, even so:[/]"
        console.print(
            f"{head} {o['flag']} keeps the experts of {o['n_cpu_moe']} of {o['layers_total']} blocks in "
            f"host memory: {_g(o['gpu_bytes'])} GiB on the GPU (usable {_g(o['usable_gpu_bytes'])}), "
            f"{_g(o['host_bytes'])} GiB in RAM → ≈ {o['decode_tokens_per_s']} tokens/s ({o['explanation']})"
        )
        if not o["fits"]:
            console.print("  [red]even with every expert tensor on the CPU the rest does not fit this GPU[/]")
        if not o["host_fits"]:
            console.print(
                f"  [red]host memory short:[/] {_g(o['host_bytes'])} GiB must stay in RAM, "
                f"{_g(o['ram']['size_bytes'])} GiB given"
            )
    elif r.offload:
        o = r.offload
        console.print(
            f"[yellow]does not fit entirely:[/] keep {o['layers_on_gpu']} of {o['layers_total']} layers on "
            f"the GPU, {_g(o['offloaded_bytes'])} GiB of weights in host memory → ≈ "
            f"{o.get('decode_tokens_per_s', '?')} tokens/s (vs {o.get('decode_tokens_per_s_if_it_fit', '?')} "
            "if it fit)"
        )
    if r.host_memory:
        hm = r.host_memory
        console.print("  " + (hm["explanation"] if hm["fits"] else f"[red]{hm['explanation']}[/]"))
    if ds and r.serving:
        console.print("[bold]serving settings[/]")
        console.print(f"  llama.cpp:    {r.serving['llama_cpp']['command']}", soft_wrap=True, highlight=False)
        o = r.serving["ollama"]
        console.print(
            f"  Ollama:       {o['command']}; Modelfile: {' / '.join(o['modelfile'])}", soft_wrap=True, highlight=False
        )
        for n in (*o["notes"], *r.serving["vllm"]["notes"]):
            console.print(f"                [dim]{n}[/]", highlight=False)
    elif r.serving.get("vllm"):
        print_serving(r.serving, console)


def print_serving(serving: dict[str, Any], console: Any) -> None:
    console.print("[bold]serving settings[/]")
    v = serving["vllm"]
    if v["command"]:
        console.print(f"  vLLM:         {v['command']}", soft_wrap=True, highlight=False)
    for n in v.get("notes", []):
        console.print(f"                [dim]{n}[/]", highlight=False)
    if serving.get("mlx"):
        m = serving["mlx"]
        if m["convert"]:
            console.print(f"  mlx-lm:       {m['convert']}", soft_wrap=True, highlight=False)
        console.print(f"  mlx-lm:       {m['command']}", soft_wrap=True, highlight=False)
        for n in m["notes"]:
            console.print(f"                [dim]{n}[/]", highlight=False)
    console.print(f"  llama.cpp:    {serving['llama_cpp']['command']}", soft_wrap=True, highlight=False)
    o = serving["ollama"]
    console.print(
        f"  Ollama:       {o['command']}; Modelfile: {' / '.join(o['modelfile'])}", soft_wrap=True, highlight=False
    )
    for n in o.get("notes", []):
        if n not in v.get("notes", []):  # the length notes are said once, under vLLM
            console.print(f"                [dim]{n}[/]", highlight=False)
    console.print(f"  transformers: {serving['transformers']['code']}", soft_wrap=True, highlight=False)
    for n in serving["transformers"].get("notes", []):
        console.print(f"                [dim]{n}[/]", highlight=False)


def run_which(args: argparse.Namespace) -> int:
    from ..fitting import which

    opts = which(
        args.model,
        workload_from_args(args, kind=model_kind(args.model)),
        counts=args.counts,
        sort=args.sort,
        headroom_fraction=args.headroom,
    )
    if args.json:
        print_json([o.to_dict() for o in opts])
        return 0
    from rich.console import Console
    from rich.table import Table

    rows = opts
    if not args.all_counts:
        seen: set[str] = set()
        rows = []
        for o in sorted(opts, key=lambda o: o.gpu_count):
            if o.gpu not in seen:
                seen.add(o.gpu)
                rows.append(o)
        order = {id(o): i for i, o in enumerate(opts)}
        rows.sort(key=lambda o: order[id(o)])
    if args.limit is not None:
        if args.limit < 1:
            raise BadInput("limit: must be at least 1", field="limit")
        rows = rows[: args.limit]
    console = Console()
    if not opts:
        console.print(f"nothing in the catalog holds this workload at {', '.join(map(str, args.counts))} GPUs")
        return 0
    t = Table(
        title=f"{len(rows)} of {len(opts)} GPU options for {args.model}"
        + ("" if args.all_counts else " (smallest count per GPU; --all-counts for every count)"),
        title_justify="left",
    )
    for col in ("GPU", "×", "verdict", "GiB/GPU", "decode tok/s", "prefill tok/s", "TTFT s", "$/M tok"):
        if col == "GPU":
            add_id_column(t, col, (o.gpu for o in rows))
        else:
            t.add_column(col, justify="left" if col == "verdict" else "right")
    for o in rows:
        sp = o.speed
        mem = f"{_g(o.per_gpu_bytes)}/{_g(o.usable_bytes_per_gpu)}"
        if sp is None:
            t.add_row(o.gpu, str(o.gpu_count), _verdict_style(o.verdict), mem, "-", "-", "-", "")
            continue
        t.add_row(
            o.gpu,
            str(o.gpu_count),
            _verdict_style(o.verdict),
            mem,
            _tok(sp.decode_tokens_per_s),
            _tok(sp.prefill_tokens_per_s),
            f"{sp.ttft_s:.2f}" if sp.ttft_s is not None else "?",
            f"{sp.cost_per_million_tokens_usd:,.2f}" if sp.cost_per_million_tokens_usd is not None else "",
        )
    console.print(t)
    _table_notes(console, [o.vendor for o in rows], args)
    return 0


def _table_notes(console: Any, vendors: list[str], args: argparse.Namespace) -> None:
    """What a which / compare table's numbers mean where it is not plain: Macs' usable memory, Ollama's context."""
    if "apple" in vendors:
        console.print(
            "  [dim]• Apple GPUs: usable = Metal's GPU working-set limit (recommendedMaxWorkingSetSize, about 2/3 "
            "of unified memory up to 36 GB, 3/4 above; raise it with `sudo sysctl iogpu.wired_limit_mb=<MiB>`)[/]"
        )
    if engine_name(args) == "ollama" and args.context is None:
        console.print(
            "  [dim]• Ollama: no --context, so num_ctx is Ollama's default for each GPU's memory (4,096 under "
            "23 GiB, 32,768 under 47 GiB, else 262,144, never above the model's)[/]"
        )


def run_compare(args: argparse.Namespace) -> int:
    from ..fitting import compare

    specs = [s.strip() for s in args.gpu.split(",") if s.strip()]
    wl = workload_from_args(args, kind=model_kind(args.model))
    results = compare(args.model, specs, wl, headroom_fraction=args.headroom)
    if args.json:
        print_json([r.to_dict() for r in results])
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{args.model} on {len(results)} GPU options", title_justify="left")
    t.add_column("")
    for spec, _r in zip(specs, results, strict=True):
        t.add_column(spec, justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("verdict", [_verdict_style(r.verdict) for r in results]),
        ("GiB per GPU", [f"{_g(r.per_gpu_bytes)} / {_g(r.usable_bytes_per_gpu)}" for r in results]),
        ("split", [r.split for r in results]),
        ("max context", [f"{r.max_context:,}" if r.max_context else "-" for r in results]),
        ("max batch", [f"{r.max_batch:,}" if r.max_batch else "-" for r in results]),
        ("min GPUs", [str(r.min_gpus or "-") for r in results]),
        ("best quant", [r.recommended_quant or "-" for r in results]),
        (
            "decode tok/s",
            [
                (_tok(r.speed.decode_tokens_per_s) + (" (offloaded)" if r.offload else "")) if r.speed else "?"
                for r in results
            ],
        ),
        ("prefill tok/s", [_tok(r.speed.prefill_tokens_per_s) if r.speed else "?" for r in results]),
        (
            "$/M tokens",
            [
                f"{r.speed.cost_per_million_tokens_usd:,.2f}"
                if r.speed and r.speed.cost_per_million_tokens_usd is not None
                else ""
                for r in results
            ],
        ),
    ]
    for name, vals in rows:
        t.add_row(name, *vals)
    console = Console()
    console.print(t)
    _table_notes(console, [r.gpu_entry.vendor if r.gpu_entry else "" for r in results], args)
    return 0
