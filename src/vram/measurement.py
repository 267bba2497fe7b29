"""Measure a workload on this machine's GPU and put it next to the estimate (the `measure` extra: torch +
transformers, imported only here).

The model is built from its config with random weights directly on the GPU, in the workload's dtype (no download).
Inference: a standalone forward pass measures the cache it leaves, then everything of it is released and
``generate()`` of `new_tokens` greedy tokens runs as in a user's process; the peak of
``torch.cuda.max_memory_allocated()`` over ``generate()`` alone is the measured peak, and the device memory in use
(``mem_get_info``) at the end of the run, plus what the allocator had reserved beyond it, is the measured total.
Training runs three steps of forward + backward + optimizer step and keeps the largest peak.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from .errors import BadInput, NeedsExtra, VramError
from .inference import estimate
from .records import field, record
from .request import TrainWorkload, Workload
from .resolver import resolve_model
from .result import Estimate


class NoGpu(VramError):
    """Measuring needs a CUDA GPU."""


@record(frozen=True)
class Row:
    name: str
    measured_bytes: int
    estimated_bytes: int

    @property
    def error(self) -> float:
        return (self.estimated_bytes - self.measured_bytes) / self.measured_bytes if self.measured_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured_bytes": self.measured_bytes,
            "estimated_bytes": self.estimated_bytes,
            "error": round(self.error, 4),
        }


@record(frozen=True)
class Measurement:
    model: str
    kind: str  # "inference" | "training"
    device: str
    torch_version: str
    transformers_version: str
    rows: tuple[Row, ...]
    estimate: Estimate
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "kind": self.kind,
            "device": self.device,
            "torch": self.torch_version,
            "transformers": self.transformers_version,
            "rows": [r.to_dict() for r in self.rows],
            "seconds": round(self.seconds, 2),
            "details": self.details,
            "estimate": self.estimate.to_dict(),
        }


def _imports() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise NeedsExtra("measuring on a GPU (torch and transformers)", "measure") from exc
    if not torch.cuda.is_available():
        raise NoGpu(
            "vram measure needs a CUDA GPU: torch sees none on this machine (estimates need no GPU: "
            "use `vram estimate` or `vram fit`)",
            field="gpu",
        )
    return torch, transformers


def _config(model: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    rm = resolve_model(model)
    if rm.entry is not None:
        return dict(rm.entry.config)
    p = Path(rm.source)
    if p.is_dir():
        p = p / "config.json"
    if p.is_file():
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
        return data
    raise BadInput(f"model: cannot find a config.json for {model!r} to build the model from", field="model")


def _build(torch: Any, transformers: Any, cfg: dict[str, Any], dtype: Any, attn: str) -> tuple[Any, Any]:
    conf = transformers.AutoConfig.for_model(**cfg)
    with torch.device("cuda"):
        m = transformers.AutoModelForCausalLM.from_config(conf, dtype=dtype, attn_implementation=attn)
    m.eval()
    return m, conf


def _dtype(torch: Any, name: str) -> Any:
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def measure(model: str, workload: Workload | None = None, train: TrainWorkload | None = None) -> Measurement:
    """Run the workload on GPU 0 and return measured vs estimated bytes per component."""
    torch, transformers = _imports()
    t0 = time.time()
    device = torch.cuda.get_device_name(0)
    cfg = _config(model)
    torch.cuda.init()
    a = torch.ones(64, 64, device="cuda", dtype=torch.bfloat16)
    (a @ a).sum().item()  # CUDA context and cuBLAS handles, as the estimate's cuda_context counts them
    del a
    torch.cuda.synchronize()
    free0, total_dev = torch.cuda.mem_get_info()
    context_used = total_dev - free0 - torch.cuda.memory_reserved()
    if train is not None:
        return _measure_training(torch, transformers, model, cfg, train, device, t0, context_used)
    wl = (workload or Workload()).validate()
    if wl.quant:
        raise BadInput("measure: random-weight runs cover plain dtypes only (drop --quant)", field="quant")
    if wl.engine != "transformers":
        raise BadInput("measure: only the transformers engine can be measured in process", field="engine")
    est = estimate(model, wl)
    dtype = _dtype(torch, wl.dtype)
    before = torch.cuda.memory_allocated()
    m, conf = _build(torch, transformers, cfg, dtype, "sdpa" if wl.attn == "flash" else wl.attn)
    torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated() - before
    vocab = conf.get_text_config().vocab_size
    x = torch.randint(0, vocab, (wl.batch, wl.context), device="cuda")
    kv = 0
    with torch.no_grad():
        # the cache a standalone forward leaves, measured first; then nothing of it may stay referenced (its
        # output object holds the cache layers), so that generate() is measured as a user's process runs it
        before_fwd = torch.cuda.memory_allocated()
        out = m(input_ids=x, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        logits = out.logits.numel() * out.logits.element_size()
        kv = torch.cuda.memory_allocated() - before_fwd - logits
        del out
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        m.generate(x, max_new_tokens=wl.new_tokens, min_new_tokens=wl.new_tokens, do_sample=False)
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    free1, _ = torch.cuda.mem_get_info()
    total = max(total_dev - free1, torch.cuda.max_memory_reserved() + context_used)
    kv_est = est.component("kv_cache")
    rows = (
        Row("weights", weights, est.weights_bytes),
        Row("kv_cache (after prefill)", kv, kv_est.bytes if kv_est else est.kv_cache_bytes),
        Row("peak_allocated", peak, est.peak_allocated_bytes),
        Row("cuda_context", context_used, (est.component("cuda_context") or kv_est or est.breakdown[0]).bytes),
        Row("total (device)", total, est.total_bytes),
    )
    del m, x
    gc.collect()
    torch.cuda.empty_cache()
    return Measurement(
        model=est.model,
        kind="inference",
        device=device,
        torch_version=str(torch.__version__),
        transformers_version=str(transformers.__version__),
        rows=rows,
        estimate=est,
        seconds=time.time() - t0,
        details={"workload": wl.__dict__, "device_total_bytes": total_dev},
    )


def _measure_training(
    torch: Any,
    transformers: Any,
    model: str,
    cfg: dict[str, Any],
    tw: TrainWorkload,
    device: str,
    t0: float,
    context_used: int,
) -> Measurement:
    from .training import estimate_training

    if tw.method != "full" or tw.gpus != 1 or tw.zero or tw.fsdp:
        raise BadInput("measure --train: single-GPU full fine-tuning only", field="train")
    est = estimate_training(model, tw)
    dtype = (
        torch.float32
        if tw.precision in ("fp32", "mixed")
        else _dtype(torch, "float16" if tw.precision == "fp16" else "bfloat16")
    )
    before = torch.cuda.memory_allocated()
    m, conf = _build(torch, transformers, cfg, dtype, tw.attn)
    weights = torch.cuda.memory_allocated() - before
    if tw.grad_checkpointing:
        m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = {
        "adamw": lambda: torch.optim.AdamW(params),
        "adamw-fused": lambda: torch.optim.AdamW(params, fused=True),
        "sgd": lambda: torch.optim.SGD(params, lr=1e-3),
        "sgd-momentum": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
        "adafactor": lambda: torch.optim.Adafactor(params),
    }.get(tw.optimizer)
    if opt is None:
        raise BadInput(f"measure --train: optimizer {tw.optimizer!r} is not measured in process", field="optimizer")
    optimizer = opt()
    vocab = conf.get_text_config().vocab_size
    x = torch.randint(0, vocab, (tw.batch, tw.seq), device="cuda")
    peak = 0
    for _ in range(3):
        torch.cuda.reset_peak_memory_stats()
        if tw.precision == "mixed":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = m(input_ids=x, labels=x).loss
        else:
            loss = m(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        peak = max(peak, torch.cuda.max_memory_allocated())
    free1, total_dev = torch.cuda.mem_get_info()
    total = max(total_dev - free1, torch.cuda.max_memory_reserved() + context_used)
    rows = (
        Row("weights", weights, est.weights_bytes),
        Row("peak_allocated", peak, est.peak_allocated_bytes),
        Row("total (device)", total, est.total_bytes),
    )
    del m, optimizer, x
    gc.collect()
    torch.cuda.empty_cache()
    return Measurement(
        model=est.model,
        kind="training",
        device=device,
        torch_version=str(torch.__version__),
        transformers_version=str(transformers.__version__),
        rows=rows,
        estimate=est,
        seconds=time.time() - t0,
        details={"train": tw.__dict__},
    )
