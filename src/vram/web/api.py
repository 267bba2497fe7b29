"""JSON API handlers (/api/v1). Thin: validate (pydantic), check the allowance, call the library, charge."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..catalog import search_gpus, search_models
from .answers import Answer, encode
from .auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    EMAIL_RE,
    MIN_PASSWORD,
    SESSION_COOKIE,
    csrf_ok,
    hash_password,
    normalize_email,
    sign_result,
    token_hash,
    verify_password,
    verify_result,
)
from .ops import BODIES, RUNNERS, cost_of, title_of
from .quota import OPERATION_COSTS, PLAN_COST_MAX, PLAN_COST_PER_MODEL, TOKEN_PACKS, QuotaState, Subject
from .schemas import CompareBody, Credentials, EstimateBody, FitBody, PlanBody, SaveBody, ShareBody, WhichBody
from .services import Services
from .settings import Settings
from .storage import Counter, HistoryRow, LedgerRow, ShareRow, User

API = "/api/v1"


class ApiError(HTTPException):
    """An HTTP error with a JSON body: {"error": message, "field": ..., **extra}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.body: dict[str, Any] = {"error": message, "field": field, **extra}


def services(request: Request) -> Services:
    s: Services = request.app.state.services
    return s


def subject(request: Request) -> Subject:
    s: Subject = request.state.subject
    return s


def require_user(request: Request) -> Subject:
    sub = subject(request)
    if not sub.signed_in:
        raise ApiError(401, "sign in first (POST /api/v1/auth/login, then send the token as 'Authorization: Bearer')")
    check_csrf(request)
    return sub


def check_csrf(request: Request) -> None:
    """State-changing API calls authenticated by the session cookie must echo the CSRF cookie in X-CSRF-Token.
    (Bearer-token calls carry no ambient authority, so they need none.)"""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.state.auth_via != "cookie":
        return
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "missing or wrong X-CSRF-Token header (copy the vram_csrf cookie)", field="csrf_token")


