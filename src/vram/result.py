"""What an estimate returns: bytes per component, the assumptions they rest on, and each engine's typed details."""

from __future__ import annotations

from . import __version__
from .components import Component
from .details import EngineDetails, LlamaCppDetails, MlxDetails, VllmDetails
from .records import field, record
from .request import TrainWorkload, Workload

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any


@record(frozen=True)
class Estimate:
    model: str
    params: int
    active_params: int
    engine: str
    workload: Workload | TrainWorkload  # what was asked: an inference workload or a training step
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    peak_allocated_bytes: int
    total_bytes: int
    breakdown: tuple[Component, ...]
    assumptions: tuple[str, ...]
    binding_phase: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # the engine's typed figures (VllmDetails, LlamaCppDetails, MlxDetails), written under their key
    details: EngineDetails | None = None
    # bytes of cache one decode step's attention reads, where it is not the cache held (`kv_cache_bytes`): a
    # sliding-window layer reads its window, while vLLM keeps a prompt chunk more and transformers' cache holds the
    # whole prompt until the first decode step (None: the cache held is what is read)
    kv_read_bytes: int | None = None

    @property
    def vllm(self) -> VllmDetails:
        """The vLLM figures of a `--engine vllm` estimate (an error for any other engine's)."""
        if not isinstance(self.details, VllmDetails):
            raise TypeError(f"a {self.engine} estimate has no vLLM details")
        return self.details

    @property
    def llama_cpp(self) -> LlamaCppDetails:
        """The llama.cpp buffers of a `--engine llama.cpp` (or `ollama`) estimate (an error for any other engine's)."""
        if not isinstance(self.details, LlamaCppDetails):
            raise TypeError(f"a {self.engine} estimate has no llama.cpp details")
        return self.details

    @property
    def mlx(self) -> MlxDetails:
        """The MLX figures of a `--engine mlx` estimate (an error for any other engine's)."""
        if not isinstance(self.details, MlxDetails):
            raise TypeError(f"a {self.engine} estimate has no MLX details")
        return self.details

    def component(self, name: str) -> Component | None:
        return next((c for c in self.breakdown if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "params": self.params,
            "active_params": self.active_params,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "activation_bytes": self.activation_bytes,
            "peak_allocated_bytes": self.peak_allocated_bytes,
            "total_bytes": self.total_bytes,
            "binding_phase": self.binding_phase,
            "breakdown": [c.to_dict() for c in self.breakdown],
            "assumptions": list(self.assumptions),
            **(
                {"train": self.workload.to_dict()}
                if isinstance(self.workload, TrainWorkload)
                else {"workload": self.workload.to_dict()}
            ),
            "vram_version": __version__,
            **self.extra,
            **({self.details.key: self.details.to_dict()} if self.details is not None else {}),
        }
