"""`vram explain` on real logs from public issue threads (tests/data/explain/cases.json lists each file, its source
and what must be recovered), on unknown and partial input, and through the CLI (file, stdin, --json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vram import logs
from vram.diagnosis import explain, match_model, name_variants, quant_from_name

DATA = Path(__file__).resolve().parent / "data" / "explain"
CASES = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]
CASES_BY_FILE = {c["file"]: c for c in CASES}
GIB = 2**30
Run = Callable[..., Any]


def test_the_collection_is_real_and_large_enough() -> None:
    files = {p.name for p in DATA.glob("*.log")}
    assert {c["file"] for c in CASES} == files
    assert len(CASES) >= 30
    kinds = {c["expect"]["kind"] for c in CASES}
    assert kinds == set(logs.KINDS)
    for c in CASES:
        assert c["source"].startswith("https://github.com/"), c["file"]


def test_at_least_30_real_logs_name_the_differing_term() -> None:
    """Issue 17's bar: on 30 real logs or more, the model and settings are recovered and a term is named, each term
    named having both the log's figure and vram's."""
    named = []
    for c in CASES:
        d = explain((DATA / c["file"]).read_text(encoding="utf-8"), **c.get("args", {})).to_dict()
        if d["resolved"] is not None and d["largest_difference"] is not None and d["workload"]:
            named.append(c["file"])
    assert len(named) >= 30, named
    kinds = {CASES_BY_FILE[f]["expect"]["kind"] for f in named}
    assert {"vllm", "llama.cpp", "ollama", "pytorch-oom"} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_real_log(case: dict[str, Any]) -> None:
    text = (DATA / case["file"]).read_text(encoding="utf-8")
    e = explain(text, **case.get("args", {}))
    d = e.to_dict()
    ex = case["expect"]
    assert d["kind"] == ex["kind"]
    for key in ("model", "resolved", "out_of_memory", "largest_difference", "verdict", "fix"):
        if key in ex:
            assert d[key] == ex[key], (key, d[key], d["why"])
    for key, value in ex.get("workload", {}).items():
        assert d["workload"].get(key) == value, (key, d["workload"])
    if "fix_contains" in ex:
        assert d["fix"] is not None and ex["fix_contains"] in d["fix"], d["fix"]
    if "alternative_contains" in ex:
        assert any(ex["alternative_contains"] in a for a in d["alternatives"]), d["alternatives"]
    if "missing_contains" in ex:
        assert any(ex["missing_contains"] in m for m in d["missing"]), d["missing"]
    if "gpu_count" in ex:
        assert d["gpu"]["count"] == ex["gpu_count"]
    if "gpu_name" in ex:
        assert d["gpu"]["name"] == ex["gpu_name"]
    if "gpu_memory_gib" in ex:
        assert d["gpu"]["memory_bytes"] == pytest.approx(ex["gpu_memory_gib"] * GIB, rel=5e-3)
    terms = {t["name"]: t for t in d["terms"]}
    for name, gib in ex.get("logged_gib", {}).items():
        assert terms[name]["logged_bytes"] == pytest.approx(gib * GIB, rel=5e-3)
    if ex.get("kv_exact"):  # Ollama's KV figure is pure arithmetic on the architecture: vram's matches to 0.5 %
        assert terms["kv_cache"]["estimated_bytes"] == pytest.approx(terms["kv_cache"]["logged_bytes"], rel=5e-3)
    if "weights_within" in ex:  # the weights vLLM loaded, against vram's per-tensor count of the checkpoint
        t = terms["weights"]
        assert t["estimated_bytes"] == pytest.approx(t["logged_bytes"], rel=ex["weights_within"])
    if "model_size_within" in ex:  # print_info's model size: vram's GGUF mix of the catalog model, all tensors
        t = terms["model_size"]
        assert t["estimated_bytes"] == pytest.approx(t["logged_bytes"], rel=ex["model_size_within"])
    if d["largest_difference"] is not None:
        t = terms[d["largest_difference"]]
        assert t["logged_bytes"] is not None and t["estimated_bytes"] is not None
        assert d["why"] and d["largest_difference"] in d["why"]
    assert d["recognised"], "every real log is recognised at least in part"


def test_vllm_kv_cache_per_token_is_exact() -> None:
    """The log states its KV cache in GiB and in tokens: bytes per token is the architecture's (Qwen3-14B: 40 layers ×
    8 KV heads × 128 × 2 (K, V) × 2 bytes = 163,840); the log's GiB are rounded to 0.01."""
    e = explain((DATA / "vllm-lmcache-1739-qwen3-14b.log").read_text(), model="qwen3-14b")
    t = next(t for t in e.terms if t.name == "kv_bytes_per_token")
    assert t.estimated_bytes == 40 * 8 * 128 * 2 * 2
    assert t.logged_bytes == pytest.approx(t.estimated_bytes, rel=1e-3)


