"""Storage: the schema (SQLAlchemy 2 declarative models), the engine (SQLite in WAL mode by default, PostgreSQL via
VRAM_DATABASE_URL) and Alembic migrations run at start-up.

Anonymous estimates are never written here; anonymous clients only ever touch `counters` (a salted hash of their
address and how many tokens they used in the current window).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import QueuePool


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    # cached sum of the user's `purchased` ledger rows; updated in the same transaction as each ledger row
    purchased_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class SessionRow(Base):
    """Sign-in sessions (when no Redis is configured). Only a SHA-256 of the token is stored."""

    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)


class Counter(Base):
    """Fixed windows of usage: daily allowance per client (anon:<hash> / user:<id>) and sign-in failures."""

    __tablename__ = "counters"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float, nullable=False)
    used: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class LedgerRow(Base):
    """Every credit (+) and debit (-) of a signed-in user's tokens. bucket: 'daily' or 'purchased'.
    A user's purchased balance is the sum of their 'purchased' rows. `ref` is unique: a Stripe event id credits once."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    bucket: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    ref: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)


class HistoryRow(Base):
    __tablename__ = "history"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    tool_version: Mapped[str] = mapped_column(String(32), nullable=False)


class ShareRow(Base):
    """A frozen result behind an unguessable id. Owned by a user, or by whoever holds the delete token."""

    __tablename__ = "shares"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    delete_token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    tool_version: Mapped[str] = mapped_column(String(32), nullable=False)


def wal_mode(cur: Any, tries: int = 300) -> None:
    """Put a SQLite database in WAL mode (it stays so: later connections find it set). Switching needs the file to
    itself and SQLite answers "database is locked" at once, without its busy handler, while another connection
    holds it, as when several workers open a new database together: the switch is retried for up to ~10 s."""
    import sqlite3
    import time

    for attempt in range(tries):
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.002 * min(attempt + 1, 20))


