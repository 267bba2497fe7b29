"""The token allowance: published operation costs, daily windows, purchased tokens spent after the allowance.

A client is `anon:<salted hash of its address>` or `user:<id>`. Each has a daily allowance (2,500 / 5,000 tokens)
in a window that opens with its first charge and resets 24 hours later. Signed-in users also hold purchased tokens
(never expiring): a charge first takes what the daily allowance has left, then the rest from purchased tokens. A
charge is all or nothing, and atomic (see counters.py); every movement of a user's tokens is a ledger row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from .aio import REDIS_OUTAGES, AioStore
from .counters import REFUND_LUA, TAKE_LUA, Counters, SqlCounters
from .settings import Settings
from .storage import Database, LedgerRow, User, set_durability

# Published prices (tokens per operation). Validation failures and errors cost nothing.
OPERATION_COSTS: dict[str, int] = {"estimate": 100, "fit": 250, "which": 1000, "compare": 1000}
PLAN_COST_PER_MODEL = 1000
PLAN_COST_MAX = 5000

# Token packs for sale: id -> (tokens, price in US cents)
TOKEN_PACKS: dict[str, tuple[int, int]] = {
    "starter": (200_000, 500),
    "builder": (1_000_000, 2000),
    "fleet": (3_000_000, 5000),
}


def plan_cost(n_models: int) -> int:
    """A fleet plan costs 1,000 tokens per model in the fleet, at most 5,000."""
    return max(PLAN_COST_PER_MODEL, min(PLAN_COST_MAX, PLAN_COST_PER_MODEL * max(1, n_models)))


def anon_key(address: str, salt: str) -> str:
    """The counter key of an anonymous client: a salted hash, so addresses are never stored."""
    digest = hmac.new(salt.encode(), f"addr:{address}".encode(), hashlib.sha256).hexdigest()
    return f"anon:{digest[:40]}"


@dataclass(frozen=True)
class Subject:
    """Who is asking: an anonymous address hash, or a signed-in user."""

    key: str
    user_id: int | None = None
    email: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None


@dataclass(frozen=True)
class QuotaState:
    limit: int  # daily allowance
    daily_remaining: int
    purchased: int
    reset_at: float  # when the daily allowance comes back (epoch seconds)
    reset_in_s: int

    @property
    def remaining(self) -> int:
        return self.daily_remaining + self.purchased

    def to_dict(self) -> dict[str, int | float]:
        return {
            "limit": self.limit,
            "daily_remaining": self.daily_remaining,
            "purchased": self.purchased,
            "remaining": self.remaining,
            "reset_at": self.reset_at,
            "reset_in_s": self.reset_in_s,
        }


class _Insufficient(Exception):
    pass


# The allowance charged in one go. SQLite (in-process), on the process's own connection, one thread at a time
# (Database.direct): anonymous, one statement; signed in, one BEGIN IMMEDIATE transaction of plain statements.
# PostgreSQL + Redis: the counter in one Redis script call, then the purchased tokens, the ledger rows and the
# balance in one call of vram_spend_many() (migration 0003; one round trip, atomic on its own), on the event loop
# together with the worker's other debits waiting at the time, whichever accounts (see Quota._spend).
_SQLITE_READ = "SELECT used, window_start FROM counters WHERE key = ?"
_SQLITE_UPSERT = (
    "INSERT INTO counters (key, window_start, used) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
    "used = excluded.used, window_start = excluded.window_start"
)
_SQLITE_SPEND = (
    "UPDATE users SET purchased_tokens = purchased_tokens - ? WHERE id = ? AND purchased_tokens >= ? "
    "RETURNING purchased_tokens"
)
_SQLITE_TAKE_ALL = """INSERT INTO counters (key, window_start, used) VALUES (?1, ?2, ?3)
ON CONFLICT(key) DO UPDATE SET
  used = CASE WHEN ?2 >= window_start + ?4 THEN ?3 ELSE used + ?3 END,
  window_start = CASE WHEN ?2 >= window_start + ?4 THEN ?2 ELSE window_start END
