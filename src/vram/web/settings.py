"""Settings from the environment (VRAM_*), with an injectable clock for tests."""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DAY_S = 24 * 3600


def default_data_dir() -> Path:
    """$VRAM_DATA_DIR, else $XDG_DATA_HOME/vram, else ~/.local/share/vram."""
    if os.environ.get("VRAM_DATA_DIR"):
        return Path(os.environ["VRAM_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vram"


def _secret_from_file(data_dir: Path) -> str:
    """A per-installation secret kept next to the database (created once, mode 0600)."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    return value


@dataclass
class Settings:
    """Everything the app needs to know about its deployment. Field names match the VRAM_* variables."""

    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # default: sqlite:///<data_dir>/vram.sqlite3
    redis_url: str | None = None  # allowance counters + sessions in Redis (needed with --workers > 1)
    redis_prefix: str = "vram:"
    secret_key: str | None = None  # signs CSRF/result tokens and salts client-address hashes
    trusted_proxies: tuple[str, ...] = ()  # X-Forwarded-For is believed only from these addresses/networks
    secure_cookies: bool = False  # set behind HTTPS
    base_url: str = ""  # absolute URL prefix for share links; default: the request's own
    anon_daily_tokens: int = 2500
    user_daily_tokens: int = 5000
    window_s: int = DAY_S
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    local_gpus: bool = False  # offer this machine's GPUs ("local") to clients on this machine (vram serve on loopback)
    signin_max_failures: int = 5
    signin_window_s: int = 15 * 60
    session_ttl_s: int = 30 * DAY_S
    clock: Callable[[], float] = time.time

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        s = cls()
        if e.get("VRAM_DATA_DIR"):
            s.data_dir = Path(e["VRAM_DATA_DIR"]).expanduser()
        s.database_url = e.get("VRAM_DATABASE_URL") or None
        s.redis_url = e.get("VRAM_REDIS_URL") or None
        s.redis_prefix = e.get("VRAM_REDIS_PREFIX", s.redis_prefix)
        s.secret_key = e.get("VRAM_SECRET_KEY") or None
        s.trusted_proxies = tuple(p.strip() for p in e.get("VRAM_TRUSTED_PROXIES", "").split(",") if p.strip())
        s.secure_cookies = e.get("VRAM_SECURE_COOKIES", "").lower() in ("1", "true", "yes")
        s.base_url = e.get("VRAM_BASE_URL", "").rstrip("/")
        s.local_gpus = e.get("VRAM_LOCAL_GPUS", "").lower() in ("1", "true", "yes")
        s.stripe_secret_key = e.get("STRIPE_SECRET_KEY") or None
        s.stripe_webhook_secret = e.get("STRIPE_WEBHOOK_SECRET") or None
        return s

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'vram.sqlite3'}"

    def resolved_secret(self) -> str:
        if not self.secret_key:
            self.secret_key = _secret_from_file(self.data_dir)
        return self.secret_key

    def is_trusted_proxy(self, host: str | None) -> bool:
        if not host or not self.trusted_proxies:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return host in self.trusted_proxies
        for p in self.trusted_proxies:
            try:
                if addr in ipaddress.ip_network(p, strict=False):
                    return True
            except ValueError:
                continue
        return False

    @property
    def purchases_enabled(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)
