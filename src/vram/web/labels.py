"""Errors in the words of the form: a field's label instead of its JSON name ("Headroom (% of weights): at most
1000" rather than "headroom_fraction: Input should be less than or equal to 10"), and which input to mark."""

from __future__ import annotations

from typing import Any

from ..errors import UnknownGpu, UnknownModel, VramError

# JSON path -> (the form's label, the form input's id)
FIELDS: dict[str, tuple[str, str]] = {
    "model": ("Model", "model"),
    "gpu": ("GPU", "gpu"),
    "gpu_count": ("GPUs", "gpu_count"),
    "context": ("Context (tokens)", "context"),
    "batch": ("Batch", "batch"),
    "new_tokens": ("New tokens", "new_tokens"),
    "quant": ("Weights", "quant"),
    "engine": ("Engine", "engine"),
    "dtype": ("dtype", "dtype"),
    "kv_dtype": ("KV cache dtype", "kv_dtype"),
    "attn": ("Attention", "attn"),
    "headroom_fraction": ("Headroom (% of weights)", "headroom"),
    "headroom": ("Headroom (% of weights)", "headroom"),
    "release": ("Engine release", "release"),
    "options.engine_version": ("Engine release", "release"),
    "engine_version": ("Engine release", "release"),
    "options.llama_build": ("Engine release", "release"),
    "llama_build": ("Engine release", "release"),
    "options.ollama_version": ("Engine release", "release"),
    "ollama_version": ("Engine release", "release"),
    "options.transformers_version": ("Engine release", "release"),
    "transformers_version": ("Engine release", "release"),
    "train.method": ("Method", "method"),
    "method": ("Method", "method"),
    "train.precision": ("Precision", "precision"),
    "precision": ("Precision", "precision"),
    "train.optimizer": ("Optimizer", "optimizer"),
    "optimizer": ("Optimizer", "optimizer"),
    "train.seq": ("Sequence", "seq"),
    "seq": ("Sequence", "seq"),
    "train.lora_rank": ("LoRA rank", "lora_rank"),
    "lora_rank": ("LoRA rank", "lora_rank"),
    "train.grad_checkpointing": ("Gradient checkpointing", "grad_checkpointing"),
    "width": ("Image width", "width"),
    "height": ("Image height", "height"),
    "images": ("Images per prompt", "images"),
    "beams": ("Beams", "beams"),
    "gpus": ("GPUs to compare", "gpus"),
    "fleet": ("Fleet (YAML)", "fleet"),
}
# the form shows headroom in % of the weights; the body carries a fraction
SCALE = {"headroom_fraction": 100.0}


def label_of(path: str) -> tuple[str, str | None]:
    if path in FIELDS:
        return FIELDS[path]
    return path.replace("_", " ").capitalize(), None


def _pydantic_words(path: str, err: dict[str, Any]) -> str:
    t = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    scale = SCALE.get(path, 1.0)
    if t in ("less_than_equal", "less_than"):
        return f"at most {float(ctx.get('le', ctx.get('lt', 0))) * scale:g}"
    if t in ("greater_than_equal", "greater_than"):
        return f"at least {float(ctx.get('ge', ctx.get('gt', 0))) * scale:g}"
    if t in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        return "a number, like 4" if t.startswith("float") else "a whole number, like 4"
    if t in ("missing", "string_too_short"):
        return "required"
    if t == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if t == "literal_error":
        return f"one of {ctx.get('expected', '')}".replace("'", "")
    if t in ("bool_type", "bool_parsing"):
        return "yes or no"
    return str(err.get("msg", "not valid"))


def form_error(exc: Any) -> tuple[str, str | None]:
    """(message, the form input to mark) for a pydantic ValidationError or a VramError."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"] if p not in ("int", "str", "float", "bool"))
        label, input_id = label_of(path)
        return f"{label}: {_pydantic_words(path, dict(err))}", input_id
    if isinstance(exc, UnknownModel | UnknownGpu):
        path = "model" if isinstance(exc, UnknownModel) else "gpu"
        label, input_id = label_of(path)
        what = "model" if path == "model" else "GPU"
        hint = (
            f"; did you mean {', '.join(exc.suggestions)}?"
            if exc.suggestions
            else "; see the model catalog"
            if path == "model"
            else ""
        )
        return f"{label}: no {what} in the catalog matches {exc.query!r}{hint}", input_id
    if isinstance(exc, VramError):
        text = str(exc)
        path = exc.field or ""
        label, input_id = label_of(path) if path else ("", None)
        for prefix in (f"{path}: ", f"{path.split('.')[-1]}: "):
            if path and text.startswith(prefix):
                text = text[len(prefix) :]
                break
        text = text.replace("`vram models`", "the model catalog").replace("`vram gpus`", "the GPU list")
        return (f"{label}: {text}" if label else text), input_id
    return str(exc), None
