"""Ollama: the llama.cpp settings `ollama serve` starts its runner with, estimated by the llama.cpp engine.

Read from Ollama's tree at v0.33.0-rc2 (August 2026); file and function of each rule named. Since v0.30.0
(ollama/ollama#16031, May 2026) every GGUF model runs in the upstream `llama-server` (llm/llama_server.go,
`startLlamaServer`); earlier releases ran llama.cpp in their own runner, modelled by `ollama_version` < 0.30.

* **Context** (server/routes.go `usesAutomaticNumCtx`, `Serve`): `num_ctx` from the request or Modelfile (vram's
  `--context` + `--new-tokens`: the window holds both), else `OLLAMA_CONTEXT_LENGTH`, else a default by the sum
  of the GPUs' total memory: at least 47 GiB 262144, at least 23 GiB 32768, otherwise 4096 (the tiers came with
  v0.15.5; earlier releases: 4096).
  llm/server.go `NewLlamaServer` lowers num_ctx to the model's trained context (`n_ctx_train`).
* **Slots** (server/sched.go `load`): `OLLAMA_NUM_PARALLEL` (default 1; vram's `--batch`), forced to 1 for the
  architectures Ollama lists as unsafe with parallel requests. llama-server gets `-c num_ctx × parallel` and
  `-np parallel`; an explicit `-np` keeps `kv_unified` off (one KV stream per slot) and llama-server reserves one
  logits row per slot (n_outputs_max = parallel).
* **Batch** (server/sched.go `automaticGenerationBatch`): `num_batch` if given, else 512 up to 4096 cells
  (num_ctx × parallel), 1024 up to 32768, 2048 above; stepped down while Ollama's own prediction (the GGUF's size
  plus an f16 KV cache of 2 × layers × fewest KV heads × n_embd/n_head × cells × 2 bytes, `PredictServerVRAM`)
  is above 80 % of the free GPU memory, above 75 % (1024) / 60 % (2048) of it, or leaves less than the batch's
  surcharge (768 MiB / 2 GiB) under the 80 %. With flash attention off on CUDA: 512, or 256 above 4096 cells on a
  GPU of at most 8 GiB. llama-server gets `-b num_batch -ub num_batch`. Older runners: n_ubatch = num_batch (512).
* **Flash attention** (llm/llama_server.go `LlamaServerFlashAttention`): `OLLAMA_FLASH_ATTENTION` when set, else
  `auto` (llama.cpp turns it on where the GPU supports it; vram takes it as on). **KV cache type**:
  `OLLAMA_KV_CACHE_TYPE` for K and V; a quantized V cache without flash attention makes llama.cpp refuse the
  context. Older runners kept f16 without flash attention and cached sliding-window layers at full size
  (`using full-size SWA cache`); llama-server is started without `--swa-full`.
* **GPUs** (server/sched.go `selectLlamaServerPlacement`): of several GPUs, the one with the most memory when
  Ollama's prediction is within 80 % of it, unless `OLLAMA_SCHED_SPREAD` (or num_gpu 0); else all of them.
* **Layers** `num_gpu`: `-ngl N` when given; otherwise llama-server's automatic fit decides (vram's fit solver).
* **`ollama ps`** (llm/llama_server.go `memoryParsingWriter`, `MemorySize`; cmd/cmd.go): SIZE is the sum of the
  model, KV, compute and output buffers llama-server logs, or the GPU buffers alone when every layer is on the GPU;
  PROCESSOR is `100% GPU`, `100% CPU` or `C%/G% CPU/GPU` with C = round(100 × CPU part / SIZE); sizes in decimal
  units (`4.9 GB`, `12 GB`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BadInput
from ..records import replace
from ..request import LlamaCppOptions, OllamaOptions, Workload, version_tuple

if TYPE_CHECKING:
    from ..details import LlamaCppDetails
    from ..resolved import ResolvedModel
    from ..result import Estimate

GIB = 1024**3
MIB = 1024**2
LLAMA_SERVER_VERSION = (0, 30, 0)  # ollama/ollama#16031: llama-server for every GGUF model
VRAM_TIERS_VERSION = (0, 15, 5)  # default context by total VRAM
DEFAULT_NUM_BATCH = 512
# server/routes.go: default context by the GPUs' total memory (thresholds a little under 24 / 48 GiB)
CONTEXT_TIERS: tuple[tuple[int, int], ...] = ((47 * GIB, 262144), (23 * GIB, 32768))
SMALLEST_TIER_CONTEXT = 4096
# server/sched.go automaticGenerationBatch: (batch, cells above which it is chosen, headroom %, surcharge bytes)
BATCH_STEPS: tuple[tuple[int, int, int, int], ...] = ((2048, 32768, 60, 2 * GIB), (1024, 4096, 75, 768 * MIB))
CONSTRAINED_BATCH = 256  # flash attention off on a CUDA GPU of <= 8 GiB above 4096 cells
# server/sched.go load: architectures Ollama runs with one slot only (GGUF general.architecture -> config model_type)
SINGLE_SLOT_MODEL_TYPES = frozenset(
    {
        "mllama",
        "qwen3_vl",
        "qwen3_vl_moe",
        "qwen3_5",
        "qwen3_5_moe",
        "qwen3_next",
        "lfm2",
        "lfm2_moe",
        "nemotron_h",
        "nemotron_h_moe",
    }
)


def default_num_ctx(total_vram_bytes: int | None, version: tuple[int, int, int] = (0, 33, 0)) -> int:
    """Ollama's num_ctx when neither the request nor OLLAMA_CONTEXT_LENGTH sets one (4096 for an unknown GPU)."""
    if total_vram_bytes is None or version < VRAM_TIERS_VERSION:
        return SMALLEST_TIER_CONTEXT
    for at_least, ctx in CONTEXT_TIERS:
        if total_vram_bytes >= at_least:
            return ctx
    return SMALLEST_TIER_CONTEXT


