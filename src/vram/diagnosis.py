"""Explain a run that ran out of memory (or nearly): read its log (`vram.logs`), rebuild the workload, put vram's
estimate next to every figure the log states, name the term that differs most, and find the smallest change that
makes it fit — each candidate checked with the same estimator `vram fit` uses.

Nothing is guessed silently: what the log does not state (the model for a PyTorch message, the GPU for
`ollama ps`) is listed in ``missing``; assumed values (a default context, a GPU's memory) in ``assumptions``.
Model names are matched against the catalog only (never the network); llama.cpp and Ollama logs that print the
model's hyperparameters are estimated from those when the name is not in the catalog.
"""

from __future__ import annotations

import re
from typing import Any

from . import logs
from .catalog import GpuEntry, ModelEntry, find_gpu, find_model, search_gpus
from .details import LlamaCppDetails
from .devices import device_of
from .errors import BadInput, UnknownGpu, UnknownModel, VramError
from .logs import ParsedLog
from .model import model_from_config
from .records import field, record, replace
from .request import Workload
from .resolved import ResolvedModel
from .resolver import resolve_model
from .units import fmt_auto

GIB = 1024**3
MIB = 1024**2
DEFAULT_OLLAMA_CONTEXT = 4096  # Ollama's default num_ctx since 0.6 (2,048 before)
DEFAULT_LLAMA_CPP_CONTEXT = 4096  # llama-server's -c default before it took the model's n_ctx_train (b4000+)
VLLM_HIGH_UTILIZATION = 0.95  # the highest gpu_memory_utilization proposed: leaves room for other processes


@record(frozen=True)
class Term:
    """One figure the log states, with vram's estimate of the same thing (bytes; None where unknown)."""

    name: str
    logged_bytes: int | None
    estimated_bytes: int | None
    note: str = ""

    @property
    def difference_bytes(self) -> int | None:
        if self.logged_bytes is None or self.estimated_bytes is None:
            return None
        return self.logged_bytes - self.estimated_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "logged_bytes": self.logged_bytes,
            "estimated_bytes": self.estimated_bytes,
            "difference_bytes": self.difference_bytes,
            "note": self.note,
        }


@record(frozen=True)
class Explanation:
    kind: str | None
    model: str | None
    resolved: str | None
    gpu: dict[str, Any] | None
    workload: dict[str, Any]
    out_of_memory: bool | None
    terms: tuple[Term, ...]
    largest_difference: str | None
    why: str | None
    fix: str | None
    alternatives: tuple[str, ...]
    verdict: str | None  # vram's verdict for the workload as logged (fits / tight / no)
    recognised: tuple[str, ...]
    missing: tuple[str, ...]
    assumptions: tuple[str, ...]
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from .schemas import schema_id

        return {
            "schema": schema_id("explain"),
            "kind": self.kind,
            "model": self.model,
            "resolved": self.resolved,
            "gpu": self.gpu,
            "workload": self.workload,
            "out_of_memory": self.out_of_memory,
            "terms": [t.to_dict() for t in self.terms],
            "largest_difference": self.largest_difference,
            "why": self.why,
            "fix": self.fix,
            "alternatives": list(self.alternatives),
            "verdict": self.verdict,
            "recognised": list(self.recognised),
            "missing": list(self.missing),
            "assumptions": list(self.assumptions),
            "errors": list(self.errors),
        }


@record()
class _Ctx:
    """Working state while explaining one log."""

    p: ParsedLog
    rm: ResolvedModel | None = None
    entry_id: str | None = None
    gpu: GpuEntry | None = None
    count: int = 1
    engine: str = "transformers"
    wl: Workload | None = None
    missing: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    model_ref: str | None = None  # what a command line should name (Hub repo, GGUF file, Ollama tag)
    excess: int = 0  # what the log shows beyond vram's estimate of the same terms; kept when trying fixes
    train: Any = None  # a TrainWorkload when the PyTorch message came from a training step


# ---------------------------------------------------------------------------------------------------------------
# matching names to the catalog

_QUANT_SUFFIX = re.compile(
    r"[-_.](?:(?:i?q\d(?:_[a-z0-9]+)*)|f16|bf16|fp16|f32|fp8(?:-dynamic)?|awq|gptq(?:-int\d)?(?:-g\d+)?|int[48]|"
    r"bnb-4bit|4bit|8bit|w4a16|w8a8|mlx(?:-\dbit)?|gguf)$",
    re.IGNORECASE,
)


def name_variants(name: str) -> list[str]:
    """Spellings of a model name to look up: the name, without its directory, GGUF shard and quantization suffixes,
    and without chat/instruct suffixes."""
    base = name.strip().strip("'\"")
    out = [base]
    if " " in base and "/" not in base and "\\" not in base:  # a GGUF general.name: "Meta Llama 3.1 8B Instruct"
        base = re.sub(r"\s+", "-", base)
        out.append(base)
    hf = re.search(r"models--([\w.-]+)--([\w.-]+)", base)  # a Hugging Face cache folder
    if hf:
        out.append(f"{hf.group(1)}/{hf.group(2)}")
        base = f"{hf.group(1)}/{hf.group(2)}"
    tail = base.replace("\\", "/")
    if "/" in tail and not re.fullmatch(r"[\w.-]+/[\w.-]+", tail):
        parts = [x for x in tail.split("/") if x]
        out.append(parts[-1])
        if len(parts) >= 2:
            out.append("/".join(parts[-2:]))
    cur = out[-1]
    cur = re.sub(r"\.gguf$", "", cur, flags=re.IGNORECASE)
    cur = re.sub(r"-\d{5}-of-\d{5}$", "", cur)
    out.append(cur)
    while True:
        nxt = _QUANT_SUFFIX.sub("", cur)
        if nxt == cur:
            break
        cur = nxt
        out.append(cur)
    if re.search(r"-\d{3,}$", cur):  # a private build number (DeepSeek-R1-11446)
        out.append(re.sub(r"-\d{3,}$", "", cur))
        cur = out[-1]
    for suffix in ("-Instruct", "-instruct", "-Chat", "-chat", "-it", "-hf", "-Base"):
        if cur.endswith(suffix):
            out.append(cur[: -len(suffix)])
    if ":" in cur:  # Ollama tag: llama3.1:70b-instruct-q4_K_M -> llama3.1:70b
        repo, tag = cur.split(":", 1)
        size = re.match(r"[\d.]+[bm](?:-a\d+b)?", tag)
        out.append(f"{repo}:{size.group(0)}" if size else repo)
    short = out[-1].split("/")[-1]
    out += [short, re.sub(r"^Meta-", "", short)]
    bare = re.sub(r"^(?:ggml-)?(?:meta-)?", "", short, flags=re.IGNORECASE)  # ggml-meta-llama-3-8b-instruct-f16
    out += [bare, re.sub(r"-(?:instruct|chat|it)$", "", bare, flags=re.IGNORECASE)]
    seen: list[str] = []
    for v in out:
        if v and v not in seen:
            seen.append(v)
    return seen