def make_engine(url: str) -> Engine:
    """SQLite: WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for transactions that ask for it (debits), so
    concurrent read-modify-write transactions serialize instead of failing. PostgreSQL: a plain pooled engine.

    Durability: a transaction is flushed to disk before its commit returns (SQLite synchronous=FULL, PostgreSQL
    synchronous_commit=on) unless it is opened with durable=False, which allowance debits are: they then commit
    without waiting for the disk (SQLite synchronous=NORMAL in WAL mode, PostgreSQL synchronous_commit=off). Either
    way a transaction is atomic and survives the server process being killed; what an operating-system crash or
    power cut can lose is the last moments' debits, together with their ledger rows (never one without the other).
    A flush costs about 13 ms on this project's machine, so a debit that waited for it would bound a worker to
    ≈ 80 charged answers a second. Credits (purchases, grants), accounts, sessions, history and shares stay durable."""
    if url.startswith("sqlite"):
        # a small pool: connections (and their PRAGMAs) are reused instead of opened per transaction
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=QueuePool,
            pool_size=8,
            max_overflow=32,
            pool_timeout=30,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below emit BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            wal_mode(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()
            record.info[_SYNC] = True

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            opts = conn.get_execution_options()
            set_durability(conn.connection.info, conn.connection.driver_connection, opts.get("durable", True), "sqlite")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get("immediate", False) else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    elif url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    engine = create_engine(
        url, pool_size=10, max_overflow=30, pool_pre_ping=True, pool_timeout=30, connect_args={"connect_timeout": 10}
    )

    @event.listens_for(engine, "connect")
    def _on_pg_connect(dbapi_conn: Any, record: Any) -> None:
        record.info[_SYNC] = True  # the server's default, synchronous_commit=on

    @event.listens_for(engine, "begin")
    def _on_pg_begin(conn: Connection) -> None:
        set_durability(
            conn.connection.info,
            conn.connection.driver_connection,
            conn.get_execution_options().get("durable", True),
            "postgresql",
        )

    return engine


def driver(conn: Connection) -> Any:
    """The DB-API connection under a SQLAlchemy one (sqlite3 / psycopg), for the few statements run on it directly."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


_SYNC = "vram_durable"  # key in a pooled connection's info: whether its commits wait for the disk


def set_durability(info: dict[Any, Any], driver_conn: Any, durable: bool, dialect: str) -> None:
    """Make the next transactions on this driver connection durable or not. Called outside a transaction; the
    setting is made outside one too (SQLite: a PRAGMA; PostgreSQL: SET in autocommit), so no rollback can undo it
    behind the back of `info`, which remembers it for the pooled connection."""
    if info.get(_SYNC, True) == durable:
        return
    if dialect == "sqlite":
        driver_conn.execute("PRAGMA synchronous=" + ("FULL" if durable else "NORMAL"))
    else:
        was = driver_conn.autocommit
        driver_conn.autocommit = True
        try:
            driver_conn.execute("SET synchronous_commit TO " + ("on" if durable else "off"))
        finally:
            driver_conn.autocommit = was
    info[_SYNC] = durable


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (migrations live in vram/web/migrations)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("vram.web").joinpath("migrations")))
    # several worker processes may start at once: only one migrates, the others wait and find the schema current
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(immediate=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7261001)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


# how often the direct connection's WAL is checkpointed in the background (Database._checkpoints)
CHECKPOINT_EVERY_S = 0.2


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._direct: Any = None
        self._direct_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()

    @contextmanager
    def tx(self, *, immediate: bool = False, durable: bool = True) -> Iterator[Connection]:
        """A transaction; immediate=True takes SQLite's write lock up front (read-modify-write sections);
        durable=False commits without waiting for the disk (see make_engine)."""
        with self.engine.connect() as conn:
            if immediate or not durable:
                conn = conn.execution_options(immediate=immediate, durable=durable)
            with conn.begin():
                yield conn

    @contextmanager
    def raw(self) -> Iterator[tuple[dict[Any, Any], Any]]:
        """A pooled connection's DB-API connection (and the pool's `info` dict for it), for the few statements every
        request makes, run without SQLAlchemy's statement machinery (≈ 20 µs instead of ≈ 100–350 µs each here).
        PostgreSQL connections are in autocommit for the while: each statement is its own transaction. A driver
        error of the kind an outage raises comes out as SQLAlchemy's OperationalError (a 503), and the connection
        is dropped from the pool."""
        dbapi = self.engine.dialect.loaded_dbapi
        with self.engine.connect() as conn:
            info, raw = conn.connection.info, driver(conn)
            pg = self.dialect == "postgresql"
            try:
                if pg:
                    raw.autocommit = True
                yield info, raw
            except (dbapi.OperationalError, dbapi.InterfaceError) as exc:
                conn.invalidate()
                raise OperationalError("(direct statement)", None, exc) from exc
            finally:
                if pg and not conn.invalidated:
                    raw.autocommit = False

    @contextmanager
    def direct(self) -> Iterator[Any]:
        """SQLite: a connection of the process's own for the statements every request makes (the allowance debit,
        the session and counter reads), taken by one thread at a time, so the process's debits queue on a lock
        instead of meeting SQLite's busy handler (which sleeps in growing steps), and no pool is checked out per
        statement. It commits without waiting for the disk (see make_engine). An outage-like driver error comes out
        as SQLAlchemy's OperationalError and the connection is opened afresh next time."""
        import sqlite3

        with self._direct_lock:
            if self._direct is None:
                path = self.engine.url.database or ":memory:"
                conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=30000")
                wal_mode(conn)
                # checkpoints (copying the WAL back into the database file, with its fsyncs) run in a thread of
                # their own (_checkpoints), not in the commit of whichever debit grows the WAL past 1000 pages
                for pragma in ("foreign_keys=ON", "synchronous=NORMAL", "wal_autocheckpoint=0"):
                    conn.execute("PRAGMA " + pragma)
                self._direct = conn
                if path != ":memory:" and self._checkpointer is None:
                    self._checkpointer = threading.Thread(
                        target=self._checkpoints, args=(path,), name="vram-sqlite-checkpoint", daemon=True
                    )
                    self._checkpointer.start()
            try:
                yield self._direct
            except (sqlite3.OperationalError, sqlite3.InterfaceError) as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._direct.close()
                self._direct = None
                raise OperationalError("(direct statement)", None, exc) from exc

    def one(self, sqlite_sql: str, pg_sql: str, params: Any) -> Any:
        """The first row of a read-only statement (see direct / raw); SQL in each dialect's parameter style."""
        if self.dialect == "sqlite":
            with self.direct() as conn:
                return conn.execute(sqlite_sql, params).fetchone()
        with self.raw() as (_, raw):
            return raw.execute(pg_sql, params).fetchone()

    def _checkpoints(self, path: str) -> None:
        """Every CHECKPOINT_EVERY_S, a PASSIVE checkpoint on a connection of its own copies what the WAL holds into
        the database file while the debits go on appending (WAL mode lets one checkpointer run beside writers), so
        no debit waits for that copy and its fsyncs. A writer starts the WAL over only when it finds every frame
        copied, which under steady load never happens while frames keep arriving, so a second PASSIVE checkpoint
        follows with the process's debits held (the direct connection's lock): it copies only the frames appended
        meanwhile (≈ 1 ms for 0.2 s of debits here) and the next debit restarts the WAL, which stays a few hundred
        pages long instead of growing with every debit."""
        import sqlite3

        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            while not self._closing.wait(CHECKPOINT_EVERY_S):
                with contextlib.suppress(sqlite3.Error):  # busy (another process checkpointing) or gone: next time
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    with self._direct_lock:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
            self._checkpointer = None
        with self._direct_lock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None
        self.engine.dispose()
