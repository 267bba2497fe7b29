"""Free-text questions -> form fields: "can I run qwen 2.5 14b on two 4090s at 32k with vllm?" ->
{model: qwen2.5-14b, gpu: rtx-4090, gpu_count: 2, context: "32k", engine: vllm}.

Plain matching against the catalogs' ids, names and aliases, on a normalized text where letters and digits are
separate words ("qwen2.5-14b" and "Qwen 2.5 14B" both read "qwen 2.5 14b") and the longest match wins. What each
matched phrase meant, and the words that matched nothing, are returned so the page can say what it understood and
what not. Every question starts from the form's defaults: only the fields found are returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..catalog import all_gpus, all_models
from ..dtypes import known_quants

_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "two": 2,
    "dual": 2,
    "pair": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "twelve": 12,
    "sixteen": 16,
}
# words that carry no field of their own (questions are phrased around them)
_FILLER = frozenset(
    {
        "can",
        "could",
        "would",
        "will",
        "should",
        "do",
        "does",
        "did",
        "is",
        "are",
        "am",
        "be",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "a",
        "an",
        "the",
        "on",
        "in",
        "at",
        "of",
        "to",
        "for",
        "with",
        "and",
        "or",
        "using",
        "use",
        "run",
        "running",
        "runs",
        "serve",
        "serving",
        "host",
        "hosting",
        "fit",
        "fits",
        "fitting",
        "into",
        "onto",
        "enough",
        "memory",
        "vram",
        "gpu",
        "gpus",
        "card",
        "cards",
        "how",
        "many",
        "much",
        "what",
        "which",
        "need",
        "needs",
        "want",
        "get",
        "please",
        "model",
        "models",
        "inference",
        "infer",
        "deploy",
        "local",
        "locally",
        "machine",
        "box",
        "rig",
        "setup",
        "server",
        "if",
        "there",
        "any",
        "some",
        "than",
        "more",
        "less",
        "about",
        "around",
        "just",
        "only",
        "also",
        "still",
        "context",
        "ctx",
        "tokens",
        "token",
        "long",
        "length",
        "window",
        "sequence",
        "sequences",
        "seq",
        "size",
        "by",
        "per",
        "hi",
        "hello",
        "okay",
        "ok",
        "so",
        "then",
        "like",
        "as",
        "up",
    }
)
_ENGINES = {
    "vllm": "vllm",
    "llama.cpp": "llama.cpp",
    "llamacpp": "llama.cpp",
    "llama cpp": "llama.cpp",
    "llama server": "llama.cpp",
    "ollama": "ollama",
    "lm studio": "llama.cpp",
    "lmstudio": "llama.cpp",
    "transformers": "transformers",
    "hf transformers": "transformers",
    "huggingface": "transformers",
    "hugging face": "transformers",
    "pytorch": "transformers",
}
_METHODS = {"qlora": "qlora", "lora": "lora", "full fine tune": "full", "full finetune": "full", "full": "full"}
_TRAIN = re.compile(r"\b(fine[- ]?tun\w*|train\w*|qlora|lora)\b", re.IGNORECASE)
_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
}


def _norm(s: str) -> str:
    """Lower case, separators to spaces, letters split from the digits that follow them ("qwen2.5" -> "qwen 2.5"),
    "×" read as "x"; padded with spaces so whole-word matches are substring matches."""
    s = s.lower().replace("×", "x").replace("_", " ")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 32,768 -> 32768
    s = re.sub(r"[^a-z0-9.+]+", " ", s)
    s = re.sub(r"(?<=\d)\s*x\s*(?=[a-z])", " x ", s)  # 2xh100 -> 2 x h100
    s = re.sub(r"(?<=\d)x(?=\d)", " x ", s)  # 4090x2 -> 4090 x 2
    s = re.sub(r"(?<=[a-z])(?=\d)", " ", s)  # qwen2 -> qwen 2, rtx4090 -> rtx 4090
    s = re.sub(r"\.(?!\d)|(?<!\d)\.", " ", s)  # dots only inside numbers ("2.5")
    return " " + " ".join(s.split()) + " "


@dataclass
class Understanding:
    fields: dict[str, Any] = field(default_factory=dict)
    understood: list[dict[str, str]] = field(default_factory=list)  # {field, value, said}
    not_understood: list[str] = field(default_factory=list)  # words that matched nothing

    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": dict(self.fields),
            "understood": list(self.understood),
            "not_understood": list(self.not_understood),
        }


@lru_cache(maxsize=1)
def _model_needles() -> list[tuple[str, str, str]]:
    """(normalized phrase, model id, model name), longest first."""
    out: dict[str, tuple[str, str]] = {}
    for m in all_models():
        for cand in (m.id, m.name, m.hf_repo.split("/")[-1] if m.hf_repo else "", m.hf_repo, *m.aliases):
            n = _norm(cand)
            if len(n.strip()) >= 3 and not n.strip().isdigit():
                out.setdefault(n, (m.id, m.name))
    return sorted(((n, i, name) for n, (i, name) in out.items()), key=lambda t: -len(t[0]))


@lru_cache(maxsize=1)
def _gpu_needles() -> list[tuple[str, str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for g in all_gpus():
        for cand in (g.id, g.name, *g.aliases):
            n = _norm(cand)
            if len(n.strip()) >= 2:
                out.setdefault(n, (g.id, g.name))
    return sorted(((n, i, name) for n, (i, name) in out.items()), key=lambda t: -len(t[0]))


class _Text:
    """The normalized question; matched spans are blanked out so later fields do not read them again."""

    def __init__(self, text: str) -> None:
        self.s = _norm(text)

    def take(self, needle: str, *, plural: bool = False) -> tuple[int, int] | None:
        variants = [needle]
        if plural:
            variants.append(needle[:-1] + "s ")
        for v in variants:
            i = self.s.find(v)
            if i >= 0:
                return i, i + len(v)
        return None

    def blank(self, a: int, b: int) -> None:
        self.s = self.s[:a] + " " * (b - a) + self.s[b:]

    def words(self) -> list[str]:
        return self.s.split()


def _count_near(t: _Text, a: int, b: int) -> tuple[int | None, tuple[int, int]]:
    """A GPU count written around the GPU's name: "two 4090s", "2x h100", "2 x h100", "4090 x2", "4090 x 2"."""
    before = t.s[: a + 1]
    after = t.s[b - 1 :]
    m = re.match(r"\s*x\s*(\d{1,4})\b|\s+(\d{1,4})\s*x\b", after)
    if m:  # "4090 x2" names the count after the GPU, whatever precedes it ("an rtx 4090 x2")
        return int(m.group(1) or m.group(2)), (a, b - 1 + m.end())
    m = re.search(
        r"\s(?:(\d{1,4})\s*x?|x\s*(\d{1,4})|([a-z]+))\s+(?:(?:nvidia|amd|rtx|geforce|radeon|apple|"
        r"instinct|tesla)\s+)*$",
        before,
    )
    if m:
        raw = m.group(1) or m.group(2) or m.group(3)
        count = int(raw) if raw.isdigit() else _WORDS.get(raw)
        if count:
            return count, (m.start(), b)
    return None, (a, b)