def match_model(name: str) -> ModelEntry | None:
    """The catalog entry a logged model name means, or None (no network)."""
    for v in name_variants(name):
        try:
            return find_model(v)
        except UnknownModel:
            continue
    return None


def quant_from_name(name: str) -> str | None:
    """The weight format a checkpoint or file name states (Q4_K_M, AWQ, GPTQ-Int4, FP8 ...)."""
    low = name.lower()
    m = re.search(r"(?:^|[-_.])(i?q\d_[a-z0-9_]+|q\d_\d|q8_0)(?:\.gguf|-\d{5}-of|$|[-_.])", low)
    if m:
        q = m.group(1).rstrip("_")
        return q if q in _known_quants() else {"q3_k": "q3_k_m"}.get(q, q if q in _known_quants() else None)
    if "awq" in low:
        return "awq-4bit-g128"
    if "gptq" in low:
        return "gptq-8bit-g128" if "int8" in low or "8bit" in low else "gptq-4bit-g128"
    if re.search(r"fp8|w8a8-fp8", low):
        return "fp8"
    if re.search(r"(?:^|[-_.])(?:int8|w8a8)(?:$|[-_.])", low):
        return "int8"
    if re.search(r"(?:^|[-_.])(?:int4|w4a16)(?:$|[-_.])", low):
        return "int4"
    if "bnb-4bit" in low:
        return "nf4"
    if re.search(r"(?:^|[-_.])bf16(?:\.gguf|$|[-_.])", low):
        return "bfloat16"
    if re.search(r"(?:^|[-_.])f16(?:\.gguf|$|[-_.])", low):
        return "float16"
    return None


def _known_quants() -> set[str]:
    from .dtypes import known_quants

    return set(known_quants())


def match_gpu(name: str | None, memory_bytes: int | None) -> GpuEntry | None:
    """The catalog GPU a logged name means (e.g. "NVIDIA GeForce RTX 4060 Ti" with 16 GiB -> rtx-4060-ti-16gb)."""
    if name:
        clean = re.sub(r"^(NVIDIA|AMD)\s+|GeForce\s+|\s*\(.*\)$", "", name.strip(), flags=re.IGNORECASE).strip()
        tries = [clean, name]
        if memory_bytes:
            gb = round(memory_bytes / 1e9)
            gib = round(memory_bytes / GIB)
            tries = [f"{clean} {gib}GB", f"{clean} {gb}GB", *tries]
        for t in tries:
            try:
                return find_gpu(t)
            except UnknownGpu:
                pass
        loose = re.sub(r"[^a-z0-9]", "", clean.lower())
        cands = [g for g in search_gpus("") if loose and loose in re.sub(r"[^a-z0-9]", "", g.name.lower())]
        if memory_bytes and cands:
            cands.sort(key=lambda g: abs(g.memory_bytes - memory_bytes))
        if cands:
            return cands[0]
    return None


def _synthetic_gpu(name: str | None, memory_bytes: int, base: GpuEntry | None) -> GpuEntry:
    """A GPU with the memory the log states (the catalog entry's other figures when the name matched)."""
    if base is not None:
        return replace(base, usable_memory_bytes=memory_bytes)
    return GpuEntry(
        id="logged-gpu",
        name=name or "the GPU in the log",
        vendor="nvidia",
        category="unknown",
        architecture="unknown",
        aliases=(),
        memory_bytes=memory_bytes,
        usable_memory_bytes=memory_bytes,
        bandwidth_gb_per_s=1000.0,
        fp16_tflops=None,
        fp8_tflops=None,
        int8_tops=None,
        interconnect="pcie",
        interconnect_gb_per_s=None,
        tdp_watts=None,
        year=None,
        price_per_hour_usd=None,
        memory_gb=memory_bytes / 1e9,
    )


# ---------------------------------------------------------------------------------------------------------------
# the model


def _spec_from_llama_log(p: ParsedLog) -> ResolvedModel | None:
    """A model description from the hyperparameters llama.cpp printed (GGUF keys or print_info lines)."""
    from .sources.gguf import config_from_metadata

    gg: dict[str, Any] = dict(p.metadata.get("gguf", {}))
    pi: dict[str, str] = p.metadata.get("print_info", {})
    arch = str(gg.get("general.architecture") or pi.get("arch") or "")
    if not arch:  # the key prefix names it (llama.block_count)
        arch = next((k.rsplit(".", 1)[0] for k in gg if k.endswith(".block_count")), "")
    if not arch:
        return None
    meta: dict[str, Any] = {k: v for k, v in gg.items()}
    for short, key in logs._META_KEYS.items():
        full = f"{arch}.{key}"
        if full not in meta and short in pi:
            val = pi[short]
            nums = re.findall(r"-?\d+", val)
            if not nums:
                continue
            meta[full] = int(nums[0]) if len(set(nums)) == 1 else [int(x) for x in nums]
    try:
        cfg = config_from_metadata(meta, arch)
    except VramError:
        return None
    cfg["tie_word_embeddings"] = False  # llama.cpp logs do not say; an output matrix is the common case
    name = str(gg.get("general.name") or pi.get("general.name") or p.model or arch)
    try:
        spec = model_from_config(cfg, name=name)
    except VramError:
        return None
    return ResolvedModel(spec, None, "log hyperparameters")


