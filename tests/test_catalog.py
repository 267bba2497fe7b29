"""The built-in catalogs: every data file loads, names resolve, and every model's parameter count is exact.

Decoder-only LLMs: the `params` in each file came from an independent count (transformers, meta-device
instantiation, recorded with the file); ModelSpec must reproduce it to the unit from the config alone.
Other kinds (speech, vision-language, embedding, diffusion): their `params` must equal the count that
tools/make_arch_fixtures.py made with transformers / diffusers from the same config (tests/data/arch/
_catalog_counts.json), and what vram resolves for the entry.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from vram.catalog import (
    all_gpus,
    all_models,
    find_gpu,
    find_model,
    gpu_ids,
    load_gpu_entry,
    load_model_entry,
    model_ids,
    search_gpus,
    search_models,
)
from vram.errors import UnknownGpu, UnknownModel
from vram.model import model_from_config
from vram.resolver import resolve_model

DATA = Path(str(resources.files("vram.catalog").joinpath("data")))
MODEL_FILES = sorted((DATA / "models").glob("*.json"))
# decoder-only language models; other kinds (diffusion, speech, vlm, embedding) are checked in test_families.py
LLM_FILES = [p for p in MODEL_FILES if json.loads(p.read_text(encoding="utf-8")).get("kind", "llm") == "llm"]
GPU_FILES = sorted((DATA / "gpus").glob("*.json"))
INDEPENDENT_COUNTS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "arch" / "_catalog_counts.json").read_text()
)["counts"]
KINDS = {"llm", "vlm", "speech", "embedding", "diffusion"}


def _raw(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _norm(s: str) -> str:
    return re.sub(r"[\s_]+", "-", s.strip().lower())


def test_catalog_sizes() -> None:
    assert len(MODEL_FILES) >= 60
    assert len(GPU_FILES) >= 40
    assert model_ids() == sorted(p.stem for p in MODEL_FILES)
    assert gpu_ids() == sorted(p.stem for p in GPU_FILES)


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_model_file_loads(path: Path) -> None:
    raw = _raw(path)
    entry = load_model_entry(path.name)
    assert entry.id == raw["id"] == path.stem
    assert entry.name and entry.family and entry.license
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry.hf_repo), entry.hf_repo
    assert isinstance(entry.config, dict)
    if entry.kind == "llm":
        assert isinstance(entry.context_length, int) and entry.context_length >= 2048
        assert entry.config.get("model_type")


@pytest.mark.parametrize("path", LLM_FILES, ids=[p.stem for p in LLM_FILES])
def test_model_params_exact(path: Path) -> None:
    raw = _raw(path)
    assert isinstance(raw["params"], int) and raw["params"] > 0
    if raw.get("kind", "llm") != "llm":
        assert INDEPENDENT_COUNTS[raw["id"]]["params"] == raw["params"]
        assert resolve_model(raw["id"]).spec.params == raw["params"]
        return
    assert "transformers" in raw.get("params_source", ""), "params must come from an independent count"
    spec = model_from_config(raw["config"], name=raw["id"])
    assert spec.params == raw["params"]
    if "text_params" in raw:  # multimodal checkpoints: the language model alone
        assert spec.text_params == raw["text_params"]
    assert 0 < spec.active_params <= spec.params
    assert spec.is_moe == (spec.active_params < spec.params)


def test_published_sizes_match_names() -> None:
    """The parameter count is near the size in the model's name (e.g. '8B'): catches a config filed under the wrong
    model. Names round freely (Falcon3 1B has 1.67B parameters), so the band is wide."""
    checked = 0
    for entry in all_models():
        m = re.search(r"(?<![\w.])(\d+(?:\.\d+)?)([BM])(?![\w])", entry.name)
        if not m or "x" in entry.name.lower().split(m.group(0))[0][-2:]:
            continue
        stated = float(m.group(1)) * (1e9 if m.group(2) == "B" else 1e6)
        assert entry.params is not None
        assert 0.6 * stated <= entry.params <= 1.75 * stated, (entry.id, entry.params)
        checked += 1
    assert checked >= 40


def test_independent_counts_are_for_catalog_entries() -> None:
    ids = {p.stem for p in MODEL_FILES}
    assert set(INDEPENDENT_COUNTS) <= ids
    assert len(INDEPENDENT_COUNTS) >= 10


def test_published_params_text_agrees() -> None:
    """Where a file quotes the publisher's rounded size ("39M", "8.29B"), the exact count rounds to it."""
    checked = 0
    for p in MODEL_FILES:
        raw = _raw(p)
        m = re.match(r"(\d+(?:\.\d+)?)\s*([MB])\b", raw.get("published_params_text") or "")
        if not m:
            continue
        stated = float(m.group(1)) * (1e9 if m.group(2) == "B" else 1e6)
        assert 0.85 * stated <= raw["params"] <= 1.15 * stated, (raw["id"], raw["published_params_text"])
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("path", GPU_FILES, ids=[p.stem for p in GPU_FILES])
def test_gpu_file_loads(path: Path) -> None:
    raw = _raw(path)
    g = load_gpu_entry(path.name)
    assert g.id == raw["id"] == path.stem
    assert g.name and g.vendor in {"nvidia", "amd", "apple", "intel"}
    assert g.memory_bytes > 0 and g.usable_memory_bytes > 0
    assert g.usable_memory_bytes <= g.memory_bytes
    assert g.bandwidth_gb_per_s > 0
    assert g.memory_gb > 0
    # memory_gb is the marketed size; memory_bytes its exact value in decimal or binary units
    assert (
        min(abs(g.memory_bytes - g.memory_gb * 1e9), abs(g.memory_bytes - g.memory_gb * 2**30)) <= 0.02 * g.memory_bytes
    ), (g.id, g.memory_gb, g.memory_bytes)
    for k in ("fp16_tflops", "fp8_tflops", "int8_tops", "tdp_watts", "price_per_hour_usd"):
        v = getattr(g, k)
        assert v is None or v > 0, k


