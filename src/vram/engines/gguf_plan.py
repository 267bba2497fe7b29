"""The tensors of a GGUF file as llama.cpp loads them: from the file itself, or predicted for a model + quant type.

A prediction follows llama.cpp's own quantizer (src/llama-quant.cpp, `llama_tensor_get_type_impl` and
`tensor_type_fallback`, read at the Oct 2026 tree) tensor by tensor, so the bytes are those of the files
`llama-quantize` writes (what most published GGUF files are):

* the base type of the mix (`llama_ftype_get_default_type`: Q4_K for Q4_K_M, Q3_K for Q3_K_M ...);
* `output.weight` (or `token_embd.weight` when the embeddings are tied, as it then serves as the output) in Q6_K,
  or Q8_0 when its row length is not a multiple of the block size or the base is Q8_0 (MXFP4_MOE: Q8_0);
* `attn_v` (and fused `attn_qkv`, MLA `attn_kv_b`) and `ffn_down` one step up on the layers `use_more_bits` picks
  (i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2) for the *_M mixes; Q2_K / Q3_K_* / Q4_K_S have their own rules; the
  70B-class llama (80 blocks) keeps attn_v in Q5_K; 8-expert models keep attn_k/attn_v in Q8_0 and attn_output in
  Q5_K;
* 1-D tensors (norms, biases) and the expert router `ffn_gate_inp` are never quantized (F32, as
  convert_hf_to_gguf.py writes them);
* a tensor whose row length (ne[0]) is not a multiple of the type's block falls back: Q4_K->Q5_0, Q5_K->Q5_1,
  Q6_K->Q8_0, Q2_K/Q3_K->Q4_0, IQ*->IQ4_NL, and F16 when even that does not divide.
"""

from __future__ import annotations

import re

from ..dtypes import GGML_TYPES, GGUF_MIX_BASE
from ..errors import BadInput
from ..model import ModelSpec
from ..records import record

MIX_BASE = GGUF_MIX_BASE  # llama_ftype_get_default_type (vram.dtypes)
_ALIASES = {"MXFP4": "MXFP4_MOE", "FLOAT16": "F16", "FP16": "F16", "BFLOAT16": "BF16", "FLOAT32": "F32", "FP32": "F32"}
_FALLBACK = {
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
    "Q2_K": "Q4_0",
    "Q3_K": "Q4_0",
    "IQ4_XS": "IQ4_NL",
    "IQ3_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL",
    "IQ2_XXS": "IQ4_NL",
    "IQ2_XS": "IQ4_NL",
    "IQ2_S": "IQ4_NL",
    "IQ1_S": "IQ4_NL",
    "IQ1_M": "IQ4_NL",
}
_BLK = re.compile(r"^blk\.(\d+)\.")
_EXPS = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")  # common/common.h LLM_FFN_EXPS_REGEX


@record(frozen=True)
class Tensor:
    name: str
    type_name: str
    ne0: int  # row length
    n_elements: int
    nbytes: int

    @property
    def layer(self) -> int | None:
        m = _BLK.match(self.name)
        return int(m.group(1)) if m else None

    @property
    def is_input(self) -> bool:
        return self.name.startswith(("token_embd", "token_types", "position_embd", "per_layer_token_embd"))

    @property
    def is_expert(self) -> bool:
        return bool(_EXPS.search(self.name))

    @property
    def is_matrix(self) -> bool:
        return self.n_elements != self.ne0


def mix_name(quant: str | None, dtype: str) -> str:
    """The GGUF file type for --quant (q4_k_m ...) or, without one, the 16/32-bit dtype."""
    if quant is None:
        return {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}.get(dtype, "F16")
    key = quant.strip().upper().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in MIX_BASE:
        raise BadInput(
            f"quant: llama.cpp runs GGUF files; {quant!r} is not a GGUF type (use "
            f"{', '.join(k.lower() for k in MIX_BASE)})",
            field="quant",
        )
    return key


def _fallback(t: str, ne0: int) -> str:
    block = GGML_TYPES[t][0]
    if ne0 % block == 0:
        return t
    f = _FALLBACK.get(t, t)
    return f if ne0 % GGML_TYPES[f][0] == 0 else "F16"


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@record()
class _State:
    mix: str
    base: str
    n_layer: int
    n_expert: int
    n_gqa: int
    n_attention_wv: int
    is_70b: bool
    falcon: bool
    i_attention_wv: int = 0


