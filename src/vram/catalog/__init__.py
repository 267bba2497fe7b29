"""Built-in catalogs: models and GPUs, one JSON data file per entry, read lazily on first use."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import cache

from ..dtypes import with_hf_quant_config
from ..errors import UnknownGpu, UnknownModel
from ..records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from pathlib import Path
    from typing import Any


def _norm(s: str) -> str:
    return re.sub(r"[\s_]+", "-", s.strip().lower())


def _loose(s: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", s.lower())


@record(frozen=True)
class ModelEntry:
    id: str
    name: str
    family: str
    license: str
    hf_repo: str
    aliases: tuple[str, ...]
    context_length: int | None
    params: int | None
    config: dict[str, Any] = field(repr=False, hash=False, compare=False)
    published_params_text: str | None = None
    kind: str = "llm"
    data: dict[str, Any] = field(default_factory=dict, repr=False, hash=False, compare=False)
    released: str | None = None  # "YYYY-MM": when the maker first published the weights (measurements/release_dates.md)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "family": self.family,
            "license": self.license,
            "hf_repo": self.hf_repo,
            "aliases": list(self.aliases),
            "context_length": self.context_length,
            "params": self.params,
            "kind": self.kind,
            "released": self.released,
        }


@record(frozen=True)
class GpuEntry:
    id: str
    name: str
    vendor: str
    category: str
    architecture: str
    aliases: tuple[str, ...]
    memory_bytes: int
    usable_memory_bytes: int
    bandwidth_gb_per_s: float
    fp16_tflops: float | None
    fp8_tflops: float | None
    int8_tops: float | None
    interconnect: str
    interconnect_gb_per_s: float | None
    tdp_watts: float | None
    year: int | None
    price_per_hour_usd: float | None
    memory_gb: float
    data: dict[str, Any] = field(default_factory=dict, repr=False, hash=False, compare=False)

    def summary(self) -> dict[str, Any]:
        keys = (
            "id",
            "name",
            "vendor",
            "category",
            "architecture",
            "memory_gb",
            "memory_bytes",
            "usable_memory_bytes",
            "bandwidth_gb_per_s",
            "fp16_tflops",
            "fp8_tflops",
            "int8_tops",
            "interconnect",
            "interconnect_gb_per_s",
            "tdp_watts",
            "year",
            "price_per_hour_usd",
        )
        out = {k: getattr(self, k) for k in keys}
        out["aliases"] = list(self.aliases)
        return out

    @property
    def cuda_arch(self) -> str:
        """Architecture family used for runtime overheads (hopper, ampere, ...)."""
        a = self.architecture.lower()
        for key in ("hopper", "blackwell", "ampere", "ada", "turing", "volta", "pascal"):
            if key in a:
                return key
        return "hopper" if self.vendor == "nvidia" else a


# a plain path string: pathlib (with urllib.parse and ipaddress) is a few milliseconds of every cold start
DATA_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "data")


def _data_dir(kind: str) -> str:
    return os.path.join(DATA_DIR, kind)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@cache
def _index(kind: str) -> dict[str, str]:
    """Normalized id / alias (/ Hub repo id for models) -> file name, for one catalog ("models" or "gpus")."""
    index: dict[str, str] = {}
    folder = _data_dir(kind)
    for name in os.listdir(folder):
        if not name.endswith(".json"):
            continue
        d = _read_json(os.path.join(folder, name))
        for key in (d["id"], d.get("hf_repo", ""), *d.get("aliases", [])):
            if key:
                index.setdefault(_norm(key), name)
    return index


def _ids(kind: str) -> list[str]:
    return sorted(f.removesuffix(".json") for f in set(_index(kind).values()))


def _lookup(kind: str, query: str, variants: Callable[[str], tuple[str, ...]]) -> str | None:
    """The file a query names: an id directly (one file read), else an alias or a loose spelling of one."""
    key = _norm(query)
    if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", key) and os.path.isfile(os.path.join(_data_dir(kind), f"{key}.json")):
        return f"{key}.json"
    index = _index(kind)
    for cand in variants(key):
        if cand in index:
            return index[cand]
    return _loose_index(kind).get(_loose(query))


@cache
def _loose_index(kind: str) -> dict[str, str]:
    """`_index` keyed by the loose spelling of each name (letters, digits and dots only), built once."""
    return {_loose(k): v for k, v in _index(kind).items()}


def _suggest(query: str, keys: list[str], n: int = 3) -> list[str]:
    import difflib

    q = _norm(query)
    close = difflib.get_close_matches(q, keys, n=n, cutoff=0.5)
    if len(close) < n:
        close += [k for k in keys if q and q in k and k not in close][: n - len(close)]
    return close


@cache
def load_model_entry(file_name: str) -> ModelEntry:
    d = _read_json(os.path.join(_data_dir("models"), file_name))
    return ModelEntry(
        id=d["id"],
        name=d["name"],
        family=d["family"],
        license=d.get("license", "other"),
        hf_repo=d.get("hf_repo", ""),
        aliases=tuple(d.get("aliases", [])),
        context_length=d.get("context_length"),
        params=d.get("params"),
        # a ModelOpt export's quantization lives in its hf_quant_config.json, kept beside the config in the entry
        config=with_hf_quant_config(d["config"], d.get("hf_quant_config")),
        published_params_text=d.get("published_params_text"),
        kind=d.get("kind", "llm"),
        data=d,
        released=d.get("released"),
    )


def catalog_order(entry: ModelEntry) -> tuple[str, str, int, str]:
    """How `vram models` lists the catalog: grouped by family, each family oldest release first (entries without a
    known month last), then smallest first."""
    return entry.family, entry.released or "9999-99", entry.params or 0, entry.id


def model_ids() -> list[str]:
    return _ids("models")


def all_models() -> list[ModelEntry]:
    return [load_model_entry(f"{i}.json") for i in model_ids()]


def find_model(query: str) -> ModelEntry:
    """Case-insensitive lookup by id, Hub repo id or alias; close names are suggested when nothing matches."""
    found = _lookup("models", query, lambda key: (key,))
    if found is None:
        raise UnknownModel(query, _suggest(query, model_ids()))
    return load_model_entry(found)


def search_models(query: str = "") -> list[ModelEntry]:
    q = _loose(query)
    out = []
    for entry in all_models():
        hay = " ".join([entry.id, entry.name, entry.family, entry.hf_repo, *entry.aliases])
        if not q or q in _loose(hay):
            out.append(entry)
    return out


@cache
def load_gpu_entry(file_name: str) -> GpuEntry:
    d = _read_json(os.path.join(_data_dir("gpus"), file_name))
    return _gpu_entry(d)


def gpu_from_spec_file(path: str | Path) -> GpuEntry:
    """A GPU that is not in the catalog, from a JSON file with the catalog's fields (src/vram/catalog/data/gpus/
    README.md). Required: `name`, `bandwidth_gb_per_s` and `memory_gb` (or `memory_bytes`); the rest defaults:
    `vendor` nvidia, `category` consumer, `usable_memory_bytes` = memory_bytes, no TFLOPS (no prefill figure)."""
    from pathlib import Path

    from ..errors import BadInput

    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"gpu: cannot read GPU spec file {str(p)!r}: {exc}", field="gpu") from exc
    if not isinstance(d, dict):
        raise BadInput("gpu: a GPU spec file holds one JSON object", field="gpu")
    for key in ("name", "bandwidth_gb_per_s"):
        if key not in d:
            raise BadInput(f"gpu: the spec file {p.name} lacks {key!r}", field="gpu")
    try:
        mem = int(d["memory_bytes"]) if "memory_bytes" in d else int(float(d["memory_gb"]) * 2**30)
        bw = float(d["bandwidth_gb_per_s"])
        tf = None if d.get("fp16_tflops") is None else float(d["fp16_tflops"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(
            f"gpu: the spec file {p.name} needs numeric memory_gb (or memory_bytes) and bandwidth_gb_per_s", field="gpu"
        ) from exc
    if mem <= 0 or bw <= 0 or (tf is not None and tf <= 0):
        raise BadInput("gpu: memory, bandwidth and TFLOPS in a spec file must be positive", field="gpu")
    full = {
        "id": p.stem,
        "vendor": "nvidia",
        "category": "consumer",
        "memory_gb": mem / 2**30,
        "interconnect": "pcie",
        **d,
        "memory_bytes": mem,
        "bandwidth_gb_per_s": bw,
        "fp16_tflops": tf,
    }
    full.setdefault("usable_memory_bytes", mem)
    return _gpu_entry(full)


def with_rates(gpu: GpuEntry, *, bandwidth_gb_per_s: float | None = None, tflops: float | None = None) -> GpuEntry:
    """`gpu` with its memory bandwidth and/or dense FP16/BF16 tensor rate replaced (a different clock, a card that
    is not in the catalog but close to one). The TFLOPS given replace every tensor and ALU rate the speed model
    reads (FP16-accumulate, Apple's FP32 ALU rate)."""
    from ..errors import BadInput
    from ..records import replace

    if bandwidth_gb_per_s is not None and not bandwidth_gb_per_s > 0:
        raise BadInput("gpu_bandwidth: must be a positive number of GB/s", field="gpu_bandwidth")
    if tflops is not None and not tflops > 0:
        raise BadInput("gpu_tflops: must be a positive number of TFLOPS", field="gpu_tflops")
    data = dict(gpu.data)
    out = gpu
    if bandwidth_gb_per_s is not None:
        data["bandwidth_gb_per_s"] = bandwidth_gb_per_s
        out = replace(out, bandwidth_gb_per_s=float(bandwidth_gb_per_s))
    if tflops is not None:
        data.update(fp16_tflops=tflops, fp16_tflops_fp16_accumulate=tflops)
        if gpu.vendor == "apple":
            data["fp32_tflops"] = tflops
        out = replace(out, fp16_tflops=float(tflops))
    return replace(out, data=data)


def _gpu_entry(d: dict[str, Any]) -> GpuEntry:
    return GpuEntry(
        id=d["id"],
        name=d["name"],
        vendor=d["vendor"],
        category=d["category"],
        architecture=d.get("architecture", ""),
        aliases=tuple(d.get("aliases", [])),
        memory_bytes=int(d["memory_bytes"]),
        usable_memory_bytes=int(d["usable_memory_bytes"]),
        bandwidth_gb_per_s=float(d["bandwidth_gb_per_s"]),
        fp16_tflops=d.get("fp16_tflops"),
        fp8_tflops=d.get("fp8_tflops"),
        int8_tops=d.get("int8_tops"),
        interconnect=d.get("interconnect", "none"),
        interconnect_gb_per_s=d.get("interconnect_gb_per_s"),
        tdp_watts=d.get("tdp_watts"),
        year=d.get("year"),
        price_per_hour_usd=d.get("price_per_hour_usd"),
        memory_gb=float(d.get("memory_gb", 0)),
        data=d,
    )


def gpu_ids() -> list[str]:
    return _ids("gpus")


def all_gpus() -> list[GpuEntry]:
    return [load_gpu_entry(f"{i}.json") for i in gpu_ids()]


def _gpu_spellings(key: str) -> tuple[str, ...]:
    return (key, key.removeprefix("nvidia-"), key.removeprefix("amd-"), key.removeprefix("rtx-"), "rtx-" + key)


def is_gpu_name(query: str) -> bool:
    """Whether `query` names a catalog GPU (id, alias or a loose spelling of one), without raising."""
    return _lookup("gpus", query, _gpu_spellings) is not None


def find_gpu(query: str) -> GpuEntry:
    found = _lookup("gpus", query, _gpu_spellings)
    if found is None:
        raise UnknownGpu(query, _suggest(query, gpu_ids()))
    return load_gpu_entry(found)


def search_gpus(query: str = "") -> list[GpuEntry]:
    q = _loose(query)
    return [g for g in all_gpus() if not q or q in _loose(" ".join([g.id, g.name, g.vendor, *g.aliases]))]
