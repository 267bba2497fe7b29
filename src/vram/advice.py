"""What to change when it does not fit: the switches people reach for, each checked with the estimator, cheapest
first.

"Cheapest" means what the change costs the user, in this order (a judgement, stated so it can be argued with):

* training: gradient checkpointing (≈ one more forward pass per step, no quality change), an 8-bit optimizer
  (AdamW states in 8 bits; bitsandbytes reports matching quality), LoRA instead of full fine-tuning, QLoRA (the
  base in 4-bit NF4), checkpointing together with QLoRA, a smaller micro-batch with gradient accumulation (same
  effective batch, slower), then a shorter sequence (changes what is trained);
* inference: an 8-bit KV cache (small quality loss), a shorter context or fewer sequences at once (changes what is
  served), the best weight quantization that fits (quality loss grows with fewer bits), more GPUs (money), and last
  keeping only some layers on the GPU (much slower: offloaded layers cross the host link every token);
* image models: model CPU offload of the text encoders (slower start of each prompt), then fewer images per
  prompt or a smaller image; speech: fewer audio windows at once.

Each change is evaluated by `vram fit` itself (the same verdict rule); `fields` are the calculator's form fields
that apply it, so a page can link to the changed check.
"""

from __future__ import annotations

from typing import Any

from .errors import BadInput, VramError
from .fitting import DEFAULT_HEADROOM, FitResult, GpuChoice, evaluator_for, fit, parse_gpu_spec
from .records import field, record, replace
from .request import ImageOptions, TrainWorkload, Workload

GIB = 1024**3


@record(frozen=True)
class Change:
    change: str  # what to do, in words
    effect: str  # the estimate after the change, in words
    fits: bool
    verdict: str
    per_gpu_bytes: int
    usable_bytes_per_gpu: int
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "effect": self.effect,
            "fits": self.fits,
            "verdict": self.verdict,
            "per_gpu_bytes": self.per_gpu_bytes,
            "usable_bytes_per_gpu": self.usable_bytes_per_gpu,
            "fields": dict(self.fields),
        }


def _effect(r: FitResult) -> str:
    g = GIB
    if r.verdict == "no":
        return f"still {r.per_gpu_bytes / g:,.2f} GiB per GPU of {r.usable_bytes_per_gpu / g:,.2f} GiB usable"
    word = "fits" if r.verdict == "fits" else "fits, tight"
    return f"{r.per_gpu_bytes / g:,.2f} GiB per GPU of {r.usable_bytes_per_gpu / g:,.2f} GiB usable ({word})"


def _try(model: str, gpu: GpuChoice, wl: Workload, train: TrainWorkload | None, headroom: float) -> FitResult | None:
    try:
        return fit(model, gpu, wl, train=train, headroom_fraction=headroom, solve=False, with_speed=False)
    except VramError:  # a change this model or engine does not take (e.g. no such quantization)
        return None


