"""Data types and quantization formats: how many bits each weight takes, and which tensors stay unquantized.

Bits per weight include the format's own scales and zero points (e.g. GPTQ 4-bit with group 128 stores an fp16 scale
and a 4-bit zero per group of 128 weights, 4 + 20/128 = 4.156 bits). GGUF block sizes are those of ggml's type table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

from .errors import BadInput
from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any

DTYPE_BYTES: dict[str, float] = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8": 1,
    "int8": 1,
    "int4": 0.5,
}
_DTYPE_ALIASES = {
    "fp32": "float32",
    "f32": "float32",
    "float": "float32",
    "float32": "float32",
    "fp16": "float16",
    "f16": "float16",
    "half": "float16",
    "float16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp8": "float8",
    "f8": "float8",
    "float8": "float8",
    "fp8_e4m3": "float8",
    "fp8_e5m2": "float8",
    "float8_e4m3fn": "float8",
    "float8_e5m2": "float8",
    "e4m3": "float8",
    "e5m2": "float8",
    "int8": "int8",
    "i8": "int8",
    "q8": "int8",
    "q8_0": "int8",
    "int4": "int4",
    "i4": "int4",
    "q4": "int4",
    "q4_0": "int4",
}


def normalize_dtype(name: str, *, field: str = "dtype") -> str:
    key = str(name).strip().lower().removeprefix("torch.")
    if key not in _DTYPE_ALIASES:
        raise BadInput(f"{field}: unknown dtype {name!r} (use one of fp32, fp16, bf16, fp8, int8, int4)", field=field)
    return _DTYPE_ALIASES[key]


def dtype_bytes(name: str) -> float:
    return DTYPE_BYTES[normalize_dtype(name)]


# ggml block types: (weights per block, bytes per block). Bits per weight = 8 * bytes / weights.
GGML_TYPES: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q8_1": (32, 36),
    "Q2_K": (256, 84),
    "Q3_K": (256, 110),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
    "Q8_K": (256, 292),
    "IQ2_XXS": (256, 66),
    "IQ2_XS": (256, 74),
    "IQ2_S": (256, 82),
    "IQ3_XXS": (256, 98),
    "IQ3_S": (256, 110),
    "IQ1_S": (256, 50),
    "IQ1_M": (256, 56),
    "IQ4_NL": (32, 18),
    "IQ4_XS": (256, 136),
    "TQ1_0": (256, 54),
    "TQ2_0": (256, 66),
    "MXFP4": (32, 17),
}


def ggml_bits(type_name: str) -> float:
    n, b = GGML_TYPES[type_name.upper()]
    return 8 * b / n


@record(frozen=True)
class QuantScheme:
    """How a model's weights are stored.

    `linear_bits` applies to the 2-D weight matrices inside the transformer blocks (attention and MLP/expert
    projections). Embeddings, the output head and 1-D tensors (norms, biases) follow their own fields, because most
    formats leave them in 16-bit; GGUF quantizes embeddings and the head too and keeps norms in fp32.
    `gguf_mix` names llama.cpp's per-tensor recipe (e.g. Q4_K_M keeps attn_v and ffn_down of some layers in Q6_K).
    """

    name: str
    linear_bits: float
    embed_bits: float = 16
    head_bits: float = 16
    small_bits: float = 16
    router_bits: float = 16
    gguf_mix: str | None = None
    description: str = ""
    expert_bits: float | None = None  # routed experts' matrices, when stored differently (None: linear_bits)
    attention_bits: float | None = None  # the attention's input projections (q/k/v, MLA latents, indexer), when
    # kept apart (None: linear_bits)
    attention_o_bits: float | None = None  # its output projection, when kept apart (None: linear_bits)

    @property
    def is_quantized(self) -> bool:
        return self.linear_bits < 16


# a GGUF file type's default tensor type (llama.cpp's llama_ftype_get_default_type)
GGUF_MIX_BASE: dict[str, str] = {
    "Q2_K": "Q2_K",
    "Q2_K_S": "Q2_K",
    "Q3_K_S": "Q3_K",
    "Q3_K_M": "Q3_K",
    "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K",
    "Q4_K_M": "Q4_K",
    "Q5_K_S": "Q5_K",
    "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K",
    "Q8_0": "Q8_0",
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "IQ4_XS": "IQ4_XS",
    "IQ4_NL": "IQ4_NL",
    "IQ3_XXS": "IQ3_XXS",
    "IQ2_XXS": "IQ2_XXS",
    "IQ3_M": "IQ3_S",
    "IQ3_S": "IQ3_S",
    "MXFP4_MOE": "MXFP4",
    "F16": "F16",
    "BF16": "BF16",
    "F32": "F32",
}


def _gptq(bits: int, group: int, kind: str) -> QuantScheme:
    # qweight packs `bits` per weight; per group of `group` input rows: one fp16 scale and one packed zero per column
    per_weight = bits + (16 + bits) / group
    return QuantScheme(
        name=f"{kind}-{bits}bit-g{group}",
        linear_bits=per_weight,
        description=f"{kind.upper()} {bits}-bit, group {group}: {bits} bits + fp16 scale and {bits}-bit zero per "
        f"{group} weights = {per_weight:.3f} bits/weight; embeddings, lm_head and norms stay 16-bit",
    )


def _gguf(mix: str) -> QuantScheme:
    base = GGUF_MIX_BASE[mix]
    head = "Q6_K" if base not in ("Q8_0", "F16", "BF16", "MXFP4") else "Q8_0" if base == "MXFP4" else base
    if mix == "MXFP4_MOE":  # only the routed experts' 3-D tensors are MXFP4; every other matrix is Q8_0
        return QuantScheme(
            name=mix.lower(),
            linear_bits=ggml_bits("Q8_0"),
            embed_bits=ggml_bits("Q8_0"),
            head_bits=ggml_bits("Q8_0"),
            small_bits=32,
            router_bits=32,
            gguf_mix=mix,
            expert_bits=ggml_bits(base),
            description=f"GGUF {mix}: routed experts in MXFP4 ({ggml_bits(base):.4g} bits/weight), attention, "
            "embeddings and output in Q8_0, norms in F32",
        )
    return QuantScheme(
        name=mix.lower(),
        linear_bits=ggml_bits(base),
        embed_bits=ggml_bits(base),
        head_bits=ggml_bits(head),
        small_bits=32,
        router_bits=32 if base not in ("F16", "BF16") else 16,
        gguf_mix=mix,
        description=f"GGUF {mix}: {base} blocks ({ggml_bits(base):.4g} bits/weight) with llama.cpp's mix "
        f"(output in {head}; attn_v/ffn_down partly higher), norms in F32",
    )


# the plain dtypes: what an estimate without a quantization reads (built at import; the others on first use)
_PLAIN: dict[str, QuantScheme] = {
    dt: QuantScheme(
        name=dt,
        linear_bits=bits,
        embed_bits=bits,
        head_bits=bits,
        small_bits=bits,
        router_bits=bits,
        description=f"all weights in {dt}",
    )
    for dt, bits in (("float32", 32), ("float16", 16), ("bfloat16", 16))
}


@cache
def _schemes() -> dict[str, QuantScheme]:
    """Every named scheme by its name and aliases (lower case). Built on the first lookup by name: some fifty
    schemes that a command asking for a plain dtype never reads."""
    schemes = dict(_PLAIN)

    def register(scheme: QuantScheme, *aliases: str) -> None:
        for key in (scheme.name, *aliases):
            schemes[key.lower()] = scheme

    register(
        QuantScheme(
            name="fp8",
            linear_bits=8 + 32 / 4096,
            description=(
                "FP8 (e4m3) linear weights with one fp32 scale per tensor row block; embeddings, lm_head and norms "
                "16-bit"
            ),
        ),
        "float8",
        "fp8-e4m3",
        "w8a8-fp8",
    )
    register(
        QuantScheme(
            name="int8",
            linear_bits=8 + 16 / 4096,
            description=(
                "INT8 weights (per-channel fp16 scales; weight-only or, as W8A8, with int8 activations); embeddings, "
                "lm_head and norms 16-bit"
            ),
        ),
        "w8a16",
        "w8a8",
        "w8a8-int8",
    )
    # NVFP4 (ModelOpt, llm-compressor, Blackwell's FP4 tensor cores): e2m1 values with an fp8 e4m3 scale per 16 and
    # an fp32 scale per tensor: 4 + 8/16 bits per weight
    register(
        QuantScheme(
            name="nvfp4",
            linear_bits=4 + 8 / 16,
            description=(
                "NVFP4: e2m1 linear weights with an fp8 scale per 16 (+ an fp32 scale per tensor) = 4.5 bits/weight; "
                "embeddings, lm_head and norms 16-bit"
            ),
        ),
        "fp4-e2m1",
    )
    register(
        QuantScheme(
            name="int4",
            linear_bits=4 + 20 / 128,
            description=(
                "INT4 weight-only, group 128 (fp16 scale + 4-bit zero per group); embeddings, lm_head and norms 16-bit"
            ),
        ),
        "w4a16",
    )
    for bits in (4, 8):
        for group in (32, 64, 128):
            register(_gptq(bits, group, "gptq"))
            register(_gptq(bits, group, "awq"))
    register(_gptq(4, 128, "gptq"), "gptq", "gptq-4bit", "gptq-int4")
    register(_gptq(8, 128, "gptq"), "gptq-8bit", "gptq-int8")
    register(_gptq(4, 128, "awq"), "awq", "awq-4bit")
    # bitsandbytes NF4: 4 bits + absmax per 64 weights; with double quantization the absmax is 8-bit with an fp32
    # second-level scale per 256 blocks: 4 + 8/64 + 32/(64*256) bits.
    register(
        QuantScheme(
            name="nf4",
            linear_bits=4 + 8 / 64 + 32 / (64 * 256),
            description=(
                "bitsandbytes NF4 with double quantization: 4 + 8/64 + 32/16384 = 4.127 bits/weight; embeddings, "
                "lm_head and norms 16-bit"
            ),
        ),
        "bnb-nf4",
        "bnb-4bit",
        "nf4-dq",
        "fp4",
    )
    register(
        QuantScheme(
            name="nf4-nodq",
            linear_bits=4 + 32 / 64,
            description=("bitsandbytes NF4 without double quantization: 4 + 32/64 = 4.5 bits/weight"),
        ),
        "bnb-nf4-nodq",
    )
    register(
        QuantScheme(
            name="bnb-int8",
            linear_bits=8,
            description=(
                "bitsandbytes LLM.int8(): int8 weights with an fp32 scale per output row; outlier columns computed "
                "in fp16"
            ),
        ),
        "llm-int8",
        "bnb-8bit",
    )
    for mix in (
        "Q2_K",
        "Q3_K_S",
        "Q3_K_M",
        "Q3_K_L",
        "Q4_K_S",
        "Q4_K_M",
        "Q5_K_S",
        "Q5_K_M",
        "Q6_K",
        "Q8_0",
        "Q4_0",
        "Q4_1",
        "Q5_0",
        "Q5_1",
        "IQ4_XS",
        "IQ4_NL",
        "IQ3_XXS",
        "IQ2_XXS",
    ):
        register(_gguf(mix))
    # gpt-oss's GGUF type: MXFP4 experts (32 values in 17 bytes), everything else Q8_0 (llama-quant.cpp MXFP4_MOE)
    register(_gguf("MXFP4_MOE"), "mxfp4")
    # MLX (mlx-lm) affine quantization: groups of 64 with a 16-bit scale and bias each (bits + 32/64 per weight), the
    # embedding and head too; norms stay 16-bit (vram.engines.mlx)
    for bits in (2, 3, 4, 5, 6, 8):
        register(
            QuantScheme(
                name=f"mlx-{bits}bit",
                linear_bits=bits + 0.5,
                embed_bits=bits + 0.5,
                head_bits=bits + 0.5,
                small_bits=16,
                router_bits=bits + 0.5,
                description=f"MLX {bits}-bit affine, group 64, 16-bit scale + bias per group",
            )
        )
    return schemes


# The order `vram fit` tries when looking for the best quantization that fits: highest quality first.
# (Published perplexity studies of llama.cpp's K-quants and of GPTQ/AWQ put them in this order for 7B-70B models.)
QUALITY_ORDER: tuple[str, ...] = (
    "bfloat16",
    "fp8",
    "q8_0",
    "int8",
    "q6_k",
    "q5_k_m",
    "awq-4bit-g128",
    "q4_k_m",
    "gptq-4bit-g128",
    "nf4",
    "q4_k_s",
    "q3_k_l",
    "q3_k_m",
    "q2_k",
)


def quant_scheme(name: str | None, *, dtype: str = "bfloat16") -> QuantScheme:
    """The weight storage for a quantization name (None: the plain dtype)."""
    if name is None or str(name).strip() == "" or str(name).lower() == "none":
        dt = normalize_dtype(dtype)
        return _PLAIN[dt] if dt in _PLAIN else _schemes()[dt]
    key = str(name).strip().lower()
    schemes = _schemes()
    if key in schemes:
        return schemes[key]
    if key in _DTYPE_ALIASES and _DTYPE_ALIASES[key] in schemes:
        return schemes[_DTYPE_ALIASES[key]]
    raise BadInput(f"quant: unknown quantization {name!r} (e.g. q4_k_m, gptq-4bit, awq, nf4, fp8, int8)", field="quant")


def _group_bits(group: int | None, per: float) -> float:
    """Bits per weight that one `per`-bit scale per `group` weights adds (no group: one per ~4096-wide row)."""
    return per / (group if group and group > 0 else 4096)


def _ct_scheme(qc: Mapping[str, Any], is_moe: bool) -> QuantScheme | None:
    """compressed-tensors (llm-compressor): the first config group's weight args; `ignore` naming attention
    (e.g. Kimi-K2-Thinking / K2.5) leaves everything but the routed experts in 16 bit."""
    groups = qc.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        return None
    first = next(iter(groups.values()))
    w = first.get("weights") if isinstance(first, Mapping) else None
    if not isinstance(w, Mapping):
        return None
    bits = int(w.get("num_bits") or 0)
    if bits not in (4, 8):
        return None
    kind = str(w.get("type") or "int")
    strategy = str(w.get("strategy") or "group")
    group = int(w.get("group_size") or 0) if strategy == "group" else 0
    if strategy == "block" and isinstance(w.get("block_structure"), list):
        group = int(w["block_structure"][0]) * int(w["block_structure"][1])
    if kind == "float" and bits == 4:  # NVFP4: fp8 scale per 16 (+ a global fp32 scale per tensor)
        per_w = 4 + 8 / (group or 16)
    else:  # scales in 16 bit; asymmetric ints also keep a packed `bits`-bit zero point per group
        per_w = (
            bits
            + _group_bits(group, 16)
            + (0 if w.get("symmetric", True) or kind == "float" else _group_bits(group, bits))
        )
    ignore = " ".join(str(x) for x in qc.get("ignore") or [])
    experts_only = is_moe and "attn" in ignore
    name = f"ct-{kind}{bits}" + (f"-g{group}" if group else f"-{strategy}") + ("-experts" if experts_only else "")
    scope = (
        "routed experts only (ignore lists attention, shared experts, dense MLPs)"
        if experts_only
        else "every layer matrix"
    )
    desc = (
        f"as stored (compressed-tensors {kind}{bits}, {strategy}{f' {group}' if group else ''}: "
        f"{per_w:.4g} bits/weight on {scope}); embeddings, lm_head and norms 16-bit"
    )
    if experts_only:
        return QuantScheme(name=name, linear_bits=16, expert_bits=per_w, description=desc)
    return QuantScheme(name=name, linear_bits=per_w, description=desc)


def stored_scheme(qc: Any, *, is_moe: bool = False) -> QuantScheme | None:
    """The weight format a checkpoint's config.json `quantization_config` declares, priced as stored (bits per
    weight with the format's scales and zero points), or None for a method vram does not know.

    fp8 with weight_block_size [a, b] (DeepSeek-V3/V3.2, Kimi-K2, MiniMax-M2, Qwen3 FP8): e4m3 weights and one fp32
    scale per a×b block, 8 + 32/(a·b) bits. mxfp4 (gpt-oss): e2m1 pairs per byte and an 8-bit shared exponent per
    32, 4.25 bits, on the routed experts (modules_to_not_convert keeps attention, router, embeddings and head).
    compressed-tensors: see _ct_scheme. AWQ / GPTQ: `bits` plus fp16 scale and packed zero per group.
    bitsandbytes: NF4 / LLM.int8(). ModelOpt NVFP4: 4 + 8/16 bits."""
    if not isinstance(qc, Mapping):
        return None
    method = str(qc.get("quant_method") or "").lower()
    if method in ("fp8", "fbgemm_fp8"):
        block = qc.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block):
            n = block[0] * block[1]
            bits = 8 + 32 / n
            return QuantScheme(
                name=f"fp8-block{block[0]}",
                linear_bits=bits,
                description=(
                    f"as stored (quantization_config fp8, {block[0]}×{block[1]} blocks): e4m3 weights + one fp32 "
                    f"scale per {n:,} = {bits:.4g} bits/weight; embeddings, lm_head, norms and routers 16-bit"
                ),
            )
        return _schemes()["fp8"]
    if method == "mxfp4":
        bits = 4 + 8 / 32
        desc = (
            "as stored (quantization_config mxfp4): 4-bit e2m1 values + an 8-bit exponent per 32 = 4.25 "
            "bits/weight on the routed experts; attention, router, embeddings and lm_head 16-bit"
        )
        if is_moe:
            return QuantScheme(name="mxfp4-experts", linear_bits=16, expert_bits=bits, description=desc)
        return QuantScheme(name="mxfp4", linear_bits=bits, description=desc.replace(" on the routed experts", ""))
    if method == "compressed-tensors":
        return _ct_scheme(qc, is_moe)
    if method in ("awq", "gptq"):
        bits = int(qc.get("bits") or qc.get("w_bit") or 4)
        group = int(qc.get("group_size") or qc.get("q_group_size") or 128)
        if bits not in (2, 3, 4, 8):
            return None
        if group <= 0:  # per output channel
            group = 4096
        return _gptq(bits, group, method)
    if method == "bitsandbytes":
        if qc.get("load_in_4bit"):
            return _schemes()["nf4" if qc.get("bnb_4bit_use_double_quant") else "nf4-nodq"]
        if qc.get("load_in_8bit"):
            return _schemes()["bnb-int8"]
        return None
    if method == "modelopt":
        algo = str(qc.get("quant_algo") or "").upper()
        if algo == "FP8":
            return _schemes()["fp8"]
        if algo == "NVFP4":
            kept_in, kept_o = _excluded_attention(qc.get("exclude_modules"))
            kept = "q/k/v (latent) and output" if kept_in and kept_o else "q/k/v (latent)" if kept_in else "output"
            return QuantScheme(
                name="nvfp4",
                linear_bits=4 + 8 / 16,
                attention_bits=16 if kept_in else None,
                attention_o_bits=16 if kept_o else None,
                description=(
                    "as stored (ModelOpt NVFP4): e2m1 values + an fp8 scale per 16 = 4.5 bits/weight; embeddings, "
                    "lm_head and norms 16-bit"
                    + (f"; attention {kept} projections 16-bit (exclude_modules)" if kept_in or kept_o else "")
                ),
            )
    return None


# a layer's attention projection in a module name; compiled on first use (re caches it), not at import
_ATTENTION_MODULE = (
    r"\.layers\.(\d+)\.(?:self_attn|attention|attn)\.(q|k|v|o|qkv|q_a|q_b|kv_a|kv_b|indexer)(?:_proj|\b|\*)"
)


def _excluded_attention(exclude: Any) -> tuple[bool, bool]:
    """(input projections, output projection): whether a ModelOpt exclude_modules list keeps them unquantized in
    (nearly) every layer it names — NVIDIA's DeepSeek NVFP4 exports list each layer's q_a / q_b / kv_a / kv_b (and
    the V3.2 indexer), GLM-5's the o_proj too."""
    if not isinstance(exclude, list):
        return False, False
    names = [e for e in exclude if isinstance(e, str)]
    listed = {m.group(1) for e in names if (m := re.search(r"\.layers\.(\d+)\.", e))}
    inputs: set[str] = set()
    outputs: set[str] = set()
    for e in names:
        m = re.search(_ATTENTION_MODULE, e)
        if m:
            (outputs if m.group(2) == "o" else inputs).add(m.group(1))
    enough = 0.9 * len(listed)
    return bool(inputs) and len(inputs) >= enough, bool(outputs) and len(outputs) >= enough


def with_hf_quant_config(config: dict[str, Any], hf_quant_config: Any) -> dict[str, Any]:
    """`config` with the quantization that a ModelOpt export states in its separate hf_quant_config.json
    (``{"quantization": {"quant_algo": "NVFP4", ...}}``) as the ``quantization_config`` it lacks — the file vLLM
    and TensorRT-LLM read for such checkpoints (NVIDIA's NVFP4 / FP8 releases of 2025 ship their config.json without
    one). A config that states its own quantization keeps it."""
    quant = hf_quant_config.get("quantization") if isinstance(hf_quant_config, dict) else None
    if not isinstance(quant, dict) or not quant.get("quant_algo"):
        return config
    text = config.get("text_config")
    if "quantization_config" in config or (isinstance(text, dict) and "quantization_config" in text):
        return config
    return {**config, "quantization_config": {"quant_method": "modelopt", **quant}}


def known_quants() -> list[str]:
    return sorted({s.name for s in _schemes().values()})
