"""Gemma 3n (issue 14): the text decoder is counted exactly (checked against transformers' count of a small config);
the vision tower (timm MobileNetV5) and the USM audio encoder are not describable from config.json, so an engine
that loads them refuses to estimate, naming what is missing, unless the checkpoint's tensor bytes are known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vram.devices import device_of
from vram.errors import UnsupportedArchitecture, VramError
from vram.fitting import fit
from vram.inference import estimate
from vram.model import model_from_config
from vram.records import replace
from vram.request import TrainWorkload, Workload
from vram.resolver import resolve_model
from vram.training import estimate_training

FIXTURE = json.loads((Path(__file__).parent / "data" / "arch" / "gemma3n_text.json").read_text())
WRAPPED: dict[str, Any] = {
    "model_type": "gemma3n",
    "architectures": ["Gemma3nForConditionalGeneration"],
    "text_config": FIXTURE["config"],
    "vision_config": {"model_type": "gemma3n_vision", "architecture": "mobilenetv5_300m_enc"},
    "audio_config": {"model_type": "gemma3n_audio"},
}


def test_the_text_decoder_alone_is_counted_exactly() -> None:
    spec = model_from_config(FIXTURE["config"])
    assert spec.params == FIXTURE["params"] == 220_388  # transformers' count of Gemma3nForCausalLM
    assert spec.unmodelled == ""
    est = estimate(spec, Workload(context=64))
    assert est.weights_bytes > 2 * FIXTURE["params"]  # bf16 weights + the rotary buffers


@pytest.mark.parametrize("engine", ["transformers", "vllm", "mlx"])
def test_engines_that_load_the_towers_refuse_naming_what_is_missing(engine: str) -> None:
    spec = model_from_config(WRAPPED)
    assert spec.params == FIXTURE["params"]  # the text decoder only: the towers are not counted
    dev = device_of("m4-pro-48gb" if engine == "mlx" else "h100-sxm")
    with pytest.raises(UnsupportedArchitecture) as err:
        estimate(spec, Workload.from_flat(engine=engine, context=64, devices=(dev,)))
    msg = str(err.value)
    assert "'gemma3n'" in msg and "MobileNetV5" in msg and "mobilenetv5_300m_enc" in msg
    assert "USM audio encoder" in msg and f"{engine} loads them" in msg and "--engine llama.cpp" in msg
    assert err.value.field == "model"


def test_training_and_fit_refuse_too() -> None:
    spec = model_from_config(WRAPPED)
    with pytest.raises(UnsupportedArchitecture, match="MobileNetV5"):
        estimate_training(spec, TrainWorkload(seq=64))
    with pytest.raises(VramError, match="MobileNetV5"):
        fit(spec, "rtx-4090", Workload(context=64))


def test_llama_cpp_estimates_the_text_decoder_a_gguf_holds() -> None:
    spec = model_from_config(WRAPPED)
    text = model_from_config(FIXTURE["config"])
    wl = Workload.from_flat(engine="llama.cpp", context=256)
    assert estimate(spec, wl).total_bytes == estimate(text, wl).total_bytes


def test_with_the_checkpoints_tensor_bytes_every_engine_estimates() -> None:
    rm = replace(resolve_model(model_from_config(WRAPPED)), weights_override_bytes=1_234_567)
    est = estimate(rm, Workload(context=64))
    assert est.weights_bytes == 1_234_567