def _tokens(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _training_candidates(tw: TrainWorkload, base: FitResult) -> list[tuple[str, TrainWorkload, dict[str, str]]]:
    out: list[tuple[str, TrainWorkload, dict[str, str]]] = []
    if not tw.grad_checkpointing:
        out.append(
            ("turn on gradient checkpointing", replace(tw, grad_checkpointing=True), {"grad_checkpointing": "1"})
        )
    if tw.optimizer in ("adamw", "adamw-fused") and tw.method == "full":
        out.append(
            (
                "use the 8-bit AdamW optimizer (adamw-8bit)",
                replace(tw, optimizer="adamw-8bit"),
                {"optimizer": "adamw-8bit"},
            )
        )
    if tw.method == "full":
        out.append(("fine-tune with LoRA instead of all weights", replace(tw, method="lora"), {"method": "lora"}))
    if tw.method in ("full", "lora"):
        out.append(("use QLoRA (4-bit base weights + LoRA)", replace(tw, method="qlora"), {"method": "qlora"}))
        if not tw.grad_checkpointing:
            out.append(
                (
                    "use QLoRA with gradient checkpointing",
                    replace(tw, method="qlora", grad_checkpointing=True),
                    {"method": "qlora", "grad_checkpointing": "1"},
                )
            )
    if tw.batch > 1:
        out.append(
            (
                f"micro-batch 1 with {tw.batch * tw.grad_accum} gradient-accumulation steps (same effective batch)",
                replace(tw, batch=1, grad_accum=tw.batch * tw.grad_accum),
                {"batch": "1"},
            )
        )
    if base.max_context and base.max_context < tw.seq:
        out.append(
            (
                f"train on sequences of {base.max_context:,} tokens instead of {tw.seq:,}",
                replace(tw, seq=base.max_context),
                {"seq": str(base.max_context)},
            )
        )
    return out


def _inference_candidates(wl: Workload, base: FitResult, kind: str) -> list[tuple[str, Workload, dict[str, str]]]:
    out: list[tuple[str, Workload, dict[str, str]]] = []
    if kind == "diffusion":
        img = wl.family_options(ImageOptions)
        if not img.offload_text_encoders:
            out.append(
                (
                    "keep the text encoders off the GPU (pipe.enable_model_cpu_offload())",
                    replace(wl, family=replace(img, offload_text_encoders=True)),
                    {"offload_text_encoders": "1"},
                )
            )
        if img.images > 1:
            out.append(("one image per prompt", replace(wl, family=replace(img, images=1)), {"images": "1"}))
        if img.width * img.height > 768 * 768:
            out.append(
                (
                    "768×768 images",
                    replace(wl, family=replace(img, width=768, height=768)),
                    {"width": "768", "height": "768"},
                )
            )
        return out
    if kind != "llm":
        if wl.batch > 1:
            out.append(("one input at a time", replace(wl, batch=1), {"batch": "1"}))
        return out
    if wl.kv_dtype not in ("float8", "int8", "int4"):
        out.append(("an 8-bit KV cache (fp8)", replace(wl, kv_dtype="float8"), {"kv_dtype": "fp8"}))
    if base.max_context and base.max_context < wl.context:
        out.append(
            (
                f"a context of {base.max_context:,} tokens instead of {wl.context:,}",
                replace(wl, context=base.max_context),
                {"context": str(base.max_context)},
            )
        )
    if base.max_batch and base.max_batch < wl.batch:
        out.append(
            (
                f"{base.max_batch} sequences at once instead of {wl.batch}",
                replace(wl, batch=base.max_batch),
                {"batch": str(base.max_batch)},
            )
        )
    if base.recommended_quant and base.recommended_quant != (wl.quant or wl.dtype):
        q = base.recommended_quant
        out.append((f"{q} weights", replace(wl, quant=q), {"quant": q}))
    return out


def ways_to_fit(
    model: str,
    gpu_spec: str | GpuChoice,
    workload: Workload | None = None,
    *,
    train: TrainWorkload | None = None,
    headroom_fraction: float = DEFAULT_HEADROOM,
    base: FitResult | None = None,
    limit: int = 4,
) -> list[Change]:
    """Changes that make the workload fit on `gpu_spec`, cheapest first (see the module docstring), at most
    `limit`. Empty when it fits already. `base`: the fit of the workload as asked, when the caller has it (its
    solvers give the longest context, largest batch, best quantization and fewest GPUs)."""
    choice = parse_gpu_spec(gpu_spec)
    wl = (workload or Workload()).validate()
    if base is None:
        base = fit(model, choice, wl, train=train, headroom_fraction=headroom_fraction)
    if base.verdict != "no":
        return []
    ev = evaluator_for(model)
    kind = ev.rm.entry.kind if ev.rm.entry is not None else "llm"
    found: list[Change] = []

    def consider(text: str, r: FitResult | None, fields: dict[str, str]) -> None:
        if r is not None and r.verdict != "no":
            found.append(Change(text, _effect(r), True, r.verdict, r.per_gpu_bytes, r.usable_bytes_per_gpu, fields))

    if train is not None:
        for text, tw, fields in _training_candidates(train, base):
            if len(found) >= limit:
                break
            try:
                tw = tw.validate()
            except BadInput:
                continue
            consider(text, _try(model, choice, wl, tw, headroom_fraction), fields)
        if base.min_gpus and base.min_gpus > choice.count and len(found) < limit:
            n = base.min_gpus
            consider(
                f"{n} GPUs (ZeRO-{train.zero})" if train.zero else f"{n} GPUs (data parallel)",
                _try(model, GpuChoice(choice.gpu, n, choice.local), wl, train, headroom_fraction),
                {"gpu_count": str(n)},
            )
        return found[:limit]
    for text, w2, fields in _inference_candidates(wl, base, kind):
        if len(found) >= limit:
            break
        consider(text, _try(model, choice, w2, None, headroom_fraction), fields)
    if base.min_gpus and base.min_gpus > choice.count and len(found) < limit:
        n = base.min_gpus
        consider(
            f"{n}× {choice.gpu.name} instead of {choice.count}",
            _try(model, GpuChoice(choice.gpu, n, choice.local), wl, None, headroom_fraction),
            {"gpu_count": str(n)},
        )
    if base.offload and base.offload.get("layers_on_gpu") and len(found) < limit and wl.engine != "vllm":
        o = base.offload
        tps = o.get("decode_tokens_per_s")
        found.append(
            Change(
                f"keep {o['layers_on_gpu']} of {o['layers_total']} layers on the GPU, the rest in host memory",
                f"{int(o['host_memory_bytes']) / GIB:,.1f} GiB in host memory"
                + (
                    f"; about {tps:,.1f} tokens/s (slow: offloaded layers cross the host link every token)"
                    if tps
                    else ""
                ),
                True,
                "offload",
                base.per_gpu_bytes,
                base.usable_bytes_per_gpu,
                {},
            )
        )
    return found[:limit]


__all__ = ["Change", "ways_to_fit"]
