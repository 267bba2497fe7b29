"""Models for my hardware: every catalog model that runs on a GPU (or N of them), at the best weight format that fits,
ranked largest first, with speed.

For each model the weight formats the engine runs are tried in quality order (`vram.fit.quant_candidates`: bf16,
fp8/q8_0, 6/5-bit K-quants, 4-bit, then 3/2-bit); the first whose estimate — the same per-tensor estimate `vram fit`
makes, KV cache and buffers included — fits the GPU with the headroom asked (else the first that fits at all) is the
model's format. Ranking: models at 4 bits or more first (below that, quality drops steeply in published perplexity
studies), then by parameter count, then by format quality, then by decode speed.
"""

from __future__ import annotations

from typing import Any

from .catalog import ModelEntry, all_models
from .dtypes import quant_scheme
from .errors import BadInput, VramError
from .fitting import (
    DEFAULT_HEADROOM,
    GpuChoice,
    Option,
    evaluate_option,
    evaluator_for,
    parse_gpu_spec,
    quant_candidates,
)
from .records import record, replace
from .request import TransformersOptions, Workload, engine_options

USES = ("chat", "code", "vision", "embedding")
LOW_BIT_BELOW = 4.0  # average bits per weight under which a format is "low-bit" (q3_k_*, q2_k)


def model_use(entry: ModelEntry) -> str | None:
    """What a catalog model is for: embedding and vision from its kind, code for the Coder families, chat for the
    other text decoders; None for image and speech models."""
    if entry.kind == "embedding":
        return "embedding"
    if entry.kind == "vlm":
        return "vision"
    if entry.kind != "llm":
        return None
    text = f"{entry.id} {entry.name} {entry.family}".lower()
    return "code" if "coder" in text or "codestral" in text or "starcoder" in text else "chat"


@record(frozen=True)
class ModelFit:
    model: str
    name: str
    use: str
    params: int
    quant: str
    bits_per_weight: float
    option: Option
    low_bit: bool

    def to_dict(self) -> dict[str, Any]:
        o = self.option
        return {
            "model": self.model,
            "name": self.name,
            "use": self.use,
            "params": self.params,
            "quant": self.quant,
            "bits_per_weight": round(self.bits_per_weight, 2),
            "low_bit": self.low_bit,
            "verdict": o.verdict,
            "gpu_count": o.gpu_count,
            "split": o.split,
            "per_gpu_bytes": o.per_gpu_bytes,
            "usable_bytes_per_gpu": o.usable_bytes_per_gpu,
            "free_bytes_per_gpu": o.free_bytes_per_gpu,
            "decode_tokens_per_s": o.speed.decode_tokens_per_s if o.speed else None,
            "prefill_tokens_per_s": o.speed.prefill_tokens_per_s if o.speed else None,
        }


def models_for(
    gpu: str | GpuChoice,
    *,
    engine: str = "llama.cpp",
    context: int = 8192,
    use: str | None = None,
    headroom_fraction: float = DEFAULT_HEADROOM,
    batch: int = 1,
) -> list[ModelFit]:
    """Every catalog model (of `use`, default chat + code + vision) that runs on `gpu` at `context` tokens, ranked."""
    if use is not None and use not in USES:
        raise BadInput(f"use: unknown use {use!r} (use {', '.join(USES)})", field="use")
    choice = parse_gpu_spec(gpu)
    base = Workload(options=engine_options(engine), context=context, batch=batch, new_tokens=0).validate()
    out: list[ModelFit] = []
    for entry in all_models():
        u = model_use(entry)
        if u is None or (use is None and u == "embedding") or (use is not None and u != use):
            continue
        ev = evaluator_for(entry.id)
        if not ev.is_llm:  # embedding / vision-family models: as published (no weight-format search)
            try:
                opt = evaluate_option(ev, choice, replace(base, options=TransformersOptions()), headroom_fraction)
            except VramError:
                opt = None
            if opt is not None:
                out.append(ModelFit(entry.id, entry.name, u, ev.spec.params, "bfloat16", 16.0, opt, False))
            continue
        ctx = min(context, entry.context_length or context)
        wl0 = replace(base, context=ctx)
        tight: tuple[str, Option] | None = None
        chosen: tuple[str, Option] | None = None
        for q in quant_candidates(engine):
            wl = replace(wl0, quant=None if q == "bfloat16" else q)
            try:
                opt = evaluate_option(ev, choice, wl, headroom_fraction)
            except VramError:
                continue
            if opt is None:
                continue
            if opt.verdict == "fits":
                chosen = (q, opt)
                break
            tight = tight or (q, opt)
        chosen = chosen or tight
        if chosen is None:
            continue
        q, opt = chosen
        bits = _quant_bits(q)
        out.append(ModelFit(entry.id, entry.name, u, ev.spec.params, q, bits, opt, bits < LOW_BIT_BELOW))
    order = {q: i for i, q in enumerate(quant_candidates(engine))}
    out.sort(
        key=lambda m: (
            m.low_bit,
            -m.params,
            order.get(m.quant, 99),
            -(m.option.speed.decode_tokens_per_s if m.option.speed else 0.0),
        )
    )
    return out


def _quant_bits(q: str) -> float:
    """Bits per weight of a format's block matrices (the quantization scheme's own figure)."""
    return float(quant_scheme(None if q == "bfloat16" else q).linear_bits)
