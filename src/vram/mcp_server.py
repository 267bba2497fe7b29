"""`vram mcp`: estimate, fit, which, explain and models-for-hardware as Model Context Protocol tools over stdio,
on the official `mcp` Python SDK (extra `mcp`). Each tool returns the same JSON object as the matching `--json`
command (the schemas in `vram.schemas`); bad input is a tool error naming the field, as on the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import __version__
from .errors import NeedsExtra, VramError

INSTRUCTIONS = (
    "vram estimates the GPU memory (and speed) of running open models: weights, KV cache, activations and runtime "
    "buffers per engine (transformers, vllm, llama.cpp), checked against measurements. Byte counts are integers. "
    "Use `fit` for a verdict on a GPU, `which` to find GPUs, `models_for_hardware` for the best models on a GPU, "
    "and `explain` with the text of a failing run's log."
)


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=str)


def _guard(thunk: Callable[[], Any]) -> str:
    """Run a tool body; vram's input errors become MCP tool errors with their message (the field named), which the
    SDK passes to the client (other exceptions stay crashes, reported without detail)."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return _dump(thunk())
    except VramError as exc:
        raise ToolError(f"{exc.field + ': ' if exc.field and not str(exc).startswith(exc.field) else ''}{exc}") from exc


def _workload(
    engine: str,
    context: str | int | None,
    batch: int,
    quant: str | None,
    kv_dtype: str | None,
    dtype: str = "bfloat16",
    gpu: str | None = None,
) -> Any:
    from .request import Workload, engine_options
    from .units import parse_tokens

    ctx = parse_tokens(str(context), field="context") if context is not None else 4096
    devices: tuple[Any, ...] = ()
    if gpu:
        from .devices import devices_for

        devices, _ = devices_for(gpu, "llama.cpp" if engine == "llamacpp" else engine)
    return Workload(
        options=engine_options(engine),
        context=ctx,
        batch=batch,
        quant=quant,
        kv_dtype=kv_dtype,
        dtype=dtype,
        devices=devices,
    )


def build_server() -> Any:
    """The MCP server with vram's tools (not started)."""
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:  # pragma: no cover - the extra is part of dev installs
        raise NeedsExtra("vram mcp", "mcp") from exc

    server = MCPServer(name="vram", version=__version__, instructions=INSTRUCTIONS)

    @server.tool(
        description="Memory needed to run MODEL (catalog id, alias or Hub id in the catalog): the "
        "breakdown by component. engine: transformers, vllm, llama.cpp or ollama; context: tokens per sequence "
        "(e.g. 32768 or '32k'); quant: q4_k_m, awq, fp8, nf4 ...; kv_dtype: fp8, q8_0 ...; gpu: the GPU the engine "
        "sizes itself from (needed for vllm: 'h100-sxm')"
    )
    def estimate(
        model: str,
        engine: str = "transformers",
        context: str = "4096",
        batch: int = 1,
        quant: str | None = None,
        kv_dtype: str | None = None,
        gpu: str | None = None,
    ) -> str:
        from .inference import estimate as run

        return _guard(lambda: run(model, _workload(engine, context, batch, quant, kv_dtype, gpu=gpu)).to_dict())

    @server.tool(
        description="Does MODEL fit on GPU ('rtx-4090', '2xh100-sxm', 'm4-pro-48gb')? Verdict fits / "
        "tight / no, per-GPU memory, max context, max batch, fewest GPUs, best quantization, speed and "
        "serving commands."
    )
    def fit(
        model: str,
        gpu: str,
        engine: str = "transformers",
        context: str = "4096",
        batch: int = 1,
        quant: str | None = None,
        kv_dtype: str | None = None,
    ) -> str:
        from .fitting import fit as run

        return _guard(lambda: run(model, gpu, _workload(engine, context, batch, quant, kv_dtype)).to_dict())

    @server.tool(
        description="Every catalog GPU (x 1/2/4/8) on which MODEL's workload fits, cheapest per token "
        "first, with decode/prefill speed. limit: how many to return."
    )
    def which(
        model: str,
        engine: str = "transformers",
        context: str = "4096",
        batch: int = 1,
        quant: str | None = None,
        limit: int = 20,
    ) -> str:
        from .fitting import which as run

        return _guard(
            lambda: [o.to_dict() for o in run(model, _workload(engine, context, batch, quant, None))[: max(1, limit)]]
        )

    @server.tool(
        description="Explain an out-of-memory (or a start-up) from the text a run printed: a vLLM log, "
        "a llama.cpp or Ollama load log, `ollama ps`, a PyTorch CUDA OOM message or nvidia-smi. Returns "
        "the workload recovered, vram's estimate next to each logged figure, the term that differs most, "
        "and the smallest change that fits. model/gpu/context: when the log does not state them."
    )
    def explain(log: str, model: str | None = None, gpu: str | None = None, context: str | None = None) -> str:
        from .diagnosis import explain as run
        from .units import parse_tokens

        def body() -> Any:
            options: dict[str, Any] = {}
            if context is not None:
                options["context"] = parse_tokens(str(context), field="context")
            return run(log, model=model, gpu=gpu, **options).to_dict()

        return _guard(body)

    @server.tool(
        description="The catalog models that run on GPU ('rtx-4060-ti-16gb', 'm4-pro-48gb'), largest "
        "first at the best weight format that fits, with decode speed. engine: llama.cpp (default), vllm "
        "or transformers; use: chat, code, vision or embedding."
    )
    def models_for_hardware(
        gpu: str, engine: str = "llama.cpp", context: str = "8192", use: str | None = None, limit: int = 20
    ) -> str:
        from .hardware import models_for
        from .schemas import schema_id
        from .units import parse_tokens

        def body() -> Any:
            ctx = parse_tokens(str(context), field="context")
            found = models_for(gpu, engine=engine, context=ctx, use=use)
            return {
                "schema": schema_id("models"),
                "gpu": gpu,
                "engine": engine,
                "context": ctx,
                "use": use,
                "models": [m.to_dict() for m in found[: max(1, limit)]],
            }

        return _guard(body)

    return server


def serve() -> None:
    """Serve over stdio until the client closes the pipe."""
    build_server().run("stdio")
