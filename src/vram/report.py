"""Human-readable output of an Estimate (rich table + one-line summary)."""

from __future__ import annotations

from typing import Any

from .units import GIB, fmt_count


def print_estimate(est: Any, console: Any = None) -> None:
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
    for a in est.assumptions:
        console.print(f"  [dim]• {a}[/dim]")
    console.print(
        f"[bold]{est.model}[/bold]: {fmt_count(est.params)} params · peak allocated "
        f"[bold]{est.peak_allocated_bytes / GIB:,.2f} GiB[/bold] · device total [bold]{total / GIB:,.2f} GiB[/bold]"
    )
