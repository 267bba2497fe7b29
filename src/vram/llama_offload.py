"""llama.cpp on a card too small for the model: MoE experts in host memory (`--n-cpu-moe N`), the host-RAM check,
and the speed of such a split.

* **The solver.** The smallest N for which `--n-cpu-moe N` (the expert tensors of blocks 0..N-1 in host memory,
  everything else on the GPU) fits the GPU: a bisection over N with the llama.cpp estimator, whose GPU use falls as
  N grows (each step removes one block's experts; the compute buffer gains one expert tensor copy at N >= 1 for op
  offload, then stays flat).
* **Speed.** Decoding one token reads every GPU-resident weight that token uses (attention, norms, shared experts,
  output layer, and for MoE blocks the `experts_per_token / num_experts` share of the expert tensors) plus the KV
  cache at GPU bandwidth, and the same share of the host-resident experts at system-RAM bandwidth; the two run one
  after the other (the CPU computes its experts while the GPU waits), so the step time is the sum. Both bandwidths
  are derated: the GPU side by speed.py's `decode_efficiency` for llama.cpp on that GPU class and weight format,
  system RAM by speed.py's DEFAULT_DECODE_EFFICIENCY (0.7; assumed for RAM, not measured).
* **Host memory.** What llama.cpp keeps in RAM: the host-resident weights (mmap'd: page cache that must stay
  resident to be fast), a CPU-resident KV cache, the host compute buffer and the output buffer. A workload whose
  host part exceeds the RAM given (`--ram 64GiB`) is said to not fit host memory.
* **RAM setups** are catalog data files (catalog/data/ram/*.json): peak bandwidth = MT/s × 8 bytes × channels.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput
from .records import record, replace

if TYPE_CHECKING:
    from .catalog import GpuEntry
    from .request import Workload
    from .resolved import ResolvedModel
    from .result import Estimate

RAM_DIR = Path(__file__).resolve().parent / "catalog" / "data" / "ram"
DEFAULT_RAM = "ddr5-5600-2ch"


@record(frozen=True)
class RamSetup:
    id: str
    name: str
    bandwidth_gb_per_s: float
    size_bytes: int | None = None  # None: not given (no host-memory check)
    source: str = "--ram"  # where size_bytes came from ("--ram", "this machine's /proc/meminfo")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "bandwidth_gb_per_s": self.bandwidth_gb_per_s,
            "size_bytes": self.size_bytes,
            "source": self.source,
        }


@cache
def ram_setups() -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted(RAM_DIR.glob("*.json")):
        d = json.loads(f.read_text())
        out[d["id"]] = d
    return out


def ram_setup(kind: str | None = None, size_bytes: int | None = None) -> RamSetup:
    """A catalog RAM setup (default DDR5-5600 dual channel) with the size given by --ram."""
    key = (kind or DEFAULT_RAM).strip().lower()
    setups = ram_setups()
    if key not in setups:
        raise BadInput(f"ram_type: unknown RAM setup {kind!r} (use {', '.join(setups)})", field="ram_type")
    if size_bytes is not None and size_bytes <= 0:
        raise BadInput("ram: must be a positive size such as 64GiB", field="ram")
    d = setups[key]
    return RamSetup(d["id"], d["name"], float(d["bandwidth_gb_per_s"]), size_bytes)


def machine_ram_bytes() -> int | None:
    """This machine's memory (MemTotal in /proc/meminfo; None where there is none), for `--gpu local`."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_bytes(est: Estimate) -> int:
    lc = est.llama_cpp
    return lc.weights_host_bytes + lc.kv_host_bytes + lc.compute_host_bytes + lc.output_host_bytes


def _read_bytes(rm: ResolvedModel, wl: Workload, est: Estimate) -> tuple[float, float]:
    """Bytes one decoded token reads from GPU memory (all GPUs) and from host memory."""
    per_device, cpu = read_bytes_per_device(rm, wl, est)
    return sum(per_device), cpu


