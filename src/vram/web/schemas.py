"""Request bodies of the JSON API (pydantic). Anything malformed is a 422 naming the field, and costs nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _not_bool(v: Any) -> Any:
    """true/false are not numbers (pydantic would read true as 1)."""
    if isinstance(v, bool):
        raise ValueError("expected a number, not true/false")
    return v


Int = Annotated[int, BeforeValidator(_not_bool)]
Num = Annotated[float, BeforeValidator(_not_bool)]
TokenCount = Annotated[int | str, BeforeValidator(_not_bool)]  # 4096 or "32k"
HEADROOM_DOC = "free memory required on the fullest GPU, as a fraction of its weights (as `vram fit`)"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainBody(Body):
    method: Literal["full", "lora", "qlora"] = "full"
    precision: Literal["fp32", "bf16", "fp16", "mixed"] = "bf16"
    optimizer: Literal["adamw", "adamw-fused", "adamw-8bit", "sgd", "sgd-momentum", "adafactor", "lion"] = "adamw"
    seq: TokenCount | None = Field(default=None, description="training sequence length (default: context, or 2048)")
    grad_checkpointing: bool = False
    lora_rank: Int = Field(default=16, ge=1, le=4096)
    lora_alpha: float | None = None
    lora_targets: str = Field(default="all-linear", max_length=500)
    gpus: Int = Field(default=1, ge=1, le=4096)
    zero: Literal[0, 1, 2, 3] = 0
    fsdp: Literal["full", "hybrid", "grad-op"] | None = None
    gpus_per_node: Int = Field(default=8, ge=1, le=64)
    offload_optimizer: bool = False
    grad_accum: Int = Field(default=1, ge=1, le=65536)


class WorkloadBody(Body):
    model: str = Field(min_length=1, max_length=200, description="catalog id, alias or Hub repo id in the catalog")
    context: TokenCount = Field(default=4096, description="prompt tokens per sequence: 4096 or '32k'")
    batch: Int = Field(default=1, ge=1, le=65536)
    new_tokens: TokenCount = 16
    engine: Literal["transformers", "vllm", "llama.cpp", "llamacpp"] = "transformers"
    dtype: str = Field(default="bfloat16", max_length=32)
    quant: str | None = Field(default=None, max_length=32)
    kv_dtype: str | None = Field(default=None, max_length=32)
    attn: Literal["sdpa", "eager", "flash"] = "sdpa"
    train: TrainBody | None = None
    # image models (diffusion) and speech models (Whisper) only; an error for other models
    width: Int | None = Field(default=None, ge=64, le=8192, description="image width in pixels (image models)")
    height: Int | None = Field(default=None, ge=64, le=8192, description="image height in pixels (image models)")
    images: Int | None = Field(default=None, ge=1, le=64, description="images per prompt (image models)")
    steps: Int | None = Field(default=None, ge=1, le=1000, description="denoising steps (image models; time only)")
    offload_text_encoders: bool | None = Field(default=None, description="text encoders on the CPU (image models)")
    beams: Int | None = Field(default=None, ge=1, le=16, description="beam size (speech models)")
    audio_s: Num | None = Field(default=None, gt=0, le=86400.0, description="seconds of audio (speech; time only)")


class EstimateBody(WorkloadBody):
    pass


class FitBody(WorkloadBody):
    gpu: str = Field(min_length=1, max_length=100, description="catalog GPU id or alias, e.g. 'rtx-4090'")
    gpu_count: Int = Field(default=1, ge=1, le=1024)
    headroom_fraction: Num = Field(default=0.2, ge=0.0, le=10.0, description=HEADROOM_DOC)


class WhichBody(WorkloadBody):
    counts: list[Annotated[int, Field(ge=1, le=1024)]] = Field(default=[1, 2, 4, 8], min_length=1, max_length=8)
    headroom_fraction: float = Field(default=0.2, ge=0.0, le=10.0, description=HEADROOM_DOC)


class CompareBody(WorkloadBody):
    gpus: list[str] = Field(min_length=1, max_length=8, description="GPU specs, e.g. ['rtx-4090', '2xrtx-4090']")
    headroom_fraction: float = Field(default=0.2, ge=0.0, le=10.0)


MAX_PLAN_MODELS = 32
MAX_PLAN_POOLS = 16


class PlanBody(Body):
    fleet: dict[str, Any] = Field(description="the fleet `vram plan` reads: {pools: [...], models: [...], headroom}")

    @field_validator("fleet")
    @classmethod
    def _bounded(cls, fleet: dict[str, Any]) -> dict[str, Any]:
        for key, most in (("models", MAX_PLAN_MODELS), ("pools", MAX_PLAN_POOLS)):
            if isinstance(fleet.get(key), list) and len(fleet[key]) > most:
                raise ValueError(f"at most {most} {key} per plan on the web (use `vram plan` for more)")
        return fleet


class Credentials(Body):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class SaveBody(Body):
    kind: Literal["estimate", "fit", "which", "compare", "plan", "check"] = "estimate"
    request: dict[str, Any]
    result: dict[str, Any]
    signature: str = Field(min_length=64, max_length=64, description="the Vram-Result-Signature header of the answer")
    title: str | None = Field(default=None, max_length=300)


class ShareBody(Body):
    history_id: str | None = Field(default=None, max_length=64)
    kind: Literal["estimate", "fit", "which", "compare", "plan", "check"] | None = None
    request: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    signature: str | None = Field(default=None, max_length=64)
    title: str | None = Field(default=None, max_length=300)


class CheckBody(WorkloadBody):
    """What the page's form asks: an estimate, optionally checked against `gpu_count` × `gpu`."""

    gpu: str | None = Field(default=None, max_length=100)
    gpu_count: Int = Field(default=1, ge=1, le=1024)
    headroom_fraction: Num = Field(default=0.2, ge=0.0, le=10.0, description=HEADROOM_DOC)
