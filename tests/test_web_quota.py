"""The token allowance: exact limits, the 24-hour reset, purchased tokens after the allowance, atomic debits under
concurrency (SQLite, and PostgreSQL + Redis), Stripe webhooks that credit once, `vram admin grant`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from test_web_support import (
    REDIS_URL,
    Clock,
    app_for,
    bearer,
    checkout_event,
    client_for,
    needs_pg_redis,
    pg_database,
    redis_prefix,
    settings_for,
    signup,
    stripe_signature,
)
from vram.web.quota import Subject
from vram.web.services import Services
from vram.web.storage import Counter, LedgerRow

pytestmark = pytest.mark.anyio
EST = {"model": "llama-3.2-1b", "context": 1024}
WEBHOOK_SECRET = "whsec_test_secret"


async def test_anonymous_allowance_is_exactly_2500_and_returns_after_24h(tmp_path: Path) -> None:
    clock = Clock()
    with app_for(settings_for(tmp_path, clock)) as app:
        async with client_for(app) as c:
            for i in range(25):
                r = await c.post("/api/v1/estimate", json=EST)
                assert r.status_code == 200
                assert r.headers["ratelimit-remaining"] == str(2500 - 100 * (i + 1))
                clock.advance(60)
            r = await c.post("/api/v1/estimate", json=EST)
            assert r.status_code == 429
            body = r.json()
            assert body["remaining"] == 0 and body["limit"] == 2500 and body["cost_tokens"] == 100
            assert "sign up" in body["how_to_get_more"] and "/pricing" in body["how_to_get_more"]
            assert body["reset_in_s"] == 86400 - 25 * 60
            assert r.headers["retry-after"] == str(86400 - 25 * 60)
            assert r.headers["ratelimit-reset"] == str(86400 - 25 * 60)
            # clearing cookies changes nothing: the key is the (hashed) address
            c.cookies.clear()
            assert (await c.post("/api/v1/estimate", json=EST)).status_code == 429
            clock.advance(86400 - 25 * 60 - 1)
            assert (await c.post("/api/v1/estimate", json=EST)).status_code == 429
            clock.advance(1)
            r = await c.post("/api/v1/estimate", json=EST)
            assert r.status_code == 200
            assert r.headers["ratelimit-remaining"] == "2400"
            assert r.headers["ratelimit-reset"] == "86400"
        async with client_for(app, address="198.51.100.9") as other:
            assert (await other.get("/api/v1/quota")).json()["remaining"] == 2500
        # only the salted hash of the address is stored
        with app.state.services.db.engine.connect() as conn:
            keys = [k for (k,) in conn.execute(select(Counter.key))]
        assert keys and all(k.startswith("anon:") and "203.0.113.7" not in k for k in keys)


async def test_free_account_allowance_is_exactly_5000(tmp_path: Path) -> None:
    clock = Clock()
    with app_for(settings_for(tmp_path, clock)) as app:
        async with client_for(app) as c:
            token = (await signup(c, "ada@example.com"))["token"]
            for _ in range(50):
                r = await c.post("/api/v1/estimate", json=EST, headers=bearer(token))
                assert r.status_code == 200
            assert r.headers["ratelimit-limit"] == "5000"
            assert r.headers["ratelimit-remaining"] == "0"
            r = await c.post("/api/v1/estimate", json=EST, headers=bearer(token))
            assert r.status_code == 429
            assert "token pack" in r.json()["how_to_get_more"]
            # the anonymous allowance of the same address is separate
            assert (await c.post("/api/v1/estimate", json=EST)).status_code == 200
            clock.advance(86400)
            r = await c.post("/api/v1/estimate", json=EST, headers=bearer(token))
            assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "4900"


async def test_purchased_tokens_are_spent_after_the_allowance(tmp_path: Path) -> None:
    clock = Clock()
    with app_for(settings_for(tmp_path, clock)) as app:
        svc: Services = app.state.services
        async with client_for(app) as c:
            user = await signup(c, "grace@example.com")
            h = bearer(user["token"])
            assert svc.quota.credit(user["user_id"], 250, "admin")
            q = (await c.get("/api/v1/quota", headers=h)).json()
            assert (q["daily_remaining"], q["purchased"], q["remaining"]) == (5000, 250, 5250)
            for _ in range(50):
                assert (await c.post("/api/v1/estimate", json=EST, headers=h)).status_code == 200
            q = (await c.get("/api/v1/quota", headers=h)).json()
            assert (q["daily_remaining"], q["purchased"]) == (0, 250)  # untouched while the allowance lasted
            r = await c.post("/api/v1/estimate", json=EST, headers=h)
            assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "150"
            assert (await c.post("/api/v1/estimate", json=EST, headers=h)).status_code == 200
            r = await c.post("/api/v1/estimate", json=EST, headers=h)
            assert r.status_code == 429 and r.json()["remaining"] == 50
            clock.advance(86400)  # the allowance returns; purchased tokens did not expire
            q = (await c.get("/api/v1/quota", headers=h)).json()
            assert (q["daily_remaining"], q["purchased"]) == (5000, 50)
        assert svc.quota.ledger_balance(user["user_id"]) == 50
        with svc.db.engine.connect() as conn:
            daily = conn.execute(select(func.sum(LedgerRow.amount)).where(LedgerRow.bucket == "daily")).scalar()
        assert daily == -5000


def test_a_charge_takes_the_rest_of_the_allowance_then_purchased(tmp_path: Path) -> None:
    clock = Clock()
    svc = Services.build(settings_for(tmp_path, clock))
    try:
        uid = _user(svc, "split@example.com")
        sub = Subject(key=f"user:{uid}", user_id=uid)
        svc.quota.credit(uid, 300, "admin")
        assert svc.quota.charge(sub, 4900, "test")[0]
        ok, state = svc.quota.charge(sub, 250, "fit")  # 100 from the allowance, 150 purchased
        assert ok and (state.daily_remaining, state.purchased) == (0, 150)
        ok, state = svc.quota.charge(sub, 200, "fit")  # all or nothing
        assert not ok and (state.daily_remaining, state.purchased) == (0, 150)
        assert svc.quota.ledger_balance(uid) == 150
    finally:
        svc.close()


def _user(svc: Services, email: str) -> int:
    from vram.web.api import signup_user

    return signup_user(svc, email, "long enough password")


def _hammer(svc: Services, sub: Subject, n: int, cost: int) -> list[bool]:
    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(lambda _: svc.quota.charge(sub, cost, "estimate")[0], range(n)))


async def test_concurrent_requests_never_overspend_sqlite(tmp_path: Path) -> None:
    with app_for(settings_for(tmp_path, Clock())) as app:
        async with client_for(app) as c:
            rs = await asyncio.gather(*(c.post("/api/v1/estimate", json=EST) for _ in range(120)))
            codes = sorted(r.status_code for r in rs)
            assert codes.count(200) == 25 and codes.count(429) == 95
            assert (await c.get("/api/v1/quota")).json()["remaining"] == 0
        svc: Services = app.state.services
        uid = _user(svc, "many@example.com")
        svc.quota.credit(uid, 1000, "admin")
        results = _hammer(svc, Subject(key=f"user:{uid}", user_id=uid), 150, 100)
        assert results.count(True) == 60  # 5,000 daily + 1,000 purchased
        state = svc.quota.state(Subject(key=f"user:{uid}", user_id=uid))
        assert (state.daily_remaining, state.purchased) == (0, 0)
        assert svc.quota.ledger_balance(uid) == 0


@pytest.fixture
def pg_redis_settings(tmp_path: Path) -> Iterator[Any]:
    with pg_database() as url, redis_prefix() as prefix:
        yield settings_for(tmp_path, Clock(), database_url=url, redis_url=REDIS_URL, redis_prefix=prefix)


@needs_pg_redis
async def test_concurrent_requests_never_overspend_postgresql_redis(pg_redis_settings: Any) -> None:
    with app_for(pg_redis_settings) as app:
        svc: Services = app.state.services
        assert svc.db.dialect == "postgresql" and svc.redis is not None
        async with client_for(app) as c:
            rs = await asyncio.gather(*(c.post("/api/v1/estimate", json=EST) for _ in range(120)))
            assert sorted(r.status_code for r in rs).count(200) == 25
            assert (await c.get("/api/v1/quota")).json()["remaining"] == 0
        uid = _user(svc, "pg@example.com")
        svc.quota.credit(uid, 1000, "admin")
        sub = Subject(key=f"user:{uid}", user_id=uid)
        results = _hammer(svc, sub, 150, 100)
        assert results.count(True) == 60
        state = svc.quota.state(sub)
        assert (state.daily_remaining, state.purchased) == (0, 0)
        assert svc.quota.ledger_balance(uid) == 0
        pg_redis_settings.clock.advance(86400)
        assert svc.quota.state(sub).daily_remaining == 5000


@needs_pg_redis
def test_concurrent_debits_sql_counters_on_postgresql(tmp_path: Path) -> None:
    """Without Redis the counters live in PostgreSQL rows, locked per charge."""
    with pg_database() as url:
        svc = Services.build(settings_for(tmp_path, Clock(), database_url=url))
        try:
            anon = Subject(key="anon:concurrency")
            assert _hammer(svc, anon, 120, 100).count(True) == 25
            uid = _user(svc, "pgsql@example.com")
            svc.quota.credit(uid, 500, "admin")
            assert _hammer(svc, Subject(key=f"user:{uid}", user_id=uid), 120, 100).count(True) == 55
            assert svc.quota.ledger_balance(uid) == 0
        finally:
            svc.close()


@needs_pg_redis
async def test_sessions_live_in_redis(pg_redis_settings: Any) -> None:
    import redis

    with app_for(pg_redis_settings) as app:
        async with client_for(app) as c:
            token = (await signup(c, "redis@example.com"))["token"]
            assert (await c.get("/api/v1/quota", headers=bearer(token))).json()["signed_in"] is True
            r = redis.Redis.from_url(REDIS_URL)
            keys = [k.decode() for k in r.scan_iter(match=pg_redis_settings.redis_prefix + "session:*")]
            r.close()
            assert len(keys) == 1 and token not in keys[0]
            await c.post("/api/v1/auth/logout", headers=bearer(token))
            assert (await c.get("/api/v1/quota", headers=bearer(token))).json()["signed_in"] is False


async def test_stripe_webhook_credits_once_per_event(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, stripe_secret_key="sk_test_x", stripe_webhook_secret=WEBHOOK_SECRET)
    with app_for(settings) as app:
        async with client_for(app) as c:
            user = await signup(c, "buyer@example.com")
            payload = checkout_event("evt_123", user["user_id"], 200_000)
            for attempt in range(3):
                r = await c.post(
                    "/api/v1/webhooks/stripe",
                    content=payload,
                    headers={
                        "stripe-signature": stripe_signature(payload, WEBHOOK_SECRET),
                        "content-type": "application/json",
                    },
                )
                assert r.status_code == 200
                assert r.json()["credited"] is (attempt == 0)
            q = (await c.get("/api/v1/quota", headers=bearer(user["token"]))).json()
            assert q["purchased"] == 200_000
            assert app.state.services.quota.ledger_balance(user["user_id"]) == 200_000
            other = checkout_event("evt_456", user["user_id"], 1_000_000)
            r = await c.post(
                "/api/v1/webhooks/stripe",
                content=other,
                headers={"stripe-signature": stripe_signature(other, WEBHOOK_SECRET)},
            )
            assert r.json()["credited"] is True
            assert (await c.get("/api/v1/quota", headers=bearer(user["token"]))).json()["purchased"] == 1_200_000
            # forged or stale signatures credit nothing
            forged = checkout_event("evt_789", user["user_id"], 9_000_000)
            for sig in (
                stripe_signature(forged, "whsec_wrong"),
                "t=1,v1=00",
                "",
                stripe_signature(forged, WEBHOOK_SECRET, timestamp=1_000_000_000),
            ):
                r = await c.post("/api/v1/webhooks/stripe", content=forged, headers={"stripe-signature": sig})
                assert r.status_code == 400
            assert (await c.get("/api/v1/quota", headers=bearer(user["token"]))).json()["purchased"] == 1_200_000


async def test_without_stripe_keys_purchases_are_off(tmp_path: Path) -> None:
    with app_for(settings_for(tmp_path)) as app:
        async with client_for(app) as c:
            payload = checkout_event("evt_1", 1, 10)
            r = await c.post(
                "/api/v1/webhooks/stripe",
                content=payload,
                headers={"stripe-signature": stripe_signature(payload, WEBHOOK_SECRET)},
            )
            assert r.status_code == 503
            page = await c.get("/pricing")
            assert "Purchases are off on this server" in page.text
            assert "$5.00" in page.text and "200,000" in page.text
            assert (await c.get("/pricing.json")).json()["purchases_enabled"] is False


def test_admin_grant(tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VRAM_SECRET_KEY", "test-secret-key")
    monkeypatch.delenv("VRAM_DATABASE_URL", raising=False)
    monkeypatch.delenv("VRAM_REDIS_URL", raising=False)
    svc = Services.build(settings_for(tmp_path))
    try:
        uid = _user(svc, "Admin.Grant@Example.com")
    finally:
        svc.close()
    r = run_cli("admin", "grant", "admin.grant@example.com", "12345")
    assert r.rc == 0, r.err
    assert "granted 12,345 tokens to admin.grant@example.com" in r.out
    r = run_cli("admin", "grant", "nobody@example.com", "5")
    assert r.rc == 2 and "no account" in r.err
    svc = Services.build(settings_for(tmp_path))
    try:
        assert svc.quota.purchased(uid) == 12345 == svc.quota.ledger_balance(uid)
    finally:
        svc.close()


async def test_buying_a_pack_goes_to_stripe_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stripe

    calls: list[dict[str, Any]] = []

    class FakeSession:
        url = "https://checkout.stripe.com/c/pay/cs_test_123"

    def create(**kwargs: Any) -> FakeSession:
        calls.append(kwargs)
        return FakeSession()

    monkeypatch.setattr(stripe.checkout.Session, "create", staticmethod(create))
    settings = settings_for(tmp_path, stripe_secret_key="sk_test_x", stripe_webhook_secret=WEBHOOK_SECRET)
    with app_for(settings) as app:
        async with client_for(app) as c:
            await c.get("/")
            csrf = c.cookies["vram_csrf"]
            r = await c.post("/buy", data={"pack": "starter", "csrf_token": csrf})
            assert r.status_code == 303 and r.headers["location"] == "/signin?next=/pricing"
            r = await c.post(
                "/signup", data={"email": "pay@example.com", "password": "long enough pw", "csrf_token": csrf}
            )
            assert "Buy" in (await c.get("/pricing")).text
            r = await c.post("/buy", data={"pack": "starter", "csrf_token": csrf})
            assert r.status_code == 303 and r.headers["location"] == FakeSession.url
            r = await c.post("/api/v1/checkout", params={"pack": "nope"}, headers={"x-csrf-token": csrf})
            assert r.status_code == 422 and r.json()["field"] == "pack"
    (call,) = calls
    assert call["api_key"] == "sk_test_x" and call["mode"] == "payment"
    assert call["line_items"][0]["price_data"]["unit_amount"] == 500
    assert call["metadata"]["tokens"] == "200000" and call["customer_email"] == "pay@example.com"


def test_expired_windows_are_purged(tmp_path: Path) -> None:
    clock = Clock()
    svc = Services.build(settings_for(tmp_path, clock))
    try:
        svc.counters.take("anon:old", 100, 2500, 86400, clock())
        clock.advance(3 * 86400)
        svc.counters.take("anon:new", 100, 2500, 86400, clock())
        svc.counters.purge(clock() - 2 * 86400)
        with svc.db.engine.connect() as conn:
            assert [k for (k,) in conn.execute(select(Counter.key))] == ["anon:new"]
    finally:
        svc.close()


async def test_signed_but_malformed_webhook_events_are_400(tmp_path: Path) -> None:
    import json

    settings = settings_for(tmp_path, stripe_secret_key="sk_test_x", stripe_webhook_secret=WEBHOOK_SECRET)
    good = json.loads(checkout_event("evt_ok", 1, 10))
    bad_events: list[Any] = [
        None,
        [1],
        {**good, "data": [1]},
        {**good, "data": {"object": "x"}},
        {**good, "id": {"x": 1}},
        *(
            {**good, "data": {"object": {"payment_status": "paid", "metadata": {"user_id": u, "tokens": t}}}}
            for u, t in (("1", "0"), ("1", "-5"), ("1", str(10**30)), (str(10**30), "5"), ("1", "x"))
        ),
    ]
    with app_for(settings) as app:
        async with client_for(app) as c:
            await signup(c, "hostile@example.com")
            for event in bad_events:
                payload = json.dumps(event).encode()
                r = await c.post(
                    "/api/v1/webhooks/stripe",
                    content=payload,
                    headers={"stripe-signature": stripe_signature(payload, WEBHOOK_SECRET)},
                )
                assert r.status_code == 400, (event, r.status_code, r.text)
        assert app.state.services.quota.ledger_balance(1) == 0