def understand(text: str) -> Understanding:
    """What the question asks, field by field (see the module docstring)."""
    text = (text or "")[:500]
    u = Understanding()
    if not text.strip():
        return u
    t = _Text(text)

    def said(a: int, b: int) -> str:
        return " ".join(t.s[a:b].split())

    # GPU first (its numbers, "4090", must not read as a context), then the model
    for needle, gid, gname in _gpu_needles():
        span = t.take(needle, plural=True)
        if span is None:
            continue
        n, (a, b) = _count_near(t, *span)
        u.fields["gpu"] = gid
        u.fields["gpu_count"] = n if n and 0 < n <= 1024 else 1
        u.understood.append({"field": "gpu", "value": f"{u.fields['gpu_count']}× {gname}", "said": said(a, b)})
        t.blank(a, b)
        break
    for needle, mid, mname in _model_needles():
        span = t.take(needle)
        if span is not None:
            u.fields["model"] = mid
            u.understood.append({"field": "model", "value": mname, "said": said(*span)})
            t.blank(*span)
            break
    for phrase, engine in sorted(_ENGINES.items(), key=lambda kv: -len(kv[0])):
        span = t.take(_norm(phrase))
        if span is not None:
            u.fields["engine"] = engine
            shown = engine + (" (Ollama runs llama.cpp)" if "ollama" in phrase and engine != "ollama" else "")
            u.understood.append({"field": "engine", "value": shown, "said": said(*span)})
            t.blank(*span)
            break
    _quant(t, u, said)
    words = {m.group(1).lower() for m in _TRAIN.finditer(text)}
    if words:
        u.fields["mode"] = "train"
        method = (
            "qlora"
            if "qlora" in words
            else "lora"
            if "lora" in words
            else "full"
            if re.search(r"\bfull\b", text, re.I)
            else None
        )
        if method:
            u.fields["method"] = method
        u.understood.append(
            {
                "field": "mode",
                "value": "training" + (f" ({method})" if method else ""),
                "said": ", ".join(sorted(words)),
            }
        )
        for w in (
            "qlora",
            "lora",
            "full",
            "fine tune",
            "fine tuning",
            "finetune",
            "finetuning",
            "fine tuned",
            "train",
            "training",
            "trained",
            "tune",
        ):
            while (span := t.take(_norm(w))) is not None:
                t.blank(*span)
        for phrase in ("gradient checkpointing", "grad checkpointing", "activation checkpointing", "checkpointing"):
            span = t.take(_norm(phrase))
            if span is not None:
                u.fields["grad_checkpointing"] = "1"
                u.understood.append({"field": "grad_checkpointing", "value": "on", "said": said(*span)})
                t.blank(*span)
                break
    for word, dt in _DTYPES.items():
        span = t.take(_norm(word))
        if span is not None:
            u.fields["dtype"] = dt
            u.understood.append({"field": "dtype", "value": dt, "said": word})
            t.blank(*span)
            break
    m = re.search(
        r"\s(?:batch(?: size)?(?: of)?\s+(\d{1,5})|(\d{1,5})\s+(?:users|requests|sequences|concurrent|"
        r"parallel|at once|streams|prompts))\s",
        t.s,
    )
    if m:
        u.fields["batch"] = int(m.group(1) or m.group(2))
        u.understood.append({"field": "batch", "value": str(u.fields["batch"]), "said": said(m.start(), m.end())})
        t.blank(m.start(), m.end())
    _context(t, u, said)
    u.not_understood = [w for w in t.words() if w not in _FILLER and not w.isdigit()] + [
        w for w in t.words() if w.isdigit()
    ]
    return u


