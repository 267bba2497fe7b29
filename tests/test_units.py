"""Parsing what people type ("32k", "24GB") and formatting sizes for display."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vram.errors import BadInput
from vram.units import GB, GIB, KIB, MIB, TIB, fmt_auto, fmt_bytes, fmt_count, parse_bytes, parse_tokens


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("4096", 4096),
        (" 4096 ", 4096),
        ("32k", 32 * 1024),
        ("32K", 32 * 1024),
        ("1.5k", 1536),
        ("128k", 131072),
        ("1m", 1024**2),
        ("1M", 1024**2),
        ("0.5k", 512),
        ("32ki", 32 * 1024),
        ("0", 0),
        (4096, 4096),
    ],
)
def test_parse_tokens(text: str | int, tokens: int) -> None:
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize(
    "text", ["", "abc", "-5", "-1k", "1.5", "0.3k", "32 tokens", "32kb", "1e3", "k", "3.2.1", "32k32"]
)
def test_parse_tokens_rejects(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_tokens(text, field="context")
    assert info.value.field == "context"
    assert "context" in str(info.value)


def test_parse_tokens_rejects_bool() -> None:
    with pytest.raises(BadInput):
        parse_tokens(True)


@given(st.integers(min_value=0, max_value=10**9))
def test_parse_tokens_round_trips_integers(n: int) -> None:
    assert parse_tokens(str(n)) == n
    assert parse_tokens(f"{n}k") == n * 1024


@pytest.mark.parametrize(
    "text,nbytes",
    [
        ("24GB", 24 * 10**9),
        ("24gb", 24 * 10**9),
        ("24 GB", 24 * 10**9),
        ("80GiB", 80 * 2**30),
        ("80gib", 80 * 2**30),
        ("80g", 80 * 10**9),
        ("80Gi", 80 * 2**30),
        ("1024", 1024),
        ("1024b", 1024),
        ("512MiB", 512 * 2**20),
        ("1.5TiB", 3 * 2**39),
        ("2TB", 2 * 10**12),
        ("0.5KiB", 512),
        ("16KB", 16000),
        (12345, 12345),
    ],
)
def test_parse_bytes(text: str | int, nbytes: int) -> None:
    assert parse_bytes(text) == nbytes


@pytest.mark.parametrize("text", ["", "lots", "GB", "-1GB", "24XB", "24 G B", "1e9", "24GBs"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_bytes(text, field="gpu_memory")
    assert info.value.field == "gpu_memory"


def test_unit_constants() -> None:
    assert (KIB, MIB, GIB, TIB, GB) == (1024, 1024**2, 1024**3, 1024**4, 10**9)


def test_formatting() -> None:
    assert fmt_bytes(GIB) == "1.00 GiB"
    assert fmt_bytes(16_060_522_752) == "14.96 GiB"
    assert fmt_bytes(16_060_522_752, "GB", 1) == "16.1 GB"
    assert fmt_auto(5) == "5 B"
    assert fmt_auto(1536) == "1.50 KiB"
    assert fmt_auto(3 * MIB) == "3.00 MiB"
    assert fmt_auto(65_536_000_000) == "61.04 GiB"
    assert fmt_auto(2 * TIB) == "2.00 TiB"
    assert fmt_count(8_030_261_248) == "8.03B"
    assert fmt_count(134_515_008) == "134.52M"
    assert fmt_count(671_026_419_200) == "671.03B"
    assert fmt_count(1_500) == "1.50K"
    assert fmt_count(999) == "999"
