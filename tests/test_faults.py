"""Faults: `vram serve` as a real process, killed with SIGKILL in the middle of saves, purchases and debits, then
restarted on the same database (a SQLite file, and PostgreSQL + Redis): nothing acknowledged is lost, nothing is
credited twice, the ledger still explains every balance. PostgreSQL or Redis going away (a TCP proxy of the test's
own is stopped; the shared servers are never touched) gives a clear 503 for what needs them, never a 500, and
service comes back by itself when they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_web_support import (
    REDIS_URL,
    checkout_event,
    needs_pg_redis,
    pg_available,
    pg_database,
    redis_available,
    redis_prefix,
    stripe_signature,
)

API = "/api/v1"
WEBHOOK_SECRET = "whsec_faults"
PASSWORD = "correct horse battery"
START_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m vram serve` in its own process group, on a fixed port so that it can be restarted in place."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.env = env
        self.log = log
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vram",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"vram serve exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"no /healthz after {START_TIMEOUT_S} s: {self.log.read_text()[-3000:]}"
            time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL the whole process group (uvicorn's supervisor and its workers) at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    database_url: str
    redis: bool
    servers: list[Server] = field(default_factory=list)

    def server(self, tmp: Path, workers: int = 1) -> Server:
        s = Server(self.env, tmp / f"server-{len(self.servers)}.log", workers)
        self.servers.append(s)
        return s

    def db(self) -> Any:
        from vram.web.storage import Database

        return Database(self.database_url)


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VRAM_", "STRIPE_"))}
    env.update(
        VRAM_DATA_DIR=str(data_dir),
        VRAM_SECRET_KEY="faults-secret",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(params=["sqlite", "pg"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    data = tmp_path / "data"
    env = _base_env(data)
    if request.param == "sqlite":
        b = Backend("sqlite", env, f"sqlite:///{data / 'vram.sqlite3'}", redis=False)
        try:
            yield b
        finally:
            for s in b.servers:
                s.stop()
        return
    if not (pg_available() and redis_available()):
        pytest.skip("PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are not running")
    with pg_database() as url, redis_prefix() as prefix:
        env.update(VRAM_DATABASE_URL=url, VRAM_REDIS_URL=REDIS_URL, VRAM_REDIS_PREFIX=prefix)
        b = Backend("pg", env, url, redis=True)
        try:
            yield b
        finally:
            for s in b.servers:
                s.stop()


# ---------------------------------------------------------------------------------------------------------------
# firing requests until the server is killed


@dataclass
class Fired:
    acked: list[tuple[int, httpx.Response]] = field(default_factory=list)  # (index, answer) received
    unknown: list[int] = field(default_factory=list)  # sent, no answer (the server died)


async def fire_until_killed(
    server: Server, n: int, make: Callable[[int], dict[str, Any]], kill_after: int, concurrency: int = 8
) -> Fired:
    """Send requests 0..n-1 (`make(i)` gives httpx.request kwargs) from `concurrency` tasks; SIGKILL the server
    as soon as `kill_after` answers have arrived. Requests without an answer are 'unknown'."""
    out = Fired()
    killed = asyncio.Event()
    indexes = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in indexes:
            if killed.is_set():
                return
            try:
                r = await client.request(**make(i))
            except httpx.HTTPError:
                out.unknown.append(i)
                continue
            out.acked.append((i, r))
            if len(out.acked) >= kill_after and not killed.is_set():
                killed.set()
                server.kill9()

    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
        await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(concurrency))), timeout=60)
    assert killed.is_set(), "the server was never killed: raise n or lower kill_after"
    return out


def signup(url: str, email: str) -> tuple[str, int]:
    r = httpx.post(f"{url}{API}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 201, r.text
    return str(r.json()["token"]), int(r.json()["user_id"])


def login(url: str, email: str) -> str:
    r = httpx.post(f"{url}{API}/auth/login", json={"email": email, "password": PASSWORD}, timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def webhook_request(event_id: str, user_id: int, tokens: int) -> dict[str, Any]:
    payload = checkout_event(event_id, user_id, tokens)
    return {
        "method": "POST",
        "url": f"{API}/webhooks/stripe",
        "content": payload,
        "headers": {"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET), "Content-Type": "application/json"},
    }


def ledger_totals(b: Backend, user_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from vram.web.storage import LedgerRow, User

    db = b.db()
    try:
        with db.engine.connect() as conn:

            def total(*where: Any) -> int:
                return int(
                    conn.execute(
                        select(func.coalesce(func.sum(LedgerRow.amount), 0)).where(LedgerRow.user_id == user_id, *where)
                    ).scalar()
                    or 0
                )

            refs = [
                r
                for (r,) in conn.execute(
                    select(LedgerRow.ref).where(LedgerRow.user_id == user_id, LedgerRow.ref.is_not(None))
                )
            ]
            return {
                "purchased_ledger": total(LedgerRow.bucket == "purchased"),
                "purchased_column": int(
                    conn.execute(select(User.purchased_tokens).where(User.id == user_id)).scalar() or 0
                ),
                "debits": -total(LedgerRow.amount < 0),
                "daily_debits": -total(LedgerRow.amount < 0, LedgerRow.bucket == "daily"),
                "credits": total(LedgerRow.amount > 0),
                "refs": len(refs),
                "distinct_refs": len(set(refs)),
            }
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------------------------
# kill -9 in the middle of ...


def test_kill9_during_saves_loses_no_acknowledged_save(backend: Backend, tmp_path: Path) -> None:
    srv = backend.server(tmp_path)
    srv.start()
    token, _ = signup(srv.url, "saver@example.com")
    req = {"model": "llama-3.2-1b", "context": 1024}
    r = httpx.post(f"{srv.url}{API}/estimate", json=req, headers=auth(token), timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 200
    answer = {"kind": "estimate", "request": req, "result": r.json(), "signature": r.headers["vram-result-signature"]}

    def save(i: int) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": f"{API}/history",
            "json": {**answer, "title": f"save-{i}"},
            "headers": auth(token),
        }

    fired = asyncio.run(fire_until_killed(srv, 400, save, kill_after=40))
    acked = {f"save-{i}" for i, resp in fired.acked if resp.status_code == 201}
    assert all(resp.status_code == 201 for _, resp in fired.acked), [resp.text for _, resp in fired.acked][:3]
    assert len(acked) >= 40
    srv.start()
    items = httpx.get(f"{srv.url}{API}/history", headers=auth(token), timeout=REQUEST_TIMEOUT_S).json()["items"]
    titles = [it["title"] for it in items]
    assert acked <= set(titles), f"lost: {sorted(acked - set(titles))[:5]}"
    assert len(titles) == len(set(titles)), "a save was stored twice"
    assert len(titles) <= len(acked) + len(fired.unknown)
    for it in items[:3]:
        got = httpx.get(f"{srv.url}{API}/history/{it['id']}", headers=auth(token), timeout=REQUEST_TIMEOUT_S)
        assert got.status_code == 200 and got.json()["result"]["peak_allocated_bytes"] > 0
    if backend.name == "sqlite":  # the file survived the kill whole (WAL replayed on the next open)
        db = backend.db()
        try:
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        finally:
            db.close()


def test_kill9_during_purchases_credits_each_event_exactly_once(backend: Backend, tmp_path: Path) -> None:
    srv = backend.server(tmp_path)
    srv.start()
    token, uid = signup(srv.url, "buyer@example.com")
    n_events, tokens = 150, 1000
    events = [f"evt_{uuid.uuid4().hex}" for _ in range(n_events)]
    # every event twice (Stripe retries), the copies close together so that some race each other
    order = [events[i // 2] for i in range(2 * n_events)]
    fired = asyncio.run(
        fire_until_killed(srv, len(order), lambda i: webhook_request(order[i], uid, tokens), kill_after=60)
    )
    assert all(resp.status_code == 200 for _, resp in fired.acked), [resp.text for _, resp in fired.acked][:3]
    credited_before_kill = {order[i] for i, resp in fired.acked if resp.json()["credited"]}
    srv.start()
    # Stripe delivers every event again until it has a 2xx; here: all of them, once more
    again = [
        httpx.post(
            f"{srv.url}{webhook_request(e, uid, tokens)['url']}",
            content=webhook_request(e, uid, tokens)["content"],
            headers=webhook_request(e, uid, tokens)["headers"],
            timeout=REQUEST_TIMEOUT_S,
        )
        for e in events
    ]
    assert all(r.status_code == 200 for r in again)
    assert not any(r.json()["credited"] for r, e in zip(again, events, strict=True) if e in credited_before_kill)
    q = httpx.get(f"{srv.url}{API}/quota", headers=auth(token), timeout=REQUEST_TIMEOUT_S).json()
    assert q["purchased"] == n_events * tokens
    t = ledger_totals(backend, uid)
    assert t["refs"] == t["distinct_refs"] == n_events
    assert t["purchased_ledger"] == t["purchased_column"] == t["credits"] == n_events * tokens


def test_kill9_during_debits_keeps_the_ledger_exact(backend: Backend, tmp_path: Path) -> None:
    srv = backend.server(tmp_path)
    srv.start()
    token, uid = signup(srv.url, "spender@example.com")
    grant = 100_000
    r = httpx.request(
        **{k: v for k, v in webhook_request("evt_grant", uid, grant).items() if k != "url"},
        url=f"{srv.url}{API}/webhooks/stripe",
        timeout=REQUEST_TIMEOUT_S,
    )
    assert r.json()["credited"] is True
    bodies = [{"model": m, "context": 2048} for m in ("llama-3.2-1b", "qwen2.5-0.5b", "smollm2-135m")]

    def spend(i: int) -> dict[str, Any]:
        op = "fit" if i % 4 == 3 else "estimate"
        body = {**bodies[i % 3], **({"gpu": "rtx-4090"} if op == "fit" else {})}
        return {"method": "POST", "url": f"{API}/{op}", "json": body, "headers": auth(token)}

    def cost(i: int) -> int:
        return 250 if i % 4 == 3 else 100

    fired = asyncio.run(fire_until_killed(srv, 600, spend, kill_after=80))
    assert all(resp.status_code == 200 for _, resp in fired.acked), [resp.text for _, resp in fired.acked][:3]
    acked = sum(int(resp.json()["cost_tokens"]) for _, resp in fired.acked)
    assert acked == sum(cost(i) for i, _ in fired.acked)
    in_flight = sum(cost(i) for i in fired.unknown)
    srv.start()
    t = ledger_totals(backend, uid)
    # every answer the clients received was charged; at most the requests cut off by the kill were charged besides
    assert acked <= t["debits"] <= acked + in_flight, (acked, t, in_flight)
    assert t["purchased_ledger"] == t["purchased_column"] == grant - (t["debits"] - t["daily_debits"])
    q = httpx.get(f"{srv.url}{API}/quota", headers=auth(token), timeout=REQUEST_TIMEOUT_S).json()
    assert q["purchased"] == t["purchased_column"]
    used_daily = q["limit"] - q["daily_remaining"]
    if backend.redis:  # the counter lives in Redis, the ledger in PostgreSQL: a kill between them can only over-count
        assert t["daily_debits"] <= used_daily <= t["daily_debits"] + in_flight, (used_daily, t, in_flight)
    else:  # one SQLite transaction holds the counter, the ledger and the balance
        assert used_daily == t["daily_debits"], (used_daily, t)


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL or Redis going away


class TcpProxy:
    """A loopback TCP proxy the test can stop (refusing connections and cutting the open ones) and start again on
    the same port: the shared PostgreSQL and Redis servers themselves are never touched."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        s.settimeout(0.1)
        self._listener = s
        self._stop.clear()
        t = threading.Thread(target=self._accept, args=(s,), daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, up]
            t = threading.Thread(target=self._pump, args=(client, up), daemon=True)
            t.start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


