"""The vLLM engine profile: start-up budget, profile-run peak, KV layout, concurrency, and the CLI contract."""

from __future__ import annotations

import io
import json
import math
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from vram import VllmDetails, estimate
from vram.catalog import all_models, find_gpu
from vram.cli import main
from vram.devices import H100_TORCH_VISIBLE_BYTES, device_of
from vram.engines import vllm
from vram.errors import BadInput
from vram.fitting import Evaluator, GpuChoice, fit, max_batch
from vram.records import asdict, replace
from vram.request import Workload
from vram.resolver import resolve_model

GIB = 1024**3
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "measurements" / "vllm"))
import score  # noqa: E402


def _est(model: str = "llama-3.1-8b", **kw: object) -> vllm.Estimate:
    return vllm.estimate(
        resolve_model(model), Workload.from_flat(engine="vllm", devices=(device_of("h100-sxm"),), **kw).validate()
    )  # type: ignore[arg-type]


def _cli(*argv: str) -> tuple[int, dict[str, Any]]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["estimate", *argv])
    return rc, json.loads(buf.getvalue()) if rc == 0 else {}


def test_kv_budget_is_requested_memory_less_weights_peak_and_non_torch() -> None:
    e = _est(context=8192, new_tokens=0, engine_version="0.19")
    v = e.vllm
    assert v.gpu_memory_bytes == H100_TORCH_VISIBLE_BYTES  # the H100 as torch sees it: 79.19 GiB
    assert any(a.startswith("GPU: NVIDIA H100 SXM5 80GB, 79.19 GiB") for a in e.assumptions)  # said with the number
    budget = int(0.9 * H100_TORCH_VISIBLE_BYTES)
    assert v.kv_cache_bytes == budget - v.weights_bytes - v.activation_peak_bytes - v.non_torch_bytes
    # Llama 3.1 8B: 32 layers × 8 KV heads × (128 + 128) × 2 bytes = 128 KiB per token, 2 MiB per block
    assert e.extra["kv_bytes_per_token"] == 32 * 8 * 256 * 2
    assert v.kv_cache_blocks == v.kv_cache_bytes // (16 * 8 * 256 * 2) // 32
    assert v.kv_cache_tokens == 16 * v.kv_cache_blocks
    assert v.max_concurrency == pytest.approx(v.kv_cache_blocks / 512, abs=1e-4)


def test_typed_details_are_the_json_answers_vllm_object() -> None:
    e = _est(context=8192, new_tokens=0)
    assert isinstance(e.details, VllmDetails) and e.vllm is e.details
    rc, d = _cli(
        "llama-3.1-8b", "--engine", "vllm", "--gpu", "h100-sxm", "--context", "8192", "--new-tokens", "0", "--json"
    )
    assert rc == 0 and d["vllm"] == e.to_dict()["vllm"] == asdict(e.vllm)
    # the contract's fields and types, as the scorer reads them
    assert all(isinstance(d["vllm"][f], int) for f in score.FIELDS if f != "max_concurrency")
    assert isinstance(d["vllm"]["max_concurrency"], float) and "vllm" not in e.extra
    plain = estimate("llama-3.1-8b", Workload(context=8192))
    assert plain.details is None and "vllm" not in plain.to_dict()
    with pytest.raises(TypeError, match="no vLLM details"):
        _ = plain.vllm


def test_newer_releases_take_the_graph_estimate_out_of_the_kv_budget() -> None:
    old = _est(context=8192, new_tokens=0, engine_version="0.19").vllm
    new = _est(context=8192, new_tokens=0, engine_version="0.20").vllm
    assert new.cuda_graph_bytes > 0
    assert old.kv_cache_bytes - new.kv_cache_bytes == new.cuda_graph_bytes
    eager = _est(context=8192, new_tokens=0, engine_version="0.20", enforce_eager=True).vllm
    assert eager.cuda_graph_bytes == 0 and eager.kv_cache_bytes == old.kv_cache_bytes


def test_sampler_binds_and_older_releases_sort_the_logits() -> None:
    spec = resolve_model("llama-3.1-8b").spec
    new, how = vllm.profile_activation_bytes(spec, 8192, 1024, 2, (0, 19))
    sorted_, _ = vllm.profile_activation_bytes(spec, 8192, 1024, 2, (0, 16))
    assert "sampler" in how and "Triton" in how
    logits = 1024 * spec.vocab_size
    assert new == logits * 14 + 132 * spec.vocab_size * 4 + 8192 * 4096 * 2 + 2 * 1024 * 4096 * 2
    assert sorted_ - new == logits * (38 - 14) - 132 * spec.vocab_size * 4
    # 0.11 and before: FlashInfer's top-k/top-p when flashinfer is installed (float32 logits, masked logits, their
    # softmax: 14 bytes a logit in bf16, no per-SM rows); without it the logits are sorted (38 bytes a logit)
    fi, how = vllm.profile_activation_bytes(spec, 8192, 1024, 2, (0, 11))
    assert "FlashInfer" in how and fi == new - 132 * spec.vocab_size * 4
    pip, how = vllm.profile_activation_bytes(spec, 8192, 1024, 2, (0, 11), flashinfer=False)
    assert "sorted" in how and pip == sorted_


