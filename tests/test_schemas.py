"""Every `--json` output against its JSON Schema (src/vram/schemas), on real outputs of the CLI; and `vram fit
--check`'s exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from vram import schemas

Run = Callable[..., Any]


def _validator(name: str) -> jsonschema.Draft202012Validator:
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in schemas.all_schemas()
    )
    schema = schemas.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def check(name: str, obj: Any) -> None:
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def _json(run_cli: Run, *args: str) -> Any:
    res = run_cli(*args, "--json")
    assert res.rc == 0, res.err
    return json.loads(res.out)


def test_every_schema_is_valid_and_versioned() -> None:
    for name in schemas.NAMES:
        doc = schemas.load(name)
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$id"] == schemas.schema_id(name) == f"urn:vram:schema:{name}:1"


@pytest.mark.parametrize(
    "args",
    [
        ("llama-3.1-8b",),
        ("llama-3.1-8b", "--engine", "vllm", "--gpu", "h100-sxm"),
        ("qwen2.5-7b", "--engine", "llama.cpp", "--quant", "q4_k_m", "--context", "8k"),
        ("llama-3.1-8b", "--train", "--method", "lora"),
        ("flux.1-dev",),
    ],
)
def test_estimate_outputs_match_the_schema(run_cli: Run, args: tuple[str, ...]) -> None:
    check("estimate", _json(run_cli, "estimate", *args))


def test_schema_rejects_what_the_contract_forbids(run_cli: Run) -> None:
    d = _json(run_cli, "estimate", "llama-3.1-8b")
    bad = dict(d, total_bytes=d["total_bytes"] + 0.5)  # bytes are whole numbers
    assert list(_validator("estimate").iter_errors(bad))
    del bad["breakdown"]
    assert list(_validator("estimate").iter_errors(bad))


@pytest.mark.parametrize(
    "args",
    [
        ("llama-3.1-8b", "--gpu", "rtx-4090"),
        ("llama-3.1-70b", "--gpu", "h100-sxm"),  # does not fit: solvers null, offload plan
        ("llama-3.1-70b", "--gpu", "2xh100-sxm", "--engine", "vllm"),
        ("llama-3.1-8b", "--gpu", "h100-sxm", "--train"),
    ],
)
def test_fit_outputs_match_the_schema(run_cli: Run, args: tuple[str, ...]) -> None:
    check("fit", _json(run_cli, "fit", *args))


def test_which_output_matches_the_schema(run_cli: Run) -> None:
    out = _json(run_cli, "which", "qwen2.5-7b", "--counts", "1,2")
    assert out
    check("which", out)


# --- vram fit --check ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "rc", "verdict"),
    [
        (("llama-3.1-8b", "--gpu", "h100-sxm"), 0, "fits"),
        # 9.03 GiB above 14.96 GiB of weights: fits, but less than 0.7 × the weights free above them
        (("llama-3.1-8b", "--gpu", "rtx-4090", "--headroom", "0.7"), 1, "tight"),
        (("llama-3.1-70b", "--gpu", "rtx-4090"), 3, "no"),
    ],
)
def test_fit_check_exit_codes(run_cli: Run, args: tuple[str, ...], rc: int, verdict: str) -> None:
    res = run_cli("fit", *args, "--check")
    assert res.rc == rc, res.err
    assert res.out.startswith(f"{verdict}: ") and res.out.count("\n") == 1
    j = run_cli("fit", *args, "--check", "--json")  # --json with --check: the object, and the same exit code
    assert j.rc == rc and json.loads(j.out)["verdict"] == verdict


def test_fit_check_bad_input_stays_2(run_cli: Run) -> None:
    res = run_cli("fit", "llama-3.1-8b", "--gpu", "no-such-gpu", "--check")
    assert res.rc == 2 and res.out == "" and res.err.count("\n") == 1


def test_explain_outputs_match_the_schema(run_cli: Run) -> None:
    from pathlib import Path

    data = Path(__file__).resolve().parent / "data" / "explain"
    cases = json.loads((data / "cases.json").read_text())["cases"]
    for c in cases:
        args = [f"--{k.replace('_', '-')}={v}" for k, v in c.get("args", {}).items()]
        check("explain", _json(run_cli, "explain", str(data / c["file"]), *args))


def test_models_fits_output_matches_the_schema(run_cli: Run) -> None:
    check("models", _json(run_cli, "models", "--fits", "rtx-4060-ti-16gb", "--context", "8k", "--limit", "10"))
    check("models", _json(run_cli, "models", "--fits", "rtx-4090", "--use", "embedding"))
