"""Catalog GPUs as the engines see them: `Device` objects (architecture, memory, what a CUDA process can use), the
llama.cpp backend a set of GPUs implies, and multi-GPU spec strings (`rtx-4090+rtx-3090`, `2xrtx-3090`)."""

from __future__ import annotations

import re

from .catalog import GpuEntry, find_gpu, is_gpu_name
from .components.runtime import CUDA_CONTEXT_BYTES, DEFAULT_ARCH
from .errors import BadInput
from .records import record
from .request import Device

GIB = 1024**3
# An H100 SXM 80 GB: nvidia-smi's total is 85,520,809,984 bytes, torch.cuda.mem_get_info() reports 79.19 GiB
# (vLLM 0.19 logs). GPUs whose catalog entry holds the measured figure (`cuda_total_memory_bytes`, from vLLM start-up
# logs) use it: the driver keeps 0.46 GiB of an H100, 0.44 of an RTX 3090, 0.62 of an A100 40GB and 0.68 of an A100
# 80GB or an H200. On the others the driver is assumed to keep what it keeps of an H100.
H100_TORCH_VISIBLE_BYTES = round(79.19 * GIB)
DRIVER_RESERVED_BYTES = 85_520_809_984 - H100_TORCH_VISIBLE_BYTES

_COUNT = re.compile(r"^\s*(\d+)\s*[x×*]\s*(.+)$", re.IGNORECASE)
MAX_DEVICES = 16  # GGML_CUDA_MAX_DEVICES
_VENDOR_BACKEND = {"nvidia": "cuda", "amd": "rocm", "apple": "metal", "intel": "vulkan"}


VLLM_ON_APPLE = (
    "engine: vLLM does not run on Apple Silicon (CUDA / ROCm builds only); use --engine llama.cpp (llama.cpp, LM "
    "Studio on Metal), --engine ollama or --engine mlx (mlx-lm, LM Studio's MLX engine)"
)


def vllm_unsupported(gpu: GpuEntry) -> str | None:
    """Why vLLM does not run on this GPU (an `engine` error message), or None where it does: Apple Silicon, and
    NVIDIA GPUs before compute capability 7.0 (Pascal), which vLLM's CUDA kernels are not built for."""
    if gpu.vendor == "apple":
        return VLLM_ON_APPLE
    if gpu.vendor == "nvidia" and gpu.cuda_arch == "pascal":
        return (
            f"engine: vLLM needs an NVIDIA GPU of compute capability 7.0 or newer (Volta and later); the {gpu.name} "
            "is Pascal (6.x); use --engine llama.cpp or --engine ollama"
        )
    return None


def split_count(text: str) -> tuple[int | None, str]:
    """ "2xh100-sxm" -> (2, "h100-sxm"); a name that is itself a GPU's ("7900xtx", "9070xt": digits then an x) or
    has no count -> (None, name)."""
    m = _COUNT.match(text)
    if m is None or is_gpu_name(text.strip()):
        return None, text.strip()
    return int(m.group(1)), m.group(2).strip()


def canonical_arch(gpu: GpuEntry) -> str:
    """The runtime-overhead family for the estimator; non-NVIDIA runtimes are assumed to cost what CUDA does.
    Blackwell is estimated as Hopper: the runtime components give identical bytes and text for both."""
    arch = gpu.cuda_arch
    if arch == "blackwell":
        return "hopper"
    return arch if arch in CUDA_CONTEXT_BYTES else DEFAULT_ARCH


def torch_visible_bytes(gpu: GpuEntry) -> int:
    """Device memory as torch sees it (``torch.cuda.mem_get_info()[1]``, what vLLM sizes itself from)."""
    data = gpu.data or {}
    if isinstance(data.get("cuda_total_memory_bytes"), int):
        return int(data["cuda_total_memory_bytes"])
    if gpu.vendor == "apple":
        return int(gpu.usable_memory_bytes)
    return int(gpu.usable_memory_bytes) - DRIVER_RESERVED_BYTES


def compute_units(gpu: GpuEntry) -> int | None:
    """Streaming multiprocessors (NVIDIA) or compute units (AMD) of the part, where the catalog lists them."""
    v = (gpu.data or {}).get("compute_units")
    return int(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def device_of(gpu: GpuEntry | str) -> Device:
    """A catalog GPU (entry or name) as a Device."""
    g = find_gpu(gpu) if isinstance(gpu, str) else gpu
    return Device(
        name=g.name,
        arch=canonical_arch(g),
        memory_bytes=int(g.usable_memory_bytes),
        usable_bytes=torch_visible_bytes(g),
        backend=_VENDOR_BACKEND.get(g.vendor, "vulkan"),
        vendor=g.vendor,
        compute_units=compute_units(g),
        interconnect=g.interconnect,
        family=g.cuda_arch if g.vendor == "nvidia" else None,
    )


@record(frozen=True)
class GpuChoice:
    gpu: GpuEntry
    count: int
    local: bool = False


def parse_gpu_spec(spec: str | GpuChoice) -> GpuChoice:
    """ "h100-sxm", "4090", "2xh100-sxm", "8xa100-80gb-sxm", "local" (this machine's GPUs, through NVML) or a GPU
    spec file "my-gpu.json" / "2xmy-gpu.json" (catalog.gpu_from_spec_file)."""
    if isinstance(spec, GpuChoice):
        return spec
    text = str(spec).strip()
    if not text:
        raise BadInput("gpu: empty GPU name", field="gpu")
    given, text = split_count(text)
    count = 1 if given is None else given
    if not 1 <= count <= 1024:
        raise BadInput(f"gpu: count must be between 1 and 1024, got {count}", field="gpu")
    if text.lower() == "local":
        from .local import local_gpu_entry  # NVML, the `local` extra: loaded only when asked for

        entry, n = local_gpu_entry(given)
        return GpuChoice(entry, n, local=True)
    if text.lower().endswith(".json"):
        from .catalog import gpu_from_spec_file

        return GpuChoice(gpu_from_spec_file(text), count)
    return GpuChoice(find_gpu(text), count)


def devices_for(spec: str, engine: str) -> tuple[tuple[Device, ...], int]:
    """`--gpu` for one estimate: (devices, GPU count). llama.cpp takes a list of possibly different GPUs
    (`rtx-4090+rtx-3090`) and splits layers over them; vLLM a count of one kind (`2xh100-sxm`: tensor parallel, one
    rank's device given); transformers and MLX one device."""
    if engine in ("llama.cpp", "ollama"):
        gpus = parse_gpu_list(spec)
        return tuple(device_of(g) for g in gpus), len(gpus)
    choice = parse_gpu_spec(spec)
    why = vllm_unsupported(choice.gpu) if engine == "vllm" else None
    if why:
        raise BadInput(why, field="engine")
    if choice.count > 1 and engine != "vllm":
        raise BadInput(
            f"gpu: one {engine} estimate runs on one device; `vram fit MODEL --gpu {spec}` splits a model over several",
            field="gpu",
        )
    return (device_of(choice.gpu),), choice.count


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
        given, part = split_count(part)
        count = 1 if given is None else given
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


def backend_for(devices: list[Device] | list[GpuEntry], backend: str | None) -> str:
    """The llama.cpp build for these GPUs: the one asked for (checked), else CUDA / ROCm / Metal by vendor, and
    Vulkan for a mix of vendors."""
    vendors = {d.vendor for d in devices}
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
