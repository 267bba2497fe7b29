"""The web tool: one-screen calculator, JSON API under /api/v1, daily token allowance, accounts, history, shares.

`create_app(settings)` builds the ASGI app; `vram serve` runs it under uvicorn. Needs the `web` extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(name)
