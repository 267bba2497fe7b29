"""Write measurements/speed/transformers-qwen15.jsonl and the configs it names: the Qwen1.5 team's transformers
generate() speeds on A100 80GB (BF16 rows, with flash_attention_2, 2,048 new tokens after prompts of 1, 6,144,
14,336 and 30,720 tokens), collected after `speed.TRANSFORMERS_ATTENTION_KV_EFFICIENCY` was set on the Qwen2.5
runs: Qwen1.5 0.5B-72B are plain multi-head models (no GQA group), so they check the cache-traffic term on models
and a transformers release it was not set on.

    .venv/bin/python measurements/speed/collect/qwen15_hf_infer.py

The figures are the table's (QwenLM/Qwen2.5 docs/source/benchmark/hf_infer.rst @14544eb, the page kept from the
Qwen1.5 docs); the configs are the Qwen1.5 shapes (hidden, MLP, layers, heads, vocabulary), written here as data.
"""

from __future__ import annotations

import json
from pathlib import Path

from qwen_tables import end_to_end_vram

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "transformers-qwen15.jsonl"
CONFIGS = HERE / "configs"
SOURCE = (
    "https://github.com/QwenLM/Qwen2.5/blob/14544eb0f7a075b80f2aeb0ca8f1a838e6c26267/docs/source/benchmark/hf_infer.rst"
)
# size -> (hidden, intermediate, layers, heads, vocab, tied embeddings)
SHAPES = {
    "0.5b": (1024, 2816, 24, 16, 151936, True),
    "1.8b": (2048, 5504, 24, 16, 151936, False),
    "4b": (2560, 6912, 40, 20, 151936, False),
    "7b": (4096, 11008, 32, 32, 151936, False),
    "14b": (5120, 13696, 40, 40, 152064, False),
    "72b": (8192, 24576, 80, 64, 152064, False),
}
# size -> [(input length, GPUs, tokens/s with FA2, without)] from the BF16 rows
ROWS = {
    "0.5b": [(1, 1, 58.54, 61.34), (6144, 1, 57.93, 63.57), (14336, 1, 59.48, 60.18), (30720, 1, 47.65, 35.44)],
    "1.8b": [(1, 1, 51.82, 54.01), (6144, 1, 51.56, 51.45), (14336, 1, 45.17, 30.53), (30720, 1, 29.21, 16.70)],
    "4b": [(1, 1, 30.32, 32.59), (6144, 1, 30.72, 28.61), (14336, 1, 23.46, 16.96), (30720, 1, 14.76, 9.19)],
    "7b": [(1, 1, 37.07, 40.05), (6144, 1, 29.29, 26.95), (14336, 1, 19.93, 16.18), (30720, 1, 12.04, 8.89)],
    "14b": [(1, 1, 26.89, 31.36), (6144, 1, 19.17, 18.03), (14336, 1, 12.91, 11.01), (30720, 2, 7.68, 6.09)],
    "72b": [(1, 2, 7.24, 8.13), (6144, 3, 4.89, 4.82), (14336, 4, 3.37, 3.13), (30720, 5, 2.17, 2.00)],
}
NEW_TOKENS = 2048


def config(size: str) -> dict[str, object]:
    hidden, inter, layers, heads, vocab, tied = SHAPES[size]
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-06,
        "use_sliding_window": False,
        "torch_dtype": "bfloat16",
    }


def case(size: str, prompt: int, gpus: int, fa2: float, sdpa: float) -> dict[str, object]:
    path = CONFIGS / f"qwen1.5-{size}" / "config.json"
    return {
        "id": f"hf-qwen15-a100-qwen1.5-{size}-bf16-b1-in{prompt}-out{NEW_TOKENS}",
        "engine": "transformers",
        "engine_version": "4.37-4.40 (not stated; Qwen1.5 needs 4.37 or later)",
        "backend": "CUDA",
        "gpu": "NVIDIA A100 80GB",
        "gpu_vendor": "nvidia",
        "gpu_count": gpus,
        "batch": 1,
        "model_class": "dense",
        "model_repo": f"Qwen/Qwen1.5-{size.upper()}-Chat",
        "model_file": f"Qwen/Qwen1.5-{size.upper()}-Chat (BF16)",
        "quant": "BF16",
        "flash_attention": True,
        "prefill_tokens": prompt,
        "decode_tokens": NEW_TOKENS,
        "context_class": "long" if prompt > 4096 else "short",
        "parallelism": "single GPU" if gpus == 1 else f"device_map='auto' over {gpus} GPUs (one layer after another)",
        "measured": {"decode_tps_per_seq": fa2, "tokens_per_s_end_to_end": fa2, "without_flash_attention_2": sdpa},
        "measurement_quality": "end-to-end time of 2048 tokens includes the prompt's prefill; transformers release "
        "not stated",
        "not_expressible": [],
        "source": f"{SOURCE} ({size.upper()} table, Qwen1.5-{size.upper()}-Chat row at input length {prompt})",
        "source_kind": "vendor speed table (Qwen1.5 docs, kept in the Qwen2.5 repository)",
        "settings": {"attn_implementation": "flash_attention_2", "torch_version": "2.1.2", "flash_attn": "2.5.6"},
        "vram": end_to_end_vram(
            str(path.relative_to(HERE.parents[1])),
            "transformers",
            gpus,
            prompt,
            NEW_TOKENS,
            "pp" if gpus > 1 else None,
            [
                "measured = the table's 'Speed (w/wo FA2)', the FA2 figure: 2048 new tokens / the wall time of one "
                "generate() call, prefill included",
                "decode context = prompt + half the new tokens; --new-tokens 0",
                "GPU: 'NVIDIA A100 80GB' (form factor not stated) -> a100-80gb-sxm, as for the Qwen2.5 tables",
                "model: Qwen1.5 is not in vram's catalog; its shapes are given as a config.json "
                f"({path.relative_to(HERE.parents[1])})",
            ]
            + (["several GPUs: device_map='auto' places layers in turn -> --split pp"] if gpus > 1 else []),
        ),
    }


def main() -> None:
    rows = []
    for size, runs in ROWS.items():
        folder = CONFIGS / f"qwen1.5-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config(size), indent=2) + "\n")
        rows += [case(size, *r) for r in runs]
    OUT.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} cases -> {OUT}")


if __name__ == "__main__":
    main()