WHERE (CASE WHEN ?2 >= window_start + ?4 THEN 0 ELSE used END) + ?3 <= ?5
RETURNING used, window_start"""
_SQLITE_BALANCE = "SELECT purchased_tokens FROM users WHERE id = ?"
_SQLITE_STATE = (
    "SELECT (SELECT used FROM counters WHERE key = ?1), "
    "(SELECT window_start FROM counters WHERE key = ?1), "
    "(SELECT purchased_tokens FROM users WHERE id = ?2)"
)
_LEDGER_ROW = "INSERT INTO ledger (user_id, created_at, amount, bucket, reason) VALUES (?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class _Debit:
    """One signed-in debit's part in the database: `need` purchased tokens, `taken` from the daily allowance."""

    uid: int
    key: str  # its allowance counter in Redis
    need: int
    taken: int
    now: float
    reason: str


_Waiting = tuple[_Debit, "asyncio.Future[int | None]"]  # a debit and its requester's answer (the balance after)
_PG_SPEND_BATCH = "SELECT vram_spend(%s, %s::bigint[], %s::bigint[], %s::float8[], %s::text[])"
_PG_SPEND_MANY = "SELECT vram_spend_many(%s::int[], %s::bigint[], %s::bigint[], %s::float8[], %s::text[])"


