"""Every supported architecture and variant against an independent implementation.

tests/data/arch/*.json were written by tools/make_arch_fixtures.py with transformers 5.17.0: the exact parameter
count of the model built on the meta device, and the tensors its DynamicCache holds after a CPU forward pass of
`cache_batch` × `cache_tokens` tokens. vram must reproduce both from the config alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vram.components.kv_cache import layer_kv_bytes, state_bytes
from vram.errors import UnsupportedArchitecture
from vram.model import model_from_config, supported_model_types

ARCH_DIR = Path(__file__).parent / "data" / "arch"
FIXTURES = sorted(p for p in ARCH_DIR.glob("*.json") if not p.name.startswith("_"))  # _*: other records


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(params=FIXTURES, ids=[p.stem for p in FIXTURES])
def fixture(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def test_fixtures_cover_every_supported_family() -> None:
    """A family added to vram.model needs variants in tools/make_arch_fixtures.py (and their fixtures)."""
    configs = [_load(p)["config"] for p in FIXTURES]
    covered = {c["model_type"] for c in configs} | {
        c["text_config"]["model_type"] for c in configs if isinstance(c.get("text_config"), dict)
    }
    assert set(supported_model_types()) <= covered


def test_fixture_files_are_well_formed() -> None:
    assert len(FIXTURES) >= 30
    for p in FIXTURES:
        d = _load(p)
        assert set(d) >= {"config", "params", "source", "cache_layers", "cache_batch", "cache_tokens"}, p.name
        assert "transformers" in d["source"] and "meta-device" in d["source"], p.name
        assert len(d["cache_layers"]) == d["config"]["num_hidden_layers"], p.name


def test_params_exact(fixture: dict[str, Any]) -> None:
    spec = model_from_config(fixture["config"])
    assert spec.params == fixture["params"]
    assert spec.num_layers == fixture["config"]["num_hidden_layers"]


def test_cache_elements_per_token_match_dynamic_cache(fixture: dict[str, Any]) -> None:
    """Each layer of the cache holds batch × tokens × cache_elems_per_token (attention) or batch × state (conv)."""
    spec = model_from_config(fixture["config"])
    batch, tokens = fixture["cache_batch"], fixture["cache_tokens"]
    for i, (layer, held) in enumerate(zip(spec.layers, fixture["cache_layers"], strict=True)):
        # attention layers hold batch × tokens × per-token elements, state mixers a fixed state per sequence;
        # Falcon-H1 layers hold both, Nemotron-H MLP layers neither
        kv = batch * tokens * layer.attention.cache_elems_per_token() if layer.attention is not None else 0
        state = batch * layer.mixer.state_elems if layer.mixer is not None else 0
        assert kv + state == held["elems"], f"layer {i}"
        # one element per byte: the component's byte count is the same product
        assert layer_kv_bytes(layer, batch, tokens, 1) == kv, f"layer {i}"
        if layer.attention is None and layer.mixer is None:
            assert layer.mlp is not None and held["elems"] == 0, f"layer {i} mixes no tokens but holds a cache"
    conv_elems = sum(
        h["elems"] - layer_kv_bytes(layer, batch, tokens, 1)
        for layer, h in zip(spec.layers, fixture["cache_layers"], strict=True)
        if layer.mixer is not None
    )
    assert state_bytes(spec, batch, 1) == conv_elems


def test_sliding_window_layers_are_those_transformers_slides(fixture: dict[str, Any]) -> None:
    spec = model_from_config(fixture["config"])
    sliding = [
        layer.attention is not None
        and layer.attention.sliding_window is not None
        and layer.attention.shares_kv_of is None
        for layer in spec.layers
    ]
    expected = [h["class"] == "DynamicSlidingWindowLayer" for h in fixture["cache_layers"]]
    assert sliding == expected
    # layers that reuse another layer's cache (Gemma 3n / 4) or mix no tokens (Nemotron-H MLP layers) hold a
    # placeholder in transformers' cache
    empty = [
        (layer.attention is not None and layer.attention.shares_kv_of is not None)
        or (layer.attention is None and layer.mixer is None)
        for layer in spec.layers
    ]
    assert empty == [h["class"] == "DummyLayer" for h in fixture["cache_layers"]]
    for layer in spec.layers:
        if layer.attention is not None and layer.attention.sliding_window is not None:
            text = fixture["config"].get("text_config", fixture["config"])
            window = text.get("attention_chunk_size") or text["sliding_window"]
            assert layer.attention.sliding_window == window  # Llama 4's chunks are kept like a window


def _moe_layers(cfg: dict[str, Any]) -> list[int]:
    """Indices of the layers whose MLP is a routed mixture of experts, from the config's own rules."""
    n = cfg["num_hidden_layers"]
    mt = cfg["model_type"]
    if "mlp_layer_types" in cfg:
        return [i for i, t in enumerate(cfg["mlp_layer_types"][:n]) if t == "sparse"]
    if mt in DEEPSEEK_LIKE or mt in ("glm4_moe", "glm4v_moe_text"):
        return [i for i in range(n) if i >= cfg.get("first_k_dense_replace", 0)]
    if mt == "ernie4_5_moe":
        return [
            i
            for i in range(n)
            if cfg["moe_layer_start_index"] <= i <= cfg["moe_layer_end_index"]
            and (i + 1) % cfg["moe_layer_interval"] == 0
        ]
    if mt == "granitemoehybrid":
        return list(range(n)) if cfg.get("num_local_experts") else []
    if mt == "gemma4_text":
        return list(range(n)) if cfg.get("enable_moe_block") else []
    if mt == "llama4_text":
        step = cfg["interleave_moe_layer_step"]
        return list(range(step - 1, n, step))
    if mt == "nemotron_h":
        return [i for i, c in enumerate(cfg["hybrid_override_pattern"]) if c == "E"]
    if mt in ("qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe_text", "qwen3_vl_moe_text"):
        step = cfg.get("decoder_sparse_step", 1)
        only = set(cfg.get("mlp_only_layers") or [])
        return [i for i in range(n) if i not in only and (i + 1) % step == 0]
    return list(range(n))


