"""Safetensors headers: exact counts and bytes from real files written with `safetensors`; hostile headers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from vram.errors import ConfigError, SourceError
from vram.inference import estimate
from vram.request import Workload
from vram.sources import resolve_local_weights
from vram.sources.safetensors import MAX_HEADER_BYTES, read_header, read_local_weights

CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
}


def llama_tensors(dtype: type = np.float16) -> dict[str, np.ndarray]:
    h, i, v, kv = 64, 128, 256, 32
    t: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": np.zeros((v, h), dtype),
        "model.norm.weight": np.zeros(h, dtype),
        "lm_head.weight": np.zeros((v, h), dtype),
    }
    for n in range(2):
        p = f"model.layers.{n}."
        t |= {
            p + "self_attn.q_proj.weight": np.zeros((h, h), dtype),
            p + "self_attn.k_proj.weight": np.zeros((kv, h), dtype),
            p + "self_attn.v_proj.weight": np.zeros((kv, h), dtype),
            p + "self_attn.o_proj.weight": np.zeros((h, h), dtype),
            p + "mlp.gate_proj.weight": np.zeros((i, h), dtype),
            p + "mlp.up_proj.weight": np.zeros((i, h), dtype),
            p + "mlp.down_proj.weight": np.zeros((h, i), dtype),
            p + "input_layernorm.weight": np.zeros(h, dtype),
            p + "post_attention_layernorm.weight": np.zeros(h, dtype),
        }
    return t


def write_folder(tmp: Path, tensors: dict[str, np.ndarray], shards: int = 1, config: dict | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "config.json").write_text(json.dumps(config or CONFIG))
    names = sorted(tensors)
    if shards == 1:
        save_file(tensors, str(tmp / "model.safetensors"))
        return tmp
    wm = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        save_file(part, str(tmp / fname))
        wm |= {n: fname for n in part}
    (tmp / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    return tmp


def test_single_file_exact_params_and_bytes(tmp_path: Path) -> None:
    t = llama_tensors()
    folder = write_folder(tmp_path / "m", t)
    params = sum(a.size for a in t.values())
    nbytes = sum(a.nbytes for a in t.values())
    info = read_local_weights(folder / "model.safetensors")
    assert info.params == params == 106_816
    assert info.bytes == nbytes == 213_632
    assert info.bytes_by_dtype == {"F16": nbytes}
    assert info.quant_method is None
    rm = resolve_local_weights(folder)
    assert rm.spec.params == params
    est = estimate(folder.as_posix(), Workload(context=128))
    assert est.params == params and est.weights_bytes == nbytes


def test_sharded_checkpoint_mixed_dtypes(tmp_path: Path) -> None:
    t = llama_tensors()
    t["model.norm.weight"] = np.zeros(64, np.float32)
    t["model.embed_tokens.weight"] = np.zeros((256, 64), np.float32)
    folder = write_folder(tmp_path / "s", t, shards=3)
    info = read_local_weights(folder)
    assert len(info.files) == 3
    assert info.params == sum(a.size for a in t.values())
    assert info.bytes == sum(a.nbytes for a in t.values())
    assert info.bytes_by_dtype["F32"] == 256 * 64 * 4 + 64 * 4
    assert info.layer_bytes[0] == info.layer_bytes[1]
    # a shard named in the index but absent is a clear error
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(SourceError, match="missing"):
        read_local_weights(folder)


def test_gptq_checkpoint_counts_logical_weights(tmp_path: Path) -> None:
    t = {k: v for k, v in llama_tensors().items() if not (".layers." in k and k.endswith("proj.weight"))}
    shapes = {
        "q_proj": (64, 64),
        "k_proj": (64, 32),
        "v_proj": (64, 32),
        "o_proj": (64, 64),
        "gate_proj": (64, 128),
        "up_proj": (64, 128),
        "down_proj": (128, 64),
    }
    for n in range(2):
        for proj, (i, o) in shapes.items():
            sub = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            p = f"model.layers.{n}.{sub}.{proj}."
            t[p + "qweight"] = np.zeros((i // 8, o), np.int32)  # 4-bit: 8 weights per int32 along the input
            t[p + "scales"] = np.zeros((i // 32, o), np.float16)
            t[p + "qzeros"] = np.zeros((i // 32, o // 8), np.int32)
            t[p + "g_idx"] = np.zeros(i, np.int32)
    cfg = {**CONFIG, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32}}
    folder = write_folder(tmp_path / "q", t, config=cfg)
    info = read_local_weights(folder, quant_config=cfg["quantization_config"])
    assert info.quant_method == "gptq" and info.quant_bits == 4 and info.group_size == 32
    assert info.params == 106_816  # same logical count as the fp16 model
    assert info.quantized_params == 2 * sum(i * o for i, o in shapes.values())
    assert set(info.unquantized) == {"embeddings", "lm_head", "norms"}
    assert info.bytes == sum(a.nbytes for a in t.values())
    assert resolve_local_weights(folder).weights_override_bytes == info.bytes


def test_fp8_bnb_and_mxfp4_detection(tmp_path: Path) -> None:
    fp8 = {"a.weight": np.zeros((4, 4), np.uint8), "a.weight_scale": np.zeros(1, np.float32)}
    path = tmp_path / "fp8.safetensors"
    save_file(fp8, str(path))
    # rewrite the dtype of a.weight to F8_E4M3 (numpy has no fp8): same byte size, header-only edit
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8 : 8 + n])
    hdr["a.weight"]["dtype"] = "F8_E4M3"
    new = json.dumps(hdr).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    info = read_local_weights(path)
    assert info.quant_method == "fp8" and info.params == 16
    mx = {
        "e.gate_up_proj_blocks": np.zeros((2, 8, 1, 16), np.uint8),
        "e.gate_up_proj_scales": np.zeros((2, 8, 1), np.uint8),
        "e.norm.weight": np.zeros(8, np.float16),
    }
    save_file(mx, str(tmp_path / "mx.safetensors"))
    info = read_local_weights(tmp_path / "mx.safetensors")
    assert info.quant_method == "mxfp4" and info.params == 2 * 8 * 32 + 8
    bnb = {
        "w.weight": np.zeros((32, 1), np.uint8),
        "w.weight.absmax": np.zeros(1, np.float32),
        "w.weight.quant_map": np.zeros(16, np.float32),
        "w.weight.quant_state.bitsandbytes__nf4": np.zeros(10, np.uint8),
    }
    save_file(bnb, str(tmp_path / "bnb.safetensors"))
    info = read_local_weights(tmp_path / "bnb.safetensors")
    assert info.quant_method == "bnb-nf4" and info.params == 64


def _file_with_header(path: Path, header: bytes, length: int | None = None, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


@pytest.mark.parametrize(
    ("header", "length", "data", "match"),
    [
        (b"", 2**62, b"", "exceeds"),  # absurd length: refused before any allocation
        (b"{}", MAX_HEADER_BYTES + 1, b"", "exceeds"),
        (b'{"a": 1}', 10_000, b"", "truncated"),  # header longer than the file
        (b"{not json", None, b"", "not valid JSON"),
        (b"[1, 2]", None, b"", "JSON object"),
        (b'{"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 1]}}', None, b"x", "unknown dtype"),
        (b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', None, b"xxxx", "invalid shape"),
        (b'{"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 4]}}', None, b"xxxx", "invalid shape"),
        (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', None, b"xxxxxxxx", "needs"),
        (b'{"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}', None, b"xxxx", "past the end"),
        (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', None, b"xxxx", "invalid data_offsets"),
    ],
)
def test_hostile_headers(tmp_path: Path, header: bytes, length: int | None, data: bytes, match: str) -> None:
    p = _file_with_header(tmp_path / "bad.safetensors", header, length, data)
    with pytest.raises(SourceError, match=match):
        read_header(p)


def test_short_file_and_missing_config(tmp_path: Path) -> None:
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(SourceError, match="8-byte"):
        read_header(tmp_path / "tiny.safetensors")
    save_file({"x": np.zeros(2, np.float16)}, str(tmp_path / "ok.safetensors"))
    with pytest.raises(ConfigError, match=r"config\.json"):
        resolve_local_weights(tmp_path / "ok.safetensors")


def test_compressed_tensors_and_nvfp4(tmp_path: Path) -> None:
    ct = {
        "l.weight_packed": np.zeros((64, 128 // 8), np.int32),
        "l.weight_scale": np.zeros((64, 1), np.float16),
        "l.weight_shape": np.array([64, 128], np.int64),
        "embed.weight": np.zeros((10, 128), np.float16),
    }
    save_file(ct, str(tmp_path / "ct.safetensors"))
    qc = {
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 4, "group_size": 128}}},
    }
    info = read_local_weights(tmp_path / "ct.safetensors", quant_config=qc)
    assert info.quant_method == "compressed-tensors" and info.quant_bits == 4 and info.group_size == 128
    assert info.params == 64 * 128 + 10 * 128 and info.quantized_params == 64 * 128
    assert info.unquantized == ("embeddings",)
    nv = {
        "l.weight": np.zeros((64, 64), np.uint8),
        "l.weight_scale": np.zeros((64, 8), np.uint8),
        "l.weight_scale_2": np.zeros(1, np.float32),
        "l.input_scale": np.zeros(1, np.float32),
    }
    save_file(nv, str(tmp_path / "nv.safetensors"))
    info = read_local_weights(tmp_path / "nv.safetensors")
    assert info.quant_method == "nvfp4" and info.params == 64 * 128
    assert info.bytes == sum(a.nbytes for a in nv.values())


def test_bounded_reads_on_a_huge_file(tmp_path: Path) -> None:
    """A 2 GiB (sparse) checkpoint: only the header is read, memory stays small; a header claiming 90 MB in a file
    that is shorter is refused before anything is allocated."""
    import tracemalloc

    n = 1 << 28  # 256 Mi float64 values = 2 GiB of (sparse) data
    header = json.dumps({"w": {"dtype": "F64", "shape": [n], "data_offsets": [0, 8 * n]}}).encode()
    p = tmp_path / "huge.safetensors"
    with p.open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + 8 * n)
    tracemalloc.start()
    h = read_header(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert h.tensors[0].nbytes == 8 * n and h.data_bytes == 8 * n
    assert peak < 1 << 20
    liar = tmp_path / "liar.safetensors"
    liar.write_bytes(struct.pack("<Q", 90_000_000) + b"{}")
    tracemalloc.start()
    with pytest.raises(SourceError, match="truncated"):
        read_header(liar)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_cli_folder_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vram.cli import main

    t = llama_tensors()
    t["model.embed_tokens.weight"] = np.zeros((256, 64), np.float32)
    folder = write_folder(tmp_path / "cli", t, shards=2)
    assert main(["estimate", str(folder), "--json", "--context", "256"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == sum(a.size for a in t.values())
    assert out["weights_bytes"] == sum(a.nbytes for a in t.values())
    assert any("safetensors headers" in a for a in out["assumptions"])
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"\xff" * 16)
    assert main(["estimate", str(folder), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vram: error:") and "\n" not in err and "exceeds" in err
