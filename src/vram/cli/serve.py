"""`vram serve [--host] [--port] [--workers]`: the web tool under uvicorn (needs the `web` extra)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import BadInput, NeedsExtra


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the web tool",
        description=(
            "Serve the web tool and JSON API. Settings come from VRAM_* variables: VRAM_DATABASE_URL (default SQLite "
            "in "
            "the data dir), VRAM_REDIS_URL (needed with --workers > 1), VRAM_SECRET_KEY, VRAM_TRUSTED_PROXIES, "
            "VRAM_SECURE_COOKIES, VRAM_BASE_URL, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes (> 1 needs VRAM_REDIS_URL)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web.settings import Settings
    except ImportError as exc:
        raise NeedsExtra("vram serve", "web") from exc
    if args.workers < 1:
        raise BadInput("workers: at least 1", field="workers")
    if args.host in ("127.0.0.1", "localhost", "::1"):
        # served to this machine only: offer its own GPUs in the picker (clients elsewhere never get them)
        os.environ.setdefault("VRAM_LOCAL_GPUS", "1")
    settings = Settings.from_env()
    if args.workers > 1 and not settings.redis_url:
        raise BadInput(
            "--workers > 1 needs VRAM_REDIS_URL: allowance counters and sessions must be shared by the "
            "worker processes",
            field="workers",
        )
    if args.workers > 1:
        # every worker must sign and hash with the same secret: create it once, before they start
        os.environ.setdefault("VRAM_SECRET_KEY", settings.resolved_secret())
    from ..web.storage import Database, migrate

    db = Database(settings.resolved_database_url())  # migrate once here, before any worker starts
    try:
        migrate(db.engine)
    finally:
        db.close()
    print(
        f"vram: serving on http://{args.host}:{args.port} (database: "
        f"{settings.database_url or settings.data_dir / 'vram.sqlite3'})",
        file=sys.stderr,
    )
    options = uvicorn_options(args.host, args.port, args.workers)
    if args.workers > 1:
        from ..web.workers import reuseport_available, serve

        if reuseport_available():  # one listening socket per worker: connections spread evenly (vram.web.workers)
            rest = {k: v for k, v in options.items() if k not in ("host", "port", "workers")}
            return serve(APP, args.host, args.port, args.workers, rest)
    uvicorn.run(APP, factory=True, **options)
    return 0


APP = "vram.web.app:app_from_env"


def uvicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    """How `vram serve` runs uvicorn (benchmarks/load_test.py runs its bare comparison app with the same)."""
    return {"host": host, "port": port, "workers": workers, "proxy_headers": False, "log_level": "info"}
