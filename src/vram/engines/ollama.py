"""Ollama's defaults as the llama.cpp workload its runner is started with.

Ollama runs GGUF models through llama.cpp; what it allocates follows from the settings it hands the runner:

* **Context.** `num_ctx` (Modelfile or API option), else `OLLAMA_CONTEXT_LENGTH`, else a default chosen by the
  GPU memory (Ollama's docs/context-length.mdx: under 24 GiB 4k, 24-48 GiB 32k, 48 GiB and more 256k). Capping it
  at the model's trained context is an assumption here (the docs' `ollama ps` example shows 131072 on a 256k tier).
* **Slots.** `OLLAMA_NUM_PARALLEL` (documented default 1); the runner gets a context of `num_ctx × num_parallel`
  cells and `num_parallel` slots, so each request keeps `num_ctx` cells. The logged Ollama runner of May 2026 keeps
  one KV stream per slot (`kv_unified = false`, 2/2 seqs); runners of 2024-2025 kept one stream for all slots
  (`--kv-unified` reproduces those logs, see measurements/llama_cpp/logs.jsonl).
* **Batch.** `num_batch` (default 512) is the runner's micro-batch: n_ubatch = num_batch.
* **Sliding-window caches** at full size: the runner logs `llama_kv_cache_iswa: using full-size SWA cache`.
* **Flash attention** `OLLAMA_FLASH_ATTENTION` (recent releases turn it on where the model supports it; logs show
  `flash_attn = auto` resolved to enabled) and **KV cache type** `OLLAMA_KV_CACHE_TYPE` (f16, q8_0, q4_0), which
  only takes effect with flash attention: without it the cache stays f16 (a measured q8_0 run without flash
  attention kept the f16 slope, 12.00 KiB per token for Qwen2.5-0.5B).
* **Layers on the GPU** `num_gpu` (None: as many as fit, which vram's fit solver decides).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInput
from ..request import LlamaCppOptions, Workload

GIB = 1024**3
DEFAULT_NUM_BATCH = 512
DEFAULT_NUM_PARALLEL = 1
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
# docs/context-length.mdx: default context by GPU memory
CONTEXT_TIERS: tuple[tuple[int, int], ...] = ((24 * GIB, 4096), (48 * GIB, 32768))
LARGEST_TIER_CONTEXT = 262144


def default_num_ctx(gpu_memory_bytes: int | None) -> int:
    """Ollama's default context for a GPU with this much memory (4k when it is not known)."""
    if gpu_memory_bytes is None:
        return CONTEXT_TIERS[0][1]
    for below, ctx in CONTEXT_TIERS:
        if gpu_memory_bytes < below:
            return ctx
    return LARGEST_TIER_CONTEXT


@dataclass(frozen=True)
class OllamaOptions:
    """The settings Ollama reads: Modelfile/API options and the server's environment variables."""

    num_ctx: int | None = None  # Modelfile / API option
    context_length: int | None = None  # OLLAMA_CONTEXT_LENGTH
    num_parallel: int = DEFAULT_NUM_PARALLEL  # OLLAMA_NUM_PARALLEL
    num_batch: int = DEFAULT_NUM_BATCH
    flash_attention: bool = True  # OLLAMA_FLASH_ATTENTION
    kv_cache_type: str = "f16"  # OLLAMA_KV_CACHE_TYPE
    num_gpu: int | None = None  # layers on the GPU (None: all that fit)

    def validate(self) -> None:
        for name, v in (("num_ctx", self.num_ctx), ("context_length", self.context_length)):
            if v is not None and (isinstance(v, bool) or v < 1):
                raise BadInput(f"{name}: must be a positive number of tokens, got {v!r}", field=name)
        for name, v in (("num_parallel", self.num_parallel), ("num_batch", self.num_batch)):
            if isinstance(v, bool) or v < 1:
                raise BadInput(f"{name}: must be at least 1, got {v!r}", field=name)
        if self.kv_cache_type not in KV_CACHE_TYPES:
            raise BadInput(
                f"kv_cache_type: OLLAMA_KV_CACHE_TYPE is one of {', '.join(KV_CACHE_TYPES)}, "
                f"got {self.kv_cache_type!r}",
                field="kv_cache_type",
            )
        if self.num_gpu is not None and (isinstance(self.num_gpu, bool) or self.num_gpu < 0):
            raise BadInput(f"num_gpu: must be at least 0, got {self.num_gpu!r}", field="num_gpu")


def llama_cpp_workload(
    opts: OllamaOptions,
    *,
    gpu_memory_bytes: int | None = None,
    model_context: int | None = None,
    quant: str | None = None,
    backend: str | None = None,
) -> tuple[Workload, list[str]]:
    """The llama.cpp Workload Ollama's runner gets for these settings, and what was assumed on the way."""
    opts.validate()
    notes: list[str] = []
    if opts.num_ctx is not None:
        ctx = opts.num_ctx
    elif opts.context_length is not None:
        ctx = opts.context_length
        notes.append(f"context {ctx:,} from OLLAMA_CONTEXT_LENGTH")
    else:
        ctx = default_num_ctx(gpu_memory_bytes)
        notes.append(
            f"context {ctx:,}: Ollama's default for "
            + (f"{gpu_memory_bytes / GIB:,.0f} GiB of GPU memory" if gpu_memory_bytes else "an unknown GPU")
        )
    if model_context is not None and ctx > model_context:
        notes.append(f"context capped at the model's {model_context:,} tokens (assumed, as `ollama ps` shows)")
        ctx = model_context
    kv = opts.kv_cache_type
    if kv != "f16" and not opts.flash_attention:
        notes.append(f"OLLAMA_KV_CACHE_TYPE={kv} has no effect without flash attention: the cache stays f16")
        kv = "f16"
    llama = LlamaCppOptions(
        n_batch=opts.num_batch,
        n_ubatch=opts.num_batch,
        flash_attn=opts.flash_attention,
        cache_type_k=kv,
        cache_type_v=kv,
        swa_full=True,
        n_gpu_layers=opts.num_gpu,
        backend=backend,  # type: ignore[arg-type]
    )
    wl = Workload(quant=quant, context=ctx, batch=opts.num_parallel, new_tokens=0, options=llama)
    return wl, notes