def test_old_releases_sample_as_their_log_says() -> None:
    # dennislee22/vLLM-benchmarking, vLLM 0.10.1.1 on one A100 80GB at --gpu-memory-utilization 0.25, Qwen2-7B,
    # 16,384 tokens: "Using FlashInfer for top-p & top-k sampling", 5.01 GiB of KV cache, 93,872 tokens
    case = next(c for c in score.load_cases(ROOT / "measurements" / "vllm" / "cases.jsonl") if "gmu0.25" in c["id"])
    v = _in_process(score.contract_args(case))["vllm"]
    assert abs(v["kv_cache_tokens"] / 93872 - 1) < 0.01
    assert round(v["kv_cache_bytes"] / GIB, 2) == 4.98
    # a pip install without FlashInfer sorts 256 × 152,064 logits: 0.9 GiB more, 18 % fewer tokens
    sort = _in_process([*score.contract_args(case), "--no-flashinfer-sampler"])["vllm"]
    assert sort["activation_peak_bytes"] - v["activation_peak_bytes"] == 256 * 152064 * (38 - 14)
    assert sort["kv_cache_tokens"] < 0.83 * 93872


def test_mxfp4_experts_are_padded_for_the_gpus_moe_kernel() -> None:
    # gpt-oss-120b over 4 A100s (Marlin: hidden 2880 -> 3072, intermediate 720 -> 768): 17.22 GiB per GPU in the
    # dennislee22 log; Hopper's Triton kernels pad only the intermediate to 64 (720 -> 768 at TP 4, 2880 at TP 1)
    a100 = _cli(
        "gpt-oss-120b",
        "--engine",
        "vllm",
        "--gpu",
        "a100-80gb-pcie",
        "-tp",
        "4",
        "--context",
        "16384",
        "--new-tokens",
        "0",
        "--gpu-memory-utilization",
        "0.8",
        "--engine-version",
        "0.10",
        "--json",
    )[1]
    assert round(a100["vllm"]["weights_bytes"] / GIB, 2) == 17.24
    assert any("Marlin MoE kernel" in c["explanation"] for c in a100["breakdown"] if c["name"] == "weights")
    spec = resolve_model("gpt-oss-120b").spec
    assert vllm.mxfp4_padding_bytes(spec, "mxfp4-experts", "hopper") == (0, "")
    assert vllm.mxfp4_padding_bytes(spec, "bf16", "ampere") == (0, "")
    # per MoE layer of 128 experts at TP 1 on Marlin: 3 × (3072 × 2944 − 2880 × 2880) × 4.25 / 8 bytes of matrices
    # and (2 × 64 + 192) × 2 bytes of biases per expert
    per_layer = 128 * (3 * (3072 * 2944 - 2880 * 2880) * 4.25 / 8 + (2 * 64 + 192) * 2)
    assert vllm.mxfp4_padding_bytes(spec, "mxfp4-experts", "ampere")[0] == round(36 * per_layer)


