"""`vram serve`: several workers need Redis; the factory reads the VRAM_* environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_workers_need_redis(run_cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VRAM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VRAM_REDIS_URL", raising=False)
    r = run_cli("serve", "--workers", "2")
    assert r.rc == 2
    assert "--workers > 1 needs VRAM_REDIS_URL" in r.err


def test_serve_help_lists_options(run_cli: Any) -> None:
    r = run_cli("serve", "--help")
    assert r.rc == 0
    for opt in ("--host", "--port", "--workers", "VRAM_DATABASE_URL", "VRAM_REDIS_URL"):
        assert opt in r.out


def test_settings_from_env(tmp_path: Path) -> None:
    from vram.web.settings import Settings

    s = Settings.from_env(
        {
            "VRAM_DATA_DIR": str(tmp_path),
            "VRAM_DATABASE_URL": "postgresql://db/vram",
            "VRAM_REDIS_URL": "redis://r:6379/0",
            "VRAM_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "VRAM_SECURE_COOKIES": "1",
            "STRIPE_SECRET_KEY": "sk",
            "STRIPE_WEBHOOK_SECRET": "wh",
        }
    )
    assert s.data_dir == tmp_path and s.database_url == "postgresql://db/vram" and s.redis_url == "redis://r:6379/0"
    assert s.is_trusted_proxy("10.2.3.4") and s.is_trusted_proxy("127.0.0.1") and not s.is_trusted_proxy("8.8.8.8")
    assert s.secure_cookies and s.purchases_enabled
    default = Settings.from_env({"VRAM_DATA_DIR": str(tmp_path)})
    assert default.resolved_database_url() == f"sqlite:///{tmp_path / 'vram.sqlite3'}"
    secret = default.resolved_secret()
    assert len(secret) >= 48 and (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert Settings.from_env({"VRAM_DATA_DIR": str(tmp_path)}).resolved_secret() == secret


def _migrate_concurrently(url: str, n: int = 4) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from vram.web.storage import Database, migrate

    dbs = [Database(url) for _ in range(n)]
    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            for f in [pool.submit(migrate, db.engine) for db in dbs]:
                f.result()
        newest = max(
            f.name[:4]
            for f in (Path(__file__).resolve().parent.parent / "src" / "vram" / "web" / "migrations" / "versions").glob(
                "0*.py"
            )
        )
        with dbs[0].engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == newest
    finally:
        for db in dbs:
            db.close()


def test_workers_starting_together_migrate_once_sqlite(tmp_path: Path) -> None:
    """Several workers opening a new SQLite file at once: switching it to WAL needs the file to itself, and SQLite
    refuses that at once ("database is locked") while another connection holds it; before the switch was retried,
    about one fresh database in twelve failed this way with six workers."""
    for i in range(10):
        _migrate_concurrently(f"sqlite:///{tmp_path / f'w{i}.sqlite3'}", n=6)


def test_workers_starting_together_migrate_once_postgresql() -> None:
    from test_web_support import pg_available, pg_database

    if not pg_available():
        pytest.skip("PostgreSQL (127.0.0.1:5432) is not running")
    with pg_database() as url:
        _migrate_concurrently(url)


def test_served_app_takes_its_start_out_of_the_collectors_sight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vram serve`'s factory freezes what the start made (gc.freeze): full collections under load then walk only
    what requests made since, not the ~130,000 objects of the app (issue 18: the p99)."""
    import gc

    from vram.web.app import app_from_env

    monkeypatch.setenv("VRAM_DATA_DIR", str(tmp_path))
    gc.unfreeze()
    try:
        app = app_from_env()
        assert gc.get_freeze_count() > 10_000
        assert all(o is not app for o in gc.get_objects())  # the app is in no generation: frozen
    finally:
        gc.unfreeze()
        app.state.services.close()
