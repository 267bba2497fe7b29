"""Engines' typed details: what an engine reports beyond the common breakdown (a leaf: imports nothing of vram).

`Estimate.details` holds one of these; `Estimate.to_dict()` writes it under its `key`, so the JSON answer keeps
the object other tools read (`vram estimate --engine vllm --json` → `"vllm": {...}`).
"""

from __future__ import annotations

from .records import asdict, record

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import ClassVar


@record(frozen=True)
class VllmDetails:
    """The figures one GPU of a `vllm serve` start-up logs, and the settings they came from (all per GPU)."""

    key: ClassVar[str] = "vllm"
    weights_bytes: int  # "Model loading took"
    activation_peak_bytes: int  # "torch peak memory increase" of the profile run
    non_torch_bytes: int  # "non-torch forward increase memory"
    cuda_graph_bytes: int  # the CUDA-graph pool (estimate or capture)
    kv_cache_bytes: int  # "Available KV cache memory"
    kv_cache_tokens: int  # "GPU KV cache size: N tokens"
    max_concurrency: float  # "Maximum concurrency for L tokens per request: Nx"
    kv_cache_blocks: int
    kv_cache_groups: int
    tensor_parallel_size: int
    max_model_len: int
    max_num_batched_tokens: int
    max_num_seqs: int
    gpu_memory_bytes: int  # what torch sees of the GPU
    gpu_memory_utilization: float
    requested_memory_bytes: int  # gpu_memory_utilization × gpu_memory_bytes
    engine_version: str  # the vLLM release X.Y modelled

    def to_dict(self) -> dict[str, int | float | str]:
        return asdict(self)


EngineDetails = VllmDetails

__all__ = ["EngineDetails", "VllmDetails"]
