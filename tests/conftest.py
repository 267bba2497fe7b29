"""Shared test helpers: the repository root and an in-process runner for the `vram` command line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    rc: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `vram ARGS...` in-process; argparse's own exits are turned into a return code like the real program's."""
    from vram.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            rc = main(list(args))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(rc, captured.out, captured.err)

    return run


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


# --- web tests: an in-process app on a temporary SQLite database with an injectable clock -------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    from test_web_support import Clock, app_for, settings_for

    with app_for(settings_for(tmp_path, Clock())) as a:
        yield a


WEB_SUITE = ("test_web_", "test_api_fuzz", "test_security_headers")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the web suite (by file) so the library suite runs alone with `-m 'not web'`."""
    for item in items:
        name = item.path.name
        if name.startswith(WEB_SUITE) or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.web)
