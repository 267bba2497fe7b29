"""Properties of the estimator and the planner, checked over generated workloads (hypothesis, bounded).

* memory never decreases as context, batch, new tokens or bits grow (inference on every engine, and training);
* tensor-parallel ranks add up to the whole model plus what every rank holds whole; pipeline stages to the whole
  plus each stage's own rotary buffer (and the tied head's copy of the embedding);
* max-context and max-batch answers are tight: the estimate at the answer fits, one step more does not;
* no negative, NaN or infinite number anywhere in an estimate, a fit or a `which` option;
* every catalog model and GPU loads and estimates for a grid of workloads.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vram.catalog import all_gpus, all_models, find_gpu
from vram.devices import device_of
from vram.errors import BadInput, VramError
from vram.fitting import (
    Evaluator,
    GpuChoice,
    context_limit,
    evaluator_for,
    fit,
    max_batch,
    max_context,
    which,
)
from vram.inference import estimate
from vram.records import replace
from vram.request import TrainWorkload, Workload
from vram.result import Estimate
from vram.training import estimate_training

# A spread of architectures: dense GQA, MHA, sliding windows, MoE, multi-head latent attention, convolution layers,
# tied embeddings, LayerNorm models, tiny and large.
LLMS = (
    "llama-3.1-8b",
    "qwen2.5-0.5b",
    "gemma-2-9b",
    "gemma-3-4b",
    "mixtral-8x7b",
    "deepseek-v2-lite",
    "gpt-oss-20b",
    "lfm2-350m",
    "phi-3-mini-4k",
    "falcon3-1b",
    "olmo-2-7b",
    "qwen3-30b-a3b",
    "smollm2-135m",
    "llama-2-7b",
    "command-r-v01",
)
ENGINES = ("transformers", "vllm", "llama.cpp")
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SLOW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

tokens = st.integers(min_value=1, max_value=65536)
batches = st.integers(min_value=1, max_value=64)
MEMORY_FIELDS = ("weights_bytes", "kv_cache_bytes", "activation_bytes", "peak_allocated_bytes", "total_bytes")


def _est(model: str, **kw: Any) -> Estimate:
    if kw.get("engine") == "vllm":
        kw.setdefault("devices", (device_of("h100-sxm"),))
    return estimate(model, Workload.from_flat(**kw))


def _ordered(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


def _assert_not_less(small: Estimate, big: Estimate, what: str) -> None:
    for f in ("kv_cache_bytes", "peak_allocated_bytes", "total_bytes"):
        assert getattr(big, f) >= getattr(small, f), f"{f} decreased as {what} grew: {small.workload} -> {big.workload}"


# ---------------------------------------------------------------------------------------------------------------
# monotonicity: inference


@FAST
@given(
    model=st.sampled_from(LLMS),
    engine=st.sampled_from(ENGINES),
    c=st.tuples(tokens, tokens),
    batch=batches,
    new_tokens=st.integers(0, 512),
)
def test_inference_memory_never_decreases_with_context(
    model: str, engine: str, c: tuple[int, int], batch: int, new_tokens: int
) -> None:
    lo, hi = _ordered(*c)
    small = _est(model, engine=engine, context=lo, batch=batch, new_tokens=new_tokens)
    big = _est(model, engine=engine, context=hi, batch=batch, new_tokens=new_tokens)
    _assert_not_less(small, big, "context")


@FAST
@given(
    model=st.sampled_from(LLMS),
    engine=st.sampled_from(ENGINES),
    b=st.tuples(batches, batches),
    context=st.integers(1, 32768),
)
def test_inference_memory_never_decreases_with_batch(model: str, engine: str, b: tuple[int, int], context: int) -> None:
    lo, hi = _ordered(*b)
    _assert_not_less(
        _est(model, engine=engine, context=context, batch=lo),
        _est(model, engine=engine, context=context, batch=hi),
        "batch",
    )


@FAST
@given(
    model=st.sampled_from(LLMS),
    engine=st.sampled_from(ENGINES),
    n=st.tuples(st.integers(0, 4096), st.integers(0, 4096)),
    context=st.integers(1, 16384),
)
def test_inference_memory_never_decreases_with_new_tokens(
    model: str, engine: str, n: tuple[int, int], context: int
) -> None:
    lo, hi = _ordered(*n)
    _assert_not_less(
        _est(model, engine=engine, context=context, new_tokens=lo),
        _est(model, engine=engine, context=context, new_tokens=hi),
        "new_tokens",
    )


@pytest.mark.parametrize("model", LLMS)
def test_more_bits_per_weight_never_take_less_memory(model: str) -> None:
    """q4_k_m < q8_0 < bf16 (< fp32) weights, on every engine; with the KV cache held at bf16, peaks follow.
    (llama.cpp runs an unquantized model as a 16-bit GGUF whatever the dtype asked, so fp32 is left out there.)"""
    for engine in ENGINES:
        kw: dict[str, Any] = {"engine": engine, "context": 2048, "kv_dtype": "bfloat16"}
        ests = [_est(model, quant=q, **kw) for q in ("q4_k_m", "q8_0")]
        dtypes = ("bfloat16",) if engine == "llama.cpp" else ("bfloat16", "float32")
        # 16 / 32-bit weights asked as the format (--quant): a checkpoint's quantization_config (gpt-oss's MXFP4
        # experts) is otherwise the default weight format, on llama.cpp too (its GGUF conversion keeps MXFP4)
        ests += [_est(model, dtype=d, quant=d, **kw) for d in dtypes]
        weights = [e.weights_bytes for e in ests]
        assert weights == sorted(weights) and len(set(weights)) == len(ests), (engine, weights)
        peaks = [e.peak_allocated_bytes for e in ests]
        assert peaks == sorted(peaks), (engine, peaks)


@FAST
@given(
    model=st.sampled_from(LLMS),
    engine=st.sampled_from(("transformers", "llama.cpp")),
    context=st.integers(1, 65536),
    batch=batches,
)
def test_an_8_bit_kv_cache_is_smaller_than_bf16(model: str, engine: str, context: int, batch: int) -> None:
    e8 = _est(model, engine=engine, context=context, batch=batch, kv_dtype="int8")
    e16 = _est(model, engine=engine, context=context, batch=batch, kv_dtype="bfloat16")
    assert e8.kv_cache_bytes <= e16.kv_cache_bytes
    assert e8.total_bytes <= e16.total_bytes
    spec = evaluator_for(model).spec
    if spec.attention_layers:  # models with attention caches: strictly smaller
        assert e8.kv_cache_bytes < e16.kv_cache_bytes


# ---------------------------------------------------------------------------------------------------------------
# monotonicity: training


TRAIN_MODELS = (
    "llama-3.2-1b",
    "qwen2.5-0.5b",
    "gemma-2-2b",
    "mixtral-8x7b",
    "deepseek-v2-lite",
    "phi-3-mini-4k",
    "smollm2-135m",
    "gpt-oss-20b",
)
train_options = st.fixed_dictionaries(
    {
        "method": st.sampled_from(("full", "lora", "qlora")),
        "optimizer": st.sampled_from(("adamw", "adamw-fused", "adamw-8bit", "sgd", "adafactor")),
        "grad_checkpointing": st.booleans(),
        "precision": st.sampled_from(("bf16", "mixed")),
    }
)


def _never_less(small: Any, big: Any, sizes: tuple[int, int]) -> None:
    """Live memory never shrinks with more tokens. The device total may dip by the caching allocator's packing
    (a slightly larger step can fit its blocks into cached ones better; the replay reproduces that), never by more
    than 0.5 %."""
    for f in ("activation_bytes", "peak_allocated_bytes"):
        assert getattr(big, f) >= getattr(small, f), (f, sizes)
    assert big.total_bytes >= small.total_bytes * 0.995, ("total_bytes", sizes)


@SLOW
@given(
    model=st.sampled_from(TRAIN_MODELS),
    opts=train_options,
    s=st.tuples(st.integers(1, 16384), st.integers(1, 16384)),
    batch=st.integers(1, 8),
)
def test_training_memory_never_decreases_with_seq(
    model: str, opts: dict[str, Any], s: tuple[int, int], batch: int
) -> None:
    lo, hi = _ordered(*s)
    small = estimate_training(model, TrainWorkload(seq=lo, batch=batch, **opts))
    big = estimate_training(model, TrainWorkload(seq=hi, batch=batch, **opts))
    _never_less(small, big, (lo, hi))


@SLOW
@given(
    model=st.sampled_from(TRAIN_MODELS),
    opts=train_options,
    b=st.tuples(st.integers(1, 32), st.integers(1, 32)),
    seq=st.integers(1, 8192),
)
def test_training_memory_never_decreases_with_batch(
    model: str, opts: dict[str, Any], b: tuple[int, int], seq: int
) -> None:
    lo, hi = _ordered(*b)
    small = estimate_training(model, TrainWorkload(seq=seq, batch=lo, **opts))
    big = estimate_training(model, TrainWorkload(seq=seq, batch=hi, **opts))
    _never_less(small, big, (lo, hi))


@pytest.mark.parametrize("model", TRAIN_MODELS)
def test_training_weights_follow_precision(model: str) -> None:
    """QLoRA's 4-bit base < bf16 full fine-tuning < fp32 full fine-tuning, for weights and for the peak."""
    q = estimate_training(model, TrainWorkload(method="qlora", seq=512))
    b = estimate_training(model, TrainWorkload(method="full", precision="bf16", seq=512))
    f = estimate_training(model, TrainWorkload(method="full", precision="fp32", seq=512))
    assert q.weights_bytes < b.weights_bytes < f.weights_bytes
    assert q.peak_allocated_bytes < b.peak_allocated_bytes < f.peak_allocated_bytes


