"""The JSON API under hostile input: schemathesis against /openapi.json (in-process ASGI), paths never read from a
request, request-size limits.

* every operation in the OpenAPI document, anonymous and signed in: never a 5xx (except the documented 503 of a
  server without Stripe keys), and every 422 names the field at fault;
* a `model` (or `gpu`, or a fleet's model) that looks like a path on the server — /etc/passwd, ../../x, ~/..., a real
  config.json written for the occasion — is refused as an unknown catalog name, and no file is opened;
* bodies over the limit are refused with 413 before they are read, and nothing is charged.
"""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

schemathesis = pytest.importorskip("schemathesis")

from starlette.testclient import TestClient  # noqa: E402

from test_web_support import settings_for  # noqa: E402
from vram.web.app import MAX_BODY_BYTES, create_app  # noqa: E402

API = "/api/v1"
FUZZ = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
PURCHASES_OFF = ("/api/v1/checkout", "/api/v1/webhooks/stripe")  # 503 by design without Stripe keys


# schemathesis needs the schema when tests are collected, so the app is built at import (in a temp dir removed at
# exit); allowances are unlimited so that 429s do not hide what the fuzzer sends
_DIR = Path(tempfile.mkdtemp(prefix="vram-api-fuzz-"))
_APP = create_app(settings_for(_DIR, anon_daily_tokens=10**12, user_daily_tokens=10**12))
atexit.register(shutil.rmtree, _DIR, True)
atexit.register(_APP.state.services.close)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@pytest.fixture(scope="module", autouse=True)
def _remove_the_import_time_app() -> Iterator[None]:
    """atexit does not always run in xdist workers: clean up when this module's tests are done."""
    yield
    _APP.state.services.close()
    shutil.rmtree(_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def bearer_token() -> str:
    from vram.web.api import signup_user

    svc = _APP.state.services
    uid = signup_user(svc, "fuzz@example.com", "correct horse battery")
    return str(svc.sessions.create(uid, svc.settings.clock()))


def check_answer(case: Any, response: Any) -> None:
    path = case.operation.path
    status = response.status_code
    text = response.text
    if status >= 500:
        assert status == 503 and path in PURCHASES_OFF and "purchases are off" in text, (
            case.method,
            path,
            status,
            text[:500],
        )
        return
    if status == 422:
        body = response.json()
        assert isinstance(body.get("field"), str) and body["field"], body
        assert body["field"].lower() in str(body.get("error", "")).lower(), body  # "gpu" in "unknown GPU ..."
    if 400 <= status < 500:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"], body
    if (
        case.method.upper() == "POST"
        and path in (f"{API}/estimate", f"{API}/fit", f"{API}/which", f"{API}/compare", f"{API}/plan")
        and status == 200
    ):
        assert response.json()["cost_tokens"] > 0
        assert int(response.headers["ratelimit-remaining"]) >= 0


@schema.parametrize()
@FUZZ
def test_api_anonymous(case: Any) -> None:
    check_answer(case, case.call())


SIGNED_IN_SKIP = {("POST", f"{API}/auth/logout"), ("DELETE", f"{API}/account")}  # would end the fuzzer's session


@schema.parametrize()
@FUZZ
def test_api_signed_in(case: Any, bearer_token: str) -> None:
    if (case.method.upper(), case.operation.path) in SIGNED_IN_SKIP:
        return
    check_answer(case, case.call(headers={"Authorization": f"Bearer {bearer_token}"}))


# ---------------------------------------------------------------------------------------------------------------
# the API never reads a server path from its input


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path / "data"))
    with TestClient(app, client=("203.0.113.50", 40000)) as c:
        yield c
    app.state.services.close()


def _planted_config(tmp_path: Path) -> Path:
    """A valid config.json (and a folder holding it) the server could open if it took paths."""
    from vram.catalog import find_model

    d = tmp_path / "planted"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(find_model("llama-3.2-1b").config))
    return d


def path_like_models(tmp_path: Path) -> list[str]:
    d = _planted_config(tmp_path)
    return [
        "/etc/passwd",
        "../../etc/passwd",
        "..",
        "~/.ssh/id_rsa",
        "/proc/self/environ",
        "config.json",
        "./config.json",
        str(d),
        str(d / "config.json"),
        f"{d}/../planted",
        "file:///etc/passwd",
        "\\\\server\\share\\x",
        "C:\\Windows\\win.ini",
        "/dev/zero",
        "/dev/urandom",
        "someone/not-a-catalog-model",
    ]


