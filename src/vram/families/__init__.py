"""Models beyond decoder-only text: diffusion pipelines, speech (Whisper), vision-language and embedding models.

Each catalog entry of these kinds carries `kind` and a config of its own shape; `family_spec` gives the ModelSpec
other code reads (parameters), `estimate` the memory for a Workload (image size and count, beams, batch). The
engine is PyTorch (diffusers / transformers) in the checkpoint's dtype; every estimate lists its assumptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BadInput, UnsupportedArchitecture
from ..model import ModelSpec
from ..request import FAMILY_OPTIONS

if TYPE_CHECKING:
    from ..catalog import ModelEntry
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate

KINDS = ("diffusion", "speech", "vlm", "embedding")


def opaque_spec(name: str, model_type: str, params: int, description: str, notes: tuple[str, ...] = ()) -> ModelSpec:
    """A ModelSpec that only carries a parameter count (pipelines have no single decoder stack)."""
    return ModelSpec(
        name=name,
        model_type=model_type,
        architecture=model_type,
        hidden_size=0,
        vocab_size=0,
        layers=(),
        embed_params=0,
        head_params=0,
        final_params=0,
        tie_word_embeddings=False,
        max_position_embeddings=None,
        torch_dtype="bfloat16",
        rope_dim=0,
        extra_params=params,
        extra_description=description,
        notes=notes,
    )


# Hugging Face model_type -> kind, for configs that come from a folder or the Hub rather than the catalog
MODEL_TYPE_KINDS = {
    "whisper": "speech",
    "qwen2_5_vl": "vlm",
    "bert": "embedding",
    "xlm-roberta": "embedding",
    "roberta": "embedding",
}


def entry_from_config(config: dict[str, Any], name: str, hf_repo: str = "") -> ModelEntry | None:
    """A catalog-like entry for a non-LLM config.json (None for decoder-only LLMs), so folders and Hub repos of
    these kinds are estimated by the same family code as catalog entries."""
    from ..catalog import ModelEntry

    mt = str(config.get("model_type", "")).lower()
    kind = MODEL_TYPE_KINDS.get(mt)
    if kind is None:
        return None
    cfg = dict(config)
    if kind == "embedding":
        archs = [str(a) for a in cfg.get("architectures") or []]
        if any(a.endswith("ForSequenceClassification") for a in archs):
            labels = cfg.get("id2label")
            cfg.setdefault("head", "classifier")
            cfg.setdefault("num_labels", len(labels) if isinstance(labels, dict) and labels else 1)
    entry = ModelEntry(
        id=name,
        name=name,
        family=mt,
        license="unknown",
        hf_repo=hf_repo,
        aliases=(),
        context_length=None,
        params=None,
        config=cfg,
        kind=kind,
    )
    spec = family_spec(entry)
    return ModelEntry(
        id=name,
        name=name,
        family=mt,
        license="unknown",
        hf_repo=hf_repo,
        aliases=(),
        context_length=None,
        params=spec.params,
        config=cfg,
        kind=kind,
    )


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


RUNTIMES = {
    "diffusion": "diffusers",
    "speech": "transformers (Whisper pipeline)",
    "vlm": "transformers",
    "embedding": "transformers / sentence-transformers",
}


def check_workload(entry: ModelEntry, wl: Workload) -> None:
    """Options these families do not model are errors, never silently ignored: the engine (they run in PyTorch
    through diffusers / transformers, not vLLM or llama.cpp) and a weight quantization (their estimates are in the
    checkpoint's dtype)."""
    runtime = RUNTIMES.get(entry.kind, "transformers")
    if wl.engine != "transformers":
        raise BadInput(
            f"engine: {entry.name} is a {entry.kind} model and runs in {runtime}; the {wl.engine} "
            "estimate covers text LLMs only (choose transformers)",
            field="engine",
        )
    if wl.quant:
        raise BadInput(
            f"quant: {entry.name} ({entry.kind}) is estimated in its checkpoint's dtype ({wl.dtype}); "
            f"quantized variants ({wl.quant}) are not modelled for this family",
            field="quant",
        )
    fam = wl.family
    if fam is not None and FAMILY_OPTIONS.get(entry.kind) is not type(fam):
        name = next(iter(fam.given()), "family")
        raise BadInput(f"{name}: {fam.title} options do not apply to {entry.name} (a {entry.kind} model)", field=name)


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
    check_workload(rm.entry, wl)
    result: Estimate = mod.estimate(rm, wl)
    return result


__all__ = ["KINDS", "estimate", "family_spec", "opaque_spec"]
