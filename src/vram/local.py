"""This machine's GPUs through NVML (the `local` extra: nvidia-ml-py), imported only when asked for.

`--gpu local` fits against the *free* memory of the local GPUs right now (what another process holds is not
available), with bandwidth and TFLOPS taken from the catalog entry whose name matches the device's, when one does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import BadInput, NeedsExtra, VramError
from .records import record

if TYPE_CHECKING:
    from .catalog import GpuEntry


class NoLocalGpu(VramError):
    """NVML is missing or reports no GPU."""


@record(frozen=True)
class LocalGpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    driver: str
    catalog_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "total_bytes": self.total_bytes,
            "free_bytes": self.free_bytes,
            "used_bytes": self.used_bytes,
            "driver": self.driver,
            "catalog_id": self.catalog_id,
        }


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def match_catalog(name: str) -> str | None:
    """Catalog id for an NVML device name ("NVIDIA H100 80GB HBM3" -> h100-sxm), None if unsure."""
    from .catalog import all_gpus, find_gpu
    from .errors import UnknownGpu

    loose = re.sub(r"[^a-z0-9]", "", name.lower().replace("nvidia", "").replace("geforce", ""))
    for g in all_gpus():
        for cand in (g.name, g.id, *g.aliases):
            if re.sub(r"[^a-z0-9]", "", cand.lower().replace("nvidia", "").replace("geforce", "")) == loose:
                return g.id
    try:
        return find_gpu(name.lower().replace("nvidia", "").replace("geforce", "").strip()).id
    except UnknownGpu:
        return None


def local_gpus() -> list[LocalGpu]:
    """Every GPU NVML sees. Raises NeedsExtra without nvidia-ml-py, NoLocalGpu without a driver or a GPU."""
    try:
        import pynvml
    except ImportError as exc:
        raise NeedsExtra("reading this machine's GPUs", "local") from exc
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded
        raise NoLocalGpu(f"no NVIDIA driver found (NVML: {exc})", field="gpu") from exc
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = _text(pynvml.nvmlDeviceGetName(h))
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            out.append(LocalGpu(i, name, int(mem.total), int(mem.free), int(mem.used), driver, match_catalog(name)))
        return out
    finally:
        pynvml.nvmlShutdown()


def local_gpu_entry(count: int | None) -> tuple[GpuEntry, int]:
    """`--gpu local`: (an entry for this machine's GPU, how many) — `count` (default all) of the local GPUs, usable =
    the smallest free memory."""
    from .catalog import GpuEntry, find_gpu
    from .records import replace

    gpus = local_gpus()
    if not gpus:
        raise NoLocalGpu("NVML sees no GPU on this machine", field="gpu")
    n = count or len(gpus)
    if n > len(gpus):
        raise BadInput(f"gpu: {n} local GPUs asked for, this machine has {len(gpus)}", field="gpu")
    used = gpus[:n]
    free = min(g.free_bytes for g in used)
    first = used[0]
    if first.catalog_id:
        base = find_gpu(first.catalog_id)
        entry = replace(base, usable_memory_bytes=free, memory_bytes=first.total_bytes)
    else:
        entry = GpuEntry(
            id="local",
            name=first.name,
            vendor="nvidia",
            category="local",
            architecture="",
            aliases=(),
            memory_bytes=first.total_bytes,
            usable_memory_bytes=free,
            bandwidth_gb_per_s=0.0,
            fp16_tflops=None,
            fp8_tflops=None,
            int8_tops=None,
            interconnect="pcie",
            interconnect_gb_per_s=None,
            tdp_watts=None,
            year=None,
            price_per_hour_usd=None,
            memory_gb=first.total_bytes / 1e9,
        )
    return entry, n
