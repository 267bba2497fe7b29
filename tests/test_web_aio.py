"""The request path on the event loop with PostgreSQL + Redis (vram.web.aio): the Redis client against a real Redis
(replies in order under concurrency, scripts, errors, an unreachable or silent server), vram_spend() against a real
PostgreSQL (each debit of a call paid or refused in turn), and signed-in estimates over HTTP: exact under
concurrency, and a database outage gives the daily tokens back."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import func, select

from test_web_support import (
    REDIS_URL,
    Clock,
    app_for,
    bearer,
    client_for,
    needs_pg_redis,
    pg_database,
    redis_prefix,
    settings_for,
    signup,
)
from vram.web.aio import PgPool, Resp
from vram.web.quota import Subject
from vram.web.services import Services
from vram.web.storage import LedgerRow, User

pytestmark = [pytest.mark.anyio, needs_pg_redis]
EST = {"model": "llama-3.2-1b", "context": 1024}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _uid(svc: Services, token: str) -> int:
    found = svc.sessions.lookup(token, svc.settings.clock())
    assert found is not None
    return found[0]


@pytest.fixture
def pg_redis_settings(tmp_path: Path) -> Iterator[Any]:
    with pg_database() as url, redis_prefix() as prefix:
        yield settings_for(tmp_path, Clock(), database_url=url, redis_url=REDIS_URL, redis_prefix=prefix)


async def test_resp_commands_replies_in_order_and_scripts() -> None:
    r = Resp(REDIS_URL)
    key = f"vramtest:{uuid.uuid4().hex}"
    try:
        assert await r.call("SET", key + ":s", "7 a@b.example") == "OK"
        assert await r.call("GET", key + ":s") == b"7 a@b.example"
        assert await r.call("GET", key + ":missing") is None
        assert await r.call("HMGET", key + ":h", "s", "u") == [None, None]
        # 300 commands from concurrent tasks share the connection; each gets its own reply
        got = await asyncio.gather(*(r.call("INCR", key + ":n") for _ in range(300)))
        assert sorted(got) == list(range(1, 301))
        with pytest.raises(ResponseError):
            await r.call("HGET", key + ":s", "x")  # a string key is not a hash
        assert await r.call("GET", key + ":s") == b"7 a@b.example"  # the connection is still in step
        # a script Redis has never seen (NOSCRIPT, then EVAL), then again by its SHA-1
        source = f"-- {uuid.uuid4().hex}\nreturn {{tonumber(ARGV[1]) + 1, redis.call('INCR', KEYS[1])}}"
        assert await r.script(source, [key + ":n"], [41]) == [42, 301]
        assert await r.script(source, [key + ":n"], [1]) == [2, 302]
        assert await r.call("DEL", key + ":s", key + ":n") == 2
    finally:
        r.close()


async def test_resp_unreachable_and_silent_redis() -> None:
    dead = Resp(f"redis://127.0.0.1:{_free_port()}/0")
    with pytest.raises(RedisConnectionError):
        await dead.call("PING")

    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)  # reads the command, never answers
        await done.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mute = Resp(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        waiting = [asyncio.ensure_future(mute.call("GET", f"k{i}")) for i in range(3)]
        for fut in waiting:  # every command in flight on the silent connection times out
            with pytest.raises(RedisTimeoutError):
                await fut
    finally:
        mute.close()
        done.set()
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()


async def test_vram_spend_pays_or_refuses_each_debit_in_turn(pg_redis_settings: Any) -> None:
    with app_for(pg_redis_settings) as app:
        svc: Services = app.state.services
        from vram.web.api import signup_user

        uid = signup_user(svc, "spend@example.com", "long enough password")
        svc.quota.credit(uid, 250, "admin")
        pool = PgPool(svc.db.engine.url.render_as_string(False))
        try:
            sql = "SELECT vram_spend(%s, %s::bigint[], %s::bigint[], %s::float8[], %s::text[])"
            need, taken = [100, 0, 200, 100, 100], [0, 100, 0, 50, 0]
            row = await pool.one(sql, (uid, need, taken, [1.0] * 5, ["estimate"] * 5))
            assert row[0] == [150, 150, None, 50, None]
            row = await pool.one(sql, (uid + 1000, [0], [100], [1.0], ["estimate"]))  # no such account
            assert row[0] == [None]
        finally:
            pool.close()
        with svc.db.engine.connect() as conn:
            rows = conn.execute(
                select(LedgerRow.amount, LedgerRow.bucket).where(LedgerRow.user_id == uid).order_by(LedgerRow.id)
            ).all()
            balance = conn.execute(select(User.purchased_tokens).where(User.id == uid)).scalar()
        assert [tuple(r) for r in rows] == [
            (250, "purchased"),
            (-100, "purchased"),
            (-100, "daily"),
            (-100, "purchased"),
            (-50, "daily"),
        ]
        assert balance == 50 == svc.quota.ledger_balance(uid)


async def test_vram_spend_many_pays_each_accounts_debits_in_turn(pg_redis_settings: Any) -> None:
    with app_for(pg_redis_settings) as app:
        svc: Services = app.state.services
        from vram.web.api import signup_user

        a = signup_user(svc, "many-a@example.com", "long enough password")
        b = signup_user(svc, "many-b@example.com", "long enough password")
        svc.quota.credit(a, 250, "admin")
        svc.quota.credit(b, 100, "admin")
        pool = PgPool(svc.db.engine.url.render_as_string(False))
        try:
            sql = "SELECT vram_spend_many(%s::int[], %s::bigint[], %s::bigint[], %s::float8[], %s::text[])"
            # b's debits first in the call but a has the lower id: each account's debits in their own order
            uids = [b, a, b + 1000, a, b, a, b]
            need = [100, 100, 0, 200, 0, 100, 1]
            taken = [0, 0, 100, 0, 100, 50, 0]
            row = await pool.one(sql, (uids, need, taken, [float(i) for i in range(7)], ["estimate"] * 7))
            assert row[0] == [0, 150, None, None, 0, 50, None]
        finally:
            pool.close()
        with svc.db.engine.connect() as conn:
            rows = conn.execute(
                select(LedgerRow.user_id, LedgerRow.amount, LedgerRow.bucket, LedgerRow.created_at)
                .where(LedgerRow.amount < 0)
                .order_by(LedgerRow.id)
            ).all()
            balances = dict(conn.execute(select(User.id, User.purchased_tokens).where(User.id.in_([a, b]))).all())
        # the ledger rows in the order the debits were given, purchased before daily within one debit
        assert [tuple(r) for r in rows] == [
            (b, -100, "purchased", 0.0),
            (a, -100, "purchased", 1.0),
            (b, -100, "daily", 4.0),
            (a, -100, "purchased", 5.0),
            (a, -50, "daily", 5.0),
        ]
        assert balances == {a: 50, b: 0}
        assert svc.quota.ledger_balance(a) == 50 and svc.quota.ledger_balance(b) == 0


async def test_signed_in_estimates_on_the_event_loop_are_exact(pg_redis_settings: Any) -> None:
    with app_for(pg_redis_settings) as app:
        svc: Services = app.state.services
        assert svc.on_loop
        async with client_for(app) as c:
            token = (await signup(c, "loop@example.com"))["token"]
            uid = _uid(svc, token)
            svc.quota.credit(uid, 1000, "admin")
            rs = await asyncio.gather(
                *(c.post("/api/v1/estimate", json=EST, headers=bearer(token)) for _ in range(120))
            )
            codes = sorted(r.status_code for r in rs)
            assert codes.count(200) == 60 and codes.count(429) == 60  # 5,000 daily + 1,000 purchased
            left = sorted(int(r.headers["ratelimit-remaining"]) for r in rs if r.status_code == 200)
            assert left == list(range(0, 6000, 100))  # each paid answer saw the debits before it
            assert (await c.get("/api/v1/quota", headers=bearer(token))).json()["remaining"] == 0
        with svc.db.engine.connect() as conn:
            debits = conn.execute(
                select(func.sum(LedgerRow.amount)).where(LedgerRow.user_id == uid, LedgerRow.amount < 0)
            ).scalar()
        assert debits == -6000
        assert svc.quota.ledger_balance(uid) == 0 == svc.quota.state(Subject(f"user:{uid}", uid)).purchased


async def test_many_accounts_debits_together_on_the_event_loop_are_exact(pg_redis_settings: Any) -> None:
    purchased = [1000, 300, 0]
    with app_for(pg_redis_settings) as app:
        svc: Services = app.state.services
        async with client_for(app) as c:
            tokens = [(await signup(c, f"together{i}@example.com"))["token"] for i in range(3)]
            uids = [_uid(svc, t) for t in tokens]
            for uid, n in zip(uids, purchased, strict=True):
                if n:
                    svc.quota.credit(uid, n, "admin")
            rs = await asyncio.gather(
                *(c.post("/api/v1/estimate", json=EST, headers=bearer(t)) for _ in range(70) for t in tokens)
            )
        for i, (uid, n) in enumerate(zip(uids, purchased, strict=True)):
            mine = rs[i::3]
            paid = [r for r in mine if r.status_code == 200]
            assert len(paid) == (5000 + n) // 100 and len(mine) - len(paid) == sum(r.status_code == 429 for r in mine)
            left = sorted(int(r.headers["ratelimit-remaining"]) for r in paid)
            assert left == list(range(0, 5000 + n, 100))  # each paid answer saw its account's debits before it
            with svc.db.engine.connect() as conn:
                debits = conn.execute(
                    select(func.sum(LedgerRow.amount)).where(LedgerRow.user_id == uid, LedgerRow.amount < 0)
                ).scalar()
            assert debits == -(5000 + n)
            assert svc.quota.ledger_balance(uid) == 0 == svc.quota.state(Subject(f"user:{uid}", uid)).purchased


async def test_database_outage_during_a_charge_is_a_503_and_gives_the_daily_tokens_back(
    pg_redis_settings: Any,
) -> None:
    with app_for(pg_redis_settings) as app:
        svc: Services = app.state.services
        async with client_for(app) as c:
            token = (await signup(c, "outage@example.com"))["token"]
            assert (await c.post("/api/v1/estimate", json=EST, headers=bearer(token))).status_code == 200
            # the event loop's connections now go to a port where nothing listens
            svc.aio().pg.close()
            svc.aio().pg.conninfo = f"postgresql://postgres@127.0.0.1:{_free_port()}/nothing"
            r = await c.post("/api/v1/estimate", json=EST, headers=bearer(token))
            assert r.status_code == 503 and "nothing was charged" in r.json()["error"]
        uid = _uid(svc, token)
        state = svc.quota.state(Subject(f"user:{uid}", uid))
        assert state.daily_remaining == 4900  # the first estimate only