def _resolve(c: _Ctx, model: str | None) -> None:
    p = c.p
    if model:  # given by the user: any reference vram accepts (catalog, Hub id, config, GGUF file)
        c.rm = resolve_model(model)
        c.entry_id = c.rm.entry.id if c.rm.entry else c.rm.source
        c.model_ref = p.model or (c.rm.entry.hf_repo if c.rm.entry else model)  # what the run named, if it did
        return
    if p.model:
        entry = match_model(p.model)
        if entry is not None and entry.kind == "llm":
            c.rm = resolve_model(entry.id)
            c.entry_id = entry.id
            c.model_ref = p.model
            return
    if p.kind in ("llama.cpp", "ollama"):
        rm = _spec_from_llama_log(p)
        if rm is not None:
            c.rm = rm
            c.entry_id = "log hyperparameters"
            c.model_ref = p.model
            return
    if p.model:
        c.missing.append(
            f"model {p.model!r} is not in the catalog and the log prints no hyperparameters "
            "(pass --model with a catalog id, config.json or .gguf)"
        )
    else:
        c.missing.append("model (the log does not name it: pass --model)")


# ---------------------------------------------------------------------------------------------------------------
# the workload


def _workload(c: _Ctx, options: dict[str, Any]) -> None:
    p = c.p
    lw = p.workload
    kind = p.kind
    engine = {"vllm": "vllm", "llama.cpp": "llama.cpp", "ollama": "llama.cpp"}.get(kind or "", "transformers")
    c.engine = engine
    kw: dict[str, Any] = {"engine": engine}
    if engine == "vllm":
        kw["new_tokens"] = 0
        if "gpu_memory_utilization" in lw:
            kw["gpu_memory_utilization"] = float(lw["gpu_memory_utilization"])
        else:
            c.assumptions.append("gpu_memory_utilization 0.9 (vLLM's default; the log does not state it)")
        if "max_num_seqs" in lw:
            kw["max_num_seqs"] = int(lw["max_num_seqs"])
        if lw.get("kv_cache_type") and str(lw["kv_cache_type"]).startswith("fp8"):
            kw["kv_dtype"] = "fp8"
        if lw.get("dtype") in ("float16", "half"):
            kw["dtype"] = "float16"
        if "context" in lw:
            kw["context"] = int(lw["context"])
        elif c.rm is not None:
            ctx = (c.rm.entry.context_length if c.rm.entry else None) or c.rm.spec.max_position_embeddings
            if ctx:
                kw["context"] = int(ctx)
                c.assumptions.append(
                    f"max_model_len {ctx:,}: the model's own (vLLM's default; the log does not state it)"
                )
        q = _vllm_quant(lw.get("quant"), p.model)
        if q:
            kw["quant"] = q
    elif engine == "llama.cpp":
        kw["new_tokens"] = 0
        parallel = int(lw.get("parallel") or 1)
        ctx = lw.get("context") or options.get("context")
        if ctx is None:
            ctx = DEFAULT_OLLAMA_CONTEXT if kind == "ollama" else DEFAULT_LLAMA_CPP_CONTEXT
            c.assumptions.append(
                f"context {ctx:,} ({'Ollama' if kind == 'ollama' else 'llama-server'}'s default; "
                "the log does not state n_ctx)"
            )
            c.missing.append("context (n_ctx / num_ctx)")
        # n_ctx is the whole cache, split over n_seq_max sequences (Ollama's runner gets --ctx-size num_ctx ×
        # OLLAMA_NUM_PARALLEL and --parallel)
        kw["context"] = max(1, int(ctx) // parallel) if parallel > 1 else int(ctx)
        kw["batch"] = parallel
        for key in ("n_ubatch", "n_batch"):
            if lw.get(key):
                kw[key] = int(lw[key])
        if "flash_attn" in lw:
            kw["flash_attn"] = bool(lw["flash_attn"])
        if lw.get("kv_unified"):
            kw["kv_unified"] = True
        for key in ("cache_type_k", "cache_type_v"):
            if lw.get(key):
                kw[key] = str(lw[key]).lower()
        q = lw.get("quant") or (quant_from_name(p.model) if p.model else None)
        if q and "quant" not in lw:
            lw["quant"] = q  # the file name states it (Meta-Llama-3-8B-Instruct.Q5_K_M.gguf)
        if q and c.rm is not None and c.rm.weights_info is None:
            kw["quant"] = q
        elif c.rm is not None and c.rm.weights_info is None and kind in ("ollama",):
            kw["quant"] = "q4_k_m"
            c.assumptions.append("weights q4_k_m (Ollama's default tag; the log does not state the file type)")
        elif c.rm is not None and c.rm.weights_info is None and "quant" not in options:
            c.assumptions.append("weights f16 (the log states no file type: pass --quant)")
            c.missing.append("weight format (the GGUF file type)")
        ngl = lw.get("n_gpu_layers")
        if ngl is not None and c.rm is not None and kind == "llama.cpp":
            n_layer = c.rm.spec.num_layers
            kw["n_gpu_layers"] = int(ngl) if int(ngl) <= n_layer else None
    else:
        if "context" not in options and c.train is None:
            c.assumptions.append("context 4,096 (vram's default; give --context)")
    kw.update({k: v for k, v in options.items() if v is not None})
    try:
        c.wl = Workload.from_flat(**kw).validate()
    except VramError as exc:
        c.missing.append(f"workload: {exc}")
        c.wl = None


def _vllm_quant(q: Any, model: str | None) -> str | None:
    if q:
        s = str(q).lower()
        if "awq" in s:
            return "awq-4bit-g128"
        if "gptq" in s:
            return "gptq-4bit-g128"
        if s in ("fp8", "modelopt", "compressed-tensors") and model and quant_from_name(model) == "fp8":
            return "fp8"
        if s == "fp8":
            return "fp8"
        if "bitsandbytes" in s:
            return "nf4"
    return quant_from_name(model) if model else None


def _gpu(c: _Ctx, gpu: str | None) -> None:
    p = c.p
    count = p.gpu_count or 1
    lw = p.workload
    tp = int(lw.get("tensor_parallel_size") or 1) * int(lw.get("pipeline_parallel_size") or 1)
    if p.kind == "vllm":
        count = max(1, tp)
    base: GpuEntry | None = None
    if gpu:
        from .fitting import parse_gpu_spec

        choice = parse_gpu_spec(gpu)
        base, count = choice.gpu, choice.count if re.match(r"^\s*\d+\s*[x×*]", gpu) else count
    else:
        base = match_gpu(p.gpu_name, p.gpu_memory_bytes)
    mem = p.gpu_memory_bytes
    if mem is None and base is not None:
        mem = base.usable_memory_bytes
        c.assumptions.append(
            f"GPU memory {mem / GIB:,.2f} GiB per GPU: the catalog's {base.id} (the log does not state it)"
        )
    c.count = count
    if mem is None:
        c.missing.append("GPU memory (the log states none: pass --gpu)")
        return
    if p.kind == "ollama" and p.metadata.get("ollama_available"):
        c.assumptions.append("GPU memory: what Ollama found available when it scheduled the model")
    c.gpu = _synthetic_gpu(p.gpu_name, mem, base) if not gpu or p.gpu_memory_bytes else base
    c.count = count


# ---------------------------------------------------------------------------------------------------------------
# the comparison


def _evaluate(c: _Ctx, wl: Workload, count: int | None = None) -> Any:
    """fit() on the logged GPU (no solvers, no speed); None where the model or GPU is unknown."""
    from .fitting import GpuChoice, fit

    if c.rm is None or c.gpu is None:
        return None
    n = count or c.count
    try:
        if c.train is not None:
            return fit(c.rm, GpuChoice(c.gpu, n), wl, train=c.train, headroom_fraction=0.0)
        return fit(c.rm, GpuChoice(c.gpu, n), wl, solve=False, with_speed=False, headroom_fraction=0.0)
    except BadInput:
        return None


def _train_fits(c: _Ctx, tw: Any) -> bool:
    saved = c.train
    c.train = tw
    try:
        return _fits(c, c.wl) if c.wl is not None else False
    finally:
        c.train = saved


@record(frozen=True)
class _NoGpu:
    """The estimate alone, where the GPU is not known: terms can be compared, no verdict given."""

    estimate: Any
    per_gpu_bytes: int
    ranks: tuple[Any, ...] = ()
    split: str = "single"
    gpu_count: int = 1
    verdict: str | None = None
    usable_bytes_per_gpu: int | None = None


def _single_estimate(c: _Ctx) -> _NoGpu | None:
    from .inference import estimate

    assert c.rm is not None and c.wl is not None
    wl = c.wl
    if c.gpu is not None:
        wl = replace(wl, devices=(device_of(c.gpu),))
    elif wl.engine == "vllm":  # vLLM sizes its cache from the GPU; its weights and profile terms barely depend on it
        wl = replace(wl, devices=(device_of("h100-sxm"),))
        c.assumptions.append(
            "GPU unknown: vLLM's weights and profile-run terms estimated as on an H100 SXM (its "
            "KV cache depends on the GPU's memory and is not compared)"
        )
    try:
        e = estimate(c.rm, wl)
    except VramError:
        return None
    return _NoGpu(e, e.total_bytes)


def _rank_estimate(c: _Ctx, wl: Workload | None = None) -> _NoGpu | None:
    """Several GPUs of unknown memory: one rank's share (vram fit's split on a GPU too large to matter)."""
    saved = c.gpu
    c.gpu = _synthetic_gpu(None, 1 << 42, None)
    wl = wl or c.wl
    try:
        r = _evaluate(c, wl) if wl is not None else None
    finally:
        c.gpu = saved
    return _NoGpu(r.estimate, r.per_gpu_bytes, r.ranks, r.split, r.gpu_count) if r is not None else None


def _component(est: Any, name: str) -> int | None:
    comp = est.component(name)
    return comp.bytes if comp is not None else None


def _terms(c: _Ctx, r: Any) -> list[Term]:
    p = c.p
    lg = p.logged
    kind = p.kind
    out: list[Term] = []

    def add(name: str, logged: int | None, est: int | None, note: str = "") -> None:
        if logged is not None or name == p.failed_buffer:
            out.append(Term(name, logged, est, note))

    if r is None:
        for name, b in lg.items():
            out.append(Term(name, b, None, "no estimate (see missing)"))
        return out
    e = r.estimate
    if kind == "vllm":
        gpu_known = not isinstance(r, _NoGpu)  # vLLM sizes its profile run and KV cache from the device
        kv_cap: int | None = int(e.extra.get("kv_cache_capacity_bytes", 0)) if gpu_known else None
        add("weights", lg.get("weights"), e.weights_bytes, "per GPU, as vLLM reports 'Model loading took'")
        add(
            "activations",
            lg.get("activations"),
            _component(e, "activations") if gpu_known else None,
            "profile-run peak beyond weights",
        )
        add("non_torch_memory", lg.get("non_torch_memory"), _component(e, "non_torch_memory"))
        add("kv_cache", lg.get("kv_cache"), kv_cap, "what is left for KV blocks in gpu_memory_utilization × memory")
        add("cuda_graphs", lg.get("cuda_graphs"), _component(e, "cuda_graphs"))
    elif kind in ("llama.cpp", "ollama") and "ollama_available" not in p.metadata and "total" not in lg:
        w = sum(u.weights_bytes for u in r.ranks) if r.split == "pp" else e.weights_bytes * r.gpu_count
        kv = sum(u.kv_cache_bytes for u in r.ranks) if r.split == "pp" else e.kv_cache_bytes * r.gpu_count
        cb = (
            sum(_component_rank(u, "compute_buffer") for u in r.ranks)
            if r.split == "pp"
            else (_component(e, "compute_buffer") or 0)
        )
        if p.failed_buffer == "weights" and "weights" not in lg:
            add("weights", p.failed_allocation_bytes, e.weights_bytes, "the allocation that failed (one device)")
        else:
            add("weights", lg.get("weights"), w, "model buffers on the GPU(s)")
        add(
            "kv_cache",
            lg.get("kv_cache") if p.failed_buffer != "kv_cache" or "kv_cache" in lg else p.failed_allocation_bytes,
            kv,
            "KV buffers on the GPU(s)",
        )
        add(
            "compute_buffer",
            lg.get("compute_buffer") if p.failed_buffer != "compute_buffer" else p.failed_allocation_bytes,
            cb,
            "ggml compute buffer(s) on the GPU(s)",
        )
        llx = e.details if isinstance(e.details, LlamaCppDetails) else None
        total_w = llx.weights_total_bytes if llx is not None else None
        add("model_size", lg.get("model_size"), total_w, "all the file's tensors (print_info: model size)")
    elif kind == "ollama":
        llx = e.details if isinstance(e.details, LlamaCppDetails) else None
        w_total = (
            (llx.weights_total_bytes if llx is not None else e.weights_bytes)
            if r.split != "pp"
            else sum(u.weights_bytes for u in r.ranks)
        )
        kv_total = (
            (llx.kv_total_bytes if llx is not None else e.kv_cache_bytes)
            if r.split != "pp"
            else sum(u.kv_cache_bytes for u in r.ranks)
        )
        cb = _component(e, "compute_buffer") or 0
        add("weights", lg.get("weights"), w_total, "the whole model (Ollama's memory.weights.total)")
        add("kv_cache", lg.get("kv_cache"), kv_total, "the whole KV cache (memory.required.kv)")
        add("compute_buffer", lg.get("compute_buffer"), cb, "Ollama's graph estimate (memory.graph.full)")
        add(
            "total",
            lg.get("total"),
            w_total + kv_total + cb * (r.gpu_count if r.split == "pp" else 1),
            "everything on GPUs (memory.required.full; `ollama ps` SIZE)",
        )
    elif kind in ("pytorch-oom", "nvidia-smi"):
        if "allocated" in lg:
            add(
                "peak_allocated",
                lg["allocated"] + lg.get("requested", 0),
                e.peak_allocated_bytes,
                "allocated by PyTorch + the allocation that failed",
            )
            add("allocator_reserve", lg.get("reserved_unallocated"), _component(e, "allocator_reserve"))
            add(
                "cuda_context",
                lg.get("non_pytorch"),
                _component(e, "cuda_context"),
                "memory of the process outside PyTorch's allocator",
            )
        if "device_used" in lg:
            add("device_total", lg["device_used"], r.per_gpu_bytes, "nvidia-smi's Memory-Usage of the fullest GPU")
    return out


def _per_token_terms(c: _Ctx) -> list[Term]:
    """vLLM states its KV cache in bytes and in tokens: bytes per token is a pure function of the architecture and
    the cache dtype, so it checks the model description without knowing the GPU."""
    p = c.p
    tokens = p.metadata.get("kv_cache_tokens") or (p.metadata["kv_blocks"] * 16 if "kv_blocks" in p.metadata else None)
    kv = p.metadata.get("kv_cache_tokens_bytes") or p.logged.get("kv_cache")
    if p.kind != "vllm" or not tokens or not kv or c.wl is None:
        return []
    per = _vllm_kv_per_token(c, c.wl)
    return [Term("kv_bytes_per_token", kv // tokens, per, f"{kv / GIB:,.2f} GiB / {tokens:,} tokens in the log")]


def _kv_needed_term(c: _Ctx) -> list[Term]:
    """vLLM's refusal states the KV cache one request of max_model_len needs on a GPU: block-rounded tokens × the
    bytes of every KV layer the rank holds, a pure function of the architecture, the cache dtype and the split, so it
    checks the model description (and the split vLLM assumed) without knowing the GPU's memory."""
    p = c.p
    needed = p.metadata.get("kv_needed_bytes")
    if p.kind != "vllm" or not needed or c.wl is None or c.rm is None:
        return []
    r = _rank_estimate(c) if c.count > 1 else _single_estimate(c)
    est = r.estimate.kv_cache_bytes if r is not None else None
    return [Term("kv_cache_needed", int(needed), est, f"one request of {c.wl.context:,} tokens, as vLLM checks it")]


def _component_rank(u: Any, name: str) -> int:
    return next((x.bytes for x in u.breakdown if x.name == name), 0)


_WHY = {
    ("vllm", "weights"): "the checkpoint loaded is not the one assumed (dtype, quantization, or extra modules such "
    "as a vision tower); check --quantization / --dtype and the repo id",
    ("vllm", "activations"): "the profile run's peak depends on max_num_batched_tokens, max_num_seqs and "
    "torch.compile buffers (vram models the forward and the sampler, not compile buffers)",
    ("vllm", "kv_cache"): "vLLM gives the KV cache what is left of gpu_memory_utilization × memory after weights, "
    "the profile peak and non-torch memory: it follows the other terms and the memory other "
    "processes already hold",
    ("vllm", "non_torch_memory"): "NCCL buffers, custom all-reduce and cuBLAS workspaces, and anything another "
    "process allocated meanwhile",
    ("vllm", "kv_cache_needed"): "vLLM checks one request of max_model_len against one GPU's KV memory: the figure "
    "follows the layers and KV heads each rank holds and --kv-cache-dtype, not the memory",
    ("vllm", "cuda_graphs"): "the CUDA graph pool grows with the captured batch sizes (--enforce-eager drops it)",
    ("llama.cpp", "weights"): "the GGUF's tensor types (its quantization mix) or the layers offloaded differ from "
    "what was assumed",
    ("llama.cpp", "kv_cache"): "n_ctx × parallel sequences and the cache types set the KV cache: n_ctx is the "
    "whole cache, shared by -np sequences",
    ("llama.cpp", "compute_buffer"): "the compute buffer is sized for n_ubatch tokens over the whole context, with "
    "logits over the vocabulary; without flash attention it holds the score matrix",
    ("ollama", "weights"): "Ollama's estimate counts the file's tensors; a different tag or quantization changes it",
    ("ollama", "kv_cache"): "num_ctx × OLLAMA_NUM_PARALLEL sequences at f16 unless OLLAMA_KV_CACHE_TYPE is set",
    ("ollama", "compute_buffer"): "Ollama's graph estimate is conservative (it sizes for the larger of prompt "
    "processing and the output)",
    ("ollama", "total"): "Ollama adds its graph and per-GPU overheads to weights and KV cache",
    ("pytorch-oom", "peak_allocated"): "the tensors the script held were more than this workload needs: a longer "
    "sequence, a larger batch, gradients/optimizer states, or tensors kept from "
    "an earlier step",
    ("pytorch-oom", "allocator_reserve"): "the caching allocator kept freed blocks reserved (fragmentation); "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True reduces it",
    ("pytorch-oom", "cuda_context"): "memory outside PyTorch's allocator: the CUDA context, cuDNN/cuBLAS "
    "workspaces, NCCL, or another library in the same process",
    ("nvidia-smi", "device_total"): "other processes or a different workload share the GPU",
}


def _largest(terms: list[Term], c: _Ctx) -> tuple[str | None, str | None]:
    compared = [t for t in terms if t.difference_bytes is not None]
    # derived figures explain nothing by themselves: vLLM's KV cache is what the other terms leave, a total is their
    # sum, bytes per token is another unit; they are named only when nothing else was compared
    derived = {"total", "kv_bytes_per_token", "kv_cache_needed"} | ({"kv_cache"} if c.p.kind == "vllm" else set())
    both = [t for t in compared if t.name not in derived] or [t for t in compared if t.name != "kv_bytes_per_token"]
    if not both and compared:
        both = compared
    if not both:
        return None, None
    t = max(both, key=lambda x: abs(x.difference_bytes or 0))
    d = t.difference_bytes or 0
    assert t.logged_bytes is not None and t.estimated_bytes is not None
    kind = c.p.kind or ""
    base = _WHY.get((kind, t.name)) or _WHY.get(("llama.cpp", t.name)) or ""
    direction = "more" if d > 0 else "less"
    gap = f"{fmt_auto(abs(d))} {direction} in the log" if d else "the same"
    if abs(d) * 100 <= max(t.logged_bytes, t.estimated_bytes):  # within 1 %: every term agrees, nothing to explain
        gap, base = (gap + ", within 1 %" if d else gap), ""
    if c.p.out_of_memory and d < 0 and c.p.kind == "pytorch-oom":
        base = (
            "the run stopped at the first allocation that did not fit, so the log's figure is a lower bound of "
            "what the step needs; vram's is the whole step's peak"
        )
    context_assumed = any(m.startswith("context") for m in c.missing)
    if t.name == "kv_cache" and base and context_assumed and c.wl is not None and t.estimated_bytes:
        # the cache is cells × bytes per cell: the cells the log's figure holds, at vram's bytes per cell
        cells = c.wl.context * c.wl.batch
        held = round(t.logged_bytes * cells / t.estimated_bytes)
        base += f"; the log's figure is {held:,} cells at vram's bytes per cell, against the {cells:,} assumed"
    why = (
        f"{t.name}: the log states {fmt_auto(t.logged_bytes)}, vram estimates {fmt_auto(t.estimated_bytes)} "
        f"({gap})" + (f" — {base}" if base else "")
    )
    return t.name, why


# ---------------------------------------------------------------------------------------------------------------
# the smallest change that fits


def _fits(c: _Ctx, wl: Workload, count: int | None = None) -> bool:
    if c.p.kind == "vllm" and (count or c.count) == c.count and c.wl is not None and wl.quant == c.wl.quant:
        cap = _vllm_kv_capacity(c, wl)
        per = _vllm_kv_per_token(c, wl)
        needed = c.p.metadata.get("kv_needed_bytes")
        logged_per = _vllm_kv_per_token(c, c.wl) if needed else None
        if per is not None and needed and logged_per:
            # vLLM's own figure for one request of the logged max_model_len: it checks what it computes, which can
            # differ from the layers a rank holds (pipeline stages); vram's per-token bytes scaled to it
            blocks = -(-c.wl.context // c.wl.vllm.block_size) * c.wl.vllm.block_size
            per = int(per * (needed / blocks) / logged_per)
        if cap is not None and per is not None:
            return cap >= -(-(wl.context + wl.new_tokens) // wl.vllm.block_size) * wl.vllm.block_size * per
    r = _evaluate(c, wl, count)
    return r is not None and r.per_gpu_bytes + c.excess <= r.usable_bytes_per_gpu


def _vllm_kv_per_token(c: _Ctx, wl: Workload) -> int | None:
    """KV bytes per token on one GPU, from vram's model of the layers (exact for the architecture)."""
    from .inference import estimate

    if c.rm is None:
        return None
    if c.count > 1:
        r = _evaluate(c, wl) if c.gpu is not None else _rank_estimate(c, wl)
        return int(r.estimate.extra["kv_bytes_per_token"]) if r is not None else None
    # bytes per token do not depend on the device; vLLM's estimate needs one to size its budget
    dev = device_of(c.gpu) if c.gpu is not None else device_of("h100-sxm")
    return int(estimate(c.rm, replace(wl, devices=(dev,))).extra["kv_bytes_per_token"])


def _vllm_kv_capacity(c: _Ctx, wl: Workload) -> int | None:
    """What vLLM will find for the KV cache under `wl`, from the figures the log states: vLLM's own arithmetic
    (gpu_memory_utilization × memory − weights − profile peak − non-torch memory), with the log's KV cache when it
    states one and vram's terms only for what it does not state."""
    p = c.p
    lg = p.logged
    if c.wl is None:
        return None
    mem = c.gpu.usable_memory_bytes if c.gpu is not None else None
    if mem is None and wl.vllm.gpu_memory_utilization != c.wl.vllm.gpu_memory_utilization:
        return None
    shift = int((wl.vllm.gpu_memory_utilization - c.wl.vllm.gpu_memory_utilization) * (mem or 0))
    if "kv_cache" in lg and not (lg["kv_cache"] == 0 and "weights" in lg):
        return lg["kv_cache"] + shift
    tokens = p.metadata.get("kv_cache_tokens") or (p.metadata["kv_blocks"] * 16 if "kv_blocks" in p.metadata else None)
    if tokens:  # the log states the cache in tokens only
        per = _vllm_kv_per_token(c, c.wl)
        return tokens * per + shift if per is not None else None
    if mem is None:
        return None
    r = _evaluate(c, c.wl)
    if r is None:
        return None
    e = r.estimate
    used = (
        lg.get("weights", e.weights_bytes)
        + lg.get("activations", _component(e, "activations") or 0)
        + lg.get("non_torch_memory", _component(e, "non_torch_memory") or 0)
    )
    return int(wl.vllm.gpu_memory_utilization * mem) - int(used)


def _max_context(c: _Ctx, wl: Workload, count: int | None = None) -> int | None:
    lo, hi = 256, wl.context
    if not _fits(c, replace(wl, context=lo), count):
        return None
    while hi - lo > 256:
        mid = (lo + hi) // 2
        if _fits(c, replace(wl, context=mid), count):
            lo = mid
        else:
            hi = mid
    return lo // 256 * 256 if lo >= 512 else lo


def _fixes(c: _Ctx) -> list[str]:
    """Changes that make the logged workload fit, smallest first, each checked with the estimator."""
    wl = c.wl
    kind = c.p.kind
    if wl is None or c.rm is None or (c.gpu is None and kind != "vllm"):
        return []
    out: list[str] = []
    spec = c.rm.spec
    ref = c.model_ref or (c.rm.entry.hf_repo if c.rm.entry else spec.name)
    if kind == "vllm":
        cmd = f"vllm serve {ref}"
        if wl.quant:
            wq = wl.quant
            cmd += " --quantization " + (
                "awq"
                if wq.startswith("awq")
                else "gptq"
                if wq.startswith("gptq")
                else "fp8"
                if wq == "fp8"
                else "bitsandbytes"
                if wq.startswith("nf4")
                else wq
            )
        pp = int(c.p.workload.get("pipeline_parallel_size") or 1)
        tp = f" --tensor-parallel-size {c.count // pp}" if c.count // pp > 1 else ""
        tp += f" --pipeline-parallel-size {pp}" if pp > 1 else ""
        if wl.vllm.gpu_memory_utilization < VLLM_HIGH_UTILIZATION and _fits(
            c, wl.with_options(gpu_memory_utilization=VLLM_HIGH_UTILIZATION)
        ):
            out.append(f"{cmd}{tp} --max-model-len {wl.context} --gpu-memory-utilization {VLLM_HIGH_UTILIZATION}")
        if wl.kv_dtype != "float8" and _fits(c, replace(wl, kv_dtype="fp8").validate()):
            out.append(f"{cmd}{tp} --max-model-len {wl.context} --kv-cache-dtype fp8")
        mc = _max_context(c, wl)
        if mc and mc < wl.context:
            out.append(f"{cmd}{tp} --max-model-len {mc}")
        for n in (2 * c.count, 4 * c.count):
            if _fits(c, wl, n):
                out.append(f"{cmd} --tensor-parallel-size {n} --max-model-len {wl.context}  # {n} GPUs")
                break
        q = _best_quant(c, wl, ("fp8", "awq-4bit-g128"))
        if q:
            out.append(
                f"{cmd}{tp} --max-model-len {wl.context} --quantization "
                f"{'fp8' if q == 'fp8' else 'awq'}  # {q} weights" + (" (an AWQ checkpoint)" if q != "fp8" else "")
            )
    elif kind == "llama.cpp":
        file_ = c.model_ref or "model.gguf"
        n_ctx = wl.context * wl.batch
        base = f"llama-server -m {file_} -c {n_ctx}" + (f" -np {wl.batch}" if wl.batch > 1 else "")
        if not wl.llama.flash_attn and _fits(c, wl.with_options(flash_attn=True)):
            out.append(f"{base} -fa on")
        q8 = wl.with_options(flash_attn=True, cache_type_k="q8_0", cache_type_v="q8_0")
        if (wl.llama.cache_type_k or "f16") == "f16" and _fits(c, q8):
            out.append(f"{base} -fa on --cache-type-k q8_0 --cache-type-v q8_0")
        mc = _max_context(c, wl)
        if mc and mc < wl.context:
            out.append(f"llama-server -m {file_} -c {mc * wl.batch}" + (f" -np {wl.batch}" if wl.batch > 1 else ""))
        ngl = _max_layers(c, wl)
        if ngl is not None:
            out.append(
                f"{base} -ngl {ngl}  # {ngl} of {spec.num_layers} layers on the GPU, the rest on the CPU (slower)"
            )
    elif kind == "ollama":
        ctx = wl.context
        q8 = wl.with_options(flash_attn=True, cache_type_k="q8_0", cache_type_v="q8_0")
        if _fits(c, q8):
            out.append("OLLAMA_FLASH_ATTENTION=1 OLLAMA_KV_CACHE_TYPE=q8_0 ollama serve")
        mc = _max_context(c, wl)
        if mc and mc < ctx:
            out.append(
                f"ollama run {c.model_ref or 'MODEL'} then /set parameter num_ctx {mc}  (or PARAMETER num_ctx "
                f"{mc} in a Modelfile)"
            )
    elif c.train is not None:  # a training step: the switches that save most, each checked
        tw = c.train
        cands = []
        if tw.batch > 1:
            b = tw.batch
            while b > 1 and not _train_fits(c, replace(tw, batch=b)):
                b //= 2
            cands.append(
                (
                    replace(tw, batch=b, grad_accum=tw.grad_accum * (tw.batch // b)),
                    f"--batch {b} --grad-accum {tw.grad_accum * (tw.batch // b)}  # the same effective batch",
                )
            )
        if not tw.grad_checkpointing:
            cands.append((replace(tw, grad_checkpointing=True), "--grad-checkpointing"))
        if tw.method == "full":
            cands.append((replace(tw, method="lora"), "--method lora"))
        if tw.method != "qlora":
            cands.append((replace(tw, method="qlora", grad_checkpointing=True), "--method qlora --grad-checkpointing"))
        b1 = replace(tw, batch=1, grad_accum=tw.grad_accum * tw.batch, method="qlora", grad_checkpointing=True)
        cands.append((b1, f"--batch 1 --grad-accum {b1.grad_accum} --method qlora --grad-checkpointing"))
        for t2, label in cands:
            if _train_fits(c, t2):
                out.append(label)
        if not out:
            s = _max_seq(c, replace(tw, grad_checkpointing=True))
            if s:
                out.append(f"--seq {s} --grad-checkpointing  # the longest sequence that fits")
    else:  # transformers / PyTorch
        if wl.batch > 1:
            b = wl.batch
            while b > 1 and not _fits(c, replace(wl, batch=b)):
                b //= 2
            if _fits(c, replace(wl, batch=b)) and b < wl.batch:
                out.append(f"--batch {b}  # a batch of {b} instead of {wl.batch}")
        mc = _max_context(c, wl)
        if mc and mc < wl.context:
            out.append(f"--context {mc}  # the longest prompt that fits at batch {wl.batch}")
        q = _best_quant(c, wl, ("fp8", "int8", "nf4"))
        if q:
            out.append(f"--quant {q}  # load the weights as {q}")
    return out


def _max_seq(c: _Ctx, tw: Any) -> int | None:
    lo, hi = 128, tw.seq
    if not _train_fits(c, replace(tw, seq=lo)):
        return None
    while hi - lo > 128:
        mid = (lo + hi) // 2
        if _train_fits(c, replace(tw, seq=mid)):
            lo = mid
        else:
            hi = mid
    return lo // 128 * 128


def _max_layers(c: _Ctx, wl: Workload) -> int | None:
    n = c.rm.spec.num_layers if c.rm else 0
    lo, hi = 0, n
    if not _fits(c, wl.with_options(n_gpu_layers=0)):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(c, wl.with_options(n_gpu_layers=mid)):
            lo = mid
        else:
            hi = mid - 1
    return lo if lo < n else None


def _best_quant(c: _Ctx, wl: Workload, order: tuple[str, ...]) -> str | None:
    if wl.quant is not None:
        return None
    for q in order:
        if _fits(c, replace(wl, quant=q)):
            return q
    return None


def _fix_from_logged_figures(c: _Ctx) -> list[str]:
    """Without a model description: what the log's own figures allow (Ollama states its whole estimate)."""
    p = c.p
    lg = p.logged
    avail = p.metadata.get("ollama_available")
    if p.kind == "ollama" and avail and "total" in lg:
        need = lg["total"]
        per = max(avail)
        if need > sum(avail):
            n = -(-need // per)
            return [
                f"{n} GPUs like these ({per / GIB:,.1f} GiB available each) hold all {need / GIB:,.1f} GiB Ollama "
                "needs for the whole model; or a smaller model or quantization"
            ]
    return []


# ---------------------------------------------------------------------------------------------------------------
# public API


def explain(
    text: str, *, model: str | None = None, gpu: str | None = None, train: Any = None, **options: Any
) -> Explanation:
    """Explain a log. `model` / `gpu` override or complete what the log names; `options` are Workload fields
    (context, batch, new_tokens, dtype, quant, kv_dtype ...) for logs that do not state them (a PyTorch message)."""
    if not isinstance(text, str) or not text.strip():
        raise BadInput("log: empty input (paste the log, or pass a file or - for standard input)", field="log")
    if len(text) > logs.MAX_LOG_CHARS:
        raise BadInput(f"log: {len(text):,} characters; at most {logs.MAX_LOG_CHARS:,}", field="log")
    p = logs.parse(text)
    c = _Ctx(p)
    if train is not None:
        if p.kind is not None and p.kind not in ("pytorch-oom", "nvidia-smi"):
            raise BadInput(f"train: a {p.kind} log is inference; training applies to a PyTorch message", field="train")
        c.train = train.validate()
    if p.kind is None:
        return Explanation(
            None,
            None,
            None,
            None,
            {},
            None,
            (),
            None,
            None,
            None,
            (),
            None,
            (),
            (
                "a recognisable log: a vLLM start-up log, a llama.cpp or Ollama load log, `ollama ps`, a "
                "PyTorch CUDA out-of-memory message or nvidia-smi output",
            ),
            (),
        )
    _resolve(c, model)
    _workload(c, options)
    _gpu(c, gpu)
    r = _evaluate(c, c.wl) if c.wl is not None else None
    if r is None and c.rm is not None and c.wl is not None:
        r = _single_estimate(c) if c.count == 1 else _rank_estimate(c)
    terms = _terms(c, r)
    terms += _per_token_terms(c)
    terms += _kv_needed_term(c)
    verdict = r.verdict if r is not None else None
    if r is not None and r.usable_bytes_per_gpu is not None and p.kind != "vllm":
        # the run held more than vram's estimate of the same terms (another workload, fragmentation, a fork's extra
        # buffers): the fixes must make room for that too, so it is kept when they are checked
        summed = [t for t in terms if t.difference_bytes is not None and t.name not in ("total", "device_total")]
        c.excess = max(0, sum(t.difference_bytes or 0 for t in summed) // max(1, c.count))
        lg = p.logged
        if p.gpu_memory_bytes and "in_use" in lg and "free" in lg:  # memory other processes hold on that GPU
            c.excess += max(0, p.gpu_memory_bytes - lg["in_use"] - lg["free"])
        if c.excess and r.per_gpu_bytes + c.excess > r.usable_bytes_per_gpu:
            verdict = "no"
            c.assumptions.append(
                f"the log shows {fmt_auto(c.excess)} per GPU more than vram estimates for the same "
                "terms; the changes proposed make room for that too"
            )
    if p.kind == "vllm" and c.wl is not None and c.rm is not None and _vllm_kv_capacity(c, c.wl) is not None:
        verdict = "fits" if _fits(c, c.wl) else "no"
    largest, why = _largest(terms, c)
    fixes = _fixes(c) if c.rm is not None and (verdict == "no" or (p.out_of_memory and verdict != "fits")) else []
    if not fixes and r is None:
        fixes = _fix_from_logged_figures(c)
    if verdict == "no" and not fixes:
        c.assumptions.append(
            "no single change tried (memory utilization, KV cache type, context, layers, GPUs, "
            "quantization) makes it fit"
        )
    if p.kind == "pytorch-oom" and model is None:
        pass  # already in missing
    gpu_d = None
    if c.gpu is not None or p.gpu_name or p.gpu_memory_bytes:
        gpu_d = {
            "name": p.gpu_name or (c.gpu.name if c.gpu and c.gpu.id != "logged-gpu" else None),
            "memory_bytes": p.gpu_memory_bytes,
            "count": c.count,
            "catalog_id": c.gpu.id if c.gpu is not None and c.gpu.id != "logged-gpu" else None,
        }
    wl_out = dict(p.workload)
    wl_out.update({k: v for k, v in options.items() if v is not None})
    if c.train is not None:
        t = c.train
        wl_out["train"] = {
            "method": t.method,
            "precision": t.precision,
            "optimizer": t.optimizer,
            "batch": t.batch,
            "seq": t.seq,
            "grad_checkpointing": t.grad_checkpointing,
        }
    if p.kind == "vllm":
        wl_out.setdefault("tensor_parallel_size", c.count // int(p.workload.get("pipeline_parallel_size") or 1))
    if p.kind != "pytorch-oom" and p.out_of_memory is None:
        c.missing.append("whether it ran out of memory (no error or success line)")
    return Explanation(
        kind=p.kind,
        model=p.model or model,
        resolved=c.entry_id,
        gpu=gpu_d,
        workload=wl_out,
        out_of_memory=p.out_of_memory,
        terms=tuple(terms),
        largest_difference=largest,
        why=why,
        fix=fixes[0] if fixes else None,
        alternatives=tuple(fixes[1:]),
        verdict=verdict,
        recognised=tuple(p.recognised),
        missing=tuple(c.missing),
        assumptions=tuple(c.assumptions),
        errors=tuple(p.errors),
    )
