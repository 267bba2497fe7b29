"""A model as vram knows it once its name, file or folder is resolved: the spec, its catalog entry, exact bytes."""

from __future__ import annotations

from .catalog import ModelEntry
from .model import ModelSpec
from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any


@record(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    entry: ModelEntry | None
    source: str
    weights_override_bytes: int | None = None  # exact tensor bytes from safetensors / GGUF headers
    buffers_bytes: int = 0
    weights_info: Any = None  # sources: per-tensor summary (safetensors WeightsInfo / GGUF GgufWeights)

    def require_modelled(self, engine: str) -> None:
        """Refuse an estimate whose engine loads parts of the checkpoint vram cannot count from config.json, unless
        the checkpoint's own tensor bytes are known (safetensors headers). llama.cpp runs the text decoder alone
        (what a GGUF conversion of such a model holds), so it is estimated."""
        if self.spec.unmodelled and self.weights_override_bytes is None and engine != "llama.cpp":
            from .errors import UnsupportedArchitecture

            name, _, what = self.spec.unmodelled.partition(": ")
            raise UnsupportedArchitecture(
                name,
                f"{what} are not modelled, and {engine} loads them. Give the checkpoint's folder or Hub repo (its "
                "safetensors headers give the exact total), or --engine llama.cpp for the text decoder a GGUF "
                "conversion holds",
            )

    def context_warnings(self, tokens: int) -> list[str]:
        """Say so when a workload runs past the context the model was published or configured for."""
        limit = (self.entry.context_length if self.entry is not None else None) or self.spec.max_position_embeddings
        if isinstance(limit, int) and 0 < limit < tokens:
            return [
                f"{tokens:,} tokens exceed the model's context length ({limit:,}): memory is as shown, but "
                "quality past that length is not to be expected without rope scaling"
            ]
        return []
