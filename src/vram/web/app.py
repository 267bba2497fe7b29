"""The ASGI app: `create_app(settings)`. Every route is in ROUTES below, so the whole surface is visible here.

Each request is attributed to a client (signed-in user, else a salted hash of its address), and every answer
carries RateLimit-Limit / -Remaining / -Reset headers and the security headers (CSP without inline scripts).
"""

from __future__ import annotations

import gc
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import NeedsExtra, OfflineError, VramError
from . import api, more_pages, pages, tools_pages
from .auth import CSRF_COOKIE, SESSION_COOKIE
from .services import Services
from .settings import Settings

A = api.API


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    endpoint: Callable[..., Any]
    api: bool = False  # JSON API (in the OpenAPI document) vs HTML page / JSON twin


ROUTES: tuple[Route, ...] = (
    # pages (each has a JSON twin at the same path + .json)
    Route("GET", "/", pages.index),
    Route("GET", "/index.json", pages.index_json),
    Route("POST", "/", pages.index_post),
    Route("GET", "/ask", pages.ask),
    Route("POST", "/export", pages.export),
    Route("POST", "/share", pages.share_post),
    Route("POST", "/save", pages.save_post),
    Route("GET", "/s/{sid}.json", pages.share_json),
    Route("GET", "/s/{sid}", pages.share_page),
    Route("GET", "/s/{sid}/revoke", pages.share_revoke_page),
    Route("POST", "/s/{sid}/revoke", pages.share_revoke),
    Route("GET", "/which", more_pages.which_page),
    Route("POST", "/which", more_pages.which_post),
    Route("GET", "/compare", more_pages.compare_page),
    Route("POST", "/compare", more_pages.compare_post),
    Route("GET", "/plan", more_pages.plan_page),
    Route("POST", "/plan", more_pages.plan_post),
    Route("GET", "/models", more_pages.models_page),
    Route("GET", "/pricing", pages.pricing),
    Route("GET", "/pricing.json", pages.pricing_json),
    Route("POST", "/buy", pages.buy),
    Route("GET", "/costs", pages.costs),
    Route("GET", "/costs.json", pages.costs_json),
    Route("GET", "/signin", pages.signin),
    Route("POST", "/signin", pages.signin_post),
    Route("GET", "/signup", pages.signup),
    Route("POST", "/signup", pages.signup_post),
    Route("POST", "/signout", pages.signout_post),
    Route("GET", "/history", pages.history),
    Route("GET", "/history.json", pages.history_json),
    Route("GET", "/history/{hid}", pages.history_item),
    Route("POST", "/history/{hid}/delete", pages.history_item_delete),
    Route("GET", "/account", pages.account),
    Route("GET", "/account.json", pages.account_json),
    Route("POST", "/account/delete", pages.account_delete),
    Route("GET", "/healthz", pages.healthz),
    # "paste your log" and "models that fit my GPU" (vram.web.tools_pages)
    Route("GET", "/explain", tools_pages.explain_page),
    Route("POST", "/explain", tools_pages.explain_post),
    Route("POST", "/explain.json", tools_pages.explain_json),
    Route("GET", "/fits", tools_pages.fits_page),
    Route("GET", "/fits.json", tools_pages.fits_json),
    # JSON API
    Route("POST", f"{A}/estimate", api.estimate, api=True),
    Route("POST", f"{A}/fit", api.fit, api=True),
    Route("POST", f"{A}/which", api.which, api=True),
    Route("POST", f"{A}/compare", api.compare, api=True),
    Route("POST", f"{A}/plan", api.plan, api=True),
    Route("GET", f"{A}/models", api.models, api=True),
    Route("GET", f"{A}/gpus", api.gpus, api=True),
    Route("GET", f"{A}/parse", api.parse, api=True),
    Route("GET", f"{A}/quota", api.quota, api=True),
    Route("POST", f"{A}/auth/signup", api.signup, api=True),
    Route("POST", f"{A}/auth/login", api.login, api=True),
    Route("POST", f"{A}/auth/logout", api.logout, api=True),
    Route("GET", f"{A}/account", api.account, api=True),
    Route("DELETE", f"{A}/account", api.account_delete, api=True),
    Route("POST", f"{A}/history", api.history_create, api=True),
    Route("GET", f"{A}/history", api.history_list, api=True),
    Route("GET", f"{A}/history/{{hid}}", api.history_get, api=True),
    Route("DELETE", f"{A}/history/{{hid}}", api.history_delete, api=True),
    Route("POST", f"{A}/shares", api.shares_create, api=True),
    Route("GET", f"{A}/shares/{{sid}}", api.shares_get, api=True),
    Route("DELETE", f"{A}/shares/{{sid}}", api.shares_delete, api=True),
    Route("POST", f"{A}/checkout", api.checkout, api=True),
    Route("POST", f"{A}/webhooks/stripe", api.stripe_webhook, api=True),
)

