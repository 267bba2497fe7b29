"""llama.cpp engine profile: offload split, cache types, padding; and the recorded comparison with llama.cpp."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cli_support import call_cli
from vram import LlamaCppDetails, LlamaCppDevice
from vram.devices import devices_for
from vram.errors import BadInput
from vram.inference import estimate
from vram.records import replace
from vram.request import Workload
from vram.sources import resolve_local_weights
from vram.sources.gguf import GgufWeights
from vram.sources.synth import TinyModel, write_gguf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "measurements" / "llama_cpp" / "results.jsonl"
MIB = 1024**2


def _compare_module():  # the script that produced the recorded numbers (llama_cpp is imported only when it runs)
    spec = importlib.util.spec_from_file_location("llama_cpp_compare", ROOT / "measurements/llama_cpp/compare.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("llama")
    out = {}
    for name, m in _compare_module().MODELS.items():
        out[name] = d / f"{name}.gguf"
        write_gguf(out[name], m)
    return out


def test_recorded_llama_cpp_buffers(model_files: dict[str, Path]) -> None:
    """Every recorded case: KV cache and weights to llama.cpp's printed 0.01 MiB, compute buffer within 5 %."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    assert len(rows) == len(_compare_module().MODELS) * len(_compare_module().CASES)
    errors = []
    resolved = {name: resolve_local_weights(path) for name, path in model_files.items()}
    for r in rows:
        est = estimate(
            resolved[r["model"]],
            Workload.from_flat(
                engine="llama.cpp",
                context=r["n_ctx"],
                n_ubatch=r["n_ubatch"],
                flash_attn=r["fa"],
                cache_type_k=r["k"],
                cache_type_v=r["v"],
                n_gpu_layers=0,
                backend="cpu",
            ),
        )
        lc = est.llama_cpp
        got = r["llama_cpp_mib"]
        assert abs(lc.kv_total_bytes / MIB - got["kv"]) <= 0.011, r
        assert abs(lc.output_buffer_host_bytes / MIB - got["output"]) <= 0.011, r  # logits of one sequence
        if "q4" not in r["model"]:  # CPU_REPACK adds a re-laid-out copy of Q4 weights on the CPU backend only
            assert abs(lc.weights_total_bytes / MIB - got["model"]) <= 0.011, r
        err = lc.compute_bytes / MIB / got["compute"] - 1
        assert abs(err) < 0.05, r
        errors.append(abs(err))
    errors.sort()
    assert errors[len(errors) // 2] < 0.01  # median under 1 %


def test_kv_padding_and_cache_types(tmp_path: Path) -> None:
    p = tmp_path / "m.gguf"
    write_gguf(p, TinyModel())  # 4 layers, 2 kv heads × 64
    kv = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=3000)).kv_cache_bytes
    assert kv == 4 * 3072 * 2 * 128 * 2  # n_ctx 3000 padded to 3072 cells, f16 K and V
    q8 = estimate(
        str(p), Workload.from_flat(engine="llama.cpp", context=3072, cache_type_k="q8_0", cache_type_v="q8_0")
    )
    assert q8.kv_cache_bytes == 4 * 3072 * 2 * (128 // 32 * 34)
    q4 = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=3072, kv_dtype="int4"))
    assert q4.llama_cpp.cache_type_k == "q4_0"
    assert q4.kv_cache_bytes == 4 * 3072 * 2 * (128 // 32 * 18)
    with pytest.raises(BadInput, match="flash attention"):
        estimate(str(p), Workload.from_flat(engine="llama.cpp", cache_type_v="q4_0", flash_attn=False))
    with pytest.raises(BadInput, match="cache type"):
        estimate(str(p), Workload.from_flat(engine="llama.cpp", cache_type_k="q3_k"))


def test_partial_offload(tmp_path: Path) -> None:
    p = tmp_path / "m.gguf"
    write_gguf(p, TinyModel())
    full = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=4096))
    w = full.llama_cpp
    rm_w = full.weights_bytes
    half = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=4096, n_gpu_layers=3))
    none = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=4096, n_gpu_layers=0))
    gw = resolve_local_weights(p).weights_info
    assert isinstance(gw, GgufWeights)
    # all layers + output layer on the GPU; token_embd stays on the CPU
    assert rm_w == gw.bytes - gw.input_bytes == w.weights_total_bytes - w.weights_cpu_bytes
    # -ngl 3: the output layer counts first, then the last two blocks (llama-model.cpp: i_gpu_start = n_layer+1-ngl)
    assert half.weights_bytes == gw.layer_bytes[2] + gw.layer_bytes[3] + gw.output_bytes
    assert half.kv_cache_bytes * 2 == full.kv_cache_bytes
    assert half.llama_cpp.kv_cpu_bytes == half.kv_cache_bytes
    # -ngl 0 on a CUDA build: nothing resident, but op offload still reserves a GPU compute buffer that holds the
    # largest host weight it copies (here the output matrix) beside the logits
    lc = none.llama_cpp
    assert none.weights_bytes == 0 and none.kv_cache_bytes == 0
    assert lc.compute_gpu_bytes >= gw.output_bytes + 512 * 1024 * 4
    cpu = estimate(str(p), Workload.from_flat(engine="llama.cpp", context=4096, n_gpu_layers=0, backend="cpu"))
    assert cpu.total_bytes == 0 and cpu.llama_cpp.compute_host_bytes > 0


