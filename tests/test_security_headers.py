"""Every answer sends a Content-Security-Policy without inline script and the usual security headers; every page
escapes what it shows (XSS payloads in model names, questions, share and history titles, emails, `next` links)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from test_web_support import settings_for
from vram.web.app import create_app

API = "/api/v1"
PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</title><script>alert(document.cookie)</script>",
    "</textarea><iframe src=javascript:alert(1)>",
    "{{7*7}}<b>bold</b>",
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path, anon_daily_tokens=10**9, user_daily_tokens=10**9))
    with TestClient(app, client=("203.0.113.60", 40000), follow_redirects=False) as c:
        yield c
    app.state.services.close()


def _signed_in(c: TestClient, email: str = "sec@example.com") -> dict[str, str]:
    r = c.post(f"{API}/auth/signup", json={"email": email, "password": "correct horse battery"})
    assert r.status_code == 201, r.text
    c.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


# ---------------------------------------------------------------------------------------------------------------
# headers


def assert_security_headers(r: Any, where: str) -> None:
    h = r.headers
    csp = h.get("content-security-policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert "default-src" in directives, (where, csp)
    script = directives.get("script-src", directives["default-src"])
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script and "*" not in script.split(), (where, csp)
    assert directives.get("object-src") == "object-src 'none'", (where, csp)
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (where, csp)
    assert h.get("x-frame-options", "").upper() == "DENY", where  # for browsers without frame-ancestors
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("referrer-policy") in (
        "no-referrer",
        "same-origin",
        "strict-origin-when-cross-origin",
        "strict-origin",
    ), where


PAGES = (
    "/",
    "/index.json",
    "/pricing",
    "/pricing.json",
    "/costs",
    "/costs.json",
    "/signin",
    "/signup",
    "/ask?q=x",
    "/healthz",
    "/openapi.json",
    "/static/app.css",
    "/static/app.js",
    "/s/nonexistent",
    "/s/nonexistent.json",
    "/no/such/page",
    "/history",
    "/account",
    f"{API}/quota",
    f"{API}/models?q=llama",
    f"{API}/gpus",
    f"{API}/history",
    f"{API}/shares/nope",
)


@pytest.mark.parametrize("path", PAGES)
def test_every_get_answer_has_the_security_headers(client: TestClient, path: str) -> None:
    for accept in ("text/html", "application/json"):
        r = client.get(path, headers={"Accept": accept})
        assert r.status_code < 500, (path, r.status_code)
        assert_security_headers(r, f"GET {path} ({accept}) -> {r.status_code}")


def test_error_answers_have_the_security_headers(client: TestClient) -> None:
    answers = {
        "422": client.post(f"{API}/estimate", json={"model": "llama-3.2-1b", "batch": 0}),
        "422-unknown": client.post(f"{API}/estimate", json={"model": "<script>"}),
        "413": client.post(f"{API}/estimate", content=b"x" * (2 << 20), headers={"Content-Type": "application/json"}),
        "405": client.put(f"{API}/estimate", json={}),
        "401": client.get(f"{API}/account"),
        "403-csrf": client.post("/signout", data={"csrf_token": "wrong"}, headers={"Accept": "text/html"}),
        "503": client.post(f"{API}/webhooks/stripe", content=b"{}"),
        "200": client.post(f"{API}/estimate", json={"model": "llama-3.2-1b"}),
    }
    for name, r in answers.items():
        assert str(r.status_code) == name.split("-")[0], (name, r.status_code, r.text[:200])
        assert_security_headers(r, name)


def test_rate_limited_answers_have_the_security_headers(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, anon_daily_tokens=100))
    try:
        with TestClient(app, client=("203.0.113.61", 40000)) as c:
            assert c.post(f"{API}/estimate", json={"model": "llama-3.2-1b"}).status_code == 200
            r = c.post(f"{API}/estimate", json={"model": "llama-3.2-1b"})
            assert r.status_code == 429
            assert_security_headers(r, "429")
    finally:
        app.state.services.close()


def test_cookies_are_httponly_and_samesite(client: TestClient) -> None:
    r = client.post(f"{API}/auth/signup", json={"email": "c@example.com", "password": "correct horse battery"})
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("vram_session="))
    assert "httponly" in session.lower() and "samesite=lax" in session.lower() and "path=/" in session.lower()
    client.cookies.clear()
    csrf = next(c for c in client.get("/").headers.get_list("set-cookie") if c.startswith("vram_csrf="))
    assert "samesite=lax" in csrf.lower()


def test_pages_carry_no_inline_script_or_event_handlers(client: TestClient) -> None:
    headers = _signed_in(client)
    pages = ["/", "/pricing", "/costs", "/signin", "/signup", "/history", "/account", "/ask?q=llama+3+8b+on+a+4090"]
    for path in pages:
        html = client.get(path, headers={**headers, "Accept": "text/html"}).text
        for m in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
            assert "src=" in m.group(1) and not m.group(2).strip(), (path, m.group(0)[:200])
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), path
        assert "javascript:" not in html.lower(), path


# ---------------------------------------------------------------------------------------------------------------
# escaping


def assert_escaped(html: str, payload: str, where: str, *, must_show: bool = False) -> None:
    assert payload not in html, f"{where}: raw payload in the page"
    if must_show:
        assert str(escape(payload)) in html, f"{where}: the escaped payload is not shown"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_prefilled_form_question_and_errors_escape_the_input(client: TestClient, payload: str) -> None:
    html = {"Accept": "text/html"}
    r = client.get("/", params={"model": payload, "context": payload, "gpu": payload}, headers=html)
    assert r.status_code in (200, 422)
    assert_escaped(r.text, payload, "GET /?model=")
    r = client.get("/ask", params={"q": payload}, headers=html)
    assert r.status_code < 500
    assert_escaped(r.text, payload, "GET /ask")
    client.get("/")
    csrf = client.cookies["vram_csrf"]
    r = client.post(
        "/",
        data={"model": payload, "context": "1k", "gpu": "rtx-4090", "gpu_count": "1", "csrf_token": csrf},
        headers=html,
    )
    assert r.status_code in (200, 400, 422)
    assert_escaped(r.text, payload, "POST / with a hostile model")
    r = client.get("/signin", params={"next": payload}, headers=html)
    assert_escaped(r.text, payload, "GET /signin?next=")
    r = client.get(f"/s/{payload}", headers=html)
    assert r.status_code == 404 and payload not in r.text
    r = client.post(f"{API}/estimate", json={"model": payload})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")


def _signed_answer(c: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    req = {"model": "llama-3.2-1b", "context": 1024}
    r = c.post(f"{API}/estimate", json=req, headers=headers)
    assert r.status_code == 200
    return {"kind": "estimate", "request": req, "result": r.json(), "signature": r.headers["vram-result-signature"]}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_share_and_history_pages_escape_titles(client: TestClient, payload: str) -> None:
    headers = _signed_in(client)
    answer = _signed_answer(client, headers)
    r = client.post(f"{API}/shares", json={**answer, "title": payload})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    page = client.get(f"/s/{sid}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert_escaped(page.text, payload, "share page", must_show=True)
    twin = client.get(f"/s/{sid}.json")
    assert twin.json()["title"] == payload and twin.headers["content-type"].startswith("application/json")
    r = client.post(f"{API}/history", json={**answer, "title": payload}, headers=headers)
    assert r.status_code == 201, r.text
    hid = r.json()["id"]
    for path in ("/history", f"/history/{hid}"):
        page = client.get(path, headers={**headers, "Accept": "text/html"})
        assert page.status_code == 200
        assert_escaped(page.text, payload, path, must_show=True)


def test_a_hostile_email_is_escaped_on_the_account_page(client: TestClient) -> None:
    email = '"><img/src=x/onerror=alert(1)>@example.com'
    headers = _signed_in(client, email)
    for path in ("/account", "/"):
        page = client.get(path, headers={**headers, "Accept": "text/html"})
        assert page.status_code == 200
        assert_escaped(page.text, email.lower(), path, must_show=path == "/account")


def test_signup_page_escapes_a_refused_email(client: TestClient) -> None:
    client.get("/")
    csrf = client.cookies["vram_csrf"]
    payload = "<script>alert(1)</script>"
    r = client.post(
        "/signup", data={"email": payload, "password": "x", "csrf_token": csrf}, headers={"Accept": "text/html"}
    )
    assert r.status_code in (200, 400, 422)
    assert_escaped(r.text, payload, "POST /signup")