# ---------------------------------------------------------------------------------------------------------------
# splits add up


def _mla_replicated_bytes(ev: Evaluator, bytes_per_weight: float) -> int:
    """MLA's q_a / kv_a down-projections: whole on every TP rank (vLLM ReplicatedLinear)."""
    total = 0
    for layer in ev.spec.layers:
        a = layer.attention
        if a is not None and a.kind == "mla":
            total += ev.spec.hidden_size * (a.q_lora_rank + a.kv_lora_rank + a.rope_head_dim)
    return int(total * bytes_per_weight)


def _kv_head_copies_bytes(ev: Evaluator, t: int, bytes_per_weight: float) -> int:
    """With more ranks than KV heads each rank keeps one KV head's k/v projections: the copies beyond the whole."""
    total = 0
    for layer in ev.spec.layers:
        a = layer.attention
        if a is not None and a.kind != "mla" and t > a.num_kv_heads:
            total += ev.spec.hidden_size * (a.head_dim + a.v_head_dim) * (t - a.num_kv_heads)
    return int(total * bytes_per_weight)


@pytest.mark.parametrize("model", LLMS)
@pytest.mark.parametrize("t", [2, 4, 8])
def test_tensor_parallel_ranks_add_up_to_the_whole_plus_the_replicated(model: str, t: int) -> None:
    ev = Evaluator(model)
    att = next((la.attention for la in ev.spec.layers if la.attention), None)
    if att is None or att.num_heads % t:
        pytest.skip(f"TP {t} does not divide the heads")
    wl = Workload(context=4096).validate()
    whole = ev.rank_weights("single", 1, wl)
    rank = ev.rank_weights("tp", t, wl)
    replicated = ev.replicated_weights(wl)
    assert replicated >= _mla_replicated_bytes(ev, 2)  # MLA's down-projections are among what every rank holds
    copies = _kv_head_copies_bytes(ev, t, 2)
    assert t * rank == whole + (t - 1) * replicated + copies, t * rank - whole - (t - 1) * replicated - copies
    # the KV cache: sharded by KV heads; one head per rank when there are fewer heads than ranks; MLA's latent whole
    kv_whole = ev.estimates("single", 1, wl)[0].kv_cache_bytes
    kv_rank = ev.estimates("tp", t, wl)[0].kv_cache_bytes
    if att.kind == "mla":
        assert kv_rank == kv_whole
    elif t <= att.num_kv_heads:
        assert t * kv_rank == kv_whole
    else:
        assert kv_rank * att.num_kv_heads == kv_whole
    # what `vram fit` reports per rank says the same
    r = fit(ev, f"{t}xh100-sxm", wl, split="tp", solve=False, with_speed=False)
    assert len(r.ranks) == t and all(x.weights_bytes == rank for x in r.ranks)
    assert r.weights_bytes == whole


