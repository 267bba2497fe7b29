"""Fleet planning: models with their expected context and concurrency -> GPU pools.

A fleet file (YAML or JSON) lists pools (GPU type, GPUs per node, nodes) and models (context, concurrency,
optional quant / dtype / kv dtype / engine / replicas). Each model is assigned to the *smallest* pool that holds it
with headroom — the pool where one replica takes the least GPU memory (GPUs per replica × memory per GPU; the
cheaper per hour on ties) — so requests are routed to pools sized for each model, as the seed's service does.

Placement rules:

* a replica runs on GPUs of one node (tensor parallel over NVLink within the node), with the smallest count from
  1, 2, 4, 8 … up to the node's GPUs whose fit verdict is ``fits`` (headroom as configured) at ``concurrency``
  sequences of ``context`` tokens;
* models are placed largest first (by weights), each replica on the node with the fewest free GPUs that still has
  enough (best fit), so whole nodes stay free for big models;
* a model that fits nowhere is reported with the reason per pool (too big for a node, or not enough free GPUs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .catalog import GpuEntry, find_gpu
from .errors import BadInput, VramError
from .fitting import DEFAULT_HEADROOM, Evaluator, FitResult, GpuChoice, evaluator_for, fit
from .records import field, record, replace
from .request import EngineOptions, Workload, engine_options, options_from_mapping
from .units import parse_tokens


@record(frozen=True)
class Pool:
    name: str
    gpu: GpuEntry
    gpus_per_node: int
    nodes: int

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@record(frozen=True)
class ModelDemand:
    model: str
    context: int
    concurrency: int
    replicas: int = 1
    quant: str | None = None
    dtype: str = "bfloat16"
    kv_dtype: str | None = None
    engine: str = "vllm"
    new_tokens: int = 512
    options: EngineOptions | None = None  # the engine's options (a fleet entry's `options:` mapping)

    def workload(self) -> Workload:
        opts = self.options if self.options is not None else engine_options(self.engine)
        return Workload(
            batch=self.concurrency,
            context=self.context,
            new_tokens=self.new_tokens,
            dtype=self.dtype,
            quant=self.quant,
            kv_dtype=self.kv_dtype,
            options=opts,
        ).validate()


@record(frozen=True)
class Fleet:
    pools: tuple[Pool, ...]
    models: tuple[ModelDemand, ...]
    headroom_fraction: float = DEFAULT_HEADROOM


@record()
class Assignment:
    model: str
    pool: str
    gpu: str
    gpus_per_replica: int
    replicas: int
    nodes: list[int]
    fit: FitResult

    def to_dict(self) -> dict[str, Any]:
        f = self.fit
        return {
            "model": self.model,
            "pool": self.pool,
            "gpu": self.gpu,
            "gpus_per_replica": self.gpus_per_replica,
            "replicas": self.replicas,
            "nodes": self.nodes,
            "verdict": f.verdict,
            "split": f.split,
            "per_gpu_bytes": f.per_gpu_bytes,
            "usable_bytes_per_gpu": f.usable_bytes_per_gpu,
            "free_bytes_per_gpu": f.free_bytes_per_gpu,
            "context": f.context,
            "concurrency": f.batch,
            "decode_tokens_per_s": round(f.speed.decode_tokens_per_s, 1) if f.speed else None,
            "serving": f.serving,
        }


@record()
class PlanResult:
    assignments: list[Assignment] = field(default_factory=list)
    unplaced: list[dict[str, Any]] = field(default_factory=list)
    leftover: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignments": [a.to_dict() for a in self.assignments],
            "unplaced": self.unplaced,
            "leftover": self.leftover,
        }


# ---------------------------------------------------------------------------------------------------------------
# reading a fleet file


def _int_field(d: dict[str, Any], key: str, where: str, default: int | None = None, minimum: int = 1) -> int:
    v = d.get(key, default)
    if v is None:
        raise BadInput(f"{where}: missing {key!r}", field=key)
    if isinstance(v, str) and key in ("context", "new_tokens"):
        v = parse_tokens(v, field=key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadInput(f"{where}: {key} must be a whole number, got {v!r}", field=key)
    if v < minimum:
        raise BadInput(f"{where}: {key} must be at least {minimum}, got {v}", field=key)
    return v


def parse_fleet(data: Any) -> Fleet:
    """A fleet from parsed YAML/JSON: {pools: [...], models: [...], headroom: 0.2}."""
    if not isinstance(data, dict):
        raise BadInput("fleet: expected a mapping with 'pools' and 'models'", field="fleet")
    pools_raw = data.get("pools")
    models_raw = data.get("models")
    if not isinstance(pools_raw, list) or not pools_raw:
        raise BadInput("fleet: 'pools' must be a non-empty list", field="pools")
    if not isinstance(models_raw, list) or not models_raw:
        raise BadInput("fleet: 'models' must be a non-empty list", field="models")
    pools = []
    for i, p in enumerate(pools_raw):
        where = f"pools[{i}]"
        if not isinstance(p, dict) or "gpu" not in p:
            raise BadInput(f"{where}: expected a mapping with 'gpu'", field="pools")
        gpu = find_gpu(str(p["gpu"]))
        pools.append(
            Pool(
                name=str(p.get("name") or gpu.id),
                gpu=gpu,
                gpus_per_node=_int_field(p, "gpus_per_node", where, 8),
                nodes=_int_field(p, "nodes", where, 1),
            )
        )
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise BadInput("fleet: pool names must be unique", field="pools")
    models = []
    for i, m in enumerate(models_raw):
        where = f"models[{i}]"
        if isinstance(m, str):
            m = {"model": m}
        if not isinstance(m, dict) or "model" not in m:
            raise BadInput(f"{where}: expected a mapping with 'model'", field="models")
        engine = str(m.get("engine", "vllm"))
        opts_cls = type(engine_options(engine))
        options = options_from_mapping(opts_cls, m.get("options"), f"{where}.options")
        models.append(
            ModelDemand(
                model=str(m["model"]),
                context=_int_field(m, "context", where, 4096),
                concurrency=_int_field(m, "concurrency", where, 1),
                replicas=_int_field(m, "replicas", where, 1),
                quant=m.get("quant"),
                dtype=str(m.get("dtype", "bfloat16")),
                kv_dtype=m.get("kv_dtype"),
                engine=engine,
                new_tokens=_int_field(m, "new_tokens", where, 512, minimum=0),
                options=options,
            )
        )
    headroom = data.get("headroom", DEFAULT_HEADROOM)
    if isinstance(headroom, bool) or not isinstance(headroom, int | float) or not 0 <= headroom <= 10:
        raise BadInput("fleet: headroom must be a fraction like 0.2", field="headroom")
    return Fleet(tuple(pools), tuple(models), float(headroom))


def load_fleet(path: str | Path) -> Fleet:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"fleet: cannot read {path}: {exc.strerror or exc}", field="fleet") from exc
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"fleet: {path} is not valid JSON: {exc}", field="fleet") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"fleet: {path} is not valid YAML: {exc}", field="fleet") from exc
    return parse_fleet(data)


# ---------------------------------------------------------------------------------------------------------------
# planning


def _counts_for(pool: Pool) -> list[int]:
    out, n = [], 1
    while n <= pool.gpus_per_node:
        out.append(n)
        n *= 2
    if pool.gpus_per_node not in out:
        out.append(pool.gpus_per_node)
    return out


def _smallest_fit(ev: Evaluator, pool: Pool, wl: Workload, headroom: float) -> tuple[FitResult | None, str]:
    last: FitResult | None = None
    for n in _counts_for(pool):
        try:
            r = fit(ev, GpuChoice(pool.gpu, n), wl, headroom_fraction=headroom, solve=False)
        except VramError as exc:  # e.g. vLLM on an Apple pool
            return None, str(exc)
        last = r
        if r.verdict == "fits":
            return r, ""
    if last is None:
        return None, "no GPUs"
    return None, (
        f"does not fit with headroom on {pool.gpus_per_node} × {pool.gpu.id} (one node): "
        f"{last.verdict}, {last.per_gpu_bytes / 1024**3:,.1f} of {last.usable_bytes_per_gpu / 1024**3:,.1f}"
        " GiB per GPU"
    )


def plan(fleet: Fleet) -> PlanResult:
    from .serving import serving_settings

    free = {p.name: [p.gpus_per_node] * p.nodes for p in fleet.pools}
    evaluators: dict[str, Evaluator] = {}
    candidates: list[tuple[int, ModelDemand, list[tuple[int, float, Pool, FitResult]], dict[str, str]]] = []
    for d in fleet.models:
        try:
            ev = evaluators.setdefault(d.model, evaluator_for(d.model))
            wl = d.workload()
        except VramError as exc:
            candidates.append((0, d, [], {"*": str(exc)}))
            continue
        options = []
        reasons: dict[str, str] = {}
        for pool in fleet.pools:
            r, why = _smallest_fit(ev, pool, wl, fleet.headroom_fraction)
            if r is None:
                reasons[pool.name] = why
                continue
            size = r.gpu_count * pool.gpu.usable_memory_bytes
            options.append((size, pool.gpu.price_per_hour_usd or 0.0, pool, r))
        options.sort(key=lambda o: (o[0], o[1]))
        candidates.append((options[0][3].weights_bytes if options else 0, d, options, reasons))
    result = PlanResult()
    # largest models first: they have the fewest places to go
    for _, d, options, reasons in sorted(candidates, key=lambda c: -c[0]):
        placed = False
        for _, _, pool, r in options:
            need = r.gpu_count
            nodes = free[pool.name]
            chosen: list[int] = []
            trial = list(nodes)
            for _ in range(d.replicas):
                fitting = [i for i, f in enumerate(trial) if f >= need]
                if not fitting:
                    break
                best = min(fitting, key=lambda i: trial[i])
                trial[best] -= need
                chosen.append(best)
            if len(chosen) < d.replicas:
                reasons[pool.name] = f"needs {d.replicas} × {need} GPUs on single nodes; free per node: {nodes}"
                continue
            free[pool.name] = trial
            ev = evaluators[d.model]
            if ev.is_llm:
                r = replace(r, serving=serving_settings(ev, r))
            result.assignments.append(Assignment(d.model, pool.name, pool.gpu.id, need, d.replicas, chosen, r))
            placed = True
            break
        if not placed:
            result.unplaced.append(
                {
                    "model": d.model,
                    "context": d.context,
                    "concurrency": d.concurrency,
                    "replicas": d.replicas,
                    "reasons": reasons,
                }
            )
    for pool in fleet.pools:
        nodes = free[pool.name]
        result.leftover.append(
            {
                "pool": pool.name,
                "gpu": pool.gpu.id,
                "gpus_total": pool.gpus,
                "gpus_free": sum(nodes),
                "free_per_node": nodes,
                "free_memory_bytes": sum(nodes) * pool.gpu.usable_memory_bytes,
                "idle_cost_per_hour_usd": round(sum(nodes) * pool.gpu.price_per_hour_usd, 2)
                if pool.gpu.price_per_hour_usd
                else None,
            }
        )
    return result