def test_no_flashinfer_sampler_applies_to_old_releases_only(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["llama-3.1-8b", "--engine", "vllm", "--gpu", "h100-sxm", "--no-flashinfer-sampler", "--json"]
    assert main(["estimate", *argv]) == 2
    err = capsys.readouterr().err
    assert "flashinfer_sampler" in err and len(err.strip().splitlines()) == 1
    assert main(["estimate", *argv, "--engine-version", "0.11"]) == 0


def test_defaults_follow_the_device() -> None:
    assert vllm.default_max_num_batched_tokens(80 * GIB, "NVIDIA H100 80GB HBM3") == 8192
    assert vllm.default_max_num_batched_tokens(80 * GIB, "NVIDIA A100-SXM4-80GB") == 2048  # A100s keep small ones
    assert vllm.default_max_num_seqs(24 * GIB, "NVIDIA GeForce RTX 4090") == 256
    assert vllm.default_max_num_batched_tokens(180 * GIB, "NVIDIA B200") == 16384
    assert vllm.default_max_num_batched_tokens(180 * GIB, "NVIDIA B200", (0, 19)) == 8192
    rc, a100 = _cli(
        "llama-3.1-8b", "--engine", "vllm", "--gpu", "a100-80gb-sxm", "--context", "8192", "--new-tokens", "0", "--json"
    )
    assert rc == 0 and a100["vllm"]["max_num_batched_tokens"] == 2048 and a100["vllm"]["max_num_seqs"] == 256
    # the memory compared is torch's total: 79.32 GiB on an A100 80GB, 139.72 on an H200 (vLLM start-up logs)
    assert a100["vllm"]["gpu_memory_bytes"] == round(79.32 * GIB)
    assert device_of("h200").usable_bytes == round(139.72 * GIB)
    assert vllm.batch_limits(None, None, 8192, round(139.72 * GIB), "NVIDIA H200") == (8192, 1024)


def test_defaulted_batch_limits_are_capped_like_vllms() -> None:
    # a defaulted token budget stops at max_num_seqs × max_model_len, a defaulted max_num_seqs at the token budget
    assert vllm.batch_limits(None, 4, 512, H100_TORCH_VISIBLE_BYTES) == (2048, 4)
    assert vllm.batch_limits(None, None, 4, H100_TORCH_VISIBLE_BYTES) == (4096, 1024)
    assert vllm.batch_limits(512, None, 4, H100_TORCH_VISIBLE_BYTES) == (512, 512)
    assert vllm.batch_limits(512, 8, 4, H100_TORCH_VISIBLE_BYTES) == (512, 8)  # given values are kept
    v = _est(context=512, new_tokens=0, max_num_seqs=4).vllm
    assert v.max_num_batched_tokens == 2048 and v.max_num_seqs == 4


def test_low_utilization_shrinks_only_the_kv_cache() -> None:
    lo = _est(gpu_memory_utilization=0.3, context=8192, new_tokens=0).vllm
    hi = _est(gpu_memory_utilization=0.9, context=8192, new_tokens=0).vllm
    assert lo.activation_peak_bytes == hi.activation_peak_bytes
    assert hi.kv_cache_bytes - lo.kv_cache_bytes == int(0.9 * H100_TORCH_VISIBLE_BYTES) - int(
        0.3 * H100_TORCH_VISIBLE_BYTES
    )


def test_fp8_kv_cache_doubles_the_tokens() -> None:
    a = _est(context=8192, new_tokens=0).vllm
    b = _est(context=8192, new_tokens=0, kv_dtype="fp8").vllm
    assert abs(b.kv_cache_tokens - 2 * a.kv_cache_tokens) <= 16


def test_hybrid_sliding_layers_are_grouped_and_hold_only_their_window() -> None:
    # Gemma 2 9B: 21 sliding (4096) + 21 full layers -> 2 groups of 21; a sliding layer of an 8192-token request
    # needs ceil(min(4095 + 8192, 8192) / 16) + 1 = 513 blocks, a full one 512
    spec = resolve_model("gemma-2-9b").spec
    lay = vllm.kv_layout(spec, 50 * GIB, 2, 8192, 8192)
    assert len(lay.groups) == 2 and lay.group_size == 21
    assert lay.num_blocks == 50 * GIB // lay.page_bytes // 21
    assert lay.tokens == lay.num_blocks // 2 * 16
    assert lay.max_concurrency == pytest.approx(lay.num_blocks / (512 + 513))
    # a long context: the sliding group holds only the window plus one chunk
    long = vllm.kv_layout(spec, 50 * GIB, 2, 65536, 2048)
    assert long.max_concurrency == pytest.approx(long.num_blocks / (4096 + math.ceil((4095 + 2048) / 16) + 1))


def test_tensor_parallel_shards_weights_and_adds_communication_buffers() -> None:
    one = _est(context=8192, new_tokens=0, engine_version="0.19").vllm
    two = _est(context=8192, new_tokens=0, engine_version="0.19", tensor_parallel_size=2).vllm
    assert 0.49 < two.weights_bytes / one.weights_bytes < 0.52
    assert two.non_torch_bytes - one.non_torch_bytes == vllm.TP_COMM_BYTES
    assert two.activation_peak_bytes <= one.activation_peak_bytes  # the sampler sees the whole vocabulary


def test_mxfp4_checkpoint_keeps_its_experts_in_4_bits() -> None:
    w = _est("gpt-oss-20b").vllm.weights_bytes
    bf16 = _est("gpt-oss-20b", quant="bfloat16").vllm.weights_bytes
    assert 11 * GIB < w < 14 * GIB < 30 * GIB < bf16


def test_fit_max_batch_is_vllms_concurrency() -> None:
    ev = Evaluator("llama-3.1-8b")
    g = find_gpu("h100-sxm")
    wl = Workload.from_flat(engine="vllm", context=8192, new_tokens=0).validate()
    b = max_batch(ev, GpuChoice(g, 1), wl)
    e = vllm.estimate(ev.rm, replace(wl, devices=(device_of(g),)))
    assert b == e.extra["max_concurrent_sequences"] > 1


def test_tensor_parallel_fit_has_more_room_per_gpu() -> None:
    one = fit("llama-3.1-70b", "2xh100-sxm", Workload.from_flat(engine="vllm", quant="fp8", context=8192), solve=False)
    two = fit("llama-3.1-70b", "4xh100-sxm", Workload.from_flat(engine="vllm", quant="fp8", context=8192), solve=False)
    assert two.per_gpu_bytes < one.per_gpu_bytes
    assert two.estimate.extra["kv_blocks"] > one.estimate.extra["kv_blocks"]
    assert fit("llama-3.1-70b", "h100-sxm", Workload.from_flat(engine="vllm"), solve=False).verdict == "no"


def test_contract_works_for_every_catalog_llm_and_tensor_parallel_size(capsys: pytest.CaptureFixture[str]) -> None:
    """Every catalog LLM at TP 1, 2, 4 and 8 on H100s: an estimate with the contract's integer fields, or (when the
    size does not divide the heads) exit 2 with one line naming tensor_parallel_size."""
    fields = (
        "weights_bytes",
        "activation_peak_bytes",
        "non_torch_bytes",
        "cuda_graph_bytes",
        "kv_cache_bytes",
        "kv_cache_tokens",
    )
    estimated = refused = 0
    for entry in all_models():
        if entry.kind not in ("llm", "vlm"):  # vLLM serves text and vision-language decoders
            continue
        for tp in (1, 2, 4, 8):
            argv = [entry.id, "--engine", "vllm", "--gpu", "h100-sxm", "--tensor-parallel-size", str(tp)]
            rc, d = _cli(*argv, "--context", "4096", "--new-tokens", "0", "--json")
            err = capsys.readouterr().err
            if rc == 0:
                v = d["vllm"]
                assert all(isinstance(v[f], int) and v[f] >= 0 for f in fields), (entry.id, tp)
                assert isinstance(v["max_concurrency"], float) and v["tensor_parallel_size"] == tp
                estimated += 1
            else:
                assert rc == 2 and "tensor_parallel_size" in err and len(err.strip().splitlines()) == 1, (entry.id, tp)
                with pytest.raises(BadInput):
                    vllm.check_tensor_parallel(resolve_model(entry.id).spec, tp)
                refused += 1
    assert estimated > 3 * refused > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "vllm", "--tensor-parallel-size", "3"], "does not divide the 32 attention heads"),
        (["--engine", "vllm", "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
        (["--engine", "vllm", "--gpu-memory-utilization", "x"], "expected a number"),
        (["--engine", "vllm", "--max-num-batched-tokens", "0"], "max_num_batched_tokens"),
        (["--engine", "vllm", "--max-num-seqs", "-4"], "max_num_seqs"),
        (["--engine", "vllm", "--engine-version", "0.5"], "V0 engine"),
        (["--engine", "vllm", "--engine-version", "latest"], "expected a vLLM release"),
        (["--engine", "vllm", "--kv-dtype", "fp7"], "kv_dtype"),
        (["--engine", "vllm", "--gpu", "h900"], "h900"),
        (["--engine", "vllm", "--gpu", "2xh100-sxm", "--tensor-parallel-size", "4"], "contradicts"),
        (["--tensor-parallel-size", "2"], "does not apply"),
        (["--enforce-eager"], "does not apply"),
        (["--engine-version", "0.19"], "does not apply"),
    ],
)
def test_bad_options_are_one_line_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) if "expected a number" in message else _nothing():
        rc = main(["estimate", "llama-3.1-8b", *argv, "--json"])
        assert rc == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_non_llm_models_are_refused_for_vllm(capsys: pytest.CaptureFixture[str]) -> None:
    """Every catalog model vLLM's generate path does not serve (diffusion, speech, embedding and reranker
    models): exit 2 with one line naming the engine, never a traceback."""
    refused = 0
    for entry in all_models():
        if entry.kind in ("llm", "vlm"):
            continue
        rc = main(["estimate", entry.id, "--engine", "vllm", "--gpu", "h100-sxm", "--json"])
        err = capsys.readouterr().err
        assert rc == 2 and "covers text LLMs only" in err and len(err.strip().splitlines()) == 1, entry.id
        refused += 1
    assert refused >= 10


