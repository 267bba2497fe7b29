"""Regenerate the README's example outputs from real runs, so the README never shows numbers the tool doesn't print.

    .venv/bin/python tools/update_readme.py

Each block between `<!-- BEGIN name -->` and `<!-- END name -->` is replaced by the output of its producer below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VRAM = str(ROOT / ".venv" / "bin" / "vram")
sys.path.insert(0, str(ROOT / "src"))


def run(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    return "\n".join(line.rstrip() for line in out.strip().splitlines())


def fenced(cmd: list[str], text: str | None = None) -> str:
    return f"    $ {' '.join(['vram', *cmd[1:]])}\n\n```\n{text if text is not None else run(*cmd)}\n```"


def estimate_output() -> str:
    return "```\n" + run(VRAM, "estimate", "qwen2.5-7b", "--context", "32k", "--batch", "2") + "\n```"


def score_output() -> str:
    gt = ROOT.parent / "shared" / "groundtruth" / "score.py"
    text = run(sys.executable, str(gt), "--cmd", VRAM, "--quiet")
    return "```\n" + text + "\n```"


def train_examples() -> str:
    cases = [
        ("Full fine-tune, bf16 weights + AdamW", ["--method", "full", "--precision", "bf16", "--seq", "2048"]),
        ("LoRA r16 on all linear layers", ["--method", "lora", "--seq", "2048"]),
        ("QLoRA r16 (NF4 base) with gradient checkpointing", ["--method", "qlora", "--seq", "2048",
                                                             "--grad-checkpointing"]),
        ("Mixed precision, ZeRO-3 over 8 GPUs (per GPU)", ["--method", "full", "--precision", "mixed", "--gpus",
                                                           "8", "--zero", "3", "--seq", "4096"]),
    ]
    parts = []
    import json

    for title, opts in cases:
        cmd = [VRAM, "estimate", "llama-3.1-8b", "--train", *opts, "--json"]
        d = json.loads(run(*cmd))
        rows = "\n".join(f"| {c['name']} | {c['bytes'] / 2**30:,.2f} | {c['explanation']} |"
                         for c in d["breakdown"] if c["bytes"])
        parts.append(
            f"**{title}** — `vram estimate llama-3.1-8b --train {' '.join(opts)}`\n\n"
            f"| component | GiB | why |\n|---|---:|---|\n{rows}\n"
            f"| **peak allocated** | **{d['peak_allocated_bytes'] / 2**30:,.2f}** | binds at: {d['binding_phase']} |\n"
            f"| device total | {d['total_bytes'] / 2**30:,.2f} | |\n\n"
            f"Trainable parameters: {d['trainable_params']:,}.")
    return "\n\n".join(parts)


def train_switches() -> str:
    from vram import TrainWorkload, estimate_training

    base = dict(method="full", precision="bf16", optimizer="adamw", batch=1, seq=4096)
    rows = [("full fine-tune, bf16, AdamW (baseline)", base),
            ("+ gradient checkpointing", {**base, "grad_checkpointing": True}),
            ("LoRA r16, all linear layers", {**base, "method": "lora"}),
            ("QLoRA r16 (NF4 base)", {**base, "method": "qlora"}),
            ("8-bit AdamW (bitsandbytes)", {**base, "optimizer": "adamw-8bit"}),
            ("ZeRO-3 over 8 GPUs, mixed precision (per GPU)", {**base, "precision": "mixed", "zero": 3, "gpus": 8})]
    out = ["What each switch saves for Llama-3.1-8B at 1 × 4,096 tokens (peak allocated per GPU):", "",
           "| setup | weights GiB | grads GiB | optimizer GiB | peak GiB | binds at | saved vs baseline |",
           "|---|---:|---:|---:|---:|---|---:|"]
    first = None
    for name, kw in rows:
        e = estimate_training("llama-3.1-8b", TrainWorkload(**kw))  # type: ignore[arg-type]
        p = e.peak_allocated_bytes
        first = first or p
        out.append(f"| {name} | {e.weights_bytes / 2**30:.1f} | {e.extra['gradient_bytes'] / 2**30:.1f} | "
                   f"{e.extra['optimizer_bytes'] / 2**30:.1f} | {p / 2**30:.1f} | {e.binding_phase} | "
                   f"{100 * (1 - p / first):.0f} % |")
    return "\n".join(out)


def fit_output() -> str:
    return "\n\n".join(fenced(c) for c in (
        [VRAM, "fit", "llama-2-13b", "--gpu", "rtx-4090", "--quant", "q4_k_m", "--context", "4096"],
        [VRAM, "fit", "llama-3.1-70b", "--gpu", "h100-sxm", "--dtype", "bfloat16", "--context", "4096"],
        [VRAM, "fit", "llama-3.1-70b", "--gpu", "2xh100-sxm", "--dtype", "bfloat16", "--context", "4096"],
    ))


def which_output() -> str:
    return "\n\n".join(fenced(c) for c in (
        [VRAM, "which", "llama-3.1-70b", "--quant", "q4_k_m", "--context", "8k", "--limit", "10"],
        [VRAM, "compare", "llama-3.1-8b", "--gpu", "h100-sxm,l40s,rtx-4090,2xl4", "--context", "32k"],
    ))


def plan_output() -> str:
    return fenced([VRAM, "plan", "examples/fleet.yaml"])


def accuracy_table() -> str:
    text = run(sys.executable, str(ROOT / "measurements" / "accuracy.py")).split("## Every case")[0]
    return "\n".join(line for line in text.splitlines() if line.startswith("|"))


def families_output() -> str:
    return "\n\n".join(fenced(c) for c in (
        [VRAM, "estimate", "black-forest-labs/FLUX.1-dev", "--width", "1024", "--height", "1024"],
        [VRAM, "estimate", "openai/whisper-large-v3", "--batch", "8"],
    ))


def speed_table() -> str:
    return run(sys.executable, str(ROOT / "measurements" / "speed" / "accuracy.py"))


def vllm_score() -> str:
    import json

    out = json.loads(run(sys.executable, str(ROOT / "measurements" / "vllm" / "score.py"), "--cmd", VRAM, "--json"))
    rows = ["| field | median | p90 | max | cases |", "|---|---|---|---|---|"]
    rows += [f"| {f} | {s['median']:.1f} % | {s['p90']:.1f} % | {s['max']:.1f} % | {s['n']} |"
             for f, s in out["summary"].items()]
    return "\n".join(rows)


PRODUCERS: dict[str, Callable[[], str]] = {
    "vllm-score": vllm_score,
    "speed-table": speed_table,
    "families-output": families_output,
    "accuracy-table": accuracy_table,
    "estimate-output": estimate_output, "score-output": score_output, "train-examples": train_examples,
    "train-switches": train_switches, "fit-output": fit_output, "which-output": which_output,
    "plan-output": plan_output,
}


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for name, producer in PRODUCERS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            continue
        try:
            body = producer()
        except subprocess.CalledProcessError as exc:
            print(f"{name}: failed: {exc.stderr[-300:]}", file=sys.stderr)
            continue
        text = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
        print(f"updated {name}")
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
