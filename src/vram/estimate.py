"""Workload -> Estimate: the public entry point. Pure computation, no I/O beyond resolving the model once."""

from __future__ import annotations

import os
from _thread import allocate_lock
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from time import monotonic
from typing import Any

from . import __version__
from .catalog import ModelEntry, find_model
from .components import Component
from .components.runtime import allocator_reserve, cublas_workspace, cuda_context
from .components.weights import weights_bytes
from .dtypes import QuantScheme, dtype_bytes, normalize_dtype, quant_scheme
from .errors import BadInput, UnknownModel
from .model import ModelSpec, linear_shapes, load_config_file, model_from_config
from .traits import traits

ENGINES = ("transformers", "vllm", "llama.cpp", "mlx")
ATTN = ("sdpa", "eager", "flash")
MAX_TOKENS = 1 << 24  # 16M tokens: far beyond any published context
MAX_BATCH = 1 << 16


@dataclass(frozen=True)
class Workload:
    """What is run. Token counts are per sequence; `batch` sequences run together."""

    batch: int = 1
    context: int = 4096
    new_tokens: int = 16
    dtype: str = "bfloat16"
    quant: str | None = None
    kv_dtype: str | None = None
    attn: str = "sdpa"
    engine: str = "transformers"
    gpu_arch: str = "hopper"
    # vLLM
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int | None = None
    block_size: int = 16
    tensor_parallel_size: int = 1
    max_num_batched_tokens: int | None = None
    enforce_eager: bool = False
    engine_version: str | None = None  # vLLM release whose behaviour is modelled (None: the latest)
    gpu_name: str | None = None  # vLLM picks its batching defaults from the device name (A100s keep small ones)
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: int = 16
    speculative_model: str | None = None  # vLLM draft model (catalog id, repo or config.json)
    num_speculative_tokens: int | None = None
    kv_cache_memory_bytes: int | None = None  # vLLM --kv-cache-memory: a fixed KV cache size per GPU
    cpu_offload_gb: float = 0.0
    # llama.cpp
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: bool = True
    gpu_memory_bytes: int | None = None  # for engines that size themselves from the device (vLLM)
    # llama.cpp: layers offloaded to the GPU (None: all, output layer included) and cache types (None: kv_dtype)
    n_gpu_layers: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    # llama.cpp: expert tensors of the first N blocks on the CPU (--n-cpu-moe N; --cpu-moe: all), one KV stream
    # shared by all slots (--kv-unified), the GPU backend, and the devices' memory / --tensor-split for several GPUs
    n_cpu_moe: int | None = None
    cpu_moe: bool = False
    kv_unified: bool = False
    # llama.cpp: sliding-window layers cached at full size (--swa-full; Ollama does this), and the logits rows the
    # worst-case graph reserves (llama_context_params.n_outputs_max; None: n_batch, llama-server: one per slot)
    swa_full: bool = False
    n_outputs_max: int | None = None
    llama_build: int | None = None  # llama.cpp release build modelled (None: the latest)
    backend: str | None = None  # None: from the GPU (fit) or CUDA
    tensor_split: tuple[float, ...] | None = None
    device_memory: tuple[int, ...] | None = None
    # non-LLM families (vram.families): image size, images per prompt, beams, text encoders on the CPU
    width: int = 1024
    height: int = 1024
    images: int = 1
    beams: int = 1
    offload_text_encoders: bool = False
    steps: int | None = None  # diffusion: denoising steps (time only: each step frees its temporaries)
    audio_s: float | None = None  # speech: seconds of audio (time only: read in 30 s windows, `batch` at once)

    def validate(self) -> Workload:
        if self.engine == "llamacpp":
            return replace(self, engine="llama.cpp").validate()
        for name, value, lo, hi in (("batch", self.batch, 1, MAX_BATCH), ("context", self.context, 1, MAX_TOKENS),
                                    ("new_tokens", self.new_tokens, 0, MAX_TOKENS)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadInput(f"{name}: expected a whole number, got {value!r}", field=name)
            if value < lo:
                raise BadInput(f"{name}: must be at least {lo}, got {value}", field=name)
            if value > hi:
                raise BadInput(f"{name}: {value:,} is beyond what any model supports (max {hi:,})", field=name)
        if self.engine not in ENGINES:
            raise BadInput(f"engine: unknown engine {self.engine!r} (use {', '.join(ENGINES)})", field="engine")
        if self.attn not in ATTN:
            raise BadInput(f"attn: unknown attention implementation {self.attn!r} (use {', '.join(ATTN)})",
                           field="attn")
        util = self.gpu_memory_utilization
        if isinstance(util, bool) or not isinstance(util, (int, float)) or not 0.05 <= util <= 1.0:
            raise BadInput("gpu_memory_utilization: must be between 0.05 and 1.0", field="gpu_memory_utilization")
        counts: tuple[tuple[str, object, int], ...] = (
            ("tensor_parallel_size", self.tensor_parallel_size, 1024), ("block_size", self.block_size, 4096),
            ("max_num_batched_tokens", self.max_num_batched_tokens, MAX_TOKENS),
            ("max_num_seqs", self.max_num_seqs, MAX_BATCH), ("max_loras", self.max_loras, 1024),
            ("max_lora_rank", self.max_lora_rank, 1024), ("num_speculative_tokens", self.num_speculative_tokens, 64),
            ("kv_cache_memory_bytes", self.kv_cache_memory_bytes, 1 << 50))
        for opt, val, top in counts:
            if val is None:
                continue
            if isinstance(val, bool) or not isinstance(val, int):
                raise BadInput(f"{opt}: expected a whole number, got {val!r}", field=opt)
            if not 1 <= val <= top:
                raise BadInput(f"{opt}: must be between 1 and {top:,}, got {val}", field=opt)
        if self.engine != "vllm":
            vllm_only: tuple[tuple[str, object, object], ...] = (
                ("tensor_parallel_size", self.tensor_parallel_size, 1),
                ("max_num_batched_tokens", self.max_num_batched_tokens, None),
                ("enforce_eager", self.enforce_eager, False), ("engine_version", self.engine_version, None),
                ("enable_lora", self.enable_lora, False), ("speculative_model", self.speculative_model, None),
                ("kv_cache_memory_bytes", self.kv_cache_memory_bytes, None),
                ("cpu_offload_gb", self.cpu_offload_gb, 0.0))
            for opt, val, default in vllm_only:
                if val != default:
                    raise BadInput(f"{opt}: a vLLM option; it does not apply to engine {self.engine!r} "
                                   "(use --engine vllm)", field=opt)
        elif self.engine_version is not None:
            from .engines.vllm import parse_version

            parse_version(self.engine_version)
        off = self.cpu_offload_gb
        if isinstance(off, bool) or not isinstance(off, (int, float)) or not 0 <= off <= 1 << 20:
            raise BadInput(f"cpu_offload_gb: expected GiB between 0 and {1 << 20:,}, got {off!r}",
                           field="cpu_offload_gb")
        if not self.enable_lora and (self.max_loras, self.max_lora_rank) != (1, 16):
            raise BadInput("max_loras: LoRA slots need --enable-lora", field="max_loras")
        if self.num_speculative_tokens is not None and not self.speculative_model:
            raise BadInput("num_speculative_tokens: needs --speculative-model", field="num_speculative_tokens")
        dt = normalize_dtype(self.dtype)
        kv = normalize_dtype(self.kv_dtype, field="kv_dtype") if self.kv_dtype else None
        quant = self.quant
        if dt in ("float8", "int8", "int4"):
            # 8/4-bit "dtypes" are weight formats: compute and activations stay in bf16
            if quant is None:
                quant = {"float8": "fp8", "int8": "int8", "int4": "int4"}[dt]
            dt = "bfloat16"
        if self.engine == "llama.cpp":
            from .engines.llama_cpp import validate_options

            validate_options(replace(self, quant=quant, dtype=dt))
        elif self.engine == "mlx":
            from .engines import mlx

            mlx.validate_options(replace(self, quant=quant, dtype=dt))
        else:
            quant_scheme(quant, dtype=dt)
            if quant is not None and quant.startswith("mlx-"):
                raise BadInput(f"quant: {quant} is MLX's format (use --engine mlx)", field="quant")
            checks: tuple[tuple[str, object, object], ...] = (
                ("n_cpu_moe", self.n_cpu_moe, None), ("cpu_moe", self.cpu_moe, False),
                ("kv_unified", self.kv_unified, False), ("tensor_split", self.tensor_split, None),
                ("swa_full", self.swa_full, False), ("n_outputs_max", self.n_outputs_max, None),
                ("llama_build", self.llama_build, None))
            for opt, val, dflt in checks:
                if val != dflt:
                    raise BadInput(f"{opt}: a llama.cpp option (use --engine llama.cpp)", field=opt)
        return replace(self, dtype=dt, kv_dtype=kv, quant=quant)


@dataclass(frozen=True)
class Estimate:
    model: str
    params: int
    active_params: int
    engine: str
    workload: Workload
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    peak_allocated_bytes: int
    total_bytes: int
    breakdown: tuple[Component, ...]
    assumptions: tuple[str, ...]
    binding_phase: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.breakdown if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "engine": self.engine, "params": self.params, "active_params": self.active_params,
            "weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
            "activation_bytes": self.activation_bytes, "peak_allocated_bytes": self.peak_allocated_bytes,
            "total_bytes": self.total_bytes, "binding_phase": self.binding_phase,
            "breakdown": [c.to_dict() for c in self.breakdown], "assumptions": list(self.assumptions),
            "workload": asdict(self.workload), "vram_version": __version__, **self.extra,
        }


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    entry: ModelEntry | None
    source: str
    weights_override_bytes: int | None = None  # exact tensor bytes from safetensors / GGUF headers
    buffers_bytes: int = 0
    weights_info: Any = None  # sources: per-tensor summary (safetensors WeightsInfo / GGUF GgufWeights)