def test_vision_language_models_are_served_with_their_tower_and_encoder_cache() -> None:
    # Qwen2.5-VL 7B: the Qwen2 decoder and its 676,550,144-parameter vision tower and merger in the weights, the
    # profile run's dummy images in the activation peak
    e = _est("qwen2.5-vl-7b", context=8192, new_tokens=0)
    spec = resolve_model("qwen2.5-vl-7b").spec
    assert spec.extra_params == 676_550_144
    assert e.vllm.weights_bytes == 2 * spec.params + 128000 * 128 * 2 + 64 * 4  # + rotary cache, inv_freq
    assert any(a.startswith("multimodal: the profile run encodes dummy images") for a in e.assumptions)
    text = _est("qwen2.5-vl-7b", context=8192, new_tokens=0, limit_mm_per_prompt=0).vllm
    assert e.vllm.activation_peak_bytes - text.activation_peak_bytes == 8192 * 3584 * 2


def _in_process(argv: list[str]) -> dict[str, Any]:
    rc, d = _cli(*argv)
    if rc != 0:
        raise RuntimeError(f"exit {rc}")
    return d


def test_collected_start_up_logs_meet_the_bounds() -> None:
    cases = score.load_cases(ROOT / "measurements" / "vllm" / "cases.jsonl")
    assert len(cases) >= 40 and all(c["source"].startswith("https://") for c in cases)
    result = score.score(cases, _in_process)
    assert score.violations(result) == []
    s = result["summary"]
    # the README's table: tighter than the bounds where the model is exact
    assert s["kv_cache_tokens"]["median"] < 0.5 and s["weights_bytes"]["median"] < 0.5


