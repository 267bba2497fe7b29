"""A checkpoint's own quantization_config prices its weights as stored: the config-only estimate of FP8 block-128,
compressed-tensors INT4 pack-quantized (experts only) and MXFP4 (experts only) checkpoints is within 3 % of the tensor
bytes of real safetensors files laid out like the published ones (written here, byte for byte, with the dtypes and
shapes of DeepSeek-V3 / Kimi-K2.5 / gpt-oss tensors); --quant and --dtype still override."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from vram.dtypes import stored_scheme
from vram.inference import estimate
from vram.model import model_from_config
from vram.request import Workload
from vram.sources import resolve_local_weights

BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1, "I32": 4}
H, FF, V, E = 256, 512, 512, 4  # hidden, intermediate, vocab, experts


def write_safetensors(folder: Path, config: dict[str, Any], tensors: dict[str, tuple[str, tuple[int, ...]]]) -> int:
    """A real safetensors file (zeros) with these dtypes and shapes; returns its tensor bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    header: dict[str, Any] = {}
    off = 0
    for name, (dtype, shape) in sorted(tensors.items()):
        n = math.prod(shape) * BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes(off))
    return off


Tensors = dict[str, tuple[str, tuple[int, ...]]]


def _embeddings() -> Tensors:
    return {
        "model.embed_tokens.weight": ("BF16", (V, H)),
        "lm_head.weight": ("BF16", (V, H)),
        "model.norm.weight": ("BF16", (H,)),
    }


def _fp8(t: dict[str, tuple[str, tuple[int, ...]]], name: str, out: int, inp: int) -> None:
    t[f"{name}.weight"] = ("F8_E4M3", (out, inp))
    t[f"{name}.weight_scale_inv"] = ("F32", (-(-out // 128), -(-inp // 128)))


LLAMA_FP8 = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": H,
    "intermediate_size": FF,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": V,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
    },
}


def _llama_fp8_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    t = _embeddings()
    for i in range(2):
        p = f"model.layers.{i}."
        for name, out, inp in (
            ("self_attn.q_proj", H, H),
            ("self_attn.k_proj", H // 2, H),
            ("self_attn.v_proj", H // 2, H),
            ("self_attn.o_proj", H, H),
            ("mlp.gate_proj", FF, H),
            ("mlp.up_proj", FF, H),
            ("mlp.down_proj", H, FF),
        ):
            _fp8(t, p + name, out, inp)
        t[p + "input_layernorm.weight"] = ("BF16", (H,))
        t[p + "post_attention_layernorm.weight"] = ("BF16", (H,))
    return t


QWEN_MOE_INT4 = {
    "model_type": "qwen3_moe",
    "architectures": ["Qwen3MoeForCausalLM"],
    "hidden_size": H,
    "intermediate_size": FF,
    "moe_intermediate_size": FF,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "num_experts": E,
    "num_experts_per_tok": 2,
    "vocab_size": V,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32},
            }
        },
        "ignore": ["lm_head", "re:.*self_attn.*", "re:.*mlp.gate$"],
    },
}


