"""`vram estimate MODEL ...`: inference or (--train) training memory, as a table or --json."""

from __future__ import annotations

import argparse

from ._common import add_request_options, engine_name, model_kind, print_json, train_from_args, workload_from_args

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "estimate",
        help="memory needed to run or train a model",
        description="Estimate GPU memory for inference (default) or training (--train).",
    )
    p.add_argument("model", help="catalog id or alias, Hub repo id, config.json, model folder, .gguf or .safetensors")
    add_request_options(p)
    h = p.add_argument_group("host memory (llama.cpp)")
    h.add_argument("--ram", default=None, help="system RAM, e.g. 32GiB: checks what llama.cpp keeps in host memory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = engine_name(args)
    devices: tuple[Any, ...] = ()
    count = 1
    if args.gpu is not None:
        from ..devices import devices_for

        devices, count = devices_for(args.gpu, "transformers" if args.train else engine)
    if args.train:
        from ..training import estimate_training

        est = estimate_training(args.model, train_from_args(args, devices[0] if devices else None))
    else:
        from ..errors import BadInput
        from ..inference import estimate

        changes: dict[str, Any] = {}
        if engine == "vllm" and count > 1:
            tp = args.tensor_parallel_size
            if tp is not None and tp != count:
                raise BadInput(
                    f"tensor_parallel_size: {tp} contradicts --gpu {args.gpu} ({count} GPUs)",
                    field="tensor_parallel_size",
                )
            changes["tensor_parallel_size"] = count
        wl = workload_from_args(args, kind=model_kind(args.model), devices=devices, engine_changes=changes)
        est = estimate(args.model, wl)
    host = None
    if args.ram is not None:
        from ..errors import BadInput
        from ..llama_offload import host_memory_check, ram_setup
        from ..units import parse_bytes

        if args.train or est.engine not in ("llama.cpp", "ollama"):
            raise BadInput("ram: --ram checks llama.cpp's host memory (add --engine llama.cpp or ollama)", field="ram")
        host = host_memory_check(est, ram_setup(None, parse_bytes(args.ram, field="ram")))
    if args.json:
        print_json({**est.to_dict(), **({"host_memory": host} if host is not None else {})})
    else:
        from ..report import print_estimate

        print_estimate(est, host_memory=host)
    return 0