@pytest.mark.parametrize("model", ["deepseek-v2-lite"])
def test_fit_reports_what_tp_ranks_replicate(model: str) -> None:
    """`weights_replicated_bytes` of a TP rank is what makes the ranks add up to the whole model."""
    r = fit(model, "2xh100-sxm", Workload(context=4096), split="tp", solve=False, with_speed=False)
    rank = r.ranks[0]
    assert 2 * rank.weights_bytes == r.weights_bytes + rank.weights_replicated_bytes


@pytest.mark.parametrize("model", LLMS)
@pytest.mark.parametrize("p", [2, 3, 4])
def test_pipeline_stages_add_up_to_the_whole(model: str, p: int) -> None:
    ev = Evaluator(model)
    wl = Workload(context=4096).validate()
    whole = ev.estimates("single", 1, wl)[0]
    stages = ev.estimates("pp", p, wl)
    rms = ev.rank_models("pp", p)
    assert len(rms) == p
    excess = sum(e.weights_bytes for e in stages) - whole.weights_bytes
    rope_buffers = (p - 1) * 2 * ev.spec.rope_dim  # each stage builds its own rotary inv_freq buffer
    tied_copy = 2 * ev.spec.embed_params if ev.spec.tie_word_embeddings else 0  # the last stage's own head
    assert excess == rope_buffers + tied_copy
    assert sum(e.kv_cache_bytes for e in stages) == whole.kv_cache_bytes
    assert sum(r.spec.num_layers for r in rms) == ev.spec.num_layers