class Quota:
    def __init__(self, settings: Settings, db: Database, counters: Counters) -> None:
        self.settings = settings
        self.db = db
        self.counters = counters
        self._sql_counters = isinstance(counters, SqlCounters)
        self._sqlite = self._sql_counters and db.dialect == "sqlite"
        self._pg_redis = not self._sql_counters and db.dialect == "postgresql"
        self._batch: list[tuple[Subject, int, str, asyncio.Future[tuple[bool, QuotaState]]]] = []
        self._spends: list[_Waiting] = []  # PostgreSQL + Redis: the debits waiting for the next call (see _spend)
        self._spender: asyncio.Task[None] | None = None  # the task making those calls
        self._tasks: set[asyncio.Task[None]] = set()

    def limit_for(self, subject: Subject) -> int:
        return self.settings.user_daily_tokens if subject.signed_in else self.settings.anon_daily_tokens

    def purchased(self, user_id: int | None) -> int:
        if user_id is None:
            return 0
        row = self.db.one(_SQLITE_BALANCE, _SQLITE_BALANCE.replace("?", "%s"), (user_id,))
        return int(row[0]) if row is not None else 0

    def state(self, subject: Subject) -> QuotaState:
        now = self.settings.clock()
        if self._sqlite:  # the counter and the balance in one statement
            row = self.db.one(_SQLITE_STATE, "", (subject.key, subject.user_id))
            used, start = (int(row[0]), float(row[1])) if row is not None and row[0] is not None else (0, None)
            if start is not None and now >= start + self.settings.window_s:
                used, start = 0, None
            return self._state(subject, used, start, now, int(row[2] or 0) if row is not None else 0)
        usage = self.counters.peek(subject.key, self.settings.window_s, now)
        return self._state(subject, usage.used, usage.window_start, now, self.purchased(subject.user_id))

    def _state(self, subject: Subject, used: int, window_start: float | None, now: float, purchased: int) -> QuotaState:
        limit = self.limit_for(subject)
        reset_at = (window_start if window_start is not None else now) + self.settings.window_s
        return QuotaState(
            limit=limit,
            daily_remaining=max(0, limit - used),
            purchased=purchased,
            reset_at=reset_at,
            reset_in_s=max(0, round(reset_at - now)),
        )

    def charge(self, subject: Subject, cost: int, reason: str) -> tuple[bool, QuotaState]:
        """Take `cost` tokens (daily allowance first, then purchased). Returns (charged?, state after).
        Debits commit without waiting for the disk (see storage.make_engine)."""
        now = self.settings.clock()
        if secrets.randbelow(1000) == 0:  # now and then, forget windows long expired
            self.counters.purge(now - 2 * self.settings.window_s)
        limit = self.limit_for(subject)
        window = self.settings.window_s
        if self._sqlite:
            return self._charge_sqlite(subject, cost, reason, limit, window, now)
        if not subject.signed_in:
            t = self.counters.take(subject.key, cost, limit, window, now)
            return t.taken == cost, self._state(subject, t.used, t.window_start, now, 0)
        assert subject.user_id is not None
        uid = subject.user_id
        if self._sql_counters:
            try:
                with self.db.tx(immediate=True, durable=False) as conn:
                    t = self.counters.take(subject.key, cost, limit, window, now, partial=True, conn=conn)
                    if not self._spend_purchased(conn, uid, cost - t.taken, now, reason):
                        raise _Insufficient
                    self._ledger(conn, uid, -t.taken, "daily", reason, now)
                    purchased = self._balance(conn, uid)
                return True, self._state(subject, t.used, t.window_start, now, purchased)
            except _Insufficient:
                return False, self.state(subject)
        t = self.counters.take(subject.key, cost, limit, window, now, partial=True)
        if self._pg_redis:
            balance = self._spend_pg(uid, cost - t.taken, t.taken, now, reason)
            ok = balance is not None
        else:  # pragma: no cover - Redis counters always come with PostgreSQL (workers share both)
            with self.db.tx(durable=False) as conn:
                ok = self._spend_purchased(conn, uid, cost - t.taken, now, reason)
                if ok:
                    self._ledger(conn, uid, -t.taken, "daily", reason, now)
                balance = self._balance(conn, uid)
        if not ok:
            if t.taken:
                self.counters.refund(subject.key, t.taken)
            return False, self.state(subject)
        return True, self._state(subject, t.used, t.window_start, now, int(balance or 0))

    def _charge_sqlite(
        self, subject: Subject, cost: int, reason: str, limit: int, window: float, now: float
    ) -> tuple[bool, QuotaState]:
        """Anonymous: one statement (the counter taken only if all of `cost` fits). Signed in: one transaction
        (counter, purchased tokens, ledger rows, balance)."""
        with self.db.direct() as raw:
            if subject.user_id is None:
                got = self._debit_sqlite(raw, subject, cost, reason, limit, window, now)
            else:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    got = self._debit_sqlite(raw, subject, cost, reason, limit, window, now)
                    raw.execute("COMMIT" if got is not None else "ROLLBACK")
                except BaseException:
                    if raw.in_transaction:
                        raw.execute("ROLLBACK")
                    raise
        return (True, got) if got is not None else (False, self.state(subject))

    def _debit_sqlite(
        self, raw: Any, subject: Subject, cost: int, reason: str, limit: int, window: float, now: float
    ) -> QuotaState | None:
        """The statements of one debit, inside the caller's transaction (anonymous: one statement, atomic on its
        own). The state after it, or None when it cannot be paid (the caller rolls back what it did)."""
        uid = subject.user_id
        if uid is None:
            row = (
                raw.execute(_SQLITE_TAKE_ALL, (subject.key, now, cost, window, limit)).fetchone()
                if cost <= limit
                else None
            )
            return self._state(subject, int(row[0]), float(row[1]), now, 0) if row is not None else None
        row = raw.execute(_SQLITE_READ, (subject.key,)).fetchone()
        used, start = (int(row[0]), float(row[1])) if row is not None else (0, now)
        if now >= start + window:
            used, start = 0, now
        taken = min(cost, max(0, limit - used))
        need = cost - taken
        if need > 0:
            got = raw.execute(_SQLITE_SPEND, (need, uid, need)).fetchone()
            if got is None:
                return None
            raw.execute(_LEDGER_ROW, (uid, now, -need, "purchased", reason))
        else:
            got = raw.execute(_SQLITE_BALANCE, (uid,)).fetchone()
            if got is None:
                return None
        if taken:
            raw.execute(_LEDGER_ROW, (uid, now, -taken, "daily", reason))
        if taken or row is None or start != float(row[1]):  # else the counter is as it was
            raw.execute(_SQLITE_UPSERT, (subject.key, start, used + taken))
        return self._state(subject, used + taken, start, now, int(got[0]))

    async def charge_together(self, subject: Subject, cost: int, reason: str) -> tuple[bool, QuotaState]:
        """charge(), for a request on the event loop. With SQLite, the debits of the requests that reach this point
        in the same turn of the loop commit in one transaction (each in a savepoint of its own, so one that cannot
        be paid undoes only itself): the commit, ≈ 90 µs of a debit's ≈ 130 µs here, is paid once per batch. Each
        request still gets its answer only after its debit has committed, and the debits run one after another,
        each seeing those before it: exact, no overspend. Other storage: charge() as it is."""
        if not self._sqlite:
            return self.charge(subject, cost, reason)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[bool, QuotaState]] = loop.create_future()
        self._batch.append((subject, cost, reason, done))
        if len(self._batch) == 1:
            loop.call_soon(self._commit_batch)
        return await done

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, []
        now = self.settings.clock()
        if secrets.randbelow(1000) == 0:
            self.counters.purge(now - 2 * self.settings.window_s)
        window = self.settings.window_s
        results: list[QuotaState | Exception | None] = []
        try:
            with self.db.direct() as raw:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    for subject, cost, reason, _ in batch:
                        raw.execute("SAVEPOINT debit")
                        outcome: QuotaState | Exception | None
                        try:
                            outcome = self._debit_sqlite(
                                raw, subject, cost, reason, self.limit_for(subject), window, now
                            )
                        except Exception as exc:  # this request fails; the others go on
                            outcome = exc
                        if not isinstance(outcome, QuotaState):  # not paid, or failed: undo what it did
                            raw.execute("ROLLBACK TO debit")
                        raw.execute("RELEASE debit")
                        results.append(outcome)
                    raw.execute("COMMIT")
                except BaseException:
                    if raw.in_transaction:
                        raw.execute("ROLLBACK")
                    raise
        except BaseException as exc:  # nothing committed: every request of the batch fails, none is charged
            for *_, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (subject, _, _, done), result in zip(batch, results, strict=True):
            if done.done():  # the request went away meanwhile (its debit stands, as a finished charge() would)
                continue
            if isinstance(result, Exception):
                done.set_exception(result)
            elif result is None:
                try:
                    done.set_result((False, self.state(subject)))
                except Exception as exc:
                    done.set_exception(exc)
            else:
                done.set_result((True, result))

    async def charge_on_loop(
        self, store: AioStore, subject: Subject, cost: int, reason: str
    ) -> tuple[bool, QuotaState]:
        """charge() with PostgreSQL + Redis, awaited on the event loop (vram.web.aio): the counter in one Redis
        script call; then, signed in, the purchased tokens, the ledger rows and the balance after, in one call of
        vram_spend_many() together with the other debits that reach this worker while its last call is in flight
        (see _spend). Tokens taken from the counter are given back when the debit is refused or its
        statement fails. While Redis is unreachable, charge() in the thread pool (the database counts the
        allowance meanwhile)."""
        now = self.settings.clock()
        if secrets.randbelow(1000) == 0:  # now and then, forget windows long expired (a database statement)
            await run_in_threadpool(self.counters.purge, now - 2 * self.settings.window_s)
        uid = subject.user_id
        key = self.settings.redis_prefix + "counter:" + subject.key
        args = [repr(float(now)), self.settings.window_s, self.limit_for(subject), cost, "0" if uid is None else "1"]
        try:
            taken_s, used_s, start_s = await store.redis.script(TAKE_LUA, [key], args)
        except REDIS_OUTAGES:
            return await run_in_threadpool(self.charge, subject, cost, reason)
        taken, used, start = int(taken_s), int(used_s), float(start_s)
        if uid is None:
            return taken == cost, self._state(subject, used, start, now, 0)
        balance = await self._spend(store, _Debit(uid, key, cost - taken, taken, now, reason))
        if balance is None:
            return False, await self.state_on_loop(store, subject)
        return True, self._state(subject, used, start, now, balance)

    async def _spend(self, store: AioStore, debit: _Debit) -> int | None:
        """The purchased balance after `debit`, or None when it is refused. The worker's debits, whichever accounts
        they are for, queue behind its spend call in flight and go together in the next one (vram_spend_many(),
        migration 0003), made by a task of their own (a request that goes away meanwhile leaves its debit standing,
        as a finished charge would): one round trip and one commit for all of them, where a call per debit (or per
        account) costs the database and the worker a statement each, and debits of one account would wait for its
        row behind each other."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int | None] = loop.create_future()
        self._spends.append((debit, done))
        runner = self._spender
        if runner is None or runner.done() or runner.get_loop() is not loop:
            self._spender = task = loop.create_task(self._run_spends(store))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await done

    async def _run_spends(self, store: AioStore) -> None:
        queue = self._spends
        batch: list[_Waiting] = []
        try:
            while queue:
                batch, queue[:] = queue[:], []
                debits = [d for d, _ in batch]
                try:
                    row = await store.pg.one(
                        _PG_SPEND_MANY,
                        (
                            [d.uid for d in debits],
                            [d.need for d in debits],
                            [d.taken for d in debits],
                            [d.now for d in debits],
                            [d.reason for d in debits],
                        ),
                    )
                except Exception as exc:  # the call failed (an outage: a 503): every debit of it fails
                    await self._give_back_all(store, debits)
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                balances: list[int | None] = list(row[0]) if row is not None else [None] * len(batch)
                await self._give_back_all(store, [d for d, b in zip(debits, balances, strict=True) if b is None])
                for (_, done), balance in zip(batch, balances, strict=True):
                    if not done.done():
                        done.set_result(balance)
            batch = []
        finally:
            if self._spender is asyncio.current_task():
                self._spender = None
            for _, done in batch + queue:  # only if this task itself was stopped (the loop closing)
                if not done.done():
                    done.cancel()
            queue.clear()

    @staticmethod
    async def _give_back_all(store: AioStore, debits: list[_Debit]) -> None:
        """The daily tokens the counter gave to debits that were then refused or failed."""
        for d in debits:
            if d.taken:
                with contextlib.suppress(*REDIS_OUTAGES):
                    await store.redis.script(REFUND_LUA, [d.key], [d.taken])

    async def state_on_loop(self, store: AioStore, subject: Subject) -> QuotaState:
        """state(), awaited on the event loop (PostgreSQL + Redis); while Redis is unreachable, state() in the pool."""
        now = self.settings.clock()
        try:
            start, used = await store.redis.call(
                "HMGET", self.settings.redis_prefix + "counter:" + subject.key, "s", "u"
            )
        except REDIS_OUTAGES:
            return await run_in_threadpool(self.state, subject)
        if start is None or now >= float(start) + self.settings.window_s:
            used_n, window_start = 0, None
        else:
            used_n, window_start = int(used or 0), float(start)
        purchased = 0
        if subject.user_id is not None:
            row = await store.pg.one(_SQLITE_BALANCE.replace("?", "%s"), (subject.user_id,))
            purchased = int(row[0]) if row is not None else 0
        return self._state(subject, used_n, window_start, now, purchased)

    def _spend_pg(self, uid: int, need: int, taken: int, now: float, reason: str) -> int | None:
        """Purchased tokens, ledger rows and the balance after, in one autocommit call of vram_spend(); None: not
        enough (or no such account)."""
        with self.db.raw() as (info, raw):
            set_durability(info, raw, False, "postgresql")
            row = raw.execute(_PG_SPEND_BATCH, (uid, [need], [taken], [now], [reason])).fetchone()
        balance = row[0][0] if row is not None else None
        return int(balance) if balance is not None else None

    def _spend_purchased(self, conn: Connection, uid: int, need: int, now: float, reason: str) -> bool:
        if need <= 0:
            return True
        res = conn.execute(
            update(User)
            .where(User.id == uid, User.purchased_tokens >= need)
            .values(purchased_tokens=User.purchased_tokens - need)
        )
        if res.rowcount != 1:
            return False
        self._ledger(conn, uid, -need, "purchased", reason, now)
        return True

    @staticmethod
    def _ledger(
        conn: Connection, uid: int, amount: int, bucket: str, reason: str, now: float, ref: str | None = None
    ) -> None:
        if amount:
            conn.execute(
                insert(LedgerRow).values(
                    user_id=uid, created_at=now, amount=amount, bucket=bucket, reason=reason, ref=ref
                )
            )

    @staticmethod
    def _balance(conn: Connection, uid: int) -> int:
        return int(conn.execute(select(User.purchased_tokens).where(User.id == uid)).scalar() or 0)

    def credit(self, user_id: int, tokens: int, reason: str, ref: str | None = None) -> bool:
        """Add purchased tokens. With a `ref` (a Stripe event id) the credit happens at most once: False on replay."""
        if tokens <= 0:
            raise ValueError("tokens must be positive")
        now = self.settings.clock()
        try:
            with self.db.tx(immediate=True) as conn:
                if ref is not None and conn.execute(select(LedgerRow.id).where(LedgerRow.ref == ref)).first():
                    return False
                self._ledger(conn, user_id, tokens, "purchased", reason, now, ref=ref)
                conn.execute(
                    update(User).where(User.id == user_id).values(purchased_tokens=User.purchased_tokens + tokens)
                )
        except IntegrityError:  # a concurrent replay of the same event won the race
            return False
        return True

    def ledger_balance(self, user_id: int) -> int:
        """The purchased balance recomputed from the ledger (must equal users.purchased_tokens)."""
        with self.db.engine.connect() as conn:
            value = conn.execute(
                select(func.coalesce(func.sum(LedgerRow.amount), 0)).where(
                    LedgerRow.user_id == user_id, LedgerRow.bucket == "purchased"
                )
            ).scalar()
        return int(value or 0)
