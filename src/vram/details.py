"""Engines' typed details: what an engine reports beyond the common breakdown (a leaf: imports only vram.records).

`Estimate.details` holds one of these; `Estimate.to_dict()` writes it under its `key`, so the JSON answer keeps
the object other tools read (`vram estimate --engine vllm --json` → `"vllm": {...}`, `--engine llama.cpp` →
`"llama_cpp": {...}`, `--engine mlx` → `"mlx": {...}`).
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


@record(frozen=True)
class LlamaCppDevice:
    """One GPU's buffers in a llama.cpp estimate, as its load log prints them per device."""

    weights_gpu_bytes: int  # "CUDA0 model buffer size"
    kv_gpu_bytes: int  # "CUDA0 KV buffer size"
    compute_gpu_bytes: int  # "CUDA0 compute buffer size"
    compute_phase: str  # the part of the worst-case graph that sizes the compute buffer

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


@record(frozen=True)
class LlamaCppDetails:
    """The buffers `llama_model_load` and `llama_init_from_model` allocate, and the settings they came from."""

    key: ClassVar[str] = "llama_cpp"
    weights_gpu_bytes: int  # model buffers on the GPUs (all devices)
    weights_host_bytes: int  # model buffers in host memory (token_embd, CPU layers, experts kept on the CPU)
    kv_gpu_bytes: int  # KV buffers on the GPUs
    kv_host_bytes: int  # KV buffers of CPU layers
    compute_gpu_bytes: int  # compute buffers on the GPUs
    compute_host_bytes: int  # the CPU compute buffer (graph inputs; the whole graph on a CPU-only build)
    output_host_bytes: int  # the output buffer (logits of every slot)
    n_ctx: int  # context × slots, padded to 256
    n_ctx_seq: int  # cells per KV stream
    kv_streams: int  # 1 unified, else one per slot
    n_batch: int
    n_ubatch: int
    n_outputs: int  # logits rows of the worst-case graph
    cache_type_k: str
    cache_type_v: str
    backend: str  # cuda, rocm, vulkan, metal or cpu
    n_gpu_layers: int  # -ngl as laid out (n_layer + 1: all)
    blocks_on_gpu: int
    output_on_gpu: bool
    n_cpu_moe: int  # blocks 0..N-1 keep their expert tensors on the CPU
    swa_cells: int | None  # cells of the sliding-window layers (None: the model has none)
    devices: tuple[LlamaCppDevice, ...]  # one per GPU (none on a CPU-only build)
    layer_devices: tuple[int, ...]  # each block's GPU (-1: the CPU)
    tensor_split: tuple[float, ...]  # the --tensor-split that leaves each GPU the same share free (several GPUs)
    tensor_split_used: tuple[float, ...]  # the split laid out (the given one, else each GPU's memory)
    file_type: str | None  # the weights' file type when they are not a GGUF file's own (MXFP4_MOE for gpt-oss)
    weights_total_bytes: int  # every tensor of the file

    # the names earlier callers read, derived from the fields (still in the JSON answer)
    @property
    def weights_cpu_bytes(self) -> int:
        return self.weights_host_bytes

    @property
    def kv_cpu_bytes(self) -> int:
        return self.kv_host_bytes

    @property
    def kv_total_bytes(self) -> int:
        return self.kv_gpu_bytes + self.kv_host_bytes

    @property
    def compute_bytes(self) -> int:
        """The largest compute buffer of one GPU (the CPU's on a CPU-only build)."""
        if not self.devices:
            return self.compute_host_bytes
        return max(du.compute_gpu_bytes for du in self.devices)

    @property
    def output_buffer_host_bytes(self) -> int:
        return self.output_host_bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "weights_gpu_bytes": self.weights_gpu_bytes,
            "weights_host_bytes": self.weights_host_bytes,
            "kv_gpu_bytes": self.kv_gpu_bytes,
            "kv_host_bytes": self.kv_host_bytes,
            "compute_gpu_bytes": self.compute_gpu_bytes,
            "compute_host_bytes": self.compute_host_bytes,
            "output_host_bytes": self.output_host_bytes,
            "n_ctx": self.n_ctx,
            "n_ctx_seq": self.n_ctx_seq,
            "kv_streams": self.kv_streams,
            "n_batch": self.n_batch,
            "n_ubatch": self.n_ubatch,
            "n_outputs": self.n_outputs,
            "cache_type_k": self.cache_type_k,
            "cache_type_v": self.cache_type_v,
            "backend": self.backend,
            "n_gpu_layers": self.n_gpu_layers,
            "blocks_on_gpu": self.blocks_on_gpu,
            "output_on_gpu": self.output_on_gpu,
            "n_cpu_moe": self.n_cpu_moe,
            "swa_cells": self.swa_cells,
            "devices": [du.to_dict() for du in self.devices],
            "layer_devices": list(self.layer_devices),
            "tensor_split": list(self.tensor_split),
            "tensor_split_used": list(self.tensor_split_used),
            "file_type": self.file_type,
            "weights_total_bytes": self.weights_total_bytes,
            "weights_cpu_bytes": self.weights_cpu_bytes,
            "kv_cpu_bytes": self.kv_cpu_bytes,
            "kv_total_bytes": self.kv_total_bytes,
            "compute_bytes": self.compute_bytes,
            "output_buffer_host_bytes": self.output_buffer_host_bytes,
        }


@record(frozen=True)
class MlxDetails:
    """What an MLX estimate rests on beyond the breakdown."""

    key: ClassVar[str] = "mlx"
    kv_slots: int  # KVCache slots, grown in steps of 256
    prefill_chunk: int  # tokens of one prefill step
    bits_per_weight: float  # quantized weights with their group's scale and bias (16-bit: 16.0)

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


EngineDetails = VllmDetails | LlamaCppDetails | MlxDetails

__all__ = ["EngineDetails", "LlamaCppDetails", "LlamaCppDevice", "MlxDetails", "VllmDetails"]