def _retry_until(fn: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if fn():
                return True
        time.sleep(0.2)
    return False


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Server, TcpProxy, TcpProxy]]:
    if not (pg_available() and redis_available()):
        pytest.skip("PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are not running")
    pg, rd = TcpProxy(("127.0.0.1", 5432)), TcpProxy(("127.0.0.1", 6379))
    pg.start()
    rd.start()
    with pg_database() as url, redis_prefix() as prefix:
        env = _base_env(tmp_path / "data")
        env.update(
            VRAM_DATABASE_URL=url.replace(":5432/", f":{pg.port}/"),
            VRAM_REDIS_URL=REDIS_URL.replace(":6379/", f":{rd.port}/"),
            VRAM_REDIS_PREFIX=prefix,
        )
        srv = Server(env, tmp_path / "server.log")
        try:
            srv.start()
            yield srv, pg, rd
        finally:
            srv.stop()
            pg.stop()
            rd.stop()


def _answers(srv: Server, token: str) -> dict[str, httpx.Response]:
    est = {"model": "llama-3.2-1b", "context": 1024}
    with httpx.Client(base_url=srv.url, timeout=REQUEST_TIMEOUT_S) as c:
        return {
            "anon estimate": c.post(f"{API}/estimate", json=est),
            "anon quota": c.get(f"{API}/quota"),
            "user estimate": c.post(f"{API}/estimate", json=est, headers=auth(token)),
            "user history": c.get(f"{API}/history", headers=auth(token)),
            "models": c.get(f"{API}/models?q=llama"),
            "page": c.get("/pricing", headers={"Accept": "text/html"}),
        }


