"""Serving settings for a fit, as ready command lines, per model family and engine.

Text models (LLMs): vLLM, llama.cpp (llama-server), Ollama and transformers. Diffusion pipelines: diffusers.
Speech (Whisper): the transformers speech-recognition pipeline. Embedding and reranker models:
sentence-transformers. Vision-language models: transformers' image-text-to-text class. Training: the
transformers Trainer / PEFT settings of the training workload.

Every number comes from the fit: the split (tensor / pipeline parallel size), the context (max-model-len, -c,
num_ctx), the KV cache dtype, the concurrency that fits (vLLM's --max-num-seqs from its KV blocks), and — when the
model does not fit entirely — the layers to keep on the GPU (llama.cpp -ngl, Ollama num_gpu, transformers
max_memory with a "cpu" entry). A command never asks for more tokens than the model reads (its
max_position_embeddings) or than fits on the GPU: it then uses the longest that does and its notes say so.
Each engine's settings carry `label` (the engine's name as people write it) and `notes`; `primary` names the
entry for the workload's own engine.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from .devices import torch_visible_bytes, vllm_unsupported
from .records import replace
from .request import ImageOptions, LlamaCppOptions, SpeechOptions, VllmOptions, Workload

if TYPE_CHECKING:
    from .fitting import Evaluator, FitResult

GIB = 1024**3

# vLLM --quantization for our weight formats; None: the checkpoint carries its quantization config
VLLM_QUANT = {"awq": "awq", "gptq": "gptq", "fp8": "fp8", "nf4": "bitsandbytes", "bnb-int8": "bitsandbytes"}
VLLM_KV = {"float8": "fp8", "int8": "fp8"}


def _vllm_quant_flag(quant: str | None) -> tuple[str | None, str | None]:
    if not quant:
        return None, None
    q = quant.lower()
    if (q.startswith("q") and "_" in q) or q.startswith("iq"):
        return "gguf", ("vLLM reads GGUF experimentally: pass the .gguf file instead of the repo and --tokenizer REPO")
    for prefix, flag in VLLM_QUANT.items():
        if q.startswith(prefix):
            return flag, None
    return None, f"{quant}: serve a checkpoint already quantized this way (vLLM reads its quantization_config)"


def vllm_option_flags(o: VllmOptions) -> list[str]:
    """The `vllm serve` flags for the options an estimate ran with that differ from vLLM's defaults, so that the
    command starts the engine the numbers describe (a token budget, graphs, LoRA slots or a draft model left out
    would change the profile run and the KV cache vLLM ends up with)."""
    flags = []
    if o.max_num_batched_tokens:
        flags.append(f"--max-num-batched-tokens {o.max_num_batched_tokens}")
    if o.block_size != 16:
        flags.append(f"--block-size {o.block_size}")
    if o.enforce_eager:
        flags.append("--enforce-eager")
    if o.enable_lora:
        flags.append(f"--enable-lora --max-loras {o.max_loras} --max-lora-rank {o.max_lora_rank}")
    if o.speculative_model or o.speculative_method:
        spec: dict[str, object] = {}
        if o.speculative_method and o.speculative_method != "draft_model":
            spec["method"] = o.speculative_method
        if o.speculative_model:
            spec["model"] = o.speculative_model
        spec["num_speculative_tokens"] = o.num_speculative_tokens or 1
        flags.append(f"--speculative-config '{json.dumps(spec)}'")
    if o.limit_mm_per_prompt is not None:
        flags.append(f"--limit-mm-per-prompt '{json.dumps({'image': o.limit_mm_per_prompt})}'")
    if o.kv_cache_memory_bytes is not None:
        flags.append(f"--kv-cache-memory-bytes {o.kv_cache_memory_bytes}")
    if o.cpu_offload_gb:
        flags.append(f"--cpu-offload-gb {o.cpu_offload_gb:g}")
    return flags


def vllm_command(
    repo: str,
    *,
    tp: int,
    pp: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    kv_dtype: str | None,
    max_num_seqs: int,
    quant: str | None,
    options: VllmOptions | None = None,
) -> tuple[str, list[str]]:
    notes = []
    kv = "auto"
    if kv_dtype and kv_dtype in VLLM_KV:
        kv = VLLM_KV[kv_dtype]
        if kv_dtype == "int8":
            notes.append("vLLM has no int8 KV cache: fp8 (same size) instead")
    elif kv_dtype == "int4":
        notes.append("vLLM has no 4-bit KV cache: auto (model dtype) instead")
    parts = ["vllm serve", repo]
    if tp > 1:
        parts.append(f"--tensor-parallel-size {tp}")
    if pp > 1:
        parts.append(f"--pipeline-parallel-size {pp}")
    parts += [
        f"--max-model-len {max_model_len}",
        f"--gpu-memory-utilization {gpu_memory_utilization:g}",
        f"--kv-cache-dtype {kv}",
        f"--max-num-seqs {max_num_seqs}",
    ]
    if options is not None:
        parts += vllm_option_flags(options)
    flag, note = _vllm_quant_flag(quant)
    if flag and flag != "gguf":
        parts.append(f"--quantization {flag}")
    if note:
        notes.append(note)
    return " ".join(parts), notes


def llama_cpp_cache_types(wl: Workload) -> tuple[str, str]:
    """The K and V cache types llama.cpp runs with for this workload: the estimate's own (--cache-type-k/-v, else
    the KV dtype: bf16 stays bf16; llama.cpp has no fp8 cache, q8_0 is its 8-bit one), f16 by default."""
    from .engines.llama_cpp import cache_type

    opts = wl.options if isinstance(wl.options, LlamaCppOptions) else LlamaCppOptions()
    return cache_type(opts.cache_type_k, wl.kv_dtype, "k"), cache_type(opts.cache_type_v, wl.kv_dtype, "v")


def llama_cpp_command(
    model_file: str,
    *,
    ngl: int,
    context: int,
    parallel: int,
    cache: tuple[str, str],
    gpus: int,
    n_cpu_moe: int | None = None,
) -> str:
    parts = ["llama-server", "-m", model_file, f"-ngl {ngl}", f"-c {context * parallel}"]
    if n_cpu_moe:
        parts.append(f"--n-cpu-moe {n_cpu_moe}")
    if parallel > 1:
        parts.append(f"-np {parallel}")
    parts += ["-fa on", f"--cache-type-k {cache[0]}", f"--cache-type-v {cache[1]}"]
    if gpus > 1:
        parts += ["--split-mode layer", "--tensor-split " + ",".join(["1"] * gpus)]
    return " ".join(parts)


ENGINE_LABELS = {
    "vllm": "vLLM",
    "llama_cpp": "llama.cpp",
    "ollama": "Ollama",
    "transformers": "transformers",
    "diffusers": "diffusers",
    "sentence_transformers": "sentence-transformers",
    "training": "training",
}


def serving_length(result: FitResult) -> tuple[int, list[str]]:
    """Tokens per sequence (prompt + new) a server should be started with: what was asked, but never more than the
    model reads (its context limit) nor, when that does not fit, more than the longest context that does."""
    wl = _inference(result)
    asked = wl.context + wl.new_tokens
    tokens = asked
    notes: list[str] = []
    limit = result.context_limit
    if limit and asked > limit:
        tokens = limit
        notes.append(
            f"the model reads at most {limit:,} tokens: started with {limit:,}, not the {asked:,} asked "
            "(longer needs RoPE scaling the checkpoint does not declare)"
        )
    if result.verdict == "no" and result.max_context:
        longest = result.max_context + wl.new_tokens
        if longest < tokens:
            tokens = longest
            notes.append(
                f"{asked:,} tokens do not fit on {result.gpu_count}× {result.gpu_name}: started with "
                f"{longest:,}, the longest that fits at batch {wl.batch}"
            )
    return max(1, tokens), notes


def serving_settings(ev: Evaluator, result: FitResult) -> dict[str, Any]:
    """Command lines for the fit in `result` (its GPU, count, split and workload), for the model's family."""
    entry = ev.rm.entry
    kind = entry.kind if entry is not None else "llm"
    repo = entry.hf_repo if entry and entry.hf_repo else ev.rm.source
    if kind == "diffusion":
        out: dict[str, Any] = {"diffusers": diffusers_settings(repo, result)}
    elif kind == "speech":
        out = {"transformers": whisper_settings(repo, result)}
    elif kind == "embedding":
        out = {"sentence_transformers": embedding_settings(repo, result, entry.config if entry else {})}
    elif kind == "vlm":
        out = {"transformers": vlm_settings(repo, result)}
    else:
        out = llm_settings(ev, result)
    for key, spec in out.items():
        if isinstance(spec, dict):
            spec.setdefault("label", ENGINE_LABELS.get(key, key))
            spec.setdefault("notes", [])
    engine = {"llama.cpp": "llama_cpp"}.get(result.engine, result.engine)
    out["primary"] = engine if engine in out else next(iter(out))
    return out