def test_lora_slots_are_preallocated_per_layer() -> None:
    base = _est(context=8192, new_tokens=0).vllm
    lora = _est(context=8192, new_tokens=0, enable_lora=True, max_loras=4, max_lora_rank=64).vllm
    # Llama 3.1 8B, per layer and slot: qkv 3 × 4096 + 4096 + 2 × 1024, o 4096 + 4096, gate_up 2 × 4096 + 2 × 14336,
    # down 14336 + 4096 elements × rank; 32 layers, 4 slots, rank 64, bf16
    per_layer = 3 * 4096 + 4096 + 2048 + 4096 + 4096 + 2 * 4096 + 2 * 14336 + 14336 + 4096
    # LlamaForCausalLM declares embedding_modules: the embedding (128256 × r + 4096 × r) and the head (the same)
    embedding = 2 * (128256 + 4096)
    slots = 4 * 64 * (32 * per_layer + embedding) * 2
    assert lora.weights_bytes - base.weights_bytes == slots
    # from 0.12 every CUDA graph is captured without and with LoRA (cudagraph_specialize_lora): 102 more graphs of
    # 6 MiB in the graph estimate, which 0.20+ take out of the KV budget
    assert lora.cuda_graph_bytes - base.cuda_graph_bytes == 102 * 6 * 2**20
    assert base.kv_cache_bytes - lora.kv_cache_bytes == slots + 102 * 6 * 2**20
    e = _est(context=8192, new_tokens=0, enable_lora=True, max_loras=4, max_lora_rank=64)
    assert any("LoRA: 4 adapter slot(s) of rank 64" in a and "embedding and head (129 MiB)" in a for a in e.assumptions)


