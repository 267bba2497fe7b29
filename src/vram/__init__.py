"""vram: will it fit? GPU memory for inference and training of open models, checked against real GPUs.

    >>> from vram import estimate, Workload
    >>> est = estimate("llama-3.1-8b", Workload(context=32768))
    >>> est.peak_allocated_bytes, [c.name for c in est.breakdown]

Engine settings are typed options (`VllmOptions`, `LlamaCppOptions`, `OllamaOptions`, `TransformersOptions`,
`MlxOptions`) and image or speech settings family options (`ImageOptions`, `VisionOptions`, `SpeechOptions`); the GPU
is a `Device`:

    >>> from vram import Device, VllmOptions, find_gpu
    >>> estimate("llama-3.1-8b", Workload(options=VllmOptions(max_num_seqs=64), devices=(device_of("h100-sxm"),)))

What an engine reports beyond the common breakdown is typed too: `est.vllm` (`VllmDetails`), `est.llama_cpp`
(`LlamaCppDetails`, with a `LlamaCppDevice` per GPU) and `est.mlx` (`MlxDetails`), each written as its object of
the JSON answer.

The command line (`vram`) and the web tool are thin adapters over these functions. Fitting a model to GPUs is
`vram.fitting` (`fit`, `which`, `compare`); fleet planning `vram.fleet` (`plan`).
"""

from __future__ import annotations

__version__ = "0.1.0"

# name -> module that defines it; resolved on first access so `import vram` stays cheap
_EXPORTS: dict[str, str] = {
    "estimate": "vram.inference",
    "Workload": "vram.request",
    "Device": "vram.request",
    "TransformersOptions": "vram.request",
    "VllmOptions": "vram.request",
    "LlamaCppOptions": "vram.request",
    "MlxOptions": "vram.request",
    "OllamaOptions": "vram.request",
    "ImageOptions": "vram.request",
    "VisionOptions": "vram.request",
    "SpeechOptions": "vram.request",
    "Estimate": "vram.result",
    "VllmDetails": "vram.details",
    "LlamaCppDetails": "vram.details",
    "LlamaCppDevice": "vram.details",
    "MlxDetails": "vram.details",
    "ResolvedModel": "vram.resolved",
    "resolve_model": "vram.resolver",
    "device_of": "vram.fitting",
    "fit": "vram.fitting",
    "estimate_training": "vram.training",
    "TrainWorkload": "vram.request",
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
    "which": "vram.fitting",
    "compare": "vram.fitting",
    "FitResult": "vram.fitting",
    "parse_bytes": "vram.units",
}

__all__ = [
    "BadInput",
    "Component",
    "ConfigError",
    "Device",
    "Estimate",
    "FitResult",
    "ImageOptions",
    "LlamaCppDetails",
    "LlamaCppDevice",
    "LlamaCppOptions",
    "MlxDetails",
    "MlxOptions",
    "ModelSpec",
    "OllamaOptions",
    "ResolvedModel",
    "SourceError",
    "SpeechOptions",
    "TrainWorkload",
    "TransformersOptions",
    "UnknownGpu",
    "UnknownModel",
    "UnsupportedArchitecture",
    "VisionOptions",
    "VllmDetails",
    "VllmOptions",
    "VramError",
    "Workload",
    "__version__",
    "compare",
    "device_of",
    "estimate",
    "estimate_training",
    "find_gpu",
    "find_model",
    "fit",
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

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any

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
    from .fitting import FitResult, compare, device_of, fit, which
    from .inference import estimate
    from .model import ModelSpec, load_config_file, model_from_config
    from .request import (
        Device,
        ImageOptions,
        LlamaCppOptions,
        MlxOptions,
        OllamaOptions,
        SpeechOptions,
        TrainWorkload,
        TransformersOptions,
        VisionOptions,
        VllmOptions,
        Workload,
    )
    from .resolved import ResolvedModel
    from .resolver import resolve_model
    from .result import Estimate
    from .training import estimate_training
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