# Resolved models, cached: a catalog entry for the life of the process (its data files are part of the package), a
# config file / weights file / model folder for as long as the files' (mtime, size) are unchanged, a Hub repo for
# HUB_TTL_S. Bounded (least recently used first out) and safe to use from several threads: a miss computes outside
# the lock, so two threads may resolve the same model once each; either result is the same and one is kept.
CACHE_SIZE = 256
HUB_TTL_S = 600.0
_cache: dict[tuple[Any, ...], tuple[ResolvedModel, float]] = {}
_cache_lock = allocate_lock()


def clear_model_cache() -> None:
    """Forget every resolved model (tests; a long-lived process that wants the Hub read again)."""
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple[Any, ...], now: float) -> ResolvedModel | None:
    with _cache_lock:
        hit = _cache.pop(key, None)
        if hit is None or (hit[1] and now > hit[1]):  # missing, or a Hub entry past its time
            return None
        _cache[key] = hit  # most recently used last
        return hit[0]


def _remember(key: tuple[Any, ...], rm: ResolvedModel, expires: float = 0.0) -> ResolvedModel:
    with _cache_lock:
        _cache.pop(key, None)
        _cache[key] = (rm, expires)
        while len(_cache) > CACHE_SIZE:
            del _cache[next(iter(_cache))]
    return rm


