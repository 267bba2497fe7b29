"""Read what a run printed: vLLM start-up logs, llama.cpp and Ollama load logs, `ollama ps`, PyTorch's CUDA
out-of-memory message and `nvidia-smi`. Pure text parsing, no estimates (those are in `vram.diagnosis`).

Every figure is taken as the program prints it. Units: vLLM prints "GB" for values it divides by 2**30 (its
`GiB_bytes`), so "GB" in a vLLM memory line is read as GiB; llama.cpp prints MiB; Ollama's server log prints
binary units (GiB/MiB) and `ollama ps` decimal ones (GB/MB, its `format.HumanBytes`); PyTorch prints GiB/MiB/KiB.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .records import field, record

KINDS = ("vllm", "llama.cpp", "ollama", "pytorch-oom", "nvidia-smi")
MAX_LOG_CHARS = 4_000_000  # a few MB of log is plenty; longer input is refused by the caller

_BINARY = {
    "b": 1,
    "bytes": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "kb": 1 << 10,
    "mb": 1 << 20,
    "gb": 1 << 30,
    "tb": 1 << 40,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
}
_DECIMAL = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE = r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B|bytes)"


def size_bytes(number: str, unit: str, *, decimal: bool = False) -> int:
    """'14.99', 'GB' -> bytes. GB/MB are binary unless `decimal` (only `ollama ps` prints decimal units)."""
    table = _DECIMAL if decimal else _BINARY
    return round(float(number) * table[unit.lower()])


def _size(text: str, *, decimal: bool = False) -> int | None:
    m = re.search(_SIZE, text, re.IGNORECASE)
    return size_bytes(m.group(1), m.group(2), decimal=decimal) if m else None


@record()
class ParsedLog:
    """What a log states. `logged` maps a term name to bytes as the program printed it (see each parser for the
    names); `workload` holds recognised settings; `recognised` names each line kind that was read."""

    kind: str | None = None
    model: str | None = None
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None  # per GPU, as the log states it
    gpu_count: int | None = None
    workload: dict[str, Any] = field(default_factory=dict)
    logged: dict[str, int] = field(default_factory=dict)
    out_of_memory: bool | None = None
    failed_allocation_bytes: int | None = None
    failed_buffer: str | None = None  # the term whose allocation failed (weights, kv_cache, compute_buffer ...)
    metadata: dict[str, Any] = field(default_factory=dict)  # GGUF keys as llama.cpp printed them
    recognised: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def saw(self, what: str) -> None:
        if what not in self.recognised:
            self.recognised.append(what)


# ---------------------------------------------------------------------------------------------------------------
# detection

_MARKERS: dict[str, tuple[str, ...]] = {
    "ollama": (
        'msg="offload',
        "msg=offload",
        "source=server.go",
        "source=sched.go",
        "source=ggml.go",
        "ollama run",
        "ollama serve",
        "/.ollama/models",
        "llama runner",
        " ollama[",
    ),
    "vllm": (
        "vllm",
        "Model loading took",
        "Loading model weights took",
        "Available KV cache memory",
        "GPU KV cache size",
        "Memory profiling results",
        "No available memory for the cache blocks",
        "# GPU blocks",
        "stored in KV cache",
        "EngineCore",
        "LLM engine (v",
        "llm_engine.py",
        "gpu_model_runner",
        "To serve at least one request with the model",
        "VllmWorker",
        "non-default args:",
        "APIServer pid",
    ),
    "llama.cpp": (
        "llm_load_tensors",
        "load_tensors:",
        "llama_new_context_with_model",
        "llama_context:",
        "llama_kv_cache",
        "ggml_cuda_init",
        "llama-server",
        "llama-cli",
        "llama_model_loader",
        "print_info:",
        "ggml_backend_cuda_buffer_type_alloc_buffer",
        "llm_load_print_meta",
    ),
    "pytorch-oom": ("CUDA out of memory", "OutOfMemoryError"),
    "nvidia-smi": ("NVIDIA-SMI",),
}
_OLLAMA_PS = re.compile(r"^\s*NAME\s+ID\s+SIZE\s+PROCESSOR", re.MULTILINE)


def detect(text: str) -> str | None:
    """The kind of log: the first kind (in KINDS' precedence: Ollama embeds llama.cpp's lines, vLLM embeds
    PyTorch's message) whose markers appear."""
    if _OLLAMA_PS.search(text):
        return "ollama"
    for kind in ("ollama", "vllm", "llama.cpp", "pytorch-oom", "nvidia-smi"):
        if any(m in text for m in _MARKERS[kind]):
            return kind
    return None


def parse(text: str) -> ParsedLog:
    """Parse any supported log; `kind` is None when nothing was recognised."""
    kind = detect(text)
    p = ParsedLog(kind=kind)
    if kind == "vllm":
        _vllm(text, p)
    elif kind in ("llama.cpp", "ollama"):
        _llama_cpp(text, p)
        if kind == "ollama":
            _ollama(text, p)
    if kind is not None:
        _pytorch_oom(text, p)  # vLLM start-ups and scripts fail with PyTorch's message
        _nvidia_smi(text, p)
        _collect_env_gpu(text, p)
    return p


# ---------------------------------------------------------------------------------------------------------------
# shared pieces


def _flag_value(tokens: list[str], names: tuple[str, ...]) -> str | None:
    for i, tok in enumerate(tokens):
        for n in names:
            if tok == n and i + 1 < len(tokens):
                return tokens[i + 1]
            if tok.startswith(n + "="):
                return tok.split("=", 1)[1]
    return None


def _command_tokens(line: str) -> list[str]:
    line = line.replace("\\\n", " ").strip().strip("`")
    try:
        return shlex.split(line, posix=True)
    except ValueError:
        return line.split()


def _num(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        return float(v.replace(",", "").rstrip("x"))
    except ValueError:
        return None


def _int(v: str | None) -> int | None:
    f = _num(v)
    return int(f) if f is not None else None


# the new-format OOM message up to "… of which X is free" (failed request, GPU index, capacity, free)
_OOM_HEAD = (
    r"Tried to allocate "
    + _SIZE
    + r"\.?\s*GPU (\d+) has a total capac(?:i)?ty of "
    + _SIZE
    + r" of which "
    + _SIZE
    + r" is free"
)


def _pytorch_oom(text: str, p: ParsedLog) -> None:
    """PyTorch's CUDA OOM message, new ("GPU 0 has a total capacity of …") and old ("(GPU 0; … total capacity; …)")
    formats. Terms: requested (the failed allocation), allocated (by PyTorch, before it), reserved_unallocated,
    non_pytorch (process use − PyTorch's reserved), in_use (the process), free."""
    m = re.search(
        _OOM_HEAD + r"\.(?:\s*Process \d+ has " + _SIZE + r" memory in use\.)?"
        r"(?:\s*Including non-PyTorch memory, this process has " + _SIZE + r" memory in use\.)?"
        r"\s*Of the allocated memory "
        + _SIZE
        + r" is allocated by PyTorch, (?:with "
        + _SIZE
        + r" allocated in private pools \(e\.g\., CUDA Graphs\), )?and "
        + _SIZE
        + r" is reserved by PyTorch but unallocated",
        text,
        re.IGNORECASE,
    )
    if m:
        g = m.groups()
        req = size_bytes(g[0], g[1])
        cap = size_bytes(g[3], g[4])
        free = size_bytes(g[5], g[6])
        in_use = size_bytes(g[9], g[10]) if g[9] else (size_bytes(g[7], g[8]) if g[7] else None)
        alloc = size_bytes(g[11], g[12])
        unalloc = size_bytes(g[15], g[16])
        p.saw("PyTorch CUDA out-of-memory message")
        p.out_of_memory = True
        p.failed_allocation_bytes = req
        p.gpu_memory_bytes = p.gpu_memory_bytes or cap
        p.logged.update(requested=req, allocated=alloc, reserved_unallocated=unalloc, free=free)
        if in_use is not None:
            p.logged["in_use"] = in_use
            p.logged["non_pytorch"] = max(0, in_use - alloc - unalloc)
        return
    m = re.search(
        r"Tried to allocate "
        + _SIZE
        + r" \(GPU (\d+); "
        + _SIZE
        + r" total capacity; "
        + _SIZE
        + r" already allocated; "
        + _SIZE
        + r" free; "
        + _SIZE
        + r" reserved in total by PyTorch\)",
        text,
        re.IGNORECASE,
    )
    if m:
        g = m.groups()
        req, cap = size_bytes(g[0], g[1]), size_bytes(g[3], g[4])
        alloc, free, reserved = size_bytes(g[5], g[6]), size_bytes(g[7], g[8]), size_bytes(g[9], g[10])
        p.saw("PyTorch CUDA out-of-memory message (PyTorch < 2.1 format)")
        p.out_of_memory = True
        p.failed_allocation_bytes = req
        p.gpu_memory_bytes = p.gpu_memory_bytes or cap
        p.logged.update(requested=req, allocated=alloc, reserved_unallocated=max(0, reserved - alloc), free=free)
        return
    m = re.search(
        _OOM_HEAD,
        text,
        re.IGNORECASE,
    )
    if m:  # a message cut short (an issue title): the allocation and the GPU, not PyTorch's own figures
        g = m.groups()
        p.saw("PyTorch CUDA out-of-memory message (cut short)")
        p.out_of_memory = True
        p.failed_allocation_bytes = size_bytes(g[0], g[1])
        p.gpu_memory_bytes = p.gpu_memory_bytes or size_bytes(g[3], g[4])
        p.logged.update(requested=size_bytes(g[0], g[1]), free=size_bytes(g[5], g[6]))


_SMI_GPU = re.compile(r"^\|\s*(\d+)\s+(NVIDIA [^|]*?|Tesla [^|]*?|Quadro [^|]*?)\s+(?:On|Off)\s*\|", re.MULTILINE)
_SMI_MEM = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def _nvidia_smi(text: str, p: ParsedLog) -> None:
    """nvidia-smi's table: GPU names, memory used / total per GPU (MiB)."""
    if "NVIDIA-SMI" not in text:
        return
    names = [m.group(2).strip() for m in _SMI_GPU.finditer(text)]
    mems = [(int(a) << 20, int(b) << 20) for a, b in _SMI_MEM.findall(text)]
    if not names and not mems:
        return
    p.saw("nvidia-smi table")
    if names and not p.gpu_name:
        p.gpu_name = names[0]
    if mems:
        p.gpu_count = p.gpu_count or len(mems)
        p.gpu_memory_bytes = p.gpu_memory_bytes or mems[0][1]
        p.logged.setdefault("device_used", max(u for u, _ in mems))
        p.metadata["nvidia_smi_used"] = [u for u, _ in mems]
    for m in re.finditer(r"NVIDIA-SMI\s+([\d.]+)\s+Driver Version:\s*([\d.]+)\s+CUDA Version:\s*([\d.]+)", text):
        p.metadata["driver"] = m.group(2)
        p.metadata["cuda"] = m.group(3)


def _collect_env_gpu(text: str, p: ParsedLog) -> None:
    if p.gpu_name:
        return
    m = re.search(r"GPU models and configuration:\s*(?:\n\s*)?GPU 0:\s*([^\n]+)", text)
    if m:
        p.gpu_name = m.group(1).strip()
        p.gpu_count = (
            p.gpu_count or len(re.findall(r"^\s*GPU \d+: ", text[m.start() : m.start() + 2000], re.MULTILINE)) or 1
        )
        p.saw("collect_env GPU list")


# ---------------------------------------------------------------------------------------------------------------
# vLLM

_VLLM_FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    "context": (("--max-model-len", "--max_model_len"), "int"),
    "gpu_memory_utilization": (("--gpu-memory-utilization", "--gpu_memory_utilization"), "float"),
    "tensor_parallel_size": (
        ("--tensor-parallel-size", "--tensor_parallel_size", "--tensor-parallel", "-tp", "--tensor_parallel"),
        "int",
    ),
    "pipeline_parallel_size": (("--pipeline-parallel-size", "-pp"), "int"),
    "max_num_seqs": (("--max-num-seqs", "--max_num_seqs"), "int"),
    "max_num_batched_tokens": (("--max-num-batched-tokens", "--max_num_batched_tokens"), "int"),
    "kv_cache_type": (("--kv-cache-dtype", "--kv_cache_dtype"), "str"),
    "quant": (("--quantization", "-q"), "str"),
    "dtype": (("--dtype",), "str"),
}


def _serve_positional(toks: list[str]) -> str | None:
    """The model of `vllm serve [flags] MODEL [flags]`: the first argument that is no flag and no flag's value (a
    value-taking flag is one vram reads, or any flag followed by a plain number)."""
    value_flags = {n for names, _ in _VLLM_FLAGS.values() for n in names} | {"--served-model-name", "--host", "--port"}
    prev: str | None = None
    for t in toks:
        if t.startswith("-"):
            prev = None if "=" in t else t
            continue
        if prev is not None and (prev in value_flags or re.fullmatch(r"[\d.]+", t)):
            prev = None
            continue
        if prev is None or "/" in t:
            return t
        prev = None
    return None


def _vllm(text: str, p: ParsedLog) -> None:
    """vLLM V0/V1 start-up. Terms: weights ("Model loading took"), activations (profile-run peak beyond the
    weights), non_torch_memory, kv_cache (what vLLM found for the cache), cuda_graphs."""
    wl = p.workload
    # a command typed over several lines ends each with a backslash: one command line
    for line in re.sub(r"\\[ \t]*\r?\n", " ", text).splitlines():
        s = line.strip()
        if re.search(r"\bvllm serve\s|vllm\.entrypoints\.openai\.api_server|--model[ =]", s) and not s.startswith(
            ("INFO", "WARNING", "ERROR", "(")
        ):
            toks = _command_tokens(s[s.find("vllm") :] if "vllm" in s else s)
            if "serve" in toks:
                p.model = p.model or _serve_positional(toks[toks.index("serve") + 1 :])
            mv = _flag_value(toks, ("--model",))
            if mv:
                p.model = p.model or mv
            for key, (names, typ) in _VLLM_FLAGS.items():
                v = _flag_value(toks, names)
                if v is not None:
                    wl[key] = int(float(v)) if typ == "int" else float(v) if typ == "float" else v
            if "--enforce-eager" in toks:
                wl["enforce_eager"] = True
            p.saw("vLLM command line")
        m = re.search(r"LLM\((?:model=)?['\"]([^'\"]+)['\"]([^)]*)\)", s)
        if m:
            p.model = p.model or m.group(1)
            for key, pat in (
                ("gpu_memory_utilization", r"gpu_memory_utilization\s*=\s*([\d.]+)"),
                ("tensor_parallel_size", r"tensor_parallel_size\s*=\s*(\d+)"),
                ("context", r"max_model_len\s*=\s*(\d+)"),
                ("max_num_seqs", r"max_num_seqs\s*=\s*(\d+)"),
            ):
                mm = re.search(pat, m.group(2))
                if mm:
                    wl[key] = float(mm.group(1)) if key == "gpu_memory_utilization" else int(mm.group(1))
            p.saw("vLLM LLM(...) call")
    tps = {int(t) for t in re.findall(r"\bTP(\d+) pid=|VllmWorker rank=(\d+) pid=", text) for t in t if t}
    if tps:
        wl["tensor_parallel_size"] = max(tps) + 1
    m = re.search(r"Initializing an? (?:V\d )?LLM engine(?: \(v?([^)]*)\))? with config: (.*)", text)
    if m:
        p.saw("vLLM engine config line")
        p.metadata["vllm_version"] = m.group(1) or "?"
        cfg = m.group(2)
        mm = re.search(r"\bmodel='([^']+)'", cfg)
        if mm:
            p.model = mm.group(1)
        for key, pat in (
            ("dtype", r"dtype=torch\.(\w+)"),
            ("context", r"max_seq_len=(\d+)"),
            ("tensor_parallel_size", r"tensor_parallel_size=(\d+)"),
            ("pipeline_parallel_size", r"pipeline_parallel_size=(\d+)"),
            ("quant", r"quantization=(\w+)"),
            ("kv_cache_type", r"kv_cache_dtype=(\w+)"),
            ("enforce_eager", r"enforce_eager=(\w+)"),
        ):
            mm = re.search(pat, cfg)
            if mm:
                raw = mm.group(1)
                val: Any = raw
                if key in ("context", "tensor_parallel_size", "pipeline_parallel_size"):
                    val = int(raw)
                elif key == "enforce_eager":
                    val = raw == "True"
                elif raw == "None":
                    continue
                if key == "context":
                    wl[key] = val
                else:
                    wl.setdefault(key, val)
    m = re.search(r"Starting to load model (\S+?)\.{3}", text)
    if m:
        p.model = p.model or m.group(1)
        p.saw("model being loaded")
    m = re.search(r"non-default args: (\{.*\})", text)
    if m:  # vLLM >= 0.10 prints the options it was given as a Python dict
        args = m.group(1)
        p.saw("vLLM non-default args")
        mm = re.search(r"'model': '([^']+)'", args)
        if mm:
            p.model = p.model or mm.group(1)
        for key, name, conv in (
            ("context", "max_model_len", int),
            ("gpu_memory_utilization", "gpu_memory_utilization", float),
            ("tensor_parallel_size", "tensor_parallel_size", int),
            ("max_num_seqs", "max_num_seqs", int),
            ("kv_cache_type", "kv_cache_dtype", str),
            ("quant", "quantization", str),
            ("max_num_batched_tokens", "max_num_batched_tokens", int),
        ):
            mm = re.search(rf"'{name}': '?([\w.]+)'?", args)
            if mm:
                wl[key] = conv(mm.group(1))
    m = re.search(r"(?:Model loading took|Loading model weights took)\s+([\d.]+)\s*(GiB|GB)", text)
    if m:
        p.logged["weights"] = size_bytes(m.group(1), "GiB")
        p.saw("weights loaded (Model loading took …)")
    m = re.search(r"Memory profiling results:(.*)", text)
    if m:
        kv = dict(re.findall(r"(\w+)=([\d.]+)(?:GiB)?", m.group(1)))
        p.saw("V0 memory profiling results")
        if "total_gpu_memory" in kv:
            p.gpu_memory_bytes = size_bytes(kv["total_gpu_memory"], "GiB")
        if "gpu_memory_utilization" in kv:
            wl["gpu_memory_utilization"] = float(kv["gpu_memory_utilization"])
        if "non_torch_memory" in kv:
            p.logged["non_torch_memory"] = size_bytes(kv["non_torch_memory"], "GiB")
        if "kv_cache_size" in kv:
            p.logged["kv_cache"] = size_bytes(kv["kv_cache_size"], "GiB")
        if "peak_torch_memory" in kv and "weights" in p.logged:
            p.logged["activations"] = max(0, size_bytes(kv["peak_torch_memory"], "GiB") - p.logged["weights"])
    if re.search(r"Memory profiling results:\s*$", text, re.MULTILINE):  # vLLM 0.6.5: one figure a line
        table = {
            "total_gpu_memory": r"total_gpu_memory\s+([\d.]+)\s*GiB",
            "gpu_memory_utilization": r"gpu_memory_utilization\s+([\d.]+)\s*$",
            "weights": r"model weights take\s+([\d.]+)\s*GiB",
            "non_torch_memory": r"non_torch_memory\s+([\d.]+)\s*GiB",
            "activations": r"PyTorch activation peak memory\s+([\d.]+)\s*GiB",
            "kv_cache": r"available_kv_cache_memory\s+(-?[\d.]+)\s*GiB",
        }
        for key, pat in table.items():
            mm = re.search(pat, text, re.MULTILINE)
            if not mm:
                continue
            if key == "total_gpu_memory":
                p.gpu_memory_bytes = size_bytes(mm.group(1), "GiB")
            elif key == "gpu_memory_utilization":
                wl["gpu_memory_utilization"] = float(mm.group(1))
            else:
                p.logged[key] = 0 if mm.group(1).startswith("-") else size_bytes(mm.group(1), "GiB")
        p.saw("memory profiling results (one figure a line)")
    m = re.search(r"total_gpu_memory \(([\d.]+)GiB\) x gpu_memory_utilization \(([\d.]+)\)", text)
    if m:
        p.gpu_memory_bytes = size_bytes(m.group(1), "GiB")
        wl["gpu_memory_utilization"] = float(m.group(2))
        p.saw("V0 memory budget line")
        for key, pat in (
            ("weights", r"model weights take ([\d.]+)GiB"),
            ("non_torch_memory", r"non_torch_memory takes ([\d.]+)GiB"),
            ("activations", r"activation peak memory takes ([\d.]+)GiB"),
            ("kv_cache", r"reserved for KV Cache is (-?[\d.]+)GiB"),
        ):
            mm = re.search(pat, text)
            if mm:
                if mm.group(1).startswith("-"):  # nothing left: the others took more than the budget
                    p.logged[key] = 0
                    p.metadata["kv_shortfall_bytes"] = size_bytes(mm.group(1)[1:], "GiB")
                    p.out_of_memory = True
                    p.failed_buffer = "kv_cache"
                    p.errors.append(mm.group(0))
                else:
                    p.logged[key] = size_bytes(mm.group(1), "GiB")
    m = re.search(r"Available KV cache memory:\s*(-?[\d.]+)\s*GiB", text)
    if m:
        p.logged["kv_cache"] = (
            max(0, size_bytes(m.group(1).lstrip("-"), "GiB")) if not m.group(1).startswith("-") else 0
        )
        p.saw("available KV cache memory")
    m = re.search(r"GPU KV cache size:\s*([\d,]+)\s*tokens", text)
    if m:
        p.metadata["kv_cache_tokens"] = int(m.group(1).replace(",", ""))
        if "kv_cache" in p.logged:  # the figure these tokens divide (a later run's refusal may state another)
            p.metadata["kv_cache_tokens_bytes"] = p.logged["kv_cache"]
        p.saw("GPU KV cache size (tokens)")
    m = re.search(r"# (?:GPU|cuda) blocks:\s*(\d+)", text)
    if m:
        p.metadata["kv_blocks"] = int(m.group(1))
    for m in re.finditer(r"Maximum concurrency for ([\d,]+) tokens per request:\s*([\d.]+)x", text):
        wl["context"] = int(m.group(1).replace(",", ""))
        p.metadata["max_concurrency"] = float(m.group(2))
        p.saw("maximum concurrency line")
    m = re.search(r"Graph capturing finished in [\d.]+ secs?, took ([\d.]+) GiB", text)
    if m:
        p.logged["cuda_graphs"] = size_bytes(m.group(1), "GiB")
        p.saw("CUDA graph capture")
    m = re.search(
        r"max seq len \((\d+)\) is larger than the maximum number of tokens that can be stored in KV "
        r"cache \((\d+)\)",
        text,
    )
    if m:
        wl["context"] = int(m.group(1))
        p.metadata["kv_cache_tokens"] = int(m.group(2))
        p.out_of_memory = True
        p.failed_buffer = "kv_cache"
        p.errors.append(m.group(0))
        p.saw("max_model_len larger than the KV cache")
    m = re.search(
        r"max seq len \((\d+)\), \(([\d.]+) GiB KV cache is needed, which is larger than the available "
        r"KV cache memory \(([\d.]+) GiB\)(?:\. Based on the available memory, the estimated maximum model "
        r"length is (\d+))?",
        text,
    )
    if m:
        wl["context"] = int(m.group(1))
        p.metadata["kv_needed_bytes"] = size_bytes(m.group(2), "GiB")
        p.logged["kv_cache"] = size_bytes(m.group(3), "GiB")
        if m.group(4):
            p.metadata["vllm_max_model_len"] = int(m.group(4))
        p.out_of_memory = True
        p.failed_buffer = "kv_cache"
        p.errors.append(m.group(0))
        p.saw("KV cache too small for max_model_len")
    if "No available memory for the cache blocks" in text:
        p.out_of_memory = True
        p.failed_buffer = "kv_cache"
        p.logged.setdefault("kv_cache", 0)
        p.errors.append("No available memory for the cache blocks")
        p.saw("no memory for KV cache blocks")
    if (
        p.out_of_memory is None
        and ("kv_cache" in p.logged or "weights" in p.logged)
        and "OutOfMemoryError" not in text
        and "out of memory" not in text.lower()
        and "Traceback (most recent call last)" not in text  # it failed, the excerpt does not say why
    ):
        p.out_of_memory = False


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp (and the llama.cpp lines Ollama's runner prints)

# print_info / llm_load_print_meta names -> GGUF keys (without the "ARCH." prefix)
_META_KEYS = {
    "n_ctx_train": "context_length",
    "n_embd": "embedding_length",
    "n_layer": "block_count",
    "n_head": "attention.head_count",
    "n_head_kv": "attention.head_count_kv",
    "n_embd_head_k": "attention.key_length",
    "n_embd_head_v": "attention.value_length",
    "n_ff": "feed_forward_length",
    "n_expert": "expert_count",
    "n_expert_used": "expert_used_count",
    "n_swa": "attention.sliding_window",
    "n_vocab": "vocab_size",
    "n_ff_exp": "expert_feed_forward_length",
    "n_expert_shared": "expert_shared_count",
    "n_layer_dense_lead": "leading_dense_block_count",
    "n_lora_q": "attention.q_lora_rank",
    "n_lora_kv": "attention.kv_lora_rank",
    "n_rot": "rope.dimension_count",
    "n_ff_shexp": "expert_shared_feed_forward_length",
}
# llama.cpp's file type names (llama_model_ftype_name) -> vram quant names
FILE_TYPES = {
    "q4_k - medium": "q4_k_m",
    "q4_k - small": "q4_k_s",
    "q5_k - medium": "q5_k_m",
    "q5_k - small": "q5_k_s",
    "q6_k": "q6_k",
    "q8_0": "q8_0",
    "q3_k - medium": "q3_k_m",
    "q3_k - large": "q3_k_l",
    "q3_k - small": "q3_k_s",
    "q2_k - medium": "q2_k",
    "q2_k": "q2_k",
    "q4_0": "q4_0",
    "q4_1": "q4_1",
    "q5_0": "q5_0",
    "q5_1": "q5_1",
    "f16": "float16",
    "bf16": "bfloat16",
    "all f32": "float32",
    "mostly q4_k - medium": "q4_k_m",
}
# llama.cpp's enum llama_ftype (general.file_type) -> vram quant names
FILE_TYPE_IDS = {
    0: "float32",
    1: "float16",
    2: "q4_0",
    3: "q4_1",
    7: "q8_0",
    8: "q5_0",
    9: "q5_1",
    10: "q2_k",
    11: "q3_k_s",
    12: "q3_k_m",
    13: "q3_k_l",
    14: "q4_k_s",
    15: "q4_k_m",
    16: "q5_k_s",
    17: "q5_k_m",
    18: "q6_k",
    32: "bfloat16",
}
_LLAMA_FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    "context": (("-c", "--ctx-size", "--ctx_size"), "int"),
    "n_gpu_layers": (("-ngl", "--n-gpu-layers", "--gpu-layers", "--n_gpu_layers"), "int"),
    "n_batch": (("-b", "--batch-size"), "int"),
    "n_ubatch": (("-ub", "--ubatch-size"), "int"),
    "parallel": (("-np", "--parallel"), "int"),
    "cache_type_k": (("-ctk", "--cache-type-k"), "str"),
    "cache_type_v": (("-ctv", "--cache-type-v"), "str"),
}


def _gguf_name_from_path(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _llama_cpp(text: str, p: ParsedLog) -> None:
    """Terms: weights (the GPU model buffers), kv_cache (the GPU KV buffers), compute_buffer (GPU compute buffers);
    *_host terms for what stayed in host memory."""
    wl = p.workload
    meta = p.metadata
    for line in text.splitlines():
        s = re.sub(r"^\S*\s*\|\s*", "", line.strip()) if "|" in line[:40] else line.strip()
        m = re.search(r"-\s*kv\s+\d+:\s+([\w.]+)\s+\S+\s+=\s+(.*)$", s)
        if m and "llama_model_loader" in line:
            key, val = m.group(1), m.group(2).strip()
            meta.setdefault("gguf", {})[key] = (
                int(val)
                if re.fullmatch(r"-?\d+", val)
                else float(val)
                if re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", val)
                else val
            )
            continue
        m = re.search(r"(?:llm_load_print_meta|print_info):\s+([\w.]+(?: [\w.]+)?)\s+=\s+(.*)$", s)
        if m:
            key, val = m.group(1).strip(), m.group(2).strip()
            meta.setdefault("print_info", {})[key] = val
            continue
        m = re.search(r"(?:^|\s|/)(llama-server|llama-cli|main|server|llama-bench)(?:\.exe)?\s+(-.*)$", s)
        if m and (" -m " in s or "--model" in s or " -c " in s or "-ngl" in s or "--ctx-size" in s):
            toks = _command_tokens(m.group(2))
            mv = _flag_value(toks, ("-m", "--model"))
            if mv:
                p.model = p.model or _gguf_name_from_path(mv)
            for key, (names, typ) in _LLAMA_FLAGS.items():
                v = _flag_value(toks, names)
                if v is not None:
                    wl[key] = int(float(v)) if typ == "int" and _num(v) is not None else v
            fa = _flag_value(toks, ("-fa", "--flash-attn"))
            if fa is not None and fa in ("on", "off", "auto", "1", "0"):
                wl["flash_attn"] = fa in ("on", "1")
            elif "-fa" in toks or "--flash-attn" in toks:
                wl["flash_attn"] = True
            p.saw("llama.cpp command line")
    pi = meta.get("print_info", {})
    gg = meta.get("gguf", {})
    if pi or gg:
        p.saw("model hyperparameters (print_info / GGUF keys)")
    name = gg.get("general.name") or pi.get("general.name")
    m = re.search(r"loaded meta data with \d+ key-value pairs and \d+ tensors from (\S+?\.gguf)", text) or re.search(
        r"(?:with model|model=)\s*['\"]([^'\"]+?\.gguf)['\"]", text
    )
    if m:
        p.model = _gguf_name_from_path(m.group(1))
    elif name and not p.model:
        p.model = str(name)
    ft = (pi.get("file type") or pi.get("model ftype") or pi.get("ftype") or "").lower()
    ft = re.sub(r"\s*\(guessed\)", "", ft)
    if ft in FILE_TYPES:
        wl["quant"] = FILE_TYPES[ft]
    elif isinstance(gg.get("general.file_type"), int) and gg["general.file_type"] in FILE_TYPE_IDS:
        wl["quant"] = FILE_TYPE_IDS[gg["general.file_type"]]
    ms = re.match(r"([\d.]+)\s*(GiB|MiB)", pi.get("model size") or pi.get("file size") or "")
    if ms:  # the whole file's tensors, as llama.cpp sums them
        p.logged["model_size"] = size_bytes(ms.group(1), ms.group(2))
        p.saw("model size")
    m = re.search(r"offloaded (\d+)/(\d+) layers to GPU", text)
    if m:
        wl["n_gpu_layers"] = int(m.group(1))
        meta["n_layer_plus_output"] = int(m.group(2))
        p.saw("layers offloaded")
    for key, pat in (
        (
            "context",
            r"(?:llama_new_context_with_model|llama_context|llama_init_from_model):\s+n_ctx\s+"
            r"=\s+(\d+)",
        ),
        ("n_batch", r":\s+n_batch\s+=\s+(\d+)"),
        ("n_ubatch", r":\s+n_ubatch\s+=\s+(\d+)"),
        ("parallel", r":\s+n_seq_max\s+=\s+(\d+)"),
        ("parallel", r"initializing slots,? n_slots\s*=\s*(\d+)"),  # llama-server's slots: the sequences n_ctx holds
    ):
        m = re.search(pat, text)
        if m:
            wl[key] = int(m.group(1))
            p.saw("context parameters (n_ctx, n_batch, n_ubatch)")
    m = re.search(r":\s+flash_attn\s+=\s+(\w+)", text)
    if m:
        wl["flash_attn"] = m.group(1) in ("1", "true", "enabled", "on")
    m = re.search(r":\s+kv_unified\s+=\s+(\w+)", text)
    if m:
        wl["kv_unified"] = m.group(1) == "true"
    elif int(wl.get("parallel") or 1) > 1 and "llama_new_context_with_model" in text:
        wl["kv_unified"] = True  # builds before the per-sequence KV streams (mid 2025) kept one stream for all
    dev_w = _sum_buffers(
        text,
        r"(CUDA\d+|ROCm\d+|Metal|MTL\d*|Vulkan\d+|SYCL\d+)(?: model)? buffer size\s*=\s*"
        r"([\d.]+) MiB",
    )
    host_w = _sum_buffers(
        text,
        r"(CPU|CPU_Mapped|CUDA_Host|CPU_REPACK)(?: model)? buffer size\s*=\s*([\d.]+) MiB",
        exclude=("KV", "compute", "output"),
    )
    if dev_w:
        p.logged["weights"] = sum(dev_w.values())
        p.gpu_count = p.gpu_count or len(dev_w)
        meta["weights_by_device"] = dev_w
        p.saw("model buffers per device")
    if host_w:
        p.logged["weights_host"] = sum(host_w.values())
    dev_kv = _sum_buffers(text, r"(CUDA\d+|ROCm\d+|Metal|MTL\d*|Vulkan\d+|SYCL\d+) KV buffer size\s*=\s*([\d.]+) MiB")
    if dev_kv:
        p.logged["kv_cache"] = sum(dev_kv.values())
        p.saw("KV buffers per device")
    m = re.search(r"KV self size\s*=\s*([\d.]+) MiB, K \((\w+)\):\s*[\d.]+ MiB, V \((\w+)\)", text) or re.search(
        r"llama_kv_cache(?:_unified)?: size =\s*([\d.]+) MiB \(.*?\), K \((\w+)\):\s*[\d.]+ MiB, V \((\w+)\)", text
    )
    if m:
        meta["kv_total_bytes"] = size_bytes(m.group(1), "MiB")
        wl["cache_type_k"], wl["cache_type_v"] = m.group(2), m.group(3)
        wl["kv_cache_type"] = m.group(2) if m.group(2) == m.group(3) else f"{m.group(2)}/{m.group(3)}"
        if not dev_kv and "offloaded" in text and wl.get("n_gpu_layers"):
            p.logged["kv_cache"] = meta["kv_total_bytes"]
        p.saw("KV cache size and types")
    dev_c = _sum_buffers(
        text,
        r"(CUDA\d+|ROCm\d+|Metal|MTL\d*|Vulkan\d+|SYCL\d+) compute buffer size\s*=\s*"
        r"([\d.]+) MiB",
    )
    if dev_c:
        p.logged["compute_buffer"] = sum(dev_c.values())
        p.saw("compute buffers per device")
    devices = re.findall(r"Device (\d+): ([^,\n]+), compute capability", text)
    if devices:
        p.gpu_name = p.gpu_name or devices[0][1].strip()
        p.gpu_count = max(p.gpu_count or 0, len({d for d, _ in devices}))
        p.saw("CUDA devices")
    m = re.search(r"using device \w+ \(([^)]+)\)(?: \([^)]*\))? - (\d+) MiB free", text)
    if m:
        p.gpu_name = p.gpu_name or m.group(1)
        p.metadata["free_at_load_bytes"] = int(m.group(2)) << 20
    m = re.search(r"allocating ([\d.]+) MiB on device (\d+): cudaMalloc failed: out of memory", text)
    if m:
        p.out_of_memory = True
        p.failed_allocation_bytes = size_bytes(m.group(1), "MiB")
        after = text[m.end() : m.end() + 600]
        p.failed_buffer = (
            "compute_buffer"
            if "compute" in after or "gallocr" in after
            else "kv_cache"
            if "kv cache" in after.lower() or "KV" in after
            else "weights"
        )
        p.errors.append(m.group(0))
        p.saw("failed GPU allocation")
    elif re.search(
        r"CUDA error: out of memory|cudaMalloc failed: out of memory|failed to allocate \w+ buffer|"
        r"unable to allocate \w+ buffer",
        text,
    ):
        p.out_of_memory = True
        p.saw("CUDA out-of-memory error")
    elif p.logged.get("compute_buffer") is not None and p.out_of_memory is None and "out of memory" not in text:
        p.out_of_memory = False


def _sum_buffers(text: str, pattern: str, exclude: tuple[str, ...] = ()) -> dict[str, int]:
    """Per-device MiB figures; a device printed twice (two contexts in one log) keeps its last value."""
    out: dict[str, int] = {}
    for m in re.finditer(pattern, text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        line = text[line_start : m.end()]
        if any(x in line for x in exclude):
            continue
        out[m.group(1)] = size_bytes(m.group(2), "MiB")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Ollama


def _kv_pairs(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'([\w.]+)=("[^"]*"|\S+)', line)}


def _ollama(text: str, p: ParsedLog) -> None:
    """Ollama's server log (its own estimate in the "offload" line, the runner's command) and `ollama ps`.
    Terms from the offload line: weights (memory.weights.total), kv_cache (memory.required.kv), compute_buffer
    (memory.graph.full), total (memory.required.full); from `ollama ps`: total (SIZE, decimal units)."""
    wl = p.workload
    for line in text.splitlines():
        if 'msg="offload' in line or "msg=offload " in line:
            kv = _kv_pairs(line)
            p.saw("Ollama offload estimate")
            avail = re.findall(_SIZE, kv.get("memory.available", ""))
            if avail:
                p.metadata["ollama_available"] = [size_bytes(a, u) for a, u in avail]
                p.gpu_count = len(avail)
                p.gpu_memory_bytes = p.gpu_memory_bytes or max(size_bytes(a, u) for a, u in avail)
            for key, term in (
                ("memory.weights.total", "weights"),
                ("memory.required.kv", "kv_cache"),
                ("memory.graph.full", "compute_buffer"),
                ("memory.required.full", "total"),
            ):
                b = _size(kv.get(key, ""))
                if b is not None:
                    p.logged[term] = b
            for key in (
                "memory.required.partial",
                "memory.weights.repeating",
                "memory.weights.nonrepeating",
                "memory.graph.partial",
            ):
                b = _size(kv.get(key, ""))
                if b is not None:
                    p.metadata[key] = b
            lm, lo = _int(kv.get("layers.model")), _int(kv.get("layers.offload"))
            if lm is not None:
                p.metadata["layers_model"] = lm
            if lo is not None:
                wl["n_gpu_layers"] = lo
                p.metadata["layers_offload"] = lo
            req = _int(kv.get("layers.requested"))
            if req is not None and req >= 0:
                wl["num_gpu"] = req
        if 'msg="starting llama server"' in line or 'msg="starting runner"' in line:
            cmd = _kv_pairs(line).get("cmd", "")
            toks = _command_tokens(cmd)
            for key, names in (
                ("context", ("--ctx-size",)),
                ("n_batch", ("--batch-size",)),
                ("n_gpu_layers", ("--n-gpu-layers",)),
                ("parallel", ("--parallel",)),
            ):
                v = _flag_value(toks, names)
                if v is not None and _int(v) is not None:
                    wl[key] = _int(v)
            kvt = _flag_value(toks, ("--kv-cache-type",))
            if kvt:
                wl["kv_cache_type"] = kvt
                wl["cache_type_k"] = wl["cache_type_v"] = kvt
            if "--flash-attn" in toks:
                wl["flash_attn"] = True
            p.saw("Ollama runner command")
        if 'msg="inference compute"' in line:
            kv = _kv_pairs(line)
            if kv.get("name"):
                p.gpu_name = p.gpu_name or kv["name"]
            t = _size(kv.get("total", ""))
            if t:
                p.gpu_memory_bytes = p.gpu_memory_bytes or t
            p.saw("Ollama GPU discovery")
        for msg, term in (
            ('msg="model weights"', "weights"),
            ('msg="kv cache"', "kv_cache"),
            ('msg="compute graph"', "compute_buffer"),
        ):
            if msg in line:
                kv = _kv_pairs(line)
                dev = kv.get("device") or kv.get("buffer") or kv.get("backend") or ""
                b = _size(kv.get("size", ""))
                if b is not None and dev.upper().startswith(("CUDA", "ROCM", "METAL", "VULKAN")):
                    p.metadata.setdefault(f"ollama_{term}", {})[dev] = b
                    p.saw("Ollama memory layout (new engine)")
    for term in ("weights", "kv_cache", "compute_buffer"):
        per_dev = p.metadata.get(f"ollama_{term}")
        if per_dev and term not in p.logged:
            p.logged[term] = sum(per_dev.values())
    m = re.search(r"ollama run\s+(\S+)", text)
    if m:
        p.model = p.model or m.group(1)
    _ollama_ps(text, p)
    if re.search(r"out of memory|cudaMalloc failed", text, re.IGNORECASE):
        p.out_of_memory = True
    elif p.metadata.get("layers_model") is not None and p.metadata.get("layers_offload") is not None:
        # Ollama did not fail: it kept what does not fit in host memory
        p.out_of_memory = p.out_of_memory if p.out_of_memory is not None else False


def _ollama_ps(text: str, p: ParsedLog) -> None:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not _OLLAMA_PS.match(line):
            continue
        header = line
        has_ctx = "CONTEXT" in header
        for row in lines[i + 1 :]:
            if not row.strip():
                break
            m = re.match(r"^\s*(\S+)\s+([0-9a-f]{6,})\s+([\d.]+\s*[KMGT]?B)\s+(.+?)\s{2,}(?:(\d+)\s{2,})?(.*)$", row)
            if not m:
                continue
            p.saw("ollama ps")
            p.model = p.model or m.group(1)
            sm = re.match(r"([\d.]+)\s*([KMGT]?B)", m.group(3))
            if sm:
                p.logged["total"] = size_bytes(sm.group(1), sm.group(2), decimal=True)
            proc = m.group(4).strip()
            p.metadata["processor"] = proc
            sp = re.match(r"(\d+)%/(\d+)% CPU/GPU", proc)
            if sp:
                p.metadata["cpu_share"] = int(sp.group(1)) / 100
            elif "100% GPU" in proc:
                p.metadata["cpu_share"] = 0.0
            elif "100% CPU" in proc:
                p.metadata["cpu_share"] = 1.0
            if has_ctx and m.group(5):
                p.workload["context"] = int(m.group(5))
            p.out_of_memory = p.out_of_memory if p.out_of_memory is not None else False
            return
