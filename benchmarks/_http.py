"""A small HTTP/1.1 load generator: asyncio streams, keep-alive connections, one request in flight per connection.

It does far less per request than a general client (no URL parsing, no header objects, no cookie jar), so on a
machine where the load generator and the server share the CPUs most of the CPU goes to the server under test.
Each of `concurrency` connections sends its next request when the answer to the last one has arrived (a closed
loop, like that many clients each waiting for their answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    replies: list[tuple[int, Reply]] = field(default_factory=list)  # (request index, reply)
    wall_s: float = 0.0


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    async def request(self, raw: bytes) -> Reply:
        if self.reader is None or self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
            self.reader = self.writer = None
        return Reply(status, headers, body)


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
    """`concurrency` clients sending `rate` requests a second in all (request i is due at i / rate), each waiting
    for its answer before sending the next. Latency counts from when a request was due, not when it could be sent,
    so a server that falls behind shows its queue in the latencies."""
    res = Result()
    conns = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    clock = time.perf_counter
    t0 = clock() + 0.05
    end = time.monotonic() + max_seconds

    async def worker(j: int, conn: Connection) -> None:
        for i in range(j, len(requests), concurrency):
            due = t0 + i / rate
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
