"""Shared pieces of the family estimates: bytes per element, runtime overheads, building the Estimate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..components import Component
from ..components.runtime import cublas_workspace, cuda_context
from ..dtypes import dtype_bytes

if TYPE_CHECKING:
    from ..request import Workload
    from ..result import Estimate


def elem_bytes(wl: Workload) -> int:
    return int(dtype_bytes(wl.dtype))


def finish(
    *,
    model: str,
    params: int,
    wl: Workload,
    weights: Component,
    kv: Component | None,
    activations: Component,
    others: Sequence[Component] = (),
    assumptions: Sequence[str],
    phase: str,
    extra: dict[str, Any] | None = None,
) -> Estimate:
    """Assemble an Estimate: weights + caches + peak temporaries + cuBLAS workspace, then the CUDA context."""
    from ..result import Estimate

    ws = cublas_workspace(wl.arch)
    ctx = cuda_context(wl.arch)
    parts = [weights, *([kv] if kv else []), activations, *others, ws]
    allocated = sum(c.bytes for c in parts)
    return Estimate(
        model=model,
        params=params,
        active_params=params,
        engine="transformers",
        workload=wl,
        weights_bytes=weights.bytes,
        kv_cache_bytes=kv.bytes if kv else 0,
        activation_bytes=activations.bytes,
        peak_allocated_bytes=allocated,
        total_bytes=allocated + ctx.bytes,
        breakdown=(*parts, ctx),
        assumptions=tuple(assumptions),
        binding_phase=phase,
        extra=extra or {},
    )
