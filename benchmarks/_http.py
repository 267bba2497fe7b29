"""A small HTTP/1.1 load generator: an asyncio protocol per keep-alive connection, one request in flight on each.

It does far less per request than a general client (no URL parsing, no header objects, no cookie jar), so on a
machine where the load generator and the server share the CPUs most of the CPU goes to the server under test.
Each of `concurrency` connections sends its next request when the answer to the last one has arrived (a closed
loop, like that many clients each waiting for their answer).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class Reply:
    """One answer: the status, the body, and the header block (parsed only when `headers` is read)."""

    __slots__ = ("_head", "_headers", "body", "status")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status, self._head, self.body = status, head, body
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {}
            for line in self._head.decode("latin-1").split("\r\n")[1:]:
                if line:
                    k, _, v = line.partition(":")
                    self._headers[k.strip().lower()] = v.strip()
        return self._headers

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    replies: list[tuple[int, Reply]] = field(default_factory=list)  # (request index, reply)
    wall_s: float = 0.0


class _Wire(asyncio.Protocol):
    """The bytes of one keep-alive connection: each `send` is answered by the next whole response (Content-Length
    framing, which uvicorn uses for these JSON answers; chunked answers are reassembled too)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Reply] | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            reply = self._parse()
            if reply is not None:
                self.waiter.set_result(reply)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def _parse(self) -> Reply | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end])
        lower = head.lower()
        status = int(head[9:12])
        i = lower.find(b"\r\ncontent-length:")
        if i >= 0:
            j = lower.find(b"\r\n", i + 2)
            n = int(head[i + 17 : j if j >= 0 else len(head)])
            if len(buf) < end + 4 + n:
                return None
            body = bytes(buf[end + 4 : end + 4 + n])
            del buf[: end + 4 + n]
        elif b"\r\ntransfer-encoding: chunked" in lower:
            parts, k = [], end + 4
            while True:
                e = buf.find(b"\r\n", k)
                if e < 0:
                    return None
                size = int(buf[k:e], 16)
                if len(buf) < e + 2 + size + 2:
                    return None
                parts.append(bytes(buf[e + 2 : e + 2 + size]))
                k = e + 2 + size + 2
                if size == 0:
                    break
            body = b"".join(parts)
            del buf[:k]
        else:
            body = b""
            del buf[: end + 4]
        return Reply(status, head, body)


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.wire: _Wire | None = None

    async def open(self) -> None:
        transport, wire = await asyncio.get_running_loop().create_connection(_Wire, self.host, self.port)
        wire.transport = transport  # uvloop may call connection_made only after create_connection returns
        self.wire = wire

    async def close(self) -> None:
        if self.wire is not None and self.wire.transport is not None:
            self.wire.transport.close()
        self.wire = None

    async def request(self, raw: bytes) -> Reply:
        if self.wire is None or self.wire.lost is not None:
            await self.open()
        wire = self.wire
        assert wire is not None and wire.transport is not None
        wire.waiter = asyncio.get_running_loop().create_future()
        wire.transport.write(raw)
        reply = await wire.waiter
        if b"\r\nconnection: close" in reply._head.lower():
            await self.close()
        return reply


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop's event loop (a dependency of uvicorn[standard]) when it is installed: the load
    generator then spends less of the CPU it shares with the servers under test. The cyclic garbage collector is
    paused meanwhile (what exists before is frozen first): the replies a run keeps are tens of thousands of tracked
    objects, and a full collection over them stopped the load generator for tens of milliseconds — latency that
    the paced runs counted against the server (p99 per 10-second round 43-65 ms with the collector on)."""
    gc.collect()
    gc.freeze()
    was = gc.isenabled()
    gc.disable()
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    finally:
        if was:
            gc.enable()
        gc.unfreeze()


def build_request(method: str, path: str, host: str, body: Any = None, headers: dict[str, str] | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json", "User-Agent: vram-bench"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def drive(
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    max_seconds: float = 120.0,
    keep: Callable[[Reply], bool] | None = None,
) -> Result:
    """Send every request in `requests` once, over `concurrency` connections; latency of each, and the replies
    (all of them, or those `keep` selects)."""
    res = Result()
    counter = iter(range(len(requests)))
    deadline = time.monotonic() + max_seconds
    conns = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    clock = time.perf_counter

    async def worker(conn: Connection) -> None:
        for i in counter:
            if time.monotonic() > deadline:
                return
            t0 = clock()
            reply = await conn.request(requests[i])
            res.latencies.append(clock() - t0)
            if keep is None or keep(reply):
                res.replies.append((i, reply))

    t0 = clock()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        res.wall_s = clock() - t0
        await asyncio.gather(*(c.close() for c in conns))
    return res


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


async def drive_paced(
    host: str, port: int, requests: list[bytes], concurrency: int, rate: float, max_seconds: float = 120.0
) -> Result:
    """`concurrency` clients sending `rate` requests a second in all, each waiting for its answer before sending the
    next. Each connection first sends one request untimed (requests 0 … concurrency − 1: their replies are kept, not
    their latencies), so the timed part measures a server already holding its connections, not the first moments of
    64 new ones (which alone were ~1 % of a 10-second run's requests, and so its p99). Then request i is due at
    (i − concurrency) / rate, and its latency counts from when it was due, not when it could be sent, so a server
    that falls behind shows its queue in the latencies."""
    res = Result()
    conns = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    warm = await asyncio.gather(*(c.request(requests[j]) for j, c in enumerate(conns) if j < len(requests)))
    res.replies.extend(enumerate(warm))
    clock = time.perf_counter
    t0 = clock() + 0.05
    end = time.monotonic() + max_seconds

    async def worker(j: int, conn: Connection) -> None:
        for i in range(concurrency + j, len(requests), concurrency):
            due = t0 + (i - concurrency) / rate
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if time.monotonic() > end:
                return
            reply = await conn.request(requests[i])
            res.latencies.append(clock() - due)
            res.replies.append((i, reply))

    try:
        await asyncio.gather(*(worker(j, c) for j, c in enumerate(conns)))
    finally:
        res.wall_s = clock() - t0
        await asyncio.gather(*(c.close() for c in conns))
    return res