def _expert_params(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """(params of one routed expert, experts, experts per token)."""
    h = cfg["hidden_size"]
    mt = cfg["model_type"]
    if mt == "gpt_oss":
        inter = cfg["intermediate_size"]
        # gate_up (h × 2·inter) + its bias (2·inter) + down (inter × h) + its bias (h)
        return 3 * h * inter + 2 * inter + h, cfg["num_local_experts"], cfg["num_experts_per_tok"]
    if mt in DEEPSEEK_LIKE or mt in ("glm4_moe", "glm4v_moe_text"):
        return 3 * h * cfg["moe_intermediate_size"], cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    if mt in ("qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe_text", "qwen3_vl_moe_text"):
        return 3 * h * cfg["moe_intermediate_size"], cfg["num_experts"], cfg["num_experts_per_tok"]
    if mt == "ernie4_5_moe":
        return 3 * h * cfg["moe_intermediate_size"], cfg["moe_num_experts"], cfg["moe_k"]
    if mt == "hunyuan_v1_moe":
        return 3 * h * cfg["intermediate_size"], cfg["num_experts"], cfg["moe_topk"]
    if mt == "granitemoehybrid":
        return 3 * h * cfg["intermediate_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    if mt == "nemotron_h":  # plain (non-gated) experts: up and down
        return 2 * h * cfg["moe_intermediate_size"], cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    if mt == "gemma4_text":
        return 3 * h * cfg["moe_intermediate_size"], cfg["num_experts"], cfg["top_k_experts"]
    if mt == "kimi_linear":
        return 3 * h * cfg["moe_intermediate_size"], cfg["num_experts"], cfg["num_experts_per_token"]
    if mt == "llama4_text":
        return 3 * h * cfg["intermediate_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    if mt == "minimax_m2":
        return 3 * h * cfg["intermediate_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    if mt == "olmoe":
        return 3 * h * cfg["intermediate_size"], cfg["num_experts"], cfg["num_experts_per_tok"]
    return 3 * h * cfg["intermediate_size"], cfg["num_local_experts"], cfg["num_experts_per_tok"]


DEEPSEEK_LIKE = {"deepseek_v2", "deepseek_v3", "kimi_k2", "glm4_moe_lite", "deepseek_v32", "glm_moe_dsa"}
MOE_TYPES = DEEPSEEK_LIKE | {
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "phimoe",
    "gpt_oss",
    "olmoe",
    "glm4_moe",
    "ernie4_5_moe",
    "hunyuan_v1_moe",
    "minimax_m2",
    "qwen3_next",
    "qwen3_5_moe_text",
    "granitemoehybrid",
    "nemotron_h",
    "llama4_text",
    "kimi_linear",
    "gemma4_text",
    "qwen3_vl_moe_text",
    "glm4v_moe_text",
}


def test_active_params_of_moe_follow_the_hand_formula(fixture: dict[str, Any]) -> None:
    spec = model_from_config(fixture["config"])
    cfg = fixture["config"].get("text_config", fixture["config"])  # a multimodal wrapper: its language model
    if cfg["model_type"] not in MOE_TYPES or not _moe_layers(cfg):
        assert not spec.is_moe
        assert spec.active_params == spec.params == fixture["params"]
        return
    per_expert, experts, topk = _expert_params(cfg)
    moe_layers = _moe_layers(cfg)
    assert spec.is_moe
    assert [i for i, layer in enumerate(spec.layers) if layer.mlp and layer.mlp.kind == "moe"] == moe_layers
    inactive = len(moe_layers) * (experts - topk) * per_expert
    assert spec.active_params == fixture["params"] - inactive


def test_multimodal_wrappers_count_the_language_model_and_say_what_is_left_out() -> None:
    """A wrapper whose vision tower vram describes (Qwen3-VL, Qwen3.5, Kimi-K2.5, Gemma 4 with its audio encoder,
    Mistral 3, LFM2-VL, GLM-4.5V: the fixtures above) counts it exactly; one it does not (LLaVA's CLIP tower, Gemma
    3n's MobileNetV5 and audio encoder) counts its text_config's language model and the note names what is left
    out. A text model_type vram does not describe is refused naming it."""
    text = _load(ARCH_DIR / "mistral_no_window.json")
    wrapped = {
        "model_type": "llava",
        "architectures": ["LlavaForConditionalGeneration"],
        "text_config": text["config"],
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32},
    }
    spec = model_from_config(wrapped)
    assert spec.params == text["params"] and spec.extra_params == 0
    assert any("the vision tower not counted" in n for n in spec.notes)
    g3n = model_from_config(
        {
            "model_type": "gemma3n",
            "text_config": _load(ARCH_DIR / "gemma3n_text.json")["config"],
            "vision_config": {"model_type": "gemma3n_vision"},
            "audio_config": {},
        }
    )
    assert any("MobileNetV5" in n and "audio" in n and "not counted" in n for n in g3n.notes)
    for name in ("qwen3_vl", "kimi_k25", "gemma4", "gemma4_audio", "mistral3", "lfm2_vl", "glm4v_moe"):
        vl = model_from_config(_load(ARCH_DIR / f"{name}.json")["config"])
        assert vl.extra_params > 0 and not any("not counted" in n for n in vl.notes), name
    lfm = _load(ARCH_DIR / "lfm2_vl.json")
    hyphen = model_from_config({**lfm["config"], "model_type": "lfm2-vl"})  # LFM2-VL's remote-code spelling
    assert hyphen.params == lfm["params"]
    with pytest.raises(UnsupportedArchitecture, match="glm4v_text"):
        model_from_config({"model_type": "glm4v", "text_config": {"model_type": "glm4v_text"}})