def _inference(result: FitResult) -> Workload:
    assert isinstance(result.workload, Workload), "serving settings of a training fit are training_settings"
    return result.workload


def _torch_dtype(dtype: str) -> str:
    return {
        "float16": "torch.float16",
        "float32": "torch.float32",
        "fp16": "torch.float16",
        "fp32": "torch.float32",
    }.get(dtype, "torch.bfloat16")


def _nonfit_note(result: FitResult, what: str) -> list[str]:
    if result.verdict != "no":
        return []
    return [f"does not fit on {result.gpu_count}× {result.gpu_name} as asked ({what}); see what to change"]


def diffusers_settings(repo: str, result: FitResult) -> dict[str, Any]:
    """diffusers: the pipeline class the checkpoint names (DiffusionPipeline reads model_index.json), in the
    estimate's dtype, resident on the GPU, or with model CPU offload when asked (text encoders off the GPU)."""
    wl = _inference(result)
    img = wl.family_options(ImageOptions)
    offload = img.offload_text_encoders
    place = "pipe.enable_model_cpu_offload()" if offload else "pipe.to('cuda')"
    code = (
        f"pipe = DiffusionPipeline.from_pretrained({repo!r}, torch_dtype={_torch_dtype(wl.dtype)}); {place}; "
        f"images = pipe(prompt, height={img.height}, width={img.width}, num_images_per_prompt={img.images}"
        + (f", num_inference_steps={img.steps}" if img.steps else "")
        + ").images"
    )
    notes = _nonfit_note(result, f"{img.width}×{img.height}, {img.images} image(s)")
    if result.gpu_count > 1:
        notes.append(
            f"one pipeline per GPU ({result.gpu_count} replicas): diffusers does not split one image over GPUs"
        )
    return {
        "code": code,
        "pipeline": "DiffusionPipeline",
        "torch_dtype": _torch_dtype(wl.dtype),
        "height": img.height,
        "width": img.width,
        "num_images_per_prompt": img.images,
        "cpu_offload": offload,
        "notes": notes,
    }


