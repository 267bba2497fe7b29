"""Models beyond decoder-only text: diffusion pipelines, speech (Whisper), vision-language and embedding models.

Each catalog entry of these kinds carries `kind` and a config of its own shape; `family_spec` gives the ModelSpec
other code reads (parameters), `estimate` the memory for a Workload (image size and count, beams, batch). The
engine is PyTorch (diffusers / transformers) in the checkpoint's dtype; every estimate lists its assumptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedArchitecture
from ..model import ModelSpec

if TYPE_CHECKING:
    from ..catalog import ModelEntry
    from ..estimate import Estimate, ResolvedModel, Workload

KINDS = ("diffusion", "speech", "vlm", "embedding")


def opaque_spec(name: str, model_type: str, params: int, description: str, notes: tuple[str, ...] = ()) -> ModelSpec:
    """A ModelSpec that only carries a parameter count (pipelines have no single decoder stack)."""
    return ModelSpec(name=name, model_type=model_type, architecture=model_type, hidden_size=0, vocab_size=0,
                     layers=(), embed_params=0, head_params=0, final_params=0, tie_word_embeddings=False,
                     max_position_embeddings=None, torch_dtype="bfloat16", rope_dim=0, extra_params=params,
                     extra_description=description, notes=notes)


def family_spec(entry: ModelEntry) -> ModelSpec:
    kind = entry.kind
    if kind == "diffusion":
        from .diffusion import pipeline_spec

        return pipeline_spec(entry)
    if kind == "speech":
        from .whisper import whisper_spec

        return whisper_spec(entry.config, entry.id)
    if kind == "vlm":
        from .vlm import vlm_spec

        return vlm_spec(entry.config, entry.id)
    if kind == "embedding":
        from .embedding import encoder_spec

        return encoder_spec(entry.config, entry.id)
    raise UnsupportedArchitecture(kind, f"kinds modelled: llm, {', '.join(KINDS)}")


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    assert rm.entry is not None
    kind = rm.entry.kind
    mod: Any
    if kind == "diffusion":
        from . import diffusion as mod
    elif kind == "speech":
        from . import whisper as mod
    elif kind == "vlm":
        from . import vlm as mod
    elif kind == "embedding":
        from . import embedding as mod
    else:
        raise UnsupportedArchitecture(kind, f"kinds modelled: llm, {', '.join(KINDS)}")
    result: Estimate = mod.estimate(rm, wl)
    return result


__all__ = ["KINDS", "estimate", "family_spec", "opaque_spec"]
