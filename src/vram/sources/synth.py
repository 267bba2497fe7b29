"""Small synthetic GGUF files with random tensors, for the tests and for the recorded llama.cpp check.

They are real GGUF files (written with the `gguf` package's writer) with the tensor names, shapes and metadata keys
llama.cpp expects for each architecture, and a byte-level SentencePiece-style vocabulary so llama.cpp loads them.
The tensor contents are random bytes: nothing here runs inference, only loads and sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..records import record


@record(frozen=True)
class TinyModel:
    arch: str = "llama"
    n_embd: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 64
    n_ff: int = 768
    n_vocab: int = 1024
    context_length: int = 4096
    tied: bool = False
    sliding_window: int | None = None
    weight_type: str = "F16"  # ggml type of the 2-D block matrices
    embed_type: str = "F16"
    n_expert: int = 0
    n_expert_used: int = 0


def _vocab(n: int) -> tuple[list[str], list[float], list[int]]:
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += [f"t{i}" for i in range(n - len(toks))]
    types = [2, 3, 3] + [6] * 256 + [1] * (n - 259)
    return toks[:n], [0.0] * n, types[:n]


def _block_tensors(m: TinyModel, i: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape = (rows, row length), type) of one block's tensors."""
    e, q, kv, ff = m.n_embd, m.n_head * m.head_dim, m.n_head_kv * m.head_dim, m.n_ff
    w = m.weight_type
    t: list[tuple[str, tuple[int, ...], str]] = [
        (f"blk.{i}.attn_norm.weight", (e,), "F32"),
        (f"blk.{i}.attn_q.weight", (q, e), w),
        (f"blk.{i}.attn_k.weight", (kv, e), w),
        (f"blk.{i}.attn_v.weight", (kv, e), w),
        (f"blk.{i}.attn_output.weight", (e, q), w),
        (f"blk.{i}.ffn_norm.weight", (e,), "F32"),
    ]
    if m.n_expert:
        t += [
            (f"blk.{i}.ffn_gate_inp.weight", (m.n_expert, e), "F32"),
            (f"blk.{i}.ffn_gate_exps.weight", (m.n_expert, ff, e), w),
            (f"blk.{i}.ffn_up_exps.weight", (m.n_expert, ff, e), w),
            (f"blk.{i}.ffn_down_exps.weight", (m.n_expert, e, ff), w),
        ]
    else:
        t += [
            (f"blk.{i}.ffn_gate.weight", (ff, e), w),
            (f"blk.{i}.ffn_up.weight", (ff, e), w),
            (f"blk.{i}.ffn_down.weight", (e, ff), w),
        ]
    if m.arch == "qwen2":
        t += [
            (f"blk.{i}.attn_q.bias", (q,), "F32"),
            (f"blk.{i}.attn_k.bias", (kv,), "F32"),
            (f"blk.{i}.attn_v.bias", (kv,), "F32"),
        ]
    if m.arch in ("qwen3", "gemma3"):
        t += [
            (f"blk.{i}.attn_q_norm.weight", (m.head_dim,), "F32"),
            (f"blk.{i}.attn_k_norm.weight", (m.head_dim,), "F32"),
        ]
    if m.arch in ("gemma2", "gemma3"):
        t += [(f"blk.{i}.post_attention_norm.weight", (e,), "F32"), (f"blk.{i}.post_ffw_norm.weight", (e,), "F32")]
    return t


def model_tensors(m: TinyModel) -> list[tuple[str, tuple[int, ...], str]]:
    out: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (m.n_vocab, m.n_embd), m.embed_type)]
    for i in range(m.n_layer):
        out += _block_tensors(m, i)
    out.append(("output_norm.weight", (m.n_embd,), "F32"))
    if not m.tied:
        out.append(("output.weight", (m.n_vocab, m.n_embd), m.embed_type))
    return out


def tensor_nbytes(shape: tuple[int, ...], type_name: str) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    n = 1
    for d in shape:
        n *= d
    return n // block * size


def write_gguf(path: Path, m: TinyModel, seed: int = 0, split_max_tensors: int = 0) -> dict[str, Any]:
    """Write `m` to `path` (or to `stem-0000i-of-0000N.gguf` splits of at most `split_max_tensors` tensors);
    returns {"params", "bytes"} of what was written."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), m.arch, split_max_tensors=split_max_tensors)
    a = m.arch
    w.add_name(f"tiny-{a}")
    w.add_block_count(m.n_layer)
    w.add_context_length(m.context_length)
    w.add_embedding_length(m.n_embd)
    w.add_feed_forward_length(m.n_ff)
    w.add_head_count(m.n_head)
    w.add_head_count_kv(m.n_head_kv)
    w.add_key_length(m.head_dim)
    w.add_value_length(m.head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(m.head_dim)
    w.add_file_type(1)
    if m.sliding_window:
        w.add_sliding_window(m.sliding_window)
    if a == "gemma2":
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    if m.n_expert:
        w.add_expert_count(m.n_expert)
        w.add_expert_used_count(m.n_expert_used)
    toks, scores, types = _vocab(m.n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    params = total = 0
    for name, shape, tname in model_tensors(m):
        qt = GGMLQuantizationType[tname]
        n = 1
        for d in shape:
            n *= d
        params += n
        if tname == "F32":
            w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
            total += 4 * n
        elif tname == "F16":
            w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float16))
            total += 2 * n
        else:
            block, size = GGML_QUANT_SIZES[qt]
            byte_shape = (*shape[:-1], shape[-1] // block * size)
            raw = rng.integers(0, 256, size=byte_shape, dtype=np.uint8)
            if tname.startswith(("Q4_0", "Q8_0", "Q4_K", "Q6_K", "Q5_K", "Q2_K", "Q3_K")):
                raw = _fix_scales(raw, tname)
            w.add_tensor(name, raw, raw_dtype=qt)
            total += raw.size
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"params": params, "bytes": total}


def _fix_scales(raw: Any, tname: str) -> Any:
    """Keep fp16 block scales finite (random bytes can spell inf/NaN): clear the exponent's top bit."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    _, size = GGML_QUANT_SIZES[GGMLQuantizationType[tname]]
    flat = raw.reshape(-1, size)
    offsets = {
        "Q4_0": [0],
        "Q8_0": [0],
        "Q4_K": [0, 2],
        "Q5_K": [0, 2],
        "Q2_K": [size - 4, size - 2],
        "Q3_K": [size - 2],
        "Q6_K": [size - 2],
    }[tname]
    for off in offsets:
        flat[:, off + 1] &= 0x3B
    return raw