def test_vllm_kv_needed_is_the_architecture_of_one_rank() -> None:
    """vLLM's refusal states the KV cache one request of max_model_len needs. Qwen3-Coder-480B with -dp=8 (each rank
    holds all layers): 62 layers × 8 KV heads × 128 × 2 (K, V) × 2 bytes × 262,144 tokens = 62 GiB, exactly the log's.
    Qwen3-Coder-30B-A3B over two pipeline stages: the log's 24 GiB is all 48 layers, a stage holds part of them (vram
    splits evenly, 24 layers = 12 GiB; the run's VLLM_PP_LAYER_PARTITION=16,32 gave 16 and 32): vLLM checked the whole
    model against one stage, and the fix proposed is what vLLM's own figure allows."""
    e = explain((DATA / "vllm-recipes-12-qwen3-coder-480b-fp8.log").read_text())
    t = next(t for t in e.terms if t.name == "kv_cache_needed")
    assert t.estimated_bytes == t.logged_bytes == 62 * 8 * 128 * 2 * 2 * 262144
    e = explain((DATA / "vllm-34076-qwen3-coder-30b-pp2.log").read_text(), model="qwen3-30b-a3b-fp8")
    t = next(t for t in e.terms if t.name == "kv_cache_needed")
    assert t.logged_bytes == 24 * GIB and t.estimated_bytes == 24 * 4 * 128 * 2 * 2 * 262144
    assert e.fix is not None and "--pipeline-parallel-size 2" in e.fix and "--tensor-parallel-size" not in e.fix
    tokens = int(e.fix.rsplit(" ", 1)[1])
    assert 34_000 <= tokens <= 34_736  # vLLM: "the estimated maximum model length is 34736"


def test_a_kv_cache_of_other_cells_says_how_many() -> None:
    """Ollama's KV figure is cells × bytes per cell; the excerpt of ollama/ollama#11292 states no num_ctx, and its
    1.0 GiB for Llama-3.1-8B (128 KiB a cell) is 8,192 cells, not the 4,096 assumed."""
    e = explain((DATA / "ollama-11292-llama3.1-8b.log").read_text())
    assert e.largest_difference == "kv_cache" and e.why is not None and "8,192 cells" in e.why
    kv = next(t for t in e.terms if t.name == "kv_cache")
    assert kv.estimated_bytes == 4096 * 32 * 8 * 128 * 2 * 2


def test_a_gguf_general_name_matches_the_catalog() -> None:
    entry = match_model("Meta Llama 3.1 8B Instruct")
    assert entry is not None and entry.id == "llama-3.1-8b"


def test_vllm_command_lines() -> None:
    """The model of `vllm serve` after its flags, and a command typed over several lines (backslash-continued)."""
    p = logs.parse("vllm serve --trust-remote-code --tensor_parallel_size 2 --gpu_memory_utilization=0.98 /m/Q-14B\n")
    assert p.model == "/m/Q-14B" and p.workload["tensor_parallel_size"] == 2
    assert p.workload["gpu_memory_utilization"] == 0.98
    text = "vllm serve /m/Qwen3-8B \\\n  --tensor-parallel-size 4 \\\n  --max-model-len 8192\n"
    text += "Available KV cache memory: 1 GiB\n"
    p = logs.parse(text)
    assert p.model == "/m/Qwen3-8B" and p.workload["tensor_parallel_size"] == 4 and p.workload["context"] == 8192