@pytest.mark.parametrize("kind,files", [("models", MODEL_FILES), ("gpus", GPU_FILES)])
def test_names_unique_across_files(kind: str, files: list[Path]) -> None:
    owner: dict[str, str] = {}
    for p in files:
        raw = _raw(p)
        names = [raw["id"], raw.get("hf_repo", ""), *raw.get("aliases", [])]
        for name in {_norm(n) for n in names if n}:
            assert name not in owner, f"{kind}: {name!r} in both {owner.get(name)} and {p.name}"
            owner[name] = p.name


def test_every_model_name_resolves_to_its_own_file() -> None:
    for p in MODEL_FILES:
        raw = _raw(p)
        for name in [raw["id"], raw["hf_repo"], *raw.get("aliases", [])]:
            assert find_model(name).id == raw["id"], name
            assert find_model(name.upper()).id == raw["id"], name


def test_every_gpu_name_resolves_to_its_own_file() -> None:
    for p in GPU_FILES:
        raw = _raw(p)
        for name in [raw["id"], *raw.get("aliases", [])]:
            assert find_gpu(name).id == raw["id"], name
            assert find_gpu(name.upper()).id == raw["id"], name


@pytest.mark.parametrize(
    "query,expected",
    [
        ("llama-3.1-8b", "llama-3.1-8b"),
        ("LLAMA-3.1-8B", "llama-3.1-8b"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("meta-llama/llama-3.1-8b-instruct", "llama-3.1-8b"),
        ("  Qwen/Qwen2.5-7B-Instruct ", "qwen2.5-7b"),
        ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
        ("openai/gpt-oss-20b", "gpt-oss-20b"),
    ],
)
def test_lookup_case_insensitive_repo_ids_and_aliases(query: str, expected: str) -> None:
    assert find_model(query).id == expected


@pytest.mark.parametrize(
    "query,expected",
    [
        ("H100", "h100-sxm"),
        ("nvidia h200", "h200"),
        ("RTX 4090", "rtx-4090"),
        ("4090", "rtx-4090"),
        ("mi300x", "mi300x"),
    ],
)
def test_gpu_lookup(query: str, expected: str) -> None:
    assert find_gpu(query).id == expected


@pytest.mark.parametrize(
    "query,close",
    [
        ("llama-3.1-7b", "llama-3.1-8b"),
        ("qwen2.5-8b", "qwen2.5-7b"),
        ("mixtral-8x8b", "mixtral-8x7b"),
        ("gemma-3-28b", "gemma-3-27b"),
    ],
)
def test_unknown_model_suggests_close_names(query: str, close: str) -> None:
    with pytest.raises(UnknownModel) as info:
        find_model(query)
    assert close in info.value.suggestions
    assert query in str(info.value) and close in str(info.value)
    assert info.value.field == "model"


def test_unknown_model_without_anything_close() -> None:
    with pytest.raises(UnknownModel) as info:
        find_model("zzzz-qqqq-0000")
    assert info.value.suggestions == []
    assert "vram models" in str(info.value)


def test_unknown_gpu_suggests() -> None:
    with pytest.raises(UnknownGpu) as info:
        find_gpu("h2000")
    assert "h200" in info.value.suggestions


def test_search() -> None:
    qwen = {m.id for m in search_models("qwen3")}
    assert {"qwen3-8b", "qwen3-30b-a3b", "qwen3-235b-a22b"} <= qwen
    assert {m.id for m in search_models("QWEN3")} == qwen
    assert not any(i.startswith(("llama", "qwen2")) for i in qwen)
    assert len(search_models("")) == len(MODEL_FILES)
    assert search_models("no-such-model-anywhere") == []
    amd = search_gpus("amd")
    assert amd and all(g.vendor == "amd" for g in amd)
    assert len(all_gpus()) == len(GPU_FILES)


def test_summaries_are_json_serializable() -> None:
    for m in all_models():
        json.dumps(m.summary())
    for g in all_gpus():
        json.dumps(g.summary())


def test_release_months_are_well_formed_and_order_each_family() -> None:
    """`released` is YYYY-MM (measurements/release_dates.md); `vram models` lists a family by release, then size:
    Qwen3.5 397B (2026-02) before Qwen3.6 27B (2026-04) although it is larger; undated entries come last."""
    from vram.catalog import catalog_order

    entries = all_models()
    dated = [e for e in entries if e.released]
    assert len(dated) >= len(entries) - 2
    for e in dated:
        assert e.released is not None and re.fullmatch(r"20[0-9]{2}-(0[1-9]|1[0-2])", e.released), e.id
    order = [e.id for e in sorted(entries, key=catalog_order)]
    assert order.index("qwen3.5-397b-a17b") < order.index("qwen3.6-27b")
    kimi = [i for i in order if i.startswith("kimi")]
    assert kimi[0] == "kimi-k2-instruct" and kimi[-1] == "kimi-k2.7-code"
