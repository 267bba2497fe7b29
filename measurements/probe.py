"""Measure real GPU memory of transformers inference and training steps, the way the calibration set was measured.

Runs on a machine with a CUDA GPU, PyTorch and transformers (not a dependency of vram). Each model is built from its
config.json with random weights directly on the GPU in bfloat16. Inference: a standalone forward pass
(`use_cache=True, logits_to_keep=1`) whose output is kept, then `generate(16 new tokens)`; then the same generate with
the standalone output and every reference to its cache released ("clean": a plain generate() with nothing else alive;
files measured before this fix were corrected by correct_probes.py). Training: three steps of forward + backward +
optimizer step.

    python measurements/probe.py --out results.jsonl [--snapshot-dir DIR] [--budget-s 420]

Writes one JSON object per case, with the fields of ../shared/groundtruth/README.md plus `generate_clean_peak_bytes`.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import pickle
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

HERE = Path(__file__).resolve().parent
DEV = "cuda"

INFER = [  # (config, attn, batch, context)
    ("Qwen2.5-0.5B", "sdpa", 1, 8192),
    ("SmolLM2-135M", "sdpa", 4, 2048),
    ("SmolLM2-135M", "sdpa", 1, 8192),
    ("SmolLM2-135M", "eager", 1, 4096),
    ("Gemma-3-1B", "sdpa", 1, 16384),
    ("Gemma-3-1B", "sdpa", 4, 4096),
    ("LFM2-1.2B", "sdpa", 1, 16384),
    ("Gemma-2-2B", "sdpa", 1, 2048),
    ("Gemma-2-2B", "sdpa", 1, 8192),
    ("Phi-3-mini-4k", "sdpa", 1, 4096),
    ("Llama-3.1-8B", "sdpa", 2, 8192),
    ("Llama-3.1-8B", "sdpa", 1, 32768),
    ("Qwen3-8B", "sdpa", 1, 16384),
    ("Aya-Expanse-8B", "sdpa", 1, 8192),
    ("OLMo-2-7B", "sdpa", 1, 4096),
    ("Llama-2-7B", "sdpa", 1, 8192),
    ("DeepSeek-V2-Lite", "sdpa", 1, 4096),
    ("Mixtral-8x7B", "sdpa", 1, 4096),
]

TRAIN = [  # (config, recipe, batch, seq, grad_checkpointing)
    ("Qwen2.5-0.5B", "bf16-adamw", 1, 2048, False),
    ("SmolLM2-135M", "bf16-adamw", 4, 2048, False),
    ("SmolLM2-135M", "fp32-amp-adamw", 2, 2048, True),
    ("Gemma-3-1B", "bf16-adamw", 2, 2048, False),
    ("Gemma-3-1B", "fp32-amp-adamw", 1, 4096, True),
    ("Phi-3-mini-4k", "bf16-sgd", 1, 2048, False),
    ("Phi-3-mini-4k", "lora-bf16", 2, 2048, True),
    ("Llama-3.1-8B", "lora-bf16", 1, 2048, False),
    ("Llama-3.1-8B", "lora-bf16", 2, 4096, True),
    ("OLMo-2-7B", "bf16-adafactor", 1, 2048, False),
    ("Qwen3-8B", "bf16-adamw", 1, 2048, False),
    ("Qwen3-8B", "bf16-adamw-fused", 1, 2048, True),
]


CATALOG = HERE.parent / "src" / "vram" / "catalog" / "data" / "models"
SNAPSHOT = set()  # (kind, model) pairs whose last run is traced with the allocator's memory history


def load_config(name: str):
    local = HERE / "configs" / f"{name}.json"
    if local.exists():
        d = json.loads(local.read_text())
        return AutoConfig.for_model(**d), f"configs/{name}.json"
    entry = json.loads((CATALOG / f"{name}.json").read_text())
    d = dict(entry["config"])
    d.pop("quantization_config", None)  # measure the bf16 architecture
    return AutoConfig.for_model(**d), f"../src/vram/catalog/data/models/{name}.json"


def build(name: str, attn: str, dtype=torch.bfloat16):
    cfg, path = load_config(name)
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    t = time.time()
    with torch.device(DEV):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)
    torch.cuda.synchronize()
    w = torch.cuda.memory_allocated() - before
    n_params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return model, cfg, path, w, n_params, buffers, time.time() - t


def peak_reset():
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def analyse_snapshot(snap: dict, top: int = 40) -> dict:
    """Replay the allocator trace; at the moment of peak allocation, group live blocks by their allocating frames."""
    events = [e for trace in snap["device_traces"] for e in trace]
    live: dict[int, tuple[int, str]] = {}
    cur = best = 0
    best_live: dict[int, tuple[int, str]] = {}
    for e in events:
        act = e["action"]
        if act == "alloc":
            frames = e.get("frames") or []
            keep = [
                f"{Path(f['filename']).name}:{f['line']}:{f['name']}"
                for f in frames
                if "transformers" in f["filename"]
                or "probe.py" in f["filename"]
                or "peft" in f["filename"]
                or "torch/optim" in f["filename"]
            ][:4]
            live[e["addr"]] = (e["size"], " < ".join(keep))
            cur += e["size"]
            if cur > best:
                best = cur
                best_live = dict(live)
        elif act == "free_completed" and e["addr"] in live:
            cur -= live.pop(e["addr"])[0]
    groups: dict[str, int] = {}
    for size, where in best_live.values():
        groups[where] = groups.get(where, 0) + size
    rows = sorted(groups.items(), key=lambda kv: -kv[1])[:top]
    live = [{"bytes": b, "where": w} for w, b in rows]
    return {"traced_peak_bytes": best, "n_events": len(events), "live_at_peak": live}


def snapshot_case(fn, snap_dir: Path | None, tag: str) -> dict | None:
    if snap_dir is None:
        fn()
        return None
    torch.cuda.memory._record_memory_history(max_entries=200000, context="alloc", stacks="python")
    try:
        fn()
        snap = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    info = analyse_snapshot(snap)
    snap_dir.mkdir(parents=True, exist_ok=True)
    (snap_dir / f"{tag}.json").write_text(json.dumps(info, indent=1))
    try:
        small = {"device_traces": snap["device_traces"]}
        with gzip.open(snap_dir / f"{tag}.pickle.gz", "wb", compresslevel=6) as f:
            pickle.dump(small, f)
    except Exception as exc:
        print("snapshot dump failed", exc, file=sys.stderr)
    return info


def infer_cases(cases, emit, deadline, snap_dir):
    by_model: dict[tuple[str, str], list] = {}
    for case in cases:
        name, attn, b, L = case[:4]
        new = case[4] if len(case) > 4 else 16
        by_model.setdefault((name, attn), []).append((b, L, new))
    for (name, attn), shapes in by_model.items():
        if time.time() > deadline:
            print("budget reached, skipping", name, attn, file=sys.stderr)
            continue
        try:
            model, cfg, path, w, n_params, buffers, build_s = build(name, attn)
        except Exception as exc:
            emit({"kind": "infer", "model": name, "attn": attn, "error": f"build: {type(exc).__name__}: {exc}"[:500]})
            continue
        model.eval()
        vocab = cfg.get_text_config().vocab_size
        out = None
        for b, L, new in shapes:
            if time.time() > deadline:
                break
            rec = {
                "kind": "infer",
                "model": name,
                "config_file": path,
                "attn": attn,
                "attn_used": getattr(model.config, "_attn_implementation", None),
                "batch": b,
                "context": L,
                "new_tokens": new,
                "dtype": "bfloat16",
                "weights_bytes": w,
                "n_params": n_params,
                "buffer_bytes": buffers,
                "build_s": round(build_s, 2),
            }
            try:
                x = torch.randint(0, vocab, (b, L), device=DEV)
                # a prompt holding the pad token makes generate() infer padding (`_prepare_attention_mask_for_
                # generation`) and build every attention mask, the full causal one included (batch × L² bools):
                # text a tokenizer encodes never holds it, so the random prompt must not either
                pad = model.generation_config.pad_token_id
                pad_ids = [pad] if isinstance(pad, int) else list(pad or [])
                for p in pad_ids:
                    x[x == p] = (p + 1) % vocab
                rec["pad_token_ids_avoided"] = pad_ids
                peak_reset()
                before = torch.cuda.memory_allocated()
                with torch.no_grad():
                    out = model(input_ids=x, use_cache=True, logits_to_keep=1)
                torch.cuda.synchronize()
                rec["prefill_peak_bytes"] = torch.cuda.max_memory_allocated()
                rec["prefill_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
                rec["after_prefill_bytes"] = torch.cuda.memory_allocated()
                rec["logits_bytes"] = out.logits.numel() * out.logits.element_size()
                rec["kv_cache_bytes_alloc"] = rec["after_prefill_bytes"] - before - rec["logits_bytes"]
                cache = out.past_key_values
                rec["cache_class"] = type(cache).__name__
                rec["cache_layer_classes"] = sorted({type(c).__name__ for c in getattr(cache, "layers", [])})
                del cache  # the cache layers must not outlive `out`: the clean generate() below holds nothing else
                peak_reset()
                t = time.time()
                gen = model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)
                torch.cuda.synchronize()
                rec["generate_s"] = round(time.time() - t, 2)
                rec["generated"] = int(gen.shape[1] - L)
                rec["generate_peak_bytes"] = torch.cuda.max_memory_allocated()
                rec["generate_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
                del gen
                # same generate with the standalone forward's output (and its cache) released
                out = None
                gc.collect()
                torch.cuda.empty_cache()
                peak_reset()
                tag = f"infer-{name}-{attn}-b{b}-L{L}"

                def run_clean(model=model, x=x, new=new):
                    g = model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)
                    del g

                info = snapshot_case(run_clean, snap_dir if ("infer", name) in SNAPSHOT else None, tag)
                torch.cuda.synchronize()
                rec["generate_clean_peak_bytes"] = torch.cuda.max_memory_allocated()
                rec["generate_clean_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
                if info:
                    rec["snapshot_traced_peak_bytes"] = info["traced_peak_bytes"]
                del x
            except Exception as exc:
                rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
                out = None
            emit(rec)
        del model, out
        gc.collect()
        torch.cuda.empty_cache()


def make_optimizer(recipe: str, params):
    if recipe in ("bf16-adamw", "fp32-amp-adamw", "lora-bf16"):
        return torch.optim.AdamW(params)
    if recipe == "bf16-adamw-fused":
        return torch.optim.AdamW(params, fused=True)
    if recipe == "bf16-sgd":
        return torch.optim.SGD(params, lr=1e-3)
    if recipe == "bf16-adafactor":
        return torch.optim.Adafactor(params)
    raise ValueError(recipe)


def train_cases(cases, emit, deadline, snap_dir):
    for name, recipe, b, seq, ckpt in cases:
        if time.time() > deadline:
            print("budget reached, skipping", name, recipe, file=sys.stderr)
            continue
        rec = {
            "kind": "train",
            "model": name,
            "recipe": recipe,
            "attn": "sdpa",
            "batch": b,
            "seq": seq,
            "grad_checkpointing": ckpt,
        }
        model = opt = None
        try:
            dtype = torch.float32 if recipe.startswith("fp32") else torch.bfloat16
            model, cfg, path, w, _, _, build_s = build(name, "sdpa", dtype)
            rec.update(config_file=path, weights_bytes=w, build_s=round(build_s, 2), param_dtype=str(dtype))
            if recipe.startswith("lora"):
                import peft

                lcfg = peft.LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0)
                model = peft.get_peft_model(model, lcfg)
                rec["lora"] = {"r": 16, "target_modules": "all-linear"}
                rec["weights_bytes"] = torch.cuda.memory_allocated()
            if ckpt:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.train()
            rec["n_params"] = sum(p.numel() for p in model.parameters())
            trainable = [p for p in model.parameters() if p.requires_grad]
            rec["trainable_params"] = sum(p.numel() for p in trainable)
            opt = make_optimizer(recipe, trainable)
            vocab = cfg.get_text_config().vocab_size
            x = torch.randint(0, vocab, (b, seq), device=DEV)
            peaks, after = [], []
            for step in range(3):
                peak_reset()

                def one_step(model=model, x=x, opt=opt, recipe=recipe):
                    if recipe.startswith("fp32"):
                        with torch.autocast("cuda", dtype=torch.bfloat16):
                            loss = model(input_ids=x, labels=x).loss
                    else:
                        loss = model(input_ids=x, labels=x).loss
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)

                tag = f"train-{name}-{recipe}-b{b}-L{seq}"
                snapshot_case(one_step, snap_dir if (step == 2 and ("train", name) in SNAPSHOT) else None, tag)
                torch.cuda.synchronize()
                peaks.append(torch.cuda.max_memory_allocated())
                after.append(torch.cuda.memory_allocated())
            rec["step_peak_bytes"] = peaks
            rec["after_step_bytes"] = after
            rec["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
        emit(rec)
        del model, opt
        gc.collect()
        torch.cuda.empty_cache()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--snapshot-dir", type=Path)
    ap.add_argument("--budget-s", type=float, default=420)
    ap.add_argument("--only", choices=["infer", "train"], default=None)
    ap.add_argument(
        "--cases",
        type=Path,
        help="JSON file: {infer: [[model, attn, batch, context, new?]], "
        "train: [[model, recipe, batch, seq, ckpt]], snapshot: [[kind, model]]}",
    )
    a = ap.parse_args()
    global INFER, TRAIN
    if a.cases:
        spec = json.loads(a.cases.read_text())
        INFER = [tuple(c) for c in spec.get("infer", [])]
        TRAIN = [tuple(c) for c in spec.get("train", [])]
        SNAPSHOT.update(tuple(x) for x in spec.get("snapshot", []))
    else:
        SNAPSHOT.update({("infer", "Qwen2.5-0.5B"), ("train", "Qwen2.5-0.5B")})
    t0 = time.time()
    deadline = t0 + a.budget_s
    torch.cuda.init()
    m = torch.randn(256, 256, device=DEV, dtype=torch.bfloat16)
    (m @ m).sum().item()
    free, total = torch.cuda.mem_get_info()
    header = {
        "kind": "env",
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "context_with_cublas_used_bytes": total - free,
        "allocated_after_cublas_bytes": torch.cuda.memory_allocated(),
        "device_total_bytes": total,
    }
    del m
    fh = a.out.open("w")

    def emit(rec):
        rec["t"] = round(time.time() - t0, 1)
        fh.write(json.dumps(rec) + "\n")
        fh.flush()
        print(
            json.dumps(
                {
                    k: v
                    for k, v in rec.items()
                    if k
                    in (
                        "model",
                        "kind",
                        "batch",
                        "context",
                        "seq",
                        "recipe",
                        "generate_peak_bytes",
                        "generate_clean_peak_bytes",
                        "step_peak_bytes",
                        "error",
                        "t",
                    )
                }
            ),
            flush=True,
        )

    emit(header)
    if a.only in (None, "infer"):
        infer_cases(INFER, emit, deadline, a.snapshot_dir)
    if a.only in (None, "train"):
        train_cases(TRAIN, emit, deadline, a.snapshot_dir)
    fh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
