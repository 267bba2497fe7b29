"""Windowed counters: how many tokens a client used in its current 24-hour window, and sign-in failures.

Two stores with the same contract. `take(key, amount, limit)` atomically takes up to `amount` (all of it, or with
partial=True as much as is free) out of `limit`; a window that started `window_s` or more ago is reset first.
- SQL (SQLite / PostgreSQL): the row is locked for the transaction (SQLite BEGIN IMMEDIATE, PostgreSQL FOR UPDATE),
  so the read-modify-write is serialized and concurrent requests never take more than the limit.
- Redis: one Lua script per take, which Redis runs atomically.
- Redis with the SQL store behind it (`FallbackCounters`): while Redis is unreachable, allowances are counted in the
  database instead, so estimates keep working through a Redis outage. In that degraded mode a client's use is split
  between two stores; it is never more than twice its allowance, and it ends when Redis answers again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, delete, select, update

from .storage import Counter, Database


@dataclass(frozen=True)
class Usage:
    used: int
    window_start: float | None  # None: no window open (nothing used yet, or the last one expired)


@dataclass(frozen=True)
class Take:
    taken: int
    used: int
    window_start: float


class Counters(Protocol):
    def peek(self, key: str, window_s: float, now: float) -> Usage: ...

    def take(
        self,
        key: str,
        amount: int,
        limit: int,
        window_s: float,
        now: float,
        *,
        partial: bool = False,
        conn: Connection | None = None,
    ) -> Take: ...

    def refund(self, key: str, amount: int) -> None: ...

    def clear(self, key: str) -> None: ...

    def purge(self, before: float) -> None: ...


class SqlCounters:
    def __init__(self, db: Database) -> None:
        self.db = db

    def peek(self, key: str, window_s: float, now: float) -> Usage:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(Counter.used, Counter.window_start).where(Counter.key == key)).first()
        if row is None or now >= row.window_start + window_s:
            return Usage(0, None)
        return Usage(int(row.used), float(row.window_start))

    def take(
        self,
        key: str,
        amount: int,
        limit: int,
        window_s: float,
        now: float,
        *,
        partial: bool = False,
        conn: Connection | None = None,
    ) -> Take:
        if conn is None:
            with self.db.tx(immediate=True) as c:
                return self._take(c, key, amount, limit, window_s, now, partial)
        return self._take(conn, key, amount, limit, window_s, now, partial)

    def _take(
        self, conn: Connection, key: str, amount: int, limit: int, window_s: float, now: float, partial: bool
    ) -> Take:
        self._ensure_row(conn, key, now)
        row = conn.execute(select(Counter.used, Counter.window_start).where(Counter.key == key).with_for_update()).one()
        used, start = int(row.used), float(row.window_start)
        if now >= start + window_s:
            used, start = 0, now
        free = max(0, limit - used)
        taken = amount if amount <= free else (free if partial else 0)
        conn.execute(update(Counter).where(Counter.key == key).values(used=used + taken, window_start=start))
        return Take(taken, used + taken, start)

    def _ensure_row(self, conn: Connection, key: str, now: float) -> None:
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(
                pg_insert(Counter)
                .values(key=key, window_start=now, used=0)
                .on_conflict_do_nothing(index_elements=["key"])
            )
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(
                sqlite_insert(Counter)
                .values(key=key, window_start=now, used=0)
                .on_conflict_do_nothing(index_elements=["key"])
            )

    def refund(self, key: str, amount: int) -> None:
        with self.db.tx(immediate=True) as conn:
            conn.execute(
                update(Counter).where(Counter.key == key, Counter.used >= amount).values(used=Counter.used - amount)
            )

    def clear(self, key: str) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(Counter).where(Counter.key == key))

    def purge(self, before: float) -> None:
        """Forget windows that started before `before` (they would reset on next use anyway)."""
        with self.db.tx() as conn:
            conn.execute(delete(Counter).where(Counter.window_start < before))


TAKE_LUA = """
local s_raw = redis.call('HGET', KEYS[1], 's')
local start = tonumber(s_raw)
local used = tonumber(redis.call('HGET', KEYS[1], 'u')) or 0
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local fresh = false
if (not start) or now >= start + window then
  s_raw = ARGV[1]
  used = 0
  fresh = true
end
local free = limit - used
if free < 0 then free = 0 end
local taken = amount
if amount > free then
  if ARGV[5] == '1' then taken = free else taken = 0 end
end
used = used + taken
redis.call('HSET', KEYS[1], 's', s_raw, 'u', used)
if fresh then redis.call('EXPIRE', KEYS[1], math.ceil(window) + 3600) end
return {taken, used, s_raw}
"""

REFUND_LUA = """
local used = tonumber(redis.call('HGET', KEYS[1], 'u'))
if used then
  used = used - tonumber(ARGV[1])
  if used < 0 then used = 0 end
  redis.call('HSET', KEYS[1], 'u', used)
end
return 0
"""


class RedisCounters:
    def __init__(self, client: Any, prefix: str) -> None:
        self.r = client
        self.prefix = prefix + "counter:"
        self._take = client.register_script(TAKE_LUA)
        self._refund = client.register_script(REFUND_LUA)

    def peek(self, key: str, window_s: float, now: float) -> Usage:
        start, used = self.r.hmget(self.prefix + key, ["s", "u"])
        if start is None or now >= float(start) + window_s:
            return Usage(0, None)
        return Usage(int(used or 0), float(start))

    def take(
        self,
        key: str,
        amount: int,
        limit: int,
        window_s: float,
        now: float,
        *,
        partial: bool = False,
        conn: Connection | None = None,
    ) -> Take:
        # `start` is kept verbatim (ARGV[1]) so a float clock survives the round trip through Lua
        taken, used, start = self._take(
            keys=[self.prefix + key], args=[repr(float(now)), window_s, limit, amount, "1" if partial else "0"]
        )
        return Take(int(taken), int(used), float(start))

    def refund(self, key: str, amount: int) -> None:
        self._refund(keys=[self.prefix + key], args=[amount])

    def clear(self, key: str) -> None:
        self.r.delete(self.prefix + key)

    def purge(self, before: float) -> None:
        """Nothing to do: every counter key carries a TTL."""


class FallbackCounters:
    """Redis counters, with the SQL counters answering whenever Redis raises one of `errors` (unreachable)."""

    def __init__(self, primary: Counters, fallback: Counters, errors: tuple[type[BaseException], ...]) -> None:
        self.primary = primary
        self.fallback = fallback
        self.errors = errors

    def peek(self, key: str, window_s: float, now: float) -> Usage:
        try:
            return self.primary.peek(key, window_s, now)
        except self.errors:
            return self.fallback.peek(key, window_s, now)

    def take(
        self,
        key: str,
        amount: int,
        limit: int,
        window_s: float,
        now: float,
        *,
        partial: bool = False,
        conn: Connection | None = None,
    ) -> Take:
        try:
            return self.primary.take(key, amount, limit, window_s, now, partial=partial, conn=conn)
        except self.errors:
            return self.fallback.take(key, amount, limit, window_s, now, partial=partial, conn=conn)

    def refund(self, key: str, amount: int) -> None:
        try:
            self.primary.refund(key, amount)
        except self.errors:
            self.fallback.refund(key, amount)

    def clear(self, key: str) -> None:
        for store in (self.primary, self.fallback):
            try:
                store.clear(key)
            except self.errors:
                continue

    def purge(self, before: float) -> None:
        self.fallback.purge(before)
