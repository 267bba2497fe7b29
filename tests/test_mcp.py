"""`vram mcp` through a real MCP client session: the SDK's stdio client spawns `vram mcp`, lists the tools and calls
each one; the answers are the same JSON objects as the CLI's --json (checked against the schemas)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from vram.hardware import models_for

mcp = pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

VRAM_BIN = Path(sys.executable).parent / "vram"
DATA = Path(__file__).resolve().parent / "data" / "explain"


async def _session_calls() -> dict[str, Any]:
    params = StdioServerParameters(command=str(VRAM_BIN), args=["mcp"])
    out: dict[str, Any] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        out["server"] = init.server_info.name
        tools = await session.list_tools()
        out["tools"] = {t.name: t for t in tools.tools}
        calls = {
            "estimate": {"model": "llama-3.1-8b", "context": "32k"},
            "fit": {"model": "llama-3.1-8b", "gpu": "rtx-4090", "context": "8192"},
            "which": {"model": "qwen2.5-7b", "limit": 3},
            "explain": {"log": (DATA / "vllm-10517-29k.log").read_text(), "model": "llama-3.1-8b"},
            "models_for_hardware": {"gpu": "rtx-4060-ti-16gb", "context": "8k", "limit": 3},
            "bad": {"model": "no-such-model-xyz"},
        }
        for name, args in calls.items():
            res = await session.call_tool("estimate" if name == "bad" else name, args)
            text = "".join(getattr(c, "text", "") for c in res.content)
            out[name] = (res.is_error, text)
    return out


@pytest.fixture(scope="module")
def calls() -> dict[str, Any]:
    return anyio.run(_session_calls)


def test_lists_the_tools(calls: dict[str, Any]) -> None:
    assert calls["server"] == "vram"
    assert set(calls["tools"]) == {"estimate", "fit", "which", "explain", "models_for_hardware"}
    props = calls["tools"]["fit"].input_schema["properties"]
    assert {"model", "gpu", "context"} <= set(props)
    assert calls["tools"]["fit"].input_schema["required"] == ["model", "gpu"]


def test_each_tool_answers_like_the_cli(calls: dict[str, Any], run_cli: Any) -> None:
    from tests.test_schemas import check

    err, text = calls["estimate"]
    assert not err
    est = json.loads(text)
    check("estimate", est)
    cli = json.loads(run_cli("estimate", "llama-3.1-8b", "--context", "32k", "--json").out)
    assert est["total_bytes"] == cli["total_bytes"] and est["kv_cache_bytes"] == 32768 * 131072

    err, text = calls["fit"]
    f = json.loads(text)
    assert not err and f["verdict"] == "fits" and f["gpu"] == "rtx-4090"
    check("fit", f)

    err, text = calls["which"]
    w = json.loads(text)
    assert not err and len(w) == 3
    check("which", w)

    err, text = calls["explain"]
    e = json.loads(text)
    assert not err and e["kind"] == "vllm" and e["largest_difference"] == "activations"
    assert e["fix"].endswith("--gpu-memory-utilization 0.95")
    check("explain", e)

    err, text = calls["models_for_hardware"]
    m = json.loads(text)
    assert (
        not err and m["models"][0]["model"] == models_for("rtx-4060-ti-16gb", engine="llama.cpp", context=8192)[0].model
    )
    check("models", m)


def test_bad_input_is_a_tool_error_naming_it(calls: dict[str, Any]) -> None:
    err, text = calls["bad"]
    assert err and "unknown model" in text