def _files_key(p: Path) -> tuple[Any, ...] | None:
    """What a model read from `p` depends on: the path and the (mtime, size) of every file it reads (config.json,
    .safetensors shards, the .gguf file). None when something is missing (the uncached path says what)."""
    try:
        p = p.resolve()
        if p.is_dir():
            files = [p / "config.json", *sorted(p.glob("*.safetensors")), *sorted(p.glob("*.safetensors.index.json"))]
        elif p.suffix == ".safetensors":
            files = [p, p.parent / "config.json", *sorted(p.parent.glob("*.safetensors.index.json"))]
        else:
            files = [p]
        stamps = []
        for f in files:
            st = f.stat()
            stamps.append((f.name, st.st_mtime_ns, st.st_size))
    except OSError:
        return None
    return ("path", str(p), tuple(stamps))


def resolve_model(ref: str | ModelSpec | ResolvedModel) -> ResolvedModel:
    """A catalog id / alias / Hub repo id, a config.json path or a model folder. Cached (see CACHE_SIZE)."""
    if isinstance(ref, ResolvedModel):
        return ref
    if isinstance(ref, ModelSpec):
        return ResolvedModel(ref, None, "spec")
    text = str(ref).strip()
    if not text:
        raise BadInput("model: empty model name", field="model")
    now = monotonic()
    looks_like_path = text.endswith(".json") or text.startswith((".", "/", "~")) or os.path.exists(text)
    if looks_like_path:
        p = Path(text).expanduser()
        key = _files_key(p)
        if key is None:
            return _resolve_path(p)
        return _cached(key, now) or _remember(key, _resolve_path(p))
    key = ("name", text)
    hit = _cached(key, now)
    if hit is not None:
        return hit
    try:
        entry = find_model(text)
    except UnknownModel:
        if text.count("/") == 1 and not text.startswith("/") and " " not in text:
            from .sources.hub import resolve_hub

            return _remember(key, resolve_hub(text), now + HUB_TTL_S)
        raise
    if entry.kind != "llm":
        from .families import family_spec

        return _remember(key, ResolvedModel(family_spec(entry), entry, f"catalog:{entry.id}"))
    return _remember(key, ResolvedModel(model_from_config(entry.config, name=entry.id), entry, f"catalog:{entry.id}"))


