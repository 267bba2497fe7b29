#!/usr/bin/env python3
"""Run the benchmarks and regenerate their results: benchmarks/RESULTS.md (the blocks between `<!-- BEGIN bench:NAME
-->` and `<!-- END bench:NAME -->`) and the README's "How fast" table (`<!-- BEGIN how-fast -->`).

    .venv/bin/python benchmarks/run_all.py              # or: make bench (every benchmark, then both files)
    .venv/bin/python benchmarks/run_all.py estimate     # only the benchmarks whose name contains "estimate"
    .venv/bin/python benchmarks/run_all.py --no-write   # print, change no file

Every benchmark runs with `--json` and its defaults; figures that depend on the machine are recorded as ratios
measured in the same run (a fresh process against `python -c pass`, `vram serve` against a bare FastAPI endpoint,
two workers against one). A table is rewritten only from benchmarks that ran; the others keep their last figures.
Exit status is that of the first benchmark that failed (0 if none did).
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
README = ROOT / "README.md"
# name -> script; all take --json
BENCHES = {
    "estimate": "bench_estimate.py",
    "serve": "load_test.py",
    "which": "bench_which.py",
    "fit": "bench_fit.py",
    "api": "bench_api.py",
}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def _ms(x: float) -> str:
    return f"{x:,.1f} ms" if x < 100 else f"{x:,.0f} ms"


def estimate_md(d: dict[str, Any], when: str) -> str:
    ip = d["in_process"]
    cs = d["cold_start"]
    rows = "\n".join(f"| {k} | {v['median_us']:.0f} µs | {v['p99_us']:.0f} µs | {v['n']:,} |" for k, v in ip.items())
    cold = "\n".join(
        f"| `{k}` | {_ms(cs['median_ms'][k])} | **{cs['ratio_to_python'][k]:.2f}** |" for k in cs["median_ms"]
    )
    ins = d.get("instructions")
    if ins:
        cold = "\n".join(
            f"| `{k}` | {_ms(cs['median_ms'][k])} | **{cs['ratio_to_python'][k]:.2f}** | "
            f"{ins['counts'][k] / 1e6:,.0f} M | {ins['ratio_to_python'][k]:.2f} |"
            for k in cs["median_ms"]
        )
    by_name = next(v for k, v in ip.items() if k.startswith("by name"))["median_us"]
    ratio = cs["ratio_to_python"]["vram estimate llama-3.1-8b --json"]
    ins_head = (
        " instructions (valgrind) | × `python -c pass` |\n|---|---:|---:|---:|---:|" if ins else "\n|---|---:|---:|"
    )
    ins_note = (
        "\nInstructions: user-space instructions executed, counted once by valgrind's cachegrind (hash seed 0): the "
        "same under any load, unlike the times.\n"
        if ins
        else ""
    )
    return f"""Command: `.venv/bin/python benchmarks/bench_estimate.py` ({when}; {d["machine"]}). Transformers engine,
batch 1, 8,192 + 256 tokens, bf16.

| in process | median | p99 | calls |
|---|---:|---:|---:|
{rows}

