"""vram.fit: verdicts, GPU specs, per-GPU splits, tight solvers, which/compare, and the CLI around them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vram.catalog import all_gpus, find_gpu
from vram.devices import device_of, parse_gpu_list
from vram.dtypes import QUALITY_ORDER
from vram.errors import BadInput, UnknownGpu
from vram.fitting import (
    MIN_GPU_CANDIDATES,
    Evaluator,
    GpuChoice,
    best_quant,
    compare,
    context_limit,
    default_split,
    fit,
    max_batch,
    max_context,
    min_gpus,
    parse_gpu_spec,
    pp_stage_specs,
    quant_candidates,
    tp_rank_spec,
    which,
)
from vram.inference import estimate
from vram.records import replace
from vram.request import Workload

Run = Callable[..., Any]
GIB = 1024**3


@pytest.fixture(scope="module")
def ev70() -> Evaluator:
    return Evaluator("llama-3.1-70b")


@pytest.fixture(scope="module")
def ev13() -> Evaluator:
    return Evaluator("llama-2-13b")


# --- the seed's examples ------------------------------------------------------------------------------------------


def test_quantized_13b_fits_a_4090(ev13: Evaluator) -> None:
    r = fit(ev13, "rtx-4090", Workload(quant="q4_k_m", context=4096))
    assert r.fits and r.verdict == "fits"
    assert r.gpu == "rtx-4090" and r.gpu_count == 1
    assert r.per_gpu_bytes <= r.usable_bytes_per_gpu == find_gpu("4090").usable_memory_bytes


def test_quantized_70b_fits_one_h100_but_bf16_does_not(ev70: Evaluator) -> None:
    q = fit(ev70, "h100-sxm", Workload(quant="q4_k_m", context=4096))
    assert q.verdict == "fits"
    bf = fit(ev70, "h100-sxm", Workload(dtype="bfloat16", context=4096))
    assert bf.verdict == "no" and not bf.fits
    assert bf.per_gpu_bytes > bf.usable_bytes_per_gpu
    # weights alone (~131 GiB) exceed one H100, and two are the fewest that hold it
    assert bf.weights_bytes > 130 * GIB
    assert bf.min_gpus == 2
    assert bf.offload is not None and 0 < bf.offload["layers_on_gpu"] < 80


def test_bf16_70b_fits_two_h100_with_tensor_parallelism(ev70: Evaluator) -> None:
    r = fit(ev70, "2xh100-sxm", Workload(dtype="bfloat16", context=4096))
    assert r.fits and r.split == "tp" and r.gpu_count == 2
    assert r.verdict == "fits"
    assert len(r.ranks) == 2 and r.ranks[0].comm_bytes > 0


def test_h100_sxm_bandwidth_is_the_seeds_3_35_tb_per_s() -> None:
    assert find_gpu("h100-sxm").bandwidth_gb_per_s == 3350
    assert find_gpu("h100").id == "h100-sxm"


# --- agreement with `vram estimate` -------------------------------------------------------------------------------


@pytest.mark.parametrize(("gpu", "arch"), [("h100-sxm", "hopper"), ("rtx-4090", "ada"), ("a100-80gb-sxm", "ampere")])
def test_single_gpu_numbers_are_the_estimate(gpu: str, arch: str) -> None:
    wl = Workload(context=2048, batch=2, quant="q4_k_m")
    r = fit("llama-3.1-8b", gpu, wl, solve=False)
    est = estimate("llama-3.1-8b", replace(wl, devices=(device_of(gpu),)))
    assert r.per_gpu_bytes == est.total_bytes
    assert r.estimate.breakdown == est.breakdown
    assert r.weights_bytes == est.weights_bytes


def test_vllm_single_gpu_numbers_are_the_vllm_estimate() -> None:
    wl = Workload.from_flat(engine="vllm", context=8192, batch=4)
    g = find_gpu("l40s")
    r = fit("llama-3.1-8b", "l40s", wl, solve=False)
    est = estimate("llama-3.1-8b", replace(wl, devices=(device_of(g),)))
    assert r.per_gpu_bytes == est.total_bytes
    # vLLM's own reservation is the budget it must fit in
    assert r.usable_bytes_per_gpu == min(g.usable_memory_bytes, est.extra["reserved_bytes"])


def test_json_has_the_promised_keys(run_cli: Run) -> None:
    res = run_cli("fit", "llama-3.1-70b", "--gpu", "h100-sxm", "--quant", "q4_k_m", "--context", "4096", "--json")
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    for key in (
        "fits",
        "verdict",
        "gpu",
        "gpu_count",
        "per_gpu_bytes",
        "usable_bytes_per_gpu",
        "headroom_fraction",
        "max_context",
        "max_batch",
        "min_gpus",
        "recommended_quant",
        "breakdown",
        "serving",
        "speed",
    ):
        assert key in d
    assert d["fits"] is True and d["verdict"] == "fits" and d["gpu"] == "h100-sxm"
    assert d["headroom_fraction"] == 0.2
    assert sum(c["bytes"] for c in d["breakdown"]) == d["per_gpu_bytes"]
    assert d["serving"]["vllm"]["command"].startswith("vllm serve meta-llama/Llama-3.1-70B")


def test_cli_seed_examples(run_cli: Run) -> None:
    def verdict(*args: str) -> str:
        res = run_cli("fit", *args, "--json")
        assert res.rc == 0, res.err
        return str(json.loads(res.out)["verdict"])

    assert verdict("llama-2-13b", "--gpu", "rtx-4090", "--quant", "q4_k_m", "--context", "4096") == "fits"
    assert verdict("llama-3.1-70b", "--gpu", "h100-sxm", "--quant", "q4_k_m", "--context", "4096") == "fits"
    assert verdict("llama-3.1-70b", "--gpu", "h100-sxm", "--dtype", "bfloat16", "--context", "4096") == "no"
    assert verdict("llama-3.1-70b", "--gpu", "2xh100-sxm", "--dtype", "bfloat16", "--context", "4096") == "fits"


def test_cli_human_output_and_bad_input(run_cli: Run) -> None:
    res = run_cli("fit", "llama-3.1-8b", "--gpu", "4090", "--context", "8k")
    assert res.rc == 0
    assert "fits" in res.out and "vllm serve" in res.out and "llama-server" in res.out
    bad = run_cli("fit", "llama-3.1-8b", "--gpu", "h1000")
    assert bad.rc == 2 and bad.err.startswith("vram: error: unknown GPU") and bad.err.count("\n") == 1
    bad = run_cli("fit", "llama-3.1-8b", "--gpu", "0xh100")
    assert bad.rc == 2 and "count" in bad.err


# --- GPU specs ----------------------------------------------------------------------------------------------------


def test_gpu_specs() -> None:
    assert parse_gpu_spec("h100-sxm") == GpuChoice(find_gpu("h100-sxm"), 1)
    assert parse_gpu_spec("4090").gpu.id == "rtx-4090"
    c = parse_gpu_spec("2xh100-sxm")
    assert (c.gpu.id, c.count) == ("h100-sxm", 2)
    c = parse_gpu_spec("8xa100-80gb-sxm")
    assert (c.gpu.id, c.count) == ("a100-80gb-sxm", 8)
    assert parse_gpu_spec("4 × l40s").count == 4
    with pytest.raises(UnknownGpu):
        parse_gpu_spec("3xh1000")
    with pytest.raises(BadInput):
        parse_gpu_spec("0xh100")
    with pytest.raises(BadInput):
        parse_gpu_spec("  ")


def test_gpu_names_that_start_with_digits_then_x_are_names_not_counts() -> None:
    # "7900xtx" is the RX 7900 XTX, not 7900 × "tx"; a count in front of such a name still counts
    for name, gid in (("7900xtx", "rx-7900-xtx"), ("7900xt", "rx-7900-xt"), ("9070xt", "rx-9070-xt")):
        c = parse_gpu_spec(name)
        assert (c.gpu.id, c.count) == (gid, 1)
        c = parse_gpu_spec(f"2x{name}")
        assert (c.gpu.id, c.count) == (gid, 2)
    assert [g.id for g in parse_gpu_list("7900xtx+2x7900xt")] == ["rx-7900-xtx", "rx-7900-xt", "rx-7900-xt"]
    with pytest.raises(BadInput, match="between 1 and 1024"):
        parse_gpu_spec("9070xh100")


def test_vllm_on_unified_memory_says_the_os_shares_it() -> None:
    # a DGX Spark's 121.69 GiB are the system's too: vLLM's start-up check wants utilization x total free
    spark = fit("qwen2.5-7b", "dgx-spark", Workload.from_flat(engine="vllm", context=8192))
    assert spark.serving is not None
    notes = spark.serving["vllm"]["notes"]
    assert any("unified memory" in n and "0.9 × 121.69 GiB" in n and "0.8–0.85" in n for n in notes), notes
    h100 = fit("qwen2.5-7b", "h100-sxm", Workload.from_flat(engine="vllm", context=8192))
    assert h100.serving is not None and not any("unified memory" in n for n in h100.serving["vllm"]["notes"])


def test_vllm_on_a_gpu_older_than_volta_is_an_error(run_cli: Run) -> None:
    # vLLM's CUDA kernels need compute capability 7.0+; a Tesla P40 is Pascal (6.1); llama.cpp runs there
    with pytest.raises(BadInput, match=r"compute capability 7\.0") as e:
        fit("llama-3.1-8b", "tesla-p40", Workload.from_flat(engine="vllm", context=4096))
    assert e.value.field == "engine"
    r = fit("llama-3.1-8b", "tesla-p40", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096))
    assert r.verdict == "fits" and r.serving is not None
    assert r.serving["vllm"]["command"] == "" and "Pascal" in r.serving["vllm"]["notes"][0]
    # no tensor cores and FP16 at 1/64 of FP32: llama.cpp's dp4a MMQ kernels multiply the quantized blocks, at a
    # share of the INT8 rate one source sets (llama.cpp#4766: LLaMA 7B Q4_0 pp512 912 t/s), so no range
    assert r.speed is not None and r.speed.prefill_tokens_per_s is not None and r.speed.prefill_range is None
    assert r.speed.decode_range_per_seq is not None
    assert any("INT8 dp4a through MMQ" in a for a in r.speed.assumptions)
    q4_0 = fit("llama-2-7b", "tesla-p40", Workload.from_flat(engine="llama.cpp", quant="q4_0", context=512))
    assert q4_0.speed is not None and q4_0.speed.prefill_tokens_per_s == pytest.approx(912, rel=0.1)
    f16 = fit("llama-2-7b", "tesla-p40", Workload.from_flat(engine="llama.cpp", quant="f16", context=512))
    assert f16.speed is not None and any("FP32 (cuBLAS SGEMM" in a for a in f16.speed.assumptions)
    # a GPU whose matrix rate is not published at all says why it has no prefill figure
    a10g = fit("llama-3.1-8b", "a10g", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096))
    assert a10g.speed is not None and a10g.speed.prefill_tokens_per_s is None
    assert any(a.startswith("prefill: not estimated") for a in a10g.speed.assumptions)
    # which lists it for llama.cpp, never for vLLM
    llama = {o.gpu for o in which("llama-3.1-8b", Workload.from_flat(engine="llama.cpp", quant="q4_k_m"), counts=(1,))}
    served = {o.gpu for o in which("llama-3.1-8b", Workload.from_flat(engine="vllm", context=4096), counts=(1,))}
    assert "tesla-p40" in llama and "tesla-p40" not in served and "v100-32gb" in served  # Volta: the oldest it runs on
    res = run_cli("fit", "llama-3.1-8b", "--gpu", "2xp40", "--engine", "vllm")
    assert res.rc == 2 and res.err.count("\n") <= 1 and "Pascal" in res.err and "Traceback" not in res.err


# --- splits -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [2, 4, 8])
def test_tp_ranks_add_up_to_the_whole_plus_replicated_parts(ev70: Evaluator, t: int) -> None:
    wl = Workload(context=4096)
    r = fit(ev70, f"{t}xh100-sxm", wl, solve=False)
    assert r.split == "tp" and len(r.ranks) == t
    whole = fit(ev70, "h100-sxm", wl, solve=False)
    replicated = r.ranks[0].weights_replicated_bytes
    assert 0 < replicated < whole.weights_bytes / 1000  # norms only
    total_weights = sum(u.weights_bytes for u in r.ranks)
    # sharded parts sum to the whole; replicated parts appear once per rank (ceil rounding: < 1 byte per class)
    assert abs(total_weights - (whole.weights_bytes + (t - 1) * replicated)) <= 8 * t
    # 8 KV heads: the cache is sharded exactly up to 8 ranks
    assert sum(u.kv_cache_bytes for u in r.ranks) == whole.estimate.component("kv_cache").bytes  # type: ignore[union-attr]
    # every rank keeps its own CUDA context
    assert all(u.cuda_context_bytes == whole.ranks[0].cuda_context_bytes for u in r.ranks)


def test_tp_beyond_the_kv_heads_replicates_them(ev70: Evaluator) -> None:
    spec = ev70.spec
    a = spec.layers[0].attention
    assert a is not None and a.num_kv_heads == 8
    rank = tp_rank_spec(spec, 16)
    ra = rank.layers[0].attention
    assert ra is not None and ra.num_kv_heads == 1 and ra.num_heads == 4
    # each of 16 ranks holds one whole KV head: k/v weights per rank = 1/8 of them, not 1/16
    kv_proj = spec.hidden_size * a.num_kv_heads * 2 * a.head_dim
    others = spec.layers[0].linear_params - kv_proj
    assert rank.layers[0].linear_params == -(-others // 16) + kv_proj // 8
    assert default_split(spec, 16, "transformers") == "tp"
    assert default_split(spec, 3, "transformers") == "pp"
    assert default_split(spec, 2, "llama.cpp") == "pp"
    with pytest.raises(BadInput, match="divide"):
        fit(ev70, "3xh100-sxm", Workload(), split="tp")
    assert fit(ev70, "2xh100-sxm", Workload(), split="pp", solve=False).split == "pp"


def test_pp_stages_hold_their_layers(ev70: Evaluator) -> None:
    spec = ev70.spec
    stages = pp_stage_specs(spec, 3)
    assert [s.num_layers for s in stages] == [27, 27, 26]
    assert sum(s.params for s in stages) == spec.params  # untied head: nothing duplicated
    assert stages[0].embed_params == spec.embed_params and stages[1].embed_params == 0
    assert stages[-1].head_params == spec.head_params and stages[0].head_params == 0
    r = fit(ev70, "3xh100-sxm", Workload(context=4096), solve=False)
    assert r.split == "pp" and len(r.ranks) == 3
    whole = fit(ev70, "h100-sxm", Workload(context=4096), solve=False)
    # each stage keeps its own rotary inv_freq buffer (2 × rope_dim bytes); everything else is split
    buffers = 2 * spec.rope_dim
    assert abs(sum(u.weights_bytes for u in r.ranks) - (whole.weights_bytes + 2 * buffers)) <= 24
    assert r.per_gpu_bytes == max(u.total_bytes for u in r.ranks)


def test_pp_with_tied_embeddings_copies_the_head() -> None:
    ev = Evaluator("llama-3.2-1b")
    assert ev.spec.tie_word_embeddings
    stages = pp_stage_specs(ev.spec, 2)
    assert stages[-1].head_params == ev.spec.embed_params
    assert sum(s.params for s in stages) == ev.spec.params + ev.spec.embed_params


def test_headroom_moves_the_verdict(ev13: Evaluator) -> None:
    wl = Workload(quant="q4_k_m", context=4096)
    assert fit(ev13, "rtx-4090", wl, solve=False).verdict == "fits"
    assert fit(ev13, "rtx-4090", wl, headroom_fraction=5.0, solve=False).verdict == "tight"
    with pytest.raises(BadInput):
        fit(ev13, "rtx-4090", wl, headroom_fraction=-1)


# --- solvers: tight by construction, checked as properties over the catalog ---------------------------------------

MODELS = ("llama-3.1-8b", "qwen2.5-7b", "gemma-2-9b", "mixtral-8x7b", "llama-3.2-1b", "phi-3-mini")
GPUS = tuple(g.id for g in all_gpus())
_EVALUATORS: dict[str, Evaluator] = {}


def _ev(model: str) -> Evaluator:
    if model not in _EVALUATORS:
        _EVALUATORS[model] = Evaluator(model)
    return _EVALUATORS[model]


workloads = st.builds(
    Workload.from_flat,
    batch=st.sampled_from([1, 2, 4]),
    context=st.sampled_from([1024, 4096, 16384]),
    quant=st.sampled_from([None, "q4_k_m", "fp8"]),
    engine=st.sampled_from(["transformers", "vllm"]),
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(model=st.sampled_from(MODELS), gpu=st.sampled_from(GPUS), count=st.sampled_from([1, 2]), wl=workloads)
def test_max_context_is_tight(model: str, gpu: str, count: int, wl: Workload) -> None:
    ev = _ev(model)
    choice = GpuChoice(find_gpu(gpu), count)
    wl = wl.validate()
    c = max_context(ev, choice, wl)
    cap = context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None) - wl.new_tokens
    if c is None:
        assert not ev.fits_in_memory(choice, replace(wl, context=1))
        return
    assert 1 <= c <= cap
    assert ev.fits_in_memory(choice, replace(wl, context=c))
    if c < cap:
        assert not ev.fits_in_memory(choice, replace(wl, context=c + 1))


@FAST
@given(model=st.sampled_from(MODELS), gpu=st.sampled_from(GPUS), count=st.sampled_from([1, 2]), wl=workloads)
def test_max_batch_is_tight(model: str, gpu: str, count: int, wl: Workload) -> None:
    ev = _ev(model)
    choice = GpuChoice(find_gpu(gpu), count)
    wl = wl.validate()
    b = max_batch(ev, choice, wl)
    if b is None:
        assert not ev.fits_in_memory(choice, replace(wl, batch=1))
        return
    assert ev.fits_in_memory(choice, replace(wl, batch=b))
    assert not ev.fits_in_memory(choice, replace(wl, batch=b + 1))


@settings(max_examples=10, deadline=None)
@given(model=st.sampled_from((*MODELS, "llama-3.1-70b")), gpu=st.sampled_from(GPUS), wl=workloads)
def test_min_gpus_is_the_smallest_count(model: str, gpu: str, wl: Workload) -> None:
    ev = _ev(model)
    g = find_gpu(gpu)
    wl = wl.validate()
    n = min_gpus(ev, g, wl)
    tried = [k for k in MIN_GPU_CANDIDATES if n is None or k < n]
    for k in tried:
        if default_split(ev.spec, k, wl.engine) == "pp" and k > ev.spec.num_layers:
            continue
        assert not ev.fits_in_memory(GpuChoice(g, k), wl)
    if n is not None:
        assert ev.fits_in_memory(GpuChoice(g, n), wl)


@settings(max_examples=10, deadline=None)
@given(model=st.sampled_from(MODELS), gpu=st.sampled_from(GPUS))
def test_best_quant_is_the_first_in_quality_order_with_headroom(model: str, gpu: str) -> None:
    ev = _ev(model)
    choice = GpuChoice(find_gpu(gpu), 1)
    wl = Workload(context=4096).validate()
    q = best_quant(ev, choice, wl)
    verdicts = []
    for name in quant_candidates(wl.engine):
        r = fit(ev, choice, replace(wl, quant=None if name == "bfloat16" else name), solve=False, with_speed=False)
        verdicts.append((name, r.verdict))
    first_fits = next((n for n, v in verdicts if v == "fits"), None)
    first_tight = next((n for n, v in verdicts if v == "tight"), None)
    assert q == (first_fits or first_tight)


def test_solver_answers_on_a_known_case(ev70: Evaluator) -> None:
    r = fit(ev70, "h100-sxm", Workload(quant="q4_k_m", context=4096))
    assert r.max_context is not None and r.max_context > 4096
    assert r.max_batch is not None and r.max_batch >= 1
    assert r.min_gpus == 1
    assert r.recommended_quant in QUALITY_ORDER
    # the recommended format is better (earlier) than or equal to the one asked for
    assert QUALITY_ORDER.index(r.recommended_quant) <= QUALITY_ORDER.index("q4_k_m")
    assert quant_candidates("llama.cpp") == (
        "bfloat16",
        "q8_0",
        "q6_k",
        "q5_k_m",
        "q4_k_m",
        "q4_k_s",
        "q3_k_l",
        "q3_k_m",
        "q2_k",
    )
    assert "q4_k_m" not in quant_candidates("vllm") and "awq-4bit-g128" in quant_candidates("transformers")
    cpp = fit(ev70, "rtx-4090", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096))
    # even llama-quantize's Q2_K of a 70B is 26.4 GB (the published files' size), more than a 24 GB card holds
    assert cpp.recommended_quant is None
    cpp2 = fit(ev70, "2xh100-sxm", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=4096))
    assert cpp2.recommended_quant in quant_candidates("llama.cpp")


# --- which / compare ----------------------------------------------------------------------------------------------


def test_which_lists_only_fits_and_sorts_by_cost() -> None:
    wl = Workload(context=4096, quant="q4_k_m")
    opts = which("llama-3.1-70b", wl)
    assert opts
    assert all(o.per_gpu_bytes <= o.usable_bytes_per_gpu for o in opts)
    assert {o.gpu_count for o in opts} <= {1, 2, 4, 8}
    ids = {(o.gpu, o.gpu_count) for o in opts}
    assert ("h100-sxm", 1) in ids and ("rtx-4090", 1) not in ids
    costs = [o.speed.cost_per_million_tokens_usd for o in opts]
    known = [c for c in costs if c is not None]
    assert known == sorted(known)
    assert costs[: len(known)] == known  # priced options first
    by_speed = which("llama-3.1-70b", wl, sort="speed")
    speeds = [o.speed.decode_tokens_per_s for o in by_speed]
    assert speeds == sorted(speeds, reverse=True)
    with pytest.raises(BadInput):
        which("llama-3.1-70b", wl, sort="vibes")


def test_which_agrees_with_fit() -> None:
    wl = Workload(context=8192)
    for o in which("llama-3.1-8b", wl, counts=(1, 2))[:10]:
        r = fit("llama-3.1-8b", f"{o.gpu_count}x{o.gpu}", wl, solve=False)
        assert r.per_gpu_bytes == o.per_gpu_bytes and r.verdict == o.verdict


def test_compare_and_which_cli(run_cli: Run) -> None:
    res = run_cli("compare", "llama-3.1-8b", "--gpu", "h100-sxm,4090,2xl4", "--json")
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    assert [x["gpu"] for x in d] == ["h100-sxm", "rtx-4090", "l4"] and d[2]["gpu_count"] == 2
    assert [r.gpu for r in compare("llama-3.1-8b", ["h100-sxm"])] == ["h100-sxm"]
    res = run_cli("which", "llama-3.1-8b", "--context", "32k", "--json")
    assert res.rc == 0
    rows = json.loads(res.out)
    assert rows and all(r["fits"] for r in rows)
    assert "decode_tokens_per_s" in rows[0] and "ttft_s" in rows[0] and "cost_per_million_tokens_usd" in rows[0]
    res = run_cli("which", "llama-3.1-8b", "--limit", "5")
    assert res.rc == 0 and "GPU options" in res.out
    assert run_cli("compare", "llama-3.1-8b", "--gpu", ",").rc == 2


# --- local GPUs (NVML mocked: hermetic) ---------------------------------------------------------------------------


def test_local_without_nvml_says_so(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import vram.local
    from vram.errors import NeedsExtra

    def missing() -> list[Any]:
        raise NeedsExtra("reading this machine's GPUs", "local")

    monkeypatch.setattr(vram.local, "local_gpus", missing)
    res = run_cli("local")
    assert res.rc == 0 and "no local GPU" in res.out and "vram[local]" in res.out
    res = run_cli("fit", "llama-3.1-8b", "--gpu", "local")
    assert res.rc == 2 and "vram[local]" in res.err


def test_fit_on_local_gpus_uses_their_free_memory(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import vram.local
    from vram.local import LocalGpu

    h100 = find_gpu("h100-sxm")
    fake = [
        LocalGpu(
            i,
            "NVIDIA H100 80GB HBM3",
            h100.usable_memory_bytes,
            30 * GIB,
            h100.usable_memory_bytes - 30 * GIB,
            "570.1",
            "h100-sxm",
        )
        for i in range(2)
    ]
    monkeypatch.setattr(vram.local, "local_gpus", lambda: fake)
    res = run_cli("local", "--json")
    assert res.rc == 0 and json.loads(res.out)["gpus"][0]["free_bytes"] == 30 * GIB
    res = run_cli("local")
    assert res.rc == 0 and "2 local GPUs" in res.out and "30.00" in res.out and "h100-sxm" in res.out
    one = fit("llama-3.1-8b", "local", Workload(context=4096), solve=False)
    assert one.gpu_count == 2 and one.usable_bytes_per_gpu == 30 * GIB
    assert fit("llama-3.1-8b", "1xlocal", Workload(context=4096), solve=False).gpu_count == 1
    assert fit("llama-3.1-70b", "1xlocal", Workload(quant="q4_k_m"), solve=False).verdict == "no"
    with pytest.raises(BadInput):
        fit("llama-3.1-8b", "4xlocal", Workload())
    assert vram.local.match_catalog("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert vram.local.match_catalog("NVIDIA GeForce RTX 4090") == "rtx-4090"


def test_measure_explains_what_it_needs(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    res = run_cli("measure", "llama-3.1-8b")
    assert res.rc == 2 and "vram[measure]" in res.err and res.err.count("\n") == 1


def test_training_fit_uses_the_training_estimate() -> None:
    from vram.request import TrainWorkload
    from vram.training import estimate_training

    g = find_gpu("rtx-4090")
    tw = TrainWorkload(seq=2048)
    r = fit("qwen2.5-0.5b", "rtx-4090", train=tw)
    est = estimate_training("qwen2.5-0.5b", replace(tw, device=device_of(g)))
    assert r.engine == "training" and r.per_gpu_bytes == est.total_bytes
    assert r.max_batch is not None
    at = estimate_training("qwen2.5-0.5b", replace(tw, device=device_of(g), batch=r.max_batch)).total_bytes
    beyond = estimate_training("qwen2.5-0.5b", replace(tw, device=device_of(g), batch=r.max_batch + 1)).total_bytes
    assert at <= g.usable_memory_bytes < beyond


def test_llama_cpp_splits_by_layers() -> None:
    r = fit(
        "llama-3.1-70b", "2xrtx-4090", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=8192), solve=False
    )
    assert r.split == "pp" and [u.layers for u in r.ranks] == [(0, 39), (40, 79)]
    assert (
        "--split-mode layer --tensor-split 1,1"
        in fit(
            "llama-3.1-70b", "2xrtx-4090", Workload.from_flat(engine="llama.cpp", quant="q4_k_m", context=8192)
        ).serving["llama_cpp"]["command"]
    )


def test_models_that_are_not_llms_run_as_replicas() -> None:
    one = fit("flux.1-dev", "h100-sxm", Workload(), solve=False)
    two = fit("flux.1-dev", "2xh100-sxm", Workload())
    assert two.split == "dp" and len(two.ranks) == 2
    assert two.per_gpu_bytes == one.per_gpu_bytes  # every GPU holds the whole model
    assert two.speed is None and set(two.serving) == {"diffusers", "primary"}
    assert any("one pipeline per GPU" in n for n in two.serving["diffusers"]["notes"])
    with pytest.raises(BadInput):
        fit("flux.1-dev", "2xh100-sxm", Workload(), split="tp")
    opts = which("flux.1-dev", Workload(), counts=(1,))
    assert opts and all(o.speed is None for o in opts)
    on_4090 = fit("flux.1-dev", "4090", Workload(), solve=False)
    assert on_4090.verdict == "no"  # ~33 GiB of bf16 weights and activations
    assert "rtx-4090" not in {o.gpu for o in opts} and "h100-sxm" in {o.gpu for o in opts}


def test_cli_training_fit(run_cli: Run) -> None:
    res = run_cli("fit", "llama-3.1-8b", "--gpu", "4xh100-sxm", "--train", "--zero", "3", "--seq", "4096", "--json")
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    assert d["engine"] == "training" and d["gpu_count"] == 4 and d["fits"]
    # ZeRO-3 shards the weights over the 4 GPUs; one GPU cannot shard, so two are the fewest
    assert d["weights_bytes"] < 16e9 / 3 and d["min_gpus"] == 2
    res = run_cli("fit", "llama-3.1-8b", "--gpu", "4xh100-sxm", "--train", "--zero", "3")
    assert res.rc == 0 and "training step" in res.out