@pytest.fixture
def spy_file_readers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any call into the readers that open files or the network."""
    import vram.model
    import vram.sources
    import vram.sources.hub

    estimate_module = sys.modules["vram.resolver"]
    calls: list[str] = []

    def spy(name: str) -> Any:
        def _called(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name}{args!r}")
            raise AssertionError(f"the web app called {name}{args!r}")

        return _called

    for module, attr in (
        (vram.model, "load_config_file"),
        (estimate_module, "load_config_file"),
        (vram.sources, "resolve_local_weights"),
        (vram.sources.hub, "resolve_hub"),
    ):
        monkeypatch.setattr(module, attr, spy(f"{module.__name__}.{attr}"))
    return calls


def test_models_that_look_like_paths_are_refused_unopened(
    client: TestClient, tmp_path: Path, spy_file_readers: list[str]
) -> None:
    before = client.get(f"{API}/quota").json()["remaining"]
    for model in path_like_models(tmp_path):
        for op, extra in (
            ("estimate", {}),
            ("fit", {"gpu": "rtx-4090"}),
            ("which", {}),
            ("compare", {"gpus": ["rtx-4090"]}),
            ("estimate", {"train": {"method": "lora"}}),
        ):
            r = client.post(f"{API}/{op}", json={"model": model, **extra})
            assert r.status_code == 422, (op, model, r.status_code, r.text[:300])
            assert r.json()["field"] == "model", (op, model, r.json())
        r = client.post(
            f"{API}/plan", json={"fleet": {"pools": [{"gpu": "h100-sxm", "count": 8}], "models": [{"model": model}]}}
        )
        assert r.status_code == 422, (model, r.status_code, r.text[:300])
    assert spy_file_readers == []
    assert client.get(f"{API}/quota").json()["remaining"] == before  # refusals cost nothing


@pytest.mark.parametrize("gpu", ["local", "2xlocal", "/proc/driver/nvidia/gpus", "../../gpu"])
def test_gpu_specs_never_name_the_servers_own_devices(client: TestClient, gpu: str) -> None:
    r = client.post(f"{API}/fit", json={"model": "llama-3.2-1b", "gpu": gpu})
    assert r.status_code == 422 and r.json()["field"] == "gpu", r.text


def test_the_page_form_refuses_paths_too(client: TestClient, tmp_path: Path, spy_file_readers: list[str]) -> None:
    client.get("/")
    csrf = client.cookies["vram_csrf"]
    for model in path_like_models(tmp_path)[:9]:
        r = client.post(
            "/",
            data={"model": model, "context": "1k", "gpu": "rtx-4090", "gpu_count": "1", "csrf_token": csrf},
            headers={"Accept": "text/html"},
        )
        assert r.status_code in (400, 422), (model, r.status_code)
        assert "/etc/passwd" not in r.text or "root:" not in r.text
        r = client.get("/", params={"model": model})
        assert r.status_code == 200 and "root:x:0:0" not in r.text
    assert spy_file_readers == []


# ---------------------------------------------------------------------------------------------------------------
# request-size limits


def test_bodies_over_the_limit_are_refused_before_reading(client: TestClient) -> None:
    before = client.get(f"{API}/quota").json()["remaining"]
    big = b'{"model": "llama-3.2-1b", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    for path in (f"{API}/estimate", f"{API}/plan", f"{API}/auth/login", f"{API}/webhooks/stripe", "/"):
        r = client.post(path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert r.json()["field"] == "body"
    assert client.get(f"{API}/quota").json()["remaining"] == before


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    """No Content-Length (chunked transfer): the limit must still hold."""

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "llama-3.2-1b", "pad": "'
        for _ in range(4 * MAX_BODY_BYTES // 65536):
            yield b"x" * 65536
        yield b'"}'

    before = client.get(f"{API}/quota").json()["remaining"]
    r = client.post(f"{API}/estimate", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert r.json()["field"] == "body"
    assert client.get(f"{API}/quota").json()["remaining"] == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "m" * 201),
        ("dtype", "x" * 33),
        ("quant", "q" * 33),
        ("context", "9" * 40),
        ("batch", 10**9),
        ("new_tokens", -1),
        ("context", "32kk"),
        ("context", 1.5),
        ("engine", "tensorrt"),
        ("attn", "<script>"),
    ],
)
def test_oversized_and_malformed_fields_are_422_naming_the_field(client: TestClient, field: str, value: Any) -> None:
    r = client.post(f"{API}/estimate", json={"model": "llama-3.2-1b", field: value})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.json()


def test_fleet_size_limits(client: TestClient) -> None:
    fleet = {"pools": [{"gpu": "h100-sxm", "count": 8}], "models": [{"model": "llama-3.2-1b"}] * 33}
    r = client.post(f"{API}/plan", json={"fleet": fleet})
    assert r.status_code == 422 and r.json()["field"] == "fleet"
    deep = '{"x":' * 5000 + "{}" + "}" * 5000
    body = '{"fleet": {"models": [], "pools": [], "x": ' + deep + "}}"
    r = client.post(f"{API}/plan", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500


def test_deeply_nested_json_body_is_a_4xx(client: TestClient) -> None:
    for body in ("[" * 100_000, '{"a":' * 100_000, '{"model": ' + "[" * 50_000):
        r = client.post(f"{API}/estimate", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, r.status_code


# ---------------------------------------------------------------------------------------------------------------
# Stripe webhooks: correctly signed, but with hostile contents


WEBHOOK_SECRET = "whsec_fuzz"
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=300),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def checkout_events(draw: st.DrawFn) -> Any:
    meta = draw(
        st.one_of(
            odd_values,
            st.fixed_dictionaries(
                {"user_id": st.one_of(st.just("1"), odd_values), "tokens": st.one_of(st.just("200000"), odd_values)}
            ),
        )
    )
    obj = draw(
        st.one_of(
            odd_values,
            st.fixed_dictionaries(
                {"payment_status": st.one_of(st.just("paid"), odd_values), "metadata": st.just(meta)}
            ),
        )
    )
    data = draw(st.one_of(odd_values, st.fixed_dictionaries({"object": st.just(obj)})))
    event = draw(
        st.one_of(
            odd_values,
            st.fixed_dictionaries(
                {
                    "id": st.one_of(st.text(min_size=1, max_size=300), odd_values),
                    "type": st.one_of(st.just("checkout.session.completed"), odd_values),
                    "data": st.just(data),
                }
            ),
        )
    )
    return event


@pytest.fixture(scope="module")
def webhook_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from vram.web.api import signup_user

    app = create_app(settings_for(tmp_path_factory.mktemp("webhook"), stripe_webhook_secret=WEBHOOK_SECRET))
    signup_user(app.state.services, "payer@example.com", "correct horse battery")  # user id 1
    with TestClient(app, client=("203.0.113.70", 40000), raise_server_exceptions=False) as c:
        yield c
    app.state.services.close()


def _event(uid: Any = "1", tokens: Any = "5", **top: Any) -> dict[str, Any]:
    meta = {"user_id": uid, "tokens": tokens}
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "checkout.session.completed",
        "data": {"object": {"payment_status": "paid", "metadata": meta}},
        **top,
    }


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(None, id="null"),
        pytest.param([1], id="list"),
        pytest.param(_event(data=[1]), id="data-not-an-object"),
        pytest.param(_event(data={"object": "x"}), id="object-not-an-object"),
        pytest.param(_event(tokens="0"), id="zero-tokens"),
        pytest.param(_event(tokens="-5"), id="negative-tokens"),
        pytest.param(_event(tokens=str(10**30)), id="tokens-beyond-64-bits"),
        pytest.param(_event(uid=str(10**30)), id="user-id-beyond-64-bits"),
        pytest.param(_event(data={"object": {"payment_status": "paid", "metadata": [1]}}), id="metadata-a-list"),
    ],
)
def test_signed_webhook_with_a_malformed_event_is_a_400(webhook_client: TestClient, event: Any) -> None:
    from test_web_support import stripe_signature

    payload = json.dumps(event).encode()
    r = webhook_client.post(
        f"{API}/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET)},
    )
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert r.json()["error"]


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(event=checkout_events())
def test_signed_webhooks_with_hostile_contents_are_never_a_5xx(webhook_client: TestClient, event: Any) -> None:
    from test_web_support import stripe_signature

    payload = json.dumps(event).encode()
    r = webhook_client.post(
        f"{API}/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET), "Content-Type": "application/json"},
    )
    assert r.status_code in (200, 400), (r.status_code, r.text[:300], event)
    if r.status_code == 200 and r.json().get("credited"):
        assert isinstance(event, dict)  # only a well-formed event can credit
        q = webhook_client.app.state.services.quota  # type: ignore[attr-defined]
        assert q.purchased(1) == q.ledger_balance(1) > 0


# ---------------------------------------------------------------------------------------------------------------
# fleet plans: the one body that is free-form JSON


big_ints = st.one_of(st.integers(-3, 10), st.sampled_from([2**31, 2**63, 10**18, 10**30]), odd_values)
pools = st.fixed_dictionaries(
    {"gpu": st.one_of(st.sampled_from(["h100-sxm", "rtx-4090", "l4", "local"]), odd_values)},
    optional={"gpus_per_node": big_ints, "nodes": big_ints, "name": odd_values},
)
demands = st.one_of(
    st.sampled_from(["llama-3.2-1b", "qwen2.5-0.5b"]),
    odd_values,
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(["llama-3.2-1b", "mixtral-8x7b", "/etc/passwd"]), odd_values)},
        optional={
            "context": st.one_of(big_ints, st.sampled_from(["32k", "1m", "9" * 30])),
            "concurrency": big_ints,
            "replicas": big_ints,
            "new_tokens": big_ints,
            "quant": odd_values,
            "engine": odd_values,
            "dtype": odd_values,
            "kv_dtype": odd_values,
        },
    ),
)
fleets = st.fixed_dictionaries(
    {},
    optional={
        "pools": st.one_of(st.lists(pools, max_size=3), odd_values),
        "models": st.one_of(st.lists(demands, max_size=3), odd_values),
        "headroom": odd_values,
    },
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(fleet=fleets)
def test_hostile_fleet_plans_are_never_a_5xx_nor_slow(fleet: dict[str, Any]) -> None:
    import time

    with TestClient(_APP, client=("203.0.113.80", 40000), raise_server_exceptions=False) as c:
        t0 = time.perf_counter()
        r = c.post(f"{API}/plan", json={"fleet": fleet})
        elapsed = time.perf_counter() - t0
    assert r.status_code in (200, 422), (r.status_code, r.text[:300], fleet)
    assert elapsed < 10, (elapsed, fleet)
    if r.status_code == 422:
        assert r.json()["field"], r.json()