def whisper_settings(repo: str, result: FitResult) -> dict[str, Any]:
    """transformers' automatic-speech-recognition pipeline over 30-second windows (`batch` windows at once,
    `beams` beams each)."""
    wl = _inference(result)
    sp = wl.family_options(SpeechOptions)
    gen = f", generate_kwargs={{'num_beams': {sp.beams}}}" if sp.beams > 1 else ""
    code = (
        f"asr = pipeline('automatic-speech-recognition', model={repo!r}, torch_dtype={_torch_dtype(wl.dtype)}, "
        f"device='cuda:0'); text = asr(audio, chunk_length_s=30, batch_size={wl.batch}{gen})['text']"
    )
    notes = _nonfit_note(result, f"{wl.batch} window(s), {sp.beams} beam(s)")
    if sp.audio_s:
        windows = max(1, math.ceil(sp.audio_s / 30))
        notes.append(
            f"{sp.audio_s / 60:g} min of audio = {windows} windows of 30 s: {math.ceil(windows / wl.batch)} "
            f"pass(es) of {wl.batch} (memory is per pass, whatever the length)"
        )
    return {
        "code": code,
        "task": "automatic-speech-recognition",
        "chunk_length_s": 30,
        "batch_size": wl.batch,
        "num_beams": sp.beams,
        "torch_dtype": _torch_dtype(wl.dtype),
        "notes": notes,
    }


