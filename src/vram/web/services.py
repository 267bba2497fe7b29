"""The app's long-lived parts, built once per app from Settings: database, counters, sessions, allowance."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..fitting import EvaluatorCache
from .aio import AioStore, Resp
from .answers import Answers
from .auth import RedisSessions, Sessions, SqlSessions
from .counters import Counters, FallbackCounters, RedisCounters, SqlCounters
from .quota import Quota, Subject, anon_key
from .settings import Settings
from .storage import Database, User, migrate


@dataclass
class Services:
    settings: Settings
    db: Database
    counters: Counters
    sessions: Sessions
    quota: Quota
    secret: str
    redis: Any = None
    answers: Answers = field(default_factory=Answers)  # computed answers kept for repeated requests
    evaluators: EvaluatorCache = field(default_factory=EvaluatorCache)  # models evaluated for `fit` / `which`
    _aio: AioStore | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.resolved_database_url())
        migrate(db.engine)
        secret = settings.resolved_secret()
        redis_client: Any = None
        counters: Counters
        sessions: Sessions
        if settings.redis_url:
            import redis

            redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
            # estimates keep working through a Redis outage: the database counts allowances meanwhile
            counters = FallbackCounters(
                RedisCounters(redis_client, settings.redis_prefix),
                SqlCounters(db),
                (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
            )
            sessions = RedisSessions(redis_client, settings.redis_prefix, settings.session_ttl_s)
        else:
            counters = SqlCounters(db)
            sessions = SqlSessions(db, settings.session_ttl_s)
        return cls(
            settings=settings,
            db=db,
            counters=counters,
            sessions=sessions,
            quota=Quota(settings, db, counters),
            secret=secret,
            redis=redis_client,
        )

    @property
    def inline(self) -> bool:
        """Whether the request path may call storage on the event loop itself: SQLite only (in-process, a debit
        takes ≈ 0.1 ms, sessions and counters in the same file). A hop to the thread pool costs more than that on a
        busy worker: a waiting thread gets the GIL from the event loop only every switch interval (5 ms). With
        PostgreSQL and Redis a call waits on the network, and on an outage for seconds, so it goes to the pool."""
        return self.redis is None and self.db.dialect == "sqlite"

    @property
    def on_loop(self) -> bool:
        """Whether the request path awaits its storage calls on the event loop (vram.web.aio): PostgreSQL with
        sessions and allowances in Redis (a redis:// or rediss:// URL)."""
        return (
            isinstance(self.sessions, RedisSessions)
            and self.db.dialect == "postgresql"
            and (self.settings.redis_url or "").partition(":")[0] in Resp.SCHEMES
        )

    def aio(self) -> AioStore:
        """The async clients of the running event loop (made on first use; a new loop gets new ones)."""
        loop = asyncio.get_running_loop()
        store = self._aio
        if store is None or store.loop is not loop:
            if store is not None:
                store.close()
            assert self.settings.redis_url is not None
            store = self._aio = AioStore(loop, self.db.engine.url.render_as_string(False), self.settings.redis_url)
        return store

    async def subject_for_async(self, address: str, token: str | None) -> tuple[Subject, str | None]:
        """subject_for(), awaited on the event loop (PostgreSQL + Redis sessions)."""
        if token:
            assert isinstance(self.sessions, RedisSessions)
            store = self.aio()
            found = RedisSessions.parse(await store.redis.call("GET", self.sessions.key(token)))
            if found is not None:
                uid, email = found
                if email is None:  # a session made before the email was kept with it
                    row = await store.pg.one("SELECT email FROM users WHERE id = %s", (uid,))
                    email = row[0] if row is not None else None
                if email is not None:
                    return Subject(key=f"user:{uid}", user_id=uid, email=str(email)), token
        return Subject(key=anon_key(address, self.secret)), None

    def close(self) -> None:
        if self._aio is not None:
            self._aio.close()
            self._aio = None
        self.db.close()
        if self.redis is not None:
            self.redis.close()

    def anonymous(self, address: str) -> Subject:
        return Subject(key=anon_key(address, self.secret))

    def subject_for(self, address: str, token: str | None) -> tuple[Subject, str | None]:
        """The client behind a request: a signed-in user if the token is a live session, else its address."""
        if token:
            found = self.sessions.lookup(token, self.settings.clock())
            if found is not None:
                uid, email = found
                if email is None:  # a session store that does not keep the email
                    row = self.db.one(
                        "SELECT email FROM users WHERE id = ?", "SELECT email FROM users WHERE id = %s", (uid,)
                    )
                    email = row[0] if row is not None else None
                if email is not None:
                    return Subject(key=f"user:{uid}", user_id=uid, email=str(email)), token
        return Subject(key=anon_key(address, self.secret)), None

    def user_by_email(self, email: str) -> tuple[int, str] | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(User.id, User.password_hash).where(User.email == email)).first()
        return (int(row.id), str(row.password_hash)) if row else None
