"""Load test: `vram serve` on 127.0.0.1 under 64 concurrent clients, every figure a ratio measured in the same run.

    .venv/bin/python benchmarks/load_test.py                 # both parts below, then the drains; --json for data
    .venv/bin/python benchmarks/load_test.py --part sqlite   # or: --part pg

* sqlite: one `vram serve` worker on SQLite and, side by side, a bare FastAPI endpoint returning a constant JSON
  object (benchmarks/_bare_app.py, served by uvicorn with the options `vram serve` uses). Rounds alternate between
  the two (the same requests, 64 keep-alive connections, each sending its next request when the last is answered):
  throughput of POST /api/v1/estimate with the allowance charged (signed-in accounts, the daily allowance then
  purchased tokens, a ledger row per debit) as a ratio to the bare endpoint's, median over the rounds. Then the
  latency at a fixed rate: the 64 clients together send 40 % of the bare endpoint's measured throughput (the
  throughput goal), latency counted from when each request was due.
* pg: PostgreSQL (a database of its own on 127.0.0.1:5432, dropped afterwards) + Redis (127.0.0.1:6379 db 15, a key
  prefix of its own, deleted afterwards): `vram serve --workers 1` and `--workers 2` side by side on the same
  database, rounds alternating; the ratio of their throughputs. The load generator shares the machine's CPUs.

Afterwards, for every account: the ledger's debits equal the tokens its answers said they cost, its purchased
balance equals its ledger, and GET /quota moved by exactly that. Then a drain: one account holding 7,000 tokens
hit by 140 estimates, 16 at a time (exactly 70 may be paid), and an anonymous client with 2,500 tokens by 50
(exactly 25): no overspend. Exit status 1 if any check fails or any answer was a 5xx.

The load generator (benchmarks/_http.py) is a minimal HTTP/1.1 client (an asyncio protocol per connection, on
uvloop), so that most of the CPU it shares with the servers goes to them.
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _http import build_request, drive, drive_paced, percentile
from _http import run as run_loop
from _machine import machine

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "load test password"
DRAIN_GRANT = 2_000  # + the 5,000 daily allowance: exactly 70 estimates
ESTIMATES = [
    {"model": m, "context": c}
    for m, c in (("llama-3.1-8b", 8192), ("qwen2.5-7b", 32768), ("mixtral-8x7b", 4096), ("llama-3.2-1b", 2048))
]
DRAIN_CONCURRENCY = 16  # httpx clients at once in the drains (64 new connections at once were reset under load)
GOAL_FRACTION = 0.4  # of the bare endpoint's throughput (issue 18)


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
def server(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Any:
    """A server process in its own process group; yields the port once /healthz answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def vram_server(env: dict[str, str], workers: int, log: Path) -> Any:
    port = free_port()
    return server(
        [str(REPO / ".venv/bin/vram"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        port,
        env,
        log,
    )


def bare_server(env: dict[str, str], log: Path) -> Any:
    port = free_port()
    return server([sys.executable, str(REPO / "benchmarks" / "_bare_app.py"), str(port)], port, env, log)


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


async def drive_httpx(url: str, tokens: list[str], requests: int, concurrency: int, run: Run) -> None:
    """The drains: `requests` estimates from `concurrency` tasks (httpx: the clients' view of every header)."""
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            user = i % len(tokens)
            headers = {"Authorization": f"Bearer {tokens[user]}"} if tokens[user] else {}  # "": anonymous
            t0 = time.perf_counter()
            r = await client.post("/api/v1/estimate", json=ESTIMATES[i % len(ESTIMATES)], headers=headers)
            cost = int(r.json().get("cost_tokens", 0)) if r.status_code == 200 else 0
            rem = r.headers.get("ratelimit-remaining")
            run.samples.append(
                Sample(
                    "drain", user, r.status_code, time.perf_counter() - t0, cost, int(rem) if rem is not None else None
                )
            )

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def estimate_requests(tokens: list[str], n: int, offset: int = 0) -> list[bytes]:
    return [
        build_request(
            "POST",
            "/api/v1/estimate",
            "127.0.0.1",
            ESTIMATES[(offset + i) % len(ESTIMATES)],
            {"Authorization": f"Bearer {tokens[(offset + i) % len(tokens)]}"},
        )
        for i in range(n)
    ]


@dataclass
class Slice:
    """One timed slice against one server: requests/s and latencies, and (for vram) who was charged what."""

    rps: float
    latencies: list[float]
    statuses: dict[int, int]
    charged: dict[int, int]  # account index -> tokens its answers cost


async def timed_slice(port: int, reqs: list[bytes], users: list[int] | None, concurrency: int) -> Slice:
    res = await drive("127.0.0.1", port, reqs, concurrency)
    statuses: dict[int, int] = defaultdict(int)
    charged: dict[int, int] = defaultdict(int)
    for i, reply in res.replies:
        statuses[reply.status] += 1
        if users is not None and reply.status == 200:
            charged[users[i]] += int(reply.json()["cost_tokens"])
    return Slice(len(res.latencies) / res.wall_s, res.latencies, dict(statuses), dict(charged))


def _summary(slices: list[Slice]) -> dict[str, Any]:
    lat = [x for s in slices for x in s.latencies]
    statuses: dict[int, int] = defaultdict(int)
    for s in slices:
        for k, v in s.statuses.items():
            statuses[k] += v
    return {
        "rps_median": statistics.median(s.rps for s in slices),
        "rps_rounds": [round(s.rps, 1) for s in slices],
        "p50_ms": 1e3 * percentile(lat, 50),
        "p99_ms": 1e3 * percentile(lat, 99),
        "requests": len(lat),
        "statuses": dict(sorted(statuses.items())),
    }


def _add(into: dict[int, int], charged: dict[int, int]) -> None:
    for k, v in charged.items():
        into[k] = into.get(k, 0) + v


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


def ledger_check(
    settings: Any,
    accounts: list[tuple[int, str]],
    charged: dict[int, int],
    before: list[int],
    after: list[int],
    grant: int,
) -> list[str]:
    from sqlalchemy import func, select

    from vram.web.services import Services
    from vram.web.storage import LedgerRow, User

    spent = {accounts[i][0]: charged.get(i, 0) for i in range(len(accounts))}
    problems = []
    svc = Services.build(settings)
    try:
        with svc.db.engine.connect() as conn:
            for i, (uid, email) in enumerate(accounts):
                debits = -int(
                    conn.execute(
                        select(func.coalesce(func.sum(LedgerRow.amount), 0)).where(
                            LedgerRow.user_id == uid, LedgerRow.amount < 0
                        )
                    ).scalar()
                    or 0
                )
                purchased_ledger = svc.quota.ledger_balance(uid)
                balance = int(conn.execute(select(User.purchased_tokens).where(User.id == uid)).scalar() or 0)
                if debits != spent[uid]:
                    problems.append(f"{email}: ledger debits {debits:,} != tokens charged to the client {spent[uid]:,}")
                if purchased_ledger != balance:
                    problems.append(f"{email}: purchased balance {balance:,} != its ledger {purchased_ledger:,}")
                if before[i] - after[i] != spent[uid]:
                    problems.append(
                        f"{email}: remaining went {before[i]:,} -> {after[i]:,}, but {spent[uid]:,} was charged"
                    )
                if balance > grant:
                    problems.append(f"{email}: purchased balance {balance:,} above the {grant:,} granted")
    finally:
        svc.close()
    return problems


async def remaining(url: str, tokens: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        out = []
        for t in tokens:
            r = await c.get("/api/v1/quota", headers={"Authorization": f"Bearer {t}"} if t else {})
            r.raise_for_status()
            out.append(int(r.json()["remaining"]))
        return out


async def login_all(url: str, accounts: list[tuple[int, str]]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        tokens = []
        for _, email in accounts:
            r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            r.raise_for_status()
            tokens.append(str(r.json()["token"]))
        return tokens


def drains(settings: Any, url: str, concurrency: int) -> tuple[dict[str, Any], list[str]]:
    """One account with 7,000 tokens and one anonymous client with 2,500, each hit by twice what it can pay."""
    problems: list[str] = []
    acc = create_accounts(settings, 1, DRAIN_GRANT)
    tok = run_loop(login_all(url, acc))
    before = run_loop(remaining(url, tok))
    run = Run()
    run_loop(drive_httpx(url, tok, 2 * before[0] // 100, concurrency, run))
    after = run_loop(remaining(url, tok))
    problems += ledger_check(
        settings, acc, {0: sum(s.cost for s in run.samples if s.status == 200)}, before, after, DRAIN_GRANT
    )
    paid = sum(s.status == 200 for s in run.samples)
    if paid != before[0] // 100 or after != [before[0] % 100]:
        problems.append(f"drain: {paid} estimates paid from {before[0]:,} tokens, {after[0]:,} left")
    anon = Run()
    anon_before = run_loop(remaining(url, [""]))[0]
    run_loop(drive_httpx(url, [""], 2 * anon_before // 100, concurrency, anon))
    anon_after = run_loop(remaining(url, [""]))[0]
    anon_paid = sum(s.status == 200 for s in anon.samples)
    if (
        anon_paid != anon_before // 100
        or anon_after != anon_before % 100
        or any(s.status not in (200, 429) for s in anon.samples)
    ):
        problems.append(f"anonymous drain: {anon_paid} estimates paid from {anon_before:,} tokens, {anon_after:,} left")
    return {
        "tokens": before[0],
        "requests": len(run.samples),
        "paid": paid,
        "refused_429": sum(s.status == 429 for s in run.samples),
        "anonymous_tokens": anon_before,
        "anonymous_requests": len(anon.samples),
        "anonymous_paid": anon_paid,
    }, problems


def part(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """sqlite: vram (1 worker) vs the bare endpoint; pg: vram 2 workers vs 1, PostgreSQL + Redis."""
    from vram.web.settings import Settings

    with tempfile.TemporaryDirectory(prefix="vram-load-") as tmp, ExitStack() as stack:
        data = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VRAM_", "STRIPE_"))}
        env.update(VRAM_DATA_DIR=str(data), VRAM_SECRET_KEY="load-test-secret")
        settings = Settings(data_dir=data, secret_key="load-test-secret")
        if name == "pg":
            db_url = stack.enter_context(pg_database())
            prefix = stack.enter_context(redis_prefix())
            env.update(VRAM_DATABASE_URL=db_url, VRAM_REDIS_URL=REDIS_URL, VRAM_REDIS_PREFIX=prefix)
            settings.database_url, settings.redis_url, settings.redis_prefix = db_url, REDIS_URL, prefix
            first = stack.enter_context(vram_server(env, 1, data / "serve-1.log"))
            other = stack.enter_context(vram_server(env, 2, data / "serve-2.log"))
            labels = ("1 worker", "2 workers")
        else:
            first = stack.enter_context(bare_server(env, data / "bare.log"))
            other = stack.enter_context(vram_server(env, 1, data / "serve.log"))
            labels = ("bare FastAPI", "vram serve")
        url = f"http://127.0.0.1:{other}"
        accounts = create_accounts(settings, args.accounts, args.grant)
        tokens = run_loop(login_all(url, accounts))
        before = run_loop(remaining(url, tokens))
        charged: dict[int, int] = {}
        vram_ports = (first, other) if name == "pg" else (other,)
        n, c = args.requests, args.concurrency
        users = [i % len(tokens) for i in range(n)]

        async def rounds() -> tuple[list[Slice], list[Slice]]:
            a: list[Slice] = []
            b: list[Slice] = []
            for port in (first, other):  # warm-up (charged, checked; not timed)
                s = (
                    await timed_slice(port, estimate_requests(tokens, args.warmup), users, c)
                    if port in vram_ports
                    else await timed_slice(port, estimate_requests(tokens, args.warmup), None, c)
                )
                _add(charged, s.charged)
            for r in range(args.rounds):
                for port, out in ((first, a), (other, b)) if r % 2 == 0 else ((other, b), (first, a)):
                    reqs = estimate_requests(tokens, n, offset=r)
                    s = await timed_slice(
                        port, reqs, [(r + i) % len(tokens) for i in range(n)] if port in vram_ports else None, c
                    )
                    _add(charged, s.charged)
                    out.append(s)
            return a, b

        a, b = run_loop(rounds())
        result: dict[str, Any] = {
            "part": name,
            "concurrency": c,
            "requests_per_round": n,
            "rounds": args.rounds,
            labels[0]: _summary(a),
            labels[1]: _summary(b),
            "ratio_rounds": [round(y.rps / x.rps, 3) for x, y in zip(a, b, strict=True)],
        }
        result["ratio_median"] = statistics.median(result["ratio_rounds"])
        if name == "sqlite":  # the latency at the goal's throughput, from the same 64 clients, in rounds
            rate = GOAL_FRACTION * result[labels[0]]["rps_median"]
            st: dict[int, int] = defaultdict(int)
            p50s, p99s, sent, achieved = [], [], 0, []
            for r in range(args.rounds):
                reqs = estimate_requests(tokens, max(int(rate * args.paced_seconds), c) + c, offset=r)
                paced = run_loop(drive_paced("127.0.0.1", other, reqs, c, rate))
                for i, reply in paced.replies:
                    st[reply.status] += 1
                    if reply.status == 200:
                        charged[(r + i) % len(tokens)] = charged.get((r + i) % len(tokens), 0) + int(
                            reply.json()["cost_tokens"]
                        )
                p50s.append(1e3 * percentile(paced.latencies, 50))
                p99s.append(1e3 * percentile(paced.latencies, 99))
                sent += len(paced.latencies)
                achieved.append(len(paced.latencies) / paced.wall_s)
            result["paced"] = {
                "rate": rate,
                "rounds": args.rounds,
                "seconds_per_round": args.paced_seconds,
                "requests": sent,
                "achieved_rps": statistics.median(achieved),
                "p50_ms": statistics.median(p50s),
                "p99_ms": statistics.median(p99s),
                "p99_ms_rounds": [round(x, 1) for x in p99s],
                "statuses": dict(st),
            }
        after = run_loop(remaining(url, tokens))
        problems = ledger_check(settings, accounts, charged, before, after, args.grant)
        result["drain"], more = drains(settings, url, min(c, DRAIN_CONCURRENCY))
        problems += more
        all_statuses = [result[labels[1]]["statuses"], *([result[labels[0]]["statuses"]] if name == "pg" else [])]
        if any(k >= 500 for st2 in all_statuses for k in st2):
            problems.append("server errors: " + json.dumps(all_statuses))
        if any(k != 200 for st2 in all_statuses for k in st2):
            problems.append("answers other than 200 under load: " + json.dumps(all_statuses))
        result["tokens_charged"] = sum(charged.values())
        result["ledger_exact"] = not problems
        result["problems"] = problems
        return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("sqlite", "pg", "both"), default="both")
    p.add_argument("--rounds", type=int, default=4, help="alternating timed rounds per server (default 4)")
    # rounds of several seconds: in rounds of ~1 s (1,500 requests) the first moments after 64 connections open
    # weighed so much that the server measured second in a round ran 5-25 % faster than the one measured first
    p.add_argument("--requests", type=int, default=12_000, help="requests per round (default 12000)")
    p.add_argument("--warmup", type=int, default=300, help="untimed requests per server first (default 300)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--paced-seconds", type=float, default=10.0, help="length of the fixed-rate latency run")
    p.add_argument("--accounts", type=int, default=8)
    p.add_argument("--grant", type=int, default=50_000_000, help="purchased tokens per account")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    parts = ("sqlite", "pg") if args.part == "both" else (args.part,)
    res = {"machine": machine(load=True), "parts": [part(name, args) for name in parts]}
    res["machine_after"] = machine(load=True)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"# {res['machine']}")
        for r in res["parts"]:
            print(json.dumps({k: v for k, v in r.items() if k != "problems"}, indent=1))
            for prob in r["problems"]:
                print("  PROBLEM:", prob)
    return 0 if all(r["ledger_exact"] for r in res["parts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