def _resolve_path(p: Path) -> ResolvedModel:
    if (p.is_file() and p.suffix == ".gguf") or (p.is_dir() and any(p.glob("*.safetensors"))) or \
            (p.is_file() and p.suffix == ".safetensors"):
        from .sources import resolve_local_weights

        return resolve_local_weights(p)
    cfg = load_config_file(p)
    return ResolvedModel(model_from_config(cfg, name=p.stem if p.is_file() else p.name), None, str(p))


def _rope_buffer_bytes(spec: ModelSpec) -> int:
    # rotary inv_freq buffers: head_dim/2 float32 values per rotary embedding module
    return 2 * spec.rope_dim if spec.rope_dim else 0


def estimate(model: str | ModelSpec | ResolvedModel, workload: Workload | None = None) -> Estimate:
    """Estimate inference memory for `workload` (defaults: batch 1, 4096-token prompt, 16 new tokens, bf16)."""
    wl = (workload or Workload()).validate()
    rm = resolve_model(model)
    if rm.entry is not None and rm.entry.kind != "llm":
        from . import families

        return families.estimate(rm, wl)
    if wl.engine == "transformers":
        return _transformers_inference(rm, wl)
    if wl.engine == "vllm":
        from .engines import vllm

        return vllm.estimate(rm, wl)
    if wl.engine == "mlx":
        from .engines import mlx

        return mlx.estimate(rm, wl)
    from .engines import llama_cpp

    return llama_cpp.estimate(rm, wl)


def context_warnings(rm: ResolvedModel, tokens: int) -> list[str]:
    """Say so when a workload runs past the context the model was published or configured for."""
    limit = (rm.entry.context_length if rm.entry is not None else None) or rm.spec.max_position_embeddings
    if isinstance(limit, int) and 0 < limit < tokens:
        return [f"{tokens:,} tokens exceed the model's context length ({limit:,}): memory is as shown, but quality "
                "past that length is not to be expected without rope scaling"]
    return []


def weight_scheme(spec: ModelSpec, wl: Workload) -> QuantScheme:
    """How the weights are stored for this run: --quant when given; else the checkpoint's own quantization_config
    (an FP8 / INT4 / MXFP4 checkpoint priced as stored) unless --dtype asks for another dtype than bf16; else
    --dtype. `--quant bf16` prices a quantized checkpoint dequantized."""
    if wl.quant is None and spec.stored_scheme is not None and wl.dtype == "bfloat16":
        return spec.stored_scheme
    return quant_scheme(wl.quant, dtype=wl.dtype)


