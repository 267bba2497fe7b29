#!/usr/bin/env python3
"""API throughput in process: the FastAPI app through httpx's ASGI transport (no sockets, no server process), on a
temporary SQLite database, with an allowance large enough never to say 429.

    .venv/bin/python benchmarks/bench_api.py [--requests 400] [--concurrency 1,8] [--json]

For each endpoint: requests/s and p50/p99 latency, sequentially (concurrency 1) and with concurrent requests
(asyncio tasks sharing the event loop; sync endpoints run in the thread pool, as under uvicorn). This is the
ceiling of one worker process without HTTP parsing; benchmarks/load_test.py measures the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine

ENDPOINTS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("POST", "/api/v1/estimate", {"model": "llama-3.1-8b", "context": 8192}),
    ("POST", "/api/v1/estimate", {"model": "llama-3.1-8b", "context": 4096, "train": {"method": "lora"}}),
    ("POST", "/api/v1/fit", {"model": "llama-3.1-8b", "gpu": "rtx-4090", "context": 8192}),
    ("POST", "/api/v1/which", {"model": "llama-3.1-8b", "context": 8192}),
    ("GET", "/api/v1/models?q=llama", None),
    ("GET", "/api/v1/quota", None),
    ("GET", "/", None),
)


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


async def run_one(
    app: Any, method: str, path: str, body: dict[str, Any] | None, n: int, concurrency: int
) -> dict[str, Any]:
    import httpx

    transport = httpx.ASGITransport(app=app, client=("198.51.100.10", 40000))
    lat: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
        for _ in range(10):  # warm-up: imports, catalog reads, evaluator caches
            await c.request(method, path, json=body)
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                r = await c.request(method, path, json=body)
                lat.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "endpoint": f"{method} {path}" + (" (train)" if body and "train" in body else ""),
        "concurrency": concurrency,
        "requests": n,
        "rps": n / wall,
        "p50_ms": 1e3 * statistics.median(lat),
        "p99_ms": 1e3 * percentile(lat, 99),
        "statuses": statuses,
    }


def bench(n: int, concurrencies: list[int]) -> list[dict[str, Any]]:
    from vram.web.app import create_app
    from vram.web.settings import Settings

    rows = []
    with tempfile.TemporaryDirectory(prefix="vram-bench-api-") as tmp:
        app = create_app(Settings(data_dir=Path(tmp), secret_key="bench", anon_daily_tokens=10**15))
        try:
            for method, path, body in ENDPOINTS:
                for conc in concurrencies:
                    rows.append(asyncio.run(run_one(app, method, path, body, n, conc)))
        finally:
            app.state.services.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--concurrency", default="1,8", help="comma-separated concurrency levels (default 1,8)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = bench(args.requests, [int(x) for x in args.concurrency.split(",")])
    if args.json:
        print(json.dumps({"machine": machine(load=True), "rows": rows}, indent=2))
        return 0
    print(f"# {machine(load=True)}")
    print("| endpoint | concurrency | req/s | p50 ms | p99 ms | statuses |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['endpoint']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['statuses']} |"
        )
    bad = [r for r in rows if set(r["statuses"]) - {200}]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
