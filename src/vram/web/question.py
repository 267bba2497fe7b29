"""Free-text questions -> form fields: "can I run llama 3 70b on two 4090s at 32k?" ->
{model: llama-3-70b, gpu: rtx-4090, gpu_count: 2, context: "32k"}. Plain matching against catalog ids and aliases."""

from __future__ import annotations

import re
from typing import Any

from ..catalog import all_gpus, all_models
from ..dtypes import known_quants

_WORDS = {"a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "dual": 2, "pair": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "eight": 8, "sixteen": 16}
_CONTEXT = re.compile(r"(?:at|with|context(?: of)?|ctx)\s+(\d+(?:\.\d+)?\s*[km]?)\b|\b(\d+(?:\.\d+)?\s*[km])\s*"
                      r"(?:context|tokens|ctx)?\b", re.IGNORECASE)
_BATCH = re.compile(r"batch(?:\s+(?:size|of))?\s*(?:=|:)?\s*(\d+)", re.IGNORECASE)
_TRAIN = re.compile(r"\b(fine-?tun\w*|train\w*|lora|qlora)\b", re.IGNORECASE)


def _loose(s: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", s.lower())


def _spaced(s: str) -> str:
    return " " + re.sub(r"[^a-z0-9.]+", " ", s.lower()).strip() + " "


def _find_model(text: str) -> str | None:
    """The catalog model whose id/name/alias appears in the text as whole words; the longest match wins."""
    hay = _spaced(text)
    best: tuple[int, str] | None = None
    for m in all_models():
        for cand in (m.id, m.name, m.hf_repo.split("/")[-1] if m.hf_repo else "", *m.aliases):
            if not cand:
                continue
            needle = _spaced(cand)
            if len(needle.strip()) < 3:
                continue
            if needle in hay or _spaced(cand.replace("-", "")) in hay:
                score = len(needle)
                if best is None or score > best[0]:
                    best = (score, m.id)
    return best[1] if best else None


def _find_gpu(text: str) -> tuple[str | None, int]:
    hay = _spaced(text)
    best: tuple[int, str, int] | None = None  # (length, id, position)
    for g in all_gpus():
        for cand in (g.id, g.name, *g.aliases):
            for variant in (cand, cand + "s"):
                needle = _spaced(variant)
                pos = hay.find(needle)
                if len(needle.strip()) >= 2 and pos >= 0 and (best is None or len(needle) > best[0]):
                    best = (len(needle), g.id, pos)
    if best is None:
        return None, 1
    before = hay[: best[2]].split()[-3:]
    count = 1
    for word in reversed(before):
        w = word.rstrip("x")
        if w.isdigit() and 0 < int(w) <= 1024:
            count = int(w)
            break
        if w in _WORDS:
            count = _WORDS[w]
            break
        if word in ("nvidia", "rtx", "geforce", "amd", "x"):
            continue
        break
    return best[1], count


def parse_question(text: str) -> dict[str, Any]:
    text = (text or "")[:500]
    out: dict[str, Any] = {}
    model = _find_model(text)
    if model:
        out["model"] = model
    gpu, count = _find_gpu(text)
    if gpu:
        out["gpu"] = gpu
        out["gpu_count"] = count
    for m in _CONTEXT.finditer(text):
        value = (m.group(1) or m.group(2) or "").replace(" ", "").lower()
        if value and (value[-1] in "km" or int(float(value)) >= 256):
            out["context"] = value
            break
    if b := _BATCH.search(text):
        out["batch"] = int(b.group(1))
    low = f" {text.lower()} "
    for q in sorted(known_quants(), key=len, reverse=True):
        if len(q) > 2 and re.search(rf"(?<![a-z0-9_-]){re.escape(q)}(?![a-z0-9_-])", low):
            out["quant"] = q
            break
    else:
        if re.search(r"\b4[- ]?bit\b", low):
            out["quant"] = "q4_k_m"
        elif re.search(r"\b8[- ]?bit\b", low):
            out["quant"] = "q8_0"
    words = {m.group(1).lower() for m in _TRAIN.finditer(text)}
    if words:
        out["mode"] = "train"
        out["method"] = "qlora" if "qlora" in words else "lora" if "lora" in words else "full"
    return out
