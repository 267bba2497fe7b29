"""Accounts: argon2 password hashes, sign-in sessions (database or Redis), CSRF tokens, result signatures.

A session token is 256 random bits; it is the Bearer token of the API and the value of the HttpOnly session cookie.
Only its SHA-256 is stored, so a leaked database cannot be replayed as sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select

from .storage import Database, SessionRow

SESSION_COOKIE = "vram_session"
CSRF_COOKIE = "vram_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
# verifying against this when the email is unknown keeps the timing the same as for a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


class Sessions(Protocol):
    def create(self, user_id: int, now: float, email: str | None = None) -> str: ...

    def user_id(self, token: str, now: float) -> int | None: ...

    def lookup(self, token: str, now: float) -> tuple[int, str | None] | None:
        """The live session's user id and, where the store keeps it, the account's email."""
        ...

    def delete(self, token: str) -> None: ...

    def delete_user(self, user_id: int) -> None: ...


_LOOKUP = (
    "SELECT s.user_id, s.expires_at, u.email FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = %s"
)


class SqlSessions:
    def __init__(self, db: Database, ttl_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s

    def create(self, user_id: int, now: float, email: str | None = None) -> str:
        token = secrets.token_urlsafe(32)
        with self.db.tx() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.expires_at <= now))  # expired sessions go
            conn.execute(
                insert(SessionRow).values(
                    token_hash=token_hash(token), user_id=user_id, created_at=now, expires_at=now + self.ttl_s
                )
            )
        return token

    def user_id(self, token: str, now: float) -> int | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(SessionRow.user_id, SessionRow.expires_at).where(SessionRow.token_hash == token_hash(token))
            ).first()
        if row is None or row.expires_at <= now:
            return None
        return int(row.user_id)

    def lookup(self, token: str, now: float) -> tuple[int, str | None] | None:
        """One statement: the session joined to its account (a session whose account is gone is no session)."""
        row = self.db.one(_LOOKUP.replace("%s", "?"), _LOOKUP, (token_hash(token),))
        if row is None or row[1] <= now:
            return None
        return int(row[0]), str(row[2])

    def delete(self, token: str) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.token_hash == token_hash(token)))

    def delete_user(self, user_id: int) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(SessionRow).where(SessionRow.user_id == user_id))


class RedisSessions:
    """Sessions shared by every worker process: prefix+session:<hash> -> "<user id> <email>" (or the user id alone,
    as sessions made before the email was kept there), with a TTL. Keeping the email saves a database query on
    every signed-in request."""

    def __init__(self, client: Any, prefix: str, ttl_s: float) -> None:
        self.r = client
        self.prefix = prefix
        self.ttl_s = int(ttl_s)

    def create(self, user_id: int, now: float, email: str | None = None) -> str:
        token = secrets.token_urlsafe(32)
        h = token_hash(token)
        pipe = self.r.pipeline()
        pipe.set(f"{self.prefix}session:{h}", str(user_id) if email is None else f"{user_id} {email}", ex=self.ttl_s)
        pipe.sadd(f"{self.prefix}user-sessions:{user_id}", h)
        pipe.expire(f"{self.prefix}user-sessions:{user_id}", self.ttl_s)
        pipe.execute()
        return token

    def user_id(self, token: str, now: float) -> int | None:
        found = self.lookup(token, now)
        return found[0] if found is not None else None

    def lookup(self, token: str, now: float) -> tuple[int, str | None] | None:
        return self.parse(self.r.get(self.key(token)))

    def key(self, token: str) -> str:
        """The Redis key of a session token."""
        return f"{self.prefix}session:{token_hash(token)}"

    @staticmethod
    def parse(value: Any) -> tuple[int, str | None] | None:
        """A session's stored value as (user id, email or None); None: no such session."""
        if value is None:
            return None
        uid, _, email = (value.decode() if isinstance(value, bytes) else str(value)).partition(" ")
        return int(uid), email or None

    def delete(self, token: str) -> None:
        self.r.delete(f"{self.prefix}session:{token_hash(token)}")

    def delete_user(self, user_id: int) -> None:
        key = f"{self.prefix}user-sessions:{user_id}"
        hashes = self.r.smembers(key)
        keys = [f"{self.prefix}session:{h.decode() if isinstance(h, bytes) else h}" for h in hashes]
        if keys:
            self.r.delete(*keys)
        self.r.delete(key)


def csrf_ok(cookie_value: str | None, submitted: str | None) -> bool:
    """Double-submit check: the form field (or X-CSRF-Token header) must equal the CSRF cookie."""
    return bool(cookie_value and submitted and hmac.compare_digest(cookie_value, submitted))


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign_result(secret: str, kind: str, request: dict[str, Any], result: dict[str, Any]) -> str:
    """An HMAC over a computed result, so saved and shared results are ones this server computed."""
    body = canonical({"kind": kind, "request": request, "result": result})
    return hmac.new(secret.encode(), b"result:" + body, hashlib.sha256).hexdigest()


def verify_result(secret: str, kind: str, request: dict[str, Any], result: dict[str, Any], signature: str) -> bool:
    return hmac.compare_digest(sign_result(secret, kind, request, result), signature or "")