def _in_words(seconds: int) -> str:
    h, m = divmod(max(0, int(seconds)) // 60, 60)
    return f"{h} h {m} min" if h else f"{max(1, m)} min"


def over_allowance(state: QuotaState, cost: int, signed_in: bool) -> ApiError:
    at = datetime.fromtimestamp(state.reset_at, UTC)
    reset = at.isoformat(timespec="seconds")
    more = (
        "buy a token pack at /pricing (purchased tokens never expire)"
        if signed_in
        else "sign up for a free account (5,000 tokens a day) or buy a token pack at /pricing"
    )
    return ApiError(
        429,
        f"Not enough tokens: this costs {cost:,} and {state.remaining:,} are left. The daily "
        f"allowance comes back in {_in_words(state.reset_in_s)} (at {at:%H:%M} UTC); or {more}.",
        cost_tokens=cost,
        remaining=state.remaining,
        limit=state.limit,
        reset_at=reset,
        reset_in_s=state.reset_in_s,
        how_to_get_more=more,
        headers={"Retry-After": str(state.reset_in_s)},
    )


def local_allowed(request: Request) -> bool:
    """This machine's GPUs are offered only when the server says so (vram serve on a loopback address) and the
    client is on this machine too: to anyone else "local" would describe someone else's hardware."""
    import ipaddress

    if not services(request).settings.local_gpus or request.client is None:
        return False
    if request.headers.get("x-forwarded-for"):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def names_local_gpu(body: Any) -> bool:
    """Whether a request body asks for this machine's GPUs (bodies without a GPU field never do)."""
    from .ops import uses_local_gpu

    fields = type(body).model_fields
    return ("gpu" in fields or "gpus" in fields) and uses_local_gpu(body)


def check_local(request: Request, body: Any) -> None:
    if names_local_gpu(body) and not local_allowed(request):
        raise ApiError(
            422,
            "gpu: 'local' (this machine's GPUs) is offered only when vram serves on your own "
            "machine; pick a catalog GPU",
            field="gpu",
        )


# Operations that cost this much are refused before they are computed when the client cannot pay; cheaper ones
# (an estimate, a fit: a millisecond or less, and often a kept answer) are computed first and the charge itself
# refuses, which saves a storage round trip on every paid request.
PRECHECK_COST = 1000


def answer_key(kind: str, body: Any) -> tuple[str, str] | None:
    """What makes two requests the same answer; None for answers never kept (this machine's GPUs)."""
    if names_local_gpu(body):
        return None
    return kind, body.model_dump_json()


def compute_answer(svc: Services, kind: str, body: Any, cost: int, key: tuple[str, str] | None) -> Answer:
    result = RUNNERS[kind](body, svc.evaluators)
    answer = Answer(
        encode({**result, "cost_tokens": cost}), sign_result(svc.secret, kind, body.model_dump(mode="json"), result)
    )
    if key is not None:
        svc.answers.put(key, answer)
    return answer


async def _operation_response(request: Request, kind: str, body: Any) -> Response:
    """Check the request, compute the answer (or find it kept), charge it; the charge is one storage transaction
    (see Quota.charge). Failures before the charge (validation, library errors) cost nothing."""
    svc = services(request)
    sub = subject(request)
    check_csrf(request)
    local = names_local_gpu(body)  # once: check_local and answer_key each ask it
    if local:
        check_local(request, body)
    cost = cost_of(kind, body)
    key = None if local else (kind, body.model_dump_json())  # = answer_key(kind, body)
    answer = svc.answers.get(key) if key is not None else None
    if answer is None:
        if cost >= PRECHECK_COST:
            from .ops import precheck

            precheck(body)  # an unknown model or GPU is a 422 whatever is left of the allowance
            if svc.inline:
                state = svc.quota.state(sub)
            elif svc.on_loop:
                state = await svc.quota.state_on_loop(svc.aio(), sub)
            else:
                state = await run_in_threadpool(svc.quota.state, sub)
            if state.remaining < cost:
                request.state.quota = state
                raise over_allowance(state, cost, sub.signed_in)
        answer = await run_in_threadpool(compute_answer, svc, kind, body, cost, key)  # an unknown name: 422 here
    if svc.inline:
        ok, state = await svc.quota.charge_together(sub, cost, kind)
    elif svc.on_loop:
        ok, state = await svc.quota.charge_on_loop(svc.aio(), sub, cost, kind)
    else:
        ok, state = await run_in_threadpool(svc.quota.charge, sub, cost, kind)
    request.state.quota = state
    if not ok:
        raise over_allowance(state, cost, sub.signed_in)
    return Response(answer.body, media_type="application/json", headers={"Vram-Result-Signature": answer.signature})


async def estimate(body: EstimateBody, request: Request) -> Response:
    """Memory for inference (or training, with `train`): the same JSON as `vram estimate --json`, plus
    cost_tokens. The Vram-Result-Signature header lets the answer be saved or shared."""
    return await _operation_response(request, "estimate", body)


async def fit(body: FitBody, request: Request) -> Response:
    """Does it fit on `gpu_count` × `gpu`, and what are the limits (max context/batch, min GPUs, best quant)."""
    return await _operation_response(request, "fit", body)


async def which(body: WhichBody, request: Request) -> Response:
    """Which catalog GPUs (in which counts) run this workload."""
    return await _operation_response(request, "which", body)


async def compare(body: CompareBody, request: Request) -> Response:
    """The full fit on each of several GPU specs, side by side."""
    return await _operation_response(request, "compare", body)


async def plan(body: PlanBody, request: Request) -> Response:
    """A fleet plan: models -> GPU pools. Costs 1,000 tokens per model, at most 5,000."""
    return await _operation_response(request, "plan", body)


def models(q: str = Query("", max_length=100), limit: int = Query(20, ge=1, le=200)) -> list[dict[str, Any]]:
    """Catalog models matching q (id, name, family, Hub repo, aliases). Free."""
    return [m.summary() for m in search_models(q)[:limit]]


def gpus(q: str = Query("", max_length=100), limit: int = Query(100, ge=1, le=200)) -> list[dict[str, Any]]:
    """Catalog GPUs matching q. Free."""
    return [g.summary() for g in search_gpus(q)[:limit]]


def costs_table() -> dict[str, Any]:
    return {
        "operations": dict(OPERATION_COSTS),
        "plan": {"per_model": PLAN_COST_PER_MODEL, "max": PLAN_COST_MAX},
        "daily_allowance": {"anonymous": 2500, "free_account": 5000},
        "window_hours": 24,
        "packs": [{"id": k, "tokens": t, "price_usd": c / 100} for k, (t, c) in TOKEN_PACKS.items()],
    }


def quota(request: Request) -> dict[str, Any]:
    """What is left of the daily allowance and of purchased tokens, and when the allowance comes back. Free."""
    svc = services(request)
    sub = subject(request)
    state = svc.quota.state(sub)
    request.state.quota = state
    return {
        **state.to_dict(),
        "signed_in": sub.signed_in,
        "email": sub.email,
        "reset_at_iso": datetime.fromtimestamp(state.reset_at, UTC).isoformat(timespec="seconds"),
        "costs": costs_table(),
    }


def parse(q: str = Query("", max_length=500)) -> dict[str, Any]:
    """Turn a question ("can I run llama 3 70b on two 4090s at 32k?") into form fields. Free."""
    from .question import parse_question

    return parse_question(q)


# --- accounts -------------------------------------------------------------------------------------------------


def set_session_cookie(response: Response, svc: Services, token: str, request: Request | None = None) -> None:
    """HttpOnly, SameSite=Lax; Secure behind HTTPS (VRAM_SECURE_COOKIES, or a request that came over https)."""
    secure = svc.settings.secure_cookies or (request is not None and request.url.scheme == "https")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(svc.settings.session_ttl_s),
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )


SIGNUPS_PER_DAY = 5


def signup_user(svc: Services, email_raw: str, password: str, address_key: str | None = None) -> int:
    """Create an account. With `address_key`, at most 5 sign-ups per client address a day (free accounts carry a
    bigger allowance, so they must not be minted in bulk)."""
    email = normalize_email(email_raw)
    if not EMAIL_RE.match(email):
        raise ApiError(422, "email: not an email address", field="email")
    if len(password) < MIN_PASSWORD:
        raise ApiError(422, f"password: at least {MIN_PASSWORD} characters", field="password")
    if address_key is not None:
        st = svc.settings
        t = svc.counters.take("signup-" + address_key, 1, SIGNUPS_PER_DAY, st.window_s, st.clock())
        if not t.taken:
            raise ApiError(429, "too many new accounts from this address today; sign in instead")
    try:
        with svc.db.tx() as conn:
            res = conn.execute(
                insert(User).values(
                    email=email,
                    password_hash=hash_password(password),
                    created_at=svc.settings.clock(),
                    purchased_tokens=0,
                )
            )
            pk = res.inserted_primary_key
            assert pk is not None
            uid = int(pk[0])
    except IntegrityError as exc:
        raise ApiError(409, "email: an account with this email exists; sign in instead", field="email") from exc
    return uid


def login_user(svc: Services, address_key: str, email_raw: str, password: str) -> int:
    """Verify credentials with throttling: after 5 failures in 15 minutes (per email and per client), 429."""
    email = normalize_email(email_raw)
    st = svc.settings
    now = st.clock()
    keys = ["signin:" + hashlib.sha256(email.encode()).hexdigest()[:40], "signin-" + address_key]
    for key in keys:
        usage = svc.counters.peek(key, st.signin_window_s, now)
        if usage.used >= st.signin_max_failures:
            wait = int((usage.window_start or now) + st.signin_window_s - now) + 1
            raise ApiError(
                429,
                f"too many failed sign-ins; try again in {wait // 60 + 1} minutes",
                headers={"Retry-After": str(wait)},
            )
    found = svc.user_by_email(email)
    if not verify_password(found[1] if found else None, password) or found is None:
        for key in keys:
            svc.counters.take(key, 1, st.signin_max_failures, st.signin_window_s, now)
        raise ApiError(401, "wrong email or password", field="password")
    svc.counters.clear(keys[0])
    return found[0]


def signup(body: Credentials, request: Request, response: Response) -> dict[str, Any]:
    """Create a free account (5,000 tokens a day) and sign in: {token} for 'Authorization: Bearer', plus a cookie."""
    svc = services(request)
    uid = signup_user(svc, body.email, body.password, subject(request).key)
    token = svc.sessions.create(uid, svc.settings.clock(), normalize_email(body.email))
    set_session_cookie(response, svc, token, request)
    response.status_code = 201
    return {"token": token, "email": normalize_email(body.email), "user_id": uid}


def login(body: Credentials, request: Request, response: Response) -> dict[str, Any]:
    """Sign in: {token} for 'Authorization: Bearer', plus a session cookie for the pages."""
    svc = services(request)
    uid = login_user(
        svc,
        subject(request).key if not subject(request).signed_in else f"user:{subject(request).user_id}",
        body.email,
        body.password,
    )
    token = svc.sessions.create(uid, svc.settings.clock(), normalize_email(body.email))
    set_session_cookie(response, svc, token, request)
    return {"token": token, "email": normalize_email(body.email), "user_id": uid}