def read_bytes_per_device(rm: ResolvedModel, wl: Workload, est: Estimate) -> tuple[list[float], float]:
    """Bytes one decoded token reads from each GPU's memory and from host memory: the weights it uses (for MoE
    blocks the `experts_per_token / num_experts` share of the expert tensors; one embedding row) and the KV cache
    filled to the context, on the device that holds each."""
    from .engines.llama_cpp import _device_of, _tensors, layout

    spec = rm.spec
    lc = est.llama_cpp
    n_dev = len(lc.devices)
    tensors, _ = _tensors(rm, wl)
    lay = layout(spec.num_layers, wl.llama.n_gpu_layers, n_dev, None)
    lay = replace(lay, layers=lc.layer_devices)
    n_cpu_moe = lc.n_cpu_moe
    moe = [la.mlp for la in spec.layers if la.mlp is not None and la.mlp.kind == "moe"]
    active = (moe[0].experts_per_token / max(1, moe[0].num_experts)) if moe else 1.0
    gpu = [0.0] * max(1, n_dev)
    cpu = 0.0
    for t in tensors:
        if t.is_input:
            cpu += t.nbytes / max(1, t.n_elements // max(1, t.ne0))  # one embedding row per token
            continue
        share = active if t.is_expert else 1.0
        d = _device_of(t, lay, n_cpu_moe)
        if d >= 0:
            gpu[d] += t.nbytes * share
        else:
            cpu += t.nbytes * share
    filled = wl.context / max(1, lc.n_ctx_seq * lc.kv_streams)  # the cache is read up to the context
    for d, du in enumerate(lc.devices):
        gpu[d] += du.kv_gpu_bytes * filled
    cpu += lc.kv_host_bytes * filled
    return gpu, cpu


def decode_speed(rm: ResolvedModel, wl: Workload, est: Estimate, gpu: GpuEntry, ram: RamSetup) -> dict[str, Any]:
    """Tokens/s of one sequence: GPU part at GPU bandwidth, host part at system-RAM bandwidth, one after the other."""
    from .components.weights import weight_scheme
    from .speed import DEFAULT_DECODE_EFFICIENCY as RAM_EFF
    from .speed import decode_efficiency

    eff = decode_efficiency(gpu, "llama.cpp", weight_scheme(rm.spec, wl), rm.spec, llama_build=wl.llama.llama_build)
    gpu_bw_gb_s = gpu.bandwidth_gb_per_s
    g, c = _read_bytes(rm, wl, est)
    t_gpu = g / (gpu_bw_gb_s * 1e9 * eff)
    t_cpu = c / (ram.bandwidth_gb_per_s * 1e9 * RAM_EFF)
    step = t_gpu + t_cpu
    return {
        "decode_tokens_per_s": round(1 / step, 2) if step > 0 else None,
        "gpu_bytes_per_token": int(g),
        "host_bytes_per_token": int(c),
        "gpu_seconds_per_token": round(t_gpu, 6),
        "host_seconds_per_token": round(t_cpu, 6),
        "explanation": f"{g / 2**30:.2f} GiB read per token at {gpu_bw_gb_s:g} GB/s (GPU) + {c / 2**30:.2f} GiB at "
        f"{ram.bandwidth_gb_per_s:g} GB/s ({ram.name}); × {eff:g} / {RAM_EFF:g} efficiency",
    }


def decode_speed_devices(
    rm: ResolvedModel, wl: Workload, est: Estimate, gpus: list[GpuEntry], ram: RamSetup
) -> dict[str, Any]:
    """Tokens/s of one sequence over several GPUs with llama.cpp's layer split: the devices run their blocks one
    after the other (a token passes GPU 0's blocks, then GPU 1's ...), so the step time is the sum of each GPU's
    bytes at its own derated bandwidth, plus the host part at system-RAM bandwidth."""
    from .components.weights import weight_scheme
    from .speed import DEFAULT_DECODE_EFFICIENCY as RAM_EFF
    from .speed import decode_efficiency

    per_device, c = read_bytes_per_device(rm, wl, est)
    scheme = weight_scheme(rm.spec, wl)
    times = [
        b
        / (
            g.bandwidth_gb_per_s
            * 1e9
            * decode_efficiency(g, "llama.cpp", scheme, rm.spec, llama_build=wl.llama.llama_build)
        )
        for b, g in zip(per_device, gpus, strict=True)
    ]
    t_cpu = c / (ram.bandwidth_gb_per_s * 1e9 * RAM_EFF)
    step = sum(times) + t_cpu
    parts = " + ".join(
        f"{b / 2**30:.2f} GiB at {g.bandwidth_gb_per_s:g} GB/s ({g.id})" for b, g in zip(per_device, gpus, strict=True)
    )
    return {
        "decode_tokens_per_s": round(1 / step, 2) if step > 0 else None,
        "gpu_bytes_per_token": [int(b) for b in per_device],
        "host_bytes_per_token": int(c),
        "gpu_seconds_per_token": [round(t, 6) for t in times],
        "host_seconds_per_token": round(t_cpu, 6),
        "explanation": f"read per token, one GPU after the other: {parts}"
        + (f" + {c / 2**30:.2f} GiB at {ram.bandwidth_gb_per_s:g} GB/s ({ram.name})" if c >= 2**20 else "")
        + f"; llama.cpp decode efficiency per GPU class, {RAM_EFF:g} for RAM",
    }


def expert_offload_plan(
    rm: ResolvedModel, wl: Workload, usable_gpu_bytes: int, gpu: GpuEntry, ram: RamSetup
) -> dict[str, Any] | None:
    """The smallest --n-cpu-moe N whose GPU use fits `usable_gpu_bytes`, or None for a dense model. With N = all
    blocks still too big, says so (`fits: false`)."""
    from .inference import estimate

    spec = rm.spec
    if not spec.is_moe:
        return None

    def gpu_use(n: int) -> tuple[int, Estimate]:
        e = estimate(rm, wl.with_options(n_cpu_moe=n, cpu_moe=False))
        return e.total_bytes, e

    lo, hi = 0, spec.num_layers
    use_hi, est_hi = gpu_use(hi)
    if use_hi > usable_gpu_bytes:
        best_n, best = hi, est_hi
        fits = False
    else:
        use0, est0 = gpu_use(0)
        if use0 <= usable_gpu_bytes:
            best_n, best, fits = 0, est0, True
        else:
            best_n, best, fits = hi, est_hi, True
            while hi - lo > 1:  # invariant: lo does not fit, hi fits
                mid = (lo + hi) // 2
                u, e = gpu_use(mid)
                if u <= usable_gpu_bytes:
                    hi, best_n, best = mid, mid, e
                else:
                    lo = mid
    lc = best.llama_cpp
    host = host_bytes(best)
    speed = decode_speed(rm, wl.with_options(n_cpu_moe=best_n), best, gpu, ram)
    host_ok = ram.size_bytes is None or host <= ram.size_bytes
    return {
        "kind": "experts",
        "fits": fits,
        "n_cpu_moe": best_n,
        "layers_total": spec.num_layers,
        "gpu_bytes": best.total_bytes,
        "usable_gpu_bytes": usable_gpu_bytes,
        "host_bytes": host,
        "host_weights_bytes": lc.weights_host_bytes,
        "ram": ram.to_dict(),
        "host_fits": host_ok,
        "offloaded_bytes": lc.weights_host_bytes,
        "flag": f"--n-cpu-moe {best_n}" if best_n < spec.num_layers else "--cpu-moe",
        **speed,
        "note": (
            "expert tensors of blocks 0.."
            f"{best_n - 1} stay in host memory and run on the CPU; attention, shared experts, norms and the "
            "output layer stay on the GPU"
            if best_n
            else "everything fits on the GPU"
        )
        + ("" if fits else "; even with every expert on the CPU the rest does not fit the GPU")
        + (
            ""
            if host_ok
            else f"; host memory short: {host / 2**30:.1f} GiB needed in RAM, "
            f"{(ram.size_bytes or 0) / 2**30:.1f} GiB given"
        ),
    }


def host_memory_check(est: Estimate, ram: RamSetup) -> dict[str, Any]:
    """Does the host part of a llama.cpp workload fit the RAM given?"""
    need = host_bytes(est)
    ok = ram.size_bytes is None or need <= ram.size_bytes
    return {
        "host_bytes": need,
        "ram_bytes": ram.size_bytes,
        "fits": ok,
        "explanation": (
            f"host memory: {need / 2**30:.2f} GiB (weights in RAM, CPU KV cache, host compute and output buffers)"
        )
        + (
            "; system RAM not given, not checked (--ram 64GiB checks it)"
            if ram.size_bytes is None
            else f" of {ram.size_bytes / 2**30:.1f} GiB RAM ({ram.source})"
            + ("" if ok else " — does not fit system RAM")
        ),
    }
