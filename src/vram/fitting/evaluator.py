"""One model evaluated on GPUs: its rank specs and estimates, cached per (split, count, workload)."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from ..catalog import GpuEntry
from ..components.weights import common_weights, weight_scheme
from ..devices import GpuChoice, backend_for, canonical_arch, device_of, torch_visible_bytes
from ..engines.vllm import batch_limits, parse_version
from ..errors import BadInput
from ..inference import estimate
from ..model import ModelSpec
from ..records import replace
from ..request import LlamaCppOptions, OllamaOptions, TransformersOptions, Workload, release_tuple
from ..resolved import ResolvedModel
from ..resolver import resolve_model
from ..result import Estimate
from ..sharding import comm_buffer_bytes, default_split, pp_stage_specs, replicated_weights_bytes, tp_rank_spec
from ..speed import Speed, attention_flops_per_token, estimate_speed, weight_read_fraction

MIB = 1024**2


def gpu_workload(wl: Workload, gpu: GpuEntry, count: int = 1) -> Workload:
    """The workload as it runs on `count` × `gpu`: the devices the engine sizes itself from and, for llama.cpp, the
    backend they imply."""
    dev = device_of(gpu)
    wl = replace(wl, devices=(dev,) * (count if wl.engine in ("llama.cpp", "ollama") else 1))
    if isinstance(wl.options, LlamaCppOptions):
        wl = wl.with_options(backend=backend_for([gpu], wl.options.backend))
    return wl


MAX_CACHED_ESTIMATES = 4096
MAX_CACHED_EVALUATORS = 32


class EvaluatorCache:
    """Evaluators of catalog models kept between calls, for a caller that asks about the same models again (the web
    app's services hold one; a CLI run makes one). Bounded (least recently used out) and safe to share between
    threads: a miss builds the evaluator outside the lock, so two threads may build one each; one is kept."""

    def __init__(self, size: int = MAX_CACHED_EVALUATORS) -> None:
        if size < 1:
            raise ValueError("an evaluator cache holds at least one evaluator")
        self.size = size
        self._items: OrderedDict[str, Evaluator] = OrderedDict()
        self._lock = Lock()

    def get(self, model: str) -> Evaluator:
        key = model.strip().lower()
        with self._lock:
            ev = self._items.get(key)
            if ev is not None:
                self._items.move_to_end(key)
                return ev
        ev = Evaluator(model)
        if ev.rm.entry is None or not ev.rm.source.startswith("catalog:"):
            return ev  # files and Hub repos can change: never kept
        with self._lock:
            ev = self._items.setdefault(key, ev)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return ev

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def evaluator_for(model: str | ModelSpec | ResolvedModel | Evaluator, cache: EvaluatorCache | None = None) -> Evaluator:
    """An Evaluator for `model`: the one given, the caller's cached one (`cache`, catalog models only), else a
    fresh one."""
    if isinstance(model, Evaluator):
        return model
    if isinstance(model, str) and cache is not None:
        return cache.get(model)
    return Evaluator(model)


def _engine_estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    """The same dispatcher `vram estimate` uses (engines, and non-LLM families)."""
    return estimate(rm, wl)


class Evaluator:
    """Evaluates one model on GPUs. Rank specs and estimates are cached per (split, count, workload): `which` and
    the solvers ask for the same ones many times."""

    def __init__(self, model: str | ModelSpec | ResolvedModel) -> None:
        self.rm = resolve_model(model)
        self._ranks: dict[tuple[str, int], list[ResolvedModel]] = {}
        self._est: dict[tuple[str, int, Workload], list[Estimate]] = {}
        self._repl: dict[tuple[str, str], int] = {}
        self._gwl: dict[tuple[Workload, str], Workload] = {}
        self._est_by_id: dict[tuple[int, str, int], tuple[Workload, list[Estimate]]] = {}
        self._rank_w: dict[tuple[str, int, str, str], int] = {}
        self._speed_in: dict[tuple[int, int], tuple[float, float]] = {}
        # the caches are filled from several threads when the evaluator is shared (EvaluatorCache): a value is
        # computed outside the lock and read back from a local, never from the dict after another thread may have
        # cleared it
        self._lock = Lock()

    def gpu_workload(self, wl: Workload, gpu: GpuEntry) -> Workload:
        # what the engine reads of the device: the architecture for transformers (runtime overheads), the GPU for
        # vLLM (its memory and name pick the batching defaults), llama.cpp (memory, backend) and MLX
        # (an Apple GPU is its own key: PyTorch runs on MPS there, without the CUDA terms)
        by_arch = (wl.engine == "transformers" or not self.is_llm) and gpu.vendor != "apple"
        key = (wl, canonical_arch(gpu) if by_arch else gpu.id)
        got = self._gwl.get(key)
        if got is None:
            got = gpu_workload(wl, gpu)
            with self._lock:
                got = self._gwl.setdefault(key, got)
        return got

    def speed_inputs(self, batch: int, context: int) -> tuple[float, float]:
        """(share of the weights a decode step reads, FLOPs per prompt token), cached."""
        key = (batch, context)
        got = self._speed_in.get(key)
        if got is None:
            got = self._speed_in[key] = (
                weight_read_fraction(self.spec, batch),
                2.0 * self.spec.active_params + attention_flops_per_token(self.spec, context),
            )
        return got

    def speed(
        self,
        choice: GpuChoice,
        split: str,
        wl: Workload,
        weights_bytes: int,
        kv_cache_bytes: int,
        offloaded_bytes: int = 0,
        explain: bool = True,
        kv_read_bytes: int | None = None,
    ) -> Speed:
        _, flops = self.speed_inputs(wl.batch, wl.context)  # the read share depends on the format: speed.py's
        return estimate_speed(
            self.spec,
            choice.gpu,
            count=choice.count,
            split=split,
            batch=wl.batch,
            context=wl.context,
            weights_bytes=weights_bytes,
            kv_cache_bytes=kv_cache_bytes,
            kv_read_bytes=kv_read_bytes,
            offloaded_bytes=offloaded_bytes,
            flops_per_token=flops,
            engine=wl.engine,
            quant=weight_scheme(self.spec, wl),
            new_tokens=wl.new_tokens,
            flash_attn=wl.options.flash_attn if isinstance(wl.options, LlamaCppOptions) else True,
            n_ubatch=wl.options.n_ubatch if isinstance(wl.options, LlamaCppOptions) else 512,
            n_batch=wl.options.n_batch if isinstance(wl.options, LlamaCppOptions) else 2048,
            llama_backend=wl.options.backend if isinstance(wl.options, (LlamaCppOptions, OllamaOptions)) else None,
            prefill_chunk=vllm_prefill_chunk(wl, choice.gpu) if wl.engine == "vllm" else None,
            # the release asked for; none given: the builds the speed coefficients were measured on
            engine_version=parse_version(wl.vllm.engine_version)
            if wl.engine == "vllm" and wl.vllm.engine_version
            else release_tuple(wl.options.transformers_version)
            if isinstance(wl.options, TransformersOptions) and wl.options.transformers_version
            else None,
            llama_build=wl.options.llama_build if isinstance(wl.options, LlamaCppOptions) else None,
            explain=explain,
        )

    @property
    def spec(self) -> ModelSpec:
        return self.rm.spec

    @property
    def is_llm(self) -> bool:
        return self.rm.entry is None or self.rm.entry.kind == "llm"

    def default_split(self, count: int, engine: str) -> str:
        """`default_split` for this model; models that are not decoder LLMs (diffusion, speech, ...) run as
        data-parallel replicas ("dp": every GPU holds the whole model and serves its own batch)."""
        if count > 1 and not self.is_llm:
            return "dp"
        return default_split(self.spec, count, engine)

    def rank_models(self, split: str, count: int) -> list[ResolvedModel]:
        key = (split, count)
        got = self._ranks.get(key)
        if got is not None:
            return got
        rm = self.rm
        if split in ("single", "dp") or count <= 1:
            specs = [rm.spec]
        elif split == "tp":
            specs = [tp_rank_spec(rm.spec, count)]
        elif split == "pp":
            specs = pp_stage_specs(rm.spec, count)
        else:
            raise BadInput(f"split: unknown split {split!r} (use tp, pp or dp)", field="split")
        if len(specs) == 1 and specs[0] is rm.spec:
            got = [rm]
        else:
            # header-exact weights describe the whole model; a rank's share is computed from its shapes.
            # Equal stage specs (middle stages of a uniform model) share one object, so one estimate.
            unique: dict[ModelSpec, ResolvedModel] = {}
            got = [unique.setdefault(s, ResolvedModel(s, rm.entry, rm.source, None, rm.buffers_bytes)) for s in specs]
        with self._lock:
            return self._ranks.setdefault(key, got)

    def estimates(self, split: str, count: int, wl: Workload) -> list[Estimate]:
        key = (split, count, wl)
        got = self._est.get(key)
        if got is not None:
            return got
        done: dict[int, Estimate] = {}
        got = []
        if wl.engine == "vllm" and split == "tp" and count > 1:
            # vLLM shards the model itself and takes its TP buffers (NCCL, custom all-reduce) out of the KV budget
            try:
                got = [_engine_estimate(self.rm, wl.with_options(tensor_parallel_size=count))]
            except BadInput as err:
                if err.field != "tensor_parallel_size":
                    raise
        if not got:
            got = [
                done[id(r)] if id(r) in done else done.setdefault(id(r), _engine_estimate(r, wl))
                for r in self.rank_models(split, count)
            ]
        with self._lock:
            if len(self._est) >= MAX_CACHED_ESTIMATES:  # bounded: a long-lived evaluator serves many workloads
                self._est.clear()
                self._gwl.clear()
                self._est_by_id.clear()
            self._est[key] = got
        return got

    def replicated_weights(self, wl: Workload) -> int:
        key = (wl.quant or "", wl.dtype)
        got = self._repl.get(key)
        if got is None:
            got = self._repl[key] = replicated_weights_bytes(self.rm, wl)
        return got

    # -- the core check, no solvers ------------------------------------------------------------------------------
    def rank_weights(self, split: str, count: int, wl: Workload) -> int:
        """The largest rank's weight bytes (no estimate needed): a quick lower bound on its total."""
        key = (split, count, wl.quant or "", wl.dtype)
        got = self._rank_w.get(key)
        if got is None:
            got = self._rank_w[key] = max(common_weights(r, wl).bytes for r in self.rank_models(split, count))
        return got

    def _estimates_canonical(self, split: str, count: int, gwl: Workload) -> list[Estimate]:
        """Like `estimates`, for a workload instance from `gpu_workload`'s cache: keyed by its identity, which
        spares hashing the workload on the hot path of `which` and the solvers (the instance is kept beside the
        estimates, so an identity reused after a clear never matches)."""
        key = (id(gwl), split, count)
        hit = self._est_by_id.get(key)
        if hit is not None and hit[0] is gwl:
            return hit[1]
        got = self.estimates(split, count, gwl)
        with self._lock:
            self._est_by_id[key] = (gwl, got)
        return got

    def per_gpu(
        self, choice: GpuChoice, wl: Workload, split: str, gwl: Workload | None = None
    ) -> tuple[int, int, list[Estimate], int]:
        """(fullest GPU's bytes, usable bytes per GPU, rank estimates, comm bytes per rank)."""
        if gwl is None:
            gwl = self.gpu_workload(wl, choice.gpu)
        ests = self._estimates_canonical(split, choice.count, gwl)
        comm = comm_buffer_bytes(split, choice.count, choice.gpu.interconnect)
        if wl.engine == "vllm" and split == "tp":
            comm = 0  # vLLM's estimate holds its NCCL / custom all-reduce buffers in non_torch_bytes already
        worst = max(e.total_bytes for e in ests) + comm
        usable = choice.gpu.usable_memory_bytes
        if wl.engine == "vllm":
            usable = min(usable, max(int(e.extra.get("reserved_bytes", usable)) for e in ests))
        return worst, usable, ests, comm

    def fits_in_memory(self, choice: GpuChoice, wl: Workload, split: str | None = None) -> bool:
        sp = split or self.default_split(choice.count, wl.engine)
        worst, usable, _, _ = self.per_gpu(choice, wl, sp)
        return worst <= usable


def vllm_prefill_chunk(wl: Workload, gpu: GpuEntry) -> int:
    """Prompt tokens per vLLM forward pass: max_num_batched_tokens as vLLM settles it for this GPU, version and
    request (`engines.vllm.batch_limits`: the option given, else its default; chunked prefill)."""
    o = wl.vllm
    version = parse_version(o.engine_version)
    tokens, _ = batch_limits(
        o.max_num_batched_tokens,
        o.max_num_seqs,
        wl.context + wl.new_tokens,
        torch_visible_bytes(gpu),
        gpu.name,
        version,
    )
    return tokens