def test_vllm_fix_is_checked_against_the_logged_figures() -> None:
    """29,000 tokens of Llama-3.1-8B need 29,008 × 128 KiB = 3.54 GiB of KV; the log leaves 2.89 GiB at 0.9.
    0.95 of 23.58 GiB adds 1.18 GiB: fits. The longest context at 0.9 is what 2.89 GiB holds (vLLM said 23,648)."""
    e = explain((DATA / "vllm-10517-29k.log").read_text(), model="llama-3.1-8b")
    assert e.fix is not None and e.fix.endswith("--gpu-memory-utilization 0.95")
    mml = next(
        a
        for a in e.alternatives
        if "--max-model-len" in a
        and "--gpu" not in a
        and "--kv" not in a
        and "--tensor" not in a
        and "--quant" not in a
    )
    tokens = int(mml.rsplit(" ", 1)[1])
    assert 23_000 <= tokens <= 23_648


def test_llama_cpp_hyperparameters_describe_the_model() -> None:
    """A llama.cpp log that prints its hyperparameters is estimated from them when the name is not in the catalog."""
    text = "\n".join(
        [
            "llama_model_loader: loaded meta data with 29 key-value pairs and 292 tensors from "
            "/m/my-private-finetune.gguf",
            "llm_load_print_meta: arch             = llama",
            "llm_load_print_meta: n_vocab          = 128256",
            "llm_load_print_meta: n_ctx_train      = 131072",
            "llm_load_print_meta: n_embd           = 4096",
            "llm_load_print_meta: n_layer          = 32",
            "llm_load_print_meta: n_head           = 32",
            "llm_load_print_meta: n_head_kv        = 8",
            "llm_load_print_meta: n_ff             = 14336",
            "llm_load_print_meta: model ftype      = Q4_K - Medium",
            "llm_load_tensors: offloaded 33/33 layers to GPU",
            "llm_load_tensors:      CUDA0 buffer size =  4403.49 MiB",
            "llama_new_context_with_model: n_ctx      = 8192",
            "llama_kv_cache_init:      CUDA0 KV buffer size =  1024.00 MiB",
            "llama_new_context_with_model: KV self size  = 1024.00 MiB, K (f16):  512.00 MiB, V (f16):  512.00 MiB",
            "llama_new_context_with_model:      CUDA0 compute buffer size =   560.00 MiB",
        ]
    )
    e = explain(text, gpu="rtx-4060-ti-16gb")
    assert e.model == "my-private-finetune.gguf" and e.resolved == "log hyperparameters"
    kv = next(t for t in e.terms if t.name == "kv_cache")
    assert kv.estimated_bytes == kv.logged_bytes == 8192 * 32 * 8 * 128 * 2 * 2
    assert e.verdict == "fits" and e.fix is None


def test_unknown_and_empty_input() -> None:
    e = explain("hello, my model is slow\n")
    assert e.kind is None and e.terms == () and e.missing and "vLLM" in e.missing[0]
    with pytest.raises(Exception, match="empty input"):
        explain("   ")


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "qwen2.5-7b"),
        ("/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "llama-3.1-8b"),
        ("llama3.1:70b-instruct-q4_K_M", "llama-3.1-70b"),
        ("/root/.cache/huggingface/hub/models--meta-llama--Llama-3.2-3B-Instruct/snapshots/abc", "llama-3.2-3b"),
        ("DeepSeek-R1-Q2_K-00001-of-00030.gguf", "deepseek-r1"),
    ],
)
def test_model_names_match_the_catalog(name: str, want: str) -> None:
    entry = match_model(name)
    assert entry is not None and entry.id == want, name_variants(name)


