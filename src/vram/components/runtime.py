"""What the runtime itself takes: CUDA context, cuBLAS workspace, and the caching allocator's reserve.

Measured on an H200 with PyTorch 2.11 / CUDA 13 (../shared/groundtruth): the device shows 751,632,384 bytes in use
after CUDA and cuBLAS initialise, before any tensor of the model; PyTorch's caching allocator hands cuBLAS a
32 MiB workspace on Hopper and newer (`:4096:8`), 8 MiB + 128 KiB on older GPUs (`:4096:2:16:8`), which
`memory_allocated()` counts.
"""

from __future__ import annotations

from . import Component

MIB = 1024**2

# Device memory in use after CUDA + cuBLAS initialisation (driver, context, kernels loaded lazily, cuBLAS handles).
CUDA_CONTEXT_BYTES = {
    "hopper": 751_632_384,  # measured, H200, CUDA 13, PyTorch 2.11
    "blackwell": 751_632_384,  # assumed same as Hopper (same toolkit)
    "ampere": 560 * MIB,  # typical for CUDA 12 lazy loading on A100 / RTX 30xx
    "ada": 560 * MIB,
    "turing": 480 * MIB,
    "volta": 480 * MIB,
    "pascal": 480 * MIB,  # assumed as Volta (CUDA 12 still builds for sm_61; fewer kernels load lazily)
}
DEFAULT_ARCH = "hopper"


def cuda_context(arch: str = DEFAULT_ARCH) -> Component:
    b = CUDA_CONTEXT_BYTES.get(arch, CUDA_CONTEXT_BYTES[DEFAULT_ARCH])
    how = (
        "measured on an H200 (CUDA 13, PyTorch 2.11)"
        if arch in ("hopper", "blackwell")
        else f"typical for {arch} GPUs with lazy module loading"
    )
    return Component("cuda_context", b, f"CUDA context, kernels and cuBLAS handles before any tensor; {how}")


def cublas_workspace(arch: str = DEFAULT_ARCH) -> Component:
    hopper_plus = arch in ("hopper", "blackwell")
    b = 32 * MIB if hopper_plus else 8 * MIB + 128 * 1024
    cfg = ":4096:8" if hopper_plus else ":4096:2:16:8"
    return Component(
        "cublas_workspace",
        b,
        f"cuBLAS workspace PyTorch allocates through its caching allocator "
        f"(CUBLAS_WORKSPACE_CONFIG {cfg}); counted by memory_allocated()",
    )


def allocator_reserve(kv_churn_bytes: int, activation_bytes: int, stranded_bytes: int = 0) -> Component:
    """Memory the caching allocator keeps reserved beyond the live tensors at the peak.

    Blocks freed by one phase are cached and only reused by requests they fit: a growing KV cache re-allocated on
    every decode step, and prefill temporaries of sizes the decode phase never asks for again, leave segments
    reserved but idle. Calibrated on the H200 measurements as half the re-allocated cache plus a tenth of the
    peak temporaries (median error of the device total within a few percent there).
    Eager attention also strands one score-sized block (`stranded_bytes`): the float32 softmax buffers are carved
    from fresh segments while the bf16 score blocks freed just before are too small to hold them.
    """
    b = kv_churn_bytes // 2 + activation_bytes // 10 + stranded_bytes
    extra = " + one stranded attention-score block" if stranded_bytes else ""
    return Component(
        "allocator_reserve",
        b,
        "PyTorch caching allocator: freed blocks kept reserved "
        f"(≈ ½ of the cache re-allocated while decoding + ⅒ of the peak temporaries{extra})",
    )


def training_reserve(transient_bytes: int) -> Component:
    """Caching-allocator reserve during training: forward temporaries, recomputation and backward buffers come in
    sizes that do not reuse each other's blocks. On the H200 measurements the reserve beyond the peak was a median
    0.2 (0.02–1.0) of the step's transient memory; 0.2 is used."""
    return Component(
        "allocator_reserve",
        transient_bytes // 5,
        "PyTorch caching allocator: freed blocks kept "
        "reserved (≈ 0.2 × the step's transient memory; measured 0.02–1.0)",
    )
