"""Training memory (placeholder while the implementation lands)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainWorkload:
    method: str = "full"  # full | lora | qlora
    precision: str = "bf16"  # fp32 | bf16 | fp16 | mixed
    optimizer: str = "adamw"  # adamw | adamw-fused | adamw-8bit | sgd | sgd-momentum | adafactor | lion
    batch: int = 1  # micro-batch per GPU
    seq: int = 2048
    attn: str = "sdpa"
    grad_checkpointing: bool = False
    lora_rank: int = 16
    lora_alpha: float | None = None
    lora_targets: str = "all-linear"
    gpus: int = 1
    zero: int = 0
    fsdp: str | None = None
    gpus_per_node: int = 8
    offload_optimizer: bool = False
    grad_accum: int = 1
    gpu_arch: str = "hopper"