# ---------------------------------------------------------------------------------------------------------------
# solvers are tight


GPUS = ("rtx-4090", "rtx-3060-12gb", "l4", "a100-80gb-sxm", "h100-sxm", "mi300x", "m2-ultra-192gb")


def _gpu(query: str) -> Any:
    try:
        return find_gpu(query)
    except VramError:
        return all_gpus()[zlib.crc32(query.encode()) % len(all_gpus())]


@SLOW
@given(
    model=st.sampled_from(LLMS),
    gpu=st.sampled_from(GPUS),
    count=st.sampled_from((1, 2, 4)),
    engine=st.sampled_from(ENGINES),
    batch=st.integers(1, 16),
    new_tokens=st.integers(0, 1024),
)
def test_max_context_is_tight(model: str, gpu: str, count: int, engine: str, batch: int, new_tokens: int) -> None:
    ev = evaluator_for(model)
    choice = GpuChoice(_gpu(gpu), count)
    wl = Workload.from_flat(engine=engine, batch=batch, new_tokens=new_tokens).validate()
    split = None if count == 1 else ev.default_split(count, engine)
    if split == "pp" and count > ev.spec.num_layers:
        return
    m = max_context(ev, choice, wl, split)
    cap = max(1, context_limit(ev.spec, ev.rm.entry.context_length if ev.rm.entry else None) - new_tokens)
    if m is None:
        assert not ev.fits_in_memory(choice, replace(wl, context=1), split)
        return
    assert 1 <= m <= cap
    assert ev.fits_in_memory(choice, replace(wl, context=m), split)
    if m < cap:
        assert not ev.fits_in_memory(choice, replace(wl, context=m + 1), split)


@SLOW
@given(
    model=st.sampled_from(LLMS),
    gpu=st.sampled_from(GPUS),
    count=st.sampled_from((1, 2, 8)),
    engine=st.sampled_from(ENGINES),
    context=st.integers(1, 32768),
)
def test_max_batch_is_tight(model: str, gpu: str, count: int, engine: str, context: int) -> None:
    ev = evaluator_for(model)
    choice = GpuChoice(_gpu(gpu), count)
    wl = Workload.from_flat(engine=engine, context=context).validate()
    split = None if count == 1 else ev.default_split(count, engine)
    if split == "pp" and count > ev.spec.num_layers:
        return
    b = max_batch(ev, choice, wl, split)
    if b is None:
        assert not ev.fits_in_memory(choice, replace(wl, batch=1), split)
        return
    assert ev.fits_in_memory(choice, replace(wl, batch=b), split)
    if b < 1 << 16:
        assert not ev.fits_in_memory(choice, replace(wl, batch=b + 1), split)


@pytest.mark.parametrize(
    ("model", "gpu"), [("llama-3.2-1b", "rtx-4090"), ("qwen2.5-0.5b", "l4"), ("smollm2-135m", "rtx-3060-12gb")]
)
def test_training_fit_solvers_are_tight(model: str, gpu: str) -> None:
    tw = TrainWorkload(seq=1024, batch=1)
    r = fit(model, gpu, train=tw)
    usable = r.usable_bytes_per_gpu

    def total(**kw: Any) -> int:
        return estimate_training(model, replace(tw, device=device_of(gpu), **kw)).total_bytes

    assert r.max_context is not None and r.max_batch is not None
    assert total(seq=r.max_context) <= usable < total(seq=r.max_context + 1)
    assert total(batch=r.max_batch) <= usable < total(batch=r.max_batch + 1)


