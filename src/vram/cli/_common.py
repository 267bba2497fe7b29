"""Request options for every CLI command, derived from the option declarations in `vram.request`: one flag per
declared field, grouped by engine / family / training, and one function that turns the parsed flags back into a
typed request. A flag given for another engine or family than the one chosen is an error naming it."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import BadInput
from ..request import (
    ALL_OPTIONS,
    ENGINE_OPTIONS,
    ENGINES,
    FAMILY_OPTIONS,
    Device,
    OptionField,
    Options,
    TrainWorkload,
    Workload,
    option_fields,
)
from ..units import parse_bytes, parse_tokens

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any

ENGINE_CHOICES = [*ENGINES, "llamacpp"]


def tokens_arg(field: str) -> Any:
    def parse(text: str) -> int:
        try:
            return parse_tokens(text, field=field)
        except BadInput as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse


def positive_int(field: str) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{field}: expected a whole number, got {text!r}") from exc
        return v

    return parse


def _converter(of: OptionField) -> Any:
    """argparse `type=` for a declared field: whole numbers, numbers, token counts (32k), sizes (24GiB), lists."""

    def parse(text: str) -> Any:
        try:
            if of.parse == "tokens":
                return parse_tokens(text, field=of.name)
            if of.parse == "bytes":
                return parse_bytes(text, field=of.name)
            if of.kind is int:
                return int(text)
            if of.kind is float:
                return float(text)
            if of.kind is tuple:
                return tuple(float(x) for x in text.split(","))
        except BadInput as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        except ValueError as exc:
            what = {int: "a whole number", float: "a number", tuple: "numbers like 3,1"}.get(of.kind, "a value")
            raise argparse.ArgumentTypeError(f"{of.name}: expected {what}, got {text!r}") from exc
        return text

    return parse


def _add_field(g: Any, of: OptionField, seen: set[str]) -> None:
    if not of.cli or of.name in seen:
        return
    seen.add(of.name)
    if of.kind is bool:
        if of.default:
            flag = "--no-" + of.flag.removeprefix("--")
            g.add_argument(flag, dest=of.name, action="store_const", const=False, default=None, help=of.help)
        else:
            names = [of.flag, *([of.short] if of.short else [])]
            g.add_argument(*names, dest=of.name, action="store_const", const=True, default=None, help=of.help)
        return
    names = [of.flag, *([of.short] if of.short else [])]
    default = "" if of.default is None else f" (default {of.default})"
    metavar = {"tokens": "TOKENS", "bytes": "SIZE"}.get(of.parse or "") or {int: "N", float: "X", tuple: "A,B,..."}.get(
        of.kind, "NAME"
    )
    kwargs: dict[str, Any] = {"dest": of.name, "default": None, "help": of.help + default}
    if of.choices is None:
        kwargs["metavar"] = metavar
    if of.choices is not None:
        kwargs["choices"] = list(of.choices)
    elif of.kind is not str:
        kwargs["type"] = _converter(of)
    g.add_argument(*names, **kwargs)


def add_request_options(p: argparse.ArgumentParser, *, gpu: str | None = "optional", training: bool = True) -> None:
    """Every request flag: the common workload, `--gpu` (optional / required / None for commands that try every
    GPU), each engine's and family's options, and the training options (with `--train`)."""
    seen: set[str] = set()
    g = p.add_argument_group("workload")
    g.add_argument(
        "--engine",
        default="transformers",
        choices=ENGINE_CHOICES,
        help="inference engine whose allocation is modelled (default: transformers)",
    )
    for of in option_fields(Workload):
        _add_field(g, of, seen)
    if gpu is not None:
        g.add_argument(
            "--gpu",
            "-g",
            required=gpu == "required",
            default=None,
            help="GPU spec: h100-sxm, rtx-4090, 2xh100-sxm (vLLM: sets --tensor-parallel-size), "
            "rtx-4090+rtx-3090 (llama.cpp), m4-pro-48gb, a GPU spec file (.json), local",
        )
    for cls in ALL_OPTIONS:
        fields = [of for of in option_fields(cls) if of.cli and of.name not in seen]
        if fields:
            grp = p.add_argument_group(cls.title)
            for of in fields:
                _add_field(grp, of, seen)
    if training:
        t = p.add_argument_group("training (--train)")
        t.add_argument("--train", action="store_true", help="a training step instead of inference")
        t.add_argument(
            "--seq",
            type=tokens_arg("seq"),
            default=None,
            help="training sequence length (default: --context, else 2048)",
        )
        for of in option_fields(TrainWorkload):
            _add_field(t, of, seen)


def _given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {
        of.name: getattr(args, of.name)
        for of in option_fields(cls)
        if of.cli and getattr(args, of.name, None) is not None
    }


def _refuse(name: str, why: str) -> BadInput:
    """`--flag` given for an engine, family or mode it does not belong to: the error names its owners."""
    declared: tuple[type[Options], ...] = (*ALL_OPTIONS, TrainWorkload)
    owners = [(cls, of) for cls in declared for of in option_fields(cls) if of.name == name]
    flag = owners[0][1].flag if owners else "--" + name.replace("_", "-")
    where = " / ".join(cls.title for cls, of in owners if of.cli) or "another engine"
    return BadInput(f"{name}: {flag} is an option of {where}; {why}", field=name)


def engine_name(args: argparse.Namespace) -> str:
    return "llama.cpp" if args.engine == "llamacpp" else str(args.engine)


def model_kind(model: str) -> str:
    """The model's kind (llm, diffusion, speech, vlm, embedding), resolving it once (cached)."""
    from ..resolver import resolve_model

    rm = resolve_model(model)
    return rm.entry.kind if rm.entry is not None else "llm"