def _quant(t: _Text, u: Understanding, said: Any) -> None:
    engine = u.fields.get("engine", "transformers")
    four = {"vllm": "awq", "llama.cpp": "q4_k_m", "ollama": "q4_k_m"}.get(engine, "nf4")
    eight = {"vllm": "fp8", "llama.cpp": "q8_0", "ollama": "q8_0"}.get(engine, "int8")
    phrases: list[tuple[str, str]] = [
        ("int4 awq", "awq"),
        ("awq int4", "awq"),
        ("4 bit awq", "awq"),
        ("awq", "awq"),
        ("int4 gptq", "gptq"),
        ("4 bit gptq", "gptq"),
        ("gptq", "gptq"),
        ("bnb 4 bit", "nf4"),
        ("bitsandbytes", "nf4"),
        ("nf4", "nf4"),
        ("fp8", "fp8"),
        ("int8", eight if engine in ("llama.cpp", "ollama") else "int8"),
        ("8 bit", eight),
        ("8bit", eight),
        ("int4", four),
        ("4 bit", four),
        ("4bit", four),
        ("q4", "q4_k_m"),
        ("q8", "q8_0"),
        ("q6", "q6_k"),
        ("q5", "q5_k_m"),
        ("q3", "q3_k_m"),
        ("q2", "q2_k"),
    ]
    # "int4 awq" names AWQ (a choice of the form), then exact scheme names ("q4 k m" after normalizing "Q4_K_M"),
    # then the generic "4-bit" / "8-bit", read for the engine asked
    known = [(_norm(q).strip(), q) for q in sorted(known_quants(), key=len, reverse=True) if len(q) > 2]
    phrases = phrases[:9] + known + phrases[9:]
    for phrase, value in phrases:
        span = t.take(f" {_norm(phrase).strip()} ")
        if span is not None:
            u.fields["quant"] = value
            u.understood.append({"field": "quant", "value": value, "said": said(*span)})
            t.blank(*span)
            return


def _context(t: _Text, u: Understanding, said: Any) -> None:
    pats = [
        r"\s(\d+(?:\.\d+)?)\s?([km])\s(?:(?:of\s)?(?:context|tokens|ctx|token))?",
        r"\s(?:context|ctx|at|with|of)\s(?:of\s|length\s|window\s)?(\d{3,8})\s(?:tokens?\s)?",
        r"\s(\d{3,8})\s(?:tokens?|context|ctx)\s",
    ]
    for pat in pats:
        m = re.search(pat, t.s)
        if not m:
            continue
        num = m.group(1)
        suffix = m.group(2) if m.lastindex and m.lastindex >= 2 else ""
        if not suffix and int(float(num)) < 256:
            continue
        value = f"{num}{suffix}" if suffix else num
        u.fields["context"] = value
        u.understood.append({"field": "context", "value": value, "said": said(m.start(), m.end())})
        t.blank(m.start(), m.end())
        return


def parse_question(text: str) -> dict[str, Any]:
    """The form fields a question names (only those; the form's defaults fill the rest)."""
    return understand(text).fields
