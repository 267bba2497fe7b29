"""The cheap request path: kept answers, debits that do not wait for the disk (credits that do), sessions that
carry the account's email. Speed itself is measured by benchmarks/load_test.py; these check that what makes it
fast changes no answer and no count."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from test_web_support import (
    REDIS_URL,
    app_for,
    bearer,
    client_for,
    needs_pg_redis,
    pg_database,
    redis_prefix,
    settings_for,
)
from vram.web.api import answer_key, signup_user
from vram.web.schemas import EstimateBody, FitBody
from vram.web.storage import Database

pytestmark = pytest.mark.anyio

EST = {"model": "llama-3.2-1b", "context": 2048}


async def test_a_repeated_request_gets_the_same_answer_and_is_charged_again(tmp_path: Path) -> None:
    with app_for(settings_for(tmp_path)) as app:
        svc = app.state.services
        async with client_for(app) as c:
            a = await c.post("/api/v1/estimate", json=EST)
            b = await c.post("/api/v1/estimate", json=EST)
            other = await c.post("/api/v1/estimate", json={**EST, "context": 4096})
        assert a.status_code == b.status_code == other.status_code == 200
        assert a.content == b.content and a.headers["vram-result-signature"] == b.headers["vram-result-signature"]
        assert other.json()["kv_cache_bytes"] == 2 * a.json()["kv_cache_bytes"]
        assert [int(r.headers["ratelimit-remaining"]) for r in (a, b, other)] == [2400, 2300, 2200]
        assert svc.answers.hits == 1 and len(svc.answers) == 2
        # a kept answer is exactly the one computed afresh
        svc.answers._items.clear()
        async with client_for(app) as c:
            fresh = await c.post("/api/v1/estimate", json=EST)
        assert fresh.content == a.content


def test_answers_that_read_this_machines_gpus_are_never_kept() -> None:
    assert answer_key("fit", FitBody.model_validate({"model": "llama-3.2-1b", "gpu": "local"})) is None
    assert answer_key("fit", FitBody.model_validate({"model": "llama-3.2-1b", "gpu": "rtx-4090"})) is not None
    key = answer_key("estimate", EstimateBody.model_validate(EST))
    assert key is not None and key == answer_key("estimate", EstimateBody.model_validate(dict(reversed(EST.items()))))


def test_sqlite_debits_skip_the_flush_and_everything_else_waits_for_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        levels = []
        for durable in (True, False, False, True):
            with db.tx(durable=durable, immediate=not durable) as conn:
                levels.append(conn.exec_driver_sql("PRAGMA synchronous").scalar())
        assert levels == [2, 1, 1, 2]  # FULL, NORMAL (WAL: no flush at commit), FULL again
        with db.raw() as (_, raw):
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


async def test_sqlite_charge_keeps_counter_ledger_and_balance_together(tmp_path: Path) -> None:
    with app_for(settings_for(tmp_path)) as app:
        svc = app.state.services
        uid = signup_user(svc, "a@example.com", "long enough password")
        svc.quota.credit(uid, 150, "admin")
        token = svc.sessions.create(uid, svc.settings.clock())
        async with client_for(app) as c:
            codes = [(await c.post("/api/v1/estimate", json=EST, headers=bearer(token))).status_code for _ in range(52)]
        assert codes == [200] * 51 + [429]  # 5,000 daily + 150 purchased: 51 estimates, 50 tokens left
        with sqlite3.connect(tmp_path / "vram.sqlite3") as conn:
            rows = conn.execute(
                "SELECT bucket, SUM(amount), COUNT(*) FROM ledger WHERE user_id = ? GROUP BY bucket ORDER BY bucket",
                (uid,),
            ).fetchall()
            balance = conn.execute("SELECT purchased_tokens FROM users WHERE id = ?", (uid,)).fetchone()[0]
            used = conn.execute("SELECT used FROM counters WHERE key = ?", (f"user:{uid}",)).fetchone()[0]
        assert rows == [("daily", -5000, 50), ("purchased", 150 - 100, 2)]  # the grant and one debit
        assert balance == 50 and used == 5000


@needs_pg_redis
async def test_postgresql_debits_commit_asynchronously_and_sessions_carry_the_email(tmp_path: Path) -> None:
    with pg_database() as url, redis_prefix() as prefix:
        settings = settings_for(tmp_path, database_url=url, redis_url=REDIS_URL, redis_prefix=prefix)
        with app_for(settings) as app:
            svc = app.state.services
            modes = []
            for durable in (True, False, True):
                with svc.db.tx(durable=durable) as conn:
                    modes.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar())
            assert modes == ["on", "off", "on"]
            uid = signup_user(svc, "pg@example.com", "long enough password")
            svc.quota.credit(uid, 1000, "admin")
            token = svc.sessions.create(uid, svc.settings.clock(), "pg@example.com")
            assert svc.sessions.lookup(token, svc.settings.clock()) == (uid, "pg@example.com")
            old_style = svc.sessions.create(uid, svc.settings.clock())  # a session kept without the email
            sub, live = svc.subject_for("198.51.100.1", old_style)
            assert live == old_style and sub.email == "pg@example.com" and sub.user_id == uid
            async with client_for(app) as c:
                for _ in range(60):
                    r = await c.post("/api/v1/estimate", json=EST, headers=bearer(token))
                    assert r.status_code == 200
                q = (await c.get("/api/v1/quota", headers=bearer(token))).json()
            assert (q["daily_remaining"], q["purchased"]) == (0, 0)
            assert svc.quota.ledger_balance(uid) == 0
            with svc.db.engine.connect() as conn:
                rows: Any = conn.exec_driver_sql(
                    "SELECT bucket, SUM(amount), COUNT(*) FROM ledger WHERE user_id = %s AND amount < 0 "
                    "GROUP BY bucket ORDER BY bucket",
                    (uid,),
                ).all()
            assert [tuple(r) for r in rows] == [("daily", -5000, 50), ("purchased", -1000, 10)]


def test_sqlite_checkpoints_run_beside_the_debits_and_stop_with_the_database(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    db = Database(f"sqlite:///{path}")
    try:
        with db.direct() as conn:
            # no commit copies the WAL back into the database file (that is the thread's work)
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            conn.execute("CREATE TABLE blobs (b BLOB)")
        written = 0
        for _ in range(240):  # ≈ 7.5 MB over ≈ 1.2 s: without checkpoints the WAL would hold all of it
            with db.direct() as conn:
                conn.execute("INSERT INTO blobs VALUES (randomblob(32768))")
            written += 32768
            time.sleep(0.005)
        wal = Path(f"{path}-wal").stat().st_size
        assert written > 7_000_000 and wal < written / 3
        thread = db._checkpointer
        assert thread is not None and thread.is_alive()
    finally:
        db.close()
    assert not thread.is_alive()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 240