| fresh process, median of {cs["runs"]} interleaved runs | median | × `python -c pass` |{ins_head}
{cold}
{ins_note}
Goals (issue 18): an estimate by catalog name ≤ 100 µs — **{"met" if by_name <= 100 else "missed"}** ({by_name:.0f} µs);
`vram estimate llama-3.1-8b --json` ≤ 3 × `python -c pass` — **{"met" if ratio <= 3 else "missed"}** ({ratio:.2f} ×)."""


def serve_md(d: dict[str, Any], when: str) -> str:
    out = [
        f"Command: `.venv/bin/python benchmarks/load_test.py` ({when}; {d['machine']} at the start, "
        f"{d.get('machine_after', '').rsplit(', ', 1)[-1]} at the end). 64 keep-alive connections, each sending "
        "its next `POST /api/v1/estimate` (4 models, 2k–32k tokens) when the last is answered, from signed-in "
        "accounts (daily allowance, then purchased tokens: a ledger row per debit); rounds alternate between the "
        "two servers compared, ratio = median of the rounds' ratios.",
        "",
    ]
    for p in d["parts"]:
        a, b = ("bare FastAPI", "vram serve") if p["part"] == "sqlite" else ("1 worker", "2 workers")
        title = (
            "SQLite, one `vram serve` worker vs a bare FastAPI endpoint returning a constant JSON object "
            "(same uvicorn options)"
            if p["part"] == "sqlite"
            else "PostgreSQL + Redis, `vram serve --workers 2` vs `--workers 1` (same database)"
        )
        out += [
            f"**{title}** — {p['rounds']} rounds × {p['requests_per_round']:,} requests per server:",
            "",
            "| server | req/s (median of rounds) | p50 | p99 | answers |",
            "|---|---:|---:|---:|---|",
        ]
        for label in (a, b):
            s = p[label]
            st = ", ".join(f"{v:,} × {k}" for k, v in s["statuses"].items())
            out.append(f"| {label} | {s['rps_median']:,.0f} | {_ms(s['p50_ms'])} | {_ms(s['p99_ms'])} | {st} |")
        out.append(
            f"| **ratio** {b} ÷ {a} | **{p['ratio_median']:.2f}** (rounds: "
            f"{', '.join(f'{r:.2f}' for r in p['ratio_rounds'])}) | | | |"
        )
        if "paced" in p:
            q = p["paced"]
            out += [
                "",
                f"At a fixed rate of {q['rate']:,.0f} requests/s (40 % of the bare endpoint's throughput, the "
                f"throughput goal) from the same 64 clients, latency counted from when each request was due"
                + (
                    f", in {q['rounds']} rounds of {q['seconds_per_round']:g} s after one untimed request per "
                    f"connection: p50 {_ms(q['p50_ms'])}, p99 {_ms(q['p99_ms'])} (medians of the rounds; p99 per "
                    f"round: {', '.join(_ms(x) for x in q['p99_ms_rounds'])})"
                    if "p99_ms_rounds" in q
                    else f": p50 {_ms(q['p50_ms'])}, p99 {_ms(q['p99_ms'])}"
                )
                + f" ({q['requests']:,} requests, {q['achieved_rps']:,.0f}/s achieved).",
            ]
        dr = p["drain"]
        out += [
            "",
            f"Ledger: **{'exact' if p['ledger_exact'] else 'NOT exact: ' + '; '.join(p['problems'])}** "
            f"({p['tokens_charged']:,} tokens charged; per account, ledger debits = the answers' cost_tokens, "
            f"purchased balance = its ledger, GET /quota moved by exactly that). Drain: {dr['requests']} "
            f"concurrent estimates against {dr['tokens']:,} tokens → {dr['paid']} paid, {dr['refused_429']} "
            f"refused (429); anonymous: {dr['anonymous_requests']} against {dr['anonymous_tokens']:,} → "
            f"{dr['anonymous_paid']} paid.",
            "",
        ]
    return "\n".join(out).rstrip()


def which_md(d: dict[str, Any], when: str) -> str:
    models = {k: v for k, v in d.items() if isinstance(v, dict) and "cold" in v}
    rows = "\n".join(
        f"| {k} | {v['options_that_fit']} | {v['cold']['median_ms']:.1f} ms | {v['warm']['median_ms']:.1f} ms |"
        for k, v in models.items()
    )
    return f"""Command: `.venv/bin/python benchmarks/bench_which.py` ({when}). `which` over {d["gpus"]} GPUs ×
counts 1–8.

| model | configurations that fit | cold median | warm median |
|---|---:|---:|---:|
{rows}"""


def fit_md(d: dict[str, Any], when: str) -> str:
    rows = "\n".join(
        f"| {r['case']} | {r['cold']['median_ms']:.1f} ms | "
        f"{(str(round(r['warm']['median_ms'], 1)) + ' ms') if 'warm' in r else ''} |"
        for r in d["rows"]
    )
    return f"""Command: `.venv/bin/python benchmarks/bench_fit.py` ({when}; {d["machine"]}).

