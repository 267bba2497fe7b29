"""Browser tests: a real server (uvicorn in a thread, temp SQLite) driven by Debian's Chromium through Playwright."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _serve(tmp_path_factory: pytest.TempPathFactory, **settings: Any) -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    from vram.web.app import create_app
    from vram.web.settings import Settings

    data = tmp_path_factory.mktemp("web-e2e")
    app = create_app(Settings(data_dir=data, secret_key="e2e-secret", **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.services.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose allowances do not run out while the tests walk it (every page shares 127.0.0.1)."""
    yield from _serve(tmp_path_factory, anon_daily_tokens=10**9, user_daily_tokens=10**9)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The allowances as deployed (what the README's screenshots show)."""
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="module")
def small_allowance_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """300 tokens a day, anonymous or signed in: one check (250) and then the out-of-tokens box."""
    yield from _serve(tmp_path_factory, anon_daily_tokens=300, user_daily_tokens=300)


# Playwright's 30 s default is a hang detector; on the 2-core CI machine, with the other pytest worker busy, a page
# that renders in well under a second alone has been seen to take longer. Waits get 120 s.
PAGE_TIMEOUT_MS = 120_000


class _Browser:
    """The launched browser, whose new pages wait PAGE_TIMEOUT_MS."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_page(self, **kwargs: Any) -> Any:
        page = self._browser.new_page(**kwargs)
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        return page

    def new_context(self, **kwargs: Any) -> Any:
        ctx = self._browser.new_context(**kwargs)
        ctx.set_default_timeout(PAGE_TIMEOUT_MS)
        return ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield _Browser(b)
        finally:
            b.close()


@pytest.fixture
def shots() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
