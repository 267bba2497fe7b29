"""vram: will it fit? GPU memory for inference and training of open models, checked against real GPUs.

    >>> from vram import estimate, Workload
    >>> est = estimate("llama-3.1-8b", Workload(context=32768))
    >>> est.peak_allocated_bytes, [c.name for c in est.breakdown]

The command line (`vram`) and the web tool are thin adapters over these functions. Fitting and fleet planning live
in their modules (`from vram.fit import fit` — `vram.fit` is the module's name; `from vram.plan import plan`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first access so `import vram` stays cheap
_EXPORTS: dict[str, str] = {
    "estimate": "vram.estimate",
    "Workload": "vram.estimate",
    "Estimate": "vram.estimate",
    "ResolvedModel": "vram.estimate",
    "resolve_model": "vram.estimate",
    "estimate_training": "vram.training",
    "TrainWorkload": "vram.training",
    "ModelSpec": "vram.model",
    "model_from_config": "vram.model",
    "load_config_file": "vram.model",
    "Component": "vram.components",
    "find_model": "vram.catalog",
    "find_gpu": "vram.catalog",
    "search_models": "vram.catalog",
    "search_gpus": "vram.catalog",
    "quant_scheme": "vram.dtypes",
    "VramError": "vram.errors",
    "BadInput": "vram.errors",
    "UnknownModel": "vram.errors",
    "UnknownGpu": "vram.errors",
    "UnsupportedArchitecture": "vram.errors",
    "ConfigError": "vram.errors",
    "SourceError": "vram.errors",
    "parse_tokens": "vram.units",
    "which": "vram.fit",
    "compare": "vram.fit",
    "FitResult": "vram.fit",
    "parse_bytes": "vram.units",
}

__all__ = [
    "BadInput",
    "Component",
    "ConfigError",
    "Estimate",
    "FitResult",
    "ModelSpec",
    "ResolvedModel",
    "SourceError",
    "TrainWorkload",
    "UnknownGpu",
    "UnknownModel",
    "UnsupportedArchitecture",
    "VramError",
    "Workload",
    "__version__",
    "compare",
    "estimate",
    "estimate_training",
    "find_gpu",
    "find_model",
    "load_config_file",
    "model_from_config",
    "parse_bytes",
    "parse_tokens",
    "quant_scheme",
    "resolve_model",
    "search_gpus",
    "search_models",
    "which",
]

# `estimate` is both a submodule and the main function: bind the function now, so that importing the submodule
# elsewhere (which happens once, here) cannot leave the package attribute pointing at the module.
from .estimate import Estimate, ResolvedModel, Workload, estimate, resolve_model  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import find_gpu, find_model, search_gpus, search_models
    from .components import Component
    from .dtypes import quant_scheme
    from .errors import (
        BadInput,
        ConfigError,
        SourceError,
        UnknownGpu,
        UnknownModel,
        UnsupportedArchitecture,
        VramError,
    )
    from .fit import FitResult, compare, which
    from .model import ModelSpec, load_config_file, model_from_config
    from .training import TrainWorkload, estimate_training
    from .units import parse_bytes, parse_tokens


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vram' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