def predicted_bytes(rm: ResolvedModel, file_bytes: int, cells: int) -> int:
    """Ollama's own load prediction (`PredictServerVRAM`): the file plus an f16 KV cache over the fewest KV heads."""
    spec = rm.spec
    atts = [la.attention for la in spec.layers if la.attention is not None]
    kv_heads = min((a.num_kv_heads for a in atts), default=1) or 1
    heads = max((a.num_heads for a in atts), default=0)
    head_dim = spec.hidden_size // heads if heads else 0
    return file_bytes + 2 * spec.num_layers * kv_heads * head_dim * cells * 2


def automatic_num_batch(
    cells: int, predicted: int, free_bytes: int, *, flash_attn: bool, cuda: bool, smallest_gpu_bytes: int | None
) -> int:
    """`automaticGenerationBatch`: Ollama's num_batch for `cells` KV cells when num_batch is not given."""
    if not flash_attn and cuda:
        small = smallest_gpu_bytes is not None and smallest_gpu_bytes <= 8 * GIB
        return CONSTRAINED_BATCH if cells > 4096 and small else DEFAULT_NUM_BATCH
    steps = [s for s in BATCH_STEPS if cells > s[1]]
    for batch, _, headroom, surcharge in steps:
        if not predicted or not free_bytes:
            return batch
        limit = free_bytes * 80 // 100
        if predicted <= limit and predicted <= free_bytes * headroom // 100 and surcharge <= limit - predicted:
            return batch
    return DEFAULT_NUM_BATCH