MAX_BODY_BYTES = 1 << 20
_ERROR_BODY = {
    "application/json": {
        "schema": {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}}}
    }
}
API_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "invalid input (costs nothing); `field` names it", "content": _ERROR_BODY},
    429: {"description": "not enough tokens left: reset time and how to get more", "content": _ERROR_BODY},
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' https://checkout.stripe.com"
)


def _field_of(loc: Any) -> str:
    """The field's JSON path: train.lora_rank, gpus[1]."""
    parts = [p for p in loc if p not in ("body", "query", "path")]
    # union members show up as type names (e.g. context.int); keep the field path only
    parts = [p for p in parts if str(p) not in ("int", "str", "float", "bool") and not str(p).startswith("function-")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


class BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413, detail=f"body: larger than {MAX_BODY_BYTES:,} bytes")
        self.body = {"error": self.detail, "field": "body"}


class LimitBody:
    """ASGI wrapper: a request body (chunked or not) stops being read past MAX_BODY_BYTES and the answer is 413,
    so no request can make the server hold more than that in memory. (Content-Length is checked up front too.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    raise BodyTooLarge
            return message

        await self.app(scope, limited, send)


def _outage_exceptions() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import InterfaceError, OperationalError

    out: list[type[Exception]] = [OperationalError, InterfaceError]
    try:
        import redis.exceptions

        out += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is part of the web extra
        pass
    return tuple(out)


# The database or Redis is unreachable: a 503 that says so (and that it will pass), never a 500.
OUTAGES = _outage_exceptions()
# What answers without any storage when it is down: the catalog, static files, the API description.
NEEDS_NO_STORAGE = ("/api/v1/models", "/api/v1/gpus", "/api/v1/parse", "/static/", "/openapi.json", "/healthz")


def _outage_response(request: Request, exc: BaseException) -> Response:
    message = "storage is unreachable for a moment (database or Redis); nothing was charged, try again shortly"
    headers = {"Retry-After": "5", "Cache-Control": "no-store"}
    if _wants_html(request):
        return HTMLResponse(
            f"<!doctype html><title>503 — vram</title><h1>503</h1><p>{message}</p>", status_code=503, headers=headers
        )
    return JSONResponse({"error": message, "field": None}, status_code=503, headers=headers)


def _wants_html(request: Request) -> bool:
    return (
        not request.url.path.startswith("/api/")
        and not request.url.path.endswith(".json")
        and "text/html" in request.headers.get("accept", "")
    )


_OURS = {
    b"ratelimit-limit",
    b"ratelimit-remaining",
    b"ratelimit-reset",
    b"ratelimit-policy",
    b"content-security-policy",
    b"x-content-type-options",
    b"x-frame-options",
    b"referrer-policy",
    b"cross-origin-opener-policy",
    b"permissions-policy",
    b"strict-transport-security",
    b"x-robots-tag",
}
_SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)


class PerRequest:
    """ASGI middleware run for every request: who the client is (a signed-in user, else a salted hash of its
    address), a CSRF cookie for pages, and on every answer the RateLimit-* and security headers.

    A plain ASGI wrapper (no per-request task or stream, unlike Starlette's BaseHTTPMiddleware): it sets
    request.state before the app runs and edits the headers of the answer's first message on its way out. Only a
    request that carries a session token asks the session store, in the thread pool; an anonymous one costs an
    HMAC. The allowance headers come from the state the operation's charge left (request.state.quota); other
    answers read it once."""

    def __init__(self, app: Any, services: Services, settings: Settings) -> None:
        self.app = app
        self.svc = services
        self.settings = settings
        hsts = [("Strict-Transport-Security", "max-age=31536000; includeSubDomains")] if settings.secure_cookies else []
        self.fixed = [(k.lower().encode(), v.encode()) for k, v in (*_SECURITY_HEADERS, *hsts)]
        self.policy = f";w={settings.window_s}".encode()
        self.csrf_cookie = {s: _csrf_cookie("%s", s) for s in (False, True)}  # the Set-Cookie value, %s: the token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc, settings = self.svc, self.settings
        request = Request(scope)
        bearer = request.headers.get("authorization", "")
        token: str | None = None
        auth_via: str | None = None
        if bearer.lower().startswith("bearer "):
            token, auth_via = bearer[7:].strip() or None, "bearer"
        elif request.cookies.get(SESSION_COOKIE):
            token, auth_via = request.cookies.get(SESSION_COOKIE), "cookie"
        address = api.client_address(request, settings)
        path: str = scope["path"]
        early: Response | None = None
        live_token: str | None = None
        if token:
            try:
                if svc.inline:
                    subject, live_token = svc.subject_for(address, token)
                elif svc.on_loop:
                    subject, live_token = await svc.subject_for_async(address, token)
                else:
                    subject, live_token = await run_in_threadpool(svc.subject_for, address, token)
            except OUTAGES as exc:
                subject = svc.anonymous(address)  # the catalog needs no account
                if not path.startswith(NEEDS_NO_STORAGE):
                    early = _outage_response(request, exc)
        else:
            subject = svc.anonymous(address)
        state = request.state
        state.subject = subject
        state.session_token = live_token
        state.auth_via = auth_via if live_token else None
        state.quota = None
        csrf = request.cookies.get(CSRF_COOKIE)
        new_csrf = None
        if not csrf and auth_via != "bearer":  # a Bearer client carries no ambient authority: no CSRF cookie
            csrf = new_csrf = secrets.token_urlsafe(24)
            state.new_csrf = csrf
        state.csrf = csrf or ""
        length = request.headers.get("content-length", "")
        answer = early
        if early is None and length.isdigit() and int(length) > MAX_BODY_BYTES:  # refused unread, counts shown
            answer = JSONResponse(
                {"error": f"body: larger than {MAX_BODY_BYTES:,} bytes", "field": "body"}, status_code=413
            )
        secure = settings.secure_cookies or scope.get("scheme") == "https"

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                quota = state.quota
                if quota is None and early is None:
                    try:
                        if svc.inline:
                            quota = svc.quota.state(subject)
                        elif svc.on_loop:
                            quota = await svc.quota.state_on_loop(svc.aio(), subject)
                        else:
                            quota = await run_in_threadpool(svc.quota.state, subject)
                    except OUTAGES:  # only answers that needed no storage get here: they go out without the counts
                        quota = None
                # the answer's own headers, less any this middleware sets (they were never the app's to choose)
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OURS]
                if quota is not None:
                    limit = str(quota.limit).encode()
                    headers += [
                        (b"ratelimit-limit", limit),
                        (b"ratelimit-remaining", str(quota.remaining).encode()),
                        (b"ratelimit-reset", str(quota.reset_in_s).encode()),
                        (b"ratelimit-policy", limit + self.policy),
                    ]
                if new_csrf is not None:
                    headers.append((b"set-cookie", (self.csrf_cookie[secure] % new_csrf).encode()))
                headers += self.fixed
                if path.startswith(("/api/", "/s/", "/history", "/account")) and not any(
                    k.lower() == b"cache-control" for k, _ in headers
                ):
                    headers.append((b"cache-control", b"no-store"))
                if path.startswith("/s/"):  # a shared link is for whoever got it, not for search engines
                    headers.append((b"x-robots-tag", b"noindex"))
                message = {**message, "headers": headers}
            await send(message)

        if answer is not None:
            await answer(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)


def _csrf_cookie(value: str, secure: bool) -> str:
    """The Set-Cookie value Starlette's set_cookie writes for the CSRF cookie (readable by the page's forms)."""
    r = Response()
    r.set_cookie(CSRF_COOKIE, value, httponly=False, samesite="lax", secure=secure, path="/")
    return r.headers["set-cookie"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    svc = Services.build(settings)
    app = FastAPI(
        title="vram",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        description="Will it fit? GPU memory for inference and training of open models. Operations cost "
        "tokens from a daily allowance (2,500 anonymous, 5,000 signed in); see /costs.",
    )
    app.state.services = svc
    app.state.templates = pages.make_templates()
    # the JSON API first: routes are tried in order, and the API is where the traffic is (paths do not overlap)
    for r in sorted(ROUTES, key=lambda r: not r.api):
        app.add_api_route(
            r.path,
            r.endpoint,
            methods=[r.method],
            include_in_schema=r.api,
            name=f"{r.method.lower()} {r.path}",
            responses=API_ERRORS if r.api else None,
        )
    app.mount("/static", StaticFiles(directory=str(resources.files("vram.web").joinpath("static"))), name="static")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # its loc is a character position, not a field
            at = next((p for p in first.get("loc", ()) if isinstance(p, int)), None)
            where = f" at character {at}" if at is not None else ""
            return JSONResponse(
                {
                    "error": f"body: not valid JSON{where}",
                    "field": "body",
                    "detail": [{"field": "body", "message": str(first.get("msg", ""))}],
                },
                status_code=422,
            )
        field = _field_of(first.get("loc", ()))
        detail = [{"field": _field_of(e.get("loc", ())), "message": e.get("msg", "")} for e in errors]
        return JSONResponse(
            {"error": f"{field}: {first.get('msg', 'invalid')}", "field": field, "detail": detail}, status_code=422
        )

    @app.exception_handler(VramError)
    async def _vram_error(request: Request, exc: VramError) -> Response:
        status = 501 if isinstance(exc, NeedsExtra) else 503 if isinstance(exc, OfflineError) else 422
        body: dict[str, Any] = {"error": str(exc), "field": exc.field}
        if getattr(exc, "suggestions", None):
            body["suggestions"] = list(getattr(exc, "suggestions", []))
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        body = getattr(exc, "body", None) or {"error": str(exc.detail), "field": None}
        if _wants_html(request):
            return pages.error_page(request, exc.status_code, str(body["error"]), headers=exc.headers)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def _outage(request: Request, exc: Exception) -> Response:
        return _outage_response(request, exc)

    for outage in OUTAGES:
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:  # pragma: no cover - last resort
        return JSONResponse({"error": "internal error", "field": None}, status_code=500)

    app.add_middleware(LimitBody)
    app.add_middleware(PerRequest, services=svc, settings=settings)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory vram.web.app:app_from_env` (what `vram serve` runs).

    What the start made — modules, the app, its routes and schemas: some 130,000 objects the cyclic garbage
    collector tracks, all kept until the process ends — is taken out of the collector's sight (`gc.freeze`). A
    full collection walked them all: 105–111 ms in process under 64 concurrent estimates, a pause every request in
    flight waits through (the p99); 17–21 ms frozen (issue 18)."""
    app = create_app(Settings.from_env())
    gc.collect()  # what the start left as garbage is freed, not frozen
    gc.freeze()
    return app