def assert_clear_503_or_ok(answers: dict[str, httpx.Response], need: set[str], what: str) -> None:
    """What needs the missing service answers 503 with a message; nothing answers 500."""
    for name, r in answers.items():
        assert r.status_code != 500, f"{what} down: {name} -> 500 {r.text[:300]}"
        if name in need:
            assert r.status_code == 503, f"{what} down: {name} -> {r.status_code} {r.text[:200]}"
            if r.headers.get("content-type", "").startswith("application/json"):
                assert r.json().get("error"), r.text
        else:
            assert r.status_code == 200, f"{what} down: {name} -> {r.status_code} {r.text[:200]}"


@needs_pg_redis
def test_redis_going_away_is_a_clear_503_and_recovers(proxied: tuple[Server, TcpProxy, TcpProxy]) -> None:
    srv, _pg, rd = proxied
    token, _ = signup(srv.url, "redis-outage@example.com")
    assert all(r.status_code == 200 for r in _answers(srv, token).values())
    rd.stop()
    # sessions live in Redis: signed-in requests need it; allowance counters fall back to the database, so
    # anonymous estimates keep working (and are still counted), and so do the catalog and static pages
    answers = _answers(srv, token)
    assert_clear_503_or_ok(answers, {"user estimate", "user history"}, "Redis")
    assert int(answers["anon estimate"].headers["RateLimit-Remaining"]) < 2500  # charged while Redis was away
    rd.start()
    assert _retry_until(
        lambda: httpx.post(f"{srv.url}{API}/estimate", json={"model": "llama-3.2-1b"}, timeout=5).status_code == 200, 15
    ), "no recovery after Redis returned"
    assert all(r.status_code == 200 for r in _answers(srv, token).values())


@needs_pg_redis
def test_postgresql_going_away_is_a_clear_503_and_recovers(proxied: tuple[Server, TcpProxy, TcpProxy]) -> None:
    srv, pg, _rd = proxied
    token, _ = signup(srv.url, "pg-outage@example.com")
    assert all(r.status_code == 200 for r in _answers(srv, token).values())
    pg.stop()
    # anonymous estimates need only Redis (counters); accounts, ledgers and history need PostgreSQL
    answers = _answers(srv, token)
    assert_clear_503_or_ok(answers, {"user estimate", "user history"}, "PostgreSQL")
    pg.start()
    assert _retry_until(
        lambda: httpx.get(f"{srv.url}{API}/history", headers=auth(token), timeout=5).status_code == 200, 20
    ), "no recovery after PostgreSQL returned"
    assert all(r.status_code == 200 for r in _answers(srv, token).values())
