"""Load test: `vram serve --workers N` on 127.0.0.1 (a free port), driven by httpx + asyncio, bounded in requests
and time. Reports requests/s and p50/p99 latency for POST /api/v1/estimate and /api/v1/fit, then checks that the
ledger is exact: for every account, the debits recorded in the database equal the tokens the clients were charged
(the answers' cost_tokens), the account's purchased balance equals its ledger, and RateLimit-Remaining as the
clients saw it moved by exactly what they spent.

    .venv/bin/python benchmarks/load_test.py                       # SQLite, 1 worker
    .venv/bin/python benchmarks/load_test.py --backend pg --workers 2   # PostgreSQL + Redis on 127.0.0.1

The PostgreSQL run creates a database of its own (dropped afterwards) and uses its own Redis key prefix in db 15
(deleted afterwards). Exit status 1 if the ledger is not exact or any answer was a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _machine import machine

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "load test password"
DRAIN_GRANT = 2_000  # + the 5,000 daily allowance: exactly 70 estimates
BODIES: dict[str, list[dict[str, Any]]] = {
    "estimate": [{"model": m, "context": c} for m, c in (("llama-3.1-8b", 8192), ("qwen2.5-7b", 32768),
                                                          ("mixtral-8x7b", 4096), ("llama-3.2-1b", 2048))],
    "fit": [{"model": m, "gpu": g, "context": c} for m, g, c in (("llama-3.1-8b", "rtx-4090", 8192),
                                                                  ("qwen2.5-7b", "l4", 16384),
                                                                  ("llama-3.1-70b", "2xh100-sxm", 8192),
                                                                  ("llama-3.2-1b", "rtx-3060-12gb", 4096))],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pg_database() -> Any:
    import psycopg

    name = f"vram_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def redis_prefix() -> Any:
    import redis

    prefix = f"vramload:{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


@contextmanager
def server(env: dict[str, str], workers: int, log: Path) -> Any:
    """`vram serve` in its own process group; yields the base URL once /healthz answers."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([str(REPO / ".venv/bin/vram"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", str(workers)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vram serve exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("vram serve did not answer /healthz within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Sample:
    op: str
    user: int
    status: int
    seconds: float
    cost: int
    remaining: int | None


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)


async def drive(url: str, tokens: list[str], op: str, requests: int, concurrency: int, max_seconds: float,
                run: Run) -> None:
    """`requests` POSTs of `op` from `concurrency` tasks, round-robin over the accounts; stops at max_seconds."""
    bodies = BODIES[op]
    counter = iter(range(requests))
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            if time.monotonic() > deadline:
                return
            user = i % len(tokens)
            t0 = time.perf_counter()
            headers = {"Authorization": f"Bearer {tokens[user]}"} if tokens[user] else {}  # "": anonymous
            r = await client.post(f"/api/v1/{op}", json=bodies[i % len(bodies)], headers=headers)
            dt = time.perf_counter() - t0
            cost = int(r.json().get("cost_tokens", 0)) if r.status_code == 200 else 0
            rem = r.headers.get("ratelimit-remaining")
            run.samples.append(Sample(op, user, r.status_code, dt, cost, int(rem) if rem is not None else None))

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        run.wall_s[op] = time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def create_accounts(settings: Any, n: int, grant: int) -> list[tuple[int, str]]:
    """Accounts made directly in the database (sign-ups from one address are throttled), each granted `grant`
    purchased tokens through the ledger, as `vram admin grant` does."""
    from vram.web.api import signup_user
    from vram.web.services import Services

    svc = Services.build(settings)
    try:
        out = []
        for i in range(n):
            email = f"load{i}-{uuid.uuid4().hex[:6]}@example.com"
            uid = signup_user(svc, email, PASSWORD)
            svc.quota.credit(uid, grant, "admin")
            out.append((uid, email))
        return out
    finally:
        svc.close()


