"""Byte and token-count units: parsing what people type ("32k", "24GB") and formatting for display.

Bytes stay integers everywhere until they are shown.
"""

from __future__ import annotations

import re

from .errors import BadInput

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
GB = 1000**3

# patterns compiled on first use (re caches them): compiling at import is time every command pays
_COUNT = r"^\s*(\d+(?:\.\d+)?)\s*([kmgKMG]i?)?\s*$"
_COUNT_MULT = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
_BYTES = r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$"
_BYTE_MULT = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": KIB,
    "kib": KIB,
    "mi": MIB,
    "mib": MIB,
    "gi": GIB,
    "gib": GIB,
    "ti": TIB,
    "tib": TIB,
}

# Context lengths: "32k" means 32,768 tokens, the way model cards use it; "32000" stays exact.
_TOKEN_K = 1024


def parse_tokens(text: str | int, *, field: str = "context") -> int:
    """Parse a token count: 4096, "4096", "32k" (= 32768), "1m" (= 1,048,576), "1.5k" (= 1536)."""
    if isinstance(text, bool):
        raise BadInput(f"{field}: expected a token count, got {text!r}", field=field)
    if isinstance(text, int):
        return text
    m = re.match(_COUNT, str(text))
    if not m:
        raise BadInput(f"{field}: expected a token count like 4096 or 32k, got {text!r}", field=field)
    value, suffix = float(m.group(1)), (m.group(2) or "").lower().rstrip("i")
    mult = {"": 1, "k": _TOKEN_K, "m": _TOKEN_K**2, "g": _TOKEN_K**3}[suffix]
    out = value * mult
    if out != int(out):
        raise BadInput(f"{field}: {text!r} is not a whole number of tokens", field=field)
    return int(out)


def parse_bytes(text: str | int, *, field: str = "memory") -> int:
    """Parse a memory size: 24GB (decimal), 24GiB (binary), 80g, 1024 (bytes)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.match(_BYTES, str(text))
    if not m:
        raise BadInput(f"{field}: expected a size like 24GB or 80GiB, got {text!r}", field=field)
    return int(float(m.group(1)) * _BYTE_MULT[(m.group(2) or "").lower()])


def gib(n: int | float) -> float:
    return n / GIB


def fmt_bytes(n: int | float, unit: str = "GiB", digits: int = 2) -> str:
    div = {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": GIB, "TiB": TIB, "GB": GB}[unit]
    return f"{n / div:,.{digits}f} {unit}"


def fmt_auto(n: int | float) -> str:
    """Human size with a binary unit chosen for the magnitude."""
    a = abs(n)
    for unit, div in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if a >= div:
            return f"{n / div:,.2f} {unit}"
    return f"{int(n)} B"


def fmt_count(n: int) -> str:
    """1234567890 -> '1.23B'; used for parameter counts."""
    a = abs(n)
    for suffix, div in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if a >= div:
            return f"{n / div:.2f}{suffix}"
    return str(n)