def logout(request: Request, response: Response) -> dict[str, Any]:
    """End this session (the Bearer token or the cookie's)."""
    svc = services(request)
    check_csrf(request)
    token = request.state.session_token
    if token:
        svc.sessions.delete(token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"signed_out": True}


def delete_user_data(svc: Services, user_id: int) -> None:
    """Account deletion: the user, their sessions, history, shares, ledger and counters."""
    svc.sessions.delete_user(user_id)
    svc.counters.clear(f"user:{user_id}")
    with svc.db.tx() as conn:
        for table in (HistoryRow, ShareRow, LedgerRow):
            conn.execute(delete(table).where(table.user_id == user_id))
        conn.execute(delete(Counter).where(Counter.key == f"user:{user_id}"))
        conn.execute(delete(User).where(User.id == user_id))


def account(request: Request) -> dict[str, Any]:
    """The signed-in account: email, allowance, purchased tokens, ledger."""
    return account_data(request, require_user(request))


def account_data(request: Request, sub: Subject) -> dict[str, Any]:
    svc = services(request)
    assert sub.user_id is not None
    with svc.db.engine.connect() as conn:
        rows = conn.execute(
            select(LedgerRow).where(LedgerRow.user_id == sub.user_id).order_by(LedgerRow.id.desc()).limit(50)
        ).all()
    state = svc.quota.state(sub)
    request.state.quota = state
    return {
        "email": sub.email,
        "quota": state.to_dict(),
        "ledger": [{"at": r.created_at, "amount": r.amount, "bucket": r.bucket, "reason": r.reason} for r in rows],
    }


def account_delete(request: Request) -> dict[str, Any]:
    """Delete the signed-in account and everything stored for it."""
    sub = require_user(request)
    assert sub.user_id is not None
    delete_user_data(services(request), sub.user_id)
    resp: dict[str, Any] = {"deleted": True}
    return resp


# --- history and shares -----------------------------------------------------------------------------------------


def _canonical_request(kind: str, request_data: dict[str, Any]) -> dict[str, Any]:
    """Re-validate a request the way the operation did, so its signature can be checked."""
    from pydantic import ValidationError

    try:
        body = BODIES[kind].model_validate(request_data)
    except ValidationError as exc:
        raise ApiError(422, "request: not a valid request for this kind", field="request") from exc
    out: dict[str, Any] = body.model_dump(mode="json")
    return out


