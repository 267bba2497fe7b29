"""Write measurements/speed/qwen25-speed-benchmark.jsonl: the BF16 rows of the Qwen2.5 team's speed benchmark
(Qwen2.5-0.5B … 72B-Instruct on A100 80GB, batch 1, 2,048 new tokens after prompts of 1 to 129,024 tokens), both its
"(Transformer)" tables (transformers 4.46.0 generate() with flash_attention_2) and its "(vLLM)" tables (vLLM 0.6.3;
0.6.2 for the 7B / 14B / 32B rows at 129,024 tokens).

    .venv/bin/python measurements/speed/collect/qwen25_speed_benchmark.py

The figures are the tables' (QwenLM/Qwen2.5 docs/source/benchmark/speed_benchmark.rst @010c37c, the same blob as at
a912d23, the file's last change; the file was removed at f4d356c), typed in below as data; the method is the
repository's published scripts (examples/speed-benchmark @b736067, committed after the tables). Transformers rows
already in transformers-generate.jsonl (same id) are left out here, so no case is counted twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from qwen_tables import end_to_end_vram

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "qwen25-speed-benchmark.jsonl"
EXISTING = HERE / "transformers-generate.jsonl"
COMMIT = "010c37c33b13a1ac59944b349620e13404efe97d"
SOURCE = f"https://github.com/QwenLM/Qwen2.5/blob/{COMMIT}/docs/source/benchmark/speed_benchmark.rst"
SCRIPTS = "https://github.com/QwenLM/Qwen2.5/blob/b736067/examples/speed-benchmark"
NEW_TOKENS = 2048
SIZES = ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")

# engine -> size -> [(input length, GPU Num, Speed in tokens/s, the row's Note cell)]: every BF16 row of the tables
ROWS: dict[str, dict[str, list[tuple[int, int, float, str]]]] = {
    "transformers": {
        "0.5b": [(1, 1, 47.40, ""), (6144, 1, 47.45, ""), (14336, 1, 47.11, ""), (30720, 1, 47.16, "")],
        "1.5b": [(1, 1, 39.68, ""), (6144, 1, 40.88, ""), (14336, 1, 40.43, ""), (30720, 1, 38.59, "")],
        "3b": [(1, 1, 30.80, ""), (6144, 1, 32.20, ""), (14336, 1, 31.72, ""), (30720, 1, 25.37, "")],
        "7b": [(1, 1, 40.38, ""), (6144, 1, 38.76, ""), (14336, 1, 29.78, ""), (30720, 1, 18.83, "")],
        "14b": [(1, 1, 24.74, ""), (6144, 1, 20.51, ""), (14336, 1, 13.92, ""), (30720, 1, 8.20, "")],
        "32b": [(1, 1, 17.54, ""), (6144, 1, 12.49, ""), (14336, 1, 8.95, ""), (30720, 1, 5.59, "")],
        "72b": [(1, 2, 8.73, ""), (6144, 2, 6.39, ""), (14336, 3, 4.25, ""), (30720, 3, 2.94, "")],
    },
    "vllm": {
        "0.5b": [(1, 1, 311.55, ""), (6144, 1, 304.79, ""), (14336, 1, 290.28, ""), (30720, 1, 264.51, "")],
        "1.5b": [(1, 1, 183.33, ""), (6144, 1, 176.68, ""), (14336, 1, 168.69, ""), (30720, 1, 152.04, "")],
        "3b": [(1, 1, 127.61, ""), (6144, 1, 123.15, ""), (14336, 1, 117.35, ""), (30720, 1, 105.88, "")],
        "7b": [
            (1, 1, 84.28, ""),
            (6144, 1, 80.70, ""),
            (14336, 1, 77.69, ""),
            (30720, 1, 70.33, ""),
            (63488, 1, 50.86, "setting-64k"),
            (129024, 1, 28.94, "vllm==0.6.2, new sample config"),
        ],
        "14b": [
            (1, 1, 46.30, ""),
            (6144, 1, 43.83, ""),
            (14336, 1, 41.91, ""),
            (30720, 1, 37.18, ""),
            (63488, 1, 26.85, "setting-64k"),
            (129024, 1, 14.53, "vllm==0.6.2, new sample config"),
        ],
        "32b": [
            (1, 1, 22.13, "setting1"),
            (6144, 1, 21.05, "setting1"),
            (14336, 1, 19.91, "setting1"),
            (30720, 2, 31.82, ""),
            (63488, 2, 24.45, "setting-64k"),
            (129024, 2, 14.31, "vllm==0.6.2, new sample config"),
        ],
        "72b": [
            (1, 2, 18.19, "Setting 1"),
            (1, 4, 31.37, "Default"),
            (6144, 4, 29.90, "Default"),
            (14336, 4, 30.10, "Default"),
            (30720, 4, 27.53, "Default"),
            (63488, 4, 20.74, "Setting 4"),
            (129024, 4, 12.68, "Setting 5"),
        ],
    },
}

# (gpu_memory_utilization, max_model_len, enforce_eager) of a vLLM Note cell, from the footnotes under each table
# (the 32B and 72B tables define "Setting 1" differently); a blank cell is the header's default
DEFAULT = (0.9, 32768, False)
VLLM_SETTINGS: dict[str, tuple[float, int, bool]] = {
    "": DEFAULT,
    "Default": DEFAULT,
    "setting-64k": (0.9, 65536, False),
    "Setting 4": (0.9, 65536, False),
    "Setting 5": (0.9, 131072, False),
    # not in the footnotes: 129024 + 2048 new tokens needs max_model_len 131072 (the 32B table's note asks for
    # "model_max_length"=131072); memory utilization and eager mode not stated, the defaults are assumed
    "vllm==0.6.2, new sample config": (0.9, 131072, False),
}
SETTING_1 = {"32b": (1.0, 32768, True), "72b": (0.98, 4096, True)}
NEW_SAMPLE_CONFIG = (
    "SamplingParams(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1, presence_penalty=0, "
    "frequency_penalty=0, max_tokens=out_length)"
)


def vllm_setting(size: str, note: str) -> tuple[float, int, bool]:
    return SETTING_1[size] if note.lower().replace(" ", "") == "setting1" else VLLM_SETTINGS[note]


def case_id(engine: str, size: str, prompt: int) -> str:
    prefix = "hf" if engine == "transformers" else "vllm"
    return f"{prefix}-qwen25-speed-a100-qwen2.5-{size}-bf16-b1-in{prompt}-out{NEW_TOKENS}"


def case(engine: str, size: str, prompt: int, gpus: int, tps: float, note: str, suffix: str = "") -> dict[str, object]:
    vllm = engine == "vllm"
    repo = f"Qwen/Qwen2.5-{size.upper()}-Instruct"
    devices = ",".join(str(i) for i in range(gpus))
    row = f"BF16 row at input length {prompt}" + (f" with {gpus} GPUs" if suffix else "")
    notes = [
        "measured = the table's Speed: 2048 new tokens / the wall time of one "
        + ("llm.generate() call" if vllm else "model.generate() call")
        + " (no warm-up call), so it includes the prompt's prefill",
        "decode context = prompt + half the new tokens; --new-tokens 0",
        "GPU: 'NVIDIA A100 80GB' (form factor not stated) -> a100-80gb-sxm assumed",
        f"{repo} -> catalog qwen2.5-{size}",
        "the scripts (committed 2024-11-18) postdate the tables (2024-10-30 / 11-06); they are the repo's published "
        "method for them",
    ]
    not_expressible: list[str] = []
    if vllm:
        util, max_len, eager = vllm_setting(size, note)
        release = "0.6.2" if "0.6.2" in note else "0.6.3"
        settings: dict[str, object] = {
            "gpu_memory_utilization": util,
            "max_model_len": max_len,
            "enforce_eager": eager,
            "torch_version": "2.4.0",
            "flash_attn": "2.6.3",
        }
        sampling = (
            "the footnote's 'new sample config' (below)"
            if "new sample config" in note
            else "its sampling (temperature 1.0, repetition_penalty 0.1, presence/frequency penalty -2) steers "
            "towards long output but"
        )
        notes.append(
            f"the script passes tensor_parallel_size = the number of GPUs; {sampling} does not force 2048 tokens "
            "(no ignore_eos / min_tokens), and the speed divides 2048 by the time whatever the count"
        )
        if gpus > 1:
            notes.append(f"{gpus} GPUs: vLLM tensor parallel -> --split tp")
        if eager:
            notes.append(
                f"table note '{note}': gpu_memory_utilization={util}, max_model_len={max_len}, enforce_eager=True "
                "(no CUDA graphs)"
            )
            not_expressible.append(
                "enforce_eager=True: vram's decode speed has no eager-mode (no CUDA graph) term and the case mapping "
                "has no field for it, so the figure is modelled as with CUDA graphs"
            )
        if "new sample config" in note:
            settings["sampling_params"] = NEW_SAMPLE_CONFIG
            asked = 'the 32B footnote asks for "model_max_length"=131072; ' if size == "32b" else ""
            notes.append(
                f"table note '{note}': run on vLLM 0.6.2 with the footnote's sampling {NEW_SAMPLE_CONFIG}; "
                f"max_model_len not stated ({asked}129024 + 2048 needs 131072), gpu_memory_utilization / "
                "enforce_eager assumed default"
            )
        elif max_len > 32768:
            notes.append(f"table note '{note}': gpu_memory_utilization={util}, max_model_len={max_len}")
        if prompt + NEW_TOKENS > 32768:
            notes.append(
                "prompt + 2048 > 32768, Qwen2.5-Instruct's max_position_embeddings: the docs give only max_model_len "
                f"{max_len}, not whether YaRN rope scaling was set (the script sets VLLM_ALLOW_LONG_MAX_MODEL_LEN=1, "
                "which lets vLLM take a longer max_model_len without it); vram has no rope-scaling input and its "
                "catalog entry allows 131072 tokens"
            )
        command = (
            f"python speed_benchmark_vllm.py --model_id_or_path {repo} --context_length {prompt} --max_model_len "
            f"{max_len} --gpus {devices} --gpu_memory_utilization {util}"
            + (" --enforce_eager" if eager else "")
            + " --outputs_dir outputs/vllm (generate_length 2048 default)"
        )
        parallelism = "single GPU" if gpus == 1 else f"tensor parallel {gpus}"
        split = "tp" if gpus > 1 else None
        method = f"{SCRIPTS}/speed_benchmark_vllm.py"
    else:
        release = "4.46.0"
        settings = {
            "attn_implementation": "flash_attention_2",
            "cache_implementation": None,
            "torch_compile": False,
            "torch_version": "2.3.1",
            "flash_attn": "2.5.8",
        }
        notes.append(
            "the script loads with attn_implementation='flash_attention_2' and device_map='auto'; min_length = prompt "
            "+ 2048 forces exactly 2048 new tokens; prompt = the character '我' repeated (1 token each)"
        )
        if gpus > 1:
            notes.append(f"{gpus} GPUs: device_map='auto' places the layers in turn -> --split pp")
        command = (
            f"python speed_benchmark_transformers.py --model_id_or_path {repo} --context_length {prompt} --gpus "
            f"{devices} --outputs_dir outputs/transformers (generate_length 2048 default)"
        )
        parallelism = "single GPU" if gpus == 1 else f"device_map='auto' layer split over {gpus} GPUs"
        split = "pp" if gpus > 1 else None
        method = f"{SCRIPTS}/speed_benchmark_transformers.py"
    table = f"{size.upper()} ({'vLLM' if vllm else 'Transformer'}) table"
    return {
        "id": case_id(engine, size, prompt) + suffix,
        "engine": engine,
        "engine_version": release,
        "backend": "CUDA",
        "gpu": "NVIDIA A100 80GB",
        "gpu_vendor": "nvidia",
        "gpu_count": gpus,
        "batch": 1,
        "model_class": "dense",
        "model_repo": repo,
        "model_file": f"{repo} (BF16)",
        "quant": "BF16",
        "flash_attention": True,
        "prefill_tokens": prompt,
        "decode_tokens": NEW_TOKENS,
        "context_class": "long" if prompt > 4096 else "short",
        "parallelism": parallelism,
        "command": command,
        "measured": {"decode_tps_per_seq": tps, "tokens_per_s_end_to_end": tps},
        "measurement_quality": "end-to-end time of 2048 tokens includes the prompt's prefill; one timed call, no "
        "warm-up run",
        "not_expressible": not_expressible,
        "source": f"{SOURCE} ({table}, {row}" + (f", note '{note}'" if note else "") + f"); method: {method}",
        "source_kind": "vendor speed-benchmark table (Qwen2.5 docs) with its published script",
        "settings": settings,
        "vram": end_to_end_vram(f"qwen2.5-{size}", engine, gpus, prompt, NEW_TOKENS, split, notes),
    }


def main() -> None:
    existing = {json.loads(line)["id"] for line in EXISTING.read_text().splitlines() if line.strip()}
    rows = []
    skipped = 0
    for engine, sizes in ROWS.items():
        for size in SIZES:
            for prompt, gpus, tps, note in sizes[size]:
                if case_id(engine, size, prompt) in existing:
                    skipped += 1
                    continue
                # the 72B vLLM table has two BF16 rows at input length 1 (2 GPUs under Setting 1, 4 under the default):
                # the one off the table's usual GPU count gets a -tpN suffix
                twin = [r for r in sizes[size] if r[0] == prompt and r[1] != gpus]
                suffix = f"-tp{gpus}" if twin and gpus < twin[0][1] else ""
                rows.append(case(engine, size, prompt, gpus, tps, note, suffix))
    OUT.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} cases -> {OUT} ({skipped} transformers rows already in {EXISTING.name})")


if __name__ == "__main__":
    main()
