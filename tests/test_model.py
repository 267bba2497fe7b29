"""ModelSpec from config.json: key spellings old and new, errors that name what is wrong, and the invariants every
catalog model satisfies. Exact counts per architecture are in test_arch_families.py and test_catalog.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vram.catalog import all_models, find_model
from vram.errors import ConfigError, UnsupportedArchitecture
from vram.model import load_config_file, model_from_config, supported_model_types

ARCH = Path(__file__).parent / "data" / "arch"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ARCH / f"{name}.json").read_text())
    return data


# --- key spellings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dtype", "torch_dtype"])
def test_dtype_key_spellings(key: str) -> None:
    cfg = {**fixture("llama_gqa")["config"], key: "float16"}
    assert model_from_config(cfg).torch_dtype == "float16"
    cfg = {**fixture("llama_gqa")["config"], key: "torch.float32"}
    assert model_from_config(cfg).torch_dtype == "float32"


def test_rope_parameters_and_rope_theta_describe_the_same_model() -> None:
    base = fixture("qwen3")["config"]
    old = model_from_config({**base, "rope_theta": 1_000_000.0})
    new = model_from_config({**base, "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0}})
    assert old.params == new.params == fixture("qwen3")["params"]
    assert old.rope_dim == new.rope_dim == 24


@pytest.mark.parametrize(
    "name,old,new",
    [
        ("qwen2_moe", "num_experts", "num_local_experts"),
        ("qwen2_moe_sparse_step", "num_experts", "num_local_experts"),
        ("qwen3_moe_128_experts", "num_experts", "num_local_experts"),
    ],
)
def test_expert_count_key_spellings(name: str, old: str, new: str) -> None:
    fx = fixture(name)
    cfg = dict(fx["config"])
    cfg[new] = cfg.pop(old)
    assert model_from_config(cfg).params == fx["params"]


def test_deepseek_routed_experts_key() -> None:
    fx = fixture("deepseek_v3")
    spec = model_from_config(fx["config"])
    moe = [layer.mlp for layer in spec.layers if layer.mlp and layer.mlp.kind == "moe"]
    assert moe and all(m.num_experts == fx["config"]["n_routed_experts"] for m in moe)
    assert all(m.shared_intermediate_size == fx["config"]["moe_intermediate_size"] for m in moe)


def test_kv_heads_default_to_heads() -> None:
    base = {k: v for k, v in fixture("llama_mha_default_kv")["config"].items()}
    assert "num_key_value_heads" not in base
    for cfg in (base, {**base, "num_key_value_heads": None}, {**base, "num_key_value_heads": 4}):
        spec = model_from_config(cfg)
        assert all(layer.attention and layer.attention.num_kv_heads == 4 for layer in spec.layers)
        assert spec.params == fixture("llama_mha_default_kv")["params"]


def test_explicit_head_dim_wins_over_hidden_over_heads() -> None:
    """Mistral Nemo: hidden 5120, 32 heads, head_dim 128 (not 160)."""
    spec = model_from_config(find_model("mistral-nemo-12b").config)
    a = spec.layers[0].attention
    assert a is not None and a.head_dim == 128 and 5120 // a.num_heads == 160
    assert a.q_width == 32 * 128 and a.kv_width == 8 * 128


def test_multimodal_config_reads_text_config() -> None:
    """Gemma 3 4B ships a config with text_config and vision_config: the language model comes from text_config."""
    entry = find_model("gemma-3-4b")
    spec = model_from_config(entry.config)
    assert spec.model_type == "gemma3_text"
    assert spec.hidden_size == entry.config["text_config"]["hidden_size"]
    assert spec.extra_params > 0 and spec.text_params == entry.data["text_params"]


# --- errors ---------------------------------------------------------------------------------------------------


def test_unsupported_architecture_is_named_with_the_supported_list() -> None:
    with pytest.raises(UnsupportedArchitecture) as info:
        model_from_config({"model_type": "gpt2", "n_embd": 768})
    msg = str(info.value)
    assert "'gpt2'" in msg
    for mt in ("llama", "deepseek_v3", "lfm2"):
        assert mt in msg
    assert info.value.field == "model"


@pytest.mark.parametrize(
    "cfg,field",
    [
        ({"hidden_size": 64}, "model_type"),
        ({"model_type": "llama", "hidden_size": "wide"}, "hidden_size"),
        ({"model_type": "llama", "num_hidden_layers": -2}, "num_hidden_layers"),
        ({"model_type": "llama", "intermediate_size": 1.5}, "intermediate_size"),
        ({"model_type": "deepseek_v3", "kv_lora_rank": "x"}, "kv_lora_rank"),
    ],
)
def test_config_errors_name_the_field(cfg: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        model_from_config(cfg)
    assert field in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError):
        model_from_config([1, 2])  # type: ignore[arg-type]


def test_load_config_file(tmp_path: Path) -> None:
    cfg = fixture("llama_gqa")["config"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert load_config_file(tmp_path) == cfg
    assert load_config_file(tmp_path / "config.json") == cfg
    with pytest.raises(ConfigError, match="no such file"):
        load_config_file(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(tmp_path / "bad.json")


# --- invariants over the whole catalog ------------------------------------------------------------------------


def test_every_catalog_llm_is_a_supported_type_and_adds_up() -> None:
    supported = set(supported_model_types())
    n = 0
    for entry in all_models():
        if entry.kind != "llm":
            continue
        spec = model_from_config(entry.config, name=entry.id)
        assert spec.model_type in supported
        assert spec.params == (
            spec.embed_params
            + spec.head_params
            + spec.final_params
            + spec.extra_params
            + sum(layer.params for layer in spec.layers)
        )
        for layer in spec.layers:
            assert layer.params == layer.linear_params + layer.small_params + layer.router_params
            assert 0 <= layer.expert_params <= layer.params
            # a token mixer, or (Nemotron-H) a layer that is only an MLP / MoE block
            assert layer.attention is not None or layer.mixer is not None or layer.mlp is not None
        assert (spec.head_params == 0) == spec.tie_word_embeddings or entry.config.get("lm_head_bias")
        tc = entry.config.get("text_config", entry.config)
        per_layer = (
            tc.get("vocab_size_per_layer_input", 0) * tc.get("hidden_size_per_layer_input", 0) * spec.num_layers
        )  # Gemma 3n / 4 per-layer embeddings
        assert spec.embed_params == spec.vocab_size * spec.hidden_size + per_layer
        assert spec.num_layers == len(spec.layers) > 0
        assert 0 < spec.active_params <= spec.params
        assert spec.is_moe == any(layer.mlp is not None and layer.mlp.kind == "moe" for layer in spec.layers)
        n += 1
    assert n >= 60


def test_moe_catalog_active_params_match_published() -> None:
    """Publishers state active parameters for MoE models; the count must round to them. OpenAI's gpt-oss figures
    (model card: 3.61B and 5.13B) leave out the input embedding, a lookup rather than a matmul."""
    published = {
        "mixtral-8x7b": (12.9e9, False),
        "qwen3-30b-a3b": (3.3e9, False),
        "qwen3-235b-a22b": (22e9, False),
        "deepseek-v3": (37e9, False),
        "gpt-oss-20b": (3.61e9, True),
        "gpt-oss-120b": (5.13e9, True),
    }
    for model, (active, without_input_embedding) in published.items():
        spec = model_from_config(find_model(model).config)
        got = spec.active_params - (spec.embed_params if without_input_embedding else 0)
        assert got == pytest.approx(active, rel=0.06), model


# --- quantization stated beside config.json -----------------------------------------------------------------------


def test_a_modelopt_export_states_its_quantization_in_hf_quant_config(tmp_path: Path) -> None:
    """NVIDIA's ModelOpt exports (NVFP4 / FP8 releases) ship config.json without a quantization_config and say
    {"quantization": {"quant_algo": "NVFP4", ...}} in hf_quant_config.json beside it, which vLLM reads: so does
    vram, for a folder and for the catalog's copies of such releases; a config's own quantization_config wins."""
    from vram.resolver import resolve_model

    cfg = fixture("llama_gqa")["config"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    bf16 = resolve_model(str(tmp_path)).spec
    assert bf16.stored_scheme is None
    quant = {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "group_size": 16}}
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(quant))
    loaded = load_config_file(tmp_path)
    assert loaded["quantization_config"] == {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}
    nvfp4 = model_from_config(loaded).stored_scheme
    assert nvfp4 is not None and nvfp4.name == "nvfp4" and nvfp4.linear_bits == 4.5
    own = {**cfg, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    (tmp_path / "config.json").write_text(json.dumps(own))
    kept = model_from_config(load_config_file(tmp_path)).stored_scheme
    assert kept is not None and kept.name == "fp8-block128"
    (tmp_path / "hf_quant_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"hf_quant_config\.json: cannot read"):
        load_config_file(tmp_path)
    # the catalog's NVIDIA NVFP4 releases whose config.json has no quantization_config: sized as stored
    for model_id, algo in (("nemotron-3-super-120b-a12b-nvfp4", "NVFP4"), ("qwen3-235b-a22b-nvfp4", "NVFP4")):
        entry = find_model(model_id)
        assert entry.data["hf_quant_config"]["quantization"]["quant_algo"] == algo
        assert "quantization_config" not in entry.data["config"]  # the verbatim copy stays verbatim
        spec = model_from_config(entry.config)
        assert spec.stored_scheme is not None and spec.stored_scheme.name == "nvfp4"


def test_a_modelopt_exclude_list_keeps_the_attention_it_names_in_16_bit() -> None:
    """NVIDIA's DeepSeek NVFP4 exports keep every layer's q_a / q_b / kv_a / kv_b projections (and the V3.2 indexer)
    unquantized, GLM-5's the output projection too; Qwen3-235B's only its routers. The weights count those
    parameters at 16 bits, exactly."""
    from vram.components.weights import weights_bytes
    from vram.records import replace

    schemes = {}
    for model_id in ("deepseek-v3.1-nvfp4", "glm-5-nvfp4", "qwen3-235b-a22b-nvfp4"):
        spec = model_from_config(find_model(model_id).config)
        assert spec.stored_scheme is not None
        schemes[model_id] = (spec, spec.stored_scheme)
    ds_spec, ds = schemes["deepseek-v3.1-nvfp4"]
    assert (ds.attention_bits, ds.attention_o_bits) == (16, None)
    assert (schemes["glm-5-nvfp4"][1].attention_bits, schemes["glm-5-nvfp4"][1].attention_o_bits) == (16, 16)
    assert (
        schemes["qwen3-235b-a22b-nvfp4"][1].attention_bits,
        schemes["qwen3-235b-a22b-nvfp4"][1].attention_o_bits,
    ) == (
        None,
        None,
    )
    # DeepSeek-V3.1: 61 MLA layers, each q_a 7168x1536 + q_b 1536x(128x192) + kv_a 7168x576 + kv_b 512x(128x256)
    per_layer = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256
    assert {la.attention_linear_params - la.attention_o_params for la in ds_spec.layers} == {per_layer}
    assert {la.attention_o_params for la in ds_spec.layers} == {128 * 128 * 7168}
    plain = replace(ds, attention_bits=None)
    extra = weights_bytes(ds_spec, ds).bytes - weights_bytes(ds_spec, plain).bytes
    assert extra == pytest.approx(61 * per_layer * (16 - 4.5) / 8, abs=2)
    # a plain multi-head layer: q, k, v and o
    cfg = fixture("llama_gqa")["config"]
    spec = model_from_config(cfg)
    h, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // heads
    assert {la.attention_linear_params for la in spec.layers} == {2 * h * heads * hd + 2 * h * kv * hd}
