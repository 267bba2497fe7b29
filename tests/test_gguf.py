"""GGUF files written with `gguf`: exact tensor bytes and parameters, architecture keys → ModelSpec, bad files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from vram.cli import main
from vram.errors import SourceError
from vram.inference import estimate
from vram.request import Workload
from vram.sources import resolve_local_weights
from vram.sources.gguf import gguf_weights, read_gguf
from vram.sources.synth import TinyModel, model_tensors, tensor_nbytes, write_gguf

MODELS = {
    "llama-f16": TinyModel(),
    "llama-q8_0": TinyModel(weight_type="Q8_0", embed_type="Q8_0"),
    "qwen2-q4_0-tied": TinyModel(arch="qwen2", tied=True, weight_type="Q4_0"),
    "qwen3-q4_k": TinyModel(arch="qwen3", weight_type="Q4_K", embed_type="Q6_K"),
    "gemma2-swa": TinyModel(arch="gemma2", tied=True, sliding_window=128, n_layer=6),
    "mixtral-moe": TinyModel(n_expert=4, n_expert_used=2, weight_type="Q8_0"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, int]]]:
    d = tmp_path_factory.mktemp("gguf")
    return {name: (d / f"{name}.gguf", write_gguf(d / f"{name}.gguf", m)) for name, m in MODELS.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_exact_params_and_bytes(files: dict[str, tuple[Path, dict[str, int]]], name: str) -> None:
    path, written = files[name]
    m = MODELS[name]
    expect_bytes = sum(tensor_nbytes(shape, t) for _, shape, t in model_tensors(m))
    g = read_gguf(path)
    assert g.metadata["tokenizer.ggml.tokens"] == m.n_vocab  # string arrays keep their item count
    assert g.metadata["tokenizer.ggml.token_type"][:3] == [2, 3, 3]  # numeric arrays their values
    w = gguf_weights(g)
    assert w.params == written["params"]
    assert w.bytes == written["bytes"] == expect_bytes
    assert set(w.layer_bytes) == set(range(m.n_layer))
    rm = resolve_local_weights(path)
    assert rm.spec.params == written["params"]
    assert rm.spec.num_layers == m.n_layer
    est = estimate(str(path), Workload(context=256))
    assert est.weights_bytes == expect_bytes and est.params == written["params"]


def test_architecture_keys_become_the_spec(files: dict[str, tuple[Path, dict[str, int]]]) -> None:
    spec = resolve_local_weights(files["gemma2-swa"][0]).spec
    assert spec.model_type == "gemma2" and spec.tie_word_embeddings
    windows = [la.attention.sliding_window for la in spec.layers if la.attention]
    assert windows == [128, None] * 3
    a = spec.layers[0].attention
    assert a is not None and (a.num_heads, a.num_kv_heads, a.head_dim) == (4, 2, 64)
    assert spec.max_position_embeddings == 4096
    moe = resolve_local_weights(files["mixtral-moe"][0]).spec
    assert moe.model_type == "mixtral" and moe.is_moe
    m = moe.layers[0].mlp
    assert m is not None and (m.num_experts, m.experts_per_token) == (4, 2)
    # exact count: the equivalent config reproduces the tensors' own count without correction
    assert moe.extra_params == 0
    q3 = resolve_local_weights(files["qwen3-q4_k"][0]).spec
    assert q3.model_type == "qwen3" and q3.extra_params == 0


def test_cli_json_weights_equal_tensor_bytes(
    files: dict[str, tuple[Path, dict[str, int]]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, written = files["qwen3-q4_k"]
    assert main(["estimate", str(path), "--json", "--context", "512"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights_bytes"] == written["bytes"]
    assert out["params"] == written["params"]


def _header(n_tensors: int, n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"GGML" + b"\0" * 60, "bad magic"),
        (_header(0, 0)[:10], "corrupt"),  # truncated in the counts
        (_header(2**62, 0), "corrupt"),  # absurd tensor count
        (_header(0, 2**62), "corrupt"),  # absurd key count
        # one key whose string length runs past the end of the file
        (_header(0, 1) + struct.pack("<Q", 4) + b"abcd" + struct.pack("<I", 8) + struct.pack("<Q", 2**60), "corrupt"),
        # an array claiming 2^60 uint8 items
        (_header(0, 1) + struct.pack("<Q", 1) + b"a" + struct.pack("<IIQ", 9, 0, 2**60), "corrupt"),
        # a well-formed file without general.architecture
        (_header(0, 0) + b"\0" * 32, "no general.architecture"),
    ],
)
def test_hostile_gguf(tmp_path: Path, data: bytes, match: str) -> None:
    p = tmp_path / "bad.gguf"
    p.write_bytes(data)
    with pytest.raises(SourceError, match=match):
        read_gguf(p)


def test_truncated_tensor_data(tmp_path: Path, files: dict[str, tuple[Path, dict[str, int]]]) -> None:
    src = files["llama-f16"][0].read_bytes()
    p = tmp_path / "cut.gguf"
    p.write_bytes(src[: len(src) // 2])  # tensor infos intact, data cut: offsets past the end
    with pytest.raises(SourceError, match="past the end"):
        read_gguf(p)


def test_split_gguf(tmp_path: Path) -> None:
    m = TinyModel(weight_type="Q8_0")
    written = write_gguf(tmp_path / "big.gguf", m, split_max_tensors=12)
    parts = sorted(tmp_path.glob("big-*-of-*.gguf"))
    assert len(parts) == 4  # 39 tensors, 12 per split
    for part in (parts[0], parts[2]):  # any split names the whole model
        rm = resolve_local_weights(part)
        assert rm.spec.params == written["params"]
        assert rm.weights_override_bytes == written["bytes"]
        assert rm.spec.name == "big"
    parts[1].unlink()
    with pytest.raises(SourceError, match="missing"):
        resolve_local_weights(parts[0])


def test_huge_sparse_gguf_reads_only_the_header(tmp_path: Path) -> None:
    """A GGUF file with 2 GiB of (sparse) tensor data: metadata and tensor infos come from the memory map without
    touching the data."""
    import tracemalloc

    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter

    p = tmp_path / "huge.gguf"
    w = GGUFWriter(str(p), "llama")
    for k, v in (
        ("block_count", 1),
        ("embedding_length", 65536),
        ("feed_forward_length", 4),
        ("attention.head_count", 1),
        ("context_length", 4096),
    ):
        w.add_uint32(f"llama.{k}", v)
    w.add_tensor_info(
        "token_embd.weight", (8192, 65536), np.dtype(np.float32), 8192 * 65536 * 4, raw_dtype=GGMLQuantizationType.F32
    )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header_end = p.stat().st_size
    with p.open("r+b") as f:
        f.truncate(-(-header_end // 32) * 32 + 8192 * 65536 * 4)
    tracemalloc.start()
    g = read_gguf(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert g.tensors[0].nbytes == 2 * 2**30
    assert peak < 1 << 20


def test_qwen3_next_gguf_keys_give_the_hybrid_layers_and_their_state() -> None:
    """llama.cpp's Qwen3-Next GGUF keys (ssm.* for the gated DeltaNet shapes, full_attention_interval) describe the
    same layers, KV cache and fixed state as the config.json transformers builds from (tests/data/arch)."""
    import json as _json

    from vram.model import model_from_config
    from vram.sources.gguf import config_from_metadata

    fx = _json.loads((Path(__file__).parent / "data" / "arch" / "qwen3_next.json").read_text())
    c = fx["config"]
    a = "qwen3next"
    meta = {
        f"{a}.block_count": c["num_hidden_layers"],
        f"{a}.embedding_length": c["hidden_size"],
        f"{a}.attention.head_count": c["num_attention_heads"],
        f"{a}.attention.head_count_kv": c["num_key_value_heads"],
        f"{a}.attention.key_length": c["head_dim"],
        f"{a}.vocab_size": c["vocab_size"],
        f"{a}.feed_forward_length": c["intermediate_size"],
        f"{a}.expert_count": c["num_experts"],
        f"{a}.expert_used_count": c["num_experts_per_tok"],
        f"{a}.expert_feed_forward_length": c["moe_intermediate_size"],
        f"{a}.expert_shared_feed_forward_length": c["shared_expert_intermediate_size"],
        f"{a}.ssm.conv_kernel": c["linear_conv_kernel_dim"],
        f"{a}.ssm.state_size": c["linear_key_head_dim"],
        f"{a}.ssm.group_count": c["linear_num_key_heads"],
        f"{a}.ssm.time_step_rank": c["linear_num_value_heads"],
        f"{a}.ssm.inner_size": c["linear_value_head_dim"] * c["linear_num_value_heads"],
        f"{a}.full_attention_interval": 4,
    }
    from_gguf = model_from_config(config_from_metadata(meta, a))
    from_hf = model_from_config(c)
    assert [la.attention is None for la in from_gguf.layers] == [la.attention is None for la in from_hf.layers]
    assert [
        la.mixer.state_elems if la.mixer else la.attention.cache_elems_per_token()  # type: ignore[union-attr]
        for la in from_gguf.layers
    ] == [
        h["elems"] // (fx["cache_batch"] * (1 if "Linear" in h["class"] else fx["cache_tokens"]))
        for h in fx["cache_layers"]
    ]
    # the layers themselves (the embedding is tied in metadata without tensors) are the same
    assert sum(la.params for la in from_gguf.layers) == sum(la.params for la in from_hf.layers)
