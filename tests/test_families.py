"""Diffusion, speech, vision-language and embedding models: exact parameter counts and memory breakdowns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vram.catalog import all_models, find_model
from vram.cli import main
from vram.errors import BadInput
from vram.families import KINDS, family_spec
from vram.inference import estimate
from vram.request import ImageOptions, SpeechOptions, VisionOptions, Workload
from vram.resolver import resolve_model

# Published / reference counts, to the unit where the Hub or the module tree gives them.
EXACT = {
    "flux.1-dev": 11_901_408_320,  # FluxTransformer2DModel, the "11.9B" / "12B" of the model card
    "flux.1-schnell": 11_891_178_560,  # same without the guidance embedder
    "whisper-tiny": 37_760_640,
    "whisper-base": 72_593_920,
    "whisper-small": 241_734_912,
    "whisper-medium": 763_857_920,
    "whisper-large-v3": 1_543_490_560,
    "whisper-large-v3-turbo": 808_878_080,
    "qwen2.5-vl-7b": 8_292_166_656,
    "qwen2.5-vl-3b": 3_754_622_976,
    "sdxl-base-1.0": 2_567_463_684,  # UNet2DConditionModel
    "sd3.5-large": 8_056_627_520,
    "sd3.5-large-turbo": 8_056_627_520,  # "8.1B" with the 192² position table
    "sd3.5-medium": 2_243_171_520,  # "2.5B" with the 384² position table (a stored buffer)
    "all-minilm-l6-v2": 22_713_216,
    "bge-large-en-v1.5": 335_141_888,
    "bge-m3": 567_754_752,
}


def family_entries() -> list[str]:
    return [m.id for m in all_models() if m.kind in KINDS]


@pytest.mark.parametrize("model_id", family_entries())
def test_every_family_entry_loads_and_estimates(model_id: str) -> None:
    entry = find_model(model_id)
    spec = family_spec(entry)
    assert spec.params == entry.params, "catalog params must be the computed exact count"
    if model_id in EXACT:
        assert spec.params == EXACT[model_id]
    est = estimate(model_id, Workload(batch=2, context=512))
    assert est.params == entry.params
    assert est.weights_bytes > 0 and est.total_bytes > est.peak_allocated_bytes >= est.weights_bytes
    assert sum(c.bytes for c in est.breakdown) == est.total_bytes
    assert est.assumptions


def test_family_exact_counts_cover_the_catalog() -> None:
    assert set(EXACT) <= set(family_entries())


def test_flux_components_and_resolution(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "black-forest-labs/FLUX.1-dev", "--width", "1024", "--height", "1024", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"] == 11_901_408_320
    comps = d["family"]["components"]
    assert comps == {
        "transformer": 11_901_408_320,
        "text_encoder": 123_060_480,
        "text_encoder_2": 4_762_310_656,
        "vae": 83_819_683,
    }
    assert d["weights_bytes"] == 2 * sum(comps.values())
    assert d["family"]["image_tokens"] == 4096 and d["family"]["text_tokens"] == 512
    names = [c["name"] for c in d["breakdown"]]
    assert names[:2] == ["weights", "activations"] and "cuda_context" in names
    assert any("1024×1024" in a for a in d["assumptions"])
    small = estimate("flux.1-dev", Workload(family=ImageOptions(width=512, height=512)))
    big = estimate("flux.1-dev", Workload(family=ImageOptions(width=2048, height=2048)))
    assert small.activation_bytes < d["activation_bytes"] < big.activation_bytes
    off = estimate("flux.1-dev", Workload(family=ImageOptions(offload_text_encoders=True)))
    assert off.weights_bytes == 2 * (11_901_408_320 + 83_819_683)
    with pytest.raises(BadInput):
        estimate("flux.1-dev", Workload(family=ImageOptions(width=1000)))


def test_whisper_batch_and_beams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "openai/whisper-large-v3", "--batch", "8", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"] == 1_543_490_560
    assert d["weights_bytes"] == 2 * 1_543_490_560
    # cross-attention cache: 2 × 32 decoder layers × 1500 positions × 1280 × 8 windows × 2 bytes
    assert d["family"]["cross_kv_bytes"] == 2 * 32 * 1500 * 1280 * 8 * 2
    assert d["family"]["self_kv_bytes"] == 2 * 32 * 448 * 1280 * 8 * 2
    assert d["kv_cache_bytes"] == d["family"]["cross_kv_bytes"] + d["family"]["self_kv_bytes"]
    assert d["assumptions"]
    beams = estimate("whisper-large-v3", Workload(batch=8, family=SpeechOptions(beams=5)))
    assert beams.kv_cache_bytes == 5 * d["kv_cache_bytes"]
    turbo = estimate("whisper-large-v3-turbo", Workload(batch=8))
    assert turbo.kv_cache_bytes * 8 == d["kv_cache_bytes"]  # 4 decoder layers instead of 32


def test_vlm_image_tokens_by_resolution() -> None:
    rm = resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert rm.spec.extra_params == 676_550_144  # vision tower + merger
    one = estimate("qwen2.5-vl-7b", Workload(context=256, family=VisionOptions(width=448, height=448)))
    assert one.extra["family"]["image_tokens"] == 256  # (448/14)² patches / 4
    two = estimate("qwen2.5-vl-7b", Workload(context=256, family=VisionOptions(width=448, height=448, images=2)))
    text_only = estimate(
        "qwen2.5-vl-7b", Workload(context=256 + 512, family=VisionOptions(width=448, height=448, images=0))
    )
    assert two.kv_cache_bytes == text_only.kv_cache_bytes


def test_embedding_models_have_no_kv_cache() -> None:
    est = estimate("bge-m3", Workload(batch=32, context=8192))
    assert est.kv_cache_bytes == 0 and est.component("kv_cache") is None
    assert est.weights_bytes == 2 * 567_754_752
    capped = estimate("bge-large-en-v1.5", Workload(batch=1, context=100_000))
    assert capped.extra["family"]["tokens"] == 512
    assert estimate("bge-reranker-v2-m3").params == 567_755_777


def test_sd3_and_sdxl_components() -> None:
    from vram.families.diffusion import sd3_transformer_params

    sd3 = estimate("sd3.5-large")
    comps = sd3.extra["family"]["components"]
    assert comps["text_encoder"] == 123_650_304 and comps["text_encoder_2"] == 694_659_840
    assert comps["text_encoder_3"] == 4_762_310_656 and comps["vae"] == 83_819_683
    # the position table (192² × 2432) is stored with the weights
    assert sd3.weights_bytes == 2 * (sum(comps.values()) + 192 * 192 * 2432)
    assert sd3.extra["family"]["text_tokens"] == 77 + 256
    # SD3 medium (the first release: no q/k norm, no dual attention) is the published 2,028,328,000
    medium = find_model("sd3.5-medium").config["components"]["transformer"]
    assert sd3_transformer_params({**medium, "dual_attention_layers": [], "qk_norm": None}) == 2_028_328_000
    xl = estimate("sdxl", Workload(family=ImageOptions(width=1024, height=1024)))
    assert xl.extra["family"]["components"]["vae"] == 83_653_863
    assert xl.extra["family"]["image_tokens"] == 128 * 128
    assert any("float32" in a for a in xl.assumptions)
    turbo = estimate("sd3.5-large-turbo")
    assert turbo.activation_bytes <= sd3.activation_bytes


def test_folders_and_hub_repos_of_family_configs(tmp_path: Path) -> None:
    """A Whisper or BERT-reranker config.json next to safetensors shards (a folder, or a Hub repo through the same
    code) is estimated by the family code, not refused as an unsupported LLM."""
    import numpy as np
    from safetensors.numpy import save_file

    from vram.sources import resolve_local_weights

    whisper = dict(find_model("whisper-tiny").config)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "config.json").write_text(json.dumps(whisper))
    save_file({"model.encoder.conv1.weight": np.zeros((384, 80, 3), np.float16)}, str(tmp_path / "w" / "m.safetensors"))
    rm = resolve_local_weights(tmp_path / "w")
    assert rm.entry is not None and rm.entry.kind == "speech" and rm.spec.params == 37_760_640
    est = estimate(rm, Workload(batch=4))
    assert est.params == 37_760_640 and est.extra["family"]["kind"] == "speech"
    reranker = {
        **find_model("bge-reranker-v2-m3").config,
        "architectures": ["XLMRobertaForSequenceClassification"],
        "id2label": {"0": "LABEL_0"},
    }
    reranker.pop("head")
    reranker.pop("num_labels")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps(reranker))
    save_file({"x": np.zeros(4, np.float16)}, str(tmp_path / "r" / "model.safetensors"))
    rr = resolve_local_weights(tmp_path / "r")
    assert rr.entry is not None and rr.entry.kind == "embedding" and rr.spec.params == 567_755_777


@pytest.mark.parametrize("model_id", ["whisper-large-v3", "flux.1-dev", "bge-m3"])
def test_training_is_refused_in_one_line(model_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", model_id, "--train"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vram: error: unsupported architecture") and "\n" not in err
