"""A model as vram knows it once its name, file or folder is resolved: the spec, its catalog entry, exact bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import ModelEntry
from .model import ModelSpec


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    entry: ModelEntry | None
    source: str
    weights_override_bytes: int | None = None  # exact tensor bytes from safetensors / GGUF headers
    buffers_bytes: int = 0
    weights_info: Any = None  # sources: per-tensor summary (safetensors WeightsInfo / GGUF GgufWeights)

    def context_warnings(self, tokens: int) -> list[str]:
        """Say so when a workload runs past the context the model was published or configured for."""
        limit = (self.entry.context_length if self.entry is not None else None) or self.spec.max_position_embeddings
        if isinstance(limit, int) and 0 < limit < tokens:
            return [
                f"{tokens:,} tokens exceed the model's context length ({limit:,}): memory is as shown, but "
                "quality past that length is not to be expected without rope scaling"
            ]
        return []