def test_lora_slots_cover_every_routed_expert_from_0_11_1() -> None:
    # Qwen3-30B-A3B: 48 layers of 128 experts (moe_intermediate 768, gated), hidden 2048, 32 q / 4 KV heads of 128;
    # Qwen3MoeForCausalLM declares embedding_modules (vocab 151936)
    def lora(version: str, tp: int = 1) -> tuple[int, tuple[str, ...]]:
        kw: dict[str, Any] = {"context": 8192, "new_tokens": 0, "engine_version": version, "tensor_parallel_size": tp}
        base = _est("qwen3-30b-a3b", **kw).vllm.weights_bytes
        e = _est("qwen3-30b-a3b", **kw, enable_lora=True, max_loras=2, max_lora_rank=16)
        return e.vllm.weights_bytes - base, e.assumptions

    h, inter, experts = 2048, 768, 128
    attention = 3 * h + 4096 + 512 + 512 + 4096 + h
    router = h + experts
    per_expert = 2 * (h + inter) + inter + h
    embedding = 2 * (151936 + h)
    unit = 2 * 16 * 2  # slots × rank × bf16
    new, notes = lora("0.20")
    assert new == unit * (48 * (attention + router + experts * per_expert) + embedding)
    assert any("the routed experts (3,168 MiB" in a for a in notes)
    old, notes = lora("0.11")
    assert old == unit * (48 * (attention + router) + embedding)
    assert any("routed experts unadapted before vLLM 0.11.1" in a for a in notes)
    # TP 2: the experts' intermediate and the attention heads are sharded, hidden, experts and vocab are not
    sharded, _ = lora("0.20", tp=2)
    attention2 = 3 * h + 2048 + 256 + 256 + 2048 + h
    per_expert2 = 2 * (h + inter // 2) + inter // 2 + h
    assert sharded == unit * (48 * (attention2 + router + experts * per_expert2) + embedding)


def test_a_draft_model_adds_its_weights_and_its_kv_layers() -> None:
    base = _est("llama-3.1-70b", context=8192, new_tokens=0, tensor_parallel_size=4).vllm
    spec = _est(
        "llama-3.1-70b",
        context=8192,
        new_tokens=0,
        tensor_parallel_size=4,
        speculative_model="llama-3.2-1b",
        num_speculative_tokens=4,
    )
    v = spec.vllm
    draft = resolve_model("llama-3.2-1b").spec
    assert 0.5 * draft.params * 2 / 4 < v.weights_bytes - base.weights_bytes < 1.2 * draft.params * 2 / 4
    # KV per token per rank: 80 target layers of 2 KV heads (8 / 4) × (128 + 128) + 16 draft layers of 2 KV heads ×
    # (64 + 64), bf16; the different page sizes share one block table
    per_token = 80 * 2 * 256 * 2 + 16 * 2 * 128 * 2
    assert v.kv_cache_blocks == v.kv_cache_bytes // (16 * per_token)
    assert any("draft model llama-3.2-1b" in a for a in spec.assumptions)


def test_eagle3_head_keeps_its_reduced_vocabulary_head() -> None:
    head = str(ROOT / "tests" / "data" / "vllm" / "eagle3-llama3.1-8b-head.json")
    base = _est(context=8192, new_tokens=0).vllm
    e = _est(context=8192, new_tokens=0, speculative_method="eagle3", speculative_model=head, num_speculative_tokens=3)
    # Eagle3LlamaForCausalLM: one decoder layer whose qkv reads [embedding; hidden] (4096 more inputs), its
    # hidden_norm, fc over three 4096-wide target hidden states, the final norm, its own 32,000-token head and the
    # int64 draft-to-target map; the embedding is the target's
    layer = 4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096
    params = layer + 4096 * (4096 + 1024 + 1024) + 4096 + 3 * 4096 * 4096 + 4096 + 32000 * 4096
    assert e.vllm.weights_bytes - base.weights_bytes == 2 * params + 64 * 4 + 8 * 32000
    assert any("EAGLE-3 head" in a and "own head over 32,000 draft tokens" in a for a in e.assumptions)
    assert e.vllm.kv_cache_blocks == e.vllm.kv_cache_bytes // (16 * 33 * 8 * 256 * 2)


def test_kv_cache_memory_and_cpu_offload() -> None:
    fixed = _est(context=8192, new_tokens=0, kv_cache_memory_bytes=8 * GIB).vllm
    assert fixed.kv_cache_bytes == 8 * GIB and fixed.kv_cache_blocks == 8 * GIB // (16 * 131072)
    base = _est(context=8192, new_tokens=0).vllm
    off = _est(context=8192, new_tokens=0, cpu_offload_gb=4).vllm
    assert base.weights_bytes - off.weights_bytes == 4 * GIB
    assert off.kv_cache_bytes - base.kv_cache_bytes == 4 * GIB


def test_multimodal_profile_keeps_the_encoder_cache() -> None:
    v = _est("gemma-3-4b", context=8192, new_tokens=0, engine_version="0.19").vllm
    text = vllm.profile_activation_bytes(resolve_model("gemma-3-4b").spec, 8192, 1024, 2, (0, 19))[0]
    # encoder budget max(8192 batched tokens, 256) holds 32 images of 256 tokens, 2560 wide, bf16
    assert v.activation_peak_bytes - text == 32 * 256 * 2560 * 2
    e = _est("gemma-3-4b", context=8192, new_tokens=0, engine_version="0.19")
    assert any(
        a.startswith("multimodal: the profile run encodes 32 dummy image(s) of 256 tokens and keeps 40 MiB")
        for a in e.assumptions
    )
    assert "encoder cache of the multimodal profile (40 MiB" in e.breakdown[1].explanation


def test_encoder_batch_follows_the_mm_limit_and_max_num_seqs() -> None:
    def peak(**kw: object) -> int:
        return _est("gemma-3-4b", context=8192, new_tokens=0, engine_version="0.19", **kw).vllm.activation_peak_bytes

    item = 256 * 2560 * 2
    full = peak()
    # --limit-mm-per-prompt 0: no dummy images at all
    none = _est("gemma-3-4b", context=8192, new_tokens=0, engine_version="0.19", limit_mm_per_prompt=0)
    assert full - none.vllm.activation_peak_bytes == 32 * item
    assert any("--limit-mm-per-prompt 0: text only" in a for a in none.assumptions)
    # 4 sequences × 2 images per prompt = 8 items, under the budget's 32; the sampler shrinks with the sequences
    few = vllm.profile_activation_bytes(resolve_model("gemma-3-4b").spec, 8192, 4, 2, (0, 19))[0]
    assert peak(max_num_seqs=4, limit_mm_per_prompt=2) - few == 8 * item


def test_mm_limit_on_a_text_model_is_an_error() -> None:
    """--limit-mm-per-prompt sizes a vision tower's encoder cache; a text-only model has none to size."""
    with pytest.raises(BadInput) as err:
        _est("llama-3.1-8b", context=8192, new_tokens=0, limit_mm_per_prompt=3)
    assert err.value.field == "limit_mm_per_prompt"
    assert "takes text only" in str(err.value)


def test_mtp_speculation_adds_the_checkpoints_mtp_layers() -> None:
    kw: dict[str, Any] = {"context": 32768, "new_tokens": 0, "tensor_parallel_size": 8}
    base = _est("deepseek-v3", **kw).vllm
    e = _est("deepseek-v3", **kw, speculative_method="mtp", num_speculative_tokens=1)
    v = e.vllm
    # one MTP layer like layer 60 (MLA + 256 FP8 experts, sharded 8 ways) + eh_proj 2 × 7168² in bf16 + 3 norms;
    # its embedding and head are the target's: 1.55 GiB per GPU
    spec = resolve_model("deepseek-v3").spec
    rank_last = vllm.rank_model(resolve_model("deepseek-v3"), 8).spec.layers[-1]
    assert rank_last.params < v.weights_bytes - base.weights_bytes < 1.1 * rank_last.params + 4 * 7168**2
    assert round((v.weights_bytes - base.weights_bytes) / GIB, 2) == 1.55
    # 61 + 1 MLA layers of 576 latent elements share the pool
    assert v.kv_cache_blocks == v.kv_cache_bytes // (16 * 576 * 2 * 62)
    assert spec.mtp_params and any("1 multi-token-prediction layer (1 token per step)" in a for a in e.assumptions)


def test_eagle_head_shares_the_targets_embedding_and_head() -> None:
    head = str(ROOT / "tests" / "data" / "vllm" / "eagle-llama3.1-8b-head.json")
    base = _est(context=8192, new_tokens=0).vllm
    eagle = _est(context=8192, new_tokens=0, speculative_method="eagle", speculative_model=head)
    draft = _est(context=8192, new_tokens=0, speculative_model=head)
    # one Llama-3.1-8B decoder layer (218,112,000 parameters with its two norms) + fc 2 × 4096 × 4096, bf16
    layer = 4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096
    grown = eagle.vllm.weights_bytes - base.weights_bytes
    assert grown == 2 * (layer + 2 * 4096 * 4096 + 4096) + 64 * 4  # + the final norm, the rotary inv_freq buffer
    # as a plain draft model the same config brings its own embedding and head (2 × 128256 × 4096) and rotary cache
    # (8192 positions × 128), and no fc
    own = 2 * (2 * 128256 * 4096) + 8192 * 128 * 2 - 2 * (2 * 4096 * 4096)
    assert draft.vllm.weights_bytes - base.weights_bytes == grown + own
    v = eagle.vllm
    assert v.kv_cache_blocks == v.kv_cache_bytes // (16 * 33 * 8 * 256 * 2)
    assert any("EAGLE head" in a and "embedding and head shared with the target" in a for a in eagle.assumptions)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "vllm", "--max-loras", "4"], "need --enable-lora"),
        (["--engine", "vllm", "--num-speculative-tokens", "3"], "needs --speculative-model"),
        (["--engine", "vllm", "--cpu-offload-gb", "-1"], "cpu_offload_gb"),
        (
            ["--engine", "vllm", "--gpu", "h100-sxm", "--speculative-model", "qwen2.5-0.5b", "-tp", "8"],
            "does not divide",
        ),
        (["--engine", "vllm", "--gpu", "h100-sxm", "--speculative-method", "mtp"], "has no multi-token-prediction"),
        (["--engine", "vllm", "--speculative-method", "eagle"], "eagle needs --speculative-model"),
        (["--engine", "vllm", "--speculative-method", "mtp", "--speculative-model", "llama-3.2-1b"], "give no"),
        (["--engine", "vllm", "--limit-mm-per-prompt", "-1"], "limit_mm_per_prompt"),
        (["--enable-lora"], "does not apply"),
        (["--kv-cache-memory", "1000"], "does not apply"),
    ],
)
def test_bad_serving_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "llama-3.1-8b", *argv, "--json"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# --- per-device facts: the sampler's per-SM buffer, the serving command, the fit --------------------------------------


