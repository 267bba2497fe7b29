"""The request path's storage calls with PostgreSQL + Redis, made on the event loop itself (issue 18).

Every charged request asks Redis for its session, takes its allowance (a Redis script) and, signed in, writes its
purchased tokens and ledger rows (one PostgreSQL call, see Quota._spend). Made from the thread pool, each call
was a hop to a
thread and back, each waiting for the GIL behind the event loop, and each database call checked a pooled
connection out through SQLAlchemy (a ping, and a new connection whenever more threads than the pool's ten were at
it): ≈ 2.5 ms of a worker's CPU per request and a queue of threads. Here they are awaited instead:

* `Resp`: Redis over one connection per worker, speaking RESP2 (the few commands the request path sends). The
  commands that concurrent requests send in one turn of the event loop go out in one write and their replies are
  read back in order, so requests in flight share the round trips (and Redis reads them in one go). An
  unreachable or silent Redis raises redis-py's ConnectionError / TimeoutError, as the synchronous client does,
  so the callers' outage handling (503, or the database counting allowances) is the same.
* `PgPool`: a few psycopg AsyncConnections in autocommit, commits not waiting for the disk (the debits; see
  storage.make_engine). A driver error of the kind an outage raises comes out as SQLAlchemy's OperationalError
  (a 503) and the connection is dropped.

Both belong to one event loop; `Services.aio()` makes them for the loop it is asked on (uvicorn: one per worker).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import psycopg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

_INCOMPLETE = object()


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from buf[pos:]: (value, position after it), or (_INCOMPLETE, pos) if it has not all come.
    An error reply is returned as a ResponseError (raised by the caller that sent the command)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind, line, after = buf[pos], bytes(buf[pos + 1 : end]), end + 2
    if kind == 0x2B:  # + simple string
        return line.decode(), after
    if kind == 0x2D:  # - error
        return ResponseError(line.decode(errors="replace")), after
    if kind == 0x3A:  # : integer
        return int(line), after
    if kind == 0x24:  # $ bulk string
        n = int(line)
        if n < 0:
            return None, after
        if len(buf) < after + n + 2:
            return _INCOMPLETE, pos
        return bytes(buf[after : after + n]), after + n + 2
    if kind == 0x2A:  # * array
        n = int(line)
        if n < 0:
            return None, after
        items = []
        for _ in range(n):
            item, after = _parse(buf, after)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, after
    raise RedisConnectionError(f"Redis sent something that is not RESP2 (first byte {kind!r})")


def encode_command(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Wire(asyncio.Protocol):
    """One Redis connection: commands written in order, each reply handed to the oldest waiting future."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.lost: BaseException | None = None
        self.out: list[bytes] = []  # commands not yet written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        try:
            while self.waiting:
                value, nxt = _parse(self.buf, pos)
                if value is _INCOMPLETE:
                    break
                pos = nxt
                fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result(value)
        except (RedisConnectionError, ValueError) as exc:
            self.fail(RedisConnectionError(f"Redis: {exc}"))
            return
        del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis closed the connection ({exc or 'end of stream'})"))

    def fail(self, exc: BaseException) -> None:
        """The connection is done for: every command still waiting gets `exc`."""
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost is not None or self.transport is None:
            fut.set_exception(self.lost or RedisConnectionError("Redis: not connected"))
            return fut
        self.waiting.append(fut)
        if not self.out:  # the commands sent in this turn of the loop go out in one write, at its end
            asyncio.get_running_loop().call_soon(self.flush)
        self.out.append(encode_command(args))
        return fut

    def flush(self) -> None:
        out, self.out = self.out, []
        if self.transport is not None and self.lost is None and out:
            self.transport.write(b"".join(out))