def verified_payload(
    svc: Services, kind: str, req: dict[str, Any], result: dict[str, Any], signature: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    result = {k: v for k, v in result.items() if k != "cost_tokens"}
    canon = _canonical_request(kind, req)
    if not verify_result(svc.secret, kind, canon, result, signature):
        raise ApiError(
            422, "signature: this result was not computed by this server (or was altered)", field="signature"
        )
    return canon, result


def save_history(
    svc: Services, user_id: int, kind: str, req: dict[str, Any], result: dict[str, Any], title: str | None
) -> str:
    hid = secrets.token_urlsafe(12)
    with svc.db.tx() as conn:
        conn.execute(
            insert(HistoryRow).values(
                id=hid,
                user_id=user_id,
                created_at=svc.settings.clock(),
                kind=kind,
                title=title or title_of(kind, req, result),
                request=req,
                result=result,
                tool_version=str(result.get("vram_version", __version__)),
            )
        )
    return hid


def history_create(body: SaveBody, request: Request) -> JSONResponse:
    """Save a result (inputs, outputs, tool version) to the signed-in user's history."""
    sub = require_user(request)
    svc = services(request)
    assert sub.user_id is not None
    req, result = verified_payload(svc, body.kind, body.request, body.result, body.signature)
    hid = save_history(svc, sub.user_id, body.kind, req, result, body.title)
    return JSONResponse({"id": hid, "url": f"/history/{hid}"}, status_code=201)


def _row_dict(row: Any, full: bool = True) -> dict[str, Any]:
    d = {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "created_at": row.created_at,
        "created_at_iso": datetime.fromtimestamp(row.created_at, UTC).isoformat(timespec="seconds"),
        "tool_version": row.tool_version,
    }
    if full:
        d.update(request=row.request, result=row.result)
    return d


def history_rows(svc: Services, user_id: int) -> list[dict[str, Any]]:
    with svc.db.engine.connect() as conn:
        rows = conn.execute(
            select(HistoryRow).where(HistoryRow.user_id == user_id).order_by(HistoryRow.created_at.desc()).limit(500)
        ).all()
    return [_row_dict(r, full=False) for r in rows]


def history_row(svc: Services, user_id: int, hid: str) -> dict[str, Any]:
    with svc.db.engine.connect() as conn:
        row = conn.execute(select(HistoryRow).where(HistoryRow.id == hid, HistoryRow.user_id == user_id)).first()
    if row is None:  # someone else's entry looks exactly like a missing one
        raise ApiError(404, "no such history entry")
    return _row_dict(row)


def history_list(request: Request) -> dict[str, Any]:
    """The signed-in user's saved results, newest first."""
    sub = require_user(request)
    assert sub.user_id is not None
    return {"items": history_rows(services(request), sub.user_id)}


def history_get(hid: str, request: Request) -> dict[str, Any]:
    sub = require_user(request)
    assert sub.user_id is not None
    return history_row(services(request), sub.user_id, hid)


def history_delete(hid: str, request: Request) -> dict[str, Any]:
    sub = require_user(request)
    svc = services(request)
    with svc.db.tx() as conn:
        res = conn.execute(delete(HistoryRow).where(HistoryRow.id == hid, HistoryRow.user_id == sub.user_id))
    if res.rowcount != 1:
        raise ApiError(404, "no such history entry")
    return {"deleted": hid}


def create_share(
    svc: Services, user_id: int | None, kind: str, req: dict[str, Any], result: dict[str, Any], title: str | None
) -> tuple[str, str]:
    sid = secrets.token_urlsafe(16)  # 128 random bits
    delete_token = secrets.token_urlsafe(24)
    with svc.db.tx() as conn:
        conn.execute(
            insert(ShareRow).values(
                id=sid,
                user_id=user_id,
                delete_token_hash=token_hash(delete_token),
                created_at=svc.settings.clock(),
                kind=kind,
                title=title or title_of(kind, req, result),
                request=req,
                result=result,
                tool_version=str(result.get("vram_version", __version__)),
            )
        )
    return sid, delete_token


def share_url(request: Request, sid: str) -> str:
    base = services(request).settings.base_url or str(request.base_url).rstrip("/")
    return f"{base}/s/{sid}"


def shares_create(body: ShareBody, request: Request) -> JSONResponse:
    """Share a result through an unguessable link: from a history entry (history_id) or a signed answer.
    Answer: {id, url, delete_token} (the delete token revokes it without an account)."""
    svc = services(request)
    sub = subject(request)
    check_csrf(request)
    if body.history_id:
        if not sub.signed_in or sub.user_id is None:
            raise ApiError(401, "sign in to share a history entry", field="history_id")
        row = history_row(svc, sub.user_id, body.history_id)
        kind, req, result = row["kind"], row["request"], row["result"]
    else:
        if body.kind is None or body.request is None or body.result is None or not body.signature:
            missing = next(f for f in ("kind", "request", "result", "signature") if not getattr(body, f))
            raise ApiError(422, f"{missing}: required (or give history_id)", field=missing)
        kind = body.kind
        req, result = verified_payload(svc, kind, body.request, body.result, body.signature)
    sid, delete_token = create_share(svc, sub.user_id, kind, req, result, body.title)
    return JSONResponse({"id": sid, "url": share_url(request, sid), "delete_token": delete_token}, status_code=201)


def share_row(svc: Services, sid: str) -> dict[str, Any]:
    with svc.db.engine.connect() as conn:
        row = conn.execute(select(ShareRow).where(ShareRow.id == sid)).first()
    if row is None:
        raise ApiError(404, "no such share (it may have been revoked)")
    d = _row_dict(row)
    d["owner_user_id"] = row.user_id
    return d


def shares_get(sid: str, request: Request) -> dict[str, Any]:
    """A shared result (read-only; no sign-in needed)."""
    d = share_row(services(request), sid)
    d.pop("owner_user_id", None)
    return d


def revoke_share(svc: Services, sid: str, user_id: int | None, delete_token: str | None) -> None:
    row = share_row(svc, sid)
    with svc.db.engine.connect() as conn:
        stored = conn.execute(select(ShareRow.delete_token_hash).where(ShareRow.id == sid)).scalar()
    by_owner = user_id is not None and row["owner_user_id"] == user_id
    by_token = bool(delete_token) and secrets.compare_digest(str(stored), token_hash(delete_token or ""))
    if not (by_owner or by_token):
        raise ApiError(403, "only the owner (or the holder of the delete token) can revoke this share")
    with svc.db.tx() as conn:
        conn.execute(delete(ShareRow).where(ShareRow.id == sid))


def shares_delete(sid: str, request: Request, token: str | None = Query(None, max_length=100)) -> dict[str, Any]:
    """Revoke a share: its owner (signed in) or whoever holds its delete token (X-Delete-Token or ?token=)."""
    sub = subject(request)
    check_csrf(request)
    revoke_share(services(request), sid, sub.user_id, request.headers.get("x-delete-token") or token)
    return {"deleted": sid}


# --- payments -----------------------------------------------------------------------------------------------------


MAX_CREDIT_TOKENS = 10**12  # far above any pack; bounds what a (signed) event can ask for


def checkout_url(request: Request, pack: str) -> str:
    """A Stripe Checkout session for a token pack (credited by the webhook when paid)."""
    svc = services(request)
    sub = subject(request)
    if not svc.settings.purchases_enabled:
        raise ApiError(503, "purchases are off on this server (no Stripe keys configured)")
    if not sub.signed_in:
        raise ApiError(401, "sign in to buy tokens (they are added to your account)")
    if pack not in TOKEN_PACKS:
        raise ApiError(422, f"pack: unknown pack {pack!r}", field="pack")
    import stripe

    tokens, cents = TOKEN_PACKS[pack]
    base = svc.settings.base_url or str(request.base_url).rstrip("/")
    session = stripe.checkout.Session.create(
        api_key=svc.settings.stripe_secret_key,
        mode="payment",
        line_items=[
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": cents,
                    "product_data": {"name": f"vram {tokens:,} tokens"},
                },
            }
        ],
        success_url=f"{base}/account?bought={pack}",
        cancel_url=f"{base}/pricing",
        client_reference_id=str(sub.user_id),
        customer_email=sub.email or "",
        metadata={"user_id": str(sub.user_id), "tokens": str(tokens), "pack": pack},
    )
    return str(session.url)