def as_llama_cpp(rm: ResolvedModel, wl: Workload) -> tuple[Workload, dict[str, Any]]:
    """The llama.cpp Workload Ollama starts for `wl` (whose options are OllamaOptions; its devices are the GPUs
    Ollama sees), and what Ollama chose on the way (`settings`, `notes`)."""
    o = wl.options
    if not isinstance(o, OllamaOptions):
        raise BadInput(f"engine: expected Ollama options, the workload is for {wl.engine}", field="engine")
    ver = version_tuple(o.ollama_version)
    server = ver >= LLAMA_SERVER_VERSION
    notes: list[str] = []
    total_vram = sum(d.memory_bytes for d in wl.devices) if wl.devices else None
    if wl.kv_dtype is not None:
        raise BadInput(
            "kv_dtype: Ollama sets its cache type with OLLAMA_KV_CACHE_TYPE (--kv-cache-type f16|q8_0|q4_0)",
            field="kv_dtype",
        )
    # num_ctx: the window of a request, prompt and generated tokens together
    if not o.auto_context:
        ctx = wl.context + wl.new_tokens
        if wl.new_tokens:
            notes.append(f"num_ctx {ctx:,} = {wl.context:,} prompt + {wl.new_tokens:,} new tokens")
        if o.context_length is not None:
            notes.append(f"num_ctx {ctx:,} set: OLLAMA_CONTEXT_LENGTH={o.context_length:,} does not apply")
    elif o.context_length is not None:
        ctx = o.context_length
        notes.append(f"num_ctx {ctx:,} from OLLAMA_CONTEXT_LENGTH")
    else:
        ctx = default_num_ctx(total_vram, ver)
        notes.append(
            f"num_ctx {ctx:,}: Ollama {o.ollama_version}'s default for "
            + (f"{total_vram / GIB:,.1f} GiB of GPU memory" if total_vram else "an unknown GPU")
            + (" (≥ 47 GiB 262,144; ≥ 23 GiB 32,768; else 4,096)" if ver >= VRAM_TIERS_VERSION else "")
        )
    train_ctx = rm.spec.max_position_embeddings
    if train_ctx and ctx > train_ctx:
        notes.append(f"num_ctx {ctx:,} lowered to the model's trained context {train_ctx:,} (as Ollama does)")
        ctx = train_ctx
    # slots
    parallel = wl.batch
    if parallel > 1 and rm.spec.model_type in SINGLE_SLOT_MODEL_TYPES:
        notes.append(f"OLLAMA_NUM_PARALLEL={parallel} ignored: Ollama runs {rm.spec.model_type} with one slot")
        parallel = 1
    cells = ctx * parallel
    # cache types and flash attention
    kv = o.kv_cache_type
    if kv != "f16" and not o.flash_attn:
        if server:
            raise BadInput(
                f"kv_cache_type: OLLAMA_KV_CACHE_TYPE={kv} needs flash attention (llama.cpp refuses a quantized V "
                "cache without it); drop --no-flash-attn",
                field="kv_cache_type",
            )
        notes.append(f"OLLAMA_KV_CACHE_TYPE={kv} has no effect without flash attention in this runner: f16")
        kv = "f16"
    llama = LlamaCppOptions(
        n_gpu_layers=o.num_gpu,
        flash_attn=o.flash_attn,
        cache_type_k=kv,
        cache_type_v=kv,
        swa_full=not server,
        n_outputs_max=parallel if server else None,
        backend=o.backend,
    )
    out = replace(wl, context=ctx, batch=parallel, new_tokens=0, options=llama)
    file_bytes: list[int] = []

    def predicted() -> int:
        if not file_bytes:
            from .llama_cpp import estimate as llama_estimate

            probe = llama_estimate(rm, replace(out, devices=())).llama_cpp
            file_bytes.append(probe.weights_total_bytes)
        return predicted_bytes(rm, file_bytes[0], cells)

    # GPUs (server/sched.go selectLlamaServerPlacement): one GPU when one holds the prediction within 80 % of its
    # memory (the one with the most), unless OLLAMA_SCHED_SPREAD or num_gpu 0
    gpu_index = None
    devices = wl.devices
    if len(devices) > 1 and o.num_gpu != 0 and not o.sched_spread and server:
        need = predicted()
        one = [i for i, d in enumerate(devices) if need <= d.usable_bytes * 80 // 100]
        if one:
            gpu_index = max(one, key=lambda i: devices[i].usable_bytes)
            devices = (devices[gpu_index],)
            notes.append(
                f"one GPU: Ollama loads the model on GPU {gpu_index} ({devices[0].name}), whose 80 % holds its "
                f"prediction of {need / GIB:,.2f} GiB (OLLAMA_SCHED_SPREAD=1 spreads it over all)"
            )
        out = replace(out, devices=devices)
    # num_batch (n_batch = n_ubatch)
    if o.num_batch is not None:
        num_batch = o.num_batch
    elif not server:
        num_batch = DEFAULT_NUM_BATCH
    else:
        pred = predicted()
        free = sum(d.usable_bytes for d in devices)
        backend = (o.backend or (devices[0].backend if devices else "cuda")).lower()
        num_batch = automatic_num_batch(
            cells,
            pred,
            free,
            flash_attn=o.flash_attn,
            cuda=backend == "cuda",
            smallest_gpu_bytes=min((d.memory_bytes for d in devices), default=None),
        )
        why = (
            f" (its prediction {pred / GIB:,.2f} GiB, {free / GIB:,.2f} GiB free: nothing else loaded, assumed)"
            if free and cells > 4096
            else ""
        )
        notes.append(f"num_batch {num_batch}: Ollama's automatic choice for {cells:,} cells{why}")
    out = out.with_options(n_batch=num_batch, n_ubatch=num_batch)
    notes.append(
        f"Ollama {o.ollama_version}: "
        + (
            f"llama-server -c {cells} -np {parallel} -b {num_batch} -ub {num_batch} "
            f"--flash-attn {'auto' if o.flash_attn else 'off'}"
            + (f" --cache-type-k {kv} --cache-type-v {kv}" if kv != "f16" else "")
            + (f" -ngl {o.num_gpu}" if o.num_gpu is not None else "")
            + " (one KV stream per slot, no --swa-full)"
            if server
            else f"its own llama.cpp runner: {cells:,} cells for {parallel} slot(s), n_ubatch {num_batch}, "
            "sliding-window layers cached at full size"
        )
    )
    settings = {
        "ollama_version": o.ollama_version,
        "runner": "llama-server" if server else "ollama runner",
        "num_ctx": ctx,
        "num_parallel": parallel,
        "num_batch": num_batch,
        "flash_attention": o.flash_attn,
        "kv_cache_type": kv,
        "num_gpu": o.num_gpu,
        "gpu_index": gpu_index,  # the one GPU Ollama picked from several (None: all of them)
        "notes": notes,
    }
    return out.validate(), settings


def human_bytes(n: int) -> str:
    """A size as `ollama ps` prints it: decimal units, whole numbers from 10 up, one decimal below."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            v = n / size
            if v >= 10:
                return f"{int(v)} {unit}"
            return f"{int(v)} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def ps_view(lc: LlamaCppDetails, n_layers: int) -> dict[str, Any]:
    """What `ollama ps` shows for a llama.cpp estimate's buffers (its `llama_cpp` details) of an n_layers model."""
    gpu = lc.weights_gpu_bytes + lc.kv_gpu_bytes + lc.compute_gpu_bytes
    host = lc.weights_host_bytes + lc.kv_host_bytes + lc.compute_host_bytes + lc.output_host_bytes
    # every layer offloaded and no tensor kept back: Ollama counts the GPU buffers only (token_embd's CPU copy aside)
    all_on_gpu = lc.output_on_gpu and lc.blocks_on_gpu >= n_layers and not lc.n_cpu_moe
    size = gpu if all_on_gpu else gpu + host
    if gpu == 0:
        processor = "100% CPU"
    elif gpu >= size:
        processor = "100% GPU"
    else:
        cpu_pct = round((size - gpu) / size * 100)
        processor = f"{cpu_pct}%/{100 - cpu_pct}% CPU/GPU"
    return {"size_bytes": size, "vram_bytes": gpu, "size": human_bytes(size), "processor": processor}


def _over_the_gpus(est: Estimate, lwl: Workload) -> bool:
    """Whether a llama.cpp estimate over the workload's devices needs more than one of them can hold."""
    if not lwl.devices:
        return False
    per_device = est.llama_cpp.devices
    if per_device and len(per_device) == len(lwl.devices):
        return any(
            du.weights_gpu_bytes + du.kv_gpu_bytes + du.compute_gpu_bytes > d.usable_bytes
            for du, d in zip(per_device, lwl.devices, strict=True)
        )
    return est.total_bytes > lwl.devices[0].usable_bytes


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    """The llama.cpp estimate of what Ollama starts, with Ollama's choices among the assumptions and `ollama` in
    its details (settings and what `ollama ps` will show)."""
    from .llama_cpp import estimate as llama_estimate

    lwl, settings = as_llama_cpp(rm, wl)
    est = llama_estimate(rm, lwl)
    view = ps_view(est.llama_cpp, rm.spec.num_layers)
    ps: dict[str, Any] | None = view
    ps_line = (
        f"`ollama ps` would show SIZE {view['size']}, PROCESSOR {view['processor']}, CONTEXT {settings['num_ctx']:,}"
    )
    num_gpu = wl.options.num_gpu if isinstance(wl.options, OllamaOptions) else None
    if num_gpu is None and _over_the_gpus(est, lwl):
        # num_gpu unset: llama-server's automatic fit keeps only part of the model on the GPU(s); the layout this
        # estimate sizes (every layer on the GPU) is not the one Ollama would load
        ps = None
        ps_line = (
            "every layer on the GPU does not fit: Ollama would keep only part of the model there (num_gpu unset: "
            "llama-server's automatic fit); `vram fit` finds how much, and what `ollama ps` then shows"
        )
    ollama = {**settings, "ps": ps}
    return replace(
        est,
        engine="ollama",
        assumptions=(*settings["notes"], ps_line, *est.assumptions),
        extra={**est.extra, "ollama": ollama},
    )
