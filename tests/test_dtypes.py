"""Data types and quantization formats: bits per weight from first principles (block layouts), and what each format
leaves unquantized. Expected values are derived here from the formats' definitions, not from vram's tables."""

from __future__ import annotations

import math

import pytest

from vram.catalog import find_model
from vram.components.weights import weights_bytes
from vram.dtypes import QUALITY_ORDER, dtype_bytes, ggml_bits, known_quants, normalize_dtype, quant_scheme
from vram.errors import BadInput
from vram.model import model_from_config


@pytest.mark.parametrize(
    "name,canonical,nbytes",
    [
        ("bf16", "bfloat16", 2),
        ("BF16", "bfloat16", 2),
        ("torch.bfloat16", "bfloat16", 2),
        ("fp16", "float16", 2),
        ("half", "float16", 2),
        ("float32", "float32", 4),
        ("fp32", "float32", 4),
        ("fp8", "float8", 1),
        ("float8_e4m3fn", "float8", 1),
        ("e5m2", "float8", 1),
        ("int8", "int8", 1),
        ("int4", "int4", 0.5),
    ],
)
def test_dtypes(name: str, canonical: str, nbytes: float) -> None:
    assert normalize_dtype(name) == canonical
    assert dtype_bytes(name) == nbytes


@pytest.mark.parametrize("name", ["", "fp12", "bfloat8", "int3", "int2"])
def test_unknown_dtype(name: str) -> None:
    with pytest.raises(BadInput) as info:
        normalize_dtype(name, field="kv_dtype")
    assert info.value.field == "kv_dtype"