def test_triton_sampler_buffer_has_one_vocabulary_row_per_sm() -> None:
    # apply_top_k_top_p_triton: min(next power of 2 of min(SMs, rows), SMs) float32 rows of the vocabulary
    assert vllm.triton_sampler_rows(1024, 132) == 132
    assert vllm.triton_sampler_rows(20, 132) == 32
    assert vllm.triton_sampler_rows(20, 16) == 16
    assert vllm.triton_sampler_rows(256, 58) == 58
    spec = resolve_model("llama-3.1-8b").spec
    h100 = vllm.sampler_peak_bytes(spec, 2048, 256, 2, (0, 19), 132)
    l4 = vllm.sampler_peak_bytes(spec, 2048, 256, 2, (0, 19), 58)
    assert h100 - l4 == (132 - 58) * 128256 * 4
    # fewer than 8 rows are sorted in PyTorch: no per-SM buffer
    assert vllm.sampler_peak_bytes(spec, 2048, 4, 2, (0, 19), 132) == vllm.sampler_peak_bytes(
        spec, 2048, 4, 2, (0, 19), 58
    )


def test_catalog_gpus_carry_their_sm_count() -> None:
    sms = {
        "h100-sxm": 132,
        "h200": 132,
        "a100-80gb-sxm": 108,
        "l4": 58,
        "l40s": 142,
        "a10g": 80,
        "b200": 148,
        "rtx-3090": 82,
        "rtx-4090": 128,
        "rtx-5090": 170,
    }
    for gpu, n in sms.items():
        assert device_of(gpu).compute_units == n, gpu
    l4 = vllm.estimate(
        resolve_model("llama-3.1-8b"),
        Workload.from_flat(engine="vllm", context=8192, new_tokens=0, devices=(device_of("l4"),)).validate(),
    )
    assert "58 per-SM vocabulary rows" in l4.breakdown[1].explanation
    unknown = replace(device_of("l4"), compute_units=None)
    e = vllm.estimate(
        resolve_model("llama-3.1-8b"),
        Workload.from_flat(engine="vllm", context=8192, new_tokens=0, devices=(unknown,)).validate(),
    )
    assert any("SM count is not in the catalog" in a for a in e.assumptions)
    assert e.vllm.activation_peak_bytes - l4.vllm.activation_peak_bytes == 74 * 128256 * 4


def test_sliding_window_requests_hold_only_their_window() -> None:
    e = _est("gpt-oss-20b", context=131072, new_tokens=0, batch=2)
    v = e.vllm
    full = 2 * math.ceil(131072 / 16) * e.extra["block_bytes"]
    kv = next(c for c in e.breakdown if c.name == "kv_cache")
    assert kv.bytes < full / 1.8 and "holding only their window" in kv.explanation
    # the KV bytes two requests need are two of vLLM's per-request shares of the pool
    assert kv.bytes == pytest.approx(2 * v.kv_cache_bytes / v.max_concurrency, rel=0.01)