def _qwen_moe_int4_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    """Kimi-K2.5's layout: routed experts pack-quantized (int32 words of eight 4-bit values, a bf16 scale per 32,
    the original shape), attention / router / embeddings in bf16."""
    t = _embeddings()
    for i in range(2):
        p = f"model.layers.{i}."
        for name, out, inp in (
            ("self_attn.q_proj", 256, H),
            ("self_attn.k_proj", 128, H),
            ("self_attn.v_proj", 128, H),
            ("self_attn.o_proj", H, 256),
        ):
            t[p + name + ".weight"] = ("BF16", (out, inp))
        t[p + "self_attn.q_norm.weight"] = ("BF16", (64,))
        t[p + "self_attn.k_norm.weight"] = ("BF16", (64,))
        t[p + "mlp.gate.weight"] = ("BF16", (E, H))
        for e in range(E):
            for name, out, inp in (("gate_proj", FF, H), ("up_proj", FF, H), ("down_proj", H, FF)):
                q = f"{p}mlp.experts.{e}.{name}."
                t[q + "weight_packed"] = ("I32", (out, inp // 8))
                t[q + "weight_scale"] = ("BF16", (out, inp // 32))
                t[q + "weight_shape"] = ("I32", (2,))
        t[p + "input_layernorm.weight"] = ("BF16", (H,))
        t[p + "post_attention_layernorm.weight"] = ("BF16", (H,))
    return t


GPT_OSS = {
    "model_type": "gpt_oss",
    "architectures": ["GptOssForCausalLM"],
    "hidden_size": H,
    "intermediate_size": H,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "num_local_experts": E,
    "num_experts_per_tok": 2,
    "vocab_size": V,
    "sliding_window": 128,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    },
}


def _gpt_oss_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    """gpt-oss's layout: expert matrices as *_blocks (16 bytes = 32 e2m1 values per block) and *_scales (one byte
    per block), expert biases and everything else bf16."""
    t = _embeddings()
    for i in range(2):
        p = f"model.layers.{i}."
        for name, out, inp in (("q_proj", 256, H), ("k_proj", 128, H), ("v_proj", 128, H), ("o_proj", H, 256)):
            t[f"{p}self_attn.{name}.weight"] = ("BF16", (out, inp))
            t[f"{p}self_attn.{name}.bias"] = ("BF16", (out,))
        t[p + "self_attn.sinks"] = ("BF16", (4,))
        t[p + "mlp.router.weight"] = ("BF16", (E, H))
        t[p + "mlp.router.bias"] = ("BF16", (E,))
        t[p + "mlp.experts.gate_up_proj_blocks"] = ("U8", (E, 2 * H, H // 32, 16))
        t[p + "mlp.experts.gate_up_proj_scales"] = ("U8", (E, 2 * H, H // 32))
        t[p + "mlp.experts.gate_up_proj_bias"] = ("BF16", (E, 2 * H))
        t[p + "mlp.experts.down_proj_blocks"] = ("U8", (E, H, H // 32, 16))
        t[p + "mlp.experts.down_proj_scales"] = ("U8", (E, H, H // 32))
        t[p + "mlp.experts.down_proj_bias"] = ("BF16", (E, H))
        t[p + "input_layernorm.weight"] = ("BF16", (H,))
        t[p + "post_attention_layernorm.weight"] = ("BF16", (H,))
    return t


CASES = {
    "fp8-block128": (LLAMA_FP8, _llama_fp8_tensors),
    "ct-int4-g32-experts": (QWEN_MOE_INT4, _qwen_moe_int4_tensors),
    "mxfp4-experts": (GPT_OSS, _gpt_oss_tensors),
}


@pytest.mark.parametrize("scheme", list(CASES))
def test_config_alone_prices_the_checkpoint_as_stored(tmp_path: Path, scheme: str) -> None:
    config, tensors = CASES[scheme]
    stored = write_safetensors(tmp_path / scheme, config, tensors())
    spec = model_from_config(config)
    assert spec.stored_scheme is not None and spec.stored_scheme.name == scheme
    from_config = estimate(spec, Workload()).weights_bytes
    assert abs(from_config - stored) / stored < 0.03, (from_config, stored)
    # the folder itself: parameters and bytes straight from the headers
    rm = resolve_local_weights(tmp_path / scheme)
    assert rm.weights_override_bytes == stored
    # --quant / --dtype still override the stored format
    assert estimate(spec, Workload(quant="bf16")).weights_bytes > 1.4 * from_config
    assert estimate(spec, Workload(dtype="fp32")).weights_bytes > 2.5 * from_config


def test_quantization_configs_of_published_checkpoints() -> None:
    """Bits per weight of the formats the published configs declare."""
    ds = stored_scheme({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]})
    assert ds is not None and ds.linear_bits == 8 + 32 / 16384 and ds.expert_bits is None
    kimi = stored_scheme(QWEN_MOE_INT4["quantization_config"], is_moe=True)
    assert kimi is not None and kimi.linear_bits == 16 and kimi.expert_bits == 4 + 16 / 32
    oss = stored_scheme(GPT_OSS["quantization_config"], is_moe=True)
    assert oss is not None and oss.expert_bits == 4.25 and oss.linear_bits == 16
    awq = stored_scheme({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True})
    assert awq is not None and awq.name == "awq-4bit-g128"
    gptq = stored_scheme({"quant_method": "gptq", "bits": 8, "group_size": 32})
    assert gptq is not None and gptq.linear_bits == 8 + 24 / 32
    assert stored_scheme({"quant_method": "some-new-format"}) is None
    assert stored_scheme("fp8") is None


def test_deepseek_v3_as_stored_with_its_mtp_layer_said_apart() -> None:
    """DeepSeek-V3's FP8 checkpoint: 671.0B parameters priced at 8 + 1/512 bits, and the 13.5B MTP layer (with
    its embedding and head copies) named in the weights line, not loaded."""
    e = estimate("deepseek-v3", Workload(context=4096))
    w = e.component("weights")
    assert w is not None and "fp8-block128" in w.explanation
    assert "13,463,426,048 multi-token-prediction" in w.explanation
    assert 660e9 < e.weights_bytes < 690e9
