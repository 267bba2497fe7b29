"""The architecture-traits table (vram.traits): one row per supported model_type, read by builders and estimators."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vram.model import model_from_config, supported_model_types
from vram.traits import DEFAULT, TRAITS, traits_of

SRC = Path(__file__).resolve().parent.parent / "src" / "vram"


def test_every_model_type_a_builder_supports_has_a_traits_row() -> None:
    missing = sorted(set(supported_model_types()) - set(TRAITS))
    assert not missing, f"add rows to vram/traits.py for {missing}"


def test_no_row_for_a_model_type_no_builder_supports() -> None:
    assert set(TRAITS) <= set(supported_model_types())


def test_unknown_model_type_gets_the_default_row() -> None:
    assert traits_of("whisper") is DEFAULT
    assert DEFAULT.norms_per_layer == 2 and DEFAULT.norm_params(64) == 64 and DEFAULT.rope_tables == 1


@pytest.mark.parametrize(
    ("mt", "norms"),
    [
        ("llama", 2 * 64),
        ("gemma3_text", 4 * 64),
        ("olmo2", 2 * 64),
        ("cohere", 64),
        ("phimoe", 4 * 64),
        ("olmo", 0),
        ("phi", 2 * 64),
        ("gpt_neox", 4 * 64),
    ],
)
def test_norm_parameters_per_layer_follow_norm_kind_and_layout(mt: str, norms: int) -> None:
    t = traits_of(mt)
    assert t.norms_per_layer * t.norm_params(64) == norms


def test_qk_norm_width_and_optional_flag() -> None:
    assert traits_of("qwen3").qk_norm_params({}, 8, 2, 16) == 2 * 16
    assert traits_of("olmo2").qk_norm_params({}, 8, 2, 16) == (8 + 2) * 16
    assert traits_of("cohere").qk_norm_params({}, 8, 2, 16) == 0
    assert traits_of("cohere").qk_norm_params({"use_qk_norm": True}, 8, 2, 16) == (8 + 2) * 16
    assert traits_of("llama").qk_norm_params({"use_qk_norm": True}, 8, 2, 16) == 0


def test_estimator_traits_as_transformers_builds_them() -> None:
    assert traits_of("gpt_oss").eager_only and traits_of("gpt_oss").sink_softmax_in_dtype
    assert [mt for mt, t in TRAITS.items() if t.eager_only] == ["gpt_oss"]
    assert traits_of("phi3").fused_qkv and traits_of("phi3").fused_gate_up
    assert traits_of("gpt_neox").fused_qkv and not traits_of("gpt_neox").fused_gate_up
    assert traits_of("gemma3_text").rope_tables == 2
    assert traits_of("deepseek_v3").router_fp32 and not traits_of("mixtral").router_fp32
    assert not traits_of("olmo2").pre_norms and traits_of("olmo2").post_norms and traits_of("gemma2").post_norms


def test_dense_family_ignores_an_expert_count() -> None:
    """A dense family's config that carries num_experts (left from a conversion) builds no experts."""
    cfg = {
        "model_type": "qwen3",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 88,
        "vocab_size": 101,
        "num_experts": 4,
    }
    assert not model_from_config(cfg).is_moe


def _vram_imports(path: Path) -> set[str]:
    """The vram modules a source file imports at module level (relative imports resolved against vram), except
    vram.records, which stands in for the standard library's dataclasses and imports nothing of vram's."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out.add(node.module.split(".")[0])
    return out - {"records"}


def test_traits_and_layers_are_leaves_and_builders_do_not_import_each_other() -> None:
    assert _vram_imports(SRC / "traits.py") == set()
    assert _vram_imports(SRC / "layers.py") <= {"errors"}
    assert "model" not in _vram_imports(SRC / "architectures.py")
    assert "architectures" in _vram_imports(SRC / "model.py")
