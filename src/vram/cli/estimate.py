"""`vram estimate MODEL ...`: inference or (--train) training memory, as a table or --json."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_workload_options, positive_int, print_json, tokens_arg, workload_kwargs


def register(sub: Any) -> None:
    p = sub.add_parser("estimate", help="memory needed to run or train a model",
                       description="Estimate GPU memory for inference (default) or training (--train).")
    p.add_argument("model", help="catalog id or alias, Hub repo id, config.json, model folder, .gguf or .safetensors")
    add_workload_options(p)
    t = p.add_argument_group("training (--train)")
    t.add_argument("--train", action="store_true", help="estimate a training step instead of inference")
    t.add_argument("--method", default="full", choices=["full", "lora", "qlora"])
    t.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16", "mixed"],
                   help="bf16/fp16: everything in half precision; mixed: fp32 master weights + autocast")
    t.add_argument("--optimizer", default="adamw",
                   choices=["adamw", "adamw-fused", "adamw-8bit", "sgd", "sgd-momentum", "adafactor", "lion"])
    t.add_argument("--seq", type=tokens_arg("seq"), default=None, help="training sequence length (default 2048)")
    t.add_argument("--grad-checkpointing", action="store_true")
    t.add_argument("--lora-rank", type=positive_int("lora_rank"), default=16)
    t.add_argument("--lora-alpha", type=float, default=None)
    t.add_argument("--lora-targets", default="all-linear",
                   help="all-linear, or comma-separated module names (q_proj,v_proj,...)")
    t.add_argument("--gpus", type=positive_int("gpus"), default=1, help="data-parallel GPUs")
    t.add_argument("--zero", type=int, default=0, choices=[0, 1, 2, 3], help="DeepSpeed ZeRO stage")
    t.add_argument("--fsdp", default=None, choices=["full", "hybrid", "grad-op"], help="FSDP sharding strategy")
    t.add_argument("--gpus-per-node", type=positive_int("gpus_per_node"), default=8)
    t.add_argument("--offload-optimizer", action="store_true", help="optimizer states in CPU memory")
    t.add_argument("--grad-accum", type=positive_int("grad_accum"), default=1, help="gradient accumulation steps")
    add_vllm_options(p)
    add_source_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def add_vllm_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("GPU and vLLM (--engine vllm)")
    g.add_argument("--tensor-parallel-size", "-tp", type=positive_int("tensor_parallel_size"), default=None,
                   help="vLLM tensor-parallel GPUs (figures are per GPU)")
    g.add_argument("--max-num-batched-tokens", type=positive_int("max_num_batched_tokens"), default=None,
                   help="vLLM's profile-run batch (default: vLLM's for the GPU)")
    g.add_argument("--enforce-eager", action="store_true", help="vLLM without CUDA graphs")
    g.add_argument("--block-size", type=positive_int("block_size"), default=None,
                   help="vLLM KV block size in tokens (default 16)")
    g.add_argument("--engine-version", default=None,
                   help="vLLM release X.Y whose behaviour is modelled (default: the latest modelled)")
    g.add_argument("--enable-lora", action="store_true", help="vLLM LoRA serving: adapter slots on every layer")
    g.add_argument("--max-loras", type=positive_int("max_loras"), default=None, help="LoRA slots (default 1)")
    g.add_argument("--max-lora-rank", type=positive_int("max_lora_rank"), default=None,
                   help="largest LoRA rank served (default 16)")
    g.add_argument("--speculative-model", default=None,
                   help="vLLM draft model for speculative decoding (catalog id, repo or config.json)")
    g.add_argument("--num-speculative-tokens", type=positive_int("num_speculative_tokens"), default=None,
                   help="draft tokens per step")
    g.add_argument("--kv-cache-memory", type=positive_int("kv_cache_memory_bytes"), default=None,
                   help="vLLM --kv-cache-memory: KV cache bytes per GPU (skips gpu_memory_utilization)")
    g.add_argument("--cpu-offload-gb", type=float, default=None, help="vLLM: GiB of weights per GPU kept in CPU memory")


def gpu_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """--gpu, --tensor-parallel-size and the other vLLM options as Workload fields."""
    from ..errors import BadInput

    out: dict[str, Any] = dict(max_num_batched_tokens=args.max_num_batched_tokens, enforce_eager=args.enforce_eager,
                               engine_version=args.engine_version, enable_lora=args.enable_lora,
                               speculative_model=args.speculative_model,
                               num_speculative_tokens=args.num_speculative_tokens,
                               kv_cache_memory_bytes=args.kv_cache_memory)
    if args.max_loras is not None:
        out["max_loras"] = args.max_loras
    if args.max_lora_rank is not None:
        out["max_lora_rank"] = args.max_lora_rank
    if args.cpu_offload_gb is not None:
        out["cpu_offload_gb"] = args.cpu_offload_gb
    if args.block_size is not None:
        if args.engine != "vllm":
            raise BadInput("block_size: a vLLM option; it does not apply to this engine (use --engine vllm)",
                           field="block_size")
        out["block_size"] = args.block_size
    tp = args.tensor_parallel_size
    if args.gpu is not None and args.engine not in ("vllm", "llama.cpp", "llamacpp"):
        raise BadInput("gpu: --gpu applies to --engine vllm and --engine llama.cpp (use `vram fit` to check a GPU)",
                       field="gpu")
    if args.gpu is not None and args.engine == "vllm":
        from ..fit import canonical_arch, parse_gpu_spec

        choice = parse_gpu_spec(args.gpu)
        if choice.count > 1:
            if tp is not None and tp != choice.count:
                raise BadInput(f"tensor_parallel_size: {tp} contradicts --gpu {args.gpu} ({choice.count} GPUs)",
                               field="tensor_parallel_size")
            tp = choice.count
        from ..engines.vllm import visible_memory_bytes

        out["gpu_arch"] = canonical_arch(choice.gpu)
        out["gpu_memory_bytes"] = visible_memory_bytes(choice.gpu)
        out["gpu_name"] = choice.gpu.name
    out["tensor_parallel_size"] = tp if tp is not None else 1
    return out


def add_source_options(p: argparse.ArgumentParser) -> None:
    """llama.cpp and non-LLM family options (image size, beams ...)."""
    g = p.add_argument_group("llama.cpp (--engine llama.cpp)")
    g.add_argument("--n-gpu-layers", "-ngl", type=int, default=None,
                   help="layers on the GPU, the output layer counted first (default: all)")
    g.add_argument("--cache-type-k", "-ctk", default=None, help="K cache type: f16, bf16, q8_0, q4_0 ...")
    g.add_argument("--cache-type-v", "-ctv", default=None, help="V cache type (quantized needs flash attention)")
    g.add_argument("--ubatch", "-ub", type=positive_int("ubatch"), default=None, help="n_ubatch (default 512)")
    g.add_argument("--n-batch", type=positive_int("n_batch"), default=None, help="n_batch (default 2048)")
    g.add_argument("--no-flash-attn", action="store_true", help="llama.cpp without flash attention")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--n-cpu-moe", "-ncmoe", type=positive_int("n_cpu_moe"), default=None,
                   help="keep the expert tensors of the first N blocks in host memory")
    m.add_argument("--cpu-moe", "-cmoe", action="store_true", help="keep every expert tensor in host memory")
    g.add_argument("--kv-unified", "-kvu", action="store_true", help="one KV stream shared by all slots")
    g.add_argument("--swa-full", action="store_true", help="sliding-window layers cached at full size (Ollama)")
    g.add_argument("--n-outputs-max", type=positive_int("n_outputs_max"), default=None,
                   help="logits rows the graph reserves (default: n_batch; recent llama-server: one per slot)")
    g.add_argument("--llama-build", type=positive_int("llama_build"), default=None,
                   help="llama.cpp build number to model, e.g. 5466 (default: the latest)")
    g.add_argument("--backend", default=None, choices=["cuda", "rocm", "vulkan", "metal", "cpu"],
                   help="llama.cpp build (default: from --gpu, else cuda)")
    g.add_argument("--tensor-split", "-ts", default=None, help="proportions per GPU, e.g. 3,1 (default: by memory)")
    g.add_argument("--gpu", "-g", default=None,
                   help="GPU spec: vLLM sizes itself from it (h100-sxm; 2xh100-sxm also sets --tensor-parallel-size "
                        "2); llama.cpp's per-device buffers (rtx-4090, 2xrtx-3090, rtx-4090+rtx-3090)")
    f = p.add_argument_group("image, speech and vision models")
    f.add_argument("--width", type=positive_int("width"), default=1024, help="image width in pixels")
    f.add_argument("--height", type=positive_int("height"), default=1024, help="image height in pixels")
    f.add_argument("--images", type=positive_int("images"), default=1, help="images per prompt")
    f.add_argument("--steps", type=positive_int("steps"), default=28, help="denoising steps (no effect on memory)")
    f.add_argument("--beams", type=positive_int("beams"), default=1, help="beam size (Whisper)")
    f.add_argument("--offload-text-encoders", action="store_true",
                   help="diffusion: text encoders on the CPU except while encoding")


_LLAMA_ONLY = ("n_gpu_layers", "cache_type_k", "cache_type_v", "ubatch", "n_batch", "n_cpu_moe", "backend",
               "tensor_split", "n_outputs_max", "llama_build")
_LLAMA_FLAGS = ("no_flash_attn", "cpu_moe", "kv_unified", "swa_full")


def source_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import BadInput

    llama = args.engine in ("llama.cpp", "llamacpp")
    if not llama:
        given = [n for n in _LLAMA_ONLY if getattr(args, n, None) is not None]
        given += [n for n in _LLAMA_FLAGS if getattr(args, n, False)]
        if given:
            opt = "--" + given[0].replace("_", "-")
            raise BadInput(f"{given[0]}: {opt} is a llama.cpp option (add --engine llama.cpp)", field=given[0])
    kw: dict[str, Any] = dict(width=args.width, height=args.height, images=args.images, beams=args.beams,
                              offload_text_encoders=args.offload_text_encoders)
    if not llama:
        return kw
    kw.update(n_gpu_layers=args.n_gpu_layers, cache_type_k=args.cache_type_k, cache_type_v=args.cache_type_v,
              flash_attn=not args.no_flash_attn, n_cpu_moe=args.n_cpu_moe, cpu_moe=args.cpu_moe,
              kv_unified=args.kv_unified, swa_full=args.swa_full, n_outputs_max=args.n_outputs_max,
              llama_build=args.llama_build)
    if args.ubatch is not None:
        kw["n_ubatch"] = args.ubatch
    if args.n_batch is not None:
        kw["n_batch"] = args.n_batch
    backend = args.backend
    if args.gpu is not None:
        from ..llama_devices import backend_for, parse_gpu_list

        gpus = parse_gpu_list(args.gpu)
        backend = backend_for(gpus, backend)
        kw["device_memory"] = tuple(g.usable_memory_bytes for g in gpus)
    if backend is not None:
        kw["backend"] = backend
    if args.tensor_split is not None:
        try:
            kw["tensor_split"] = tuple(float(x) for x in args.tensor_split.split(","))
        except ValueError as exc:
            raise BadInput(f"tensor_split: expected numbers like 3,1, got {args.tensor_split!r}",
                           field="tensor_split") from exc
    return kw


def run(args: argparse.Namespace) -> int:
    from ..estimate import Workload, estimate

    if args.train:
        from ..training import TrainWorkload, estimate_training

        tw = TrainWorkload(
            method=args.method, precision=args.precision, optimizer=args.optimizer, batch=args.batch,
            seq=args.seq if args.seq is not None else (args.context or 2048), attn=args.attn,
            grad_checkpointing=args.grad_checkpointing, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
            lora_targets=args.lora_targets, gpus=args.gpus, zero=args.zero, fsdp=args.fsdp,
            gpus_per_node=args.gpus_per_node, offload_optimizer=args.offload_optimizer, grad_accum=args.grad_accum,
        )
        est = estimate_training(args.model, tw)
    else:
        est = estimate(args.model, Workload(**workload_kwargs(args), **source_kwargs(args), **gpu_kwargs(args)))
    if args.json:
        print_json(est.to_dict())
    else:
        from ..report import print_estimate

        print_estimate(est)
    return 0
