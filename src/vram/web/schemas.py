"""Request bodies of the JSON API (pydantic). Anything malformed is a 422 naming the field, and costs nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator

from ..request import FAMILY_OPTIONS, OptionField, TrainWorkload, option_fields


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


def _pydantic_field(of: OptionField, *, optional: bool = False, note: str = "") -> tuple[Any, Any]:
    """(annotation, Field) for a declared option: its choices as a Literal, its range as ge/le, its help text;
    `optional`: None unless given."""
    base: Any
    if of.choices is not None:
        base = Literal[of.choices]
    elif of.parse == "tokens":
        base = TokenCount
    else:
        base = {int: Int, float: Num, bool: bool, str: str, tuple: list[float]}.get(of.kind, Any)
    bounds: dict[str, Any] = {}
    if of.kind in (int, float) and of.parse is None:
        if of.lo is not None:
            bounds["ge"] = of.lo
        if of.hi is not None:
            bounds["le"] = of.hi
    if of.kind is str and of.choices is None:
        bounds["max_length"] = 500
    ann = base | None if (of.optional or optional) else base
    default = None if optional else of.default
    return ann, Field(default=default, description=of.help + note, **bounds)


def body_fields(cls: type) -> dict[str, Any]:
    """pydantic fields for the declared options of `cls` (vram.request), for `create_model`."""
    return {of.name: _pydantic_field(of) for of in option_fields(cls) if of.cli}


# The training options: every field vram.request.TrainWorkload declares (batch and attn are the workload's own).
# Made at import from the declarations; type checkers see a plain body (its fields are read through model_dump).
if TYPE_CHECKING:

    class TrainBody(Body):
        seq: TokenCount | None
else:
    TrainBody = create_model(
        "TrainBody",
        __base__=Body,
        seq=(TokenCount | None, Field(default=None, description="training sequence length (default: context or 2048)")),
        **body_fields(TrainWorkload),
    )


def _family_fields() -> dict[str, Any]:
    """Image (diffusion, vision) and speech inputs, from their option declarations; None unless given."""
    out: dict[str, Any] = {}
    for cls in FAMILY_OPTIONS.values():
        for of in option_fields(cls):
            if of.name not in out and of.cli:
                out[of.name] = _pydantic_field(of, optional=True, note=f" ({cls.title})")
    return out


if TYPE_CHECKING:

    class _FamilyBody(Body):
        pass
else:
    _FamilyBody = create_model("_FamilyBody", __base__=Body, **_family_fields())


class WorkloadBody(_FamilyBody):
    model: str = Field(min_length=1, max_length=200, description="catalog id, alias or Hub repo id in the catalog")
    context: TokenCount = Field(default=4096, description="prompt tokens per sequence: 4096 or '32k'")
    batch: Int = Field(default=1, ge=1, le=65536)
    new_tokens: TokenCount = 16
    engine: Literal["transformers", "vllm", "llama.cpp", "llamacpp", "ollama", "mlx"] = "transformers"
    dtype: str = Field(default="bfloat16", max_length=32)
    quant: str | None = Field(default=None, max_length=32)
    kv_dtype: str | None = Field(default=None, max_length=32)
    attn: Literal["sdpa", "eager", "flash"] | None = Field(default=None, description="transformers only")
    options: dict[str, Any] | None = Field(
        default=None,
        description="the engine's options by name, as vram.request declares them (vLLM: "
        "max_num_seqs, block_size ...; llama.cpp: n_gpu_layers, n_ubatch ...); an option of another engine is a 422",
    )
    train: TrainBody | None = None


class EstimateBody(WorkloadBody):
    gpu: str | None = Field(
        default=None,
        max_length=100,
        description="the GPU the engine sizes itself from (needed for vLLM), e.g. 'rtx-4090'",
    )


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