# ggml block layouts (ggml-common.h): bytes per block of weights, field by field.
GGML_BLOCKS = {
    "Q4_0": (32, 2 + 32 // 2),  # fp16 d + 32 × 4-bit
    "Q4_1": (32, 2 + 2 + 32 // 2),  # d, m + 4-bit quants
    "Q5_0": (32, 2 + 4 + 32 // 2),  # d + 32 high bits + 4-bit quants
    "Q8_0": (32, 2 + 32),  # fp16 d + 32 int8
    "Q2_K": (256, 256 // 16 + 256 // 4 + 2 + 2),  # 4-bit scales/mins per 16, 2-bit quants, d, dmin
    "Q3_K": (256, 256 // 8 + 256 // 4 + 12 + 2),  # high-bit mask, low 2 bits, 6-bit scales, d
    "Q4_K": (256, 2 + 2 + 12 + 256 // 2),  # d, dmin, 6-bit scales/mins of 8 sub-blocks, 4-bit quants
    "Q5_K": (256, 2 + 2 + 12 + 256 // 8 + 256 // 2),  # + high bits
    "Q6_K": (256, 256 // 2 + 256 // 4 + 256 // 16 + 2),  # low 4 bits, high 2 bits, int8 scales, d
    "IQ4_XS": (256, 2 + 2 + 256 // 64 + 256 // 2),  # d, scales_h, scales_l, 4-bit quants
    "MXFP4": (32, 1 + 32 // 2),  # e8m0 scale + 32 × fp4
}


@pytest.mark.parametrize("ggml_type", sorted(GGML_BLOCKS))
def test_ggml_bits_from_block_layouts(ggml_type: str) -> None:
    n, b = GGML_BLOCKS[ggml_type]
    assert ggml_bits(ggml_type) == 8 * b / n
    assert ggml_bits(ggml_type.lower()) == 8 * b / n


def test_ggml_headline_numbers() -> None:
    assert ggml_bits("Q4_K") == 4.5
    assert ggml_bits("Q6_K") == 6.5625
    assert ggml_bits("Q8_0") == 8.5
    assert ggml_bits("Q2_K") == 2.625
    assert ggml_bits("F16") == 16


@pytest.mark.parametrize(
    "name,bits",
    [
        ("gptq", 4 + (16 + 4) / 128),  # 4-bit weights + per group of 128: fp16 scale + 4-bit zero
        ("gptq-4bit", 4 + 20 / 128),
        ("gptq-4bit-g128", 4 + 20 / 128),
        ("gptq-4bit-g32", 4 + 20 / 32),
        ("gptq-8bit", 8 + 24 / 128),
        ("gptq-8bit-g64", 8 + 24 / 64),
        ("awq", 4 + 20 / 128),
        ("awq-4bit-g64", 4 + 20 / 64),
        ("nf4", 4 + 8 / 64 + 32 / (64 * 256)),  # double quant: 8-bit absmax per 64, fp32 scale per 256 blocks
        ("bnb-nf4", 4 + 8 / 64 + 32 / (64 * 256)),
        ("nf4-nodq", 4 + 32 / 64),  # fp32 absmax per 64 weights
        ("nvfp4", 4 + 8 / 16),  # e2m1 + an fp8 scale per 16 weights
        ("w8a8", 8 + 16 / 4096),  # W8A8 stores INT8 weights as int8 does
        ("w8a8-fp8", 8 + 32 / 4096),
        ("bf16", 16),
        ("fp32", 32),
        ("float16", 16),
    ],
)
def test_quant_linear_bits(name: str, bits: float) -> None:
    assert quant_scheme(name).linear_bits == pytest.approx(bits, rel=1e-12)


def test_gptq_g128_headline() -> None:
    assert quant_scheme("gptq-4bit-g128").linear_bits == 4 + 20 / 128 == 4.15625
    assert round(quant_scheme("nf4").linear_bits, 3) == 4.127


@pytest.mark.parametrize(
    "name,base",
    [
        ("q4_k_m", "Q4_K"),
        ("Q4_K_S", "Q4_K"),
        ("q5_k_m", "Q5_K"),
        ("q6_k", "Q6_K"),
        ("q8_0", "Q8_0"),
        ("q2_k", "Q2_K"),
        ("q3_k_m", "Q3_K"),
        ("iq4_xs", "IQ4_XS"),
    ],
)
def test_gguf_schemes(name: str, base: str) -> None:
    s = quant_scheme(name)
    assert s.linear_bits == ggml_bits(base)
    assert s.embed_bits == ggml_bits(base)  # GGUF quantizes token embeddings too
    assert s.small_bits == 32  # norms stay F32 in GGUF files
    assert s.head_bits == (ggml_bits("Q8_0") if base == "Q8_0" else ggml_bits("Q6_K"))  # output.weight in Q6_K
    assert s.gguf_mix == name.upper()


def test_16_bit_formats_keep_embeddings_head_and_norms_in_16_bit() -> None:
    for name in ("gptq", "awq", "nf4", "int8", "fp8"):
        s = quant_scheme(name)
        assert (s.embed_bits, s.head_bits, s.small_bits) == (16, 16, 16), name
        assert s.is_quantized


def test_none_means_the_plain_dtype() -> None:
    assert quant_scheme(None, dtype="fp16").name == "float16"
    assert quant_scheme("", dtype="bf16").name == "bfloat16"
    assert quant_scheme("none", dtype="fp32").linear_bits == 32
    assert not quant_scheme(None).is_quantized


def test_unknown_quant() -> None:
    with pytest.raises(BadInput) as info:
        quant_scheme("q9_k")
    assert info.value.field == "quant" and "q9_k" in str(info.value)


def test_quality_order_names_are_known() -> None:
    known = set(known_quants())
    for name in QUALITY_ORDER:
        assert quant_scheme(name).name in known


# --- weights under a scheme: the per-tensor-class sum, by hand ---------------------------------------------------

LLAMA31_8B = dict(layers=32, h=4096, kv=1024, inter=14336, vocab=128256)


def _llama31_8b_parts() -> tuple[int, int, int, int]:
    """(layer matrices, embedding, head, 1-D norms) of Llama 3.1 8B from its published shapes."""
    L, h, kv, inter, vocab = (LLAMA31_8B[k] for k in ("layers", "h", "kv", "inter", "vocab"))
    linear = L * (2 * h * h + 2 * h * kv + 3 * h * inter)
    return linear, vocab * h, vocab * h, L * 2 * h + h


def test_weights_gptq_by_hand() -> None:
    spec = model_from_config(find_model("llama-3.1-8b").config)
    linear, embed, head, small = _llama31_8b_parts()
    assert spec.params == linear + embed + head + small
    bits = linear * (4 + 20 / 128) + (embed + head + small) * 16
    assert weights_bytes(spec, quant_scheme("gptq")).bytes == math.ceil(bits / 8)


def test_weights_q4_k_m_by_hand() -> None:
    """llama.cpp's Q4_K_M: Q4_K everywhere, Q6_K for output.weight and for attn_v / ffn_down on the layers its
    use_more_bits rule picks (first and last eighth, and every third layer in between); norms F32."""
    spec = model_from_config(find_model("llama-3.1-8b").config)
    L, h, kv, inter = (LLAMA31_8B[k] for k in ("layers", "h", "kv", "inter"))
    more = [i for i in range(L) if i < L // 8 or i >= 7 * L // 8 or (i - L // 8) % 3 == 2]
    assert len(more) == 16
    v, down = h * kv, inter * h
    linear, embed, head, small = _llama31_8b_parts()
    boosted = len(more) * (v + down)
    bits = (linear - boosted) * 4.5 + boosted * 6.5625 + embed * 4.5 + head * 6.5625 + small * 32
    got = weights_bytes(spec, quant_scheme("q4_k_m")).bytes
    assert got == math.ceil(bits / 8)
    # published: Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf is 4.92 GB, tokenizer and metadata included
    assert got == pytest.approx(4.92e9, rel=0.01)


def test_weights_fp16_is_two_bytes_per_param() -> None:
    spec = model_from_config(find_model("llama-3.1-8b").config)
    assert weights_bytes(spec, quant_scheme(None, dtype="fp16")).bytes == 2 * spec.params
    assert weights_bytes(spec, quant_scheme("fp32")).bytes == 4 * spec.params