# ---------------------------------------------------------------------------------------------------------------
# no negative, NaN or infinite numbers


ALLOWED_NEGATIVE = {"free_bytes_per_gpu"}  # negative by definition when it does not fit (how much is missing)


def _walk_numbers(obj: Any, path: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _walk_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out += _walk_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out.append((path, obj))
    return out


def assert_all_finite_and_non_negative(d: dict[str, Any]) -> None:
    for path, v in _walk_numbers(d):
        assert math.isfinite(v), f"{path} = {v}"
        if path.rsplit(".", 1)[-1] not in ALLOWED_NEGATIVE:
            assert v >= 0, f"{path} = {v}"


def _check_estimate(e: Estimate) -> None:
    assert_all_finite_and_non_negative(e.to_dict())
    assert all(c.bytes >= 0 for c in e.breakdown)
    assert e.peak_allocated_bytes <= e.total_bytes
    assert e.weights_bytes > 0 and e.total_bytes > 0


@FAST
@given(
    model=st.sampled_from(LLMS),
    engine=st.sampled_from(ENGINES),
    context=st.integers(1, 1 << 20),
    batch=st.integers(1, 256),
    new_tokens=st.integers(0, 8192),
    quant=st.sampled_from((None, "q4_k_m", "q8_0", "q2_k", "fp8", "int8", "awq", "gptq", "nf4", "bnb-int8")),
    kv=st.sampled_from((None, "int8", "fp8", "float32")),
    attn=st.sampled_from(("sdpa", "eager", "flash")),
)
def test_no_negative_nan_or_infinite_value_in_an_estimate(
    model: str, engine: str, context: int, batch: int, new_tokens: int, quant: str | None, kv: str | None, attn: str
) -> None:
    try:
        e = _est(
            model,
            engine=engine,
            context=context,
            batch=batch,
            new_tokens=new_tokens,
            quant=quant,
            kv_dtype=kv,
            attn=attn,
        )
    except BadInput:  # a combination an engine refuses (named): not a number to check
        return
    _check_estimate(e)


@SLOW
@given(
    model=st.sampled_from(TRAIN_MODELS),
    opts=train_options,
    seq=st.integers(1, 1 << 17),
    batch=st.integers(1, 64),
    gpus=st.sampled_from((1, 2, 8)),
    shard=st.sampled_from(("none", "zero2", "zero3", "fsdp")),
)
def test_no_negative_nan_or_infinite_value_in_a_training_estimate(
    model: str, opts: dict[str, Any], seq: int, batch: int, gpus: int, shard: str
) -> None:
    kw: dict[str, Any] = {"zero": {"zero2": 2, "zero3": 3}.get(shard, 0), "fsdp": "full" if shard == "fsdp" else None}
    if gpus == 1:
        kw = {}
    _check_estimate(estimate_training(model, TrainWorkload(seq=seq, batch=batch, gpus=gpus, **opts, **kw)))


@SLOW
@given(
    model=st.sampled_from(LLMS),
    gpu=st.sampled_from(GPUS),
    count=st.sampled_from((1, 2, 4, 8)),
    engine=st.sampled_from(ENGINES),
    context=st.integers(1, 1 << 18),
    batch=st.integers(1, 64),
)
def test_no_negative_nan_or_infinite_value_in_a_fit(
    model: str, gpu: str, count: int, engine: str, context: int, batch: int
) -> None:
    try:
        r = fit(model, GpuChoice(_gpu(gpu), count), Workload.from_flat(engine=engine, context=context, batch=batch))
    except BadInput:  # e.g. more pipeline stages than layers
        return
    d = r.to_dict()
    assert_all_finite_and_non_negative(d)
    assert r.per_gpu_bytes == max(x.total_bytes for x in r.ranks)
    assert r.free_bytes_per_gpu == r.usable_bytes_per_gpu - r.per_gpu_bytes
    assert (r.verdict == "no") == (r.per_gpu_bytes > r.usable_bytes_per_gpu)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "mixtral-8x7b", "flux.1-dev", "whisper-large-v3"])
def test_no_negative_nan_or_infinite_value_in_which(model: str) -> None:
    opts = which(model, Workload(context=8192), counts=(1, 2, 4))
    assert opts
    for o in opts:
        d = o.to_dict()
        assert_all_finite_and_non_negative(d)
        assert o.per_gpu_bytes <= o.usable_bytes_per_gpu and o.verdict in ("fits", "tight")


