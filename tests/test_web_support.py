"""Helpers for the web tests (no tests here): an injectable clock, apps on temp SQLite or on the local PostgreSQL and
Redis servers, an in-process ASGI client, and Stripe-style webhook signing."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from vram.web.app import create_app
from vram.web.settings import Settings

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/15"  # a db number of its own; keys also carry a per-run prefix
T0 = 1_800_000_000.0


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def settings_for(tmp_path: Path, clock: Clock | None = None, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path, secret_key="test-secret-key", clock=clock or Clock(), **kw)


@contextlib.contextmanager
def app_for(settings: Settings) -> Iterator[Any]:
    app = create_app(settings)
    try:
        yield app
    finally:
        app.state.services.close()


@contextlib.asynccontextmanager
async def client_for(app: Any, address: str = "203.0.113.7") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


def redis_available() -> bool:
    try:
        import redis

        r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        ok = bool(r.ping())
        r.close()
        return ok
    except Exception:
        return False


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test run, dropped afterwards."""
    import psycopg

    name = f"vram_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own in the test db; every key under it is deleted afterwards."""
    import redis

    prefix = f"vramtest:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        r = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


needs_pg_redis = pytest.mark.skipif(
    not (pg_available() and redis_available()),
    reason="PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are not running",
)


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's webhook signature scheme: t=<unix time>,v1=<HMAC-SHA256 of "<t>.<payload>" with the secret>."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def checkout_event(event_id: str, user_id: int, tokens: int) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "object": "checkout.session",
                    "payment_status": "paid",
                    "metadata": {"user_id": str(user_id), "tokens": str(tokens), "pack": "starter"},
                }
            },
        }
    ).encode()


async def signup(c: httpx.AsyncClient, email: str, password: str = "correct horse battery") -> dict[str, Any]:
    r = await c.post("/api/v1/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    c.cookies.clear()  # API clients use the Bearer token
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page (name -> unescaped value)."""
    return {
        m.group(1): unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    }