def test_tied_output_copies_token_embd(tmp_path: Path) -> None:
    p = tmp_path / "t.gguf"
    write_gguf(p, TinyModel(arch="qwen2", tied=True))
    est = estimate(str(p), Workload.from_flat(engine="llama.cpp"))
    # the output layer reuses token_embd: a second copy on the GPU, so the GPU holds every tensor's bytes
    assert est.weights_bytes == est.llama_cpp.weights_total_bytes


def test_catalog_model_with_gguf_quant() -> None:
    est = estimate("llama-3.1-8b", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=8192))
    lc = est.llama_cpp
    assert lc.n_ctx == 8192
    assert est.kv_cache_bytes == 32 * 8192 * 2 * 1024 * 2  # 1 GiB f16 KV
    # GPU compute buffer with flash attention at 8192 cells: logits 128256 × 512 f32 beside the normed hidden state
    # (the same graph a CUDA build logged as 258.50 MiB at 512 cells: measurements/llama_cpp/logs.jsonl)
    assert est.activation_bytes == 128256 * 512 * 4 + 512 * 4096 * 4
    # llama-quantize's Q4_K_M of Llama 3 8B as CUDA builds log it: CUDA0 4403.49 MiB, CPU_Mapped 281.81 MiB
    assert round(est.weights_bytes / MIB, 2) == 4403.49
    assert round(lc.weights_host_bytes / MIB, 2) == 281.81


LLAMA_CPP_KEYS = [
    "weights_gpu_bytes",
    "weights_host_bytes",
    "kv_gpu_bytes",
    "kv_host_bytes",
    "compute_gpu_bytes",
    "compute_host_bytes",
    "output_host_bytes",
    "n_ctx",
    "n_ctx_seq",
    "kv_streams",
    "n_batch",
    "n_ubatch",
    "n_outputs",
    "cache_type_k",
    "cache_type_v",
    "backend",
    "n_gpu_layers",
    "blocks_on_gpu",
    "output_on_gpu",
    "n_cpu_moe",
    "swa_cells",
    "devices",
    "layer_devices",
    "tensor_split",
    "tensor_split_used",
    "file_type",
    "weights_total_bytes",
    "weights_cpu_bytes",
    "kv_cpu_bytes",
    "kv_total_bytes",
    "compute_bytes",
    "output_buffer_host_bytes",
]


def test_typed_details_are_the_json_answers_llama_cpp_object() -> None:
    wl = Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=32768)
    devices, _ = devices_for("rtx-4090+rtx-3090", "llama.cpp")
    est = estimate("qwen2.5-7b", replace(wl, devices=devices))
    lc = est.llama_cpp
    assert isinstance(est.details, LlamaCppDetails) and lc is est.details and "llama_cpp" not in est.extra
    assert all(isinstance(du, LlamaCppDevice) for du in lc.devices)
    # the two GPUs' buffers, split by memory (15 + 14 blocks, the output layer on the 3090)
    assert [(du.weights_gpu_bytes, du.kv_gpu_bytes, du.compute_gpu_bytes) for du in lc.devices] == [
        (2_092_873_728, 1_006_632_960, 309_329_920),
        (2_277_685_248, 872_415_232, 318_767_104),
    ]
    assert lc.devices[1].compute_phase == "output (logits)" and lc.tensor_split == (15.0, 14.0)
    assert lc.weights_gpu_bytes == sum(du.weights_gpu_bytes for du in lc.devices) == est.weights_bytes
    # the names earlier callers read follow the fields
    assert lc.weights_cpu_bytes == lc.weights_host_bytes and lc.kv_cpu_bytes == lc.kv_host_bytes == 0
    assert lc.kv_total_bytes == lc.kv_gpu_bytes == 1_879_048_192 and lc.compute_bytes == 318_767_104
    assert lc.output_buffer_host_bytes == lc.output_host_bytes
    d = est.to_dict()["llama_cpp"]
    assert list(d) == LLAMA_CPP_KEYS and list(d["devices"][0]) == [
        "weights_gpu_bytes",
        "kv_gpu_bytes",
        "compute_gpu_bytes",
        "compute_phase",
    ]
    assert isinstance(d["devices"], list) and isinstance(d["layer_devices"], list) and d["tensor_split"] == [15.0, 14.0]
    argv = "estimate qwen2.5-7b --engine llama.cpp --quant q4_k_m --context 32768 --gpu rtx-4090+rtx-3090 --json"
    rc, out, err = call_cli(argv.split())
    assert rc == 0, err
    assert json.loads(out)["llama_cpp"] == json.loads(json.dumps(d))
    with pytest.raises(TypeError, match="no vLLM details"):
        _ = est.vllm
    with pytest.raises(TypeError, match="no MLX details"):
        _ = est.mlx
    plain = estimate("qwen2.5-7b", Workload(context=8192))
    assert plain.details is None and "llama_cpp" not in plain.to_dict()
    with pytest.raises(TypeError, match=r"a transformers estimate has no llama\.cpp details"):
        _ = plain.llama_cpp


def test_a_cpu_build_has_no_devices_and_its_compute_bytes_are_the_host_buffer() -> None:
    est = estimate("qwen2.5-7b", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096, backend="cpu"))
    lc = est.llama_cpp
    assert lc.devices == () and lc.backend == "cpu" and lc.weights_gpu_bytes == 0
    assert lc.compute_bytes == lc.compute_host_bytes > 0 and est.to_dict()["llama_cpp"]["devices"] == []