| case | cold median | warm median |
|---|---:|---:|
{rows}"""


def api_md(d: dict[str, Any], when: str) -> str:
    rows = "\n".join(
        f"| {r['endpoint']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |"
        for r in d["rows"]
    )
    return f"""Command: `.venv/bin/python benchmarks/bench_api.py` ({when}; {d["machine"]}). The app in process through
httpx's ASGI transport (no sockets): an upper bound for one worker, not a ratio (see the load test for that).

| endpoint | concurrency | req/s | p50 | p99 |
|---|---:|---:|---:|---:|
{rows}"""


RENDER: dict[str, Callable[[dict[str, Any], str], str]] = {
    "estimate": estimate_md,
    "serve": serve_md,
    "which": which_md,
    "fit": fit_md,
    "api": api_md,
}
TITLES = {
    "estimate": "Estimate latency and CLI cold start",
    "serve": "`vram serve` under 64 concurrent clients",
    "which": "which",
    "fit": "fit / compare / plan latency",
    "api": "API throughput, in process",
}


def how_fast(res: dict[str, dict[str, Any]], old: str) -> str:
    """The README table: one row per figure, from the results of this run (or the row as it was)."""
    rows: dict[str, str] = {}
    for line in old.splitlines():
        if line.startswith("| ") and not line.startswith(("| what", "|---")):
            rows[line.split(" | ")[0][2:]] = line
    if "estimate" in res:
        d = res["estimate"]
        ip, cs = d["in_process"], d["cold_start"]
        pre = next(v for k, v in ip.items() if k.startswith("warm: pre-resolved llama"))
        name = next(v for k, v in ip.items() if k.startswith("by name"))
        rows["one estimate in process (Llama-3.1-8B)"] = (
            f"| one estimate in process (Llama-3.1-8B) | {name['median_us']:.0f} µs by catalog name, "
            f"{pre['median_us']:.0f} µs pre-resolved (medians) | ≤ 100 µs: "
            f"{'met' if name['median_us'] <= 100 else 'missed'} |"
        )
        r = cs["ratio_to_python"]["vram estimate llama-3.1-8b --json"]
        ins = d.get("instructions")
        also = f"; {ins['ratio_to_python']['vram estimate llama-3.1-8b --json']:.2f} × its instructions" if ins else ""
        rows["`vram estimate llama-3.1-8b --json`, fresh process"] = (
            f"| `vram estimate llama-3.1-8b --json`, fresh process | {r:.2f} × `python -c pass` (median of "
            f"{cs['runs']}{also}) | ≤ 3 ×: {'met' if r <= 3 else 'missed'} |"
        )
    if "serve" in res:
        for p in res["serve"]["parts"]:
            if p["part"] == "sqlite":
                q = p.get("paced", {})
                ok = p["ratio_median"] >= 0.4
                rows["`vram serve`, one worker on SQLite, 64 clients"] = (
                    f"| `vram serve`, one worker on SQLite, 64 clients | {p['ratio_median']:.2f} × the throughput of a "
                    f"bare FastAPI endpoint (allowance charged, ledger {'exact' if p['ledger_exact'] else 'NOT exact'})"
                    f"; p99 {_ms(p['vram serve']['p99_ms'])} at full throughput, {_ms(q.get('p99_ms', float('nan')))}"
                    f" at a fixed 40 % of the bare endpoint's rate | ≥ 0.40 ×: {'met' if ok else 'missed'}; p99 ≤ 50 "
                    f"ms: {'met' if p['vram serve']['p99_ms'] <= 50 else 'missed'} at 64 clients, "
                    f"{'met' if q.get('p99_ms', 1e9) <= 50 else 'missed'} at the fixed rate |"
                )
            else:
                rows["`vram serve`, PostgreSQL + Redis, 2 workers vs 1"] = (
                    f"| `vram serve`, PostgreSQL + Redis, 2 workers vs 1 | {p['ratio_median']:.2f} × "
                    f"({p['1 worker']['rps_median']:,.0f} → {p['2 workers']['rps_median']:,.0f} req/s; ledger "
                    f"{'exact' if p['ledger_exact'] else 'NOT exact'}, no overspend) | ≥ 1.3 ×: "
                    f"{'met' if p['ratio_median'] >= 1.3 else 'missed'} |"
                )
    if "which" in res:
        models = [v for v in res["which"].values() if isinstance(v, dict) and "cold" in v]
        worst = max(v["cold"]["median_ms"] for v in models)
        n = int(res["which"].get("gpus") or 0)
        rows[WHICH_ROW] = (
            f"| `which` over {n} GPUs × 1–8 ({n * 8} configurations) | {worst:.1f} ms cold at worst | < 50 ms: "
            f"{'met' if worst < 50 else 'missed'} |"
        )
    if "fit" in res:
        fits = [r for r in res["fit"]["rows"] if r["case"].startswith("fit ") and "warm" in r]
        lo, hi = min(r["cold"]["median_ms"] for r in fits), max(r["cold"]["median_ms"] for r in fits)
        warm = max(r["warm"]["median_ms"] for r in fits)
        rows["`fit` with all solvers (max context, max batch, fewest GPUs, best quant)"] = (
            f"| `fit` with all solvers (max context, max batch, fewest GPUs, best quant) | {lo:.1f}–{hi:.1f} ms cold, "
            f"≤ {warm:.1f} ms warm | |"
        )
    order = [
        "one estimate in process (Llama-3.1-8B)",
        "`vram estimate llama-3.1-8b --json`, fresh process",
        "`vram serve`, one worker on SQLite, 64 clients",
        "`vram serve`, PostgreSQL + Redis, 2 workers vs 1",
        WHICH_ROW,
        "`fit` with all solvers (max context, max batch, fewest GPUs, best quant)",
    ]
    body = [rows[k] for k in order if k in rows]
    return "| what | result | goal |\n|---|---|---|\n" + "\n".join(body)


WHICH_ROW = "`which` over every catalog GPU × 1–8"


def replace_block(text: str, name: str, body: str, title: str | None = None) -> str:
    pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S)
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    block = f"<!-- BEGIN {name} -->\n{body}\n<!-- END {name} -->"
    return text.rstrip() + f"\n\n## {title}\n\n{block}\n" if title else text + block


def main(argv: list[str]) -> int:
    write = "--no-write" not in argv
    names = [a for a in argv if not a.startswith("--")]
    chosen = {k: v for k, v in BENCHES.items() if not names or any(n in k or n in v for n in names)}
    if not chosen:
        print("no benchmarks found", file=sys.stderr)
        return 1
    status = 0
    res: dict[str, dict[str, Any]] = {}
    when = f"{datetime.date.today().isoformat()}, at {_commit()}"
    for name, script in chosen.items():
        print(f"== {script}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / script), "--json"], cwd=ROOT, capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-3000:])
        try:
            res[name] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            print(proc.stdout[-3000:])
            res.pop(name, None)
        if proc.returncode and not status:
            status = proc.returncode
        if name in res:
            print(RENDER[name](res[name], when), flush=True)
    if write and res:
        text = RESULTS.read_text(encoding="utf-8")
        for name, d in res.items():
            text = replace_block(text, f"bench:{name}", RENDER[name](d, when), TITLES[name])
        RESULTS.write_text(text, encoding="utf-8")
        readme = README.read_text(encoding="utf-8")
        m = re.search(r"<!-- BEGIN how-fast -->\n(.*?)<!-- END how-fast -->", readme, re.S)
        if m:
            README.write_text(replace_block(readme, "how-fast", how_fast(res, m.group(1))), encoding="utf-8")
        print(f"updated {RESULTS.relative_to(ROOT)} ({', '.join(res)}) and README 'How fast'")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