def test_vllm_command_carries_the_estimates_options() -> None:
    from vram.request import VllmOptions
    from vram.serving import vllm_option_flags

    assert vllm_option_flags(VllmOptions()) == []
    flags = vllm_option_flags(
        VllmOptions(
            max_num_batched_tokens=4096,
            block_size=32,
            enforce_eager=True,
            enable_lora=True,
            max_loras=2,
            max_lora_rank=64,
            kv_cache_memory_bytes=8 * GIB,
            cpu_offload_gb=4,
        )
    )
    assert flags == [
        "--max-num-batched-tokens 4096",
        "--block-size 32",
        "--enforce-eager",
        "--enable-lora --max-loras 2 --max-lora-rank 64",
        f"--kv-cache-memory-bytes {8 * GIB}",
        "--cpu-offload-gb 4",
    ]
    spec = vllm_option_flags(VllmOptions(speculative_model="qwen2.5-0.5b", num_speculative_tokens=3))
    assert spec == ['--speculative-config \'{"model": "qwen2.5-0.5b", "num_speculative_tokens": 3}\'']
    mtp = vllm_option_flags(VllmOptions(speculative_method="mtp", num_speculative_tokens=2, limit_mm_per_prompt=0))
    assert mtp == [
        '--speculative-config \'{"method": "mtp", "num_speculative_tokens": 2}\'',
        "--limit-mm-per-prompt '{\"image\": 0}'",
    ]


def test_fit_serves_the_concurrency_vllm_reports_at_the_served_length() -> None:
    wl = Workload.from_flat(
        engine="vllm", context=131072, new_tokens=0, batch=2, max_num_batched_tokens=4096, enforce_eager=True
    )
    r = fit("gpt-oss-20b", "l4", wl)
    v = r.serving["vllm"]
    assert "--max-num-batched-tokens 4096" in v["command"] and "--enforce-eager" in v["command"]
    served = vllm.estimate(
        resolve_model("gpt-oss-20b"),
        Workload.from_flat(
            engine="vllm",
            context=v["max_model_len"],
            new_tokens=0,
            max_num_batched_tokens=4096,
            enforce_eager=True,
            devices=(device_of("l4"),),
        ).validate(),
    )
    assert v["sequences_that_fit"] == int(served.vllm.max_concurrency) >= 2
    assert v["max_num_seqs"] == 2 == wl.batch


def test_fit_names_the_utilization_that_holds_the_batch() -> None:
    from vram.serving import vllm_utilization_for

    ests = [
        vllm.estimate(
            resolve_model("llama-3.1-8b"),
            Workload.from_flat(engine="vllm", context=8192, new_tokens=0, devices=(device_of("l4"),)).validate(),
        )
    ]
    assert vllm_utilization_for(ests, 3) == 0.9  # 3.27 sequences of 8k fit at vLLM's default
    u = vllm_utilization_for(ests, 4)
    assert u == 0.94
    at_u = vllm.estimate(
        resolve_model("llama-3.1-8b"),
        Workload.from_flat(
            engine="vllm", context=8192, new_tokens=0, gpu_memory_utilization=u, devices=(device_of("l4"),)
        ).validate(),
    )
    assert at_u.vllm.max_concurrency >= 4
    assert vllm_utilization_for(ests, 5) is None  # past what is free once the CUDA context exists


def test_vllm_tensor_parallel_buffers_are_counted_once() -> None:
    ev = Evaluator("llama-3.1-70b")
    wl = Workload.from_flat(engine="vllm", quant="fp8", context=8192, new_tokens=0).validate()
    worst, _, ests, comm = ev.per_gpu(GpuChoice(find_gpu("h100-sxm"), 2), wl, "tp")
    assert comm == 0 and worst == max(e.total_bytes for e in ests)
    assert ests[0].vllm.non_torch_bytes > vllm.NON_TORCH_BYTES  # the TP buffers are in here


def test_tensor_parallel_buffers_depend_on_the_link() -> None:
    from vram.sharding import comm_buffer_bytes

    nvlink, _ = vllm.non_torch_bytes(2, (0, 19), "nvlink")
    pcie, how = vllm.non_torch_bytes(2, (0, 19), "pcie")
    assert nvlink == vllm.NON_TORCH_BYTES + vllm.TP_COMM_BYTES
    assert pcie == vllm.NON_TORCH_BYTES + comm_buffer_bytes("tp", 2, "pcie") and "no custom all-reduce" in how
    assert vllm.non_torch_bytes(1, (0, 19), "pcie")[0] == vllm.NON_TORCH_BYTES
    # two L40S at TP 2 (vLLM issue 15815): 0.3 GiB of non-torch memory in all, not the 2.1 GiB of two H100s
    e = vllm.estimate(
        resolve_model("qwen2.5-32b"),
        Workload.from_flat(
            engine="vllm", tensor_parallel_size=2, context=8192, new_tokens=0, devices=(device_of("l40s"),)
        ).validate(),
    )
    assert abs(e.vllm.non_torch_bytes / GIB - 0.3) < 0.05