def test_no_guess_for_unknown_names() -> None:
    assert match_model("my-company/secret-model-v3") is None


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "q4_k_m"),
        ("Qwen2.5-7B-Instruct-AWQ", "awq-4bit-g128"),
        ("Qwen1.5-7B-Chat-GPTQ-Int4", "gptq-4bit-g128"),
        ("Llama-3.3-70B-Instruct-FP8", "fp8"),
        ("mistral-7b-v0.3.Q8_0.gguf", "q8_0"),
        ("Llama-3.1-8B-Instruct", None),
    ],
)
def test_quantization_from_names(name: str, quant: str | None) -> None:
    assert quant_from_name(name) == quant


# --- the CLI -------------------------------------------------------------------------------------------------------


def test_cli_json_from_a_file(run_cli: Run) -> None:
    res = run_cli("explain", str(DATA / "vllm-10517-29k.log"), "--model", "llama-3.1-8b", "--json")
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    assert d["schema"] == "urn:vram:schema:explain:1"
    assert d["kind"] == "vllm" and d["out_of_memory"] is True and d["largest_difference"] == "activations"


def test_cli_reads_standard_input(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((DATA / "ollama-10140-llama3.1-8b.log").read_text()))
    res = run_cli("explain", "-", "--model", "llama3.1:8b")
    assert res.rc == 0, res.err
    assert "ollama log" in res.out and "compute_buffer" in res.out and "differs most" in res.out


def test_cli_human_output_names_the_fix(run_cli: Run) -> None:
    res = run_cli("explain", str(DATA / "vllm-10517-29k.log"), "--model", "llama-3.1-8b")
    assert res.rc == 0 and "smallest change that fits" in res.out and "--gpu-memory-utilization 0.95" in res.out


def test_cli_bad_input(run_cli: Run, tmp_path: Path) -> None:
    res = run_cli("explain", str(tmp_path / "nope.log"))
    assert res.rc == 2 and res.err.startswith("vram: error: file: cannot read")
    empty = tmp_path / "empty.log"
    empty.write_text("")
    res = run_cli("explain", str(empty))
    assert res.rc == 2 and "empty input" in res.err
    res = run_cli("explain", str(DATA / "vllm-10517-29k.log"), "--model", "no-such-model-xyz")
    assert res.rc == 2 and "unknown model" in res.err


def test_pytorch_oom_of_a_training_step() -> None:
    """A LoRA step of Llama-3.1-8B at 4 × 4,096 tokens on the 24 GB card of pytorch/pytorch#16417's message: the
    message's 22.9 GiB are a lower bound (the step stopped at the first allocation that failed); the fix found is
    checked with `vram fit --train`."""
    from vram.fitting import fit
    from vram.request import TrainWorkload

    tw = TrainWorkload(method="lora", batch=4, seq=4096)
    e = explain((DATA / "pytorch-16417-23gib.log").read_text(), model="llama-3.1-8b", train=tw)
    assert e.verdict == "no" and e.largest_difference == "peak_allocated"
    assert e.why is not None and "lower bound" in e.why
    assert e.fix == "--batch 1 --grad-accum 4 --method qlora --grad-checkpointing"
    fixed = TrainWorkload(method="qlora", batch=1, seq=4096, grad_accum=4, grad_checkpointing=True)
    assert fit("llama-3.1-8b", "rtx-4090", train=fixed).verdict != "no"
    assert e.workload["train"]["method"] == "lora"


def test_training_options_need_train(run_cli: Run) -> None:
    res = run_cli("explain", str(DATA / "pytorch-16417-23gib.log"), "--model", "llama-3.1-8b", "--seq", "4096")
    assert res.rc == 2 and "only with --train" in res.err
    res = run_cli("explain", str(DATA / "vllm-10517-29k.log"), "--model", "llama-3.1-8b", "--train")
    assert res.rc == 2 and "training applies to a PyTorch message" in res.err