def embedding_settings(repo: str, result: FitResult, config: Any) -> dict[str, Any]:
    """sentence-transformers: SentenceTransformer for embedding models, CrossEncoder for rerankers (a
    classification head)."""
    wl = _inference(result)
    reranker = isinstance(config, dict) and config.get("head") == "classifier"
    cls = "CrossEncoder" if reranker else "SentenceTransformer"
    call = (
        f"scores = model.predict(pairs, batch_size={wl.batch})"
        if reranker
        else f"vectors = model.encode(texts, batch_size={wl.batch})"
    )
    code = (
        f"model = {cls}({repo!r}, device='cuda', model_kwargs={{'torch_dtype': {_torch_dtype(wl.dtype)}}}); "
        f"model.max_seq_length = {wl.context}; {call}"
    )
    return {
        "code": code,
        "class": cls,
        "batch_size": wl.batch,
        "max_seq_length": wl.context,
        "notes": _nonfit_note(result, f"batch {wl.batch} × {wl.context:,} tokens"),
    }


def vlm_settings(repo: str, result: FitResult) -> dict[str, Any]:
    wl = _inference(result)
    device_map = "auto" if result.gpu_count > 1 else "cuda:0"
    code = (
        f"model = AutoModelForImageTextToText.from_pretrained({repo!r}, dtype={_torch_dtype(wl.dtype)}, "
        f"device_map={device_map!r}); processor = AutoProcessor.from_pretrained({repo!r})"
    )
    return {"code": code, "notes": _nonfit_note(result, f"context {wl.context:,}")}


def training_settings(repo: str, tw: Any, gpu_count: int = 1) -> dict[str, Any]:
    """transformers Trainer arguments (and PEFT / bitsandbytes for LoRA and QLoRA) for a training workload."""
    precision = {"bf16": "bf16=True", "fp16": "fp16=True", "mixed": "bf16=True"}.get(tw.precision, "")
    optim = {
        "adamw": "adamw_torch",
        "adamw-fused": "adamw_torch_fused",
        "adamw-8bit": "adamw_bnb_8bit",
        "sgd": "sgd",
        "sgd-momentum": "sgd",
        "adafactor": "adafactor",
        "lion": "lion_32bit",
    }
    args = [
        f"per_device_train_batch_size={tw.batch}",
        f"gradient_accumulation_steps={tw.grad_accum}",
        f"optim={optim.get(tw.optimizer, tw.optimizer)!r}",
    ]
    if precision:
        args.append(precision)
    if tw.grad_checkpointing:
        args.append("gradient_checkpointing=True")
    if tw.method == "qlora":
        load = (
            f"model = AutoModelForCausalLM.from_pretrained({repo!r}, quantization_config=BitsAndBytesConfig("
            "load_in_4bit=True, bnb_4bit_quant_type='nf4', bnb_4bit_compute_dtype=torch.bfloat16))"
        )
    else:
        dtype = "torch.float32" if tw.precision in ("fp32", "mixed") else _torch_dtype(tw.precision)
        load = f"model = AutoModelForCausalLM.from_pretrained({repo!r}, dtype={dtype})"
    lines = [load]
    if tw.method in ("lora", "qlora"):
        lines.append(f"model = get_peft_model(model, LoraConfig(r={tw.lora_rank}, target_modules={tw.lora_targets!r}))")
    lines.append("args = TrainingArguments(output_dir='out', " + ", ".join(args) + ")")
    lines.append(f"# sequences of {tw.seq:,} tokens (tokenize with max_length={tw.seq}, truncation=True)")
    notes = (
        [f"launch on {gpu_count} GPUs with: torchrun --nproc_per_node {gpu_count} train.py"] if gpu_count > 1 else []
    )
    return {"code": "\n".join(lines), "label": "training", "notes": notes}


