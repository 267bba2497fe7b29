"""What is asked: the common workload, the device it runs on, and typed options per engine and model family.

A leaf module (it imports only errors, dtypes and units). Every option is declared once, here, with its range and
help text in the field's metadata; the CLI flags, the API schemas, the page form and the fleet file are derived from
these declarations (`option_fields`). An option object validates itself when it is made; an option that does not
apply to the chosen engine or model is an error (`Workload.validate`, the estimators), never ignored.

    >>> Workload(context=32768, options=VllmOptions(max_num_seqs=64), devices=(Device("H100 SXM", "hopper", ...),))
"""

from __future__ import annotations

import re
import sys

from .components.runtime import DEFAULT_ARCH  # transformers without a device: an H100 / H200
from .dtypes import normalize_dtype, quant_scheme
from .errors import BadInput
from .records import asdict, field, fields, record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` is for mypy only: importing it is a few milliseconds of every command's start
    from typing import Any, ClassVar, Literal, TypeVar
else:

    class Literal:
        """At run time `Literal["a", "b"]` is the tuple of its choices (what `option_fields` reads)."""

        def __class_getitem__(cls, choices: object) -> tuple[object, ...]:
            return choices if isinstance(choices, tuple) else (choices,)


MAX_TOKENS = 1 << 24  # 16M tokens: far beyond any published context
MAX_BATCH = 1 << 16
ENGINES = ("transformers", "vllm", "llama.cpp", "ollama", "mlx")

Attn = Literal["sdpa", "eager", "flash"]
Backend = Literal["cuda", "rocm", "vulkan", "metal", "cpu"]
SpecMethod = Literal["draft_model", "eagle", "eagle3", "mtp"]


def opt(
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    flag: str | None = None,
    short: str | None = None,
    parse: str | None = None,
    cli: bool = True,
) -> Any:
    """Declare an option: its default, help text, inclusive range and CLI spelling (`flag`, `short`; a bool that
    defaults to True gets `--no-<flag>`). `parse`: "tokens" or "bytes" for values like 32k / 24GiB."""
    meta = {"help": help, "lo": lo, "hi": hi, "flag": flag, "short": short, "parse": parse, "cli": cli}
    return field(default=default, metadata=meta)


@record(frozen=True)
class OptionField:
    """One declared option, as adapters see it."""

    name: str
    kind: type  # int, float, bool, str or tuple
    default: Any
    optional: bool
    choices: tuple[str, ...] | None
    help: str
    lo: float | None
    hi: float | None
    flag: str
    short: str | None
    parse: str | None
    cli: bool
    owner: str  # the options class's `scope` ("vllm", "llama.cpp", "image" ...)


_KINDS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def _unwrap(annotation: str, names: dict[str, Any]) -> tuple[type, bool, tuple[str, ...] | None]:
    """(base type, allows None, choices) of a field's annotation as written (`from __future__ import
    annotations`): `int`, `float | None`, `tuple[float, ...] | None`, a Literal alias of this module (`Attn`,
    `Backend | None`), a class (`Device | None`) or a union alias (`EngineOptions`: its first member)."""
    parts = [part.strip() for part in annotation.split("|")]
    optional = "None" in parts
    (base,) = [part for part in parts if part != "None"]
    if base.startswith("tuple["):
        return tuple, optional, None
    if base in _KINDS:
        return _KINDS[base], optional, None
    value = names[base]
    if isinstance(value, tuple):  # a Literal alias
        return str, optional, tuple(str(choice) for choice in value)
    members = getattr(value, "__args__", None)  # a union of classes (types.UnionType)
    if members:
        optional = optional or type(None) in members
        value = members[0]
    assert isinstance(value, type), annotation
    return value, optional, None


def _fields_of(cls: type) -> tuple[OptionField, ...]:
    # each field's annotation read as written, its names looked up in the module that declares the class (the
    # options classes are declared here and their bases add no fields)
    names = vars(sys.modules[cls.__module__])
    out = []
    for f in fields(cls):
        kind, optional, choices = _unwrap(f.type, names)
        m = f.metadata
        flag = m.get("flag") or "--" + f.name.replace("_", "-")
        out.append(
            OptionField(
                f.name,
                kind,
                f.default,
                optional,
                choices,
                m.get("help", ""),
                m.get("lo"),
                m.get("hi"),
                flag,
                m.get("short"),
                m.get("parse"),
                m.get("cli", True),
                getattr(cls, "scope", ""),
            )
        )
    return tuple(out)


def _num(x: float | None) -> str:
    return f"{int(x):,}" if x is not None and float(x).is_integer() else f"{x:g}"


def _check_value(of: OptionField, value: Any) -> None:
    if value is None:
        if of.optional:
            return
        raise BadInput(f"{of.name}: a value is required", field=of.name)
    if of.kind is bool:
        if not isinstance(value, bool):
            raise BadInput(f"{of.name}: expected true or false, got {value!r}", field=of.name)
        return
    if of.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"{of.name}: expected a whole number, got {value!r}", field=of.name)
    elif of.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise BadInput(f"{of.name}: expected a number, got {value!r}", field=of.name)
    elif of.kind is str:
        if not isinstance(value, str) or not value.strip():
            raise BadInput(f"{of.name}: expected a name, got {value!r}", field=of.name)
        if of.choices is not None and value not in of.choices:
            raise BadInput(f"{of.name}: {value!r} is not one of {', '.join(of.choices)}", field=of.name)
        return
    elif of.kind is tuple:
        if (
            not isinstance(value, tuple)
            or not value
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in value)
        ):
            raise BadInput(f"{of.name}: expected a list of numbers, got {value!r}", field=of.name)
        return
    lo, hi = of.lo, of.hi
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = (
            f"between {_num(lo)} and {_num(hi)}"
            if lo is not None and hi is not None
            else (f"at least {_num(lo)}" if lo is not None else f"at most {_num(hi)}")
        )
        raise BadInput(f"{of.name}: must be {bounds}, got {value!r}", field=of.name)


def release_tuple(text: str) -> tuple[int, int] | None:
    """``X.Y`` of a release (a leading "v", a patch level and a suffix such as ".dev0" or "rc1" are accepted) -> (X, Y);
    None when the text is not one."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[.-]?(?:dev|rc|post)\d*)?", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


class Options:
    """Base of every options class: frozen records that check each declared field when made."""

    scope: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for of in option_fields(type(self)):
            _check_value(of, getattr(self, of.name))
        self.check()

    def check(self) -> None:
        """Rules between fields (overridden)."""

    def given(self) -> dict[str, Any]:
        """The fields that differ from their defaults."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS: dict[type, tuple[OptionField, ...]] = {}


def option_fields(cls: type) -> tuple[OptionField, ...]:
    """The declared options of an options class (cached; the declarations never change)."""
    got = _FIELDS.get(cls)
    if got is None:
        got = _FIELDS[cls] = _fields_of(cls)
    return got


# ---------------------------------------------------------------------------------------------------------- engines


@record(frozen=True)
class TransformersOptions(Options):
    """PyTorch + transformers `generate()`."""

    scope: ClassVar[str] = "transformers"
    title: ClassVar[str] = "transformers (--engine transformers)"
    attn: Attn = opt("sdpa", "attention implementation: sdpa, eager or flash")
    transformers_version: str | None = opt(
        None,
        "transformers release X.Y whose generate() is modelled (default: 5.x, whose MoE blocks loop over the routed "
        "experts only; before 4.53 they loop over every expert)",
    )

    def check(self) -> None:
        if self.transformers_version is None:
            return
        v = release_tuple(self.transformers_version)
        if v is None or v < (4, 0):
            raise BadInput(
                f"transformers_version: expected a transformers release (4.0 or later) like 4.51 or 5.2.0, got "
                f"{self.transformers_version!r}",
                field="transformers_version",
            )


@record(frozen=True)
class VllmOptions(Options):
    """`vllm serve` (V1). Figures are per GPU; the GPU itself is the workload's device."""

    scope: ClassVar[str] = "vllm"
    title: ClassVar[str] = "vLLM (--engine vllm)"
    gpu_memory_utilization: float = opt(0.9, "vLLM's fraction of the GPU", lo=0.05, hi=1.0)
    max_num_seqs: int | None = opt(None, "vLLM concurrency (default: vLLM's for the GPU)", lo=1, hi=MAX_BATCH)
    block_size: int = opt(16, "vLLM KV block size in tokens", lo=1, hi=4096)
    tensor_parallel_size: int = opt(1, "vLLM tensor-parallel GPUs (figures are per GPU)", lo=1, hi=1024, short="-tp")
    max_num_batched_tokens: int | None = opt(
        None, "vLLM's profile-run batch (default: vLLM's for the GPU)", lo=1, hi=MAX_TOKENS, parse="tokens"
    )
    enforce_eager: bool = opt(False, "vLLM without CUDA graphs")
    engine_version: str | None = opt(
        None,
        "vLLM release X.Y whose behaviour is modelled (default: the latest modelled for memory; the speed then "
        "follows the 2025 releases its exact measurements ran, and 0.14+ when asked for)",
    )
    flashinfer_sampler: bool = opt(
        True,
        "vLLM <= 0.11 samples top-k/top-p with FlashInfer when it is installed, as in vLLM's Docker image "
        "(--no-flashinfer-sampler: a pip install without it, which sorts the logits)",
    )
    enable_lora: bool = opt(False, "vLLM LoRA serving: adapter slots on every layer")
    max_loras: int = opt(1, "LoRA slots (needs --enable-lora)", lo=1, hi=1024)
    max_lora_rank: int = opt(16, "largest LoRA rank served (needs --enable-lora)", lo=1, hi=1024)
    speculative_model: str | None = opt(
        None, "vLLM draft model for speculative decoding (catalog id, repo or config.json)"
    )
    speculative_method: SpecMethod | None = opt(
        None,
        "speculative decoding method: draft_model (the default with --speculative-model), eagle / eagle3 (an EAGLE "
        "head given as --speculative-model, sharing the target's embedding) or mtp (the checkpoint's own "
        "multi-token-prediction layers)",
    )
    num_speculative_tokens: int | None = opt(
        None, "draft tokens per step (needs --speculative-model or --speculative-method mtp)", lo=1, hi=64
    )
    limit_mm_per_prompt: int | None = opt(
        None, "vLLM --limit-mm-per-prompt: images per prompt (0: text only, no encoder cache)", lo=0, hi=1 << 16
    )
    kv_cache_memory_bytes: int | None = opt(
        None,
        "vLLM --kv-cache-memory: KV cache bytes per GPU (skips gpu_memory_utilization), e.g. 20GiB",
        lo=1,
        hi=1 << 50,
        flag="--kv-cache-memory",
        parse="bytes",
    )
    cpu_offload_gb: float = opt(0.0, "vLLM: GiB of weights per GPU kept in CPU memory", lo=0, hi=1 << 20)

    def check(self) -> None:
        if not self.enable_lora and (self.max_loras, self.max_lora_rank) != (1, 16):
            raise BadInput("max_loras: LoRA slots need --enable-lora", field="max_loras")
        if self.num_speculative_tokens is not None and not (self.speculative_model or self.speculative_method):
            raise BadInput(
                "num_speculative_tokens: needs --speculative-model or --speculative-method mtp",
                field="num_speculative_tokens",
            )
        if self.speculative_method == "mtp" and self.speculative_model:
            raise BadInput(
                "speculative_method: mtp drafts with the target checkpoint's own MTP layers; give no "
                "--speculative-model",
                field="speculative_method",
            )
        if self.speculative_method in ("draft_model", "eagle", "eagle3") and not self.speculative_model:
            raise BadInput(
                f"speculative_method: {self.speculative_method} needs --speculative-model", field="speculative_method"
            )


@record(frozen=True)
class LlamaCppOptions(Options):
    """llama.cpp (`llama-server` / `llama-cli`) and what is built on it."""

    scope: ClassVar[str] = "llama.cpp"
    title: ClassVar[str] = "llama.cpp (--engine llama.cpp)"
    n_gpu_layers: int | None = opt(
        None,
        "layers on the GPU, the output layer counted first (default: all; -1: all)",
        lo=-1,
        hi=1 << 16,
        short="-ngl",
    )
    cache_type_k: str | None = opt(None, "K cache type: f16, bf16, q8_0, q4_0 ... (default: --kv-dtype)", short="-ctk")
    cache_type_v: str | None = opt(None, "V cache type (quantized needs flash attention)", short="-ctv")
    n_ubatch: int = opt(
        512, "n_ubatch: the physical batch (default 512)", lo=1, hi=1 << 20, flag="--ubatch", short="-ub"
    )
    n_batch: int = opt(2048, "n_batch: the logical batch (default 2048)", lo=1, hi=1 << 20)
    flash_attn: bool = opt(True, "flash attention (--no-flash-attn: without)")
    n_cpu_moe: int | None = opt(
        None, "keep the expert tensors of the first N blocks in host memory", lo=0, hi=1 << 16, short="-ncmoe"
    )
    cpu_moe: bool = opt(False, "keep every expert tensor in host memory", short="-cmoe")
    kv_unified: bool = opt(False, "one KV stream shared by all slots", short="-kvu")
    swa_full: bool = opt(False, "sliding-window layers cached at full size (Ollama does this)")
    n_outputs_max: int | None = opt(
        None, "logits rows the graph reserves (default: n_batch; recent llama-server: one per slot)", lo=1, hi=1 << 20
    )
    llama_build: int | None = opt(
        None,
        "llama.cpp build number to model, e.g. 5466 (default: the latest, but with the f32 KQ mask of builds before "
        "9410, the larger compute buffer; the speed: 6000+ runs the 2025 CUDA kernels, before 6272 MoE layers wait for "
        "the host, before 5997 CDNA3 prompts skip the matrix cores; default terms between builds)",
        lo=1,
        hi=1 << 20,
    )
    backend: Backend | None = opt(None, "llama.cpp build (default: from --gpu, else cuda)")
    tensor_split: tuple[float, ...] | None = opt(
        None, "proportions per GPU, e.g. 3,1 (default: by memory)", short="-ts"
    )

    def check(self) -> None:
        if self.n_cpu_moe is not None and self.cpu_moe:
            raise BadInput("n_cpu_moe: give --n-cpu-moe N or --cpu-moe, not both", field="n_cpu_moe")
        if self.backend == "cpu" and self.n_gpu_layers not in (None, 0, -1):
            raise BadInput("n_gpu_layers: the CPU backend has no GPU to offload to", field="n_gpu_layers")
        if self.tensor_split is not None and (any(x < 0 for x in self.tensor_split) or sum(self.tensor_split) <= 0):
            raise BadInput("tensor_split: proportions must be >= 0 with a positive sum", field="tensor_split")


@record(frozen=True)
class MlxOptions(Options):
    """mlx-lm on Apple silicon (unified memory; the limit is the Metal working set)."""

    scope: ClassVar[str] = "mlx"
    title: ClassVar[str] = "MLX (--engine mlx)"


OllamaKvType = Literal["f16", "q8_0", "q4_0"]


@record(frozen=True)
class OllamaOptions(Options):
    """`ollama serve` and a model's Modelfile / API options. Ollama runs GGUF models on llama.cpp: vram turns these
    into the llama.cpp settings Ollama starts it with (`vram.engines.ollama`). `--batch` is OLLAMA_NUM_PARALLEL and
    `--context` is num_ctx (tokens per request)."""

    scope: ClassVar[str] = "ollama"
    title: ClassVar[str] = "Ollama (--engine ollama)"
    ollama_version: str = opt(
        "0.33", "Ollama release X.Y modelled (0.30 and later run llama-server; earlier ones their own runner)"
    )
    context_length: int | None = opt(
        None,
        "OLLAMA_CONTEXT_LENGTH: the server's default num_ctx (used when --context is not given)",
        lo=1,
        hi=MAX_TOKENS,
        parse="tokens",
        flag="--ollama-context-length",
    )
    auto_context: bool = opt(
        False, "num_ctx not set: OLLAMA_CONTEXT_LENGTH, else Ollama's default by total VRAM", cli=False
    )
    num_batch: int | None = opt(
        None, "num_batch, llama.cpp's -b/-ub (default: Ollama's own: by context on 0.30+, else 512)", lo=1, hi=1 << 20
    )
    flash_attn: bool = opt(True, "OLLAMA_FLASH_ATTENTION (default: auto, on where the GPU supports it)")
    kv_cache_type: OllamaKvType = opt("f16", "OLLAMA_KV_CACHE_TYPE: f16, q8_0 or q4_0 (both caches)")
    num_gpu: int | None = opt(None, "num_gpu: layers on the GPU (default: as many as fit)", lo=0, hi=1 << 16)
    sched_spread: bool = opt(
        False, "OLLAMA_SCHED_SPREAD: spread a model over every GPU even when one holds it", flag="--ollama-sched-spread"
    )
    backend: Backend | None = opt(None, "llama.cpp build Ollama ships (default: from --gpu, else cuda)")

    def check(self) -> None:
        if version_tuple(self.ollama_version)[:2] > OLLAMA_LATEST_MODELLED:
            raise BadInput(
                f"ollama_version: {self.ollama_version} is newer than the releases modelled (up to "
                f"{'.'.join(map(str, OLLAMA_LATEST_MODELLED))}); give --ollama-version 0.33 to size it as that release",
                field="ollama_version",
            )


OLLAMA_LATEST_MODELLED = (0, 33)  # the newest Ollama release whose code the ollama profile follows


def version_tuple(text: str, field: str = "ollama_version") -> tuple[int, int, int]:
    """(major, minor, patch) of a release like "0.33", "v0.12.6" or "0.15.5" (patch 0 when not given)."""
    parts = text.strip().lstrip("v").split(".")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise BadInput(f"{field}: expected a release like 0.33, got {text!r}", field=field) from None
    if not 1 <= len(nums) <= 3:
        raise BadInput(f"{field}: expected a release like 0.33, got {text!r}", field=field)
    nums += [0] * (3 - len(nums))
    return nums[0], nums[1], nums[2]


EngineOptions = TransformersOptions | VllmOptions | LlamaCppOptions | OllamaOptions | MlxOptions
ENGINE_OPTIONS: dict[str, type[Options]] = {
    "transformers": TransformersOptions,
    "vllm": VllmOptions,
    "llama.cpp": LlamaCppOptions,
    "ollama": OllamaOptions,
    "mlx": MlxOptions,
}


# ---------------------------------------------------------------------------------------------------------- families


@record(frozen=True)
class VisionOptions(Options):
    """Images given to a vision-language model."""

    scope: ClassVar[str] = "vision"
    title: ClassVar[str] = "vision-language models"
    width: int = opt(1024, "image width in pixels", lo=1, hi=1 << 15)
    height: int = opt(1024, "image height in pixels", lo=1, hi=1 << 15)
    images: int = opt(1, "images per prompt (0: text only)", lo=0, hi=1024)


@record(frozen=True)
class ImageOptions(Options):
    """What a diffusion model is asked to draw."""

    scope: ClassVar[str] = "image"
    title: ClassVar[str] = "image generation (diffusion models)"
    width: int = opt(1024, "image width in pixels", lo=1, hi=1 << 15)
    height: int = opt(1024, "image height in pixels", lo=1, hi=1 << 15)
    images: int = opt(1, "images per prompt", lo=1, hi=1024)
    steps: int | None = opt(None, "denoising steps (time only: each step frees its temporaries)", lo=1, hi=10_000)
    offload_text_encoders: bool = opt(False, "text encoders on the CPU except while encoding")


@record(frozen=True)
class SpeechOptions(Options):
    """What a speech-recognition model is asked to transcribe."""

    scope: ClassVar[str] = "speech"
    title: ClassVar[str] = "speech recognition (Whisper)"
    beams: int = opt(1, "beam size", lo=1, hi=64)
    audio_s: float | None = opt(
        None, "seconds of audio (time only: read in 30 s windows)", lo=0.1, hi=1e7, flag="--audio-seconds"
    )


FamilyOptions = VisionOptions | ImageOptions | SpeechOptions
FAMILY_OPTIONS: dict[str, type[FamilyOptions]] = {
    "vlm": VisionOptions,
    "diffusion": ImageOptions,
    "speech": SpeechOptions,
}
ALL_OPTIONS: tuple[type[Options], ...] = (*ENGINE_OPTIONS.values(), *FAMILY_OPTIONS.values())


# ---------------------------------------------------------------------------------------------------------- device


@record(frozen=True)
class Device:
    """A GPU (or Apple chip) as the engine sees it. `usable_bytes`: what the runtime can allocate (torch-visible
    memory for CUDA, the Metal working-set limit on a Mac); `memory_bytes`: the spec sheet's figure."""

    name: str
    arch: str
    memory_bytes: int
    usable_bytes: int
    backend: str = "cuda"
    vendor: str = "nvidia"
    compute_units: int | None = None  # SMs (NVIDIA) / CUs (AMD); None: not known
    interconnect: str | None = None  # GPU-to-GPU path (nvlink, pcie, ...); None: not known
    family: str | None = None  # the GPU generation (ampere, ada, hopper, blackwell ...); None: not known

    def __post_init__(self) -> None:
        for n in ("memory_bytes", "usable_bytes"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise BadInput(f"{n}: a device needs a positive memory size, got {v!r}", field="gpu")


# ---------------------------------------------------------------------------------------------------------- training

Method = Literal["full", "lora", "qlora"]
Precision = Literal["fp32", "bf16", "fp16", "mixed"]
Optimizer = Literal["adamw", "adamw-fused", "adamw-8bit", "sgd", "sgd-momentum", "adafactor", "lion"]
Fsdp = Literal["full", "hybrid", "grad-op"]


@record(frozen=True)
class TrainWorkload(Options):
    """One training step in PyTorch + transformers (+ peft for LoRA, DeepSpeed ZeRO or FSDP over several GPUs)."""

    scope: ClassVar[str] = "training"
    title: ClassVar[str] = "training (--train)"
    method: Method = opt("full", "full fine-tune, LoRA or QLoRA (4-bit base)")
    precision: Precision = opt("bf16", "bf16/fp16: everything in half precision; mixed: fp32 master weights + autocast")
    optimizer: Optimizer = opt("adamw", "optimizer whose states are kept")
    batch: int = opt(1, "micro-batch per GPU", lo=1, hi=MAX_BATCH, cli=False)
    seq: int = opt(2048, "training sequence length", lo=1, hi=MAX_TOKENS, cli=False)
    attn: Attn = opt("sdpa", "attention implementation", cli=False)
    grad_checkpointing: bool = opt(False, "recompute activations in the backward pass (gradient checkpointing)")
    lora_rank: int = opt(16, "LoRA rank", lo=1, hi=65536)
    lora_alpha: float | None = opt(None, "LoRA alpha (no effect on memory)", lo=0)
    lora_targets: str = opt("all-linear", "all-linear, or comma-separated module names (q_proj,v_proj,...)")
    gpus: int = opt(1, "data-parallel GPUs", lo=1, hi=1 << 16)
    zero: int = opt(0, "DeepSpeed ZeRO stage (0-3)", lo=0, hi=3)
    fsdp: Fsdp | None = opt(None, "FSDP sharding strategy")
    gpus_per_node: int = opt(8, "GPUs per node (hybrid sharding)", lo=1, hi=1024)
    offload_optimizer: bool = opt(False, "optimizer states in CPU memory")
    grad_accum: int = opt(1, "gradient accumulation steps", lo=1, hi=1 << 16)
    device: Device | None = opt(None, "the GPU (runtime overheads by architecture)", cli=False)

    def check(self) -> None:
        if self.method in ("lora", "qlora") and not self.lora_targets.strip():
            raise BadInput("lora_targets: name the modules LoRA adapts (or all-linear)", field="lora_targets")
        if self.method == "qlora" and self.precision == "fp32":
            raise BadInput(
                "precision: QLoRA computes in bf16/fp16 over a 4-bit base; fp32 does not apply", field="precision"
            )
        if self.zero and self.fsdp:
            raise BadInput("zero/fsdp: choose DeepSpeed ZeRO or FSDP, not both", field="fsdp")
        if (self.zero or self.fsdp) and self.gpus < 2:
            raise BadInput("gpus: sharding (ZeRO / FSDP) needs at least 2 GPUs", field="gpus")

    @property
    def arch(self) -> str:
        return self.device.arch if self.device is not None else DEFAULT_ARCH

    def validate(self) -> TrainWorkload:
        """Checked when made; kept for callers that validate explicitly."""
        return self


# ---------------------------------------------------------------------------------------------------------- workload

if TYPE_CHECKING:
    OptT = TypeVar("OptT", bound=Options)


@record(frozen=True)
class Workload:
    """What is run. Token counts are per sequence; `batch` sequences run together. `options` chooses the engine
    (and carries its settings); `family` carries image / speech settings for those models; `devices` are the GPUs
    the engine sizes itself from (none: said in the assumptions, and an error for engines that need one)."""

    batch: int = opt(1, "sequences at once", lo=1, hi=MAX_BATCH, short="-b")
    context: int = opt(
        4096, "prompt tokens per sequence, e.g. 4096 or 32k", lo=1, hi=MAX_TOKENS, short="-c", parse="tokens"
    )
    new_tokens: int = opt(16, "tokens generated per sequence", lo=0, hi=MAX_TOKENS, short="-n", parse="tokens")
    dtype: str = opt("bfloat16", "weights/activations dtype: bf16, fp16, fp32")
    quant: str | None = opt(None, "weight format: q4_k_m, gptq-4bit, awq, nf4, fp8, int8, mlx-4bit ...", short="-q")
    kv_dtype: str | None = opt(None, "KV cache dtype: auto (= --dtype), bf16, fp16, fp8, int8, q4")
    options: EngineOptions = field(default_factory=TransformersOptions, metadata={"cli": False})
    family: FamilyOptions | None = opt(None, "image / speech settings", cli=False)
    devices: tuple[Device, ...] = opt((), "the GPUs", cli=False)

    @property
    def engine(self) -> str:
        return self.options.scope

    @property
    def device(self) -> Device | None:
        return self.devices[0] if self.devices else None

    @property
    def arch(self) -> str:
        """The device's architecture, else DEFAULT_ARCH (callers say so in their assumptions)."""
        return self.devices[0].arch if self.devices else DEFAULT_ARCH

    def _typed(self, cls: type[OptT]) -> OptT:
        if not isinstance(self.options, cls):
            raise BadInput(
                f"engine: this needs {cls.title.split(' (')[0]} options, the workload is for {self.engine}",
                field="engine",
            )
        return self.options

    @property
    def vllm(self) -> VllmOptions:
        return self._typed(VllmOptions)

    @property
    def llama(self) -> LlamaCppOptions:
        return self._typed(LlamaCppOptions)

    @property
    def attn(self) -> str:
        """transformers' attention implementation ("sdpa" for the engines that have no such choice)."""
        return self.options.attn if isinstance(self.options, TransformersOptions) else "sdpa"

    def family_options(self, cls: type[OptT]) -> OptT:
        """The family options of that class (its defaults when none were given)."""
        fam = self.family
        if fam is None:
            return cls()
        if not isinstance(fam, cls):
            raise BadInput(
                f"{next(iter(fam.given()), 'family')}: {fam.title} options do not apply to this model",
                field=next(iter(fam.given()), "family"),
            )
        return fam

    @classmethod
    def from_flat(
        cls, engine: str = "transformers", kind: str = "llm", devices: tuple[Device, ...] = (), **values: Any
    ) -> Workload:
        """A Workload from one flat mapping of names (an adapter's: a parsed log, an MCP call): the common fields,
        the engine's options and the family's. A name that belongs to another engine or family is an error."""
        eng_cls = type(engine_options(engine))
        fam_cls = FAMILY_OPTIONS.get(kind)
        common_names = {f.name for f in option_fields(cls) if f.cli}
        eng_names = {f.name for f in option_fields(eng_cls)}
        fam_names = {f.name for f in option_fields(fam_cls)} if fam_cls else set()
        common: dict[str, Any] = {}
        eng: dict[str, Any] = {}
        fam: dict[str, Any] = {}
        for name, value in values.items():
            if name in common_names:
                common[name] = value
            elif name in eng_names:
                eng[name] = value
            elif name in fam_names:
                fam[name] = value
            elif value is None:
                continue  # not given
            else:
                owners = ", ".join(c.title for c in owner_of(name)) or "no engine"
                raise BadInput(f"{name}: not an option of {eng_cls.title} (an option of {owners})", field=name)
        family = fam_cls(**fam) if fam_cls and fam else None
        return cls(**common, options=eng_cls(**eng), family=family, devices=devices)

    def with_options(self, **changes: Any) -> Workload:
        """A copy with some engine options changed."""
        return replace(self, options=replace(self.options, **changes))

    def validate(self) -> Workload:
        """Check the common fields and normalise dtypes: an 8/4-bit "dtype" is a weight format (compute stays
        bf16). Engine- and family-specific rules are checked by the estimators, which know the model."""
        for name, value, lo, hi in (
            ("batch", self.batch, 1, MAX_BATCH),
            ("context", self.context, 1, MAX_TOKENS),
            ("new_tokens", self.new_tokens, 0, MAX_TOKENS),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadInput(f"{name}: expected a whole number, got {value!r}", field=name)
            if value < lo:
                raise BadInput(f"{name}: must be at least {lo}, got {value}", field=name)
            if value > hi:
                raise BadInput(f"{name}: {value:,} is beyond what any model supports (max {hi:,})", field=name)
        if not isinstance(self.options, (TransformersOptions, VllmOptions, LlamaCppOptions, OllamaOptions, MlxOptions)):
            raise BadInput(f"engine: expected engine options, got {self.options!r}", field="engine")
        if self.family is not None and not isinstance(self.family, (VisionOptions, ImageOptions, SpeechOptions)):
            raise BadInput(f"family: expected image or speech options, got {self.family!r}", field="family")
        if not all(isinstance(d, Device) for d in self.devices):
            raise BadInput("gpu: devices must be Device objects", field="gpu")
        dt = normalize_dtype(self.dtype)
        kv = normalize_dtype(self.kv_dtype, field="kv_dtype") if self.kv_dtype else None
        quant = self.quant
        if dt in ("float8", "int8", "int4"):
            if quant is None:
                quant = {"float8": "fp8", "int8": "int8", "int4": "int4"}[dt]
            dt = "bfloat16"
        if self.engine in ("transformers", "vllm"):
            quant_scheme(quant, dtype=dt)
            if quant is not None and quant.startswith("mlx-"):
                raise BadInput(f"quant: {quant} is MLX's format (use --engine mlx)", field="quant")
        if isinstance(self.options, LlamaCppOptions):
            ts = self.options.tensor_split
            n_dev = max(1, len(self.devices))
            if ts is not None and len(ts) != n_dev:
                raise BadInput(f"tensor_split: {len(ts)} proportions for {n_dev} GPU(s)", field="tensor_split")
        return replace(self, dtype=dt, kv_dtype=kv, quant=quant)

    def to_dict(self) -> dict[str, Any]:
        """The request as asked: common fields, the engine and its options, the family options, the devices."""
        out: dict[str, Any] = {
            "batch": self.batch,
            "context": self.context,
            "new_tokens": self.new_tokens,
            "dtype": self.dtype,
            "quant": self.quant,
            "kv_dtype": self.kv_dtype,
            "engine": self.engine,
            "options": self.options.to_dict(),
        }
        if self.family is not None:
            out["family"] = {"kind": self.family.scope, **self.family.to_dict()}
        if self.devices:
            out["devices"] = [asdict(d) for d in self.devices]
        return out


def engine_options(engine: str, **values: Any) -> EngineOptions:
    """The options object for an engine name (`llamacpp` is accepted for llama.cpp)."""
    name = "llama.cpp" if engine == "llamacpp" else engine
    cls = ENGINE_OPTIONS.get(name)
    if cls is None:
        raise BadInput(f"engine: unknown engine {engine!r} (use {', '.join(ENGINES)})", field="engine")
    return cls(**values)  # type: ignore[return-value]


def options_from_mapping(cls: type[OptT], values: Any, where: str = "options") -> OptT:
    """An options object from a mapping (a fleet file's or an API body's `options`): unknown names are an error
    naming them and the options they could belong to."""
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise BadInput(f"{where}: expected a mapping of option names to values", field=where)
    known = {f.name for f in option_fields(cls)}
    for name in values:
        if name not in known:
            others = [c.title for c in owner_of(str(name))]
            hint = f" (an option of {', '.join(others)})" if others else ""
            raise BadInput(f"{where}.{name}: not an option of {cls.title}{hint}", field=str(name))
    return cls(**values)


def owner_of(name: str) -> list[type[Options]]:
    """The options classes that declare a field of this name."""
    return [cls for cls in ALL_OPTIONS if any(f.name == name for f in option_fields(cls))]
