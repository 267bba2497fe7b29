"""Human-readable output of an Estimate (rich table + one-line summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .details import LlamaCppDetails
from .units import GIB, fmt_count

if TYPE_CHECKING:
    from .result import Estimate


def print_estimate(est: Estimate, console: Any = None, host_memory: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    total = est.total_bytes
    t = Table(title=f"{est.model} · {est.engine}", title_justify="left")
    t.add_column("component")
    t.add_column("GiB", justify="right")
    t.add_column("share", justify="right")
    t.add_column("why", overflow="fold")
    for c in est.breakdown:
        t.add_row(c.name, f"{c.bytes / GIB:,.2f}", f"{100 * c.bytes / total:4.1f}%" if total else "", c.explanation)
    console.print(t)
    if isinstance(est.details, LlamaCppDetails) and len(est.details.devices) > 1:
        _print_llama_devices(est, est.details, console)
    for a in est.assumptions:
        console.print(f"  [dim]• {a}[/dim]")
    console.print(
        f"[bold]{est.model}[/bold]: {fmt_count(est.params)} params · peak allocated "
        f"[bold]{est.peak_allocated_bytes / GIB:,.2f} GiB[/bold] · device total [bold]{total / GIB:,.2f} GiB[/bold]"
    )
    if host_memory is not None:
        console.print(
            "  " + (host_memory["explanation"] if host_memory["fits"] else f"[red]{host_memory['explanation']}[/]")
        )


def _print_llama_devices(est: Estimate, lc: LlamaCppDetails, console: Any) -> None:
    """llama.cpp over several GPUs: each device's blocks and bytes, the split used and the balanced one."""
    from rich.table import Table

    from .request import Workload

    devices = est.workload.devices if isinstance(est.workload, Workload) else ()
    ctx = est.component("cuda_context")
    ctx_each = ctx.bytes // len(lc.devices) if ctx else 0
    used = list(lc.tensor_split_used)
    by_memory = bool(used) and min(used) > 2**20  # the default: each device's memory in bytes
    shown = ",".join(f"{x / GIB:.2f}".rstrip("0").rstrip(".") if by_memory else f"{x:g}" for x in used)
    t = Table(
        title=f"per GPU (GiB), --tensor-split {shown}" + (" (by memory, llama.cpp's default)" if by_memory else ""),
        title_justify="left",
    )
    for col in ("GPU", "blocks", "weights", "KV", "compute", "ctx", "total"):
        t.add_column(col, justify="left" if col in ("GPU", "blocks") else "right")
    for d, du in enumerate(lc.devices):
        blocks = [i for i, x in enumerate(lc.layer_devices) if x == d]
        where = (f"{blocks[0]}-{blocks[-1]}" if blocks else "none") + (
            " + output" if d == len(lc.devices) - 1 and lc.output_on_gpu else ""
        )
        total = du.weights_gpu_bytes + du.kv_gpu_bytes + du.compute_gpu_bytes + ctx_each
        name = devices[d].name if d < len(devices) else f"GPU {d}"
        t.add_row(
            f"{d} {name}",
            where,
            f"{du.weights_gpu_bytes / GIB:,.2f}",
            f"{du.kv_gpu_bytes / GIB:,.2f}",
            f"{du.compute_gpu_bytes / GIB:,.2f}",
            f"{ctx_each / GIB:,.2f}",
            f"{total / GIB:,.2f}",
        )
    console.print(t)
    hint = lc.tensor_split
    if hint:
        console.print(
            "  [dim]• --tensor-split "
            + ",".join(f"{x:g}" for x in hint)
            + " (layers per GPU, the output layer counted with the last) leaves every GPU the same share of its "
            "memory free[/dim]"
        )