def vllm_utilization_for(ests: list[Any], batch: int) -> float | None:
    """The smallest --gpu-memory-utilization (two decimals, rounded up) whose KV budget holds `batch` sequences of
    max_model_len on every rank, from each rank's estimate: the KV cache grows by (U' − U) × the GPU's memory, the
    rest of the budget does not move. None when even the most vLLM can ask for does not hold them: it refuses to
    start unless the GPU has that much free (``init_device``), and the CUDA context is already taken."""
    best = 0.0
    for e in ests:
        v = e.vllm
        conc = v.max_concurrency
        capacity = v.kv_cache_bytes
        device = v.gpu_memory_bytes
        if conc <= 0 or capacity <= 0:
            return None
        extra = math.ceil(capacity * batch / conc) - capacity  # blocks scale with the budget
        u = v.gpu_memory_utilization + max(0, extra) / device
        ctx = next((c.bytes for c in e.breakdown if c.name == "cuda_context"), 0)
        if u > (device - ctx) / device:
            return None
        best = max(best, u)
    return math.ceil(best * 100) / 100


def llm_settings(ev: Evaluator, result: FitResult) -> dict[str, Any]:
    """vLLM, llama.cpp, Ollama and transformers command lines for a decoder LLM."""
    from .devices import GpuChoice

    wl = _inference(result)
    spec = ev.spec
    entry = ev.rm.entry
    repo = entry.hf_repo if entry and entry.hf_repo else ev.rm.source
    name = entry.id if entry else spec.name
    tokens, length_notes = serving_length(result)
    tp = result.gpu_count if result.split == "tp" else 1
    pp = result.gpu_count if result.split == "pp" else 1
    n_layers = spec.num_layers
    offload = result.offload
    experts = offload if offload and offload.get("kind") == "experts" else None
    layers_on_gpu = int(offload["layers_on_gpu"]) if offload and not experts else n_layers
    apple = result.gpu_entry is not None and result.gpu_entry.vendor == "apple"

    # no vLLM on Apple Silicon (CUDA/ROCm only) or on GPUs older than Volta; llama.cpp, Ollama (and mlx-lm) run there
    max_num_seqs, fit_seqs = 1, 0
    vopts = wl.options if isinstance(wl.options, VllmOptions) else VllmOptions()
    vllm_cmd = ""
    no_vllm = vllm_unsupported(result.gpu_entry) if result.gpu_entry is not None else None
    vllm_notes = (
        ["vLLM does not run on Apple Silicon; use llama.cpp (Metal), Ollama, LM Studio or mlx-lm"]
        if apple
        else [no_vllm.removeprefix("engine: ")]
        if no_vllm
        else []
    )
    if not no_vllm:
        # vLLM: concurrency from its own KV-block arithmetic on this GPU and split
        assert result.gpu_entry is not None
        choice = GpuChoice(result.gpu_entry, result.gpu_count)
        vwl = wl if wl.engine == "vllm" else replace(wl, options=VllmOptions(), family=None)
        vopts = vwl.vllm
        split = result.split if result.split in ("tp", "pp") else "single"
        # the estimate at the length the command starts with (the fit may have shortened it)
        vwl = replace(vwl, context=tokens, new_tokens=0) if tokens != vwl.context + vwl.new_tokens else vwl
        _, _, vests, _ = ev.per_gpu(choice, vwl, split)
        # sequences of max_model_len tokens vLLM's KV cache holds at once ("Maximum concurrency"): its block
        # arithmetic per rank, sliding-window groups holding only their window; the fullest rank decides
        fit_seqs = min(int(e.vllm.max_concurrency) for e in vests) if vests else 0
        default_seqs = int(vests[0].extra["max_num_seqs"]) if vests else 256
        # vLLM's own default for this GPU unless --max-num-seqs was given
        cap = vopts.max_num_seqs or (vests[0].vllm.max_num_seqs if vests else 256)
        max_num_seqs = max(1, min(cap, fit_seqs)) if fit_seqs else max(1, default_seqs)
        vllm_cmd, vllm_notes = vllm_command(
            repo,
            tp=tp,
            pp=pp,
            max_model_len=tokens,
            gpu_memory_utilization=vopts.gpu_memory_utilization,
            kv_dtype=wl.kv_dtype,
            max_num_seqs=max_num_seqs,
            quant=wl.quant,
            options=vopts,
        )
        vllm_notes = [*length_notes, *vllm_notes]
        if result.gpu_entry.interconnect == "unified":  # a GPU sharing the system's memory (DGX Spark)
            vllm_notes.append(
                "unified memory: the OS, page cache and other programs share this GPU's memory, and vLLM refuses to "
                f"start unless gpu_memory_utilization × total is free ({vopts.gpu_memory_utilization:g} × "
                f"{torch_visible_bytes(result.gpu_entry) / 1024**3:,.2f} GiB here)"
                + ("; DGX Spark recipes run 0.8–0.85" if result.gpu_entry.vendor == "nvidia" else "")
            )
        want = max(1, wl.batch) if fit_seqs < 1 else wl.batch
        need = vllm_utilization_for(vests, want) if vests and vopts.kv_cache_memory_bytes is None else None
        if fit_seqs < 1:
            vllm_notes.append(
                f"vLLM would not start: one {tokens:,}-token sequence needs more KV blocks than "
                f"gpu_memory_utilization {vopts.gpu_memory_utilization:g} leaves"
                + (f"; --gpu-memory-utilization {need:g} would hold {want}" if need else "")
            )
        elif fit_seqs < wl.batch:
            vllm_notes.append(
                f"only {fit_seqs} sequences of {tokens:,} tokens fit vLLM's KV cache (batch {wl.batch} "
                "asked); the rest wait"
                + (f"; --gpu-memory-utilization {need:g} would hold all {wl.batch}" if need else "")
            )

    # llama.cpp / Ollama
    from .engines.llama_cpp import stored_mix

    quant = (wl.quant or "").upper() if wl.quant and wl.quant.lower().startswith(("q", "iq", "mxfp4")) else None
    stored = "MXFP4" if stored_mix(spec, wl) else None  # the checkpoint's own format, kept by the conversion
    gguf = f"{name}-{quant or stored or ('F16' if wl.dtype == 'float16' else 'BF16')}.gguf"
    # llama.cpp counts the output layer first (-ngl N: output + the last N-1 blocks); the plan keeps the head on the GPU
    ngl = n_layers + 1 if layers_on_gpu >= n_layers else layers_on_gpu + 1
    n_cpu_moe = int(experts["n_cpu_moe"]) if experts else None
    cache = llama_cpp_cache_types(wl)
    llama_cmd = llama_cpp_command(
        gguf, ngl=ngl, context=tokens, parallel=wl.batch, cache=cache, gpus=result.gpu_count, n_cpu_moe=n_cpu_moe
    )
    # Ollama has one setting for both caches (f16, q8_0, q4_0)
    env = ["OLLAMA_FLASH_ATTENTION=1"] + ([f"OLLAMA_KV_CACHE_TYPE={cache[0]}"] if cache[0] != "f16" else [])
    if wl.batch > 1:
        env.append(f"OLLAMA_NUM_PARALLEL={wl.batch}")
    modelfile = [f"FROM ./{gguf}", f"PARAMETER num_ctx {tokens}"]
    ollama_notes = list(length_notes)
    if experts:
        # Ollama has no --n-cpu-moe; a num_gpu of every layer would ask for them all on the GPU
        ollama_notes.append(
            "Ollama has no setting for experts on the CPU: leave num_gpu unset and Ollama 0.30+ lets llama-server's "
            "automatic fit (LLAMA_ARG_FIT, on by default) place the tensors; older releases keep whole layers on "
            "the CPU instead (slower)"
        )
    else:
        modelfile.append(f"PARAMETER num_gpu {ngl}")
    if isinstance(wl.options, LlamaCppOptions) and wl.options.n_ubatch != LlamaCppOptions().n_ubatch:
        modelfile.append(f"PARAMETER num_batch {wl.options.n_ubatch}")
    ollama: dict[str, Any] = {
        "env": env,
        "command": " ".join([*env, "ollama serve"]),
        "modelfile": modelfile,
        "num_ctx": tokens,
        "num_gpu": None if experts else ngl,
        "notes": ollama_notes,
    }

    # transformers: weights per GPU may use what the rest of the estimate leaves
    rank = max(result.ranks, key=lambda r: r.total_bytes)
    non_weight = rank.total_bytes - rank.weights_bytes
    per_gpu_weights_gib = max(0, (result.usable_bytes_per_gpu - non_weight) // GIB)
    max_memory: dict[str, str] = {str(i): f"{per_gpu_weights_gib}GiB" for i in range(result.gpu_count)}
    device_map = "mps" if apple else "auto" if result.gpu_count > 1 or offload else "cuda:0"
    if offload and "host_memory_bytes" in offload:
        max_memory["cpu"] = f"{math.ceil(int(offload['host_memory_bytes']) / GIB) + 2}GiB"
    dtype = "torch.float16" if wl.dtype == "float16" else "torch.float32" if wl.dtype == "float32" else "torch.bfloat16"
    qc = ""
    tf_notes: list[str] = []
    q = (wl.quant or "").lower()
    if q.startswith("nf4"):
        qc = (
            ", quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4', "
            "bnb_4bit_use_double_quant=True)"
        )
    elif q in ("bnb-int8", "llm-int8", "bnb-8bit"):
        qc = ", quantization_config=BitsAndBytesConfig(load_in_8bit=True)"
    elif quant:
        tf_notes.append(
            f"transformers dequantizes GGUF ({gguf}, via gguf_file=) to {wl.dtype} on load: the "
            f"{wl.quant} sizes above hold for llama.cpp / Ollama, not for transformers"
        )
    elif q.startswith(("awq", "gptq", "fp8", "int8", "int4", "w4a16", "w8a16")):
        tf_notes.append(
            f"load a checkpoint already quantized as {wl.quant}: its quantization_config is read from the repo"
        )
    mm = "{" + ", ".join(f"{k if k == 'cpu' else int(k)!r}: {v!r}" for k, v in max_memory.items()) + "}"
    tf_code = (
        f"AutoModelForCausalLM.from_pretrained({repo!r}, dtype={dtype}, device_map={device_map!r}"
        + (f", max_memory={mm}" if device_map == "auto" else "")
        + f"{qc})"
    )
    out: dict[str, Any] = {
        "vllm": {
            "command": vllm_cmd,
            "tensor_parallel_size": tp,
            "pipeline_parallel_size": pp,
            "max_model_len": tokens,
            "gpu_memory_utilization": vopts.gpu_memory_utilization,
            "kv_cache_dtype": VLLM_KV.get(wl.kv_dtype or "", "auto"),
            "max_num_seqs": max_num_seqs,
            "sequences_that_fit": fit_seqs,
            "notes": vllm_notes,
        },
        "llama_cpp": {
            "command": llama_cmd,
            "n_gpu_layers": ngl,
            "ctx_size": tokens * wl.batch,
            "parallel": wl.batch,
            "cache_type_k": cache[0],
            "cache_type_v": cache[1],
            "notes": [
                *length_notes,
                f"{gguf}: a GGUF conversion of {repo} (convert_hf_to_gguf.py, or a published GGUF of this model)",
            ],
        },
        "ollama": ollama,
        "transformers": {"code": tf_code, "device_map": device_map, "max_memory": max_memory, "notes": tf_notes},
    }
    if apple:
        out["mlx"] = mlx_settings(repo, name, wl, result)
    if offload:
        out["offload"] = offload
    return out


def mlx_settings(repo: str, name: str, wl: Workload, result: FitResult) -> dict[str, Any]:
    """mlx-lm on a Mac: the checkpoint as is (16-bit), or converted to the MLX n-bit format the fit priced
    (`mlx_lm.convert -q --q-bits N`, groups of 64 as mlx-lm's default); the GPU working-set limit it runs under."""
    from .engines.mlx import MLX_BITS

    bits = MLX_BITS.get((wl.quant or "").lower())
    model = f"{name}-mlx-{bits}bit" if bits else repo
    convert = f"mlx_lm.convert --hf-path {repo} -q --q-bits {bits} --mlx-path {model}" if bits else ""
    limit_gib = result.usable_bytes_per_gpu / GIB
    return {
        "command": f"mlx_lm.server --model {model}",
        "convert": convert,
        "working_set_limit_bytes": result.usable_bytes_per_gpu,
        "label": "mlx-lm",
        "notes": [
            f"GPU working-set limit {limit_gib:,.1f} GiB (Metal recommendedMaxWorkingSetSize); raise it with "
            "`sudo sysctl iogpu.wired_limit_mb=<MiB>` when the estimate is above it",
            "LM Studio's MLX engine loads the same MLX folder",
        ],
    }
