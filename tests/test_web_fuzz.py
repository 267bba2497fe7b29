"""Property-based requests generated from /openapi.json (schemathesis): whatever the body, never a 500."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from test_web_support import settings_for  # noqa: E402
from vram.web.app import create_app  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="vram-fuzz-"))
_APP = create_app(settings_for(_DIR, anon_daily_tokens=10**12))
atexit.register(shutil.rmtree, _DIR, True)
atexit.register(_APP.state.services.close)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.include(method="POST").parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_answers_500(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500 or response.status_code in (501, 503), response.text