# ---------------------------------------------------------------------------------------------------------------
# the whole catalog


def _sample_gpus(model_id: str, n: int = 3) -> list[Any]:
    gpus = all_gpus()
    start = zlib.crc32(model_id.encode())
    return [gpus[(start + 17 * i) % len(gpus)] for i in range(n)]


@pytest.mark.parametrize("entry", all_models(), ids=lambda m: m.id)
def test_every_catalog_model_estimates_on_a_grid(entry: Any) -> None:
    if entry.kind == "llm":
        grid = [
            Workload.from_flat(context=c, batch=b, engine=eng, devices=(device_of("h100-sxm"),) * (eng == "vllm"))
            for c, b, eng in (
                (1, 1, "transformers"),
                (4096, 4, "vllm"),
                (32768, 1, "llama.cpp"),
                (2048, 16, "transformers"),
            )
        ]
        grid.append(Workload.from_flat(context=1024, quant="q4_k_m", engine="llama.cpp", kv_dtype="int8"))
    else:
        grid = [Workload(), Workload(batch=4)]
    for wl in grid:
        _check_estimate(estimate(entry.id, wl))
    if entry.kind == "llm":
        _check_estimate(estimate_training(entry.id, TrainWorkload(method="lora", seq=512)))
    for g in _sample_gpus(entry.id):
        r = fit(entry.id, GpuChoice(g, 1), grid[0], solve=False, with_speed=entry.kind == "llm")
        assert_all_finite_and_non_negative(r.to_dict())


@pytest.mark.parametrize("model", ["flux.1-dev", "whisper-tiny", "bge-m3"])
def test_models_without_layers_report_no_negative_layer_range(model: str) -> None:
    r = fit(model, "h100-sxm", Workload(), solve=False)
    assert all(x >= 0 for rank in r.ranks for x in rank.layers), [rank.layers for rank in r.ranks]


@pytest.mark.parametrize("gpu", all_gpus(), ids=lambda g: g.id)
def test_every_catalog_gpu_fits_a_small_model(gpu: Any) -> None:
    assert gpu.usable_memory_bytes > 0 and gpu.usable_memory_bytes <= gpu.memory_bytes
    assert math.isfinite(gpu.bandwidth_gb_per_s) and gpu.bandwidth_gb_per_s > 0
    r = fit("smollm2-135m", GpuChoice(gpu, 1), Workload(context=2048))
    assert r.verdict in ("fits", "tight"), (gpu.id, r.reasons)
    assert_all_finite_and_non_negative(r.to_dict())
    assert r.max_context is not None and r.max_batch is not None


@SLOW
@given(
    models=st.lists(st.sampled_from(LLMS), min_size=1, max_size=4, unique=True),
    contexts=st.lists(st.integers(256, 131072), min_size=4, max_size=4),
    pools=st.lists(
        st.tuples(st.sampled_from(GPUS), st.sampled_from((1, 2, 4, 8)), st.integers(1, 4)),
        min_size=1,
        max_size=3,
        unique_by=lambda p: p[0],
    ),
)
def test_no_negative_nan_or_infinite_value_in_a_plan(
    models: list[str], contexts: list[int], pools: list[tuple[str, int, int]]
) -> None:
    from vram.fleet import parse_fleet, plan

    fleet = parse_fleet(
        {
            "pools": [{"gpu": _gpu(g).id, "gpus_per_node": n, "nodes": k} for g, n, k in pools],
            "models": [{"model": m, "context": c} for m, c in zip(models, contexts, strict=False)],
        }
    )
    assert_all_finite_and_non_negative(plan(fleet).to_dict())


@pytest.mark.parametrize("model", LLMS)
@pytest.mark.parametrize("engine", ENGINES)
def test_kv_cache_grows_with_its_bits(model: str, engine: str) -> None:
    """int8 < bf16 < fp32 KV caches on every engine (equal where a model keeps no attention cache)."""
    kv = [_est(model, engine=engine, context=8192, kv_dtype=k).kv_cache_bytes for k in ("int8", "bfloat16", "float32")]
    assert kv == sorted(kv), kv
    if evaluator_for(model).spec.attention_layers:
        assert kv[0] < kv[1] < kv[2], kv
