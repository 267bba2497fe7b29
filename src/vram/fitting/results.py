"""What `fit`, `which` and `compare` return."""

from __future__ import annotations

from typing import Any

from ..catalog import GpuEntry
from ..components import Component
from ..records import field, record
from ..request import TrainWorkload, Workload
from ..result import Estimate
from ..speed import Speed

MIB = 1024**2


VERDICTS = ("fits", "tight", "no")


@record(frozen=True)
class RankUse:
    """One GPU's share."""

    rank: int
    role: str
    layers: tuple[int, ...]  # (first, last) layer, inclusive; empty for models without decoder layers
    weights_bytes: int
    weights_replicated_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    comm_bytes: int
    cuda_context_bytes: int
    total_bytes: int
    breakdown: tuple[Component, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "role": self.role,
            "layers": list(self.layers),
            "weights_bytes": self.weights_bytes,
            "weights_replicated_bytes": self.weights_replicated_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "activation_bytes": self.activation_bytes,
            "comm_bytes": self.comm_bytes,
            "cuda_context_bytes": self.cuda_context_bytes,
            "total_bytes": self.total_bytes,
            "breakdown": [c.to_dict() for c in self.breakdown],
        }


@record(frozen=True)
class FitResult:
    model: str
    gpu: str
    gpu_name: str
    gpu_count: int
    split: str
    engine: str
    workload: Workload | TrainWorkload  # the inference workload, or the training step
    verdict: str
    per_gpu_bytes: int
    usable_bytes_per_gpu: int
    headroom_fraction: float
    headroom_bytes: int  # required free memory on the fullest GPU for "fits"
    free_bytes_per_gpu: int
    weights_bytes: int  # whole model
    kv_cache_bytes: int  # whole model (all ranks)
    ranks: tuple[RankUse, ...]
    estimate: Estimate  # the fullest GPU's estimate
    max_context: int | None = None
    context_limit: int | None = None  # the model's longest context (max_context never exceeds it)
    max_batch: int | None = None
    min_gpus: int | None = None
    recommended_quant: str | None = None
    speed: Speed | None = None
    serving: dict[str, Any] = field(default_factory=dict)
    offload: dict[str, Any] | None = None
    host_memory: dict[str, Any] | None = None  # llama.cpp: what stays in system RAM, against --ram
    # llama.cpp over a list of GPUs (`rtx-4090+rtx-3090`): the tensor split checked, each device's bytes, decode speed
    device_split: dict[str, Any] | None = None
    # Ollama: the settings it starts llama.cpp with and what `ollama ps` would show (engine "ollama" asked)
    ollama: dict[str, Any] | None = None
    reasons: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    gpu_entry: GpuEntry | None = field(default=None, repr=False, compare=False)

    @property
    def fits(self) -> bool:
        return self.verdict != "no"

    @property
    def context(self) -> int:
        """Tokens per sequence asked: the prompt, or a training step's sequence."""
        return self.workload.seq if isinstance(self.workload, TrainWorkload) else self.workload.context

    @property
    def batch(self) -> int:
        return self.workload.batch

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "verdict": self.verdict,
            "model": self.model,
            "gpu": self.gpu,
            "gpu_name": self.gpu_name,
            "gpu_count": self.gpu_count,
            "split": self.split,
            "engine": self.engine,
            "per_gpu_bytes": self.per_gpu_bytes,
            "usable_bytes_per_gpu": self.usable_bytes_per_gpu,
            "free_bytes_per_gpu": self.free_bytes_per_gpu,
            "headroom_fraction": self.headroom_fraction,
            "headroom_bytes": self.headroom_bytes,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "max_context": self.max_context,
            "context_limit": self.context_limit,
            "max_batch": self.max_batch,
            "min_gpus": self.min_gpus,
            "recommended_quant": self.recommended_quant,
            "breakdown": [c.to_dict() for c in self.estimate.breakdown]
            + (
                [
                    {
                        "name": "nccl_buffers",
                        "bytes": self.ranks[0].comm_bytes,
                        "explanation": "NCCL communication buffers per rank",
                    }
                ]
                if self.ranks and self.ranks[0].comm_bytes
                else []
            ),
            "ranks": [r.to_dict() for r in self.ranks],
            "speed": self.speed.to_dict() if self.speed else None,
            "serving": self.serving,
            "offload": self.offload,
            "host_memory": self.host_memory,
            **({"device_split": self.device_split} if self.device_split is not None else {}),
            **({"ollama": self.ollama} if self.ollama is not None else {}),
            "reasons": list(self.reasons),
            "assumptions": list(self.assumptions),
            **(
                {"train": self.workload.to_dict()}
                if isinstance(self.workload, TrainWorkload)
                else {"workload": self.workload.to_dict()}
            ),
            "estimate": self.estimate.to_dict(),
        }


@record(frozen=True)
class Option:
    """One GPU × count that holds the workload, with its speed."""

    gpu: str
    gpu_name: str
    vendor: str
    category: str
    gpu_count: int
    split: str
    verdict: str
    per_gpu_bytes: int
    usable_bytes_per_gpu: int
    free_bytes_per_gpu: int
    speed: Speed | None  # None for models that are not decoder LLMs
    price_per_hour_usd: float | None = None  # per GPU

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "gpu_name": self.gpu_name,
            "vendor": self.vendor,
            "category": self.category,
            "gpu_count": self.gpu_count,
            "split": self.split,
            "verdict": self.verdict,
            "fits": True,
            "per_gpu_bytes": self.per_gpu_bytes,
            "usable_bytes_per_gpu": self.usable_bytes_per_gpu,
            "free_bytes_per_gpu": self.free_bytes_per_gpu,
            "price_per_hour_usd": self.price_per_hour_usd,
            **(self.speed.to_dict() if self.speed else {}),
        }
