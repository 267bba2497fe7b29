"""Shared option parsing for CLI commands: workload options and output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import BadInput
from ..units import parse_tokens


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


def add_workload_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workload")
    g.add_argument("--engine", default="transformers", choices=["transformers", "vllm", "llama.cpp", "llamacpp", "mlx"],
                   help="inference engine whose allocation is modelled (default: transformers)")
    g.add_argument("--batch", "-b", type=positive_int("batch"), default=1, help="sequences at once (default 1)")
    g.add_argument("--context", "-c", type=tokens_arg("context"), default=None,
                   help="prompt tokens per sequence, e.g. 4096 or 32k (default 4096)")
    g.add_argument("--new-tokens", "-n", type=tokens_arg("new_tokens"), default=16,
                   help="tokens generated per sequence (default 16)")
    g.add_argument("--dtype", default="bfloat16", help="weights/activations dtype: bf16, fp16, fp32 (default bf16)")
    g.add_argument("--quant", "-q", default=None, help="weight format: q4_k_m, gptq-4bit, awq, nf4, fp8, int8 ...")
    g.add_argument("--kv-dtype", default=None,
                   help="KV cache dtype: auto (= --dtype), bf16, fp16, fp8, int8, q4 (default: auto)")
    g.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash"], help="attention implementation")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's fraction of the GPU")
    g.add_argument("--max-num-seqs", type=positive_int("max_num_seqs"), default=None, help="vLLM concurrency")


def workload_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(engine=args.engine, batch=args.batch, context=args.context if args.context is not None else 4096,
                new_tokens=args.new_tokens, dtype=args.dtype, quant=args.quant,
                kv_dtype=None if (args.kv_dtype or "").lower() == "auto" else args.kv_dtype, attn=args.attn,
                gpu_memory_utilization=args.gpu_memory_utilization,
                max_num_seqs=args.max_num_seqs)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")
