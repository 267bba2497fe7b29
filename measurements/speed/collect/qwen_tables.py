"""The `vram` mapping both Qwen speed-table collectors write (qwen15_hf_infer.py, qwen25_speed_benchmark.py): one
A100 80GB run of batch 1 whose figure is new tokens / the wall time of one call, prefill included, so it is scored
end to end (fit_check.py: new tokens / (the prompt's TTFT + new tokens / decode))."""

from __future__ import annotations

from typing import Any


def end_to_end_vram(
    model: str, engine: str, gpus: int, prompt: int, new_tokens: int, split: str | None, notes: list[str]
) -> dict[str, Any]:
    return {
        "model": model,
        "gpu": "a100-80gb-sxm",
        "gpu_count": gpus,
        "engine": engine,
        "batch": 1,
        "decode_context": prompt + new_tokens // 2,
        "new_tokens": 0,
        "end_to_end": {"prompt": prompt, "new_tokens": new_tokens},
        "prefill_context": None,
        "quant": None,
        "split": split,
        "mapping_notes": notes,
    }