def checkout(request: Request, pack: str = Query(..., max_length=32)) -> dict[str, Any]:
    check_csrf(request)
    return {"url": checkout_url(request, pack)}


async def stripe_webhook(request: Request) -> dict[str, Any]:
    """Stripe events, signature checked with Stripe's library. A paid checkout.session.completed credits the
    pack's tokens once per event id: replays are answered 200 and change nothing."""
    svc = services(request)
    secret = svc.settings.stripe_webhook_secret
    if not secret:
        raise ApiError(503, "purchases are off on this server (no Stripe webhook secret configured)")
    payload = await request.body()
    import stripe

    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), request.headers.get("stripe-signature", ""), secret, 300
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid Stripe signature or payload", field="stripe-signature") from exc
    if not isinstance(event, dict):
        raise ApiError(400, "the event is not a JSON object", field="event")
    if event.get("type") != "checkout.session.completed":
        return {"received": True, "credited": False}
    event_id = event.get("id")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200 or not isinstance(obj, dict):
        raise ApiError(400, "a checkout.session.completed event needs an id and data.object", field="event")
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        return {"received": True, "credited": False}
    meta = obj.get("metadata")
    try:
        if not isinstance(meta, dict):
            raise TypeError("metadata is not an object")
        uid, tokens = int(meta["user_id"]), int(meta["tokens"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ApiError(400, "checkout session without user_id/tokens metadata", field="metadata") from exc
    if not 0 < uid < 2**31 or not 0 < tokens <= MAX_CREDIT_TOKENS:
        raise ApiError(400, "metadata: user_id or tokens out of range", field="metadata")
    with svc.db.engine.connect() as conn:
        if conn.execute(select(User.id).where(User.id == uid)).first() is None:
            return {"received": True, "credited": False, "reason": "no such user"}
    credited = svc.quota.credit(uid, tokens, "stripe", ref=f"stripe:{event_id}")
    return {"received": True, "credited": credited}


def client_address(request: Request, settings: Settings) -> str:
    """The client's address. X-Forwarded-For counts only when the peer is a configured proxy, and then the
    right-most address that is not itself a trusted proxy is the client."""
    peer = request.client.host if request.client else "unknown"
    xff = request.headers.get("x-forwarded-for")
    if not xff or not settings.is_trusted_proxy(peer):
        return peer
    hops = [h.strip() for h in xff.split(",") if h.strip()]
    for hop in reversed(hops):
        if not settings.is_trusted_proxy(hop):
            return hop
    return hops[0] if hops else peer