def common_weights(rm: ResolvedModel, wl: Workload) -> Component:
    scheme = weight_scheme(rm.spec, wl)
    if rm.weights_override_bytes is not None and wl.quant is None:
        return Component("weights", rm.weights_override_bytes + rm.buffers_bytes,
                         f"{rm.spec.params:,} parameters; exact tensor bytes from {rm.source}")
    c = weights_bytes(rm.spec, scheme, buffers_bytes=rm.buffers_bytes or _rope_buffer_bytes(rm.spec))
    if rm.spec.mtp_params:
        mtp_bytes = round(c.bytes * rm.spec.mtp_params / max(1, rm.spec.params))
        c = Component(c.name, c.bytes, f"{c.explanation}; the checkpoint also stores {rm.spec.mtp_params:,} "
                      f"multi-token-prediction parameters (≈ {mtp_bytes / 2**30:.1f} GiB at this format), not loaded")
    return c


def _transformers_inference(rm: ResolvedModel, wl: Workload) -> Estimate:
    from .engines.transformers import inference_components

    spec = rm.spec
    fallback_note = None
    if wl.attn != "eager" and traits(spec.model_type).eager_only:
        # transformers refuses SDPA / flash for these (attention sinks): the model runs eager attention
        fallback_note = f"{spec.model_type} supports only eager attention in transformers: estimated with eager"
        wl = replace(wl, attn="eager")
    e = int(dtype_bytes(wl.dtype))
    kv_name = wl.kv_dtype or wl.dtype
    kv_b = dtype_bytes(kv_name)
    weights = common_weights(rm, wl)
    ws = cublas_workspace(wl.gpu_arch)
    comps, kv_peak, kv_churn, phase = inference_components(
        spec, wl.batch, wl.context, wl.new_tokens, e, kv_b, wl.attn, kv_name,
        fp16=wl.dtype == "float16")
    scheme = weight_scheme(spec, wl)
    if scheme.name in ("nf4", "nf4-nodq", "bnb-int8"):
        # bitsandbytes dequantizes a whole matrix to 16 bit for prompt-sized matmuls, one matrix at a time
        largest = max((i * o for layer, _ in spec.distinct_layers for i, o in linear_shapes(spec, layer).values()),
                      default=0)
        comps.append(Component("dequantized_weight", 2 * largest, "bitsandbytes dequantizes one weight matrix to "
                               "16 bit at a time for prompt-sized matmuls (the largest shown)"))
    elif scheme.is_quantized and scheme.gguf_mix is None:
        notes_q = "GPTQ/AWQ/FP8 kernels multiply the packed weights directly (no full dequantized copy)"
        comps.append(Component("dequantized_weight", 0, notes_q))
    allocated = weights.bytes + ws.bytes + sum(c.bytes for c in comps)
    acts = next(c.bytes for c in comps if c.name == "activations")
    stranded = 0
    if wl.attn == "eager" and spec.attention_layers:
        a = spec.attention_layers[-1].attention
        assert a is not None
        stranded = wl.batch * a.num_heads * wl.context * wl.context * e
    reserve = allocator_reserve(kv_churn if wl.new_tokens else 0, acts, stranded)
    ctx = cuda_context(wl.gpu_arch)
    breakdown = (weights, *comps, ws, reserve, ctx)
    assumptions = [
        "engine: PyTorch + transformers generate() with a DynamicCache, greedy decoding, no padding",
        f"weights and activations in {wl.dtype}; KV cache in {kv_name}",
        f"attention: {wl.attn}" + (" (scores materialised per layer)" if wl.attn == "eager" else
                                   " (no score matrix; a bool mask only where a sliding window is shorter than the "
                                   "prompt)"),
        f"peak binds in: {phase}",
        "peak_allocated_bytes = torch.cuda.max_memory_allocated() over the run; total_bytes adds the CUDA context "
        "and the caching allocator's idle reserve (what nvidia-smi would show)",
    ]
    assumptions.extend(spec.notes)
    if fallback_note:
        assumptions.append(fallback_note)
    assumptions.extend(context_warnings(rm, wl.context + wl.new_tokens))
    return Estimate(
        model=spec.name, params=spec.params, active_params=spec.active_params, engine="transformers", workload=wl,
        weights_bytes=weights.bytes, kv_cache_bytes=kv_peak, activation_bytes=acts, peak_allocated_bytes=allocated,
        total_bytes=allocated + reserve.bytes + ctx.bytes, breakdown=breakdown, assumptions=tuple(assumptions),
        binding_phase=phase,
    )