def ledger_check(settings: Any, accounts: list[tuple[int, str]], run: Run, before: dict[int, int],
                 after: dict[int, int], grant: int) -> list[str]:
    from sqlalchemy import func, select

    from vram.web.services import Services
    from vram.web.storage import LedgerRow, User

    spent: dict[int, int] = defaultdict(int)
    for s in run.samples:
        if s.status == 200:
            spent[accounts[s.user][0]] += s.cost
    problems = []
    svc = Services.build(settings)
    try:
        with svc.db.engine.connect() as conn:
            for i, (uid, email) in enumerate(accounts):
                debits = -int(conn.execute(select(func.coalesce(func.sum(LedgerRow.amount), 0))
                                           .where(LedgerRow.user_id == uid, LedgerRow.amount < 0)).scalar() or 0)
                purchased_ledger = svc.quota.ledger_balance(uid)
                balance = int(conn.execute(select(User.purchased_tokens).where(User.id == uid)).scalar() or 0)
                if debits != spent[uid]:
                    problems.append(f"{email}: ledger debits {debits:,} != tokens charged to the client {spent[uid]:,}")
                if purchased_ledger != balance:
                    problems.append(f"{email}: purchased balance {balance:,} != its ledger {purchased_ledger:,}")
                if before[i] - after[i] != spent[uid]:
                    problems.append(f"{email}: remaining went {before[i]:,} -> {after[i]:,}, but {spent[uid]:,} "
                                    "was charged")
                if balance > grant:
                    problems.append(f"{email}: purchased balance {balance:,} above the {grant:,} granted")
    finally:
        svc.close()
    return problems