def _choose(st: _State, name: str, category: str, layer: int | None, ne0: int, is_3d: bool, tied: bool) -> str:
    """llama_tensor_get_type_impl for the categories that matter for size (IQ1/IQ2 special cases omitted)."""
    mix, t = st.mix, st.base
    if category == "output" or (tied and category == "token_embd"):
        if mix == "MXFP4_MOE" or st.falcon or ne0 % GGML_TYPES[t][0]:
            return "Q8_0"
        return t if t == "Q8_0" else "Q6_K"
    if mix == "MXFP4_MOE":
        return "MXFP4" if is_3d else "Q8_0"
    if category == "token_embd":
        return t
    if category == "attn_v":
        if mix == "Q2_K":
            t = "Q4_K" if st.n_gqa >= 4 else "Q3_K"
        elif mix == "Q2_K_S" and st.n_gqa >= 4:
            t = "Q4_K"
        elif mix == "IQ3_XXS":
            t = "Q4_K" if st.n_gqa >= 4 else "IQ3_S"
        elif (mix == "IQ3_S" and st.n_gqa >= 4) or mix == "IQ3_M":
            t = "Q4_K"
        elif mix == "Q3_K_M":
            t = "Q5_K" if st.i_attention_wv < 2 else "Q4_K"
        elif mix == "Q3_K_L" or (mix in ("IQ4_NL", "IQ4_XS") and st.n_gqa >= 4):
            t = "Q5_K"
        elif mix in ("Q4_K_M", "Q5_K_M") and _use_more_bits(st.i_attention_wv, st.n_attention_wv):
            t = "Q6_K"
        elif mix == "Q4_K_S" and st.i_attention_wv < 4:
            t = "Q5_K"
        if st.is_70b and t in ("Q3_K", "Q4_K"):
            t = "Q5_K"
        if st.n_expert == 8:
            t = "Q8_0"
        st.i_attention_wv += 1
        return t
    if category == "attn_k":
        return "Q8_0" if st.n_expert == 8 else t
    if category == "ffn_down":
        i, n = (layer or 0), st.n_layer
        if mix == "Q2_K":
            return "Q3_K"
        if mix == "Q2_K_S":
            return "Q4_K" if i < n // 8 else t
        if mix == "IQ3_XXS":
            return "Q4_K" if i < n // 8 else "Q3_K"
        if mix == "Q3_K_M":
            return "Q5_K" if i < n // 16 else ("Q4_K" if not st.falcon or _use_more_bits(i, n) else "Q3_K")
        if mix == "IQ3_M" and (i < n // 8 or (st.n_expert == 8 and _use_more_bits(i, n))):
            return "Q4_K"
        if mix == "Q3_K_L":
            return "Q4_K" if st.falcon else "Q5_K"
        if mix == "Q4_K_M":
            if st.falcon:
                return "Q6_K" if i < n // 16 else ("Q5_K" if _use_more_bits(i, n) else "Q4_K")
            return "Q6_K" if _use_more_bits(i, n) else t
        if mix in ("IQ4_NL", "IQ4_XS") and i < n // 8:
            return "Q5_K"
        if mix == "Q5_K_M" and _use_more_bits(i, n):
            return "Q6_K"
        if mix == "Q4_K_S" and not st.falcon and i < n // 8:
            return "Q5_K"
        return t
    if category == "attn_output":
        if st.falcon:
            return "Q4_K" if mix == "Q3_K_L" else t
        if st.n_expert == 8:
            return (
                "Q5_K"
                if mix
                in ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S", "IQ3_M", "IQ4_XS", "IQ3_XXS")
                else t
            )
        return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(mix, t)
    if category == "attn_qkv":
        if mix in ("Q3_K_M", "Q3_K_L", "IQ3_M"):
            return "Q4_K"
        return {"Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(mix, t)
    return t


def _category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name.startswith("token_embd"):
        return "token_embd"
    for key, cat in (
        ("attn_qkv.weight", "attn_qkv"),
        ("attn_kv_b.weight", "attn_v"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_output.weight", "attn_output"),
        ("ffn_down", "ffn_down"),
    ):
        if key in name:
            return cat
    return "other"


def _spec_shapes(spec: ModelSpec) -> list[tuple[str, int, int, bool]]:
    """(name, ne0, n_elements, is_3d) of the tensors llama.cpp's converter writes for `spec`."""
    h = spec.hidden_size
    out: list[tuple[str, int, int, bool]] = [("token_embd.weight", h, spec.embed_params, False)]
    fused_qkv = spec.model_type in ("phi3", "phi4")
    for i, layer in enumerate(spec.layers):
        p = f"blk.{i}."
        used = 0
        a = layer.attention
        if a is not None and a.kind == "mha":
            q, kv, vo = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim, a.num_kv_heads * a.v_head_dim
            if fused_qkv:
                out.append((p + "attn_qkv.weight", h, h * (q + kv + vo), False))
            else:
                out += [
                    (p + "attn_q.weight", h, h * q, False),
                    (p + "attn_k.weight", h, h * kv, False),
                    (p + "attn_v.weight", h, h * vo, False),
                ]
            out.append((p + "attn_output.weight", a.num_heads * a.v_head_dim, a.num_heads * a.v_head_dim * h, False))
            used += h * (q + kv + vo) + a.num_heads * a.v_head_dim * h
        m = layer.mlp
        if m is not None and m.kind == "moe":
            ff, ne = m.intermediate_size, m.num_experts
            mats = 3 if m.expert_gated else 2
            expert = ne * ff * h
            if m.expert_gated:
                out.append((p + "ffn_gate_exps.weight", h, expert, True))
            out += [(p + "ffn_up_exps.weight", h, expert, True), (p + "ffn_down_exps.weight", ff, expert, True)]
            used += mats * expert
            sh = m.shared_intermediate_size
            if sh:
                out += [
                    (p + "ffn_gate_shexp.weight", h, h * sh, False),
                    (p + "ffn_up_shexp.weight", h, h * sh, False),
                    (p + "ffn_down_shexp.weight", sh, h * sh, False),
                ]
                used += 3 * h * sh
        elif m is not None:
            ff = m.intermediate_size
            if m.kind == "gated":
                out.append((p + "ffn_gate.weight", h, h * ff, False))
                used += h * ff
            out += [(p + "ffn_up.weight", h, h * ff, False), (p + "ffn_down.weight", ff, h * ff, False)]
            used += 2 * h * ff
        rest = layer.linear_params - used
        if rest > 0:  # attention of other kinds (MLA), mixers: 2-D matrices in the base type
            out.append((p + "other.weight", h if rest % h == 0 else 256, rest, False))
        if layer.router_params:
            out.append((p + "ffn_gate_inp.weight", 0, layer.router_params, False))
        if layer.small_params:
            out.append((p + "norms_biases", 0, layer.small_params, False))
    out.append(("output_norm.weight", 0, spec.final_params, False))
    if not spec.tie_word_embeddings and spec.head_params:
        out.append(("output.weight", h, spec.head_params, False))
    return out


def plan_tensors(spec: ModelSpec, mix: str) -> list[Tensor]:
    """The tensors of `spec` quantized as `mix` by llama-quantize (norms, biases and routers as F32)."""
    base = MIX_BASE[mix]
    shapes = _spec_shapes(spec)
    first = next((la.attention for la in spec.layers if la.attention is not None), None)
    n_expert = max((la.mlp.num_experts for la in spec.layers if la.mlp is not None), default=0)
    st = _State(
        mix=mix,
        base=base,
        n_layer=spec.num_layers,
        n_expert=n_expert,
        n_gqa=(first.num_heads // max(1, first.num_kv_heads)) if first else 1,
        n_attention_wv=sum(1 for s in shapes if _category(s[0]) in ("attn_v", "attn_qkv")),
        is_70b=spec.num_layers == 80 and spec.model_type in ("llama", "qwen2"),
        falcon=spec.model_type == "falcon",
    )
    tied = spec.tie_word_embeddings or not spec.head_params
    out = []
    for name, ne0, n, is_3d in shapes:
        if ne0 == 0:  # 1-D tensors and routers: F32
            out.append(Tensor(name, "F32", max(1, n), n, 4 * n))
            continue
        if base in ("F16", "BF16", "F32"):
            t = base
        else:
            lay = _BLK.match(name)
            t = _choose(st, name, _category(name), int(lay.group(1)) if lay else None, ne0, is_3d, tied)
            t = _fallback(t, ne0)
        block, size = GGML_TYPES[t]
        out.append(Tensor(name, t, ne0, n, -(-n // block) * size))
    return out


def file_tensors(tensors: list[tuple[str, str, tuple[int, ...], int, int]]) -> list[Tensor]:
    """From a GGUF file's tensor infos: (name, type, shape (ne order), n_elements, nbytes)."""
    return [Tensor(name, t, shape[0] if shape else 1, n, b) for name, t, shape, n, b in tensors]