def build_options(args: argparse.Namespace, kind: str, *, train: bool = False) -> tuple[Options, Options | None]:
    """(engine options, family options) from the flags; a flag of another engine or family is an error."""
    engine = engine_name(args)
    eng_cls = ENGINE_OPTIONS[engine]
    fam_cls = FAMILY_OPTIONS.get(kind)
    allowed = {of.name for of in option_fields(eng_cls)} | (
        {of.name for of in option_fields(fam_cls)} if fam_cls else set()
    )
    if train:
        allowed = {"attn"}
    for cls in ALL_OPTIONS:
        for name in _given(args, cls):
            if name not in allowed:
                why = (
                    "a training step runs in transformers"
                    if train
                    else (
                        f"it does not apply to {kind} models"
                        if cls in FAMILY_OPTIONS.values()
                        else f"it does not apply to --engine {engine}"
                    )
                )
                raise _refuse(name, why)
    if not train:
        for name in _given(args, TrainWorkload):
            raise _refuse(name, "add --train")
    eng = eng_cls(**_given(args, eng_cls))
    fam_values = _given(args, fam_cls) if fam_cls else {}
    fam = fam_cls(**fam_values) if fam_cls and fam_values else None
    return eng, fam


def workload_from_args(
    args: argparse.Namespace,
    *,
    kind: str = "llm",
    devices: tuple[Device, ...] = (),
    engine_changes: dict[str, Any] | None = None,
) -> Workload:
    """The inference Workload the flags ask for (validated)."""
    eng, fam = build_options(args, kind)
    if engine_name(args) == "ollama" and getattr(args, "context", None) is None:
        # no num_ctx asked: OLLAMA_CONTEXT_LENGTH, else Ollama's default for the GPUs' memory
        engine_changes = {**(engine_changes or {}), "auto_context": True}
    if engine_changes:
        eng = type(eng)(**{**eng.given(), **engine_changes})
    common = _given(args, Workload)
    if str(common.get("kv_dtype", "")).lower() == "auto":
        common["kv_dtype"] = None
    return Workload(**common, options=eng, family=fam, devices=devices).validate()  # type: ignore[arg-type]


def train_from_args(args: argparse.Namespace, device: Device | None = None, gpus: int | None = None) -> TrainWorkload:
    """The training step the flags ask for (`--seq`, else `--context`, else 2048); `gpus`: the data-parallel GPUs
    when the command names them (`vram fit --gpu 4xh100-sxm`) and --gpus does not."""
    if engine_name(args) != "transformers":
        raise BadInput(
            "engine: a training step is estimated for PyTorch + transformers (drop --engine)", field="engine"
        )
    build_options(args, "llm", train=True)
    for name in ("new_tokens", "quant", "kv_dtype"):
        if getattr(args, name, None) is not None:
            raise BadInput(
                f"{name}: --{name.replace('_', '-')} is an inference option; it does not apply to --train", field=name
            )
    if args.dtype is not None:
        raise BadInput("dtype: a training step's dtypes come from --precision (fp32, bf16, fp16, mixed)", field="dtype")
    seq = args.seq if args.seq is not None else (args.context or 2048)
    extra = {"attn": args.attn} if args.attn is not None else {}
    values = _given(args, TrainWorkload)
    if gpus is not None:
        values.setdefault("gpus", gpus)
    return TrainWorkload(**values, batch=args.batch or 1, seq=seq, device=device, **extra)


def add_id_column(table: Any, title: str, ids: Any) -> None:
    """A table column of catalog ids: never wrapped or cut short (the id is what one types next), the other columns
    give way on a narrow terminal."""
    table.add_column(title, no_wrap=True, min_width=max((len(str(i)) for i in ids), default=len(title)))


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")
