"""Accounts, sessions, CSRF, sign-in throttling, history isolation, share links, account deletion, client address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from test_web_support import app_for, bearer, client_for, settings_for, signup
from vram.web.storage import HistoryRow, SessionRow, ShareRow, User

pytestmark = pytest.mark.anyio
EST = {"model": "llama-3.2-1b", "context": 2048}


async def _signed_estimate(c: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = await c.post("/api/v1/estimate", json=EST, headers=headers or {})
    assert r.status_code == 200
    return {"kind": "estimate", "request": EST, "result": r.json(), "signature": r.headers["vram-result-signature"]}


async def test_signup_login_logout(app: Any) -> None:
    async with client_for(app) as c:
        user = await signup(c, "  Ada@Example.com ")
        assert user["email"] == "ada@example.com"
        me = (await c.get("/api/v1/quota", headers=bearer(user["token"]))).json()
        assert me["signed_in"] is True and me["email"] == "ada@example.com" and me["limit"] == 5000
        r = await c.post("/api/v1/auth/login", json={"email": "ADA@example.com", "password": "correct horse battery"})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert "vram_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        token2 = r.json()["token"]
        assert token2 != user["token"]
        r = await c.post("/api/v1/auth/logout", headers=bearer(token2))
        assert r.json() == {"signed_out": True}
        assert (await c.get("/api/v1/quota", headers=bearer(token2))).json()["signed_in"] is False
        assert (await c.get("/api/v1/quota", headers=bearer(user["token"]))).json()["signed_in"] is True
        r = await c.post("/api/v1/auth/signup", json={"email": "ada@example.com", "password": "another password"})
        assert r.status_code == 409 and r.json()["field"] == "email"
        r = await c.post("/api/v1/auth/signup", json={"email": "bob@example.com", "password": "short"})
        assert r.status_code == 422 and r.json()["field"] == "password"
        r = await c.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": "long enough!"})
        assert r.status_code == 422 and r.json()["field"] == "email"
    with app.state.services.db.engine.connect() as conn:
        stored = conn.execute(select(User.password_hash)).scalar()
        session_hashes = [h for (h,) in conn.execute(select(SessionRow.token_hash))]
    assert str(stored).startswith("$argon2id$")
    assert user["token"] not in session_hashes and len(session_hashes) == 1


async def test_sign_in_is_throttled(app: Any) -> None:
    clock = app.state.services.settings.clock
    async with client_for(app) as c:
        await signup(c, "eve@example.com")
        for _ in range(5):
            r = await c.post("/api/v1/auth/login", json={"email": "eve@example.com", "password": "guess guess"})
            assert r.status_code == 401
        r = await c.post("/api/v1/auth/login", json={"email": "eve@example.com", "password": "correct horse battery"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        clock.advance(15 * 60)
        r = await c.post("/api/v1/auth/login", json={"email": "eve@example.com", "password": "correct horse battery"})
        assert r.status_code == 200
        r = await c.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
        assert r.status_code == 401 and r.json()["error"] == "wrong email or password"


async def test_cookie_sessions_need_the_csrf_header_for_api_writes(app: Any) -> None:
    async with client_for(app) as c:
        await c.get("/")
        csrf = c.cookies["vram_csrf"]
        r = await c.post("/api/v1/auth/signup", json={"email": "cookie@example.com", "password": "long enough pw"})
        assert r.status_code == 201 and c.cookies.get("vram_session")
        saved = await _signed_estimate(c, {"x-csrf-token": csrf})
        r = await c.post("/api/v1/history", json=saved)
        assert r.status_code == 403 and r.json()["field"] == "csrf_token"
        r = await c.post("/api/v1/history", json=saved, headers={"x-csrf-token": csrf})
        assert r.status_code == 201
        assert (await c.get("/api/v1/history")).status_code == 200  # reads need no token


async def test_history_is_private(app: Any) -> None:
    async with client_for(app) as c:
        alice = bearer((await signup(c, "alice@example.com"))["token"])
        bob = bearer((await signup(c, "bob@example.com"))["token"])
        saved = await _signed_estimate(c, alice)
        r = await c.post("/api/v1/history", json=saved, headers=alice)
        assert r.status_code == 201
        hid = r.json()["id"]
        item = (await c.get(f"/api/v1/history/{hid}", headers=alice)).json()
        assert item["request"]["model"] == "llama-3.2-1b"
        assert item["result"]["total_bytes"] == saved["result"]["total_bytes"]
        assert item["tool_version"] == saved["result"]["vram_version"]
        assert [i["id"] for i in (await c.get("/api/v1/history", headers=alice)).json()["items"]] == [hid]
        # Bob sees nothing of it, by id or in his list, and cannot delete it
        assert (await c.get(f"/api/v1/history/{hid}", headers=bob)).status_code == 404
        assert (await c.get("/api/v1/history", headers=bob)).json()["items"] == []
        assert (await c.delete(f"/api/v1/history/{hid}", headers=bob)).status_code == 404
        assert (await c.get(f"/history/{hid}", headers=bob)).status_code == 404
        assert (await c.get(f"/api/v1/history/{hid}")).status_code == 401
        assert (await c.get("/history.json")).status_code == 401
        r = await c.post("/api/v1/shares", json={"history_id": hid}, headers=bob)
        assert r.status_code == 404
        # a result not computed here (or altered) cannot be saved
        forged = {**saved, "result": {**saved["result"], "total_bytes": 1}}
        r = await c.post("/api/v1/history", json=forged, headers=alice)
        assert r.status_code == 422 and r.json()["field"] == "signature"
        assert (await c.delete(f"/api/v1/history/{hid}", headers=alice)).json() == {"deleted": hid}
        assert (await c.get(f"/api/v1/history/{hid}", headers=alice)).status_code == 404


async def test_share_link_is_public_until_revoked(app: Any) -> None:
    async with client_for(app) as c:
        saved = await _signed_estimate(c)
        r = await c.post("/api/v1/shares", json=saved)
        assert r.status_code == 201
        share = r.json()
        assert len(share["id"]) >= 22  # token_urlsafe(16): 128 random bits
        assert share["url"] == f"http://testserver/s/{share['id']}"
    async with client_for(app, address="192.0.2.50") as stranger:  # signed out, another address
        r = await stranger.get(f"/api/v1/shares/{share['id']}")
        assert r.status_code == 200
        assert r.json()["result"]["total_bytes"] == saved["result"]["total_bytes"]
        assert "owner_user_id" not in r.json()
        page = await stranger.get(f"/s/{share['id']}")
        assert page.status_code == 200 and "Llama 3.2 1B" in page.text and "Revoke" not in page.text
        twin = await stranger.get(f"/s/{share['id']}.json")
        assert twin.json()["id"] == share["id"]
        r = await stranger.delete(f"/api/v1/shares/{share['id']}")
        assert r.status_code == 403
        r = await stranger.delete(f"/api/v1/shares/{share['id']}", headers={"x-delete-token": "wrong"})
        assert r.status_code == 403
    async with client_for(app) as c:
        r = await c.delete(f"/api/v1/shares/{share['id']}", headers={"x-delete-token": share["delete_token"]})
        assert r.json() == {"deleted": share["id"]}
    async with client_for(app, address="192.0.2.50") as stranger:
        assert (await stranger.get(f"/api/v1/shares/{share['id']}")).status_code == 404
        assert (await stranger.get(f"/s/{share['id']}")).status_code == 404
        assert (await stranger.get(f"/s/{share['id']}.json")).status_code == 404


async def test_owner_revokes_a_share_of_a_history_entry(app: Any) -> None:
    async with client_for(app) as c:
        h = bearer((await signup(c, "owner@example.com"))["token"])
        other = bearer((await signup(c, "other@example.com"))["token"])
        hid = (await c.post("/api/v1/history", json=await _signed_estimate(c, h), headers=h)).json()["id"]
        sid = (await c.post("/api/v1/shares", json={"history_id": hid}, headers=h)).json()["id"]
        assert (await c.get(f"/api/v1/shares/{sid}")).status_code == 200
        assert (await c.delete(f"/api/v1/shares/{sid}", headers=other)).status_code == 403
        assert (await c.delete(f"/api/v1/shares/{sid}", headers=h)).status_code == 200
        assert (await c.get(f"/api/v1/shares/{sid}")).status_code == 404


async def test_share_needs_a_genuine_result(app: Any) -> None:
    async with client_for(app) as c:
        saved = await _signed_estimate(c)
        r = await c.post("/api/v1/shares", json={**saved, "result": {**saved["result"], "verdict": "fits"}})
        assert r.status_code == 422 and r.json()["field"] == "signature"
        r = await c.post("/api/v1/shares", json={"kind": "estimate", "request": EST})
        assert r.status_code == 422 and r.json()["field"] == "result"


async def test_account_deletion_removes_the_users_data(app: Any) -> None:
    svc = app.state.services
    async with client_for(app) as c:
        user = await signup(c, "gone@example.com")
        h = bearer(user["token"])
        saved = await _signed_estimate(c, h)
        await c.post("/api/v1/history", json=saved, headers=h)
        await c.post("/api/v1/shares", json=saved, headers=h)
        svc.quota.credit(user["user_id"], 100, "admin")
        r = await c.delete("/api/v1/account", headers=h)
        assert r.json() == {"deleted": True}
        assert (await c.get("/api/v1/quota", headers=h)).json()["signed_in"] is False
        r = await c.post("/api/v1/auth/login", json={"email": "gone@example.com", "password": "correct horse battery"})
        assert r.status_code == 401
    with svc.db.engine.connect() as conn:
        for table in (User, HistoryRow, ShareRow, SessionRow):
            assert conn.execute(select(table)).first() is None, table.__tablename__
    assert svc.quota.ledger_balance(user["user_id"]) == 0


async def test_forwarded_for_is_trusted_only_from_configured_proxies(tmp_path: Path) -> None:
    with app_for(settings_for(tmp_path, trusted_proxies=("10.0.0.0/8",))) as app:
        async with client_for(app, address="198.51.100.1") as direct:
            # not from a proxy: the header is ignored, both requests are the same client
            await direct.post("/api/v1/estimate", json=EST, headers={"x-forwarded-for": "1.1.1.1"})
            r = await direct.get("/api/v1/quota", headers={"x-forwarded-for": "2.2.2.2"})
            assert r.json()["remaining"] == 2400
        async with client_for(app, address="10.1.2.3") as proxy:
            await proxy.post("/api/v1/estimate", json=EST, headers={"x-forwarded-for": "1.1.1.1"})
            await proxy.post("/api/v1/estimate", json=EST, headers={"x-forwarded-for": "9.9.9.9, 1.1.1.1"})
            assert (await proxy.get("/api/v1/quota", headers={"x-forwarded-for": "1.1.1.1"})).json()[
                "remaining"
            ] == 2300
            assert (await proxy.get("/api/v1/quota", headers={"x-forwarded-for": "2.2.2.2"})).json()[
                "remaining"
            ] == 2500
            # a client cannot escape its bucket by prepending addresses: the right-most untrusted hop counts
            r = await proxy.get("/api/v1/quota", headers={"x-forwarded-for": "5.5.5.5, 1.1.1.1, 10.9.9.9"})
            assert r.json()["remaining"] == 2300


async def test_accounts_cannot_be_minted_in_bulk(app: Any) -> None:
    async with client_for(app) as c:
        for i in range(5):
            await signup(c, f"user{i}@example.com")
        r = await c.post("/api/v1/auth/signup", json={"email": "user5@example.com", "password": "long enough pw"})
        assert r.status_code == 429
    async with client_for(app, address="192.0.2.77") as other:
        await signup(other, "user5@example.com")


async def test_oversized_bodies_are_refused(app: Any) -> None:
    async with client_for(app) as c:
        r = await c.post(
            "/api/v1/estimate", content=b"{" + b" " * (1 << 20) + b"}", headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and r.json()["field"] == "body" and r.headers["ratelimit-remaining"] == "2500"

        async def chunks() -> Any:  # no Content-Length: the limit holds while reading
            yield b'{"model": "llama-3.2-1b", "pad": "'
            for _ in range(40):
                yield b"x" * 65536
            yield b'"}'

        r = await c.post("/api/v1/estimate", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "body"
        fleet = {"pools": [{"gpu": "h100-sxm"}], "models": ["llama-3.1-8b"] * 33}
        r = await c.post("/api/v1/plan", json={"fleet": fleet})
        assert r.status_code == 422 and r.json()["field"] == "fleet" and "at most 32 models" in r.json()["error"]
        assert (await c.get("/api/v1/quota")).json()["remaining"] == 2500


async def test_anonymous_use_stores_nothing_but_the_counter(app: Any) -> None:
    from vram.web.storage import Counter, LedgerRow

    async with client_for(app) as c:
        await c.post("/api/v1/estimate", json=EST)
        await c.get("/")
        await c.post("/", data={"model": "llama-3.2-1b", "gpu": "rtx-4090", "csrf_token": c.cookies["vram_csrf"]})
    with app.state.services.db.engine.connect() as conn:
        assert [r.used for r in conn.execute(select(Counter))] == [350]
        for table in (User, SessionRow, LedgerRow, HistoryRow, ShareRow):
            assert conn.execute(select(table)).first() is None, table.__tablename__


async def test_cookies_are_secure_over_https(app: Any) -> None:
    import httpx

    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="https://vram.example") as c:
        r = await c.post("/api/v1/auth/signup", json={"email": "tls@example.com", "password": "long enough pw"})
        cookies = r.headers.get_list("set-cookie")
    session = next(h for h in cookies if h.startswith("vram_session="))
    assert "Secure" in session and "HttpOnly" in session and "SameSite=lax" in session
    assert all("Secure" in h for h in cookies)