class Resp:
    """A Redis client for one event loop, on one connection (made on first use, and again after one is lost)."""

    SCHEMES = ("redis", "rediss")

    def __init__(self, url: str, timeout: float = 10.0, connect_timeout: float = 5.0) -> None:
        u = urlsplit(url)
        if u.scheme not in self.SCHEMES:
            raise ValueError(f"not a redis:// URL: {url}")
        self.host = u.hostname or "localhost"
        self.port = u.port or 6379
        self.ssl = u.scheme == "rediss"
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None
        path = u.path.strip("/")
        self.db = int(path) if path else 0
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._wire: _Wire | None = None
        self._connecting: asyncio.Lock | None = None
        self._sha: dict[str, str] = {}

    async def _connection(self) -> _Wire:
        wire = self._wire
        if wire is not None and wire.lost is None:
            return wire
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            wire = self._wire
            if wire is not None and wire.lost is None:
                return wire
            loop = asyncio.get_running_loop()
            try:
                transport, new = await asyncio.wait_for(
                    loop.create_connection(_Wire, self.host, self.port, ssl=self.ssl or None), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"Redis at {self.host}:{self.port}: {exc or 'timed out'}") from exc
            wire = new
            wire.transport = transport  # uvloop may call connection_made only after create_connection returns
            hello: list[tuple[Any, ...]] = []
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
                hello.append(auth)
            if self.db:
                hello.append(("SELECT", self.db))
            for cmd in hello:
                reply = await self._await(wire, wire.send(cmd))
                if isinstance(reply, ResponseError):
                    wire.fail(RedisConnectionError(f"Redis: {cmd[0]} refused: {reply}"))
                    raise RedisConnectionError(f"Redis: {cmd[0]} refused: {reply}")
            self._wire = wire
            return wire

    async def _await(self, wire: _Wire, fut: asyncio.Future[Any]) -> Any:
        """The reply, or TimeoutError after `timeout` (the connection is then dropped: its replies are out of step)."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.timeout, _expire, wire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def call(self, *args: Any) -> Any:
        wire = await self._connection()
        reply = await self._await(wire, wire.send(args))
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script (EVAL) the first time Redis does not know it."""
        sha = self._sha.get(source)
        if sha is None:
            sha = self._sha[source] = hashlib.sha1(source.encode()).hexdigest()  # the name Redis gives it
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.call("EVAL", source, len(keys), *keys, *args)

    def close(self) -> None:
        if self._wire is not None:
            self._wire.fail(RedisConnectionError("Redis: client closed"))
            self._wire = None


def _expire(wire: _Wire, fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        wire.fail(RedisTimeoutError("Redis did not answer in time"))


class PgPool:
    """Up to `size` psycopg AsyncConnections for one event loop, in autocommit (each statement its own
    transaction), commits not waiting for the disk."""

    def __init__(self, url: str, size: int = 16, connect_timeout: int = 10) -> None:
        u = make_url(url)
        self.conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
        self.connect_timeout = connect_timeout
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)
        self._all: set[psycopg.AsyncConnection[Any]] = set()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, connect_timeout=self.connect_timeout
        )
        await conn.execute("SET synchronous_commit TO off")
        self._all.add(conn)
        return conn

    async def one(self, sql: str, params: Any) -> Any:
        """The first row of `sql` (None if it returns none)."""
        async with self._slots:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = self._idle.pop() if self._idle else await self._connect()
                cur = await conn.execute(sql, params)
                row = await cur.fetchone() if cur.description is not None else None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop(conn)
                raise OperationalError("(direct statement)", None, exc) from exc
            except BaseException:  # e.g. cancelled mid-statement: the connection's state is unknown
                if conn is not None:
                    idle = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                    (self._idle.append if idle else self._drop)(conn)
                raise
            self._idle.append(conn)
            return row

    def _drop(self, conn: psycopg.AsyncConnection[Any] | None) -> None:
        if conn is not None:
            self._all.discard(conn)
            conn.pgconn.finish()

    def close(self) -> None:
        """Close every connection now (without the event loop: libpq closes the socket)."""
        for conn in list(self._all):
            self._drop(conn)
        self._idle.clear()


class AioStore:
    """The async clients of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, database_url: str, redis_url: str) -> None:
        self.loop = loop
        self.redis = Resp(redis_url)
        self.pg = PgPool(database_url)

    def close(self) -> None:
        self.redis.close()
        self.pg.close()


REDIS_OUTAGES: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)
