"""The inference engines vram models, behind one small protocol.

Each engine module exposes `estimate(rm, wl) -> Estimate` for a resolved text LLM and a validated workload whose
`options` are that engine's. Modules are imported on first use, so a run that needs one engine loads only it.
"""

from __future__ import annotations

import importlib

from ..request import ENGINES, Workload

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Protocol

    from ..resolved import ResolvedModel
    from ..result import Estimate

    class Engine(Protocol):
        def estimate(self, rm: ResolvedModel, wl: Workload) -> Estimate: ...


_MODULES = {
    "transformers": "transformers",
    "vllm": "vllm",
    "llama.cpp": "llama_cpp",
    "ollama": "ollama",
    "mlx": "mlx",
}


def engine_for(name: str) -> Engine:
    """The engine module for a name in `ENGINES` (a module with the protocol's `estimate`)."""
    assert name in ENGINES and name in _MODULES, name
    engine: Engine = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return engine