async def remaining(url: str, tokens: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        out = []
        for t in tokens:
            r = await c.get("/api/v1/quota", headers={"Authorization": f"Bearer {t}"} if t else {})
            r.raise_for_status()
            out.append(int(r.json()["remaining"]))
        return out


async def login_all(url: str, accounts: list[tuple[int, str]]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        tokens = []
        for _, email in accounts:
            r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            r.raise_for_status()
            tokens.append(str(r.json()["token"]))
        return tokens


def run_backend(args: argparse.Namespace) -> dict[str, Any]:
    from vram.web.settings import Settings

    with tempfile.TemporaryDirectory(prefix="vram-load-") as tmp, contextlib_for(args.backend) as (db_url, prefix):
        data = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VRAM_", "STRIPE_"))}
        env.update(VRAM_DATA_DIR=str(data), VRAM_SECRET_KEY="load-test-secret")
        settings = Settings(data_dir=data, secret_key="load-test-secret")
        if db_url:
            env.update(VRAM_DATABASE_URL=db_url, VRAM_REDIS_URL=REDIS_URL, VRAM_REDIS_PREFIX=prefix)
            settings.database_url, settings.redis_url, settings.redis_prefix = db_url, REDIS_URL, prefix
        with server(env, args.workers, data / "server.log") as url:
            accounts = create_accounts(settings, args.accounts, args.grant)
            tokens = asyncio.run(login_all(url, accounts))
            before = asyncio.run(remaining(url, tokens))
            run = Run()
            for op in ("estimate", "fit"):
                # a warm-up (charged and counted in the ledger check, not in the timings): catalog reads, imports
                warm = Run()
                asyncio.run(drive(url, tokens, op, args.warmup, args.concurrency, args.max_seconds, warm))
                run.samples += [Sample("warmup", s.user, s.status, s.seconds, s.cost, s.remaining)
                                for s in warm.samples]
                asyncio.run(drive(url, tokens, op, args.requests, args.concurrency, args.max_seconds, run))
            after = asyncio.run(remaining(url, tokens))
            # drain: one account with a small balance hit by more concurrent requests than it can pay for
            drain_acc = create_accounts(settings, 1, DRAIN_GRANT)
            drain_tok = asyncio.run(login_all(url, drain_acc))
            drain_before = asyncio.run(remaining(url, drain_tok))
            drain = Run()
            n_drain = 2 * drain_before[0] // 100
            asyncio.run(drive(url, drain_tok, "estimate", n_drain, args.concurrency, args.max_seconds, drain))
            drain_after = asyncio.run(remaining(url, drain_tok))
            # the same for an anonymous client (this address: 2,500 tokens a day, counters only, no ledger)
            anon = Run()
            anon_before = asyncio.run(remaining(url, [""]))[0]
            asyncio.run(drive(url, [""], "estimate", 2 * anon_before // 100, args.concurrency, args.max_seconds,
                              anon))
            anon_after = asyncio.run(remaining(url, [""]))[0]
        problems = ledger_check(settings, accounts, run, before, after, args.grant)
        problems += ledger_check(settings, drain_acc, drain, drain_before, drain_after, DRAIN_GRANT)
        paid = sum(s.status == 200 for s in drain.samples)
        if paid != drain_before[0] // 100 or drain_after != [drain_before[0] % 100]:
            problems.append(f"drain: {paid} estimates paid from {drain_before[0]:,} tokens, {drain_after[0]:,} left")
        anon_paid = sum(s.status == 200 for s in anon.samples)
        if anon_paid != anon_before // 100 or anon_after != anon_before % 100 or \
                any(s.status not in (200, 429) for s in anon.samples):
            problems.append(f"anonymous drain: {anon_paid} estimates paid from {anon_before:,} tokens, "
                            f"{anon_after:,} left")
    ops = {}
    for op in ("estimate", "fit"):
        ss = [s for s in run.samples if s.op == op]
        ok = [s.seconds for s in ss if s.status == 200]
        ops[op] = {"requests": len(ss), "ok": len(ok), "status": dict(sorted(_count(s.status for s in ss).items())),
                   "rps": len(ss) / run.wall_s[op] if run.wall_s.get(op) else 0.0,
                   "p50_ms": 1000 * percentile(ok, 50), "p99_ms": 1000 * percentile(ok, 99),
                   "mean_ms": 1000 * statistics.fmean(ok) if ok else float("nan")}
        if any(s.status >= 500 for s in ss):
            problems.append(f"{op}: {sum(s.status >= 500 for s in ss)} server errors")
    return {"backend": args.backend, "workers": args.workers, "concurrency": args.concurrency,
            "accounts": args.accounts, "ops": ops,
            "drain": {"tokens": drain_before[0], "requests": len(drain.samples),
                      "paid": paid, "refused_429": sum(s.status == 429 for s in drain.samples),
                      "anonymous_tokens": anon_before, "anonymous_requests": len(anon.samples),
                      "anonymous_paid": anon_paid},
            "ledger_exact": not problems, "problems": problems,
            "tokens_charged": sum(s.cost for s in run.samples) + sum(s.cost for s in drain.samples)}


def _count(xs: Any) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for x in xs:
        out[x] += 1
    return dict(out)


@contextmanager
def contextlib_for(backend: str) -> Any:
    if backend == "sqlite":
        yield None, ""
        return
    with pg_database() as url, redis_prefix() as prefix:
        yield url, prefix



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("sqlite", "pg"), default="sqlite")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--requests", type=int, default=600, help="requests per operation (default 600)")
    p.add_argument("--warmup", type=int, default=40, help="untimed requests per operation first (default 40)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--accounts", type=int, default=8)
    p.add_argument("--grant", type=int, default=1_000_000, help="purchased tokens per account")
    p.add_argument("--max-seconds", type=float, default=120.0, help="time bound per operation")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.workers > 1 and args.backend == "sqlite":
        p.error("--workers > 1 needs --backend pg (allowance counters and sessions in Redis)")
    res = run_backend(args)
    res["machine"] = machine(load=True)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"# {res['backend']}, {res['workers']} worker(s), {res['concurrency']} concurrent clients, "
              f"{res['accounts']} accounts — {res['machine']}")
        print("| operation | requests | ok | req/s | p50 ms | p99 ms | statuses |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for op, o in res["ops"].items():
            print(f"| {op} | {o['requests']} | {o['ok']} | {o['rps']:.1f} | {o['p50_ms']:.1f} | {o['p99_ms']:.1f} | "
                  f"{o['status']} |")
        d = res["drain"]
        print(f"drain: {d['requests']} concurrent estimates against {d['tokens']:,} tokens: {d['paid']} paid, "
              f"{d['refused_429']} refused (429); anonymous: {d['anonymous_requests']} against "
              f"{d['anonymous_tokens']:,} tokens: {d['anonymous_paid']} paid")
        print(f"ledger exact: {res['ledger_exact']} (tokens charged {res['tokens_charged']:,})")
        for prob in res["problems"]:
            print("  PROBLEM:", prob)
    return 0 if res["ledger_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
