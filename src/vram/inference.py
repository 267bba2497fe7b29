"""The public `estimate()`: resolve the model, check the request, hand it to its engine or model family."""

from __future__ import annotations

from .engines import engine_for
from .errors import BadInput
from .model import ModelSpec
from .request import Workload
from .resolved import ResolvedModel
from .resolver import resolve_model
from .result import Estimate


def estimate(model: str | ModelSpec | ResolvedModel, workload: Workload | None = None) -> Estimate:
    """Estimate inference memory for `workload` (defaults: batch 1, 4096-token prompt, 16 new tokens, bf16,
    transformers)."""
    wl = (workload or Workload()).validate()
    rm = resolve_model(model)
    # vLLM serves vision-language models with its own engine: their decoder, vision tower and encoder cache
    served_by_vllm = rm.entry is not None and rm.entry.kind == "vlm" and wl.engine == "vllm"
    if rm.entry is not None and rm.entry.kind != "llm" and not served_by_vllm:
        from . import families  # imported on first use: a text-LLM run does not load the family estimators

        return families.estimate(rm, wl)
    if wl.family is not None:
        name = next(iter(wl.family.given()), "family")
        raise BadInput(f"{name}: {wl.family.title} options do not apply to {rm.spec.name}, a text LLM", field=name)
    rm.require_modelled(wl.engine)
    return engine_for(wl.engine).estimate(rm, wl)
