"""GPU lists for llama.cpp: mixed or repeated cards (`rtx-4090+rtx-3090`, `2xrtx-3090`), the backend they imply, and
the `--tensor-split` that balances their memory."""

from __future__ import annotations

import re

from .catalog import GpuEntry, find_gpu
from .errors import BadInput

_COUNT = re.compile(r"^\s*(\d+)\s*[x×*]\s*(.+)$", re.IGNORECASE)
MAX_DEVICES = 16  # GGML_CUDA_MAX_DEVICES
_VENDOR_BACKEND = {"nvidia": "cuda", "amd": "rocm", "apple": "metal", "intel": "vulkan"}


def parse_gpu_list(spec: str) -> list[GpuEntry]:
    """ "rtx-4090", "2xrtx-3090", "rtx-4090+rtx-3090", "rtx-4090+2xrtx-3060-12gb": one entry per device, in order."""
    text = str(spec).strip()
    if not text:
        raise BadInput("gpu: empty GPU spec", field="gpu")
    out: list[GpuEntry] = []
    for part in text.split("+"):
        part = part.strip()
        if not part:
            raise BadInput(f"gpu: empty name in {spec!r}", field="gpu")
        count = 1
        m = _COUNT.match(part)
        if m:
            count, part = int(m.group(1)), m.group(2).strip()
            if not 1 <= count <= MAX_DEVICES:
                raise BadInput(f"gpu: count must be between 1 and {MAX_DEVICES}, got {count}", field="gpu")
        if part.lower() == "local":
            raise BadInput("gpu: 'local' is not available here; name the GPUs", field="gpu")
        out += [find_gpu(part)] * count
    if len(out) > MAX_DEVICES:
        raise BadInput(f"gpu: {len(out)} devices; llama.cpp handles at most {MAX_DEVICES}", field="gpu")
    if len({g.vendor == "apple" for g in out}) > 1 or (out[0].vendor == "apple" and len(out) > 1):
        raise BadInput(
            "gpu: an Apple chip is one device with unified memory; it does not combine with others", field="gpu"
        )
    return out


def backend_for(gpus: list[GpuEntry], backend: str | None) -> str:
    """The llama.cpp build for these GPUs: the one asked for (checked), else CUDA / ROCm / Metal by vendor, and
    Vulkan for a mix of vendors."""
    vendors = {g.vendor for g in gpus}
    natural = _VENDOR_BACKEND.get(next(iter(vendors)), "vulkan") if len(vendors) == 1 else "vulkan"
    if backend is None:
        return natural
    allowed = {
        "cuda": {"nvidia"},
        "rocm": {"amd"},
        "metal": {"apple"},
        "vulkan": {"nvidia", "amd", "intel"},
        "cpu": vendors,
    }[backend]
    bad = vendors - allowed
    if bad:
        raise BadInput(f"backend: a {backend} build does not run on {', '.join(sorted(bad))} GPUs", field="backend")
    return backend


def balanced_split(weights_per_layer: list[int], memory: list[int], fixed: list[int]) -> list[float]:
    """The --tensor-split proportions whose layer counts leave every device the same fraction of its memory free:
    proportional to each device's memory left after what it holds regardless of layers (`fixed`: compute buffer,
    context); whole layers, so rounded to layer counts."""
    n = len(weights_per_layer)
    free = [max(0, m - f) for m, f in zip(memory, fixed, strict=True)]
    total = sum(free) or 1
    counts = [round(n * f / total) for f in free]
    while sum(counts) > n:
        counts[counts.index(max(counts))] -= 1
    while sum(counts) < n:
        counts[free.index(max(free))] += 1
    return [float(c) for c in counts]
