"""SQLite debits of requests that arrive together commit in one transaction (Quota.charge_together): each debit in
a savepoint of its own, run one after another, so the batch is as exact as one charge at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from test_web_support import Clock, app_for, settings_for
from vram.web.quota import Quota, Subject
from vram.web.services import Services

pytestmark = pytest.mark.anyio


def _user(svc: Services, email: str) -> int:
    from vram.web.api import signup_user

    return signup_user(svc, email, "correct horse battery")


def _batches(quota: Quota, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    commit = quota._commit_batch

    def counted() -> None:
        sizes.append(len(quota._batch))
        commit()

    monkeypatch.setattr(quota, "_commit_batch", counted)
    return sizes


async def test_a_batch_pays_exactly_what_each_charge_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with app_for(settings_for(tmp_path, Clock())) as app:
        svc: Services = app.state.services
        uid = _user(svc, "batch@example.com")
        svc.quota.credit(uid, 1000, "admin")
        user = Subject(key=f"user:{uid}", user_id=uid)
        anon = Subject(key="anon:batch")
        sizes = _batches(svc.quota, monkeypatch)
        # 60 debits of 100 can be paid (5,000 daily + 1,000 purchased), 25 anonymous ones (2,500)
        got: list[Any] = await asyncio.gather(
            *(svc.quota.charge_together(s, 100, "estimate") for _ in range(80) for s in (user, anon))
        )
        assert sizes == [160]  # all in one transaction
        paid_user = [ok for (ok, _), i in zip(got, range(160), strict=True) if i % 2 == 0]
        paid_anon = [ok for (ok, _), i in zip(got, range(160), strict=True) if i % 2 == 1]
        assert paid_user == [True] * 60 + [False] * 20  # in order: each debit sees those before it
        assert paid_anon == [True] * 25 + [False] * 55
        assert [st.remaining for ok, st in got[:120:2]] == list(range(5900, -1, -100))
        assert all(st.remaining == 0 for ok, st in got[120::2])
        state = svc.quota.state(user)
        assert (state.daily_remaining, state.purchased) == (0, 0)
        assert svc.quota.ledger_balance(uid) == 0
        assert svc.quota.state(anon).remaining == 0


async def test_a_failing_debit_undoes_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with app_for(settings_for(tmp_path, Clock())) as app:
        svc: Services = app.state.services
        uid = _user(svc, "first@example.com")
        user = Subject(key=f"user:{uid}", user_id=uid)
        ghost = Subject(key="user:999999", user_id=999999)  # no such account: refused, nothing of it kept
        real_debit = svc.quota._debit_sqlite

        def debit(raw: Any, subject: Subject, *args: Any) -> Any:
            if subject.key == "anon:broken":
                raw.execute("INSERT INTO counters (key, window_start, used) VALUES ('anon:broken', 0, 1)")
                raise RuntimeError("broken")  # after a write: the savepoint takes it back
            return real_debit(raw, subject, *args)

        monkeypatch.setattr(svc.quota, "_debit_sqlite", debit)
        sizes = _batches(svc.quota, monkeypatch)
        got = await asyncio.gather(
            svc.quota.charge_together(user, 100, "estimate"),
            svc.quota.charge_together(ghost, 100, "estimate"),
            svc.quota.charge_together(Subject(key="anon:broken"), 100, "estimate"),
            svc.quota.charge_together(user, 100, "estimate"),
            return_exceptions=True,
        )
        assert sizes == [4]
        assert got[0] == (True, got[0][1]) and got[0][1].remaining == 4900  # type: ignore[index]
        assert got[1][0] is False  # type: ignore[index]
        assert isinstance(got[2], RuntimeError)
        assert got[3][0] is True and got[3][1].remaining == 4800  # type: ignore[index]
        assert svc.quota.state(Subject(key="anon:broken")).remaining == 2500
        assert svc.db.one("SELECT count(*) FROM counters WHERE key = 'anon:broken'", "", ())[0] == 0


async def test_requests_together_get_answers_only_after_their_debit(tmp_path: Path) -> None:
    """Through the API: 120 concurrent estimates against 2,500 anonymous tokens, 25 answered."""
    from test_web_support import client_for

    with app_for(settings_for(tmp_path, Clock())) as app:
        svc: Services = app.state.services
        calls: list[int] = []
        commit = svc.quota._commit_batch

        def counted() -> None:
            calls.append(len(svc.quota._batch))
            commit()

        svc.quota._commit_batch = counted  # type: ignore[method-assign]
        async with client_for(app) as c:
            rs = await asyncio.gather(*(c.post("/api/v1/estimate", json={"model": "llama-3.2-1b"}) for _ in range(120)))
        codes = [r.status_code for r in rs]
        assert codes.count(200) == 25 and codes.count(429) == 95
        assert sum(calls) == 120 and max(calls) > 1  # some debits did share a commit
